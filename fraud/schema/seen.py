"""Duplicate transaction ids across the chunks of one file, in bounded memory.

`SeenIds` is what `fraud.schema.files` keeps for a whole file: per id a hash and an ordinal
in memory, the texts in a temporary file (see the class). A single Kinesis batch needs none
of this: `fraud.schema.parse` checks it with a dict.
"""

from __future__ import annotations

import bisect
import os
import tempfile
from typing import Any

import numba as nb
import numpy as np
import numpy.typing as npt
import pyarrow as pa

from fraud.errors import FraudError

__all__ = ["SeenIds"]

I64 = npt.NDArray[np.int64]
Bool = npt.NDArray[np.bool_]


class SeenIds:
    """Ids accepted so far, and where each was first seen, across the chunks of one file.

    Memory is what bounds a long file, so no id text is held in memory at all: per id a
    64-bit hash (Python's string hash; this object never leaves the process) and a 32-bit
    ordinal in sorted runs (12 bytes), plus a Bloom filter over the hashes (2-4 bytes). The
    ids and positions themselves go to an anonymous temporary file (`tempfile`, deleted
    when closed or on exit), read back only to confirm a hash hit: a duplicate is reported
    only when the texts are equal, so a 64-bit collision never drops a good row.

    Clean input pays one hash per id, one sort and one filter probe per chunk; only the
    filter's positives (~1% of ids, plus real duplicates) are searched in the runs, and only
    a chunk with a real hash hit takes the exact row-by-row path. New ids form a sorted run;
    runs of similar size are merged (up to `MAX_RUN` ids), so no chunk copies everything
    stored. Unbounded by design (~16 bytes of memory and ~30-40 bytes of temporary file per
    id): give a long-running stream none (redeliveries are caught by the idempotent writes
    downstream, keyed by transaction id).
    """

    MAX_RUN = 1 << 21  # ids per merged run: bounds a merge's temporary copy (~40 MB)

    def __init__(self) -> None:
        self._runs: list[tuple[I64, npt.NDArray[Any]]] = []  # (sorted hashes, ordinals)
        self._bloom = _Bloom()
        self._spill = _Spill()
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def close(self) -> None:
        """Release the temporary file (also done when the object is collected)."""
        self._spill.close()

    def claim(self, keys: list[str], positions: list[str]) -> list[tuple[int, str]]:
        """Record `keys`; return ``(index, first position)`` for each one already taken."""
        n = len(keys)
        if n == 0:
            return []
        hashes = np.fromiter(map(hash, keys), dtype=np.int64, count=n)
        known = np.zeros(n, dtype=bool)
        maybe = np.flatnonzero(self._bloom.maybe(hashes))
        if len(maybe):
            known[maybe] = self._stored(hashes[maybe])
        order = np.argsort(hashes)  # distinct hashes on the clean path: any sort will do
        ordered = hashes[order]
        if not known.any() and not np.any(ordered[1:] == ordered[:-1]):
            self._add(ordered, order, keys, positions)
            return []
        repeats: list[tuple[int, str]] = []
        fresh: dict[str, int] = {}
        for k in range(n):
            key = keys[k]
            earlier = self._lookup(key, int(hashes[k])) if known[k] else None
            if earlier is None and key in fresh:
                earlier = positions[fresh[key]]
            if earlier is None:
                fresh[key] = k
            else:
                repeats.append((k, earlier))
        rows = list(fresh.values())
        sub = hashes[rows]
        order = np.argsort(sub)
        self._add(sub[order], order, [keys[k] for k in rows], [positions[k] for k in rows])
        return repeats

    def _stored(self, queries: I64) -> Bool:
        """Whether each hash is stored (in any run)."""
        hit = np.zeros(len(queries), dtype=bool)
        for hashes, _ in self._runs:
            at = np.searchsorted(hashes, queries)
            inside = at < len(hashes)
            hit[inside] |= hashes[at[inside]] == queries[inside]
        return hit

    def _lookup(self, key: str, key_hash: int) -> str | None:
        """Where `key` was first seen, if it was (hash hits are confirmed on the text)."""
        for hashes, ordinals in self._runs:
            lo = int(np.searchsorted(hashes, key_hash, side="left"))
            hi = int(np.searchsorted(hashes, key_hash, side="right"))
            for ordinal in ordinals[lo:hi].tolist():
                if self._spill.key(int(ordinal)) == key:
                    return self._spill.position(int(ordinal))
        return None

    def _add(self, ordered: I64, order: I64, keys: list[str], positions: list[str]) -> None:
        """Store `keys` (their hashes sorted: ``ordered = hashes[order]``) as a new run."""
        if not keys:
            return
        end = self._count + len(keys)
        kind = np.uint32 if end < 2**32 else np.int64
        ordinals = (order + self._count).astype(kind)
        self._spill.append(keys, positions)
        self._bloom.add(ordered, end)
        self._runs.append((ordered, ordinals))
        self._count = end
        # Merge runs of similar size (a binary counter): each id is copied about
        # log2(MAX_RUN / chunk) times in all, never once per chunk.
        while len(self._runs) >= 2:
            (h1, o1), (h2, o2) = self._runs[-2], self._runs[-1]
            if len(h1) > 2 * len(h2) or len(h1) + len(h2) > self.MAX_RUN:
                break
            hashes = np.concatenate([h1, h2])
            merge = np.argsort(hashes, kind="stable")  # two sorted runs: a linear merge
            self._runs[-2:] = [(hashes[merge], np.concatenate([o1, o2])[merge])]
            del hashes, merge
        if self._bloom.full:
            self._bloom.rebuild([h for h, _ in self._runs], self._count)


