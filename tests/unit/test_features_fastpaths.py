"""The kernels' fast paths against the row-by-row reference, where the small streams of
test_features_kernels.py rarely go: users with many terminals and devices (hash-table
collisions and long probe chains), bursts that move a window cursor more than four steps at
once, refunds (negative amounts: the prefix sums wrap around as unsigned words), terminals
with store events and without, and the scratch layout's alignment.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fraud.features import FEATURE_NAMES, FeatureConfig, FeatureEngine, InMemoryStore, kernels
from fraud.features.reference import reference_features
from fraud.schema.batch import TransactionBatch

HOUR = 3_600_000_000
DAY = 24 * HOUR
# Bursts (many rows in a minute), then gaps of hours to weeks: after a gap every cursor
# jumps over a whole burst at once. Negative steps are late arrivals.
STEPS = st.sampled_from([0, 1, 30_000_000, 30_000_000, 30_000_000, HOUR, 20 * HOUR,
                         2 * DAY, 9 * DAY, 35 * DAY, -3 * HOUR])


@st.composite
def busy_streams(draw: st.DrawFn) -> tuple[TransactionBatch, list[int]]:
    n = draw(st.integers(20, 160))
    steps = draw(st.lists(STEPS, min_size=n, max_size=n))
    ts = 1_700_000_000_000_000 + np.cumsum(np.asarray(steps, dtype=np.int64))
    n_terms = draw(st.sampled_from([3, 40, 150]))
    n_devs = draw(st.sampled_from([1, 12, 60]))
    idx = st.integers(0, 10**6)
    users = [f"u{v % 2}" for v in draw(st.lists(idx, min_size=n, max_size=n))]
    terms = [f"t{v % n_terms}" for v in draw(st.lists(idx, min_size=n, max_size=n))]
    devs = ["" if v % 5 == 0 else f"d{v % n_devs}"
            for v in draw(st.lists(idx, min_size=n, max_size=n))]
    amounts = draw(st.lists(st.sampled_from([0.1, 0.2, 0.3, 12.5, 99.99, 1e9 + 0.01, -0.1,
                                             -40.25, -1e9]),
                            min_size=n, max_size=n))
    fraud = draw(st.lists(st.sampled_from([0, 0, 0, 1]), min_size=n, max_size=n))
    batch = TransactionBatch.from_columns(
        transaction_id=[f"x{i}" for i in range(n)], timestamp_us=ts, user_id=users,
        terminal_id=terms, amount=amounts, device_id=devs, is_fraud=fraud)
    cuts = sorted(set(draw(st.lists(st.integers(1, n - 1), max_size=4))))
    return batch, cuts


def run_batches(batch: TransactionBatch, cuts: list[int], config: FeatureConfig) -> np.ndarray:
    engine = FeatureEngine(config)
    store = InMemoryStore()
    bounds = [0, *cuts, len(batch)]
    return np.vstack([engine.extract(batch.take(np.arange(a, b)), store).values
                      for a, b in itertools.pairwise(bounds)])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(busy_streams(), st.sampled_from([2, 256]), st.sampled_from([5, 4096]),
       st.sampled_from([0.0, 1.0]))
def test_busy_users_match_reference(case: tuple[TransactionBatch, list[int]], k: int,
                                    cap: int, delay: float) -> None:
    batch, cuts = case
    config = FeatureConfig(label_delay_days=delay, history_k=k, window_cap=cap)
    expected = reference_features(batch, config)
    got = run_batches(batch, cuts, config)
    for j, name in enumerate(FEATURE_NAMES):
        if name.startswith(("user_", "terminal_")):
            np.testing.assert_allclose(got[:, j], expected[:, j], rtol=1e-12, atol=1e-9,
                                       err_msg=name)
    # Counts, flags and window means are exact: bit for bit, and the same whole or split.
    exact = [j for j, name in enumerate(FEATURE_NAMES)
             if name.startswith(("user_tx_count_", "user_amount_mean_", "terminal_tx_count_",
                                 "user_terminal_seen", "user_distinct", "user_new_device"))]
    np.testing.assert_array_equal(got[:, exact], expected[:, exact])
    assert np.array_equal(got, run_batches(batch, [], config))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 30), min_size=1, max_size=40).map(sorted),
       st.integers(-2, 33), st.data())
def test_cursor_advance_matches_a_search(ts: list[int], bound: int, data: st.DataObject) -> None:
    arr = np.asarray(ts, dtype=np.int64)
    last = len(arr) - 1
    cap = data.draw(st.integers(0, len(arr)))
    answer = min(int(np.searchsorted(arr, bound, side="right")), cap)
    x = data.draw(st.integers(0, answer))  # a cursor never passes its answer
    assert kernels._advance(arr, x, last, bound, cap) == answer


def test_scratch_rows_start_on_cache_lines() -> None:
    for dtype in (np.float64, np.int32):
        for rows in (1, 3, 1000):
            res = kernels.aligned_rows(rows, 8, dtype)
            assert res.shape == (rows, 8) and res.dtype == dtype
            assert res.flags.c_contiguous and res.ctypes.data % 64 == 0


def test_kernels_refuse_other_window_counts() -> None:
    # The packed scratch has room for three windows: anything else is refused, not garbled.
    one = np.zeros(1, dtype=np.int64)
    with pytest.raises(ValueError, match="three windows"):
        kernels.user_kernel(np.array([0, 1]), one.copy(), one.copy(), np.ones(1),
                            np.zeros(1, dtype=np.uint64), np.zeros(1, dtype=np.uint64),
                            np.ones(1), np.ones(1), one.copy(), one.copy(), one.copy(),
                            np.zeros(1), one.copy(), np.zeros(1), np.zeros(1), 4, 8,
                            np.array([1, 2], dtype=np.int64), np.zeros((2, 12)),
                            np.arange(12, dtype=np.int64), kernels.aligned_rows(1, 8, np.float64))
