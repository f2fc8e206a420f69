"""``fraud features``: a foreign export in, transaction_id plus every feature out, in order."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from click.testing import CliRunner

from fraud.cli.features import command
from fraud.features import FEATURE_NAMES

ROWS = [
    # TX_ID, TX_DATETIME, CUSTOMER_ID, TERMINAL_ID, TX_AMOUNT, TX_FRAUD
    ("t3", "2024-01-03 10:00:00", "c1", "m1", "30.00", "0"),
    ("t1", "2024-01-01 10:00:00", "c1", "m1", "10.00", "1"),
    ("t2", "2024-01-01 12:00:00", "c1", "m2", "20.00", "0"),
    ("t4", "2024-01-09 12:00:00", "c2", "m1", "5.00", "0"),
]
MAP = ("transaction_id=TX_ID,timestamp=TX_DATETIME,user_id=CUSTOMER_ID,"
       "terminal_id=TERMINAL_ID,amount=TX_AMOUNT,is_fraud=TX_FRAUD")


def write_input(path: Path) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["TX_ID", "TX_DATETIME", "CUSTOMER_ID", "TERMINAL_ID", "TX_AMOUNT",
                         "TX_FRAUD", "SCENARIO"])
        for row in ROWS:
            writer.writerow([*row, "x"])


def test_features_of_a_foreign_csv_in_input_order(tmp_path: Path) -> None:
    source = tmp_path / "tx.csv"
    write_input(source)
    out = tmp_path / "features.parquet"
    result = CliRunner().invoke(command, ["--input", str(source), "--output", str(out),
                                          "--columns", MAP, "--label-delay-days", "7"])
    assert result.exit_code == 0, result.output
    table = pq.read_table(out).to_pydict()
    assert list(table) == ["transaction_id", *FEATURE_NAMES]
    assert table["transaction_id"] == ["t3", "t1", "t2", "t4"]
    assert table["user_tx_count_7d"] == [3.0, 1.0, 2.0, 1.0]
    assert table["user_amount_mean_7d"] == [20.0, 10.0, 15.0, 5.0]
    # t4 (Jan 9 12:00): m1's window (t-7-1, t-7] = (Jan 1 12:00, Jan 2 12:00] is empty ...
    assert table["terminal_tx_count_1d"][3] == 0.0
    # ... and (t-7-7, t-7] holds t1 (fraud, known since Jan 8 10:00): rate 1.
    assert table["terminal_tx_count_7d"][3] == 1.0
    assert table["terminal_fraud_rate_7d"][3] == 1.0


def test_csv_output_and_label_delay_flag(tmp_path: Path) -> None:
    source = tmp_path / "tx.csv"
    write_input(source)
    out = tmp_path / "features.csv"
    result = CliRunner().invoke(command, ["--input", str(source), "--output", str(out),
                                          "--columns", MAP, "--label-delay-days", "0"])
    assert result.exit_code == 0, result.output
    with out.open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["transaction_id"] for r in rows] == ["t3", "t1", "t2", "t4"]
    # d = 0: t3's 30-day terminal window (m1) holds t1 and t3 itself; t1's label is known.
    assert float(rows[0]["terminal_tx_count_30d"]) == 2.0
    assert np.isclose(float(rows[0]["terminal_fraud_rate_30d"]), 0.5)


def test_bad_input_is_a_clear_error_without_traceback(tmp_path: Path) -> None:
    missing = subprocess.run(
        [sys.executable, "-m", "fraud", "features", "--input", str(tmp_path / "nope.csv"),
         "--output", str(tmp_path / "o.csv")], capture_output=True, text=True, check=False)
    assert missing.returncode == 2
    assert "nope.csv" in missing.stderr and "Traceback" not in missing.stderr
    source = tmp_path / "tx.csv"
    write_input(source)
    bad_out = subprocess.run(
        [sys.executable, "-m", "fraud", "features", "--input", str(source), "--columns", MAP,
         "--output", str(tmp_path / "o.xlsx")], capture_output=True, text=True, check=False)
    assert bad_out.returncode == 2
    assert "o.xlsx" in bad_out.stderr and "Traceback" not in bad_out.stderr


def test_rejected_rows_are_listed_and_left_out(tmp_path: Path) -> None:
    source = tmp_path / "tx.csv"
    write_input(source)
    with source.open("a", newline="") as handle:
        csv.writer(handle).writerow(["t5", "2024-01-04 10:00:00", "c1", "m1", "lots", "0", "x"])
    out = tmp_path / "features.csv"
    result = CliRunner().invoke(command, ["--input", str(source), "--output", str(out),
                                          "--columns", MAP])
    assert result.exit_code == 0, result.output
    assert "rejected" in result.output and "amount" in result.output
    with out.open() as handle:
        assert [r["transaction_id"] for r in csv.DictReader(handle)] == ["t3", "t1", "t2", "t4"]
    assert (tmp_path / "features.rejects.csv").exists()
