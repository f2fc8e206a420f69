"""`make demo`'s job as a test: `fraud demo` (stream mode) on a small generated world, in its
own local stack, with the real KCL daemon; it must decide every produced transaction, print
its report and stop what it started. And the replay mode, which needs no AWS at all."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import ROOT

pytestmark = pytest.mark.e2e


def _demo(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAUD_")}
    return subprocess.run(
        [sys.executable, "-m", "fraud", "demo", "--local-dir", str(tmp_path / "local"),
         "--users", "150", "--terminals", "30", "--days", "6", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False)


def test_stream_demo_decides_the_day_and_reports(kcl_ready: Any, tmp_path: Path) -> None:
    proc = _demo(tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    for line in ("consumer started: KCL MultiLangDaemon", "label feed applied",
                 "action     count  precision   recall", "throughput:",
                 "arrival-to-decision latency: p50", "local AWS stopped"):
        assert line in out, out
    assert "Traceback" not in proc.stderr
    # Everything it started is gone: no services recorded, no process working in its folder.
    status = subprocess.run([sys.executable, "-m", "fraud", "local", "status", "--local-dir",
                             str(tmp_path / "local")], capture_output=True, text=True,
                            timeout=60, check=False)
    assert "down: no local services recorded" in status.stdout, status.stdout
    assert _processes_mentioning(str(tmp_path)) == []


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if proc.name.isdigit() and text in cmdline and "pytest" not in cmdline:
            found.append(cmdline[:200])
    return found


def test_replay_demo_writes_decisions_and_a_report(tmp_path: Path) -> None:
    proc = _demo(tmp_path, "--mode", "replay")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    work = tmp_path / "local" / "demo"
    assert any(work.rglob("*.md")), sorted(p.name for p in work.rglob("*"))
