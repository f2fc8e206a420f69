#!/usr/bin/env python3
"""Run every benchmark in one go, print a summary table, save the results as JSON.

Each benchmark script runs in its own process, one after the other (never two at once: they
would time each other), with the options below; ``--quick`` shrinks every one of them to a
smoke test that finishes in about a minute altogether (the figures then mean nothing).
Results go to ``.local/bench/results.json``: per benchmark the command, exit code, wall
seconds, the parsed figures (the JSON of scripts that offer ``--json``; the table or lines of
the others) and the raw output. The exit code is 1 when any benchmark failed.

    .venv/bin/python scripts/run_benchmarks.py [--quick] [--only replay] [--record]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts"


@dataclass(frozen=True, slots=True)
class Bench:
    """A benchmark script: its arguments (full and quick), how to read and summarise it."""

    name: str
    script: str
    full: tuple[str, ...]
    quick: tuple[str, ...]
    parse: Callable[[str], Any]
    headline: Callable[[Any], str]
    records: bool = False  # accepts --record (writes its block of docs/BENCHMARKS.md)


def _last_json(text: str) -> Any:
    """The last line of `text` that parses as a JSON object."""
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                continue
    raise ValueError("no JSON object in the output")


def _markdown_rows(text: str) -> list[dict[str, str]]:
    """Rows of the first Markdown table in `text`, as {header: cell}."""
    lines = [ln for ln in text.splitlines() if ln.startswith("|")]
    if len(lines) < 3:
        raise ValueError("no Markdown table in the output")
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = []
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) != len(header):
            break
        rows.append(dict(zip(header, cells, strict=True)))
    return rows


_MS_LINE = re.compile(r"^(?P<name>\S.*?)\s+(?P<ms>[0-9.]+) ms$")


def _ms_lines(text: str) -> dict[str, float]:
    """``name   12.34 ms`` lines (bench_scoring's output) as {name: milliseconds}."""
    found = {m["name"]: float(m["ms"]) for m in map(_MS_LINE.match, text.splitlines()) if m}
    if not found:
        raise ValueError("no 'NAME  X ms' lines in the output")
    return found


def _features_headline(rows: list[dict[str, str]]) -> str:
    for row in rows:
        if "FeatureEngine.extract" in row.get("what", ""):
            return f"extract: {row['M rows/s (wall)']} M rows/s wall, {row['M rows/s (CPU)']} CPU"
    return f"{len(rows)} rows of figures"


def _scoring_headline(ms: dict[str, float]) -> str:
    small, big = ms.get("score 500 rows"), ms.get("score 100k rows")
    parts = [f"500 rows {small:.2f} ms" if small is not None else "",
             f"100k rows {big:.0f} ms" if big is not None else ""]
    return ", ".join(p for p in parts if p) or f"{len(ms)} cases"


def _rules_headline(r: dict[str, Any]) -> str:
    return (f"{r['rules']} rules x {r['rows']:,} tx: {r['decisions_ms']:.2f} ms, "
            f"{r['with_reasons_ms']:.2f} ms with reasons")


def _replay_headline(r: dict[str, Any]) -> str:
    main = r["replay"]
    text = (f"{main['rows']:,} tx: {main['rows_per_second']:,.0f} tx/s wall, "
            f"{main['rows_per_cpu_second']:,.0f} tx/s CPU (target "
            f"{r['target_rows_per_second']:,}); peak RSS {main['peak_rss_mb']:,.0f} MB")
    if r.get("memory"):
        text += f"; RSS 2x rows / 1x rows {r['memory']['ratio']:.2f}"
    return text


def _json_list(text: str) -> list[dict[str, Any]]:
    """The JSON list bench_consumer.py prints last with --json."""
    start = text.rfind("\n[")
    found = json.loads(text[start + 1 if start >= 0 else text.index("["):])
    if not isinstance(found, list):
        raise ValueError("expected a JSON list")
    return found


def _consumer_headline(rows: list[dict[str, Any]]) -> str:
    best = max(rows, key=lambda r: r["sustained_tx_per_s"])
    return (f"{best['sustained_tx_per_s']:,.0f} tx/s sustained, "
            f"{best['processor_cpu_us_per_tx']:.0f} CPU us/tx, "
            f"{best['dynamodb_requests_per_tx']} DynamoDB requests/tx")


BENCHES: tuple[Bench, ...] = (
    Bench("features", "bench_features.py", (),
          ("--rows", "20000", "--users", "500", "--terminals", "1000", "--days", "30",
           "--repeat", "1"),
          _markdown_rows, _features_headline, records=True),
    Bench("scoring", "bench_scoring.py", (), ("--repeat", "3"), _ms_lines, _scoring_headline),
    Bench("rules", "bench_rules.py", ("--json",), ("--json", "--repeat", "5"), _last_json,
          _rules_headline),
    Bench("replay", "bench_replay.py", ("--json", "--memory"), ("--json", "--quick"),
          _last_json, _replay_headline, records=True),
    Bench("consumer", "bench_consumer.py", ("--json",),
          ("--json", "--users", "300", "--days", "3", "--rates", "0", "--step-batches", "2"),
          _json_list, _consumer_headline),
)


def run_one(bench: Bench, *, quick: bool, record: bool, timeout: float | None
            ) -> dict[str, Any]:
    """Run one benchmark script; its figures (or why there are none) as a dict."""
    args = list(bench.quick if quick else bench.full)
    if record and bench.records and not quick:
        args.append("--record")
    command = [sys.executable, str(SCRIPTS / bench.script), *args]
    print(f"== {bench.name}: {' '.join(command[1:])}", file=sys.stderr, flush=True)
    started = time.perf_counter()
    entry: dict[str, Any] = {"command": command[1:]}
    try:
        proc = subprocess.run(command, cwd=ROOT, stdout=subprocess.PIPE, text=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        entry.update(ok=False, exit_code=None, error=f"timed out after {timeout} s")
        entry["seconds"] = round(time.perf_counter() - started, 2)
        return entry
    entry["seconds"] = round(time.perf_counter() - started, 2)
    entry["exit_code"] = proc.returncode
    entry["output"] = proc.stdout
    if proc.returncode != 0:
        entry.update(ok=False, error=f"exit code {proc.returncode} (its stderr is above)")
        return entry
    try:
        entry["result"] = bench.parse(proc.stdout)
        entry["headline"] = bench.headline(entry["result"])
        entry["ok"] = True
    except (ValueError, KeyError, TypeError) as exc:
        entry.update(ok=False, error=f"could not read its output: {exc}")
    return entry


def summary_table(results: dict[str, dict[str, Any]]) -> str:
    lines = ["| benchmark | status | wall s | result |", "|---|---|---:|---|"]
    for name, entry in results.items():
        status = "ok" if entry.get("ok") else "FAILED"
        detail = entry.get("headline") or entry.get("error", "")
        lines.append(f"| {name} | {status} | {entry.get('seconds', 0):.1f} | {detail} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes: checks that every benchmark still runs")
    parser.add_argument("--only", action="append", choices=[b.name for b in BENCHES],
                        help="run only this benchmark (repeatable)")
    parser.add_argument("--record", action="store_true",
                        help="let benchmarks that can write their block of docs/BENCHMARKS.md")
    parser.add_argument("--timeout", type=float, default=None,
                        help="seconds before a benchmark is stopped (default: none)")
    parser.add_argument("--out", type=Path, default=ROOT / ".local" / "bench" / "results.json")
    args = parser.parse_args(argv)
    chosen = [b for b in BENCHES if not args.only or b.name in args.only]
    started = time.time()
    results = {b.name: run_one(b, quick=args.quick, record=args.record, timeout=args.timeout)
               for b in chosen}
    document = {
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "quick": args.quick,
        "environment": {
            "python": f"{platform.python_implementation()} {platform.python_version()}",
            "platform": platform.platform(), "cpus": os.cpu_count(),
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        },
        "benchmarks": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    print(summary_table(results))
    print(f"\nresults: {args.out}")
    return 0 if all(entry.get("ok") for entry in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
