"""Hyper-parameter search on time-ordered validation folds inside the training range.

Each fold mimics deployment: a model is trained on ``[train_start, v - delay)`` with labels
known by ``v``, then validated on ``[v, v + width)``, all inside ``[train_start,
train_end)``; validation labels must themselves be known by ``train_end + delay``, so the
search sees nothing training could not. The test range is never touched. Candidates are
ranked by mean average precision over the folds (ties: the earlier, simpler candidate).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from fraud.errors import InputError, ModelError
from fraud.logs import get_logger
from fraud.model.train import (
    DEFAULT_PARAMS,
    LabelledRows,
    fit_model,
    label_known,
    predict,
    training_mask,
)

__all__ = ["GRIDS", "Fold", "SearchResult", "search", "time_folds"]

log = get_logger(__name__)

GRIDS: dict[str, list[dict[str, Any]]] = {
    "hgb": [
        {},
        {"positive_weight": "none"},
        {"max_iter": 150},
        {"learning_rate": 0.05, "max_iter": 300},
        {"learning_rate": 0.1, "max_iter": 100, "max_leaf_nodes": 7, "min_samples_leaf": 80},
        {"positive_weight": "sqrt"},
    ],
    "rf": [
        {},
        {"max_depth": 8},
        {"max_depth": None, "min_samples_leaf": 10},
        {"positive_weight": "balanced"},
    ],
    "lr": [{"C": c} for c in (0.01, 0.1, 1.0, 10.0)],
}


@dataclass(frozen=True, slots=True)
class Fold:
    """Train on ``[train_start, fit_end)`` with labels known by `known_by`; validate on
    ``[val_start, val_end)``."""

    fit_end_us: int
    known_by_us: int
    val_start_us: int
    val_end_us: int


@dataclass(frozen=True, slots=True)
class SearchResult:
    params: dict[str, Any]
    scores: list[dict[str, Any]]


def time_folds(start_us: int, end_us: int, delay_us: int, n_folds: int = 3) -> list[Fold]:
    """`n_folds` consecutive validation windows at the end of ``[start, end)``."""
    width = (end_us - start_us - delay_us) // (n_folds + 1)
    if width <= 0:
        raise InputError("--search: the training range is too short for time-ordered folds "
                         "(it must be longer than the label delay)")
    folds = []
    for i in range(n_folds):
        val_start = end_us - (n_folds - i) * width
        folds.append(Fold(val_start - delay_us, val_start, val_start, val_start + width))
    return folds


def search(rows: LabelledRows, algorithm: str, *, start_us: int, end_us: int, delay_us: int,
           seed: int = 0, n_folds: int = 3,
           grid: list[dict[str, Any]] | None = None) -> SearchResult:
    """The best parameters for `algorithm` (merged over its defaults); see the module doc."""
    from sklearn.metrics import average_precision_score

    candidates = grid if grid is not None else GRIDS[algorithm]
    folds = time_folds(start_us, end_us, delay_us, n_folds)
    ts = rows.timestamp_us
    final_known = label_known(ts, rows.is_fraud, rows.label_time_us, end_us + delay_us,
                              delay_us)
    scores: list[dict[str, Any]] = []
    best_i, best = 0, -math.inf
    for c_i, candidate in enumerate(candidates):
        params = {**DEFAULT_PARAMS[algorithm], **candidate}
        per_fold: list[float] = []
        for fold in folds:
            fit = training_mask(rows, start_us, fold.fit_end_us, delay_us)
            fit &= label_known(ts, rows.is_fraud, rows.label_time_us, fold.known_by_us,
                               delay_us)
            val = (ts >= fold.val_start_us) & (ts < fold.val_end_us) & final_known
            y_val = rows.is_fraud[val]
            if not (0 < int(y_val.sum()) < y_val.size):
                continue
            try:
                model = fit_model(rows.x[fit], rows.is_fraud[fit], algorithm, params, seed)
            except ModelError:
                continue
            per_fold.append(float(average_precision_score(y_val, predict(model, rows.x[val]))))
        mean = float(np.mean(per_fold)) if per_fold else math.nan
        scores.append({"params": _jsonable(candidate), "folds": len(per_fold),
                       "mean_average_precision": mean})
        log.info("search_candidate", algorithm=algorithm, candidate=c_i, folds=len(per_fold),
                 mean_average_precision=mean)
        if per_fold and mean > best:
            best_i, best = c_i, mean
    if best == -math.inf:
        raise InputError("--search: no validation fold had both frauds and genuine "
                         "transactions with known labels; widen the training range")
    return SearchResult(params={**DEFAULT_PARAMS[algorithm], **candidates[best_i]},
                        scores=scores)


def _jsonable(params: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (v if isinstance(v, int | float | str | bool) or v is None else str(v))
            for k, v in params.items()}


