"""Detection metrics on a held-out range: threshold-free ranking quality plus what an
investigation team actually sees.

* ``auc_roc`` and ``average_precision`` (sklearn.metrics) over labelled test rows;
* ``card_precision_at_k``: each test day (UTC), cards are ranked by their highest score that
  day, leaving out cards already caught (a fraudulent card in an earlier day's top k: it is
  blocked, so finding it again is worth nothing); the day's value is the number of fraudulent
  cards in the top k divided by k. The metric is the mean over days. This is the measure of a
  team that can check k cards a day;
* precision and recall at the rules' score thresholds.

>>> import numpy as np
>>> day = 86_400_000_000
>>> m = card_precision_at_k(np.array([.9, .8, .1]), np.array([1, 0, 1]),
...                         np.array([0, 0, day]), np.array(["a", "b", "a"]), k=1)
>>> m.daily.tolist()   # day 2: card a was caught on day 1, so nothing is left
[1.0, 0.0]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "DAY_US",
    "DEFAULT_THRESHOLDS",
    "CardPrecision",
    "card_precision_at_k",
    "evaluate",
    "threshold_metrics",
]

DAY_US = 86_400_000_000
# flag / alert / block: the default rules' score thresholds (see `fraud.model.train`,
# which reads rules/default.yaml's parameters when it has them).
DEFAULT_THRESHOLDS: tuple[float, ...] = (0.5, 0.7, 0.9)


@dataclass(frozen=True, slots=True)
class CardPrecision:
    """Card precision@k per test day (`days` are UTC day numbers since the epoch)."""

    k: int
    days: npt.NDArray[np.int64]
    daily: npt.NDArray[np.float64]
    # What a perfect ranking scores each day (fraudulent cards first; it leaves out the
    # cards it caught itself): the same for every model, so models can be compared to it.
    ceiling: npt.NDArray[np.float64]

    @property
    def mean(self) -> float:
        return float(np.mean(self.daily)) if self.daily.size else math.nan

    @property
    def mean_ceiling(self) -> float:
        return float(np.mean(self.ceiling)) if self.ceiling.size else math.nan


def _daily_card_precision(s: npt.NDArray[np.float64], y: npt.NDArray[np.bool_],
                          day: npt.NDArray[np.int64], days: npt.NDArray[np.int64],
                          card_index: npt.NDArray[np.intp], n_cards: int,
                          k: int) -> npt.NDArray[np.float64]:
    """Card precision@k of each day in `days` for one ranking `s` (see the module docstring)."""
    caught = np.zeros(n_cards, dtype=bool)
    daily = np.zeros(len(days))
    for d_i, d in enumerate(days):
        rows = np.flatnonzero(day == d)
        idx = card_index[rows]
        keep = ~caught[idx]
        rows, idx = rows[keep], idx[keep]
        if rows.size == 0:
            continue
        # Per card: its highest score and whether any of its transactions that day is fraud.
        present, inverse = np.unique(idx, return_inverse=True)
        best = np.full(present.size, -np.inf)
        np.maximum.at(best, inverse, np.nan_to_num(s[rows], nan=-np.inf))
        fraud = np.zeros(present.size, dtype=bool)
        np.logical_or.at(fraud, inverse, y[rows])
        # Ties broken by card id order (np.unique's), so the metric is reproducible.
        top = np.argsort(-best, kind="stable")[:k]
        daily[d_i] = fraud[top].sum() / k
        caught[present[top][fraud[top]]] = True
    return daily


def card_precision_at_k(scores: npt.NDArray[np.float64], labels: npt.NDArray[Any],
                        timestamp_us: npt.NDArray[np.int64], cards: npt.NDArray[Any],
                        k: int = 100) -> CardPrecision:
    """See the module docstring. Rows with label < 0 (unlabelled) should be removed first.

    The ceiling is the same metric for a perfect ranking (every fraudulent card above every
    genuine one), which catches its own cards and so leaves its own set out on later days:
    it depends on the labels alone, so it is the same for every model on one test range.
    (A model that misses a card one day and finds it the next can beat the ceiling on that
    next day, so the ceiling is what a perfect ranking gets, not a strict bound.)
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    day = np.floor_divide(np.asarray(timestamp_us, dtype=np.int64), DAY_US)
    days = np.unique(day)
    card_codes, card_index = np.unique(np.asarray(cards, dtype=object).astype(str),
                                       return_inverse=True)
    y = np.asarray(labels) > 0
    s = np.asarray(scores, dtype=np.float64)
    daily = _daily_card_precision(s, y, day, days, card_index, len(card_codes), k)
    ceiling = _daily_card_precision(y.astype(np.float64), y, day, days, card_index,
                                    len(card_codes), k)
    return CardPrecision(k=k, days=days.astype(np.int64), daily=daily, ceiling=ceiling)


def threshold_metrics(scores: npt.NDArray[np.float64], labels: npt.NDArray[Any],
                      thresholds: Sequence[float]) -> list[dict[str, float]]:
    """Precision and recall of ``score >= t`` for each threshold (NaN precision if none)."""
    y = np.asarray(labels) > 0
    out = []
    for t in thresholds:
        hit = np.asarray(scores) >= t
        tp = int(np.sum(hit & y))
        out.append({
            "threshold": float(t),
            "flagged": int(hit.sum()),
            "precision": tp / int(hit.sum()) if hit.any() else math.nan,
            "recall": tp / int(y.sum()) if y.any() else math.nan,
        })
    return out


def evaluate(scores: npt.NDArray[np.float64], labels: npt.NDArray[Any], *,
             timestamp_us: npt.NDArray[np.int64], cards: npt.NDArray[Any], k: int = 100,
             thresholds: Sequence[float] = DEFAULT_THRESHOLDS) -> dict[str, Any]:
    """Every metric of the module, as a JSON-ready dict (NaN where undefined, e.g. one class)."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    labels = np.asarray(labels)
    keep = labels >= 0
    s, y = np.asarray(scores, dtype=np.float64)[keep], labels[keep].astype(np.int64)
    both = 0 < int(y.sum()) < y.size
    cp = card_precision_at_k(s, y, np.asarray(timestamp_us)[keep], np.asarray(cards)[keep], k)
    return {
        "rows": int(y.size),
        "frauds": int(y.sum()),
        "auc_roc": float(roc_auc_score(y, s)) if both else math.nan,
        "average_precision": float(average_precision_score(y, s)) if both else math.nan,
        f"card_precision_at_{k}": cp.mean,
        f"card_precision_at_{k}_ceiling": cp.mean_ceiling,
        "card_precision_k": k,
        "card_precision_days": int(cp.days.size),
        "thresholds": threshold_metrics(s, y, thresholds),
    }
