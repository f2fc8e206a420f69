"""Launch and supervise the KCL MultiLangDaemon (the JVM that owns leases and reads shards).

`prepare_daemon` turns `Settings` into a `DaemonLaunch` (command line, environment, properties
file); `DaemonProcess` starts it in its own session (a terminal's Ctrl-C reaches only us, and we
decide how the JVM stops) and `supervise` waits for it, forwarding SIGTERM/SIGINT as one SIGTERM
so the daemon's graceful shutdown lets in-flight batches finish and checkpoint.

The daemon ends the JVM when a record processor child dies, so "the daemon exited" is always a
failure unless we asked it to stop: `supervise` returns non-zero then.

The child processes inherit the environment built here: every `Settings` field as its
``FRAUD_*`` variable (so the child rebuilds exactly the same settings), the region, and
``AWS_EC2_METADATA_DISABLED=true``; against local endpoints, dummy credentials when none are set.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import FrameType
from typing import IO, Any

from fraud.config import SETTINGS, Settings
from fraud.errors import FraudError
from fraud.logs import get_logger
from fraud.stream.jars import JarSet
from fraud.stream.properties import build_properties, is_local_endpoint, write_properties

__all__ = [
    "DEFAULT_JVM_OPTIONS",
    "MAIN_CLASS",
    "DaemonLaunch",
    "DaemonProcess",
    "absolute_paths",
    "child_command",
    "daemon_environment",
    "prepare_daemon",
    "settings_environment",
    "supervise",
]

log = get_logger(__name__)

MAIN_CLASS = "software.amazon.kinesis.multilang.MultiLangDaemon"
# A small heap: the JVM only moves records between Kinesis and the Python child.
DEFAULT_JVM_OPTIONS: tuple[str, ...] = ("-Xmx512m", "-XX:+UseSerialGC")
_SIGTERM_EXIT = 128 + signal.SIGTERM
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True, slots=True)
class DaemonLaunch:
    """Everything needed to start one daemon; build it with `prepare_daemon`."""

    command: tuple[str, ...]
    env: Mapping[str, str]
    properties_file: Path
    cwd: Path


def settings_environment(settings: Settings) -> dict[str, str]:
    """``FRAUD_*`` variables that make `build_settings({})` in a child return `settings`."""
    env: dict[str, str] = {}
    for setting in SETTINGS:
        value = getattr(settings, setting.field)
        env[setting.env] = "" if value is None else str(value)
    return env


def daemon_environment(settings: Settings, base: Mapping[str, str]) -> dict[str, str]:
    """The JVM's (and so every child's) environment."""
    env = dict(base)
    env.update(settings_environment(settings))
    env["AWS_REGION"] = settings.region
    local = is_local_endpoint(settings.aws_endpoint("kinesis")) or is_local_endpoint(
        settings.aws_endpoint("dynamodb")
    )
    if local:
        # Emulators: never let a credential chain walk to the EC2 metadata address. On AWS
        # it stays reachable, since an instance profile may be how the worker gets credentials.
        env["AWS_EC2_METADATA_DISABLED"] = "true"
        # EnvironmentVariableCredentialsProvider wants both; emulators accept any letters.
        env.setdefault("AWS_ACCESS_KEY_ID", "fraudlocal")
        env.setdefault("AWS_SECRET_ACCESS_KEY", "fraudlocal")
    return env


def absolute_paths(settings: Settings) -> Settings:
    """`settings` with local paths made absolute: the daemon runs its children elsewhere."""
    rules = settings.rules_path
    if "://" not in rules:
        rules = str(Path(rules).absolute())
    return replace(settings, model_dir=Path(settings.model_dir).absolute(), rules_path=rules,
                   local_dir=Path(settings.local_dir).absolute())


def child_command(handler_spec: str, python: str = sys.executable) -> tuple[str, ...]:
    """The record processor's argv (an absolute interpreter: the daemon's PATH may differ)."""
    return (str(Path(python).absolute()), "-m", "fraud.stream.processor", handler_spec)


def prepare_daemon(
    settings: Settings,
    *,
    java: str,
    jars: JarSet,
    work_dir: Path,
    handler_spec: str,
    worker_id: str | None = None,
    python: str = sys.executable,
    jvm_options: Sequence[str] = DEFAULT_JVM_OPTIONS,
    overrides: Mapping[str, str] | None = None,
    base_env: Mapping[str, str] | None = None,
) -> DaemonLaunch:
    """Write the properties file under `work_dir` and assemble the daemon's command line."""
    settings = absolute_paths(settings)
    props = build_properties(
        settings,
        command=child_command(handler_spec, python),
        worker_id=worker_id,
        overrides=overrides,
    )
    work_dir = work_dir.absolute()
    path = write_properties(work_dir / f"{settings.application_name}.properties", props)
    command = (
        java,
        *jvm_options,
        "-cp",
        jars.classpath(path.parent),
        MAIN_CLASS,
        "--properties-file",
        str(path),
    )
    env = daemon_environment(settings, os.environ if base_env is None else base_env)
    return DaemonLaunch(command=command, env=env, properties_file=path, cwd=work_dir)


