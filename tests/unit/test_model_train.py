"""Training protocol: label cutoff, time split, search folds, artifact and report outputs."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from fraud.errors import InputError, ModelError
from fraud.model.artifact import load_artifact
from fraud.model.run import TrainSpec, rule_thresholds, run_training
from fraud.model.search import search, time_folds
from fraud.model.synthetic import NAMES, T0, synthetic_rows
from fraud.model.train import DAY_US, fit_model, label_known, training_mask
from fraud.schema.batch import MISSING_TIME

DELAY = 7 * DAY_US
NOW = datetime(2026, 1, 1, tzinfo=UTC)
FAST = {"max_iter": 30}


def test_label_known_uses_label_time_or_timestamp_plus_delay() -> None:
    cutoff = 100 * DAY_US
    ts = np.array([0, 0, 0, 95 * DAY_US, 92 * DAY_US, 0], dtype=np.int64)
    label_time = np.array([cutoff - 1, cutoff, MISSING_TIME, MISSING_TIME, MISSING_TIME,
                           5], dtype=np.int64)
    y = np.array([1, 1, 1, 0, 1, -1], dtype=np.int8)
    known = label_known(ts, y, label_time, cutoff, DELAY)
    # strictly before the cutoff; ts + delay when there is no label time; unlabelled never
    assert known.tolist() == [True, False, True, False, True, False]


def test_training_mask_cutoff_is_train_end_plus_delay() -> None:
    rows = synthetic_rows(n=200, days=20)
    end = T0 + 10 * DAY_US
    lt = rows.label_time_us.copy()
    inside = np.flatnonzero(rows.timestamp_us < end)
    late, on_time = inside[0], inside[1]
    lt[late] = end + DELAY  # known exactly at the cutoff: too late
    lt[on_time] = end + DELAY - 1
    rows = replace(rows, label_time_us=lt)
    mask = training_mask(rows, T0, end, DELAY)
    assert not mask[late] and mask[on_time]
    assert not mask[rows.timestamp_us >= end].any()


def test_late_fraud_labels_are_withheld_from_training(tmp_path: Path) -> None:
    """A fraud whose label arrives after train_end + delay is not a training row; flipping
    those labels therefore cannot change the model."""
    rows = synthetic_rows(n=2500, days=40, seed=1)
    end = T0 + 25 * DAY_US
    frauds = np.flatnonzero((rows.is_fraud == 1) & (rows.timestamp_us < end))
    late = frauds[::2]
    lt = rows.label_time_us.copy()
    lt[late] = end + DELAY + DAY_US
    a = replace(rows, label_time_us=lt)
    flipped = a.is_fraud.copy()
    flipped[late] = 0
    b = replace(a, is_fraud=flipped)
    spec = TrainSpec(T0, end, algorithm="hgb", params=FAST, feature_engine_version="t")
    out_a = run_training(a, spec, tmp_path / "a", now=NOW)
    out_b = run_training(b, spec, tmp_path / "b", now=NOW)
    assert out_a.manifest.counts["train_labels_not_yet_known"] == len(late)
    assert out_a.manifest.counts["train_frauds"] == len(frauds) - len(late)
    x = rows.x[:200]
    assert np.array_equal(out_a.model.estimator.predict_proba(x),
                          out_b.model.estimator.predict_proba(x))


def test_run_training_writes_artifact_report_and_metrics(tmp_path: Path) -> None:
    rows = synthetic_rows(n=3000, days=40, seed=2)
    spec = TrainSpec(T0, T0 + 20 * DAY_US, T0 + 27 * DAY_US, T0 + 40 * DAY_US,
                     params=FAST, k=10, feature_engine_version="t")
    out = run_training(rows, spec, tmp_path / "model", now=NOW)
    manifest = json.loads((tmp_path / "model" / "manifest.json").read_text())
    test = manifest["metrics"]["test"]
    assert test["auc_roc"] > 0.75
    assert 0 <= test["card_precision_at_10"] <= 1 and test["card_precision_days"] == 13
    assert [t["threshold"] for t in test["thresholds"]] == [0.5, 0.7, 0.9]
    assert manifest["train_range"] == ["2023-11-15T00:00:00Z", "2023-12-05T00:00:00Z"]
    assert manifest["feature_names"] == list(NAMES)
    assert manifest["counts"]["test_rows"] == int(
        ((rows.timestamp_us >= spec.test_start_us) & (rows.timestamp_us < spec.test_end_us)).sum())
    names = {p.name for p in out.report_files}
    assert names == {"pr_curve.png", "roc_curve.png", "score_histogram.png",
                     "feature_importance.png", "summary.md"}
    assert "Card precision@10" in (tmp_path / "model" / "report" / "summary.md").read_text()
    art = load_artifact(tmp_path / "model", NAMES, "t")
    assert art.manifest.created_at == "2026-01-01T00:00:00Z"


def test_same_seed_same_metrics(tmp_path: Path) -> None:
    rows = synthetic_rows(n=1500, days=30, seed=4)
    spec = TrainSpec(T0, T0 + 15 * DAY_US, params=FAST, feature_engine_version="t", k=5)
    m1 = run_training(rows, spec, tmp_path / "1", now=NOW).manifest
    m2 = run_training(rows, spec, tmp_path / "2", now=NOW).manifest
    assert m1.metrics == m2.metrics and m1.reference == m2.reference
    # default test range: from train_end + delay to the last row
    assert m1.test_range == ("2023-12-07T00:00:00Z", m1.test_range[1])  # type: ignore[index]


def test_bad_ranges_are_input_errors(tmp_path: Path) -> None:
    rows = synthetic_rows(n=300)
    with pytest.raises(InputError, match="must be after"):
        run_training(rows, TrainSpec(T0 + DAY_US, T0), tmp_path)
    with pytest.raises(InputError, match="overlaps the training range"):
        run_training(rows, TrainSpec(T0, T0 + 10 * DAY_US, T0 + 5 * DAY_US, T0 + 20 * DAY_US),
                     tmp_path)
    with pytest.raises(InputError, match="give both or neither"):
        run_training(rows, TrainSpec(T0, T0 + 10 * DAY_US, T0 + 12 * DAY_US), tmp_path)


def test_no_frauds_is_a_clear_model_error() -> None:
    with pytest.raises(ModelError, match="0 frauds"):
        fit_model(np.zeros((10, 2)), np.zeros(10), "hgb")
    with pytest.raises(InputError, match="not one of"):
        fit_model(np.zeros((10, 2)), np.r_[np.zeros(5), np.ones(5)], "svm")


def test_folds_stay_inside_training_range_and_respect_delay() -> None:
    start, end = T0, T0 + 40 * DAY_US
    folds = time_folds(start, end, DELAY, n_folds=3)
    assert len(folds) == 3
    for f in folds:
        assert start < f.fit_end_us and f.fit_end_us + DELAY == f.known_by_us == f.val_start_us
        assert f.val_end_us <= end
    assert folds[-1].val_end_us == end
    with pytest.raises(InputError, match="too short"):
        time_folds(start, start + DELAY, DELAY)


def test_search_never_reads_the_test_range() -> None:
    """Scrambling every label after train_end leaves the chosen parameters unchanged."""
    rows = synthetic_rows(n=2500, days=40, seed=5)
    end = T0 + 30 * DAY_US
    grid = [{"max_iter": 10}, {"max_iter": 30, "max_leaf_nodes": 7}]
    chosen = search(rows, "hgb", start_us=T0, end_us=end, delay_us=DELAY, grid=grid)
    y = rows.is_fraud.copy()
    after = rows.timestamp_us >= end
    y[after] = np.random.default_rng(0).permutation(y[after])
    again = search(replace(rows, is_fraud=y), "hgb", start_us=T0, end_us=end,
                   delay_us=DELAY, grid=grid)
    assert chosen.params == again.params and chosen.scores == again.scores
    assert all(s["folds"] > 0 for s in chosen.scores)


@pytest.mark.parametrize("algorithm", ["rf", "lr"])
def test_alternative_algorithms_learn(tmp_path: Path, algorithm: str) -> None:
    rows = synthetic_rows(n=2000, days=30, seed=6)
    params = {"n_estimators": 20} if algorithm == "rf" else {}
    spec = TrainSpec(T0, T0 + 18 * DAY_US, algorithm=algorithm, params=params,
                     feature_engine_version="t", k=5)
    out = run_training(rows, spec, tmp_path, now=NOW)
    assert out.manifest.metrics["test"]["auc_roc"] > 0.7


def test_rule_thresholds_from_rules_file(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("parameters:\n  block_score: 0.95\n  alert_score: 0.8\n  max_amount: 900\n")
    assert rule_thresholds(path) == (0.8, 0.95)
    assert rule_thresholds(tmp_path / "missing.yaml") == (0.5, 0.7, 0.9)


def test_labels_without_label_time_are_counted_and_a_nan_metric_reads_n_a(
        tmp_path: Path) -> None:
    """A file without label times (most exports): every training-range label is used, as
    known `delay` after its transaction, and the manifest says how many rest on that. A
    metric that is undefined (one class in the test range) reads "n/a" in the summary."""
    rows = synthetic_rows(n=1500, days=30, seed=5)
    lt = rows.timestamp_us + DAY_US  # labels with a label time...
    no_time = np.flatnonzero(rows.timestamp_us < T0 + 15 * DAY_US)[::3]  # ...but a third
    lt[no_time] = MISSING_TIME
    y = rows.is_fraud.copy()
    y[rows.timestamp_us >= T0 + 22 * DAY_US] = 0  # the test range holds no fraud
    rows = replace(rows, label_time_us=lt, is_fraud=y)
    spec = TrainSpec(T0, T0 + 15 * DAY_US, T0 + 22 * DAY_US, T0 + 30 * DAY_US,
                     params=FAST, feature_engine_version="t", k=5)
    out = run_training(rows, spec, tmp_path / "m", now=NOW)
    fit = training_mask(rows, T0, T0 + 15 * DAY_US, DELAY)
    assert out.manifest.counts["train_labels_without_label_time"] == int(fit[no_time].sum()) > 0
    summary = (tmp_path / "m" / "report" / "summary.md").read_text()
    assert "| AUC ROC | n/a |" in summary and "None" not in summary
    assert "train_labels_without_label_time" in summary


def test_a_range_without_labelled_rows_is_an_input_error(tmp_path: Path) -> None:
    rows = synthetic_rows(n=500, days=20, seed=6)
    with pytest.raises(InputError, match=r"no labelled transactions in \[.*the file's "
                       r"transactions span 2023-11-15"):
        run_training(rows, TrainSpec(T0 - 40 * DAY_US, T0 - 30 * DAY_US, params=FAST),
                     tmp_path / "m", now=NOW)
    with pytest.raises(InputError, match="--test-start/--test-end: no labelled"):
        run_training(rows, TrainSpec(T0, T0 + 10 * DAY_US, T0 + 100 * DAY_US,
                                     T0 + 110 * DAY_US, params=FAST), tmp_path / "m", now=NOW)
