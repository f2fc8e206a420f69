"""The local scorer and its reason codes: scores match the model, reasons are faithful."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fraud.errors import InputError, ScoreUnavailableError
from fraud.model.artifact import Manifest, load_artifact, save_artifact
from fraud.model.reasons import explain
from fraud.model.scorer import LocalScorer, correct_for_weight, score_or_unavailable
from fraud.model.synthetic import NAMES, synthetic_rows
from fraud.model.train import fit_model, predict, reference_values

ROWS = synthetic_rows(n=2000, seed=3)


@pytest.fixture(scope="module")
def scorer(tmp_path_factory: pytest.TempPathFactory) -> LocalScorer:
    path = tmp_path_factory.mktemp("artifact")
    model = fit_model(ROWS.x, ROWS.is_fraud, "hgb", {"max_iter": 40})
    manifest = Manifest(
        feature_names=NAMES, feature_engine_version="t", label_delay_days=7.0,
        algorithm="hgb", params={}, positive_weight=model.positive_weight,
        reference=reference_values(ROWS.x, NAMES), train_range=("a", "b"), test_range=None,
        counts={}, metrics={}, library_versions={}, created_at="now", model_sha256="")
    save_artifact(path, model.estimator, manifest)
    return LocalScorer(load_artifact(path, NAMES, "t"))


def test_scores_are_corrected_probabilities(scorer: LocalScorer) -> None:
    s = scorer.score(ROWS.x[:500])
    assert s.dtype == np.float64 and s.shape == (500,)
    assert np.all((s >= 0) & (s <= 1))
    raw = scorer.artifact.model.predict_proba(ROWS.x[:500])[:, 1]
    assert np.allclose(s, correct_for_weight(raw, scorer.artifact.manifest.positive_weight))
    # weighting inflates raw fraud probabilities; the correction brings the mean back near
    # the base rate of the training data
    assert scorer.artifact.manifest.positive_weight > 1
    assert abs(np.mean(scorer.score(ROWS.x)) - ROWS.is_fraud.mean()) < 0.02


def test_bad_shape_is_an_input_error(scorer: LocalScorer) -> None:
    with pytest.raises(InputError, match=r"expected \(rows, 4\)"):
        scorer.score(np.zeros((3, 5)))
    assert scorer.score(np.zeros((0, 4))).shape == (0,)


def test_correct_for_weight_inverts_odds_scaling() -> None:
    p = np.array([0.1, 0.5, 0.9])
    w = 7.0
    weighted = p * w / (p * w + (1 - p))  # odds multiplied by w
    assert np.allclose(correct_for_weight(weighted, w), p)


def test_top_reason_is_faithful(scorer: LocalScorer) -> None:
    """Neutralising a stated top reason lowers the score by the stated contribution."""
    x = ROWS.x[:300]
    reasons = scorer.explain(x, k=3)
    base = scorer.score(x)
    checked = 0
    for i in range(len(x)):
        for r in range(3):
            name = reasons.names[i, r]
            if not name:
                continue
            j = NAMES.index(name)
            assert reasons.values[i, r] == x[i, j]
            moved = x[i].copy()
            moved[j] = scorer.reference[j]
            after = scorer.score(moved[None, :])[0]
            assert after < base[i]
            assert after == pytest.approx(base[i] - reasons.contributions[i, r], abs=1e-12)
            checked += 1
        c = reasons.contributions[i]
        shown = c[~np.isnan(c)]
        assert np.all(np.diff(shown) <= 0)  # strongest first
    assert checked > 100


def test_row_at_reference_has_no_reasons(scorer: LocalScorer) -> None:
    reasons = scorer.explain(scorer.reference[None, :], k=3)
    assert reasons.row(0) == []
    assert list(reasons.names[0]) == ["", "", ""]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-5, 5).map(lambda v: round(v, 3)), min_size=3, max_size=3),
       st.lists(st.floats(-5, 5).map(lambda v: round(v, 3)), min_size=3, max_size=3))
def test_linear_model_reasons_are_exact(weights: list[float], row: list[float]) -> None:
    """For a linear score, feature j contributes w_j * (x_j - ref_j), exactly."""
    w = np.asarray(weights)
    x = np.asarray([row])
    ref = np.zeros(3)
    reasons = explain(lambda m: m @ w, x, ref, ("a", "b", "c"), k=3)
    expected = w * x[0]
    for name, contrib in zip(reasons.names[0], reasons.contributions[0], strict=True):
        if name:
            assert contrib == pytest.approx(expected["abc".index(name)])
            assert contrib > 0
    assert sum(1 for n in reasons.names[0] if n) == int(np.sum(expected > 1e-6))


def test_predict_matches_scorer(scorer: LocalScorer) -> None:
    model = fit_model(ROWS.x, ROWS.is_fraud, "hgb", {"max_iter": 40})
    assert np.allclose(predict(model, ROWS.x[:50]), scorer.score(ROWS.x[:50]))


class _Down:
    feature_names = NAMES
    version = "down"

    def score(self, x: np.ndarray) -> np.ndarray:
        raise ScoreUnavailableError("endpoint down")

    def explain(self, x: np.ndarray, k: int = 3) -> object:
        raise ScoreUnavailableError("endpoint down")


def test_unavailable_is_nan_never_a_low_score() -> None:
    scores, ok = score_or_unavailable(_Down(), np.zeros((4, 4)))  # type: ignore[arg-type]
    assert not ok
    assert np.all(np.isnan(scores)) and scores.shape == (4,)


def test_compiled_path_matches_sklearn(scorer: LocalScorer) -> None:
    assert scorer.compiled
    plain = LocalScorer(scorer.artifact, compiled=False)
    x = ROWS.x[:400].copy()
    x[::7, 1] = np.nan  # the learned missing-value direction must be followed too
    assert np.allclose(scorer.score(x), plain.score(x), rtol=1e-12, atol=1e-15)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.one_of(st.floats(-3, 6), st.just(float("nan"))), min_size=4, max_size=4))
def test_kernel_agrees_with_numpy_reference(row: list[float]) -> None:
    from fraud.model.fastpath import compile_hgb, predict_flat_reference

    forest = compile_hgb(_SMALL.estimator, ROWS.x[:20])
    assert forest is not None
    x = np.asarray([row])
    expected = _SMALL.estimator.predict_proba(x)[:, 1]
    assert forest.predict_proba1(x) == pytest.approx(predict_flat_reference(forest, x))
    assert forest.predict_proba1(x) == pytest.approx(expected, rel=1e-9)


def test_other_models_are_not_compiled() -> None:
    from fraud.model.fastpath import compile_hgb

    lr = fit_model(ROWS.x, ROWS.is_fraud, "lr")
    assert compile_hgb(lr.estimator, ROWS.x[:5]) is None


_SMALL = fit_model(ROWS.x, ROWS.is_fraud, "hgb", {"max_iter": 15})


def test_stated_reasons_are_the_largest_pushes(scorer: LocalScorer) -> None:
    """No feature left out of the top 3 pushed the score up more than the third stated one,
    each measured independently of `explain` by neutralising it and re-scoring."""
    x = ROWS.x[:120]
    reasons = scorer.explain(x, k=3)
    base = scorer.score(x)
    for i in range(len(x)):
        pushes = []
        for j in range(len(NAMES)):
            moved = x[i].copy()
            moved[j] = scorer.reference[j]
            pushes.append(base[i] - scorer.score(moved[None, :])[0])
        stated = [NAMES.index(n) for n in reasons.names[i] if n]
        expected = [j for j in np.argsort(-np.asarray(pushes), kind="stable")[:3]
                    if pushes[j] > 1e-9]
        assert sorted(pushes[j] for j in stated) == pytest.approx(
            sorted(pushes[j] for j in expected), abs=1e-12)
