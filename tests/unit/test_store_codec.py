"""Pure parts of the store: attribute codec, sortable score keys, terminal set elements,
table declarations, backoff."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fraud.features.store import event_element, label_element
from fraud.store import Backoff
from fraud.store.feature_store import decode_events, decode_labels
from fraud.store.marshal import (
    from_item,
    number_column,
    number_text,
    string_column,
    to_attr,
    to_item,
    typed_items,
)
from fraud.store.tables import TABLES, table_spec
from fraud.store.usecases.leaderboard import score_key

plain = st.recursive(
    st.none() | st.booleans() | st.text(max_size=8) | st.integers(-10**30, 10**30)
    | st.floats(allow_nan=False, allow_infinity=False) | st.binary(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                                 max_size=3),
    max_leaves=8,
)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=6), plain, max_size=5))
def test_codec_round_trips(values: dict[str, object]) -> None:
    back = from_item(to_item(values))
    assert back == values


def test_codec_sets_numpy_and_refusals() -> None:
    assert from_item(to_item({"s": {3, 10**37}, "t": {"a"}})) == {"s": {3, 10**37}, "t": {"a"}}
    assert to_attr(np.int64(5)) == {"N": "5"} and to_attr(np.float64(0.5)) == {"N": "0.5"}
    with pytest.raises(ValueError, match="nan"):
        to_attr(math.nan)
    with pytest.raises(ValueError, match="empty set"):
        to_attr(set())
    with pytest.raises(TypeError, match="object"):
        to_attr(object())


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(allow_nan=False, allow_infinity=False, width=64),
                          st.text("abc", min_size=1, max_size=3)), min_size=2, max_size=20))
def test_score_keys_sort_like_scores_and_never_collide(entries: list[tuple[float, str]]) -> None:
    entries = list({p: (s, p) for s, p in entries}.values())  # one score per player
    by_key = sorted(entries, key=lambda e: score_key(e[0], e[1]))
    assert [s for s, _ in by_key] == sorted(s for s, _ in entries)
    assert len({score_key(s, p) for s, p in entries}) == len(entries)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**53 - 1), st.integers(0, 2**64 - 1), st.integers(0, 10**17))
def test_set_elements_decode_to_what_the_engine_encoded(ts: int, h: int, delay: int) -> None:
    ev = decode_events([event_element(ts, h)])
    assert ev.tolist() == [[ts, h & 0xFFFFFFFF]]
    lab = decode_labels([label_element(ts, h, ts + delay)])
    assert lab.tolist() == [[ts, h & 0xFFFF, ts + min(delay, 10**17 - 1)]]
    assert len(str(label_element(ts, h, ts + delay))) <= 38  # DynamoDB's Number limit


def test_table_declarations_are_consistent() -> None:
    names = [t.name for t in TABLES]
    assert len(names) == len(set(names)) == 13
    for spec in TABLES:
        request = spec.create_request("x")
        defined = {a["AttributeName"] for a in request["AttributeDefinitions"]}
        used = {k["AttributeName"] for k in request["KeySchema"]}
        for index in request.get("GlobalSecondaryIndexes", []):
            used |= {k["AttributeName"] for k in index["KeySchema"]}
        assert defined == used  # DynamoDB refuses definitions that no key uses
        assert request["BillingMode"] == "PAY_PER_REQUEST"
    assert table_spec("Sessions").ttl_attribute == "ExpirationTimestamp"
    with pytest.raises(Exception, match="unknown table"):
        table_spec("Nope")


def test_backoff_is_full_jitter_capped_and_injectable() -> None:
    sleeps: list[float] = []
    backoff = Backoff(base=0.1, cap=1.0, sleep=sleeps.append, rng=random.Random(3))
    for attempt in range(1, 12):
        backoff.wait(attempt)
    bounds = [min(1.0, 0.1 * 2 ** (a - 1)) for a in range(1, 12)]
    assert all(0 <= s <= b for s, b in zip(sleeps, bounds, strict=True))
    assert len(set(sleeps)) == len(sleeps)  # jittered, not a fixed schedule


@settings(max_examples=150, deadline=None)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True, width=64), max_size=20))
def test_number_column_is_number_text_column_wise(values: list[float]) -> None:
    got = number_column(np.array(values, dtype=np.float64))
    want = [{"N": number_text(v)} if math.isfinite(v) else None for v in values]
    # The same number (DynamoDB compares numbers, not their text), absent where not finite.
    assert [g if g is None else float(g["N"]) for g in got] == \
        [w if w is None else float(w["N"]) for w in want]
    assert all(g is None or "." not in g["N"] or not float(g["N"]).is_integer()
               or abs(float(g["N"])) >= 2**53 for g in got)


def test_typed_items_leave_missing_attributes_out() -> None:
    items = typed_items({"id": string_column(["a", "b"], required=True),
                         "device": string_column(np.array(["", "d1"], dtype=object)),
                         "n": number_column(np.array([1, 2], dtype=np.int64))})
    assert [from_item(i) for i in items] == [{"id": "a", "n": 1},
                                            {"id": "b", "device": "d1", "n": 2}]
