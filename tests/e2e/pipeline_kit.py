"""What the pipeline e2e tests share: one provisioned stack, transactions whose actions are
known in advance, a daemon launcher, and the exactly-once checks read back from DynamoDB.

Every test runs on the session's tables, decisions stream and alert topic, with its own
stream, application name (lease table) and a tag that starts all its ids, so the checks
only ever look at that test's items.

The transactions (`make_rows`): each customer pays at home, on one device, every few minutes.
Their last payment is, for every 7th customer, on a device of the deny list (a ``block``,
published on the decisions stream); for the next, from a new device 1,100 km away (an
``alert``, published on SNS); for the next, 11 times the usual amount (a ``flag``, with
a case). The model may act on others too; the checks hold for every action.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.e2e.conftest import ROOT, wait_for

__all__ = [
    "PipelineStack",
    "Published",
    "check_exactly_once",
    "decision_item",
    "history_item",
    "lease_checkpoints",
    "lease_owners",
    "make_rows",
    "provision_stack",
    "put_rows",
    "start_daemon",
    "stream_settings",
    "wait_decided",
]

T0_US = int(datetime(2024, 3, 1, 8, tzinfo=UTC).timestamp() * 1_000_000)
MINUTE_US = 60_000_000


@dataclass
class PipelineStack:
    """The session's provisioned resources; `alerts` accumulates the drained SNS messages."""

    settings: Any  # fraud.config.Settings for the shared tables, decisions stream and topic
    queue_url: str
    work: Path
    alerts: list[dict[str, Any]] = field(default_factory=list)


def provision_stack(dynamodb: str, kinesis: str, work: Path) -> PipelineStack:
    from fraud.config import Settings
    from fraud.local.provision import provision
    from fraud.store.clients import make_client

    run = os.urandom(3).hex()
    settings = Settings(
        endpoint_url=dynamodb, kinesis_endpoint_url=kinesis, table_prefix=f"e2e{run}-",
        stream_name=f"e2e{run}-unused", decisions_stream=f"e2e{run}-decisions",
        application_name=f"e2e{run}-unused", alert_topic=f"e2e{run}-alerts",
        model_dir=ROOT / "models" / "default", rules_path=str(ROOT / "rules" / "default.yaml"),
        rules_reload_seconds=0, local_dir=work,
    )
    done = provision(settings, shards=1)
    sqs = make_client("sqs", settings)
    queue_url = sqs.create_queue(QueueName=f"e2e{run}-alerts")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue_url,
                                   AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    make_client("sns", settings).subscribe(TopicArn=done.topic_arn, Protocol="sqs", Endpoint=arn)
    return PipelineStack(settings, queue_url, work)


def stream_settings(stack: PipelineStack, name: str) -> Any:
    """The stack's settings with this test's own stream and application (lease table)."""
    return replace(stack.settings, stream_name=name, application_name=f"{name}-app")


SPIKE_AMOUNT = 400.0  # the planted flag: about 11 times a customer's usual amount


def make_rows(tag: str, users: int, per_user: int) -> list[dict[str, Any]]:
    """Transactions in production order (time-interleaved across customers)."""
    rows = []
    for j in range(per_user):
        for k in range(users):
            last = j == per_user - 1
            kind = k % 7 if last else -1
            lat, lon = 48.0 + k * 0.01, 2.0 + k * 0.01
            device, amount = f"{tag}-d{k}", 20.0 + (j * 7 + k) % 30
            if kind == 0:
                device = "d-stolen"  # on the default rules' deny list
            elif kind == 1:
                device, lat = f"{tag}-new{k}", lat + 10.0  # about 1,100 km north
            elif kind == 2:
                amount = SPIKE_AMOUNT  # about 11 times the usual
            ts = T0_US + j * 5 * MINUTE_US + k * 1_000_000
            rows.append({
                "transaction_id": f"{tag}-t{k:03d}-{j:03d}", "user_id": f"{tag}-u{k:03d}",
                "terminal_id": f"{tag}-m{(k + j) % 5}", "amount": amount,
                "timestamp": datetime.fromtimestamp(ts / 1e6, UTC).isoformat(),
                "lat": lat, "lon": lon, "device_id": device, "currency": "EUR",
            })
    return rows


