"""Column decoders: raw values of one field -> canonical dtype, missing mask, error codes.

The per-field rules of the validation core (`fraud.schema.parse`) live here, written once
for every front end. A `RawColumn` arrives in one of three shapes and each decoder handles
all three without a Python loop over well-formed values:

* an Arrow string array (CSV cells, Parquet strings): decoded with Arrow compute kernels;
* a typed NumPy array with a null mask (Parquet numbers, booleans, timestamps);
* an object array of Python values (decoded JSON; ``None`` = missing), sorted by exact
  type first so that ``True`` is never taken for the number 1.

Error codes are small integers; `reason` turns one into the message a rejection carries.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from itertools import repeat
from typing import Any

import numba as nb
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from fraud.schema.batch import MISSING_TIME
from fraud.schema.timeparse import (
    MAX_TIME_US,
    MIN_TIME_US,
    TIME_IMPOSSIBLE,
    TIME_MALFORMED,
    TIME_OUT_OF_RANGE,
    epoch_to_us,
    parse_time_utf8,
)

__all__ = [
    "JSON_TYPE",
    "MISSING",
    "NEGATIVE",
    "OUT_OF_RANGE",
    "NonFiniteLiteral",
    "RawColumn",
    "UndecodableText",
    "decode_label",
    "decode_number",
    "decode_text",
    "decode_time",
    "parse_time_utf8_fast",
    "reason",
    "show",
]

ObjArray = npt.NDArray[np.object_]
Bool = npt.NDArray[np.bool_]
I64 = npt.NDArray[np.int64]
I8 = npt.NDArray[np.int8]
F64 = npt.NDArray[np.float64]


class NonFiniteLiteral(str):
    """A ``NaN``/``Infinity`` JSON literal, kept so the rejection can name its field."""

    __slots__ = ()


class UndecodableText(bytes):
    """A file value that is not valid UTF-8 (the file front end keeps the raw bytes)."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class RawColumn:
    """One field's values as the front end found them (see the module doc for the shapes).

    `missing` flags nulls of a typed NumPy array; the other shapes carry their own nulls.
    """

    values: npt.NDArray[Any] | pa.Array
    missing: Bool | None = None

    def __len__(self) -> int:
        return len(self.values)

    def item(self, i: int) -> Any:
        """The raw value of row `i`, for a rejection message."""
        if isinstance(self.values, pa.Array):
            return self.values[i].as_py()
        if self.missing is not None and self.missing[i]:
            return None
        value = self.values[i]
        return value.item() if isinstance(value, np.generic) else value


# ---- reasons ------------------------------------------------------------------------

MISSING, WRONG_TYPE, NOT_NUMBER, NOT_FINITE, TOO_LONG, BAD_TEXT, NOT_WHOLE = range(1, 8)
NEGATIVE, OUT_OF_RANGE, NOT_01, BAD_TIME, IMPOSSIBLE_TIME, TIME_RANGE = range(8, 14)
BAD_UNICODE = 14

JSON_TYPE = {str: "string", int: "number", float: "number", bool: "boolean",
             dict: "object", list: "array", type(None): "null"}
_EXPECTED = {"text": "text or a whole number", "number": "a number",
             "time": "an ISO-8601 time or epoch number", "label": "0 or 1"}
_RANGES = {"lat": "[-90, 90]", "lon": "[-180, 180]"}
_MESSAGES = {
    MISSING: "missing required field",
    NOT_NUMBER: "not a number",
    NOT_FINITE: "not a finite number",
    BAD_TEXT: "not valid UTF-8 text",
    BAD_UNICODE: "invalid Unicode (a lone surrogate escape such as \\ud800)",
    NOT_WHOLE: "not a whole number",
    NEGATIVE: "negative amount",
    NOT_01: "must be 0 or 1",
    BAD_TIME: "not an ISO-8601 time or epoch seconds/milliseconds",
    IMPOSSIBLE_TIME: "impossible date or time",
    TIME_RANGE: "impossible date (outside 1970-01-01 .. 2200-01-01)",
}


