"""Turning string ids into numbers the kernels can use.

Two different needs: *dense codes* within one batch (fast, process-local: Python's own
string hash, which strings cache, then a numba hash table), and *stable hashes* that go into
stored state and must mean the same in every process (FNV-1a 64 over the UTF-32 code
points; computed only for the distinct values, or for transaction ids when state is written).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from fraud.features.kernels import factorize_int64, fnv1a_utf32

__all__ = ["dense_codes", "stable_hash"]

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
    hashes = np.fromiter(map(hash, values), dtype=np.int64, count=n)
    codes, first = factorize_int64(hashes)
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
