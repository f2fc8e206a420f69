#!/usr/bin/env python3
"""Benchmark: `fraud replay` end to end (read, decide, write) on a million generated rows.

Generates the data set once with `fraud.generate` (default 12,000 users x 60 days, about
1,000,000 transactions, with its supporting stores) and caches it under ``.local/bench/``;
then replays it with `fraud.replay.run_replay` through models/default and rules/default.yaml,
exactly what ``fraud replay --input FILE --output OUT`` does. Reports transactions per second,
the time split by stage (`ReplaySummary.stage_seconds`), start-up (loading model, rules and
supporting stores) and peak RSS.

Each measured replay runs in its own Python process, so its peak RSS is its own. The process
first replays a tiny file, so imports and numba kernel compilation (or cache load) are paid
before the clock starts; they are reported apart as "warm-up". The stage clock is CPU time by
default (``--clock cpu``): on a machine shared with other work, wall time measures the
neighbours as much as the code; the total wall time is reported too. Replay reads ahead and
writes behind in two threads and scores on numba's threads, so the CPU clock is each thread's
own (``time.thread_time``): "read" is the reader thread's CPU, "write" the writer's, and the
CPU of numba's worker threads (the parallel tree walk, beyond the main thread's share) is
reported with Arrow's own thread pool as "other threads" (process CPU minus every Python
thread's). ``--serial`` replays in one thread with the serial tree walk (the reference);
``--serial-score`` keeps the read-ahead and write-behind threads but walks trees serially.

``--memory`` also replays the same population over twice the days (2x rows, same state size)
to show that peak RSS does not grow with the file (chunked reading, bounded state).
``--profile`` runs the timed replay under pyinstrument (cProfile when it is not installed)
and writes the report to ``.local/bench/replay-profile.txt``. ``--quick`` replays a few
thousand rows in this process: a smoke test that the script still works, not a measurement.

    .venv/bin/python scripts/bench_replay.py [--users 12000] [--days 60] [--memory] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- bench_replay:begin -->", "<!-- bench_replay:end -->"
TARGET_ROWS_PER_SECOND = 300_000


@dataclass(frozen=True, slots=True)
class Case:
    """One replay to measure: the data set's shape and how it is replayed."""

    users: int
    days: int
    terminals: int
    seed: int
    input_format: str
    output_format: str
    chunk_rows: int
    support: bool
    clock: str
    bench_dir: str
    model_dir: str
    rules: str
    profile: bool = False
    serial: bool = False
    serial_score: bool = False

    @property
    def name(self) -> str:
        return f"replay-u{self.users}-t{self.terminals}-d{self.days}-s{self.seed}"


def dataset(case: Case) -> tuple[Path, Path, int]:
    """The cached transaction file, its stores directory and its row count (generated once).

    A ``.done`` marker written last makes an interrupted generation look absent, not cached.
    """
    from fraud.generate import GenerateConfig, generate, write_dataset

    base = Path(case.bench_dir)
    path = base / f"{case.name}.{case.input_format}"
    stores = base / f"{case.name}.stores"
    marker = base / f"{case.name}.{case.input_format}.done"
    if marker.is_file() and path.is_file() and stores.is_dir():
        return path, stores, int(json.loads(marker.read_text(encoding="utf-8"))["rows"])
    base.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    ds = generate(GenerateConfig(users=case.users, terminals=case.terminals, days=case.days,
                                 seed=case.seed))
    write_dataset(ds, path, stores)
    rows = ds.summary.rows
    marker.write_text(json.dumps({"rows": rows}) + "\n", encoding="utf-8")
    print(f"generated {rows:,} rows into {path} in {time.perf_counter() - started:.1f} s",
          file=sys.stderr)
    return path, stores, rows


class _CpuClock:
    """Stands in for the `time` module inside the pipeline: stage times in CPU seconds."""

    perf_counter = staticmethod(time.thread_time)


@contextmanager
def stage_clock(kind: str) -> Iterator[None]:
    """Swap the clock `fraud.pipeline` and `fraud.replay` time their stages with."""
    if kind == "wall":
        yield
        return
    import fraud.pipeline
    import fraud.replay

    modules = (fraud.pipeline, fraud.replay)
    saved = [getattr(m, "time") for m in modules]  # noqa: B009 - not a public attribute
    for m in modules:
        setattr(m, "time", _CpuClock)  # noqa: B010
    try:
        yield
    finally:
        for m, original in zip(modules, saved, strict=True):
            setattr(m, "time", original)  # noqa: B010


