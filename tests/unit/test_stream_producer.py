"""The producer: PutRecords limits, per-customer order, retries until accepted, rate."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fraud.errors import InputError, StoreError
from fraud.stream.producer import (
    MAX_BYTES_PER_CALL,
    MAX_BYTES_PER_RECORD,
    Entry,
    encode_batch,
    encode_rows,
    plan_batches,
    put_all,
)


def entry(key: str, size: int = 10, pos: str = "") -> Entry:
    return Entry(key, b"x" * size, pos)


def test_calls_hold_at_most_500_records() -> None:
    batches = list(plan_batches([entry(f"u{i}") for i in range(1201)]))
    assert [len(b) for b in batches] == [500, 500, 201]


def test_calls_hold_at_most_5_mib() -> None:
    big = MAX_BYTES_PER_RECORD - 10  # with a 2-character key: just under 1 MiB each
    batches = list(plan_batches([entry(f"k{i}", big) for i in range(11)]))
    assert [len(b) for b in batches] == [5, 5, 1]
    assert all(sum(e.size for e in b) <= MAX_BYTES_PER_CALL for b in batches)


def test_a_record_over_1_mib_names_its_position() -> None:
    with pytest.raises(InputError, match=r"tx.csv:7: record is \d+ bytes"):
        list(plan_batches([entry("u", MAX_BYTES_PER_RECORD, "tx.csv:7")]))


def test_one_record_per_customer_per_call_unless_unordered() -> None:
    keys = ["a", "b", "a", "c", "c"]
    ordered = [[e.partition_key for e in b] for b in plan_batches(entry(k) for k in keys)]
    assert ordered == [["a", "b"], ["a", "c"], ["c"]]
    loose = list(plan_batches((entry(k) for k in keys), one_per_key=False))
    assert len(loose) == 1


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("abcdef"), st.integers(1, 400_000)), max_size=60),
       st.integers(1, 20), st.booleans())
def test_batches_keep_order_and_every_limit(
    items: list[tuple[str, int]], max_records: int, one_per_key: bool
) -> None:
    entries = [entry(k, n, str(i)) for i, (k, n) in enumerate(items)]
    batches = list(plan_batches(entries, max_records=max_records, one_per_key=one_per_key))
    assert [e for b in batches for e in b] == entries
    for b in batches:
        assert 1 <= len(b) <= max_records
        assert sum(e.size for e in b) <= MAX_BYTES_PER_CALL
        if one_per_key:
            assert len({e.partition_key for e in b}) == len(b)


def test_rows_become_compact_json_keyed_by_user() -> None:
    rows = [("f:2", {"transaction_id": "t1", "user_id": 7, "lat": math.nan, "amount": 1.5})]
    [e] = list(encode_rows(rows))
    assert e.partition_key == "7"
    assert json.loads(e.data) == {"transaction_id": "t1", "user_id": 7, "lat": None,
                                  "amount": 1.5}
    assert b" " not in e.data


@pytest.mark.parametrize("key", [None, "", "x" * 257])
def test_bad_partition_keys_name_the_row(key: Any) -> None:
    with pytest.raises(InputError, match="f:9: user_id: partition key"):
        list(encode_rows([("f:9", {"user_id": key})]))


class FakeKinesis:
    """Fails the records listed in `fail` (by data) once each, like a throttled shard."""

    def __init__(self, fail: Mapping[bytes, int] | None = None) -> None:
        self.fail = dict(fail or {})
        self.accepted: list[bytes] = []
        self.calls: list[list[bytes]] = []

    def put_records(self, *, StreamName: str, Records: Any) -> Any:
        data = [r["Data"] for r in Records]
        self.calls.append(data)
        results = []
        for d in data:
            if self.fail.get(d, 0) > 0:
                self.fail[d] -= 1
                results.append({"ErrorCode": "ProvisionedThroughputExceededException",
                                "ErrorMessage": "slow down"})
            else:
                self.accepted.append(d)
                results.append({"SequenceNumber": "1", "ShardId": "shardId-0"})
        failed = sum(1 for r in results if "ErrorCode" in r)
        return {"FailedRecordCount": failed, "Records": results}


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_failed_records_are_retried_until_accepted_before_the_next_call() -> None:
    entries = [Entry(k, d) for k, d in [("a", b"1"), ("b", b"2"), ("a", b"3"), ("c", b"4")]]
    kinesis = FakeKinesis(fail={b"1": 2})
    clock = FakeClock()
    progress: list[int] = []
    stats = put_all(kinesis, "tx", plan_batches(entries), clock=clock, sleep=clock.sleep,
                    on_progress=progress.append)
    # "1" fails twice; customer a's second record ("3") still lands after it.
    assert kinesis.calls == [[b"1", b"2"], [b"1"], [b"1"], [b"3", b"4"]]
    assert kinesis.accepted == [b"2", b"1", b"3", b"4"]
    assert stats.records == 4 and stats.retried_records == 2 and stats.calls == 4
    assert clock.sleeps == [0.1, 0.2]
    assert sum(progress) == 4


def test_retries_can_be_bounded() -> None:
    kinesis = FakeKinesis(fail={b"1": 10})
    clock = FakeClock()
    with pytest.raises(StoreError, match="still failing after 3 attempts"):
        put_all(kinesis, "tx", [[Entry("a", b"1", "f:2")]], max_attempts=3, clock=clock,
                sleep=clock.sleep)


def test_rate_limits_records_per_second() -> None:
    kinesis = FakeKinesis()
    clock = FakeClock()
    batches = plan_batches((Entry(f"u{i}", b"x") for i in range(30)), max_records=10)
    stats = put_all(kinesis, "tx", batches, rate=10.0, clock=clock, sleep=clock.sleep)
    assert stats.records == 30
    assert clock.now == pytest.approx(3.0)  # 30 records at 10/s
    assert stats.records_per_second == pytest.approx(10.0)


def test_a_whole_call_throttled_is_retried() -> None:
    from botocore.exceptions import ClientError

    class Throttled(FakeKinesis):
        def put_records(self, *, StreamName: str, Records: Any) -> Any:
            if not self.calls:
                self.calls.append([])
                raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException"}},
                                  "PutRecords")
            return super().put_records(StreamName=StreamName, Records=Records)

    kinesis = Throttled()
    clock = FakeClock()
    stats = put_all(kinesis, "tx", [[Entry("a", b"1")]], clock=clock, sleep=clock.sleep)
    assert kinesis.accepted == [b"1"] and stats.retried_records == 1


def test_a_missing_stream_is_a_store_error() -> None:
    from botocore.exceptions import ClientError

    class Missing:
        def put_records(self, *, StreamName: str, Records: Any) -> Any:
            raise ClientError({"Error": {"Code": "ResourceNotFoundException"}}, "PutRecords")

    with pytest.raises(StoreError, match="PutRecords to tx"):
        put_all(Missing(), "tx", [[Entry("a", b"1")]])


def test_a_validated_batch_round_trips_through_the_consumers_parser() -> None:
    from fraud.schema.parse import parse_payloads

    rows = [
        b'{"transaction_id": "t1", "timestamp": "2024-01-31T12:00:00.123456Z", "user_id": "007",'
        b' "terminal_id": "m1", "amount": 12.5, "lat": 48.1, "device_id": "d9", "is_fraud": 1,'
        b' "label_time": "2024-02-05T00:00:00Z"}',
        b'{"transaction_id": "t2", "timestamp": 1706702400, "user_id": 8, "terminal_id": "m2",'
        b' "amount": 3}',
    ]
    first = parse_payloads(rows, ["s1", "s2"])
    assert not first.rejections
    entries = list(encode_batch(first.batch, "f:"))
    assert [e.partition_key for e in entries] == ["007", "8"]
    assert [e.position for e in entries] == ["f:s1", "f:s2"]
    again = parse_payloads([e.data for e in entries], ["a", "b"])
    assert not again.rejections
    for name in ("transaction_id", "timestamp_us", "user_id", "terminal_id", "amount",
                 "device_id", "is_fraud", "label_time_us"):
        assert getattr(again.batch, name).tolist() == getattr(first.batch, name).tolist(), name
    lat = again.batch.lat.tolist()
    assert lat[0] == 48.1 and math.isnan(lat[1])
    assert "device_id" not in json.loads(entries[1].data)  # missing optionals are left out
