"""Fixture files: validation with positions, and what a case checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from fraud.rules import RulesFileError, default_vocabulary, parse_rules
from fraud.rules.fixtures import discover_fixtures, load_fixtures, run_fixtures

VOCAB = default_vocabulary(["is_night"])
RULES = parse_rules(
    "version: 1\nrules:\n"
    "  - {id: hi, description: d, when: score >= 0.9, action: block}\n"
    "  - {id: night, description: n, when: is_night, action: flag, reason: 'night {hour}'}\n",
    filename="r.yaml", vocabulary=VOCAB)


def fixture(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "f.yaml"
    path.write_text(text)
    return path


def test_problems_are_positioned(tmp_path: Path) -> None:
    path = fixture(tmp_path, "cases:\n"
                   "  - name: a\n    transaction: {score: high, is_night: maybe}\n"
                   "    expect: {action: deny}\n"
                   "  - name: b\n    transaction: {}\n"
                   "  - name: c\n    expect: {rules: hi}\n"
                   "  - name: d\n    expect: {action: none, extra: 1}\n")
    with pytest.raises(RulesFileError) as info:
        load_fixtures(path, VOCAB)
    assert [str(p).replace(str(path), "F") for p in info.value.problems] == [
        "F:3:26: 'score' is a number: expected a number, got 'high'",
        "F:3:42: 'is_night' is a flag: expected true/false (or 1/0), got 'maybe'",
        "F:4:22: 'action' must be one of none, flag, alert, block",
        "F:5:5: case 'b' has no 'expect:' (at least 'action')",
        "F:8:13: case 'c': 'expect' needs 'action' (none, flag, alert, block)",
        "F:8:21: 'rules' must be a list of rule ids, got 'hi'",
        "F:10:28: unknown key 'extra' in 'expect' of case 'd'; expected one of: action, rules, "
        "decided_by, reasons",
    ]


def test_defaults_flags_and_missing_values(tmp_path: Path) -> None:
    path = fixture(tmp_path, "defaults: {score: 0.1, is_night: false, hour: 14}\ncases:\n"
                   "  - {name: quiet, expect: {action: none}}\n"
                   "  - name: night\n    transaction: {is_night: true, hour: 3}\n"
                   "    expect: {action: flag, rules: [night], reasons: {night: night 3}}\n"
                   "  - name: no score is missing, not zero\n"
                   "    transaction: {score: null}\n    expect: {action: none}\n")
    results = run_fixtures(RULES, load_fixtures(path, VOCAB))
    assert [r.passed for r in results] == [True, True, True]


def test_unknown_rule_ids_in_expectations_fail_the_case(tmp_path: Path) -> None:
    path = fixture(tmp_path, "cases:\n  - name: x\n    transaction: {score: 0.95}\n"
                   "    expect: {action: block, rules: [hi, nope]}\n")
    (result,) = run_fixtures(RULES, load_fixtures(path, VOCAB))
    assert not result.passed
    assert result.diff[0] == "unknown rule id(s) in 'expect': nope"
    assert "-  - nope" in result.diff


def test_discovery_matches_the_rules_file(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("version: 1\nrules: []\n")
    tests = tmp_path / "tests"
    (tests / "deep").mkdir(parents=True)
    (tests / "a.yaml").write_text("rules: ../a.yaml\ncases: []\n")
    (tests / "deep" / "a2.yaml").write_text("rules: ../../a.yaml\ncases: []\n")
    (tests / "b.yaml").write_text("rules: ../b.yaml\ncases: []\n")
    found = discover_fixtures(tmp_path / "a.yaml")
    assert [p.name for p in found] == ["a.yaml", "a2.yaml"]
