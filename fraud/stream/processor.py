"""The KCL record processor: the child process the MultiLangDaemon starts for each leased shard.

It speaks amazon-kclpy's v3 interface and does no fraud work itself: it wraps each delivered
record once into a `StreamRecord` and hands the batch to a `BatchHandler` (the pipeline), then
checkpoints, and only then.

Failure policy (kclpy swallows exceptions from a processor and reports the batch done, so every
error is decided here):

* The handler owns bad records (dead-letters them); raising means "this batch is not done"
  (e.g. DynamoDB unreachable). The batch is retried `max_attempts` times with backoff (effects
  are idempotent by transaction id, so a partial earlier attempt is harmless). If it still
  fails, the process exits with `EXIT_HANDLER_FAILED` *without* checkpointing: the daemon stops,
  ``fraud consume`` exits non-zero, the orchestrator restarts it, and the shard resumes from
  the last checkpoint. Blocking forever would hide the outage; skipping would lose records.
* Checkpoint errors, as KCL documents them: ``ThrottlingException`` backs off and retries;
  ``ShutdownException`` (lease gone, shutting down) stops checkpointing silently;
  ``InvalidStateException`` and anything else are logged, and the next batch tries again.
* ``lease_lost``: the handler drops its cached state for the shard; no checkpoint is possible.
* ``shard_ended``: flush, then checkpoint at SHARD_END (children are not read until then).
* ``shutdown_requested``: flush, then checkpoint the last handled record: last chance.

stdout is the daemon protocol: `main` points ``sys.stdout`` at stderr so that a stray print
cannot corrupt it; logs are JSON on stderr.
"""

from __future__ import annotations

import base64
import binascii
import importlib
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from fraud.config import Settings, build_settings
from fraud.errors import ConfigError
from fraud.logs import configure_logging, get_logger

__all__ = [
    "DEFAULT_HANDLER",
    "EXIT_HANDLER_FAILED",
    "HANDLER_ENV",
    "BatchHandler",
    "Checkpointer",
    "HandlerFactory",
    "ShardProcessor",
    "StreamRecord",
    "load_handler_factory",
    "main",
]

log = get_logger(__name__)

EXIT_HANDLER_FAILED = 3
HANDLER_ENV = "FRAUD_KCL_HANDLER"
# The fraud pipeline's handler (the lead wires it in); `fraud consume --handler` overrides it.
DEFAULT_HANDLER = "fraud.stream.handler:PipelineHandler"


@dataclass(frozen=True, slots=True)
class StreamRecord:
    """One Kinesis record as delivered: where it sits in the stream and its raw bytes.

    The repr shows the position and the payload size, never the payload or partition key
    (a customer id), so a record can be logged safely.
    """

    shard_id: str
    sequence_number: str
    sub_sequence_number: int | None
    partition_key: str = field(repr=False)
    data: bytes = field(repr=False)
    arrival_ms: int

    def __repr__(self) -> str:
        return (
            f"StreamRecord(shard_id={self.shard_id!r}, sequence_number="
            f"{self.sequence_number!r}, bytes={len(self.data)}, arrival_ms={self.arrival_ms})"
        )


@runtime_checkable
class BatchHandler(Protocol):
    """What the pipeline implements for the consumer. One instance per child (per shard)."""

    def handle(self, shard_id: str, records: Sequence[StreamRecord]) -> None:
        """Make every record's effects durable (or dead-letter it); raise if not all done."""

    def on_lease_lost(self, shard_id: str) -> None:
        """Another worker owns the shard now: drop any state cached for it."""

    def flush(self, shard_id: str) -> None:
        """Make buffered effects durable before a final checkpoint."""


HandlerFactory = Callable[[Settings], BatchHandler]


class Checkpointer(Protocol):
    """kclpy's checkpointer: raises an error whose ``value`` names the KCL exception."""

    def checkpoint(
        self, sequence_number: str | None = None, sub_sequence_number: int | None = None
    ) -> None: ...


def _kclpy_base() -> Any:
    """kclpy's v3 base class when installed; the processor also works by duck typing."""
    try:
        return importlib.import_module("amazon_kclpy.v3.processor").RecordProcessorBase
    except ImportError:
        return object


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _error_name(exc: BaseException) -> str:
    value = getattr(exc, "value", None)
    return str(value) if value else type(exc).__name__


