"""A binary cache of the supporting stores, beside their JSON Lines files.

Parsing and sorting the stores' JSON Lines costs about a second per million rows, paid by
every replay of the same data (a backtest is usually run many times: one rule change, one
replay). The first load writes each table, already grouped and sorted, as an Arrow IPC file
in ``.cache/`` beside its source; later loads memory-map it. A cache file is used only when
it names the very source it came from (size and modification time, to the nanosecond), the
fields asked for and this module's format version; anything else rebuilds it. Writing is
best effort and atomic (a temporary file renamed into place): a read-only directory just
means no cache.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from fraud.logs import get_logger

__all__ = ["CACHE_DIR", "SortedTable", "read_cache", "write_cache"]

log = get_logger(__name__)

CACHE_DIR = ".cache"
_FORMAT = 1
_META = b"fraud.support"

I64 = npt.NDArray[np.int64]
ObjArray = npt.NDArray[np.object_]


@dataclass(frozen=True, slots=True)
class SortedTable:
    """A store table grouped by key (keys sorted), each key's rows in time order."""

    keys: ObjArray
    codes: I64  # key index of each row
    times: I64
    values: dict[str, npt.NDArray[Any]]


def _cache_path(source: Path) -> Path:
    return source.parent / CACHE_DIR / (source.name + ".arrow")


def _fingerprint(source: Path, fields: dict[str, str]) -> str:
    st = source.stat()
    return json.dumps({"format": _FORMAT, "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                       "fields": fields}, sort_keys=True)


def read_cache(source: Path, fields: dict[str, str]) -> SortedTable | None:
    """The cached table of `source`, or None when there is none that matches it."""
    path = _cache_path(source)
    try:
        wanted = _fingerprint(source, fields)
        with pa.memory_map(str(path)) as mapped:
            table = pa.ipc.open_file(mapped).read_all()
    except (OSError, pa.ArrowInvalid):
        return None
    meta = table.schema.metadata or {}
    if meta.get(_META, b"").decode() != wanted:
        return None
    key = table.column("key").combine_chunks()
    keys = np.asarray(key.dictionary.to_numpy(zero_copy_only=False), dtype=object)
    codes = key.indices.to_numpy().astype(np.int64)
    values: dict[str, npt.NDArray[Any]] = {}
    for name, kind in fields.items():
        col = table.column(name)
        values[name] = (np.asarray(col.to_numpy(zero_copy_only=False), dtype=object)
                        if kind == "str" else np.asarray(col.to_numpy(), dtype=np.float64))
    return SortedTable(keys, codes, table.column("time").to_numpy().astype(np.int64), values)


def write_cache(source: Path, fields: dict[str, str], table: SortedTable) -> None:
    """Write `table` as the cache of `source` (best effort: a failure is logged, no more)."""
    path = _cache_path(source)
    try:
        meta = {_META: _fingerprint(source, fields).encode()}
        key = pa.DictionaryArray.from_arrays(pa.array(table.codes, type=pa.int32()),
                                             pa.array(table.keys.tolist(), type=pa.string()))
        columns: dict[str, Any] = {"key": key, "time": pa.array(table.times, type=pa.int64())}
        for name, kind in fields.items():
            values = table.values[name]
            columns[name] = pa.array(values.tolist() if kind == "str" else values,
                                     type=pa.string() if kind == "str" else pa.float64())
        arrow = pa.table(columns).replace_schema_metadata(meta)
        path.parent.mkdir(exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out, pa.ipc.new_file(out, arrow.schema) as writer:
                writer.write_table(arrow)
            os.chmod(tmp, 0o644)  # as readable as its source usually is (mkstemp: 0600)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except (OSError, pa.ArrowInvalid) as exc:
        log.info("support_cache_not_written", source=str(source), error=str(exc))
