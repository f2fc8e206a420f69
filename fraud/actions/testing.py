"""A small testing kit: hand-made `Outcome`s, so action sinks and handlers are testable without
running features, a model and rules.

>>> outcome = make_outcome(["block", "", "flag"])
>>> outcome.actions().tolist()
['block', '', 'flag']
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fraud.features import FeatureMatrix
from fraud.model.reasons import Reasons
from fraud.pipeline import Outcome
from fraud.rules.evaluator import Decisions
from fraud.rules.ruleset import ACTIONS
from fraud.schema.batch import TransactionBatch

__all__ = ["FEATURE_NAMES", "T0_US", "make_outcome"]

T0_US = 1_706_702_400_000_000  # 2024-01-31T12:00:00Z
FEATURE_NAMES = ("amount_to_user_mean", "tx_count_1h")


def make_outcome(
    actions: Sequence[str],
    *,
    prefix: str = "t",
    timestamps_us: Sequence[int] | None = None,
    positions: Sequence[str] | None = None,
    is_fraud: Sequence[int] | None = None,
    scores: Sequence[float] | None = None,
    rules_version: str = "rules-1",
    model_version: str = "model-1",
) -> Outcome:
    """An outcome with one row per entry of `actions` ("block", "alert", "flag" or "").

    Row i is transaction ``f"{prefix}{i}"`` of user ``u{i % 3}`` one minute after the last;
    each action comes from a rule named after it (``rule_block`` ...), with a reason.
    """
    n = len(actions)
    ts = (np.asarray(timestamps_us, dtype=np.int64) if timestamps_us is not None
          else T0_US + 60_000_000 * np.arange(n, dtype=np.int64))
    batch = TransactionBatch.from_columns(
        transaction_id=[f"{prefix}{i}" for i in range(n)], timestamp_us=ts,
        user_id=[f"u{i % 3}" for i in range(n)], terminal_id=[f"m{i % 2}" for i in range(n)],
        amount=[10.0 + i for i in range(n)], currency=["EUR"] * n,
        lat=[np.nan if i % 2 else 48.1 for i in range(n)],
        lon=[np.nan if i % 2 else 11.5 for i in range(n)],
        is_fraud=is_fraud, position=positions,
    )
    codes = np.asarray([ACTIONS.index(a or "none") for a in actions], dtype=np.int8)
    rule_ids = ("rule_flag", "rule_alert", "rule_block")
    matches = np.zeros((3, n), dtype=np.bool_)
    for i, code in enumerate(codes.tolist()):
        if code:
            matches[code - 1, i] = True
    reasons: list[tuple[tuple[str, str], ...]] = [
        ((rule_ids[c - 1], f"because {ACTIONS[c]}"),) if c else () for c in codes.tolist()]
    decisions = Decisions(
        rules_version=rules_version, rule_ids=rule_ids,
        rule_actions=("flag", "alert", "block"), rule_modes=("active",) * 3, action=codes,
        matches=matches, demoted=np.zeros((3, n), dtype=np.bool_),
        decided_by=np.asarray([rule_ids[c - 1] if c else "" for c in codes.tolist()],
                              dtype=object),
        reasons=reasons, guardrail=(),
    )
    values = np.column_stack([np.linspace(0.5, 9.5, n), np.arange(n, dtype=np.float64)])
    values = values.reshape(n, len(FEATURE_NAMES))
    features = FeatureMatrix(FEATURE_NAMES, values, batch.transaction_id, ts)
    score = (np.asarray(scores, dtype=np.float64) if scores is not None
             else np.round(np.linspace(0.1, 0.99, n), 6))
    names = np.empty((n, 3), dtype=object)
    names[:] = ""
    contributions = np.full((n, 3), np.nan)
    model_values = np.full((n, 3), np.nan)
    names[codes > 0, 0] = FEATURE_NAMES[0]
    model_values[codes > 0, 0] = values[codes > 0, 0]
    contributions[codes > 0, 0] = 0.2
    return Outcome(batch=batch, features=features, score=score, score_available=True,
                   decisions=decisions,
                   model_reasons=Reasons(names=names, values=model_values,
                                         contributions=contributions),
                   model_version=model_version)