class ShardProcessor(_kclpy_base()):  # type: ignore[misc]
    """The v3 record processor: decode, hand over, checkpoint (see the module's policy)."""

    version = 3

    def __init__(
        self,
        handler: BatchHandler,
        *,
        max_attempts: int = 3,
        checkpoint_retries: int = 5,
        backoff_seconds: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.handler = handler
        self.max_attempts = max_attempts
        self.checkpoint_retries = checkpoint_retries
        self.backoff_seconds = backoff_seconds
        self.sleep = sleep
        self.shard_id = ""
        self._last: tuple[str, int | None] | None = None  # last handled, not yet checkpointed
        self._checkpointed: tuple[str, int | None] | None = None

    # -- kclpy v3 interface -------------------------------------------------------------------

    def initialize(self, initialize_input: Any) -> None:
        self.shard_id = str(initialize_input.shard_id)
        log.info("shard_initialized", shard_id=self.shard_id,
                 sequence_number=initialize_input.sequence_number)

    def process_records(self, process_records_input: Any) -> None:
        records = [self._wrap(r) for r in process_records_input.records]
        if not records:
            return
        self._handle(records)
        last = records[-1]
        self._last = (last.sequence_number, last.sub_sequence_number)
        at = self._last
        durable = getattr(self.handler, "durable_position", None)
        if callable(durable):
            # Buffered effects (e.g. archive rows not yet flushed) hold the checkpoint back.
            at = durable(self.shard_id)
        if at is not None and at != self._checkpointed:
            self._checkpoint(process_records_input.checkpointer, at)

    def lease_lost(self, lease_lost_input: Any) -> None:
        log.warning("lease_lost", shard_id=self.shard_id)
        self._last = None
        try:
            self.handler.on_lease_lost(self.shard_id)
        except Exception as exc:
            log.error("lease_lost_failed", shard_id=self.shard_id, error=_describe(exc))

    def shard_ended(self, shard_ended_input: Any) -> None:
        log.info("shard_ended", shard_id=self.shard_id)
        # No checkpoint when the flush fails: KCL then retries the shard end later.
        if self._flushed():
            self._checkpoint(shard_ended_input.checkpointer, None)

    def shutdown_requested(self, shutdown_requested_input: Any) -> None:
        log.info("shutdown_requested", shard_id=self.shard_id)
        if self._flushed() and self._last is not None:
            self._checkpoint(shutdown_requested_input.checkpointer, self._last)

    # -- internals ----------------------------------------------------------------------------

    def _wrap(self, record: Any) -> StreamRecord:
        raw = record.data
        try:
            data = base64.b64decode(raw)
        except (binascii.Error, TypeError, ValueError):
            # The daemon always base64-encodes; keep the text so the handler can dead-letter it.
            data = str(raw).encode("utf-8", "replace")
        sub = record.sub_sequence_number
        return StreamRecord(
            shard_id=self.shard_id,
            sequence_number=str(record.sequence_number),
            sub_sequence_number=None if sub is None else int(sub),
            partition_key=str(record.partition_key),
            data=data,
            arrival_ms=int(record.timestamp_millis),
        )

    def _flushed(self) -> bool:
        try:
            self.handler.flush(self.shard_id)
        except Exception as exc:
            log.error("flush_failed", shard_id=self.shard_id, error=_describe(exc))
            return False
        return True

    def _handle(self, records: list[StreamRecord]) -> None:
        for attempt in range(1, self.max_attempts + 1):
            try:
                self.handler.handle(self.shard_id, records)
                return
            except Exception as exc:
                log.error("batch_failed", shard_id=self.shard_id, attempt=attempt,
                          records=len(records), first=records[0].sequence_number,
                          error=_describe(exc))
                if attempt < self.max_attempts:
                    self.sleep(self.backoff_seconds * 2 ** (attempt - 1))
        log.error("batch_abandoned", shard_id=self.shard_id, exit_code=EXIT_HANDLER_FAILED,
                  first=records[0].sequence_number, last=records[-1].sequence_number)
        raise SystemExit(EXIT_HANDLER_FAILED)

    def _checkpoint(self, checkpointer: Checkpointer, at: tuple[str, int | None] | None) -> bool:
        """Checkpoint at `at` (None: at SHARD_END / the latest delivered). True when it held."""
        for attempt in range(1, self.checkpoint_retries + 1):
            try:
                if at is None:
                    checkpointer.checkpoint()
                else:
                    checkpointer.checkpoint(at[0], at[1])
            except Exception as exc:
                name = _error_name(exc)
                if name == "ThrottlingException" and attempt < self.checkpoint_retries:
                    log.warning("checkpoint_throttled", shard_id=self.shard_id, attempt=attempt)
                    self.sleep(self.backoff_seconds * 2 ** (attempt - 1))
                    continue
                if name == "ShutdownException":
                    log.info("checkpoint_after_shutdown", shard_id=self.shard_id)
                else:
                    log.error("checkpoint_failed", shard_id=self.shard_id, error=name,
                              attempt=attempt)
                return False
            else:
                self._checkpointed = at
                if at is not None and self._last == at:
                    self._last = None
                return True
        return False


def load_handler_factory(spec: str) -> HandlerFactory:
    """``package.module:callable`` -> the callable (a class or function taking `Settings`)."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"handler {spec!r}: expected 'package.module:factory'")
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"handler {spec!r}: cannot import {module_name}: {exc}") from exc
    for part in attr.split("."):
        if not hasattr(target, part):
            raise ConfigError(f"handler {spec!r}: {module_name} has no attribute {attr!r}")
        target = getattr(target, part)
    if not callable(target):
        raise ConfigError(f"handler {spec!r} is not callable")
    factory: HandlerFactory = target
    return factory


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the child: ``python -m fraud.stream.processor HANDLER_SPEC``."""
    args = list(sys.argv[1:] if argv is None else argv)
    protocol_out = sys.stdout
    sys.stdout = sys.stderr  # anything printed by mistake goes to stderr, not the protocol
    # The daemon decides when a shard shuts down; a Ctrl-C on the terminal must not cut a batch.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    settings = build_settings({})
    configure_logging(settings.log_level)
    if len(args) != 1:
        log.error("processor_usage", expected="HANDLER_SPEC", got=len(args))
        return 2
    try:
        handler = load_handler_factory(args[0])(settings)
    except Exception as exc:
        log.error("handler_start_failed", handler=args[0], error=f"{type(exc).__name__}: {exc}")
        return 2
    kcl = importlib.import_module("amazon_kclpy.kcl")
    kcl.KCLProcess(ShardProcessor(handler), input_file=sys.stdin, output_file=protocol_out,
                   error_file=sys.stderr).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
