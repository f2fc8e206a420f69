"""Benchmark of the consumer's record processor work on the local stack (issue 8, item 9).

Runs `fraud.stream.handler.PipelineHandler` (what each KCL child runs per `process_records`)
on batches of generated transactions against moto's server and kinesis-local on 127.0.0.1,
at rising offered rates, and reports per rate: sustained transactions per second,
arrival-to-decision latency p50/p99 (arrival = when the batch was offered), DynamoDB
requests per transaction, and the processor's own CPU microseconds per transaction (CPU time
of this process only: the emulators run in their own processes). Where wall time per
transaction is far above CPU time, the difference is time spent waiting on the emulators.

    .venv/bin/python scripts/bench_consumer.py [--users 2000] [--days 10] [--batch 500]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--terminals", type=int, default=400)
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--batch", type=int, default=500, help="records per process_records")
    parser.add_argument("--rates", default="500,1000,2000,0",
                        help="offered transactions/s per step, 0 = as fast as possible")
    parser.add_argument("--step-batches", type=int, default=6, help="batches per rate step")
    parser.add_argument("--json", action="store_true", help="print results as JSON")
    args = parser.parse_args(argv)

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
    services = {s.name: s.endpoint for s, _ in start(local_dir, ["moto", "kinesis"])}
    results = []
    try:
        settings = Settings(
            endpoint_url=services["moto"], kinesis_endpoint_url=services["kinesis"],
            table_prefix="bench-", model_dir=ROOT / "models" / "default",
            rules_path=str(ROOT / "rules" / "default.yaml"), rules_reload_seconds=0,
            local_dir=local_dir)
        provision(replace(settings), shards=1)
        data = generate(GenerateConfig(users=args.users, terminals=args.terminals,
                                       days=args.days, seed=1))
        batch = unlabelled_stream(TransactionBatch.from_columns(
            transaction_id=data.transactions["transaction_id"], timestamp_us=data.timestamp_us,
            user_id=data.transactions["user_id"], terminal_id=data.transactions["terminal_id"],
            amount=data.transactions["amount"]))
        payloads = [entry.data for entry in encode_batch(batch)]
        handler = PipelineHandler(settings)
        seq = 0
        cursor = 0

        def next_batch(arrival_ms: int) -> list[StreamRecord]:
            nonlocal seq, cursor
            out = []
            for data_bytes in payloads[cursor: cursor + args.batch]:
                seq += 1
                out.append(StreamRecord("shardId-0", f"{seq:056d}", None, "k", data_bytes,
                                        arrival_ms))
            cursor += args.batch
            return out

        # Warm-up: compile, load, and give the first customers some history.
        handler.handle("shardId-0", next_batch(int(time.time() * 1000)))
        for rate in [int(r) for r in args.rates.split(",")]:
            handler.counter.reset()
            tx = 0
            latencies: list[float] = []
            cpu0, wall0 = time.process_time(), time.perf_counter()
            for i in range(args.step_batches):
                if cursor >= len(payloads):
                    break
                if rate:
                    due = wall0 + i * args.batch / rate
                    time.sleep(max(0.0, due - time.perf_counter()))
                offered = time.time()
                records = next_batch(int(offered * 1000))
                handler.handle("shardId-0", records)
                latencies.append((time.time() - offered) * 1000)
                tx += len(records)
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
            results.append({
                "offered_tx_per_s": rate or "max", "transactions": tx,
                "sustained_tx_per_s": round(tx / wall, 1),
                "latency_ms_p50": round(float(np.percentile(latencies, 50)), 1),
                "latency_ms_p99": round(float(np.percentile(latencies, 99)), 1),
                "dynamodb_requests_per_tx": round(handler.counter.per(tx, "dynamodb"), 4),
                "processor_cpu_us_per_tx": round(cpu / tx * 1e6, 1),
                "wall_us_per_tx": round(wall / tx * 1e6, 1),
            })
    finally:
        stop(local_dir)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        cols = list(results[0]) if results else []
        print(" | ".join(cols))
        for row in results:
            print(" | ".join(str(row[c]) for c in cols))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
