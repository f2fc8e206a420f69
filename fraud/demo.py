"""The product's main job, end to end on the embedded local stack (what ``make demo`` runs).

1. local AWS up on 127.0.0.1 (moto server, kinesis-local); tables, streams, topic, bucket;
2. a generated world: the supporting stores are seeded, and all days but the last are
   backfilled into the DynamoDB feature state through the replay pipeline;
3. the real KCL MultiLangDaemon starts with the pipeline handler, the default model and
   rules; the last day is produced onto the stream (without its labels);
4. once every transaction is decided, the labels are fed and the demo prints decisions by
   action, precision and recall against the generated labels, throughput and
   arrival-to-decision latency; then it shuts everything down that it started.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from fraud.config import Settings
from fraud.errors import FraudError
from fraud.logs import get_logger

__all__ = ["DemoConfig", "run_demo"]

log = get_logger(__name__)
DAY_US = 86_400_000_000


@dataclass(frozen=True, slots=True)
class DemoConfig:
    users: int = 1000
    terminals: int = 200
    days: int = 12
    seed: int = 7
    # Richer in fraud than real traffic, so that one demo day has enough to measure.
    fraud_rate: float = 0.02
    shards: int = 2
    timeout_seconds: float = 600.0


def _start_local(local_dir: Path) -> tuple[dict[str, str], list[str]]:
    """Endpoints of the local services, and the names of those started here (the ones to
    stop at the end: services a `fraud local up` already runs are left running)."""
    from fraud.local import start

    up = start(local_dir, ["moto", "kinesis"])
    return {svc.name: svc.endpoint for svc, _ in up}, [svc.name for svc, new in up if new]


def run_demo(settings: Settings, config: DemoConfig, echo: Callable[[str], None]) -> int:
    """Run the demo; returns the process exit code."""
    from fraud.local import stop

    work = Path(settings.local_dir) / "demo"
    work.mkdir(parents=True, exist_ok=True)
    local_dir = Path(settings.local_dir)
    endpoints, started = _start_local(local_dir)
    echo(f"local AWS up: moto {endpoints['moto']}, kinesis-local {endpoints['kinesis']}")
    run = uuid.uuid4().hex[:6]
    settings = replace(
        settings, endpoint_url=endpoints["moto"], kinesis_endpoint_url=endpoints["kinesis"],
        table_prefix=f"demo{run}-", stream_name=f"demo{run}-transactions",
        decisions_stream=f"demo{run}-decisions", application_name=f"demo{run}-consumer",
        alert_topic=f"demo{run}-alerts", archive_uri=f"s3://demo{run}-archive/decided",
    )
    try:
        return _run(settings, config, work, echo)
    finally:
        if started:
            stop(local_dir, started)
            echo("local AWS stopped")
        else:
            echo("local AWS left running (it was up before the demo)")


def _run(settings: Settings, config: DemoConfig, work: Path,
         echo: Callable[[str], None]) -> int:
    from fraud.features import FeatureConfig, FeatureEngine
    from fraud.generate import GenerateConfig, default_stores_dir, generate, write_dataset
    from fraud.local.provision import provision
    from fraud.schema.files import read_all
    from fraud.store.clients import make_client
    from fraud.store.dynamo import Dynamo
    from fraud.store.feature_store import DynamoStateStore
    from fraud.store.history import write_history
    from fraud.store.seed import seed_directory

    t0 = time.perf_counter()
    provision(settings, shards=config.shards)
    echo(f"tables, streams, topic and bucket created ({time.perf_counter() - t0:.1f}s)")

    start = datetime(2024, 3, 1, tzinfo=UTC)
    data = generate(GenerateConfig(users=config.users, terminals=config.terminals,
                                   fraud_rate=config.fraud_rate,
                                   days=config.days, start=start, seed=config.seed))
    path = work / f"transactions-{config.seed}.csv"
    write_dataset(data, path)
    dynamo = Dynamo(make_client("dynamodb", settings), prefix=settings.table_prefix)
    seeded = seed_directory(dynamo, default_stores_dir(path))
    echo(f"generated {data.summary.rows} transactions over {config.days} days for "
         f"{config.users} customers; seeded {sum(seeded.items.values())} supporting items")

    batch = read_all(path).batch
    last_day = int(start.timestamp() * 1_000_000) + (config.days - 1) * DAY_US
    history = batch.take(batch.timestamp_us < last_day)
    day = batch.take(batch.timestamp_us >= last_day)

    # Backfill: the earlier days through the same feature engine into DynamoDB.
    t0 = time.perf_counter()
    store = DynamoStateStore(dynamo)
    engine = FeatureEngine(FeatureConfig(label_delay_days=settings.label_delay_days,
                                         history_k=settings.history_k))
    for lo in range(0, len(history), 20_000):
        part = history.take(np.arange(lo, min(lo + 20_000, len(history))))
        matrix = engine.extract(part, store)
        write_history(dynamo, part, effective_time_us=matrix.effective_time_us)
    echo(f"backfilled {len(history)} transactions into the DynamoDB feature state "
         f"({time.perf_counter() - t0:.1f}s)")

    return _consume_day(settings, config, work, day, dynamo, echo)


def _consume_day(settings: Settings, config: DemoConfig, work: Path, day: Any,
                 dynamo: Any, echo: Callable[[str], None]) -> int:
    from fraud.store.labels import Label, apply_labels
    from fraud.stream.daemon import DaemonProcess, prepare_daemon
    from fraud.stream.jars import ensure_jars, find_java
    from fraud.stream.kinesis import kinesis_client
    from fraud.stream.processor import DEFAULT_HANDLER
    from fraud.stream.producer import encode_batch, plan_batches, put_all
    from fraud.stream.properties import QUICK_LEASES

    launch = prepare_daemon(settings, java=find_java(), jars=ensure_jars(),
                            work_dir=work / "kcl", handler_spec=DEFAULT_HANDLER,
                            worker_id="demo-worker", overrides=QUICK_LEASES)
    daemon = DaemonProcess(launch, log_file=work / "daemon.log").start()
    echo(f"consumer started: KCL MultiLangDaemon (pid {daemon.pid}), log {work / 'daemon.log'}")
    stream = unlabelled_stream(day)
    kinesis = kinesis_client(settings)
    deadline = time.monotonic() + config.timeout_seconds

    def produce(rows: Any) -> None:
        put_all(kinesis, settings.stream_name, plan_batches(encode_batch(rows)))

    def wait(rows: Any, what: str) -> list[dict[str, Any]]:
        while True:
            if daemon.poll() is not None:
                raise FraudError(f"the consumer died (exit {daemon.poll()}); see "
                                 f"{work / 'daemon.log'}")
            decided = _decided(dynamo, rows)
            if len(decided) >= len(rows):
                return decided
            if time.monotonic() > deadline:
                raise FraudError(f"timed out waiting for {what}: {len(decided)} of "
                                 f"{len(rows)} decided; see {work / 'daemon.log'}")
            time.sleep(0.5)

    try:
        # The first transactions also wait for KCL to take its leases and for the record
        # processors to start; throughput and latency are measured on the rest.
        n_warm = min(50, len(stream) // 10)
        t0 = time.perf_counter()
        produce(stream.take(np.arange(n_warm)))
        warm = wait(stream.take(np.arange(n_warm)), "the first transactions")
        echo(f"first {n_warm} transactions decided {time.perf_counter() - t0:.1f}s after "
             "production (includes lease assignment and processor start-up)")
        rest = stream.take(np.arange(n_warm, len(stream)))
        t_produce = time.time()
        produce(rest)
        echo(f"produced the day's other {len(rest)} transactions onto {settings.stream_name}")
        measured = wait(rest, "the day's transactions")
    finally:
        daemon.terminate()
        daemon.wait(120)

    # The label feed carries chargebacks and confirmed fraud, days later.
    labels = [Label(str(t), int(f), int(lt), f"demo row {i}")
              for i, (t, f, lt) in enumerate(zip(day.transaction_id, day.is_fraud,
                                                 day.label_time_us, strict=True)) if f == 1]
    from fraud.store.feature_store import DynamoStateStore

    report = apply_labels(dynamo, DynamoStateStore(dynamo), labels, settings.label_delay_days)
    echo(f"label feed applied: {report.labels} labels, {report.fraud_labels_sent} frauds")
    _print_results(day, warm + measured, measured, t_produce, echo)
    return 0


def _decided(dynamo: Any, rows: Any) -> list[dict[str, Any]]:
    """History items of `rows` that the consumer has decided (batched key lookups)."""
    from fraud.store.history import history_sort_key

    keys = [{"user_id": str(u), "sk": history_sort_key(int(t), str(x))}
            for u, t, x in zip(rows.user_id, rows.timestamp_us, rows.transaction_id,
                               strict=True)]
    got = dynamo.batch_get({"TransactionHistory": keys})
    return [i for i in got["TransactionHistory"] if "decided_at" in i]


def unlabelled_stream(batch: Any) -> Any:
    """The batch as the stream sees it: labels arrive days later, through the label feed."""
    from fraud.schema.batch import MISSING_TIME, TransactionBatch

    columns = {name: getattr(batch, name) for name in TransactionBatch.column_names()}
    columns["is_fraud"] = np.full(len(batch), -1, dtype=np.int8)
    columns["label_time_us"] = np.full(len(batch), MISSING_TIME, dtype=np.int64)
    return TransactionBatch(**columns, extra={})


def _print_results(day: Any, decided: list[dict[str, Any]], measured: list[dict[str, Any]],
                   t_produce: float, echo: Callable[[str], None]) -> None:
    fraud = {str(t): int(f) for t, f in zip(day.transaction_id, day.is_fraud, strict=True)}
    total_fraud = sum(fraud.values())
    action = {str(i["transaction_id"]): str(i.get("action", "")) for i in decided}
    echo(f"\n{'action':<8} {'count':>7} {'precision':>10} {'recall':>8}")
    for name in ("block", "alert", "flag"):
        hits = [t for t, a in action.items() if a == name]
        tp = sum(fraud.get(t, 0) for t in hits)
        precision = f"{tp / len(hits):.3f}" if hits else "n/a"
        recall = f"{tp / total_fraud:.3f}" if total_fraud else "n/a"
        echo(f"{name:<8} {len(hits):>7} {precision:>10} {recall:>8}")
    any_action = [t for t, a in action.items() if a]
    caught = sum(fraud.get(t, 0) for t in any_action)
    echo(f"{'none':<8} {len(action) - len(any_action):>7}")
    echo(f"\nfrauds in the day: {total_fraud}; caught by some action: {caught}")
    if not measured:
        return
    done = max(int(i["decided_at"]) for i in measured) / 1e6
    latency = np.asarray([int(i["decided_at"]) / 1000 - int(i["arrival_ms"]) for i in measured],
                         dtype=np.float64)
    echo(f"throughput: {len(measured) / max(done - t_produce, 1e-9):,.0f} transactions/s "
         f"(first put to last decision, {len(measured)} transactions)")
    echo(f"arrival-to-decision latency: p50 {np.percentile(latency, 50):.0f} ms, "
         f"p99 {np.percentile(latency, 99):.0f} ms")
    echo("(one worker, one machine: the local emulators take most of the CPU; what a worker "
         "costs per transaction is in docs/BENCHMARKS.md, Consumer)")
