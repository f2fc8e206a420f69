"""``fraud produce`` and ``fraud consume``: bad input is a clear error, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fraud.stream.source import read_rows


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fraud", *args], capture_output=True,
                          text=True, check=False, timeout=120, env=env)


def test_consume_refuses_an_unknown_handler() -> None:
    proc = run("consume", "--handler", "no.such.module:Handler")
    assert proc.returncode == 2
    assert "cannot import no.such.module" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_consume_refuses_a_malformed_property() -> None:
    proc = run("consume", "--handler", "fraud.stream.testing:RecordTableHandler",
               "--kcl-property", "novalue")
    assert proc.returncode == 2
    assert "KEY=VALUE" in proc.stderr


def test_consume_refuses_a_missing_model_before_starting_the_daemon(tmp_path: Path) -> None:
    proc = run("consume", "--model", str(tmp_path / "nomodel"))
    assert proc.returncode == 2
    assert "--model:" in proc.stderr and "no manifest" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_consume_lists_every_problem_of_a_bad_rules_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nrules:\n  - id: a\n    when: scroe > 1\n    action: block\n")
    proc = run("consume", "--rules", str(bad))
    assert proc.returncode == 2
    assert f"{bad}:3:" in proc.stderr  # no description
    assert f"{bad}:4:" in proc.stderr and "did you mean 'score'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_consume_takes_every_pipeline_setting_as_a_flag() -> None:
    proc = run("consume", "--help")
    for flag in ("--model", "--rules", "--rules-reload-seconds", "--scorer",
                 "--sagemaker-endpoint", "--archive-uri", "--alert-topic", "--history-k"):
        assert flag in proc.stdout


def test_produce_names_a_missing_file(tmp_path: Path) -> None:
    proc = run("produce", "--input", str(tmp_path / "nope.csv"),
               "--kinesis-endpoint-url", "http://127.0.0.1:9")
    assert proc.returncode == 2
    assert "nope.csv: no such file" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_rows_keep_ids_as_strings_and_say_where_they_came_from(tmp_path: Path) -> None:
    path = tmp_path / "tx.csv"
    path.write_text("transaction_id,user_id,amount\n001,007,1.5\n002,008,2\n")
    rows = list(read_rows(path))
    assert rows == [("tx.csv:2", {"transaction_id": "001", "user_id": "007", "amount": 1.5}),
                    ("tx.csv:3", {"transaction_id": "002", "user_id": "008", "amount": 2.0})]


def test_jsonl_and_parquet_are_read_too(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    jsonl = tmp_path / "tx.jsonl"
    jsonl.write_text('{"transaction_id": "a", "user_id": "u"}\n{"transaction_id": "b", '
                     '"user_id": "v"}\n')
    assert [p for p, _ in read_rows(jsonl)] == ["tx.jsonl:1", "tx.jsonl:2"]
    parquet = tmp_path / "tx.parquet"
    pq.write_table(pa.table({"transaction_id": ["a"], "user_id": ["u"]}), parquet)
    assert list(read_rows(parquet)) == [("tx.parquet:1", {"transaction_id": "a",
                                                          "user_id": "u"})]


def test_unknown_file_types_are_refused(tmp_path: Path) -> None:
    from fraud.errors import InputError

    path = tmp_path / "tx.xlsx"
    path.write_text("x")
    with pytest.raises(InputError, match="unknown file type"):
        list(read_rows(path))
