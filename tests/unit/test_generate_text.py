"""The generator's fast text builders agree with the slow, obvious references."""

from __future__ import annotations

import datetime as dt
import io
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fraud.generate.jsonl import write_jsonl_to
from fraud.generate.textcols import format_ids, id_width, iso_utc, parse_date, us_from_date

_LO = us_from_date(dt.datetime(1971, 1, 1, tzinfo=dt.UTC))
_HI = us_from_date(dt.datetime(9000, 1, 1, tzinfo=dt.UTC))


def _reference(us: int) -> str:
    value = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=us)
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(min_value=_LO, max_value=_HI), max_size=20))
def test_iso_utc_matches_datetime(values: list[int]) -> None:
    got = iso_utc(np.asarray(values, dtype=np.int64)).tolist()
    assert got == [_reference(v) for v in values]


def test_iso_utc_of_nothing_is_empty() -> None:
    assert iso_utc(np.zeros(0, dtype=np.int64)).shape == (0,)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=99_999), max_size=20),
       st.sampled_from(["U", "TX", ""]))
def test_format_ids_matches_fstrings(values: list[int], prefix: str) -> None:
    got = format_ids(prefix, np.asarray(values, dtype=np.int64), 5).tolist()
    assert got == [f"{prefix}{v:05d}" for v in values]


def test_format_ids_refuses_too_wide_values() -> None:
    with pytest.raises(ValueError, match="out of range"):
        format_ids("U", np.array([100]), 2)


@pytest.mark.parametrize("text", ["2024-13-01", "yesterday", "", "2024-02-30"])
def test_parse_date_refuses_bad_dates(text: str) -> None:
    with pytest.raises(ValueError, match="2024-01-01"):
        parse_date(text)


def test_parse_date_is_utc() -> None:
    assert parse_date("2024-03-05") == dt.datetime(2024, 3, 5, tzinfo=dt.UTC)
    assert parse_date("2024-03-05T01:00:00+01:00") == dt.datetime(2024, 3, 5, tzinfo=dt.UTC)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.text(max_size=8),
                          st.floats(allow_nan=False, allow_infinity=False),
                          st.integers(min_value=-(2**62), max_value=2**62)),
                max_size=10))
def test_jsonl_matches_json_dumps(rows: list[tuple[str, float, int]]) -> None:
    columns = {
        "s%": np.asarray([r[0] for r in rows] or [], dtype=object),
        "f": np.asarray([r[1] for r in rows], dtype=np.float64),
        "i": np.asarray([r[2] for r in rows], dtype=np.int64),
    }
    buf = io.StringIO()
    assert write_jsonl_to(buf, columns) == len(rows)
    expected = "".join(
        json.dumps({"s%": s, "f": f, "i": i}, separators=(",", ":")) + "\n" for s, f, i in rows
    )
    assert buf.getvalue() == expected


def test_jsonl_refuses_nan() -> None:
    with pytest.raises(ValueError, match="column x"):
        write_jsonl_to(io.StringIO(), {"x": np.array([np.nan])})


def test_id_width_grows_with_the_world_instead_of_failing() -> None:
    # --terminals accepts up to 10,000,000; six digits hold only a million.
    assert id_width(1_000_000, 6) == 6
    assert id_width(1_000_001, 6) == 7
    assert id_width(0, 3) == 3
    ids = format_ids("T", np.array([0, 1_000_000]), id_width(1_000_001, 6))
    assert ids.tolist() == ["T0000000", "T1000000"]
