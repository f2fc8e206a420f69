"""Decisions: severity order, shadow rules, missing values, reasons, vectorised = row by row."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fraud.errors import InputError
from fraud.rules import default_vocabulary, parse_rules
from fraud.rules.evaluator import columns_for_batch, evaluate
from fraud.rules.ruleset import RuleSet
from fraud.schema.batch import TransactionBatch

VOCAB = default_vocabulary(["user_tx_count_1d", "is_night"])
NAN = float("nan")

RULES = """\
version: 1
parameters: {block_at: 0.9, alert_at: 0.7, flag_at: 0.5}
lists: {allow: [u-ok], deny: [u-bad]}
rules:
  - {id: flag_score, description: f, when: score >= flag_at, action: flag,
     reason: "score {score:.2f}"}
  - {id: alert_score, description: a, when: score >= alert_at, action: alert}
  - {id: block_score, description: b, when: score >= block_at, unless: user_id in allow,
     action: block, priority: 5}
  - {id: deny, description: d, when: user_id in deny, action: block, priority: 9,
     reason: "user {user_id} denied"}
  - {id: no_score, description: n, when: score is missing, action: flag,
     reason: "no score, amount {amount}"}
  - {id: shadow_big, description: s, when: amount > 1000, action: block, mode: shadow,
     reason: "big {amount:.0f}"}
