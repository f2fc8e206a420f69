"""Reading small record files (label feeds, seed data) row by row, with positions for errors.

JSON Lines (``.jsonl``/``.ndjson``), CSV (``.csv``) and Parquet (``.parquet``, read in record
batches with pyarrow). Every row comes with ``"<file>:<line>"`` so an error can say where.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fraud.errors import InputError

__all__ = ["iter_records", "require"]


def iter_records(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(position, row) pairs of a JSONL, CSV or Parquet file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        yield from _jsonl(path)
    elif suffix == ".csv":
        yield from _csv(path)
    elif suffix == ".parquet":
        yield from _parquet(path)
    else:
        raise InputError(f"{path}: unknown file type {suffix!r} (expected .jsonl, .csv, .parquet)")


def _jsonl(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, 1):
            where = f"{path}:{number}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(f"{where}: not valid UTF-8 (bad byte at offset {exc.start})"
                                 ) from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{where}: not valid JSON ({exc.msg})") from None
            except RecursionError:
                raise InputError(f"{where}: not valid JSON (nested too deeply)") from None
            if not isinstance(row, dict):
                raise InputError(f"{where}: expected a JSON object, got {type(row).__name__}")
            yield where, row


def _csv(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    number = 1
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        try:
            for number, row in enumerate(reader, 2):
                yield f"{path}:{number}", {k: v for k, v in row.items() if k is not None}
        except UnicodeDecodeError:
            raise InputError(f"{path}: not valid UTF-8 after line {number}") from None
        except csv.Error as exc:
            raise InputError(f"{path}: unreadable CSV after line {number}: {exc}") from None


def _parquet(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    import pyarrow.parquet as pq

    try:
        reader = pq.ParquetFile(path)
    except Exception as exc:
        raise InputError(f"{path}: not a Parquet file ({exc})") from None
    number = 0
    for batch in reader.iter_batches(batch_size=65_536):
        for row in batch.to_pylist():
            number += 1
            yield f"{path}:row {number}", row


def require(row: dict[str, Any], name: str, where: str) -> Any:
    """`row[name]`, or an `InputError` naming the field and the position."""
    value = row.get(name)
    if value is None or value == "":
        raise InputError(f"{where}: missing field {name!r}")
    return value
