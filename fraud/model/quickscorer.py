"""A forest walked split by split over blocks of rows (QuickScorer's bit vectors, row-vectorised).

Why: walking a tree is a chain of dependent loads and data-dependent branches (node ->
feature -> value -> compare -> child), ~20 ns per tree per row whatever the layout, and a
branch-free walk is slower still (the chain gets longer). QuickScorer (Lucchese et al.,
SIGIR 2015) turns scoring into independent work: number each tree's leaves left to right;
a split that sends a row right rules out the leaves of its left subtree, which is one AND of
a bit mask into the tree's leaf set. Whatever order the splits are applied in, each tree's
exit leaf is then the lowest bit still set. Here every split is applied to a block of rows
at once (``alive[tree, r] &= go_right ? mask : all-ones``, a branch-free loop over r that
the compiler vectorises), so a row costs a few SIMD lanes per split instead of a walk.
Leaf values are then summed in tree order, exactly as the tree walk sums them: the same
leaves, the same additions, the same bits. On the old 150-tree default model this is ~0.35
instead of ~2.7 CPU µs per row (scripts/bench_scoring.py).

NaN follows scikit-learn's rule: a split sends a missing value the learned way. For a split
whose missing values go right the test is ``not x <= threshold`` (true for NaN); otherwise
``x > threshold`` (false for NaN); both equal sklearn's ``x <= threshold`` goes left for
every other value, infinities included. Trees with more than 64 leaves do not fit a mask:
`build_bitforest` returns None and `fraud.model.fastpath` keeps its tree walk.

>>> import numpy as np
>>> # one stump: x0 <= 1.5 -> leaf 1 (value -1), else leaf 2 (value +1); NaN goes right
>>> bits = build_bitforest(feature=np.array([0, 0, 0]), threshold=np.array([1.5, 0, 0]),
...     missing_left=np.array([False, False, False]), left=np.array([1, 0, 0]),
...     right=np.array([2, 0, 0]), is_leaf=np.array([False, True, True]),
...     value=np.array([0.0, -1.0, 1.0]), roots=np.array([0]), baseline=0.5, n_features=1)
>>> bits.raw(np.array([[1.0], [2.0], [np.nan]]), parallel=False).tolist()
[-0.5, 1.5, 1.5]
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
import numpy.typing as npt

__all__ = ["BLOCK_ROWS", "MAX_LEAVES", "PARALLEL_LOCK", "BitForest", "build_bitforest"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

# Leaves per tree that fit one uint64 mask.
MAX_LEAVES = 64
# Rows per block: enough lanes for the vector loop to pay, few enough that a block's
# values and leaf sets stay in L2 (100-tree default, CPU µs per row with blocks of 128 rows:
# 0.29, 256: 0.25, 512: 0.24, 1024: 0.23; a batch of 500 is one block).
BLOCK_ROWS = 512
# De Bruijn sequence for the index of a word's lowest set bit: (w & -w) * B >> 58 is unique
# for each of the 64 single-bit words, and `_LOWEST_BIT` maps it back to the bit index.
_DE_BRUIJN = 0x03F7_9D71_B4CB_0A89
_LOWEST_BIT = np.zeros(64, dtype=np.int64)
for _i in range(64):
    _LOWEST_BIT[((1 << _i) * _DE_BRUIJN & 0xFFFF_FFFF_FFFF_FFFF) >> 58] = _i
del _i
# numba's workqueue threading layer aborts on concurrent parallel launches from two threads:
# every parallel kernel of fraud.model takes this one lock, so callers take turns.
PARALLEL_LOCK = threading.Lock()


@dataclass(frozen=True, slots=True, eq=False)
class _Splits:
    """One group of splits: feature, threshold, tree and the mask applied when the test
    sends the row right."""

    feature: I64
    threshold: F64
    tree: I64
    mask: npt.NDArray[Any]


@dataclass(frozen=True, slots=True, eq=False)
class BitForest:
    """The splits regrouped for the bit-vector walk (see the module docstring).

    `nan_left` splits send NaN left (test ``x > threshold``), `nan_right` ones send it right
    (test ``not x <= threshold``). Masks are the narrowest unsigned type that holds the
    widest tree. ``leaf_value[t * width + b]`` is tree t's b-th leaf from the left.
    """

    nan_left: _Splits
    nan_right: _Splits
    leaf_value: F64
    width: int
    trees: int
    baseline: float
    n_features: int

    def raw(self, x: F64, *, parallel: bool) -> F64:
        """Raw scores (baseline plus leaf values, before the sigmoid) per row of `x`
        (float64 ``(n, n_features)``, C- or F-contiguous)."""
        a, b = self.nan_left, self.nan_right
        full = a.mask.dtype.type(np.iinfo(a.mask.dtype).max)
        block = min(BLOCK_ROWS, max(8, -(-x.shape[0] // 8) * 8))
        args = (a.feature, a.threshold, a.tree, a.mask, b.feature, b.threshold, b.tree,
                b.mask, full, self.leaf_value, self.width, self.trees, self.baseline,
                _LOWEST_BIT, block)
        if parallel:
            with PARALLEL_LOCK:
                out: F64 = _bits_kernel_parallel(x, *args)
            return out
        out = _bits_kernel(x, *args)
        return out


def _mask_type(width: int) -> type[np.unsignedinteger[Any]]:
    for dtype in (np.uint8, np.uint16, np.uint32):
        if width <= np.iinfo(dtype).bits:
            return dtype
    return np.uint64


def build_bitforest(*, feature: npt.ArrayLike, threshold: npt.ArrayLike,
                    missing_left: npt.ArrayLike, left: npt.ArrayLike, right: npt.ArrayLike,
                    is_leaf: npt.ArrayLike, value: npt.ArrayLike, roots: npt.ArrayLike,
                    baseline: float, n_features: int) -> BitForest | None:
    """The `BitForest` of flattened trees (global node indices, as in `FlatForest`), or
    None when a tree has more than `MAX_LEAVES` leaves."""
    feat = np.asarray(feature, dtype=np.int64)
    thr = np.asarray(threshold, dtype=np.float64)
    mleft = np.asarray(missing_left, dtype=bool)
    lft = np.asarray(left, dtype=np.int64)
    rgt = np.asarray(right, dtype=np.int64)
    leaf = np.asarray(is_leaf, dtype=bool)
    val = np.asarray(value, dtype=np.float64)
    splits: list[tuple[int, float, int, int, bool]] = []
    leaves: list[list[float]] = []
    for t, root in enumerate(np.asarray(roots, dtype=np.int64)):
        tree_leaves: list[float] = []
        # Iterative in-order walk: a split's left subtree is the leaves numbered from its
        # entry up to the moment its right subtree begins.
        stack: list[tuple[int, bool]] = [(int(root), False)]
        entered: dict[int, int] = {}
        while stack:
            node, left_done = stack.pop()
            if leaf[node]:
                tree_leaves.append(float(val[node]))
            elif not left_done:
                entered[node] = len(tree_leaves)
                stack.append((node, True))
                stack.append((int(lft[node]), False))
            else:
                first, past = entered.pop(node), len(tree_leaves)
                if past > MAX_LEAVES:
                    return None
                ruled_out = ((1 << (past - first)) - 1) << first
                splits.append((int(feat[node]), float(thr[node]), t, ruled_out,
                               bool(mleft[node])))
                stack.append((int(rgt[node]), False))
        if len(tree_leaves) > MAX_LEAVES:
            return None
        leaves.append(tree_leaves)
    width = max((len(v) for v in leaves), default=1)
    dtype = _mask_type(width)
    all_ones = (1 << np.iinfo(dtype).bits) - 1
    table = np.zeros(len(leaves) * width)
    for t, tree_leaves in enumerate(leaves):
        table[t * width:t * width + len(tree_leaves)] = tree_leaves
    # By feature then threshold, so a block's values for one feature stay in cache.
    splits.sort(key=lambda s: (s[0], s[1]))

    def group(rows: list[tuple[int, float, int, int, bool]]) -> _Splits:
        return _Splits(feature=np.asarray([s[0] for s in rows], dtype=np.int64),
                       threshold=np.asarray([s[1] for s in rows], dtype=np.float64),
                       tree=np.asarray([s[2] for s in rows], dtype=np.int64),
                       mask=np.asarray([~s[3] & all_ones for s in rows], dtype=dtype))

    return BitForest(nan_left=group([s for s in splits if s[4]]),
                     nan_right=group([s for s in splits if not s[4]]),
                     leaf_value=table, width=width, trees=len(leaves),
                     baseline=float(baseline), n_features=int(n_features))


@numba.njit(cache=True, nogil=True)
def _score_block(x: F64, lo: int, hi: int, buf: Any, alive: Any, total: Any,
                 l_feature: Any, l_threshold: Any, l_tree: Any, l_mask: Any,
                 r_feature: Any, r_threshold: Any, r_tree: Any, r_mask: Any, full: Any,
                 leaf_value: Any, width: int, trees: int, baseline: float, lowest_bit: Any,
                 out: F64) -> None:  # pragma: no cover - compiled
    lanes = buf.shape[1]
    m = hi - lo
    # The block column by column (lane r is row lo + r); spare lanes hold NaN, unused.
    for j in range(buf.shape[0]):
        for r in range(m):
            buf[j, r] = x[lo + r, j]
        for r in range(m, lanes):
            buf[j, r] = np.nan
    alive[:, :] = full
    for k in range(l_threshold.shape[0]):
        j, th, t, mk = l_feature[k], l_threshold[k], l_tree[k], l_mask[k]
        for r in range(lanes):
            alive[t, r] &= mk if buf[j, r] > th else full
    for k in range(r_threshold.shape[0]):
        j, th, t, mk = r_feature[k], r_threshold[k], r_tree[k], r_mask[k]
        for r in range(lanes):
            alive[t, r] &= full if buf[j, r] <= th else mk
    debruijn = np.uint64(_DE_BRUIJN)
    shift = np.uint64(58)
    one = np.uint64(1)
    for r in range(m):
        total[r] = baseline
    # Tree order, as the tree walk and sklearn add them.
    for t in range(trees):
        for r in range(m):
            w = np.uint64(alive[t, r])
            low = w & (~w + one)
            total[r] += leaf_value[t * width + lowest_bit[(low * debruijn) >> shift]]
    for r in range(m):
        out[lo + r] = total[r]


@numba.njit(cache=True, nogil=True)
def _bits_kernel(x: F64, l_feature: Any, l_threshold: Any, l_tree: Any, l_mask: Any,
                 r_feature: Any, r_threshold: Any, r_tree: Any, r_mask: Any, full: Any,
                 leaf_value: Any, width: int, trees: int, baseline: float, lowest_bit: Any,
                 block: int) -> F64:  # pragma: no cover - compiled
    n, f = x.shape
    out = np.empty(n)
    buf = np.empty((f, block))
    alive = np.empty((trees, block), dtype=l_mask.dtype)
    total = np.empty(block)
    for lo in range(0, n, block):
        _score_block(x, lo, min(n, lo + block), buf, alive, total, l_feature, l_threshold,
                     l_tree, l_mask, r_feature, r_threshold, r_tree, r_mask, full,
                     leaf_value, width, trees, baseline, lowest_bit, out)
    return out


@numba.njit(cache=True, nogil=True, parallel=True)
def _bits_kernel_parallel(x: F64, l_feature: Any, l_threshold: Any, l_tree: Any,
                          l_mask: Any, r_feature: Any, r_threshold: Any, r_tree: Any,
                          r_mask: Any, full: Any, leaf_value: Any, width: int, trees: int,
                          baseline: float, lowest_bit: Any,
                          block: int) -> F64:  # pragma: no cover - compiled
    n, f = x.shape
    out = np.empty(n)
    blocks = (n + block - 1) // block
    for b in numba.prange(blocks):
        lo = b * block
        buf = np.empty((f, block))
        alive = np.empty((trees, block), dtype=l_mask.dtype)
        total = np.empty(block)
        _score_block(x, lo, min(n, lo + block), buf, alive, total, l_feature, l_threshold,
                     l_tree, l_mask, r_feature, r_threshold, r_tree, r_mask, full,
                     leaf_value, width, trees, baseline, lowest_bit, out)
    return out