"""


def ruleset(text: str = RULES) -> RuleSet:
    return parse_rules(text, filename="r.yaml", vocabulary=VOCAB)


def run(rs: RuleSet, **columns: Any) -> Any:
    cols = {k: np.asarray(v, dtype=object if isinstance(v[0], str) else float)
            for k, v in columns.items()}
    return evaluate(rs, cols)


def test_most_severe_active_rule_decides() -> None:
    d = run(ruleset(), score=[0.1, 0.55, 0.75, 0.95, 0.95, 0.1],
            user_id=["u1", "u1", "u1", "u1", "u-ok", "u-bad"], amount=[1, 1, 1, 1, 1, 1])
    assert d.action_names().tolist() == ["none", "flag", "alert", "block", "alert", "block"]
    assert d.decided_by.tolist() == ["", "flag_score", "alert_score", "block_score",
                                     "alert_score", "deny"]
    # every matched rule is recorded, in evaluation (priority) order
    assert d.matched(3) == ["block_score", "flag_score", "alert_score"]
    assert d.matched(4) == ["flag_score", "alert_score"]  # 'unless' exempted the block rule


def test_shadow_rules_are_recorded_but_never_act() -> None:
    d = run(ruleset(), score=[0.1], user_id=["u1"], amount=[5000.0])
    assert d.action.tolist() == [0]
    assert d.matched(0) == ["shadow_big"]
    assert d.reasons[0] == (("shadow_big", "[shadow] big 5000"),)
    assert [(h.rule_id, h.action, h.mode, h.demoted, h.reason) for h in d.hits(0)] == [
        ("shadow_big", "block", "shadow", False, "[shadow] big 5000")]


def test_missing_score_is_its_own_state() -> None:
    d = run(ruleset(), score=[NAN, NAN], user_id=["u1", "u-bad"], amount=[12.5, 3.0])
    assert d.action_names().tolist() == ["flag", "block"]
    assert d.matched(0) == ["no_score"]  # no threshold rule fires on a missing score
    assert d.reasons[0] == (("no_score", "no score, amount 12.5"),)
    assert dict(d.reasons[1]) == {"deny": "user u-bad denied", "no_score": "no score, amount 3"}


def test_reasons_only_for_matched_rows_and_version_carried() -> None:
    rs = ruleset()
    d = run(rs, score=[0.1, 0.6], user_id=["u1", "u1"], amount=[1.0, 1.0])
    assert d.reasons == [(), (("flag_score", "score 0.60"),)]
    assert d.rules_version == rs.version
    assert evaluate(rs, {"score": np.array([0.6]), "user_id": np.array(["u"], dtype=object),
                         "amount": np.array([1.0])}, with_reasons=False).reasons == []


def cond(when: str, **columns: Any) -> list[bool]:
    text = f"version: 1\nrules:\n  - id: r\n    description: d\n    when: \"{when}\"\n" \
           "    action: flag\n"
    rs = parse_rules(text, filename="r.yaml", vocabulary=VOCAB)
    n = len(next(iter(columns.values())))
    d = evaluate(rs, {k: np.asarray(v, dtype=object if k in VOCAB.strings else float)
                      for k, v in columns.items()}, n=n)
    return [bool(x) for x in d.matches[0]]


@pytest.mark.parametrize(("when", "expected"), [
    ("amount > 1", [False, True, False]),
    ("amount != 1", [False, True, False]),  # missing is not "different"
    ("not amount > 1", [True, False, True]),  # `not` negates the (false) comparison
    ("amount is missing", [False, False, True]),
    ("missing(amount)", [False, False, True]),
    ("amount is not missing", [True, True, False]),
    ("amount + 1 >= 3", [False, True, False]),
    ("amount / 0 > 0", [False, False, False]),  # x / 0 is missing
    ("amount % 2 == 1", [True, True, False]),
    ("amount % 4 == 1", [True, True, False]),
    ("amount % 3 == 2", [False, True, False]),
    ("amount between 1 and 5", [True, True, False]),
    ("amount not between 1 and 2", [False, True, False]),
    ("amount in [1, 5]", [True, True, False]),
    ("amount not in [1]", [False, True, False]),
    ("coalesce(amount, 0) < 2", [True, False, True]),
    ("abs(-amount) == 5", [False, True, False]),
    ("max(amount, 3) == 3", [True, False, False]),
    ("min(amount, 2) == 2", [False, True, False]),
    ("true", [True, True, True]),
    ("1 > 2 or amount == 1", [True, False, False]),
])
def test_numeric_semantics(when: str, expected: list[bool]) -> None:
    assert cond(when, amount=[1.0, 5.0, NAN]) == expected


@pytest.mark.parametrize(("when", "expected"), [
    ("channel == 'web'", [True, False, False]),
    ("channel != 'web'", [False, True, False]),  # missing ("") is not "different"
    ("channel is missing", [False, False, True]),
    ("channel in ['web', 'app']", [True, True, False]),
    ("channel not in ['web']", [False, True, False]),
    ("coalesce(channel, 'none') == 'none'", [False, False, True]),
])
def test_string_semantics(when: str, expected: list[bool]) -> None:
    assert cond(when, channel=["web", "app", ""]) == expected


def test_flags_and_derived_columns() -> None:
    assert cond("is_night", is_night=[1.0, 0.0, NAN]) == [True, False, False]
    assert cond("not is_night", is_night=[1.0, 0.0, NAN]) == [False, True, True]
    assert cond("is_night is missing", is_night=[1.0, 0.0, NAN]) == [False, False, True]
    assert cond("is_night == false", is_night=[1.0, 0.0, NAN]) == [False, True, False]
    assert cond("is_night != 1", is_night=[1.0, 0.0, NAN]) == [False, True, False]
    assert cond("not score_available", score=[0.5, NAN]) == [False, True]
    hours = np.array([0, 13 * 3_600_000_000 + 5, 23 * 3_600_000_000], dtype=np.int64)
    assert cond("hour >= 13", timestamp_us=hours) == [False, True, True]


def test_distance_function() -> None:
    # Paris -> London is about 344 km
    assert cond("distance_km(lat, lon, 51.5074, -0.1278) between 330 and 360",
                lat=[48.8566, NAN], lon=[2.3522, 0.0]) == [True, False]


def test_missing_column_is_a_clear_error() -> None:
    rs = ruleset()
    with pytest.raises(InputError, match="use column 'user_id' \\(string\\)"):
        evaluate(rs, {"score": np.array([0.1]), "amount": np.array([1.0])})
    with pytest.raises(InputError, match="'amount' has 2 rows, expected 1"):
        evaluate(rs, {"score": np.array([0.1]), "amount": np.array([1.0, 2.0]),
                      "user_id": np.array(["u"], dtype=object)})


def test_columns_for_batch() -> None:
    batch = TransactionBatch.from_columns(
        transaction_id=["t1", "t2"], timestamp_us=[0, 1], user_id=["u-bad", "u2"],
        terminal_id=["T", "T"], amount=[5.0, 2000.0])
    cols = columns_for_batch(batch, {"user_tx_count_1d": np.array([1.0, 2.0])},
                             np.array([0.2, NAN]))
    d = evaluate(ruleset(), cols)
    assert d.action_names().tolist() == ["block", "flag"]
    assert d.matched(1) == ["no_score", "shadow_big"]


def test_empty_batch_and_empty_rules() -> None:
    d = evaluate(ruleset(), {"score": np.zeros(0), "user_id": np.zeros(0, dtype=object),
                             "amount": np.zeros(0)})
    assert len(d) == 0 and d.matches.shape == (6, 0)
    empty = parse_rules("version: 1\nrules: []\n", filename="e.yaml", vocabulary=VOCAB)
    d = evaluate(empty, {"score": np.array([0.99])})
    assert d.action.tolist() == [0] and d.decided_by.tolist() == [""]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([0.1, 0.5, 0.7, 0.95, NAN]),
                          st.sampled_from(["u1", "u-ok", "u-bad", ""]),
                          st.sampled_from([1.0, 2000.0, NAN])), min_size=1, max_size=12))
def test_batch_equals_row_by_row(rows: list[tuple[float, str, float]]) -> None:
    rs = ruleset()
    score = np.array([r[0] for r in rows])
    user = np.array([r[1] for r in rows], dtype=object)
    amount = np.array([r[2] for r in rows])
    whole = evaluate(rs, {"score": score, "user_id": user, "amount": amount})
    for i in range(len(rows)):
        one = evaluate(rs, {"score": score[i:i + 1], "user_id": user[i:i + 1],
                            "amount": amount[i:i + 1]})
        assert one.action[0] == whole.action[i]
        assert one.matched(0) == whole.matched(i)
        assert one.reasons[0] == whole.reasons[i]
