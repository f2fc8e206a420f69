"""The label feed: chargebacks and confirmed fraud, arriving days after the transactions.

For each label (transaction_id, is_fraud, label_time) the transaction is found in
TransactionHistory through its ``by_transaction`` index; then

* the history item gets ``is_fraud`` and ``label_time`` (a conditional update that is a no-op
  when the same label is already there, so a repeat is reported, not re-counted);
* fraud labels go to the terminal state through `FeatureEngine.apply_labels`, i.e. ``ADD`` to
  the terminal's fraud Number Set: a set union, so applying a label twice counts once.

A label whose transaction is not (or no longer) in the history is reported as unmatched.
A later "not fraud" does not remove an earlier fraud label from the terminal set (the
feature engine's terminal state is add-only); it does update the history item.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from fraud.errors import StoreError
from fraud.features.api import DAY_US, LabelBatch
from fraud.features.store import StateStore
from fraud.schema.batch import MISSING_TIME
from fraud.schema.files import Labels
from fraud.store.dynamo import Dynamo, error_code
from fraud.store.history import HistoryRef, find_transactions

__all__ = ["Label", "LabelReport", "apply_labels", "labels_of"]

@dataclass(frozen=True, slots=True)
class Label:
    """One label from the feed. `label_time_us` is `MISSING_TIME` when the feed has none."""

    transaction_id: str
    is_fraud: int
    label_time_us: int
    position: str


@dataclass(slots=True)
class LabelReport:
    """What a label feed did. `repeated`: the same label was already applied."""

    labels: int = 0
    matched: int = 0
    updated: int = 0
    repeated: int = 0
    fraud_labels_sent: int = 0
    unmatched: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {"labels": self.labels, "matched": self.matched, "updated": self.updated,
                "repeated": self.repeated, "fraud_labels_sent": self.fraud_labels_sent,
                "unmatched": len(self.unmatched), "unmatched_examples": self.unmatched[:10]}


def labels_of(feed: Labels) -> list[Label]:
    """The accepted rows of a label file (`fraud.schema.files.read_labels`: the one reader of
    label files, with ``--columns`` and the same rejection rules as transactions)."""
    return [Label(str(tx), int(flag), int(when), str(where)) for tx, flag, when, where in zip(
        feed.transaction_id, feed.is_fraud, feed.label_time_us, feed.position, strict=True)]


def apply_labels(
    dynamo: Dynamo,
    store: StateStore,
    labels: Iterable[Label],
    label_delay_days: float = 7.0,
    chunk: int = 500,
) -> LabelReport:
    """Apply labels to TransactionHistory and the terminal fraud sets (idempotent)."""
    from fraud.features.api import FeatureConfig
    from fraud.features.engine import FeatureEngine

    engine = FeatureEngine(FeatureConfig(label_delay_days=label_delay_days))
    delay_us = round(label_delay_days * DAY_US)
    report = LabelReport()
    pending = list(labels)
    for start in range(0, len(pending), chunk):
        part = pending[start:start + chunk]
        report.labels += len(part)
        refs = find_transactions(dynamo, [lab.transaction_id for lab in part])
        frauds: list[tuple[Label, HistoryRef, int]] = []
        for lab in part:
            ref = refs.get(lab.transaction_id)
            if ref is None:
                report.unmatched.append(lab.transaction_id)
                continue
            report.matched += 1
            label_time = ref.ts_us + delay_us if lab.label_time_us == MISSING_TIME \
                else lab.label_time_us
            if _update_history(dynamo, ref, lab.is_fraud, label_time):
                report.updated += 1
            else:
                report.repeated += 1
            if lab.is_fraud == 1:
                frauds.append((lab, ref, label_time))
        if frauds:
            batch = LabelBatch.from_columns(
                [lab.transaction_id for lab, _, _ in frauds],
                [ref.terminal_id for _, ref, _ in frauds],
                np.array([ref.ts_us for _, ref, _ in frauds], dtype=np.int64),
                np.ones(len(frauds), dtype=np.int8),
                np.array([t for _, _, t in frauds], dtype=np.int64),
            )
            report.fraud_labels_sent += engine.apply_labels(batch, store)
    return report


def _update_history(dynamo: Dynamo, ref: HistoryRef, is_fraud: int, label_time_us: int) -> bool:
    """Set the label on the history item; False when that very label was already there."""
    try:
        dynamo.call(
            "update_item", "TransactionHistory", TableName=dynamo.name("TransactionHistory"),
            Key={"user_id": {"S": ref.user_id}, "sk": {"S": ref.sk}},
            UpdateExpression="SET is_fraud = :f, label_time = :t",
            ConditionExpression=("attribute_exists(sk) AND (attribute_not_exists(is_fraud) "
                                 "OR is_fraud <> :f OR label_time <> :t)"),
            ExpressionAttributeValues=Dynamo.values(f=is_fraud, t=label_time_us),
        )
    except StoreError as exc:
        if error_code(exc.__cause__) == "ConditionalCheckFailedException":
            return False
        raise
    return True

