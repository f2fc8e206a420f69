"""Timestamp parsing: ISO-8601 forms, epoch units by magnitude, range, CLI dates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import click
import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from fraud.errors import InputError
from fraud.schema.timeparse import (
    MAX_TIME_US,
    MIN_TIME_US,
    TIME,
    TIME_IMPOSSIBLE,
    TIME_MALFORMED,
    TIME_OK,
    TIME_OUT_OF_RANGE,
    epoch_to_us,
    format_time_us,
    parse_cli_time,
    parse_time_strings,
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def us_of(dt: datetime) -> int:
    return (dt - EPOCH) // timedelta(microseconds=1)


GOOD = {
    "2024-01-31": datetime(2024, 1, 31, tzinfo=UTC),
    "2024-01-31T12:30": datetime(2024, 1, 31, 12, 30, tzinfo=UTC),
    "2024-01-31 12:30:05": datetime(2024, 1, 31, 12, 30, 5, tzinfo=UTC),
    "2024-01-31t12:30:05Z": datetime(2024, 1, 31, 12, 30, 5, tzinfo=UTC),
    "2024-01-31T12:30:05.5z": datetime(2024, 1, 31, 12, 30, 5, 500000, tzinfo=UTC),
    "2024-01-31T12:30:05.123456789+05:30": datetime(2024, 1, 31, 7, 0, 5, 123456, tzinfo=UTC),
    "2024-01-31T12:30:05+0530": datetime(2024, 1, 31, 7, 0, 5, tzinfo=UTC),
    "2024-01-31T12:30:05-05": datetime(2024, 1, 31, 17, 30, 5, tzinfo=UTC),
    "2024-02-29T00:00:00": datetime(2024, 2, 29, tzinfo=UTC),
    "2000-02-29": datetime(2000, 2, 29, tzinfo=UTC),
    "1970-01-01T00:00:00Z": EPOCH,
    "2199-12-31T23:59:59.999999Z": datetime(2199, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    "1706703005": datetime(2024, 1, 31, 12, 10, 5, tzinfo=UTC),
    "1706703005.25": datetime(2024, 1, 31, 12, 10, 5, 250000, tzinfo=UTC),
    "1706703005123": datetime(2024, 1, 31, 12, 10, 5, 123000, tzinfo=UTC),
}

BAD = {
    "": TIME_MALFORMED,
    "abc": TIME_MALFORMED,
    " 2024-01-31": TIME_MALFORMED,
    "2024-1-31": TIME_MALFORMED,
    "2024-01-31Z": TIME_MALFORMED,  # an offset needs a time
    "2024-01-31T12": TIME_MALFORMED,
    "2024-01-31T12:30:05.": TIME_MALFORMED,
    "2024-01-31T12:30:05,5": TIME_MALFORMED,
    "2024-01-31T12:30:05+05:3": TIME_MALFORMED,
    "2024-01-31T12:30:05.1234567890": TIME_MALFORMED,
    "20240131T123005": TIME_MALFORMED,  # ISO basic format is not accepted
    "1e9": TIME_MALFORMED,
    "12.5.5": TIME_MALFORMED,
    "é2024-01-31": TIME_MALFORMED,
    "2024-01-31T12:30:05Z" + "0" * 40: TIME_MALFORMED,
    "2023-02-29": TIME_IMPOSSIBLE,
    "1900-02-29": TIME_IMPOSSIBLE,
    "2024-13-01": TIME_IMPOSSIBLE,
    "2024-00-10": TIME_IMPOSSIBLE,
    "2024-04-31": TIME_IMPOSSIBLE,
    "2024-01-31T24:00": TIME_IMPOSSIBLE,
    "2024-01-31T12:60": TIME_IMPOSSIBLE,
    "2024-01-31T12:30:60": TIME_IMPOSSIBLE,
    "2024-01-31T12:30:05+24:00": TIME_IMPOSSIBLE,
    "1969-12-31T23:59:59Z": TIME_OUT_OF_RANGE,
    "2200-01-01": TIME_OUT_OF_RANGE,
    "9999-12-31": TIME_OUT_OF_RANGE,
    "-5": TIME_OUT_OF_RANGE,
    "99999999999999999999": TIME_OUT_OF_RANGE,
    "100000000000000": TIME_OUT_OF_RANGE,  # 1e14: neither seconds nor milliseconds
}


def test_good_forms_parse_to_utc_microseconds() -> None:
    us, status = parse_time_strings(list(GOOD))
    assert status.tolist() == [TIME_OK] * len(GOOD)
    assert us.tolist() == [us_of(dt) for dt in GOOD.values()]


def test_bad_forms_get_the_right_status() -> None:
    us, status = parse_time_strings(list(BAD))
    assert dict(zip(BAD, status.tolist(), strict=True)) == BAD
    assert us.tolist() == [0] * len(BAD)


def test_epoch_unit_is_decided_by_magnitude() -> None:
    # below 1e11: seconds; from 1e11 to 1e14: milliseconds; beyond: refused
    values = [1706703005, 1706703005.5, 1706703005123, 100_000_000_000, 7_258_118_399,
              99_999_999_999, 1e14, -1, float("nan"), float("inf")]
    us, status = epoch_to_us(values)
    assert us[:5].tolist() == [1706703005_000000, 1706703005_500000, 1706703005_123000,
                               100_000_000_000_000, 7_258_118_399_000000]
    assert us[5:].tolist() == [0] * 5
    assert status.tolist() == [TIME_OK] * 5 + [TIME_OUT_OF_RANGE] * 3 + [TIME_MALFORMED] * 2


def test_digit_strings_are_epoch_numbers() -> None:
    # "20240131" is not a basic-format date: digits alone are epoch seconds (1970-08-23).
    us, status = parse_time_strings(["20240131", "-1706703005"])
    assert status.tolist() == [TIME_OK, TIME_OUT_OF_RANGE]
    assert int(us[0]) == 20240131 * 1_000_000


def test_empty_input() -> None:
    us, status = parse_time_strings([])
    assert us.shape == (0,) and status.shape == (0,)


@settings(max_examples=150, deadline=None)
@given(
    dt=st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2199, 12, 30)),
    offset_minutes=st.integers(min_value=-23 * 60, max_value=23 * 60),
    style=st.sampled_from(["T", " "]),
    digits=st.integers(min_value=0, max_value=9),
    suffix=st.sampled_from(["", "Z", "+HH:MM", "+HHMM"]),
)
def test_iso_agrees_with_datetime(
    dt: datetime, offset_minutes: int, style: str, digits: int, suffix: str
) -> None:
    text = dt.strftime(f"%Y-%m-%d{style}%H:%M:%S")
    if digits:
        text += "." + f"{dt.microsecond:06d}{'123'}"[:digits]
    tz = UTC
    if suffix == "Z":
        text += "Z"
    elif suffix:
        sign = "-" if offset_minutes < 0 else "+"
        hh, mm = divmod(abs(offset_minutes), 60)
        text += f"{sign}{hh:02d}:{mm:02d}" if suffix == "+HH:MM" else f"{sign}{hh:02d}{mm:02d}"
        tz = timezone(timedelta(minutes=offset_minutes))
    micro = int(f"{dt.microsecond:06d}123"[:digits].ljust(6, "0")[:6]) if digits else 0
    expected = us_of(dt.replace(microsecond=micro, tzinfo=tz))
    us, status = parse_time_strings([text])
    if MIN_TIME_US <= expected < MAX_TIME_US:
        assert (int(status[0]), int(us[0])) == (TIME_OK, expected), text
    else:
        assert int(status[0]) == TIME_OUT_OF_RANGE, text


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=40))
def test_never_raises_on_any_text(text: str) -> None:
    us, status = parse_time_strings([text, "2024-01-31"])
    assert int(status[1]) == TIME_OK
    assert int(status[0]) in (TIME_OK, TIME_MALFORMED, TIME_IMPOSSIBLE, TIME_OUT_OF_RANGE)
    if int(status[0]) == TIME_OK:
        assert MIN_TIME_US <= int(us[0]) < MAX_TIME_US
        try:  # anything accepted as ISO is a date Python agrees exists
            parsed = datetime.fromisoformat(text.replace("z", "Z"))
        except ValueError:
            assert text.lstrip("-").replace(".", "", 1).isdigit(), text
        else:
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            assert abs(us_of(parsed) - int(us[0])) < 1, text


def test_cli_time() -> None:
    assert parse_cli_time("2024-01-31") == us_of(datetime(2024, 1, 31, tzinfo=UTC))
    assert parse_cli_time(" 2024-01-31T01:00:00+01:00 ") == us_of(datetime(2024, 1, 31,
                                                                             tzinfo=UTC))
    with pytest.raises(InputError, match=r"--from: '2024-02-30': no such date"):
        parse_cli_time("2024-02-30", name="--from")
    with pytest.raises(InputError, match="expected a date like 2024-01-31"):
        parse_cli_time("yesterday")
    assert format_time_us(0) == "1970-01-01T00:00:00.000000Z"


def test_click_time_type_reports_a_usage_error() -> None:
    @click.command()
    @click.option("--start", type=TIME)
    def cmd(start: int) -> None:
        click.echo(str(start))

    ok = CliRunner().invoke(cmd, ["--start", "2024-01-31"])
    assert ok.exit_code == 0 and ok.output.strip() == str(1706659200000000)
    bad = CliRunner().invoke(cmd, ["--start", "2024-13-01"])
    assert bad.exit_code == 2 and "no such date" in bad.output


def test_vectorised_matches_one_by_one() -> None:
    values = list(GOOD) + list(BAD)
    us_all, status_all = parse_time_strings(values)
    singles = [parse_time_strings([v]) for v in values]
    assert us_all.tolist() == [int(u[0]) for u, _ in singles]
    assert status_all.tolist() == [int(s[0]) for _, s in singles]
    assert np.all((status_all != TIME_OK) | (us_all >= 0))
