"""Validation of untrusted transactions: one core, two front ends.

The core is `validate_transactions` (with `Validator`, which records the first problem of
each row) over the column decoders of `fraud.schema.decode`: raw columns in, the canonical
dtypes of `TransactionBatch` out, and per row accept or reject with a reason. The front ends
only shape input into raw columns:

* `parse_payloads` (here): one JSON object per Kinesis record (also JSON Lines files);
* `fraud.schema.files`: CSV and Parquet as Arrow columns, chunk by chunk.

Rules, stated once (in `fraud.schema.decode` and `validate_transactions`) for both:

* ids (``transaction_id``, ``user_id``, ``terminal_id``) and the optional strings are text
  or whole numbers (``42`` becomes ``"42"``); booleans, fractions, objects and arrays are
  wrong types; empty text counts as missing; at most ``Limits.max_string_chars`` characters.
* ``amount``, ``lat``, ``lon``: a number or a decimal string (CSV has no other kind); never a
  boolean; finite; amount >= 0, lat in [-90, 90], lon in [-180, 180].
* ``timestamp``/``label_time``: see `fraud.schema.timeparse`.
* ``is_fraud``: 0, 1, true, false (or the strings "0", "1", "true", "false", "0.0", "1.0").
* a later row repeating an accepted ``transaction_id`` is a duplicate (the first one wins).

Each rejected row yields exactly one `Rejection`: the first problem in field order, with the
offending value masked (digit runs of 13 or more, with or without spaces or dashes, keep only
their last 4 digits: they may be card numbers) and truncated.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from fraud.schema.batch import (
    MISSING_TIME,
    OPTIONAL_FLOAT_FIELDS,
    OPTIONAL_STRING_FIELDS,
    Rejection,
    TransactionBatch,
)
from fraud.schema.columns import CANONICAL_FIELDS, ColumnMap
from fraud.schema.decode import (
    JSON_TYPE,
    MISSING,
    NEGATIVE,
    OUT_OF_RANGE,
    NonFiniteLiteral,
    RawColumn,
    UndecodableText,
    decode_label,
    decode_number,
    decode_text,
    decode_time,
    reason,
    show,
)

if TYPE_CHECKING:
    from fraud.schema.seen import SeenIds

__all__ = [
    "DEFAULT_LIMITS",
    "Limits",
    "NonFiniteLiteral",
    "ParseResult",
    "RawColumn",
    "UndecodableText",
    "Validator",
    "load_objects",
    "mask_value",
    "object_columns",
    "parse_payloads",
    "validate_transactions",
]

ObjArray = npt.NDArray[np.object_]
Bool = npt.NDArray[np.bool_]
I64 = npt.NDArray[np.int64]
I8 = npt.NDArray[np.int8]
F64 = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on untrusted input; generous for real data, tight enough to stop abuse."""

    max_record_bytes: int = 64 * 1024
    max_string_chars: int = 256
    max_value_chars: int = 40  # how much of an offending value a rejection shows


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True, slots=True, eq=False)
class ParseResult:
    """Accepted rows as a batch, plus one rejection per refused input.

    `accepted` and `rejected` are input indices (record numbers, counted from 0, across a
    whole file for the file readers); ``rejected[k]`` is the input of ``rejections[k]``.
    """

    batch: TransactionBatch
    rejections: list[Rejection]
    accepted: I64
    rejected: I64

    @property
    def total(self) -> int:
        return len(self.accepted) + len(self.rejected)

    def __repr__(self) -> str:
        return f"ParseResult(accepted={len(self.accepted)}, rejected={len(self.rejected)})"

    @classmethod
    def concat(cls, results: Sequence[ParseResult]) -> ParseResult:
        return cls(
            batch=TransactionBatch.concat([r.batch for r in results]),
            rejections=[x for r in results for x in r.rejections],
            accepted=np.concatenate([np.zeros(0, np.int64), *(r.accepted for r in results)]),
            rejected=np.concatenate([np.zeros(0, np.int64), *(r.rejected for r in results)]),
        )


# ---- masking ------------------------------------------------------------------------

