"""The terminal event log is a set whatever is added, and the two support readers agree."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fraud.errors import StoreError
from fraud.features.store import InMemoryStore, _SetLog
from fraud.features.support import _load_columns, _load_rows

_ROWS = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 6), st.integers(0, 2)),
                 max_size=15)


@settings(max_examples=150, deadline=None)
@given(st.lists(_ROWS, max_size=6), st.integers(0, 6), st.integers(0, 6),
       st.lists(st.integers(0, 3), min_size=1, max_size=3))
def test_set_log_holds_a_set_and_selects_like_one(
        adds: list[list[tuple[int, int, int]]], a: int, b: int, codes: list[int]) -> None:
    log, model = _SetLog(3), set()
    for rows in adds:
        log.add(np.array(rows, dtype=np.int64).reshape(-1, 3))
        model |= set(rows)
    since, until = min(a, b), max(a, b)
    got = log.select(np.array(codes, dtype=np.int64), since, until)
    assert len(got) == len({tuple(r) for r in got.tolist()})  # no repeats
    assert {tuple(r) for r in got.tolist()} == {
        r for r in model if r[0] in codes and since <= r[1] <= until}
    assert len(log) == len(model)


def test_retention_drops_only_chunks_wholly_older_than_the_horizon() -> None:
    store = InMemoryStore(retain_us=10)
    ids = np.array(["t"] * 3, dtype=object)
    for start in (0, 100, 200):
        ts = np.arange(start, start + 3, dtype=np.int64)
        store.add_terminal_events(ids, ts, ts.astype(np.uint64))
    snap = store.load_terminals(["t"], 0, 1_000)
    # Small batches share one chunk, and a chunk with a recent row is kept whole.
    assert snap.event_ts.tolist() == [0, 1, 2, 100, 101, 102, 200, 201, 202]


def test_a_read_reaching_into_forgotten_time_fails_loudly() -> None:
    store = InMemoryStore(retain_us=1_000)
    rows = 1 << 16  # one full chunk, so the next batch starts a new one
    store.add_terminal_events(np.array(["t"] * rows, dtype=object),
                              np.arange(rows, dtype=np.int64), np.zeros(rows, np.uint64))
    later = np.array([10 * rows], dtype=np.int64)
    store.add_terminal_events(np.array(["t"], dtype=object), later, np.ones(1, np.uint64))
    assert store.load_terminals(["t"], rows, 20 * rows).event_ts.tolist() == [10 * rows]
    with pytest.raises(StoreError, match="already dropped"):
        store.load_terminals(["t"], 0, 20 * rows)


def test_retention_forgets_old_chunks() -> None:
    log = _SetLog(3)
    log._chunks = [np.array([[0, 1, 0]]), np.array([[0, 50, 0]])]
    log._lo, log._hi = [1, 50], [1, 50]
    log.forget_before(10)
    assert log.select(np.array([0]), 0, 100).tolist() == [[0, 50, 0]]


def test_columnar_and_row_readers_build_the_same_table(tmp_path: Path) -> None:
    rows = [{"device_id": f"d{i % 7}", "ts": f"2024-01-0{1 + i % 9}T0{i % 10}:00:00.{i:06d}Z",
             "lat": None if i % 5 == 0 else i * 0.5, "lon": i, "status": "ok"}
            for i in range(60)]
    rows.append({"device_id": "d1", "ts": "2024-03-01T00:00:00+02:00", "lat": 1.0})
    path = tmp_path / "devices.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    fields = {"lat": "float", "lon": "float"}
    fast = _load_columns(path, "device_id", "ts", fields)
    slow = _load_rows(path, "device_id", "ts", fields)
    assert fast is not None
    assert fast.keys.tolist() == slow.keys.tolist()
    assert fast.times.tolist() == slow.times.tolist()
    assert fast.offsets.tolist() == slow.offsets.tolist()
    for name in fields:
        np.testing.assert_array_equal(fast.values[name], slow.values[name])


def test_columnar_reader_leaves_odd_files_to_the_row_reader(tmp_path: Path) -> None:
    path = tmp_path / "users.jsonl"
    path.write_text('{"user_id": "u", "created_at": "2024-01-01T00:00:00Z"}\n\n')
    assert _load_columns(path, "user_id", "created_at", {}) is None  # blank line
    path.write_text('{"user_id": 7, "created_at": "2024-01-01T00:00:00Z"}\n')
    assert _load_columns(path, "user_id", "created_at", {}) is None  # number id
    path.write_text('{"user_id": "u", "created_at": "1700000000"}\n')
    assert _load_columns(path, "user_id", "created_at", {}) is None  # epoch text
    assert _load_rows(path, "user_id", "created_at", {}).times.tolist() == [1700000000000000]
