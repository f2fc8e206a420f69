"""The rule expression parser: precedence, positions, and errors that point at the problem."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fraud.rules import expr as ex


def show(node: ex.Node) -> str:
    """A fully parenthesised rendering, to assert on the tree's shape."""
    if isinstance(node, ex.Literal):
        return repr(node.value)
    if isinstance(node, ex.Name):
        return node.name
    if isinstance(node, ex.Unary):
        return f"(-{show(node.operand)})"
    if isinstance(node, ex.Not):
        return f"(not {show(node.operand)})"
    if isinstance(node, ex.Binary | ex.Compare):
        return f"({show(node.left)} {node.op} {show(node.right)})"
    if isinstance(node, ex.InList):
        word = "not in" if node.negated else "in"
        return f"({show(node.operand)} {word} {show(node.items)})"
    if isinstance(node, ex.ListLit):
        return "[" + ", ".join(show(i) for i in node.items) + "]"
    if isinstance(node, ex.Between):
        return f"({show(node.operand)} between {show(node.low)} {show(node.high)})"
    if isinstance(node, ex.IsMissing):
        return f"({show(node.operand)} is {'not ' if node.negated else ''}missing)"
    if isinstance(node, ex.Call):
        return f"{node.func}(" + ", ".join(show(a) for a in node.args) + ")"
    raise AssertionError(node)


@pytest.mark.parametrize(("text", "tree"), [
    ("a or b and c", "(a or (b and c))"),
    ("a and b or c", "((a and b) or c)"),
    ("not a and b", "((not a) and b)"),
    ("not x > 1", "(not (x > 1.0))"),
    ("not x in L", "(not (x in L))"),
    ("x not in L", "(x not in L)"),
    ("a + b * c > d - e / f", "((a + (b * c)) > (d - (e / f)))"),
    ("a - b - c", "((a - b) - c)"),
    ("-a * b", "((-a) * b)"),
    ("(a + b) * c", "((a + b) * c)"),
    ("x between 1 and 2 and y", "((x between 1.0 2.0) and y)"),
    ("x between a + 1 and b * 2", "(x between (a + 1.0) (b * 2.0))"),
    ("score is missing or score < 0.5", "((score is missing) or (score < 0.5))"),
    ("score is not missing", "(score is not missing)"),
    ("missing(score)", "missing(score)"),
    ("max(a, b, 3) >= 1_000", "(max(a, b, 3.0) >= 1000.0)"),
    ("c in ['x', \"y\"]", "(c in ['x', 'y'])"),
    ("h in [1, -2, 3.5]", "(h in [1.0, -2.0, 3.5])"),
    ("s == 'it\\'s'", "(s == \"it's\")"),
    ("true and false", "(True and False)"),
])
def test_precedence(text: str, tree: str) -> None:
    assert show(ex.parse(text)) == tree


@pytest.mark.parametrize(("text", "offset", "fragment"), [
    ("amount = 5", 7, "use '=='"),
    ("a && b", 2, "use 'and'"),
    ("a || b", 2, "use 'or'"),
    ("a > ", 4, "ends too early"),
    ("(a > 1", 6, "')'"),
    ("a > 1)", 5, "unexpected ')'"),
    ("a < b < c", 6, "cannot be chained"),
    ("x between 1 or 2", 12, "'and' between"),
    ("x is nothing", 5, "'missing'"),
    ("name 'abc", 5, "unterminated string"),
    ("a # b", 2, "unexpected character"),
    ("amount 5", 7, "missing an operator"),
    ("", 0, "empty expression"),
    ("x in 5", 5, "list name"),
    ("x in [a]", 6, "only hold numbers"),
    ("f(1, 2", 6, "',' or ')'"),
])
def test_syntax_errors_point_at_the_problem(text: str, offset: int, fragment: str) -> None:
    with pytest.raises(ex.ExprSyntaxError) as info:
        ex.parse(text)
    assert info.value.offset == offset
    assert fragment in info.value.message


def test_nodes_keep_their_spans() -> None:
    node = ex.parse("score >= 0.9 and user_id in deny")
    assert isinstance(node, ex.Binary)
    assert node.op_pos == 13
    assert isinstance(node.right, ex.InList)
    assert (node.right.pos, node.right.end) == (17, 32)


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet="ab1.()[]<>=!&|'\" ,+-*/%_ inotandbetweenismissing", max_size=40))
def test_any_text_parses_or_fails_cleanly(text: str) -> None:
    # The parser must never crash with anything but a positioned syntax error.
    try:
        ex.parse(text)
    except ex.ExprSyntaxError as exc:
        assert 0 <= exc.offset <= len(text)


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    with pytest.raises(ex.ExprSyntaxError, match="nested too deeply"):
        ex.parse("(" * 3000 + "a" + ")" * 3000)
