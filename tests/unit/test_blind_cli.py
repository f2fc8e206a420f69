"""Findings of a new user's walk through the CLI: rejected rows shown and named, an
unreachable endpoint or a missing stream is exit 2 in `replay --store dynamodb` and `produce`.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from fraud.cli import main
from fraud.cli.features import rejects_csv

ROOT = Path(__file__).resolve().parents[2]
MODEL = str(ROOT / "models" / "default")
RULES = str(ROOT / "rules" / "default.yaml")
DEAD = "http://127.0.0.1:1"  # nothing listens on port 1

BAD_ROWS = (
    "transaction_id,timestamp,user_id,terminal_id,amount\n"
    "t1,2024-01-01T00:00:00Z,u1,m1,10\n"
    "t2,notatime,u1,m1,10\n"
    "t3,2024-01-01T01:00:00Z,,m1,5\n"
    "t4,2024-01-01T02:00:00Z,u1,m1,abc\n"
)


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code: object = 0
    try:
        main(args)
    except SystemExit as exc:  # main exits on failure (and may on success)
        code = exc.code or 0
    out, err = capsys.readouterr()
    return (code if isinstance(code, int) else 1), out, err


@pytest.fixture()
def bad_rows(tmp_path: Path) -> Path:
    path = tmp_path / "bad.csv"
    path.write_text(BAD_ROWS, encoding="utf-8")
    return path


def test_features_rejects_file_replaces_only_the_extension() -> None:
    assert rejects_csv(Path("d/feats.v2.parquet")) == Path("d/feats.v2.rejects.csv")
    assert rejects_csv(Path("feats.csv.gz")) == Path("feats.rejects.csv")
    assert rejects_csv(Path("feats.csv")) == Path("feats.rejects.csv")


def test_features_names_its_rejects_file_and_keeps_the_value(
    bad_rows: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "feats.v2.parquet"
    code, _, err = _run(["features", "--input", str(bad_rows), "--output", str(out)], capsys)
    assert code == 0, err
    rejects = tmp_path / "feats.v2.rejects.csv"
    assert f"3 rows rejected: {rejects}" in err
    with rejects.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["position"], r["field"], r["value"]) for r in rows] == [
        ("line 3", "timestamp", "notatime"), ("line 4", "user_id", ""),
        ("line 5", "amount", "abc")]


def test_replay_lists_rejections_and_names_the_rejects_file(
    bad_rows: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "dec.csv"
    code, stdout, err = _run(["replay", "--input", str(bad_rows), "--output", str(out),
                              "--model", MODEL, "--rules", RULES], capsys)
    assert code == 0, err
    assert f"rejected: {bad_rows}: line 3: timestamp:" in err
    assert f"rejected: {bad_rows}: line 5: amount:" in err
    rejects = tmp_path / "dec.rejects.csv"
    assert f"rejects: {rejects}" in stdout and rejects.exists()
    summary = json.loads(Path(str(out) + ".summary.json").read_text())
    assert summary["rows_rejected"] == 3 and summary["rejects"] == str(rejects)
    assert "rejected_examples" not in summary


def test_replay_without_rejections_prints_no_rejects_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "good.csv"
    good.write_text(BAD_ROWS.splitlines()[0] + "\n" + BAD_ROWS.splitlines()[1] + "\n")
    code, stdout, err = _run(["replay", "--input", str(good), "--output",
                              str(tmp_path / "d.csv"), "--model", MODEL, "--rules", RULES],
                             capsys)
    assert code == 0, err
    assert "rejects:" not in stdout and "rejected:" not in err


def test_replay_dynamodb_unreachable_endpoint_is_exit_2(
    bad_rows: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(["replay", "--input", str(bad_rows), "--output",
                         str(tmp_path / "d.csv"), "--model", MODEL, "--rules", RULES,
                         "--store", "dynamodb", "--endpoint-url", DEAD], capsys)
    assert code == 2
    assert f"cannot reach dynamodb at {DEAD}" in err and "fraud local up" in err
    assert "Traceback" not in err


def test_produce_unreachable_kinesis_endpoint_is_exit_2(
    bad_rows: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(["produce", "--input", str(bad_rows), "--kinesis-endpoint-url", DEAD],
                        capsys)
    assert code == 2
    assert f"cannot reach kinesis at {DEAD}" in err and "FRAUD_KINESIS_ENDPOINT_URL" in err
    assert "rejected: bad.csv: line 3" in err and "Traceback" not in err


def test_replay_compare_without_report_is_a_usage_error(
    bad_rows: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(["replay", "--input", str(bad_rows), "--output",
                         str(tmp_path / "d.csv"), "--model", MODEL, "--rules", RULES,
                         "--compare-rules", RULES], capsys)
    assert code == 2 and "need --report" in err
    assert not (tmp_path / "d.csv").exists()


def test_replay_says_when_no_report_could_be_written(
    bad_rows: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "rep"
    code, stdout, err = _run(["replay", "--input", str(bad_rows), "--output",
                              str(tmp_path / "d.csv"), "--model", MODEL, "--rules", RULES,
                              "--report", str(report), "--from", "2030-01-01"], capsys)
    assert code == 0, err
    assert "decided 0, rejected 3" in stdout
    assert f"no report written to {report}" in err and not report.exists()
    code, stdout, err = _run(["replay", "--input", str(bad_rows), "--output",
                              str(tmp_path / "d.csv"), "--model", MODEL, "--rules", RULES,
                              "--report", str(report), "--compare-rules", RULES], capsys)
    assert code == 0, err
    assert f"report: {report}/summary.md" in stdout and "carry no labels" in err
    assert "candidate: 0 newly blocked, 0 no longer blocked" in stdout
