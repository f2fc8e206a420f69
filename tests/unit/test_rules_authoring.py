"""What a rule author meets writing rules from docs/rules.md alone: documented behaviour that
must hold, and the precise messages for the mistakes people make."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fraud.errors import InputError
from fraud.rules import RulesFileError, default_vocabulary, evaluate, load_rules, parse_rules
from fraud.rules.fixtures import load_fixtures, run_fixtures
from fraud.rules.loader import MAX_FILE_BYTES

ROOT = Path(__file__).resolve().parents[2]
VOCAB = default_vocabulary(["is_night", "is_weekend", "user_tx_count_1d",
                            "user_seconds_since_prev", "user_distance_from_usual_km"])


def problems(text: str | bytes, **kwargs: Any) -> list[str]:
    with pytest.raises(RulesFileError) as info:
        parse_rules(text, filename="r.yaml", vocabulary=VOCAB, **kwargs)
    return [str(p) for p in info.value.problems]


def one_rule(when: str = "score > 0.9", *, reason: str = "d", head: str = "") -> str:
    return (f"version: 1\n{head}rules:\n  - id: r\n    description: d\n    when: {when}\n"
            f"    action: flag\n    reason: \"{reason}\"\n")


def test_flag_placeholders_load_and_print_true_false_or_missing() -> None:
    rs = parse_rules(one_rule("amount > 0", reason="night={is_night} wk={is_weekend:>5} "
                              "avail={score_available}"), vocabulary=VOCAB)
    d = evaluate(rs, {"amount": np.array([1.0, 1.0]), "is_night": np.array([1.0, 0.0]),
                      "is_weekend": np.array([np.nan, 1.0]), "score": np.array([0.1, np.nan])})
    assert [d.hits(i)[0].reason for i in range(2)] == [
        "night=true wk=missing avail=true", "night=false wk= true avail=false"]


def test_whole_numbers_print_in_full_timestamps_included() -> None:
    rs = parse_rules(one_rule("amount > 0", reason="at {timestamp_us} for {amount}"),
                     vocabulary=VOCAB)
    d = evaluate(rs, {"amount": np.array([2.5]),
                      "timestamp_us": np.array([1_700_000_000_123_456])})
    assert d.hits(0)[0].reason == "at 1700000000123456 for 2.5"


def test_other_numbers_print_as_plain_decimals() -> None:
    rs = parse_rules(one_rule("amount > 0", reason="{amount} {score}"), vocabulary=VOCAB)
    d = evaluate(rs, {"amount": np.array([1234567.89, 0.5, 7.25]),
                      "score": np.array([0.123456789, 1.5e-05, 1.0])})
    assert [d.hits(i)[0].reason for i in range(3)] == [
        "1234567.89 0.123457", "0.5 1.5e-05", "7.25 1"]


def test_fixture_giving_hour_in_one_case_leaves_the_others_derived(tmp_path: Path) -> None:
    rs = parse_rules(one_rule("hour == 3 or not score_available", reason="h{hour}"),
                     vocabulary=VOCAB)
    path = tmp_path / "f.yaml"
    path.write_text(
        "defaults: {score: 0.5}\ncases:\n"
        "  - {name: derived, transaction: {timestamp_us: 10_800_000_000}, "
        "expect: {action: flag, reasons: {r: h3}}}\n"
        "  - {name: given, transaction: {hour: 3}, expect: {action: flag}}\n"
        "  - {name: given availability, transaction: {score_available: false}, "
        "expect: {action: flag, reasons: {r: hmissing}}}\n"
        "  - {name: derived availability, transaction: {score: null}, expect: {action: flag}}\n"
        "  - {name: neither, transaction: {timestamp_us: 0}, expect: {action: none}}\n")
    results = run_fixtures(rs, load_fixtures(path, VOCAB))
    assert [r.diff for r in results] == [()] * 5


def test_fixture_flag_must_be_zero_or_one(tmp_path: Path) -> None:
    path = tmp_path / "f.yaml"
    path.write_text("cases:\n  - {name: a, transaction: {is_night: 2}, expect: {action: none}}\n")
    with pytest.raises(RulesFileError) as info:
        load_fixtures(path, VOCAB)
    assert [p.message for p in info.value.problems] == [
        "'is_night' is a flag: expected true/false (or 1/0), got '2'"]


def test_list_file_must_be_utf8(tmp_path: Path) -> None:
    (tmp_path / "ids.txt").write_bytes(b"ok\n\xff\xfe bad\n")
    rules = tmp_path / "r.yaml"
    rules.write_text("version: 1\nlists:\n  deny: {file: ids.txt}\nrules: []\n")
    with pytest.raises(RulesFileError) as info:
        load_rules(str(rules), VOCAB)
    (problem,) = info.value.problems
    assert (problem.line, problem.col) == (3, 16)
    assert "list 'deny'" in problem.message and "is not UTF-8 text" in problem.message


def test_oversized_file_is_refused_before_parsing() -> None:
    text = one_rule() + "# " + "x" * MAX_FILE_BYTES + "\n"
    (message,) = problems(text)
    assert message.startswith("r.yaml:1:1: file too large (")
    assert "list files" in message


def test_yaml_tabs_and_indentation_get_a_hint() -> None:
    (tab,) = problems("version: 1\nrules:\n\t- id: a\n")
    assert tab.startswith("r.yaml:3:1: malformed YAML") and tab.endswith("spaces, not tabs")
    (indent,) = problems("version: 1\nrules:\n  - id: a\n    description: x\n"
                         "    when: amount > 1\n   action: flag\n")
    assert indent.startswith("r.yaml:6:4: malformed YAML")
    assert "check the indentation" in indent
    (quotes,) = problems(one_rule('"channel == "web""'))
    assert quotes.startswith("r.yaml:5:24: malformed YAML")
    assert quotes.endswith("""the value's " quotes end early at the next ": use ' for text """
                           "inside it")
    assert "indentation" not in quotes


def test_quoted_version_says_so() -> None:
    assert problems("version: '1'\nrules: []\n") == [
        "r.yaml:1:10: 'version' must be 1 (the rules format version), got the text '1' "
        "(write it without quotes)"]


def test_suggestions_for_placeholders_lists_and_stray_parenthesis() -> None:
    got = problems(one_rule("user_id in deny_user or score > 0.9)", reason="{scor} {amount:d}",
                            head="lists: {deny_users: [a]}\n"))
    assert got == [
        "r.yaml:6:46: rule 'r': in 'when': unexpected ')' (there is no '(' for it to close)",
        "r.yaml:8:15: rule 'r': in 'reason': unknown placeholder {scor} (did you mean "
        "{score}?); expected a transaction field, feature, 'score' or a parameter",
        "r.yaml:8:22: rule 'r': in 'reason': bad format {amount:d} for a number: Unknown format "
        "code 'd' for object of type 'float' (numbers are decimals: '.0f' prints a whole "
        "number)",
    ]
    got = problems(one_rule("user_id in deny_user", head="lists: {deny_users: [a]}\n"))
    assert got == ["r.yaml:6:22: rule 'r': in 'when': 'deny_user' is not a list (did you mean "
                   "'deny_users'?); lists defined under 'lists:': deny_users"]


def test_comparing_a_true_false_parameter_names_it() -> None:
    got = problems(one_rule("strict == true", head="parameters: {strict: false}\n"))
    assert got == ["r.yaml:6:18: rule 'r': in 'when': true/false values are not compared with "
                   "'==': use the condition itself ('strict', 'not strict')"]




def test_missing_s3_bucket_is_an_input_error(moto_s3: Any) -> None:
    with pytest.raises(InputError, match="no such bucket 'nobucket'"):
        load_rules("s3://nobucket/r.yaml", VOCAB, s3_client=moto_s3)


def _default_rules_over(**columns: Any) -> Any:
    rs = load_rules(str(ROOT / "rules" / "default.yaml"))
    n = len(next(iter(columns.values())))
    base: dict[str, Any] = {name: np.full(n, np.nan) for name in rs.columns
                            if rs.vocabulary.kind(name) != "string"}
    base.update({name: np.full(n, "", dtype=object) for name in rs.columns
                 if rs.vocabulary.kind(name) == "string"})
    base.update({"score": np.full(n, 0.02), "user_id": np.full(n, "u-heavy", dtype=object),
                 "user_distance_from_usual_km": np.full(n, 2.0)})
    base.update(columns)
    return evaluate(rs, base)


def test_default_rules_leave_a_heavy_small_payer_alone() -> None:
    # Handbook-style: a customer paying 1-5 units 20 times a day, minutes apart, at home.
    n = 20
    d = _default_rules_over(user_tx_count_1d=np.arange(1.0, n + 1),
                            amount=np.linspace(1.0, 5.0, n),
                            user_seconds_since_prev=np.full(n, 600.0))
    assert d.action_names().tolist() == ["none"] * n


def test_default_rules_block_a_card_testing_burst_from_far_away() -> None:
    n = 12  # one charge every 45 s, 3,000 km from home
    d = _default_rules_over(user_tx_count_1d=np.arange(1.0, n + 1), amount=np.full(n, 1.0),
                            user_seconds_since_prev=np.full(n, 45.0),
                            user_distance_from_usual_km=np.full(n, 3000.0))
    assert d.action_names().tolist() == ["none"] * 4 + ["block"] * (n - 4)
    assert set(d.decided_by[4:]) == {"card_testing"}


@pytest.mark.parametrize("when", [
    "not " * 200 + "is_night",
    "-" * 200 + "amount > 1",
    "amount" + " + 1" * 200 + " > 1",
    " or ".join(f"amount == {i}" for i in range(200)),
])
def test_too_deep_conditions_are_refused_at_load_not_at_evaluation(when: str) -> None:
    (message,) = problems(one_rule(when))
    assert "expression is nested too deeply (more than 150 levels" in message


def test_conditions_just_under_the_depth_limit_evaluate() -> None:
    for when in ("not " * 140 + "is_night", "amount" + " + 1" * 140 + " > 1",
                 " or ".join(f"amount == {i}" for i in range(140))):
        rs = parse_rules(one_rule(when), vocabulary=VOCAB)
        d = evaluate(rs, {"amount": np.array([1.0, 500.0]), "is_night": np.array([1.0, 0.0])})
        assert len(d) == 2


def test_parameters_read_like_the_expression_language(tmp_path: Path) -> None:
    # YAML 1.1 alone would read 1e-3 as text and NO (Norway) as false.
    rs = parse_rules("version: 1\nparameters: {tiny: 1e-3, big: 1E3, country: NO, on_: True, "
                     "word: 'yes', neg: -2.5e2}\nrules: []\n", vocabulary=VOCAB)
    assert rs.parameters == {"tiny": 0.001, "big": 1000.0, "country": "NO", "on_": True,
                             "word": "yes", "neg": -250.0}
    path = tmp_path / "f.yaml"
    path.write_text("cases:\n  - {name: a, transaction: {score: 2e-3}, expect: {action: none}}\n")
    (case,) = load_fixtures(path, VOCAB).cases
    assert case.transaction == {"score": 0.002}


class _Recorder:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict[str, Any]]] = []

    def warning(self, event: str, **fields: Any) -> None:
        self.lines.append(("warning", event, fields))

    def info(self, event: str, **fields: Any) -> None:
        self.lines.append(("info", event, fields))


def test_guardrail_logs_a_demotion_and_a_restoration_in_the_same_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from fraud.rules import GuardrailState, guardrail

    recorder = _Recorder()
    monkeypatch.setattr(guardrail, "log", recorder)
    rs = parse_rules("version: 1\nguardrail: {window: 10, min_transactions: 5}\nrules:\n"
                     "  - {id: hot, description: h, when: score >= 0.9, action: block, "
                     "max_rate: 0.2}\n", vocabulary=VOCAB)
    state = GuardrailState()
    evaluate(rs, {"score": np.array([0.1, 0.1, 0.1, 0.1, 0.99])}, state=state)
    evaluate(rs, {"score": np.array([0.99, 0.1, 0.1, 0.1, 0.1])}, state=state)
    assert [(level, event) for level, event, _ in recorder.lines] == [
        ("warning", "rule demoted to flag by guardrail"), ("info", "rule restored by guardrail")]
    fields = recorder.lines[0][2]
    assert (fields["rule_id"], fields["demotions"], fields["restorations"],
            fields["demoted_rows"], fields["demoted_now"]) == ("hot", 1, 1, 1, False)


def test_explicit_yaml_tags_are_refused_not_ignored() -> None:
    got = problems("version: 1\nlists: {l: [a, !x b]}\nrules:\n  - id: a\n    description: d\n"
                   "    when: !custom score > 0.9\n    action: !!python/object:os.system flag\n")
    assert got == [
        "r.yaml:2:16: an item of list 'l': unsupported YAML tag '!x'; remove it",
        "r.yaml:6:11: rule 'a': 'when': unsupported YAML tag '!custom'; remove it",
        "r.yaml:7:13: rule 'a': 'action': unsupported YAML tag "
        "'tag:yaml.org,2002:python/object:os.system'; remove it",
    ]


def test_non_finite_parameters_are_refused() -> None:
    assert problems("version: 1\nparameters: {a: .nan, b: -.inf}\nrules: []\n") == [
        "r.yaml:2:17: parameter 'a' must be a finite number, got '.nan'",
        "r.yaml:2:26: parameter 'b' must be a finite number, got '-.inf'",
    ]


def test_a_huge_format_width_is_refused_without_building_it() -> None:
    with pytest.raises(RulesFileError) as err:
        parse_rules(one_rule("amount > 0", reason="{amount:>999999999}"), vocabulary=VOCAB)
    assert "widths and precisions of at most 200, got 999999999" in str(err.value)
    parse_rules(one_rule("amount > 0", reason="{amount:>12,.2f}"), vocabulary=VOCAB)
