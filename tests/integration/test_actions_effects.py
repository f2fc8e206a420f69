"""Actions and the archive against moto's server over real HTTP: every client is built from
settings, as in the consumer; a redelivery produces no second effect; the archive reads back."""

from __future__ import annotations

import dataclasses
import json
import uuid

import pytest

from fraud.actions import ActionPerformer, Archive
from fraud.actions.testing import make_outcome
from fraud.config import Settings
from fraud.errors import StoreError
from fraud.schema.files import read_all
from fraud.store import Backoff, Dynamo, RequestCounter, make_client
from fraud.store.decisions import get_decision, list_cases

pytestmark = pytest.mark.integration


def test_effects_happen_once_over_http(settings: Settings, dynamo: Dynamo,
                                       counter: RequestCounter) -> None:
    name = f"decisions-{uuid.uuid4().hex[:8]}"
    settings = dataclasses.replace(settings, decisions_stream=name,
                                   alert_topic=f"alerts-{uuid.uuid4().hex[:8]}")
    kinesis = make_client("kinesis", settings)
    kinesis.create_stream(StreamName=name, ShardCount=1)
    kinesis.get_waiter("stream_exists").wait(StreamName=name,
                                             WaiterConfig={"Delay": 0.2, "MaxAttempts": 50})
    performer = ActionPerformer(
        dynamo=dynamo, sns=make_client("sns", settings), kinesis=kinesis,
        alert_topic=settings.alert_topic, decisions_stream=name, clock=lambda: 1.7e9,
        backoff=Backoff(sleep=lambda _: None, attempts=2))
    outcome = make_outcome(["block", "alert", "flag"] + [""] * 97)
    first = performer.perform(outcome, shard_id="shardId-000000000000")
    assert (first.streamed, first.alerted, first.cases) == (("t0",), ("t1",), ("t2",))
    assert counter.snapshot() == {"dynamodb.TransactWriteItems": 2}
    second = performer.perform(outcome, shard_id="shardId-000000000000")
    assert second.duplicates == ("t0", "t1", "t2") and second.streamed == ()
    assert second.alerted == () and second.resumed == ()

    shard = kinesis.list_shards(StreamName=name)["Shards"][0]["ShardId"]
    iterator = kinesis.get_shard_iterator(StreamName=name, ShardId=shard,
                                          ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    records = kinesis.get_records(ShardIterator=iterator)["Records"]
    assert [json.loads(r["Data"])["transaction_id"] for r in records] == ["t0"]
    assert get_decision(dynamo, "t1")["effects"] == "done"  # type: ignore[index]
    assert [c["case_id"] for c in list_cases(dynamo)] == ["case-t2"]


def test_missing_decisions_stream_leaves_the_decision_pending(settings: Settings,
                                                              dynamo: Dynamo) -> None:
    performer = ActionPerformer(
        dynamo=dynamo, sns=make_client("sns", settings),
        kinesis=make_client("kinesis", settings), alert_topic="alerts",
        decisions_stream=f"missing-{uuid.uuid4().hex[:8]}", clock=lambda: 1.7e9)
    with pytest.raises(StoreError, match="ResourceNotFoundException"):
        performer.perform(make_outcome(["block"]))
    assert get_decision(dynamo, "t0")["effects"] == "pending"  # type: ignore[index]


def test_archive_round_trip_with_clients_from_settings(settings: Settings) -> None:
    bucket = f"archive-{uuid.uuid4().hex[:8]}"
    s3 = make_client("s3", settings)
    s3.create_bucket(Bucket=bucket)
    archive = Archive(s3, f"s3://{bucket}/decided", clock=lambda: 1.7e9)
    outcome = make_outcome(["block", "", "alert"], is_fraud=[1, 0, 0],
                           positions=["1001", "1002", "1003"])
    archive.add(outcome, shard_id="shardId-000000000000")
    (written,) = archive.flush()
    assert written.key == "decided/dt=2024-01-31/part-shardId-000000000000-1001.parquet"
    result = read_all(f"s3://{bucket}/decided", settings=settings)  # client from settings
    assert result.rejections == []
    assert result.batch.transaction_id.tolist() == ["t0", "t1", "t2"]
    assert result.batch.is_fraud.tolist() == [1, 0, 0]
