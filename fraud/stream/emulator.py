"""The local Kinesis emulator: npm ``kinesis-local``, installed into the project's own folder.

``kinesis-local`` is the most faithful emulator we can run here (h2c and CBOR, which the KCL's
Java client speaks, and real shard splits). It hard-codes the listen address 0.0.0.0, so it is
started with ``node --require loopback.cjs`` (beside its package.json) which pins its servers
to 127.0.0.1. It is addressed as ``http://127.0.0.1:PORT`` only.

`KinesisEmulator.start` picks free ports, starts node in its own session with its output in a
log file, waits for ``/healthcheck`` and returns a `EmulatorHandle` (pid, ports, url) for the
caller to record; `stop` ends exactly that pid (after checking it is still our node process).

For ``fraud local`` the emulator is also a `fraud.local.services.ServiceSpec` (`SERVICE`, made
by `service_spec`): its command is ``python -m fraud.stream.emulator --port P``, which installs
the npm package when missing, sets the emulator's variables and *execs* node, so the recorded
pid is node's own and its command line carries the ``kinesis-local`` marker.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fraud.errors import ConfigError, FraudError
from fraud.logs import get_logger

__all__ = [
    "MARKER",
    "EmulatorHandle",
    "KinesisEmulator",
    "default_tool_dir",
    "emulator_env",
    "free_port",
    "kinesis_healthy",
    "main",
    "pid_alive",
    "service_command",
    "service_spec",
]

log = get_logger(__name__)

_PACKAGE = "kinesis-local"
MARKER = _PACKAGE  # appears in the node process's command line (the package's main.js path)


def default_tool_dir() -> Path:
    """``tools/kinesis`` at the project root: its package.json pins the emulator."""
    return Path(__file__).resolve().parents[2] / "tools" / "kinesis"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


@dataclass(frozen=True, slots=True)
class EmulatorHandle:
    """A started emulator: what ``fraud local`` records to find and stop it later."""

    pid: int
    port: int
    tls_port: int
    log_file: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class KinesisEmulator:
    """Install, start, probe and stop ``kinesis-local``."""

    name = "kinesis"

    def __init__(
        self,
        tool_dir: Path | None = None,
        *,
        node: str | None = None,
        npm: str | None = None,
    ) -> None:
        self.tool_dir = (tool_dir or default_tool_dir()).resolve()
        self.node = node or shutil.which("node") or ""
        self.npm = npm or shutil.which("npm") or ""

    @property
    def main_js(self) -> Path:
        return self.tool_dir / "node_modules" / _PACKAGE / "main.js"

    def ensure_installed(self) -> Path:
        """``npm ci`` into the tool folder unless the pinned emulator is already there."""
        if self.main_js.is_file():
            return self.main_js
        if not (self.tool_dir / "package-lock.json").is_file():
            raise ConfigError(f"{self.tool_dir}: no package-lock.json pinning {_PACKAGE}")
        if not self.npm:
            raise ConfigError("npm not found: install Node.js >= 18 to run the Kinesis emulator")
        log.info("kinesis_emulator_install", tool_dir=str(self.tool_dir))
        proc = subprocess.run(
            [self.npm, "ci", "--no-audit", "--no-fund", "--prefix", str(self.tool_dir)],
            capture_output=True, text=True, check=False,
        )
        if proc.returncode != 0 or not self.main_js.is_file():
            tail = "\n".join((proc.stderr or proc.stdout).splitlines()[-15:])
            raise FraudError(f"npm ci in {self.tool_dir} failed (exit {proc.returncode}):\n{tail}")
        return self.main_js

    def start(
        self,
        state_dir: Path,
        *,
        port: int | None = None,
        tls_port: int | None = None,
        region: str = "us-east-1",
        timeout: float = 60.0,
        extra_env: Mapping[str, str] | None = None,
    ) -> EmulatorHandle:
        """Start the emulator on 127.0.0.1 and wait until it answers its health check."""
        main_js = self.ensure_installed()
        if not self.node:
            raise ConfigError("node not found: install Node.js >= 18 to run the Kinesis emulator")
        state_dir.mkdir(parents=True, exist_ok=True)
        port = port or free_port()
        tls_port = tls_port or free_port()
        log_file = state_dir / "kinesis-local.log"
        env = emulator_env(os.environ, main_js, port=port, tls_port=tls_port, region=region)
        env.update(extra_env or {})
        with log_file.open("ab") as out:
            proc = subprocess.Popen(
                self.argv(), cwd=state_dir, env=env, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True,
            )
        handle = EmulatorHandle(proc.pid, port, tls_port, log_file)
        try:
            self.wait_healthy(handle, timeout=timeout, exited=proc.poll)
        except FraudError:
            self.stop(handle.pid)
            raise
        log.info("kinesis_emulator_started", pid=proc.pid, url=handle.url)
        return handle

    def argv(self) -> list[str]:
        """node, preloading the loopback pin, running the emulator."""
        return [self.node, "--require", str(self.tool_dir / "loopback.cjs"), str(self.main_js)]

    @staticmethod
    def healthy(url: str) -> bool:
        return kinesis_healthy(url)

    def wait_healthy(
        self,
        handle: EmulatorHandle,
        *,
        timeout: float,
        exited: Callable[[], int | None] | None = None,
    ) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.healthy(handle.url):
                return
            code = exited() if exited is not None else None
            if code is not None or not pid_alive(handle.pid):
                raise FraudError(
                    f"kinesis-local exited (code {code}) before answering; see {handle.log_file}"
                )
            time.sleep(0.2)
        raise FraudError(f"kinesis-local not healthy after {timeout:.0f} s; see {handle.log_file}")

    def owns(self, pid: int) -> bool:
        """True when `pid` is still a kinesis-local node process (not a reused pid)."""
        return _PACKAGE in _cmdline(pid) or (pid_alive(pid) and not Path("/proc").is_dir())

    def stop(self, pid: int, timeout: float = 10.0) -> bool:
        """SIGTERM, then SIGKILL after `timeout`, exactly that process. True if it was ours."""
        if not pid_alive(pid) or not self.owns(pid):
            return False
        for signum, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)
            if _ended(pid, wait):
                return True
        raise FraudError(f"kinesis-local (pid {pid}) did not stop after SIGKILL")


def kinesis_healthy(url: str) -> bool:
    """True when kinesis-local answers its health check at `url`."""
    try:
        with urllib.request.urlopen(f"{url}/healthcheck", timeout=2) as resp:
            return 200 <= int(resp.status) < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def emulator_env(
    base: Mapping[str, str], main_js: Path, *, port: int, tls_port: int, region: str
) -> dict[str, str]:
    """The emulator's environment: its ports, certificate, region and quiet logs."""
    env = dict(base)
    env.update(
        {
            "KINESIS_MOCK_PLAIN_PORT": str(port),
            "KINESIS_MOCK_TLS_PORT": str(tls_port),
            "KINESIS_MOCK_CERT_PATH": str(main_js.parent / "server.json"),
            "AWS_REGION": region,
            "LOG_LEVEL": "WARN",
            # Streams turn ACTIVE almost at once, which keeps local start-up short.
            "CREATE_STREAM_DURATION": "100ms",
            "DELETE_STREAM_DURATION": "100ms",
        }
    )
    return env


