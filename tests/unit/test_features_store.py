"""Feature state: the user record's bytes, versioned writes, set-union terminal state, labels."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fraud.errors import StaleWriteError, StoreError
from fraud.features import (
    FeatureConfig,
    FeatureEngine,
    InMemoryStore,
    LabelBatch,
    StateStore,
    UserState,
    event_element,
    label_element,
)
from fraud.schema.batch import MISSING_TIME, TransactionBatch

DAY = 86_400_000_000
T0 = 1_700_000_000_000_000


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2**62), st.floats(allow_nan=False, width=64),
                          st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1)), max_size=20),
       st.integers(0, 10**9), st.floats(allow_nan=False), st.integers(0, 10**9))
def test_user_state_round_trips_through_bytes(
    events: list[tuple[int, float, int, int]], count: int, total: float, loc: int
) -> None:
    state = UserState(
        np.asarray([e[0] for e in events], dtype=np.int64),
        np.asarray([e[1] for e in events], dtype=np.float64),
        np.asarray([e[2] for e in events], dtype=np.uint64),
        np.asarray([e[3] for e in events], dtype=np.uint64),
        np.asarray([e[2] for e in events], dtype=np.uint64),
        count, total, loc, 45.5, -7.25,
    )
    data = state.encode()
    assert data[0] == 1 and len(data) == 45 + 40 * len(events)
    back = UserState.decode(data, version=3)
    assert back.version == 3
    for name in ("ts", "amount", "terminal", "device", "tx"):
        assert np.array_equal(getattr(back, name), getattr(state, name))
        assert getattr(back, name).dtype == getattr(state, name).dtype
    assert (back.count, back.amount_sum, back.loc_count, back.lat_sum, back.lon_sum) == (
        count, total, loc, 45.5, -7.25)


@pytest.mark.parametrize("data", [b"", b"\x09" + bytes(60), UserState().encode()[:-1] + b"x"
                                  + bytes(3)])
def test_corrupt_user_state_is_a_store_error(data: bytes) -> None:
    with pytest.raises(StoreError, match="user state"):
        UserState.decode(data)


def test_user_writes_are_versioned() -> None:
    store = InMemoryStore()
    assert isinstance(store, StateStore)
    store.save_users({"u": UserState()})
    loaded = store.load_users(["u", "nobody"])
    assert list(loaded) == ["u"] and loaded["u"].version == 1
    store.save_users({"u": loaded["u"]})
    with pytest.raises(StaleWriteError, match="'u'"):
        store.save_users({"u": loaded["u"]})  # based on version 1; the store is at 2


def test_terminal_state_is_a_set_union() -> None:
    store = InMemoryStore()
    ids = np.asarray(["m1", "m1", "m2"], dtype=object)
    ts = np.asarray([T0, T0, T0 + 5], dtype=np.int64)
    hashes = np.asarray([1, 2, 3], dtype=np.uint64)
    store.add_terminal_events(ids, ts, hashes)
    store.add_terminal_events(ids, ts, hashes)  # redelivery adds nothing
    snap = store.load_terminals(["m1", "m2", "m3"], T0, T0 + 10)
    assert sorted(zip(snap.event_terminal.tolist(), snap.event_hash.tolist(),
                      strict=True)) == [(0, 1), (0, 2), (1, 3)]
    assert len(store.load_terminals(["m1"], T0 + 1, T0 + 10).event_ts) == 0


def test_dynamodb_elements_fit_in_38_digits_and_keep_order() -> None:
    big_ts = 2**53 - 1
    assert len(str(event_element(big_ts, 2**64 - 1))) <= 38
    assert len(str(label_element(big_ts, 2**64 - 1, big_ts + 10**17))) <= 38
    assert event_element(T0, 5) < event_element(T0 + 1, 0)
    assert event_element(T0, 5) != event_element(T0, 6)


def batch_of(rows: list[tuple[str, int, str]], **extra: object) -> TransactionBatch:
    return TransactionBatch.from_columns(
        transaction_id=[r[0] for r in rows], timestamp_us=[r[1] for r in rows],
        user_id=["u" + r[0] for r in rows], terminal_id=[r[2] for r in rows],
        amount=[10.0] * len(rows), **extra)


def test_live_labels_count_only_from_their_label_time() -> None:
    engine = FeatureEngine(FeatureConfig(label_delay_days=7))
    store = InMemoryStore()
    engine.extract(batch_of([("a", T0 + DAY // 2, "m")]), store)
    sent = engine.apply_labels(LabelBatch.from_columns(
        ["a", "zz"], ["m", "m"], [T0 + DAY // 2, T0], [1, 0], [T0 + 10 * DAY, MISSING_TIME]),
        store)
    assert sent == 1
    rates = [engine.extract(batch_of([(tx, T0 + days * DAY // 2, "m")]), store)
             .column("terminal_fraud_rate_7d")[0]
             for tx, days in (("b", 16), ("c", 19), ("d", 21))]
    assert rates == [0.0, 0.0, 1.0]  # only d (day 10.5) is past the label time (day 10)


def test_redelivered_batch_does_not_double_count_terminals() -> None:
    engine = FeatureEngine(FeatureConfig(label_delay_days=1))
    store = InMemoryStore()
    first = batch_of([("a", T0, "m"), ("b", T0 + 1, "m")], is_fraud=[1, 0])
    engine.extract(first, store)
    engine.extract(first, store)
    later = engine.extract(batch_of([("c", T0 + 2 * DAY, "m")]), store)
    assert later.column("terminal_tx_count_7d")[0] == 2.0
    assert later.column("terminal_fraud_rate_7d")[0] == 0.5


def test_user_state_stays_bounded() -> None:
    config = FeatureConfig(history_k=2, window_cap=3)
    engine = FeatureEngine(config)
    store = InMemoryStore()
    hours = 3_600_000_000
    for day in range(40):
        rows = [(f"x{day}-{i}", T0 + day * DAY + i * hours, "m") for i in range(5)]
        batch = TransactionBatch.from_columns(
            transaction_id=[r[0] for r in rows], timestamp_us=[r[1] for r in rows],
            user_id=["u"] * 5, terminal_id=[r[2] for r in rows], amount=[1.0] * 5)
        engine.extract(batch, store)
    state = store.load_users(["u"])["u"]
    assert len(state) == 3  # the window cap, not all 200 events
    assert state.count == 200 and state.amount_sum == 200.0
    assert len(state.encode()) == 45 + 40 * 3


def test_redelivered_rows_do_not_change_state_or_later_features() -> None:
    rng = np.random.default_rng(7)
    n = 300
    batch = TransactionBatch.from_columns(
        transaction_id=[f"x{i}" for i in range(n)],
        timestamp_us=np.sort(T0 + rng.integers(0, 20 * DAY, n)),
        user_id=rng.choice(["a", "b", "c"], n), terminal_id=rng.choice(["m", "n"], n),
        amount=rng.uniform(1, 100, n), is_fraud=rng.choice([-1, 0, 1], n))
    engine = FeatureEngine(FeatureConfig(label_delay_days=1, history_k=50))
    clean_store = InMemoryStore()
    clean = engine.extract(batch, clean_store).values
    store = InMemoryStore()
    engine.extract(batch.take(np.arange(0, 200)), store)
    # A retry: rows 100-199 again, followed by rows never seen.
    retried = engine.extract(batch.take(np.arange(100, n)), store)
    np.testing.assert_array_equal(retried.values[100:], clean[200:])
    for user in ("a", "b", "c"):
        got, want = store.load_users([user])[user], clean_store.load_users([user])[user]
        assert got.count == want.count
        assert np.array_equal(got.tx, want.tx)
    # The very same batch once more changes nothing at all.
    engine.extract(batch.take(np.arange(100, n)), store)
    assert store.load_users(["a"])["a"].count == clean_store.load_users(["a"])["a"].count
