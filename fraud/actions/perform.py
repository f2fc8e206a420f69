"""Perform a batch's actions exactly once, on a stream that delivers at least once.

The outbox pattern, per batch (all writes batched; actions are rare):

1. Decision items are written "first write wins" (TransactWriteItems conditioned on
   ``attribute_not_exists``), a flag's case in the *same* transaction as its decision. A
   ``block`` or ``alert`` decision is written with ``effects = pending``; a flag is ``done``
   (its only effect, the case, is already durable).
2. Decisions that already existed (a redelivery) are read back (one consistent
   BatchGetItem per 100): those still ``pending`` had their publish cut short, and are
   published again *from the stored item*, so a changed rule set cannot change a decision
   already made.
3. ``block`` -> PutRecords to the decisions stream (partition key: the customer);
   ``alert`` -> SNS PublishBatch to the alert topic. Each message carries the transaction id.
4. The published decisions are set to ``effects = done`` (TransactWriteItems of updates,
   100 per request), including the ones that went out before another failed; then, if any
   publish failed, `StoreError` is raised so the batch is retried and never checkpointed.

A normal batch costs two DynamoDB requests per 100 actioned transactions (the puts and the
``done`` updates), whatever its size; a redelivery one more read.

The one remaining at-least-once window: a crash (or a lost response) *after* a publish
succeeded and *before* its ``done`` update is durable. The redelivered batch then publishes
that decision again. Consumers absorb it by the idempotency key: the stream payload's
``transaction_id`` (the authorising system must key on it), SNS's ``MessageDeduplicationId``
on a FIFO topic (5-minute window), the ``transaction_id`` message attribute otherwise. The
same holds for the moment two workers both hold a shard (a lease changing hands): both may
find a decision pending and publish it. A decision is never published zero times, and never
decided twice. A decision item without ``effects`` (written by other code) counts as done.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from fraud.actions.publish import AlertTopic, Message, PublishResult, put_stream_records
from fraud.actions.records import (
    EFFECTS_DONE,
    EFFECTS_PENDING,
    ActionRow,
    action_rows,
    alert_message,
    encode,
    stream_payload,
)
from fraud.errors import StoreError
from fraud.logs import get_logger
from fraud.pipeline import Outcome
from fraud.store.dynamo import TRANSACT_LIMIT, Backoff, ConditionalPut, Dynamo

__all__ = ["ActionPerformer", "Clock", "EffectsReport"]

Clock = Callable[[], float]  # seconds since the epoch, like time.time

_log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class EffectsReport:
    """What one `perform` call did. Ids are transaction ids.

    `written`: decisions recorded now; `duplicates`: decisions already there (redelivery);
    `resumed`: duplicates still pending whose publishes were sent again; `streamed` /
    `alerted`: messages that went out; `cases`: cases opened now.
    """

    actioned: int = 0
    written: tuple[str, ...] = ()
    duplicates: tuple[str, ...] = ()
    resumed: tuple[str, ...] = ()
    streamed: tuple[str, ...] = ()
    alerted: tuple[str, ...] = ()
    cases: tuple[str, ...] = ()

    def __str__(self) -> str:
        return (f"actioned={self.actioned} written={len(self.written)} "
                f"duplicates={len(self.duplicates)} resumed={len(self.resumed)} "
                f"streamed={len(self.streamed)} alerted={len(self.alerted)} "
                f"cases={len(self.cases)}")


@dataclass(slots=True)
class _Tally:
    written: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    cases: list[str] = field(default_factory=list)


def _groups(rows: Sequence[ActionRow]) -> list[list[ActionRow]]:
    """Rows in groups of at most `TRANSACT_LIMIT` items, never splitting decision and case."""
    groups: list[list[ActionRow]] = [[]]
    size = 0
    for row in rows:
        items = 2 if row.case is not None else 1
        if size + items > TRANSACT_LIMIT:
            groups.append([])
            size = 0
        groups[-1].append(row)
        size += items
    return [g for g in groups if g]


class ActionPerformer:
    """Performs `Outcome` actions: decision records, decisions stream, alerts, cases.

    Every client is passed in (a `Dynamo`, boto3 ``sns`` and ``kinesis`` clients), and so is
    the clock that stamps ``decided_at``; `backoff` paces publish retries.
    """

    def __init__(
        self,
        *,
        dynamo: Dynamo,
        sns: Any,
        kinesis: Any,
        alert_topic: str,
        decisions_stream: str,
        clock: Clock,
        backoff: Backoff | None = None,
    ) -> None:
        self.dynamo = dynamo
        self.kinesis = kinesis
        self.decisions_stream = decisions_stream
        self.clock = clock
        self.backoff = backoff or Backoff()
        self.topic = AlertTopic(sns, alert_topic, self.backoff)

    def __repr__(self) -> str:
        return f"ActionPerformer(stream={self.decisions_stream!r}, topic={self.topic.topic!r})"

    def perform(self, outcome: Outcome, *, shard_id: str = "",
                decided_before: Collection[str] = ()) -> EffectsReport:
        """Perform every action of `outcome` once; safe to call again with the same outcome.

        `decided_before` names redelivered transactions whose decision was already made and
        recorded: they are not decided afresh (a redelivered row's features are approximate),
        but their stored decisions still pending publication are resumed, whatever the new
        score says.

        Raises `StoreError` when an effect could not be made durable: the caller must not
        checkpoint past this batch, and a retry completes exactly what is missing.
        """
        now_us = round(self.clock() * 1_000_000)
        again = set(decided_before)
        rows = [r for r in action_rows(outcome, now_us, shard_id)
                if r.transaction_id not in again]
        if not rows and not again:
            return EffectsReport()
        tally = _Tally()
        mine = {row.transaction_id: row for row in rows}
        for group in _groups(rows):
            self._write(group, tally)
        pending = [mine[t].decision for t in tally.written
                   if mine[t].decision["effects"] == EFFECTS_PENDING]
        resumed = self._still_pending([*tally.duplicates, *sorted(again)])
        to_stream = [i for i in pending + resumed if i.get("action") == "block"]
        to_alert = [i for i in pending + resumed if i.get("action") == "alert"]
        streamed = self._stream(to_stream)
        alerted = self.topic.publish([_message(i, alert_message(i)) for i in to_alert])
        self._mark_done(streamed.published + alerted.published)
        report = EffectsReport(
            actioned=len(rows), written=tuple(tally.written), duplicates=tuple(tally.duplicates),
            resumed=tuple(str(i["transaction_id"]) for i in resumed),
            streamed=tuple(streamed.published), alerted=tuple(alerted.published),
            cases=tuple(tally.cases),
        )
        failed = streamed.failed + alerted.failed
        if failed:
            raise StoreError(
                f"{len(failed)} decision(s) not published (left pending; a retry of the batch "
                f"sends them): stream {streamed.error or 'ok'}; alerts {alerted.error or 'ok'}"
            )
        if report.duplicates:
            _log.info("actions.redelivered", shard_id=shard_id,
                      duplicates=len(report.duplicates), resumed=len(report.resumed))
        return report

    # -- steps -----------------------------------------------------------------------------

    def _write(self, group: Sequence[ActionRow], tally: _Tally) -> None:
        puts: list[ConditionalPut] = []
        owners: list[tuple[str, bool]] = []  # (transaction id, is the case item)
        for row in group:
            puts.append(ConditionalPut("Decisions", row.decision, "transaction_id"))
            owners.append((row.transaction_id, False))
            if row.case is not None:
                puts.append(ConditionalPut("Cases", row.case, "case_id"))
                owners.append((row.transaction_id, True))
        written, existing = self.dynamo.put_once(puts)
        for index in written:
            tid, is_case = owners[index]
            (tally.cases if is_case else tally.written).append(tid)
        tally.duplicates.extend(owners[i][0] for i in existing if not owners[i][1])

    def _still_pending(self, duplicates: Sequence[str]) -> list[dict[str, Any]]:
        if not duplicates:
            return []
        found = self.dynamo.batch_get(
            {"Decisions": [{"transaction_id": t} for t in duplicates]}, consistent=True)
        order = {t: k for k, t in enumerate(duplicates)}
        pending = [i for i in found["Decisions"] if i.get("effects") == EFFECTS_PENDING]
        return sorted(pending, key=lambda i: order[str(i["transaction_id"])])

    def _stream(self, items: Sequence[dict[str, Any]]) -> PublishResult:
        if not items:
            return PublishResult()
        return put_stream_records(self.kinesis, self.decisions_stream,
                                  [_message(i, stream_payload(i)) for i in items], self.backoff)

    def _mark_done(self, transaction_ids: Sequence[str]) -> None:
        at = round(self.clock() * 1_000_000)
        for start in range(0, len(transaction_ids), TRANSACT_LIMIT):
            chunk = transaction_ids[start:start + TRANSACT_LIMIT]
            updates = [{"Update": {
                "TableName": self.dynamo.name("Decisions"),
                "Key": {"transaction_id": {"S": t}},
                "UpdateExpression": "SET effects = :done, effects_at = :at",
                "ConditionExpression": "attribute_exists(transaction_id)",
                "ExpressionAttributeValues": Dynamo.values(done=EFFECTS_DONE, at=at),
            }} for t in chunk]
            self.dynamo.call("transact_write_items", "Decisions", TransactItems=updates)


def _message(item: dict[str, Any], payload: dict[str, Any]) -> Message:
    return Message(str(item["transaction_id"]), str(item.get("user_id", "")), encode(payload))
