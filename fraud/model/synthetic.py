"""Small synthetic feature matrices for the model tests and the scoring benchmark.

They let the model stage be tested and timed without the feature engine or a data file:
fraud depends on three of four features, so a model has something real to learn.
"""

from __future__ import annotations

import numpy as np

from fraud.model.train import DAY_US, LabelledRows
from fraud.schema.batch import MISSING_TIME

__all__ = ["NAMES", "T0", "synthetic_rows"]

NAMES = ("amount_ratio", "night", "new_terminal", "noise")
T0 = 1_700_006_400_000_000  # 2023-11-15T00:00:00Z, a UTC midnight


def synthetic_rows(n: int = 3000, days: int = 40, seed: int = 0,
                   fraud_rate: float = 0.05) -> LabelledRows:
    """Rows spread over `days` days; fraud depends on the first three features."""
    rng = np.random.default_rng(seed)
    ts = np.sort(T0 + rng.integers(0, days * DAY_US, n)).astype(np.int64)
    x = np.column_stack([
        rng.lognormal(0.0, 0.5, n),
        rng.integers(0, 2, n).astype(float),
        rng.integers(0, 2, n).astype(float),
        rng.normal(size=n),
    ])
    logit = -8.0 + 3.0 * x[:, 0] + 2.0 * x[:, 1] + 2.5 * x[:, 2]
    p = 1 / (1 + np.exp(-logit))
    p *= fraud_rate / p.mean()
    y = (rng.random(n) < np.clip(p, 0, 1)).astype(np.int8)
    cards = np.asarray([f"c{i}" for i in rng.integers(0, 300, n)], dtype=object)
    return LabelledRows(x=x, names=NAMES, timestamp_us=ts, is_fraud=y,
                        label_time_us=np.full(n, MISSING_TIME, dtype=np.int64), card=cards)