_DIGIT_RUN = re.compile(r"\d(?:[ -]?\d){12,}")


def _mask_run(match: re.Match[str]) -> str:
    digits = [ch for ch in match.group() if ch.isdigit()]
    return "****" + "".join(digits[-4:])


def mask_value(text: str, limit: int = DEFAULT_LIMITS.max_value_chars) -> str:
    """`text` made safe for logs and rejections: card-like digit runs masked, truncated.

    >>> mask_value("card 4111 1111 1111 1111 declined")
    'card ****1111 declined'
    """
    head = text[: limit * 4]  # mask before cutting, so no cut-off card digits escape
    if not head.isprintable():  # control characters and lone surrogates: escape them
        head = "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in head)
    masked = _DIGIT_RUN.sub(_mask_run, head)
    if len(masked) <= limit and len(text) <= limit * 4:
        return masked
    return masked[:limit] + "…"


# ---- the validator ------------------------------------------------------------------


def _repeats(keys: list[str], positions: list[str]) -> list[tuple[int, str]]:
    """`SeenIds.claim` for one batch alone (a Kinesis batch): a dict, no temporary file."""
    first = dict(zip(reversed(keys), range(len(keys) - 1, -1, -1), strict=True))
    if len(first) == len(keys):
        return []
    return [(k, positions[first[key]]) for k, key in enumerate(keys) if first[key] != k]


class Validator:
    """Accumulates, per row, accepted or the first reason to reject it.

    Use one per batch: front ends report record-level problems with `reject_row`, then the
    field methods run in the order problems should be reported (each returns the decoded
    column), then `unique`, then `accepted_index` and `rejections`. `validate_transactions`
    does this for transactions; `fraud.schema.files.read_labels` for label feeds.
    """

    def __init__(self, positions: ObjArray, limits: Limits = DEFAULT_LIMITS) -> None:
        self.positions = positions
        self.limits = limits
        self.ok = np.ones(len(positions), np.bool_)
        self._problems: dict[int, tuple[str, str, str]] = {}  # row -> field, value, reason

    def reject_row(self, i: int, field_name: str, value: str, reason: str) -> None:
        """A record-level problem found by a front end (too large, not JSON, ...)."""
        if self.ok[i]:
            self.ok[i] = False
            self._problems[i] = (field_name, mask_value(value, self.limits.max_value_chars),
                                 reason)

    def _reject(self, name: str, kind: str, codes: I8, col: RawColumn | None) -> None:
        for i in np.flatnonzero((codes != 0) & self.ok).tolist():
            value = col.item(i) if col is not None else None
            self.reject_row(i, name, show(value), reason(int(codes[i]), name, kind, value,
                                                         self.limits.max_string_chars))

    def _required(self, name: str, missing: Bool, codes: I8, required: bool) -> I8:
        if required:
            codes = np.where(missing & (codes == 0), MISSING, codes).astype(np.int8)
        return codes

    def text(self, name: str, col: RawColumn | None, required: bool = False) -> ObjArray:
        n = len(self.ok)
        if col is None:
            out: ObjArray = np.empty(n, dtype=object)
            out[:] = ""
            self._reject(name, "text", np.full(n, MISSING if required else 0, np.int8), None)
            return out
        out, missing, codes = decode_text(col, self.limits.max_string_chars)
        self._reject(name, "text", self._required(name, missing, codes, required), col)
        return out

    def number(self, name: str, col: RawColumn | None, required: bool = False,
               low: float | None = None, high: float | None = None) -> F64:
        n = len(self.ok)
        if col is None:
            self._reject(name, "number", np.full(n, MISSING if required else 0, np.int8), None)
            return np.full(n, np.nan)
        out, missing, codes = decode_number(col)
        codes = self._required(name, missing, codes, required)
        with np.errstate(invalid="ignore"):
            if low is not None:
                codes[(codes == 0) & (out < low)] = NEGATIVE if low == 0 else OUT_OF_RANGE
            if high is not None:
                codes[(codes == 0) & (out > high)] = OUT_OF_RANGE
        self._reject(name, "number", codes, col)
        return np.where(codes == 0, out + 0.0, np.nan)  # + 0.0: -0.0 reads as 0.0

    def time(self, name: str, col: RawColumn | None, required: bool = False) -> I64:
        n = len(self.ok)
        if col is None:
            self._reject(name, "time", np.full(n, MISSING if required else 0, np.int8), None)
            return np.full(n, MISSING_TIME, np.int64)
        out, missing, codes = decode_time(col)
        self._reject(name, "time", self._required(name, missing, codes, required), col)
        return out

    def label(self, name: str, col: RawColumn | None, required: bool = False) -> I8:
        n = len(self.ok)
        if col is None:
            self._reject(name, "label", np.full(n, MISSING if required else 0, np.int8), None)
            return np.full(n, -1, np.int8)
        out, missing, codes = decode_label(col)
        self._reject(name, "label", self._required(name, missing, codes, required), col)
        return out

    def unique(self, name: str, ids: ObjArray, seen: SeenIds | None = None) -> None:
        """Reject rows whose id was accepted before (earlier in this batch or in `seen`)."""
        rows = np.flatnonzero(self.ok)
        every = len(rows) == len(ids)  # the usual chunk: no gather before the lists
        keys = (ids if every else ids[rows]).tolist()
        where = (self.positions if every else self.positions[rows]).tolist()
        claims = seen.claim(keys, where) if seen is not None else _repeats(keys, where)
        for k, first in claims:
            i = int(rows[k])
            self.reject_row(i, name, str(ids[i]), f"duplicate {name} (first seen at {first})")

    def accepted_index(self) -> I64:
        return np.flatnonzero(self.ok)

    def rejections(self) -> tuple[list[Rejection], I64]:
        rows = sorted(self._problems)
        out = [Rejection(str(self.positions[i]), *self._problems[i]) for i in rows]
        return out, np.asarray(rows, dtype=np.int64)


