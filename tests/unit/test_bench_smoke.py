"""The benchmark scripts keep working: bench_replay's quick mode end to end, the runner's parsers.

No timing assertions: the figures depend on the machine; what must hold is that every row is
read, decided and written, and that the result has the shape `run_benchmarks.py` reads.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import load_script

ROOT = Path(__file__).resolve().parents[2]


def _script(name: str) -> ModuleType:
    return load_script(name)


@pytest.fixture(scope="module")
def bench_replay() -> ModuleType:
    return _script("bench_replay.py")


@pytest.fixture(scope="module")
def runner() -> ModuleType:
    return _script("run_benchmarks.py")


def test_replay_quick_mode_decides_and_writes_every_row(
    bench_replay: ModuleType, runner: ModuleType, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = bench_replay.main(["--quick", "--json", "--bench-dir", str(tmp_path)])
    assert code == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    main = result["replay"]
    assert result["quick"] is True
    assert 1_000 <= main["rows"] <= 20_000  # a few thousand rows, not a million
    assert main["rows_read"] == main["rows_decided"] == main["rows"]
    assert main["rows_rejected"] == 0
    assert sum(main["actions"].values()) == main["rows"]
    assert {"read", "features", "support", "score", "rules", "write"} <= set(main["stage_seconds"])
    assert all(v >= 0 for v in main["stage_seconds"].values())
    assert main["peak_rss_mb"] > 0 and main["rows_per_second"] > 0
    with Path(main["output"]).open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == main["rows"]
    assert rows[0]["transaction_id"] and rows[0]["model_version"] == main["model_version"]
    # The data set is cached: a second run reuses the file instead of generating it again.
    cached = sorted(p.name for p in tmp_path.glob("replay-u300-*.parquet"))
    assert cached == [Path(main["input"]).name]
    # What run_benchmarks.py reads from this output.
    assert "tx/s" in runner._replay_headline(result)
    text = bench_replay.markdown(result, "bench_replay.py --quick")
    assert "| read |" in text and f"{main['rows']:,} transactions" in text


def test_replay_refuses_bad_sizes(bench_replay: ModuleType, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_replay.main(["--users", "0", "--bench-dir", str(tmp_path)]) == 2
    assert "--users" in capsys.readouterr().err


def test_record_replaces_only_its_own_block(bench_replay: ModuleType, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    page = docs / "BENCHMARKS.md"
    page.write_text("# Benchmarks\n\n## Features\n\nkeep me\n", encoding="utf-8")
    monkeypatch.setattr(bench_replay, "ROOT", tmp_path)
    bench_replay.record("first")
    bench_replay.record("second")
    text = page.read_text(encoding="utf-8")
    assert "keep me" in text and "second" in text and "first" not in text
    assert text.count(bench_replay.BEGIN) == 1


def test_runner_parses_each_script_output(runner: ModuleType) -> None:
    table = ("intro\n\n| what | wall s | M rows/s (wall) | M rows/s (CPU) |\n|---|---:|---:|---:|\n"
             "| ours: every feature, `FeatureEngine.extract` (x) | 0.6 | 1.52 | 1.60 |\n\nend")
    rows = runner._markdown_rows(table)
    assert rows[0]["wall s"] == "0.6"
    assert "1.52 M rows/s" in runner._features_headline(rows)
    ms = runner._ms_lines("model: x\nscore 500 rows                         1.25 ms\n"
                          "score 100k rows                      600.00 ms\n")
    assert ms == {"score 500 rows": 1.25, "score 100k rows": 600.0}
    assert runner._last_json('noise\n{"a": 1}\n') == {"a": 1}
    with pytest.raises(ValueError, match="no JSON"):
        runner._last_json("nothing here")
    with pytest.raises(ValueError, match="ms"):
        runner._ms_lines("no figures")
