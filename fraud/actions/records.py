"""What each action produces, as plain records: the pure core of the action sinks (no I/O).

From one `Outcome` this builds, for every row that got an action, the decision item (written
first, the outbox), the case item for a ``flag``, and - from a *stored* decision item, so that
a redelivery re-sends exactly what the first delivery decided - the decisions-stream payload of
a ``block`` and the alert message of an ``alert``. Nothing here holds a card number: a
transaction carries none in its canonical fields, and only ids, amounts and reasons are copied.

>>> item = {"transaction_id": "t1", "user_id": "u1", "action": "block", "score": 0.97,
...         "rule_hits": ["high_score"], "reasons": ["high_score: score 0.97"],
...         "model_version": "m1", "rules_version": "r1", "ts": 5, "decided_at": 6}
>>> stream_payload(item)["rule_ids"]
['high_score']
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from fraud.pipeline import Outcome
from fraud.store.decisions import Case, Decision

__all__ = [
    "EFFECTS_DONE",
    "EFFECTS_PENDING",
    "PUBLISHED_ACTIONS",
    "ActionRow",
    "action_rows",
    "alert_message",
    "encode",
    "stream_payload",
]

EFFECTS_PENDING = "pending"
EFFECTS_DONE = "done"
# Actions whose effect leaves DynamoDB (and so needs the outbox); a flag's case is written in
# the same transaction as its decision, so a flag is done as soon as it is written.
PUBLISHED_ACTIONS = ("block", "alert")


@dataclass(frozen=True, slots=True)
class ActionRow:
    """One transaction with an action: its decision item and, for a flag, its case."""

    transaction_id: str
    action: str
    decision: dict[str, Any]
    case: dict[str, Any] | None

    def __repr__(self) -> str:  # ids and action only: the item holds the customer id
        return f"ActionRow({self.transaction_id!r}, {self.action!r})"


def _score(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def action_rows(outcome: Outcome, decided_at_us: int, source: str = "") -> list[ActionRow]:
    """Decision (and case) items for every row of `outcome` with an action, in batch order.

    Decision items carry ``effects`` = ``pending`` for actions published outside DynamoDB
    (the outbox marker) and ``done`` for flags; `source` (e.g. the shard id) and the row's
    position (its sequence number) say where the transaction came from.
    """
    actions = outcome.actions()
    batch = outcome.batch
    rows: list[ActionRow] = []
    for i in np.flatnonzero(actions != "").tolist():
        action = str(actions[i])
        tid = str(batch.transaction_id[i])
        score = _score(float(outcome.score[i]))
        reasons = tuple(f"{rule}: {text}" for rule, text in outcome.decisions.reasons[i])
        decision = Decision(
            transaction_id=tid, user_id=str(batch.user_id[i]),
            ts_us=int(batch.timestamp_us[i]), action=action, score=score,
            rule_hits=tuple(outcome.decisions.matched(i)), reasons=reasons,
            model_version=outcome.model_version, rules_version=outcome.rules_version,
            decided_at_us=decided_at_us,
        )
        item = decision.item()
        item.update(
            amount=float(batch.amount[i]),
            currency=str(batch.currency[i]),
            terminal_id=str(batch.terminal_id[i]),
            model_reasons=[f"{r['feature']}={r['value']:.6g}"
                           for r in outcome.model_reasons.row(i)],
            source=source,
            position=str(batch.position[i]),
            effects=EFFECTS_PENDING if action in PUBLISHED_ACTIONS else EFFECTS_DONE,
        )
        case = None
        if action == "flag":
            case = Case(transaction_id=tid, user_id=str(batch.user_id[i]),
                        created_at_us=decided_at_us, action=action, score=score,
                        reasons=reasons).item()
        rows.append(ActionRow(tid, action, item, case))
    return rows


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def stream_payload(item: dict[str, Any]) -> dict[str, Any]:
    """The decisions-stream record of a stored decision, for the authorising system."""
    return {
        "transaction_id": str(item["transaction_id"]),
        "user_id": str(item.get("user_id", "")),
        "action": str(item.get("action", "")),
        "score": _number(item.get("score")),
        "rule_ids": [str(r) for r in item.get("rule_hits", [])],
        "reasons": [str(r) for r in item.get("reasons", [])],
        "model_version": str(item.get("model_version", "")),
        "rules_version": str(item.get("rules_version", "")),
        "ts": int(item.get("ts", 0)),
        "decided_at": int(item.get("decided_at", 0)),
    }


def alert_message(item: dict[str, Any]) -> dict[str, Any]:
    """The customer alert of a stored decision: ids, amount and reasons, nothing else."""
    return {
        "transaction_id": str(item["transaction_id"]),
        "user_id": str(item.get("user_id", "")),
        "amount": _number(item.get("amount")),
        "currency": str(item.get("currency", "")),
        "action": str(item.get("action", "")),
        "reasons": [str(r) for r in item.get("reasons", [])],
        "ts": int(item.get("ts", 0)),
    }


def encode(payload: dict[str, Any]) -> str:
    """Compact, key-sorted JSON (the same decision always encodes to the same bytes)."""
    return json.dumps(payload, separators=(",", ":"), sort_keys=True, allow_nan=False)
