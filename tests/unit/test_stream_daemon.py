"""The daemon launcher: command line, environment, and supervision of a stand-in JVM."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

from fraud.config import Settings, build_settings
from fraud.stream.daemon import (
    MAIN_CLASS,
    DaemonLaunch,
    DaemonProcess,
    daemon_environment,
    prepare_daemon,
    settings_environment,
    supervise,
)
from fraud.stream.jars import JarSet

LOCAL = Settings(endpoint_url="http://127.0.0.1:1", kinesis_endpoint_url="http://127.0.0.1:2",
                 stream_name="tx", application_name="app", history_k=32, archive_uri=None)


def test_child_settings_round_trip_through_the_environment() -> None:
    env = settings_environment(LOCAL)
    assert build_settings({}, environ=env) == LOCAL


def test_environment_has_region_no_metadata_and_dummy_local_credentials() -> None:
    env = daemon_environment(LOCAL, {"PATH": "/bin"})
    assert env["AWS_EC2_METADATA_DISABLED"] == "true"
    assert env["AWS_REGION"] == "us-east-1"
    assert env["AWS_ACCESS_KEY_ID"] and env["AWS_SECRET_ACCESS_KEY"]
    assert env["FRAUD_STREAM"] == "tx"
    kept = daemon_environment(LOCAL, {"AWS_ACCESS_KEY_ID": "mine", "AWS_SECRET_ACCESS_KEY": "s"})
    assert kept["AWS_ACCESS_KEY_ID"] == "mine"
    real = daemon_environment(Settings(), {})
    assert "AWS_ACCESS_KEY_ID" not in real  # real AWS: the default chain decides


def test_prepare_daemon_writes_properties_and_builds_the_command(tmp_path: Path) -> None:
    jars = JarSet(tmp_path, (tmp_path / "a.jar",), "x")
    launch = prepare_daemon(LOCAL, java="/usr/bin/java", jars=jars, work_dir=tmp_path / "kcl",
                            handler_spec="pkg.mod:H", python="/venv/bin/python",
                            base_env={})
    cmd = launch.command
    assert cmd[0] == "/usr/bin/java"
    assert cmd[cmd.index("-cp") + 1] == f"{tmp_path / 'a.jar'}:{tmp_path / 'kcl'}"
    assert cmd[-3:] == (MAIN_CLASS, "--properties-file", str(launch.properties_file))
    text = launch.properties_file.read_text()
    assert "executableName = /venv/bin/python -m fraud.stream.processor pkg.mod:H\n" in text
    assert "streamName = tx\n" in text


def _fake_jvm(tmp_path: Path, body: str) -> DaemonLaunch:
    """A Python stand-in for the JVM (same signals, same exit codes, milliseconds to start)."""
    script = tmp_path / "jvm.py"
    script.write_text(body)
    return DaemonLaunch(command=(sys.executable, str(script)), env=dict(os.environ),
                        properties_file=tmp_path / "x.properties", cwd=tmp_path)


def test_a_daemon_that_dies_by_itself_is_a_failure(tmp_path: Path) -> None:
    launch = _fake_jvm(tmp_path, "import sys; sys.exit(0)\n")
    assert supervise(DaemonProcess(launch, log_file=tmp_path / "d.log")) == 1
    launch = _fake_jvm(tmp_path, "import sys; sys.exit(7)\n")
    assert supervise(DaemonProcess(launch)) == 7


def test_sigterm_is_forwarded_and_a_requested_stop_is_clean(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    # Like the JVM: on SIGTERM, finish the work (write a marker) and exit 143.
    launch = _fake_jvm(tmp_path, f"""
import pathlib, signal, sys, time
def stop(signum, frame):
    pathlib.Path({str(tmp_path / 'drained')!r}).write_text("yes")
    sys.exit(143)
signal.signal(signal.SIGTERM, stop)
pathlib.Path({str(ready)!r}).write_text("up")
while True:
    time.sleep(0.05)
""")
    daemon = DaemonProcess(launch).start()

    def send_sigterm_when_ready() -> None:
        while not ready.exists():
            threading.Event().wait(0.02)
        os.kill(os.getpid(), signal.SIGTERM)  # what an orchestrator does to `fraud consume`

    threading.Thread(target=send_sigterm_when_ready, daemon=True).start()
    assert supervise(daemon) == 0
    assert (tmp_path / "drained").read_text() == "yes"


def test_kill_ends_the_whole_session(tmp_path: Path) -> None:
    ready = tmp_path / "child.pid"
    launch = _fake_jvm(tmp_path, f"""
import pathlib, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
pathlib.Path({str(ready)!r}).write_text(str(child.pid))
time.sleep(600)
""")
    daemon = DaemonProcess(launch).start()
    while not ready.exists() or not ready.read_text():
        threading.Event().wait(0.02)
    child = int(ready.read_text())
    daemon.kill()
    assert daemon.wait(30) == -signal.SIGKILL
    # The record-processor stand-in went with it (at most a zombie until init reaps it).
    assert _gone_eventually(child)


def _gone_eventually(pid: int) -> bool:
    for _ in range(500):  # a bound against hanging, not a speed requirement
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return True
        if stat.rsplit(")", 1)[-1].split()[0] == "Z":
            return True
        threading.Event().wait(0.02)
    return False
