"""Decisions, investigation cases and dead letters: written once, whatever the redeliveries.

Kinesis redelivers records after a crash, so each of these writes is "first write wins":
a Put conditioned on ``attribute_not_exists`` of the key (the transaction id, the case id
derived from it, the dead letter's source#sequence). A repeat is a no-op and is reported as a
duplicate, so the caller can skip the alert it would otherwise send twice.

BatchWriteItem cannot carry conditions, so these go through TransactWriteItems, up to 100
items per request (`Dynamo.put_once`); decisions and cases of one batch share requests.
Only transactions with an action (block/alert/flag) get a decision record - they are rare,
which keeps requests per transaction far below one; every transaction's outcome is in
TransactionHistory anyway (see `fraud.store.history`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from fraud.errors import InputError, StoreError
from fraud.store.dynamo import ConditionalPut, Dynamo, error_code

__all__ = [
    "MAX_PAYLOAD_BYTES",
    "Case",
    "DeadLetter",
    "Decision",
    "PutOutcome",
    "case_id_for",
    "get_decision",
    "list_cases",
    "set_case_status",
    "write_dead_letters",
    "write_decisions",
]

MAX_PAYLOAD_BYTES = 64 * 1024  # raw payload kept in a dead letter (an item holds 400 KB)
CASE_STATUSES = ("open", "investigating", "confirmed_fraud", "not_fraud", "closed")


@dataclass(frozen=True, slots=True)
class Decision:
    """What the rules decided about one transaction. `score` is None when not computed."""

    transaction_id: str
    user_id: str
    ts_us: int
    action: str
    score: float | None
    rule_hits: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()
    model_version: str = ""
    rules_version: str = ""
    decided_at_us: int = 0

    def item(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            "transaction_id": self.transaction_id, "user_id": self.user_id, "ts": self.ts_us,
            "action": self.action, "rule_hits": list(self.rule_hits),
            "reasons": list(self.reasons), "model_version": self.model_version,
            "rules_version": self.rules_version, "decided_at": self.decided_at_us,
        }
        if self.score is not None:
            item["score"] = float(self.score)
        return item


def case_id_for(transaction_id: str) -> str:
    """Case ids derive from the transaction id, so a redelivery finds the same case."""
    return f"case-{transaction_id}"


@dataclass(frozen=True, slots=True)
class Case:
    """A transaction flagged for investigation."""

    transaction_id: str
    user_id: str
    created_at_us: int
    action: str
    score: float | None
    reasons: tuple[str, ...] = ()
    status: str = "open"

    @property
    def case_id(self) -> str:
        return case_id_for(self.transaction_id)

    def item(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            "case_id": self.case_id, "transaction_id": self.transaction_id,
            "user_id": self.user_id, "created_at": self.created_at_us, "action": self.action,
            "reasons": list(self.reasons), "status": self.status,
        }
        if self.score is not None:
            item["score"] = float(self.score)
        return item


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record that could not be parsed or processed: where it was, why, and its bytes."""

    source: str  # e.g. the shard id or the input file
    sequence: str  # sequence number or line
    error: str
    payload: bytes
    at_us: int

    @property
    def letter_id(self) -> str:
        return f"{self.source}#{self.sequence}"

    def __repr__(self) -> str:  # never the payload: it may hold card data
        return f"DeadLetter({self.letter_id!r}, error={self.error!r})"

    def item(self) -> dict[str, Any]:
        return {
            "letter_id": self.letter_id, "source": self.source, "sequence": self.sequence,
            "error": self.error[:2000], "payload": self.payload[:MAX_PAYLOAD_BYTES],
            "payload_bytes": len(self.payload),
            "truncated": len(self.payload) > MAX_PAYLOAD_BYTES, "at": self.at_us,
        }


@dataclass(frozen=True, slots=True)
class PutOutcome:
    """Ids written now and ids that were already there (repeats: do not act again)."""

    written: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)


def _split(puts: Sequence[ConditionalPut], ids: Sequence[str], dynamo: Dynamo) -> PutOutcome:
    if not puts:
        return PutOutcome()
    written, existing = dynamo.put_once(puts)
    return PutOutcome([ids[i] for i in written], [ids[i] for i in existing])


def write_decisions(dynamo: Dynamo, decisions: Sequence[Decision],
                    cases: Sequence[Case] = ()) -> tuple[PutOutcome, PutOutcome]:
    """Write decisions and cases once each; returns (decision outcome, case outcome)."""
    puts = [ConditionalPut("Decisions", d.item(), "transaction_id") for d in decisions]
    puts += [ConditionalPut("Cases", c.item(), "case_id") for c in cases]
    ids = [d.transaction_id for d in decisions] + [c.case_id for c in cases]
    outcome = _split(puts, ids, dynamo)
    n = len(decisions)
    dec_ids = set(ids[:n])
    return (
        PutOutcome([i for i in outcome.written if i in dec_ids],
                   [i for i in outcome.duplicates if i in dec_ids]),
        PutOutcome([i for i in outcome.written if i not in dec_ids],
                   [i for i in outcome.duplicates if i not in dec_ids]),
    )


def write_dead_letters(dynamo: Dynamo, letters: Sequence[DeadLetter]) -> PutOutcome:
    """Write dead letters once each (a redelivered bad record is not stored twice)."""
    puts = [ConditionalPut("DeadLetters", d.item(), "letter_id") for d in letters]
    return _split(puts, [d.letter_id for d in letters], dynamo)


def get_decision(dynamo: Dynamo, transaction_id: str) -> dict[str, Any] | None:
    """The stored decision of a transaction, or None."""
    return dynamo.get("Decisions", {"transaction_id": transaction_id})


def list_cases(dynamo: Dynamo, status: str = "open", limit: int | None = None
               ) -> list[dict[str, Any]]:
    """Cases with `status`, oldest first (the GSI by status and created_at)."""
    kwargs: dict[str, Any] = {
        "IndexName": "by_status",
        "KeyConditionExpression": "#s = :s",
        "ExpressionAttributeNames": {"#s": "status"},
        "ExpressionAttributeValues": Dynamo.values(s=status),
        "ScanIndexForward": True,
    }
    if limit is not None:
        kwargs["Limit"] = limit
    return dynamo.query_all("Cases", **kwargs)


def set_case_status(dynamo: Dynamo, case_id: str, status: str, at_us: int) -> None:
    """Move a case to `status` (the case must exist)."""
    if status not in CASE_STATUSES:
        raise InputError(f"case status {status!r} is not one of {', '.join(CASE_STATUSES)}")
    try:
        _update_case(dynamo, case_id, status, at_us)
    except StoreError as exc:
        if error_code(exc.__cause__) == "ConditionalCheckFailedException":
            raise InputError(f"no case {case_id!r}") from exc
        raise


def _update_case(dynamo: Dynamo, case_id: str, status: str, at_us: int) -> None:
    dynamo.call(
        "update_item", "Cases", TableName=dynamo.name("Cases"),
        Key={"case_id": {"S": case_id}},
        UpdateExpression="SET #s = :s, updated_at = :t",
        ConditionExpression="attribute_exists(case_id)",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues=Dynamo.values(s=status, t=at_us),
    )