def _peak_mb() -> float:
    """This process's peak RSS in MB.

    Linux's ``ru_maxrss`` survives fork and exec: a child started by a parent that had just
    generated 2M rows would report the parent's peak. ``VmHWM`` belongs to the process's own
    address space, so it is read first.
    """
    try:
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _tiny(case: Case) -> Case:
    """The warm-up data set: a hundred-odd rows, CSV (so the CSV reader is compiled too)."""
    return replace(case, users=40, days=3, terminals=20, input_format="csv")


def _warm_up(case: Case) -> float:
    """Replay a tiny data set so imports and kernel compilation are paid before timing."""
    from fraud.logs import configure_logging
    from fraud.replay import ReplayConfig, run_replay

    configure_logging("ERROR")  # guardrail demotions on generated data are not news here
    started = time.perf_counter()
    path, stores, _ = dataset(_tiny(case))
    out = Path(case.bench_dir) / f"warmup-out.{case.output_format}"
    run_replay(ReplayConfig(input=str(path), output=out, model_dir=Path(case.model_dir),
                            rules_path=case.rules, support_dir=stores if case.support else None))
    # The tiny replay's batches are too small for the parallel scoring and reasons kernels:
    # compile those too, or a cold numba cache lands in the timed "score" and "explain".
    import numpy as np

    from fraud.model.fastpath import PARALLEL_ROWS
    from fraud.model.scorer import LocalScorer

    scorer = LocalScorer.load(Path(case.model_dir))
    x = np.zeros((PARALLEL_ROWS, len(scorer.feature_names)))
    scorer.score(x)
    scorer.explain(x[: PARALLEL_ROWS // len(scorer.feature_names) + 1])
    return time.perf_counter() - started


@contextmanager
def _profiler(enabled: bool, target: Path) -> Iterator[None]:
    """pyinstrument around the block when `enabled` (cProfile if pyinstrument is missing)."""
    if not enabled:
        yield
        return
    try:
        from pyinstrument import Profiler
    except ImportError:
        import cProfile
        import io
        import pstats

        prof = cProfile.Profile()
        prof.enable()
        try:
            yield
        finally:
            prof.disable()
            text = io.StringIO()
            pstats.Stats(prof, stream=text).sort_stats("cumulative").print_stats(60)
            target.write_text(text.getvalue(), encoding="utf-8")
        return
    profiler = Profiler(interval=0.005)
    profiler.start()
    try:
        yield
    finally:
        profiler.stop()
        target.write_text(profiler.output_text(unicode=True, color=False), encoding="utf-8")


def measure(case: Case) -> dict[str, Any]:
    """Generate (or reuse) the data set, warm up, replay it once; the figures as a dict."""
    from fraud.replay import ReplayConfig, run_replay

    path, stores, rows = dataset(case)
    if case.support:
        # As on any replay after the first of the same data: the stores' binary cache
        # (fraud.features.supportcache) is built here, untimed, if it is not there yet, in a
        # process of its own (so it adds nothing to this one's peak RSS).
        subprocess.run([sys.executable, "-c", "import sys\nfrom fraud.features import "
                        "SupportStore\nSupportStore.from_directory(sys.argv[1])", str(stores)],
                       check=True, cwd=ROOT)
    warm = _warm_up(case)
    base_mb = _peak_mb()
    out = Path(case.bench_dir) / f"{case.name}-out.{case.output_format}"
    config = ReplayConfig(input=str(path), output=out, model_dir=Path(case.model_dir),
                          rules_path=case.rules, support_dir=stores if case.support else None,
                          chunk_rows=case.chunk_rows, overlap=not case.serial)
    if case.serial or case.serial_score:
        import fraud.model.fastpath

        fraud.model.fastpath.PARALLEL_ROWS = 1 << 62
    profile_path = Path(case.bench_dir) / "replay-profile.txt"
    wall, cpu = time.perf_counter(), time.process_time()
    with _profiler(case.profile, profile_path), stage_clock(case.clock):
        summary = run_replay(config)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    stages = dict(summary.stage_seconds)
    # summary.seconds is the main thread's clock from start to end: its stages plus start-up
    # (with the CPU clock; waiting on the reader or writer costs the main thread no CPU).
    # Threads of their own: the reader (read, support lookups), the decider (score, rules,
    # explain) and the writer.
    side = (("read", "support", "score", "rules", "explain", "write")
            if not case.serial and case.clock == "cpu" else ())
    main_thread = sum(v for k, v in stages.items() if k not in side)
    startup = max(summary.seconds - main_thread, 0.0)
    if case.clock == "cpu":
        threads = summary.seconds + sum(stages.get(k, 0.0) for k in side)
        # Numba's workers (the parallel tree walk beyond the main thread's share) and
        # Arrow's own thread pool (Parquet decoding, CSV encoding).
        stages["other threads"] = round(max(cpu - threads, 0.0), 4)
    in_stages = sum(stages.values())
    result: dict[str, Any] = {
        "input": str(path), "output": str(out), "rows": rows,
        "rows_read": summary.rows_read, "rows_decided": summary.rows_decided,
        "rows_rejected": summary.rows_rejected, "actions": summary.actions,
        "wall_seconds": round(wall, 3), "cpu_seconds": round(cpu, 3),
        "rows_per_second": round(summary.rows_read / wall, 1),
        "rows_per_cpu_second": round(summary.rows_read / cpu, 1),
        "clock": case.clock,
        "stage_seconds": stages,
        # Loading model, rules and supporting stores, building the engine: once per replay.
        "startup_seconds": round(startup, 3),
        "pipeline_rows_per_second": round(summary.rows_read / in_stages, 1) if in_stages else 0,
        "warmup_seconds": round(warm, 3),
        "rss_before_mb": round(base_mb, 1), "peak_rss_mb": round(_peak_mb(), 1),
        "chunk_rows": case.chunk_rows, "support": case.support, "serial": case.serial,
        "serial_score": case.serial_score,
        "model_version": summary.model_version, "rules_version": summary.rules_version,
    }
    if case.profile:
        result["profile"] = str(profile_path)
    return result


def measure_isolated(case: Case) -> dict[str, Any]:
    """`measure` in a fresh Python process (so peak RSS and the numba state are its own)."""
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(asdict(case))],
        stdout=subprocess.PIPE, text=True, check=False, cwd=ROOT,
    )
    if proc.returncode != 0:
        raise SystemExit(f"bench_replay: the measuring process failed (exit {proc.returncode})")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def environment() -> dict[str, Any]:
    import numpy as np

    return {
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "numpy": np.__version__, "cpus": os.cpu_count(),
        "load_average": [round(x, 1) for x in os.getloadavg()],
    }


