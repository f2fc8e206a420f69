"""Benchmark: the feature extractor against a straightforward pandas implementation.

Generates N seeded transactions (default 1,000,000: 5,000 users, 10,000 terminals over 180
days, 1 % fraud labels without label_time, so they are known `d` days after the
transaction), then, each in its own forked process (so peak memory is per implementation):

* **ours, whole file** -- `compute_features` (all features, from string ids to the matrix);
  the two kernel calls that produce the windowed features are timed separately;
* **ours, streaming** -- `FeatureEngine.extract` on batches of --batch rows with an
  `InMemoryStore`, state written back after every batch (the consumer's path);
* **pandas** -- the same 12 windowed features with groupby + time-based rolling (user
  windows; terminal windows as rolling(d + w) - rolling(d), as in the usual notebooks).

The pandas result is compared with ours value by value (it must agree), and the figures are
printed as Markdown; ``--record`` also writes them into docs/BENCHMARKS.md.

    .venv/bin/python scripts/bench_features.py [--rows 1000000] [--repeat 3] [--record]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import resource
import sys
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fraud.features import FeatureConfig, FeatureEngine, InMemoryStore, compute_features
from fraud.features import engine as engine_module
from fraud.features.api import DAY_US, USER_WINDOWS_DAYS
from fraud.schema.batch import TransactionBatch

ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- bench_features:begin -->", "<!-- bench_features:end -->"
WINDOWED = tuple(
    [f"user_tx_count_{w}d" for w in USER_WINDOWS_DAYS]
    + [f"user_amount_mean_{w}d" for w in USER_WINDOWS_DAYS]
    + [f"terminal_tx_count_{w}d" for w in USER_WINDOWS_DAYS]
    + [f"terminal_fraud_rate_{w}d" for w in USER_WINDOWS_DAYS]
)


def generate(rows: int, users: int, terminals: int, days: int, seed: int) -> TransactionBatch:
    """Seeded transactions in time order; users favour a few terminals, as people do.

    Each user has its own rate (uniform, as in the usual simulators), so some users are three
    times as busy as the average and a few are almost idle.
    """
    rng = np.random.default_rng(seed)
    ts = np.sort(1_700_000_000_000_000 + rng.integers(0, days * DAY_US, rows))
    rate = rng.uniform(0.0, 4.0, users)
    user = rng.choice(users, size=rows, p=rate / rate.sum())
    home = (user * 7919) % terminals
    terminal = np.where(rng.random(rows) < 0.7, (home + rng.integers(0, 5, rows)) % terminals,
                        rng.integers(0, terminals, rows))
    return TransactionBatch.from_columns(
        transaction_id=np.char.add("T", np.arange(rows).astype(str)).astype(object),
        timestamp_us=ts,
        user_id=np.char.add("C", user.astype(str)).astype(object),
        terminal_id=np.char.add("M", terminal.astype(str)).astype(object),
        amount=np.round(rng.gamma(2.0, 40.0, rows), 2),
        is_fraud=(rng.random(rows) < 0.01).astype(np.int8),
    )


def pandas_windowed(batch: TransactionBatch, delay_days: float) -> dict[str, np.ndarray]:
    """The 12 windowed features with pandas, rows in input order (input is in time order)."""
    df = pd.DataFrame({
        "user_id": batch.user_id, "terminal_id": batch.terminal_id, "amount": batch.amount,
        "fraud": (batch.is_fraud == 1).astype(np.float64),
        "dt": pd.to_datetime(batch.timestamp_us, unit="us"),
    })
    out: dict[str, np.ndarray] = {}
    by_user = df.sort_values(["user_id", "dt"], kind="stable").set_index("dt")
    user_rows = _rows(df, ["user_id", "dt"])
    for w in USER_WINDOWS_DAYS:
        roll = by_user.groupby("user_id", sort=True)["amount"].rolling(f"{w}D")
        for name, series in ((f"user_tx_count_{w}d", roll.count()),
                             (f"user_amount_mean_{w}d", roll.mean())):
            values = np.empty(len(df))
            values[user_rows] = series.to_numpy()
            out[name] = values
    by_term = df.sort_values(["terminal_id", "dt"], kind="stable").set_index("dt")
    rows = _rows(df, ["terminal_id", "dt"])
    delay = pd.Timedelta(days=delay_days)
    grouped = by_term.groupby("terminal_id", sort=True)
    tx_delay = grouped["fraud"].rolling(delay).count().to_numpy()
    fraud_delay = grouped["fraud"].rolling(delay).sum().to_numpy()
    for w in USER_WINDOWS_DAYS:
        span = delay + pd.Timedelta(days=w)
        tx = grouped["fraud"].rolling(span).count().to_numpy() - tx_delay
        fraud = grouped["fraud"].rolling(span).sum().to_numpy() - fraud_delay
        count = np.empty(len(df))
        rate = np.empty(len(df))
        count[rows] = tx
        rate[rows] = np.where(tx > 0, fraud / np.maximum(tx, 1), 0.0)
        out[f"terminal_tx_count_{w}d"] = count
        out[f"terminal_fraud_rate_{w}d"] = rate
    return out


def _rows(df: pd.DataFrame, keys: list[str]) -> np.ndarray:
    """Input row of each position after a stable sort by `keys` (how pandas orders groups)."""
    return df.sort_values(keys, kind="stable").index.to_numpy()


class _CpuClock:
    perf_counter = staticmethod(time.thread_time)


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _child(conn: Connection, job: Callable[[], dict[str, Any]]) -> None:
    conn.send(job() | {"peak_mb": _peak_mb()})
    conn.close()


def in_child(job: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run `job` in a forked process; its result plus the child's peak RSS."""
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(child, job))
    proc.start()
    result: dict[str, Any] = parent.recv()
    proc.join()
    return result


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, float, Any]:
    """Best wall and CPU seconds over `repeat` runs, and the last result."""
    best_wall = best_cpu = float("inf")
    result = None
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        result = fn()
        best_wall = min(best_wall, time.perf_counter() - wall)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    return best_wall, best_cpu, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=5_000)
    parser.add_argument("--terminals", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--batch", type=int, default=10_000, help="streaming batch size")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--record", action="store_true", help="write docs/BENCHMARKS.md")
    args = parser.parse_args(argv)
    n = args.rows
    config = FeatureConfig(label_delay_days=7.0)
    batch = generate(n, args.users, args.terminals, args.days, args.seed)
    FeatureEngine(config)  # compile/load the kernels before any timing
    base_mb = _peak_mb()

    def ours() -> dict[str, Any]:
        engine = FeatureEngine(config)
        kernel_wall = kernel_cpu = float("inf")
        split = {"user_kernel": float("inf"), "terminal_kernel": float("inf")}
        cold: list[float] = []  # the first big call's kernels: every array fresh memory

        def run() -> Any:
            nonlocal kernel_wall, kernel_cpu
            matrix = engine.extract(batch, InMemoryStore(), commit=False)
            kernel_wall = min(kernel_wall, engine.timings["user_kernel"]
                              + engine.timings["terminal_kernel"])
            return matrix

        def run_cpu_clock() -> Any:
            # The same extraction with the engine's stage clock swapped for this thread's CPU
            # clock: the kernels' CPU time, unaffected by other processes on the machine.
            nonlocal kernel_cpu
            saved = engine_module.time
            engine_module.time = _CpuClock  # type: ignore[assignment]
            try:
                engine.extract(batch, InMemoryStore(), commit=False)
            finally:
                engine_module.time = saved
            now = engine.timings["user_kernel"] + engine.timings["terminal_kernel"]
            if not cold:  # the first call is only reported as such
                cold.append(now)
                return
            kernel_cpu = min(kernel_cpu, now)
            for name, best in split.items():
                split[name] = min(best, engine.timings[name])

        compute_features(batch.take(np.arange(min(n, 1000))), config)
        run_cpu_clock()
        wall, cpu, matrix = timed(run, args.repeat)
        timed(run_cpu_clock, args.repeat)
        whole_wall, whole_cpu, _ = timed(lambda: compute_features(batch, config), 1)
        return {"wall": wall, "cpu": cpu, "kernel_wall": kernel_wall, "kernel_cpu": kernel_cpu,
                "split_cpu": split, "cold_cpu": cold[0],
                "whole_wall": whole_wall, "whole_cpu": whole_cpu,
                "values": {name: matrix.column(name).copy() for name in WINDOWED}}

    def streaming() -> dict[str, Any]:
        engine = FeatureEngine(config)

        def run() -> None:
            store = InMemoryStore()
            for start in range(0, n, args.batch):
                engine.extract(batch.take(np.arange(start, min(n, start + args.batch))), store)

        wall, cpu, _ = timed(run, 1)
        return {"wall": wall, "cpu": cpu}

    def pandas_job() -> dict[str, Any]:
        # Best of --repeat too, as ours: one run of pandas on a shared machine swings by 40 %.
        wall, cpu, values = timed(lambda: pandas_windowed(batch, config.label_delay_days),
                                  args.repeat)
        return {"wall": wall, "cpu": cpu, "values": values}

    mine = in_child(ours)
    stream = in_child(streaming)
    theirs = in_child(pandas_job)
    worst = 0.0
    for name in WINDOWED:
        a, b = mine["values"][name], theirs["values"][name]
        diff = float(np.max(np.abs(a - b) / np.maximum(1.0, np.abs(b))))
        worst = max(worst, diff)
        if diff > 1e-9:
            print(f"MISMATCH {name}: max relative difference {diff:.3g}", file=sys.stderr)
            return 1
    text = report(args, n, mine, stream, theirs, worst, base_mb)
    print(text)
    if args.record:
        record(text)
    return 0


