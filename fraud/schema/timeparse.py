"""Vectorised timestamp parsing to int64 microseconds since the epoch, UTC.

Accepted forms (the same for Kinesis payloads, files and the CLI):

* ISO-8601 extended: ``2024-01-31``, ``2024-01-31T12:30``, ``2024-01-31 12:30:05``,
  ``2024-01-31T12:30:05.123456`` (1 to 9 fraction digits; beyond microseconds they are
  truncated), each optionally followed by ``Z``, ``+05:30``, ``+0530`` or ``+05``.
  Without an offset the time is UTC. No surrounding whitespace, no basic format
  (``20240131T1230``), no week or ordinal dates: exports from real systems do not use them,
  and every extra form is one more way to misread a date.
* Epoch numbers (a JSON/Parquet number or a decimal string such as ``"1706703005.5"``).
  **The unit is decided by magnitude**: ``|v| < 1e11`` is seconds, ``1e11 <= |v| < 1e14`` is
  milliseconds, anything larger is refused. Seconds up to 1e11 reach the year 5138 and
  milliseconds from 1e11 start at 1973-03-03, so every plausible seconds or milliseconds
  value is read right; only milliseconds before 1973-03-03 would be misread (as seconds far
  in the future, and then refused as out of range).

Anything outside ``[MIN_TIME_US, MAX_TIME_US)`` (1970-01-01 .. 2200-01-01) is refused as out
of range: a payment system has no transactions before the epoch or two centuries ahead, and
such values are nearly always a wrong unit or a corrupt field.

Strings are parsed without a Python loop per element: they are joined, viewed as a byte
matrix (one row per value) and decoded with NumPy arithmetic, so a million timestamps cost a
few tens of milliseconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click
import numpy as np
import numpy.typing as npt

from fraud.errors import InputError

__all__ = [
    "MAX_TIME_US",
    "MIN_TIME_US",
    "TIME",
    "TIME_IMPOSSIBLE",
    "TIME_MALFORMED",
    "TIME_OK",
    "TIME_OUT_OF_RANGE",
    "CliTimeType",
    "epoch_to_us",
    "format_time_us",
    "parse_cli_time",
    "parse_time_strings",
    "parse_time_utf8",
]

I64 = npt.NDArray[np.int64]
I8 = npt.NDArray[np.int8]
F64 = npt.NDArray[np.float64]

# Status codes returned beside every parsed value.
TIME_OK = 0
TIME_MALFORMED = 1  # not ISO-8601 nor an epoch number
TIME_IMPOSSIBLE = 2  # well formed but no such date/time (Feb 30, 25:00, offset +99:00)
TIME_OUT_OF_RANGE = 3  # a real date outside 1970-01-01 .. 2200-01-01

_US = 1_000_000
_DAY_US = 86_400 * _US
MIN_TIME_US = 0  # 1970-01-01T00:00:00Z
MAX_TIME_US = 7_258_118_400 * _US  # 2200-01-01T00:00:00Z (exclusive)
_SECONDS_BELOW = 1e11
_MILLIS_BELOW = 1e14
_WIDTH = 36  # longest accepted form: 2024-01-31T12:30:05.123456789+05:30 (35)


def _days_from_civil(year: I64, month: I64, day: I64) -> I64:
    """Days since 1970-01-01 of a proleptic Gregorian date (Hinnant's algorithm)."""
    y = year - (month <= 2)
    era = y // 400
    yoe = y - era * 400
    mp = (month + 9) % 12
    doy = (153 * mp + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    result: I64 = era * 146097 + doe - 719468
    return result


def _days_in_month(year: I64, month: I64) -> I64:
    table = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    result: I64 = table[np.clip(month, 0, 12)] + ((month == 2) & leap)
    return result


def _range_status(us: I64, status: I8) -> tuple[I64, I8]:
    """Refuse times outside the plausible range; refused values read 0."""
    out = status.copy()
    out[(out == TIME_OK) & ((us < MIN_TIME_US) | (us >= MAX_TIME_US))] = TIME_OUT_OF_RANGE
    return np.where(out == TIME_OK, us, 0), out


def epoch_to_us(values: npt.ArrayLike) -> tuple[I64, I8]:
    """Epoch seconds or milliseconds (by magnitude, see the module doc) to microseconds.

    Returns the values (0 where refused) and a status code per value.

    >>> us, status = epoch_to_us([1706703005, 1706703005123, float("nan")])
    >>> us.tolist(), status.tolist()
    ([1706703005000000, 1706703005123000, 0], [0, 0, 1])
    """
    v = np.asarray(values, dtype=np.float64)
    status = np.zeros(v.shape, dtype=np.int8)
    finite = np.isfinite(v)
    status[~finite] = TIME_MALFORMED
    mag = np.abs(np.where(finite, v, 0.0))
    unit = np.where(mag < _SECONDS_BELOW, float(_US), 1000.0)
    too_big = finite & (mag >= _MILLIS_BELOW)
    status[too_big] = TIME_OUT_OF_RANGE
    scaled = np.where(finite & ~too_big, v, 0.0) * unit
    return _range_status(np.round(scaled).astype(np.int64), status)


def _number(d: npt.NDArray[np.uint8], cols: Sequence[int]) -> I64:
    """Integer value of the digit columns `cols` (each already checked to be a digit)."""
    value = np.zeros(len(d), dtype=np.int64)
    for j in cols:
        value = value * 10 + np.minimum(d[:, j], 9)
    return value


def _first_non_digit(isd: npt.NDArray[np.bool_]) -> I64:
    padded = np.concatenate([isd, np.zeros((len(isd), 1), np.bool_)], axis=1)
    found: I64 = np.argmin(padded, axis=1).astype(np.int64)
    return found


def _parse_offsets(c: npt.NDArray[np.uint8], d: npt.NDArray[np.uint8],
                   pos: I64, tail: I64) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_],
                                                 I64]:
    """Suffix after the time: 'Z', '+HH', '+HHMM', '+HH:MM'. -> (valid, impossible, us)."""
    rows = np.arange(len(pos))

    def at(k: I64 | int) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]:
        j = np.clip(pos + k, 0, _WIDTH - 1)
        return c[rows, j], d[rows, j]

    first, _ = at(0)
    zulu = (tail == 1) & np.isin(first, (ord("Z"), ord("z")))
    signed = np.isin(first, (ord("+"), ord("-"))) & np.isin(tail, (3, 5, 6))
    h1, h2 = at(1)[1], at(2)[1]
    colon = at(3)[0] == ord(":")
    mpos = np.where(tail == 6, 4, 3)
    m1, m2 = at(mpos)[1], at(mpos + 1)[1]
    has_min = tail >= 5
    ok = (h1 < 10) & (h2 < 10) & (~has_min | ((m1 < 10) & (m2 < 10))) & ((tail != 6) | colon)
    hours = np.minimum(h1, 9).astype(np.int64) * 10 + np.minimum(h2, 9)
    minutes = np.where(has_min, np.minimum(m1, 9).astype(np.int64) * 10 + np.minimum(m2, 9), 0)
    sign = np.where(first == ord("-"), -1, 1)
    offset = np.where(signed, sign * (hours * 3600 + minutes * 60) * _US, 0)
    impossible = signed & ((hours > 23) | (minutes > 59))
    return zulu | (signed & ok), impossible, offset