def service_command(port: int) -> Sequence[str]:
    """The `fraud.local` service command: this module's launcher, same interpreter."""
    # `--package` names the npm package, which also puts the marker in the launcher's own
    # command line: fraud.local checks it before node has replaced the launcher.
    return [sys.executable, "-m", "fraud.stream.emulator", "--port", str(port),
            "--package", _PACKAGE]


def service_spec() -> Any:
    """kinesis-local as a `fraud.local.services.ServiceSpec` (endpoint -> Kinesis setting)."""
    from fraud.local.services import ServiceSpec

    return ServiceSpec(name="kinesis", command=service_command, healthy=kinesis_healthy,
                       env="FRAUD_KINESIS_ENDPOINT_URL", marker=MARKER, start_timeout=60.0)


def main(argv: Sequence[str] | None = None) -> int:
    """Launcher: install if needed, then exec node in this process (keeping our pid)."""
    parser = argparse.ArgumentParser(prog="python -m fraud.stream.emulator")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tls-port", type=int, default=0)
    parser.add_argument("--region", default=os.environ.get("FRAUD_REGION", "us-east-1"))
    parser.add_argument("--tool-dir", type=Path, default=None)
    parser.add_argument("--package", choices=[_PACKAGE], default=_PACKAGE)
    args = parser.parse_args(argv)
    emulator = KinesisEmulator(args.tool_dir)
    try:
        main_js = emulator.ensure_installed()
    except FraudError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    if not emulator.node:
        print("error: node not found: install Node.js >= 18", file=sys.stderr)
        return 2
    env = emulator_env(os.environ, main_js, port=args.port,
                       tls_port=args.tls_port or free_port(), region=args.region)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(emulator.node, emulator.argv(), env)


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"


def _ended(pid: int, wait: float) -> bool:
    """Wait up to `wait` s for `pid` to end; reap it when it is our child."""
    deadline = time.monotonic() + wait
    while True:
        _reap(pid)
        if not pid_alive(pid):
            return True
        if _zombie(pid):
            # Exiting; a multi-threaded node stays "Z" until its last thread is gone, and
            # waitpid without WNOHANG collects it then (if it is our child at all).
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def _reap(pid: int) -> None:
    """Collect the exit status when the emulator is our own child (no zombie left behind)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


if __name__ == "__main__":
    sys.exit(main())
