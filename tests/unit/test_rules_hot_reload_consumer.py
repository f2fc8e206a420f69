"""Hot reload through the consumer's handler (moto in process): each batch is decided by the
rules in force when it started, a valid edit is picked up by the next batch, and an invalid
edit is refused with the last good rules kept - every decision names its rules version."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from fraud.config import Settings
from fraud.rules import load_rules
from fraud.stream.processor import StreamRecord
from tests.conftest import dummy_aws_env

ROOT = Path(__file__).resolve().parents[2]
RULES = """\
version: 1
rules:
  - id: everything
    description: flag everything
    when: amount > {limit}
    action: flag
    reason: "{tag}"
"""


@pytest.fixture()
def aws() -> Iterator[dict[str, Any]]:
    from moto import mock_aws

    with dummy_aws_env(), mock_aws():
        yield {s: boto3.client(s, region_name="us-east-1")
               for s in ("dynamodb", "s3", "sns", "kinesis")}


def _record(seq: int) -> StreamRecord:
    body = {"transaction_id": f"tx{seq}", "timestamp": "2024-03-01T12:00:00Z",
            "user_id": f"u{seq}", "terminal_id": "m1", "amount": 20.0}
    return StreamRecord(shard_id="shardId-0", sequence_number=f"{seq:056d}",
                        sub_sequence_number=None, partition_key="k",
                        data=json.dumps(body).encode(), arrival_ms=1_709_294_399_000)


def test_consumer_swaps_valid_rules_between_batches_and_refuses_invalid_ones(
    aws: dict[str, Any], tmp_path: Path
) -> None:
    from fraud.store.dynamo import Dynamo
    from fraud.store.tables import create_tables
    from fraud.stream.handler import PipelineHandler

    path = tmp_path / "rules.yaml"
    path.write_text(RULES.format(limit=0, tag="first"))
    first = load_rules(str(path)).version
    create_tables(Dynamo(aws["dynamodb"], prefix="t-"))
    aws["kinesis"].create_stream(StreamName="decisions", ShardCount=1)
    settings = Settings(model_dir=ROOT / "models" / "default", rules_path=str(path),
                        table_prefix="t-", stream_name="tx", decisions_stream="decisions",
                        alert_topic="alerts", rules_reload_seconds=1e-9)
    handler = PipelineHandler(settings, clients=aws, clock=lambda: 1_709_294_400.0)

    handler.handle("shardId-0", [_record(0), _record(1)])
    path.write_text(RULES.format(limit=1, tag="second rules"))
    second = load_rules(str(path)).version
    handler.handle("shardId-0", [_record(2), _record(3)])
    path.write_text(RULES.format(limit="amout", tag="broken"))  # refused: unknown name
    handler.handle("shardId-0", [_record(4)])

    items = aws["dynamodb"].scan(TableName="t-Decisions")["Items"]
    version = {i["transaction_id"]["S"]: i["rules_version"]["S"] for i in items}
    assert first != second
    assert version == {"tx0": first, "tx1": first, "tx2": second, "tx3": second, "tx4": second}
    assert handler.rules.current.version == second
