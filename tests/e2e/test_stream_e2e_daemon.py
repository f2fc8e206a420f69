"""The real MultiLangDaemon: every record handled, checkpoints hold, SIGKILL loses nothing.

Scenario (one stream of 2 shards, handler = `RecordTableHandler`, one item per transaction):

1. 60 records are put, the daemon starts and stores all of them; we wait until the lease
   table's checkpoint of each shard has reached the last stored record (checkpoint *after*
   the effects).
2. 40 more records are put and the daemon (JVM and record processors) is SIGKILLed at once.
3. 40 more are put while nothing runs; ``fraud consume`` is started as a user would, with the
   same worker id (as a restarted container would have): KCL 3 hands it its own leases at once.
   (A *new* worker id waits for the dead worker's leader lock to expire, about two minutes.)
4. Every one of the 140 transactions is stored exactly once (the item set), the first 60 were
   delivered exactly once (the checkpoint held across the crash), and a SIGTERM makes
   ``fraud consume`` drain, checkpoint and exit 0.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fraud.stream.properties import QUICK_LEASES
from tests.e2e.conftest import LocalStack, wait_for
from tests.e2e.pipeline_kit import lease_checkpoints

pytestmark = pytest.mark.e2e

HANDLER = "fraud.stream.testing:RecordTableHandler"


def _rows(start: int, count: int) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"row{i}", {"transaction_id": f"t{i:04d}", "user_id": f"u{i % 13}",
                     "terminal_id": f"term{i % 5}", "amount": i + 0.5,
                     "timestamp": "2026-01-01T00:00:00Z"})
        for i in range(start, start + count)
    ]


def _put(settings: Any, rows: list[tuple[str, dict[str, Any]]]) -> None:
    from fraud.stream.kinesis import kinesis_client
    from fraud.stream.producer import encode_rows, plan_batches, put_all

    stats = put_all(kinesis_client(settings), settings.stream_name,
                    plan_batches(encode_rows(rows)), max_attempts=20)
    assert stats.records == len(rows)


def test_daemon_handles_every_record_and_survives_sigkill(
    kcl_ready: Any, local_stack: LocalStack, unique_name: str, tmp_path: Path
) -> None:
    import boto3

    from fraud.config import Settings
    from fraud.stream.daemon import DaemonProcess, prepare_daemon, settings_environment
    from fraud.stream.jars import find_java
    from fraud.stream.kinesis import ensure_stream, kinesis_client
    from fraud.stream.testing import RecordTableHandler

    settings = Settings(
        endpoint_url=local_stack.dynamodb, kinesis_endpoint_url=local_stack.kinesis,
        stream_name=unique_name, application_name=f"{unique_name}-app",
        table_prefix=f"{unique_name}-", local_dir=tmp_path,
    )
    ensure_stream(kinesis_client(settings), settings.stream_name, shards=2)
    ddb = boto3.client("dynamodb", endpoint_url=local_stack.dynamodb, region_name="us-east-1")
    records_table = f"{unique_name}-StreamRecords"

    def stored() -> dict[str, int]:
        try:
            return RecordTableHandler.stored(ddb, records_table)
        except ddb.exceptions.ResourceNotFoundException:
            return {}

    first = _rows(0, 60)
    _put(settings, first)

    # 1. The daemon stores everything, then its checkpoints reach the last stored records.
    launch = prepare_daemon(settings, java=find_java(), jars=kcl_ready, work_dir=tmp_path / "kcl",
                            handler_spec=HANDLER, worker_id="worker-a", overrides=QUICK_LEASES)
    daemon = DaemonProcess(launch, log_file=tmp_path / "daemon-1.log").start()
    try:
        alive = lambda: daemon.poll() is None  # noqa: E731
        wait_for("the first 60 records", lambda: len(stored()) >= 60, alive=alive)
        items = ddb.scan(TableName=records_table, ConsistentRead=True)["Items"]
        last: dict[str, int] = {}
        for item in items:
            shard, seq = item["shard_id"]["S"], int(item["sequence_number"]["S"])
            last[shard] = max(last.get(shard, 0), seq)
        wait_for(
            "checkpoints at the last handled records",
            lambda: all(lease_checkpoints(settings).get(s) == str(q)
                        for s, q in last.items()),
            alive=alive,
        )
        # 2. More records, and the whole daemon is killed without warning.
        _put(settings, _rows(60, 40))
    finally:
        daemon.kill()
        daemon.wait(30)
    assert daemon.stop_requested

    # 3. Records arrive while nothing consumes; then `fraud consume` starts as in production.
    _put(settings, _rows(100, 40))
    env = {**os.environ, **settings_environment(settings)}
    args = [sys.executable, "-m", "fraud", "consume", "--handler", HANDLER,
            "--worker-id", "worker-a", "--daemon-log", str(tmp_path / "daemon-2.log")]
    args += [f"--kcl-property={k}={v}" for k, v in QUICK_LEASES.items()]
    with (tmp_path / "consume.err").open("wb") as err:
        consume = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=err)
    try:
        wait_for("all 140 records", lambda: len(stored()) >= 140,
                 alive=lambda: consume.poll() is None)
    finally:
        consume.send_signal(signal.SIGTERM)
        out, _ = consume.communicate(timeout=120)

    # 4. Exactly the produced transactions, each once; the checkpointed ones never again.
    final = stored()
    assert sorted(final) == [f"t{i:04d}" for i in range(140)]
    redelivered_before_checkpoint = [k for k, n in final.items() if k < "t0060" and n != 1]
    assert redelivered_before_checkpoint == []
    assert consume.returncode == 0, (tmp_path / "consume.err").read_text()[-3000:]
    assert out == b""  # fraud consume prints nothing on stdout; its logs are JSON on stderr
    for line in (tmp_path / "consume.err").read_text().splitlines():
        if line.startswith("{"):
            json.loads(line)


def test_a_handler_that_keeps_failing_stops_consume_without_checkpoint(
    kcl_ready: Any, local_stack: LocalStack, unique_name: str, tmp_path: Path
) -> None:

    from fraud.config import Settings
    from fraud.stream.daemon import settings_environment
    from fraud.stream.kinesis import ensure_stream, kinesis_client

    settings = Settings(
        endpoint_url=local_stack.dynamodb, kinesis_endpoint_url=local_stack.kinesis,
        stream_name=unique_name, application_name=f"{unique_name}-app", local_dir=tmp_path,
    )
    ensure_stream(kinesis_client(settings), settings.stream_name, shards=1)
    _put(settings, _rows(0, 5))
    env = {**os.environ, **settings_environment(settings)}
    args = [sys.executable, "-m", "fraud", "consume",
            "--handler", "fraud.stream.testing:FailingHandler", "--worker-id", "worker-f",
            "--daemon-log", str(tmp_path / "daemon.log")]
    # When the child exits, the daemon shuts down gracefully and waits out this grace for it.
    fast = {**QUICK_LEASES, "shutdownGraceMillis": "3000"}
    args += [f"--kcl-property={k}={v}" for k, v in fast.items()]
    proc = subprocess.run(args, env=env, capture_output=True, timeout=300, check=False)
    assert proc.returncode != 0, "fraud consume must fail when its record processor gives up"
    assert b"kcl_daemon_died" in proc.stderr
    checkpoints = lease_checkpoints(settings)
    assert checkpoints == {"shardId-000000000000": "TRIM_HORIZON"}