def markdown(result: dict[str, Any], command: str) -> str:
    """The figures as the Markdown block recorded in docs/BENCHMARKS.md."""
    main = result["replay"]
    env = result["environment"]
    unit = "CPU s" if main["clock"] == "cpu" else "wall s"
    lines = [
        f"`{command}`",
        "",
        f"{main['rows']:,} transactions ({result['users']:,} users, {result['terminals']:,} "
        f"terminals, {result['days']} days, seed {result['seed']}), "
        f"{main['input'].rsplit('.', 1)[-1]} in, {main['output'].rsplit('.', 1)[-1]} out, "
        f"chunks of {main['chunk_rows']:,} rows, supporting stores "
        f"{'on (their binary cache built beforehand)' if main['support'] else 'off'}, "
        f"{'one thread' if main.get('serial') else 'reader, decider and writer threads'}; "
        f"{env['python']}, numpy {env['numpy']}, "
        f"{env['cpus']} CPUs, load average at the end "
        f"{', '.join(str(x) for x in env['load_average'])}.",
        "",
        "| measure | value |",
        "|---|---:|",
        f"| end to end, wall | {main['wall_seconds']:.2f} s = "
        f"**{main['rows_per_second']:,.0f} tx/s** |",
        f"| end to end, CPU | {main['cpu_seconds']:.2f} s = "
        f"{main['rows_per_cpu_second']:,.0f} tx/s |",
        f"| pipeline stages only (no start-up) | "
        f"{main['pipeline_rows_per_second']:,.0f} tx/s |",
        f"| start-up: model, rules, supporting stores ({unit}) | "
        f"{main['startup_seconds']:.2f} |",
        f"| warm-up before timing: imports, kernels (wall s) | {main['warmup_seconds']:.2f} |",
        f"| peak RSS | {main['peak_rss_mb']:,.0f} MB |",
        f"| target | {TARGET_ROWS_PER_SECOND:,} tx/s: "
        f"{'met' if main['rows_per_second'] >= TARGET_ROWS_PER_SECOND else 'not met'} |",
        "",
        f"| stage ({unit}) | seconds | share | µs per tx |",
        "|---|---:|---:|---:|",
    ]
    total = sum(main["stage_seconds"].values()) or 1.0
    for stage, sec in sorted(main["stage_seconds"].items(), key=lambda kv: -kv[1]):
        lines.append(f"| {stage} | {sec:.2f} | {sec / total:.0%} | "
                     f"{sec / max(main['rows'], 1) * 1e6:.2f} |")
    memory = result.get("memory")
    if memory:
        lines += [
            "",
            "Bounded memory (same population, twice the days):",
            "",
            "| rows | peak RSS MB | RSS before replay MB |",
            "|---:|---:|---:|",
        ]
        for run in memory["runs"]:
            lines.append(f"| {run['rows']:,} | {run['peak_rss_mb']:,.0f} | "
                         f"{run['rss_before_mb']:,.0f} |")
        lines.append("")
        lines.append(f"Peak RSS ratio, 2x rows over 1x rows: **{memory['ratio']:.2f}**.")
    return "\n".join(lines)


