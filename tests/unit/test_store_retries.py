"""The batch loops of `fraud.store.dynamo.Dynamo` against a fake DynamoDB that holds work back
(UnprocessedKeys / UnprocessedItems) or refuses whole requests (throttling): every key read
once, every item stored once, chunks within DynamoDB's limits, and a bounded give-up that
names the table and how much was left."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest
from botocore.exceptions import ClientError
from hypothesis import given, settings
from hypothesis import strategies as st

from fraud.errors import StoreError
from fraud.store import Backoff, Dynamo


def _throttled(operation: str) -> ClientError:
    return ClientError({"Error": {"Code": "ProvisionedThroughputExceededException",
                                  "Message": "slow down"}}, operation)


class FakeDynamo:
    """A table store whose batch calls follow a script, one entry per call.

    ``"throttle"``: the whole request is refused; an integer n: at most n requests are
    processed and the rest handed back as unprocessed; ``None``: everything is processed.
    Records what was sent and how often each item was applied.
    """

    def __init__(self, script: list[Any]) -> None:
        self.script = list(script)
        self.items: dict[tuple[str, str], dict[str, Any]] = {}
        self.applied: Counter[tuple[str, str]] = Counter()
        self.read: Counter[tuple[str, str]] = Counter()
        self.sizes: list[int] = []

    def _next(self, operation: str) -> int | None:
        step = self.script.pop(0) if self.script else None
        if step == "throttle":
            raise _throttled(operation)
        return step

    def batch_write_item(self, RequestItems: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
        self.sizes.append(sum(len(ops) for ops in RequestItems.values()))
        keep = self._next("BatchWriteItem")
        left: dict[str, list[dict[str, Any]]] = {}
        done = 0
        for table, ops in RequestItems.items():
            for op in ops:
                if keep is not None and done >= keep:
                    left.setdefault(table, []).append(op)
                    continue
                done += 1
                item = op["PutRequest"]["Item"]
                key = (table, item["user_id"]["S"])
                self.items[key] = item
                self.applied[key] += 1
        return {"UnprocessedItems": left}

    def batch_get_item(self, RequestItems: dict[str, dict[str, Any]]) -> dict[str, Any]:
        self.sizes.append(sum(len(e["Keys"]) for e in RequestItems.values()))
        keep = self._next("BatchGetItem")
        responses: dict[str, list[dict[str, Any]]] = {}
        left: dict[str, dict[str, Any]] = {}
        done = 0
        for table, entry in RequestItems.items():
            for key in entry["Keys"]:
                if keep is not None and done >= keep:
                    left.setdefault(table, {**entry, "Keys": []})["Keys"].append(key)
                    continue
                done += 1
                ident = (table, key["user_id"]["S"])
                self.read[ident] += 1
                if ident in self.items:
                    responses.setdefault(table, []).append(self.items[ident])
        return {"Responses": responses, "UnprocessedKeys": left}


def _dynamo(fake: FakeDynamo, attempts: int = 10) -> tuple[Dynamo, list[float]]:
    sleeps: list[float] = []
    backoff = Backoff(attempts=attempts, sleep=sleeps.append, rng=random.Random(7))
    return Dynamo(fake, "p-", backoff), sleeps


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 130),
       script=st.lists(st.one_of(st.just("throttle"), st.integers(0, 30)), max_size=5))
def test_writes_then_reads_lose_nothing_and_double_nothing(n: int, script: list[Any]) -> None:
    # The same trouble for the writes and the reads; at most 10 troubled calls, so each retry
    # loop (11 calls) ends without giving up.
    fake = FakeDynamo(script + script)
    db, sleeps = _dynamo(fake)
    users = [{"user_id": f"u{i}", "v": i} for i in range(n)]
    db.batch_write(puts={"Users": users})
    assert all(count == 1 for count in fake.applied.values())  # nothing applied twice
    assert len(fake.applied) == n  # nothing lost
    got = db.batch_get({"Users": [{"user_id": f"u{i}"} for i in range(n)]
                               + [{"user_id": "u0"}]})["Users"]  # a duplicate key: asked once
    assert sorted(int(item["v"]) for item in got) == list(range(n))
    assert all(count == 1 for count in fake.read.values())
    assert all(0 <= s <= db.backoff.cap for s in sleeps)
    assert max(fake.sizes, default=0) <= 100


def test_chunks_are_25_writes_and_100_keys() -> None:
    fake = FakeDynamo([])
    db, sleeps = _dynamo(fake)
    assert db.batch_write(puts={"Users": [{"user_id": f"u{i}"} for i in range(60)]}) == 3
    db.batch_get({"Users": [{"user_id": f"u{i}"} for i in range(250)]})
    assert fake.sizes == [25, 25, 10, 100, 100, 50] and sleeps == []


def test_unprocessed_and_throttled_rounds_back_off_with_jitter() -> None:
    fake = FakeDynamo(["throttle", 3, "throttle", 10])
    db, sleeps = _dynamo(fake)
    assert db.batch_write(puts={"Users": [{"user_id": f"u{i}"} for i in range(20)]}) == 5
    assert len(fake.applied) == 20 and set(fake.applied.values()) == {1}
    assert fake.sizes == [20, 20, 17, 17, 7]  # each retry sends only what is left
    assert len(sleeps) == 4
    assert [min(db.backoff.cap, db.backoff.base * 2 ** i) >= s
            for i, s in enumerate(sleeps)] == [True] * 4


def test_gives_up_after_the_bound_naming_table_and_count() -> None:
    fake = FakeDynamo([5] + ["throttle"] * 10)
    db, sleeps = _dynamo(fake, attempts=3)
    with pytest.raises(StoreError, match=r"batch_write_item on p-Users: 15 items still "
                                         r"unprocessed after 3 retries"):
        db.batch_write(puts={"Users": [{"user_id": f"u{i}"} for i in range(20)]})
    assert len(sleeps) == 3
    stuck = FakeDynamo([0] * 10)
    db, _ = _dynamo(stuck, attempts=2)
    with pytest.raises(StoreError, match=r"batch_get_item on Users: 7 keys still unprocessed"):
        db.batch_get({"Users": [{"user_id": f"u{i}"} for i in range(7)]})


def test_other_errors_are_not_retried() -> None:
    class Broken(FakeDynamo):
        def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
            raise ClientError({"Error": {"Code": "ResourceNotFoundException",
                                         "Message": "no table"}}, "BatchGetItem")

    db, sleeps = _dynamo(Broken([]))
    with pytest.raises(StoreError, match=r"batch_get_item on Users: ResourceNotFoundException"
                                         r".*`fraud tables create --table-prefix p-`"):
        db.batch_get({"Users": [{"user_id": "a"}]})
    assert sleeps == []