def _parse_iso(c: npt.NDArray[np.uint8], d: npt.NDArray[np.uint8], isd: npt.NDArray[np.bool_],
               length: I64) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_], I64]:
    """ISO-8601 rows: (well formed, impossible, microseconds)."""
    n = len(length)
    iso = (length >= 10) & isd[:, [0, 1, 2, 3, 5, 6, 8, 9]].all(axis=1)
    iso &= (c[:, 4] == ord("-")) & (c[:, 7] == ord("-"))
    has_time = length > 10
    time_ok = (np.isin(c[:, 10], (ord("T"), ord("t"), ord(" "))) & (c[:, 13] == ord(":"))
               & isd[:, [11, 12, 14, 15]].all(axis=1))
    iso &= ~has_time | time_ok
    has_sec = has_time & (length > 16) & (c[:, 16] == ord(":"))
    iso &= ~has_sec | (isd[:, 17] & isd[:, 18])
    pos = np.where(has_sec, 19, np.where(has_time, 16, 10)).astype(np.int64)
    micro = np.zeros(n, np.int64)
    has_frac = has_sec & (length > 19) & (c[:, 19] == ord("."))
    fr = np.flatnonzero(has_frac)
    if len(fr):
        frac_len = np.minimum(_first_non_digit(isd[fr, 20:]), length[fr] - 20)
        iso[fr] &= (frac_len >= 1) & (frac_len <= 9)
        sub = np.where(np.arange(6)[None, :] < frac_len[:, None], np.minimum(d[fr, 20:26], 9), 0)
        micro[fr] = _number(sub.astype(np.uint8), range(6))
        pos[fr] = 20 + frac_len
    tail = length - pos
    offset = np.zeros(n, np.int64)
    impossible = np.zeros(n, np.bool_)
    tr = np.flatnonzero(iso & (tail > 0))
    if len(tr):
        ok, bad, off = _parse_offsets(c[tr], d[tr], pos[tr], tail[tr])
        iso[tr] &= ok & has_time[tr]
        impossible[tr], offset[tr] = bad, off
    year, month, day = _number(d, (0, 1, 2, 3)), _number(d, (5, 6)), _number(d, (8, 9))
    hour = np.where(has_time, _number(d, (11, 12)), 0)
    minute = np.where(has_time, _number(d, (14, 15)), 0)
    second = np.where(has_sec, _number(d, (17, 18)), 0)
    impossible |= ((month < 1) | (month > 12) | (day < 1) | (day > _days_in_month(year, month))
                   | (hour > 23) | (minute > 59) | (second > 59))
    days = _days_from_civil(year, np.clip(month, 1, 12), day)
    us = days * _DAY_US + ((hour * 60 + minute) * 60 + second) * _US + micro - offset
    return iso, impossible, us


