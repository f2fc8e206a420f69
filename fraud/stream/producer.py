"""Put transactions onto the Kinesis stream with PutRecords, within Kinesis's limits.

The pure part plans calls: at most 500 records and 5 MiB per call, 1 MiB per record (data plus
partition key), and by default at most one record per partition key per call. That last rule
keeps each customer's records in order even when a call partially fails: the failed record is
retried (with backoff, until accepted) before the next call can carry the same customer again.

The I/O part (`put_all`) sends the calls through an injected client, clock and sleep, so tests
drive it with a fake client and a fake clock.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Protocol

import numpy as np

from fraud.errors import InputError, StoreError
from fraud.logs import get_logger
from fraud.schema.batch import (
    MISSING_TIME,
    OPTIONAL_FLOAT_FIELDS,
    OPTIONAL_STRING_FIELDS,
    TransactionBatch,
)

__all__ = [
    "MAX_BYTES_PER_CALL",
    "MAX_BYTES_PER_RECORD",
    "MAX_RECORDS_PER_CALL",
    "Entry",
    "ProduceStats",
    "PutRecordsClient",
    "encode_batch",
    "encode_rows",
    "plan_batches",
    "put_all",
]

log = get_logger(__name__)

MAX_RECORDS_PER_CALL = 500
MAX_BYTES_PER_CALL = 5 * 1024 * 1024
MAX_BYTES_PER_RECORD = 1024 * 1024
MAX_PARTITION_KEY = 256


@dataclass(frozen=True, slots=True)
class Entry:
    """One record to put. `position` says where it came from (e.g. ``file.csv:12``)."""

    partition_key: str = field(repr=False)
    data: bytes = field(repr=False)
    position: str = ""

    @property
    def size(self) -> int:
        """What Kinesis counts against its limits: data plus the UTF-8 partition key."""
        return len(self.data) + len(self.partition_key.encode("utf-8"))

    def __repr__(self) -> str:
        return f"Entry(position={self.position!r}, size={self.size})"


class PutRecordsClient(Protocol):
    """The part of a boto3 Kinesis client the producer uses."""

    def put_records(self, *, StreamName: str, Records: Any) -> Any: ...


@dataclass(slots=True)
class ProduceStats:
    records: int = 0
    bytes: int = 0
    calls: int = 0
    retried_records: int = 0
    seconds: float = 0.0

    @property
    def records_per_second(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None  # NaN is not JSON; a missing optional value is null on the wire
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def _partition_key(position: str, field_name: str, text: str) -> str:
    if not text or len(text) > MAX_PARTITION_KEY:
        raise InputError(
            f"{position}: {field_name}: partition key must be 1-{MAX_PARTITION_KEY} "
            f"characters, got {len(text)}"
        )
    return text


def encode_rows(
    rows: Iterable[tuple[str, Mapping[str, Any]]], key_field: str = "user_id"
) -> Iterator[Entry]:
    """``(position, row)`` pairs -> entries: compact JSON data, partition key = `key_field`."""
    for position, row in rows:
        key = row.get(key_field)
        key_text = _partition_key(position, key_field, "" if key is None else str(key))
        payload = {k: _jsonable(v) for k, v in row.items()}
        data = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        yield Entry(key_text, data, position)


def encode_batch(batch: TransactionBatch, source: str = "") -> Iterator[Entry]:
    """A validated batch -> entries whose JSON the consumer's parser reads back to the same row.

    Canonical fields only where set (missing optionals are left out, not sent as ""/NaN),
    timestamps as ISO-8601 UTC with microseconds, extra columns carried as they are.
    """
    n = len(batch)
    if n == 0:
        return
    stamps = np.datetime_as_string(batch.timestamp_us.astype("datetime64[us]"), unit="us")
    labels = np.datetime_as_string(
        np.where(batch.label_time_us == MISSING_TIME, 0, batch.label_time_us)
        .astype("datetime64[us]"), unit="us",
    )
    for i in range(n):
        row: dict[str, Any] = {
            "transaction_id": batch.transaction_id[i],
            "timestamp": f"{stamps[i]}Z",
            "user_id": batch.user_id[i],
            "terminal_id": batch.terminal_id[i],
            "amount": float(batch.amount[i]),
        }
        for name in OPTIONAL_STRING_FIELDS:
            value = getattr(batch, name)[i]
            if value:
                row[name] = value
        for name in OPTIONAL_FLOAT_FIELDS:
            number = float(getattr(batch, name)[i])
            if math.isfinite(number):
                row[name] = number
        if batch.is_fraud[i] >= 0:
            row["is_fraud"] = int(batch.is_fraud[i])
        if batch.label_time_us[i] != MISSING_TIME:
            row["label_time"] = f"{labels[i]}Z"
        for name, column in batch.extra.items():
            row.setdefault(name, _jsonable(column[i].item() if hasattr(column[i], "item")
                                           else column[i]))
        data = json.dumps(row, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        position = f"{source}{batch.position[i]}"
        yield Entry(_partition_key(position, "user_id", str(batch.user_id[i])), data, position)


def plan_batches(
    entries: Iterable[Entry],
    *,
    max_records: int = MAX_RECORDS_PER_CALL,
    max_bytes: int = MAX_BYTES_PER_CALL,
    one_per_key: bool = True,
) -> Iterator[list[Entry]]:
    """Group entries, in order, into PutRecords calls that respect every limit."""
    batch: list[Entry] = []
    size = 0
    keys: set[str] = set()
    for entry in entries:
        if entry.size > MAX_BYTES_PER_RECORD:
            raise InputError(
                f"{entry.position}: record is {entry.size} bytes; Kinesis accepts at most "
                f"{MAX_BYTES_PER_RECORD} (data plus partition key)"
            )
        full = len(batch) >= max_records or size + entry.size > max_bytes
        if batch and (full or (one_per_key and entry.partition_key in keys)):
            yield batch
            batch, size, keys = [], 0, set()
        batch.append(entry)
        size += entry.size
        keys.add(entry.partition_key)
    if batch:
        yield batch


def _send(client: PutRecordsClient, stream: str, batch: list[Entry]) -> list[tuple[Entry, str]]:
    """One PutRecords call; returns the entries that failed, with their error codes."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        response = client.put_records(
            StreamName=stream,
            Records=[{"Data": e.data, "PartitionKey": e.partition_key} for e in batch],
        )
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("ProvisionedThroughputExceededException", "LimitExceededException",
                    "ThrottlingException", "InternalFailure", "ServiceUnavailable"):
            return [(e, code) for e in batch]
        raise StoreError(f"PutRecords to {stream}: {exc}") from exc
    except BotoCoreError as exc:
        raise StoreError(f"PutRecords to {stream}: {exc}") from exc
    if not response.get("FailedRecordCount"):
        return []
    results = response.get("Records", [])
    return [(e, str(r.get("ErrorCode"))) for e, r in zip(batch, results, strict=True)
            if r.get("ErrorCode")]


