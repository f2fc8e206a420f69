"""Loading rules files: what loads, and the precise file:line:col of every kind of error."""

from __future__ import annotations

from pathlib import Path

import pytest

from fraud.rules import RulesFileError, default_vocabulary, load_rules, parse_rules
from fraud.rules.ruleset import GuardrailConfig

VOCAB = default_vocabulary(["user_tx_count_1d", "terminal_fraud_rate_7d", "is_night"])

GOOD = """\
version: 1
name: test
parameters:
  big: 1000
  tag: vip
lists:
  deny: [u1, 42]
rules:
  - id: low
    description: low priority
    when: amount > big
    action: flag
  - id: high
    description: high priority
    when: user_id in deny
    action: block
    priority: 10
    mode: shadow
    max_rate: 0.1
    reason: "user {user_id} denied, amount {amount:.2f}"
"""


def problems(text: str, **kwargs: object) -> list[str]:
    with pytest.raises(RulesFileError) as info:
        parse_rules(text, filename="r.yaml", vocabulary=VOCAB, **kwargs)  # type: ignore[arg-type]
    return [str(p) for p in info.value.problems]


def rules_with(when: str, extra: str = "") -> str:
    return ("version: 1\nparameters: {big: 10, word: abc}\nlists: {deny: [a]}\nrules:\n"
            f"  - id: r1\n    description: d\n    when: {when}\n    action: flag\n{extra}")


def test_good_file_loads_in_priority_order() -> None:
    rs = parse_rules(GOOD, filename="r.yaml", vocabulary=VOCAB)
    assert rs.rule_ids == ("high", "low")
    assert rs.parameters == {"big": 1000.0, "tag": "vip"}
    assert rs.lists["deny"] == frozenset({"u1", "42"})  # ids are strings, even 42
    high = rs.rule("high")
    assert (high.action, high.mode, high.priority, high.max_rate) == ("block", "shadow", 10, 0.1)
    assert rs.rule("low").reason.text == "low priority"  # reason defaults to the description
    assert rs.columns == {"amount", "user_id"}
    assert rs.guardrail == GuardrailConfig()
    assert len(rs.version) == 12


def test_version_is_a_content_hash() -> None:
    a = parse_rules(GOOD, filename="r.yaml", vocabulary=VOCAB)
    b = parse_rules(GOOD, filename="other.yaml", vocabulary=VOCAB)
    c = parse_rules(GOOD.replace("1000", "1001"), filename="r.yaml", vocabulary=VOCAB)
    assert a.version == b.version != c.version


def test_unknown_name_with_suggestion_and_position() -> None:
    assert problems(rules_with("amout > 5")) == [
        "r.yaml:7:11: rule 'r1': in 'when': unknown name 'amout' (did you mean 'amount'?); "
        "expected a transaction field, feature, 'score', a parameter or a list"]


def test_every_error_of_an_expression_is_reported() -> None:
    found = problems(rules_with("amout > 5 and scor > 1"))
    assert [p.split(": ", 1)[0] for p in found] == ["r.yaml:7:11", "r.yaml:7:25"]


def test_type_mismatch() -> None:
    (msg,) = problems(rules_with("amount == word"))
    assert msg == ("r.yaml:7:18: rule 'r1': in 'when': cannot compare amount (a number) with "
                   "word (a parameter: 'abc', a string) using '=='")
    (msg,) = problems(rules_with("score >= '0.5'"))
    assert msg.endswith("cannot compare score (a number) with '0.5' (a string) using '>='")
    (msg,) = problems(rules_with("currency == EUR"))
    assert "unknown name 'EUR' (text must be in quotes: 'EUR')" in msg


def test_condition_must_be_boolean() -> None:
    (msg,) = problems(rules_with("amount + 1"))
    assert msg.startswith("r.yaml:7:11: rule 'r1': in 'when': a condition must be true/false")


def test_syntax_error_position_inside_value() -> None:
    (msg,) = problems(rules_with("amount > 1 and user_id = 'x'"))
    assert msg == "r.yaml:7:34: rule 'r1': in 'when': unexpected '=': use '==' to compare"


