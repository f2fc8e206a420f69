"""A compiled scoring path for HistGradientBoosting: all trees flattened, one numba loop.

scikit-learn's ``predict_proba`` walks its trees one Python call per tree, so a batch of 500
rows costs about 150 calls plus input validation: milliseconds that the stream budget does
not have. The fitted trees are plain arrays (feature, threshold, missing-value direction,
children, leaf value), so they are copied once into flat arrays and walked by a numba kernel
that follows exactly sklearn's rule (NaN goes the learned way; else ``x <= threshold`` goes
left). Scores come from the same splits regrouped for `fraud.model.quickscorer` (split by
split over blocks of rows; bit-identical to the walk and ~8x cheaper); the walk here stays
for forests that cannot be regrouped (trees over 64 leaves) and for the occlusion shortcut,
which needs each tree's path. At load, `compile_hgb` checks the compiled path against
``predict_proba`` on probe rows and refuses (returns None, so the scorer keeps sklearn's
path) if they differ at all beyond rounding; models with categorical splits are not
compiled.

`predict_flat_reference` is the plain NumPy version of the kernel, for the property test.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numba
import numpy as np
import numpy.typing as npt

from fraud.logs import get_logger
from fraud.model.quickscorer import PARALLEL_LOCK, BitForest, build_bitforest

__all__ = ["BLOCK_ROWS", "PARALLEL_ROWS", "FlatForest", "compile_hgb", "predict_flat_reference"]

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
    # What the kernels walk: ``kids[2 * node + go_right]`` is the next node (-1 below a
    # leaf), so a step is one load instead of a branch between two arrays, and int32
    # indices halve the bytes a walk pulls through the cache.
    kids: npt.NDArray[np.int32] = field(init=False, repr=False)
    feature32: npt.NDArray[np.int32] = field(init=False, repr=False)
    # The splits regrouped for the bit-vector walk (None: a tree has too many leaves).
    bits: BitForest | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        kids = np.empty(2 * len(self.feature), dtype=np.int32)
        kids[0::2] = np.where(self.is_leaf, -1, self.left)
        kids[1::2] = np.where(self.is_leaf, -1, self.right)
        object.__setattr__(self, "kids", kids)
        object.__setattr__(self, "feature32",
                           np.where(self.is_leaf, 0, self.feature).astype(np.int32))
        object.__setattr__(self, "bits", build_bitforest(
            feature=self.feature, threshold=self.threshold, missing_left=self.missing_left,
            left=self.left, right=self.right, is_leaf=self.is_leaf, value=self.value,
            roots=self.roots, baseline=self.baseline, n_features=self.n_features))

    def predict_proba1(self, x: F64, *, parallel: bool | None = None) -> F64:
        """P(fraud) per row of `x` (float64 ``(n, n_features)``, C- or F-contiguous).

        `parallel` walks blocks of rows on all numba threads; None means "when the batch is
        large enough to pay for it" (`PARALLEL_ROWS`). Either way every row sums its trees in
        the same order, so the scores are bit-identical to the serial walk.
        """
        if parallel is None:
            parallel = x.shape[0] >= PARALLEL_ROWS
        raw = (self.bits.raw(x, parallel=parallel) if self.bits is not None
               else self.walk_raw(x, parallel=parallel))
        out: F64 = 1.0 / (1.0 + np.exp(-raw))
        return out

    def walk_raw(self, x: F64, *, parallel: bool) -> F64:
        """Raw scores by walking each tree (the path used when `bits` is None; tests
        compare the two)."""
        args = (self.feature32, self.threshold, self.missing_left, self.kids, self.value,
                self.roots, self.baseline)
        if parallel:
            # The workqueue threading layer aborts on concurrent launches from two threads;
            # one lock per process makes concurrent callers take turns instead.
            with _PARALLEL_LOCK:
                raw: F64 = _raw_kernel_parallel(x, *args, BLOCK_ROWS)
            return raw
        raw = _raw_kernel(x, *args)
        return raw

    def occluded_proba1(self, x: F64, reference: F64, cols: npt.NDArray[np.intp], *,
                        parallel: bool | None = None) -> F64:
        """``out[s, i]``: P(fraud) of row i of `x` with feature ``cols[s]`` set to
        ``reference[cols[s]]`` (what `fraud.model.reasons` needs for occlusion).

        Bit-identical to `predict_proba1` over the stacked occluded rows, at a fraction of
        the cost: each row is walked once, remembering each tree's leaf and which features
        its path tested; for an occluded feature only the trees whose path tested it are
        walked again (the others reach the same leaf), and the leaves are summed in tree
        order as always, so every sum is the same sequence of additions.
        """
        n = x.shape[0]
        if parallel is None:
            parallel = n * len(cols) >= PARALLEL_ROWS
        args = (np.asarray(reference, dtype=np.float64), np.asarray(cols, dtype=np.int64),
                self.feature32, self.threshold, self.missing_left, self.kids, self.value,
                self.roots, self.baseline)
        if parallel:
            with _PARALLEL_LOCK:
                raw = _occluded_kernel_parallel(x, *args)
        else:
            raw = _occluded_kernel(x, *args)
        out: F64 = 1.0 / (1.0 + np.exp(-raw))
        return out


# Rows per block of the parallel walk: a block's features are gathered into a small
# row-major buffer first (the engine's matrices are column-major), and blocks are what the
# threads share out.
BLOCK_ROWS = 512
# Below this many rows the serial walk wins: starting the threads costs more than the work.
PARALLEL_ROWS = 8_192
_PARALLEL_LOCK = PARALLEL_LOCK


@numba.njit(cache=True, nogil=True)
def _walk(xrow: Any, feature: Any, threshold: Any, missing_left: Any, kids: Any, value: Any,
          roots: Any, baseline: float) -> float:  # pragma: no cover - compiled
    # The trees are summed in order, exactly as the reference does: same leaves, same sum.
    total = baseline
    for t in range(roots.shape[0]):
        node = roots[t]
        while kids[2 * node] >= 0:
            v = xrow[feature[node]]
            # NaN compares false, so it goes right unless the split sends missing values left.
            go_right = (v > threshold[node]) or (np.isnan(v) and not missing_left[node])
            node = kids[2 * node + int(go_right)]
        total += value[node]
    return total


@numba.njit(cache=True, nogil=True)
def _raw_kernel(x: F64, feature: Any, threshold: Any, missing_left: Any, kids: Any,
                value: Any, roots: Any, baseline: float) -> F64:  # pragma: no cover - compiled
    n, f = x.shape
    out = np.empty(n)
    row = np.empty(f)
    for i in range(n):
        for j in range(f):
            row[j] = x[i, j]
        out[i] = _walk(row, feature, threshold, missing_left, kids, value, roots, baseline)
    return out


@numba.njit(cache=True, nogil=True, parallel=True)
def _raw_kernel_parallel(x: F64, feature: Any, threshold: Any, missing_left: Any, kids: Any,
                         value: Any, roots: Any, baseline: float,
                         block: int) -> F64:  # pragma: no cover - compiled
    n, f = x.shape
    out = np.empty(n)
    blocks = (n + block - 1) // block
    for b in numba.prange(blocks):
        lo = b * block
        hi = min(n, lo + block)
        # Gather the block row-major first: the engine's matrices are column-major.
        buf = np.empty((hi - lo, f))
        for j in range(f):
            for i in range(lo, hi):
                buf[i - lo, j] = x[i, j]
        for i in range(lo, hi):
            out[i] = _walk(buf[i - lo], feature, threshold, missing_left, kids, value, roots,
                           baseline)
    return out


@numba.njit(cache=True, nogil=True)
def _leaf(xrow: Any, node: int, feature: Any, threshold: Any, missing_left: Any,
          kids: Any) -> int:  # pragma: no cover - compiled
    while kids[2 * node] >= 0:
        v = xrow[feature[node]]
        go_right = (v > threshold[node]) or (np.isnan(v) and not missing_left[node])
        node = kids[2 * node + int(go_right)]
    return node


@numba.njit(cache=True, nogil=True)
def _occlude_row(x: F64, i: int, reference: Any, cols: Any, feature: Any, threshold: Any,
                 missing_left: Any, kids: Any, value: Any, roots: Any, baseline: float,
                 out: F64) -> None:  # pragma: no cover - compiled
    f = x.shape[1]
    trees = roots.shape[0]
    row = np.empty(f)
    for j in range(f):
        row[j] = x[i, j]
    leaf = np.empty(trees)
    tested = np.zeros((trees, f), dtype=np.bool_)
    for t in range(trees):
        node = roots[t]
        while kids[2 * node] >= 0:
            tested[t, feature[node]] = True
            v = row[feature[node]]
            go_right = (v > threshold[node]) or (np.isnan(v) and not missing_left[node])
            node = kids[2 * node + int(go_right)]
        leaf[t] = value[node]
    for s in range(cols.shape[0]):
        j = cols[s]
        kept = row[j]
        row[j] = reference[j]
        total = baseline
        for t in range(trees):
            if tested[t, j]:
                total += value[_leaf(row, roots[t], feature, threshold, missing_left, kids)]
            else:
                total += leaf[t]
        out[s, i] = total
        row[j] = kept


@numba.njit(cache=True, nogil=True)
def _occluded_kernel(x: F64, reference: Any, cols: Any, feature: Any, threshold: Any,
                     missing_left: Any, kids: Any, value: Any, roots: Any,
                     baseline: float) -> F64:  # pragma: no cover - compiled
    out = np.empty((cols.shape[0], x.shape[0]))
    for i in range(x.shape[0]):
        _occlude_row(x, i, reference, cols, feature, threshold, missing_left, kids, value,
                     roots, baseline, out)
    return out


@numba.njit(cache=True, nogil=True, parallel=True)
def _occluded_kernel_parallel(x: F64, reference: Any, cols: Any, feature: Any,
                              threshold: Any, missing_left: Any, kids: Any, value: Any,
                              roots: Any, baseline: float) -> F64:  # pragma: no cover
    out = np.empty((cols.shape[0], x.shape[0]))
    for i in numba.prange(x.shape[0]):
        _occlude_row(x, i, reference, cols, feature, threshold, missing_left, kids, value,
                     roots, baseline, out)
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