@nb.njit(cache=True, nogil=True)
def _bloom_probe(bits: npt.NDArray[np.uint64], hashes: npt.NDArray[np.uint64], shift: int,
                 add: bool, out: Bool) -> None:  # pragma: no cover - compiled
    """Two probes per hash (multiplicative hashing of the already mixed 64-bit hash)."""
    one = np.uint64(1)
    s = np.uint64(shift)
    for i in range(len(hashes)):
        h = hashes[i]
        p1 = (h * np.uint64(0x9E3779B97F4A7C15)) >> s
        p2 = (h * np.uint64(0xC2B2AE3D27D4EB4F) + np.uint64(0x165667B19E3779F9)) >> s
        w1, b1 = p1 >> np.uint64(6), one << (p1 & np.uint64(63))
        w2, b2 = p2 >> np.uint64(6), one << (p2 & np.uint64(63))
        if add:
            bits[w1] |= b1
            bits[w2] |= b2
        else:
            out[i] = (bits[w1] & b1) != 0 and (bits[w2] & b2) != 0


class _Bloom:
    """A Bloom filter over 64-bit hashes, 16-32 bits per id (about 1% false positives)."""

    BITS_PER_ID = 16

    def __init__(self, log_bits: int = 20) -> None:
        self._log = log_bits
        self._bits = np.zeros(1 << (log_bits - 6), dtype=np.uint64)
        self._capacity = (1 << log_bits) // self.BITS_PER_ID
        self.full = False

    def maybe(self, hashes: I64) -> Bool:
        out = np.zeros(len(hashes), dtype=bool)
        _bloom_probe(self._bits, hashes.view(np.uint64), 64 - self._log, False, out)
        return out

    def add(self, hashes: I64, count: int) -> None:
        _bloom_probe(self._bits, hashes.view(np.uint64), 64 - self._log, True,
                     np.zeros(0, dtype=bool))
        self.full = count > self._capacity

    def rebuild(self, runs: list[I64], count: int) -> None:
        """Grow to twice the needed size and re-add every stored hash."""
        self._log = max(self._log, int(count * 2 * self.BITS_PER_ID).bit_length())
        self._bits = np.zeros(1 << (self._log - 6), dtype=np.uint64)
        self._capacity = (1 << self._log) // self.BITS_PER_ID
        for hashes in runs:
            self.add(hashes, count)


