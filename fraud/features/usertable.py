"""User states column-wise: how the engine reads and writes a whole batch's users at once.

`UserColumns` is the states of a batch's users as arrays: every user's events concatenated
(oldest first, `hist_len[i]` of them for user i) and one array per aggregate. The engine
works on it directly; a store that keeps users as `UserState` records (DynamoDB) is adapted
with `fraud.features.store.columns_of` / `states_of`, and one that keeps them column-wise
(`UserTable`, behind `InMemoryStore`) hands them over without a Python object per user,
which is what makes a long replay's state round trip cheap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from fraud.errors import StaleWriteError

__all__ = ["AGGREGATES", "EVENT_COLUMNS", "ColumnarUserStore", "UserColumns", "UserTable", "ranges"]

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
U64 = npt.NDArray[np.uint64]
ObjArray = npt.NDArray[np.object_]

# The per-event columns of a user state, in `UserState` field order.
EVENT_COLUMNS = ("ts", "amount", "terminal", "device", "tx")
_EVENT_DTYPES = (np.int64, np.float64, np.uint64, np.uint64, np.uint64)
# The per-user aggregates and the version read at, in `UserState` field order.
AGGREGATES = ("count", "amount_sum", "loc_count", "lat_sum", "lon_sum", "version")
_AGGREGATE_DTYPES = (np.int64, np.float64, np.int64, np.float64, np.float64, np.int64)


def ranges(starts: I64, lengths: I64) -> I64:
    """The concatenation of ``range(starts[i], starts[i] + lengths[i])`` for every i."""
    total = int(lengths.sum())
    if total == 0:
        return np.empty(0, dtype=np.int64)
    offsets = np.cumsum(lengths) - lengths
    return (np.repeat(starts - offsets, lengths) + np.arange(total)).astype(np.int64)


@dataclass(slots=True, eq=False)
class UserColumns:
    """The states of n users: events concatenated user by user, aggregates one per user.

    `version[i]` is the version user i's state was read at (0: never stored); a store
    writes user i back only if its stored version still equals it.
    """

    hist_len: I64
    ts: I64
    amount: F64
    terminal: U64
    device: U64
    tx: U64
    count: I64
    amount_sum: F64
    loc_count: I64
    lat_sum: F64
    lon_sum: F64
    version: I64

    def __len__(self) -> int:
        return len(self.hist_len)

    @classmethod
    def of(cls, hist_len: I64, events: Sequence[npt.NDArray[Any]],
           aggregates: Sequence[npt.NDArray[Any]]) -> UserColumns:
        """From the event columns in `EVENT_COLUMNS` order and the aggregates in
        `AGGREGATES` order."""
        ts, amount, terminal, device, tx = events
        count, amount_sum, loc_count, lat_sum, lon_sum, version = aggregates
        return cls(hist_len, ts, amount, terminal, device, tx, count, amount_sum, loc_count,
                   lat_sum, lon_sum, version)

    @classmethod
    def empty(cls, n_users: int) -> UserColumns:
        """n users never seen: no events, zero aggregates, version 0."""
        return cls.of(np.zeros(n_users, dtype=np.int64),
                      [np.empty(0, dtype=d) for d in _EVENT_DTYPES],
                      [np.zeros(n_users, dtype=d) for d in _AGGREGATE_DTYPES])

    def offsets(self) -> I64:
        """Where each user's events start (and, last, the total)."""
        off = np.zeros(len(self.hist_len) + 1, dtype=np.int64)
        np.cumsum(self.hist_len, out=off[1:])
        return off

    def take(self, users: I64) -> UserColumns:
        """The states of the users at positions `users`, in that order."""
        off = self.offsets()
        at = ranges(off[users], self.hist_len[users])
        return UserColumns.of(self.hist_len[users],
                              [getattr(self, name)[at] for name in EVENT_COLUMNS],
                              [getattr(self, name)[users] for name in AGGREGATES])


