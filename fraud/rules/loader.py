"""Load a rules file: YAML nodes -> validated, compiled, frozen `RuleSet`.

The file is read with ``yaml.compose`` rather than ``yaml.safe_load`` so that every key and
value keeps its line and column: each problem (duplicate key, unknown name, type mismatch,
duplicate rule id, bad value) is reported as ``file:line:col: message``, and the loader carries
on to report every problem in one go (`RulesFileError`). Positions inside a ``when`` string are
mapped back to the file, including for quoted and block (``|``/``>``) scalars.

>>> rs = parse_rules(
...     "version: 1\\nrules:\\n  - id: big\\n    description: big amount\\n"
...     "    when: amount > 1000\\n    action: flag\\n", filename="x.yaml")
>>> rs.rule_ids
('big',)
"""

from __future__ import annotations

import bisect
import datetime
import difflib
import hashlib
import math
import re
from collections.abc import Callable
from typing import Any

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from fraud.errors import FraudError
from fraud.rules import expr as ex
from fraud.rules.compiler import FUNCTIONS, Scope, compile_condition, written_number
from fraud.rules.problems import Problem, RulesFileError
from fraud.rules.reasons import compile_reason
from fraud.rules.ruleset import ACTIONS, GuardrailConfig, Rule, RuleSet
from fraud.rules.sources import RuleSource, join_location, source_for
from fraud.rules.vocabulary import Vocabulary, default_vocabulary

__all__ = ["FORMAT_VERSION", "MAX_FILE_BYTES", "compose", "load_rules", "parse_rules"]

FORMAT_VERSION = 1
# A rules file is a page or a few; long id lists belong in list files (read line by line, with
# no limit). The cap keeps a wrong file (a data dump) from stalling a check or a reload.
MAX_FILE_BYTES = 256 * 1024  # a few hundred rules fit in a tenth of it; loads in ~2 s at most
TOP_KEYS = ("version", "name", "description", "parameters", "lists", "guardrail", "rules")
RULE_KEYS = ("id", "description", "when", "unless", "action", "priority", "mode", "reason",
             "max_rate")
