"""Scratch memory for the feature kernels: cache-line-aligned rows, kept between batches.

The two feature kernels are bound by memory traffic (docs/features.md, "Speed"): their
per-row results go to a compact row-major scratch whose rows start on cache lines
(`aligned_rows`), reused from one batch to the next (`scratch_rows`), and are gathered back
to row order with software prefetch (`prefetch`, a numba intrinsic).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar, cast

import numpy as np
import numpy.typing as npt
from llvmlite import ir  # type: ignore[import-untyped]
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["aligned_rows", "prefetch", "scratch_rows"]

S = TypeVar("S", bound=np.generic)


def aligned_rows(rows: int, width: int, dtype: type[S]) -> npt.NDArray[S]:
    """Uninitialised C-ordered (rows, width) scratch whose rows start on 64-byte boundaries.

    A kernel's per-row results are one cache line (or half of one), so a row read in a gather
    costs one line, not two. Allocated by NumPy, which gives large arrays transparent huge
    pages (numba's allocator does not: page faults then cost ~4x more).
    """
    itemsize = np.dtype(dtype).itemsize
    buf = np.empty(rows * width + 64 // itemsize, dtype=dtype)
    skip = (-buf.ctypes.data % 64) // itemsize
    return buf[skip:skip + rows * width].reshape(rows, width)


class _Scratch(threading.local):
    """This thread's kernel scratch buffers, kept between calls (see `scratch_rows`)."""

    def __init__(self) -> None:
        self.buffers: dict[str, npt.NDArray[np.uint8]] = {}


_SCRATCH = _Scratch()


def scratch_rows(name: str, rows: int, width: int, dtype: type[S]) -> npt.NDArray[S]:
    """`aligned_rows` in a buffer this thread keeps under `name` from one call to the next.

    Valid until the same thread asks for `name` again (the engine's two kernels share one
    "results" buffer: they run one after the other); for scratch a kernel writes before
    reading, so reuse changes no result. It saves the page faults of fresh memory, which a
    kernel touching 64 MB of new scratch per 1 M rows pays on every batch (~5 ms). A buffer
    more than 64 MB over four times the request is let go, so one huge replay chunk does not
    pin its scratch for the small batches after it, and batches of varying size do not make
    it reallocate back and forth.
    """
    size = rows * width * np.dtype(dtype).itemsize
    buf = _SCRATCH.buffers.get(name)
    if buf is None or len(buf) < size + 64 or len(buf) > 4 * size + (64 << 20):
        buf = np.empty(size + 64, dtype=np.uint8)
        _SCRATCH.buffers[name] = buf
    skip = -buf.ctypes.data % 64
    return buf[skip:skip + size].view(dtype).reshape(rows, width)


@intrinsic
def _prefetch(typingctx: Any, arr: Any, index: Any) -> Any:  # pragma: no cover - compiled
    """``prefetch(arr, i)`` in a kernel: start loading the cache line of ``arr.flat[i]``.

    A hint (``llvm.prefetch``, read, keep in all cache levels): it never faults and changes
    no value. Gathers through a permutation use it to have a dozen rows in flight instead of
    the one or two the CPU's own look-ahead reaches (measured: half the gather's time).
    """
    if not (isinstance(arr, types.Array) and arr.layout == "C"
            and isinstance(index, types.Integer)):
        return None
    sig = types.void(arr, index)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fn = cgutils.get_or_insert_function(  # type: ignore[no-untyped-call]
            builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]),
            "llvm.prefetch.p0i8")
        ptr = builder.bitcast(builder.gep(ary.data, [args[1]]), i8p)
        builder.call(fn, [ptr, ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return sig, codegen


# The intrinsic, typed as what kernels call (numba resolves the global to the same object).
prefetch = cast("Callable[[npt.NDArray[Any], int], None]", _prefetch)
