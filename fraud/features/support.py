"""Point-in-time lookups in the supporting stores (sessions, devices, carts, social graph).

`SupportContext` is what the feature engine needs from those stores for one batch: one value
per transaction, each optional (NaN, `MISSING_TIME`, ``""`` or -1 when absent). Anyone can
build it: the DynamoDB shell from its tables, or `SupportStore` from the generator's JSONL
directory. Only data whose time is <= the transaction's timestamp is used, so replay and
training never see the future.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from fraud.errors import InputError
from fraud.features.grouping import segment_count_le
from fraud.features.ids import KeyIndex, dense_codes, local_hashes
from fraud.features.supportcache import SortedTable, read_cache, write_cache
from fraud.schema.batch import MISSING_TIME, TransactionBatch
from fraud.schema.records import iter_records

__all__ = [
    "CART_WINDOW_US",
    "SUPPORT_FILES",
    "SupportContext",
    "SupportStore",
    "default_stores_dir",
    "parse_time_us",
    "stores_dir_beside",
]

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
ObjArray = npt.NDArray[np.object_]

SUPPORT_FILES = ("users.jsonl", "sessions.jsonl", "devices.jsonl", "carts.jsonl",
                 "followers.jsonl", "posts.jsonl", "scores.jsonl")
CART_WINDOW_US = 86_400_000_000  # cart items added in the 24 h before the transaction


@dataclass(frozen=True, slots=True, eq=False)
class SupportContext:
    """Per-transaction values from the supporting stores, aligned with a batch's rows."""

    session_created_us: I64
    session_device_id: ObjArray
    cart_value: F64
    device_lat: F64
    device_lon: F64
    device_seen_us: I64
    account_created_us: I64
    followers: I64
    posts: I64

    def __len__(self) -> int:
        return len(self.session_created_us)

    @classmethod
    def empty(cls, n: int) -> SupportContext:
        """Nothing known for `n` transactions (every support feature takes its neutral value)."""
        dev = np.empty(n, dtype=object)
        dev[:] = ""
        return cls(
            np.full(n, MISSING_TIME, dtype=np.int64), dev, np.full(n, np.nan),
            np.full(n, np.nan), np.full(n, np.nan), np.full(n, MISSING_TIME, dtype=np.int64),
            np.full(n, MISSING_TIME, dtype=np.int64), np.full(n, -1, dtype=np.int64),
            np.full(n, -1, dtype=np.int64),
        )


def parse_time_us(value: Any, where: str) -> int:
    """Microseconds since the epoch from ISO-8601 text or an epoch number (s, ms or µs)."""
    if isinstance(value, bool) or value is None:
        raise InputError(f"{where}: expected a timestamp, got {value!r}")
    if isinstance(value, int | float):
        v = float(value)
        if not np.isfinite(v):
            raise InputError(f"{where}: expected a timestamp, got {value!r}")
        scale = 1 if abs(v) >= 1e14 else 1_000 if abs(v) >= 1e11 else 1_000_000
        return round(v * scale)
    text = str(value).strip()
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        try:
            return parse_time_us(float(text), where)
        except (ValueError, InputError):
            raise InputError(f"{where}: not an ISO-8601 time or epoch number: {text[:40]!r}")\
                from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    delta = parsed - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def default_stores_dir(out: str | Path) -> Path:
    """Where `fraud generate` writes a data set's supporting stores: ``tx.csv`` -> ``tx.stores``.

    Only the last extension goes (and a ``.gz`` before it), so ``tx.v2.csv.gz`` -> ``tx.v2.stores``.
    """
    path = Path(out)
    name = path.name
    for suffix in reversed(path.suffixes):
        name = name[: -len(suffix)] if name.endswith(suffix) and name != suffix else name
        if suffix.lower() != ".gz":
            break
    return path.with_name(f"{name}.stores")


def stores_dir_beside(input_path: str | Path) -> Path | None:
    """The supporting stores `fraud generate` wrote beside `input_path`, if there are any."""
    if "://" in str(input_path):
        return None
    candidate = default_stores_dir(input_path)
    return candidate if candidate.is_dir() else None


