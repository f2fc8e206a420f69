"""Check the 12 windowed features on any labelled file against an independent pandas version.

Reads FILE the way `fraud features` does (same --columns mapping), computes the features
point in time (`fraud.features.compute_features`), and compares every row with a plain
pandas implementation (groupby + time-based rolling, as in the usual notebooks; the one
`scripts/bench_features.py` times). Prints the largest relative difference per feature and
exits 1 when any row differs by more than 1e-9 (counts must be equal).

Labels are taken as known `--label-delay-days` after their transaction, which is what the
pandas version models; a file with a label_time column is refused (its labels would be
known at other times).

    .venv/bin/python scripts/check_features.py --input FILE [--columns MAP]
        [--label-delay-days 7]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_features import WINDOWED, pandas_windowed

from fraud.errors import FraudError
from fraud.features import FeatureConfig, compute_features
from fraud.schema.batch import MISSING_TIME, TransactionBatch
from fraud.schema.columns import ColumnMap
from fraud.schema.files import read_transactions

TOLERANCE = 1e-9


def check(batch: TransactionBatch, delay_days: float) -> dict[str, tuple[float, int]]:
    """(largest relative difference, rows beyond the tolerance) per windowed feature."""
    order = np.argsort(batch.timestamp_us, kind="stable")
    ordered = batch.take(order)
    ours = compute_features(ordered, FeatureConfig(label_delay_days=delay_days))
    theirs = pandas_windowed(ordered, delay_days)
    result: dict[str, tuple[float, int]] = {}
    for name in WINDOWED:
        a, b = ours.column(name), theirs[name]
        rel = np.abs(a - b) / np.maximum(1.0, np.abs(b))
        exact = "_count_" in name
        bad = (a != b) if exact else (rel > TOLERANCE)
        result[name] = (float(rel.max()) if len(rel) else 0.0, int(bad.sum()))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", required=True, help="CSV, JSON Lines or Parquet file")
    parser.add_argument("--columns", default=None,
                        help="canonical=source pairs, as for `fraud features --columns`")
    parser.add_argument("--label-delay-days", type=float, default=7.0)
    args = parser.parse_args(argv)
    try:
        columns = ColumnMap.parse(args.columns) if args.columns else None
        parts = list(read_transactions(args.input, columns))
    except FraudError as exc:
        parser.exit(2, f"check_features: {exc}\n")
    batch = TransactionBatch.concat([p.batch for p in parts])
    rejected = sum(len(p.rejections) for p in parts)
    if np.any(batch.label_time_us != MISSING_TIME):
        parser.exit(2, "check_features: the file has label times; the pandas version "
                       "models labels known --label-delay-days after the transaction only\n")
    result = check(batch, args.label_delay_days)
    print(f"{len(batch):,} rows ({rejected:,} rejected), label delay {args.label_delay_days} d")
    print("| feature | max relative difference | rows beyond 1e-9 |")
    print("|---|---:|---:|")
    for name, (worst, bad) in result.items():
        print(f"| {name} | {worst:.3g} | {bad:,} |")
    failed = sum(bad for _, bad in result.values())
    print("agree" if not failed else f"DIFFER in {failed:,} values")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
