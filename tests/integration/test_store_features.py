"""The DynamoDB feature store over real HTTP: same features as in memory, versioned users,
idempotent terminal sets, and requests per transaction far below one."""

from __future__ import annotations

import numpy as np
import pytest

from fraud.errors import StaleWriteError
from fraud.features.engine import FeatureEngine
from fraud.features.store import InMemoryStore, StateStore, UserState
from fraud.schema.batch import TransactionBatch
from fraud.store import Dynamo, RequestCounter
from fraud.store.feature_store import DynamoStateStore

pytestmark = pytest.mark.integration
DAY = 86_400_000_000


def _batches(seed: int, n_batches: int, size: int) -> list[TransactionBatch]:
    rng = np.random.default_rng(seed)
    out = []
    t = 1_700_000_000_000_000
    for b in range(n_batches):
        ts = t + np.sort(rng.integers(0, DAY // 2, size))
        t = int(ts[-1]) + 1
        fraud = (rng.random(size) < 0.1).astype(np.int8)
        out.append(TransactionBatch.from_columns(
            transaction_id=[f"b{b}t{i}" for i in range(size)],
            timestamp_us=ts,
            user_id=[f"u{u}" for u in rng.integers(0, 40, size)],
            terminal_id=[f"m{m}" for m in rng.integers(0, 15, size)],
            amount=np.round(rng.gamma(2.0, 30.0, size), 2),
            lat=rng.uniform(40, 41, size), lon=rng.uniform(2, 3, size),
            device_id=[f"d{d}" for d in rng.integers(0, 60, size)],
            is_fraud=fraud,
            label_time_us=np.where(fraud == 1, ts + 2 * DAY, np.iinfo(np.int64).min),
        ))
    return out


def _run(store: StateStore, batches: list[TransactionBatch]) -> np.ndarray:
    engine = FeatureEngine()
    return np.vstack([engine.extract(b, store).values for b in batches])


def test_same_features_as_the_in_memory_store(dynamo: Dynamo, counter: RequestCounter) -> None:
    batches = _batches(7, n_batches=6, size=150)
    expected = _run(InMemoryStore(), batches)
    got = _run(DynamoStateStore(dynamo), batches)
    np.testing.assert_array_equal(got, expected)
    # A fresh worker (cold cache) reading back the same state also agrees.
    replayed = _batches(7, n_batches=6, size=150)[-1]
    fresh = FeatureEngine().extract(replayed, DynamoStateStore(dynamo), commit=False).values
    assert fresh.shape == (150, expected.shape[1])
    per_tx = counter.per(sum(len(b) for b in batches))
    assert per_tx < 0.5, counter.snapshot()


def _bump(state: UserState, count: int) -> UserState:
    return UserState(state.ts, state.amount, state.terminal, state.device, state.tx, count,
                     state.amount_sum, version=state.version)


def test_a_stale_writer_gets_a_clear_error_not_an_overwrite(dynamo: Dynamo) -> None:
    one, two = DynamoStateStore(dynamo), DynamoStateStore(dynamo)
    state = UserState(ts=np.array([1], dtype=np.int64), amount=np.array([5.0]),
                      terminal=np.array([1], dtype=np.uint64),
                      device=np.array([0], dtype=np.uint64), tx=np.array([9], dtype=np.uint64),
                      count=1, amount_sum=5.0)
    one.save_users({"u1": state})
    a = one.load_users(["u1"])["u1"]
    b = two.load_users(["u1"])["u1"]
    assert a.version == b.version == 1
    one.save_users({"u1": _bump(a, 2)})
    with pytest.raises(StaleWriteError, match="'u1'"):
        two.save_users({"u1": _bump(b, 3)})
    stored = DynamoStateStore(dynamo).load_users(["u1"])["u1"]
    assert (stored.version, stored.count) == (2, 2)  # the first writer's state survived
    # A brand-new state for an existing user is stale too.
    with pytest.raises(StaleWriteError):
        DynamoStateStore(dynamo).save_users({"u1": UserState()})


def test_terminal_events_and_labels_are_set_unions(dynamo: Dynamo) -> None:
    store = DynamoStateStore(dynamo)
    terms = np.array(["m1", "m1", "m2"], dtype=object)
    ts = np.array([10 * DAY, 10 * DAY + 5, 11 * DAY], dtype=np.int64)
    hashes = np.array([1, 2, 3], dtype=np.uint64)
    for _ in range(2):  # a redelivered batch adds nothing
        store.add_terminal_events(terms, ts, hashes)
        store.apply_labels(terms[:1], ts[:1], hashes[:1], ts[:1] + DAY)
    for reader in (store, DynamoStateStore(dynamo)):  # write-through cache and a cold read
        snap = reader.load_terminals(["m1", "m2"], 9 * DAY, 12 * DAY)
        assert sorted(zip(snap.event_terminal.tolist(), snap.event_ts.tolist(), strict=True)) \
            == [(0, 10 * DAY), (0, 10 * DAY + 5), (1, 11 * DAY)]
        assert snap.fraud_ts.tolist() == [10 * DAY]
        assert snap.fraud_label_time.tolist() == [11 * DAY]
    item = dynamo.get("TerminalProfiles", {"terminal_id": "m1", "bucket": 10})
    assert item is not None and len(item["events"]) == 2 and len(item["frauds"]) == 1


def test_cache_avoids_rereading_users_until_dropped(dynamo: Dynamo,
                                                    counter: RequestCounter) -> None:
    store = DynamoStateStore(dynamo)
    store.save_users({"u9": UserState()})
    counter.reset()
    store.load_users(["u9"])
    assert counter.total() == 0
    store.drop_cache()
    assert store.load_users(["u9"])["u9"].version == 1
    assert counter.total() == 1


def test_users_written_before_a_stale_chunk_stay_writable(dynamo: Dynamo) -> None:
    store, other = DynamoStateStore(dynamo), DynamoStateStore(dynamo)
    ids = [f"u{i:03d}" for i in range(150)]  # two transactions of 100 and 50
    store.save_users({u: UserState() for u in ids})
    loaded = store.load_users(ids)
    rival = other.load_users(["u120"])["u120"]
    other.save_users({"u120": _bump(rival, 7)})  # another writer took u120 (second chunk)
    with pytest.raises(StaleWriteError, match="'u120'"):
        store.save_users({u: _bump(loaded[u], 1) for u in ids})
    # The first chunk landed; this worker must know it, not call its own writes stale.
    again = store.load_users(ids[:100])
    assert {s.version for s in again.values()} == {2}
    store.save_users({u: _bump(again[u], 2) for u in ids[:100]})
    fresh = DynamoStateStore(dynamo).load_users([*ids[:100], "u120"])
    assert {fresh[u].count for u in ids[:100]} == {2} and fresh["u120"].count == 7


def test_the_user_cache_is_bounded(dynamo: Dynamo, counter: RequestCounter) -> None:
    store = DynamoStateStore(dynamo, max_cached_users=3)
    store.save_users({u: UserState() for u in ("a", "b", "c", "d")})
    store.drop_cache()
    assert set(store.load_users(["a", "b"])) == {"a", "b"}
    assert store.cached["users"] == 2
    assert set(store.load_users(["c", "d"])) == {"c", "d"}  # 4 > 3: start over
    assert store.cached["users"] == 2
    counter.reset()
    assert store.load_users(["c", "d"])["d"].version == 1 and counter.total() == 0
