"""The named features against an independent pandas / plain-Python computation.

A few hundred shuffled rows with ties, labels with and without a label time: the whole-file
helper must agree with groupby + time-based rolling (user windows) and a direct count of the
delayed terminal windows, row for row, in input order.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fraud.features import FeatureConfig, compute_features
from fraud.schema.batch import MISSING_TIME, TransactionBatch

DAY = 86_400_000_000


def make_batch(seed: int, n: int = 400) -> TransactionBatch:
    rng = np.random.default_rng(seed)
    ts = 1_690_000_000_000_000 + rng.integers(0, 60 * DAY, n)
    ts[10:20] = ts[5]  # ties across users and within one
    users = rng.choice([f"C{i}" for i in range(12)], n)
    users[10:14] = users[5]
    fraud = rng.choice([-1, 0, 0, 0, 1], n)
    lag = rng.integers(0, 20 * DAY, n)
    label_time = np.where(rng.random(n) < 0.5, ts + lag, MISSING_TIME)
    return TransactionBatch.from_columns(
        transaction_id=[f"T{i}" for i in range(n)], timestamp_us=ts, user_id=users,
        terminal_id=rng.choice([f"M{i}" for i in range(8)], n),
        amount=np.round(rng.gamma(2.0, 40.0, n), 2), is_fraud=fraud, label_time_us=label_time,
    )


def pandas_user_windows(batch: TransactionBatch) -> pd.DataFrame:
    df = pd.DataFrame({"user": batch.user_id, "amount": batch.amount,
                       "dt": pd.to_datetime(batch.timestamp_us, unit="us")})
    df = df.sort_values("dt", kind="stable")
    out = pd.DataFrame(index=df.index, dtype=float)
    for _, group in df.groupby("user", sort=False):
        series = pd.Series(group["amount"].to_numpy(), index=group["dt"].to_numpy())
        for w in (1, 7, 30):
            roll = series.rolling(f"{w}D")
            out.loc[group.index, f"user_tx_count_{w}d"] = roll.count().to_numpy()
            out.loc[group.index, f"user_amount_mean_{w}d"] = roll.mean().to_numpy()
    return out.sort_index()


def python_terminal_windows(batch: TransactionBatch, d: int) -> dict[str, np.ndarray]:
    ts = batch.timestamp_us
    known = np.where(batch.label_time_us == MISSING_TIME, ts + d, batch.label_time_us)
    out = {f"terminal_{kind}_{w}d": np.zeros(len(batch))
           for kind in ("tx_count", "fraud_rate") for w in (1, 7, 30)}
    for i in range(len(batch)):
        for w in (1, 7, 30):
            same = batch.terminal_id == batch.terminal_id[i]
            inside = same & (ts > ts[i] - d - w * DAY) & (ts <= ts[i] - d)
            frauds = inside & (batch.is_fraud == 1) & (known <= ts[i])
            out[f"terminal_tx_count_{w}d"][i] = inside.sum()
            out[f"terminal_fraud_rate_{w}d"][i] = frauds.sum() / inside.sum() if inside.any() \
                else 0.0
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_user_windows_match_pandas_rolling(seed: int) -> None:
    batch = make_batch(seed)
    got = compute_features(batch, FeatureConfig())
    expected = pandas_user_windows(batch)
    for name in expected.columns:
        np.testing.assert_allclose(got.column(name), expected[name].to_numpy(), rtol=1e-12,
                                   err_msg=name)


@pytest.mark.parametrize(("seed", "delay"), [(1, 7.0), (2, 0.5), (3, 3.0)])
def test_terminal_windows_match_direct_count(seed: int, delay: float) -> None:
    batch = make_batch(seed)
    got = compute_features(batch, FeatureConfig(label_delay_days=delay))
    expected = python_terminal_windows(batch, round(delay * DAY))
    for name, values in expected.items():
        np.testing.assert_allclose(got.column(name), values, rtol=1e-12, err_msg=name)
    assert got.column("terminal_fraud_rate_30d").max() > 0  # the case is not vacuous


def test_calendar_features_match_pandas() -> None:
    batch = make_batch(4)
    got = compute_features(batch)
    dt = pd.to_datetime(batch.timestamp_us, unit="us")
    np.testing.assert_array_equal(got.column("is_weekend"), (dt.day_of_week >= 5).astype(float))
    np.testing.assert_array_equal(got.column("is_night"), (dt.hour <= 6).astype(float))


def test_output_is_in_input_order_and_chunks_do_not_matter() -> None:
    batch = make_batch(5)
    whole = compute_features(batch)
    chunks = [batch.take(np.arange(a, min(a + 77, len(batch))))
              for a in range(0, len(batch), 77)]
    chunked = compute_features(chunks)
    assert whole.transaction_id.tolist() == batch.transaction_id.tolist()
    assert np.array_equal(whole.values, chunked.values)