class DaemonProcess:
    """One running daemon JVM. Its output goes to `log` (a file) or our stderr."""

    def __init__(self, launch: DaemonLaunch, log_file: Path | None = None) -> None:
        self.launch = launch
        self.log_file = log_file
        self._proc: subprocess.Popen[bytes] | None = None
        self._out: IO[bytes] | None = None
        self.stop_requested = False

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise FraudError("the KCL daemon has not been started")
        return self._proc.pid

    def start(self) -> DaemonProcess:
        if self.log_file is not None:
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            self._out = self.log_file.open("ab")
        out: Any = self._out if self._out is not None else sys.stderr
        try:
            self._proc = subprocess.Popen(
                list(self.launch.command),
                env=dict(self.launch.env),
                cwd=self.launch.cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                # Safe here: `fraud consume` starts the daemon before it runs any other thread,
                # and the hook only calls a libc function resolved before the fork.
                preexec_fn=_term_with_parent,  # noqa: PLW1509
            )
        except OSError as exc:
            raise FraudError(
                f"cannot start the KCL daemon ({self.launch.command[0]}): {exc}"
            ) from exc
        log.info("kcl_daemon_started", pid=self._proc.pid,
                 properties=str(self.launch.properties_file))
        return self

    @property
    def started(self) -> bool:
        return self._proc is not None

    def poll(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    def terminate(self) -> None:
        """Ask for a graceful shutdown: the JVM's hook drains and checkpoints every shard."""
        self.stop_requested = True
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL the JVM and its record processors (its whole session), no goodbyes."""
        self.stop_requested = True
        if self._proc is not None and self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGKILL)

    def _signal(self, signum: int) -> None:
        if self._proc is not None and self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.send_signal(signum)

    def wait(self, timeout: float | None = None) -> int:
        if self._proc is None:
            raise FraudError("the KCL daemon has not been started")
        code = self._proc.wait(timeout)
        if self._out is not None:
            self._out.close()
            self._out = None
        return code

    def __enter__(self) -> DaemonProcess:
        return self.start() if self._proc is None else self

    def __exit__(self, *exc: object) -> None:
        if self.poll() is None:
            self.terminate()
            try:
                self.wait(60)
            except subprocess.TimeoutExpired:
                self.kill()
                self.wait()


def _term_with_parent() -> None:
    """In the child before exec: SIGTERM the JVM if its supervisor dies (Linux only).

    The JVM runs in its own session, so without this a SIGKILLed ``fraud consume`` would leave
    an orphan daemon holding leases.
    """
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, int(signal.SIGTERM))


def _load_prctl() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _load_prctl()


def supervise(daemon: DaemonProcess) -> int:
    """Run `daemon` to its end; forward SIGTERM/SIGINT; 0 only for a stop we asked for.

    Returns the exit code ``fraud consume`` should use: 0 after a requested, clean stop; the
    daemon's own code (or 1) when it died by itself; 128+N when a signal killed it.
    """
    if threading.current_thread() is not threading.main_thread():
        raise FraudError("supervise() must run on the main thread (it handles signals)")

    def forward(signum: int, frame: FrameType | None) -> None:
        log.info("kcl_daemon_stopping", signal=signal.Signals(signum).name, pid=daemon.pid)
        daemon.terminate()

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        if not daemon.started:
            daemon.start()
        code = daemon.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if daemon.stop_requested and code in (0, _SIGTERM_EXIT, -signal.SIGTERM):
        log.info("kcl_daemon_stopped", exit_code=code)
        return 0
    log.error("kcl_daemon_died", exit_code=code, requested=daemon.stop_requested)
    if code < 0:
        return 128 - code
    return code or 1
