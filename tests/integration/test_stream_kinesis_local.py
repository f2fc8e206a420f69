"""kinesis-local as the project starts it, and ``fraud produce`` against it over real HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fraud.config import Settings
from fraud.stream.emulator import EmulatorHandle, KinesisEmulator, pid_alive
from fraud.stream.kinesis import ensure_stream, kinesis_client

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorHandle]:
    emu = KinesisEmulator()
    handle = emu.start(tmp_path_factory.mktemp("kinesis"))
    yield handle
    assert emu.stop(handle.pid)
    assert not pid_alive(handle.pid)


def _listening(port: int) -> list[str]:
    """Local addresses listening on `port` (from /proc/net/tcp{,6})."""
    found = []
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(name).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            addr, hex_port = local.rsplit(":", 1)
            if state == "0A" and int(hex_port, 16) == port:
                found.append(addr)
    return found


def test_emulator_listens_on_loopback_only(emulator: EmulatorHandle) -> None:
    assert _listening(emulator.port) == ["0100007F"]  # 127.0.0.1, not 0.0.0.0
    assert _listening(emulator.tls_port) == ["0100007F"]


def test_produce_puts_every_row_keyed_by_user(
    aws_env: None, emulator: EmulatorHandle, tmp_path: Path
) -> None:
    settings = Settings(kinesis_endpoint_url=emulator.url, stream_name="produce-test")
    client = kinesis_client(settings)
    ensure_stream(client, settings.stream_name, shards=2)
    lines = ["transaction_id,timestamp,user_id,terminal_id,amount,lat"]
    lines += [f"t{i},2026-01-01T00:00:0{i % 10}Z,00{i % 3},T{i},{i}.5," for i in range(25)]
    source = tmp_path / "tx.csv"
    source.write_text("\n".join(lines) + "\n")
    env = {**os.environ, "FRAUD_KINESIS_ENDPOINT_URL": emulator.url, "FRAUD_STREAM": "produce-test"}
    proc = subprocess.run([sys.executable, "-m", "fraud", "produce", "--input", str(source)],
                          capture_output=True, text=True, env=env, check=False, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("put 25 records")

    got = []
    for shard in client.list_shards(StreamName="produce-test")["Shards"]:
        it = client.get_shard_iterator(StreamName="produce-test", ShardId=shard["ShardId"],
                                       ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        for record in client.get_records(ShardIterator=it, Limit=1000)["Records"]:
            got.append((record["PartitionKey"], json.loads(record["Data"])))
    assert len(got) == 25
    assert {p["transaction_id"] for _, p in got} == {f"t{i}" for i in range(25)}
    for key, payload in got:
        assert key == payload["user_id"]
        assert payload["user_id"].startswith("00")  # ids stay strings, zeros kept
        assert "lat" not in payload  # a missing optional value is left out


def test_invalid_rows_are_listed_and_not_sent(aws_env: None, emulator: EmulatorHandle,
                                              tmp_path: Path) -> None:
    client = kinesis_client(Settings(kinesis_endpoint_url=emulator.url))
    ensure_stream(client, "reject-test", shards=1)
    source = tmp_path / "tx.csv"
    source.write_text("transaction_id,timestamp,user_id,terminal_id,amount\n"
                      "t1,2026-01-01T00:00:00Z,u1,T1,5\n"
                      "t2,2026-01-01T00:00:00Z,u1,T1,not-a-number\n")
    env = {**os.environ, "FRAUD_KINESIS_ENDPOINT_URL": emulator.url, "FRAUD_STREAM": "reject-test"}
    proc = subprocess.run([sys.executable, "-m", "fraud", "produce", "--input", str(source)],
                          capture_output=True, text=True, env=env, check=False, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "rejected: tx.csv: line 3: amount" in proc.stderr
    assert "1 invalid row(s) not sent" in proc.stderr
    assert proc.stdout.startswith("put 1 records")


def test_raw_mode_reports_a_missing_partition_key_without_traceback(
    emulator: EmulatorHandle, tmp_path: Path
) -> None:
    source = tmp_path / "tx.csv"
    source.write_text("transaction_id,user_id\nt1,\n")
    env = {**os.environ, "FRAUD_KINESIS_ENDPOINT_URL": emulator.url}
    proc = subprocess.run(
        [sys.executable, "-m", "fraud", "produce", "--raw", "--input", str(source)],
        capture_output=True, text=True, env=env, check=False, timeout=120,
    )
    assert proc.returncode == 2
    assert "tx.csv:2: user_id: partition key" in proc.stderr
    assert "Traceback" not in proc.stderr
