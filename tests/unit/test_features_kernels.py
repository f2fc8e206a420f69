"""The numba kernels agree with their plain-Python twins on random streams.

Streams have ties, gaps, long idle periods, out-of-order arrivals, labels with and without a
label time, and are cut into batches at random points: the batched engine must give the very
same features as the row-by-row reference over the whole stream.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fraud.features import FEATURE_NAMES, FeatureConfig, FeatureEngine, InMemoryStore, kernels
from fraud.features.fixedpoint import window_sum
from fraud.features.ids import stable_hash
from fraud.features.reference import (
    factorize_reference,
    fnv1a_reference,
    group_by_code_reference,
    reference_features,
    segment_count_le_reference,
    sort_segments_reference,
    window_sum_reference,
)
from fraud.schema.batch import MISSING_TIME, TransactionBatch

HOUR = 3_600_000_000
DAY = 24 * HOUR
# Amounts: ordinary ones, ones whose float sums round differently in every order, one finer
# than the 2**-64 grid, and (rarely) wild ones that switch a window to the float fallback.
AMOUNTS = st.one_of(
    st.sampled_from([0.0, 0.1, 0.2, 0.3, 1.5, 10.0, 99.99, 1234.5, 1e9 + 0.01, 3e-22]),
    st.floats(0.0, 1e6, allow_nan=False, allow_infinity=False),
    st.sampled_from([2.0**40, 1e15, float("inf")]),
)
# Steps between consecutive arrivals: ties, small gaps, hours, days and long idle periods;
# negative steps are out-of-order arrivals.
STEPS = st.sampled_from([0, 0, 1, 60_000_000, HOUR, 5 * HOUR, DAY, 3 * DAY, 8 * DAY,
                         40 * DAY, -HOUR, -2 * DAY, -10 * DAY])


@st.composite
def streams(draw: st.DrawFn, max_rows: int = 60) -> tuple[TransactionBatch, list[int]]:
    n = draw(st.integers(1, max_rows))
    steps = draw(st.lists(STEPS, min_size=n, max_size=n))
    ts = 1_700_000_000_000_000 + np.cumsum(np.asarray(steps, dtype=np.int64))
    users = draw(st.lists(st.sampled_from(["u1", "u2", "u3"]), min_size=n, max_size=n))
    terms = draw(st.lists(st.sampled_from(["t1", "t2", "t3", "t4"]), min_size=n, max_size=n))
    devices = draw(st.lists(st.sampled_from(["", "d1", "d2"]), min_size=n, max_size=n))
    amounts = draw(st.lists(AMOUNTS, min_size=n, max_size=n))
    fraud = draw(st.lists(st.sampled_from([-1, 0, 1, 1]), min_size=n, max_size=n))
    lag = draw(st.lists(st.sampled_from([None, 0, HOUR, 2 * DAY, 20 * DAY]), min_size=n,
                        max_size=n))
    located = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    label_time = [MISSING_TIME if g is None else int(t) + g for t, g in zip(ts, lag, strict=True)]
    batch = TransactionBatch.from_columns(
        transaction_id=[f"x{i}" for i in range(n)], timestamp_us=ts, user_id=users,
        terminal_id=terms, amount=amounts, device_id=devices,
        lat=[45.0 + i * 0.01 if ok else np.nan for i, ok in enumerate(located)],
        lon=[7.0 - i * 0.02 if ok else np.nan for i, ok in enumerate(located)],
        is_fraud=fraud, label_time_us=label_time,
    )
    cuts = sorted(set(draw(st.lists(st.integers(1, max(1, n - 1)), max_size=5))))
    return batch, [c for c in cuts if 0 < c < n]


def run_batches(batch: TransactionBatch, cuts: list[int], config: FeatureConfig) -> np.ndarray:
    engine = FeatureEngine(config)
    store = InMemoryStore()
    bounds = [0, *cuts, len(batch)]
    parts = [engine.extract(batch.take(np.arange(a, b)), store).values
             for a, b in itertools.pairwise(bounds)]
    return np.vstack(parts)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams(), st.sampled_from([1, 2, 3, 256]), st.sampled_from([1, 3, 4096]),
       st.sampled_from([0.0, 1.0, 7.0]))
def test_batched_engine_matches_reference(
    case: tuple[TransactionBatch, list[int]], k: int, cap: int, delay: float
) -> None:
    batch, cuts = case
    config = FeatureConfig(label_delay_days=delay, history_k=k, window_cap=cap)
    expected = reference_features(batch, config)
    got = run_batches(batch, cuts, config)
    for j, name in enumerate(FEATURE_NAMES):
        np.testing.assert_allclose(got[:, j], expected[:, j], rtol=1e-12, atol=1e-9,
                                   err_msg=name)
    # The window sums are exact by definition, so counts and means agree bit for bit.
    for j, name in enumerate(FEATURE_NAMES):
        if name.startswith(("user_tx_count_", "user_amount_mean_")):
            np.testing.assert_array_equal(got[:, j], expected[:, j], err_msg=name)


@settings(max_examples=40, deadline=None)
@given(streams(max_rows=40))
def test_any_split_gives_bit_identical_features(case: tuple[TransactionBatch, list[int]]) -> None:
    batch, cuts = case
    config = FeatureConfig(history_k=4, window_cap=3)
    whole = run_batches(batch, [], config)
    split = run_batches(batch, cuts, config)
    one_by_one = run_batches(batch, list(range(1, len(batch))), config)
    assert np.array_equal(whole, split, equal_nan=True)  # inf amounts give NaN ratios
    assert np.array_equal(whole, one_by_one, equal_nan=True)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(-5, 5), max_size=200))
def test_factorize_matches_reference(keys: list[int]) -> None:
    arr = np.asarray(keys, dtype=np.int64)
    codes, first = kernels.factorize_int64(arr)
    ref_codes, ref_first = factorize_reference(arr)
    assert codes.tolist() == ref_codes.tolist()
    assert first.tolist() == ref_first.tolist()


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 6)), max_size=200))
def test_grouping_kernels_match_reference(rows: list[tuple[int, int]]) -> None:
    codes = np.asarray([r[0] for r in rows], dtype=np.int64)
    times = np.asarray([r[1] for r in rows], dtype=np.int64)
    for got, ref in ((kernels.group_by_code(codes, 5), group_by_code_reference(codes, 5)),
                     (kernels.sort_segments(codes, times, 5),
                      sort_segments_reference(codes, times, 5))):
        assert got[0].tolist() == ref[0].tolist()
        assert got[1].tolist() == ref[1].tolist()
    order, offsets = sort_segments_reference(codes, times, 5)
    queries = np.asarray([-1, 0, 1, 2, 3, 4] * 2, dtype=np.int64)
    t = np.asarray([3, 0, 6, 2, 5, 7, 1, 4, 0, 3, 6, 2], dtype=np.int64)
    assert kernels.segment_count_le(offsets, times[order], queries, t).tolist() == \
        segment_count_le_reference(offsets, times[order], queries, t).tolist()


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(max_size=12), max_size=30))
def test_stable_hash_matches_reference(values: list[str]) -> None:
    values = [v.replace("\x00", "") for v in values]
    got = stable_hash(np.asarray(values, dtype=object)).tolist()
    assert got == [fnv1a_reference(v) for v in values]


def test_stable_hash_is_fixed_across_processes() -> None:
    # A pinned value: stored state depends on it never changing.
    assert fnv1a_reference("terminal-1") == int(
        stable_hash(np.asarray(["terminal-1"], dtype=object))[0])
    assert fnv1a_reference("terminal-1") == 0x5594235F81B6BDCD


@pytest.mark.parametrize("cap", [1, 3])
def test_windows_beyond_the_cap_are_what_the_docs_say(cap: int) -> None:
    # Five events within a day: windows reach `cap` previous events, so counts saturate.
    n = 5
    batch = TransactionBatch.from_columns(
        transaction_id=[f"x{i}" for i in range(n)],
        timestamp_us=[1_700_000_000_000_000 + i * HOUR for i in range(n)],
        user_id=["u"] * n, terminal_id=["t"] * n, amount=[1.0, 2.0, 3.0, 4.0, 5.0])
    got = FeatureEngine(FeatureConfig(history_k=1, window_cap=cap)).extract(
        batch, InMemoryStore())
    counts = got.column("user_tx_count_1d").tolist()
    assert counts == [min(i + 1, cap + 1) for i in range(n)]


# Finite amounts of every magnitude the fixed-point sum covers, and past its range.
SUM_AMOUNTS = st.one_of(
    st.floats(-(2.0**40), 2.0**40, allow_nan=False, allow_infinity=False,
              allow_subnormal=True, exclude_max=True, exclude_min=True),
    st.floats(-1e-3, 1e-3, allow_nan=False),
    st.sampled_from([0.1, 0.7, 2.0**39, -(2.0**39), 2.0**-64, 3 * 2.0**-66]),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(SUM_AMOUNTS, max_size=40),
       st.lists(st.sampled_from([2.0**40, -(2.0**41), 1e300, float("inf"), float("nan")]),
                max_size=1))
def test_window_sum_matches_its_definition(amounts: list[float], wild: list[float]) -> None:
    values = amounts + wild
    arr = np.asarray(values, dtype=np.float64)
    got = window_sum(arr, 0, len(values))
    expected = window_sum_reference(values)
    assert got == expected or (np.isnan(got) and np.isnan(expected))


@settings(max_examples=100, deadline=None)
@given(st.lists(SUM_AMOUNTS, min_size=1, max_size=30), st.permutations(list(range(30))))
def test_window_sum_does_not_depend_on_order(amounts: list[float], perm: list[int]) -> None:
    # The property the running sums rest on: the sum is a function of the window's content.
    shuffled = [amounts[i] for i in perm if i < len(amounts)]
    a = window_sum(np.asarray(amounts), 0, len(amounts))
    b = window_sum(np.asarray(shuffled), 0, len(shuffled))
    assert a == b


def test_window_sum_is_exact_where_float_sums_are_not() -> None:
    # 0.1 + 0.2 + 0.3 is 0.6000000000000001 left to right and 0.6 right to left; the exact
    # sum of the three doubles rounds to 0.6.
    amounts = np.array([0.1, 0.2, 0.3])
    assert window_sum(amounts, 0, 3) == 0.6
    # Large and small amounts together: floats lose the small ones, the fixed point does not.
    big = np.array([2.0**39, 2.0**-30, -(2.0**39)])
    assert window_sum(big, 0, 3) == 2.0**-30
