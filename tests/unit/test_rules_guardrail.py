"""The max_rate guardrail: demotion to flag over the rate, recovery below it, determinism."""

from __future__ import annotations

import numpy as np

from fraud.rules import default_vocabulary, parse_rules
from fraud.rules.evaluator import evaluate
from fraud.rules.guardrail import GuardrailState
from fraud.rules.ruleset import RuleSet

VOCAB = default_vocabulary([])


def ruleset(max_rate: float = 0.2, window: int = 10, minimum: int = 5,
            when: str = "score >= 0.9") -> RuleSet:
    text = (f"version: 1\nguardrail: {{window: {window}, min_transactions: {minimum}}}\n"
            "rules:\n"
            f"  - {{id: hot, description: h, when: '{when}', action: block, "
            f"max_rate: {max_rate}}}\n"
            "  - {id: cold, description: c, when: score >= 0.95, action: alert}\n")
    return parse_rules(text, filename="g.yaml", vocabulary=VOCAB)


def scores(pattern: str) -> np.ndarray:
    """'x' = a high score (0.99, matches both rules), '.' = a low one."""
    return np.array([0.99 if c == "x" else 0.1 for c in pattern])


def test_demoted_to_flag_while_over_the_rate_and_restored_after() -> None:
    rs, state = ruleset(), GuardrailState()
    # first 5 transactions: 1 match -> 20%, not over 20%: blocks
    d1 = evaluate(rs, {"score": scores("....x")}, state=state)
    assert d1.action.tolist() == [0, 0, 0, 0, 3]
    assert d1.guardrail[0].changes == () and not d1.guardrail[0].demoted
    # a burst: the 2nd match in a window of <= 10 is over 20%: demoted to flag
    d2 = evaluate(rs, {"score": scores("xx...")}, state=state)
    assert d2.action.tolist()[:2] == [2, 2]  # the other rule's alert now decides
    assert d2.decided_by[0] == "cold"
    assert d2.demoted[0].tolist() == [True, True, False, False, False]
    assert d2.matches[0, :2].all()  # still recorded as matches
    assert "demoted from block to flag" in dict(d2.reasons[0])["hot"]
    status = d2.guardrail[0]
    assert (status.rule_id, status.demoted, status.changes) == ("hot", True, ("demoted",))
    assert status.rate == 0.3 and status.window_transactions == 10
    assert status.demoted_rows == 2
    # quiet traffic lowers the rate; the next match is back under it and blocks again
    d3 = evaluate(rs, {"score": scores(".....x")}, state=state)
    assert d3.action.tolist()[-1] == 3
    assert d3.guardrail[0].changes == ("restored",) and not d3.guardrail[0].demoted


def test_demoted_and_restored_within_one_batch_is_reported() -> None:
    rs, state = ruleset(), GuardrailState()
    evaluate(rs, {"score": scores("....x")}, state=state)
    d = evaluate(rs, {"score": scores("x....")}, state=state)  # 2/6 over, 2/10 at the end
    assert d.guardrail[0].changes == ("demoted", "restored")
    assert d.guardrail[0].demoted_rows == 1 and not d.guardrail[0].demoted


def test_flag_only_rule_stays_flag_when_over() -> None:
    rs = ruleset(when="score >= 0.5", max_rate=0.1, minimum=1)
    d = evaluate(rs, {"score": np.array([0.6, 0.6, 0.6])})
    # first row: 1/1 = 100% > 10%: demoted (but min_transactions=1 allows it)
    assert d.action.tolist() == [1, 1, 1]
    assert d.demoted[0].all()


def test_no_demotion_before_min_transactions() -> None:
    rs = ruleset(minimum=100)
    d = evaluate(rs, {"score": scores("xxxxx")}, state=GuardrailState())
    assert d.action.tolist() == [3] * 5
    assert not d.demoted.any()


def test_same_input_same_decisions_whatever_the_batching() -> None:
    rs = ruleset()
    pattern = "..x.x...xx....x.x.x........xx...x"
    whole = evaluate(rs, {"score": scores(pattern)}, state=GuardrailState())
    state = GuardrailState()
    parts = [evaluate(rs, {"score": scores(pattern[i:i + 7])}, state=state)
             for i in range(0, len(pattern), 7)]
    assert np.concatenate([p.action for p in parts]).tolist() == whole.action.tolist()


def test_history_survives_reload_only_for_an_unchanged_rule() -> None:
    state = GuardrailState()
    evaluate(ruleset(), {"score": scores("x.x.x.x.x.")}, state=state)  # 50%: over
    same = evaluate(ruleset(), {"score": scores("x")}, state=state)
    assert same.demoted[0, 0]
    edited = evaluate(ruleset(when="score >= 0.98"), {"score": scores("x")}, state=state)
    assert not edited.demoted.any()  # fresh window for an edited rule (and 1 < minimum)