def put_all(
    client: PutRecordsClient,
    stream: str,
    batches: Iterable[list[Entry]],
    *,
    rate: float | None = None,
    max_attempts: int | None = None,
    backoff: float = 0.1,
    max_backoff: float = 5.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    on_progress: Callable[[int], None] | None = None,
) -> ProduceStats:
    """Send every batch; retry failed records until accepted; hold `rate` records/s if set.

    `max_attempts` bounds the tries per record (None: forever, as a producer of record should;
    failures Kinesis reports per record are throttling or internal errors, both transient).
    """
    stats = ProduceStats()
    started = clock()
    for planned in batches:
        pending = planned
        attempt = 0
        while pending:
            if rate:
                # Hold the average: the n-th record may not leave before n / rate seconds.
                due = started + (stats.records + len(pending)) / rate
                wait = due - clock()
                if wait > 0:
                    sleep(wait)
            attempt += 1
            failed = _send(client, stream, pending)
            stats.calls += 1
            accepted = len(pending) - len(failed)
            stats.records += accepted
            stats.bytes += sum(e.size for e in pending) - sum(e.size for e, _ in failed)
            if on_progress is not None and accepted:
                on_progress(accepted)
            if not failed:
                break
            stats.retried_records += len(failed)
            codes = sorted({c for _, c in failed})
            if max_attempts is not None and attempt >= max_attempts:
                raise StoreError(
                    f"PutRecords to {stream}: {len(failed)} record(s) still failing after "
                    f"{attempt} attempts ({', '.join(codes)}); first at {failed[0][0].position}"
                )
            log.warning("put_records_retry", stream=stream, failed=len(failed), codes=codes,
                        attempt=attempt)
            sleep(min(max_backoff, backoff * 2 ** (attempt - 1)))
            pending = [e for e, _ in failed]
    stats.seconds = clock() - started
    return stats