def validate_transactions(
    raw: Mapping[str, RawColumn],
    positions: ObjArray,
    *,
    validator: Validator | None = None,
    extra: Mapping[str, npt.NDArray[Any]] | None = None,
    seen: SeenIds | None = None,
    index_base: int = 0,
    limits: Limits = DEFAULT_LIMITS,
) -> ParseResult:
    """The shared core: raw canonical columns -> `ParseResult`.

    `raw` is keyed by canonical field name (``timestamp``, ``label_time``; not ``_us``).
    `validator` may carry record-level rejections already made by the front end; `seen`
    carries accepted transaction ids across chunks; `index_base` offsets the returned indices.
    """
    v = validator or Validator(positions, limits)
    cols: dict[str, Any] = {}
    cols["transaction_id"] = v.text("transaction_id", raw.get("transaction_id"), True)
    cols["timestamp_us"] = v.time("timestamp", raw.get("timestamp"), True)
    cols["user_id"] = v.text("user_id", raw.get("user_id"), True)
    cols["terminal_id"] = v.text("terminal_id", raw.get("terminal_id"), True)
    cols["amount"] = v.number("amount", raw.get("amount"), True, low=0.0)
    for name in OPTIONAL_STRING_FIELDS:
        cols[name] = v.text(name, raw.get(name))
    cols["lat"] = v.number("lat", raw.get("lat"), low=-90.0, high=90.0)
    cols["lon"] = v.number("lon", raw.get("lon"), low=-180.0, high=180.0)
    cols["is_fraud"] = v.label("is_fraud", raw.get("is_fraud"))
    cols["label_time_us"] = v.time("label_time", raw.get("label_time"))
    v.unique("transaction_id", cols["transaction_id"], seen)
    idx = v.accepted_index()
    # Every row accepted (the usual chunk): the freshly decoded columns are the batch, no
    # gather; the caller's own arrays (positions, extra) are still copied, never shared.
    keep = len(idx) != len(positions)
    cols = {k: c[idx] for k, c in cols.items()} if keep else cols
    for name in OPTIONAL_FLOAT_FIELDS:
        cols[name] = np.ascontiguousarray(cols[name], dtype=np.float64)
    batch = TransactionBatch(
        **cols, position=positions[idx] if keep else positions.copy(),
        extra={k: c[idx] if keep else np.array(c, copy=True)
               for k, c in (extra or {}).items()},
    )
    rejections, rejected = v.rejections()
    return ParseResult(batch, rejections, idx + index_base, rejected + index_base)


