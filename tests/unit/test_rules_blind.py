"""Findings of a blind review (rules written from docs/rules.md alone, then broken on purpose):
each fix below is pinned by one test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from fraud.cli import cli
from fraud.rules import RulesFileError, default_vocabulary, evaluate, parse_rules
from fraud.rules.fixtures import discover_fixtures, load_fixtures
from fraud.rules.guardrail import GuardrailState

VOCAB = default_vocabulary(["is_night"])
ONE_RULE = ("version: 1\nrules:\n  - id: r\n    description: d\n    when: amount > 1\n"
            "    action: flag\n")


def problems(text: str | bytes, **kwargs: Any) -> list[str]:
    with pytest.raises(RulesFileError) as info:
        parse_rules(text, filename="r.yaml", vocabulary=VOCAB, **kwargs)
    return [str(p) for p in info.value.problems]


def fixture_problems(path: Path) -> list[str]:
    with pytest.raises(RulesFileError) as info:
        load_fixtures(path, VOCAB)
    return [str(p).replace(str(path), "F") for p in info.value.problems]


def test_a_value_starting_with_bang_is_told_to_be_quoted() -> None:
    got = problems("version: 1\nrules:\n  - id: r\n    description: != is false\n"
                   "    when: amount > 1\n    action: flag\n")
    assert got == ["r.yaml:4:18: rule 'r': 'description': a value starting with '!' is read "
                   "as a YAML tag ('!='): put the whole value in quotes"]


def test_a_missing_list_file_is_one_problem_not_one_per_use(tmp_path: Path) -> None:
    rules = tmp_path / "r.yaml"
    rules.write_text("version: 1\nlists:\n  allow: {file: nope.txt}\nrules:\n"
                     "  - id: a\n    description: d\n    when: amount > 1\n"
                     "    unless: user_id in allow\n    action: block\n"
                     "  - id: b\n    description: d\n    when: user_id in allow\n"
                     "    action: flag\n")
    with pytest.raises(RulesFileError) as info:
        parse_rules(rules.read_bytes(), filename=str(rules), vocabulary=VOCAB)
    (problem,) = info.value.problems
    assert problem.line == 3 and "nope.txt: no such file" in problem.message


def test_control_characters_are_a_positioned_problem_not_a_traceback() -> None:
    assert problems(b"version: 1\nrules: []\nname: a\x00b\n") == [
        "r.yaml:3:8: malformed YAML: character U+0000 is not allowed in a YAML file "
        "(a control character: remove it)"]


def test_deeply_nested_yaml_is_a_problem_not_a_recursion_error() -> None:
    text = "version: 1\nrules: []\nname: " + "[" * 5000 + "]" * 5000 + "\n"
    assert problems(text) == ["r.yaml:1:1: malformed YAML: lists or mappings nested too deeply"]


def test_a_date_parameter_is_told_to_be_quoted() -> None:
    assert problems("version: 1\nparameters:\n  since: 2024-01-31\nrules: []\n") == [
        "r.yaml:3:10: parameter 'since' must be a number, text or true/false, got '2024-01-31' "
        "(YAML reads it as a date: put it in quotes)"]


def test_over_indented_key_gets_an_indentation_hint() -> None:
    (got,) = problems("version: 1\nrules:\n  - id: r\n    description: d\n"
                      "    when: amount > 1\n    action: flag\n     reason: \"x y\"\n")
    assert got.startswith("r.yaml:7:12: malformed YAML: mapping values are not allowed here; "
                          "check the indentation")


def test_number_literals_are_shown_as_written_in_type_errors() -> None:
    (got,) = problems(ONE_RULE.replace("amount > 1", "channel > 5"))
    assert "cannot compare channel (a string) with 5 (a number) using '>'" in got


def test_depth_message_does_not_count_parentheses() -> None:
    parse_rules(ONE_RULE.replace("amount > 1", "(" * 200 + "amount > 1" + ")" * 200),
                vocabulary=VOCAB)
    (got,) = problems(ONE_RULE.replace("amount > 1", "not " * 200 + "is_night"))
    assert "more than 150 levels of 'not', unary '-' or chained operators" in got
    assert "parentheses" not in got


def test_numeric_format_on_a_flag_says_flags_are_text() -> None:
    (got,) = problems(ONE_RULE + "    reason: \"{is_night:.1f}\"\n")
    assert got.endswith("(true/false values print as the text 'true'/'false': use a text "
                        "format such as '>5')")


@pytest.mark.parametrize(("action", "mode"), [("flag", "active"), ("block", "shadow")])
def test_max_rate_on_flag_or_shadow_rule_is_tracked_but_never_demoted(
        action: str, mode: str) -> None:
    rs = parse_rules("version: 1\nguardrail: {window: 4, min_transactions: 1}\nrules:\n"
                     f"  - {{id: r, description: d, when: amount > 1, action: {action}, "
                     f"mode: {mode}, max_rate: 0.1}}\n", vocabulary=VOCAB)
    d = evaluate(rs, {"amount": np.array([5.0, 5.0, 5.0])}, state=GuardrailState())
    (status,) = d.guardrail
    assert status.rate == 1.0
    assert (status.demoted_rows, status.demoted, status.changes) == (0, False, ())
    assert not d.demoted.any()
    assert not any(hit.demoted for i in range(3) for hit in d.hits(i))


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def test_discovery_skips_fixtures_of_other_rules_with_bad_values(tmp_path: Path) -> None:
    rules = write(tmp_path / "a.yaml", ONE_RULE)
    write(tmp_path / "b.yaml", ONE_RULE)
    mine = write(tmp_path / "tests" / "a.yaml",
                 "rules: ../a.yaml\ncases:\n  - {name: x, expect: {action: none}}\n")
    write(tmp_path / "tests" / "b.yaml",
          "rules: ../b.yaml\ncases:\n  - name: != is odd\n    expect: {action: none}\n")
    assert discover_fixtures(rules) == [mine]
    result = CliRunner().invoke(cli, ["rules", "test", str(rules)])
    assert result.exit_code == 0, result.output


def test_fixture_not_utf8_or_with_control_characters_is_a_problem(tmp_path: Path) -> None:
    assert fixture_problems(write(tmp_path / "f1.yaml", b"\xff\xfe rules")) == [
        "F:1:1: not UTF-8 text: invalid start byte at byte 0"]
    assert fixture_problems(write(tmp_path / "f2.yaml", "rules: a\n# \x07\ncases: []\n")) == [
        "F:2:3: malformed YAML: character U+0007 is not allowed in a YAML file "
        "(a control character: remove it)"]


def test_non_utf8_file_under_tests_exits_2_without_traceback(tmp_path: Path) -> None:
    rules = write(tmp_path / "a.yaml", ONE_RULE)
    write(tmp_path / "tests" / "junk.yaml", b"\xff\xfe")
    result = CliRunner().invoke(cli, ["rules", "test", str(rules)])
    assert result.exit_code == 2
    assert isinstance(result.exception, SystemExit)  # not a UnicodeDecodeError
    assert "not UTF-8 text" in result.output


def test_fixture_score_and_hour_out_of_range_are_problems(tmp_path: Path) -> None:
    path = write(tmp_path / "f.yaml", "rules: a.yaml\ncases:\n"
                 "  - name: x\n    transaction: {score: 1.5, hour: 24}\n"
                 "    expect: {action: none}\n"
                 "  - name: y\n    transaction: {score: 1, hour: 3.5}\n"
                 "    expect: {action: none}\n")
    assert fixture_problems(path) == [
        "F:4:26: 'score' must be a probability from 0 to 1, got '1.5'",
        "F:4:37: 'hour' must be a whole UTC hour from 0 to 23, got '24'",
        "F:7:35: 'hour' must be a whole UTC hour from 0 to 23, got '3.5'",
    ]


def test_between_with_an_empty_constant_range_is_an_error() -> None:
    (got,) = problems("version: 1\nparameters: {lo: 3}\n"
                      + ONE_RULE.split("\n", 1)[1].replace("amount > 1", "amount between lo and 1"))
    assert "the range of 'between' is empty (3 > 1): put the smaller bound first" in got
    parse_rules(ONE_RULE.replace("amount > 1", "amount between 1 and 1"), vocabulary=VOCAB)


def test_an_infinite_number_literal_is_an_error_like_an_infinite_parameter() -> None:
    (got,) = problems(ONE_RULE.replace("amount > 1", "amount > 1e999"))
    assert got == ("r.yaml:5:20: rule 'r': in 'when': this number is too large (a rule's numbers "
                   "must be finite)")


def test_comparing_a_condition_with_true_does_not_name_an_unrelated_flag() -> None:
    (got,) = problems(ONE_RULE.replace("amount > 1", "(amount > 1) == true"))
    assert "is_night" not in got
    assert "'A' for 'A == true', 'not (A)' for 'A == false'" in got


@pytest.mark.parametrize(("when", "word"), [("amount > 1 AND amount < 5", "and"),
                                            ("score_available == TRUE", "true"),
                                            ("amount IS MISSING", "is")])
def test_upper_case_keywords_are_told_to_be_lower_case(when: str, word: str) -> None:
    (got,) = problems(ONE_RULE.replace("amount > 1", when))
    assert f"(keywords are lower case: write '{word}')" in got


def test_yaml_merge_keys_share_fields_between_rules() -> None:
    rs = parse_rules("version: 1\nrules:\n"
                     "  - &base\n    id: a\n    description: d\n    when: amount > 1\n"
                     "    action: flag\n"
                     "  - <<: *base\n    id: b\n    action: alert\n", vocabulary=VOCAB)
    assert [(r.id, r.action, r.when) for r in rs.rules] == [
        ("a", "flag", "amount > 1"), ("b", "alert", "amount > 1")]
    assert problems("version: 1\nrules:\n  - <<: 5\n    id: c\n    description: d\n"
                    "    when: amount > 1\n    action: flag\n") == [
        "r.yaml:3:9: rule 'c': '<<' in a rule must refer to a mapping ('<<: *name'), got '5'"]
    cycle = problems("version: 1\nrules:\n  - &a\n    <<: *a\n    id: x\n")  # no recursion
    assert "r.yaml:3:5: rule 'x': '<<' in a rule refers to itself" in cycle


def test_a_missing_fixtures_path_is_listed_and_the_others_still_run(tmp_path: Path) -> None:
    rules = write(tmp_path / "a.yaml", ONE_RULE)
    good = write(tmp_path / "t.yaml",
                 "rules: a.yaml\ncases:\n  - {name: x, expect: {action: none}}\n")
    result = CliRunner().invoke(cli, ["rules", "test", str(rules), "--fixtures",
                                      str(tmp_path / "nope.yaml"), "--fixtures", str(good)])
    assert result.exit_code == 2
    assert f"{tmp_path / 'nope.yaml'}: no such file" in result.output
    assert "1 passed, 0 failed" in result.output


def test_a_parameter_after_in_is_not_given_a_lookalike_list_suggestion() -> None:
    got = problems("version: 1\nparameters: {deny_users: 3}\nlists: {deny_terms: [a]}\n"
                   + ONE_RULE.split("\n", 1)[1].replace("amount > 1", "user_id in deny_users"))
    assert got == ["r.yaml:7:22: rule 'r': in 'when': 'deny_users' is a parameter, not a list; "
                   "lists defined under 'lists:': deny_terms"]
