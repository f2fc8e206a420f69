"""Type-check a parsed expression and compile it into a vectorised NumPy function.

Each node becomes a small closure over NumPy arrays; a whole rule runs as a handful of array
operations over the batch, never per row in Python (string list membership is the one place
that touches each value, through a C-level set lookup). Sub-expressions shared between rules
(``score >= block_score`` in three rules) are computed once per batch through `Env.cache`.

Missing values: a comparison with a missing value is false, whatever the operator (``!=``
included); arithmetic with a missing value is missing; ``x / 0`` is missing. A flag is true only
when it is 1. These are documented for rule authors in docs/rules.md.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from fraud.rules import expr as ex
from fraud.rules.vocabulary import Vocabulary

__all__ = ["CompileError", "Compiled", "Env", "Scope", "compile_condition", "written_number"]

Array = npt.NDArray[Any]
Value = Any  # an array of the batch's length or a Python scalar constant
NUMBER, STRING, BOOL, ERROR = "number", "string", "true/false", "error"
_SMALL_LIST = 4
FUNCTIONS = ("abs", "min", "max", "missing", "coalesce", "distance_km")


class CompileError(ValueError):
    """A type or name problem at `offset` in the expression text."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


@dataclass(slots=True)
class Env:
    """One batch's columns (already normalised) plus a cache of shared sub-expressions."""

    columns: Mapping[str, Array]
    n: int
    cache: dict[str, Array] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Scope:
    """Everything a name may refer to: columns, parameters and named (string) lists."""

    vocabulary: Vocabulary
    parameters: Mapping[str, float | str | bool]
    lists: Mapping[str, frozenset[str]]

    def candidates(self) -> list[str]:
        return sorted(self.vocabulary.names | set(self.parameters) | set(self.lists))


@dataclass(frozen=True, slots=True)
class Compiled:
    """A typed value: a constant (`fn` is None) or a function of the batch."""

    type: str
    key: str
    const: Value = None
    fn: Callable[[Env], Value] | None = None
    column: str = ""  # set when the value is a column itself (for missing tests)

    def __call__(self, env: Env) -> Value:
        return self.const if self.fn is None else self.fn(env)

    @property
    def is_const(self) -> bool:
        return self.fn is None


