"""Benchmark of the consumer's record processor on the local stack (issue 8).

Runs `fraud.stream.handler.PipelineHandler` (what each KCL child runs per `process_records`)
on generated transactions against moto's server and kinesis-local on 127.0.0.1, at rising
offered rates, and reports per rate: sustained transactions per second, arrival-to-decision
latency p50/p99 per record, DynamoDB requests per transaction (and per operation), the
processor's own CPU microseconds per transaction (this process only), and beside it the CPU
the emulators burned meanwhile (moto's and kinesis-local's process groups, read from /proc by
the pids `fraud.local` recorded), so the report can say whose CPU caps the sustained rate.

Batches follow KCL's polling (the default, ``--batch 0``): a GetRecords every ``--poll-ms``
(``idleTimeBetweenReadsInMillis``) returns what arrived since, at most ``--max-records``
(``maxRecords``, KCL's default 10,000), and the processor takes the batches in turn. So at a
rate R a batch holds about R x poll records, and a backlog (rate 0: everything has arrived)
comes in batches of ``--max-records``. ``--batch N`` instead hands over fixed batches of N.

    .venv/bin/python scripts/bench_consumer.py [--rates 1000,2500,5000,0] [--json]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import signal
import subprocess
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def group_cpu(pgid: int) -> dict[int, float]:
    """CPU seconds (user + system) of each live process in process group `pgid`, by pid.

    `fraud.local` starts each emulator in its own session (and the KCL daemon too), so its
    group is its pid and holds whatever it forks. Linux /proc; {} elsewhere.
    """
    out: dict[int, float] = {}
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        fields = stat[stat.rindex(")") + 2:].split()
        # fields[0] is field 3 of proc(5): state; pgrp is field 5, utime 14, stime 15.
        if int(fields[2]) == pgid:
            out[int(entry.name)] = (int(fields[11]) + int(fields[12])) / _TICKS
    return out


def group_cpu_seconds(pgid: int) -> float:
    """CPU seconds of every live process in process group `pgid` (see `group_cpu`)."""
    return sum(group_cpu(pgid).values())


def poll_batches(arrivals: np.ndarray, poll_s: float, max_records: int
                 ) -> list[tuple[slice, float]]:
    """Where KCL's polling cuts a stream of arrival times (seconds from the step's start).

    A GetRecords every `poll_s` returns the records that arrived since the previous one, at
    most `max_records` (the rest wait for the next call). Gives (records, when fetched).

    >>> [(c.start, c.stop, t) for c, t in poll_batches(np.array([0.0, 0.1, 0.3, 0.9]), 0.2, 10)]
    [(0, 2, 0.2), (2, 3, 0.4), (3, 4, 1.0)]
    """
    out: list[tuple[slice, float]] = []
    start, n, tick = 0, len(arrivals), 0
    while start < n:
        tick += 1
        ready = int(np.searchsorted(arrivals, tick * poll_s, side="right"))
        if ready <= start:
            tick = max(tick, int(arrivals[start] // poll_s))  # skip idle polls
            continue
        end = min(ready, start + max_records)
        out.append((slice(start, end), round(tick * poll_s, 9)))
        start = end
    return out


def _rates(text: str) -> list[int]:
    try:
        rates = [int(r) for r in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected whole numbers separated by commas, e.g. 1000,5000,0") from None
    if any(r < 0 for r in rates):
        raise argparse.ArgumentTypeError(f"{text!r}: a rate cannot be negative")
    return rates


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--terminals", type=int, default=400)
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--rates", default=[1000, 2500, 5000, 0], type=_rates,
                        help="offered transactions/s per step, comma-separated; "
                             "0 = a backlog (all arrived)")
    parser.add_argument("--batch", type=int, default=0,
                        help="fixed records per process_records; 0 = KCL polling batches")
    parser.add_argument("--poll-ms", type=int, default=200,
                        help="KCL idleTimeBetweenReadsInMillis (polling batches)")
    parser.add_argument("--max-records", type=int, default=10_000,
                        help="KCL maxRecords per GetRecords (polling batches)")
    parser.add_argument("--step-tx", type=int, default=5000, help="transactions per step")
    parser.add_argument("--step-batches", type=int, default=0,
                        help="at most this many batches per step (0 = no limit)")
    parser.add_argument("--warmup", type=int, default=3000,
                        help="transactions before step 1 (warm caches, as in a running worker)")
    parser.add_argument("--daemon", action="store_true",
                        help="run the real KCL MultiLangDaemon reading kinesis-local")
    parser.add_argument("--shards", type=int, default=1, help="stream shards (--daemon)")
    parser.add_argument("--profile", type=Path,
                        help="write cProfiles of the measured steps (direct mode) to FILE.<rate>")
    parser.add_argument("--json", action="store_true", help="print results as JSON")
    args = parser.parse_args(argv)
    if args.daemon and (args.batch or args.profile):
        parser.error("--batch and --profile apply to the direct mode, not to --daemon")

    from fraud.config import Settings
    from fraud.demo import unlabelled_stream
    from fraud.generate import GenerateConfig, generate
    from fraud.local import start, stop
    from fraud.local.provision import provision
    from fraud.schema.batch import TransactionBatch
    from fraud.stream.handler import PipelineHandler
    from fraud.stream.processor import StreamRecord
    from fraud.stream.producer import encode_batch

    local_dir = Path(tempfile.mkdtemp(prefix="bench-consumer-"))
    running = {s.name: s for s, _ in start(local_dir, ["moto", "kinesis"])}
    results: list[dict[str, Any]] = []
    try:
        settings = Settings(
            endpoint_url=running["moto"].endpoint,
            kinesis_endpoint_url=running["kinesis"].endpoint,
            table_prefix="bench-", model_dir=ROOT / "models" / "default",
            rules_path=str(ROOT / "rules" / "default.yaml"), rules_reload_seconds=0,
            local_dir=local_dir, stream_name="bench-transactions",
            application_name="bench-consumer")
        provision(replace(settings), shards=args.shards)
        data = generate(GenerateConfig(users=args.users, terminals=args.terminals,
                                       days=args.days, seed=1))
        batch = unlabelled_stream(TransactionBatch.from_columns(
            transaction_id=data.transactions["transaction_id"], timestamp_us=data.timestamp_us,
            user_id=data.transactions["user_id"], terminal_id=data.transactions["terminal_id"],
            amount=data.transactions["amount"]))
        entries = list(encode_batch(batch))
        if args.daemon:
            results = run_daemon(args, settings, running, batch, entries, local_dir)
            return _report(results, args)
        payloads = [entry.data for entry in entries]
        handler = PipelineHandler(settings)
        seq = 0
        cursor = 0

        def records(n: int, arrival_ms: np.ndarray) -> list[StreamRecord]:
            nonlocal seq, cursor
            out = []
            for k, data_bytes in enumerate(payloads[cursor: cursor + n]):
                seq += 1
                out.append(StreamRecord("shardId-0", f"{seq:056d}", None, "k", data_bytes,
                                        int(arrival_ms[k])))
            cursor += len(out)
            return out

        # Warm-up: compile, load, and give the first customers and terminals some history.
        warm = min(args.warmup, len(payloads) // 4)  # a small data set keeps rows to measure
        handler.handle("shardId-0", records(warm, np.full(warm, time.time() * 1000)))
        for rate in args.rates:
            n = min(args.step_tx, len(payloads) - cursor)
            if n <= 0:
                break
            offsets = np.arange(n) / rate if rate else np.zeros(n)
            if args.batch:  # a fixed batch is offered once its last record has arrived
                cuts = [(c, float(offsets[c.stop - 1])) for c in
                        (slice(s, min(s + args.batch, n)) for s in range(0, n, args.batch))]
            else:
                cuts = poll_batches(offsets, args.poll_ms / 1000, args.max_records)
            if args.step_batches:
                cuts = cuts[:args.step_batches]
            results.append(_step(handler, records, rate, cuts, offsets, running, args))
    finally:
        stop(local_dir)
    return _report(results, args)


def _report(results: list[dict[str, Any]], args: argparse.Namespace) -> int:
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        cols = [c for c in results[0] if c != "requests_by_operation"] if results else []
        print(" | ".join(cols))
        for row in results:
            print(" | ".join(str(row[c]) for c in cols))
    return 0


def _step(handler: Any, records: Any, rate: int, cuts: list[tuple[slice, float]],
          offsets: np.ndarray,
          running: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """One offered rate: hand the batches over as they arrive; measure everything."""
    handler.counter.reset()
    load = os.getloadavg()[0]
    emu0 = {name: group_cpu_seconds(s.pid) for name, s in running.items()}
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    wall0 = time.time()
    latencies: list[np.ndarray] = []
    tx = 0
    profiler = cProfile.Profile() if args.profile else None
    for cut, fetched in cuts:
        if rate:  # wait for the poll that returns this batch (it waits for nothing else)
            time.sleep(max(0.0, t0 + fetched - time.perf_counter()))
        arrival_ms = (wall0 + offsets[cut]) * 1000
        some = records(cut.stop - cut.start, arrival_ms)
        if profiler is not None:
            profiler.enable()
        handler.handle("shardId-0", some)
        if profiler is not None:
            profiler.disable()
        latencies.append(time.time() * 1000 - arrival_ms)
        tx += cut.stop - cut.start
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    if profiler is not None:
        profiler.dump_stats(f"{args.profile}.{rate or 'backlog'}")
    emu = {name: group_cpu_seconds(s.pid) - emu0[name] for name, s in running.items()}
    lat = np.concatenate(latencies)
    sizes = [c.stop - c.start for c, _ in cuts]
    return {
        "offered_tx_per_s": rate or "backlog", "transactions": tx,
        "batches": len(cuts), "mean_batch": round(float(np.mean(sizes)), 0),
        "sustained_tx_per_s": round(tx / wall, 1),
        "latency_ms_p50": round(float(np.percentile(lat, 50)), 1),
        "latency_ms_p99": round(float(np.percentile(lat, 99)), 1),
        "dynamodb_requests_per_tx": round(handler.counter.per(tx, "dynamodb"), 4),
        "processor_cpu_us_per_tx": round(cpu / tx * 1e6, 1),
        "moto_cpu_us_per_tx": round(emu.get("moto", 0.0) / tx * 1e6, 1),
        "kinesis_cpu_us_per_tx": round(emu.get("kinesis", 0.0) / tx * 1e6, 1),
        "wall_us_per_tx": round(wall / tx * 1e6, 1),
        "load_average": round(load, 2),
        "requests_by_operation": {k: round(v / tx, 4)
                                  for k, v in handler.counter.snapshot().items()},
    }


class _DaemonLog:
    """The record processors' ``batch_decided`` events, read as the daemon's log grows."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.events: list[dict[str, Any]] = []

    def read(self) -> list[dict[str, Any]]:
        if self.path.exists():
            with self.path.open("rb") as fh:
                fh.seek(self.offset)
                chunk = fh.read()
            end = chunk.rfind(b"\n") + 1  # a partly written line waits for the next read
            self.offset += end
            for line in chunk[:end].decode("utf-8", "replace").splitlines():
                if line.startswith("{") and '"batch_decided"' in line:
                    self.events.append(json.loads(line))
        return self.events

    def decided(self) -> int:
        return sum(int(e["decided"]) for e in self.read())


