"""Replay's reader, decider and writer threads: same bytes; errors and Ctrl-C still surface."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from fraud.errors import InputError, ModelError
from fraud.generate import GenerateConfig, default_stores_dir, generate, write_dataset
from fraud.pipeline import Pipeline
from fraud.replay import ReplayConfig, rejects_path, run_replay
from fraud.tabular import TableWriter

ROOT = Path(__file__).resolve().parents[2]
START = datetime(2024, 3, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small file with one bad row (so the rejects file is written too)."""
    path = tmp_path_factory.mktemp("overlap") / "tx.csv"
    write_dataset(generate(GenerateConfig(users=200, terminals=40, days=5, start=START,
                                          seed=9)), path)
    lines = path.read_text().splitlines()
    broken = lines[700].split(",")
    broken[4] = "-1"  # a negative amount: rejected
    lines[700] = ",".join(broken)
    path.write_text("\n".join(lines) + "\n")
    return path


def _config(data: Path, out: Path, **kw: Any) -> ReplayConfig:
    base = ReplayConfig(input=str(data), output=out, model_dir=ROOT / "models" / "default",
                        rules_path=str(ROOT / "rules" / "default.yaml"), chunk_rows=500)
    return replace(base, **kw)


def test_threads_change_no_byte(data: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    stores = default_stores_dir(data)  # looked up by the reader thread when overlapping
    assert stores.is_dir()
    one = run_replay(_config(data, a, overlap=False, support_dir=stores))
    two = run_replay(_config(data, b, overlap=True, support_dir=stores))
    assert a.read_bytes() == b.read_bytes()
    assert rejects_path(a).read_bytes() == rejects_path(b).read_bytes()
    assert one.rows_rejected == two.rows_rejected == 1
    assert one.rows_decided == two.rows_decided > 0
    assert {"read", "support", "write", "score", "features"} <= set(two.stage_seconds)


@pytest.mark.parametrize("overlap", [True, False])
def test_interrupt_writes_every_decided_row(data: Path, tmp_path: Path,
                                            overlap: bool) -> None:
    out = tmp_path / "partial.csv"
    calls: list[int] = []

    def stop_after_three_chunks(rows: int) -> None:
        calls.append(rows)
        if len(calls) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_replay(_config(data, out, overlap=overlap, chunk_rows=200),
                   progress=stop_after_three_chunks)
    summary = json.loads(Path(str(out) + ".summary.json").read_text())
    assert summary["complete"] is False
    lines = out.read_text().splitlines()
    assert len(lines) - 1 == summary["rows_decided"] == 600  # 3 chunks; the bad row is later


def test_a_reader_error_reaches_the_caller(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("not,a,transaction,file\n1,2,3,4\n")
    with pytest.raises(InputError):
        run_replay(_config(bad, tmp_path / "o.csv", overlap=True))


@pytest.mark.parametrize("overlap", [True, False])
def test_a_writer_error_reaches_the_caller(data: Path, tmp_path: Path, overlap: bool,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    original = TableWriter.write

    def failing_write(self: Any, columns: Any) -> None:
        calls.append(1)
        if len(calls) == 2:
            raise OSError("disk full")
        original(self, columns)

    monkeypatch.setattr(TableWriter, "write", failing_write)
    out = tmp_path / "o.csv"
    with pytest.raises(OSError, match="disk full"):
        run_replay(_config(data, out, overlap=overlap))
    assert json.loads(Path(str(out) + ".summary.json").read_text())["complete"] is False


@pytest.mark.parametrize("overlap", [True, False])
def test_a_decider_error_reaches_the_caller_after_what_was_decided(
        data: Path, tmp_path: Path, overlap: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    original = Pipeline.decide

    def failing_decide(self: Pipeline, *args: Any, **kw: Any) -> Any:
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("scorer broke")
        return original(self, *args, **kw)

    monkeypatch.setattr(Pipeline, "decide", failing_decide)
    out = tmp_path / "o.csv"
    with pytest.raises(RuntimeError, match="scorer broke"):
        run_replay(_config(data, out, overlap=overlap, chunk_rows=200))
    summary = json.loads(Path(str(out) + ".summary.json").read_text())
    assert summary["complete"] is False
    assert len(out.read_text().splitlines()) - 1 == summary["rows_decided"] == 400


def test_a_model_that_fails_to_load_stops_the_reader(data: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelError):
        run_replay(_config(data, tmp_path / "o.csv", model_dir=tmp_path / "no-model"))
    assert not [t for t in threading.enumerate() if t.name == "replay-reader" and t.is_alive()]
