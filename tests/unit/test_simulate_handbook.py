"""scripts/simulate_handbook.py: a Handbook-shaped file the CLI reads with --columns."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd

from fraud.schema.columns import ColumnMap
from fraud.schema.files import read_transactions
from tests.conftest import load_script

ROOT = Path(__file__).resolve().parents[2]
HB = ("transaction_id=TRANSACTION_ID,timestamp=TX_DATETIME,user_id=CUSTOMER_ID,"
      "terminal_id=TERMINAL_ID,amount=TX_AMOUNT,is_fraud=TX_FRAUD")


def _script() -> ModuleType:
    return load_script("simulate_handbook.py")


def test_the_three_fraud_kinds_follow_the_recipe() -> None:
    df = _script().simulate(customers=300, terminals=600, days=40, seed=3)
    assert list(df.columns) == ["TRANSACTION_ID", "TX_DATETIME", "CUSTOMER_ID", "TERMINAL_ID",
                                "TX_AMOUNT", "TX_TIME_SECONDS", "TX_TIME_DAYS", "TX_FRAUD",
                                "TX_FRAUD_SCENARIO"]
    assert df.TX_TIME_SECONDS.is_monotonic_increasing
    scenario = df.TX_FRAUD_SCENARIO.to_numpy()
    assert set(np.unique(scenario)) == {0, 1, 2, 3}
    assert (df.TX_FRAUD.to_numpy() == (scenario > 0)).all()
    assert (df.TX_AMOUNT[scenario == 1] > 220).all()  # kind 1: only amounts over 220
    assert (df.TX_AMOUNT[scenario == 0] <= 220).all()  # no genuine row over 220
    assert df.TERMINAL_ID[scenario == 2].nunique() <= 2 * 40  # two terminals a day


def test_same_seed_same_rows_and_the_cli_reads_it(tmp_path: Path) -> None:
    script = _script()
    a = script.simulate(customers=100, terminals=200, days=10, seed=1)
    b = script.simulate(customers=100, terminals=200, days=10, seed=1)
    pd.testing.assert_frame_equal(a, b)
    out = tmp_path / "hb.csv"
    script.main(["--out", str(out), "--customers", "100", "--terminals", "200", "--days", "10",
                 "--seed", "1"])
    results = list(read_transactions(out, columns=ColumnMap.parse(HB)))
    assert not any(r.rejections for r in results)
    assert sum(len(r.batch) for r in results) == len(a)
    assert sum(int(r.batch.is_fraud.sum()) for r in results) == int(a.TX_FRAUD.sum())
