"""Turning string ids into numbers the kernels can use.

Two different needs: *dense codes* within one batch (fast, process-local: Python's own
string hash, which strings cache, then a numba hash table), and *stable hashes* that go into
stored state and must mean the same in every process (FNV-1a 64 over the UTF-32 code
points; computed only for the distinct values, or for transaction ids when state is written).
"""

from __future__ import annotations

import numba as nb
import numpy as np
import numpy.typing as npt

from fraud.features.grouping import factorize_int64, fnv1a_utf32

__all__ = ["KeyIndex", "dense_codes", "local_hashes", "stable_hash"]

I64 = npt.NDArray[np.int64]
U64 = npt.NDArray[np.uint64]
ObjArray = npt.NDArray[np.object_]


def dense_codes(values: ObjArray) -> tuple[I64, ObjArray]:
    """(code per row, distinct values in order of first appearance).

    Two distinct strings merge only if Python's 64-bit string hashes collide (about one in
    10**19 per pair); codes are meaningful within this call only.
    """
    n = len(values)
    if n == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=object)
    codes, first = factorize_int64(local_hashes(values))
    return codes, values[first]


def stable_hash(values: ObjArray) -> U64:
    """A 64-bit hash of each string that is the same in every process; "" hashes to 0.

    >>> int(stable_hash(np.array(["", "a"], dtype=object))[0])
    0
    """
    if len(values) == 0:
        return np.empty(0, dtype=np.uint64)
    text = np.asarray(values, dtype=str)
    if text.dtype.itemsize == 0:
        return np.zeros(len(values), dtype=np.uint64)
    width = text.dtype.itemsize // 4
    points = np.ascontiguousarray(text).view(np.uint32).reshape(len(values), width)
    return fnv1a_utf32(points)


def local_hashes(values: ObjArray) -> I64:
    """Python's hash of each string: cheap (strings cache it), meaningful in this process only."""
    return np.fromiter(map(hash, values), dtype=np.int64, count=len(values))


class KeyIndex:
    """Position of each of a set of distinct strings, found without a Python dict probe.

    Built once for a large read-only key set (a supporting-store table); `find` looks up a
    whole column at once: the keys' Python hashes probe a numba open-addressing table, and
    every hit is confirmed by comparing the strings, so two strings whose 64-bit hashes
    collide are never confused. Should two of the indexed keys share a hash, a dict is used
    instead.
    """

    def __init__(self, keys: ObjArray) -> None:
        self.keys = keys
        self._slot_hash, self._slot_pos, distinct = _build_index(local_hashes(keys))
        self._fallback: dict[str, int] | None = (
            None if distinct else {k: i for i, k in enumerate(keys.tolist())})

    def find(self, values: ObjArray, hashes: I64 | None = None) -> I64:
        """The position of each value among the keys, -1 when absent; `hashes` are the
        values' `local_hashes` when the caller already has them."""
        if self._fallback is not None:
            get = self._fallback.get
            return np.fromiter((get(v, -1) for v in values.tolist()), dtype=np.int64,
                               count=len(values))
        pos = _probe(self._slot_hash, self._slot_pos,
                     local_hashes(values) if hashes is None else hashes)
        hit = np.flatnonzero(pos >= 0)
        if len(hit):
            same = np.asarray(self.keys[pos[hit]] == values[hit], dtype=bool)
            pos[hit[~same]] = -1
        return pos


@nb.njit(cache=True, nogil=True)
def _slot(h: np.int64, mask: int) -> np.int64:  # pragma: no cover - compiled
    return np.int64((np.uint64(h) * np.uint64(11400714819323198485)) >> np.uint64(32)) & mask


@nb.njit(cache=True, nogil=True)
def _build_index(hashes: I64) -> tuple[I64, I64, bool]:  # pragma: no cover - compiled
    """Open-addressing table hash -> position; False when two positions share a hash."""
    size = 16
    while size < 2 * len(hashes):
        size *= 2
    mask = size - 1
    slot_hash = np.zeros(size, dtype=np.int64)
    slot_pos = np.full(size, -1, dtype=np.int64)
    for i in range(len(hashes)):
        h = hashes[i]
        j = _slot(h, mask)
        while slot_pos[j] >= 0:
            if slot_hash[j] == h:
                return slot_hash, slot_pos, False
            j = (j + 1) & mask
        slot_hash[j] = h
        slot_pos[j] = i
    return slot_hash, slot_pos, True


@nb.njit(cache=True, nogil=True)
def _probe(slot_hash: I64, slot_pos: I64, hashes: I64) -> I64:  # pragma: no cover - compiled
    mask = len(slot_hash) - 1
    out = np.full(len(hashes), -1, dtype=np.int64)
    for i in range(len(hashes)):
        h = hashes[i]
        j = _slot(h, mask)
        while slot_pos[j] >= 0:
            if slot_hash[j] == h:
                out[i] = slot_pos[j]
                break
            j = (j + 1) & mask
    return out