def report(args: argparse.Namespace, n: int, mine: dict[str, Any], stream: dict[str, Any],
           theirs: dict[str, Any], worst: float, base_mb: float) -> str:
    def rate(seconds: float | None) -> str:
        return f"{n / seconds / 1e6:.2f}" if seconds else ""

    def sec(seconds: float | None) -> str:
        return f"{seconds:.3f}" if seconds else ""

    rows = [
        ("ours: windowed features (the two kernel calls)", mine["kernel_wall"],
         mine["kernel_cpu"], mine["peak_mb"]),
        ("ours: every feature, `FeatureEngine.extract` (string ids to matrix)", mine["wall"],
         mine["cpu"], mine["peak_mb"]),
        ("ours: `compute_features` (adds the time-order check)", mine["whole_wall"],
         mine["whole_cpu"], mine["peak_mb"]),
        (f"ours: streaming, batches of {args.batch:,}, state written back", stream["wall"],
         stream["cpu"], stream["peak_mb"]),
        ("pandas: the 12 windowed features (groupby + rolling)", theirs["wall"],
         theirs["cpu"], theirs["peak_mb"]),
    ]
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    lines = [
        f"{n:,} transactions, {args.users:,} users, {args.terminals:,} terminals, "
        f"{args.days} days, seed {args.seed}; best of {args.repeat} for ours and pandas, 1 run "
        f"for streaming; one thread; {platform.python_implementation()} "
        f"{platform.python_version()}, numpy {np.__version__}, pandas {pd.__version__}, "
        f"{os.cpu_count()} CPUs, load average at the end {load}.",
        "",
        "| what | wall s | CPU s | M rows/s (wall) | M rows/s (CPU) | peak RSS MB |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, wall, cpu, peak in rows:
        lines.append(f"| {label} | {sec(wall)} | {sec(cpu)} | {rate(wall)} | {rate(cpu)} "
                     f"| {peak:.0f} |")
    lines += [
        "",
        "Speed-up over pandas on the windowed features (CPU time, kernels): "
        f"**{theirs['cpu'] / mine['kernel_cpu']:.0f}x**; wall time, kernels: "
        f"**{theirs['wall'] / mine['kernel_wall']:.0f}x**; every feature end to end, CPU: "
        f"**{theirs['cpu'] / mine['cpu']:.0f}x**, wall: **{theirs['wall'] / mine['wall']:.0f}x**.",
        f"Kernels' CPU time, each the best of {args.repeat}: `user_kernel` "
        f"{mine['split_cpu']['user_kernel']:.3f} s, `terminal_kernel` "
        f"{mine['split_cpu']['terminal_kernel']:.3f} s; the first 1 M-row call of the process "
        f"(all its memory fresh: page faults, the kernels' kept scratch among them) "
        f"{mine['cold_cpu']:.3f} s.",
        f"pandas and ours agree on all 12 windowed features (max relative difference "
        f"{worst:.1e}). Peak RSS includes the generated input held before forking "
        f"({base_mb:.0f} MB).",
    ]
    return "\n".join(lines)


def record(text: str) -> None:
    """Replace (or append) this benchmark's block in docs/BENCHMARKS.md."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from benchdoc import record_block

    record_block(ROOT / "docs" / "BENCHMARKS.md", BEGIN, END, "Features", text)


if __name__ == "__main__":
    raise SystemExit(main())
