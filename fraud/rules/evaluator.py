"""Evaluate a `RuleSet` over a whole batch at once and decide each transaction's action.

Input is a mapping of column name -> NumPy array (transaction fields, features, ``score``
with NaN where the scorer could not produce one). Output is a `Decisions`:

* ``action``: int8 per row, 0 none, 1 flag, 2 alert, 3 block - the most severe matched
  *active* rule (after the guardrail's demotions);
* ``matches``: bool, rules x rows, shadow rules included;
* ``decided_by``: the id of the rule that set the action (highest priority among the most
  severe), ``""`` for none;
* ``reasons``: per row, a tuple of ``(rule_id, text)`` for every matched rule (shadow ones
  prefixed ``[shadow]``), built only for matched rows;
* ``rules_version``: the content hash of the rules file, for every decision record.

>>> import numpy as np
>>> from fraud.rules.loader import parse_rules
>>> rs = parse_rules("version: 1\\nrules:\\n- {id: hi, description: high score, "
...                  "when: score > 0.9, action: block}\\n")
>>> evaluate(rs, {"score": np.array([0.95, 0.1, np.nan])}).action.tolist()
[3, 0, 0]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from fraud.errors import InputError
from fraud.rules.compiler import Env
from fraud.rules.guardrail import GuardrailState, GuardrailStatus
from fraud.rules.ruleset import ACTIONS, RuleSet
from fraud.schema.batch import TransactionBatch

__all__ = [
    "Decisions", "RuleHit", "columns_for_batch", "derive_column", "evaluate", "prepare_columns",
]

Array = npt.NDArray[Any]
Reasons = tuple[tuple[str, str], ...]  # (rule_id, text) of every rule a row matched
_US_PER_HOUR = 3_600_000_000


@dataclass(frozen=True, slots=True)
class RuleHit:
    """One rule that matched one transaction, as a decision record stores it."""

    rule_id: str
    action: str  # the rule's own action
    mode: str  # "active" or "shadow"
    demoted: bool  # acted as flag because of the max_rate guardrail
    reason: str


@dataclass(frozen=True, slots=True, eq=False)
class Decisions:
    """The rule engine's verdict on one batch (see the module docstring)."""

    rules_version: str
    rule_ids: tuple[str, ...]
    rule_actions: tuple[str, ...]
    rule_modes: tuple[str, ...]
    action: npt.NDArray[np.int8]
    matches: npt.NDArray[np.bool_]
    demoted: npt.NDArray[np.bool_]
    decided_by: npt.NDArray[np.object_]
    reasons: list[Reasons]
    guardrail: tuple[GuardrailStatus, ...]

    def __len__(self) -> int:
        return len(self.action)

    def action_names(self) -> npt.NDArray[np.object_]:
        """``"block"``/``"alert"``/``"flag"``/``"none"`` per row."""
        return np.asarray(ACTIONS, dtype=object)[self.action]

    def matched(self, row: int) -> list[str]:
        """Ids of every rule that matched `row` (shadow included), in evaluation order."""
        return [self.rule_ids[r] for r in np.flatnonzero(self.matches[:, row])]

    def hits(self, row: int) -> list[RuleHit]:
        """Every rule that matched `row`, in evaluation order, with its reason (when reasons
        were built) - what the Decisions table records as the rule hits."""
        texts = dict(self.reasons[row]) if self.reasons else {}
        return [
            RuleHit(self.rule_ids[r], self.rule_actions[r], self.rule_modes[r],
                    bool(self.demoted[r, row]) and self.rule_modes[r] == "active",
                    texts.get(self.rule_ids[r], ""))
            for r in np.flatnonzero(self.matches[:, row])
        ]

    def __repr__(self) -> str:
        counts = np.bincount(self.action, minlength=len(ACTIONS))
        summary = ", ".join(f"{name}={int(c)}" for name, c in zip(ACTIONS, counts, strict=True))
        return f"Decisions(rows={len(self)}, version={self.rules_version!r}, {summary})"


def columns_for_batch(
    batch: TransactionBatch,
    features: Mapping[str, Array],
    score: Array,
) -> dict[str, Array]:
    """The evaluator's input for a batch: its fields, its features and its scores."""
    columns: dict[str, Array] = {name: getattr(batch, name) for name in batch.column_names()}
    columns.update(batch.extra)
    columns.update(features)
    columns["score"] = score
    return columns