def _rows(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """Rows of one supporting-store file; a store the generator did not write is empty."""
    if not path.exists():
        return iter(())
    return iter_records(path)


def _field(row: dict[str, Any], name: str, where: str) -> Any:
    if name not in row:
        raise InputError(f"{where}: missing field {name!r}")
    return row[name]


def _float(value: Any) -> float:
    try:
        return float(value) if value is not None else float("nan")
    except (TypeError, ValueError):
        return float("nan")


class _Table:
    """Rows grouped by key and sorted by time, for vectorised point-in-time lookups.

    The keys are sorted and indexed once (`KeyIndex`), so a lookup costs one hash-table probe
    per *distinct* key of a batch (a batch has far fewer users than rows), in compiled code.
    """

    def __init__(self, data: SortedTable) -> None:
        self.keys: ObjArray = data.keys
        self.times: I64 = data.times
        self.offsets: I64 = np.searchsorted(
            data.codes, np.arange(len(data.keys) + 1)).astype(np.int64)
        self.values = data.values
        self._index = KeyIndex(self.keys)
        # Whole-table arrays a lookup needs, computed on first use (the table is read-only).
        self.derived: dict[str, npt.NDArray[Any]] = {}

    @classmethod
    def from_rows(cls, keys: ObjArray, times: I64, **values: npt.NDArray[Any]) -> _Table:
        """Rows in any order: grouped by key (keys sorted), each key's rows by time."""
        if not len(keys):
            return cls(SortedTable(np.empty(0, dtype=object), np.empty(0, dtype=np.int64),
                                   np.asarray(times, dtype=np.int64),
                                   {k: np.asarray(v) for k, v in values.items()}))
        # Factorise by hash first (fast), then sort only the distinct keys: the same order
        # as np.unique on the text, without converting every row to fixed width.
        row_codes, distinct = dense_codes(keys)
        text = distinct.astype(str)
        rank = np.argsort(text, kind="stable")
        where = np.empty(len(rank), dtype=np.int64)
        where[rank] = np.arange(len(rank), dtype=np.int64)
        codes = where[row_codes]
        order = np.lexsort((times, codes))
        return cls(SortedTable(text[rank].astype(object), codes[order],
                               np.ascontiguousarray(times[order]),
                               {k: np.asarray(v)[order] for k, v in values.items()}))

    def sorted_table(self) -> SortedTable:
        codes = np.repeat(np.arange(len(self.keys), dtype=np.int64), np.diff(self.offsets))
        return SortedTable(self.keys, codes, self.times, self.values)

    def codes(self, keys: ObjArray | _Keys) -> I64:
        """Segment index of each key, or -1 when the key is unknown."""
        dk = keys if isinstance(keys, _Keys) else _Keys.of(keys)
        if len(self.keys) == 0 or len(dk.codes) == 0:
            return np.full(len(dk.codes), -1, dtype=np.int64)
        return self._index.find(dk.distinct, dk.hashes)[dk.codes]

    def upto(self, keys: ObjArray | _Keys, t: I64) -> tuple[I64, I64]:
        """(segment start, end) where end is one past the last row with time <= t."""
        return self.upto_codes(self.codes(keys), t)

    def upto_codes(self, codes: I64, t: I64) -> tuple[I64, I64]:
        """`upto` for keys already turned into segment codes by `codes`."""
        end = segment_count_le(self.offsets, self.times, codes, t)
        start = np.where(codes >= 0, self.offsets[np.maximum(codes, 0)], 0)
        return start.astype(np.int64), end


@dataclass(frozen=True, slots=True)
class _Keys:
    """A batch column factorised once: code per row, the distinct values and their hashes."""

    codes: I64
    distinct: ObjArray
    hashes: I64

    @classmethod
    def of(cls, keys: ObjArray) -> _Keys:
        codes, distinct = dense_codes(np.asarray(keys, dtype=object))
        return cls(codes, distinct, local_hashes(distinct))


class SupportStore:
    """The supporting stores loaded from a JSONL directory, answering lookups per batch.

    >>> SupportStore.from_directory("/nonexistent")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    fraud.errors.InputError: ...: not a directory
    """

    def __init__(self, tables: dict[str, _Table]) -> None:
        self._t = tables

    @classmethod
    def from_directory(cls, directory: str | Path) -> SupportStore:
        root = Path(directory)
        if not root.is_dir():
            raise InputError(f"{root}: not a directory")
        t: dict[str, _Table] = {}
        t["users"] = _load(root / "users.jsonl", "user_id", "created_at", {})
        t["sessions"] = _load(root / "sessions.jsonl", "session_id", "created_at",
                              {"device_id": "str"})
        t["devices"] = _load(root / "devices.jsonl", "device_id", "ts",
                             {"lat": "float", "lon": "float"})
        t["carts"] = _load(root / "carts.jsonl", "user_id", "added_at",
                           {"quantity": "float", "price": "float"})
        t["followers"] = _load(root / "followers.jsonl", "user_id", "since", {})
        t["posts"] = _load(root / "posts.jsonl", "user_id", "ts", {})
        return cls(t)

    def lookup(self, batch: TransactionBatch) -> SupportContext:
        """Point-in-time values for every row of `batch` (only data with time <= timestamp)."""
        n = len(batch)
        ctx = SupportContext.empty(n)
        t = batch.timestamp_us
        # Factorise each id column once; every table then probes only the distinct ids.
        user_keys = _Keys.of(batch.user_id)
        users = self._t["users"]
        start, end = users.upto(user_keys, t)
        known = end > start
        account = np.where(known, users.times[np.maximum(start, 0)] if len(users.times)
                           else MISSING_TIME, MISSING_TIME)
        sessions = self._t["sessions"]
        s_start, s_end = sessions.upto(_Keys.of(batch.session_id), t)
        s_known = s_end > s_start
        last = np.maximum(s_end - 1, 0)
        sess_created = np.where(s_known, sessions.times[last] if len(sessions.times) else 0,
                                MISSING_TIME)
        sess_dev = ctx.session_device_id.copy()
        if len(sessions.times):
            sess_dev[s_known] = sessions.values["device_id"][last[s_known]]
        devices = self._t["devices"]
        d_start, d_end = devices.upto(_Keys.of(batch.device_id), t)
        dev_lat, dev_lon, dev_seen = _last_located(devices, d_start, d_end)
        carts = self._t["carts"]
        c_codes = carts.codes(user_keys)
        c_start, c_end = carts.upto_codes(c_codes, t)
        _, c_old = carts.upto_codes(c_codes, t - CART_WINDOW_US)
        cart_value = _window_sum(carts, np.maximum(c_start, c_old), c_end)
        f_codes = self._t["followers"].codes(user_keys)
        p_codes = self._t["posts"].codes(user_keys)
        social_known = known | (f_codes >= 0) | (p_codes >= 0)
        followers = np.where(social_known, _count(self._t["followers"], f_codes, t), -1)
        posts = np.where(social_known, _count(self._t["posts"], p_codes, t), -1)
        return SupportContext(
            sess_created.astype(np.int64), sess_dev, cart_value, dev_lat, dev_lon, dev_seen,
            np.asarray(account, dtype=np.int64), followers.astype(np.int64),
            posts.astype(np.int64),
        )


def _count(table: _Table, codes: I64, t: I64) -> I64:
    start, end = table.upto_codes(codes, t)
    return (end - start).astype(np.int64)


def _window_sum(table: _Table, start: I64, end: I64) -> F64:
    if not len(table.times):
        return np.full(len(start), np.nan)
    csum = table.derived.get("cart_csum")
    if csum is None:  # the table never changes: one prefix sum for every batch
        value = np.nan_to_num(table.values["quantity"] * table.values["price"])
        csum = table.derived["cart_csum"] = np.concatenate([[0.0], np.cumsum(value)])
    total = csum[end] - csum[np.minimum(start, end)]
    return np.where(end > start, total, np.nan)


def _last_located(table: _Table, start: I64, end: I64) -> tuple[F64, F64, I64]:
    n = len(start)
    lat = np.full(n, np.nan)
    lon = np.full(n, np.nan)
    seen = np.full(n, MISSING_TIME, dtype=np.int64)
    if not len(table.times):
        return lat, lon, seen
    last_loc = table.derived.get("last_located")
    if last_loc is None:
        located = np.isfinite(table.values["lat"]) & np.isfinite(table.values["lon"])
        # Index of the latest located row at or before each position (-1 when none).
        idx = np.where(located, np.arange(len(located)), -1)
        last_loc = table.derived["last_located"] = np.maximum.accumulate(idx)
    cand = np.where(end > start, last_loc[np.maximum(end - 1, 0)], -1)
    ok = cand >= start
    lat[ok] = table.values["lat"][cand[ok]]
    lon[ok] = table.values["lon"][cand[ok]]
    seen[ok] = table.times[cand[ok]]
    return lat, lon, seen


def _load(path: Path, key: str, time_field: str, fields: dict[str, str]) -> _Table:
    """One supporting-store file as a `_Table`; `fields` maps a value column to "str"/"float".

    The common case (well-formed JSON Lines with the generator's types) is read column-wise
    by `_load_columns`; anything it does not vouch for is read row by row, which gives the
    exact error (file, line, field) or the lenient conversions of `_load_rows`. The result
    is cached beside the file (`fraud.features.supportcache`) for the next load.
    """
    if path.is_file():
        cached = read_cache(path, fields)
        if cached is not None:
            return _Table(cached)
    table = _load_columns(path, key, time_field, fields)
    if table is None:
        table = _load_rows(path, key, time_field, fields)
    if path.is_file() and len(table.times):
        write_cache(path, fields, table.sorted_table())
    return table


def _load_rows(path: Path, key: str, time_field: str, fields: dict[str, str]) -> _Table:
    keys: list[str] = []
    times: list[int] = []
    values: dict[str, list[Any]] = {name: [] for name in fields}
    for where, row in _rows(path):
        keys.append(str(_field(row, key, where)))
        times.append(parse_time_us(_field(row, time_field, where), f"{where}: {time_field}"))
        for name, kind in fields.items():
            raw = row.get(name)
            if kind == "str":
                values[name].append(str(raw) if raw is not None else "")
            else:
                values[name].append(_float(raw) if raw is not None else float("nan"))
    return _Table.from_rows(np.asarray(keys, dtype=object), np.asarray(times, dtype=np.int64),
                            **{name: _array(v, fields[name]) for name, v in values.items()})


def _array(values: list[Any], kind: str) -> npt.NDArray[Any]:
    return np.asarray(values, dtype=object if kind == "str" else np.float64)


def _load_columns(path: Path, key: str, time_field: str,
                  fields: dict[str, str]) -> _Table | None:
    """The file read by pyarrow's JSON reader, or None when the row path must decide.

    None (fall back) whenever this path could differ from `_load_rows`: a parse or type
    error, a blank line (row numbers would shift), a missing key or time, a time the
    vectorised parser does not read as a plain in-range ISO-8601 time or epoch number.
    """
    if not path.is_file() or path.suffix.lower() not in (".jsonl", ".ndjson", ".json"):
        return None if path.exists() else _Table.from_rows(
            np.empty(0, dtype=object), np.empty(0, dtype=np.int64),
            **{n: _array([], k) for n, k in fields.items()})
    import pyarrow as pa
    import pyarrow.json as pj

    data = path.read_bytes()
    schema = pa.schema([(key, pa.string()), (time_field, pa.string())]
                       + [(name, pa.string() if kind == "str" else pa.float64())
                          for name, kind in fields.items()])
    try:
        table = pj.read_json(
            pa.BufferReader(data),
            read_options=pj.ReadOptions(block_size=1 << 24),
            parse_options=pj.ParseOptions(explicit_schema=schema,
                                          unexpected_field_behavior="ignore"))
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return None
    lines = data.count(b"\n") + (0 if not data or data.endswith(b"\n") else 1)
    if table.num_rows != lines:
        return None
    try:
        key_col = table.column(key).combine_chunks()
        time_col = table.column(time_field).combine_chunks()
    except pa.ArrowInvalid:  # a column too big for one string array
        return None
    if key_col.null_count or time_col.null_count:
        return None
    times = _arrow_times(time_col)
    if times is None:
        return None
    values: dict[str, npt.NDArray[Any]] = {}
    for name, kind in fields.items():
        col = table.column(name)
        if kind == "str":
            values[name] = np.asarray(col.fill_null("").to_numpy(zero_copy_only=False),
                                      dtype=object)
        else:
            values[name] = np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float64)
    keys = np.asarray(key_col.to_numpy(zero_copy_only=False), dtype=object)
    return _Table.from_rows(keys, times, **values)


def _arrow_times(col: Any) -> I64 | None:
    """Times of a null-free Arrow string column, or None when any needs the row path."""
    from fraud.schema.decode import parse_time_utf8_fast
    from fraud.schema.timeparse import TIME_OK

    offsets = np.frombuffer(col.buffers()[1], dtype=np.int32,
                            count=len(col) + 1, offset=col.offset * 4)
    data = np.frombuffer(col.buffers()[2], dtype=np.uint8)
    # `datetime.fromisoformat` refuses lower-case "z"/"t" that the vectorised parser takes.
    # Epoch numbers in strings take the row path too (its float rounding is the rule).
    lo, hi = int(offsets[0]), int(offsets[-1])
    text = data[lo:hi]
    if np.any((text >= ord("a")) & (text <= ord("z"))):
        return None
    starts = offsets[:-1].astype(np.int64)
    lengths = np.diff(offsets).astype(np.int64)
    if len(starts) and (np.any(lengths < 10) or np.any(data[starts + 4] != ord("-"))):
        return None
    us, status = parse_time_utf8_fast(data, starts, lengths)
    if not np.all(status == TIME_OK):
        return None
    return us
