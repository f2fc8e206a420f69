"""The record processor: checkpoint only after the handler, and KCL's error handling."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from fraud.errors import ConfigError
from fraud.stream.processor import (
    EXIT_HANDLER_FAILED,
    BatchHandler,
    ShardProcessor,
    StreamRecord,
    load_handler_factory,
)


class KclError(Exception):
    """What kclpy raises: the KCL exception's name in `value`."""

    def __init__(self, value: str) -> None:
        super().__init__(value)
        self.value = value


@dataclass
class FakeCheckpointer:
    errors: list[str] = field(default_factory=list)
    calls: list[tuple[str | None, int | None]] = field(default_factory=list)

    def checkpoint(self, sequence_number: str | None = None,
                   sub_sequence_number: int | None = None) -> None:
        self.calls.append((sequence_number, sub_sequence_number))
        if self.errors:
            raise KclError(self.errors.pop(0))


@dataclass
class FakeHandler:
    failures: int = 0
    events: list[tuple[str, Any]] = field(default_factory=list)

    def handle(self, shard_id: str, records: Sequence[StreamRecord]) -> None:
        self.events.append(("handle", [r.sequence_number for r in records]))
        if self.failures:
            self.failures -= 1
            raise ConnectionError("dynamodb unreachable")

    def on_lease_lost(self, shard_id: str) -> None:
        self.events.append(("lease_lost", shard_id))

    def flush(self, shard_id: str) -> None:
        self.events.append(("flush", shard_id))


@dataclass
class Rec:
    sequence_number: str
    data: str
    partition_key: str = "u1"
    sub_sequence_number: int | None = None
    timestamp_millis: int = 1_700_000_000_000


@dataclass
class Input:
    checkpointer: Any = None
    records: list[Rec] = field(default_factory=list)
    shard_id: str = "shardId-000000000001"
    sequence_number: str = "TRIM_HORIZON"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def make(handler: FakeHandler) -> tuple[ShardProcessor, list[float]]:
    slept: list[float] = []
    proc = ShardProcessor(handler, max_attempts=3, checkpoint_retries=4, sleep=slept.append)
    proc.initialize(Input())
    return proc, slept


def test_records_are_decoded_handed_over_then_checkpointed_at_the_last() -> None:
    handler = FakeHandler()
    proc, _ = make(handler)
    cp = FakeCheckpointer()
    seen: list[StreamRecord] = []
    original = handler.handle

    def capture(shard_id: str, records: Sequence[StreamRecord]) -> None:
        seen.extend(records)
        original(shard_id, records)

    handler.handle = capture  # type: ignore[method-assign]
    proc.process_records(Input(cp, [Rec("1", b64('{"a":1}')), Rec("2", b64("x"), "u2", 7)]))
    assert [(r.shard_id, r.sequence_number, r.partition_key, r.data) for r in seen] == [
        ("shardId-000000000001", "1", "u1", b'{"a":1}'),
        ("shardId-000000000001", "2", "u2", b"x"),
    ]
    assert cp.calls == [("2", 7)]


def test_a_failing_batch_is_retried_and_checkpointed_once_it_succeeds() -> None:
    handler = FakeHandler(failures=2)
    proc, slept = make(handler)
    cp = FakeCheckpointer()
    proc.process_records(Input(cp, [Rec("5", b64("x"))]))
    assert [e for e in handler.events if e[0] == "handle"] == [("handle", ["5"])] * 3
    assert slept == [1.0, 2.0]
    assert cp.calls == [("5", None)]


def test_a_batch_that_keeps_failing_stops_the_process_without_checkpoint() -> None:
    handler = FakeHandler(failures=99)
    proc, _ = make(handler)
    cp = FakeCheckpointer()
    with pytest.raises(SystemExit) as stop:
        proc.process_records(Input(cp, [Rec("5", b64("x"))]))
    assert stop.value.code == EXIT_HANDLER_FAILED
    assert cp.calls == []


def test_throttled_checkpoints_back_off_and_retry() -> None:
    proc, slept = make(FakeHandler())
    cp = FakeCheckpointer(errors=["ThrottlingException", "ThrottlingException"])
    proc.process_records(Input(cp, [Rec("9", b64("x"))]))
    assert cp.calls == [("9", None)] * 3
    assert slept == [1.0, 2.0]


@pytest.mark.parametrize("error", ["ShutdownException", "InvalidStateException", "Other"])
def test_other_checkpoint_errors_are_not_retried(error: str) -> None:
    proc, slept = make(FakeHandler())
    cp = FakeCheckpointer(errors=[error])
    proc.process_records(Input(cp, [Rec("9", b64("x"))]))
    assert cp.calls == [("9", None)]
    assert slept == []


