"""Small numba kernels that group and hash rows: the building blocks of the feature engine.

Stable string hashes (FNV-1a over UTF-32 code points), dense codes from 64-bit keys, rows
grouped by code, segments sorted by (code, time), and counts of a segment's times up to a
bound. Each has a NumPy twin in `fraud.features.reference` that the tests compare with.
"""

from __future__ import annotations

import numba as nb
import numpy as np
import numpy.typing as npt

__all__ = ["factorize_int64", "fnv1a_utf32", "group_by_code", "segment_count_le",
           "sort_segments"]

I64 = npt.NDArray[np.int64]
U64 = npt.NDArray[np.uint64]


@nb.njit(cache=True, nogil=True)
def fnv1a_utf32(codepoints: npt.NDArray[np.uint32]) -> U64:  # pragma: no cover - compiled
    """FNV-1a 64 of each row of a UTF-32 matrix (NUL padding ignored); "" hashes to 0."""
    n, width = codepoints.shape
    out = np.zeros(n, dtype=np.uint64)
    prime = np.uint64(1099511628211)
    for i in range(n):
        h = np.uint64(14695981039346656037)
        length = 0
        for k in range(width):
            c = codepoints[i, k]
            if c == 0:
                break
            length += 1
            for shift in range(0, 32, 8):
                h ^= np.uint64((c >> shift) & 0xFF)
                h *= prime
        if length == 0:
            out[i] = np.uint64(0)
        elif h == np.uint64(0):
            out[i] = np.uint64(1)
        else:
            out[i] = h
    return out


@nb.njit(cache=True, nogil=True)
def factorize_int64(keys: I64) -> tuple[I64, I64]:  # pragma: no cover - compiled
    """Dense codes in order of first appearance, and the first row of each code (hash table)."""
    n = len(keys)
    size = 16
    while size < 2 * n:
        size *= 2
    mask = size - 1
    slot_key = np.empty(size, dtype=np.int64)
    slot_code = np.full(size, -1, dtype=np.int64)
    codes = np.empty(n, dtype=np.int64)
    first = np.empty(n, dtype=np.int64)
    n_codes = 0
    for i in range(n):
        k = keys[i]
        s = (np.uint64(k) * np.uint64(11400714819323198485)) >> np.uint64(40)
        j = np.int64(s) & mask
        while True:
            c = slot_code[j]
            if c < 0:
                slot_key[j] = k
                slot_code[j] = n_codes
                codes[i] = n_codes
                first[n_codes] = i
                n_codes += 1
                break
            if slot_key[j] == k:
                codes[i] = c
                break
            j = (j + 1) & mask
    return codes, first[:n_codes].copy()


@nb.njit(cache=True, nogil=True)
def group_by_code(codes: I64, n_codes: int) -> tuple[I64, I64]:  # pragma: no cover
    """A stable counting sort: (order, offsets) so rows of code c are order[off[c]:off[c+1]]."""
    offsets = np.zeros(n_codes + 1, dtype=np.int64)
    for i in range(len(codes)):
        offsets[codes[i] + 1] += 1
    for c in range(n_codes):
        offsets[c + 1] += offsets[c]
    fill = offsets[:-1].copy()
    order = np.empty(len(codes), dtype=np.int64)
    for i in range(len(codes)):
        c = codes[i]
        order[fill[c]] = i
        fill[c] += 1
    return order, offsets


@nb.njit(cache=True, nogil=True)
def sort_segments(codes: I64, times: I64, n_codes: int) -> tuple[I64, I64]:  # pragma: no cover
    """Order rows by (code, time), stable; O(n) when each code's rows are already in time order.

    Returns (order, offsets) like `group_by_code`.
    """
    order, offsets = group_by_code(codes, n_codes)
    for c in range(n_codes):
        a = offsets[c]
        b = offsets[c + 1]
        ordered = True
        for k in range(a + 1, b):
            if times[order[k]] < times[order[k - 1]]:
                ordered = False
                break
        if not ordered:
            seg = order[a:b].copy()
            idx = np.argsort(times[seg], kind="mergesort")
            order[a:b] = seg[idx]
    return order, offsets


@nb.njit(cache=True, nogil=True)
def segment_count_le(offsets: I64, times: I64, codes: I64, t: I64) -> I64:  # pragma: no cover
    """For each query, one past the last row of segment `codes[i]` with time <= t[i].

    Unknown codes (-1) give 0. Segments are sorted by time.
    """
    out = np.zeros(len(codes), dtype=np.int64)
    for i in range(len(codes)):
        c = codes[i]
        if c < 0:
            continue
        lo = offsets[c]
        hi = offsets[c + 1]
        out[i] = lo + np.searchsorted(times[lo:hi], t[i], side="right")
    return out