def prepare_columns(ruleset: RuleSet, columns: Mapping[str, Array], n: int) -> dict[str, Array]:
    """The columns the rules use, in the evaluator's dtypes; derived ones computed.

    Raises `InputError` naming a column the rules need but the caller did not pass, or one of
    the wrong length.
    """
    vocab = ruleset.vocabulary
    out: dict[str, Array] = {}
    for name in sorted(ruleset.columns):
        raw = columns.get(name)
        if raw is None:
            raw = derive_column(name, columns)
        if raw is None:
            raise InputError(f"rules {ruleset.location} use column {name!r} "
                             f"({vocab.kind(name)}), which the batch does not have")
        if len(raw) != n:
            raise InputError(f"column {name!r} has {len(raw)} rows, expected {n}")
        if vocab.kind(name) == "string":
            out[name] = np.asarray(raw, dtype=object)
            continue
        try:
            out[name] = np.asarray(raw, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise InputError(f"column {name!r} must hold numbers (NaN when missing): "
                             f"{exc}") from None
    return out


def derive_column(name: str, columns: Mapping[str, Array]) -> Array | None:
    """`score_available` from `score`, `hour` from `timestamp_us`; None when not derivable."""
    if name == "score_available" and "score" in columns:
        return ~np.isnan(np.asarray(columns["score"], dtype=np.float64))
    if name == "hour" and "timestamp_us" in columns:
        ts = np.asarray(columns["timestamp_us"])
        if ts.dtype.kind == "f":  # float with NaN for unknown times (e.g. fixtures)
            return np.floor(ts / _US_PER_HOUR) % 24
        return ((ts.astype(np.int64) // _US_PER_HOUR) % 24).astype(np.float64)
    return None


def _row_count(columns: Mapping[str, Array], n: int | None) -> int:
    if n is not None:
        return n
    for column in columns.values():
        return len(column)
    raise InputError("no columns given: cannot tell how many transactions there are")


def evaluate(
    ruleset: RuleSet,
    columns: Mapping[str, Array],
    *,
    state: GuardrailState | None = None,
    with_reasons: bool = True,
    n: int | None = None,
) -> Decisions:
    """Run every rule over the batch in `columns` and decide each row's action.

    `state` carries the guardrail's sliding windows from batch to batch (pass the same object
    for every batch of a stream; None evaluates with a fresh window, i.e. no history).
    """
    rows = _row_count(columns, n)
    env = Env(prepare_columns(ruleset, columns, rows), rows)
    rules = ruleset.rules
    matches = np.zeros((len(rules), rows), dtype=bool)
    for r, rule in enumerate(rules):
        hit = rule.condition(env)
        if rule.exemption is not None:
            hit = hit & ~rule.exemption(env)
        matches[r] = hit
    guard = state if state is not None else GuardrailState()
    demoted, statuses = guard.apply(ruleset, matches)

    codes = np.array([rule.code if rule.active else 0 for rule in rules], dtype=np.int8)
    effective = matches * codes[:, None]  # int8: each rule's action per row, 0 if none
    if statuses:
        effective[demoted & (effective > 1)] = 1
    if rules:
        action = effective.max(axis=0).astype(np.int8)
        # Rules are in priority order: the first one acting at the row's level decided it.
        first = np.argmax(effective == action[None, :], axis=0)
        ids = np.asarray((*ruleset.rule_ids, ""), dtype=object)
        decided_by = ids[np.where(action > 0, first, len(rules))]
    else:
        action = np.zeros(rows, dtype=np.int8)
        decided_by = np.full(rows, "", dtype=object)
    reasons = _reasons(ruleset, env, matches, demoted, statuses) if with_reasons else []
    return Decisions(
        rules_version=ruleset.version, rule_ids=ruleset.rule_ids,
        rule_actions=tuple(rule.action for rule in rules),
        rule_modes=tuple(rule.mode for rule in rules),
        action=action, matches=matches, demoted=demoted, decided_by=decided_by,
        reasons=reasons, guardrail=statuses,
    )


def _reasons(ruleset: RuleSet, env: Env, matches: npt.NDArray[np.bool_],
             demoted: npt.NDArray[np.bool_],
             statuses: tuple[GuardrailStatus, ...]) -> list[Reasons]:
    out: list[Reasons] = [()] * env.n  # shared empty tuple: most rows match nothing
    max_rates = {s.rule_id: s.max_rate for s in statuses}
    for r, rule in enumerate(ruleset.rules):
        rows = np.flatnonzero(matches[r])
        if not len(rows):
            continue
        texts = rule.reason.render(env.columns, rows)
        prefix = "" if rule.active else "[shadow] "
        demoted_rows = set(np.flatnonzero(demoted[r]).tolist()) if rule.id in max_rates else ()
        note = (f" [demoted from {rule.action} to flag: rule matched more than "
                f"{max_rates.get(rule.id, 0):.2%} of recent transactions]")
        for row, text in zip(rows.tolist(), texts, strict=True):
            suffix = note if rule.active and rule.code > 1 and row in demoted_rows else ""
            out[row] = (*out[row], (rule.id, prefix + text + suffix))
    return out
