"""Replay: the consumer's pipeline over a file, deterministic, chunk-size blind, with a report."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from fraud.cli import cli, main
from fraud.generate import GenerateConfig, generate, write_dataset
from fraud.replay import ReplayConfig, rejects_path, run_replay

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "default"
RULES = str(ROOT / "rules" / "default.yaml")
START = datetime(2024, 3, 1, tzinfo=UTC)
DAY_US = 86_400_000_000
DECIDE_FROM = int(START.timestamp() * 1_000_000) + 6 * DAY_US


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("replay") / "tx.csv"
    write_dataset(generate(GenerateConfig(users=500, terminals=80, days=8, start=START, seed=5)),
                  path)
    return path


def _config(data: Path, out: Path, **kw: object) -> ReplayConfig:
    base = ReplayConfig(input=str(data), output=out, model_dir=MODEL, rules_path=RULES,
                        start_us=DECIDE_FROM, chunk_rows=1000)
    return replace(base, **kw)  # type: ignore[arg-type]


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_same_input_same_bytes_whatever_the_chunk_size(data: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    run_replay(_config(data, a))
    run_replay(_config(data, b, chunk_rows=777))
    assert a.read_bytes() == b.read_bytes()


def test_output_rows_are_the_decided_range_in_input_order(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    summary = run_replay(_config(data, out, end_us=DECIDE_FROM + DAY_US))
    rows = _rows(out)
    assert summary.complete and summary.rows_decided == len(rows) > 0
    assert list(rows[0]) == ["transaction_id", "timestamp", "user_id", "terminal_id", "amount",
                             "score", "action", "rules", "reasons", "model_version",
                             "rules_version", "model_reasons"]
    assert all("2024-03-07" <= r["timestamp"] < "2024-03-08" for r in rows)
    source = [r["transaction_id"] for r in _rows(data)]
    positions = [source.index(r["transaction_id"]) for r in rows]
    assert positions == sorted(positions)
    assert {r["action"] for r in rows} <= {"", "block", "alert", "flag"}
    assert {r["model_version"] for r in rows} == {summary.model_version}
    json.loads(Path(str(out) + ".summary.json").read_text())


def test_actions_carry_their_rules_and_reasons(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    run_replay(_config(data, out, start_us=None))
    acted = [r for r in _rows(out) if r["action"]]
    assert acted, "the default rules should act on some of a week of injected fraud"
    assert all(r["rules"] and r["reasons"] for r in acted)
    assert any(r["model_reasons"] for r in acted)


def test_bad_rows_go_to_the_rejects_file(data: Path, tmp_path: Path) -> None:
    lines = data.read_text().splitlines()
    bad = tmp_path / "bad.csv"
    broken = lines[5].split(",")
    broken[4] = "-3"  # a negative amount
    bad.write_text("\n".join([*lines[:5], ",".join(broken), *lines[6:]]) + "\n")
    out = tmp_path / "out.csv"
    summary = run_replay(_config(bad, out))
    assert summary.rows_rejected == 1
    (reject,) = _rows(rejects_path(out))
    assert reject["position"] == "line 6" and reject["field"] == "amount"


def test_report_and_candidate_comparison(data: Path, tmp_path: Path) -> None:
    strict = tmp_path / "strict.yaml"
    strict.write_text((ROOT / "rules" / "default.yaml").read_text())
    report = tmp_path / "report"
    summary = run_replay(_config(data, tmp_path / "o.csv", report_dir=report,
                                 compare_rules=str(ROOT / "rules" / "strict.yaml")))
    body = json.loads((report / "report.json").read_text())
    assert body["frauds"] > 0 and 0.5 < body["metrics"]["auc_roc"] <= 1.0
    assert {r["rule"] for r in body["current"]["rules"]} >= {"block_high_score"}
    assert "difference" in body and "newly_blocked" in body["difference"]
    assert (report / "pr_curve.png").stat().st_size > 0
    assert (report / "score_distribution.png").stat().st_size > 0
    assert "## Difference" in (report / "summary.md").read_text()
    assert summary.complete


def test_interrupt_leaves_a_partial_output_that_says_so(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "partial.csv"
    seen: list[int] = []

    def stop_after_two_chunks(rows: int) -> None:
        seen.append(rows)
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_replay(_config(data, out, start_us=None), progress=stop_after_two_chunks)
    summary = json.loads(Path(str(out) + ".summary.json").read_text())
    assert summary["complete"] is False
    assert len(_rows(out)) == summary["rows_decided"] == 2000


def test_cli_errors_are_usage_errors(data: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    base = ["replay", "--input", str(data), "--output", str(tmp_path / "o.csv")]
    result = runner.invoke(cli, [*base, "--from", "2024-02-30"])
    assert result.exit_code == 2 and "no such date" in result.output
    result = runner.invoke(cli, [*base, "--from", "2024-03-05", "--to", "2024-03-01"])
    assert result.exit_code == 2


def test_cli_missing_input_exits_2_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["replay", "--input", str(tmp_path / "nope.csv"), "--output",
              str(tmp_path / "o.csv")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "nope.csv" in err and "Traceback" not in err


def test_cli_without_overlap_writes_the_same_bytes(data: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    outs = [tmp_path / "threaded.csv", tmp_path / "serial.csv"]
    for out, flag in zip(outs, ["--overlap", "--no-overlap"], strict=True):
        result = runner.invoke(cli, ["replay", "--input", str(data), "--output", str(out),
                                     "--from", "2024-03-07", "--chunk-rows", "900", flag,
                                     "--model", str(MODEL), "--rules", RULES])
        assert result.exit_code == 0, result.output
    assert outs[0].read_bytes() == outs[1].read_bytes() and len(_rows(outs[0])) > 0


def test_a_label_delay_other_than_the_models_is_warned_about(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_replay(_config(data, tmp_path / "same.csv", end_us=DECIDE_FROM + DAY_US))
    assert "label_delay_mismatch" not in capsys.readouterr().err
    run_replay(_config(data, tmp_path / "other.csv", end_us=DECIDE_FROM + DAY_US,
                       label_delay_days=30.0))
    err = capsys.readouterr().err
    assert "label_delay_mismatch" in err and "features are computed with 30" in err
