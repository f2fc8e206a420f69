"""Exact window sums: amounts as 128-bit fixed-point integers (units of 2**-64).

A user window's amount sum must not depend on the order amounts were added or on where a
batch started, or features would change with batching. Floating-point sums do both, and a
running float sum (add the entering amount, subtract the leaving one) also drifts. Integers
do neither: each amount goes on a 2**-64 grid (exact for every double in ±[2**-12, 2**40)),
the grid values are added and subtracted as 128-bit two's-complement integers (an int64
high word and a uint64 low word), and the exact total is rounded once to float64. The
contract is written out in docs/features.md ("Precision of the window sums");
`fraud.features.reference.window_sum_reference` is the same rule in Python integers.

The helpers are inlined into `fraud.features.kernels.user_kernel`, which keeps exact prefix
sums per user and takes a window's sum as the difference of two; `window_sum` is their tested
twin over an array slice.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np
import numpy.typing as npt
from numba.cpython.unsafe.numbers import leading_zeros

__all__ = [
    "FIXED_BITS",
    "WILD_AMOUNT",
    "fixed_or_wild",
    "fixed_to_float",
    "to_fixed",
    "window_sum",
]

F64 = npt.NDArray[np.float64]

FIXED_BITS = 64  # amounts are summed as exact integers in units of 2**-64
WILD_AMOUNT = 2.0 ** 40  # |amount| at or above this (or not finite): float fallback
_TWO64 = 2.0 ** FIXED_BITS
_POW2 = np.array([2.0 ** (s - 64) for s in range(65)])  # exact scalings for fixed_to_float


@nb.njit(cache=True, nogil=True, inline="always")
def to_fixed(x: float) -> tuple[np.int64, np.uint64]:  # pragma: no cover - compiled
    """``round(x * 2**64)`` as a two's-complement 128-bit (hi: int64, lo: uint64) pair.

    Exact for every double in ±[2**-12, 2**40): the integer part goes to `hi`, the fraction
    (exact, since it is a multiple of the amount's ulp) times 2**64 to `lo`; only fractions
    finer than 2**-64 are rounded (half to even, as `round` does). The caller keeps |x| below
    `WILD_AMOUNT`.
    """
    a = abs(x)
    whole = math.floor(a)
    hi = np.int64(whole)
    lo = np.uint64(np.rint((a - whole) * _TWO64))
    if x < 0:
        lo = ~lo + np.uint64(1)
        hi = ~hi + np.int64(1 if lo == np.uint64(0) else 0)
    return hi, lo


@nb.njit(cache=True, nogil=True, inline="always")
def fixed_or_wild(x: float) -> tuple[np.int64, np.uint64, int]:  # pragma: no cover - compiled
    """`to_fixed` of an amount and 0, or (0, 0, 1) for a *wild* amount (`window_sum`)."""
    if abs(x) < WILD_AMOUNT:  # False for NaN too
        hi, lo = to_fixed(x)
        return hi, lo, 0
    return np.int64(0), np.uint64(0), 1


@nb.njit(cache=True, nogil=True, inline="always")
def fixed_to_float(hi: np.int64, lo: np.uint64) -> float:  # pragma: no cover - compiled
    """The 128-bit fixed-point value ``hi * 2**64 + lo`` (units 2**-64) rounded once to float64.

    Correct rounding (to nearest, ties to even) so the result is a function of the exact sum
    alone: the top 64 significant bits, with the bits below them folded into a sticky bit,
    go through one correctly rounded uint64 -> float64 conversion, then an exact scaling.
    """
    neg = hi < 0
    h = np.uint64(hi)
    lw = np.uint64(lo)
    if neg:
        lw = ~lw + np.uint64(1)
        h = ~h + np.uint64(1 if lw == np.uint64(0) else 0)
    if h == np.uint64(0):
        mag = float(lw) * (1.0 / _TWO64)
    else:
        s = np.uint64(64) - leading_zeros(h)  # type: ignore[call-arg]  # bit length, 1..63
        top = (h << (np.uint64(64) - s)) | (lw >> s)
        if lw & ((np.uint64(1) << s) - np.uint64(1)) != np.uint64(0):
            top |= np.uint64(1)
        mag = float(top) * _POW2[s]
    return -mag if neg else mag


@nb.njit(cache=True, nogil=True)
def window_sum(amount: F64, lo: int, hi: int) -> float:  # pragma: no cover - compiled
    """The sum of ``amount[lo:hi]`` as the user windows define it (docs/features.md).

    The exact sum of the amounts on the 2**-64 grid, rounded once to float64; if any amount
    is wild (not finite, or |amount| >= `WILD_AMOUNT`), the plain float sum added newest
    first. `user_kernel` gets the same sums from exact prefix sums; this is their tested twin.

    >>> amounts = np.array([0.1, 0.2, 0.3])
    >>> window_sum(amounts, 0, 3), window_sum(amounts[::-1].copy(), 0, 3)  # any order
    (0.6, 0.6)
    >>> (0.1 + 0.2) + 0.3, 0.1 + (0.2 + 0.3)  # float sums depend on it
    (0.6000000000000001, 0.6)
    """
    h = np.int64(0)
    lw = np.uint64(0)
    for x in range(lo, hi):
        xh, xl, xw = fixed_or_wild(amount[x])
        if xw:
            total = 0.0
            for j in range(hi - 1, lo - 1, -1):
                total += amount[j]
            return total
        nl = lw + xl
        h += xh + (1 if nl < lw else 0)
        lw = nl
    return fixed_to_float(h, lw)
