"""The scorer: a verified artifact loaded once, then NumPy in, NumPy out.

`Scorer` is the interface the pipeline depends on; `LocalScorer` runs the artifact's
estimator in-process and `fraud.model.sagemaker.SageMakerScorer` calls a SageMaker endpoint.
`build_scorer` picks one from `Settings.scorer`. Scores are probabilities of fraud in [0, 1];
the scorer never decides anything (the rules do), and a scorer that cannot score raises
`ScoreUnavailableError` instead of returning a made-up "not fraud".

>>> import numpy as np
>>> float(correct_for_weight(np.array([0.5]), 4.0)[0])
0.2
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from fraud.errors import InputError, ScoreUnavailableError
from fraud.logs import get_logger
from fraud.model.artifact import Artifact, load_artifact
from fraud.model.reasons import Reasons, explain

__all__ = [
    "LocalScorer",
    "Scorer",
    "build_scorer",
    "check_matrix",
    "correct_for_weight",
    "label_delay_mismatch",
    "score_or_unavailable",
    "warn_on_label_delay",
]

F64 = npt.NDArray[np.float64]
log = get_logger(__name__)


class Scorer(Protocol):
    """What the pipeline needs from a model: scores and faithful reasons for a feature matrix."""

    @property
    def feature_names(self) -> tuple[str, ...]: ...

    @property
    def version(self) -> str: ...

    def score(self, x: F64) -> F64:
        """Fraud probability per row; raises `ScoreUnavailableError` when it cannot."""
        ...

    def explain(self, x: F64, k: int = 3) -> Reasons:
        """The top-`k` features that pushed each row's score up (see `fraud.model.reasons`)."""
        ...


def correct_for_weight(p: F64, positive_weight: float) -> F64:
    """Undo the prior shift of training with fraud rows weighted `positive_weight`.

    Weighting positives by w multiplies the model's odds by w; dividing the odds by w gives
    back a probability on the data's own base rate, so the rules' score thresholds keep
    their meaning whatever weight training used.
    """
    if positive_weight == 1.0:
        return p
    return p / (p + (1.0 - p) * positive_weight)


def check_matrix(x: npt.ArrayLike, n_features: int) -> F64:
    """`x` as a contiguous float64 ``(n, n_features)`` matrix, or an `InputError`.

    A column-major matrix (what the feature engine builds) is kept as it is: every scorer
    reads it by index, and copying 200,000 rows to row-major cost more than walking them.
    """
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != n_features:
        raise InputError(f"scorer: feature matrix has shape {arr.shape}, "
                         f"expected (rows, {n_features})")
    if arr.flags.f_contiguous and not arr.flags.c_contiguous:
        return arr
    return np.ascontiguousarray(arr)


class LocalScorer:
    """Scores with an artifact's estimator in this process.

    HistGradientBoosting models are scored by compiled kernels over their flattened trees
    (`fraud.model.fastpath` and `fraud.model.quickscorer`, verified against
    ``predict_proba`` at load); other algorithms
    by ``predict_proba``. Timings: scripts/bench_scoring.py.
    """

    # Below this many rows one thread is faster: OpenMP start-up and, on a busy host, waiting
    # for a second core cost more than the work (measured: scripts/bench_scoring.py).
    SINGLE_THREAD_ROWS = 20_000

    def __init__(self, artifact: Artifact, *, compiled: bool = True) -> None:
        from threadpoolctl import ThreadpoolController

        from fraud.model.fastpath import compile_hgb

        self.artifact = artifact
        self._threads = ThreadpoolController()
        m = artifact.manifest
        self._names = tuple(m.feature_names)
        self._reference = np.asarray(m.reference, dtype=np.float64)
        self._weight = float(m.positive_weight)
        self._model = artifact.model
        self._version = m.model_sha256[:12]
        # The compiled path (HGB only) is checked against predict_proba before it is used.
        self._fast = None
        if compiled and m.algorithm == "hgb":
            rng = np.random.default_rng(0)
            ref = self._reference
            probe = ref + (np.abs(ref) + 1.0) * rng.normal(size=(256, len(ref)))
            # One thread: scikit-learn's OpenMP walk of 257 rows spent seconds waiting for
            # a second core on a busy host (each KCL child pays this at start-up).
            with self._threads.limit(limits=1, user_api="openmp"):
                self._fast = compile_hgb(self._model, np.vstack([ref, probe]))

    @property
    def compiled(self) -> bool:
        """True when scores come from the compiled tree walk (`fraud.model.fastpath`)."""
        return self._fast is not None

    @classmethod
    def load(cls, directory: str | Path) -> LocalScorer:
        return cls(load_artifact(directory))

    @property
    def feature_names(self) -> tuple[str, ...]:
        return self._names

    @property
    def version(self) -> str:
        return self._version

    @property
    def reference(self) -> F64:
        return self._reference

    def _raw(self, x: F64) -> F64:
        if x.shape[0] == 0:
            return np.zeros(0)
        if self._fast is not None:
            p = self._fast.predict_proba1(x)
            return np.clip(correct_for_weight(p, self._weight), 0.0, 1.0)
        if x.shape[0] < self.SINGLE_THREAD_ROWS:
            with self._threads.limit(limits=1, user_api="openmp"):
                proba = self._model.predict_proba(x)
        else:
            proba = self._model.predict_proba(x)
        p = np.asarray(proba[:, 1], dtype=np.float64)
        return np.clip(correct_for_weight(p, self._weight), 0.0, 1.0)

    def score(self, x: F64) -> F64:
        return self._raw(check_matrix(x, len(self._names)))

    def _occluded(self, x: F64, reference: F64, cols: npt.NDArray[np.intp]) -> F64:
        """`_raw` of every occluded row, via the compiled shortcut (same numbers)."""
        if self._fast is None:  # pragma: no cover - only handed out when compiled
            raise RuntimeError("no compiled forest")
        p = self._fast.occluded_proba1(x, reference, cols)
        return np.clip(correct_for_weight(p, self._weight), 0.0, 1.0)

    def explain(self, x: F64, k: int = 3) -> Reasons:
        x = check_matrix(x, len(self._names))
        return explain(self._raw, x, self._reference, self._names, k=k,
                       occluded=self._occluded if self._fast is not None else None)