def reason(code: int, field_name: str, kind: str, value: Any, max_chars: int) -> str:
    """The message for error `code` on `field_name` (`kind`: text/number/time/label)."""
    if code == WRONG_TYPE:
        got = JSON_TYPE.get(type(value), type(value).__name__)
        return f"wrong type: expected {_EXPECTED[kind]}, got {got}"
    if code == TOO_LONG:
        return f"too long (more than {max_chars} characters)"
    if code == OUT_OF_RANGE:
        return f"out of range {_RANGES.get(field_name, '')}".rstrip()
    return _MESSAGES[code]


# ---- shapes -------------------------------------------------------------------------

K_NONE, K_STR, K_INT, K_FLOAT, K_BOOL, K_OTHER, K_NONFINITE, K_UNDECODABLE = range(8)
_KIND: dict[type, int] = {type(None): K_NONE, str: K_STR, int: K_INT, float: K_FLOAT,
                          bool: K_BOOL, NonFiniteLiteral: K_NONFINITE,
                          UndecodableText: K_UNDECODABLE}
_DECIMAL = r"^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$"
_NON_FINITE = r"^[+-]?(?i:nan(?:\([^)]*\))?|inf|infinity)$"  # all that Arrow reads as nan/inf


def _kinds(values: ObjArray) -> I8:
    """Exact-type class of each value; an empty string counts as missing (like a CSV cell)."""
    kinds = np.fromiter(map(_KIND.get, map(type, values), repeat(K_OTHER)), np.int8,
                        len(values))
    is_str = np.flatnonzero(kinds == K_STR)
    if len(is_str):
        empty = np.fromiter(map(len, values[is_str]), np.int64, len(is_str)) == 0
        kinds[is_str[empty]] = K_NONE
    return kinds


def _blank_to_null(col: RawColumn) -> RawColumn:
    """Empty strings of an Arrow column become nulls: blank means missing, as in JSON."""
    if isinstance(col.values, pa.Array) and len(col.values):
        values = col.values
        blank = pc.equal(pc.utf8_length(values), 0)
        if pc.any(blank).as_py():
            return RawColumn(pc.if_else(blank, pa.scalar(None, values.type), values))
    return col


def _typed_kind(values: npt.NDArray[Any]) -> int:
    return {"i": K_INT, "u": K_INT, "f": K_FLOAT, "b": K_BOOL}.get(values.dtype.kind, K_OTHER)


def _null_mask(col: RawColumn) -> Bool:
    if isinstance(col.values, pa.Array):
        return np.asarray(col.values.is_null().to_numpy(zero_copy_only=False), np.bool_)
    if col.missing is not None:
        return col.missing
    if col.values.dtype == object:
        return np.asarray(_kinds(col.values) == K_NONE, np.bool_)
    return np.zeros(len(col.values), np.bool_)


def _shape_known(col: RawColumn) -> bool:
    """True unless an object array: its nulls come out of the type dispatch for free."""
    return isinstance(col.values, pa.Array) or col.values.dtype != object


def _to_arrow(strings: list[str]) -> tuple[pa.Array, Bool]:
    """Strings as an Arrow array; ones that cannot be UTF-8 (lone surrogates) become null."""
    try:
        return pa.array(strings, pa.string()), np.zeros(len(strings), np.bool_)
    except (UnicodeEncodeError, pa.ArrowException):
        bad = np.zeros(len(strings), np.bool_)
        for i, s in enumerate(strings):
            try:
                s.encode("utf-8")
            except UnicodeEncodeError:
                bad[i] = True
        clean = [None if b else s for s, b in zip(strings, bad.tolist(), strict=True)]
        return pa.array(clean, pa.string()), bad


def _np(arr: pa.Array, fill: Any) -> npt.NDArray[Any]:
    return np.asarray(arr.fill_null(fill).to_numpy(zero_copy_only=False))


# ---- text ---------------------------------------------------------------------------


def _empty_text(n: int) -> ObjArray:
    out: ObjArray = np.empty(n, dtype=object)
    out[:] = ""
    return out


_SAMPLE = 4096  # values looked at to guess whether a text column repeats itself


