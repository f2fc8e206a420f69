"""Fixtures for the end-to-end tests: the real KCL MultiLangDaemon against local endpoints.

The stack is the product's own: ``fraud.local`` starts moto's server (DynamoDB: the lease
tables and our tables) and kinesis-local (registered from ``fraud.stream.emulator``) on free
127.0.0.1 ports; the jars and amazon-kclpy come from ``scripts/fetch_kcl_jars.py``. Nothing is
installed here except through that script. Without java the tests are skipped, saying why.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import dummy_aws_env

ROOT = Path(__file__).resolve().parents[2]

def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if shutil.which("java") or os.environ.get("JAVA_HOME"):
        return
    skip = pytest.mark.skip(reason="java not found: the e2e tests run the real KCL daemon")
    for item in items:
        if "e2e" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def _aws_env() -> Iterator[None]:
    # Never reach real AWS: dummy credentials, no instance metadata, loopback endpoints only.
    with dummy_aws_env():
        yield


@pytest.fixture(scope="session")
def kcl_ready() -> Any:
    """The jar set, fetched and amazon-kclpy installed by the project's script (idempotent)."""
    args = [sys.executable, str(ROOT / "scripts" / "fetch_kcl_jars.py")]
    if importlib.util.find_spec("amazon_kclpy") is None:
        args.append("--install-kclpy")
    proc = subprocess.run(args, capture_output=True, text=True, check=False, timeout=900)
    assert proc.returncode == 0, f"fetch_kcl_jars.py failed:\n{proc.stderr[-3000:]}"
    from fraud.stream.jars import ensure_jars

    return ensure_jars()


@dataclass(frozen=True)
class LocalStack:
    dynamodb: str
    kinesis: str
    local_dir: Path


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """moto + kinesis-local through ``fraud.local``, stopped (by pid) at the end."""
    from fraud.local import register, start, stop
    from fraud.stream.emulator import service_spec

    register(service_spec())
    local_dir = tmp_path_factory.mktemp("local")
    try:
        services = {svc.name: svc for svc, _ in start(local_dir, ["moto", "kinesis"])}
        yield LocalStack(services["moto"].endpoint, services["kinesis"].endpoint, local_dir)
    finally:
        stop(local_dir)


def wait_for(what: str, check: Callable[[], Any], timeout: float = 240.0,
              alive: Callable[[], bool] | None = None,
              explain: Callable[[], str] | None = None) -> Any:
    """Poll `check` until it returns something truthy; fail with `what` after `timeout`.

    The timeout only guards against a hang; no test asserts anything about speed. `explain`
    adds what the daemons said (e.g. a log's tail) to a failure, for the CI's record.
    """
    deadline = time.monotonic() + timeout
    failure = ""
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        if alive is not None and not alive():
            failure = f"the daemon died while waiting for {what}"
            break
        time.sleep(0.5)
    else:
        failure = f"timed out after {timeout:.0f} s waiting for {what}"
    pytest.fail(failure + (f"\n{explain()}" if explain is not None else ""))


def log_lines(path: Path, *needles: str, last: int = 40) -> str:
    """The last `last` lines of a daemon log that contain any of `needles`."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError as exc:
        return f"{path}: {exc}"
    picked = [line for line in lines if any(n in line for n in needles)]
    return f"{path.name} ({len(lines)} lines), last matching lines:\n" + "\n".join(picked[-last:])


@pytest.fixture()
def unique_name() -> str:
    return f"e2e-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def pipeline_stack(local_stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One provisioned set of pipeline tables, decisions stream, alert topic (with an SQS
    queue subscribed, to count alerts) for the whole session; each test adds its own stream
    and application name and keeps to its own ids (see `tests.e2e.pipeline_kit`)."""
    from tests.e2e.pipeline_kit import provision_stack

    return provision_stack(local_stack.dynamodb, local_stack.kinesis,
                           tmp_path_factory.mktemp("pipeline"))
