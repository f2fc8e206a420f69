"""The Lambda entry point over moto (in process), fed hand-made Kinesis events.

The pipeline is the consumer's own (`PipelineHandler`); only the wrapping differs: records
come base64-encoded in an event, and failures are answered ReportBatchItemFailures-style.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import boto3
import pytest

from fraud.errors import InputError, StoreError
from fraud.stream.processor import StreamRecord
from tests.conftest import dummy_aws_env

ROOT = Path(__file__).resolve().parents[2]
T0 = "2024-03-01T12:00:00Z"
SHARD = "shardId-000000000003"
ENV = {
    "FRAUD_MODEL_DIR": str(ROOT / "models" / "default"),
    "FRAUD_RULES": str(ROOT / "rules" / "default.yaml"),
    "FRAUD_TABLE_PREFIX": "t-",
    "FRAUD_DECISIONS_STREAM": "decisions",
    "FRAUD_ALERT_TOPIC": "alerts",
    "FRAUD_RULES_RELOAD_SECONDS": "0",
    "FRAUD_LOG_LEVEL": "WARNING",
}


@pytest.fixture()
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    from moto import mock_aws

    from fraud.store.dynamo import Dynamo
    from fraud.store.tables import create_tables

    with dummy_aws_env(), mock_aws():
        clients = {s: boto3.client(s, region_name="us-east-1")
                   for s in ("dynamodb", "s3", "sns", "kinesis")}
        create_tables(Dynamo(clients["dynamodb"], prefix="t-"))
        clients["sns"].create_topic(Name="alerts")
        yield clients


def _seq(i: int) -> str:
    return f"4959033827149025660855969253836157109592157598913658{i:04d}"


def _tx(i: int, amount: float = 20.0, **extra: Any) -> bytes:
    body = {"transaction_id": f"tx{i}", "timestamp": T0, "user_id": f"u{i % 3}",
            "terminal_id": f"m{i % 2}", "amount": amount, **extra}
    return json.dumps(body).encode()


def _event(payloads: Sequence[bytes | str], first: int = 0, shard: str = SHARD) -> dict[str, Any]:
    """A Kinesis event as Lambda delivers it; a `str` payload is sent as is (not base64)."""
    records = []
    for i, payload in enumerate(payloads, start=first):
        data = payload if isinstance(payload, str) else base64.b64encode(payload).decode()
        records.append({
            "kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": f"u{i % 3}",
                        "sequenceNumber": _seq(i), "data": data,
                        "approximateArrivalTimestamp": 1_709_294_399.25},
            "eventSource": "aws:kinesis", "eventVersion": "1.0",
            "eventID": f"{shard}:{_seq(i)}", "eventName": "aws:kinesis:record",
            "invokeIdentityArn": "arn:aws:iam::123456789012:role/fraud-lambda",
            "awsRegion": "us-east-1",
            "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/transactions",
        })
    return {"Records": records}


def _scan(client: Any, table: str) -> list[dict[str, Any]]:
    return client.scan(TableName=table, ConsistentRead=True)["Items"]


def _profile_counts(client: Any) -> dict[str, int]:
    from fraud.features import UserState

    return {i["user_id"]["S"]: UserState.decode(i["state"]["B"], int(i["version"]["N"])).count
            for i in _scan(client, "t-UserProfiles")}


def _pipeline(aws: dict[str, Any]) -> Any:
    from fraud.config import build_settings
    from fraud.stream.handler import PipelineHandler

    return PipelineHandler(build_settings({}, environ=ENV), clients=aws,
                           clock=lambda: 1_709_294_400.0)


def test_handler_builds_the_pipeline_once_and_decides_the_event(
    aws: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import fraud.lambda_handler as entry

    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(entry, "_consumer", None)
    aws["kinesis"].create_stream(StreamName="decisions", ShardCount=1)
    good = [_tx(i) for i in range(6)]
    bad: list[bytes | str] = [b"\xff\xfe\x00 binary", b'{"transaction_id": "tx90", "amo',
                              _tx(91, amount=-5.0), "***not base64***"]
    event = _event([*good, *bad])

    assert entry.handler(event, None) == {"batchItemFailures": []}
    consumer = entry._consumer
    assert consumer is not None

    history = _scan(aws["dynamodb"], "t-TransactionHistory")
    assert sorted(i["transaction_id"]["S"] for i in history) == [f"tx{i}" for i in range(6)]
    assert {int(i["arrival_ms"]["N"]) for i in history} == {1_709_294_399_250}
    letters = {i["letter_id"]["S"]: i["error"]["S"]
               for i in _scan(aws["dynamodb"], "t-DeadLetters")}
    assert sorted(letters) == [f"{SHARD}#{_seq(i)}" for i in range(6, 10)]
    assert "amount" in letters[f"{SHARD}#{_seq(8)}"]
    assert _profile_counts(aws["dynamodb"]) == {"u0": 2, "u1": 2, "u2": 2}

    # Lambda redelivers the same batch (e.g. after a timeout): the same container's pipeline
    # is reused, and nothing is counted twice.
    assert entry.handler(event, None) == {"batchItemFailures": []}
    assert entry._consumer is consumer
    assert consumer.invocations == 2
    assert _profile_counts(aws["dynamodb"]) == {"u0": 2, "u1": 2, "u2": 2}
    assert len(_scan(aws["dynamodb"], "t-DeadLetters")) == 4


def test_a_failed_effect_reports_the_first_unfinished_record_and_a_retry_completes_it(
    aws: dict[str, Any],
) -> None:
    from fraud.lambda_handler import LambdaConsumer

    consumer = LambdaConsumer(_pipeline(aws), chunk_records=3)
    # tx4 pays with a device on the deny list: a block, published on the decisions stream,
    # which does not exist yet, so its chunk (tx3..tx5) cannot finish.
    payloads = [_tx(i, device_id="d-stolen" if i == 4 else f"d{i % 3}") for i in range(9)]
    answer = consumer.process(_event(payloads), None)

    assert answer == {"batchItemFailures": [{"itemIdentifier": _seq(3)}]}
    history = _scan(aws["dynamodb"], "t-TransactionHistory")
    assert sorted(i["transaction_id"]["S"] for i in history) == ["tx0", "tx1", "tx2"]
    decision = {i["transaction_id"]["S"]: i for i in _scan(aws["dynamodb"], "t-Decisions")}
    assert decision["tx4"]["action"]["S"] == "block"
    assert decision["tx4"]["effects"]["S"] == "pending"

    # Lambda retries from the reported record; now the stream exists.
    aws["kinesis"].create_stream(StreamName="decisions", ShardCount=1)
    assert consumer.process(_event(payloads[3:], first=3), None) == {"batchItemFailures": []}
    history = _scan(aws["dynamodb"], "t-TransactionHistory")
    assert sorted(i["transaction_id"]["S"] for i in history) == [f"tx{i}" for i in range(9)]
    decision = {i["transaction_id"]["S"]: i for i in _scan(aws["dynamodb"], "t-Decisions")}
    assert decision["tx4"]["effects"]["S"] == "done"
    shard = aws["kinesis"].list_shards(StreamName="decisions")["Shards"][0]["ShardId"]
    iterator = aws["kinesis"].get_shard_iterator(StreamName="decisions", ShardId=shard,
                                                 ShardIteratorType="TRIM_HORIZON")
    published = aws["kinesis"].get_records(ShardIterator=iterator["ShardIterator"])["Records"]
    assert [json.loads(r["Data"])["transaction_id"] for r in published] == ["tx4"]
    # tx3..tx5 went through the features twice; each customer still counts each once.
    assert _profile_counts(aws["dynamodb"]) == {"u0": 3, "u1": 3, "u2": 3}


class _Recorder:
    """A fake `BatchHandler` that records calls and fails where told."""

    def __init__(self, fail_flush: bool = False) -> None:
        self.calls: list[tuple[str, list[str]]] = []
        self.lost: list[str] = []
        self.flushed: list[str] = []
        self.fail_flush = fail_flush

    def handle(self, shard_id: str, records: Sequence[StreamRecord]) -> None:
        self.calls.append((shard_id, [r.sequence_number for r in records]))

    def on_lease_lost(self, shard_id: str) -> None:
        self.lost.append(shard_id)

    def flush(self, shard_id: str) -> None:
        self.flushed.append(shard_id)
        if self.fail_flush:
            raise StoreError("S3 down")


class _Context:
    def __init__(self, remaining: list[int]) -> None:
        self.remaining = remaining

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining.pop(0)


def test_a_batch_that_would_time_out_stops_between_chunks_and_says_where() -> None:
    from fraud.lambda_handler import LambdaConsumer

    fake = _Recorder()
    consumer = LambdaConsumer(fake, chunk_records=2, reserve_ms=5_000)
    answer = consumer.process(_event([_tx(i) for i in range(5)]), _Context([60_000, 4_000]))
    assert answer == {"batchItemFailures": [{"itemIdentifier": _seq(2)}]}
    assert fake.calls == [(SHARD, [_seq(0), _seq(1)])]
    assert fake.flushed == [SHARD]  # what was done is made durable before answering


def test_each_shard_is_handled_apart_and_a_failed_flush_retries_the_whole_group() -> None:
    from fraud.lambda_handler import LambdaConsumer

    fake = _Recorder(fail_flush=True)
    event = _event([_tx(0), _tx(1)], shard="shardId-a")
    event["Records"] += _event([_tx(2)], first=2, shard="shardId-b")["Records"]
    answer = LambdaConsumer(fake).process(event)
    assert answer == {"batchItemFailures": [{"itemIdentifier": _seq(0)},
                                            {"itemIdentifier": _seq(2)}]}
    assert fake.calls == [("shardId-a", [_seq(0), _seq(1)]), ("shardId-b", [_seq(2)])]
    # Cached state is dropped before each shard's records: another container may have
    # processed that shard since.
    assert fake.lost == ["shardId-a", "shardId-b"]


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({}, "'Records' list"),
        ([], "got list"),
        ({"Records": [{"eventSource": "aws:sqs", "body": "{}"}]}, "Records[0]: eventSource"),
        ({"Records": [{"eventSource": "aws:kinesis", "eventID": "shardId-0:1",
                       "kinesis": {"data": "e30="}}]}, "Records[0].kinesis: missing "
                                                       "'sequenceNumber'"),
        ({"Records": [{"eventID": "no-colon", "kinesis": {"sequenceNumber": "1",
                                                          "data": "e30="}}]}, "eventID"),
    ],
)
def test_an_event_that_is_not_from_kinesis_is_a_clear_error(event: Any, message: str) -> None:
    from fraud.lambda_handler import records_from_event

    with pytest.raises(InputError, match=message.replace("[", r"\[").replace("]", r"\]")):
        records_from_event(event)


def test_records_are_wrapped_without_showing_their_payload() -> None:
    from fraud.lambda_handler import records_from_event

    (record,) = records_from_event(_event([b'{"card": "4111111111111111"}']))
    assert record.shard_id == SHARD
    assert record.data == b'{"card": "4111111111111111"}'
    assert record.arrival_ms == 1_709_294_399_250
    assert "4111" not in repr(record) and "u0" not in repr(record)


def test_a_batch_retried_in_another_container_keeps_its_history(aws: dict[str, Any]) -> None:
    from fraud.lambda_handler import LambdaConsumer

    aws["kinesis"].create_stream(StreamName="decisions", ShardCount=1)
    payloads = [_tx(i, amount=20.0 + i) for i in range(12)]
    event = _event(payloads)

    def history() -> dict[str, tuple[str, str]]:
        return {i["transaction_id"]["S"]: (i.get("score", {}).get("N", ""),
                                           i.get("action", {}).get("S", ""))
                for i in _scan(aws["dynamodb"], "t-TransactionHistory")}

    assert LambdaConsumer(_pipeline(aws)).process(event) == {"batchItemFailures": []}
    first = history()
    # The invocation timed out after its effects; Lambda retries it in a new container.
    assert LambdaConsumer(_pipeline(aws)).process(event) == {"batchItemFailures": []}
    assert _profile_counts(aws["dynamodb"]) == {"u0": 4, "u1": 4, "u2": 4}
    assert history() == first
