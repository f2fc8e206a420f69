"""Benchmark: evaluate 30 rules over 10,000 transactions (the issue's target: a few ms).

The rule set is rules/default.yaml plus generated rules in the same style (thresholds on
features, list membership, missing tests, arithmetic) up to --rules; the batch is synthetic,
seeded, with some missing scores and strings. Prints the median wall time of `evaluate`, with
and without building the reason texts.

    .venv/bin/python scripts/bench_rules.py [--rows 10000] [--rules 30] [--repeat 50]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from fraud.logs import configure_logging
from fraud.rules import default_vocabulary, parse_rules
from fraud.rules.evaluator import evaluate
from fraud.rules.guardrail import GuardrailState

ROOT = Path(__file__).resolve().parent.parent

_TEMPLATES = (
    "amount > {a} and user_tx_count_7d >= {k}",
    "terminal_fraud_rate_30d >= 0.{k} or terminal_tx_count_1d > {a}",
    "user_id in deny_users or device_id in deny_devices",
    "score between 0.{k} and 0.9 and amount_to_user_mean > 3",
    "amount / (user_amount_mean_30d + 1) > {k} * 5 + 10 and not is_weekend",
    "channel in ['web', 'app'] and score >= 0.{k}",
    "user_seconds_since_prev between 0 and {k} and amount > {a}",
    "device_distance_km is not missing and device_distance_km > {a}",
)


def build_rules(count: int) -> str:
    """default.yaml with generated rules appended until there are `count` rules."""
    text = (ROOT / "rules" / "default.yaml").read_text(encoding="utf-8")
    base = parse_rules(text, filename=str(ROOT / "rules" / "default.yaml"))
    lines = [text.rstrip("\n")]
    for i in range(count - len(base.rules)):
        when = _TEMPLATES[i % len(_TEMPLATES)].format(a=500 + 37 * i, k=1 + i % 8)
        action = ("flag", "alert", "block")[i % 3]
        mode = "shadow" if i % 5 == 4 else "active"
        lines.append(
            f"  - id: bench_{i}\n    description: generated\n    when: \"{when}\"\n"
            f"    action: {action}\n    mode: {mode}\n"
            + ("    max_rate: 0.05\n" if i % 10 == 0 else "") +
            "    reason: \"amount {amount:.2f} score {score:.3f}\"")
    return "\n".join(lines) + "\n"


def build_columns(rows: int, seed: int = 7) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    vocab = default_vocabulary()
    cols: dict[str, np.ndarray] = {}
    # Shapes that make rules match rarely, as in real traffic: most scores are low, rates
    # small, counts and distances exponential.
    for name in vocab.numeric | vocab.flags:
        cols[name] = rng.exponential(5.0, rows)
        if "rate" in name:
            cols[name] = rng.beta(1, 50, rows)
    cols["score"] = rng.beta(1, 30, rows)
    for name in ("is_weekend", "is_night"):
        cols[name] = (rng.random(rows) < 0.3).astype(np.float64)
    cols["score"][rng.random(rows) < 0.02] = np.nan
    cols["amount"] = rng.lognormal(3.5, 1.2, rows)
    cols["timestamp_us"] = (1_700_000_000_000_000 + np.arange(rows) * 1_000_000).astype(np.int64)
    for name in vocab.strings:
        cols[name] = np.asarray([f"{name[:2]}{i}" for i in rng.integers(0, 3000, rows)],
                                dtype=object)
    cols["channel"] = rng.choice(np.asarray(["web", "app", "pos", ""], dtype=object), rows)
    del cols["score_available"], cols["hour"]  # derived by the evaluator
    return cols


def median_ms(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Median wall-clock and CPU milliseconds (CPU time is steadier on a busy machine)."""
    wall, cpu = [], []
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
    return statistics.median(wall), statistics.median(cpu)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--rules", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    configure_logging("ERROR")  # guardrail demotions of synthetic rules are not news here
    ruleset = parse_rules(build_rules(args.rules), filename=str(ROOT / "rules" / "default.yaml"))
    columns = build_columns(args.rows)
    state = GuardrailState()
    evaluate(ruleset, columns, state=state)  # warm-up
    plain, plain_cpu = median_ms(
        lambda: evaluate(ruleset, columns, state=state, with_reasons=False), args.repeat)
    full, full_cpu = median_ms(lambda: evaluate(ruleset, columns, state=state), args.repeat)
    decisions = evaluate(ruleset, columns, state=GuardrailState())
    result = {"benchmark": "rules", "rules": len(ruleset.rules), "rows": args.rows,
              "matches": int(decisions.matches.sum()),
              "decisions_ms": round(plain, 3), "decisions_cpu_ms": round(plain_cpu, 3),
              "with_reasons_ms": round(full, 3), "with_reasons_cpu_ms": round(full_cpu, 3)}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"rules: {result['rules']} rules x {args.rows} transactions "
              f"({result['matches']} rule matches): "
              f"{plain:.2f} ms decisions ({plain_cpu:.2f} ms CPU), "
              f"{full:.2f} ms with reasons ({full_cpu:.2f} ms CPU); median of {args.repeat}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
