"""The columnar transaction batch every pipeline stage works on.

A batch is a frozen set of equal-length NumPy columns, one per canonical field. Conventions
for missing optional values (so that kernels never meet None):

* optional strings (`currency`, `device_id`, ...): ``""``;
* `lat`, `lon`: NaN;
* `is_fraud`: -1 when unlabelled, else 0 or 1;
* `label_time_us`: `MISSING_TIME` when unknown.

Timestamps are int64 microseconds since the Unix epoch, UTC. String columns are NumPy object
arrays of `str` (ids are strings inside, whatever they were outside).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "MISSING_TIME",
    "OPTIONAL_FLOAT_FIELDS",
    "OPTIONAL_STRING_FIELDS",
    "REQUIRED_FIELDS",
    "Rejection",
    "TransactionBatch",
]

MISSING_TIME = np.iinfo(np.int64).min

REQUIRED_FIELDS = ("transaction_id", "timestamp", "user_id", "terminal_id", "amount")
OPTIONAL_STRING_FIELDS = ("currency", "device_id", "session_id", "ip", "channel", "game_id")
OPTIONAL_FLOAT_FIELDS = ("lat", "lon")

ObjArray = npt.NDArray[np.object_]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
I8 = npt.NDArray[np.int8]


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why one input record was refused, and where it was.

    `position` is a line number in a file (1-based, header excluded: the first data row is
    line 2 of a CSV) or a shard sequence number; `value` is already truncated and masked.
    """

    position: str
    field: str
    value: str
    reason: str

    def __str__(self) -> str:
        return f"{self.position}: {self.field}: {self.reason} (value: {self.value})"


def _empty_str(n: int) -> ObjArray:
    out = np.empty(n, dtype=object)
    out[:] = ""
    return out


@dataclass(frozen=True, slots=True, eq=False)
class TransactionBatch:
    """Columns of validated transactions, in input order.

    `position` says where each row came from (line or sequence number) and `extra` carries
    columns that are not canonical fields (e.g. a generator's `scenario`) through unchanged.
    """

    transaction_id: ObjArray
    timestamp_us: I64
    user_id: ObjArray
    terminal_id: ObjArray
    amount: F64
    currency: ObjArray
    device_id: ObjArray
    session_id: ObjArray
    ip: ObjArray
    channel: ObjArray
    game_id: ObjArray
    lat: F64
    lon: F64
    is_fraud: I8
    label_time_us: I64
    position: ObjArray
    extra: Mapping[str, npt.NDArray[Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.transaction_id)
        for name in self.column_names():
            column = getattr(self, name)
            if len(column) != n:
                raise ValueError(f"column {name} has {len(column)} rows, expected {n}")
        for name, column in self.extra.items():
            if len(column) != n:
                raise ValueError(f"extra column {name} has {len(column)} rows, expected {n}")

    def __len__(self) -> int:
        return len(self.transaction_id)

    def __repr__(self) -> str:
        # Never show ids or amounts: a repr ends up in logs and tracebacks.
        return f"TransactionBatch(rows={len(self)}, extra={sorted(self.extra)})"

    @staticmethod
    def column_names() -> tuple[str, ...]:
        return (
            "transaction_id", "timestamp_us", "user_id", "terminal_id", "amount",
            *OPTIONAL_STRING_FIELDS, *OPTIONAL_FLOAT_FIELDS,
            "is_fraud", "label_time_us", "position",
        )

    @classmethod
    def from_columns(cls, **columns: Any) -> TransactionBatch:
        """Build a batch from the required columns, filling optional ones as missing.

        Values are converted to the canonical dtypes; this does no validation beyond shape
        (use the parsers in `fraud.schema` for untrusted input).
        """
        extra = dict(columns.pop("extra", {}) or {})
        n = len(columns["transaction_id"])
        out: dict[str, Any] = {}
        for name in ("transaction_id", "user_id", "terminal_id"):
            out[name] = np.asarray([str(v) for v in columns.pop(name)], dtype=object)
        out["timestamp_us"] = np.asarray(columns.pop("timestamp_us"), dtype=np.int64)
        out["amount"] = np.asarray(columns.pop("amount"), dtype=np.float64)
        for name in OPTIONAL_STRING_FIELDS:
            values = columns.pop(name, None)
            out[name] = (
                _empty_str(n)
                if values is None
                else np.asarray(["" if v is None else str(v) for v in values], dtype=object)
            )
        for name in OPTIONAL_FLOAT_FIELDS:
            values = columns.pop(name, None)
            out[name] = (
                np.full(n, np.nan) if values is None else np.asarray(values, dtype=np.float64)
            )
        fraud = columns.pop("is_fraud", None)
        out["is_fraud"] = (
            np.full(n, -1, dtype=np.int8) if fraud is None else np.asarray(fraud, dtype=np.int8)
        )
        label_time = columns.pop("label_time_us", None)
        out["label_time_us"] = (
            np.full(n, MISSING_TIME, dtype=np.int64)
            if label_time is None
            else np.asarray(label_time, dtype=np.int64)
        )
        position = columns.pop("position", None)
        out["position"] = (
            np.asarray([str(i + 1) for i in range(n)], dtype=object)
            if position is None
            else np.asarray([str(p) for p in position], dtype=object)
        )
        if columns:
            raise TypeError(f"unknown columns: {sorted(columns)}")
        return cls(**out, extra=extra)

    def take(self, index: npt.ArrayLike) -> TransactionBatch:
        """Rows at `index` (an integer array or a boolean mask), as a new batch."""
        idx = np.asarray(index)
        cols = {name: getattr(self, name)[idx] for name in self.column_names()}
        return TransactionBatch(**cols, extra={k: v[idx] for k, v in self.extra.items()})

    @classmethod
    def concat(cls, batches: Sequence[TransactionBatch]) -> TransactionBatch:
        """One batch holding `batches` in order (extra columns must agree)."""
        if not batches:
            return cls.from_columns(transaction_id=[], timestamp_us=[], user_id=[],
                                    terminal_id=[], amount=[])
        cols = {
            name: np.concatenate([getattr(b, name) for b in batches])
            for name in cls.column_names()
        }
        keys = set(batches[0].extra)
        extra = {k: np.concatenate([b.extra[k] for b in batches]) for k in keys
                 if all(k in b.extra for b in batches)}
        return cls(**cols, extra=extra)

    def has_labels(self) -> bool:
        return bool(np.any(self.is_fraud >= 0))
