"""AWS Lambda entry point: the consumer's pipeline behind a Kinesis event source mapping.

The third way in, next to `fraud consume` (KCL) and `fraud replay`: Lambda polls the shards,
and calls `handler` with a batch of one shard's records. It runs the very `BatchHandler` the
KCL record processor runs (by default `fraud.stream.handler.PipelineHandler`, or the factory
named by ``FRAUD_KCL_HANDLER``), built once per container from the ``FRAUD_*`` environment
and reused by every invocation that container serves.

Configure the event source mapping with ``FunctionResponseTypes: [ReportBatchItemFailures]``.
The answer follows those semantics:

* a bad record (not JSON, wrong schema, too big) is dead-lettered by the handler and counts
  as processed: it is never reported, so it can never block its shard;
* when records could not be processed (DynamoDB down, a publish failed, the time budget ran
  out), the answer names the *first* such record; Lambda treats every record before it as
  done and retries from it. Effects are idempotent by transaction id, so the part of a failed
  chunk that did land is harmless when retried;
* no failure: ``{"batchItemFailures": []}``.

Two differences from the KCL worker, both because a Lambda container does not own a shard:
successive batches of one shard may run in different containers, so the handler's cached
customer state is dropped at the start of every batch (it would go stale, and the versioned
write would then fail); and nothing may stay buffered when an invocation returns (the
container may be frozen for good), so the handler is flushed before answering.

Records are processed in chunks of `LambdaConsumer.chunk_records`; before each chunk the
remaining time is checked, so a batch that cannot finish reports where it stopped instead of
timing out as a whole.

>>> LambdaConsumer.answer(["4959033827149025660855969253836"])
{'batchItemFailures': [{'itemIdentifier': '4959033827149025660855969253836'}]}
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from fraud.config import build_settings
from fraud.errors import InputError
from fraud.logs import configure_logging, get_logger
from fraud.stream.processor import (
    DEFAULT_HANDLER,
    HANDLER_ENV,
    BatchHandler,
    StreamRecord,
    load_handler_factory,
)

__all__ = ["BatchResponse", "LambdaConsumer", "handler", "records_from_event"]

log = get_logger(__name__)

BatchResponse = dict[str, list[dict[str, str]]]
_DEFAULT_CHUNK = 1000
# Stop starting new chunks when less than this is left: a chunk must finish before the timeout.
_DEFAULT_RESERVE_MS = 10_000


def _field(raw: Mapping[str, Any], name: str, where: str) -> Any:
    if name not in raw or raw[name] is None:
        raise InputError(f"{where}: missing {name!r}")
    return raw[name]


def _shard_of(record: Mapping[str, Any], where: str) -> str:
    """``eventID`` is ``shardId-000000000006:<sequence number>``: the shard is its head."""
    event_id = str(_field(record, "eventID", where))
    shard, sep, _ = event_id.partition(":")
    if not sep or not shard:
        raise InputError(f"{where}: eventID {event_id[:80]!r} is not 'shardId-...:SEQUENCE'")
    return shard


def _decode(data: Any) -> bytes:
    try:
        return base64.b64decode(str(data), validate=True)
    except (binascii.Error, ValueError):
        # Lambda always base64-encodes; keep the text so that the handler dead-letters it.
        return str(data).encode("utf-8", "replace")


def records_from_event(event: Any) -> list[StreamRecord]:
    """The event's records, wrapped once into `StreamRecord`s, in the order delivered.

    Raises `InputError` naming the record and field when the event is not a Kinesis event
    (e.g. the function is wired to another kind of trigger).
    """
    if not isinstance(event, Mapping) or not isinstance(event.get("Records"), list):
        kind = type(event).__name__
        raise InputError(f"Lambda event: expected a Kinesis event with a 'Records' list, "
                         f"got {kind}")
    out: list[StreamRecord] = []
    for index, record in enumerate(event["Records"]):
        where = f"Lambda event Records[{index}]"
        if not isinstance(record, Mapping):
            raise InputError(f"{where}: expected an object, got {type(record).__name__}")
        source = record.get("eventSource")
        if source not in (None, "aws:kinesis"):
            raise InputError(f"{where}: eventSource {str(source)[:40]!r} is not aws:kinesis")
        kinesis = _field(record, "kinesis", where)
        if not isinstance(kinesis, Mapping):
            raise InputError(f"{where}.kinesis: expected an object")
        arrival = kinesis.get("approximateArrivalTimestamp")
        try:
            arrival_ms = round(float(arrival) * 1000) if arrival is not None else 0
        except (TypeError, ValueError) as exc:
            raise InputError(f"{where}.kinesis: approximateArrivalTimestamp "
                             f"{str(arrival)[:40]!r} is not a number") from exc
        out.append(StreamRecord(
            shard_id=_shard_of(record, where),
            sequence_number=str(_field(kinesis, "sequenceNumber", f"{where}.kinesis")),
            sub_sequence_number=None,
            partition_key=str(kinesis.get("partitionKey", "")),
            data=_decode(_field(kinesis, "data", f"{where}.kinesis")),
            arrival_ms=arrival_ms,
        ))
    return out


def _by_shard(records: Sequence[StreamRecord]) -> dict[str, list[StreamRecord]]:
    """Records grouped by shard, each group in delivery order (Lambda sends one shard, but
    a hand-made or test event may mix them)."""
    groups: dict[str, list[StreamRecord]] = {}
    for record in records:
        groups.setdefault(record.shard_id, []).append(record)
    return groups


def _remaining_ms(context: Any) -> float | None:
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if not callable(remaining):
        return None
    try:
        return float(remaining())
    except (TypeError, ValueError):
        return None


class LambdaConsumer:
    """Runs one `BatchHandler` over Lambda Kinesis events; reused across invocations.

    `chunk_records`: records handed to the handler at a time; `reserve_ms`: no new chunk is
    started with less than this left of the invocation's time.
    """

    def __init__(self, batch_handler: BatchHandler, *, chunk_records: int = _DEFAULT_CHUNK,
                 reserve_ms: int = _DEFAULT_RESERVE_MS) -> None:
        if chunk_records < 1 or reserve_ms < 0:
            raise ValueError("chunk_records must be >= 1 and reserve_ms >= 0")
        self.handler = batch_handler
        self.chunk_records = chunk_records
        self.reserve_ms = reserve_ms
        self.invocations = 0

    def __repr__(self) -> str:
        return (f"LambdaConsumer(handler={type(self.handler).__name__}, "
                f"invocations={self.invocations})")

    @staticmethod
    def answer(failed_sequences: Sequence[str]) -> BatchResponse:
        """The ReportBatchItemFailures response naming `failed_sequences`."""
        return {"batchItemFailures": [{"itemIdentifier": s} for s in failed_sequences]}

    def process(self, event: Any, context: Any = None) -> BatchResponse:
        """Handle every record of `event`; the response names the first unfinished one."""
        self.invocations += 1
        failed: list[str] = []
        for shard_id, records in _by_shard(records_from_event(event)).items():
            first_unfinished = self._shard(shard_id, records, context)
            if first_unfinished is not None:
                failed.append(first_unfinished.sequence_number)
        return self.answer(failed)

    def _shard(self, shard_id: str, records: list[StreamRecord],
               context: Any) -> StreamRecord | None:
        # Not our shard between invocations: another container may have moved its customers on.
        self.handler.on_lease_lost(shard_id)
        done = 0
        stopped: str | None = None
        for start in range(0, len(records), self.chunk_records):
            remaining = _remaining_ms(context)
            if start and remaining is not None and remaining < self.reserve_ms:
                stopped = "time_budget"
                break
            chunk = records[start:start + self.chunk_records]
            try:
                self.handler.handle(shard_id, chunk)
            except Exception as exc:
                log.error("lambda_chunk_failed", shard_id=shard_id, records=len(chunk),
                          first=chunk[0].sequence_number, error=f"{type(exc).__name__}: {exc}")
                stopped = "handler_failed"
                break
            done += len(chunk)
        try:
            self.handler.flush(shard_id)
        except Exception as exc:
            # Buffered effects of every chunk are in doubt: retry the whole group.
            log.error("lambda_flush_failed", shard_id=shard_id,
                      error=f"{type(exc).__name__}: {exc}")
            done, stopped = 0, "flush_failed"
        if done >= len(records):
            log.info("lambda_batch_done", shard_id=shard_id, records=len(records))
            return None
        first = records[done]
        log.warning("lambda_batch_partial", shard_id=shard_id, records=len(records),
                    done=done, reason=stopped, retry_from=first.sequence_number)
        return first


_consumer: LambdaConsumer | None = None


def _build_consumer(environ: Mapping[str, str]) -> LambdaConsumer:
    settings = build_settings({}, environ=environ)
    configure_logging(settings.log_level)
    spec = environ.get(HANDLER_ENV) or DEFAULT_HANDLER
    factory: Callable[..., BatchHandler] = load_handler_factory(spec)
    consumer = LambdaConsumer(factory(settings))
    log.info("lambda_consumer_ready", handler=spec, stream=settings.stream_name)
    return consumer


def handler(event: Any, context: Any) -> BatchResponse:
    """The Lambda function's handler (``fraud.lambda_handler.handler``).

    The pipeline is built on the first invocation of a container (settings from ``FRAUD_*``;
    a `ConfigError` then fails the invocation, and Lambda retries the batch) and reused.
    """
    global _consumer  # noqa: PLW0603 - one pipeline per container, reused across invocations
    if _consumer is None:
        _consumer = _build_consumer(os.environ)
    return _consumer.process(event, context)
