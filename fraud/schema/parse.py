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
from typing import Any

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

__all__ = [
    "DEFAULT_LIMITS",
    "Limits",
    "NonFiniteLiteral",
    "ParseResult",
    "RawColumn",
    "SeenIds",
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


class SeenIds:
    """Ids accepted so far, and where each was first seen, across the chunks of one file.

    Memory is what bounds a long file, so nothing is kept per id as a Python object: a
    sorted array of 64-bit hashes (Python's string hash; this object never leaves the
    process) with each id's ordinal, and per claimed chunk the ids and positions joined into
    one string with int32 offsets (about 8 + 8 + len(id) + len(position) + 8 bytes per id).
    Clean input pays two vectorised searches per chunk; only a chunk whose hashes meet an
    earlier hash (a duplicate, or a hash collision that the text comparison then clears)
    takes the exact row-by-row path. Unbounded by design: give a long-running stream none
    (redeliveries are caught by the idempotent writes downstream, keyed by transaction id).
    """

    def __init__(self) -> None:
        self._hash = np.empty(0, dtype=np.int64)  # sorted
        self._ordinal = np.empty(0, dtype=np.int64)  # aligned with _hash
        self._starts: list[int] = []  # first ordinal of each stored chunk
        self._chunks: list[tuple[str, npt.NDArray[np.int32], str, npt.NDArray[np.int32]]] = []
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def claim(self, keys: list[str], positions: list[str]) -> list[tuple[int, str]]:
        """Record `keys`; return ``(index, first position)`` for each one already taken."""
        n = len(keys)
        if n == 0:
            return []
        hashes = np.fromiter(map(hash, keys), dtype=np.int64, count=n)
        order = np.argsort(hashes, kind="stable")
        ordered = hashes[order]
        # Sorted queries keep the search over the stored hashes cache-friendly.
        at = np.searchsorted(self._hash, ordered)
        hit = at < len(self._hash)
        hit[hit] = self._hash[at[hit]] == ordered[hit]
        if not hit.any() and not np.any(ordered[1:] == ordered[:-1]):
            self._insert(ordered, self._count + order.astype(np.int64), at)
            self._keep(keys, positions)
            return []
        known = np.zeros(n, dtype=bool)
        known[order] = hit
        repeats: list[tuple[int, str]] = []
        fresh: dict[str, int] = {}
        suspect = set(np.flatnonzero(known).tolist())
        for k, key in enumerate(keys):
            earlier = self._lookup(key, int(hashes[k])) if k in suspect else None
            if earlier is None and key in fresh:
                earlier = positions[fresh[key]]
            if earlier is None:
                fresh[key] = k
            else:
                repeats.append((k, earlier))
        rows = list(fresh.values())
        self._store([keys[k] for k in rows], [positions[k] for k in rows], hashes[rows])
        return repeats

    def _lookup(self, key: str, key_hash: int) -> str | None:
        """Where `key` was first seen, if it was (hash hits are confirmed on the text)."""
        lo = int(np.searchsorted(self._hash, key_hash, side="left"))
        hi = int(np.searchsorted(self._hash, key_hash, side="right"))
        for ordinal in self._ordinal[lo:hi].tolist():
            c = int(np.searchsorted(self._starts, ordinal, side="right")) - 1
            ids, id_off, pos, pos_off = self._chunks[c]
            i = ordinal - self._starts[c]
            if ids[id_off[i]:id_off[i + 1]] == key:
                return pos[pos_off[i]:pos_off[i + 1]]
        return None

    def _store(self, keys: list[str], positions: list[str], hashes: npt.NDArray[np.int64]
               ) -> None:
        order = np.argsort(hashes, kind="stable")
        ordered = hashes[order]
        self._insert(ordered, self._count + order.astype(np.int64),
                     np.searchsorted(self._hash, ordered))
        self._keep(keys, positions)

    def _insert(self, ordered: npt.NDArray[np.int64], ordinals: npt.NDArray[np.int64],
                where: npt.NDArray[np.int64]) -> None:
        # A merge by insertion: linear in the stored ids, no re-sort of what is stored.
        self._hash = np.insert(self._hash, where, ordered)
        self._ordinal = np.insert(self._ordinal, where, ordinals)

    def _keep(self, keys: list[str], positions: list[str]) -> None:
        if not keys:
            return
        self._starts.append(self._count)
        self._chunks.append(("".join(keys), _offsets(keys), "".join(positions),
                             _offsets(positions)))
        self._count += len(keys)


def _offsets(texts: list[str]) -> npt.NDArray[np.int32]:
    """Offsets of each text in ``"".join(texts)`` (int64 if the chunk is over 2**31 chars)."""
    out = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, texts), dtype=np.int64, count=len(texts)), out=out[1:])
    return out.astype(np.int32) if out[-1] < 2**31 else out  # type: ignore[return-value]


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
        return np.where(codes == 0, out, np.nan)

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
        claims = (seen if seen is not None else SeenIds()).claim(
            ids[rows].tolist(), self.positions[rows].tolist())
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
    cols = {k: c[idx] for k, c in cols.items()}
    for name in OPTIONAL_FLOAT_FIELDS:
        cols[name] = np.ascontiguousarray(cols[name], dtype=np.float64)
    batch = TransactionBatch(
        **cols, position=positions[idx],
        extra={k: c[idx] for k, c in (extra or {}).items()},
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

