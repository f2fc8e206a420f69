"""Reason codes: which features pushed a transaction's score up, by how much, with their values.

Method: occlusion against a neutral reference. For each feature j, the row is scored again
with feature j set to its reference value (the training median); the contribution of j is
``score(row) - score(row with j neutralised)``. The top reasons are the k largest positive
contributions. This is faithful by construction: neutralising a stated reason moves the score
down by exactly the stated amount, whatever the model is (trees, forests, linear, a remote
endpoint), which is what an analyst reading "because amount_to_user_mean = 9.3" needs.

The cost is one scoring call over ``n * F`` rows (F = number of features), built as a single
stacked matrix, so it is meant for the rows that get an action, not every transaction.

>>> import numpy as np
>>> score = lambda x: x[:, 0] * 0.5 + x[:, 1] * 0.1
>>> r = explain(score, np.array([[1.0, 1.0]]), np.zeros(2), ("a", "b"), k=2)
>>> r.names[0].tolist(), r.contributions[0].round(2).tolist()
(['a', 'b'], [0.5, 0.1])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "MIN_CONTRIBUTION",
    "OccludedScores",
    "Reasons",
    "ScoreFunction",
    "explain",
    "occlusion_contributions",
]

# Below this a "contribution" is floating-point noise (e.g. BLAS summing in another order),
# not a reason anyone should read.
MIN_CONTRIBUTION = 1e-9

F64 = npt.NDArray[np.float64]
ScoreFunction = Callable[[F64], F64]
# ``f(x, reference, cols)[s, i]``: the score of row i with feature ``cols[s]`` neutralised,
# exactly as `score` would give it for that stacked row (a model-specific shortcut).
OccludedScores = Callable[[F64, F64, npt.NDArray[np.intp]], F64]


@dataclass(frozen=True, slots=True, eq=False)
class Reasons:
    """Top-k reasons per row: ``names[i, r]`` is row i's r-th reason ("" when it has fewer).

    `values` holds the feature's actual value and `contributions` how much it raised the
    score (> 0; NaN where there is no reason).
    """

    names: npt.NDArray[np.object_]
    values: F64
    contributions: F64

    def __len__(self) -> int:
        return int(self.names.shape[0])

    def row(self, i: int) -> list[dict[str, Any]]:
        """Row i's reasons as plain dicts (for decision records and alerts)."""
        return [
            {"feature": str(n), "value": float(v), "contribution": float(c)}
            for n, v, c in zip(self.names[i], self.values[i], self.contributions[i], strict=True)
            if n
        ]


def occlusion_contributions(score: ScoreFunction, x: F64, reference: F64,
                            base: F64 | None = None,
                            occluded: OccludedScores | None = None) -> F64:
    """``(n, F)`` matrix: how much each feature's value raised each row's score.

    Features already equal to their reference contribute exactly 0 (not re-scored).
    `occluded`, when given, computes the occluded scores instead of `score` over the
    stacked ``n * F`` rows; it must return the very same numbers, only faster.
    """
    n, f = x.shape
    if base is None:
        base = score(x)
    out = np.zeros((n, f), dtype=np.float64)
    if n == 0:
        return out
    differs = ~np.isclose(x, reference[None, :], rtol=0.0, atol=0.0, equal_nan=True)
    cols = np.flatnonzero(differs.any(axis=0))
    if cols.size == 0:
        return out
    if occluded is not None:
        scores = occluded(x, reference, cols)
    else:
        stacked = np.repeat(x[None, :, :], cols.size, axis=0)
        for slot, j in enumerate(cols):
            stacked[slot, :, j] = reference[j]
        scores = score(stacked.reshape(cols.size * n, f)).reshape(cols.size, n)
    out[:, cols] = base[None, :].T - scores.T
    out[~differs] = 0.0
    return out


def explain(score: ScoreFunction, x: F64, reference: F64 | Sequence[float],
            names: Sequence[str], *, k: int = 3, base: F64 | None = None,
            occluded: OccludedScores | None = None) -> Reasons:
    """The top-`k` reasons of every row of `x` (see the module docstring for the method)."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    ref = np.asarray(reference, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != len(names) or ref.shape != (len(names),):
        raise ValueError(f"explain: x is {x.shape}, expected (n, {len(names)})")
    if k < 1:
        raise ValueError(f"explain: k must be >= 1, got {k}")
    n, f = x.shape
    k_eff = min(k, f)
    contrib = occlusion_contributions(score, x, ref, base, occluded)
    # Stable order: larger contribution first, then feature order (so ties are reproducible).
    order = np.argsort(-contrib, axis=1, kind="stable")[:, :k_eff]
    rows = np.arange(n)[:, None]
    top = contrib[rows, order]
    positive = top > MIN_CONTRIBUTION
    label = np.asarray(names, dtype=object)
    out_names = np.full((n, k), "", dtype=object)
    out_values = np.full((n, k), np.nan)
    out_contrib = np.full((n, k), np.nan)
    out_names[:, :k_eff] = np.where(positive, label[order], "")
    out_values[:, :k_eff] = np.where(positive, x[rows, order], np.nan)
    out_contrib[:, :k_eff] = np.where(positive, top, np.nan)
    return Reasons(out_names, out_values, out_contrib)
