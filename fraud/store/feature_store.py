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
  One more item per terminal, bucket `MARK_BUCKET` (-1), counts the label changes ever made
  to each day (attribute ``d<day>``: labels added, and labels retracted by
  `DynamoStateStore.retract_labels`), written after the labels themselves.

Terminal buckets are cached in the worker, and the cache policy is what keeps reads far
below one per transaction. The store keeps an event-time clock (the latest batch time it has
seen); relative to it:

* a *closed* day (before yesterday) gets no more events, except from a shard lagging more
  than a day behind this one: its events are read once and kept. (The engine reads terminal
  windows that end `label_delay_days` before the batch, so in the consumer every bucket it
  reads is closed: after warm-up, event reads stop.)
* an *open* day (today, yesterday) is re-read after `refresh_us` of event time (15 min by
  default), which is how other shards' concurrent ADDs show up; this worker's own ADDs are
  written through to the cache at once. A single worker (replay, one shard) therefore sees
  exactly what an in-memory store sees; several workers see each other's open-day events
  up to `refresh_us` late (a feature window over days tolerates that).
* labels land on closed days (the label feed, days later). Each terminal's marker item is
  re-read after `refresh_us`, one key per terminal instead of one per day; a day whose
  label count moved since its bucket was read is read again. Labels are thus seen at most
  `refresh_us` of event time after they were written, and nothing else is re-read.

On real DynamoDB pass ``consistent_terminal_reads=True`` for the single-worker exactness
above (an eventually consistent read may miss a write made a moment earlier).

`drop_cache()` forgets users, buckets and markers; call it when the worker loses a lease.
Both caches are bounded (`max_cached_users`, `max_cached_buckets`): past the bound a cache
starts over from the current batch, which costs re-reads, never correctness.
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
from fraud.store.marshal import to_item

__all__ = ["MARK_BUCKET", "DynamoStateStore", "decode_events", "decode_labels"]

_log = get_logger(__name__)
I64 = npt.NDArray[np.int64]
U64 = npt.NDArray[np.uint64]
ObjArray = npt.NDArray[np.object_]
_HOUR_US = 3_600_000_000
_DAY_US = 24 * _HOUR_US
MARK_BUCKET = -1  # the bucket number of a terminal's label-count marker item
_LABEL_SCALE = 10**17
_RETRYABLE_CODES = {"TransactionCanceledException", "TransactionConflictException",
                    "ThrottlingException", "ProvisionedThroughputExceededException"}
_RETRYABLE_REASONS = {"None", "TransactionConflict", "ThrottlingError",
                      "ProvisionedThroughputExceeded"}


def decode_events(elements: Iterable[int]) -> npt.NDArray[np.int64]:
    """Rows of (ts_us, hash32) from event Number elements."""
    values = list(elements)
    return np.array([[e >> 32 for e in values], [e & 0xFFFFFFFF for e in values]],
                    dtype=np.int64).T.reshape(-1, 2)


def decode_labels(elements: Iterable[int]) -> npt.NDArray[np.int64]:
    """Rows of (ts_us, hash16, label_time_us) from label Number elements."""
    rows = []
    for e in elements:
        head, delay = divmod(e, _LABEL_SCALE)
        ts = head >> 16
        rows.append((ts, head & 0xFFFF, ts + delay))
    return np.array(rows, dtype=np.int64).reshape(-1, 3)


_EMPTY2 = np.empty((0, 2), dtype=np.int64)
_EMPTY3 = np.empty((0, 3), dtype=np.int64)


@dataclass(slots=True)
class _Bucket:
    events: npt.NDArray[np.int64]  # (n, 2) unique rows
    labels: npt.NDArray[np.int64]  # (n, 3) unique rows
    loaded_at_us: int  # the store's event-time clock when read from DynamoDB
    closed: bool  # the day was closed when read: its events are final
    label_mark: int  # the day's label count on the terminal's marker, as of the read