def put_rows(settings: Any, rows: Sequence[Mapping[str, Any]]) -> None:
    from fraud.stream.kinesis import kinesis_client
    from fraud.stream.producer import encode_rows, plan_batches, put_all

    stats = put_all(kinesis_client(settings), settings.stream_name,
                    plan_batches(encode_rows((f"row{i}", r) for i, r in enumerate(rows))),
                    max_attempts=20)
    assert stats.records == len(rows)


def start_daemon(settings: Any, jars: Any, work: Path, worker: str, *, log_name: str,
                 handler: str | None = None, env: Mapping[str, str] | None = None,
                 overrides: Mapping[str, str] | None = None) -> Any:
    """The real MultiLangDaemon with a stable worker id (one properties folder per worker)."""
    from fraud.stream.daemon import DaemonProcess, prepare_daemon
    from fraud.stream.jars import find_java
    from fraud.stream.processor import DEFAULT_HANDLER
    from fraud.stream.properties import QUICK_LEASES

    base = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    launch = prepare_daemon(settings, java=find_java(), jars=jars, work_dir=work / worker,
                            handler_spec=handler or DEFAULT_HANDLER, worker_id=worker,
                            overrides={**QUICK_LEASES, **(overrides or {})}, base_env=base)
    return DaemonProcess(launch, log_file=work / log_name).start()


def _dynamo(settings: Any) -> Any:
    from fraud.store.clients import make_client
    from fraud.store.dynamo import Dynamo

    return Dynamo(make_client("dynamodb", settings), prefix=settings.table_prefix)