def _text_objects(values: pa.Array) -> ObjArray:
    """An Arrow text column as Python strings, ``""`` for nulls.

    A column that repeats itself (user, terminal, currency, channel) is dictionary-encoded
    first, so each distinct value becomes one Python string shared by its rows: about half
    the cost of one string per row. An evenly spread sample decides; a column of mostly
    distinct values (transaction ids, session ids) is converted row by row as before.
    """
    n = len(values)
    if n >= 4 * _SAMPLE:
        sample = values.take(pa.array(np.arange(_SAMPLE, dtype=np.int64) * (n // _SAMPLE)))
        if pc.count_distinct(sample, mode="all").as_py() <= 0.9 * _SAMPLE:
            encoded = values.dictionary_encode()
            words = encoded.dictionary
            table = np.empty(len(words) + 1, dtype=object)
            table[:-1] = words.to_numpy(zero_copy_only=False)
            table[-1] = ""  # nulls
            index = encoded.indices.fill_null(len(words)).to_numpy(zero_copy_only=False)
            return np.asarray(table[index], dtype=object)
    return np.asarray(values.fill_null("").to_numpy(zero_copy_only=False), dtype=object)


def decode_text(col: RawColumn, max_chars: int) -> tuple[ObjArray, Bool, I8]:
    """Ids and optional strings: ``""`` where missing or refused."""
    values = col.values
    n = len(values)
    codes = np.zeros(n, np.int8)
    if isinstance(values, pa.Array):
        lengths = _np(pc.utf8_length(values), 0)
        out = _text_objects(values)
        codes[lengths > max_chars] = TOO_LONG
        missing = (lengths == 0) & (codes == 0)
        out[codes != 0] = ""
        return out, missing, codes
    out = _empty_text(n)
    if values.dtype != object:
        kind, nulls = _typed_kind(values), _null_mask(col)
        present = ~nulls
        if kind == K_INT:
            out[present] = values[present].astype(str).astype(object)
        elif kind == K_FLOAT:
            finite = present & np.isfinite(values)
            whole = finite & (np.mod(np.where(finite, values, 0.0), 1.0) == 0) & (
                np.abs(np.where(finite, values, 0.0)) < 2.0**63)
            out[whole] = values[whole].astype(np.int64).astype(str).astype(object)
            codes[present & ~finite] = NOT_FINITE
            codes[finite & ~whole] = NOT_WHOLE
        else:
            codes[present] = WRONG_TYPE
        return out, nulls, codes
    kinds = _kinds(values)
    is_str = kinds == K_STR
    out[is_str] = values[is_str]
    is_int = kinds == K_INT
    if is_int.any():
        out[is_int] = np.fromiter(map(str, values[is_int]), object, int(is_int.sum()))
    for i in np.flatnonzero(kinds == K_FLOAT).tolist():
        f = values[i]
        if not np.isfinite(f):
            codes[i] = NOT_FINITE
        elif f.is_integer():
            out[i] = str(int(f))
        else:
            codes[i] = NOT_WHOLE
    codes[(kinds == K_BOOL) | (kinds == K_OTHER)] = WRONG_TYPE
    codes[kinds == K_NONFINITE] = NOT_FINITE
    codes[kinds == K_UNDECODABLE] = BAD_TEXT
    strings = out.tolist()
    lengths = np.fromiter(map(len, strings), np.int64, n)
    codes[(codes == 0) & (lengths > max_chars)] = TOO_LONG
    if not "".join(strings).isascii():
        for i in np.flatnonzero(~np.fromiter(map(str.isascii, strings), np.bool_, n)).tolist():
            try:
                strings[i].encode("utf-8")
            except UnicodeEncodeError:  # lone surrogates from a JSON \ud800 escape
                codes[i] = BAD_UNICODE
    missing = (kinds == K_NONE) | ((lengths == 0) & (codes == 0))
    out[codes != 0] = ""
    return out, missing, codes


# ---- numbers ------------------------------------------------------------------------


def _arrow_number(arr: pa.Array) -> tuple[F64, I8]:
    """Decimal strings to float64; others get NOT_NUMBER or NOT_FINITE ("nan", "inf")."""
    try:  # Arrow's parser refuses what _DECIMAL refuses, except nan/inf (caught as non-finite)
        parsed = pc.cast(arr, pa.float64())
        return _np(parsed, np.nan).astype(np.float64), np.zeros(len(arr), np.int8)
    except pa.ArrowInvalid:
        pass
    ok = pc.match_substring_regex(arr, _DECIMAL).fill_null(False)
    out = _np(pc.cast(pc.if_else(ok, arr, pa.scalar(None, pa.string())), pa.float64()),
              np.nan).astype(np.float64)
    codes = np.zeros(len(arr), np.int8)
    bad = ~_np(ok, False).astype(bool) & ~_np(arr.is_null(), True).astype(bool)
    if bad.any():
        words = _np(pc.match_substring_regex(arr, _NON_FINITE), False).astype(bool)
        codes[bad] = np.where(words[bad], NOT_FINITE, NOT_NUMBER)
    return out, codes


def _objects_to_float(values: ObjArray) -> F64:
    try:
        return np.asarray(values, dtype=np.float64)
    except OverflowError:  # a JSON integer too big for a float: treat as infinite
        out = np.empty(len(values))
        for i, v in enumerate(values.tolist()):
            try:
                out[i] = float(v)
            except OverflowError:
                out[i] = np.inf
        return out


def decode_number(col: RawColumn) -> tuple[F64, Bool, I8]:
    """Amounts and coordinates: NaN where missing or refused; non-finite is refused."""
    col = _blank_to_null(col)
    values = col.values
    n = len(values)
    nulls = _null_mask(col) if _shape_known(col) else np.zeros(n, np.bool_)
    if isinstance(values, pa.Array):
        out, codes = _arrow_number(values)
    elif values.dtype != object:
        codes = np.zeros(n, np.int8)
        if _typed_kind(values) in (K_INT, K_FLOAT):
            out = values.astype(np.float64)
        else:
            out = np.full(n, np.nan)
            codes[~nulls] = WRONG_TYPE
    else:
        codes = np.zeros(n, np.int8)
        kinds = _kinds(values)
        nulls = kinds == K_NONE
        out = np.full(n, np.nan)
        num = (kinds == K_INT) | (kinds == K_FLOAT)
        if num.any():
            out[num] = _objects_to_float(values[num])
        is_str = kinds == K_STR
        if is_str.any():
            arr, unencodable = _to_arrow(values[is_str].tolist())
            parsed, str_codes = _arrow_number(arr)
            str_codes[unencodable] = NOT_NUMBER
            out[is_str], codes[is_str] = parsed, str_codes
        codes[(kinds == K_BOOL) | (kinds == K_OTHER)] = WRONG_TYPE
        codes[kinds == K_UNDECODABLE] = BAD_TEXT
        codes[kinds == K_NONFINITE] = NOT_FINITE
    codes[(codes == 0) & ~nulls & ~np.isfinite(out)] = NOT_FINITE
    out[(codes != 0) | nulls] = np.nan
    return out, nulls, codes


# ---- times --------------------------------------------------------------------------

_TIME_CODES = np.zeros(4, np.int8)
_TIME_CODES[[TIME_MALFORMED, TIME_IMPOSSIBLE, TIME_OUT_OF_RANGE]] = (
    BAD_TIME, IMPOSSIBLE_TIME, TIME_RANGE)


@nb.njit(cache=True, nogil=True)
def _digits(data: npt.NDArray[np.uint8], a: int, j: int, k: int) -> int:  # pragma: no cover
    v = 0
    for x in range(a + j, a + k):
        v = v * 10 + (int(data[x]) - 48)
    return v


@nb.njit(cache=True, nogil=True)
def _common_iso(data: npt.NDArray[np.uint8], starts: I64, lengths: I64,
                us: I64) -> npt.NDArray[np.bool_]:  # pragma: no cover - compiled
    """Parse ``YYYY-MM-DD[T ]HH:MM:SS[.f{1,9}][Z]`` in range; False where not that form.

    The one shape nearly every export uses, in one pass without temporaries. Anything else
    (offsets, no seconds, epoch numbers, impossible dates) is left to `parse_time_utf8`.
    """
    n = len(lengths)
    handled = np.zeros(n, dtype=np.bool_)
    dim = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)
    digit_at = np.array([0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18], dtype=np.int64)
    for i in range(n):
        a = starts[i]
        m = lengths[i]
        if m < 19 or m > 30:
            continue
        if m > 19 and data[a + m - 1] == 90:  # "Z"
            m -= 1
        ok = (data[a + 4] == 45 and data[a + 7] == 45 and data[a + 13] == 58
              and data[a + 16] == 58 and (data[a + 10] == 84 or data[a + 10] == 32
                                          or data[a + 10] == 116))
        if not ok:
            continue
        for j in digit_at:
            if data[a + j] < 48 or data[a + j] > 57:
                ok = False
                break
        if not ok:
            continue
        micro = 0
        if m > 19:
            if data[a + 19] != 46 or m < 21 or m > 29:  # "." and 1..9 digits
                continue
            scale = 100_000
            for j in range(20, m):
                c = data[a + j]
                if c < 48 or c > 57:
                    ok = False
                    break
                if scale >= 1:
                    micro += (c - 48) * scale
                    scale //= 10
            if not ok:
                continue
        year = _digits(data, a, 0, 4)
        month, day = _digits(data, a, 5, 7), _digits(data, a, 8, 10)
        hour, minute = _digits(data, a, 11, 13), _digits(data, a, 14, 16)
        second = _digits(data, a, 17, 19)
        if month < 1 or month > 12 or hour > 23 or minute > 59 or second > 59 or day < 1:
            continue
        leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        if day > dim[month] + (1 if month == 2 and leap else 0):
            continue
        y = year - (1 if month <= 2 else 0)
        era = y // 400
        yoe = y - era * 400
        doy = (153 * ((month + 9) % 12) + 2) // 5 + day - 1
        days = era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
        value = (days * 86_400 + (hour * 60 + minute) * 60 + second) * 1_000_000 + micro
        if value < MIN_TIME_US or value >= MAX_TIME_US:
            continue
        us[i] = value
        handled[i] = True
    return handled


def parse_time_utf8_fast(data: npt.NDArray[np.uint8], starts: I64, lengths: I64
                         ) -> tuple[I64, I8]:
    """`fraud.schema.timeparse.parse_time_utf8`, same results, fast for the common form.

    Values of the usual shape are parsed by one compiled pass; only the rest (if any) go
    through the general vectorised parser.
    """
    n = len(lengths)
    us = np.zeros(n, dtype=np.int64)
    status = np.zeros(n, dtype=np.int8)
    if n == 0:
        return us, status
    # Reads never run past the buffer: a value of length >= 19 lies inside it.
    handled = _common_iso(np.ascontiguousarray(data, dtype=np.uint8),
                          np.ascontiguousarray(starts, dtype=np.int64),
                          np.ascontiguousarray(lengths, dtype=np.int64), us)
    # Empty values (how Arrow holds nulls) are malformed to the general parser too.
    status[lengths == 0] = TIME_MALFORMED
    rest = np.flatnonzero(~handled & (lengths > 0))
    if len(rest):
        us[rest], status[rest] = parse_time_utf8(data, starts[rest], lengths[rest])
    return us, status


def _arrow_time(arr: pa.Array) -> tuple[I64, I8]:
    arr = arr.cast(pa.string())
    n = len(arr)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int8)
    bufs = arr.buffers()
    offsets = np.frombuffer(bufs[1], dtype=np.int32)[arr.offset: arr.offset + n + 1]
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.zeros(0,
                                                                                     np.uint8)
    starts = offsets[:-1].astype(np.int64)
    return parse_time_utf8_fast(data, starts, np.diff(offsets).astype(np.int64))


def decode_time(col: RawColumn) -> tuple[I64, Bool, I8]:
    """Timestamps: int64 microseconds UTC, `MISSING_TIME` where missing or refused."""
    col = _blank_to_null(col)
    values = col.values
    n = len(values)
    nulls = _null_mask(col) if _shape_known(col) else np.zeros(n, np.bool_)
    codes = np.zeros(n, np.int8)
    if isinstance(values, pa.Array):
        us, status = _arrow_time(values)
        codes = _TIME_CODES[status]
    elif values.dtype.kind == "M":
        us = values.astype("datetime64[us]").view(np.int64).copy()
        codes[(us < MIN_TIME_US) | (us >= MAX_TIME_US)] = TIME_RANGE
    elif values.dtype != object:
        if _typed_kind(values) in (K_INT, K_FLOAT):
            us, status = epoch_to_us(values.astype(np.float64))
            codes = _TIME_CODES[status]
        else:
            us = np.zeros(n, np.int64)
            codes[:] = WRONG_TYPE
    else:
        us = np.zeros(n, np.int64)
        kinds = _kinds(values)
        nulls = kinds == K_NONE
        num = (kinds == K_INT) | (kinds == K_FLOAT)
        if num.any():
            us[num], status = epoch_to_us(_objects_to_float(values[num]))
            codes[num] = _TIME_CODES[status]
        is_str = kinds == K_STR
        if is_str.any():
            arr, unencodable = _to_arrow(values[is_str].tolist())
            str_us, status = _arrow_time(arr)
            status[unencodable] = TIME_MALFORMED
            us[is_str], codes[is_str] = str_us, _TIME_CODES[status]
        codes[(kinds == K_BOOL) | (kinds == K_OTHER)] = WRONG_TYPE
        codes[kinds == K_UNDECODABLE] = BAD_TEXT
        codes[kinds == K_NONFINITE] = NOT_FINITE
    codes = np.where(nulls, 0, codes).astype(np.int8)
    return np.where((codes == 0) & ~nulls, us, MISSING_TIME), nulls, codes


# ---- labels -------------------------------------------------------------------------

# "0.0"/"1.0": what a pandas export writes for an integer column that had a missing value
_LABEL_WORDS = pa.array(["0", "1", "false", "true", "0.0", "1.0"])
_LABEL_VALUES = np.array([0, 1, 0, 1, 0, 1, -1], np.int8)  # last: not found
_NOT_FOUND = len(_LABEL_VALUES) - 1


def _arrow_label(arr: pa.Array) -> tuple[I8, I8]:
    found = _np(pc.index_in(pc.utf8_lower(arr), value_set=_LABEL_WORDS), _NOT_FOUND)
    found = found.astype(np.int64)
    out = _LABEL_VALUES[found]
    codes = np.where((found == _NOT_FOUND) & ~_np(arr.is_null(), True).astype(bool), NOT_01, 0)
    return out, codes.astype(np.int8)


def decode_label(col: RawColumn) -> tuple[I8, Bool, I8]:
    """is_fraud: 0 or 1, -1 where missing or refused."""
    col = _blank_to_null(col)
    values = col.values
    n = len(values)
    nulls = _null_mask(col) if _shape_known(col) else np.zeros(n, np.bool_)
    codes = np.zeros(n, np.int8)
    out = np.full(n, -1, np.int8)
    if isinstance(values, pa.Array):
        out, codes = _arrow_label(values)
    elif values.dtype != object:
        if _typed_kind(values) in (K_INT, K_FLOAT, K_BOOL):
            v = values.astype(np.float64)
            good = ~nulls & ((v == 0) | (v == 1))
            out[good] = v[good].astype(np.int8)
            codes[~nulls & ~good] = NOT_01
        else:
            codes[~nulls] = WRONG_TYPE
    else:
        kinds = _kinds(values)
        nulls = kinds == K_NONE
        num = (kinds == K_INT) | (kinds == K_FLOAT) | (kinds == K_BOOL)
        if num.any():
            v = _objects_to_float(values[num])
            good = (v == 0) | (v == 1)
            out[num] = np.where(good, v, -1).astype(np.int8)
            codes[num] = np.where(good, 0, NOT_01)
        is_str = kinds == K_STR
        if is_str.any():
            arr, unencodable = _to_arrow(values[is_str].tolist())
            str_out, str_codes = _arrow_label(arr)
            str_codes[unencodable] = NOT_01
            out[is_str], codes[is_str] = str_out, str_codes
        codes[kinds == K_OTHER] = WRONG_TYPE
        codes[kinds == K_UNDECODABLE] = BAD_TEXT
        codes[kinds == K_NONFINITE] = NOT_01
    out[(codes != 0) | nulls] = -1
    return out, nulls, codes


def show(value: Any) -> str:
    """A raw value as text for a rejection (not yet masked or truncated)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bytes):
        return bytes(value[:200]).decode("utf-8", "backslashreplace")
    if isinstance(value, dt.date):  # a Parquet timestamp (UTC): as written, not JSON-quoted
        return value.isoformat()
    try:
        return json.dumps(value, ensure_ascii=False, default=str)[:400]
    except (ValueError, TypeError, RecursionError):
        return type(value).__name__
