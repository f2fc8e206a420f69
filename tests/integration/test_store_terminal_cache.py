"""The terminal cache of the DynamoDB feature store: closed days are read once, labels and
other workers' open-day events show up after `refresh_us`, a lost lease forgets everything."""

from __future__ import annotations

import numpy as np
import pytest

from fraud.store import Dynamo, RequestCounter
from fraud.store.feature_store import DynamoStateStore

pytestmark = pytest.mark.integration
DAY = 86_400_000_000
MIN = 60_000_000


def _events(store: DynamoStateStore, terminal: str, ts: list[int], first_hash: int) -> None:
    store.add_terminal_events(np.array([terminal] * len(ts), dtype=object),
                              np.array(ts, dtype=np.int64),
                              np.arange(first_hash, first_hash + len(ts), dtype=np.uint64))


def _gets(counter: RequestCounter) -> int:
    return counter.snapshot().get("dynamodb.BatchGetItem", 0)


@pytest.fixture
def written(dynamo: Dynamo) -> Dynamo:
    """Events on days 10 and 11 of terminals m1 and m2, written by some other worker."""
    writer = DynamoStateStore(dynamo)
    _events(writer, "m1", [10 * DAY + 5, 11 * DAY + 7], 1)
    _events(writer, "m2", [10 * DAY + 9], 3)
    return dynamo


def test_closed_days_are_read_once(written: Dynamo, counter: RequestCounter) -> None:
    store = DynamoStateStore(written)
    _events(store, "m9", [20 * DAY], 99)  # this worker is at day 20: days 9-12 are closed
    counter.reset()
    first = store.load_terminals(["m1", "m2"], 9 * DAY, 12 * DAY)
    assert first.event_ts.tolist() == [10 * DAY + 5, 11 * DAY + 7, 10 * DAY + 9]
    assert _gets(counter) == 2  # the two markers, then 2 x 4 day buckets
    # A later batch (the clock moved on, still within refresh_us) reads nothing at all.
    store.load_terminals(["m2", "m1"], 9 * DAY, 12 * DAY)
    store.load_terminals(["m1"], 9 * DAY, 12 * DAY)
    assert _gets(counter) == 2
    # After refresh_us only the markers are read again: the days are closed, nothing moved.
    _events(store, "m9", [20 * DAY + 20 * MIN], 98)
    store.load_terminals(["m1", "m2"], 9 * DAY, 12 * DAY)
    assert _gets(counter) == 3
    assert store.cached["buckets"] == 8 and store.cached["markers"] == 2


def test_labels_from_another_writer_show_up_after_refresh(written: Dynamo,
                                                          counter: RequestCounter) -> None:
    store = DynamoStateStore(written)
    _events(store, "m9", [20 * DAY], 99)
    assert len(store.load_terminals(["m1", "m2"], 9 * DAY, 12 * DAY).fraud_ts) == 0
    feed = DynamoStateStore(written)  # the label feed, another process
    feed.apply_labels(np.array(["m1"], dtype=object), np.array([10 * DAY + 5], dtype=np.int64),
                      np.array([1], dtype=np.uint64), np.array([13 * DAY], dtype=np.int64))
    counter.reset()
    _events(store, "m9", [20 * DAY + MIN], 98)
    before = store.load_terminals(["m1", "m2"], 9 * DAY, 12 * DAY)
    assert len(before.fraud_ts) == 0 and _gets(counter) == 0  # within refresh_us: cached
    _events(store, "m9", [20 * DAY + 20 * MIN], 97)
    after = store.load_terminals(["m1", "m2"], 9 * DAY, 12 * DAY)
    assert after.fraud_ts.tolist() == [10 * DAY + 5]
    assert after.fraud_label_time.tolist() == [13 * DAY]
    assert after.event_ts.tolist() == before.event_ts.tolist()
    assert _gets(counter) == 2  # markers, then the one bucket whose label count moved
    assert store.cached["buckets"] == 8


def test_own_labels_are_written_through_without_rereads(written: Dynamo,
                                                        counter: RequestCounter) -> None:
    store = DynamoStateStore(written)
    _events(store, "m9", [20 * DAY], 99)
    store.load_terminals(["m1"], 9 * DAY, 12 * DAY)
    store.apply_labels(np.array(["m1"], dtype=object), np.array([11 * DAY + 7], dtype=np.int64),
                       np.array([2], dtype=np.uint64), np.array([14 * DAY], dtype=np.int64))
    _events(store, "m9", [20 * DAY + 20 * MIN], 98)
    counter.reset()
    snap = store.load_terminals(["m1"], 9 * DAY, 12 * DAY)
    assert snap.fraud_ts.tolist() == [11 * DAY + 7]
    assert _gets(counter) == 1  # the marker only: its count matches what this store added


def test_open_days_catch_other_writers_after_refresh(written: Dynamo) -> None:
    store = DynamoStateStore(written)
    assert len(store.load_terminals(["m1"], 11 * DAY, 11 * DAY + 10 * MIN).event_ts) == 1
    other = DynamoStateStore(written)  # another shard's worker, same terminal, same day
    _events(other, "m1", [11 * DAY + 8 * MIN], 9)
    _events(store, "m1", [11 * DAY + 9 * MIN], 10)  # this worker's own event: written through
    soon = store.load_terminals(["m1"], 11 * DAY, 11 * DAY + 12 * MIN)
    assert soon.event_ts.tolist() == [11 * DAY + 7, 11 * DAY + 9 * MIN]
    later = store.load_terminals(["m1"], 11 * DAY, 11 * DAY + 30 * MIN)
    assert later.event_ts.tolist() == [11 * DAY + 7, 11 * DAY + 8 * MIN, 11 * DAY + 9 * MIN]


def test_drop_cache_forgets_buckets_and_markers(written: Dynamo,
                                                counter: RequestCounter) -> None:
    store = DynamoStateStore(written)
    store.load_terminals(["m1", "m2"], 9 * DAY, 12 * DAY)
    store.drop_cache()  # what the handler does on lease_lost
    assert store.cached == {"users": 0, "buckets": 0, "markers": 0}
    counter.reset()
    again = store.load_terminals(["m1", "m2"], 9 * DAY, 12 * DAY)
    assert len(again.event_ts) == 3 and _gets(counter) == 2