def _us(iso: str) -> int:
    stamp = datetime.fromisoformat(iso)
    return (stamp - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def decided_ids(settings: Any, rows: Sequence[Mapping[str, Any]]) -> set[str]:
    """Transaction ids of `rows` whose history item carries a decision."""
    from fraud.store.history import history_sort_key

    keys = [{"user_id": r["user_id"], "sk": history_sort_key(_us(r["timestamp"]),
                                                             r["transaction_id"])}
            for r in rows]
    got = _dynamo(settings).batch_get({"TransactionHistory": keys}, consistent=True)
    return {str(i["transaction_id"]) for i in got["TransactionHistory"] if "decided_at" in i}


def wait_decided(settings: Any, rows: Sequence[Mapping[str, Any]], what: str,
                 alive: Callable[[], bool], at_least: int | None = None,
                 timeout: float = 240.0) -> None:
    want = len(rows) if at_least is None else at_least
    wait_for(what, lambda: len(decided_ids(settings, rows)) >= want, timeout=timeout,
             alive=alive)


def _lease_attribute(settings: Any, attribute: str) -> dict[str, str]:
    """Shard id -> `attribute` of its lease in the application's KCL lease table ("" when the
    lease has none, {} before the table exists)."""
    from fraud.store.clients import make_client

    ddb = make_client("dynamodb", settings)
    try:
        items = ddb.scan(TableName=settings.application_name, ConsistentRead=True)["Items"]
    except ddb.exceptions.ResourceNotFoundException:
        return {}
    return {i["leaseKey"]["S"]: i.get(attribute, {}).get("S", "") for i in items}


def lease_checkpoints(settings: Any) -> dict[str, str]:
    """Shard id -> checkpoint (a sequence number, TRIM_HORIZON, SHARD_END...)."""
    return _lease_attribute(settings, "checkpoint")


def lease_owners(settings: Any) -> dict[str, str]:
    """Shard id -> current lease owner (worker id; "" when unassigned)."""
    return _lease_attribute(settings, "leaseOwner")


def history_item(settings: Any, row: Mapping[str, Any]) -> dict[str, Any]:
    from fraud.store.history import history_sort_key

    key = {"user_id": row["user_id"],
           "sk": history_sort_key(_us(row["timestamp"]), row["transaction_id"])}
    (item,) = _dynamo(settings).batch_get({"TransactionHistory": [key]},
                                          consistent=True)["TransactionHistory"]
    return item


def decision_item(settings: Any, transaction_id: str) -> dict[str, Any]:
    (item,) = _dynamo(settings).batch_get({"Decisions": [{"transaction_id": transaction_id}]},
                                          consistent=True)["Decisions"]
    return item


@dataclass(frozen=True)
class Published:
    """What left the system, per transaction id: decisions-stream records and SNS alerts."""

    stream: Counter[str]
    alerts: Counter[str]
    payloads: dict[str, list[str]]


def _scan_tag(dynamo: Any, table: str, attribute: str, tag: str) -> list[dict[str, Any]]:
    client, name = dynamo.client, dynamo.name(table)
    items: list[dict[str, Any]] = []
    for page in client.get_paginator("scan").paginate(
        TableName=name, ConsistentRead=True,
        FilterExpression="begins_with(#a, :tag)",
        ExpressionAttributeNames={"#a": attribute},
        ExpressionAttributeValues={":tag": {"S": f"{tag}-"}},
    ):
        items.extend(page["Items"])
    return items


def read_published(stack: PipelineStack, tag: str) -> Published:
    from fraud.stream.kinesis import kinesis_client

    payloads: dict[str, list[str]] = {}
    stream: Counter[str] = Counter()
    kinesis = kinesis_client(stack.settings)
    name = stack.settings.decisions_stream
    for shard in kinesis.list_shards(StreamName=name)["Shards"]:
        iterator = kinesis.get_shard_iterator(StreamName=name, ShardId=shard["ShardId"],
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        for _ in range(1000):
            page = kinesis.get_records(ShardIterator=iterator, Limit=1000)
            for record in page["Records"]:
                body = json.loads(record["Data"])
                tid = str(body.get("transaction_id", ""))
                if tid.startswith(f"{tag}-"):
                    stream[tid] += 1
                    payloads.setdefault(tid, []).append(record["Data"].decode())
            iterator = page.get("NextShardIterator")
            if (not page["Records"] and page.get("MillisBehindLatest", 0) == 0) or not iterator:
                break
    from fraud.store.clients import make_client

    sqs = make_client("sqs", stack.settings)
    while True:
        got = sqs.receive_message(QueueUrl=stack.queue_url, MaxNumberOfMessages=10,
                                  WaitTimeSeconds=0).get("Messages", [])
        if not got:
            break
        for message in got:
            stack.alerts.append(json.loads(json.loads(message["Body"])["Message"]))
            sqs.delete_message(QueueUrl=stack.queue_url, ReceiptHandle=message["ReceiptHandle"])
    alerts = Counter(str(a["transaction_id"]) for a in stack.alerts
                     if str(a.get("transaction_id", "")).startswith(f"{tag}-"))
    return Published(stream, alerts, payloads)


def check_exactly_once(stack: PipelineStack, settings: Any, tag: str,
                       rows: Sequence[Mapping[str, Any]], *,
                       publish_at_least_once: bool = False) -> dict[str, int]:
    """Every row decided once, every effect once, every profile counting each row once.

    Decisions, cases and history are keyed by transaction id, so "once" there means: exactly
    the produced set, each decision's effects done, each flag with its one case. Messages that
    leave the system are counted: one per block (decisions stream) and per alert (SNS). With
    `publish_at_least_once`, a repeat is allowed only as an identical copy of the stored
    decision (the documented window of a crash between a publish and its ``done`` mark).
    Each history item's action is its decision's, crashes or not: a redelivered transaction
    keeps what was recorded for it (history, or a decision written before the crash), and
    only one with nothing recorded is decided again. A decision a crash left pending is
    always resumed.
    Returns the number of decisions per action.
    """
    from fraud.features import UserState

    produced = {str(r["transaction_id"]) for r in rows}
    assert len(produced) == len(rows), "test rows must have distinct ids"
    dynamo = _dynamo(settings)
    history = _scan_tag(dynamo, "TransactionHistory", "user_id", tag)
    ids = Counter(str(i["transaction_id"]["S"]) for i in history)
    assert set(ids) == produced, (
        f"missing {sorted(produced - set(ids))[:5]}, unexpected {sorted(set(ids) - produced)[:5]}")
    assert max(ids.values()) == 1, [t for t, n in ids.items() if n > 1][:5]
    assert all("decided_at" in i for i in history)

    decisions = {i["transaction_id"]["S"]: i for i in _scan_tag(dynamo, "Decisions",
                                                                "transaction_id", tag)}
    assert set(decisions) <= produced
    action = {t: d["action"]["S"] for t, d in decisions.items()}
    history_action = {i["transaction_id"]["S"]: i.get("action", {}).get("S", "")
                      for i in history}
    pending = sorted(t for t, d in decisions.items() if d["effects"]["S"] != "done")
    # A decision a crash left pending is resumed on redelivery, whatever the rescoring says.
    assert pending == [], f"effects pending: {pending}"
    assert {t: a for t, a in history_action.items() if a} == action
    cases = Counter(i["transaction_id"]["S"] for i in _scan_tag(dynamo, "Cases",
                                                                 "transaction_id", tag))
    assert cases == Counter(t for t, a in action.items() if a == "flag")

    # The customers this test planted got their action, or a more severe one: the rules
    # decide the planted block and alert outright, while the 11x spike is a flag only as
    # long as the model scores it below the alert threshold (on a short history it may not).
    severity = {"": 0, "flag": 1, "alert": 2, "block": 3}
    for r in rows:
        planted = ("block" if r["device_id"] == "d-stolen"
                   else "alert" if str(r["device_id"]).startswith(f"{tag}-new")
                   else "flag" if r["amount"] == SPIKE_AMOUNT else "")
        got = action.get(str(r["transaction_id"]), "")
        assert severity[got] >= severity[planted], (r["transaction_id"], planted, got)
    assert "block" in action.values() and "alert" in action.values(), Counter(action.values())

    done = {t: a for t, a in action.items() if t not in pending}
    published = wait_for("every block and alert published",
                         lambda: _complete(stack, tag, done), timeout=30)
    for kind, counts in (("block", published.stream), ("alert", published.alerts)):
        want = {t for t, a in action.items() if a == kind and t not in pending}
        assert set(counts) == want, (kind, sorted(set(counts) ^ want)[:5])
        repeated = {t: n for t, n in counts.items() if n != 1}
        if publish_at_least_once:
            for t in repeated:
                if kind == "block":
                    assert len(set(published.payloads[t])) == 1, t
        else:
            assert repeated == {}, (kind, repeated)

    per_user = Counter(str(r["user_id"]) for r in rows)
    got = dynamo.batch_get({"UserProfiles": [{"user_id": u} for u in per_user]},
                           consistent=True)["UserProfiles"]
    states = {str(i["user_id"]): UserState.decode(bytes(i["state"]), int(i["version"]))
              for i in got}
    assert {u: s.count for u, s in states.items()} == dict(per_user)
    for user, state in states.items():
        assert len(set(state.tx.tolist())) == len(state.tx) == per_user[user], user
    return dict(Counter(action.values()))


def _complete(stack: PipelineStack, tag: str, action: Mapping[str, str]) -> Published | None:
    published = read_published(stack, tag)
    blocks = {t for t, a in action.items() if a == "block"}
    alerts = {t for t, a in action.items() if a == "alert"}
    if set(published.stream) >= blocks and set(published.alerts) >= alerts:
        return published
    time.sleep(0.5)
    return None


def new_stream(pipeline_stack: Any, tag: str, shards: int) -> Any:
    """Settings for a fresh stream of `shards` shards on the shared stack."""
    from fraud.stream.kinesis import ensure_stream, kinesis_client

    settings = stream_settings(pipeline_stack, tag)
    ensure_stream(kinesis_client(settings), settings.stream_name, shards=shards)
    return settings


def stop_daemon(daemon: Any) -> int:
    """SIGTERM, then the daemon's exit code."""
    daemon.terminate()
    return int(daemon.wait(120))