# ---- front end: Kinesis payloads ----------------------------------------------------


def _non_finite(literal: str) -> NonFiniteLiteral:
    return NonFiniteLiteral(literal)


_DECODER = json.JSONDecoder(parse_constant=_non_finite)  # made once: loads() makes one a call


def _object_column(values: list[Any]) -> ObjArray:
    return np.fromiter(values, dtype=object, count=len(values))


def _extra_text(value: Any) -> str:
    if value is None:
        return ""
    return value if type(value) is str else show(value)


def load_objects(payloads: Sequence[bytes], validator: Validator) -> list[dict[str, Any]]:
    """Decode each payload as one JSON object; refused ones become ``{}`` and a rejection."""
    limits = validator.limits
    objects: list[dict[str, Any]] = []
    empty: dict[str, Any] = {}
    for i, payload in enumerate(payloads):
        data = payload if type(payload) is bytes else bytes(payload)
        obj: Any = empty
        if len(data) > limits.max_record_bytes:
            validator.reject_row(i, "record", "", "record too large (more than "
                                 f"{limits.max_record_bytes} bytes)")
        else:
            try:
                obj = _DECODER.decode(data.decode("utf-8"))
            except UnicodeDecodeError as exc:
                validator.reject_row(i, "record", show(data),
                                     f"not valid UTF-8 (bad byte at offset {exc.start})")
            except RecursionError:
                validator.reject_row(i, "record", "", "not valid JSON: nested too deeply")
            except ValueError as exc:
                validator.reject_row(i, "record", show(data), f"not valid JSON: {exc}")
            if type(obj) is not dict:
                if obj is not empty:
                    got = JSON_TYPE.get(type(obj), "value")
                    validator.reject_row(i, "record", show(obj),
                                         f"not a JSON object (got {got})")
                obj = empty
        objects.append(obj)
    return objects


def object_columns(objects: Sequence[dict[str, Any]],
                   sources: Mapping[str, str]) -> dict[str, RawColumn]:
    """Raw columns (canonical name -> values under the source key) of decoded objects."""
    return {name: RawColumn(_object_column(list(map(dict.get, objects, repeat(source)))))
            for name, source in sources.items()}


def parse_payloads(
    payloads: Sequence[bytes],
    positions: Sequence[str],
    *,
    columns: ColumnMap | None = None,
    extra: Sequence[str] = (),
    seen: SeenIds | None = None,
    index_base: int = 0,
    limits: Limits = DEFAULT_LIMITS,
) -> ParseResult:
    """Validate one JSON object per payload (a Kinesis record, a JSON Lines line).

    `positions` says where each payload came from (a sequence number, ``"line 7"``); `extra`
    names non-canonical keys to carry through as text columns (``""`` where absent).
    Never raises on bad input: every payload is accepted or rejected exactly once.

    >>> r = parse_payloads([b'{"transaction_id": "t1", "timestamp": "2024-01-31T12:00:00Z",'
    ...                     b' "user_id": 7, "terminal_id": "m1", "amount": 12.5}', b'[1]'],
    ...                    ["seq-1", "seq-2"])
    >>> r.batch.user_id.tolist(), [str(x) for x in r.rejections]
    (['7'], ['seq-2: record: not a JSON object (got array) (value: [1])'])
    """
    if len(payloads) != len(positions):
        raise ValueError(f"{len(payloads)} payloads but {len(positions)} positions")
    pos = _object_column([str(p) for p in positions])
    validator = Validator(pos, limits)
    objects = load_objects(payloads, validator)
    mapping = columns or ColumnMap()
    raw = object_columns(objects, mapping.sources(CANONICAL_FIELDS))
    extras = {name: _object_column([_extra_text(o.get(name)) for o in objects])
              for name in extra}
    return validate_transactions(raw, pos, validator=validator, extra=extras, seen=seen,
                                 index_base=index_base, limits=limits)