@runtime_checkable
class ColumnarUserStore(Protocol):
    """A state store that also reads and writes whole batches of user states column-wise."""

    def load_user_columns(self, user_ids: ObjArray, keep: int) -> UserColumns:
        """States of `user_ids` (distinct), each cut to its newest `keep` events."""
        ...

    def save_user_columns(self, user_ids: ObjArray, states: UserColumns,
                          appended: I64 | None = None) -> None:
        """Write states back (distinct users), each only if its stored version still equals
        `states.version`; raises `StaleWriteError` otherwise, writing nothing.

        `appended[i]`, when given, says user i's new events are the stored ones (all but
        the oldest few) followed by its last `appended[i]` events: a store may then write
        only those."""
        ...


# Columns of `UserTable._ints`.
_VERSION, _COUNT, _LOC_COUNT, _BASE, _LEN, _CAP, _HEAD = range(7)
_MIN_SLOT = 16


class UserTable:
    """User states held column-wise: one row of aggregates per user, events in a shared pool.

    Each user owns a slot of the pool with room for a power of two of events, used as a
    ring: the oldest event is at offset `head`. A write that only drops the oldest events
    and appends new ones (the engine's usual write, see `save`'s `appended`) writes just
    the new events and moves `head`; any other write that fits rewrites the slot; a longer
    one moves the user to a new slot twice as big at the end of the pool, and the old slot
    becomes garbage. When the pool is full it is compacted (every user's events copied, in
    order, into a pool with 50 % headroom). So memory stays within a small multiple of the
    live state, and a user who goes idle costs only their slot.
    """

    def __init__(self) -> None:
        self._index: dict[str, int] = {}
        self._n = 0
        # Row capacity grows by doubling; rows past `_n` are zero.
        self._ints = np.zeros((64, 7), dtype=np.int64)  # see _VERSION .. _HEAD
        self._floats = np.zeros((64, 3), dtype=np.float64)  # amount_sum, lat_sum, lon_sum
        self._pool = [np.empty(0, dtype=d) for d in _EVENT_DTYPES]
        self._used = 0

    def __len__(self) -> int:
        return self._n

    @property
    def pool_size(self) -> int:
        """Events the pool has room for (slots, their headroom and garbage)."""
        return len(self._pool[0])

    @property
    def live_events(self) -> int:
        return int(self._ints[: self._n, _LEN].sum())

    def rows_of(self, user_ids: ObjArray) -> I64:
        """Each user's row, -1 for users never stored."""
        get = self._index.get
        return np.fromiter((get(u, -1) for u in user_ids.tolist()), dtype=np.int64,
                           count=len(user_ids))

    def load(self, user_ids: ObjArray, keep: int) -> UserColumns:
        rows = self.rows_of(user_ids)
        present = rows >= 0
        if not present.any():
            return UserColumns.empty(len(rows))
        safe = np.where(present, rows, 0)
        ints = self._ints[safe]
        ints[~present] = 0
        floats = self._floats[safe]
        floats[~present] = 0.0
        length = ints[:, _LEN]
        hist_len = np.minimum(length, keep)
        at = _ring_positions(ints, length - hist_len, hist_len)
        return UserColumns.of(hist_len, [col[at] for col in self._pool],
                              [ints[:, _COUNT].copy(), floats[:, 0].copy(),
                               ints[:, _LOC_COUNT].copy(), floats[:, 1].copy(),
                               floats[:, 2].copy(), ints[:, _VERSION].copy()])

    def save(self, user_ids: ObjArray, states: UserColumns, appended: I64 | None = None,
             ) -> None:
        """Write `states` (distinct users), checking versions first; nothing on a conflict.

        With `appended` (see `ColumnarUserStore.save_user_columns`), a user whose stored
        events are the first ones of the new state gets only its last `appended` written.
        """
        rows = self.rows_of(user_ids)
        stored = np.where(rows >= 0, self._ints[np.maximum(rows, 0), _VERSION], 0)
        stale = np.flatnonzero(stored != states.version)
        if len(stale):
            i = int(stale[0])
            raise StaleWriteError(
                f"user state {user_ids[i]!r}: stored version {int(stored[i])}, write based on "
                f"version {int(states.version[i])}"
                + (f" (and {len(stale) - 1} more users)" if len(stale) > 1 else ""))
        new = np.flatnonzero(rows < 0)
        if len(new):
            rows[new] = np.arange(self._n, self._n + len(new))
            self._grow(self._n + len(new))
            index = self._index
            for i, r in zip(new.tolist(), rows[new].tolist(), strict=True):
                index[user_ids[i]] = r
            self._n += len(new)
        ints = self._ints
        length = states.hist_len
        old_len = ints[rows, _LEN]
        fresh = length if appended is None else np.minimum(appended, length)
        # Events of the new state already stored: its first `length - fresh`, which are the
        # newest stored ones when the write only drops old events and appends.
        kept = length - fresh
        ring = (appended is not None) & (kept <= old_len) & (length <= ints[rows, _CAP])
        kept = np.where(ring, kept, 0)
        moving = np.flatnonzero(length > ints[rows, _CAP])
        if len(moving):
            # Their old slots are garbage from here on; new ones go at the end of the pool.
            cap = np.maximum(_MIN_SLOT, 1 << np.ceil(np.log2(np.maximum(length[moving], 1))
                                                     ).astype(np.int64))
            ints[rows[moving], _CAP] = 0
            ints[rows[moving], _LEN] = 0
            need = int(cap.sum())
            if self._used + need > self.pool_size:
                self._compact(need)
            ints[rows[moving], _BASE] = self._used + np.cumsum(cap) - cap
            ints[rows[moving], _CAP] = cap
            self._used += need
        # Ring users drop their oldest `old_len - kept` events; the others start afresh.
        cap_now = np.maximum(ints[rows, _CAP], 1)
        ints[rows, _HEAD] = np.where(ring, (ints[rows, _HEAD] + old_len - kept) % cap_now, 0)
        mine = ints[rows]
        at = _ring_positions(mine, kept, length - kept)
        src = ranges(states.offsets()[:-1] + kept, length - kept)
        for col, name in zip(self._pool, EVENT_COLUMNS, strict=True):
            col[at] = getattr(states, name)[src]
        ints[rows, _VERSION] = states.version + 1
        ints[rows, _COUNT] = states.count
        ints[rows, _LOC_COUNT] = states.loc_count
        ints[rows, _LEN] = length
        floats = self._floats
        floats[rows, 0] = states.amount_sum
        floats[rows, 1] = states.lat_sum
        floats[rows, 2] = states.lon_sum

    def _grow(self, n: int) -> None:
        if n <= len(self._ints):
            return
        cap = max(n, 2 * len(self._ints))
        ints = np.zeros((cap, self._ints.shape[1]), dtype=np.int64)
        ints[: self._n] = self._ints[: self._n]
        floats = np.zeros((cap, 3), dtype=np.float64)
        floats[: self._n] = self._floats[: self._n]
        self._ints, self._floats = ints, floats

    def _compact(self, incoming: int) -> None:
        """Every slot copied, oldest event first, to the front of a new pool with room for
        `incoming` more events and 50 % headroom."""
        ints = self._ints[: self._n]
        slots = ints[:, _CAP]
        held = int(slots.sum())
        size = max((held + incoming) * 3 // 2, 1 << 16)
        pool = [np.empty(size, dtype=d) for d in _EVENT_DTYPES]
        bases = np.cumsum(slots) - slots
        src = _ring_positions(ints, np.zeros(self._n, dtype=np.int64), ints[:, _LEN])
        dst = ranges(bases, ints[:, _LEN])
        for new, old in zip(pool, self._pool, strict=True):
            new[dst] = old[src]
        ints[:, _BASE] = bases
        ints[:, _HEAD] = 0
        self._pool = pool
        self._used = held


def _ring_positions(ints: I64, first: I64, count: I64) -> I64:
    """Pool positions of events `first[i]` .. `first[i] + count[i] - 1` (0 = oldest) of the
    users whose rows are `ints`, in that order."""
    j = ranges(first, count)
    if not len(j):
        return j
    user = np.repeat(np.arange(len(count)), count)
    cap = np.maximum(ints[user, _CAP], 1)
    at: I64 = ints[user, _BASE] + (ints[user, _HEAD] + j) % cap
    return at
