"""Write columns to CSV, JSON Lines or Parquet, chosen by the file's extension.

One writer for every command that emits a table (generate, features, replay, reports), so all
of them agree on formats. Readers of untrusted input live in `fraud.schema.files`.

A column is a NumPy array (object arrays hold text) or an Arrow array. Building text columns
as Arrow arrays directly skips one Python object per cell, which is most of what writing
costs: `iso_utc_column` formats timestamps in one compiled pass, `constant_text`,
`lookup_text` and `sparse_text` build repeated, coded and mostly-empty text columns from a
handful of Python strings.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeAlias

import numba as nb
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from fraud.errors import InputError

__all__ = [
    "FORMATS",
    "Column",
    "TableWriter",
    "constant_text",
    "format_of",
    "iso_utc_column",
    "lookup_text",
    "sparse_text",
    "write_columns",
]

# What `TableWriter.write` takes per column: NumPy (object arrays hold text) or Arrow.
Column: TypeAlias = npt.NDArray[Any] | pa.Array | pa.ChunkedArray
I64 = npt.NDArray[np.int64]

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl",
           ".parquet": "parquet", ".pq": "parquet"}


def format_of(path: str | Path) -> str:
    """'csv', 'jsonl' or 'parquet' from the extension (``.gz`` is allowed on csv/jsonl)."""
    suffixes = [s.lower() for s in Path(str(path)).suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    fmt = FORMATS.get(suffixes[-1]) if suffixes else None
    if fmt is None:
        allowed = ", ".join(sorted(FORMATS))
        raise InputError(f"{path}: unknown file type; expected one of {allowed}")
    return fmt


def _to_arrow(columns: Mapping[str, Column]) -> pa.Table:
    arrays: dict[str, pa.Array | pa.ChunkedArray] = {}
    for name, values in columns.items():
        if isinstance(values, pa.Array | pa.ChunkedArray):
            arrays[name] = values
        elif values.dtype == object:
            # Straight from the object array: the same strings, no intermediate list.
            arrays[name] = pa.array(values, type=pa.string())
        else:
            arrays[name] = pa.array(values)
    return pa.table(arrays)


# ---- text columns built without a Python object per cell -------------------------------

_MIN_ISO_US = -62_135_596_800_000_000  # 0001-01-01: numpy's format changes outside 1..9999
_MAX_ISO_US = 253_402_300_800_000_000  # 10000-01-01
_MAX_CHUNK_ROWS = 1 << 24  # keeps a chunk's int32 string offsets far from overflow


_PAIRS = np.frombuffer("".join(f"{i:02d}" for i in range(100)).encode(), dtype=np.uint8)


@nb.njit(cache=True, nogil=True)
def _put2(out: npt.NDArray[np.uint8], at: int, value: int,
          pairs: npt.NDArray[np.uint8]) -> None:  # pragma: no cover - compiled
    out[at] = pairs[2 * value]
    out[at + 1] = pairs[2 * value + 1]


@nb.njit(cache=True, nogil=True)
def _format_iso(ts_us: I64, digits: int, out: npt.NDArray[np.uint8],
                pairs: npt.NDArray[np.uint8]) -> None:  # pragma: no cover - compiled
    """``YYYY-MM-DDTHH:MM:SS.fff[fff]Z`` per value, fixed width, into `out` (compiled)."""
    width = 21 + digits
    last_day = np.int64(-(2**62))
    date = np.zeros(10, dtype=np.uint8)
    for i in range(len(ts_us)):
        t = ts_us[i]
        days = t // 86_400_000_000
        rem = t - days * 86_400_000_000
        if days != last_day:  # sorted input: the date changes rarely
            last_day = days
            # Civil date from a day count (proleptic Gregorian; H. Hinnant's algorithm).
            z = days + 719_468
            era = z // 146_097
            doe = z - era * 146_097
            yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
            doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
            mp = (5 * doy + 2) // 153
            day = doy - (153 * mp + 2) // 5 + 1
            month = mp + 3 if mp < 10 else mp - 9
            year = yoe + era * 400 + (1 if month <= 2 else 0)
            _put2(date, 0, year // 100, pairs)
            _put2(date, 2, year % 100, pairs)
            date[4] = 45  # -
            _put2(date, 5, month, pairs)
            date[7] = 45
            _put2(date, 8, day, pairs)
        a = i * width
        out[a:a + 10] = date
        sec = rem // 1_000_000
        frac = rem - sec * 1_000_000
        out[a + 10] = 84  # T
        _put2(out, a + 11, sec // 3600, pairs)
        out[a + 13] = 58  # :
        _put2(out, a + 14, (sec // 60) % 60, pairs)
        out[a + 16] = 58
        _put2(out, a + 17, sec % 60, pairs)
        out[a + 19] = 46  # .
        if digits == 3:
            ms = frac // 1000
            out[a + 20] = 48 + ms // 100
            _put2(out, a + 21, ms % 100, pairs)
        else:
            _put2(out, a + 20, frac // 10_000, pairs)
            _put2(out, a + 22, (frac // 100) % 100, pairs)
            _put2(out, a + 24, frac % 100, pairs)
        out[a + width - 1] = 90  # Z


def _fixed_width_strings(data: npt.NDArray[np.uint8], n: int, width: int) -> pa.Array:
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data))


def iso_utc_column(ts_us: I64, unit: Literal["ms", "us"] | None = None
                   ) -> pa.Array | pa.ChunkedArray:
    """ISO-8601 UTC text (``Z``) of epoch microseconds, as `numpy.datetime_as_string` writes
    it; `unit` defaults to milliseconds when every value is a whole millisecond.

    >>> iso_utc_column(np.array([0, 1_500_000], dtype=np.int64)).to_pylist()
    ['1970-01-01T00:00:00.000Z', '1970-01-01T00:00:01.500Z']
    """
    ts = np.ascontiguousarray(ts_us, dtype=np.int64)
    if unit is None:
        unit = "ms" if not np.any(ts % 1000) else "us"
    n = len(ts)
    if n and (int(ts.min()) < _MIN_ISO_US or int(ts.max()) >= _MAX_ISO_US):
        text = np.datetime_as_string(ts.astype("datetime64[us]"), unit=unit, timezone="UTC")
        return pa.array(np.asarray(text, dtype=object), type=pa.string())
    digits = 3 if unit == "ms" else 6
    width = 21 + digits
    pieces = []
    for start in range(0, max(n, 1), _MAX_CHUNK_ROWS):
        part = ts[start:start + _MAX_CHUNK_ROWS]
        data = np.empty(len(part) * width, dtype=np.uint8)
        if len(part):
            _format_iso(part, digits, data, _PAIRS)
        pieces.append(_fixed_width_strings(data, len(part), width))
    return pieces[0] if len(pieces) == 1 else pa.chunked_array(pieces, type=pa.string())


def constant_text(value: str, n: int) -> pa.Array:
    """`value` repeated `n` times (a model or rules version on every row).

    >>> constant_text("v1", 2).to_pylist()
    ['v1', 'v1']
    """
    return pa.repeat(pa.scalar(value, pa.string()), n)


def lookup_text(codes: npt.NDArray[np.integer[Any]], names: Sequence[str]) -> pa.Array:
    """``names[codes[i]]`` per row (action names from their small integer codes).

    >>> lookup_text(np.array([1, 0, 1], dtype=np.int8), ["", "block"]).to_pylist()
    ['block', '', 'block']
    """
    index = pa.array(np.ascontiguousarray(codes, dtype=np.int32))
    return pa.array(list(names), type=pa.string()).take(index)


def sparse_text(n: int, rows: npt.NDArray[np.integer[Any]], texts: Sequence[str]) -> pa.Array:
    """``texts[k]`` at row ``rows[k]``, ``""`` everywhere else (rule ids, reasons: most rows
    have none, so only the few non-empty cells are Python strings).

    >>> sparse_text(3, np.array([1]), ["r1;r2"]).to_pylist()
    ['', 'r1;r2', '']
    """
    index = np.zeros(n, dtype=np.int32)
    index[np.asarray(rows, dtype=np.int64)] = np.arange(1, len(texts) + 1, dtype=np.int32)
    return pa.array(["", *texts], type=pa.string()).take(pa.array(index))


def _null_non_finite(row: dict[str, Any]) -> dict[str, Any]:
    """JSON has no NaN or infinity: such values (e.g. a score not computed) become null."""
    for key, value in row.items():
        if isinstance(value, float) and not math.isfinite(value):
            row[key] = None
    return row


class TableWriter:
    """Appends column chunks to one file; the format follows the extension.

    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "out.csv")
    >>> with TableWriter(path) as w:
    ...     w.write({"a": np.arange(2)})
    >>> open(path).read().splitlines()
    ['"a"', '0', '1']
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.format = format_of(self.path)
        self.rows = 0
        self._parquet: pq.ParquetWriter | None = None
        self._csv: pacsv.CSVWriter | None = None
        self._schema: pa.Schema | None = None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: Any = open(self.path, "wb")  # noqa: SIM115 - closed in close()

    def write(self, columns: Mapping[str, Column]) -> None:
        """Append equal-length columns (NumPy or Arrow); later chunks take the first's
        schema."""
        table = _to_arrow(columns)
        if self._schema is None:
            self._schema = table.schema
        else:
            table = table.cast(self._schema)
        self.rows += table.num_rows
        if self.format == "parquet":
            if self._parquet is None:
                self._parquet = pq.ParquetWriter(self._file, table.schema)
            self._parquet.write_table(table)
        elif self.format == "csv":
            if self._csv is None:
                self._csv = pacsv.CSVWriter(self._file, table.schema)
            self._csv.write_table(table)
        else:
            lines = []
            for row in table.to_pylist():
                lines.append(json.dumps(_null_non_finite(row), separators=(",", ":"),
                                        allow_nan=False, default=str))
            if lines:
                self._file.write(("\n".join(lines) + "\n").encode())

    def close(self) -> None:
        if self._parquet is not None:
            self._parquet.close()
        if self._csv is not None:
            self._csv.close()
        self._file.close()

    def __enter__(self) -> TableWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_columns(path: str | Path, columns: Mapping[str, Any]) -> int:
    """Write `columns` (equal-length arrays) to `path` in one go; returns the row count."""
    with TableWriter(path) as writer:
        writer.write({k: v if isinstance(v, pa.Array | pa.ChunkedArray) else np.asarray(v)
                      for k, v in columns.items()})
        return writer.rows