@dataclass(slots=True)
class _Marks:
    counts: dict[int, int]  # day bucket -> labels ever added to it
    read_at_us: int


def _unique_rows(rows: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    if len(rows) < 2:
        return rows
    unique: npt.NDArray[np.int64] = np.unique(rows, axis=0)
    return unique


def _merge(rows: npt.NDArray[np.int64], more: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    if len(more) == 0:
        return rows
    return _unique_rows(np.concatenate([rows, more]))


class DynamoStateStore:
    """A `fraud.features.store.StateStore` backed by DynamoDB (see the module doc)."""

    def __init__(
        self,
        dynamo: Dynamo,
        *,
        refresh_us: int = _HOUR_US // 4,
        consistent_terminal_reads: bool = False,
        max_cached_buckets: int = 2_000_000,
        retention_days: int = 120,
        max_cached_users: int = 500_000,
    ) -> None:
        self.dynamo = dynamo
        self.refresh_us = refresh_us
        self.consistent_terminal_reads = consistent_terminal_reads
        self.max_cached_buckets = max_cached_buckets
        self.max_cached_users = max_cached_users
        self.retention_s = retention_days * 86_400  # TTL: buckets expire this long after
        self._users: dict[str, UserState] = {}
        self._buckets: dict[tuple[str, int], _Bucket] = {}
        self._marks: dict[str, _Marks] = {}
        self._now_us = np.iinfo(np.int64).min

    def __repr__(self) -> str:
        return (f"DynamoStateStore(prefix={self.dynamo.prefix!r}, cached_users={len(self._users)}, "
                f"cached_buckets={len(self._buckets)})")

    @property
    def cached(self) -> dict[str, int]:
        """How much is cached: users, terminal buckets, terminal markers."""
        return {"users": len(self._users), "buckets": len(self._buckets),
                "markers": len(self._marks)}

    def drop_cache(self) -> None:
        """Forget cached users, terminal buckets and markers (on lease loss, or to re-read)."""
        self._users.clear()
        self._buckets.clear()
        self._marks.clear()

    # -- users ---------------------------------------------------------------------------

    def load_users(self, user_ids: Sequence[str]) -> dict[str, UserState]:
        missing = sorted({u for u in user_ids if u not in self._users})
        if missing and len(self._users) + len(missing) > self.max_cached_users:
            # A bound on memory over a long-lived lease (a cached state holds up to
            # history_k events): start over with this batch's users, read again.
            self._users.clear()
            missing = sorted(set(user_ids))
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
            # Cached per chunk: when a later chunk raises StaleWriteError, the users already
            # written must be cached at their new version, or their next write looks stale.
            for user_id in chunk:
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

    def _advance(self, now_us: int) -> int:
        """The store's event-time clock: the latest batch time it has seen (never goes back)."""
        self._now_us = max(self._now_us, int(now_us))
        return self._now_us

    def load_terminals(
        self, terminal_ids: Sequence[str], since_us: int, until_us: int
    ) -> TerminalSnapshot:
        now = self._advance(int(until_us))
        first, last = day_bucket(int(since_us)), day_bucket(int(until_us))
        terms = [str(t) for t in terminal_ids]
        distinct = list(dict.fromkeys(terms))
        due = [t for t in distinct if t not in self._marks
               or now - self._marks[t].read_at_us >= self.refresh_us]
        if due:
            # Markers first, buckets after: a label written between the two reads is then
            # either in the bucket read or counted by the next marker read, never lost.
            self._fetch_marks(due, now)
        days = range(first, last + 1)
        stale = [(t, b) for t in distinct for b in days if self._bucket_stale(t, b, now)]
        if len(self._buckets) + len(stale) > self.max_cached_buckets:
            self._buckets.clear()  # a crude bound on memory: start over with this batch's
            stale = [(t, b) for t in distinct for b in days]
        if stale:
            self._fetch(stale, now)
        return self._snapshot(terms, int(since_us), int(until_us), first, last)

    def _bucket_stale(self, terminal_id: str, day: int, now_us: int) -> bool:
        bucket = self._buckets.get((terminal_id, day))
        if bucket is None:
            return True
        if bucket.label_mark != self._marks[terminal_id].counts.get(day, 0):
            return True  # somebody added labels to this day since we read it
        return not bucket.closed and now_us - bucket.loaded_at_us >= self.refresh_us

    def _fetch_marks(self, terminal_ids: Sequence[str], now_us: int) -> None:
        got = self.dynamo.batch_get(
            {"TerminalProfiles": [{"terminal_id": t, "bucket": MARK_BUCKET}
                                  for t in terminal_ids]},
            consistent=self.consistent_terminal_reads, raw=True,
        )["TerminalProfiles"]
        for t in terminal_ids:
            self._marks[t] = _Marks({}, now_us)
        for item in got:
            counts = {int(name[1:]): int(value["N"]) for name, value in item.items()
                      if name.startswith("d") and name[1:].isdigit()}
            self._marks[str(item["terminal_id"]["S"])] = _Marks(counts, now_us)

    def _fetch(self, keys: Sequence[tuple[str, int]], now_us: int) -> None:
        got = self.dynamo.batch_get(
            {"TerminalProfiles": [{"terminal_id": t, "bucket": b} for t, b in keys]},
            consistent=self.consistent_terminal_reads, raw=True,
        )["TerminalProfiles"]
        open_from = day_bucket(now_us) - 1
        for t, b in keys:
            self._buckets[(t, b)] = _Bucket(_EMPTY2, _EMPTY3, now_us, b < open_from,
                                            self._marks[t].counts.get(b, 0))
        for item in got:
            key = (str(item["terminal_id"]["S"]), int(item["bucket"]["N"]))
            bucket = self._buckets[key]
            if "events" in item:
                bucket.events = _unique_rows(decode_events(map(int, item["events"]["NS"])))
            if "frauds" in item:
                bucket.labels = _unique_rows(decode_labels(map(int, item["frauds"]["NS"])))

    def _snapshot(self, terminal_ids: Sequence[str], since_us: int, until_us: int,
                  first: int, last: int) -> TerminalSnapshot:
        ev: list[npt.NDArray[np.int64]] = []
        ev_at: list[int] = []
        fr: list[npt.NDArray[np.int64]] = []
        fr_at: list[int] = []
        get = self._buckets.get
        for index, terminal_id in enumerate(terminal_ids):
            for b in range(first, last + 1):
                bucket = get((terminal_id, b))
                if bucket is None:
                    continue
                if len(bucket.events):
                    ev.append(bucket.events)
                    ev_at.append(index)
                if len(bucket.labels):
                    fr.append(bucket.labels)
                    fr_at.append(index)
        events, ev_t = _gather(ev, ev_at, 2, since_us, until_us)
        labels, fr_t = _gather(fr, fr_at, 3, since_us, until_us)
        return TerminalSnapshot(
            ev_t,
            np.ascontiguousarray(events[:, 0]),
            events[:, 1].astype(np.uint64),
            fr_t,
            np.ascontiguousarray(labels[:, 0]),
            labels[:, 1].astype(np.uint64),
            np.ascontiguousarray(labels[:, 2]),
        )

    def add_terminal_events(self, terminal_ids: ObjArray, ts_us: I64, tx_hash: U64) -> None:
        ts = np.asarray(ts_us, dtype=np.int64)
        if not len(ts):
            return
        h32 = (np.asarray(tx_hash, dtype=np.uint64) & np.uint64(0xFFFFFFFF)).astype(np.int64)
        rows = np.column_stack([ts, h32])
        elements = [(t << 32) + h for t, h in zip(ts.tolist(), h32.tolist(), strict=True)]
        groups = _group(terminal_ids, ts)
        self._transact("events", [
            self._bucket_add("events", key, {elements[i] for i in idx})
            for key, idx in groups.items()])
        for key, idx in groups.items():  # write-through: keep cached buckets current
            bucket = self._buckets.get(key)
            if bucket is not None:
                bucket.events = _merge(bucket.events, rows[idx])
        self._advance(int(ts.max()))

    def apply_labels(
        self, terminal_ids: ObjArray, ts_us: I64, tx_hash: U64, label_time_us: I64
    ) -> None:
        self._change_labels(terminal_ids, ts_us, tx_hash, label_time_us, retract=False)

    def retract_labels(
        self, terminal_ids: ObjArray, ts_us: I64, tx_hash: U64, label_time_us: I64
    ) -> None:
        """Take fraud labels out again (``DELETE`` from the set): a label corrected to "not
        fraud", or one whose label time changed (the label feed then adds the new one).

        The arguments are those the label was applied with; removing a label that is not
        there changes nothing, so a retried or repeated retraction is harmless.
        """
        self._change_labels(terminal_ids, ts_us, tx_hash, label_time_us, retract=True)

    def _change_labels(self, terminal_ids: ObjArray, ts_us: I64, tx_hash: U64,
                       label_time_us: I64, *, retract: bool) -> None:
        ts = np.asarray(ts_us, dtype=np.int64)
        if not len(ts):
            return
        h16 = (np.asarray(tx_hash, dtype=np.uint64) & np.uint64(0xFFFF)).astype(np.int64)
        lt = np.asarray(label_time_us, dtype=np.int64)
        delay = np.clip(lt - ts, 0, _LABEL_SCALE - 1)
        # The stored label time is what the element can carry (delay clamped), as in memory.
        rows = np.column_stack([ts, h16, ts + delay])
        elements = [((t << 16) + h) * _LABEL_SCALE + d
                    for t, h, d in zip(ts.tolist(), h16.tolist(), delay.tolist(), strict=True)]
        groups = _group(terminal_ids, ts)
        changed = {key: {elements[i] for i in idx} for key, idx in groups.items()}
        self._transact("frauds", [self._bucket_add("frauds", key, elems, retract)
                                  for key, elems in changed.items()])
        # Only once the change is durable, count it on each terminal's marker (readers
        # re-read a day whose count moved, whether labels came or went; see the module doc).
        per_terminal: dict[str, dict[int, int]] = {}
        for (t, b), elems in changed.items():
            per_terminal.setdefault(t, {})[b] = len(elems)
        self._transact("label marks", [self._mark_add(t, days)
                                       for t, days in per_terminal.items()])
        for (t, b), idx in groups.items():  # write-through, marker counts included
            marks = self._marks.get(t)
            if marks is None:
                continue
            old = marks.counts.get(b, 0)
            marks.counts[b] = old + len(changed[(t, b)])
            bucket = self._buckets.get((t, b))
            if bucket is not None:
                bucket.labels = (_without(bucket.labels, rows[idx]) if retract
                                 else _merge(bucket.labels, rows[idx]))
                if bucket.label_mark == old:
                    bucket.label_mark = marks.counts[b]

    def _bucket_add(self, attribute: str, key: tuple[str, int], elems: set[int],
                    retract: bool = False) -> dict[str, Any]:
        t, b = key
        return {"Update": {
            "TableName": self.dynamo.name("TerminalProfiles"),
            "Key": {"terminal_id": {"S": t}, "bucket": {"N": str(b)}},
            "UpdateExpression": f"{'DELETE' if retract else 'ADD'} #a :e SET expires_at = :x",
            "ExpressionAttributeNames": {"#a": attribute},
            "ExpressionAttributeValues": {
                ":e": {"NS": [str(e) for e in elems]},
                ":x": {"N": str((b + 1) * 86_400 + self.retention_s)},
            },
        }}

    def _mark_add(self, terminal_id: str, days: Mapping[int, int]) -> dict[str, Any]:
        adds = ", ".join(f"#d{j} :d{j}" for j in range(len(days)))
        values: dict[str, Any] = {f":d{j}": {"N": str(n)} for j, n in enumerate(days.values())}
        values[":x"] = {"N": str((max(days) + 1) * 86_400 + self.retention_s)}
        return {"Update": {
            "TableName": self.dynamo.name("TerminalProfiles"),
            "Key": {"terminal_id": {"S": terminal_id}, "bucket": {"N": str(MARK_BUCKET)}},
            "UpdateExpression": f"ADD {adds} SET expires_at = :x",
            "ExpressionAttributeNames": {f"#d{j}": f"d{b}" for j, b in enumerate(days)},
            "ExpressionAttributeValues": values,
        }}

    def _transact(self, what: str, items: Sequence[dict[str, Any]]) -> None:
        for start in range(0, len(items), TRANSACT_LIMIT):
            self._transact_chunk(what, items[start:start + TRANSACT_LIMIT])

    def _transact_chunk(self, what: str, items: Sequence[dict[str, Any]]) -> None:
        backoff = self.dynamo.backoff
        for attempt in range(backoff.attempts + 1):
            if attempt:
                backoff.wait(attempt)
            try:
                self.dynamo.client.transact_write_items(TransactItems=list(items))
                return
            except ClientError as exc:
                # ADD is idempotent for sets, so re-sending after a conflict or throttle is
                # safe; a marker counter may count a retried label twice, which only costs
                # readers one extra re-read.
                reasons = {str(r.get("Code")) for r in exc.response.get("CancellationReasons")
                           or []} - _RETRYABLE_REASONS
                if reasons or error_code(exc) not in _RETRYABLE_CODES:
                    raise StoreError(
                        f"DynamoDB transact_write_items on TerminalProfiles ({what}): "
                        f"{error_code(exc)}: {sorted(reasons)}: {exc}"
                    ) from exc
                _log.debug("terminal.add_retry", attempt=attempt, code=error_code(exc))
        raise StoreError(f"DynamoDB transact_write_items on TerminalProfiles ({what}): "
                         f"still conflicting after {backoff.attempts} retries")


def _group(terminal_ids: ObjArray, ts: I64) -> dict[tuple[str, int], list[int]]:
    """Row indices per (terminal, day bucket)."""
    groups: dict[tuple[str, int], list[int]] = {}
    days = (ts // _DAY_US).tolist()
    for i, (terminal_id, day) in enumerate(zip(terminal_ids.tolist(), days, strict=True)):
        groups.setdefault((str(terminal_id), day), []).append(i)
    return groups


def _gather(parts: list[npt.NDArray[np.int64]], owners: list[int], width: int,
            since_us: int, until_us: int) -> tuple[npt.NDArray[np.int64], I64]:
    """Cached rows of many buckets as one array (and each row's terminal index), in range."""
    if not parts:
        return np.empty((0, width), dtype=np.int64), np.empty(0, dtype=np.int64)
    rows = np.concatenate(parts)
    index = np.repeat(np.asarray(owners, dtype=np.int64), [len(p) for p in parts])
    keep = (rows[:, 0] >= since_us) & (rows[:, 0] <= until_us)
    return rows[keep], index[keep]


def _without(rows: npt.NDArray[np.int64], gone: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """`rows` less every row of `gone` (both (n, 3) label rows)."""
    if len(rows) == 0 or len(gone) == 0:
        return rows
    drop = {tuple(r) for r in gone.tolist()}
    keep = np.array([tuple(r) not in drop for r in rows.tolist()], dtype=bool)
    kept: npt.NDArray[np.int64] = rows[keep]
    return kept


def _with_version(state: UserState, version: int) -> UserState:
    return UserState(state.ts, state.amount, state.terminal, state.device, state.tx,
                     state.count, state.amount_sum, state.loc_count, state.lat_sum,
                     state.lon_sum, version)
