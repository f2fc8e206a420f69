#!/usr/bin/env python3
"""Benchmark the local scorer: batches of 500 and 100k rows, with and without reasons.

Uses the shipped artifact (models/default) when it loads, else a model trained here on
synthetic rows with the same algorithm and parameters. Prints one line per case: median
wall time and median process CPU time of several runs (CPU is what a shared machine does
not blur). The target is under 5 ms for a batch of 500 without reasons. The serial 100k
cases compare the two compiled walks on one thread: the bit-vector walk the scorer uses
(`fraud.model.quickscorer`) and the tree-by-tree walk it replaced, in CPU ns per row.

    python scripts/bench_scoring.py [--model DIR] [--repeat N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def _scorer(model_dir: Path) -> Any:
    from fraud.errors import ModelError
    from fraud.model.scorer import LocalScorer

    try:
        return LocalScorer.load(model_dir), f"artifact {model_dir}"
    except ModelError as exc:
        print(f"note: {exc}; benchmarking a synthetic model instead", file=sys.stderr)
    from fraud.model.artifact import Manifest, load_artifact, save_artifact
    from fraud.model.synthetic import synthetic_rows
    from fraud.model.train import fit_model, reference_values

    width = 29
    rows = synthetic_rows(n=20_000, seed=0)
    rng = np.random.default_rng(0)
    x = np.hstack([rows.x, rng.normal(size=(len(rows), width - rows.x.shape[1]))])
    names = tuple(f"f{i}" for i in range(width))
    model = fit_model(x, rows.is_fraud, "hgb")
    out = Path(tempfile.mkdtemp())
    save_artifact(out, model.estimator, Manifest(
        feature_names=names, feature_engine_version="bench", label_delay_days=7.0,
        algorithm="hgb", params=dict(model.params), positive_weight=model.positive_weight,
        reference=reference_values(x, names), train_range=("", ""), test_range=None,
        counts={}, metrics={}, library_versions={}, created_at="", model_sha256=""))
    return LocalScorer(load_artifact(out, names, "bench")), "synthetic hgb (29 features)"


def _time(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Median wall and median process-CPU milliseconds of `repeat` calls."""
    fn()  # warm-up: first call pays lazy imports and thread-pool start
    wall, cpu = [], []
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return statistics.median(wall) * 1e3, statistics.median(cpu) * 1e3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("models/default"))
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args(argv)
    scorer, what = _scorer(args.model)
    width = len(scorer.feature_names)
    rng = np.random.default_rng(1)
    # Rows near the training reference with noise: realistic tree paths, not all-zero rows.
    ref = scorer.reference
    big = ref + np.abs(ref + 1.0) * rng.normal(scale=0.5, size=(100_000, width))
    small = big[:500]
    print(f"model: {what}")
    from fraud.model.scorer import LocalScorer

    plain = LocalScorer(scorer.artifact, compiled=False)
    print(f"compiled path: {scorer.compiled}")
    forest = scorer._fast
    if forest is not None:
        print(f"trees: {len(forest.roots)}, split nodes: {int((~forest.is_leaf).sum())}, "
              f"bit-vector walk: {forest.bits is not None}")
    cases = [
        ("score 500 rows", lambda: scorer.score(small), args.repeat),
        ("score 500 rows (sklearn path)", lambda: plain.score(small), args.repeat),
        ("score 500 rows + top-3 reasons", lambda: scorer.explain(small, k=3), 5),
        ("score 100k rows", lambda: scorer.score(big), 3),
        ("score 100k rows (sklearn path)", lambda: plain.score(big), 3),
    ]
    if forest is not None:
        fbig = np.asfortranarray(big)  # the engine's layout
        cases.append(("100k rows, tree walk, 1 thread",
                      lambda: forest.walk_raw(fbig, parallel=False), 5))
        if forest.bits is not None:
            bits = forest.bits
            cases.append(("100k rows, bit-vector walk, 1 thread",
                          lambda: bits.raw(fbig, parallel=False), 5))
    print(f"{'case':38s} {'wall ms':>10s} {'CPU ms':>10s} {'CPU ns/row':>11s}")
    for name, fn, repeat in cases:
        wall, cpu = _time(fn, repeat)
        rows = 500 if "500" in name else big.shape[0]
        print(f"{name:38s} {wall:10.2f} {cpu:10.2f} {cpu * 1e6 / rows:11.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