def _parse_epoch(c: npt.NDArray[np.uint8], d: npt.NDArray[np.uint8],
                 isd: npt.NDArray[np.bool_], length: I64) -> tuple[npt.NDArray[np.bool_], I64, I8]:
    """Rows of the form -?digits[.digits]: (is such a number, microseconds, status)."""
    n = len(length)
    neg = c[:, 0] == ord("-")
    start = neg.astype(np.int64)
    col = np.arange(_WIDTH)[None, :]
    inside = col < length[:, None]
    dot = (c == ord(".")) & inside
    n_dots = dot.sum(axis=1)
    dot_at = np.where(n_dots == 1, np.argmax(dot, axis=1), length)
    body = inside & (col >= start[:, None])
    numeric = ((length > start) & (n_dots <= 1) & np.all(isd | ~body | dot, axis=1)
               & (dot_at > start) & ((n_dots == 0) | (dot_at < length - 1)))
    fits = numeric & (dot_at - start <= 15)
    int_part = np.zeros(n, np.int64)
    frac6 = np.zeros(n, np.int64)
    rows = np.arange(n)
    for j in range(_WIDTH):
        digit = np.minimum(d[:, j], 9).astype(np.int64)
        int_part = np.where((j >= start) & (j < dot_at) & fits, int_part * 10 + digit, int_part)
    for k in range(6):
        at = dot_at + 1 + k
        digit = np.minimum(d[rows, np.clip(at, 0, _WIDTH - 1)], 9).astype(np.int64)
        frac6 = frac6 * 10 + np.where(at < length, digit, 0)
    status = np.full(n, TIME_OUT_OF_RANGE, np.int8)
    good = fits & (int_part < _MILLIS_BELOW)
    status[good] = TIME_OK
    unit = np.where(int_part < _SECONDS_BELOW, _US, 1000)
    us = np.where(good, np.where(neg, -1, 1) * (int_part * unit + frac6 * unit // _US), 0)
    return numeric, us, status


def _parse_matrix(codes: npt.NDArray[np.uint8], length: I64) -> tuple[I64, I8]:
    """Decode each row of an ASCII byte matrix as an ISO-8601 time or an epoch number."""
    n = len(length)
    d = codes - np.uint8(ord("0"))  # wraps: a digit is exactly d < 10
    isd = d < 10
    status = np.full(n, TIME_MALFORMED, dtype=np.int8)
    us = np.zeros(n, dtype=np.int64)
    iso, impossible, iso_us = _parse_iso(codes, d, isd, length)
    status[iso] = np.where(impossible[iso], TIME_IMPOSSIBLE, TIME_OK)
    us[iso] = iso_us[iso]
    rest = np.flatnonzero(~iso & (length > 0))
    if len(rest):
        numeric, num_us, num_status = _parse_epoch(codes[rest], d[rest], isd[rest], length[rest])
        status[rest[numeric]] = num_status[numeric]
        us[rest[numeric]] = num_us[numeric]
    return _range_status(us, status)


def parse_time_utf8(
    data: npt.NDArray[np.uint8], starts: I64, lengths: I64
) -> tuple[I64, I8]:
    """Parse values held in one UTF-8 buffer (value i is ``data[starts[i]:][:lengths[i]]``).

    This is how Arrow string columns arrive: no Python string is made per value.
    Non-ASCII bytes never match a digit or separator, so such values come out malformed.
    """
    n = len(lengths)
    usable = lengths < _WIDTH
    length = np.where(usable, lengths, 0).astype(np.int64)
    buf = np.concatenate([np.asarray(data, dtype=np.uint8), np.zeros(_WIDTH, np.uint8)])
    index = np.clip(np.asarray(starts, np.int64), 0, len(buf) - _WIDTH)
    # one row of _WIDTH bytes per value, copied out of a strided window view of the buffer
    codes = np.lib.stride_tricks.sliding_window_view(buf, _WIDTH)[index].reshape(n, _WIDTH)
    codes = np.where(np.arange(_WIDTH)[None, :] < length[:, None], codes, 0).astype(np.uint8)
    us, status = _parse_matrix(codes, length)
    status[~usable] = TIME_MALFORMED
    us[~usable] = 0
    return us, status


def parse_time_strings(values: Sequence[str] | npt.NDArray[Any]) -> tuple[I64, I8]:
    """Parse strings (ISO-8601 or epoch numbers) to microseconds UTC, with a status each.

    >>> us, status = parse_time_strings(["2024-01-31", "2024-01-31T01:00+01:00", "2024-02-30"])
    >>> us.tolist(), status.tolist()
    ([1706659200000000, 1706659200000000, 0], [0, 0, 2])
    """
    strings = list(values)
    n = len(strings)
    length = np.fromiter(map(len, strings), dtype=np.int64, count=n)
    usable = length < _WIDTH
    joined = "".join(strings)
    if not joined.isascii():
        usable &= np.fromiter(map(str.isascii, strings), dtype=np.bool_, count=n)
    if not usable.all():
        strings = [s if ok else "" for s, ok in zip(strings, usable.tolist(), strict=True)]
        length = np.where(usable, length, 0)
        joined = "".join(strings)
    data = np.frombuffer(joined.encode("ascii"), dtype=np.uint8)
    starts = np.concatenate(([0], np.cumsum(length)[:-1])).astype(np.int64)
    us, status = parse_time_utf8(data, starts[:n], length)
    status[~usable] = TIME_MALFORMED
    us[~usable] = 0
    return us, status


def format_time_us(us: int) -> str:
    """ISO-8601 UTC text of a microsecond timestamp (for messages and reports)."""
    text = str(np.datetime64(int(us), "us"))
    return text + "Z"


if TYPE_CHECKING:  # click >= 8.2 types ParamType as a generic; older clicks do not subscript.
    _TimeParamBase = click.ParamType[int, Any]
else:
    _TimeParamBase = click.ParamType

_CLI_REASONS = {
    TIME_MALFORMED: "expected a date like 2024-01-31, an ISO-8601 time like "
    "2024-01-31T12:00:00Z, or epoch seconds/milliseconds",
    TIME_IMPOSSIBLE: "no such date or time",
    TIME_OUT_OF_RANGE: "outside 1970-01-01 .. 2200-01-01",
}


def parse_cli_time(text: str, *, name: str = "time") -> int:
    """A command-line date or time (``--from 2024-01-31``) as microseconds UTC.

    Raises `InputError` naming the option and the value on anything else.

    >>> parse_cli_time("2024-01-31")
    1706659200000000
    """
    stripped = text.strip()
    us, status = parse_time_strings([stripped])
    code = int(status[0])
    if code != TIME_OK:
        raise InputError(f"{name}: {stripped[:40]!r}: {_CLI_REASONS[code]}")
    return int(us[0])


class CliTimeType(_TimeParamBase):
    """click type for --from/--to/--start options: converts to int microseconds UTC."""

    name = "time"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        try:
            return parse_cli_time(str(value), name=param.name if param and param.name else "time")
        except InputError as exc:
            self.fail(str(exc), param, ctx)


TIME = CliTimeType()
