"""scripts/check_features.py: our windowed features against the pandas version, on a file."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import pandas as pd
import pytest

from fraud.generate import GenerateConfig, generate, write_dataset
from tests.conftest import load_script

ROOT = Path(__file__).resolve().parents[2]


def _script() -> ModuleType:
    return load_script("check_features.py")


@pytest.fixture(scope="module")
def foreign(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated file dressed as someone else's: other column names, no label times."""
    src = tmp_path_factory.mktemp("check") / "tx.csv"
    write_dataset(generate(GenerateConfig(users=150, terminals=40, days=20,
                                          start=datetime(2024, 3, 1, tzinfo=UTC), seed=3)),
                  src)
    df = pd.read_csv(src)
    out = src.with_name("foreign.csv")
    df.rename(columns={"transaction_id": "TX_ID", "timestamp": "TX_DATETIME",
                       "user_id": "CUSTOMER_ID", "terminal_id": "TERMINAL_ID",
                       "amount": "TX_AMOUNT", "is_fraud": "TX_FRAUD"}
              )[["TX_ID", "TX_DATETIME", "CUSTOMER_ID", "TERMINAL_ID", "TX_AMOUNT",
                 "TX_FRAUD"]].to_csv(out, index=False)
    return out


MAP = ("transaction_id=TX_ID,timestamp=TX_DATETIME,user_id=CUSTOMER_ID,"
       "terminal_id=TERMINAL_ID,amount=TX_AMOUNT,is_fraud=TX_FRAUD")


def test_ours_and_pandas_agree_on_a_foreign_file(
        foreign: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _script().main(["--input", str(foreign), "--columns", MAP]) == 0
    out = capsys.readouterr().out
    assert "| terminal_fraud_rate_30d | " in out and out.rstrip().endswith("agree")


def test_a_wrong_feature_is_reported(foreign: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    script = _script()
    real = script.compute_features

    def off_by_one(*args: object, **kw: object) -> object:
        matrix = real(*args, **kw)
        matrix.values[5, matrix.names.index("user_tx_count_7d")] += 1
        return matrix

    monkeypatch.setattr(script, "compute_features", off_by_one)
    assert script.main(["--input", str(foreign), "--columns", MAP]) == 1
    assert "| user_tx_count_7d | " in capsys.readouterr().out


def test_a_missing_column_exits_2_with_its_name(
        foreign: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        _script().main(["--input", str(foreign), "--columns", MAP.replace("TX_ID", "NOPE")])
    assert stop.value.code == 2
    assert "NOPE" in capsys.readouterr().err
