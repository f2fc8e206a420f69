"""Point-in-time lookups in the supporting stores (sessions, devices, carts, social graph).

`SupportContext` is what the feature engine needs from those stores for one batch: one value
per transaction, each optional (NaN, `MISSING_TIME`, ``""`` or -1 when absent). Anyone can
build it: the DynamoDB shell from its tables, or `SupportStore` from the generator's JSONL
directory. Only data whose time is <= the transaction's timestamp is used, so replay and
training never see the future.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from fraud.errors import InputError
from fraud.features.kernels import segment_count_le
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
    """Rows grouped by key and sorted by time, for vectorised point-in-time lookups."""

    def __init__(self, keys: list[str], times: list[int], **values: list[Any]) -> None:
        karr = np.asarray(keys, dtype=object)
        tarr = np.asarray(times, dtype=np.int64)
        self.keys: ObjArray = np.unique(karr.astype(str)).astype(object) if keys else \
            np.empty(0, dtype=object)
        codes = np.searchsorted(self.keys.astype(str), karr.astype(str)) if keys else \
            np.empty(0, dtype=np.int64)
        order = np.lexsort((tarr, codes)) if keys else np.empty(0, dtype=np.int64)
        self.times: I64 = tarr[order] if keys else tarr
        self.offsets: I64 = np.searchsorted(
            np.asarray(codes)[order], np.arange(len(self.keys) + 1)).astype(np.int64)
        self.values = {k: np.asarray(v)[order] if keys else np.asarray(v)
                       for k, v in values.items()}

    def codes(self, keys: ObjArray) -> I64:
        """Segment index of each key, or -1 when the key is unknown."""
        if len(self.keys) == 0 or len(keys) == 0:
            return np.full(len(keys), -1, dtype=np.int64)
        sk = self.keys.astype(str)
        q = keys.astype(str)
        pos = np.minimum(np.searchsorted(sk, q), len(sk) - 1)
        return np.where(sk[pos] == q, pos, -1).astype(np.int64)

    def upto(self, keys: ObjArray, t: I64) -> tuple[I64, I64]:
        """(segment start, end) where end is one past the last row with time <= t."""
        codes = self.codes(keys)
        end = segment_count_le(self.offsets, self.times, codes, t)
        start = np.where(codes >= 0, self.offsets[np.maximum(codes, 0)], 0)
        return start.astype(np.int64), end


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
                              {"device_id": str})
        t["devices"] = _load(root / "devices.jsonl", "device_id", "ts",
                             {"lat": _float, "lon": _float})
        t["carts"] = _load(root / "carts.jsonl", "user_id", "added_at",
                           {"quantity": _float, "price": _float})
        t["followers"] = _load(root / "followers.jsonl", "user_id", "since", {})
        t["posts"] = _load(root / "posts.jsonl", "user_id", "ts", {})
        return cls(t)

    def lookup(self, batch: TransactionBatch) -> SupportContext:
        """Point-in-time values for every row of `batch` (only data with time <= timestamp)."""
        n = len(batch)
        ctx = SupportContext.empty(n)
        t = batch.timestamp_us
        users = self._t["users"]
        start, end = users.upto(batch.user_id, t)
        known = end > start
        account = np.where(known, users.times[np.maximum(start, 0)] if len(users.times)
                           else MISSING_TIME, MISSING_TIME)
        sessions = self._t["sessions"]
        s_start, s_end = sessions.upto(batch.session_id, t)
        s_known = s_end > s_start
        last = np.maximum(s_end - 1, 0)
        sess_created = np.where(s_known, sessions.times[last] if len(sessions.times) else 0,
                                MISSING_TIME)
        sess_dev = ctx.session_device_id.copy()
        if len(sessions.times):
            sess_dev[s_known] = sessions.values["device_id"][last[s_known]]
        devices = self._t["devices"]
        d_start, d_end = devices.upto(batch.device_id, t)
        dev_lat, dev_lon, dev_seen = _last_located(devices, d_start, d_end)
        carts = self._t["carts"]
        c_start, c_end = carts.upto(batch.user_id, t)
        _, c_old = carts.upto(batch.user_id, t - CART_WINDOW_US)
        cart_value = _window_sum(carts, np.maximum(c_start, c_old), c_end)
        social_known = known | (self._t["followers"].codes(batch.user_id) >= 0) | \
            (self._t["posts"].codes(batch.user_id) >= 0)
        followers = np.where(social_known, _count(self._t["followers"], batch.user_id, t), -1)
        posts = np.where(social_known, _count(self._t["posts"], batch.user_id, t), -1)
        return SupportContext(
            sess_created.astype(np.int64), sess_dev, cart_value, dev_lat, dev_lon, dev_seen,
            np.asarray(account, dtype=np.int64), followers.astype(np.int64),
            posts.astype(np.int64),
        )


def _count(table: _Table, keys: ObjArray, t: I64) -> I64:
    start, end = table.upto(keys, t)
    return (end - start).astype(np.int64)


def _window_sum(table: _Table, start: I64, end: I64) -> F64:
    if not len(table.times):
        return np.full(len(start), np.nan)
    value = np.nan_to_num(table.values["quantity"] * table.values["price"])
    csum = np.concatenate([[0.0], np.cumsum(value)])
    total = csum[end] - csum[np.minimum(start, end)]
    return np.where(end > start, total, np.nan)


def _last_located(table: _Table, start: I64, end: I64) -> tuple[F64, F64, I64]:
    n = len(start)
    lat = np.full(n, np.nan)
    lon = np.full(n, np.nan)
    seen = np.full(n, MISSING_TIME, dtype=np.int64)
    if not len(table.times):
        return lat, lon, seen
    located = np.isfinite(table.values["lat"]) & np.isfinite(table.values["lon"])
    # Index of the latest located row at or before each position (-1 when none).
    idx = np.where(located, np.arange(len(located)), -1)
    last_loc = np.maximum.accumulate(idx)
    cand = np.where(end > start, last_loc[np.maximum(end - 1, 0)], -1)
    ok = cand >= start
    lat[ok] = table.values["lat"][cand[ok]]
    lon[ok] = table.values["lon"][cand[ok]]
    seen[ok] = table.times[cand[ok]]
    return lat, lon, seen


def _load(path: Path, key: str, time_field: str,
          fields: dict[str, Callable[[Any], Any]]) -> _Table:
    keys: list[str] = []
    times: list[int] = []
    values: dict[str, list[Any]] = {name: [] for name in fields}
    for where, row in _rows(path):
        keys.append(str(_field(row, key, where)))
        times.append(parse_time_us(_field(row, time_field, where), f"{where}: {time_field}"))
        for name, conv in fields.items():
            raw = row.get(name)
            values[name].append(conv(raw) if raw is not None else
                                ("" if conv is str else float("nan")))
    return _Table(keys, times, **values)
