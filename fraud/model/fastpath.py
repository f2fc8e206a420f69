"""A compiled scoring path for HistGradientBoosting: all trees flattened, one numba loop.

scikit-learn's ``predict_proba`` walks its trees one Python call per tree, so a batch of 500
rows costs about 150 calls plus input validation: milliseconds that the stream budget does
not have. The fitted trees are plain arrays (feature, threshold, missing-value direction,
children, leaf value), so they are copied once into flat arrays and walked by a numba kernel
that follows exactly sklearn's rule (NaN goes the learned way; else ``x <= threshold`` goes
left). At load, `compile_hgb` checks the compiled path against ``predict_proba`` on probe
rows and refuses (returns None, so the scorer keeps sklearn's path) if they differ at all
beyond rounding; models with categorical splits are not compiled.

`predict_flat_reference` is the plain NumPy version of the kernel, for the property test.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
import numpy.typing as npt

from fraud.logs import get_logger

__all__ = ["FlatForest", "compile_hgb", "predict_flat_reference"]

F64 = npt.NDArray[np.float64]
log = get_logger(__name__)


@dataclass(frozen=True, slots=True, eq=False)
class FlatForest:
    """Every tree's nodes in one set of arrays; `roots[t]` is tree t's first node."""

    feature: npt.NDArray[np.int64]
    threshold: F64
    missing_left: npt.NDArray[np.bool_]
    left: npt.NDArray[np.int64]
    right: npt.NDArray[np.int64]
    is_leaf: npt.NDArray[np.bool_]
    value: F64
    roots: npt.NDArray[np.int64]
    baseline: float
    n_features: int

    def predict_proba1(self, x: F64) -> F64:
        """P(fraud) per row of `x` (float64, C-contiguous, ``(n, n_features)``)."""
        raw = _raw_kernel(x, self.feature, self.threshold, self.missing_left, self.left,
                          self.right, self.is_leaf, self.value, self.roots, self.baseline)
        out: F64 = 1.0 / (1.0 + np.exp(-raw))
        return out


@numba.njit(cache=True, nogil=True)
def _raw_kernel(x: F64, feature: Any, threshold: Any, missing_left: Any, left: Any,
                right: Any, is_leaf: Any, value: Any, roots: Any,
                baseline: float) -> F64:  # pragma: no cover - compiled
    n = x.shape[0]
    out = np.full(n, baseline)
    for i in range(n):
        total = baseline
        for t in range(roots.shape[0]):
            node = roots[t]
            while not is_leaf[node]:
                v = x[i, feature[node]]
                if np.isnan(v):
                    node = left[node] if missing_left[node] else right[node]
                elif v <= threshold[node]:
                    node = left[node]
                else:
                    node = right[node]
            total += value[node]
        out[i] = total
    return out


def predict_flat_reference(forest: FlatForest, x: F64) -> F64:
    """The kernel in plain Python/NumPy (slow; for tests)."""
    raw = np.full(x.shape[0], forest.baseline)
    for i in range(x.shape[0]):
        for root in forest.roots:
            node = int(root)
            while not forest.is_leaf[node]:
                v = x[i, forest.feature[node]]
                if np.isnan(v):
                    go_left = bool(forest.missing_left[node])
                else:
                    go_left = bool(v <= forest.threshold[node])
                node = int(forest.left[node] if go_left else forest.right[node])
            raw[i] += forest.value[node]
    out: F64 = 1.0 / (1.0 + np.exp(-raw))
    return out


def _flatten(model: Any) -> FlatForest | None:
    predictors = getattr(model, "_predictors", None)
    baseline = np.asarray(getattr(model, "_baseline_prediction", np.nan), dtype=np.float64)
    if (not predictors or baseline.size != 1 or any(len(it) != 1 for it in predictors)
            or list(getattr(model, "classes_", [])) != [0, 1]):
        return None
    parts, roots, offset = [], [], 0
    for (tree,) in predictors:
        nodes = tree.nodes
        if np.any(nodes["is_categorical"]):
            return None
        parts.append((nodes, offset))
        roots.append(offset)
        offset += len(nodes)
    cat = np.concatenate
    return FlatForest(
        feature=cat([p["feature_idx"] for p, _ in parts]).astype(np.int64),
        threshold=cat([p["num_threshold"] for p, _ in parts]).astype(np.float64),
        missing_left=cat([p["missing_go_to_left"] for p, _ in parts]).astype(bool),
        left=cat([p["left"].astype(np.int64) + o for p, o in parts]),
        right=cat([p["right"].astype(np.int64) + o for p, o in parts]),
        is_leaf=cat([p["is_leaf"] for p, _ in parts]).astype(bool),
        value=cat([p["value"] for p, _ in parts]).astype(np.float64),
        roots=np.asarray(roots, dtype=np.int64),
        baseline=float(baseline.ravel()[0]),
        n_features=int(model.n_features_in_),
    )


def compile_hgb(model: Any, probe: F64) -> FlatForest | None:
    """A `FlatForest` for a binary HistGradientBoostingClassifier that agrees with its
    ``predict_proba`` on `probe` (plus NaN rows), else None."""
    try:
        forest = _flatten(model)
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        log.warning("fastpath_unavailable", error=str(exc))
        return None
    if forest is None:
        return None
    rows = np.ascontiguousarray(np.vstack([probe, np.full((1, forest.n_features), np.nan)]),
                                dtype=np.float64)
    expected = model.predict_proba(rows)[:, 1]
    got = forest.predict_proba1(rows)
    if not np.allclose(got, expected, rtol=1e-9, atol=1e-12):
        log.warning("fastpath_disagrees", max_diff=float(np.max(np.abs(got - expected))))
        return None
    return forest
