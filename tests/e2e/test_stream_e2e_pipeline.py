"""The real consumer end to end: the KCL MultiLangDaemon running the fraud pipeline handler
(`fraud.stream.handler:PipelineHandler`, the default of ``fraud consume``) on the local stack,
every claim checked through DynamoDB (and the decisions stream and the alert topic).

* a stream salted with bad records: every good transaction decided exactly once (and each
  customer's state counting it once, each block/alert published once, each flag with one
  case), as if the bad ones were not there; every bad one dead-lettered with its reason; the
  consumer still running, and exiting cleanly on SIGTERM;
* SIGKILLed twice mid-stream - once at a random moment, once by a crash marker right after a
  batch's effects and before its checkpoint - and restarted: nothing lost, nothing doubled.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import wait_for
from tests.e2e.pipeline_kit import (
    check_exactly_once,
    decision_item,
    history_item,
    lease_checkpoints,
    make_rows,
    new_stream,
    put_rows,
    start_daemon,
    stop_daemon,
    wait_decided,
)

pytestmark = pytest.mark.e2e


def test_two_sigkills_mid_stream_lose_nothing_and_double_nothing(
    kcl_ready: Any, pipeline_stack: Any, unique_name: str, tmp_path: Path
) -> None:
    settings = new_stream(pipeline_stack, unique_name, shards=2)
    users = 14
    rows = make_rows(unique_name, users=users, per_user=9)
    rounds = [rows[j * users:(j + 1) * users] for j in range(9)]
    handler = "tests.e2e.crash_handler:CrashingPipelineHandler"
    flag = tmp_path / "crashed"
    # The marker: customer 0's last payment, a blocked one, so that its redelivery meets a
    # decision already made (and published) and must neither decide nor publish it again.
    marker = rounds[8][0]["transaction_id"]
    assert rounds[8][0]["device_id"] == "d-stolen"
    env = {"FRAUD_E2E_CRASH_TX": marker, "FRAUD_E2E_CRASH_FLAG": str(flag)}

    def daemon(n: int) -> Any:
        return start_daemon(settings, kcl_ready, tmp_path, "worker-b", handler=handler,
                            env=env, log_name=f"daemon-{n}.log")

    # 1. Rounds 0-2 wait on the stream; rounds 3-5 trickle in while the first daemon works,
    #    and it is SIGKILLed in the middle of that.
    put_rows(settings, [r for part in rounds[:3] for r in part])
    first = daemon(1)
    trickle = [r for part in rounds[3:6] for r in part]
    try:
        wait_decided(settings, rows[:3 * users], "the first rounds", at_least=users,
                     alive=lambda: first.poll() is None)
        half = len(trickle) // 2
        for lo in range(0, half, 7):
            put_rows(settings, trickle[lo:lo + 7])
            time.sleep(0.2)
    finally:
        first.kill()
        first.wait(30)
    put_rows(settings, trickle[half:])

    # 2. Restarted with the same worker id (its leases come straight back); rounds 6-8 go
    #    on the stream, and the crash marker kills it after the marker's batch is done.
    put_rows(settings, [r for part in rounds[6:] for r in part])
    second = daemon(2)
    try:
        wait_for("the crash marker to fire", lambda: second.poll() is not None)
    finally:
        second.kill()
        second.wait(30)
    assert flag.exists(), "the crash marker never fired"
    crashed_shard, crashed_last = flag.read_text().split()
    first_history = history_item(settings, rounds[8][0])
    first_decision = decision_item(settings, marker)
    assert first_decision["effects"] == "done"

    # 3. Restarted again: the batch that was done but never checkpointed comes back, and
    #    this time its checkpoint goes past it.
    third = daemon(3)
    try:
        alive = lambda: third.poll() is None  # noqa: E731
        wait_decided(settings, rows, "every transaction after two crashes", alive=alive)
        wait_for("the checkpoint past the crashed batch",
                 lambda: _past(lease_checkpoints(settings).get(crashed_shard), crashed_last),
                 alive=alive)
    finally:
        code = stop_daemon(third)
    assert code in (0, 143)
    # The crashed batch came back (the checkpoint could only pass it by receiving it), yet
    # its transactions were decided once: history and decision stay as first recorded.
    assert history_item(settings, rounds[8][0]) == first_history
    assert decision_item(settings, marker) == first_decision
    counts = check_exactly_once(pipeline_stack, settings, unique_name, rows,
                                publish_at_least_once=True)
    # Nine rounds of history make the planted spike a plain flag (the model scores it ~0.3):
    # this is the test that exercises flags and their cases across crashes.
    assert counts.get("flag", 0) > 0, counts


def _past(checkpoint: str | None, sequence: str) -> bool:
    return bool(checkpoint) and checkpoint.isdigit() and int(checkpoint) >= int(sequence)


def _put_raw(settings: Any, payloads: list[tuple[str, bytes]]) -> list[tuple[str, str]]:
    """PutRecord one at a time (keeps order); returns (shard id, sequence number) of each."""
    from fraud.stream.kinesis import kinesis_client

    kinesis = kinesis_client(settings)
    out = []
    for key, data in payloads:
        got = kinesis.put_record(StreamName=settings.stream_name, Data=data, PartitionKey=key)
        out.append((got["ShardId"], got["SequenceNumber"]))
    return out


def test_every_good_transaction_is_decided_once_and_every_bad_one_dead_lettered(
    kcl_ready: Any, pipeline_stack: Any, unique_name: str, tmp_path: Path
) -> None:
    settings = new_stream(pipeline_stack, unique_name, shards=2)
    rows = make_rows(unique_name, users=14, per_user=4)
    good = {r["transaction_id"]: json.dumps(r).encode() for r in rows}
    oversized = {**rows[0], "transaction_id": f"{unique_name}-big", "note": "x" * 100_000}
    bad = {
        "not_json": b"this is not JSON at all",
        "oversized": json.dumps(oversized).encode(),
        "binary": bytes(range(256)) * 4,
        "truncated": json.dumps(rows[1]).encode()[:-15],
        "negative_amount": json.dumps({**rows[2], "transaction_id": f"{unique_name}-neg",
                                       "amount": -12.5}).encode(),
        "no_user": json.dumps({k: v for k, v in rows[3].items() if k != "user_id"}
                              | {"transaction_id": f"{unique_name}-nouser"}).encode(),
        "bad_time": json.dumps({**rows[4], "transaction_id": f"{unique_name}-time",
                                "timestamp": "yesterday-ish"}).encode(),
        "array": b"[1, 2, 3]",
    }
    # Bad records in between the good ones, on both shards, before and after the start.
    payloads: list[tuple[str, str, bytes]] = []
    bad_items = list(bad.items())
    for i, row in enumerate(rows):
        payloads.append(("good", row["user_id"], good[row["transaction_id"]]))
        if i % 7 == 3 and bad_items:
            name, data = bad_items.pop()
            payloads.append((name, f"bad-{name}", data))
    assert not bad_items
    half = len(payloads) // 2
    positions = _put_raw(settings, [(k, d) for _, k, d in payloads[:half]])
    daemon = start_daemon(settings, kcl_ready, tmp_path, "worker-e", log_name="daemon.log")
    try:
        positions += _put_raw(settings, [(k, d) for _, k, d in payloads[half:]])
        wait_decided(settings, rows, "every good transaction",
                     alive=lambda: daemon.poll() is None)
        expected = {f"{shard}#{seq}": name
                    for (name, _, _), (shard, seq) in zip(payloads, positions, strict=True)
                    if name != "good"}
        letters = wait_for("every bad record dead-lettered",
                           lambda: _letters(settings, expected), timeout=60)
        assert daemon.poll() is None, "the consumer must stay up"
    finally:
        code = stop_daemon(daemon)
    assert code in (0, 143)

    assert set(letters) == set(expected)
    reasons = {expected[k]: v["error"] for k, v in letters.items()}
    assert "amount" in reasons["negative_amount"]
    assert "user_id" in reasons["no_user"]
    assert "timestamp" in reasons["bad_time"]
    assert all(reasons[n] for n in bad), reasons
    for name in ("oversized", "binary", "not_json", "truncated", "array"):
        assert reasons[name] != reasons["negative_amount"], (name, reasons[name])
    kept = {expected[k]: base64.b64encode(bytes(v["payload"])) for k, v in letters.items()}
    assert kept["truncated"] == base64.b64encode(bad["truncated"])
    assert len(base64.b64decode(kept["oversized"])) <= 64 * 1024
    # The good records are all decided once, as if the bad ones were never there.
    check_exactly_once(pipeline_stack, settings, unique_name, rows)
    good_positions = {f"{s}#{q}" for (n, _, _), (s, q) in zip(payloads, positions, strict=True)
                      if n == "good"}
    assert not good_positions & set(_letters(settings, {p: "good" for p in good_positions},
                                             need_all=False))


def _letters(settings: Any, expected: dict[str, str],
             need_all: bool = True) -> dict[str, dict[str, Any]] | None:
    from fraud.store.clients import make_client
    from fraud.store.dynamo import Dynamo

    dynamo = Dynamo(make_client("dynamodb", settings), prefix=settings.table_prefix)
    got = dynamo.batch_get({"DeadLetters": [{"letter_id": k} for k in expected]},
                           consistent=True)["DeadLetters"]
    letters = {str(i["letter_id"]): i for i in got}
    if need_all and len(letters) < len(expected):
        return None
    return letters
