"""Write columns to CSV, JSON Lines or Parquet, chosen by the file's extension.

One writer for every command that emits a table (generate, features, replay, reports), so all
of them agree on formats. Readers of untrusted input live in `fraud.schema.files`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from fraud.errors import InputError

__all__ = ["FORMATS", "TableWriter", "format_of", "write_columns"]

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


def _to_arrow(columns: Mapping[str, npt.NDArray[Any]]) -> pa.Table:
    arrays = {}
    for name, values in columns.items():
        if values.dtype == object:
            arrays[name] = pa.array(values.tolist(), type=pa.string())
        else:
            arrays[name] = pa.array(values)
    return pa.table(arrays)


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

    def write(self, columns: Mapping[str, npt.NDArray[Any]]) -> None:
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


def write_columns(path: str | Path, columns: Mapping[str, npt.NDArray[Any]]) -> int:
    """Write `columns` (equal-length arrays) to `path` in one go; returns the row count."""
    with TableWriter(path) as writer:
        writer.write({k: np.asarray(v) for k, v in columns.items()})
        return writer.rows
