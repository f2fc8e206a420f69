"""User states column-wise: how the engine reads and writes a whole batch's users at once.

`UserColumns` is the states of a batch's users as arrays: every user's events concatenated
(oldest first, `hist_len[i]` of them for user i) and one array per aggregate. The engine
works on it directly; a store that keeps users as `UserState` records (DynamoDB) is adapted
with `from_states` / `to_states`, and one that keeps them column-wise (`UserTable`, behind
`InMemoryStore`) hands them over without a Python object per user, which is what makes a
long replay's state round trip cheap.
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

    def save_user_columns(self, user_ids: ObjArray, states: UserColumns) -> None:
        """Write states back (distinct users), each only if its stored version still equals
        `states.version`; raises `StaleWriteError` otherwise, writing nothing."""
        ...


class UserTable:
    """User states held column-wise: one row of aggregates per user, events in a shared pool.

    A write appends the users' new events at the end of the pool and points their rows at
    them; what they replace becomes garbage. When the pool is full it is compacted (only
    live events are copied, into a pool twice their size), so memory stays within about
    twice the live state and a user who goes idle costs only their own events.
    """

    def __init__(self) -> None:
        self._index: dict[str, int] = {}
        self._n = 0
        # Row capacity grows by doubling; rows past `_n` are zero.
        self._ints = np.zeros((64, 5), dtype=np.int64)  # version, count, loc_count, start, len
        self._floats = np.zeros((64, 3), dtype=np.float64)  # amount_sum, lat_sum, lon_sum
        self._pool = [np.empty(0, dtype=d) for d in _EVENT_DTYPES]
        self._used = 0

    def __len__(self) -> int:
        return self._n

    @property
    def pool_size(self) -> int:
        """Events the pool has room for (live ones and garbage)."""
        return len(self._pool[0])

    @property
    def live_events(self) -> int:
        return int(self._ints[: self._n, 4].sum())

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
        length = ints[:, 4]
        hist_len = np.minimum(length, keep)
        at = ranges(ints[:, 3] + length - hist_len, hist_len)
        return UserColumns.of(hist_len, [col[at] for col in self._pool],
                              [ints[:, 1].copy(), floats[:, 0].copy(), ints[:, 2].copy(),
                               floats[:, 1].copy(), floats[:, 2].copy(), ints[:, 0].copy()])

    def save(self, user_ids: ObjArray, states: UserColumns) -> None:
        rows = self.rows_of(user_ids)
        stored = np.where(rows >= 0, self._ints[np.maximum(rows, 0), 0], 0)
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
        total = int(states.hist_len.sum())
        self._ints[rows, 3:5] = 0  # their old events are garbage from here on
        if self._used + total > self.pool_size:
            self._compact(total)
        starts = self._used + states.offsets()[:-1]
        for col, name in zip(self._pool, EVENT_COLUMNS, strict=True):
            col[self._used: self._used + total] = getattr(states, name)
        self._used += total
        ints = self._ints
        ints[rows, 0] = states.version + 1
        ints[rows, 1] = states.count
        ints[rows, 2] = states.loc_count
        ints[rows, 3] = starts
        ints[rows, 4] = states.hist_len
        floats = self._floats
        floats[rows, 0] = states.amount_sum
        floats[rows, 1] = states.lat_sum
        floats[rows, 2] = states.lon_sum

    def _grow(self, n: int) -> None:
        if n <= len(self._ints):
            return
        cap = max(n, 2 * len(self._ints))
        ints = np.zeros((cap, 5), dtype=np.int64)
        ints[: self._n] = self._ints[: self._n]
        floats = np.zeros((cap, 3), dtype=np.float64)
        floats[: self._n] = self._floats[: self._n]
        self._ints, self._floats = ints, floats

    def _compact(self, incoming: int) -> None:
        """Copy the live events to the front of a pool with room for 2x (live + incoming)."""
        ints = self._ints[: self._n]
        at = ranges(ints[:, 3], ints[:, 4])
        live = len(at)
        size = max(2 * (live + incoming), 1 << 16)
        pool = [np.empty(size, dtype=d) for d in _EVENT_DTYPES]
        for new, old in zip(pool, self._pool, strict=True):
            new[:live] = old[at]
        ints[:, 3] = np.cumsum(ints[:, 4]) - ints[:, 4]
        self._pool = pool
        self._used = live
