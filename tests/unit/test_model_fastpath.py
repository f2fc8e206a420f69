"""The compiled tree walk: the parallel walk and the occlusion shortcut give the same bits.

Replay's output must not depend on how many threads scored it or on how reasons were
computed, so these compare exactly (bit patterns), not approximately.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fraud.model.fastpath import FlatForest, predict_flat_reference
from fraud.model.reasons import explain, occlusion_contributions
from fraud.model.scorer import LocalScorer

ROOT = Path(__file__).resolve().parents[2]
F64 = npt.NDArray[np.float64]


@pytest.fixture(scope="module")
def scorer() -> LocalScorer:
    scorer = LocalScorer.load(ROOT / "models" / "default")
    assert scorer.compiled
    return scorer


def _forest(scorer: LocalScorer) -> FlatForest:
    forest = scorer._fast
    assert forest is not None
    return forest


def _rows(scorer: LocalScorer, seed: int, n: int, *, fortran: bool) -> F64:
    """Rows around the model's reference values, with NaNs and exact reference values."""
    rng = np.random.default_rng(seed)
    ref = scorer.reference
    x = ref + (np.abs(ref) + 1.0) * rng.normal(scale=0.7, size=(n, len(ref)))
    x[rng.random(x.shape) < 0.1] = np.nan
    at_ref = rng.random(x.shape) < 0.1
    x[at_ref] = np.broadcast_to(ref, x.shape)[at_ref]
    return np.asfortranarray(x) if fortran else np.ascontiguousarray(x)


def _same_bits(a: F64, b: F64) -> bool:
    return a.shape == b.shape and bool(np.array_equal(a.view(np.int64), b.view(np.int64)))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(1, 3000), fortran=st.booleans())
def test_parallel_walk_is_the_serial_walk(scorer: LocalScorer, seed: int, n: int,
                                          fortran: bool) -> None:
    forest = _forest(scorer)
    x = _rows(scorer, seed, n, fortran=fortran)
    serial = forest.predict_proba1(x, parallel=False)
    assert _same_bits(forest.predict_proba1(x, parallel=True), serial)
    assert _same_bits(forest.predict_proba1(np.ascontiguousarray(x), parallel=False), serial)


def test_walk_matches_the_plain_reference_exactly(scorer: LocalScorer) -> None:
    forest = _forest(scorer)
    x = _rows(scorer, 11, 40, fortran=True)
    assert _same_bits(forest.predict_proba1(x), predict_flat_reference(forest, x))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(1, 300), fortran=st.booleans(),
       parallel=st.booleans())
def test_occlusion_shortcut_is_the_stacked_walk(scorer: LocalScorer, seed: int, n: int,
                                                fortran: bool, parallel: bool) -> None:
    forest = _forest(scorer)
    x = _rows(scorer, seed, n, fortran=fortran)
    ref = scorer.reference
    cols = np.flatnonzero(np.random.default_rng(seed).random(len(ref)) < 0.6)
    stacked = np.repeat(np.ascontiguousarray(x)[None, :, :], len(cols), axis=0)
    for slot, j in enumerate(cols):
        stacked[slot, :, j] = ref[j]
    expected = forest.predict_proba1(stacked.reshape(-1, x.shape[1]), parallel=False)
    got = forest.occluded_proba1(x, ref, cols, parallel=parallel)
    assert _same_bits(got.reshape(-1), expected)


def test_scorer_reasons_equal_the_generic_occlusion(scorer: LocalScorer) -> None:
    x = _rows(scorer, 5, 500, fortran=True)
    generic = occlusion_contributions(scorer.score, x, scorer.reference)
    fast = occlusion_contributions(scorer.score, x, scorer.reference,
                                   occluded=scorer._occluded)
    assert _same_bits(fast, generic)
    reasons = scorer.explain(x)
    plain = explain(scorer.score, x, scorer.reference, scorer.feature_names)
    assert (reasons.names == plain.names).all()
    assert _same_bits(np.nan_to_num(reasons.contributions, nan=-1.0),
                      np.nan_to_num(plain.contributions, nan=-1.0))
    assert (reasons.names[:, 0] != "").any()


def test_concurrent_callers_get_their_own_answers(scorer: LocalScorer) -> None:
    """Two threads launching the parallel walk at once (the lock makes them take turns)."""
    forest = _forest(scorer)
    inputs = [_rows(scorer, seed, 20_000, fortran=True) for seed in (1, 2)]
    expected = [forest.predict_proba1(x, parallel=False) for x in inputs]
    got: list[F64 | None] = [None, None]

    def work(k: int) -> None:
        for _ in range(3):
            got[k] = forest.predict_proba1(inputs[k], parallel=True)

    threads = [threading.Thread(target=work, args=(k,)) for k in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k in (0, 1):
        result = got[k]
        assert result is not None and _same_bits(result, expected[k])
