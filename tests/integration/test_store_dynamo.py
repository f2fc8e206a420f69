"""The batched client layer over real HTTP: retries of unprocessed work, counting, errors."""

from __future__ import annotations

import random
from typing import Any

import pytest

from fraud.errors import StoreError
from fraud.store import Backoff, ConditionalPut, Dynamo, RequestCounter

pytestmark = pytest.mark.integration


class DroppingClient:
    """Passes calls to a real client but holds back part of each batch the first `times` times,
    returning it as UnprocessedKeys / UnprocessedItems, the way DynamoDB does under load."""

    def __init__(self, client: Any, times: int) -> None:
        self.client = client
        self.times = times
        self.meta = client.meta

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        if self.times <= 0:
            return self.client.batch_get_item(RequestItems=RequestItems)  # type: ignore[no-any-return]
        self.times -= 1
        send: dict[str, Any] = {}
        held: dict[str, Any] = {}
        for table, entry in RequestItems.items():
            keys = entry["Keys"]
            half = max(1, len(keys) // 2)
            send[table] = {**entry, "Keys": keys[:half]}
            if keys[half:]:
                held[table] = {**entry, "Keys": keys[half:]}
        result: dict[str, Any] = self.client.batch_get_item(RequestItems=send)
        result["UnprocessedKeys"] = held
        return result

    def batch_write_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        if self.times <= 0:
            return self.client.batch_write_item(RequestItems=RequestItems)  # type: ignore[no-any-return]
        self.times -= 1
        send = {t: ops[: max(1, len(ops) // 2)] for t, ops in RequestItems.items()}
        held = {t: ops[max(1, len(ops) // 2):] for t, ops in RequestItems.items()
                if ops[max(1, len(ops) // 2):]}
        result: dict[str, Any] = self.client.batch_write_item(RequestItems=send)
        result["UnprocessedItems"] = held
        return result


def _no_sleep() -> tuple[Backoff, list[float]]:
    sleeps: list[float] = []
    return Backoff(sleep=sleeps.append, rng=random.Random(1)), sleeps


def test_batch_get_retries_unprocessed_keys_until_every_item_is_read(dynamo: Dynamo) -> None:
    users = [{"user_id": f"u{i}", "v": i} for i in range(230)]
    dynamo.batch_write(puts={"Users": users})
    backoff, sleeps = _no_sleep()
    flaky = Dynamo(DroppingClient(dynamo.client, times=4), dynamo.prefix, backoff)
    keys = [{"user_id": f"u{i}"} for i in range(230)] + [{"user_id": "absent"}]
    got = flaky.batch_get({"Users": keys})["Users"]
    assert sorted(int(i["v"]) for i in got) == list(range(230))
    assert len(sleeps) == 4  # one backoff per retried round
    assert all(0 <= s <= backoff.cap for s in sleeps)


def test_batch_write_retries_unprocessed_items_and_loses_none(dynamo: Dynamo) -> None:
    backoff, sleeps = _no_sleep()
    flaky = Dynamo(DroppingClient(dynamo.client, times=3), dynamo.prefix, backoff)
    flaky.batch_write(puts={"Users": [{"user_id": f"w{i}"} for i in range(60)]})
    got = dynamo.batch_get({"Users": [{"user_id": f"w{i}"} for i in range(60)]})["Users"]
    assert len(got) == 60
    assert len(sleeps) == 3


class StuckClient(DroppingClient):
    """Never processes anything (a table throttled for good)."""

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        return {"Responses": {}, "UnprocessedKeys": RequestItems}


def test_gives_up_with_a_clear_error_when_keys_stay_unprocessed(dynamo: Dynamo) -> None:
    backoff = Backoff(attempts=2, sleep=lambda _: None)
    stuck = Dynamo(StuckClient(dynamo.client, times=0), dynamo.prefix, backoff)
    with pytest.raises(StoreError, match="unprocessed after 2 retries"):
        stuck.batch_get({"Users": [{"user_id": "a"}, {"user_id": "b"}]})


def test_batch_get_uses_one_request_per_100_keys_across_tables(
    dynamo: Dynamo, counter: RequestCounter
) -> None:
    keys = {"Users": [{"user_id": f"u{i}"} for i in range(150)],
            "Sessions": [{"session_id": f"s{i}"} for i in range(50)]}
    dynamo.batch_get(keys)
    assert counter.snapshot() == {"dynamodb.BatchGetItem": 2}


def test_put_once_writes_first_and_reports_repeats(dynamo: Dynamo) -> None:
    first = [ConditionalPut("Decisions", {"transaction_id": f"t{i}", "action": "block"},
                            "transaction_id") for i in range(3)]
    assert dynamo.put_once(first) == ([0, 1, 2], [])
    again = [ConditionalPut("Decisions", {"transaction_id": f"t{i}", "action": "alert"},
                            "transaction_id") for i in range(1, 5)]
    written, existing = dynamo.put_once(again)
    assert (written, existing) == ([2, 3], [0, 1])
    kept = dynamo.get("Decisions", {"transaction_id": "t1"})
    assert kept is not None and kept["action"] == "block"  # first write won


def test_errors_name_the_operation_and_table(dynamo: Dynamo) -> None:
    with pytest.raises(StoreError, match=r"get_item on NoSuchTable: ResourceNotFoundException"):
        dynamo.get("NoSuchTable", {"id": "x"})