def record(text: str) -> None:
    """Replace (or append) this benchmark's block in docs/BENCHMARKS.md."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from benchdoc import record_block

    record_block(ROOT / "docs" / "BENCHMARKS.md", BEGIN, END, "Replay", text)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--users", type=int, default=12_000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--terminals", type=int, default=None,
                        help="default: users / 4 (as `fraud generate`'s defaults)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--input-format", choices=("parquet", "csv", "jsonl"), default="parquet")
    parser.add_argument("--output-format", choices=("csv", "parquet", "jsonl"), default="csv")
    parser.add_argument("--chunk-rows", type=int, default=200_000,
                        help="rows per batch (fraud replay's default)")
    parser.add_argument("--no-support", action="store_true",
                        help="replay without the supporting stores (sessions, devices, ...)")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                        help="clock of the per-stage split (total wall time is always shown)")
    parser.add_argument("--memory", action="store_true",
                        help="also replay 2x the rows (same users, 2x days) and compare peak RSS")
    parser.add_argument("--serial", action="store_true",
                        help="one thread: no read-ahead/write-behind, serial tree walk")
    parser.add_argument("--serial-score", action="store_true",
                        help="read-ahead and write-behind, but the serial tree walk")
    parser.add_argument("--profile", action="store_true",
                        help="profile the timed replay into .local/bench/replay-profile.txt")
    parser.add_argument("--quick", action="store_true",
                        help="a few thousand rows, in this process: smoke test, not a measurement")
    parser.add_argument("--bench-dir", type=Path, default=ROOT / ".local" / "bench")
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "default")
    parser.add_argument("--rules", type=Path, default=ROOT / "rules" / "default.yaml")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--record", action="store_true", help="write docs/BENCHMARKS.md")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child is not None:
        print(json.dumps(measure(Case(**json.loads(args.child)))))
        return 0
    if args.quick:
        args.users, args.days, args.terminals = min(args.users, 300), min(args.days, 10), None
        args.memory = args.record = False
    terminals = args.terminals or max(args.users // 4, 1)
    for name in ("users", "days", "chunk_rows"):
        if getattr(args, name) < 1:
            parser_error = f"--{name.replace('_', '-')}: expected an integer >= 1"
            print(f"bench_replay: {parser_error}", file=sys.stderr)
            return 2
    case = Case(users=args.users, days=args.days, terminals=terminals, seed=args.seed,
                input_format=args.input_format, output_format=args.output_format,
                chunk_rows=args.chunk_rows, support=not args.no_support, clock=args.clock,
                bench_dir=str(args.bench_dir), model_dir=str(args.model), rules=str(args.rules),
                profile=args.profile, serial=args.serial, serial_score=args.serial_score)
    run = measure if args.quick else measure_isolated
    # Generate in this process, so a measuring process's peak RSS is the replay's alone.
    dataset(case)
    dataset(_tiny(case))
    result: dict[str, Any] = {
        "benchmark": "replay", "quick": bool(args.quick), "users": case.users,
        "terminals": case.terminals, "days": case.days, "seed": case.seed,
        "target_rows_per_second": TARGET_ROWS_PER_SECOND,
    }
    result["replay"] = run(case)
    if args.memory:
        twice = replace(case, days=case.days * 2, profile=False)
        dataset(twice)
        double = run(twice)
        runs = [result["replay"], double]
        result["memory"] = {
            "runs": [{k: r[k] for k in ("rows", "peak_rss_mb", "rss_before_mb")} for r in runs],
            "ratio": round(double["peak_rss_mb"] / result["replay"]["peak_rss_mb"], 3),
        }
    result["environment"] = environment()
    result["meets_target"] = result["replay"]["rows_per_second"] >= TARGET_ROWS_PER_SECOND
    command = ".venv/bin/python scripts/bench_replay.py " + " ".join(argv or sys.argv[1:])
    text = markdown(result, command.strip())
    if args.json:
        print(json.dumps(result))
    else:
        print(text)
    if args.record:
        record(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
