"""The column-wise user table behind `InMemoryStore`: same states as a dict of records."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fraud.errors import StaleWriteError
from fraud.features import FeatureEngine, InMemoryStore, UserState, usertable
from fraud.features.store import columns_of, states_of
from fraud.features.usertable import UserColumns, UserTable
from fraud.schema.batch import TransactionBatch


def _state(n: int, seed: int, version: int = 0) -> UserState:
    rng = np.random.default_rng(seed)
    return UserState(np.sort(rng.integers(0, 10**9, n)), rng.random(n) * 100,
                     rng.integers(0, 2**63, n).astype(np.uint64),
                     rng.integers(0, 2**63, n).astype(np.uint64),
                     rng.integers(0, 2**63, n).astype(np.uint64),
                     count=n + seed, amount_sum=float(seed), loc_count=seed % 3,
                     lat_sum=1.5 * seed, lon_sum=-2.5 * seed, version=version)


def _same(a: UserState, b: UserState) -> bool:
    return a.encode() == b.encode() and a.version == b.version


def _ids(*users: str) -> np.ndarray:
    return np.array(users, dtype=object)


def test_columns_and_records_round_trip() -> None:
    states = [_state(3, 1, version=4), None, _state(0, 2, version=1), _state(5, 3, version=2)]
    cols = columns_of(states)
    assert cols.hist_len.tolist() == [3, 0, 0, 5]
    assert cols.version.tolist() == [4, 0, 1, 2]
    back = states_of(cols, ["a", "b", "c", "d"], stored_only=True)
    assert set(back) == {"a", "c", "d"}
    for user, state in zip("acd", [states[0], states[2], states[3]], strict=True):
        assert state is not None and _same(back[user], state)
    newest = columns_of(states, keep=2)
    assert newest.hist_len.tolist() == [2, 0, 0, 2]
    assert newest.ts[2:].tolist() == states[3].ts[-2:].tolist()  # type: ignore[union-attr]


def test_load_cuts_to_the_newest_events_and_marks_unknown_users() -> None:
    table = UserTable()
    table.save(_ids("u"), columns_of([_state(6, 7)]))
    cols = table.load(_ids("nobody", "u"), keep=4)
    assert cols.hist_len.tolist() == [0, 4]
    assert cols.version.tolist() == [0, 1]
    assert cols.ts.tolist() == _state(6, 7).ts[-4:].tolist()
    assert cols.count.tolist() == [0, 6 + 7]


def test_a_stale_write_is_refused_and_changes_nothing() -> None:
    table = UserTable()
    table.save(_ids("a", "b"), columns_of([_state(2, 1), _state(2, 2)]))
    read = table.load(_ids("a", "b"), keep=10)  # both at version 1
    table.save(_ids("a"), read.take(np.array([0])))  # a: 1 -> 2
    with pytest.raises(StaleWriteError, match="'a': stored version 2, write based on version 1"):
        table.save(_ids("b", "a"), read.take(np.array([1, 0])))
    after = table.load(_ids("a", "b"), keep=10)
    assert after.version.tolist() == [2, 1]  # b was not written either


def _append(old: UserState | None, drop: int, add: int, seed: int) -> UserState:
    """`old` without its `drop` oldest events, then `add` new ones (the engine's write)."""
    tail = _state(add, seed)
    base = old or UserState()
    keep = slice(min(drop, len(base)), None)
    return UserState(*(np.concatenate([getattr(base, n)[keep], getattr(tail, n)])
                       for n in ("ts", "amount", "terminal", "device", "tx")),
                     count=tail.count, amount_sum=tail.amount_sum, loc_count=tail.loc_count,
                     lat_sum=tail.lat_sum, lon_sum=tail.lon_sum,
                     version=0 if old is None else old.version)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.lists(st.integers(0, 7), min_size=1, max_size=5, unique=True),
                          st.integers(0, 40), st.integers(0, 40), st.booleans()),
                min_size=1, max_size=30))
