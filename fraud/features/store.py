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

from fraud.errors import StaleWriteError, StoreError
from fraud.schema.batch import MISSING_TIME

__all__ = [
    "USER_STATE_FORMAT",
    "InMemoryStore",
    "StateStore",
    "TerminalSnapshot",
    "UserState",
    "day_bucket",
    "event_element",
    "label_element",
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


class _SetLog:
    """A set of integer rows (terminal code first), appended in chunks, deduplicated lazily.

    Adding is O(batch); reading selects the asked terminals and time range with one
    vectorised pass and deduplicates only what it returns. The log is compacted (set
    semantics made physical) whenever it has doubled since the last compaction.
    """

    def __init__(self, width: int) -> None:
        self._chunks: list[npt.NDArray[np.int64]] = [np.empty((0, width), dtype=np.int64)]
        self._rows = 0
        self._compacted = 0

    def add(self, rows: npt.NDArray[np.int64]) -> None:
        self._chunks.append(rows)
        self._rows += len(rows)
        if self._rows > max(2 * self._compacted, 100_000):
            merged = _distinct(np.concatenate(self._chunks))
            self._chunks = [merged]
            self._rows = self._compacted = len(merged)

    def select(self, codes: npt.NDArray[np.int64], since: int, until: int
               ) -> npt.NDArray[np.int64]:
        """Distinct rows whose terminal is in `codes` and time (column 1) in [since, until]."""
        if len(self._chunks) > 1:
            self._chunks = [np.concatenate(self._chunks)]
        rows = self._chunks[0]
        rows = rows[(rows[:, 1] >= since) & (rows[:, 1] <= until)]
        if not len(rows) or not len(codes):
            return rows[:0]
        wanted = np.zeros(max(int(codes.max()), int(rows[:, 0].max())) + 1, dtype=bool)
        wanted[codes] = True
        return _distinct(rows[wanted[rows[:, 0]]])


def _distinct(rows: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Unique rows (a lexsort and a neighbour comparison; faster than np.unique(axis=0))."""
    if len(rows) < 2:
        return rows
    order = np.lexsort(rows.T[::-1])
    rows = rows[order]
    keep = np.ones(len(rows), dtype=bool)
    keep[1:] = np.any(rows[1:] != rows[:-1], axis=1)
    return rows[keep]


class InMemoryStore:
    """A `StateStore` in process memory, for tests, replay and training.

    Same semantics as the DynamoDB store: versioned user writes, set-union terminal state.
    """

    def __init__(self) -> None:
        self._users: dict[str, UserState] = {}
        self._codes: dict[str, int] = {}
        self._events = _SetLog(3)  # terminal code, ts, hash32
        self._labels = _SetLog(4)  # terminal code, ts, hash16, label time

    def __repr__(self) -> str:
        return f"InMemoryStore(users={len(self._users)}, terminals={len(self._codes)})"

    def load_users(self, user_ids: Sequence[str]) -> dict[str, UserState]:
        users = self._users
        return {u: users[u] for u in user_ids if u in users}

    def save_users(self, states: Mapping[str, UserState]) -> None:
        for user_id, state in states.items():
            current = self._users.get(user_id)
            stored_version = 0 if current is None else current.version
            if stored_version != state.version:
                raise StaleWriteError(
                    f"user state {user_id!r}: stored version {stored_version}, "
                    f"write based on version {state.version}"
                )
        for user_id, state in states.items():
            self._users[user_id] = _with_version(state, state.version + 1)

    def _code_of(self, terminal_ids: ObjArray) -> npt.NDArray[np.int64]:
        codes = self._codes
        return np.fromiter((codes.setdefault(str(t), len(codes)) for t in terminal_ids),
                           dtype=np.int64, count=len(terminal_ids))

    def load_terminals(
        self, terminal_ids: Sequence[str], since_us: int, until_us: int
    ) -> TerminalSnapshot:
        wanted = {self._codes[t]: i for i, t in enumerate(terminal_ids) if t in self._codes}
        if not wanted:
            return TerminalSnapshot.empty()
        codes = np.fromiter(wanted, dtype=np.int64, count=len(wanted))
        index = np.full(int(codes.max()) + 1, -1, dtype=np.int64)
        index[codes] = np.fromiter(wanted.values(), dtype=np.int64, count=len(wanted))
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

    def apply_labels(
        self, terminal_ids: ObjArray, ts_us: I64, tx_hash: U64, label_time_us: I64
    ) -> None:
        h16 = (np.asarray(tx_hash, dtype=np.uint64) & np.uint64(0xFFFF)).astype(np.int64)
        self._labels.add(np.column_stack([self._code_of(terminal_ids),
                                          np.asarray(ts_us, dtype=np.int64), h16,
                                          np.asarray(label_time_us, dtype=np.int64)]))


def _with_version(state: UserState, version: int) -> UserState:
    return UserState(state.ts, state.amount, state.terminal, state.device, state.tx,
                     state.count, state.amount_sum, state.loc_count, state.lat_sum,
                     state.lon_sum, version)
