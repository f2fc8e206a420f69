"""Read a transaction file as ``(position, row)`` pairs for the producer, in chunks.

A stop-gap until ``fraud.schema.files.read_transactions`` lands: the producer sends rows as
they are (the consumer validates), so this reader only has to keep ids as strings (``007``
stays ``007``) and say where each row came from. CSV, JSON Lines and Parquet, via pyarrow.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fraud.errors import InputError
from fraud.schema.batch import OPTIONAL_STRING_FIELDS

__all__ = ["ID_FIELDS", "read_rows"]

ID_FIELDS = ("transaction_id", "user_id", "terminal_id", *OPTIONAL_STRING_FIELDS)
_CHUNK = 64 * 1024


def _batches(path: Path) -> tuple[Iterator[Any], int]:
    """pyarrow record batches of `path` and the line number of its first data row."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.json as pajson
    import pyarrow.parquet as pq

    suffix = "".join(path.suffixes[-2:]).lower() if path.suffix == ".gz" else path.suffix.lower()
    if suffix in (".csv", ".csv.gz"):
        reader = pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(block_size=1 << 22),
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.string() for name in ID_FIELDS}
            ),
        )
        return iter(reader), 2
    if suffix in (".jsonl", ".ndjson", ".json", ".jsonl.gz"):
        table = pajson.read_json(path)
        return iter(table.to_batches(_CHUNK)), 1
    if suffix == ".parquet":
        return iter(pq.ParquetFile(path).iter_batches(batch_size=_CHUNK)), 1
    raise InputError(f"{path}: unknown file type {suffix!r}; expected .csv, .jsonl or .parquet")


def read_rows(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """``("file.csv:LINE", row)`` for every row, in file order."""
    import pyarrow as pa

    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        batches, line = _batches(path)
        for batch in batches:
            for row in batch.to_pylist():
                yield f"{path.name}:{line}", row
                line += 1
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
        raise InputError(f"{path}: cannot read: {exc}") from exc
