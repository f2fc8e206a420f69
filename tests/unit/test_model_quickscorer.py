"""The bit-vector walk (`fraud.model.quickscorer`) gives the tree walk's scores, bit for bit.

Replay output must not change with how the trees are walked, so these compare bit patterns,
on forests of different shapes (stumps up to 64-leaf trees), rows with NaN, infinities and
values exactly on a split threshold (``x <= threshold`` goes left).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fraud.model.fastpath import FlatForest, compile_hgb, predict_flat_reference
from fraud.model.quickscorer import MAX_LEAVES, build_bitforest

F64 = npt.NDArray[np.float64]


def _same_bits(a: F64, b: F64) -> bool:
    return a.shape == b.shape and bool(np.array_equal(a.view(np.int64), b.view(np.int64)))


def _fit(leaves: int, iters: int, seed: int, nan_share: float) -> tuple[Any, F64]:
    from sklearn.ensemble import HistGradientBoostingClassifier

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(3000, 6))
    y = ((x[:, 0] + x[:, 1] * x[:, 2] + rng.normal(scale=0.5, size=3000)) > 1.2).astype(int)
    x[rng.random(x.shape) < nan_share] = np.nan
    model = HistGradientBoostingClassifier(max_iter=iters, max_leaf_nodes=leaves,
                                           min_samples_leaf=5, early_stopping=False,
                                           random_state=seed).fit(x, y)
    return model, x


@pytest.fixture(scope="module", params=[(2, 30), (15, 40), (64, 10)],
                ids=["stumps", "15-leaves", "64-leaves"])
def fitted(request: pytest.FixtureRequest) -> tuple[Any, FlatForest, F64]:
    leaves, iters = request.param
    model, x = _fit(leaves, iters, seed=leaves, nan_share=0.1)
    forest = compile_hgb(model, x[:200])
    assert forest is not None and forest.bits is not None
    return model, forest, x


def _rows(x: F64, forest: FlatForest, seed: int, n: int, fortran: bool) -> F64:
    """Rows drawn around the training rows, with NaN, +-inf and exact split thresholds."""
    rng = np.random.default_rng(seed)
    rows = x[rng.integers(0, x.shape[0], n)] + rng.normal(scale=0.3, size=(n, x.shape[1]))
    split = ~forest.is_leaf
    cells = rng.random(rows.shape)
    on_threshold = cells < 0.15
    picks = rng.integers(0, int(split.sum()), rows.shape)
    thresholds, features = forest.threshold[split], forest.feature[split]
    # A cell on a threshold: take a split of that column when there is one.
    for j in range(rows.shape[1]):
        own = thresholds[features == j]
        if own.size:
            col = on_threshold[:, j]
            rows[col, j] = own[picks[col, j] % own.size]
    rows[(cells > 0.15) & (cells < 0.25)] = np.nan
    rows[(cells > 0.25) & (cells < 0.27)] = np.inf
    rows[(cells > 0.27) & (cells < 0.29)] = -np.inf
    return np.asfortranarray(rows) if fortran else np.ascontiguousarray(rows)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(1, 1500), fortran=st.booleans(),
       parallel=st.booleans())
def test_bit_walk_is_the_tree_walk(fitted: tuple[Any, FlatForest, F64], seed: int, n: int,
                                   fortran: bool, parallel: bool) -> None:
    _, forest, x = fitted
    rows = _rows(x, forest, seed, n, fortran)
    assert forest.bits is not None
    walked = forest.walk_raw(rows, parallel=False)
    assert _same_bits(forest.bits.raw(rows, parallel=parallel), walked)


def test_scores_are_sklearns(fitted: tuple[Any, FlatForest, F64]) -> None:
    model, forest, x = fitted
    rows = _rows(x, forest, 3, 400, fortran=False)
    got = forest.predict_proba1(rows)
    assert np.allclose(got, model.predict_proba(rows)[:, 1], rtol=1e-12, atol=0)
    assert _same_bits(got[:60], predict_flat_reference(forest, rows[:60]))


def _stump(threshold: float, missing_left: bool) -> dict[str, Any]:
    return {"feature": np.array([0, 0, 0]), "threshold": np.array([threshold, 0.0, 0.0]),
            "missing_left": np.array([missing_left, False, False]),
            "left": np.array([1, 0, 0]), "right": np.array([2, 0, 0]),
            "is_leaf": np.array([False, True, True]), "value": np.array([0.0, -1.0, 1.0]),
            "roots": np.array([0]), "baseline": 0.0, "n_features": 1}


@pytest.mark.parametrize("missing_left", [True, False])
def test_threshold_ties_and_missing_values_follow_sklearns_rule(missing_left: bool) -> None:
    bits = build_bitforest(**_stump(1.5, missing_left))
    assert bits is not None
    x = np.array([[1.5], [np.nextafter(1.5, 2.0)], [-np.inf], [np.inf], [np.nan]])
    nan_value = -1.0 if missing_left else 1.0
    assert bits.raw(x, parallel=False).tolist() == [-1.0, 1.0, -1.0, 1.0, nan_value]


def test_a_tree_too_wide_for_a_mask_keeps_the_tree_walk() -> None:
    model, x = _fit(MAX_LEAVES + 16, 2, seed=1, nan_share=0.0)
    forest = compile_hgb(model, x[:100])
    assert forest is not None
    if max(len(t.nodes) for (t,) in model._predictors) <= 2 * MAX_LEAVES - 1:
        pytest.skip("the fit did not grow a tree wider than a mask")
    assert forest.bits is None
    rows = np.ascontiguousarray(x[:300])
    assert np.allclose(forest.predict_proba1(rows), model.predict_proba(rows)[:, 1],
                       rtol=1e-12, atol=0)