def test_shutdown_requested_flushes_then_checkpoints_only_unsaved_progress() -> None:
    handler = FakeHandler()
    proc, _ = make(handler)
    failing = FakeCheckpointer(errors=["InvalidStateException"])
    proc.process_records(Input(failing, [Rec("3", b64("x"))]))  # handled, not checkpointed
    final = FakeCheckpointer()
    proc.shutdown_requested(Input(final))
    assert handler.events[-1] == ("flush", "shardId-000000000001")
    assert final.calls == [("3", None)]
    again = FakeCheckpointer()
    proc.shutdown_requested(Input(again))
    assert again.calls == []  # nothing new since the last checkpoint


def test_shard_end_flushes_and_checkpoints_at_shard_end() -> None:
    handler = FakeHandler()
    proc, _ = make(handler)
    cp = FakeCheckpointer()
    proc.shard_ended(Input(cp))
    assert handler.events == [("flush", "shardId-000000000001")]
    assert cp.calls == [(None, None)]


def test_lease_lost_drops_state_and_never_checkpoints() -> None:
    handler = FakeHandler()
    proc, _ = make(handler)
    failing = FakeCheckpointer(errors=["ThrottlingException"] * 4)
    proc.process_records(Input(failing, [Rec("3", b64("x"))]))
    proc.lease_lost(Input())
    assert handler.events[-1] == ("lease_lost", "shardId-000000000001")
    after = FakeCheckpointer()
    proc.shutdown_requested(Input(after))
    assert after.calls == []


def test_empty_batches_neither_call_the_handler_nor_checkpoint() -> None:
    handler = FakeHandler()
    proc, _ = make(handler)
    cp = FakeCheckpointer()
    proc.process_records(Input(cp, []))
    assert handler.events == [] and cp.calls == []


def test_repr_hides_payload_and_partition_key() -> None:
    rec = StreamRecord("s", "1", None, "user-4111111111111111", b"4111111111111111", 0)
    assert "4111" not in repr(rec)
    assert "bytes=16" in repr(rec)


def test_fake_handler_satisfies_the_protocol() -> None:
    assert isinstance(FakeHandler(), BatchHandler)


def test_handler_specs_are_checked_with_clear_errors() -> None:
    assert load_handler_factory("tests.unit.test_stream_processor:FakeHandler") is FakeHandler
    for spec, message in [("nocolon", "expected"), ("no.such.module:X", "cannot import"),
                          ("fraud.stream.processor:Nope", "no attribute"),
                          ("fraud.stream.processor:EXIT_HANDLER_FAILED", "not callable")]:
        with pytest.raises(ConfigError, match=message):
            load_handler_factory(spec)


def test_the_real_kclpy_protocol_round_trip() -> None:
    """Drive kclpy's own KCLProcess with daemon messages; only protocol lines reach stdout."""
    kcl = pytest.importorskip("amazon_kclpy.kcl")
    handler = FakeHandler()
    record = {"action": "record", "data": b64('{"transaction_id":"t1"}'), "partitionKey": "u1",
              "sequenceNumber": "42", "subSequenceNumber": None,
              "approximateArrivalTimestamp": 1_700_000_000_000}
    lines = [
        {"action": "initialize", "shardId": "shardId-7", "sequenceNumber": "TRIM_HORIZON",
         "subSequenceNumber": 0},
        {"action": "processRecords", "records": [record], "millisBehindLatest": 0},
        {"action": "checkpoint", "sequenceNumber": "42", "subSequenceNumber": None,
         "error": "ThrottlingException"},
        {"action": "checkpoint", "sequenceNumber": "42", "subSequenceNumber": None},
        {"action": "shutdownRequested"},
        {"action": "leaseLost"},
    ]
    stdin = io.StringIO("".join(json.dumps(line) + "\n" for line in lines))
    stdout, stderr = io.StringIO(), io.StringIO()
    proc = ShardProcessor(handler, sleep=lambda _: None)
    kcl.KCLProcess(proc, input_file=stdin, output_file=stdout, error_file=stderr).run()
    sent = [json.loads(line) for line in stdout.getvalue().splitlines() if line.strip()]
    assert sent == [
        {"action": "status", "responseFor": "initialize"},
        {"action": "checkpoint", "sequenceNumber": "42", "subSequenceNumber": None},
        {"action": "checkpoint", "sequenceNumber": "42", "subSequenceNumber": None},
        {"action": "status", "responseFor": "processRecords"},
        {"action": "status", "responseFor": "shutdownRequested"},
        {"action": "status", "responseFor": "leaseLost"},
    ]
    assert handler.events == [("handle", ["42"]), ("flush", "shardId-7"),
                              ("lease_lost", "shardId-7")]
    assert "Traceback" not in stderr.getvalue()


def test_a_failed_flush_skips_the_final_checkpoint() -> None:
    class BadFlush(FakeHandler):
        def flush(self, shard_id: str) -> None:
            raise ConnectionError("cannot flush")

    proc, _ = make(BadFlush())
    failing = FakeCheckpointer(errors=["InvalidStateException"])
    proc.process_records(Input(failing, [Rec("3", b64("x"))]))
    final = FakeCheckpointer()
    proc.shutdown_requested(Input(final))
    proc.shard_ended(Input(final))
    assert final.calls == []
