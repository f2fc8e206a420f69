"""Hot reload: a valid file is swapped in, an invalid one is refused and the last good stays."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from fraud.rules import RulesFileError, default_vocabulary
from fraud.rules.reload import RulesWatcher

VOCAB = default_vocabulary([])


def rules(threshold: float, extra: str = "") -> str:
    return ("version: 1\nrules:\n"
            f"  - {{id: hi, description: d, when: score >= {threshold}, action: block}}\n"
            + extra)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def write(path: Path, text: str, bump: int) -> None:
    """Write and move the mtime forward, so the change is seen even within one clock tick."""
    path.write_text(text)
    os.utime(path, ns=(bump * 10**9, bump * 10**9))


def test_poll_interval_and_valid_swap(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    write(path, rules(0.9), 1)
    clock = FakeClock()
    watcher = RulesWatcher(str(path), vocabulary=VOCAB, interval=10, clock=clock)
    first = watcher.current
    write(path, rules(0.8), 2)
    assert watcher.poll() is None  # interval not yet passed
    clock.now = 10
    result = watcher.poll()
    assert result is not None and result.outcome == "reloaded"
    assert watcher.current is not first
    assert watcher.current.version == result.version != first.version
    clock.now = 20
    polled = watcher.poll()
    assert polled is not None and polled.outcome == "unchanged"


def test_invalid_file_is_refused_and_last_good_kept(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    write(path, rules(0.9), 1)
    watcher = RulesWatcher(str(path), vocabulary=VOCAB, interval=0)
    good = watcher.current
    write(path, rules(0.9).replace("score", "scor"), 2)
    result = watcher.check()
    assert result.outcome == "rejected"
    assert result.version == good.version
    assert [(p.line, p.col) for p in result.problems] == [(3, 36)]
    assert watcher.current is good
    assert watcher.check().outcome == "unchanged"  # refused once, not at every poll
    path.unlink()
    assert watcher.check().outcome == "rejected"  # file gone: keep the last good rules
    assert watcher.current is good
    write(path, rules(0.7), 3)
    assert watcher.check().outcome == "reloaded"


def test_a_loader_failure_keeps_the_last_good_rules(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "r.yaml"
    write(path, rules(0.9), 1)
    watcher = RulesWatcher(str(path), vocabulary=VOCAB, interval=0)
    good = watcher.current

    def broken(*_: Any, **__: Any) -> Any:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr("fraud.rules.reload.load_rules", broken)
    write(path, rules(0.8), 2)
    result = watcher.check()
    assert result.outcome == "rejected" and result.version == good.version
    assert "RecursionError" in (result.error or "")
    assert watcher.current is good


def test_list_file_change_triggers_reload(tmp_path: Path) -> None:
    path, listing = tmp_path / "r.yaml", tmp_path / "deny.txt"
    write(listing, "u1\n", 1)
    write(path, "version: 1\nlists: {deny: {file: deny.txt}}\nrules:\n"
          "  - {id: d, description: d, when: user_id in deny, action: block}\n", 1)
    watcher = RulesWatcher(str(path), vocabulary=VOCAB, interval=0)
    watcher.check()
    write(listing, "u1\nu2\n", 2)
    assert watcher.check().outcome == "reloaded"
    assert watcher.current.lists["deny"] == frozenset({"u1", "u2"})


def test_invalid_file_at_start_up_raises(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("version: 1\nrules: [1]\n")
    with pytest.raises(RulesFileError):
        RulesWatcher(str(path), vocabulary=VOCAB)


@pytest.fixture
def s3(moto_s3: Any) -> Any:
    moto_s3.create_bucket(Bucket="rules")
    return moto_s3


def test_s3_reload_by_etag(s3: Any) -> None:
    s3.put_object(Bucket="rules", Key="prod/r.yaml", Body=rules(0.9).encode())
    s3.put_object(Bucket="rules", Key="prod/deny.txt", Body=b"u1\n")
    watcher = RulesWatcher("s3://rules/prod/r.yaml", vocabulary=VOCAB, s3_client=s3,
                           interval=0)
    first = watcher.current
    assert watcher.check().outcome == "unchanged"
    s3.put_object(Bucket="rules", Key="prod/r.yaml",
                  Body=rules(0.9, "lists: {deny: {file: deny.txt}}\n").encode())
    assert watcher.check().outcome == "reloaded"
    assert watcher.current.lists["deny"] == frozenset({"u1"})  # list beside the rules object
    s3.put_object(Bucket="rules", Key="prod/r.yaml", Body=b"version: 1\nrules: {}\n")
    result = watcher.check()
    assert result.outcome == "rejected" and "must be a list of rules" in result.error
    assert watcher.current.version != first.version
    assert watcher.current.lists["deny"] == frozenset({"u1"})
