"""Batch in, decisions out: the one pipeline behind `consume`, `replay` and the tests.

Stages, each vectorised over the whole batch: features (which also update the state store),
score, rules. Side effects beyond the state store (decision records, alerts, cases, output
files) belong to the caller: the consumer performs them before it checkpoints, replay writes
them to a file. Nothing here reads the wall clock; every window runs on event time.

>>> import numpy as np
>>> iso_timestamps(np.array([0, 1_500_000], dtype=np.int64)).tolist()
['1970-01-01T00:00:00.000Z', '1970-01-01T00:00:01.500Z']
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from fraud.features import FeatureEngine, FeatureMatrix, StateStore, SupportContext
from fraud.model.reasons import Reasons
from fraud.model.scorer import Scorer, score_or_unavailable
from fraud.rules import ACTIONS, RuleSet
from fraud.rules.evaluator import Decisions, columns_for_batch, evaluate
from fraud.rules.guardrail import GuardrailState
from fraud.schema.batch import TransactionBatch
from fraud.tabular import Column, constant_text, iso_utc_column, lookup_text, sparse_text

__all__ = [
    "OUTPUT_COLUMNS",
    "Outcome",
    "Pipeline",
    "StageTimes",
    "decide",
    "iso_timestamps",
    "output_columns",
]

F64 = npt.NDArray[np.float64]
ObjArray = npt.NDArray[np.object_]
SupportLookup = Callable[[TransactionBatch], SupportContext]

OUTPUT_COLUMNS = (
    "transaction_id", "timestamp", "user_id", "terminal_id", "amount", "score", "action",
    "rules", "reasons", "model_version", "rules_version", "model_reasons",
)


@dataclass(slots=True)
class StageTimes:
    """Seconds spent per stage, summed over batches (for benchmarks and reports)."""

    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, stage: str, started: float) -> float:
        now = time.perf_counter()
        self.seconds[stage] = self.seconds.get(stage, 0.0) + (now - started)
        return now

    def merge(self, other: StageTimes) -> None:
        """Add `other`'s seconds (another thread's stages) to these."""
        for stage, seconds in other.seconds.items():
            self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds


@dataclass(frozen=True, slots=True, eq=False)
class Outcome:
    """What the pipeline decided for one batch (rows in the batch's order).

    `score` is NaN where the scorer could not score (`score_available` False): the rules saw
    that as a missing score, never as a low one. `model_reasons` holds the model's top-3
    reasons for the rows that got an action (empty names elsewhere).
    """

    batch: TransactionBatch
    features: FeatureMatrix
    score: F64
    score_available: bool
    decisions: Decisions
    model_reasons: Reasons
    model_version: str

    def __len__(self) -> int:
        return len(self.batch)

    @property
    def rules_version(self) -> str:
        return self.decisions.rules_version

    def actions(self) -> ObjArray:
        """"block"/"alert"/"flag" or "" per row."""
        names = self.decisions.action_names()
        return np.where(names == "none", "", names).astype(object)

    def __repr__(self) -> str:
        return f"Outcome(rows={len(self)}, decisions={self.decisions!r})"


def _no_reasons(n: int, k: int = 3) -> Reasons:
    names = np.empty((n, k), dtype=object)
    names[:] = ""
    return Reasons(names=names, values=np.full((n, k), np.nan),
                   contributions=np.full((n, k), np.nan))


def _explain_actioned(scorer: Scorer, X: F64, acted: npt.NDArray[np.bool_],
                      available: bool) -> Reasons:
    """Reasons for the rows that got an action only: explaining is the costly part."""
    out = _no_reasons(len(X))
    rows = np.flatnonzero(acted)
    if not available or len(rows) == 0:
        return out
    part = scorer.explain(X[rows])
    out.names[rows] = part.names
    out.values[rows] = part.values
    out.contributions[rows] = part.contributions
    return out


def decide(
    batch: TransactionBatch,
    features: FeatureMatrix,
    scorer: Scorer,
    ruleset: RuleSet,
    guardrail: GuardrailState,
    *,
    times: StageTimes | None = None,
) -> Outcome:
    """Score `features` and run `ruleset` over them: one model call, one rule evaluation."""
    started = time.perf_counter()
    X = _model_matrix(features, scorer.feature_names)
    score, available = score_or_unavailable(scorer, X)
    if times is not None:
        started = times.add("score", started)
    feature_columns = {name: features.values[:, j] for j, name in enumerate(features.names)}
    decisions = evaluate(ruleset, columns_for_batch(batch, feature_columns, score),
                         state=guardrail, n=len(batch))
    if times is not None:
        started = times.add("rules", started)
    reasons = _explain_actioned(scorer, X, decisions.action > 0, available)
    if times is not None:
        times.add("explain", started)
    return Outcome(batch=batch, features=features, score=score, score_available=available,
                   decisions=decisions, model_reasons=reasons, model_version=scorer.version)


def _model_matrix(features: FeatureMatrix, wanted: tuple[str, ...]) -> F64:
    if features.names == wanted:
        return features.values
    index = {name: j for j, name in enumerate(features.names)}
    missing = [name for name in wanted if name not in index]
    if missing:
        from fraud.errors import ModelError

        raise ModelError(f"the model needs features this engine does not compute: {missing}")
    return np.ascontiguousarray(features.values[:, [index[name] for name in wanted]])


class Pipeline:
    """Features, score and rules for a stream of batches, with state carried between them.

    `rules` is called once per batch, so a hot-reloading watcher (`RulesWatcher.current`)
    swaps rule sets between batches, never inside one. `support` looks up the supporting
    stores (sessions, devices, carts, social graph) for a batch.
    """

    def __init__(
        self,
        engine: FeatureEngine,
        store: StateStore,
        scorer: Scorer,
        rules: Callable[[], RuleSet],
        *,
        support: SupportLookup | None = None,
        guardrail: GuardrailState | None = None,
    ) -> None:
        self.engine = engine
        self.store = store
        self.scorer = scorer
        self.rules = rules
        self.support = support
        self.guardrail = guardrail if guardrail is not None else GuardrailState()
        self.times = StageTimes()

    def features(self, batch: TransactionBatch) -> FeatureMatrix:
        """Features of `batch`, committing its effects to the state store."""
        context = None
        if self.support is not None:
            started = time.perf_counter()
            context = self.support(batch)
            self.times.add("support", started)
        return self.features_with(batch, context)

    def features_with(self, batch: TransactionBatch, context: SupportContext | None
                      ) -> FeatureMatrix:
        """`features` with the supporting-store values already looked up (by another
        thread, say: they depend on the batch alone)."""
        started = time.perf_counter()
        matrix = self.engine.extract(batch, self.store, context)
        self.times.add("features", started)
        return matrix

    def process(self, batch: TransactionBatch,
                decide_rows: npt.NDArray[np.bool_] | None = None) -> Outcome:
        """Features for every row (all rows feed the state), decisions for `decide_rows`."""
        return self.decide(batch, self.features(batch), decide_rows)

    def decide(self, batch: TransactionBatch, matrix: FeatureMatrix,
               decide_rows: npt.NDArray[np.bool_] | None = None, *,
               times: StageTimes | None = None) -> Outcome:
        """Score and rules for `decide_rows` of a batch whose features are `matrix`.

        Batches must be decided in the order their features were computed (the guardrail's
        window runs on them in that order); `times` defaults to this pipeline's.
        """
        if decide_rows is not None and not bool(np.all(decide_rows)):
            batch = batch.take(decide_rows)
            matrix = FeatureMatrix(
                matrix.names, matrix.values[decide_rows], matrix.transaction_id[decide_rows],
                matrix.effective_time_us[decide_rows],
                redelivered=(None if matrix.redelivered is None
                             else matrix.redelivered[decide_rows]))
        return decide(batch, matrix, self.scorer, self.rules(), self.guardrail,
                      times=self.times if times is None else times)


def iso_timestamps(ts_us: npt.NDArray[np.int64]) -> ObjArray:
    """ISO-8601 UTC strings ('Z') with millisecond precision, or microseconds when needed."""
    text = iso_utc_column(ts_us)
    return np.asarray(text.to_numpy(zero_copy_only=False), dtype=object)


def _matched_rows(decisions: Decisions) -> npt.NDArray[np.intp]:
    """The rows any rule matched (most rows match none)."""
    if not decisions.matches.size:
        return np.zeros(0, np.intp)
    return np.flatnonzero(decisions.matches.any(axis=0))


def _join_rules(decisions: Decisions, matched: npt.NDArray[np.intp]) -> pa.Array:
    """Matched rule ids joined with ";" (evaluation order), for the `matched` rows."""
    ids = np.asarray(decisions.rule_ids, dtype=object)
    return sparse_text(len(decisions), matched,
                       [";".join(ids[decisions.matches[:, i]]) for i in matched])


def _join_reasons(decisions: Decisions, matched: npt.NDArray[np.intp]) -> pa.Array:
    """Each row's rule reasons joined with " | "; only matched rows have any (the
    evaluator's contract), so only they are looked at."""
    reasons = decisions.reasons
    if len(reasons) != len(decisions):  # reasons not built: none to show
        return sparse_text(len(decisions), np.zeros(0, np.int64), [])
    rows = np.asarray([i for i in matched.tolist() if reasons[i]], dtype=np.int64)
    texts = [" | ".join(f"{rule_id}: {text}" for rule_id, text in reasons[i])
             for i in rows.tolist()]
    return sparse_text(len(decisions), rows, texts)


def _join_model_reasons(reasons: Reasons) -> pa.Array:
    names = reasons.names
    rows = np.flatnonzero(names[:, 0] != "")
    texts = [";".join(f"{name}={value:.6g}" for name, value in
                      zip(names[i], reasons.values[i], strict=True) if name)
             for i in rows.tolist()]
    return sparse_text(len(reasons), rows, texts)


# Output text of each action code: "" for none.
_ACTION_TEXT = tuple("" if name == "none" else name for name in ACTIONS)


def output_columns(outcome: Outcome) -> Mapping[str, Column]:
    """The replay output row of every transaction in `outcome` (see `OUTPUT_COLUMNS`).

    Text columns that are not ids are built as Arrow arrays (timestamps compiled, versions
    repeated, actions looked up by code, joined rules and reasons only where non-empty):
    the same cells as object arrays would give, without a Python string per cell.
    """
    b = outcome.batch
    n = len(b)
    matched = _matched_rows(outcome.decisions)
    return {
        "transaction_id": b.transaction_id,
        "timestamp": iso_utc_column(b.timestamp_us),
        "user_id": b.user_id,
        "terminal_id": b.terminal_id,
        "amount": b.amount,
        "score": np.round(outcome.score, 6),
        "action": lookup_text(outcome.decisions.action, _ACTION_TEXT),
        "rules": _join_rules(outcome.decisions, matched),
        "reasons": _join_reasons(outcome.decisions, matched),
        "model_version": constant_text(outcome.model_version, n),
        "rules_version": constant_text(outcome.rules_version, n),
        "model_reasons": _join_model_reasons(outcome.model_reasons),
    }
