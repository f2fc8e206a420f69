"""Local emulator processes: start on a free 127.0.0.1 port, track by pid, stop cleanly.

A `ServiceSpec` says how to start one emulator (its command for a port), how to tell that it
answers, and which setting its endpoint feeds. `SERVICES` is the registry: moto's server is
registered in `fraud.local.moto`; another emulator (e.g. a Kinesis one) registers itself the
same way with `register`. The state of what runs lives in ``<local_dir>/local.json``::

    {"services": {"moto": {"pid": 123, "port": 40123, "endpoint": "http://127.0.0.1:40123",
                           "started_at": "2026-01-01T00:00:00Z", "log": ".local/moto.log",
                           "env": "FRAUD_ENDPOINT_URL", "marker": "moto.server"}}}

Every process is started in its own session (process group = its pid) so that `stop` ends it
and its children, and nothing else.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fraud.errors import ConfigError, FraudError
from fraud.logs import get_logger

__all__ = [
    "SERVICES",
    "LocalError",
    "RunningService",
    "ServiceSpec",
    "free_port",
    "register",
    "start",
    "state_path",
    "status",
    "stop",
]

_log = get_logger(__name__)
STATE_FILE = "local.json"


class LocalError(FraudError):
    """A local emulator failed to start, answer or stop."""


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """How to run one local emulator.

    `command(port)` is its argv; `healthy(endpoint)` returns True once it answers;
    `env` is the variable that points the project at it; `marker` is a string that must
    appear in the process's command line before we signal a recorded pid (pids get reused).
    """

    name: str
    command: Callable[[int], Sequence[str]]
    healthy: Callable[[str], bool]
    env: str
    marker: str
    start_timeout: float = 30.0


@dataclass(frozen=True, slots=True)
class RunningService:
    """One service as recorded in the state file, and whether it is alive and answering."""

    name: str
    pid: int
    port: int
    endpoint: str
    started_at: str
    log: str
    env: str
    marker: str
    alive: bool = False
    healthy: bool = False

    def record(self) -> dict[str, Any]:
        return {"pid": self.pid, "port": self.port, "endpoint": self.endpoint,
                "started_at": self.started_at, "log": self.log, "env": self.env,
                "marker": self.marker}

    @property
    def export_line(self) -> str:
        return f"export {self.env}={self.endpoint}"


SERVICES: dict[str, ServiceSpec] = {}


def register(spec: ServiceSpec) -> None:
    """Add (or replace) an emulator in the registry."""
    SERVICES[spec.name] = spec


def state_path(local_dir: Path) -> Path:
    return Path(local_dir) / STATE_FILE


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _read_state(local_dir: Path) -> dict[str, dict[str, Any]]:
    path = state_path(local_dir)
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
        services = data["services"]
        if not isinstance(services, dict):
            raise TypeError("services is not an object")
        return services
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: not a local state file ({exc}); remove it and retry") from exc


def _write_state(local_dir: Path, services: dict[str, dict[str, Any]]) -> None:
    path = state_path(local_dir)
    if not services:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"services": services}, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


def _alive(pid: int, marker: str) -> bool:
    """True when `pid` runs and is the process we started (its command line has `marker`)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.exists():
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            return False
        if not text.strip():  # a zombie: exited, not yet reaped
            return False
        return marker in text
    return True


def _running(name: str, record: dict[str, Any]) -> RunningService:
    spec = SERVICES.get(name)
    base = RunningService(name=name, pid=int(record["pid"]), port=int(record["port"]),
                          endpoint=str(record["endpoint"]), started_at=str(record["started_at"]),
                          log=str(record["log"]), env=str(record.get("env", "")),
                          marker=str(record.get("marker", "")))
    alive = _alive(base.pid, base.marker)
    healthy = alive and spec is not None and _safe_healthy(spec, base.endpoint)
    return RunningService(**{**base.record(), "name": name, "alive": alive, "healthy": healthy})


def _safe_healthy(spec: ServiceSpec, endpoint: str) -> bool:
    try:
        return spec.healthy(endpoint)
    except Exception:
        return False


def status(local_dir: Path) -> list[RunningService]:
    """Every recorded service, with liveness and health checked now."""
    return [_running(name, rec) for name, rec in sorted(_read_state(local_dir).items())]


