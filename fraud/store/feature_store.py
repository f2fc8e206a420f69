"""The feature engine's `StateStore` on DynamoDB.

Layout:

* ``UserProfiles``: one item per user, ``state`` (the encoded `UserState`, binary) and
  ``version``. A user has a single writer (the worker holding its shard), so states are cached
  in the worker and written back with TransactWriteItems (100 per request) whose condition is
  ``version = :read_version`` (``attribute_not_exists`` for a new user): a stale writer gets
  `StaleWriteError` naming the users, never a silent overwrite. A failed condition whose
  stored item is exactly this write (a retried request that had landed) is success.
* ``TerminalProfiles``: one item per (terminal_id, day bucket) with two Number Sets,
  ``events`` and ``frauds`` (see `fraud.features.store.event_element` / `label_element`).
  Writes are ``ADD`` (atomic, idempotent set union) from every shard, sent as Update actions
  of TransactWriteItems, 100 (terminal, day) items per request, since BatchWriteItem cannot
  ADD. Each bucket carries ``expires_at`` (TTL) `retention_days` after its day ends.
  Reads are BatchGetItem of the day buckets in range; buckets already read are cached and kept
  current by this worker's own writes. Other shards' events and late labels show up
  when a cached bucket is re-read: the current and previous day's buckets after `refresh_us`
  of event time (default 15 min), older buckets (which only late labels still change) after
  `refresh_closed_us` (default 6 h). A single worker (replay) thus sees exactly what an
  in-memory store sees (on real DynamoDB pass ``consistent_terminal_reads=True`` for that:
  an eventually consistent read may miss a write made a moment earlier); several workers see
  each other's terminal events that much later.

`drop_cache()` forgets everything; call it when the worker loses a shard lease.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from botocore.exceptions import ClientError

from fraud.errors import StaleWriteError, StoreError
from fraud.features.store import TerminalSnapshot, UserState, day_bucket
from fraud.logs import get_logger
from fraud.store.dynamo import TRANSACT_LIMIT, Dynamo, error_code
from fraud.store.marshal import number_text, to_item

__all__ = ["DynamoStateStore", "decode_events", "decode_labels"]

_log = get_logger(__name__)
I64 = npt.NDArray[np.int64]
U64 = npt.NDArray[np.uint64]
ObjArray = npt.NDArray[np.object_]
_HOUR_US = 3_600_000_000
_LABEL_SCALE = 10**17
_RETRYABLE_CODES = {"TransactionCanceledException", "TransactionConflictException",
                    "ThrottlingException", "ProvisionedThroughputExceededException"}
_RETRYABLE_REASONS = {"None", "TransactionConflict", "ThrottlingError",
                      "ProvisionedThroughputExceeded"}


def decode_events(elements: Iterable[int]) -> npt.NDArray[np.int64]:
    """Rows of (ts_us, hash32) from event Number elements."""
    rows = [(e >> 32, e & 0xFFFFFFFF) for e in elements]
    return np.array(rows, dtype=np.int64).reshape(-1, 2)


def decode_labels(elements: Iterable[int]) -> npt.NDArray[np.int64]:
    """Rows of (ts_us, hash16, label_time_us) from label Number elements."""
    rows = []
    for e in elements:
        head, delay = divmod(e, _LABEL_SCALE)
        ts = head >> 16
        rows.append((ts, head & 0xFFFF, ts + delay))
    return np.array(rows, dtype=np.int64).reshape(-1, 3)


@dataclass(slots=True)
class _Bucket:
    events: npt.NDArray[np.int64]  # (n, 2) unique rows
    labels: npt.NDArray[np.int64]  # (n, 3) unique rows
    loaded_at_us: int  # event time (the batch's `until_us`) when read from DynamoDB


def _merge(rows: npt.NDArray[np.int64], more: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    if len(more) == 0:
        return rows
    merged: npt.NDArray[np.int64] = np.unique(np.concatenate([rows, more]), axis=0)
    return merged


class DynamoStateStore:
    """A `fraud.features.store.StateStore` backed by DynamoDB (see the module doc)."""

    def __init__(
        self,
        dynamo: Dynamo,
        *,
        refresh_us: int = _HOUR_US // 4,
        refresh_closed_us: int = 6 * _HOUR_US,
        consistent_terminal_reads: bool = False,
        max_cached_buckets: int = 2_000_000,
        retention_days: int = 120,
    ) -> None:
        self.dynamo = dynamo
        self.refresh_us = refresh_us
        self.refresh_closed_us = refresh_closed_us
        self.consistent_terminal_reads = consistent_terminal_reads
        self.max_cached_buckets = max_cached_buckets
        self.retention_s = retention_days * 86_400  # TTL: buckets expire this long after
        self._users: dict[str, UserState] = {}
        self._buckets: dict[tuple[str, int], _Bucket] = {}

    def __repr__(self) -> str:
        return (f"DynamoStateStore(prefix={self.dynamo.prefix!r}, cached_users={len(self._users)}, "
                f"cached_buckets={len(self._buckets)})")

    def drop_cache(self) -> None:
        """Forget cached users and terminal buckets (on lease loss, or to force re-reads)."""
        self._users.clear()
        self._buckets.clear()

    # -- users ---------------------------------------------------------------------------

    def load_users(self, user_ids: Sequence[str]) -> dict[str, UserState]:
        missing = sorted({u for u in user_ids if u not in self._users})
        if missing:
            got = self.dynamo.batch_get(
                {"UserProfiles": [{"user_id": u} for u in missing]},
                projection={"UserProfiles": ("user_id", "state", "version")},
                consistent=True,
            )["UserProfiles"]
            for item in got:
                user_id = str(item["user_id"])
                self._users[user_id] = UserState.decode(bytes(item["state"]),
                                                        int(item["version"]))
        return {u: self._users[u] for u in user_ids if u in self._users}

    def save_users(self, states: Mapping[str, UserState]) -> None:
        ids = list(states)
        for start in range(0, len(ids), TRANSACT_LIMIT):
            chunk = ids[start:start + TRANSACT_LIMIT]
            self._save_chunk(chunk, states)
        for user_id in ids:
            state = states[user_id]
            self._users[user_id] = _with_version(state, state.version + 1)

    def _save_chunk(self, ids: Sequence[str], states: Mapping[str, UserState]) -> None:
        todo = list(ids)
        backoff = self.dynamo.backoff
        for attempt in range(backoff.attempts + 1):
            if attempt:
                backoff.wait(attempt)
            try:
                self.dynamo.client.transact_write_items(
                    TransactItems=[self._versioned_put(u, states[u]) for u in todo])
                return
            except ClientError as exc:
                reasons = exc.response.get("CancellationReasons") or []
                failed = [todo[j] for j, r in enumerate(reasons)
                          if r.get("Code") == "ConditionalCheckFailed"]
                if not failed:
                    if error_code(exc) in _RETRYABLE_CODES:
                        continue
                    raise StoreError(f"DynamoDB transact_write_items on UserProfiles: "
                                     f"{error_code(exc)}: {exc}") from exc
                mine = self._already_written(failed, states)
                stale = [u for u in failed if u not in mine]
                if stale:
                    self._stale(stale, exc)
                todo = [u for u in todo if u not in mine]
                if not todo:
                    return
        raise StoreError("DynamoDB transact_write_items on UserProfiles: still conflicting "
                         f"after {backoff.attempts} retries")

    def _versioned_put(self, user_id: str, state: UserState) -> dict[str, Any]:
        put: dict[str, Any] = {
            "TableName": self.dynamo.name("UserProfiles"),
            "Item": to_item({"user_id": user_id, "state": state.encode(),
                             "version": state.version + 1}),
        }
        if state.version == 0:
            put["ConditionExpression"] = "attribute_not_exists(user_id)"
        else:
            put["ConditionExpression"] = "version = :v"
            put["ExpressionAttributeValues"] = {":v": {"N": str(state.version)}}
        return {"Put": put}

    def _already_written(self, ids: Sequence[str], states: Mapping[str, UserState]) -> set[str]:
        """Users whose stored item is exactly this write (a retried request that had landed).

        botocore retries a request whose response was lost; the retry then fails its own
        version condition. That is not a lost race, so it must not raise StaleWriteError.
        """
        got = self.dynamo.batch_get({"UserProfiles": [{"user_id": u} for u in ids]},
                                    consistent=True)["UserProfiles"]
        mine: set[str] = set()
        for item in got:
            user_id = str(item["user_id"])
            state = states[user_id]
            if int(item["version"]) == state.version + 1 and \
                    bytes(item["state"]) == state.encode():
                mine.add(user_id)
        return mine

    def _stale(self, stale: Sequence[str], exc: Exception) -> None:
        for user_id in stale:
            self._users.pop(user_id, None)
        shown = ", ".join(repr(u) for u in stale[:5])
        more = f" and {len(stale) - 5} more" if len(stale) > 5 else ""
        raise StaleWriteError(
            f"user state {shown}{more}: stored version differs from the version read "
            "(another writer updated it; this worker's cache is stale)"
        ) from exc

    # -- terminals -----------------------------------------------------------------------

    def load_terminals(
        self, terminal_ids: Sequence[str], since_us: int, until_us: int
    ) -> TerminalSnapshot:
        first, last = day_bucket(int(since_us)), day_bucket(int(until_us))
        wanted = [(str(t), b) for t in dict.fromkeys(terminal_ids)
                  for b in range(first, last + 1)]
        stale = [k for k in wanted if not self._fresh(k, int(until_us))]
        if stale:
            self._fetch(stale, int(until_us))
        return self._snapshot(terminal_ids, int(since_us), int(until_us), first, last)

    def _fresh(self, key: tuple[str, int], now_us: int) -> bool:
        bucket = self._buckets.get(key)
        if bucket is None:
            return False
        closed = key[1] < day_bucket(now_us) - 1
        limit = self.refresh_closed_us if closed else self.refresh_us
        return now_us - bucket.loaded_at_us < limit

    def _fetch(self, keys: Sequence[tuple[str, int]], now_us: int) -> None:
        if len(self._buckets) + len(keys) > self.max_cached_buckets:
            self._buckets.clear()  # crude bound on memory; the next batches re-read
        got = self.dynamo.batch_get(
            {"TerminalProfiles": [{"terminal_id": t, "bucket": b} for t, b in keys]},
            consistent=self.consistent_terminal_reads,
        )["TerminalProfiles"]
        empty2 = np.empty((0, 2), dtype=np.int64)
        empty3 = np.empty((0, 3), dtype=np.int64)
        for key in keys:
            self._buckets[key] = _Bucket(empty2, empty3, now_us)
        for item in got:
            key = (str(item["terminal_id"]), int(item["bucket"]))
            self._buckets[key] = _Bucket(
                np.unique(decode_events(item.get("events", ())), axis=0),
                np.unique(decode_labels(item.get("frauds", ())), axis=0),
                now_us,
            )

    def _snapshot(self, terminal_ids: Sequence[str], since_us: int, until_us: int,
                  first: int, last: int) -> TerminalSnapshot:
        ev_t: list[I64] = []
        ev: list[npt.NDArray[np.int64]] = []
        fr_t: list[I64] = []
        fr: list[npt.NDArray[np.int64]] = []
        for index, terminal_id in enumerate(terminal_ids):
            for b in range(first, last + 1):
                bucket = self._buckets.get((str(terminal_id), b))
                if bucket is None:
                    continue
                rows = bucket.events
                rows = rows[(rows[:, 0] >= since_us) & (rows[:, 0] <= until_us)]
                if len(rows):
                    ev.append(rows)
                    ev_t.append(np.full(len(rows), index, dtype=np.int64))
                lab = bucket.labels
                lab = lab[(lab[:, 0] >= since_us) & (lab[:, 0] <= until_us)]
                if len(lab):
                    fr.append(lab)
                    fr_t.append(np.full(len(lab), index, dtype=np.int64))
        events = np.concatenate(ev) if ev else np.empty((0, 2), dtype=np.int64)
        labels = np.concatenate(fr) if fr else np.empty((0, 3), dtype=np.int64)
        empty = np.empty(0, dtype=np.int64)
        return TerminalSnapshot(
            np.concatenate(ev_t) if ev_t else empty,
            np.ascontiguousarray(events[:, 0]),
            events[:, 1].astype(np.uint64),
            np.concatenate(fr_t) if fr_t else empty,
            np.ascontiguousarray(labels[:, 0]),
            labels[:, 1].astype(np.uint64),
            np.ascontiguousarray(labels[:, 2]),
        )

    def add_terminal_events(self, terminal_ids: ObjArray, ts_us: I64, tx_hash: U64) -> None:
        ts = np.asarray(ts_us, dtype=np.int64)
        h32 = (np.asarray(tx_hash, dtype=np.uint64) & np.uint64(0xFFFFFFFF)).astype(np.int64)
        rows = np.column_stack([ts, h32])
        elements = [(int(t) << 32) + int(h) for t, h in rows]
        self._add("events", terminal_ids, ts, rows, elements)

    def apply_labels(
        self, terminal_ids: ObjArray, ts_us: I64, tx_hash: U64, label_time_us: I64
    ) -> None:
        ts = np.asarray(ts_us, dtype=np.int64)
        h16 = (np.asarray(tx_hash, dtype=np.uint64) & np.uint64(0xFFFF)).astype(np.int64)
        lt = np.asarray(label_time_us, dtype=np.int64)
        delay = np.clip(lt - ts, 0, _LABEL_SCALE - 1)
        # The stored label time is what the element can carry (delay clamped), as in memory.
        rows = np.column_stack([ts, h16, ts + delay])
        elements = [((int(t) << 16) + int(h)) * _LABEL_SCALE + int(d)
                    for t, h, d in zip(ts, h16, delay, strict=True)]
        self._add("frauds", terminal_ids, ts, rows, elements)

    def _add(self, attribute: str, terminal_ids: ObjArray, ts: I64,
             rows: npt.NDArray[np.int64], elements: Sequence[int]) -> None:
        groups: dict[tuple[str, int], list[int]] = {}
        for i, terminal_id in enumerate(terminal_ids):
            groups.setdefault((str(terminal_id), day_bucket(int(ts[i]))), []).append(i)
        keys = list(groups)
        for start in range(0, len(keys), TRANSACT_LIMIT):
            chunk = keys[start:start + TRANSACT_LIMIT]
            self._transact_add(attribute, [(k, {elements[i] for i in groups[k]})
                                           for k in chunk])
        for key, idx in groups.items():  # write-through: keep cached buckets current
            bucket = self._buckets.get(key)
            if bucket is None:
                continue
            if attribute == "events":
                bucket.events = _merge(bucket.events, rows[idx])
            else:
                bucket.labels = _merge(bucket.labels, rows[idx])

    def _transact_add(self, attribute: str,
                      updates: Sequence[tuple[tuple[str, int], set[int]]]) -> None:
        items = [
            {"Update": {
                "TableName": self.dynamo.name("TerminalProfiles"),
                "Key": to_item({"terminal_id": t, "bucket": b}),
                "UpdateExpression": "ADD #a :e SET expires_at = :x",
                "ExpressionAttributeNames": {"#a": attribute},
                "ExpressionAttributeValues": {
                    ":e": {"NS": [number_text(e) for e in elems]},
                    ":x": {"N": str((b + 1) * 86_400 + self.retention_s)},
                },
            }}
            for (t, b), elems in updates
        ]
        backoff = self.dynamo.backoff
        for attempt in range(backoff.attempts + 1):
            if attempt:
                backoff.wait(attempt)
            try:
                self.dynamo.client.transact_write_items(TransactItems=items)
                return
            except ClientError as exc:
                # Set union is idempotent, so re-sending after a conflict or throttle is safe.
                reasons = {str(r.get("Code")) for r in exc.response.get("CancellationReasons")
                           or []} - _RETRYABLE_REASONS
                if reasons or error_code(exc) not in _RETRYABLE_CODES:
                    raise StoreError(
                        f"DynamoDB transact_write_items on TerminalProfiles ({attribute}): "
                        f"{error_code(exc)}: {sorted(reasons)}: {exc}"
                    ) from exc
                _log.debug("terminal.add_retry", attempt=attempt, code=error_code(exc))
        raise StoreError(f"DynamoDB transact_write_items on TerminalProfiles ({attribute}): "
                         f"still conflicting after {backoff.attempts} retries")


def _with_version(state: UserState, version: int) -> UserState:
    return UserState(state.ts, state.amount, state.terminal, state.device, state.tx,
                     state.count, state.amount_sum, state.loc_count, state.lat_sum,
                     state.lon_sum, version)
