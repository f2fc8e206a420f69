"""Scaling the real consumer: two workers share a stream and one takes over from the other;
a shard split during consumption. The pipeline handler decides; DynamoDB is the witness.

* Two daemons with the same application name (and so the same lease table) but their own
  worker ids split the shards between them and decide everything once together; one is
  stopped (SIGTERM, as an orchestrator scaling in) and the other takes over its shards.
* A shard is split while records are being consumed: the parent is read to its end and
  checkpointed at SHARD_END, then its two children are read; nothing is lost, and each
  customer's state still counts every transaction once (the children are only read after
  the parent has ended, so a customer's events stay in order).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import log_lines, wait_for
from tests.e2e.pipeline_kit import (
    check_exactly_once,
    lease_checkpoints,
    lease_owners,
    make_rows,
    new_stream,
    put_rows,
    start_daemon,
    stop_daemon,
    wait_decided,
)

pytestmark = pytest.mark.e2e


def test_two_workers_share_the_shards_and_one_takes_over_from_the_other(
    kcl_ready: Any, pipeline_stack: Any, unique_name: str, tmp_path: Path
) -> None:
    settings = new_stream(pipeline_stack, unique_name, shards=4)
    users = 28
    rows = make_rows(unique_name, users=users, per_user=5)
    rounds = [rows[j * users:(j + 1) * users] for j in range(5)]
    put_rows(settings, rounds[0] + rounds[1])
    workers = {w: start_daemon(settings, kcl_ready, tmp_path, w, log_name=f"{w}.log")
               for w in ("worker-c1", "worker-c2")}

    def all_alive() -> bool:
        return all(d.poll() is None for d in workers.values())

    try:
        # Both own shards (the leader spreads the leases over the workers it sees).
        owners = wait_for("both workers to own shards",
                          lambda: _both_own(lease_owners(settings), set(workers)),
                          alive=all_alive)
        put_rows(settings, rounds[2] + rounds[3])
        wait_decided(settings, rows[:4 * users], "the first rounds, by both workers",
                     alive=all_alive)
        # Stop the worker that is not the leader (a leader's lock outlives it by minutes).
        leader = _leader(tmp_path, workers)
        leaving = next(w for w in workers if w != leader)
        left = {s for s, o in owners.items() if o == leaving}
        assert stop_daemon(workers[leaving]) in (0, 143)
        put_rows(settings, rounds[4])
        survivor = workers[leader]
        # Bounded by the lease failover, the leader's view of the stopped worker going stale,
        # and at worst a rebalancing hand-off to the stopping worker timing out (all seconds
        # with QUICK_LEASES); the long timeout is for a loaded machine.
        wait_for(f"{leader} to take over {sorted(left)}",
                 lambda: set(lease_owners(settings).values()) == {leader},
                 timeout=420.0, alive=lambda: survivor.poll() is None,
                 explain=lambda: f"lease owners {lease_owners(settings)}\n" + log_lines(
                     tmp_path / f"{leader}.log", "activeWorkerMetrics", "Assigning lease",
                     "No worker available", "expiredOrUnassignedLeases", "leader"))
        wait_decided(settings, rows, "every transaction", alive=lambda: survivor.poll() is None)
        # ...and keeps them: the leader no longer hands leases to the stopped worker.
        assert set(lease_owners(settings).values()) == {leader}
    finally:
        codes = [stop_daemon(d) for d in workers.values() if d.poll() is None]
    assert all(c in (0, 143) for c in codes)
    # A lease taken over by expiry (not by graceful handoff) redelivers the batch that was
    # in flight: its publishes may repeat (see `check_exactly_once`); decisions, history,
    # cases and profile counts must still be exact.
    check_exactly_once(pipeline_stack, settings, unique_name, rows,
                       publish_at_least_once=True)


def _both_own(owners: dict[str, str], workers: set[str]) -> dict[str, str] | None:
    return owners if len(owners) == 4 and set(owners.values()) == workers else None


def _leader(work: Path, workers: dict[str, Any]) -> str:
    """The worker whose daemon log says it became the lease-assignment leader."""
    leaders = [w for w in workers
               if f"Worker : {w} is new leader" in (work / f"{w}.log").read_text(errors="replace")]
    assert len(leaders) == 1, leaders
    return leaders[0]


def test_a_shard_split_during_consumption_loses_nothing(
    kcl_ready: Any, pipeline_stack: Any, unique_name: str, tmp_path: Path
) -> None:
    from fraud.stream.kinesis import kinesis_client, wait_active

    settings = new_stream(pipeline_stack, unique_name, shards=1)
    users = 21
    rows = make_rows(unique_name, users=users, per_user=5)
    rounds = [rows[j * users:(j + 1) * users] for j in range(5)]
    put_rows(settings, rounds[0] + rounds[1] + rounds[2])
    daemon = start_daemon(settings, kcl_ready, tmp_path, "worker-d", log_name="daemon.log")
    alive = lambda: daemon.poll() is None  # noqa: E731
    kinesis = kinesis_client(settings)
    try:
        wait_decided(settings, rows[:3 * users], "the first transactions", at_least=1,
                     alive=alive)
        (parent,) = kinesis.list_shards(StreamName=settings.stream_name)["Shards"]
        kinesis.split_shard(StreamName=settings.stream_name, ShardToSplit=parent["ShardId"],
                            NewStartingHashKey=str(2**127))
        wait_active(kinesis, settings.stream_name)
        put_rows(settings, rounds[3] + rounds[4])
        wait_decided(settings, rows, "every transaction", alive=alive)
        checkpoints = wait_for(
            "the parent at SHARD_END and both children read",
            lambda: _split_done(lease_checkpoints(settings), parent["ShardId"]), alive=alive)
    finally:
        code = stop_daemon(daemon)
    assert code in (0, 143)
    shards = kinesis.list_shards(StreamName=settings.stream_name)["Shards"]
    children = {s["ShardId"] for s in shards if s.get("ParentShardId") == parent["ShardId"]}
    assert len(children) == 2 and children <= set(checkpoints)
    # Both children carried transactions (the hash range was cut in half).
    assert all(checkpoints[c] not in ("TRIM_HORIZON", "LATEST") for c in children), checkpoints
    check_exactly_once(pipeline_stack, settings, unique_name, rows)


def _split_done(checkpoints: dict[str, str], parent: str) -> dict[str, str] | None:
    children = {s: c for s, c in checkpoints.items() if s != parent}
    if checkpoints.get(parent) == "SHARD_END" and len(children) == 2 and all(
        c.isdigit() for c in children.values()
    ):
        return checkpoints
    return None
