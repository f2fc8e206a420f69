"""The label feed: chargebacks and confirmed fraud, arriving days after the transactions.

For each label (transaction_id, is_fraud, label_time) the transaction is found in
TransactionHistory: by its item key when the feed also carries the transaction's ``user_id``
and ``timestamp`` (a transaction file does; 100 keys per BatchGetItem), else through the
``by_transaction`` index (a query per label). The label it carries now (if any)
is read from the history item itself (a consistent BatchGetItem, 100 items per request).
The new label is then compared with the stored one:

* the same label: a repeat, nothing is written (applying a feed twice counts once);
* otherwise the terminal's fraud set changes first - the new fraud label ``ADD``-ed, a fraud
  label that no longer holds (corrected to "not fraud", or with another label time)
  ``DELETE``-d (`DynamoStateStore.retract_labels`), both idempotent set operations - and then
  the history item gets the new label, on condition that it still carries the label read.

That order makes a crash harmless: until the history item changes, a re-run sees the old
label again and redoes the same (idempotent) set changes. A history item changed by someone
else in between is reported as a conflict and left for the next run.

A label whose transaction is not (or no longer) in the history is reported as unmatched.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from fraud.errors import StoreError
from fraud.features.api import DAY_US, LabelBatch
from fraud.features.ids import stable_hash
from fraud.features.store import StateStore, label_element
from fraud.schema.batch import MISSING_TIME
from fraud.schema.files import Labels
from fraud.store.dynamo import Dynamo, error_code
from fraud.store.history import HistoryRef, find_by_key, find_transactions

__all__ = ["Label", "LabelReport", "Retracting", "apply_labels", "labels_of"]


@runtime_checkable
class Retracting(Protocol):
    """A state store that can take fraud labels out again (`DynamoStateStore` can)."""

    def retract_labels(self, terminal_ids: npt.NDArray[np.object_],
                       ts_us: npt.NDArray[np.int64], tx_hash: npt.NDArray[np.uint64],
                       label_time_us: npt.NDArray[np.int64]) -> None: ...


@dataclass(frozen=True, slots=True)
class Label:
    """One label from the feed. `label_time_us` is `MISSING_TIME` when the feed has none."""

    transaction_id: str
    is_fraud: int
    label_time_us: int
    position: str
    user_id: str = ""  # with timestamp_us, the history item's key: found without a query
    timestamp_us: int = MISSING_TIME


@dataclass(slots=True)
class LabelReport:
    """What a label feed did.

    `repeated`: the same label was already there (nothing written). `retracted`: fraud labels
    taken out of terminal sets (corrected to "not fraud", or re-dated). `conflicts`: history
    items changed by another writer during the run (run the feed again).
    """

    labels: int = 0
    matched: int = 0
    updated: int = 0
    repeated: int = 0
    fraud_labels_sent: int = 0
    retracted: int = 0
    unmatched: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {"labels": self.labels, "matched": self.matched, "updated": self.updated,
                "repeated": self.repeated, "fraud_labels_sent": self.fraud_labels_sent,
                "retracted": self.retracted, "conflicts": len(self.conflicts),
                "unmatched": len(self.unmatched), "unmatched_examples": self.unmatched[:10]}


def labels_of(feed: Labels) -> list[Label]:
    """The accepted rows of a label file (`fraud.schema.files.read_labels`: the one reader of
    label files, with ``--columns`` and the same rejection rules as transactions)."""
    n = len(feed)
    users = feed.user_id if feed.user_id is not None else [""] * n
    stamps = feed.timestamp_us if feed.timestamp_us is not None else [MISSING_TIME] * n
    return [Label(str(tx), int(flag), int(when), str(where), str(user), int(ts))
            for tx, flag, when, where, user, ts in zip(
                feed.transaction_id, feed.is_fraud, feed.label_time_us, feed.position, users,
                stamps, strict=True)]


def apply_labels(
    dynamo: Dynamo,
    store: StateStore,
    labels: Iterable[Label],
    label_delay_days: float = 7.0,
    chunk: int = 500,
) -> LabelReport:
    """Apply labels to TransactionHistory and the terminal fraud sets (idempotent).

    A store that cannot retract labels (not `Retracting`, e.g. the in-memory one) keeps a
    fraud label that a later "not fraud" withdraws; `DynamoStateStore` removes it.
    """
    from fraud.features.api import FeatureConfig
    from fraud.features.engine import FeatureEngine

    engine = FeatureEngine(FeatureConfig(label_delay_days=label_delay_days))
    delay_us = round(label_delay_days * DAY_US)
    report = LabelReport()
    pending = list(labels)
    for start in range(0, len(pending), chunk):
        part = pending[start:start + chunk]
        report.labels += len(part)
        refs = find_by_key(dynamo, [(lab.transaction_id, lab.user_id, lab.timestamp_us)
                                    for lab in part
                                    if lab.user_id and lab.timestamp_us != MISSING_TIME])
        refs.update(find_transactions(dynamo, [lab.transaction_id for lab in part
                                               if lab.transaction_id not in refs]))
        matched = [(lab, refs[lab.transaction_id]) for lab in part
                   if lab.transaction_id in refs]
        report.unmatched.extend(lab.transaction_id for lab in part
                                if lab.transaction_id not in refs)
        stored = _stored_labels(dynamo, [ref for _, ref in matched])
        changes: list[tuple[HistoryRef, _Stored, tuple[int, int]]] = []
        for lab, ref in matched:
            if (ref.user_id, ref.sk) not in stored:  # expired (TTL) since the index saw it
                report.unmatched.append(lab.transaction_id)
                continue
            report.matched += 1
            label_time = ref.ts_us + delay_us if lab.label_time_us == MISSING_TIME \
                else lab.label_time_us
            old = stored[(ref.user_id, ref.sk)]
            new = (lab.is_fraud, label_time)
            if old == new:
                report.repeated += 1
            else:
                changes.append((ref, old, new))
        adds = [(ref, new[1]) for ref, _, new in changes if new[0] == 1]
        drops = [(ref, old[1]) for ref, old, new in changes
                 if old is not None and old[0] == 1
                 and (new[0] != 1 or _element_delay(ref, old[1]) != _element_delay(ref, new[1]))]
        if adds:
            report.fraud_labels_sent += engine.apply_labels(_label_batch(adds), store)
        if drops and isinstance(store, Retracting):
            gone = _label_batch(drops)
            store.retract_labels(gone.terminal_id, gone.timestamp_us,
                                 stable_hash(gone.transaction_id), gone.label_time_us)
            report.retracted += len(drops)
        for ref, old, new in changes:
            if _update_history(dynamo, ref, old, new):
                report.updated += 1
            else:
                report.conflicts.append(ref.transaction_id)
    return report


# What a history item says now: (is_fraud, label_time), or None when unlabelled.
_Stored = tuple[int, int] | None


def _stored_labels(dynamo: Dynamo, refs: Sequence[HistoryRef]
                   ) -> dict[tuple[str, str], _Stored]:
    """The label each history item carries now (consistent reads, 100 keys per request)."""
    if not refs:
        return {}
    got = dynamo.batch_get(
        {"TransactionHistory": [{"user_id": r.user_id, "sk": r.sk} for r in refs]},
        projection={"TransactionHistory": ("user_id", "sk", "is_fraud", "label_time")},
        consistent=True,
    )["TransactionHistory"]
    out: dict[tuple[str, str], _Stored] = {}
    for item in got:
        key = (str(item["user_id"]), str(item["sk"]))
        if "is_fraud" in item:
            out[key] = (int(item["is_fraud"]), int(item.get("label_time", MISSING_TIME)))
        else:
            out[key] = None
    return out


def _element_delay(ref: HistoryRef, label_time_us: int) -> int:
    """The label delay a terminal's set element carries (clamped as the store clamps it): two
    label times with the same delay are one element, which must not be retracted."""
    return int(label_element(ref.ts_us, 0, label_time_us) % 10**17)


def _label_batch(rows: Sequence[tuple[HistoryRef, int]]) -> LabelBatch:
    """Fraud labels of these transactions, known at the given label times."""
    return LabelBatch.from_columns(
        [ref.transaction_id for ref, _ in rows],
        [ref.terminal_id for ref, _ in rows],
        np.array([ref.ts_us for ref, _ in rows], dtype=np.int64),
        np.ones(len(rows), dtype=np.int8),
        np.array([t for _, t in rows], dtype=np.int64),
    )


def _update_history(dynamo: Dynamo, ref: HistoryRef, old: _Stored,
                    new: tuple[int, int]) -> bool:
    """Set the label on the history item if it still carries `old`; False when it does not."""
    if old is None:
        condition = "attribute_exists(sk) AND attribute_not_exists(is_fraud)"
        values = Dynamo.values(f=new[0], t=new[1])
    else:
        condition = "is_fraud = :of AND label_time = :ot"
        values = Dynamo.values(f=new[0], t=new[1], of=old[0], ot=old[1])
    try:
        dynamo.call(
            "update_item", "TransactionHistory", TableName=dynamo.name("TransactionHistory"),
            Key={"user_id": {"S": ref.user_id}, "sk": {"S": ref.sk}},
            UpdateExpression="SET is_fraud = :f, label_time = :t",
            ConditionExpression=condition, ExpressionAttributeValues=values,
        )
    except StoreError as exc:
        if error_code(exc.__cause__) == "ConditionalCheckFailedException":
            return False
        raise
    return True
