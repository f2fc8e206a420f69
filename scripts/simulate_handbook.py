"""A transaction file in the shape of the Fraud Detection Handbook's simulated data.

An independent implementation of the recipe the "Reproducible Machine Learning for Credit
Card Fraud Detection - Practical Handbook" describes (its own code, not the Handbook's, and
not this project's generator): customers at random locations with their own spending level
and rate, terminals within a radius of them, and three kinds of fraud:

1. any amount over 220;
2. two terminals compromised each day: all their transactions of the next 28 days;
3. three customers compromised each day: a third of their next 14 days' transactions,
   with the amount multiplied by five.

Columns as in the Handbook (TRANSACTION_ID, TX_DATETIME, CUSTOMER_ID, TERMINAL_ID,
TX_AMOUNT, TX_TIME_SECONDS, TX_TIME_DAYS, TX_FRAUD, TX_FRAUD_SCENARIO) and no label_time,
so training and replay see a file shaped by somebody else's conventions. It backs the
foreign-data figures in docs/model.md; read them with `--columns` (see there).

    .venv/bin/python scripts/simulate_handbook.py --out hb.csv --customers 5000 \
        --terminals 10000 --days 150 --seed 0
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["simulate"]

_START = pd.Timestamp("2018-04-01")


def _customer_rows(rng: np.random.Generator, customers: int, terminals: int, days: int,
                   radius: float) -> pd.DataFrame:
    """Every customer's genuine spending: Poisson per day, normal times and amounts."""
    cx, cy = rng.uniform(0, 100, customers), rng.uniform(0, 100, customers)
    mean_amount = rng.uniform(5, 100, customers)
    rate = rng.uniform(0, 4, customers)
    tx, ty = rng.uniform(0, 100, terminals), rng.uniform(0, 100, terminals)
    parts = []
    for c in range(customers):
        near = np.flatnonzero((tx - cx[c]) ** 2 + (ty - cy[c]) ** 2 < radius * radius)
        if near.size == 0:
            continue
        counts = rng.poisson(rate[c], days)
        if counts.sum() == 0:
            continue
        day = np.repeat(np.arange(days), counts)
        secs = np.round(rng.normal(43_200, 20_000, day.size)).astype(np.int64)
        inside = (secs > 0) & (secs < 86_400)  # times outside the day are dropped
        day, secs = day[inside], secs[inside]
        amount = rng.normal(mean_amount[c], mean_amount[c] / 2, day.size)
        negative = amount < 0
        amount[negative] = rng.uniform(0, 2 * mean_amount[c], negative.sum())
        parts.append(pd.DataFrame({
            "CUSTOMER_ID": c, "TERMINAL_ID": rng.choice(near, day.size), "day": day,
            "secs": day * 86_400 + secs, "TX_AMOUNT": np.round(amount, 2)}))
    rows = pd.concat(parts, ignore_index=True)
    return rows.sort_values("secs", kind="stable").reset_index(drop=True)


def simulate(customers: int, terminals: int, days: int, seed: int,
             radius: float = 5.0) -> pd.DataFrame:
    """The whole file as a frame, in time order; same arguments, same rows."""
    rng = np.random.default_rng(seed)
    df = _customer_rows(rng, customers, terminals, days, radius)
    scenario = np.zeros(len(df), np.int64)
    scenario[df.TX_AMOUNT.to_numpy() > 220] = 1
    day = df.day.to_numpy()
    for d in range(days):
        hit = df.TERMINAL_ID.isin(rng.choice(terminals, 2, replace=False)).to_numpy()
        scenario[hit & (day >= d) & (day < d + 28)] = 2
    amount = df.TX_AMOUNT.to_numpy().copy()
    for d in range(days):
        hit = df.CUSTOMER_ID.isin(rng.choice(customers, 3, replace=False)).to_numpy()
        idx = np.flatnonzero(hit & (day >= d) & (day < d + 14))
        if idx.size == 0:
            continue
        pick = rng.choice(idx, idx.size // 3, replace=False)
        amount[pick] *= 5
        scenario[pick] = 3
    return pd.DataFrame({
        "TRANSACTION_ID": np.arange(len(df)),
        "TX_DATETIME": (_START + pd.to_timedelta(df.secs, unit="s")).dt.strftime(
            "%Y-%m-%d %H:%M:%S"),
        "CUSTOMER_ID": df.CUSTOMER_ID, "TERMINAL_ID": df.TERMINAL_ID,
        "TX_AMOUNT": np.round(amount, 2), "TX_TIME_SECONDS": df.secs,
        "TX_TIME_DAYS": df.day, "TX_FRAUD": (scenario > 0).astype(np.int64),
        "TX_FRAUD_SCENARIO": scenario,
    })


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="CSV file to write")
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--terminals", type=int, default=10000)
    parser.add_argument("--days", type=int, default=150)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if min(args.customers, args.terminals, args.days) < 1:
        parser.error("--customers, --terminals and --days must be at least 1")
    df = simulate(args.customers, args.terminals, args.days, args.seed)
    df.to_csv(args.out, index=False)
    by = df.TX_FRAUD_SCENARIO.value_counts().sort_index().to_dict()
    print(f"{args.out}: {len(df)} rows, fraud share {df.TX_FRAUD.mean():.4f}, "
          f"rows by scenario {by}")


if __name__ == "__main__":
    main()
