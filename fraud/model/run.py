"""One training run: split, (search,) fit, evaluate, write the artifact and its report.

This is the shell around `fraud.model.train`: it takes feature rows already computed point
in time (`LabelledRows`), so the same code serves the CLI, scripts/train_model.py and tests.
The clock is passed in (`now`), so a run's outputs depend only on its inputs and seed.
"""

from __future__ import annotations

import math
import platform
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from fraud.errors import InputError
from fraud.logs import get_logger
from fraud.model.artifact import Manifest, save_artifact
from fraud.model.metrics import DEFAULT_THRESHOLDS, evaluate
from fraud.model.reasons import occlusion_contributions
from fraud.model.train import (
    DAY_US,
    FittedModel,
    LabelledRows,
    fit_model,
    predict,
    reference_values,
    training_mask,
)
from fraud.schema.batch import MISSING_TIME

__all__ = ["TrainOutcome", "TrainSpec", "iso_us", "library_versions", "rule_thresholds",
           "run_training"]

log = get_logger(__name__)
F64 = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class TrainSpec:
    """What to train: half-open UTC ranges in epoch microseconds, algorithm, protocol knobs.

    Without a test range, the test range is ``[train_end + delay, last row]``: the rows a
    model trained at ``train_end + delay`` would have scored.
    """

    train_start_us: int
    train_end_us: int
    test_start_us: int | None = None
    test_end_us: int | None = None
    algorithm: str = "hgb"
    label_delay_days: float = 7.0
    params: Mapping[str, Any] = field(default_factory=dict)
    search: bool = False
    seed: int = 0
    k: int = 100
    thresholds: tuple[float, ...] = DEFAULT_THRESHOLDS
    feature_engine_version: str = ""

    @property
    def delay_us(self) -> int:
        return round(self.label_delay_days * DAY_US)


@dataclass(frozen=True, slots=True, eq=False)
class TrainOutcome:
    manifest: Manifest
    model: FittedModel
    test_scores: F64 | None
    test_labels: npt.NDArray[np.int8] | None
    report_files: list[Path]


def iso_us(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, tz=UTC).isoformat().replace("+00:00", "Z")


def library_versions() -> dict[str, str]:
    import scipy
    import sklearn
    import skops

    from fraud import __version__ as fraud_version

    return {"python": platform.python_version(), "numpy": np.__version__,
            "scikit-learn": sklearn.__version__, "skops": skops.__version__,
            "scipy": scipy.__version__, "fraud": str(fraud_version)}


def rule_thresholds(path: str | Path = "rules/default.yaml") -> tuple[float, ...]:
    """Score thresholds the rules use: numeric ``parameters`` named ``*score*`` or
    ``*threshold*`` in (0, 1) from the rules file, else `DEFAULT_THRESHOLDS`."""
    import yaml

    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return DEFAULT_THRESHOLDS
    params = doc.get("parameters") if isinstance(doc, dict) else None
    if not isinstance(params, dict):
        return DEFAULT_THRESHOLDS
    found = sorted({float(v) for k, v in params.items()
                    if ("score" in str(k) or "threshold" in str(k))
                    and isinstance(v, int | float) and not isinstance(v, bool) and 0 < v < 1})
    return tuple(found) or DEFAULT_THRESHOLDS


def _clean(value: Any) -> Any:
    """JSON-safe: NaN/inf become None, NumPy scalars become Python numbers."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _check_ranges(spec: TrainSpec, rows: LabelledRows) -> tuple[int, int] | None:
    if spec.train_end_us <= spec.train_start_us:
        raise InputError(f"--train-end ({iso_us(spec.train_end_us)}) must be after "
                         f"--train-start ({iso_us(spec.train_start_us)})")
    if (spec.test_start_us is None) != (spec.test_end_us is None):
        raise InputError("--test-start and --test-end go together: give both or neither")
    if spec.test_start_us is None or spec.test_end_us is None:
        start = spec.train_end_us + spec.delay_us
        last = int(rows.timestamp_us.max()) if len(rows) else start - 1
        return (start, last + 1) if last >= start else None
    if spec.test_end_us <= spec.test_start_us:
        raise InputError(f"--test-end ({iso_us(spec.test_end_us)}) must be after "
                         f"--test-start ({iso_us(spec.test_start_us)})")
    if spec.test_start_us < spec.train_end_us and spec.test_end_us > spec.train_start_us:
        raise InputError("the test range overlaps the training range; the test range must "
                         "be held out (start it at or after --train-end)")
    return spec.test_start_us, spec.test_end_us


def _span(rows: LabelledRows) -> str:
    ts = rows.timestamp_us
    return f"{iso_us(int(ts.min()))} .. {iso_us(int(ts.max()))}" if len(rows) else "no rows"


def _check_rows_in_ranges(spec: TrainSpec, rows: LabelledRows, in_train: npt.NDArray[np.bool_],
                          test_range: tuple[int, int] | None) -> None:
    """A range the caller named that holds no labelled row is a mistake in the dates (or
    the wrong file): say so before training, with the file's own time span."""
    labelled = rows.is_fraud >= 0
    if not (in_train & labelled).any():
        raise InputError(
            f"--train-start/--train-end: no labelled transactions in [{iso_us(spec.train_start_us)}"
            f", {iso_us(spec.train_end_us)}); the file's transactions span {_span(rows)}")
    if spec.test_start_us is not None and test_range is not None:
        ts = rows.timestamp_us
        if not ((ts >= test_range[0]) & (ts < test_range[1]) & labelled).any():
            raise InputError(
                f"--test-start/--test-end: no labelled transactions in [{iso_us(test_range[0])}"
                f", {iso_us(test_range[1])}); the file's transactions span {_span(rows)}")