_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_.\-]*$")
_STR, _INT, _FLOAT, _BOOL = (f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool"))


class _Doc:
    """A file's text plus the problems found in it, with node -> line:col mapping."""

    def __init__(self, text: str, filename: str) -> None:
        self.text = text
        self.filename = filename
        self.problems: list[Problem] = []
        self.line_starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def error(self, node: Node | None, message: str, rule_id: str = "") -> None:
        line, col = (node.start_mark.line + 1, node.start_mark.column + 1) if node else (1, 1)
        self.problems.append(Problem(self.filename, line, col, message, rule_id))

    def error_at(self, index: int, message: str, rule_id: str = "") -> None:
        line = bisect.bisect_right(self.line_starts, index) - 1
        self.problems.append(
            Problem(self.filename, line + 1, index - self.line_starts[line] + 1, message, rule_id))

    def index_in(self, node: ScalarNode, offset: int) -> int:
        """File index of character `offset` of the scalar's value.

        The value is matched greedily against the raw source between the node's marks, which
        steps over quotes, block indicators, indentation and folded line breaks alike; when that
        fails (exotic escapes), the start of the value is the best answer.
        """
        start, end = node.start_mark.index, node.end_mark.index
        raw, value = self.text[start:end], node.value
        j = 0
        if node.style in ("|", ">"):
            j = raw.find("\n") + 1  # skip the indicator line ("|-", ">2", ...)
        for i, ch in enumerate(value[: offset + 1]):
            while j < len(raw) and raw[j] != ch:
                j += 1
            if j >= len(raw):
                return start
            if i == offset:
                return start + j
            j += 1
        return start + min(j, len(raw))


def _mapping(doc: _Doc, node: Node, what: str, keys: tuple[str, ...] | None,
             rule_id: str = "") -> dict[str, tuple[ScalarNode, Node]]:
    """Key -> (key node, value node); reports non-mappings, duplicate and unknown keys."""
    if not isinstance(node, MappingNode):
        doc.error(node, f"{what} must be a mapping of 'key: value', got {_kind(node)}", rule_id)
        return {}
    out: dict[str, tuple[ScalarNode, Node]] = {}
    merged: list[tuple[Node, Node]] = []
    for key_node, value_node in node.value:
        if isinstance(key_node, ScalarNode) and key_node.tag == _MERGE:
            merged.extend(_merge_sources(doc, value_node, what, rule_id))
            continue
        if not isinstance(key_node, ScalarNode):
            doc.error(key_node, f"keys of {what} must be plain names", rule_id)
            continue
        key = key_node.value
        if key in out:
            first = out[key][0].start_mark.line + 1
            doc.error(key_node, f"duplicate key {key!r} in {what} (first at line {first})",
                      rule_id)
            continue
        if keys is not None and key not in keys:
            close = difflib.get_close_matches(key, keys, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            doc.error(key_node, f"unknown key {key!r} in {what}{hint}; expected one of: "
                      f"{', '.join(keys)}", rule_id)
            continue
        out[key] = (key_node, value_node)
    # `<<: *base`: the anchored mapping's keys, where this mapping does not set them itself
    # (the first source wins among several, as in YAML).
    for key_node, value_node in merged:
        key = key_node.value
        if isinstance(key_node, ScalarNode) and key not in out and (keys is None or key in keys):
            out[key] = (key_node, value_node)
    return out


_MERGE = "tag:yaml.org,2002:merge"


def _merge_sources(doc: _Doc, node: Node, what: str, rule_id: str,
                   seen: frozenset[int] = frozenset()) -> list[tuple[Node, Node]]:
    """The (key, value) pairs a YAML merge key ``<<: *base`` (or ``<<: [*a, *b]``) brings in."""
    sources = node.value if isinstance(node, SequenceNode) else [node]
    pairs: list[tuple[Node, Node]] = []
    for source in sources:
        if id(source) in seen:
            doc.error(source, f"'<<' in {what} refers to itself", rule_id)
            continue
        if not isinstance(source, MappingNode):
            doc.error(source, f"'<<' in {what} must refer to a mapping ('<<: *name'), got "
                      f"{_kind(source)}", rule_id)
            continue
        for key_node, value_node in source.value:
            if isinstance(key_node, ScalarNode) and key_node.tag == _MERGE:
                pairs.extend(_merge_sources(doc, value_node, what, rule_id,
                                            seen | {id(source)}))
            else:
                pairs.append((key_node, value_node))
    return pairs


def _kind(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    if node.tag == "tag:yaml.org,2002:null":
        return "nothing (null)"
    return f"{node.value!r}"


def _scalar(doc: _Doc, node: Node, what: str, rule_id: str = "") -> Any:
    """A scalar's Python value via YAML's own rules, or None (reported) when not scalar."""
    if not isinstance(node, ScalarNode) or node.tag == "tag:yaml.org,2002:null":
        doc.error(node, f"{what} must be a single value, got {_kind(node)}", rule_id)
        return None
    try:
        return SafeConstructor().construct_object(node)
    except ConstructorError as exc:
        doc.error(node, f"{what}: {exc.problem}", rule_id)
        return None


# YAML 1.1 reads `1e-3` (no dot) as text and `no`/`on`/`yes`/`off` as booleans; a value is
# read here as the expression language reads it: numbers in any of its spellings, and only
# `true`/`false` as true/false (`NO` stays the text "NO", e.g. a country code).
_NUMBER = re.compile(r"^[-+]?(?:\d[\d_]*(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?$")
_TRUE_FALSE = re.compile(r"^(?:true|false)$", re.IGNORECASE)


def _value(doc: _Doc, node: Node, what: str) -> Any:
    """A parameter or fixture value: like `_scalar`, with the readings described above."""
    if isinstance(node, ScalarNode) and node.style is None and node.tag == _STR \
            and _NUMBER.match(node.value):
        return float(node.value.replace("_", ""))
    value = _scalar(doc, node, what)
    if isinstance(value, bool) and not _TRUE_FALSE.match(str(node.value)):
        return str(node.value)
    return value


_TAG_NAME = re.compile(r"^(?:!!?[A-Za-z][\w./:-]*|tag:.*)$")


def _odd_tag(doc: _Doc, node: Node, what: str, rule_id: str = "") -> bool:
    """True (reported) for an explicit tag such as ``!!python/object`` or ``!custom``."""
    tag = node.tag or ""
    if tag.startswith("tag:yaml.org,2002:") and "python/" not in tag:
        return False
    if not _TAG_NAME.match(tag):
        # `description: != is false` or `when: !is_night`: not a tag anyone meant to write.
        doc.error(node, f"{what}: a value starting with '!' is read as a YAML tag ({tag!r}): "
                  "put the whole value in quotes", rule_id)
        return True
    doc.error(node, f"{what}: unsupported YAML tag {tag!r}; remove it", rule_id)
    return True


def _text(doc: _Doc, node: Node, what: str, rule_id: str = "") -> str | None:
    if _odd_tag(doc, node, what, rule_id):
        return None
    if not isinstance(node, ScalarNode) or node.tag == "tag:yaml.org,2002:null":
        hint = ""
        if isinstance(node, MappingNode | SequenceNode) and node.flow_style:
            hint = " (YAML reads a value starting with '{' or '[' as a mapping or list: quote it)"
        doc.error(node, f"{what} must be text, got {_kind(node)}{hint}", rule_id)
        return None
    if not node.value.strip():
        doc.error(node, f"{what} must not be empty", rule_id)
        return None
    return str(node.value)


def _number(doc: _Doc, node: Node, what: str, low: float, high: float, *, rule_id: str = "",
            integer: bool = False) -> float | None:
    value = _scalar(doc, node, what, rule_id)
    if value is None:
        return None
    if not isinstance(value, bool) and isinstance(value, int | float) and (
            not integer or isinstance(value, int)):
        number = float(value)
        if low <= number <= high:
            return number
    kind = "an integer" if integer else "a number"
    doc.error(node, f"{what} must be {kind} from {written_number(low)} to "
              f"{written_number(high)}, got {node.value!r}", rule_id)
    return None


def _choice(doc: _Doc, node: Node, what: str, choices: tuple[str, ...],
            rule_id: str) -> str | None:
    value = _text(doc, node, what, rule_id)
    if value is not None and value not in choices:
        doc.error(node, f"{what} must be one of {', '.join(choices)}; got {value!r}", rule_id)
        return None
    return value


def _check_name(doc: _Doc, node: ScalarNode, what: str, vocabulary: Vocabulary,
                taken: dict[str, str]) -> bool:
    name = node.value
    if not name.isidentifier() or name in ex.KEYWORDS or name in FUNCTIONS:
        doc.error(node, f"{what} name {name!r} must be a name (letters, digits, _) that is not "
                  "a keyword or function")
        return False
    if vocabulary.kind(name) is not None:
        doc.error(node, f"{what} name {name!r} is already a field or feature; pick another")
        return False
    if name in taken:
        doc.error(node, f"{what} name {name!r} is already used by a {taken[name]}")
        return False
    taken[name] = what
    return True


def _parameters(doc: _Doc, node: Node, vocabulary: Vocabulary,
                taken: dict[str, str]) -> dict[str, float | str | bool]:
    out: dict[str, float | str | bool] = {}
    for name, (key_node, value_node) in _mapping(doc, node, "'parameters'", None).items():
        if not _check_name(doc, key_node, "parameter", vocabulary, taken):
            continue
        value = _value(doc, value_node, f"parameter {name!r}")
        if value is None:
            continue
        if isinstance(value, bool | str):
            out[name] = value
        elif isinstance(value, int | float) and math.isfinite(value):
            out[name] = float(value)
        elif isinstance(value, int | float):
            doc.error(value_node, f"parameter {name!r} must be a finite number, got "
                      f"{value_node.value!r}")
        elif isinstance(value, datetime.date):
            doc.error(value_node, f"parameter {name!r} must be a number, text or true/false, "
                      f"got {value_node.value!r} (YAML reads it as a date: put it in quotes)")
        else:
            doc.error(value_node, f"parameter {name!r} must be a number, text or true/false")
    return out


def _lists(doc: _Doc, node: Node, vocabulary: Vocabulary, taken: dict[str, str], *,
           location: str, read: Callable[[str], bytes],
           files: list[tuple[str, bytes]]) -> dict[str, frozenset[str]]:
    out: dict[str, frozenset[str]] = {}
    for name, (key_node, value_node) in _mapping(doc, node, "'lists'", None).items():
        if not _check_name(doc, key_node, "list", vocabulary, taken):
            continue
        if isinstance(value_node, SequenceNode):
            items: list[str] = []
            for item in value_node.value:
                if _odd_tag(doc, item, f"an item of list {name!r}"):
                    continue
                if not isinstance(item, ScalarNode) or item.tag == "tag:yaml.org,2002:null":
                    doc.error(item, f"items of list {name!r} must be single values (ids), "
                              f"got {_kind(item)}")
                elif item.value.strip():
                    items.append(item.value.strip())
            out[name] = frozenset(items)
            continue
        spec = _mapping(doc, value_node, f"list {name!r} (a [list] or 'file: PATH')", ("file",))
        if "file" not in spec:
            if isinstance(value_node, MappingNode) and not value_node.value:
                doc.error(value_node, f"list {name!r} needs 'file: PATH' or a [list] of values")
            continue
        path_node = spec["file"][1]
        relative = _text(doc, path_node, f"'file' of list {name!r}")
        if relative is None:
            out[name] = frozenset()
            continue
        target = join_location(location, relative)
        try:
            data = read(target)
        except FraudError as exc:
            doc.error(path_node, f"list {name!r}: {exc}")
            out[name] = frozenset()  # still a list: its uses are not reported again
            continue
        files.append((target, data))
        try:
            lines = data.decode("utf-8").splitlines()
        except UnicodeDecodeError as exc:
            doc.error(path_node, f"list {name!r}: {target} is not UTF-8 text ({exc.reason} at "
                      f"byte {exc.start}); expected one id per line")
            out[name] = frozenset()
            continue
        out[name] = frozenset(
            s for s in (ln.split("#", 1)[0].strip() for ln in lines) if s)
    return out


def _guardrail(doc: _Doc, node: Node) -> GuardrailConfig:
    spec = _mapping(doc, node, "'guardrail'", ("window", "min_transactions"))
    defaults = GuardrailConfig()
    window, minimum = defaults.window, defaults.min_transactions
    if "window" in spec:
        value = _number(doc, spec["window"][1], "guardrail 'window' (transactions)", 1, 1e8,
                        integer=True)
        window = int(value) if value is not None else window
    if "min_transactions" in spec:
        value = _number(doc, spec["min_transactions"][1], "guardrail 'min_transactions'", 0,
                        1e8, integer=True)
        minimum = int(value) if value is not None else minimum
    return GuardrailConfig(window, minimum)


def _condition(doc: _Doc, node: Node, key: str, scope: Scope, *, rule_id: str,
               columns: set[str]) -> tuple[Any, str]:
    text = _text(doc, node, f"'{key}'", rule_id)
    if text is None or not isinstance(node, ScalarNode):
        return None, ""
    try:
        tree = ex.parse(text)
    except ex.ExprSyntaxError as exc:
        doc.error_at(doc.index_in(node, exc.offset), f"in '{key}': {exc.message}", rule_id)
        return None, text
    fn, used, errors = compile_condition(tree, scope)
    for err in errors:
        doc.error_at(doc.index_in(node, err.offset), f"in '{key}': {err.message}", rule_id)
    columns |= used
    return fn, text


def _peek_id(node: Node) -> str:
    """The rule's id before validation, so that every message about the rule can name it."""
    if isinstance(node, MappingNode):
        for key, value in node.value:
            if isinstance(key, ScalarNode) and key.value == "id" and isinstance(value, ScalarNode):
                return str(value.value)
    return ""


def _rule(doc: _Doc, node: Node, scope: Scope, seen: dict[str, int],
          columns: set[str]) -> Rule | None:
    spec = _mapping(doc, node, "a rule", RULE_KEYS, _peek_id(node))
    if not spec:
        return None
    rule_id = ""
    if "id" not in spec:
        doc.error(node, "rule has no 'id'")
    else:
        id_node = spec["id"][1]
        rule_id = _text(doc, id_node, "'id'") or ""
        if rule_id and not _ID.match(rule_id):
            doc.error(id_node, f"id {rule_id!r} must start with a letter and hold only letters, "
                      "digits, '_', '-' and '.'", rule_id)
        elif rule_id in seen:
            doc.error(id_node, f"duplicate rule id {rule_id!r} (first defined at line "
                      f"{seen[rule_id]})", rule_id)
        elif rule_id:
            seen[rule_id] = id_node.start_mark.line + 1
    before = len(doc.problems)
    for key in ("description", "when", "action"):
        if key not in spec:
            doc.error(node, f"rule has no {key!r} (required: id, description, when, action)",
                      rule_id)
    description = _text(doc, spec["description"][1], "'description'", rule_id) \
        if "description" in spec else None
    condition, when = (_condition(doc, spec["when"][1], "when", scope, rule_id=rule_id,
                                      columns=columns)
                       if "when" in spec else (None, ""))
    exemption, unless = (_condition(doc, spec["unless"][1], "unless", scope,
                                      rule_id=rule_id, columns=columns)
                         if "unless" in spec else (None, ""))
    action = _choice(doc, spec["action"][1], "'action'", ACTIONS[1:], rule_id) \
        if "action" in spec else None
    mode = _choice(doc, spec["mode"][1], "'mode'", ("active", "shadow"), rule_id) \
        if "mode" in spec else "active"
    priority = _number(doc, spec["priority"][1], "'priority'", -1e6, 1e6, rule_id=rule_id,
                       integer=True) \
        if "priority" in spec else 0.0
    max_rate = _number(doc, spec["max_rate"][1], "'max_rate' (share of transactions)", 0, 1,
                       rule_id=rule_id) if "max_rate" in spec else None
    reason = None
    reason_node = spec["reason"][1] if "reason" in spec else None
    if reason_node is not None and isinstance(reason_node, ScalarNode):
        reason_text = _text(doc, reason_node, "'reason'", rule_id)
        reason, errors = compile_reason(reason_text or "", scope)
        for err in errors if reason_text else ():
            doc.error_at(doc.index_in(reason_node, err.offset), f"in 'reason': {err.message}",
                         rule_id)
        if reason is not None:
            columns |= reason.columns
    elif reason_node is not None:
        _text(doc, reason_node, "'reason'", rule_id)  # reports the wrong shape
    elif description is not None:  # the description, taken literally, braces and all
        reason, _ = compile_reason(description.replace("{", "{{").replace("}", "}}"), scope)
    if len(doc.problems) > before or not rule_id:
        return None
    if (condition is None or action is None or mode is None or priority is None
            or reason is None or description is None):
        return None
    return Rule(rule_id, description, action, mode, int(priority), when, unless, reason,
                max_rate, condition, exemption, node.start_mark.line + 1)


def _version(doc: _Doc, node: Node | None) -> None:
    if node is None:
        doc.error(None, f"missing 'version: {FORMAT_VERSION}' (the rules format version)")
        return
    value = _scalar(doc, node, "'version'")
    if value is not None and (isinstance(value, bool) or value != FORMAT_VERSION):
        got = f"the text {node.value!r} (write it without quotes)" if isinstance(value, str) \
            else repr(node.value)
        doc.error(node, f"'version' must be {FORMAT_VERSION} (the rules format version), got "
                  f"{got}")


def _yaml_hint(text: str, line: int, col: int, problem: str) -> str:
    """A likely cause of a YAML syntax error at `line`:`col` (1-based), for the usual suspects."""
    lines = text.splitlines()
    source = lines[line - 1] if 0 < line <= len(lines) else ""
    indent = len(source) - len(source.lstrip())
    if "\t" in source[:indent]:
        return "; YAML indentation must be spaces, not tabs"
    if re.search(r":\s+[\[{]", source):
        return ("; a value starting with '{' or '[' is read as a YAML mapping or list: put the "
                "whole value in quotes")
    quoted = re.search(r":\s+([\"'])", source)
    if quoted and source.count(quoted.group(1), quoted.end()) >= 2:
        q = quoted.group(1)
        other = "'" if q == '"' else '"'
        return (f"; the value's {q} quotes end early at the next {q}: use {other} for text "
                f"inside it")
    if re.search(r":\s+[^'\"].*:\s", source):
        return "; a value containing ': ' must be put in quotes"
    previous = next((ln for ln in reversed(lines[:max(line - 1, 0)]) if ln.strip()), "")
    if ("mapping values are not allowed" in problem and previous
            and indent > len(previous) - len(previous.lstrip())
            and not previous.rstrip().endswith((":", "|", ">", "-"))):
        return ("; check the indentation: this line starts further right than the key above "
                "it, so YAML reads it as part of that key's value")
    if "expected <block end>" in problem and col - 1 <= indent:
        return ("; check the indentation: the keys of one rule (or one mapping) must start in "
                "the same column")
    return ""


def compose(doc: _Doc) -> Node | None:
    """`doc`'s YAML node tree (None for an empty file), positions kept; any YAML error, a
    control character or nesting too deep for the parser becomes a `RulesFileError` at its
    line and column. Shared by rules and fixture files."""
    try:
        root: Node | None = yaml.compose(doc.text, Loader=yaml.SafeLoader)
    except yaml.reader.ReaderError as exc:
        raise RulesFileError([_reader_problem(doc, exc)]) from None
    except RecursionError:
        raise RulesFileError([Problem(doc.filename, 1, 1, "malformed YAML: lists or mappings "
                                      "nested too deeply")]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        context = f" ({exc.context})" if exc.context else ""
        hint = _yaml_hint(doc.text, line, col, str(exc.problem))
        raise RulesFileError([Problem(doc.filename, line, col, f"malformed YAML: {exc.problem}"
                                      f"{context}{hint}")]) from None
    return root


def _reader_problem(doc: _Doc, exc: yaml.reader.ReaderError) -> Problem:
    """A control character (NUL, BEL, ...) that YAML refuses, at its line and column."""
    position = min(max(exc.position, 0), len(doc.text))
    line = bisect.bisect_right(doc.line_starts, position) - 1
    char = exc.character if isinstance(exc.character, int) else 0
    return Problem(doc.filename, line + 1, position - doc.line_starts[line] + 1,
                   f"malformed YAML: character U+{char:04X} is not allowed in a YAML file "
                   "(a control character: remove it)")


def parse_rules(
    text: str | bytes,
    *,
    filename: str = "<rules>",
    vocabulary: Vocabulary | None = None,
    read: Callable[[str], bytes] | None = None,
) -> RuleSet:
    """Validate and compile a rules file's content; raise `RulesFileError` listing every problem.

    `read` fetches list files named by ``file:`` (resolved against `filename`'s directory); by
    default they are read from the local file system.
    """
    vocab = vocabulary or default_vocabulary()
    data = text.encode() if isinstance(text, str) else text
    files: list[tuple[str, bytes]] = []
    if len(data) > MAX_FILE_BYTES:
        raise RulesFileError([Problem(filename, 1, 1, f"file too large ({len(data):,} bytes, at "
                                      f"most {MAX_FILE_BYTES // 1024} KB): put long id lists in "
                                      "list files ('file: PATH' under 'lists:')")])
    try:
        source_text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RulesFileError([Problem(filename, 1, 1, f"not UTF-8 text: {exc.reason} at byte "
                                      f"{exc.start}")]) from None
    doc = _Doc(source_text, filename)
    root = compose(doc)
    if root is None:
        raise RulesFileError([Problem(filename, 1, 1, "empty file: expected 'version' and "
                                      "'rules'")])
    top = _mapping(doc, root, "the rules file", TOP_KEYS)
    if not isinstance(root, MappingNode):
        raise RulesFileError(doc.problems)
    _version(doc, top["version"][1] if "version" in top else None)
    name = ""
    if "name" in top:
        name = _text(doc, top["name"][1], "'name'") or ""
    if "description" in top:
        _text(doc, top["description"][1], "'description'")
    taken: dict[str, str] = {}
    params = _parameters(doc, top["parameters"][1], vocab, taken) if "parameters" in top else {}
    reader = read or source_for(filename).read
    lists = (_lists(doc, top["lists"][1], vocab, taken, location=filename, read=reader,
                    files=files)
             if "lists" in top else {})
    guardrail = _guardrail(doc, top["guardrail"][1]) if "guardrail" in top else GuardrailConfig()
    scope = Scope(vocab, params, lists)
    rules: list[Rule] = []
    columns: set[str] = set()
    if "rules" not in top:
        doc.error(root, "missing 'rules:' (a list of rules)")
    elif not isinstance(top["rules"][1], SequenceNode):
        doc.error(top["rules"][1], f"'rules' must be a list of rules ('- id: ...'), got "
                  f"{_kind(top['rules'][1])}")
    else:
        seen: dict[str, int] = {}
        for node in top["rules"][1].value:
            rule = _rule(doc, node, scope, seen, columns)
            if rule is not None:
                rules.append(rule)
    if doc.problems:
        raise RulesFileError(doc.problems)
    # Content only: the same rules give the same version wherever the file sits (the list
    # files' names as written are part of `data`).
    digest = hashlib.sha256(data)
    for _, content in files:
        digest.update(b"\0" + content)
    order = sorted(range(len(rules)), key=lambda i: (-rules[i].priority, i))
    return RuleSet(
        location=filename, version=digest.hexdigest()[:12], name=name,
        rules=tuple(rules[i] for i in order), parameters=params, lists=lists,
        guardrail=guardrail, columns=frozenset(columns),
        files=(filename, *(loc for loc, _ in files)), vocabulary=vocab,
    )


def load_rules(
    location: str,
    vocabulary: Vocabulary | None = None,
    *,
    source: RuleSource | None = None,
    s3_client: Any = None,
) -> RuleSet:
    """Read and compile the rules file at `location` (a path or an s3:// URI)."""
    src = source or source_for(location, s3_client)
    return parse_rules(src.read(location), filename=location, vocabulary=vocabulary,
                       read=src.read)
