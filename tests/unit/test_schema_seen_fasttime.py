"""SeenIds (compact duplicate detection) and the compiled ISO fast path agree with models."""

from __future__ import annotations

import builtins

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fraud.schema.decode import parse_time_utf8_fast
from fraud.schema.seen import SeenIds
from fraud.schema.timeparse import parse_time_utf8
from tests.unit.test_schema_seen_runs import _model_check

_IDS = st.sampled_from(["a", "b", "c", "", "é", "x" * 40, "T1", "T2", "T10"])


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(_IDS, max_size=12), max_size=6))
def test_seen_ids_match_a_dictionary_model(chunks: list[list[str]]) -> None:
    _model_check(SeenIds(), chunks)  # empty ids too (test_schema_seen_runs has the rest)


def test_seen_ids_tell_a_hash_collision_from_a_duplicate(
        monkeypatch: pytest.MonkeyPatch) -> None:
    seen = SeenIds()
    # Every id gets the same hash: only the text comparison can tell them apart.
    monkeypatch.setattr(builtins, "hash", lambda value: 7)
    assert seen.claim(["a", "b"], ["line 1", "line 2"]) == []
    assert seen.claim(["z", "a", "z"], ["line 3", "line 4", "line 5"]) == \
        [(1, "line 1"), (2, "line 3")]
    assert len(seen) == 3


_DIGITS = st.text(alphabet="0123456789", min_size=1, max_size=11)
_TIMES = st.one_of(
    st.builds(lambda y, mo, d, sep, h, mi, s, frac, tail:
              f"{y:04d}-{mo:02d}-{d:02d}{sep}{h:02d}:{mi:02d}:{s:02d}{frac}{tail}",
              st.integers(0, 9999), st.integers(0, 13), st.integers(0, 32),
              st.sampled_from(["T", " ", "t", "x"]), st.integers(0, 24), st.integers(0, 60),
              st.integers(0, 61), st.one_of(st.just(""), _DIGITS.map(lambda d: "." + d)),
              st.sampled_from(["", "Z", "z", "+01:00", "-0530", "ZZ"])),
    st.text(alphabet="0123456789-:T.Z +", max_size=32),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_TIMES, min_size=1, max_size=20))
def test_fast_time_parser_equals_the_general_one(values: list[str]) -> None:
    raw = [v.encode() for v in values]
    lengths = np.array([len(r) for r in raw], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    data = np.frombuffer(b"".join(raw) or b"\0", dtype=np.uint8)
    fast = parse_time_utf8_fast(data, starts, lengths)
    general = parse_time_utf8(data, starts, lengths)
    assert fast[0].tolist() == general[0].tolist()
    assert fast[1].tolist() == general[1].tolist()


def test_fast_time_parser_reads_the_common_form() -> None:
    text = b"2024-01-31T12:30:05.123456789Z2024-02-29 00:00:00"
    us, status = parse_time_utf8_fast(np.frombuffer(text, np.uint8),
                                      np.array([0, 30]), np.array([30, 19]))
    assert status.tolist() == [0, 0]
    assert us.tolist() == [1706704205123456, 1709164800000000]
