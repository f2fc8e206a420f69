"""Kinesis payload parsing: every rejection reason, positions, masking, hostile input."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fraud.schema.batch import MISSING_TIME
from fraud.schema.columns import ColumnMap
from fraud.schema.parse import Limits, ParseResult, mask_value, parse_payloads
from fraud.schema.seen import SeenIds

GOOD: dict[str, Any] = {
    "transaction_id": "t0",
    "timestamp": "2024-01-31T12:00:00Z",
    "user_id": "u1",
    "terminal_id": "m1",
    "amount": 12.5,
}
DROP = object()


def record(**changes: Any) -> bytes:
    obj = dict(GOOD)
    for key, value in changes.items():
        if value is DROP:
            obj.pop(key, None)
        else:
            obj[key] = value
    return json.dumps(obj, allow_nan=True).encode()


def parse(*payloads: bytes, **kw: Any) -> ParseResult:
    return parse_payloads(list(payloads), [f"seq-{i}" for i in range(len(payloads))], **kw)


def only_rejection(payload: bytes, **kw: Any) -> tuple[str, str, str]:
    """(field, reason, value) of a payload that must be refused, beside a good one."""
    result = parse(record(transaction_id="good"), payload, **kw)
    assert result.accepted.tolist() == [0]
    assert result.rejected.tolist() == [1]
    (rej,) = result.rejections
    assert rej.position == "seq-1"
    return rej.field, rej.reason, rej.value


def test_good_record_becomes_a_batch_row() -> None:
    result = parse(record(currency="EUR", lat=45.5, lon="-73.5", is_fraud=1,
                          label_time="2024-02-10", device_id=17, channel=None))
    assert result.rejections == [] and result.accepted.tolist() == [0]
    b = result.batch
    assert b.transaction_id.tolist() == ["t0"]
    assert b.timestamp_us.tolist() == [1706702400000000]
    assert b.amount.tolist() == [12.5]
    assert b.currency.tolist() == ["EUR"] and b.device_id.tolist() == ["17"]
    assert b.channel.tolist() == [""] and b.game_id.tolist() == [""]
    assert b.lat.tolist() == [45.5] and b.lon.tolist() == [-73.5]
    assert b.is_fraud.tolist() == [1]
    assert b.label_time_us.tolist() == [1707523200000000]
    assert b.position.tolist() == ["seq-0"]


def test_missing_optionals_use_batch_conventions() -> None:
    b = parse(record()).batch
    assert np.isnan(b.lat[0]) and np.isnan(b.lon[0])
    assert b.is_fraud.tolist() == [-1]
    assert b.label_time_us.tolist() == [MISSING_TIME]
    assert b.timestamp_us.dtype == np.int64 and b.transaction_id.dtype == object


def test_ids_are_strings_inside() -> None:
    b = parse(record(transaction_id=42, user_id=7.0, terminal_id="007")).batch
    assert b.transaction_id.tolist() == ["42"]
    assert b.user_id.tolist() == ["7"]
    assert b.terminal_id.tolist() == ["007"]


def test_epoch_timestamps() -> None:
    b = parse(record(transaction_id="a", timestamp=1706703005),
              record(transaction_id="b", timestamp=1706703005123),
              record(transaction_id="c", timestamp="1706703005.5")).batch
    assert b.timestamp_us.tolist() == [1706703005000000, 1706703005123000, 1706703005500000]


@pytest.mark.parametrize(
    ("payload", "field", "reason"),
    [
        (b"\xff\xfe{}", "record", "not valid UTF-8 (bad byte at offset 0)"),
        (b'{"transaction_id": ', "record", "not valid JSON"),
        (b"", "record", "not valid JSON"),
        (b"[1, 2]", "record", "not a JSON object (got array)"),
        (b'"text"', "record", "not a JSON object (got string)"),
        (b"null", "record", "not a JSON object (got null)"),
        (b"[" * 5000 + b"]" * 5000, "record", "not valid JSON"),
        (record(transaction_id=DROP), "transaction_id", "missing required field"),
        (record(transaction_id=""), "transaction_id", "missing required field"),
        (record(timestamp=None), "timestamp", "missing required field"),
        (record(user_id=DROP), "user_id", "missing required field"),
        (record(terminal_id=DROP), "terminal_id", "missing required field"),
        (record(amount=DROP), "amount", "missing required field"),
        (record(amount=True), "amount", "wrong type: expected a number, got boolean"),
        (record(amount=[1]), "amount", "wrong type: expected a number, got array"),
        (record(amount={"v": 1}), "amount", "wrong type: expected a number, got object"),
        (record(amount="12,50"), "amount", "not a number"),
        (record(amount="nan"), "amount", "not a finite number"),
        (record(amount="-nan(0x1)"), "amount", "not a finite number"),
        (record(amount="Infinity"), "amount", "not a finite number"),
        (record(amount=float("nan")), "amount", "not a finite number"),
        (record(amount=float("inf")), "amount", "not a finite number"),
        (record(amount=-0.01), "amount", "negative amount"),
        (record(amount=10**400), "amount", "not a finite number"),
        (record(amount="1e999"), "amount", "not a finite number"),
        (record(user_id=True), "user_id",
         "wrong type: expected text or a whole number, got boolean"),
        (record(user_id=[1]), "user_id", "wrong type"),
        (record(user_id=1.5), "user_id", "not a whole number"),
        (record(user_id="x" * 300), "user_id", "too long (more than 256 characters)"),
        (record(device_id="x" * 300), "device_id", "too long"),
        (record(currency=5.5), "currency", "not a whole number"),
        (b'{"transaction_id": "t", "timestamp": "2024-01-31", "user_id": "\\ud800", '
         b'"terminal_id": "m", "amount": 1}', "user_id", "invalid Unicode (a lone surrogate"),
        (record(timestamp="2024-02-30"), "timestamp", "impossible date or time"),
        (record(timestamp="1969-12-31"), "timestamp", "impossible date (outside 1970-01-01"),
        (record(timestamp=-5), "timestamp", "impossible date (outside"),
        (record(timestamp=1e15), "timestamp", "impossible date (outside"),
        (record(timestamp="yesterday"), "timestamp", "not an ISO-8601 time or epoch"),
        (record(timestamp=False), "timestamp", "wrong type"),
        (record(timestamp=float("nan")), "timestamp", "not a finite number"),
        (record(label_time="2024-13-01"), "label_time", "impossible date or time"),
        (record(is_fraud=2), "is_fraud", "must be 0 or 1"),
        (record(is_fraud="yes"), "is_fraud", "must be 0 or 1"),
        (record(is_fraud=0.5), "is_fraud", "must be 0 or 1"),
        (record(is_fraud=[0]), "is_fraud", "wrong type"),
        (record(lat=90.5), "lat", "out of range [-90, 90]"),
        (record(lon=-180.5), "lon", "out of range [-180, 180]"),
        (record(lat="north"), "lat", "not a number"),
        (record(lon=True), "lon", "wrong type"),
    ],
)
def test_each_problem_is_rejected_with_a_reason(payload: bytes, field: str, reason: str) -> None:
    got_field, got_reason, _ = only_rejection(payload)
    assert got_field == field
    assert got_reason.startswith(reason)


def test_nan_literal_is_named_by_its_field() -> None:
    payload = (b'{"transaction_id": "t", "timestamp": "2024-01-31", "user_id": "u", '
               b'"terminal_id": "m", "amount": Infinity}')
    assert only_rejection(payload)[:2] == ("amount", "not a finite number")


def test_record_size_limit() -> None:
    big = record(channel="x" * 200)
    field, reason, _ = only_rejection(big, limits=Limits(max_record_bytes=150))
    assert field == "record"
    assert reason == "record too large (more than 150 bytes)"


def test_string_limit_is_configurable() -> None:
    assert only_rejection(record(user_id="abcdef"), limits=Limits(max_string_chars=5))[0] == (
        "user_id")


def test_duplicates_keep_the_first() -> None:
    result = parse(record(transaction_id="a"), record(transaction_id="b"),
                   record(transaction_id="a", amount=99))
    assert result.batch.transaction_id.tolist() == ["a", "b"]
    assert result.batch.amount.tolist() == [12.5, 12.5]
    (rej,) = result.rejections
    assert (rej.position, rej.field) == ("seq-2", "transaction_id")
    assert rej.reason == "duplicate transaction_id (first seen at seq-0)"


def test_a_refused_record_does_not_claim_its_id() -> None:
    result = parse(record(transaction_id="a", amount=-1), record(transaction_id="a"))
    assert result.accepted.tolist() == [1]
    assert result.rejections[0].reason == "negative amount"


def test_duplicates_across_calls_with_seen() -> None:
    seen = SeenIds()
    parse(record(transaction_id="a"), record(transaction_id="b"), seen=seen)
    parse(record(transaction_id="c"), seen=seen)
    again = parse(record(transaction_id="d"), record(transaction_id="b"), record(
        transaction_id="d"), record(transaction_id="e"), seen=seen)
    assert again.batch.transaction_id.tolist() == ["d", "e"]
    assert [r.reason for r in again.rejections] == [
        "duplicate transaction_id (first seen at seq-1)",
        "duplicate transaction_id (first seen at seq-0)"]
    assert len(seen) == 5


def test_good_rows_survive_beside_bad_ones_in_order() -> None:
    payloads = [record(transaction_id=f"t{i}", amount=(-1 if i % 3 == 0 else i))
                for i in range(10)]
    result = parse(*payloads)
    assert result.accepted.tolist() == [1, 2, 4, 5, 7, 8]
    assert result.rejected.tolist() == [0, 3, 6, 9]
    assert [r.position for r in result.rejections] == ["seq-0", "seq-3", "seq-6", "seq-9"]
    assert result.batch.position.tolist() == ["seq-1", "seq-2", "seq-4", "seq-5", "seq-7",
                                              "seq-8"]


def test_one_rejection_per_record_first_problem_in_field_order() -> None:
    result = parse(record(transaction_id=DROP, amount=-1, lat=100))
    assert [r.field for r in result.rejections] == ["transaction_id"]


def test_card_numbers_are_masked_in_rejections() -> None:
    for card in ("4111111111111111", "4111 1111 1111 1111", "4111-1111-1111-1111"):
        field, _, value = only_rejection(record(user_id=card + "!" * 300))
        assert field == "user_id"
        assert value == "****1111" + "!" * 32 + "…"
    _, _, value = only_rejection(record(amount="4111 1111 1111 1111"))
    assert value == "****1111"


def test_mask_value() -> None:
    assert mask_value("card 4111-1111-1111-1234 ok") == "card ****1234 ok"
    assert mask_value("12345678901") == "12345678901"  # 11 digits: not a card
    assert mask_value("x" * 100) == "x" * 40 + "…"
    assert mask_value("a\nb\x00") == "a\\nb\\x00"
    long_card_at_edge = "y" * 30 + "4111111111111111"
    assert "411111" not in mask_value(long_card_at_edge)
    assert mask_value("\ud800") == "\\ud800"


def test_values_are_truncated() -> None:
    _, _, value = only_rejection(record(amount="z" * 500))
    assert value == "z" * 40 + "…"


def test_column_mapping_applies_to_payloads() -> None:
    payload = json.dumps({"id": "t", "ts": "2024-01-31", "card": "u", "merchant": "m",
                          "amount": 1}).encode()
    cm = ColumnMap.parse("transaction_id=id,timestamp=ts,user_id=card,terminal_id=merchant")
    result = parse(payload, columns=cm)
    assert result.rejections == [] and result.batch.terminal_id.tolist() == ["m"]


def test_extra_fields_are_carried_as_text() -> None:
    result = parse(record(transaction_id="a", scenario="fraud", score=3),
                   record(transaction_id="b"), extra=("scenario", "score"))
    assert result.batch.extra["scenario"].tolist() == ["fraud", ""]
    assert result.batch.extra["score"].tolist() == ["3", ""]


def test_positions_must_match_payloads() -> None:
    with pytest.raises(ValueError, match="2 payloads but 1 positions"):
        parse_payloads([b"{}", b"{}"], ["a"])


def test_empty_batch() -> None:
    result = parse()
    assert len(result.batch) == 0 and result.total == 0


def test_repr_has_no_data() -> None:
    result = parse(record(user_id="4111111111111111"))
    assert "4111" not in repr(result) and "4111" not in repr(result.batch)


def check_accounting(result: ParseResult, n: int) -> None:
    assert result.total == n
    both = np.concatenate([result.accepted, result.rejected])
    assert sorted(both.tolist()) == list(range(n))
    assert len(result.rejections) == len(result.rejected)
    assert len(result.batch) == len(result.accepted)
    for rej in result.rejections:
        assert len(rej.value) <= 41
        str(rej).encode("utf-8")  # printable and encodable, whatever came in


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=3),
    max_leaves=8,
)
field_names = st.sampled_from(["transaction_id", "timestamp", "user_id", "terminal_id",
                               "amount", "currency", "lat", "lon", "is_fraud", "label_time",
                               "ip", "other"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(max_size=200), max_size=20))
def test_hostile_bytes_never_raise(payloads: list[bytes]) -> None:
    check_accounting(parse(*payloads), len(payloads))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.dictionaries(field_names, json_values, max_size=12), max_size=15),
       st.lists(st.sampled_from(list(GOOD)), max_size=3))
def test_hostile_json_objects_never_raise(objs: list[dict[str, Any]],
                                          keep: list[str]) -> None:
    payloads = [json.dumps({**{k: GOOD[k] for k in keep}, **o}).encode() for o in objs]
    result = parse(*payloads)
    check_accounting(result, len(payloads))
    b = result.batch
    assert np.all(np.isfinite(b.amount)) and np.all(b.amount >= 0)
    assert len(set(b.transaction_id.tolist())) == len(b)
    assert all(type(x) is str and x for x in b.user_id.tolist())


@settings(max_examples=100, deadline=None)
@given(st.lists(st.fixed_dictionaries({
    "transaction_id": st.text(min_size=1, max_size=10),
    "timestamp": st.one_of(st.integers(0, 7_000_000_000), st.just("2024-01-31T00:00:00+01:00")),
    "user_id": st.integers(0, 10**6), "terminal_id": st.text(min_size=1, max_size=5),
    "amount": st.floats(min_value=0, max_value=1e9),
}), max_size=15))
def test_valid_records_are_accepted_unless_duplicate(objs: list[dict[str, Any]]) -> None:
    payloads = [json.dumps(o).encode() for o in objs]
    result = parse(*payloads)
    check_accounting(result, len(payloads))
    firsts = {o["transaction_id"] for o in objs}
    surrogate_free = {t for t in firsts if t.encode("utf-8", "surrogatepass")
                      == t.encode("utf-8", "replace")}
    assert set(result.batch.transaction_id.tolist()) == surrogate_free
    assert all("duplicate" in r.reason or "Unicode" in r.reason for r in result.rejections)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(st.sampled_from("abcdefgh"), max_size=6), max_size=6))
def test_seen_ids_match_a_plain_dict(chunks: list[list[str]]) -> None:
    seen, reference = SeenIds(), dict[str, str]()
    for c, keys in enumerate(chunks):
        positions = [f"{c}.{k}" for k in range(len(keys))]
        expected = []
        for k, (key, pos) in enumerate(zip(keys, positions, strict=True)):
            if key in reference:
                expected.append((k, reference[key]))
            else:
                reference[key] = pos
        assert seen.claim(keys, positions) == expected
    assert len(seen) == len(reference)