class _Spill:
    """Ids and positions, appended chunk by chunk to an anonymous temporary file.

    Per chunk: int64 byte offsets of the ids, of the positions, then the UTF-8 texts; in
    memory only a few integers per chunk. Read back one value at a time (`os.pread`).
    """

    def __init__(self) -> None:
        self._file: Any = None
        self._closed = False
        self._end = 0
        self._starts: list[int] = []  # first ordinal of each chunk
        self._chunks: list[tuple[int, int, int, int]] = []  # base, rows, id bytes, pos bytes

    def close(self) -> None:
        self._closed = True
        if self._file is not None:
            self._file.close()
            self._file = None

    def append(self, keys: list[str], positions: list[str]) -> None:
        if self._closed:
            raise ValueError("SeenIds was closed: its ids are gone")
        id_off, id_bytes = _packed(keys)
        pos_off, pos_bytes = _packed(positions)
        base = self._end
        try:
            if self._file is None:
                self._file = tempfile.TemporaryFile(  # noqa: SIM115 - closed in close()
                    prefix="fraud-seen-ids-", buffering=0)
            fd = self._file.fileno()
            for part in (id_off, pos_off, id_bytes, pos_bytes):
                data = part.data.cast("B") if isinstance(part, np.ndarray) else memoryview(part)
                written = 0
                while written < len(data):
                    written += os.pwrite(fd, data[written:], self._end + written)
                self._end += len(data)
        except OSError as exc:
            raise FraudError(
                f"cannot write the temporary file of seen transaction ids in "
                f"{tempfile.gettempdir()}: {exc.strerror or exc}; set TMPDIR to a writable "
                "directory with space (about 40 bytes per transaction)") from exc
        self._starts.append(self._starts[-1] + self._chunks[-1][1] if self._chunks else 0)
        self._chunks.append((base, len(keys), len(id_bytes), len(pos_bytes)))

    def _read(self, at: int, size: int) -> bytes:
        out = b""
        while len(out) < size:
            part = os.pread(self._file.fileno(), size - len(out), at + len(out))
            if not part:
                raise OSError("the temporary file of seen ids was cut short")
            out += part
        return out

    def _text(self, ordinal: int, which: int) -> str:
        c = bisect.bisect_right(self._starts, ordinal) - 1
        base, rows, id_size, _ = self._chunks[c]
        i = ordinal - self._starts[c]
        table = base + which * 8 * (rows + 1)
        lo, hi = np.frombuffer(self._read(table + 8 * i, 16), dtype=np.int64).tolist()
        data = base + 16 * (rows + 1) + (id_size if which else 0)
        return self._read(data + lo, hi - lo).decode("utf-8", "surrogatepass")

    def key(self, ordinal: int) -> str:
        return self._text(ordinal, 0)

    def position(self, ordinal: int) -> str:
        return self._text(ordinal, 1)


def _packed(texts: list[str]) -> tuple[I64, bytes | memoryview]:
    """UTF-8 of ``"".join(texts)`` and the byte offset of each text in it."""
    try:  # Arrow encodes and measures in one pass
        arr = pa.array(texts, type=pa.large_string())
    except (UnicodeEncodeError, pa.ArrowException):  # lone surrogates: encoded as they are
        arr = None
    if arr is not None:
        _, offsets, data = arr.buffers()
        starts = np.frombuffer(offsets, dtype=np.int64, count=len(texts) + 1)
        body = memoryview(data)[starts[0]:starts[-1]] if data is not None else b""
        return starts - starts[0], body
    joined = "".join(texts)
    out = np.zeros(len(texts) + 1, dtype=np.int64)
    sizes = np.fromiter((len(t.encode("utf-8", "surrogatepass")) for t in texts),
                        dtype=np.int64, count=len(texts))
    np.cumsum(sizes, out=out[1:])
    return out, joined.encode("utf-8", "surrogatepass")