def _names(names: Sequence[str] | None) -> list[str]:
    chosen = list(names) if names else sorted(SERVICES)
    unknown = [n for n in chosen if n not in SERVICES]
    if unknown:
        raise ConfigError(f"unknown local service(s) {unknown}; known: {sorted(SERVICES)}")
    return chosen


def start(local_dir: Path, names: Sequence[str] | None = None) -> list[tuple[RunningService, bool]]:
    """Start the named services (default: all registered) unless already up.

    Returns (service, started_now) pairs. Waits until each answers; on failure, stops what
    it started and raises `LocalError` with the tail of the service's log.
    """
    local_dir = Path(local_dir)
    local_dir.mkdir(parents=True, exist_ok=True)
    state = _read_state(local_dir)
    out: list[tuple[RunningService, bool]] = []
    for name in _names(names):
        if name in state:
            current = _running(name, state[name])
            if current.alive:
                if not current.healthy:
                    _wait_healthy(SERVICES[name], current, local_dir)
                out.append((current, False))
                continue
            del state[name]  # stale record: the process is gone
        service, proc = _spawn(SERVICES[name], local_dir)
        state[name] = service.record()
        _write_state(local_dir, state)
        try:
            _wait_healthy(SERVICES[name], service, local_dir, proc)
        except LocalError:
            _kill_child(proc)
            state.pop(name, None)
            _write_state(local_dir, state)
            raise
        out.append((RunningService(**{**service.record(), "name": name, "alive": True,
                                      "healthy": True}), True))
    return out


def _spawn(spec: ServiceSpec, local_dir: Path) -> tuple[RunningService, subprocess.Popen[bytes]]:
    port = free_port()
    log_path = local_dir / f"{spec.name}.log"
    argv = list(spec.command(port))
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, cwd=local_dir,
        )
    started = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    _log.info("local.started", service=spec.name, pid=proc.pid, port=port)
    service = RunningService(name=spec.name, pid=proc.pid, port=port,
                             endpoint=f"http://127.0.0.1:{port}", started_at=started,
                             log=str(log_path), env=spec.env, marker=spec.marker, alive=True)
    return service, proc


def _wait_healthy(spec: ServiceSpec, service: RunningService, local_dir: Path,
                  proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + spec.start_timeout
    while time.monotonic() < deadline:
        # Our own child: ask it directly (its /proc cmdline is the parent's until it execs).
        alive = proc.poll() is None if proc is not None else _alive(service.pid, service.marker)
        if not alive:
            _reap(service.pid)
            raise LocalError(f"{spec.name} exited while starting; log {service.log}:\n"
                             f"{_tail(Path(service.log))}")
        if _safe_healthy(spec, service.endpoint):
            return
        time.sleep(0.2)
    raise LocalError(f"{spec.name} did not answer on {service.endpoint} within "
                     f"{spec.start_timeout:.0f}s; log {service.log}:\n{_tail(Path(service.log))}")


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _reap(pid: int) -> None:
    # Our child when started by this process: collect it so it does not linger as a zombie.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _kill_child(proc: subprocess.Popen[bytes]) -> None:
    """Stop a child we just started (known to be ours, even before it has exec'd)."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=5.0)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5.0)


def _terminate(pid: int, marker: str, timeout: float) -> bool:
    """SIGTERM the process group of `pid`, then SIGKILL after `timeout`. True if it was up."""
    if not _alive(pid, marker):
        return False
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            break
        except PermissionError:
            os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            _reap(pid)
            if not _alive(pid, marker):
                return True
            time.sleep(0.1)
    _reap(pid)
    if _alive(pid, marker):
        raise LocalError(f"process {pid} did not stop after SIGKILL")
    return True


def stop(local_dir: Path, names: Sequence[str] | None = None,
         timeout: float = 10.0) -> list[tuple[str, bool]]:
    """Stop the named (default: all recorded) services; returns (name, was_running) pairs."""
    local_dir = Path(local_dir)
    state = _read_state(local_dir)
    chosen = list(names) if names else sorted(state)
    out: list[tuple[str, bool]] = []
    for name in chosen:
        record = state.pop(name, None)
        if record is None:
            out.append((name, False))
            continue
        was_up = _terminate(int(record["pid"]), str(record.get("marker", "")), timeout)
        _log.info("local.stopped", service=name, pid=record["pid"], was_running=was_up)
        out.append((name, was_up))
        _write_state(local_dir, state)
    _write_state(local_dir, state)
    return out
