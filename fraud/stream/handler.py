"""The fraud pipeline as the consumer's `BatchHandler`: one instance per KCL child (per shard).

For each `process_records` batch, in this order, and only then does the processor
checkpoint:

1. decode and validate every payload (`fraud.schema.parse`); a bad record is dead-lettered
   with its shard, sequence number, reason and a bounded copy of its bytes;
2. features from the DynamoDB state store (which also writes the state back, versioned),
   score, rules (`fraud.pipeline`), with the rules file hot-reloaded between batches;
3. actions, exactly once per transaction (`fraud.actions`), the S3 archive, and the
   TransactionHistory item of every transaction (with its arrival and decision times).

A failure in 2 or 3 raises: the processor retries the batch and never checkpoints past it.
Redelivered records are harmless: the feature state skips events it already holds, every
effect is keyed by transaction id, and a redelivered transaction keeps what was recorded for
it (its history item, or the decision written before a crash, whose pending effects resume);
only one with nothing recorded is decided again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from fraud.config import Settings
from fraud.features import FeatureConfig, FeatureEngine
from fraud.logs import get_logger
from fraud.model.scorer import build_scorer
from fraud.pipeline import Outcome, Pipeline
from fraud.rules import RuleSet, default_vocabulary
from fraud.rules.reload import RulesWatcher
from fraud.schema.batch import TransactionBatch
from fraud.schema.parse import parse_payloads
from fraud.store.clients import RequestCounter, make_client
from fraud.store.decisions import DeadLetter, write_dead_letters
from fraud.store.dynamo import Dynamo
from fraud.store.feature_store import DynamoStateStore
from fraud.store.history import history_sort_key, write_history
from fraud.store.support import read_support
from fraud.stream.processor import StreamRecord

__all__ = ["PipelineHandler"]

log = get_logger(__name__)


class PipelineHandler:
    """Runs `fraud.pipeline` on each Kinesis batch and performs its effects.

    Every dependency with a side effect is built from `settings` unless passed in: the boto3
    clients (`clients`, by service name), the clock (`clock`, seconds since the epoch, used
    only to stamp records and measure latency, never inside features).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        clients: dict[str, Any] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        from fraud.actions import ActionPerformer, Archive

        self.settings = settings
        self.clock = clock
        self.counter = RequestCounter()
        given = clients or {}

        def client(service: str) -> Any:
            if service in given:
                self.counter.attach(given[service])
                return given[service]
            return make_client(service, settings, counter=self.counter)

        self.dynamo = Dynamo(client("dynamodb"), prefix=settings.table_prefix)
        self.store = DynamoStateStore(self.dynamo)
        s3 = client("s3")
        self.rules = RulesWatcher(settings.rules_path, vocabulary=default_vocabulary(),
                                  s3_client=s3, interval=settings.rules_reload_seconds)
        self.pipeline = Pipeline(
            FeatureEngine(FeatureConfig(label_delay_days=settings.label_delay_days,
                                        history_k=settings.history_k)),
            self.store, build_scorer(settings, given.get("sagemaker-runtime")),
            self._current_rules,
            support=lambda batch: read_support(self.dynamo, batch),
        )
        self.actions = ActionPerformer(
            dynamo=self.dynamo, sns=client("sns"), kinesis=client("kinesis"),
            alert_topic=settings.alert_topic, decisions_stream=settings.decisions_stream,
            clock=clock,
        )
        self.archive = (Archive(s3, settings.archive_uri, clock=clock)
                        if settings.archive_uri else None)
        self.transactions = 0
        self._handled: tuple[str, int | None] | None = None
        self._durable: tuple[str, int | None] | None = None

    def _current_rules(self) -> RuleSet:
        self.rules.poll()  # cheap until the interval passes; logs reloads and refusals
        return self.rules.current

    # -- BatchHandler -------------------------------------------------------------------------

    def durable_position(self, shard_id: str) -> tuple[str, int | None] | None:
        """The last record whose effects are all durable: where the checkpoint may go.

        Archive rows wait in a buffer until it is flushed (by size or time); until then the
        checkpoint stays before them, so a crash redelivers them instead of losing them.
        """
        return self._durable

    def handle(self, shard_id: str, records: Sequence[StreamRecord]) -> None:
        started = time.perf_counter()
        cpu_started = time.process_time()
        requests_before = self.counter.total("dynamodb")
        if self.archive is not None and self.archive.maybe_flush():
            self._durable = self._handled
        parsed = parse_payloads([r.data for r in records],
                                [r.sequence_number for r in records],
                                columns=self.settings.payload_columns)
        now_us = int(self.clock() * 1_000_000)
        if parsed.rejections:
            letters = [
                DeadLetter(source=shard_id, sequence=records[int(i)].sequence_number,
                           error=str(rejection), payload=records[int(i)].data, at_us=now_us)
                for i, rejection in zip(parsed.rejected, parsed.rejections, strict=True)
            ]
            write_dead_letters(self.dynamo, letters)
            log.warning("records_dead_lettered", shard_id=shard_id, count=len(letters),
                        reasons=sorted({r.reason for r in parsed.rejections})[:5])
        batch = parsed.batch
        if len(batch):
            outcome = self.pipeline.process(batch)
            recorded, decided = self._recorded(batch, outcome)
            effects = self.actions.perform(outcome, shard_id=shard_id,
                                           decided_before=recorded | decided.keys())
            if self.archive is not None:
                self.archive.add(outcome, shard_id=shard_id,
                                 first_sequence=records[0].sequence_number,
                                 last_sequence=records[-1].sequence_number)
            arrival = np.asarray([records[int(i)].arrival_ms for i in parsed.accepted],
                                 dtype=np.int64)
            decided_us = int(self.clock() * 1_000_000)
            # A row decided before keeps the history written when it was decided; one whose
            # decision was recorded but not its history gets the recorded action and score.
            fresh = ~np.isin(batch.transaction_id, list(recorded))
            scores, actions = outcome.score.copy(), outcome.actions().astype(object)
            for i in np.flatnonzero(np.isin(batch.transaction_id, list(decided))).tolist():
                item = decided[str(batch.transaction_id[i])]
                actions[i] = str(item.get("action", ""))
                scores[i] = float(item["score"]) if item.get("score") is not None else np.nan
            write_history(
                self.dynamo, batch.take(fresh), scores[fresh], actions[fresh].tolist(),
                effective_time_us=outcome.features.effective_time_us[fresh],
                numbers={"arrival_ms": arrival[fresh],
                         "decided_at": np.full(int(fresh.sum()), decided_us, dtype=np.int64)},
            )
            latency_ms = decided_us / 1000.0 - arrival
            self._log_batch(shard_id, records, parsed, outcome, effects, latency_ms, started,
                            cpu_started, requests_before)
        last = records[-1]
        self._handled = (last.sequence_number, last.sub_sequence_number)
        if self.archive is None or self.archive.buffered_rows == 0:
            self._durable = self._handled

    def _recorded(self, batch: TransactionBatch,
                  outcome: Outcome) -> tuple[set[str], dict[str, dict[str, Any]]]:
        """Redelivered transactions decided before: those whose whole decision was recorded
        (history item, written last), and those whose decision item was written (an action)
        while a crash came before their history.

        A redelivered row's features are computed against a state that already holds it, so
        its new outcome may differ from the first; a recorded decision wins (its pending
        effects resume), and the new outcome is used only for rows nothing was recorded for.
        Both lookups go in one BatchGetItem.
        """
        again = outcome.features.redelivered
        if again is None or not again.any():
            return set(), {}
        ids = [str(x) for x in batch.transaction_id[again]]
        keys = [{"user_id": str(u), "sk": history_sort_key(int(t), x)}
                for u, t, x in zip(batch.user_id[again], batch.timestamp_us[again], ids,
                                   strict=True)]
        found = self.dynamo.batch_get(
            {"TransactionHistory": keys, "Decisions": [{"transaction_id": x} for x in ids]},
            consistent=True)
        recorded = {str(i["transaction_id"]) for i in found["TransactionHistory"]
                    if "decided_at" in i}
        decided = {str(i["transaction_id"]): i for i in found["Decisions"]
                   if str(i["transaction_id"]) not in recorded}
        return recorded, decided

    def _log_batch(self, shard_id: str, records: Sequence[StreamRecord], parsed: Any,
                   outcome: Any, effects: Any, latency_ms: Any, started: float,
                   cpu_started: float, requests_before: int) -> None:
        self.transactions += len(parsed.batch)
        log.info(
            "batch_decided", shard_id=shard_id, records=len(records),
            decided=len(parsed.batch), rejected=len(parsed.rejections),
            actions=_counts(outcome.actions()), effects=str(effects),
            rules_version=outcome.rules_version, model_version=outcome.model_version,
            latency_ms_p50=round(float(np.percentile(latency_ms, 50)), 1),
            latency_ms_max=round(float(latency_ms.max()), 1),
            seconds=round(time.perf_counter() - started, 4),
            # This process's CPU and requests for the batch: what a benchmark of the real
            # daemon adds up (the emulators' and the JVM's CPU are elsewhere).
            cpu_seconds=round(time.process_time() - cpu_started, 5),
            dynamodb_requests=self.counter.total("dynamodb") - requests_before,
            dynamodb_requests_per_tx=round(
                self.counter.per(self.transactions, "dynamodb"), 4),
        )

    def on_lease_lost(self, shard_id: str) -> None:
        # Another worker owns the shard's customers now: our cached state may go stale.
        self.store.drop_cache()

    def flush(self, shard_id: str) -> None:
        if self.archive is not None:
            self.archive.flush()
        self._durable = self._handled


def _counts(actions: Any) -> dict[str, int]:
    names, counts = np.unique(np.where(actions == "", "none", actions).astype(str),
                              return_counts=True)
    return {str(n): int(c) for n, c in zip(names, counts, strict=True)}

