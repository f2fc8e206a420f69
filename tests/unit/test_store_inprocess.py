"""Store logic against moto in-process (no sockets) and small fakes: request counting,
transaction retries, the local state file."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from fraud.config import Settings
from fraud.errors import ConfigError
from fraud.local import stop
from fraud.local.services import status
from fraud.store import Backoff, ConditionalPut, Dynamo, RequestCounter, connect
from fraud.store.clients import is_local_endpoint
from fraud.store.tables import create_tables, table_spec


@pytest.fixture
def mocked(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_EC2_METADATA_DISABLED": "true"}.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        yield


def test_every_request_is_counted_per_operation(mocked: None) -> None:
    counter = RequestCounter()
    db = connect(Settings(table_prefix="u-"), counter)
    create_tables(db, [table_spec("Users")])
    counter.reset()
    db.batch_write(puts={"Users": [{"user_id": f"u{i}"} for i in range(60)]})
    db.batch_get({"Users": [{"user_id": f"u{i}"} for i in range(60)]})
    db.get("Users", {"user_id": "u1"})
    assert counter.snapshot() == {"dynamodb.BatchGetItem": 1, "dynamodb.BatchWriteItem": 3,
                                  "dynamodb.GetItem": 1}
    assert counter.total() == 5 and counter.per(100) == 0.05 and counter.per(0) == 0.0


def _canceled(reasons: list[str]) -> ClientError:
    return ClientError({"Error": {"Code": "TransactionCanceledException", "Message": "x"},
                        "CancellationReasons": [{"Code": c} for c in reasons]},
                       "TransactWriteItems")


class ScriptedClient:
    """Answers TransactWriteItems from a script of outcomes, recording what was sent."""

    def __init__(self, outcomes: list[ClientError | None]) -> None:
        self.outcomes = outcomes
        self.sent: list[list[str]] = []

    def transact_write_items(self, TransactItems: list[dict[str, Any]]) -> dict[str, Any]:
        self.sent.append([i["Put"]["Item"]["id"]["S"] for i in TransactItems])
        outcome = self.outcomes.pop(0)
        if outcome is not None:
            raise outcome
        return {}


def test_put_once_resends_without_existing_items_and_retries_conflicts() -> None:
    client = ScriptedClient([
        _canceled(["None", "ConditionalCheckFailed", "None"]),  # b exists
        _canceled(["TransactionConflict", "None"]),  # a conflicting writer: retry
        None,
    ])
    sleeps: list[float] = []
    db = Dynamo(client, "p-", Backoff(sleep=sleeps.append))
    puts = [ConditionalPut("T", {"id": x}, "id") for x in "abc"]
    assert db.put_once(puts) == ([0, 2], [1])
    assert client.sent == [["a", "b", "c"], ["a", "c"], ["a", "c"]]
    assert len(sleeps) == 1  # only the conflict waited


def test_local_endpoint_detection() -> None:
    assert is_local_endpoint("http://127.0.0.1:5000")
    assert is_local_endpoint("http://localhost:4566")
    assert not is_local_endpoint("https://dynamodb.eu-west-1.amazonaws.com")
    assert not is_local_endpoint(None)


def test_local_state_file_corrupt_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "local.json").write_text("{not json")
    with pytest.raises(ConfigError, match=r"local.json: not a local state file"):
        status(tmp_path)


def test_stop_forgets_a_service_whose_process_is_gone(tmp_path: Path) -> None:
    # A pid that cannot be ours: our own pid with a marker our command line does not have.
    record = {"pid": os.getpid(), "port": 1, "endpoint": "http://127.0.0.1:1",
              "started_at": "2026-01-01T00:00:00Z", "log": "x.log", "env": "E",
              "marker": "no-such-marker-in-cmdline"}
    (tmp_path / "local.json").write_text(json.dumps({"services": {"moto": record}}))
    [gone] = status(tmp_path)
    assert not gone.alive and not gone.healthy
    assert stop(tmp_path) == [("moto", False)]  # never signals a pid that is not ours
    assert not (tmp_path / "local.json").exists()


class RetriedClient:
    """Sends each TransactWriteItems twice, as botocore does when a response is lost, and
    returns the second answer: the first attempt has landed, the retry meets its own write."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.meta = client.meta

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def transact_write_items(self, **kwargs: Any) -> Any:
        self.client.transact_write_items(**kwargs)
        return self.client.transact_write_items(**kwargs)


def test_a_retried_user_write_that_landed_is_not_a_stale_write(mocked: None) -> None:
    from fraud.errors import StaleWriteError
    from fraud.features.store import UserState
    from fraud.store.feature_store import DynamoStateStore

    db = connect(Settings(table_prefix="r-"))
    create_tables(db, [table_spec("UserProfiles")])
    retried = Dynamo(RetriedClient(db.client), db.prefix)
    store = DynamoStateStore(retried)
    store.save_users({"a": UserState(), "b": UserState()})
    assert {u: s.version for u, s in store.load_users(["a", "b"]).items()} == {"a": 1, "b": 1}
    store.save_users(store.load_users(["a"]))  # version 1 -> 2, through a retry again
    assert DynamoStateStore(db).load_users(["a"])["a"].version == 2
    other = DynamoStateStore(db)
    with pytest.raises(StaleWriteError, match="'b'"):  # a real stale write still fails loudly
        other.save_users({"b": UserState(count=1, amount_sum=2.0)})


def test_a_service_that_never_answers_is_stopped_and_reported(tmp_path: Path) -> None:
    import sys

    from fraud.local.services import SERVICES, LocalError, ServiceSpec, start

    code = "import os, time; print(os.getpid(), flush=True); time.sleep(60)"
    spec = ServiceSpec(
        name="mute", command=lambda port: [sys.executable, "-c", code],
        healthy=lambda endpoint: False, env="MUTE_URL", marker="time.sleep", start_timeout=1.0)
    SERVICES["mute"] = spec
    try:
        with pytest.raises(LocalError, match=r"mute did not answer .* within 1s"):
            start(tmp_path, ["mute"])
    finally:
        del SERVICES["mute"]
    assert not (tmp_path / "local.json").exists()
    assert status(tmp_path) == []
    pid = int((tmp_path / "mute.log").read_text().split()[0])
    with pytest.raises(ProcessLookupError):  # stopped and reaped, not left running
        os.kill(pid, 0)