def test_position_inside_quoted_scalar() -> None:
    (msg,) = problems(rules_with("\"amount > 1 and nope\""))
    assert msg.startswith("r.yaml:7:27: ")


def test_position_inside_block_scalar() -> None:
    text = rules_with("|\n      amount > 1 and\n        nope > 2")
    (msg,) = problems(text)
    assert msg.startswith("r.yaml:9:9: rule 'r1': in 'when': unknown name 'nope'")


def test_position_inside_folded_scalar() -> None:
    (msg,) = problems(rules_with(">-\n      amount > 1\n      and channel < 'x'"))
    assert msg.startswith("r.yaml:9:19: ")
    assert "strings can only be compared with == or !=" in msg


def test_list_used_as_value_and_parameter_as_list() -> None:
    found = problems(rules_with("deny > 1 or user_id in big"))
    assert found[0].startswith("r.yaml:7:11: rule 'r1': in 'when': 'deny' is a list")
    assert found[1].startswith("r.yaml:7:34: rule 'r1': in 'when': 'big' is a parameter")


def test_list_needs_strings_on_the_left() -> None:
    (msg,) = problems(rules_with("amount in deny"))
    assert "holds strings" in msg


def test_empty_string_literal_is_refused() -> None:
    (msg,) = problems(rules_with("channel == ''"))
    assert "use 'x is missing'" in msg


def test_flags_are_conditions_and_compare_with_numbers() -> None:
    rs = parse_rules(rules_with("is_night and is_night == 1"), filename="r.yaml",
                     vocabulary=VOCAB)
    assert rs.columns == {"is_night"}
    parse_rules(rules_with("is_night == true or is_night != false"), filename="r.yaml",
                vocabulary=VOCAB)
    (msg,) = problems(rules_with("(amount > 1) == true"))
    assert "not compared" in msg
    (msg,) = problems(rules_with("user_tx_count_1d and is_night"))
    assert msg.endswith("'and' needs a true/false value, got a number (compare it, e.g. "
                        "'user_tx_count_1d == 1')")


def test_yaml_pitfalls_get_a_hint() -> None:
    (msg,) = problems(rules_with("amount > 1", "    reason: {amount} is big\n"))
    assert msg.startswith("r.yaml:9:22: malformed YAML:")
    assert msg.endswith("put the whole value in quotes")
    (msg,) = problems(rules_with("[amount]"))
    assert msg.startswith("r.yaml:7:11: rule 'r1': 'when' must be text, got a list")
    assert msg.endswith("quote it)")


def test_duplicate_rule_id() -> None:
    text = GOOD.replace("id: high", "id: low")
    assert problems(text) == [
        "r.yaml:13:9: rule 'low': duplicate rule id 'low' (first defined at line 9)"]


def test_duplicate_key() -> None:
    text = GOOD.replace("    action: flag\n", "    action: flag\n    action: block\n", 1)
    assert problems(text) == [
        "r.yaml:13:5: rule 'low': duplicate key 'action' in a rule (first at line 12)"]


def test_duplicate_top_level_key() -> None:
    found = problems(GOOD + "version: 1\n")
    assert found == ["r.yaml:21:1: duplicate key 'version' in the rules file (first at line 1)"]


def test_unknown_key_with_suggestion() -> None:
    (msg,) = problems(GOOD.replace("    priority: 10", "    priorty: 10"))
    assert msg.startswith("r.yaml:17:5: rule 'high': unknown key 'priorty' in a rule "
                          "(did you mean 'priority'?)")


def test_bad_enumerations_and_ranges() -> None:
    text = GOOD.replace("action: block", "action: deny").replace("mode: shadow", "mode: off")
    text = text.replace("max_rate: 0.1", "max_rate: 5").replace("priority: 10", "priority: x")
    found = problems(text)
    assert found == [
        "r.yaml:16:13: rule 'high': 'action' must be one of flag, alert, block; got 'deny'",
        "r.yaml:17:15: rule 'high': 'priority' must be an integer from -1000000 to 1000000, "
        "got 'x'",
        "r.yaml:18:11: rule 'high': 'mode' must be one of active, shadow; got 'off'",
        "r.yaml:19:15: rule 'high': 'max_rate' (share of transactions) must be a number from "
        "0 to 1, got '5'",
    ]


