"""Text columns (ISO-8601 UTC times, zero-padded ids) built fast enough for millions of rows.

`numpy.datetime_as_string`, Arrow's `strftime` and per-value f-strings each take about a
second per million values, and a data set has a dozen such columns. So the text is laid out
as a fixed-width byte matrix from integer digits (the date part from a per-day lookup) and
turned into Python strings in one decode-and-split.

>>> iso_utc(np.array([1_704_067_200_000_001], dtype=np.int64))[0]
'2024-01-01T00:00:00.000001Z'
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import numpy.typing as npt

__all__ = ["US_PER_DAY", "US_PER_HOUR", "US_PER_MINUTE", "US_PER_SECOND", "format_ids",
           "id_width", "iso_utc", "parse_date", "us_from_date"]

US_PER_SECOND = 1_000_000
US_PER_MINUTE = 60 * US_PER_SECOND
US_PER_HOUR = 60 * US_PER_MINUTE
US_PER_DAY = 24 * US_PER_HOUR

_WIDTH = 27  # len("2024-01-01T00:00:00.000000Z")


def _put_digits(out: npt.NDArray[np.uint8], col: int, value: npt.NDArray[np.int64],
                width: int) -> None:
    for i in range(width - 1, -1, -1):
        out[:, col + i] = 48 + value % 10
        value = value // 10


def _strings(matrix: npt.NDArray[np.uint8]) -> npt.NDArray[np.object_]:
    """One `str` per row of an ASCII byte matrix, as an object array."""
    n, width = matrix.shape
    framed = np.empty((n, width + 1), dtype=np.uint8)
    framed[:, :width] = matrix
    framed[:, width] = ord("\n")
    parts = framed.tobytes().decode("ascii").split("\n")
    parts.pop()  # after the last newline
    out = np.empty(n, dtype=object)
    out[:] = parts
    return out


def id_width(count: int, minimum: int) -> int:
    """Digits for ids 0 .. `count` - 1: `minimum`, or more when the world is that large.

    Fixed widths keep ids sortable and files byte-stable; a bigger world (say over a million
    terminals) gets wider ids instead of an error.

    >>> id_width(1_000, 6), id_width(1_000_001, 6)
    (6, 7)
    """
    return max(minimum, len(str(max(count - 1, 0))))


def format_ids(prefix: str, index: npt.NDArray[np.integer], width: int) -> npt.NDArray[np.object_]:
    """`prefix` + zero-padded `index` ('U0000042'); indices must fit in `width` digits.

    >>> format_ids("U", np.arange(2), 3).tolist()
    ['U000', 'U001']
    """
    values = np.asarray(index, dtype=np.int64)
    if values.size and (values.min() < 0 or values.max() >= 10**width):
        raise ValueError(f"ids {prefix}: index out of range for {width} digits")
    head = np.frombuffer(prefix.encode("ascii"), dtype=np.uint8)
    out = np.empty((values.size, len(head) + width), dtype=np.uint8)
    out[:, : len(head)] = head
    _put_digits(out, len(head), values, width)
    return _strings(out)


def iso_utc(timestamps_us: npt.NDArray[np.int64]) -> npt.NDArray[np.object_]:
    """'YYYY-MM-DDTHH:MM:SS.ffffffZ' strings (an object array of `str`) for each timestamp."""
    ts = np.asarray(timestamps_us, dtype=np.int64)
    if ts.size == 0:
        return np.empty(0, dtype=object)
    day = ts // US_PER_DAY
    first, last = int(day.min()), int(day.max())
    if last - first <= 4 * ts.size + 1000:  # a dense range: index by offset, no sort needed
        days = np.arange(first, last + 1, dtype=np.int64)
        which = day - first
    else:
        days, which = np.unique(day, return_inverse=True)
    day_text = np.datetime_as_string(days.astype("datetime64[D]"), unit="D")
    day_bytes = np.frombuffer(day_text.astype("S10").tobytes(), dtype=np.uint8).reshape(-1, 10)
    out = np.empty((ts.size, _WIDTH), dtype=np.uint8)
    out[:, :10] = day_bytes[which]
    rem = ts - day * US_PER_DAY
    hour, rem = np.divmod(rem, US_PER_HOUR)
    minute, rem = np.divmod(rem, US_PER_MINUTE)
    second, micro = np.divmod(rem, US_PER_SECOND)
    out[:, 10] = ord("T")
    _put_digits(out, 11, hour, 2)
    out[:, 13] = ord(":")
    _put_digits(out, 14, minute, 2)
    out[:, 16] = ord(":")
    _put_digits(out, 17, second, 2)
    out[:, 19] = ord(".")
    _put_digits(out, 20, micro, 6)
    out[:, 26] = ord("Z")
    return _strings(out)


def parse_date(text: str) -> dt.datetime:
    """A UTC midnight from 'YYYY-MM-DD' (or an ISO-8601 date-time, taken as UTC if naive).

    Raises ValueError with the accepted forms when `text` is not one of them.
    """
    try:
        value = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"expected a date like 2024-01-01, got {text!r}") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def us_from_date(value: dt.datetime) -> int:
    """Microseconds since the Unix epoch of an aware datetime."""
    delta = value - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * US_PER_DAY + delta.seconds * US_PER_SECOND + delta.microseconds)
