"""The S3 archive of every decided transaction: the loop from live stream to retrained model.

Rows are buffered and written as date-partitioned objects::

    s3://bucket/prefix/dt=YYYY-MM-DD/part-<shard>-<first sequence number>.parquet

partitioned by the transaction's *event* date (UTC), flushed when the buffer holds
`max_rows` rows or about `max_bytes` bytes, when its oldest row has waited `max_seconds`
(by the clock passed in; `maybe_flush` checks without adding), and on `flush` (shard end,
shutdown). Columns are the canonical transaction fields (timestamp and label_time as ISO-8601
UTC strings) plus the decision (score, action, rules, reasons, versions, model reasons), every
feature, the source shard and sequence number, and the batch's extra columns - so
``read_transactions("s3://bucket/prefix")`` (and with it ``fraud train`` / ``fraud replay``)
reads an archive like any transaction file.

Object names are deterministic: the shard and the first sequence number of the rows in the
object (rows that did not come from a stream are named by a hash of their transaction ids).
A redelivered batch that regroups from the same first record overwrites its object instead of
adding a second copy. A regrouping that starts elsewhere can still leave a row in two objects;
``read_transactions`` refuses the second copy as a duplicate transaction_id, so it is never
counted twice. Rows only in the buffer are not durable: see `oldest_buffered` for where a
checkpoint may safely go.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from botocore.exceptions import BotoCoreError, ClientError

from fraud.actions.s3input import parse_s3_uri
from fraud.errors import ConfigError, StoreError
from fraud.logs import get_logger
from fraud.pipeline import Outcome, iso_timestamps, output_columns
from fraud.schema.batch import MISSING_TIME, OPTIONAL_FLOAT_FIELDS, OPTIONAL_STRING_FIELDS

__all__ = ["ARCHIVE_FORMATS", "Archive", "ArchivedObject", "archive_columns"]

ARCHIVE_FORMATS = ("parquet", "jsonl")
_US_PER_DAY = 86_400_000_000
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_CONTENT_TYPE = {"parquet": "application/vnd.apache.parquet", "jsonl": "application/x-ndjson"}

_log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class ArchivedObject:
    """One object written: its key, row count and size."""

    key: str
    rows: int
    bytes: int


def _nullable(values: npt.NDArray[Any]) -> pa.Array:
    """A column with NaN (floats) as null: JSON has no NaN, and null reads back as missing."""
    if values.dtype == object:
        return pa.array(values.tolist(), type=pa.string())
    if values.dtype.kind == "f":
        return pa.array(values, mask=np.isnan(values))
    return pa.array(values)


def archive_columns(outcome: Outcome, shard_id: str = "") -> dict[str, npt.NDArray[Any]]:
    """The archive row of every transaction of `outcome`, canonical fields first."""
    b = outcome.batch
    n = len(b)
    decided = output_columns(outcome)
    cols: dict[str, npt.NDArray[Any]] = {
        "transaction_id": b.transaction_id, "timestamp": decided["timestamp"],
        "user_id": b.user_id, "terminal_id": b.terminal_id, "amount": b.amount,
    }
    for name in (*OPTIONAL_STRING_FIELDS, *OPTIONAL_FLOAT_FIELDS):
        cols[name] = getattr(b, name)
    if b.has_labels():
        labelled = b.is_fraud >= 0
        cols["is_fraud"] = np.where(labelled, b.is_fraud, np.nan)
        known = b.label_time_us != MISSING_TIME
        times = iso_timestamps(np.where(known, b.label_time_us, 0))
        times[~known] = None
        cols["label_time"] = times
    for name in ("score", "action", "rules", "reasons", "model_version", "rules_version",
                 "model_reasons"):
        cols[name] = decided[name]
    cols["shard_id"] = np.full(n, shard_id, dtype=object)
    cols["sequence_number"] = b.position
    for j, name in enumerate(outcome.features.names):
        cols[name if name not in cols else f"feature_{name}"] = outcome.features.values[:, j]
    for name, values in b.extra.items():
        if name not in cols:
            cols[name] = values
    return cols


def _to_table(columns: Mapping[str, npt.NDArray[Any]]) -> pa.Table:
    arrays = {}
    for name, values in columns.items():
        if name == "label_time":
            arrays[name] = pa.array(values.tolist(), type=pa.string())
        elif name == "is_fraud":
            arrays[name] = pa.array(values, mask=np.isnan(values)).cast(pa.int8())
        else:
            arrays[name] = _nullable(np.asarray(values))
    return pa.table(arrays)


def _sequence_key(text: str) -> int | None:
    return int(text) if text.isdigit() else None


def _part_name(shard: str, worker: str, positions: list[str], transaction_ids: list[str]
               ) -> str:
    """``part-<shard>-<first sequence number>``, or ``part-<worker>-<content hash>`` for rows
    that did not come from a shard (their positions are lines, not sequence numbers)."""
    numbers = [_sequence_key(p) for p in positions] if shard else []
    if numbers and all(v is not None for v in numbers):
        first = str(min(v for v in numbers if v is not None))
    else:  # not from a stream (a replay, a test): name by content
        digest = hashlib.sha256("\n".join(sorted(transaction_ids)).encode()).hexdigest()
        first = digest[:20]
    return f"part-{_SAFE_NAME.sub('_', shard or worker) or 'worker'}-{first}"


class Archive:
    """Buffers decided transactions and writes them to S3 in date-partitioned objects.

    `s3` is a boto3 S3 client, `uri` ``s3://bucket/prefix``, `clock` seconds since the epoch;
    `worker` names objects of rows that came without a shard id.
    """

    def __init__(
        self,
        s3: Any,
        uri: str,
        *,
        clock: Callable[[], float],
        fmt: str = "parquet",
        max_rows: int = 100_000,
        max_bytes: int = 64 * 1024 * 1024,
        max_seconds: float = 300.0,
        worker: str = "worker",
    ) -> None:
        if fmt not in ARCHIVE_FORMATS:
            raise ConfigError(f"archive format {fmt!r} is not one of {', '.join(ARCHIVE_FORMATS)}")
        if max_rows < 1 or max_bytes < 1 or max_seconds < 0:
            raise ConfigError("archive limits must be positive (rows, bytes) and >= 0 (seconds)")
        self.s3 = s3
        self.bucket, self.prefix = parse_s3_uri(uri)
        self.uri = uri
        self.clock = clock
        self.format = fmt
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self.max_seconds = max_seconds
        self.worker = worker
        self._tables: list[pa.Table] = []
        self._days: list[npt.NDArray[np.int64]] = []  # event date (days since epoch) per row
        self._rows = 0
        self._bytes = 0
        self._since: float | None = None
        self.written: list[ArchivedObject] = []

    def __repr__(self) -> str:
        return f"Archive({self.uri!r}, buffered={self._rows})"

    @property
    def buffered_rows(self) -> int:
        return self._rows

    def add(self, outcome: Outcome, *, shard_id: str = "", first_sequence: str = "",
            last_sequence: str = "") -> list[ArchivedObject]:
        """Buffer every row of `outcome`; flush if a limit is reached. Returns objects written.

        With a `shard_id`, the rows' positions are their sequence numbers and name the
        objects; without one, objects are named by `worker` and a hash of their transaction
        ids. `first_sequence` / `last_sequence` are accepted for symmetry with the handler and
        not needed (each row carries its own sequence number).
        """
        if len(outcome) == 0:
            return self.maybe_flush()
        table = _to_table(archive_columns(outcome, shard_id))
        self._tables.append(table)
        self._days.append(outcome.batch.timestamp_us // _US_PER_DAY)
        self._rows += table.num_rows
        self._bytes += table.nbytes
        if self._since is None:
            self._since = self.clock()
        if self._rows >= self.max_rows or self._bytes >= self.max_bytes:
            return self.flush()
        return self.maybe_flush()

    def maybe_flush(self) -> list[ArchivedObject]:
        """Flush if the oldest buffered row has waited `max_seconds` (call it when idle)."""
        if self._since is not None and self.clock() - self._since >= self.max_seconds:
            return self.flush()
        return []

    def oldest_buffered(self, shard_id: str) -> str | None:
        """The lowest sequence number of `shard_id` held only in memory (None: all durable).

        A checkpoint must stay before it, or a crash loses those rows from the archive.
        """
        lowest: int | None = None
        for table in self._tables:
            mask = pc.equal(table.column("shard_id"), shard_id)
            for text in table.column("sequence_number").filter(mask).to_pylist():
                value = _sequence_key(str(text))
                if value is not None and (lowest is None or value < lowest):
                    lowest = value
        return None if lowest is None else str(lowest)

    def flush(self) -> list[ArchivedObject]:
        """Write everything buffered, one object per (shard, event date). Idempotent names.

        On an S3 error the rows stay buffered (nothing is lost) and `StoreError` is raised.
        """
        if not self._tables:
            self._since = None
            return []
        table = pa.concat_tables(self._tables, promote_options="permissive")
        days = np.concatenate(self._days)
        shards = np.asarray(table.column("shard_id").to_pylist(), dtype=object)
        written: list[ArchivedObject] = []
        groups = sorted({(str(s), int(d)) for s, d in zip(shards, days, strict=True)})
        for shard, day in groups:
            part = table.filter(pa.array((shards == shard) & (days == day)))
            written.append(self._put(shard, day, part))
        self._tables, self._days, self._rows, self._bytes = [], [], 0, 0
        self._since = None
        self.written.extend(written)
        _log.info("archive.flushed", objects=len(written), rows=table.num_rows)
        return written

    def _put(self, shard: str, day: int, part: pa.Table) -> ArchivedObject:
        date = np.datetime_as_string(np.datetime64(day, "D"))
        positions = [str(p) for p in part.column("sequence_number").to_pylist()]
        ids = [str(t) for t in part.column("transaction_id").to_pylist()]
        name = _part_name(shard, self.worker, positions, ids)
        key = f"{self.prefix}dt={date}/{name}.{self.format}"
        body = _serialise(part, self.format)
        try:
            self.s3.put_object(Bucket=self.bucket, Key=key, Body=body,
                               ContentType=_CONTENT_TYPE[self.format])
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"S3 put_object s3://{self.bucket}/{key}: {exc}") from exc
        return ArchivedObject(key, part.num_rows, len(body))


def _finite(value: Any) -> Any:
    # JSON has no infinities (NaN is already null): a feature at +-inf is stored as missing.
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _serialise(table: pa.Table, fmt: str) -> bytes:
    if fmt == "parquet":
        sink = io.BytesIO()
        pq.write_table(table, sink, compression="zstd")
        return sink.getvalue()
    lines = [json.dumps({k: _finite(v) for k, v in row.items()}, separators=(",", ":"),
                        allow_nan=False)
             for row in table.to_pylist()]
    return ("\n".join(lines) + "\n").encode()