def importances(model: FittedModel, x: F64, reference: Sequence[float], *,
                names: Sequence[str], seed: int, limit: int = 2000) -> list[tuple[str, float]]:
    """Mean |occlusion contribution| per feature over up to `limit` rows, largest first."""
    if x.shape[0] == 0:
        return []
    rng = np.random.default_rng(seed)
    rows = x if x.shape[0] <= limit else x[np.sort(rng.choice(x.shape[0], limit, False))]
    contrib = occlusion_contributions(lambda m: predict(model, m), rows,
                                      np.asarray(reference, dtype=np.float64))
    mean = np.abs(contrib).mean(axis=0)
    order = np.argsort(-mean, kind="stable")
    return [(names[j], float(mean[j])) for j in order]


def run_training(rows: LabelledRows, spec: TrainSpec, out_dir: str | Path, *,
                 report_dir: str | Path | None = None, now: datetime | None = None,
                 input_name: str = "") -> TrainOutcome:
    """Train, evaluate and write ``out_dir`` (artifact) and `report_dir` (default
    ``out_dir/report``); see the module docstring of `fraud.model.train` for the protocol."""
    test_range = _check_ranges(spec, rows)
    ts = rows.timestamp_us
    delay = spec.delay_us
    in_train = (ts >= spec.train_start_us) & (ts < spec.train_end_us)
    _check_rows_in_ranges(spec, rows, in_train, test_range)
    fit_rows = training_mask(rows, spec.train_start_us, spec.train_end_us, delay)
    params: dict[str, Any] = {**spec.params}
    search_scores: list[dict[str, Any]] | None = None
    if spec.search:
        from fraud.model.search import search

        found = search(rows, spec.algorithm, start_us=spec.train_start_us,
                       end_us=spec.train_end_us, delay_us=delay,
                       seed=spec.seed)
        params, search_scores = {**found.params, **spec.params}, found.scores
    model = fit_model(rows.x[fit_rows], rows.is_fraud[fit_rows], spec.algorithm, params,
                      spec.seed)
    reference = reference_values(rows.x[in_train], rows.names)
    metrics: dict[str, Any] = {}
    test_scores = test_labels = None
    test_x = rows.x[:0]
    counts = {
        "file_rows": len(rows),
        "train_rows": int(in_train.sum()),
        "train_labelled_rows": int(fit_rows.sum()),
        "train_frauds": model.fraud_rows,
        "train_labels_not_yet_known": int((in_train & (rows.is_fraud >= 0)).sum()
                                          - fit_rows.sum()),
        # Labels without a label_time are taken as known `label_delay` after their
        # transaction (`fraud.model.train.label_known`); say how many rest on that.
        "train_labels_without_label_time": int((fit_rows & (rows.label_time_us
                                                            == MISSING_TIME)).sum()),
    }
    if test_range is not None:
        in_test = (ts >= test_range[0]) & (ts < test_range[1]) & (rows.is_fraud >= 0)
        test_x = rows.x[in_test]
        test_labels = rows.is_fraud[in_test]
        test_scores = predict(model, test_x)
        metrics["test"] = evaluate(test_scores, test_labels, timestamp_us=ts[in_test],
                                   cards=rows.card[in_test],
                                   k=spec.k, thresholds=spec.thresholds)
        counts["test_rows"] = int(in_test.sum())
        counts["test_frauds"] = int((test_labels > 0).sum())
    if search_scores is not None:
        metrics["search"] = search_scores
    ranked = importances(model, test_x if test_x.shape[0] else rows.x[fit_rows], reference,
                         names=rows.names, seed=spec.seed)
    manifest = Manifest(
        feature_names=tuple(rows.names),
        feature_engine_version=spec.feature_engine_version,
        label_delay_days=float(spec.label_delay_days),
        algorithm=spec.algorithm,
        params=_clean(dict(model.params)),
        positive_weight=float(model.positive_weight),
        reference=reference,
        train_range=(iso_us(spec.train_start_us), iso_us(spec.train_end_us)),
        test_range=None if test_range is None else (iso_us(test_range[0]),
                                                    iso_us(test_range[1])),
        counts=counts,
        metrics=_clean(metrics),
        library_versions=library_versions(),
        created_at=(now or datetime.now(UTC)).isoformat().replace("+00:00", "Z"),
        model_sha256="",
        seed=spec.seed,
        extra=_clean({"input": input_name, "thresholds": list(spec.thresholds),
                      "importance": [[n, v] for n, v in ranked[:10]]}),
    )
    written = save_artifact(out_dir, model.estimator, manifest)
    from fraud.model.report import write_report

    report_path = Path(report_dir) if report_dir is not None else Path(out_dir) / "report"
    files = write_report(report_path, asdict(written), test_scores, test_labels, ranked)
    log.info("model_trained", algorithm=spec.algorithm, out=str(out_dir),
             train_rows=counts["train_labelled_rows"], frauds=model.fraud_rows)
    return TrainOutcome(written, model, test_scores, test_labels, files)