def score_or_unavailable(scorer: Scorer, x: F64) -> tuple[F64, bool]:
    """Scores, or all-NaN and False when the scorer is unavailable.

    The pipeline records "score unavailable" in the decision (`score_available` is false for
    the rules); it never turns a failed call into a low score.
    """
    try:
        return scorer.score(x), True
    except ScoreUnavailableError as exc:
        log.warning("score_unavailable", rows=int(np.shape(x)[0]), error=str(exc))
        return np.full(int(np.shape(x)[0]), np.nan), False


def label_delay_mismatch(manifest_delay_days: float, delay_days: float | None) -> str | None:
    """A warning when features are computed with another label delay than the model's.

    The terminal fraud rates count a fraud only once its label is known, so a model trained
    with a 30-day delay and fed rates computed with 7 days sees a shifted distribution (on
    one outside review's data, AUC 0.989 fell to 0.980 silently). None when they agree.
    """
    if delay_days is None or abs(float(delay_days) - float(manifest_delay_days)) < 1e-9:
        return None
    return (f"the model was trained with a label delay of {manifest_delay_days:g} days but "
            f"features are computed with {float(delay_days):g} (--label-delay-days / "
            f"FRAUD_LABEL_DELAY_DAYS); its terminal fraud rates will not match training")


def warn_on_label_delay(manifest_delay_days: float, delay_days: float | None,
                        **where: Any) -> None:
    """Log `label_delay_mismatch` as a warning (with `where`) when the two delays differ:
    scoring still goes on, as the features are valid, only shifted."""
    problem = label_delay_mismatch(manifest_delay_days, delay_days)
    if problem:
        log.warning("label_delay_mismatch", detail=problem, **where)


def build_scorer(settings: Any, sagemaker_client: Any = None) -> Scorer:
    """The scorer `settings.scorer` names ("local" or "sagemaker").

    Both read the local artifact's manifest (feature names, reference values for reasons);
    the SageMaker one sends the rows to `settings.sagemaker_endpoint`. `sagemaker_client` is
    a boto3 ``sagemaker-runtime`` client; built from the settings when not given.
    """
    from fraud.errors import ConfigError

    kind = getattr(settings, "scorer", "local")
    delay = getattr(settings, "label_delay_days", None)
    if kind == "local":
        scorer = LocalScorer.load(settings.model_dir)
        warn_on_label_delay(scorer.artifact.manifest.label_delay_days, delay,
                            model_dir=str(settings.model_dir))
        return scorer
    if kind == "sagemaker":
        from fraud.model.artifact import check_compatible, read_manifest
        from fraud.model.sagemaker import SageMakerScorer, make_client

        endpoint = getattr(settings, "sagemaker_endpoint", None)
        if not endpoint:
            raise ConfigError("--scorer sagemaker needs --sagemaker-endpoint "
                              "(FRAUD_SAGEMAKER_ENDPOINT)")
        manifest = read_manifest(settings.model_dir)
        check_compatible(manifest, Path(settings.model_dir))
        warn_on_label_delay(manifest.label_delay_days, delay, model_dir=str(settings.model_dir))
        client = sagemaker_client or make_client(settings)
        return SageMakerScorer(client, endpoint, manifest)
    raise ConfigError(f"--scorer: {kind!r} is not one of local, sagemaker")
