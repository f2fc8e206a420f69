"""Feature state: the per-user record, the terminal event sets, and the store Protocol.

Two kinds of state, shaped for how DynamoDB can hold them:

* **User state** has a single writer (the shard that owns the user), so it is one compact
  byte string plus a version: the last K events and a few running aggregates.
  `UserState.encode()` / `decode()` carry a format byte first so the layout can evolve.
* **Terminal state** is written by every shard, so it is additive: a *set* of elements per
  (terminal, day bucket). An event element is its timestamp tie-broken by a hash of the
  transaction id, so a redelivered transaction adds nothing (DynamoDB: ``ADD`` to a Number
  Set, an atomic idempotent union). Fraud labels are a second set whose elements also carry
  the label time. `event_element` / `label_element` give the exact Number encodings (at most
  38 digits, DynamoDB's limit); `InMemoryStore` keeps the very same logical content.

All store methods take whole batches; nothing here makes per-record calls.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from fraud.errors import StoreError
from fraud.features.ids import dense_codes
from fraud.features.usertable import AGGREGATES, EVENT_COLUMNS, UserColumns, UserTable
from fraud.schema.batch import MISSING_TIME

__all__ = [
    "USER_STATE_FORMAT",
    "InMemoryStore",
    "StateStore",
    "TerminalSnapshot",
    "UserState",
    "columns_of",
    "day_bucket",
    "event_element",
    "label_element",
    "states_of",
]

I64 = npt.NDArray[np.int64]
U64 = npt.NDArray[np.uint64]
F64 = npt.NDArray[np.float64]
ObjArray = npt.NDArray[np.object_]

USER_STATE_FORMAT = 1
_HEADER = struct.Struct("<BIqdqdd")  # format, n events, count, amount_sum, loc_n, lat/lon sums
_EVENT_BYTES = 8 * 5
_EVENT_DTYPES = (("<i8", np.int64), ("<f8", np.float64), ("<u8", np.uint64),
                 ("<u8", np.uint64), ("<u8", np.uint64))
_DAY_US = 86_400_000_000


def day_bucket(ts_us: int) -> int:
    """The day bucket (days since the epoch, UTC) an event at `ts_us` belongs to."""
    return ts_us // _DAY_US


def event_element(ts_us: int, tx_hash: int) -> int:
    """A terminal event as one DynamoDB Number: ``ts_us * 2**32 + low 32 bits of the hash``.

    Valid for 0 <= ts_us < 2**53 (26 digits at most).
    """
    return int(ts_us) * (1 << 32) + (int(tx_hash) & 0xFFFFFFFF)


def label_element(ts_us: int, tx_hash: int, label_time_us: int) -> int:
    """A fraud label as one Number: ``(ts_us * 2**16 + hash16) * 10**17 + delay_us``.

    ``delay_us = label_time_us - ts_us`` (clamped to >= 0, < 10**17): 38 digits at most.
    """
    delay = min(max(int(label_time_us) - int(ts_us), 0), 10**17 - 1)
    return (int(ts_us) * (1 << 16) + (int(tx_hash) & 0xFFFF)) * 10**17 + delay


def _empty_i64() -> I64:
    return np.empty(0, dtype=np.int64)


@dataclass(frozen=True, slots=True, eq=False)
class UserState:
    """One user's state: the last (at most K) events, oldest first, and running aggregates.

    Events hold the *effective* time (see the out-of-order policy), the amount, hashes of the
    terminal, device (0 = none) and transaction id. Aggregates cover the user's whole history:
    event count and amount sum (for the usual amount), located events and their lat/lon sums
    (for the usual location). `version` is the version this state was read at (0 = new);
    a store writes it back only if the stored version still equals it.
    """

    ts: I64 = field(default_factory=_empty_i64)
    amount: F64 = field(default_factory=lambda: np.empty(0, dtype=np.float64))
    terminal: U64 = field(default_factory=lambda: np.empty(0, dtype=np.uint64))
    device: U64 = field(default_factory=lambda: np.empty(0, dtype=np.uint64))
    tx: U64 = field(default_factory=lambda: np.empty(0, dtype=np.uint64))
    count: int = 0
    amount_sum: float = 0.0
    loc_count: int = 0
    lat_sum: float = 0.0
    lon_sum: float = 0.0
    version: int = 0

    def __len__(self) -> int:
        return len(self.ts)

    @property
    def last_time_us(self) -> int:
        return int(self.ts[-1]) if len(self.ts) else int(MISSING_TIME)

    def encode(self) -> bytes:
        """Compact bytes for a DynamoDB binary attribute (40 bytes per event + 45 header)."""
        head = _HEADER.pack(USER_STATE_FORMAT, len(self.ts), self.count, self.amount_sum,
                            self.loc_count, self.lat_sum, self.lon_sum)
        body = b"".join(
            np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
            for a in (self.ts, self.amount, self.terminal, self.device, self.tx)
        )
        return head + body

    @classmethod
    def decode(cls, data: bytes, version: int = 0) -> UserState:
        """The inverse of `encode`; `version` comes from the item, not the bytes."""
        if len(data) < _HEADER.size or data[0] != USER_STATE_FORMAT:
            fmt = data[0] if data else None
            raise StoreError(f"user state: unknown format byte {fmt!r} "
                             f"(expected {USER_STATE_FORMAT})")
        _, n, count, amount_sum, loc_count, lat_sum, lon_sum = _HEADER.unpack_from(data)
        if len(data) != _HEADER.size + n * _EVENT_BYTES:
            raise StoreError(f"user state: {len(data)} bytes do not hold {n} events")
        off = _HEADER.size
        arrays: list[npt.NDArray[np.generic]] = []
        for little, native in _EVENT_DTYPES:
            arrays.append(np.frombuffer(data, dtype=little, count=n, offset=off).astype(native))
            off += 8 * n
        return cls(arrays[0], arrays[1], arrays[2], arrays[3], arrays[4], int(count),  # type: ignore[arg-type]
                   float(amount_sum), int(loc_count), float(lat_sum), float(lon_sum), version)


@dataclass(frozen=True, slots=True, eq=False)
class TerminalSnapshot:
    """Terminal events and fraud labels loaded for a batch.

    `*_terminal` are indices into the `terminal_ids` the snapshot was loaded for. Events are
    (timestamp, 32-bit hash); labels are (transaction timestamp, 16-bit hash, label time).
    A store may return more than the asked time range (whole buckets); never less.
    """

    event_terminal: I64
    event_ts: I64
    event_hash: U64
    fraud_terminal: I64
    fraud_ts: I64
    fraud_hash: U64
    fraud_label_time: I64

    @classmethod
    def empty(cls) -> TerminalSnapshot:
        e = _empty_i64()
        u = np.empty(0, dtype=np.uint64)
        return cls(e, e, u, e, e, u, e)


def columns_of(states: Sequence[UserState | None], keep: int | None = None) -> UserColumns:
    """`states` column-wise (None: a user never seen), each cut to its newest `keep` events
    when given: how the engine reads a store that keeps `UserState` records."""
    cols = UserColumns.empty(len(states))
    known = [(i, s) for i, s in enumerate(states) if s is not None]
    if not known:
        return cols
    at = np.array([i for i, _ in known], dtype=np.int64)
    lengths = [len(s) if keep is None else min(len(s), keep) for _, s in known]
    cols.hist_len[at] = lengths
    for name in EVENT_COLUMNS:
        setattr(cols, name, np.concatenate(
            [getattr(s, name)[len(s) - h:] for (_, s), h in zip(known, lengths, strict=True)]))
    for name in AGGREGATES:
        getattr(cols, name)[at] = [getattr(s, name) for _, s in known]
    return cols


def states_of(cols: UserColumns, user_ids: Sequence[str], *, stored_only: bool = False
              ) -> dict[str, UserState]:
    """One `UserState` per user (views into `cols`); `stored_only` leaves out users at
    version 0 (never stored)."""
    bounds = cols.offsets().tolist()
    ts, amount, terminal, device, tx = (getattr(cols, name) for name in EVENT_COLUMNS)
    count, amount_sum, loc_count, lat_sum, lon_sum, version = (
        getattr(cols, name).tolist() for name in AGGREGATES)
    out: dict[str, UserState] = {}
    for i, user_id in enumerate(user_ids):
        if stored_only and version[i] == 0:
            continue
        a, b = bounds[i], bounds[i + 1]
        out[user_id] = UserState(ts[a:b], amount[a:b], terminal[a:b], device[a:b], tx[a:b],
                                 count[i], amount_sum[i], loc_count[i], lat_sum[i],
                                 lon_sum[i], version[i])
    return out


@runtime_checkable
class StateStore(Protocol):
    """Where feature state lives between batches (in memory here; DynamoDB elsewhere)."""

    def load_users(self, user_ids: Sequence[str]) -> dict[str, UserState]:
        """States of the given users; users never seen are simply absent."""
        ...

    def save_users(self, states: Mapping[str, UserState]) -> None:
        """Write states back, each only if its stored version still equals `state.version`.

        Raises `StaleWriteError` when another writer got there first.
        """
        ...

    def load_terminals(
        self, terminal_ids: Sequence[str], since_us: int, until_us: int
    ) -> TerminalSnapshot:
        """Events and fraud labels of these terminals with timestamp in [since_us, until_us]."""
        ...

    def add_terminal_events(self, terminal_ids: ObjArray, ts_us: I64, tx_hash: U64) -> None:
        """Add events (set union: adding the same event twice changes nothing)."""
        ...

    def apply_labels(
        self, terminal_ids: ObjArray, ts_us: I64, tx_hash: U64, label_time_us: I64
    ) -> None:
        """Add fraud labels (set union), each known from `label_time_us` on."""
        ...


_SMALL_CHUNK = 1 << 16


class _SetLog:
    """A set of integer rows (terminal code, time, ...), kept distinct, in time-ranged chunks.

    `add` drops rows already held (or repeated within the call), so the log is a set at all
    times and reading never deduplicates. Only rows that *could* be repeats are checked: a
    time tied within the call, or not newer than the newest held row (always the case for a
    redelivery). Each chunk remembers its time range, so `select` skips chunks outside the
    asked range without touching them, and `forget_before` drops whole old chunks.
    """

    def __init__(self, width: int) -> None:
        self._width = width
        self._chunks: list[npt.NDArray[np.int64]] = []
        self._lo: list[int] = []
        self._hi: list[int] = []
        self._max_ts = np.iinfo(np.int64).min
        self._max_code = -1
        # The latest time of a dropped row: a read reaching back to it would be incomplete.
        self.forgotten_until = np.iinfo(np.int64).min

    def __len__(self) -> int:
        return sum(len(c) for c in self._chunks)

    @property
    def newest(self) -> int:
        """The latest time ever added (int64 min while empty)."""
        return self._max_ts

    def add(self, rows: npt.NDArray[np.int64]) -> None:
        rows = self._new_only(np.ascontiguousarray(rows, dtype=np.int64))
        if not len(rows):
            return
        lo, hi = int(rows[:, 1].min()), int(rows[:, 1].max())
        self._max_ts = max(self._max_ts, hi)
        self._max_code = max(self._max_code, int(rows[:, 0].max()))
        if self._chunks and len(self._chunks[-1]) < _SMALL_CHUNK:
            # Small batches (a KCL call) are gathered, so `select` never walks many chunks.
            self._chunks[-1] = np.concatenate([self._chunks[-1], rows])
            self._lo[-1], self._hi[-1] = min(self._lo[-1], lo), max(self._hi[-1], hi)
        else:
            self._chunks.append(rows)
            self._lo.append(lo)
            self._hi.append(hi)

    def forget_before(self, ts: int) -> None:
        """Drop the chunks whose every row has time < `ts` (whole chunks only)."""
        keep = [k for k, hi in enumerate(self._hi) if hi >= ts]
        dropped = [hi for hi in self._hi if hi < ts]
        if dropped:
            self.forgotten_until = max(self.forgotten_until, *dropped)
        self._chunks = [self._chunks[k] for k in keep]
        self._lo = [self._lo[k] for k in keep]
        self._hi = [self._hi[k] for k in keep]

    def _in_range(self, since: int, until: int,
                  wanted: npt.NDArray[np.bool_] | None = None) -> npt.NDArray[np.int64]:
        parts = []
        for chunk, lo, hi in zip(self._chunks, self._lo, self._hi, strict=True):
            if hi < since or lo > until:
                continue
            keep = wanted[chunk[:, 0]] if wanted is not None else None
            if lo < since or hi > until:
                ts = chunk[:, 1]
                inside = (ts >= since) & (ts <= until)
                keep = inside if keep is None else keep & inside
            parts.append(chunk if keep is None else chunk[keep])
        if not parts:
            return np.empty((0, self._width), dtype=np.int64)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def select(self, codes: npt.NDArray[np.int64], since: int, until: int
               ) -> npt.NDArray[np.int64]:
        """Rows whose terminal is in `codes` and time (column 1) in [since, until]."""
        if not len(codes) or not self._chunks:
            return np.empty((0, self._width), dtype=np.int64)
        wanted = np.zeros(max(int(codes.max()), self._max_code) + 1, dtype=bool)
        wanted[codes] = True
        return self._in_range(since, until, wanted)

    def _new_only(self, rows: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """`rows` without those already held or repeated earlier in `rows` (order kept)."""
        n = len(rows)
        if n == 0:
            return rows
        ts = rows[:, 1]
        order = np.argsort(ts, kind="stable")
        same = ts[order[1:]] == ts[order[:-1]]
        tie = np.zeros(n, dtype=bool)
        tie[1:] |= same
        tie[:-1] |= same
        suspect = np.empty(n, dtype=bool)
        suspect[order] = tie
        suspect |= ts <= self._max_ts
        if not suspect.any():
            return rows
        cand_at = np.flatnonzero(suspect)
        cand = rows[cand_at]
        held = self._in_range(int(cand[:, 1].min()), int(cand[:, 1].max()))
        both = np.concatenate([held, cand])
        # Sort by every column, then arrival: the first of each group of equal rows is the
        # held one if any, else the earliest in `rows`; the others are repeats.
        keys = (np.arange(len(both)), *(both[:, j] for j in range(self._width - 1, -1, -1)))
        by = np.lexsort(keys)
        ordered = both[by]
        repeat_sorted = np.zeros(len(both), dtype=bool)
        repeat_sorted[1:] = np.all(ordered[1:] == ordered[:-1], axis=1)
        repeat = np.empty(len(both), dtype=bool)
        repeat[by] = repeat_sorted
        keep = np.ones(n, dtype=bool)
        keep[cand_at[repeat[len(held):]]] = False
        return rows[keep]


class InMemoryStore:
    """A `StateStore` in process memory, for tests, replay and training.

    Same semantics as the DynamoDB store: versioned user writes, set-union terminal state.

    `retain_us` bounds memory on a long replay: terminal events and labels older than the
    newest one by more than that are dropped (a whole chunk at a time). Give it at least the
    longest window plus the label delay plus the lateness any batch may have, so nothing a
    later read could ask for goes; None (the default) keeps everything. User states are
    held column-wise (`UserTable`): the engine reads and writes a batch's users without a
    Python object per user (`load_user_columns` / `save_user_columns`).
    """

    def __init__(self, retain_us: int | None = None) -> None:
        self._users = UserTable()
        self._codes: dict[str, int] = {}
        self._events = _SetLog(3)  # terminal code, ts, hash32
        self._labels = _SetLog(4)  # terminal code, ts, hash16, label time
        self._retain_us = retain_us

    def __repr__(self) -> str:
        return f"InMemoryStore(users={len(self._users)}, terminals={len(self._codes)})"

    def load_users(self, user_ids: Sequence[str]) -> dict[str, UserState]:
        ids = np.array(list(user_ids), dtype=object)
        return states_of(self._users.load(ids, np.iinfo(np.int64).max), list(user_ids),
                         stored_only=True)

    def save_users(self, states: Mapping[str, UserState]) -> None:
        ids = list(states)
        self._users.save(np.array(ids, dtype=object), columns_of([states[u] for u in ids]))

    def load_user_columns(self, user_ids: ObjArray, keep: int) -> UserColumns:
        """States of `user_ids` (distinct) column-wise, each cut to its newest `keep` events:
        the engine's path, with no Python object per user."""
        return self._users.load(user_ids, keep)

    def save_user_columns(self, user_ids: ObjArray, states: UserColumns,
                          appended: I64 | None = None) -> None:
        """`save_users` column-wise (distinct users); versions checked the same way. With
        `appended`, only the new events are written (see `ColumnarUserStore`)."""
        self._users.save(user_ids, states, appended)

    def _code_of(self, terminal_ids: ObjArray) -> npt.NDArray[np.int64]:
        # One dict probe per distinct terminal, not per row (codes in order of first sight).
        dense, distinct = dense_codes(np.asarray(terminal_ids, dtype=object))
        codes = self._codes
        mapped = np.fromiter((codes.setdefault(str(t), len(codes)) for t in distinct.tolist()),
                             dtype=np.int64, count=len(distinct))
        return mapped[dense]

    def load_terminals(
        self, terminal_ids: Sequence[str], since_us: int, until_us: int
    ) -> TerminalSnapshot:
        wanted = {self._codes[t]: i for i, t in enumerate(terminal_ids) if t in self._codes}
        if not wanted:
            return TerminalSnapshot.empty()
        codes = np.fromiter(wanted, dtype=np.int64, count=len(wanted))
        index = np.full(int(codes.max()) + 1, -1, dtype=np.int64)
        index[codes] = np.fromiter(wanted.values(), dtype=np.int64, count=len(wanted))
        forgotten = max(self._events.forgotten_until, self._labels.forgotten_until)
        if since_us <= forgotten:
            raise StoreError(
                f"terminal state from {since_us} us on was asked for, but events up to "
                f"{forgotten} us were already dropped (retain_us={self._retain_us} is "
                f"shorter than this batch's lateness plus window and label delay)")
        ev = self._events.select(codes, since_us, until_us)
        lab = self._labels.select(codes, since_us, until_us)
        return TerminalSnapshot(
            index[ev[:, 0]], np.ascontiguousarray(ev[:, 1]), ev[:, 2].astype(np.uint64),
            index[lab[:, 0]], np.ascontiguousarray(lab[:, 1]), lab[:, 2].astype(np.uint64),
            np.ascontiguousarray(lab[:, 3]),
        )

    def add_terminal_events(self, terminal_ids: ObjArray, ts_us: I64, tx_hash: U64) -> None:
        h32 = (np.asarray(tx_hash, dtype=np.uint64) & np.uint64(0xFFFFFFFF)).astype(np.int64)
        self._events.add(np.column_stack([self._code_of(terminal_ids),
                                          np.asarray(ts_us, dtype=np.int64), h32]))
        self._forget()

    def apply_labels(
        self, terminal_ids: ObjArray, ts_us: I64, tx_hash: U64, label_time_us: I64
    ) -> None:
        h16 = (np.asarray(tx_hash, dtype=np.uint64) & np.uint64(0xFFFF)).astype(np.int64)
        self._labels.add(np.column_stack([self._code_of(terminal_ids),
                                          np.asarray(ts_us, dtype=np.int64), h16,
                                          np.asarray(label_time_us, dtype=np.int64)]))
        self._forget()

    def _forget(self) -> None:
        if self._retain_us is None:
            return
        newest = max(self._events.newest, self._labels.newest)
        self._events.forget_before(newest - self._retain_us)
        self._labels.forget_before(newest - self._retain_us)

