"""The consumer's pipeline handler over moto (in process): every record gets an outcome,
bad ones are dead-lettered, redelivery repeats no effect, the checkpoint waits for the archive.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import boto3
import pytest

from fraud.config import Settings
from fraud.stream.processor import StreamRecord
from tests.conftest import dummy_aws_env

ROOT = Path(__file__).resolve().parents[2]
T0 = "2024-03-01T12:00:00Z"


@pytest.fixture()
def aws() -> Iterator[dict[str, Any]]:
    from moto import mock_aws

    with dummy_aws_env(), mock_aws():
        yield {s: boto3.client(s, region_name="us-east-1")
               for s in ("dynamodb", "s3", "sns", "kinesis")}


def _settings(archive: bool) -> Settings:
    return Settings(model_dir=ROOT / "models" / "default",
                    rules_path=str(ROOT / "rules" / "default.yaml"),
                    table_prefix="t-", stream_name="tx", decisions_stream="decisions",
                    alert_topic="alerts", rules_reload_seconds=0,
                    archive_uri="s3://archive/decided" if archive else None)


def _handler(aws: dict[str, Any], archive: bool = False) -> Any:
    from fraud.store.dynamo import Dynamo
    from fraud.store.tables import create_tables
    from fraud.stream.handler import PipelineHandler

    create_tables(Dynamo(aws["dynamodb"], prefix="t-"))
    aws["kinesis"].create_stream(StreamName="decisions", ShardCount=1)
    aws["s3"].create_bucket(Bucket="archive")
    return PipelineHandler(_settings(archive), clients=aws, clock=lambda: 1_709_294_400.0)


def _record(seq: int, payload: bytes) -> StreamRecord:
    return StreamRecord(shard_id="shardId-0", sequence_number=f"{seq:056d}",
                        sub_sequence_number=None, partition_key="k", data=payload,
                        arrival_ms=1_709_294_399_000)


def _tx(i: int, amount: float = 20.0, **extra: Any) -> bytes:
    body = {"transaction_id": f"tx{i}", "timestamp": T0, "user_id": f"u{i % 4}",
            "terminal_id": f"m{i % 3}", "amount": amount, **extra}
    return json.dumps(body).encode()


def _scan(client: Any, table: str) -> list[dict[str, Any]]:
    return client.scan(TableName=table)["Items"]


def test_good_records_are_decided_and_bad_ones_dead_lettered(aws: dict[str, Any]) -> None:
    handler = _handler(aws)
    records = [_record(i, _tx(i)) for i in range(6)]
    records += [_record(6, b"\xff\xfe not utf-8"), _record(7, b'{"transaction_id": "x"'),
                _record(8, _tx(8, amount=-5.0))]
    handler.handle("shardId-0", records)

    history = _scan(aws["dynamodb"], "t-TransactionHistory")
    assert sorted(i["transaction_id"]["S"] for i in history) == [f"tx{i}" for i in range(6)]
    assert all("decided_at" in i and "arrival_ms" in i for i in history)
    letters = _scan(aws["dynamodb"], "t-DeadLetters")
    assert sorted(i["sequence"]["S"][-1] for i in letters) == ["6", "7", "8"]
    reasons = " ".join(i["error"]["S"] for i in letters)
    assert "amount" in reasons
    assert handler.durable_position("shardId-0") == (records[-1].sequence_number, None)


def test_payload_columns_map_another_producers_field_names(aws: dict[str, Any]) -> None:
    from fraud.config import build_settings
    from fraud.store.dynamo import Dynamo
    from fraud.store.tables import create_tables
    from fraud.stream.handler import PipelineHandler

    mapping = "transaction_id=TRANSACTION_ID,timestamp=TX_DATETIME,user_id=CUSTOMER_ID," \
              "terminal_id=TERMINAL_ID,amount=TX_AMOUNT"
    columns = build_settings({}, environ={"FRAUD_PAYLOAD_COLUMNS": mapping}).payload_columns
    create_tables(Dynamo(aws["dynamodb"], prefix="t-"))
    aws["kinesis"].create_stream(StreamName="decisions", ShardCount=1)
    handler = PipelineHandler(replace(_settings(False), payload_columns=columns), clients=aws,
                              clock=lambda: 1_709_294_400.0)
    foreign = [{"TRANSACTION_ID": i, "TX_DATETIME": "2024-03-01 11:59:0" + str(i),
                "CUSTOMER_ID": 596, "TERMINAL_ID": 3156, "TX_AMOUNT": 57.16} for i in range(3)]
    records = [_record(i, json.dumps(r).encode()) for i, r in enumerate(foreign)]
    records.append(_record(3, _tx(3)))  # canonical names are not what this stream speaks
    handler.handle("shardId-0", records)

    history = _scan(aws["dynamodb"], "t-TransactionHistory")
    assert sorted(i["transaction_id"]["S"] for i in history) == ["0", "1", "2"]
    assert {i["user_id"]["S"] for i in history} == {"596"}
    (letter,) = _scan(aws["dynamodb"], "t-DeadLetters")
    assert "transaction_id: missing required field" in letter["error"]["S"]


def test_redelivery_repeats_no_effect(aws: dict[str, Any]) -> None:
    handler = _handler(aws)
    # A huge amount on a new card: the default rules act on it.
    records = [_record(i, _tx(i)) for i in range(4)] + [_record(9, _tx(9, amount=25_000.0))]
    handler.handle("shardId-0", records)
    decisions = _scan(aws["dynamodb"], "t-Decisions")
    assert decisions, "the default rules should act on the outlier"
    profiles = _scan(aws["dynamodb"], "t-UserProfiles")
    handler.handle("shardId-0", records)  # redelivered after a crash before the checkpoint
    assert _scan(aws["dynamodb"], "t-Decisions") == decisions
    again = {i["user_id"]["S"]: i for i in _scan(aws["dynamodb"], "t-UserProfiles")}
    assert {i["user_id"]["S"]: i for i in profiles} == again


def test_a_recorded_decision_wins_over_a_different_redelivered_outcome(
    aws: dict[str, Any], tmp_path: Path
) -> None:
    """A crash after the decision was written but before its alert and its history: the
    redelivered row is decided against a state that already holds it and may come out
    differently (here: rules that act on nothing); the recorded decision still goes out."""
    from fraud.stream.handler import PipelineHandler

    handler = _handler(aws)
    records = [_record(i, _tx(i)) for i in range(4)] + [_record(9, _tx(9, amount=25_000.0))]
    handler.handle("shardId-0", records)
    ddb = aws["dynamodb"]
    (decision,) = _scan(ddb, "t-Decisions")
    tid = decision["transaction_id"]["S"]
    # Roll the outlier back to "decision written, nothing else": effects pending, no history.
    ddb.update_item(TableName="t-Decisions", Key={"transaction_id": {"S": tid}},
                    UpdateExpression="SET effects = :p", ExpressionAttributeValues={
                        ":p": {"S": "pending"}})
    (item,) = [i for i in _scan(ddb, "t-TransactionHistory") if i["transaction_id"]["S"] == tid]
    ddb.delete_item(TableName="t-TransactionHistory",
                    Key={"user_id": item["user_id"], "sk": item["sk"]})
    quiet = tmp_path / "quiet.yaml"
    quiet.write_text("version: 1\nname: quiet\nrules:\n  - id: never\n    description: no\n"
                     "    when: amount < 0\n"
                     "    action: flag\n    reason: never\n")
    restarted = PipelineHandler(replace(_settings(False), rules_path=str(quiet)), clients=aws,
                                clock=lambda: 1_709_294_500.0)
    restarted.handle("shardId-0", records)

    (after,) = _scan(ddb, "t-Decisions")
    assert after["effects"]["S"] == "done"
    history = {i["transaction_id"]["S"]: i for i in _scan(ddb, "t-TransactionHistory")}
    assert history[tid]["action"]["S"] == decision["action"]["S"]
    assert len(history) == 5


def test_lease_lost_drops_every_cached_state(aws: dict[str, Any]) -> None:
    handler = _handler(aws)
    handler.handle("shardId-0", [_record(i, _tx(i)) for i in range(6)])
    assert all(n > 0 for n in handler.store.cached.values())  # users, buckets, markers
    handler.on_lease_lost("shardId-0")
    assert handler.store.cached == {"users": 0, "buckets": 0, "markers": 0}
    # The next batch reads state again instead of trusting what another worker may change.
    handler.counter.reset()
    handler.handle("shardId-0", [_record(10 + i, _tx(10 + i)) for i in range(6)])
    assert handler.counter.snapshot()["dynamodb.BatchGetItem"] >= 2  # users and terminals
    assert handler.store.cached["users"] == 4


def test_a_batch_logs_its_own_cpu_and_requests(aws: dict[str, Any],
                                               capsys: pytest.CaptureFixture[str]) -> None:
    handler = _handler(aws)
    handler.handle("shardId-0", [_record(i, _tx(i)) for i in range(6)])
    (event,) = [json.loads(line) for line in capsys.readouterr().err.splitlines()
                if '"batch_decided"' in line]
    assert event["dynamodb_requests"] == handler.counter.total("dynamodb") > 0
    assert event["cpu_seconds"] > 0


def test_checkpoint_waits_for_the_archive(aws: dict[str, Any]) -> None:
    handler = _handler(aws, archive=True)
    records = [_record(i, _tx(i)) for i in range(3)]
    handler.handle("shardId-0", records)
    assert handler.durable_position("shardId-0") is None  # rows only buffered so far
    handler.flush("shardId-0")
    assert handler.durable_position("shardId-0") == (records[-1].sequence_number, None)
    keys = [o["Key"] for o in aws["s3"].list_objects_v2(Bucket="archive")["Contents"]]
    assert keys and all(k.startswith("decided/dt=2024-03-01/") for k in keys)


def test_settings_paths_survive_a_changed_working_directory() -> None:
    from fraud.stream.daemon import absolute_paths

    s = absolute_paths(replace(Settings(), rules_path="rules/default.yaml"))
    assert Path(s.rules_path).is_absolute()
    assert s.model_dir.is_absolute()
    assert absolute_paths(replace(s, rules_path="s3://b/r.yaml")).rules_path == "s3://b/r.yaml"
