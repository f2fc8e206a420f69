"""Rule fixtures: example transactions with the decision a rules file must reach.

A fixture file (YAML, usually ``rules/tests/<name>.yaml``) looks like::

    rules: ../default.yaml          # the rules file it tests, relative to this file
    defaults: {score: 0.05, amount: 20.0, user_id: u1}
    cases:
      - name: high score is blocked
        transaction: {score: 0.97}
        expect:
          action: block
          rules: [block_high_score]      # every matched rule, shadow ones included
          decided_by: block_high_score   # optional
          reasons: {block_high_score: "model score 0.970 >= 0.9"}   # optional

Each case's transaction starts from `defaults`; a name left out (or ``null``) is missing. All
cases run as one batch, in file order, with a fresh guardrail window. A failing case is shown
as a unified diff of expected against actual.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from fraud.errors import InputError
from fraud.rules.evaluator import Decisions, derive_column, evaluate
from fraud.rules.loader import _Doc, _kind, _mapping, _text, _value, compose
from fraud.rules.problems import Problem, RulesFileError
from fraud.rules.ruleset import ACTIONS, RuleSet, action_name
from fraud.rules.vocabulary import DERIVED_SOURCES, Vocabulary

__all__ = [
    "CaseResult",
    "FixtureCase",
    "FixtureFile",
    "discover_fixtures",
    "load_fixtures",
    "run_fixtures",
]

_CASE_KEYS = ("name", "transaction", "expect")
_EXPECT_KEYS = ("action", "rules", "decided_by", "reasons")
# Values the product never produces (docs/rules.md): a case with them tests nothing real.
_RANGES = {"score": (0.0, 1.0, "a probability from 0 to 1"),
           "hour": (0.0, 23.0, "a whole UTC hour from 0 to 23")}


@dataclass(frozen=True, slots=True)
class FixtureCase:
    name: str
    line: int
    transaction: Mapping[str, Any]
    action: str
    rules: tuple[str, ...] | None
    decided_by: str | None
    reasons: Mapping[str, str] | None


@dataclass(frozen=True, slots=True)
class FixtureFile:
    path: str
    rules: str  # the rules file it names ("" when it names none)
    cases: tuple[FixtureCase, ...]


@dataclass(frozen=True, slots=True)
class CaseResult:
    file: str
    case: FixtureCase
    diff: tuple[str, ...]  # empty when the case passed

    @property
    def passed(self) -> bool:
        return not self.diff


def _transaction(doc: _Doc, node: Node, vocab: Vocabulary, what: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, (key_node, value_node) in _mapping(doc, node, what, None).items():
        kind = vocab.kind(name)
        if kind is None:
            close = difflib.get_close_matches(name, sorted(vocab.names), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            doc.error(key_node, f"unknown field or feature {name!r} in {what}{hint}")
            continue
        if isinstance(value_node, ScalarNode) and value_node.tag == "tag:yaml.org,2002:null":
            out[name] = None
            continue
        value = _value(doc, value_node, f"{name!r}")
        if value is None:
            continue
        if kind == "string":
            out[name] = str(value_node.value)
        elif kind == "flag" and isinstance(value, bool):
            out[name] = 1.0 if value else 0.0
        elif kind == "flag" and value in (0, 1) and not isinstance(value, str):
            out[name] = float(value)
        elif kind == "flag":
            doc.error(value_node, f"{name!r} is a flag: expected true/false (or 1/0), got "
                      f"{value_node.value!r}")
        elif isinstance(value, int | float) and not isinstance(value, bool):
            bounds = _RANGES.get(name)
            if bounds is not None and not (bounds[0] <= value <= bounds[1]
                                           and (name != "hour" or float(value).is_integer())):
                doc.error(value_node, f"{name!r} must be {bounds[2]}, got {value_node.value!r}")
                continue
            out[name] = float(value)
        else:
            want = "true/false (or 1/0)" if kind == "flag" else "a number"
            doc.error(value_node, f"{name!r} is a {kind}: expected {want}, got "
                      f"{value_node.value!r}")
    return out


def _case(doc: _Doc, node: Node, defaults: Mapping[str, Any], vocab: Vocabulary,
          index: int) -> FixtureCase | None:
    spec = _mapping(doc, node, "a case", _CASE_KEYS)
    if not spec:
        return None
    name = (_text(doc, spec["name"][1], "'name'") if "name" in spec else None) or f"#{index}"
    tx = dict(defaults)
    if "transaction" in spec:
        tx.update(_transaction(doc, spec["transaction"][1], vocab, f"case {name!r}"))
    if "expect" not in spec:
        doc.error(node, f"case {name!r} has no 'expect:' (at least 'action')")
        return None
    expect = _mapping(doc, spec["expect"][1], f"'expect' of case {name!r}", _EXPECT_KEYS)
    action = _text(doc, expect["action"][1], "'action'") if "action" in expect else None
    if "action" not in expect:
        doc.error(spec["expect"][1], f"case {name!r}: 'expect' needs 'action' "
                  f"({', '.join(ACTIONS)})")
    elif action is not None and action not in ACTIONS:
        doc.error(expect["action"][1], f"'action' must be one of {', '.join(ACTIONS)}")
    rules = None
    if "rules" in expect:
        node_rules = expect["rules"][1]
        if isinstance(node_rules, SequenceNode):
            rules = tuple(str(n.value) for n in node_rules.value if isinstance(n, ScalarNode))
            for item in node_rules.value:
                if not isinstance(item, ScalarNode):
                    doc.error(item, f"'rules' holds rule ids, got {_kind(item)}")
        else:
            doc.error(node_rules, f"'rules' must be a list of rule ids, got {_kind(node_rules)}")
    decided_by = None
    if "decided_by" in expect:  # "" or "none": no rule decided (the action is none)
        by_node = expect["decided_by"][1]
        by = str(by_node.value) if isinstance(by_node, ScalarNode) else ""
        decided_by = "" if by in ("", "none") else by
    reasons = None
    if "reasons" in expect:
        items = _mapping(doc, expect["reasons"][1], "'reasons'", None)
        reasons = {k: str(v.value) for k, (_, v) in items.items() if isinstance(v, ScalarNode)}
    if action is None or action not in ACTIONS:
        return None
    return FixtureCase(name, node.start_mark.line + 1, tx, action, rules, decided_by, reasons)


def load_fixtures(path: str | Path, vocabulary: Vocabulary) -> FixtureFile:
    """Parse and validate a fixture file; `RulesFileError` lists every problem."""
    location = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{location}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{location}: is a directory, expected a fixture file") from None
    except OSError as exc:
        raise InputError(f"{location}: cannot read fixture file: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise RulesFileError([Problem(location, 1, 1, f"not UTF-8 text: {exc.reason} at byte "
                                      f"{exc.start}")]) from None
    doc = _Doc(text, location)
    root = compose(doc)
    if root is None:
        raise RulesFileError([Problem(location, 1, 1, "empty fixture file")])
    top = _mapping(doc, root, "the fixture file", ("rules", "defaults", "cases"))
    rules = ""
    if "rules" in top:
        rules_rel = _text(doc, top["rules"][1], "'rules'") or ""
        rules = str(Path(location).parent / rules_rel) if rules_rel else ""
    defaults = (_transaction(doc, top["defaults"][1], vocabulary, "'defaults'")
                if "defaults" in top else {})
    cases: list[FixtureCase] = []
    if "cases" not in top or not isinstance(top["cases"][1], SequenceNode):
        doc.error(top["cases"][1] if "cases" in top else root,
                  "'cases' must be a list of cases ('- name: ...')")
    else:
        for i, node in enumerate(top["cases"][1].value, start=1):
            case = _case(doc, node, defaults, vocabulary, i)
            if case is not None:
                cases.append(case)
    if doc.problems:
        raise RulesFileError(doc.problems)
    if not isinstance(root, MappingNode):
        raise RulesFileError([Problem(location, 1, 1, "expected a mapping")])
    return FixtureFile(location, rules, tuple(cases))


def discover_fixtures(rules_path: str | Path) -> list[Path]:
    """Fixture files under ``tests/`` beside `rules_path` whose ``rules:`` names that file."""
    rules_file = Path(rules_path).resolve()
    found: list[Path] = []
    test_dir = Path(rules_path).parent / "tests"
    for candidate in sorted(test_dir.rglob("*.y*ml")) if test_dir.is_dir() else []:
        try:
            # Composed, not constructed: a fixture file for another rules file with a problem
            # in its values (an unquoted '!', a tag) is not this file's business.
            head = yaml.compose(candidate.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
        except (OSError, UnicodeDecodeError, RecursionError, yaml.YAMLError):
            found.append(candidate)  # let load_fixtures report it precisely
            continue
        target = None
        if isinstance(head, MappingNode):
            target = next((v.value for k, v in head.value
                           if isinstance(k, ScalarNode) and k.value == "rules"
                           and isinstance(v, ScalarNode)), None)
        if isinstance(target, str) and (candidate.parent / target).resolve() == rules_file:
            found.append(candidate)
    return found


def _columns(ruleset: RuleSet, cases: Iterable[FixtureCase]) -> dict[str, Any]:
    rows = list(cases)
    vocab = ruleset.vocabulary
    given = {k for c in rows for k in c.transaction}
    names = set(ruleset.columns) | given
    # Derived names come from their source (missing when unset) in every case that does not
    # set them itself, so one case giving `hour` leaves the others' `hour` derived.
    derived_here = {d: s for d, s in DERIVED_SOURCES.items() if d in names}
    names |= set(derived_here.values())
    out: dict[str, Any] = {}
    for name in names:
        values = [c.transaction.get(name) for c in rows]
        if vocab.kind(name) == "string":
            out[name] = np.asarray(["" if v is None else v for v in values], dtype=object)
        else:
            out[name] = np.asarray([math.nan if v is None else v for v in values], dtype=float)
    for name, source in derived_here.items():
        derived = derive_column(name, {source: out[source]})
        if derived is None:
            continue
        own = np.array([name in c.transaction for c in rows], dtype=bool)
        out[name] = np.where(own, out[name], derived.astype(np.float64))
    return out


def _render(action: str, decided_by: str | None, rules: Iterable[str] | None,
            reasons: Mapping[str, str] | None) -> list[str]:
    lines = [f"action: {action}"]
    if decided_by is not None:
        lines.append(f"decided_by: {decided_by or '(none)'}")
    if rules is not None:
        lines.append("rules:")
        lines.extend(f"  - {r}" for r in sorted(rules))
    if reasons is not None:
        lines.append("reasons:")
        lines.extend(f"  {k}: {v}" for k, v in sorted(reasons.items()))
    return lines


def _check(case: FixtureCase, decisions: Decisions, row: int) -> tuple[str, ...]:
    matched = decisions.matched(row)
    got_reasons = dict(decisions.reasons[row])
    expected = _render(case.action, case.decided_by, case.rules, case.reasons)
    actual = _render(
        action_name(decisions.action[row]),
        None if case.decided_by is None else str(decisions.decided_by[row]),
        None if case.rules is None else matched,
        None if case.reasons is None else {k: got_reasons.get(k, "(rule did not match)")
                                           for k in case.reasons},
    )
    if expected == actual:
        return ()
    return tuple(difflib.unified_diff(expected, actual, "expected", "actual", lineterm="", n=50))


def run_fixtures(ruleset: RuleSet, fixtures: FixtureFile) -> list[CaseResult]:
    """Evaluate every case of `fixtures` with `ruleset`; one result per case."""
    cases = fixtures.cases
    if not cases:
        return []
    decisions = evaluate(ruleset, _columns(ruleset, cases), n=len(cases))
    known = set(ruleset.rule_ids)
    results = []
    for i, case in enumerate(cases):
        named = set(case.rules or ()) | set(case.reasons or ()) | {case.decided_by or ""}
        unknown = sorted(named - known - {""})
        note = (f"unknown rule id(s) in 'expect': {', '.join(unknown)}",) if unknown else ()
        diff = _check(case, decisions, i)
        results.append(CaseResult(fixtures.path, case, note + diff if diff or note else ()))
    return results