def test_many_writes_read_back_like_a_dict(
        writes: list[tuple[list[int], int, int, bool]]) -> None:
    table = UserTable()
    reference: dict[str, UserState] = {}
    for step, (users, length, drop, appending) in enumerate(writes):
        ids = [f"u{u}" for u in users]
        old = [reference.get(u) for u in ids]
        if appending:  # drop the oldest events, append `length`, write only those
            new = [_append(s, drop, length + i, step * 10 + i) for i, s in enumerate(old)]
            table.save(_ids(*ids), columns_of(new),
                       np.array([length + i for i in range(len(ids))], dtype=np.int64))
        else:  # anything at all, written whole
            new = [_state(length + i, step * 10 + i, 0 if s is None else s.version)
                   for i, s in enumerate(old)]
            table.save(_ids(*ids), columns_of(new))
        for u, s in zip(ids, new, strict=True):
            reference[u] = UserState(s.ts, s.amount, s.terminal, s.device, s.tx, s.count,
                                     s.amount_sum, s.loc_count, s.lat_sum, s.lon_sum,
                                     s.version + 1)
        got = states_of(table.load(_ids(*ids), keep=10**6), ids)
        for u in ids:
            assert _same(got[u], reference[u])
    names = sorted(reference)
    got = states_of(table.load(_ids(*names), keep=10**6), names)
    for u in names:
        assert _same(got[u], reference[u])
    # Loading the newest few of a ring that wrapped reads them in order too.
    newest = table.load(_ids(*names), keep=3)
    assert newest.ts.tolist() == [t for u in names for t in reference[u].ts[-3:].tolist()]


def test_a_ring_wraps_around_its_slot_and_reads_in_order() -> None:
    table = UserTable()
    state = _append(None, 0, 12, 0)
    table.save(_ids("u"), columns_of([state]), np.array([12]))
    heads = set()
    for step in range(1, 20):  # drop 5, add 5: the 16-event slot wraps every few writes
        state = _append(UserState(*(getattr(state, n) for n in (
            "ts", "amount", "terminal", "device", "tx")), version=step), 5, 5, step)
        table.save(_ids("u"), columns_of([state]), np.array([5]))
        state = UserState(state.ts, state.amount, state.terminal, state.device, state.tx,
                          state.count, state.amount_sum, state.loc_count, state.lat_sum,
                          state.lon_sum, step + 1)
        assert _same(states_of(table.load(_ids("u"), keep=100), ["u"])["u"], state)
        heads.add(int(table._ints[0, usertable._HEAD]))
    assert len(heads) == 16  # only new events were written: the oldest moved round the ring
    assert table.pool_size == 1 << 16 and table.live_events == 12  # never moved


def test_rewritten_users_leave_bounded_garbage() -> None:
    table = UserTable()
    ids = _ids(*(f"u{i}" for i in range(10)))
    states = [_state(10_000, i) for i in range(10)]
    for _ in range(40):
        table.save(ids, columns_of(states))
        states = [UserState(s.ts, s.amount, s.terminal, s.device, s.tx, s.count, s.amount_sum,
                            s.loc_count, s.lat_sum, s.lon_sum, s.version + 1) for s in states]
        # Compaction keeps the pool within twice the live events plus one write's worth.
        assert table.live_events == 100_000
        assert table.pool_size <= 4 * table.live_events
    back = states_of(table.load(ids, keep=10**6), list(ids))
    assert all(_same(back[f"u{i}"], states[i]) for i in range(10))


def test_the_store_reads_records_and_columns_alike() -> None:
    store = InMemoryStore()
    n = 6
    batch = TransactionBatch.from_columns(
        transaction_id=[f"t{i}" for i in range(n)], timestamp_us=list(range(n)),
        user_id=["a", "b", "a", "c", "a", "b"], terminal_id=["m"] * n,
        amount=[1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    FeatureEngine().extract(batch, store)
    records = store.load_users(["a", "b", "c", "nobody"])
    assert set(records) == {"a", "b", "c"} and records["a"].ts.tolist() == [0, 2, 4]
    cols: UserColumns = store.load_user_columns(_ids("c", "a"), keep=2)
    assert cols.hist_len.tolist() == [1, 2] and cols.ts.tolist() == [3, 2, 4]
    store.save_users({"c": records["c"]})  # through the records path: version 1 -> 2
    assert store.load_users(["c"])["c"].version == 2
