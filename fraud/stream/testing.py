"""Simple `BatchHandler`s for smoke tests and the e2e suite (not the fraud pipeline).

`RecordTableHandler` writes one DynamoDB item per record, keyed by the payload's
``transaction_id`` (or ``shard#sequence`` when the payload is not such JSON), with an atomic
``deliveries`` counter. The item set is the exactly-once effect (a redelivery updates the same
item); ``deliveries > 1`` shows Kinesis's at-least-once redelivery after a crash.

Use it as a daemon child: ``fraud consume --handler fraud.stream.testing:RecordTableHandler``.
`FailingHandler` never finishes a batch: it shows what an outage does to the consumer.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from fraud.config import Settings
from fraud.errors import StoreError
from fraud.logs import get_logger
from fraud.stream.processor import StreamRecord

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

__all__ = ["FailingHandler", "RecordTableHandler", "record_key", "record_table_name"]

log = get_logger(__name__)


def record_table_name(settings: Settings) -> str:
    return f"{settings.table_prefix}StreamRecords"


def record_key(record: StreamRecord) -> str:
    """The payload's transaction_id, else the record's stream position."""
    try:
        payload = json.loads(record.data)
    except ValueError:
        payload = None
    if isinstance(payload, dict) and payload.get("transaction_id") not in (None, ""):
        return str(payload["transaction_id"])
    return f"{record.shard_id}#{record.sequence_number}"


class RecordTableHandler:
    """Idempotent per-record writes into ``<prefix>StreamRecords`` (created when missing)."""

    def __init__(self, settings: Settings, client: DynamoDBClient | None = None) -> None:
        if client is None:
            import boto3

            client = boto3.client(
                "dynamodb", region_name=settings.region,
                endpoint_url=settings.aws_endpoint("dynamodb"),
            )
        self.client = client
        self.table = record_table_name(settings)
        self.batches = 0
        self._ensure_table()

    def _ensure_table(self) -> None:
        from botocore.exceptions import ClientError

        try:
            self.client.create_table(
                TableName=self.table,
                KeySchema=[{"AttributeName": "record_id", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "record_id", "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ResourceInUseException":
                raise StoreError(f"create table {self.table}: {exc}") from exc

    def handle(self, shard_id: str, records: Sequence[StreamRecord]) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        for record in records:
            try:
                self.client.update_item(
                    TableName=self.table,
                    Key={"record_id": {"S": record_key(record)}},
                    UpdateExpression=(
                        "ADD deliveries :one SET shard_id = if_not_exists(shard_id, :shard), "
                        "sequence_number = if_not_exists(sequence_number, :seq)"
                    ),
                    ExpressionAttributeValues={
                        ":one": {"N": "1"},
                        ":shard": {"S": shard_id},
                        ":seq": {"S": record.sequence_number},
                    },
                )
            except (ClientError, BotoCoreError) as exc:
                raise StoreError(f"write {self.table}: {exc}") from exc
        self.batches += 1
        log.info("records_stored", shard_id=shard_id, records=len(records))

    def on_lease_lost(self, shard_id: str) -> None:
        log.info("lease_lost_noted", shard_id=shard_id)

    def flush(self, shard_id: str) -> None:
        """Nothing is buffered: every write is durable when `handle` returns."""

    @staticmethod
    def stored(client: Any, table: str) -> dict[str, int]:
        """record_id -> deliveries, read back by tests (a full scan: small tables only).

        moto's server applies an update's actions one after the other without isolation, so
        a scan beside an update can see the item before its ``ADD``: such an item is left out
        (the next scan sees it whole).
        """
        out: dict[str, int] = {}
        for page in client.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
            for item in page["Items"]:
                if "deliveries" in item:
                    out[item["record_id"]["S"]] = int(item["deliveries"]["N"])
        return out


class FailingHandler:
    """Every batch fails (as if DynamoDB were down): the worker must stop, not checkpoint."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def handle(self, shard_id: str, records: Sequence[StreamRecord]) -> None:
        raise StoreError(f"simulated outage while handling {len(records)} record(s)")

    def on_lease_lost(self, shard_id: str) -> None:
        """Nothing cached."""

    def flush(self, shard_id: str) -> None:
        """Nothing buffered."""