def written_number(value: float) -> str:
    """A number as a rule author writes it: `5` and `1000000`, not `5.0` or `1e+06`."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _const(type_: str, value: Value, key: str | None = None) -> Compiled:
    return Compiled(type_, key or repr(value), const=value)


def _computed(type_: str, key: str, fn: Callable[[Env], Value]) -> Compiled:
    def cached(env: Env) -> Value:
        hit = env.cache.get(key)
        if hit is None:
            hit = fn(env)
            env.cache[key] = hit
        return hit

    return Compiled(type_, key, fn=cached)


def _nan_safe(values: Value) -> Value:
    """Infinities (from x/0) become missing, so that they never pass a threshold."""
    if isinstance(values, np.ndarray):
        return np.where(np.isfinite(values), values, np.nan)
    return values if np.isfinite(values) else float("nan")


class _Checker:
    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self.errors: list[CompileError] = []
        self.columns: set[str] = set()

    def fail(self, message: str, node: ex.Node) -> Compiled:
        self.errors.append(CompileError(message, node.pos))
        return Compiled(ERROR, "error", const=None)

    def visit(self, node: ex.Node) -> Compiled:
        # visit_<node class in snake_case>, e.g. InList -> visit_in_list
        name = re.sub(r"(?<!^)(?=[A-Z])", "_", type(node).__name__).lower()
        result: Compiled = getattr(self, "visit_" + name)(node)
        return result

    def visit_literal(self, node: ex.Literal) -> Compiled:
        value = node.value
        if isinstance(value, bool):
            return _const(BOOL, value)
        if isinstance(value, float):
            if not np.isfinite(value):
                return self.fail("this number is too large (a rule's numbers must be finite)",
                                 node)
            return _const(NUMBER, value)
        return _const(STRING, value)

    def visit_list_lit(self, node: ex.ListLit) -> Compiled:
        return self.fail("a [list] can only follow 'in'", node)

    def visit_name(self, node: ex.Name) -> Compiled:
        name = node.name
        kind = self.scope.vocabulary.kind(name)
        if kind is not None:
            self.columns.add(name)
            if kind == "flag":
                return Compiled(BOOL, name, fn=lambda env: env.columns[name] == 1.0,
                                column=name)
            return Compiled(NUMBER if kind == "number" else STRING, name,
                            fn=lambda env: env.columns[name], column=name)
        if name in self.scope.parameters:
            value = self.scope.parameters[name]
            type_ = BOOL if isinstance(value, bool) else (
                NUMBER if isinstance(value, float) else STRING)
            return _const(type_, value, key=f"param:{name}")
        if name in self.scope.lists:
            return self.fail(f"{name!r} is a list: use it after 'in' (as in 'x in {name}')",
                             node)
        if name in FUNCTIONS:
            return self.fail(f"{name!r} is a function: call it as {name}(...)", node)
        close = difflib.get_close_matches(name, self.scope.candidates(), n=1)
        hint = (f" (did you mean {close[0]!r}?)" if close
                else f" (text must be in quotes: '{name}')")
        if name.lower() in ex.KEYWORDS:  # TRUE, False, MISSING...
            hint = f" (keywords are lower case: write '{name.lower()}')"
        return self.fail(
            f"unknown name {name!r}{hint}; expected a transaction field, feature, 'score', "
            "a parameter or a list", node)

    def describe(self, node: ex.Node, value: Compiled) -> str:
        """`amount (a number)`, `limit (a parameter: 'abc', a string)`, `'x' (a string)`."""
        if isinstance(node, ex.Name):
            if node.name in self.scope.parameters:
                shown = self.scope.parameters[node.name]
                return f"{node.name} (a parameter: {shown!r}, a {value.type})"
            return f"{node.name} (a {value.type})"
        if isinstance(node, ex.Literal):
            shown = node.value
            if isinstance(shown, float):
                return f"{written_number(shown)} (a {value.type})"  # `5` as written, not `5.0`
            return f"{shown!r} (a {value.type})"
        return f"a {value.type}"

    def visit_unary(self, node: ex.Unary) -> Compiled:
        operand = self.expect(node.operand, NUMBER, "'-'")
        if operand.type == ERROR:
            return operand
        if operand.is_const:
            return _const(NUMBER, -operand.const)
        return _computed(NUMBER, f"(-{operand.key})", lambda env: -operand(env))

    def visit_not(self, node: ex.Not) -> Compiled:
        operand = self.expect(node.operand, BOOL, "'not'")
        if operand.type == ERROR:
            return operand
        if operand.is_const:
            return _const(BOOL, not operand.const)
        return _computed(BOOL, f"(not {operand.key})", lambda env: ~operand(env))

    def expect(self, node: ex.Node, type_: str, where: str) -> Compiled:
        value = self.visit(node)
        if value.type not in (type_, ERROR):
            hint = ""
            if type_ == BOOL and value.type == NUMBER:
                hint = f" (compare it, e.g. '{_example(node)}')"
            self.fail(f"{where} needs a {type_} value, got a {value.type}{hint}", node)
            return Compiled(ERROR, "error")
        return value

    def visit_binary(self, node: ex.Binary) -> Compiled:
        if node.op in ("and", "or"):
            return self.logical(node)
        left = self.expect(node.left, NUMBER, f"'{node.op}'")
        right = self.expect(node.right, NUMBER, f"'{node.op}'")
        if ERROR in (left.type, right.type):
            return Compiled(ERROR, "error")
        ops: dict[str, Callable[[Value, Value], Value]] = {
            "+": np.add, "-": np.subtract, "*": np.multiply,
            "/": np.divide, "%": np.mod,
        }
        op = ops[node.op]

        def run(env: Env) -> Value:
            with np.errstate(divide="ignore", invalid="ignore"):
                return _nan_safe(op(left(env), right(env)))

        if left.is_const and right.is_const:
            return _const(NUMBER, float(run(Env({}, 0))))
        return _computed(NUMBER, f"({left.key} {node.op} {right.key})", run)

    def logical(self, node: ex.Binary) -> Compiled:
        left = self.expect(node.left, BOOL, f"'{node.op}'")
        right = self.expect(node.right, BOOL, f"'{node.op}'")
        if ERROR in (left.type, right.type):
            return Compiled(ERROR, "error")
        is_and = node.op == "and"
        # Constant sides fold away: "x and true" is x, "x or true" is true.
        for a, b in ((left, right), (right, left)):
            if a.is_const:
                if bool(a.const) != is_and:
                    return _const(BOOL, not is_and)
                return b
        op = np.logical_and if is_and else np.logical_or
        return _computed(BOOL, f"({left.key} {node.op} {right.key})",
                         lambda env: op(left(env), right(env)))

    def visit_compare(self, node: ex.Compare) -> Compiled:
        left, right = self.visit(node.left), self.visit(node.right)
        if ERROR in (left.type, right.type):
            return Compiled(ERROR, "error")
        op = node.op
        # A flag compared with a number is its 0/1 value: "is_night == 1" works too.
        if left.type == BOOL and left.column and right.type == NUMBER:
            left = _as_number(left)
        if right.type == BOOL and right.column and left.type == NUMBER:
            right = _as_number(right)
        # ...and with true/false: "is_night == false" is "is_night == 0" (false if missing).
        if op in ("==", "!=") and left.type == BOOL and right.type == BOOL:
            if left.column and right.is_const:
                left, right = _as_number(left), _const(NUMBER, float(bool(right.const)))
            elif right.column and left.is_const:
                left, right = _const(NUMBER, float(bool(left.const))), _as_number(right)
        if left.type != right.type:
            return self.fail(
                f"cannot compare {self.describe(node.left, left)} with "
                f"{self.describe(node.right, right)} using '{op}'",
                ex.Node(node.op_pos, node.op_pos))
        if left.type == BOOL:
            named = next((side.name for side in (node.left, node.right)
                          if isinstance(side, ex.Name)), None)
            example = (f"'{named}', 'not {named}'" if named else
                       "'A' for 'A == true', 'not (A)' for 'A == false'")
            return self.fail(
                f"true/false values are not compared with '{op}': use the condition itself "
                f"({example})", ex.Node(node.op_pos, node.op_pos))
        for side, value in ((node.left, left), (node.right, right)):
            if value.type == STRING and value.is_const and value.const == "":
                return self.fail("'' never matches (missing strings are ''): "
                                 "use 'x is missing'", side)
        if left.type == STRING and op not in ("==", "!="):
            return self.fail(f"strings can only be compared with == or !=, not '{op}'",
                             ex.Node(node.op_pos, node.op_pos))
        key = f"({left.key} {op} {right.key})"
        if left.is_const and right.is_const:
            return _const(BOOL, bool(_compare(op, left.type, left.const, right.const)))
        return _computed(BOOL, key,
                         lambda env: _compare(op, left.type, left(env), right(env)))

    def visit_in_list(self, node: ex.InList) -> Compiled:
        operand = self.visit(node.operand)
        if operand.type == ERROR:
            return operand
        if operand.type == BOOL:
            return self.fail("'in' needs a number or a string on its left", node.operand)
        items = node.items
        members: frozenset[Any]
        if isinstance(items, ex.Name):
            if items.name not in self.scope.lists:
                what = "a parameter" if items.name in self.scope.parameters else "not a list"
                names = sorted(self.scope.lists)
                close = difflib.get_close_matches(items.name, names, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                if items.name in self.scope.parameters:  # 'in' needs a list, not a lookalike
                    what, hint = "a parameter, not a list", ""
                return self.fail(f"{items.name!r} is {what}{hint}; lists defined under "
                                 f"'lists:': {', '.join(names) or '(none)'}", items)
            if operand.type != STRING:
                return self.fail(f"list {items.name!r} holds strings (ids) but the left side "
                                 f"of 'in' is a {operand.type}", node.operand)
            members, list_key = self.scope.lists[items.name], f"list:{items.name}"
        elif isinstance(items, ex.ListLit):
            kinds = {type(i.value) for i in items.items}
            want = float if operand.type == NUMBER else str
            if kinds - {want}:
                return self.fail(f"every item of this list must be a {operand.type}", items)
            members = frozenset(i.value for i in items.items if i.value != "")
            list_key = repr(sorted(members))
        else:
            return self.fail("expected a list after 'in'", items)
        negated = node.negated
        key = f"({operand.key} {'not in' if negated else 'in'} {list_key})"
        if operand.is_const:
            found = operand.const in members
            return _const(BOOL, found != negated)
        if operand.type == NUMBER:
            values = np.fromiter(members, dtype=np.float64, count=len(members))

            def run(env: Env) -> Array:
                col = operand(env)
                hit = np.isin(col, values)
                return ~hit & ~np.isnan(col) if negated else hit
        else:
            small = tuple(members) if len(members) <= _SMALL_LIST else None
            contains = members.__contains__

            def run(env: Env) -> Array:
                col = operand(env)
                if small is not None:  # a few vectorised == beat a per-value set lookup
                    hit = np.zeros(len(col), dtype=bool)
                    for item in small:
                        hit |= col == item
                else:
                    hit = np.fromiter(map(contains, col), dtype=bool, count=len(col))
                return ~hit & (col != "") if negated else hit
        return _computed(BOOL, key, run)

    def visit_between(self, node: ex.Between) -> Compiled:
        x = self.expect(node.operand, NUMBER, "'between'")
        lo = self.expect(node.low, NUMBER, "'between'")
        hi = self.expect(node.high, NUMBER, "'between'")
        if ERROR in (x.type, lo.type, hi.type):
            return Compiled(ERROR, "error")
        negated = node.negated

        def run(env: Env) -> Value:
            v, a, b = x(env), lo(env), hi(env)
            return (v < a) | (v > b) if negated else (v >= a) & (v <= b)

        if lo.is_const and hi.is_const and lo.const > hi.const:
            return self.fail(f"the range of 'between' is empty ({written_number(lo.const)} "
                             f"> {written_number(hi.const)}): put the smaller bound first",
                             node.low)
        if x.is_const and lo.is_const and hi.is_const:
            return _const(BOOL, bool(run(Env({}, 0))))
        word = "not between" if negated else "between"
        return _computed(BOOL, f"({x.key} {word} {lo.key} {hi.key})", run)

    def visit_is_missing(self, node: ex.IsMissing) -> Compiled:
        return self.missing(node.operand, node.negated)

    def missing(self, node: ex.Node, negated: bool) -> Compiled:
        value = self.visit(node)
        if value.type == ERROR:
            return value
        if value.type == BOOL and not value.column:
            return self.fail("only values can be missing, not a condition", node)
        key = f"({value.key} is {'not ' if negated else ''}missing)"
        if value.is_const:
            return _const(BOOL, negated)
        column = value.column
        if value.type == STRING:
            return _computed(BOOL, key, lambda env: (value(env) == "") != negated)
        return _computed(BOOL, key, lambda env: np.isnan(
            env.columns[column] if column else value(env)) != negated)

    def visit_call(self, node: ex.Call) -> Compiled:
        func, args = node.func, node.args
        arity = {"abs": (1, 1), "missing": (1, 1), "coalesce": (2, 2), "distance_km": (4, 4),
                 "min": (2, 99), "max": (2, 99)}
        if func not in arity:
            close = difflib.get_close_matches(func, FUNCTIONS, n=1)
            hint = f" (did you mean {close[0]}()?)" if close else ""
            return self.fail(f"unknown function {func}(){hint}; known: "
                             f"{', '.join(f + '()' for f in FUNCTIONS)}", node)
        low, high = arity[func]
        if not low <= len(args) <= high:
            want = str(low) if low == high else f"at least {low}"
            return self.fail(f"{func}() takes {want} argument(s), got {len(args)}", node)
        if func == "missing":
            return self.missing(args[0], False)
        if func == "coalesce":
            return self.coalesce(node)
        values = [self.expect(a, NUMBER, f"{func}()") for a in args]
        if any(v.type == ERROR for v in values):
            return Compiled(ERROR, "error")
        impl: Callable[..., Value]
        if func == "abs":
            impl = np.abs
        elif func == "distance_km":
            impl = _haversine_km
        else:
            pair = np.minimum if func == "min" else np.maximum

            def impl(*xs: Value) -> Value:
                out = xs[0]
                for x in xs[1:]:
                    out = pair(out, x)
                return out

        def run(env: Env) -> Value:
            return impl(*(v(env) for v in values))

        if all(v.is_const for v in values):
            return _const(NUMBER, float(run(Env({}, 0))))
        return _computed(NUMBER, f"{func}({', '.join(v.key for v in values)})", run)

    def coalesce(self, node: ex.Call) -> Compiled:
        first, second = self.visit(node.args[0]), self.visit(node.args[1])
        if ERROR in (first.type, second.type):
            return Compiled(ERROR, "error")
        if first.type != second.type or first.type == BOOL:
            return self.fail("coalesce(x, default) needs two numbers or two strings, got "
                             f"a {first.type} and a {second.type}", node)
        is_str = first.type == STRING

        def run(env: Env) -> Value:
            x = first(env)
            gone = (x == "") if is_str else np.isnan(x)
            return np.where(gone, second(env), x)

        if first.is_const:
            gone = first.const == "" if is_str else np.isnan(first.const)
            return second if gone else first
        return _computed(first.type, f"coalesce({first.key}, {second.key})", run)


def _example(node: ex.Node) -> str:
    """A comparison to suggest when a number is used as a condition."""
    return f"{node.name} == 1" if isinstance(node, ex.Name) else "score >= 0.9"


def _as_number(flag: Compiled) -> Compiled:
    name = flag.column
    return Compiled(NUMBER, name, fn=lambda env: env.columns[name], column=name)


def _compare(op: str, type_: str, a: Value, b: Value) -> Value:
    if type_ == NUMBER:
        if op == "!=":
            return (a != b) & ~np.isnan(a) & ~np.isnan(b)
        return {"==": np.equal, "<": np.less, "<=": np.less_equal, ">": np.greater,
                ">=": np.greater_equal}[op](a, b)
    # strings: "" is missing, and a comparison with a missing value is false
    if op == "==":
        return np.asarray((a == b) & (a != ""), dtype=bool)
    return np.asarray((a != b) & (a != "") & (b != ""), dtype=bool)


def _haversine_km(lat1: Value, lon1: Value, lat2: Value, lon2: Value) -> Value:
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp, dl = p2 - p1, np.radians(np.subtract(lon2, lon1))
    h = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * 6371.0088 * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))


def compile_condition(
    node: ex.Node, scope: Scope
) -> tuple[Callable[[Env], Array] | None, set[str], list[CompileError]]:
    """Compile a ``when``/``unless`` tree into a function returning one bool per row.

    Returns (function or None when there were errors, column names used, errors).
    """
    checker = _Checker(scope)
    try:
        value = checker.visit(node)
    except RecursionError:
        return None, set(), [CompileError("expression is nested too deeply", node.pos)]
    if value.type not in (BOOL, ERROR):
        hint = f" (compare it, e.g. '{_example(node)}')" if value.type == NUMBER else ""
        checker.fail(f"a condition must be true/false, but this is a {value.type}{hint}", node)
    if checker.errors:
        return None, checker.columns, checker.errors

    def condition(env: Env) -> Array:
        result = value(env)
        if isinstance(result, np.ndarray) and result.shape == (env.n,):
            return result
        return np.full(env.n, bool(result))  # a constant (or 0-d) condition

    return condition, checker.columns, []