def test_missing_required_keys() -> None:
    found = problems("version: 1\nrules:\n  - id: r1\n    when: amount > 1\n")
    assert found == ["r.yaml:3:5: rule 'r1': rule has no 'action' (required: id, description, "
                     "when, action)",
                     "r.yaml:3:5: rule 'r1': rule has no 'description' (required: id, "
                     "description, when, action)"]


def test_bad_reason_placeholder() -> None:
    extra = "    reason: 'amount {amout:.2f} for {user_id:.2f}'\n"
    found = problems(rules_with("amount > 1", extra))
    assert found[0] == ("r.yaml:9:22: rule 'r1': in 'reason': unknown placeholder {amout} "
                        "(did you mean {amount}?); expected a transaction field, feature, "
                        "'score' or a parameter")
    assert found[1].startswith("r.yaml:9:38: rule 'r1': in 'reason': bad format {user_id:.2f}")


def test_malformed_yaml() -> None:
    (msg,) = problems("version: 1\nrules:\n  - id: [unclosed\n")
    assert msg.startswith("r.yaml:4:1: malformed YAML:")


def test_wrong_version_and_shapes() -> None:
    assert problems("version: 2\nrules: []\n") == [
        "r.yaml:1:10: 'version' must be 1 (the rules format version), got '2'"]
    assert problems("rules: []\n") == [
        "r.yaml:1:1: missing 'version: 1' (the rules format version)"]
    assert problems("version: 1\nrules: {a: 1}\n") == [
        "r.yaml:2:8: 'rules' must be a list of rules ('- id: ...'), got a mapping"]
    assert problems("- 1\n") == [
        "r.yaml:1:1: the rules file must be a mapping of 'key: value', got a list"]
    assert problems("") == ["r.yaml:1:1: empty file: expected 'version' and 'rules'"]


def test_parameter_names_must_not_shadow_fields() -> None:
    found = problems("version: 1\nparameters: {amount: 3, and: 1}\nlists: {big: []}\n"
                     "rules: []\n")
    assert found[0].startswith("r.yaml:2:14: parameter name 'amount' is already a field")
    assert found[1].startswith("r.yaml:2:25: parameter name 'and' must be a name")


def test_list_from_file(tmp_path: Path) -> None:
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "deny.txt").write_text("# comment\nu1\n\n u2  # trailing\n")
    path = tmp_path / "r.yaml"
    path.write_text("version: 1\nlists:\n  deny: {file: lists/deny.txt}\nrules:\n"
                    "  - {id: d, description: d, when: user_id in deny, action: block}\n")
    rs = load_rules(str(path), VOCAB)
    assert rs.lists["deny"] == frozenset({"u1", "u2"})
    assert rs.files == (str(path), str(tmp_path / "lists" / "deny.txt"))
    before = rs.version
    (tmp_path / "lists" / "deny.txt").write_text("u1\n")
    assert load_rules(str(path), VOCAB).version != before  # list files are part of the version


def test_missing_list_file(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("version: 1\nlists:\n  deny: {file: nope.txt}\nrules: []\n")
    with pytest.raises(RulesFileError) as info:
        load_rules(str(path), VOCAB)
    (problem,) = info.value.problems
    assert (problem.line, problem.col) == (3, 16)
    assert "no such file" in problem.message


def test_every_problem_is_listed_in_one_error() -> None:
    text = GOOD.replace("amount > big", "amount > bigg").replace("action: block", "action: x")
    found = problems(text)
    assert len(found) == 2
    assert found[0].startswith("r.yaml:11:20:") and found[1].startswith("r.yaml:16:13:")


def test_version_depends_on_content_not_on_where_the_file_is(tmp_path: Path) -> None:
    import shutil

    from fraud.rules import load_rules

    root = Path(__file__).resolve().parents[2] / "rules"
    copy = tmp_path / "elsewhere"
    shutil.copytree(root, copy)
    assert load_rules(str(copy / "default.yaml")).version == \
        load_rules(str(root / "default.yaml")).version