def run_daemon(args: argparse.Namespace, settings: Any, running: dict[str, Any], batch: Any,
               entries: list[Any], local_dir: Path) -> list[dict[str, Any]]:
    """The real thing: records go into kinesis-local at each offered rate, the KCL daemon
    polls them and its child processes run the pipeline. CPU comes from /proc (the daemon's
    process group: the JVM and one Python child per shard), requests and decided counts from
    the children's ``batch_decided`` log events, latency from the history items written
    (``decided_at`` minus Kinesis's arrival time)."""
    from fraud.store import connect
    from fraud.store.history import history_sort_key
    from fraud.stream.daemon import DaemonProcess, prepare_daemon
    from fraud.stream.jars import ensure_jars, find_java
    from fraud.stream.kinesis import kinesis_client
    from fraud.stream.processor import DEFAULT_HANDLER
    from fraud.stream.producer import plan_batches, put_all
    from fraud.stream.properties import QUICK_LEASES

    log = _DaemonLog(local_dir / "daemon.log")
    launch = prepare_daemon(
        settings, java=find_java(), jars=ensure_jars(), work_dir=local_dir / "daemon",
        handler_spec=DEFAULT_HANDLER, worker_id="bench",
        # One worker and no takeovers: leases that outlive the pause a backlog step takes.
        overrides={**QUICK_LEASES, "failoverTimeMillis": "600000",
                   "workerMetricsReporterFreqInMillis": "300000",
                   "maxRecords": str(args.max_records),
                   "idleTimeBetweenReadsInMillis": str(args.poll_ms)},
        base_env={**os.environ, "PYTHONPATH": str(ROOT)})
    daemon = DaemonProcess(launch, log_file=log.path).start()
    kinesis = kinesis_client(settings)
    dynamo = connect(settings)
    results: list[dict[str, Any]] = []
    cursor = 0

    def produce(n: int, rate: int) -> None:
        nonlocal cursor
        chunk, cursor = entries[cursor:cursor + n], cursor + n
        t0 = time.perf_counter()
        for start in range(0, len(chunk), 500):
            if rate:
                time.sleep(max(0.0, t0 + start / rate - time.perf_counter()))
            put_all(kinesis, settings.stream_name, plan_batches(chunk[start:start + 500]),
                    max_attempts=20)

    def wait_decided(target: int) -> None:
        deadline = time.monotonic() + 120 + target / 20
        while log.decided() < target:
            if daemon.poll() is not None:
                raise SystemExit(f"the KCL daemon exited ({daemon.poll()}); see {log.path}")
            if time.monotonic() > deadline:
                raise SystemExit(f"only {log.decided()} of {target} decided; see {log.path}")
            time.sleep(0.1)

    try:
        warm = min(args.warmup, len(entries) // 4)
        produce(warm, 0)
        wait_decided(warm)
        for rate in args.rates:
            n = min(args.step_tx, len(entries) - cursor)
            if n <= 0:
                break
            first_event, first_row = len(log.read()), cursor
            load = os.getloadavg()[0]
            cpu0 = group_cpu(daemon.pid)
            emu0 = {name: group_cpu_seconds(svc.pid) for name, svc in running.items()}
            # (For a backlog the emulators' figures include taking the records in.)
            if rate:
                started = time.time()
                produce(n, rate)
            else:  # a backlog: the daemon (its whole group) is paused while it builds up
                os.killpg(daemon.pid, signal.SIGSTOP)
                try:
                    produce(n, 0)
                finally:
                    os.killpg(daemon.pid, signal.SIGCONT)
                started = time.time()
            wait_decided(first_row + n)
            cpu1 = group_cpu(daemon.pid)
            emu = {name: group_cpu_seconds(svc.pid) - emu0[name]
                   for name, svc in running.items()}
            step = log.read()[first_event:]
            last = max(_event_time(e) for e in step)
            tx = sum(int(e["decided"]) for e in step)
            jvm = cpu1.get(daemon.pid, 0.0) - cpu0.get(daemon.pid, 0.0)
            # A child started during the step (a lease lost and taken again) would add its
            # start-up (model load, compiling) here: counted apart, not as per-batch work.
            children = sum(c - cpu0[pid] for pid, c in cpu1.items()
                           if pid != daemon.pid and pid in cpu0)
            restarted = sum(1 for pid in cpu1 if pid not in cpu0)
            rows = batch.take(np.arange(first_row, first_row + n))
            keys = [{"user_id": u, "sk": history_sort_key(t, x)} for u, t, x in zip(
                rows.user_id.tolist(), rows.timestamp_us.tolist(), rows.transaction_id.tolist(),
                strict=True)]
            items = dynamo.batch_get({"TransactionHistory": keys},
                                     consistent=True)["TransactionHistory"]
            lat = np.array([i["decided_at"] / 1000 - i["arrival_ms"] for i in items])
            results.append({
                "offered_tx_per_s": rate or "backlog", "transactions": tx,
                "batches": len(step), "mean_batch": round(tx / max(len(step), 1), 0),
                "sustained_tx_per_s": round(tx / (last - started), 1),
                "latency_ms_p50": round(float(np.percentile(lat, 50)), 1),
                "latency_ms_p99": round(float(np.percentile(lat, 99)), 1),
                "dynamodb_requests_per_tx": round(
                    sum(int(e.get("dynamodb_requests", 0)) for e in step) / tx, 4),
                "processor_cpu_us_per_tx": round(children / tx * 1e6, 1),
                "handler_cpu_us_per_tx": round(
                    sum(float(e.get("cpu_seconds", 0.0)) for e in step) / tx * 1e6, 1),
                "kcl_jvm_cpu_us_per_tx": round(jvm / tx * 1e6, 1),
                "moto_cpu_us_per_tx": round(emu.get("moto", 0.0) / tx * 1e6, 1),
                "kinesis_cpu_us_per_tx": round(emu.get("kinesis", 0.0) / tx * 1e6, 1),
                "new_child_processes": restarted,
                "load_average": round(load, 2),
            })
    finally:
        daemon.terminate()
        try:
            daemon.wait(60)
        except subprocess.TimeoutExpired:  # a daemon that will not stop is killed
            daemon.kill()
            daemon.wait()
    return results


def _event_time(event: dict[str, Any]) -> float:
    from datetime import datetime

    return datetime.fromisoformat(str(event["timestamp"]).replace("Z", "+00:00")).timestamp()


if __name__ == "__main__":
    raise SystemExit(main())
