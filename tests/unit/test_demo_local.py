"""`fraud demo` stops only the local services it started itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import fraud.local
from fraud import demo
from fraud.config import build_settings
from fraud.local.services import RunningService


def _svc(name: str, port: int) -> RunningService:
    return RunningService(name=name, pid=1, port=port, endpoint=f"http://127.0.0.1:{port}",
                          started_at="", log="", env="", marker="", alive=True, healthy=True)


@pytest.mark.parametrize(("already_up", "stopped"), [
    ((), ["moto", "kinesis"]),
    (("moto",), ["kinesis"]),
    (("moto", "kinesis"), None),
])
def test_demo_leaves_running_what_was_up_before(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        already_up: tuple[str, ...], stopped: list[str] | None) -> None:
    calls: list[list[str]] = []

    def fake_start(local_dir: Path, names: list[str]) -> list[tuple[RunningService, bool]]:
        return [(_svc(n, 5000 + i), n not in already_up) for i, n in enumerate(names)]

    def fake_stop(local_dir: Path, names: list[str] | None = None) -> list[Any]:
        calls.append(list(names or []))
        return []

    monkeypatch.setattr(fraud.local, "start", fake_start)
    monkeypatch.setattr(fraud.local, "stop", fake_stop)
    monkeypatch.setattr(demo, "_run", lambda *args: 0)
    lines: list[str] = []
    settings = build_settings({"local_dir": str(tmp_path)}, environ={})
    assert demo.run_demo(settings, demo.DemoConfig(), lines.append) == 0
    assert calls == ([stopped] if stopped else [])
    assert lines[-1] == ("local AWS stopped" if stopped
                         else "local AWS left running (it was up before the demo)")
