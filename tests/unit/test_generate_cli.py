"""`fraud generate`: summary on stdout, files where promised, exit codes 0/1/2, no tracebacks."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from fraud.cli import cli
from fraud.generate import STORE_FIELDS

SMALL = ["--users", "80", "--terminals", "30", "--days", "4", "--fraud-rate", "0.05"]


def _run(args: list[str]) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["generate", *args])
    assert "Traceback" not in result.output
    return result.exit_code, result.stdout, result.stderr


def test_writes_file_stores_and_summary(tmp_path: Path) -> None:
    out = tmp_path / "tx.parquet"
    code, stdout, stderr = _run(["--out", str(out), *SMALL, "--seed", "4"])
    assert code == 0, stdout + stderr
    assert out.stat().st_size > 0
    for name in STORE_FIELDS:
        assert (tmp_path / "tx.stores" / f"{name}.jsonl").exists()
    assert "transactions:" in stdout and "frauds:" in stdout and str(out) in stdout
    assert "2024-01-0" in stdout
    assert "generate" not in stderr  # no progress bar when stderr is not a terminal


def test_stores_dir_and_start_options(tmp_path: Path) -> None:
    stores = tmp_path / "elsewhere"
    code, stdout, _ = _run(["--out", str(tmp_path / "tx.jsonl"), "--stores-dir", str(stores),
                            "--start", "2023-06-01", *SMALL])
    assert code == 0, stdout
    assert (stores / "sessions.jsonl").exists()
    assert not (tmp_path / "tx.stores").exists()
    assert "2023-06-0" in stdout


def test_same_seed_same_bytes_through_the_cli(tmp_path: Path) -> None:
    for name in ("a.csv", "b.csv"):
        assert _run(["--out", str(tmp_path / name), *SMALL, "--seed", "9"])[0] == 0
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()


@pytest.mark.parametrize(("args", "message"), [
    (["--users", "0"], "--users"),
    (["--days", "0"], "--days"),
    (["--terminals", "-3"], "--terminals"),
    (["--start", "2024-13-01"], "2024-01-01"),
    (["--start", "9999-01-01"], "year"),
    (["--fraud-rate", "0.9"], "--fraud-rate"),
    (["--seed", "-1"], "--seed"),
])
def test_bad_arguments_exit_2_with_the_reason(tmp_path: Path, args: list[str],
                                              message: str) -> None:
    code, _, stderr = _run(["--out", str(tmp_path / "x.csv"), *args])
    assert code == 2
    assert message in stderr
    assert not (tmp_path / "x.csv").exists()


def test_unknown_extension_and_missing_out_exit_2(tmp_path: Path) -> None:
    code, _, stderr = _run(["--out", str(tmp_path / "x.txt")])
    assert code == 2 and "--out" in stderr and ".csv" in stderr
    code, _, stderr = _run([])
    assert code == 2 and "--out" in stderr


def test_unwritable_destination_exits_1(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    code, _, stderr = _run(["--out", str(blocker / "tx.csv"), *SMALL])
    assert code == 1
    assert "cannot write" in stderr


def test_help_names_the_options() -> None:
    code, stdout, _ = _run(["--help"])
    assert code == 0
    for option in ("--out", "--users", "--terminals", "--days", "--start", "--seed",
                   "--stores-dir", "--fraud-rate"):
        assert option in stdout
