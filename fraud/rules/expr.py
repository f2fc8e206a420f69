"""The rule expression language: tokenizer and parser into an immutable tree.

Expressions are parsed once, at load time, into `Node` values; nothing is ever handed to
`eval`. Every node keeps the character offsets it came from so that errors found later (unknown
names, type mismatches) point at the exact spot in the rules file.

Precedence, loosest first: ``or``; ``and``; ``not``; comparisons (``== != < <= > >=``, ``in``,
``not in``, ``between .. and ..``, ``is [not] missing``; not chainable); ``+ -``; ``* / %``;
unary ``-``; atoms (numbers, 'strings', true/false, names, calls, ``[lists]``, parentheses).

>>> parse("score >= 0.9 and not user_id in allow_users").op
'and'
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

__all__ = [
    "Between",
    "Binary",
    "Call",
    "Compare",
    "ExprSyntaxError",
    "InList",
    "IsMissing",
    "ListLit",
    "Literal",
    "Name",
    "Node",
    "Not",
    "Token",
    "Unary",
    "parse",
    "tokenize",
]

MAX_LENGTH = 10_000  # characters; a rule is a line or a few, not a program
# Levels of nesting (parentheses, `not`, each operator of a chain). The compiled rule runs as
# nested calls, so a deeper tree would load and then fail on every batch; refuse it at load.
MAX_DEPTH = 150
KEYWORDS = frozenset({"and", "or", "not", "in", "between", "is", "missing", "true", "false"})
COMPARISONS = frozenset({"==", "!=", "<", "<=", ">", ">="})

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<num>(?:\d[\d_]*(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>==|!=|<=|>=|&&|\|\||[<>+\-*/%()\[\],=!&|])
    """,
    re.VERBOSE,
)

# Operators from other languages, refused with the spelling this language uses.
_FOREIGN = {"=": "use '==' to compare", "&&": "use 'and'", "||": "use 'or'",
            "!": "use 'not' (or '!=')", "&": "use 'and'", "|": "use 'or'"}


class ExprSyntaxError(ValueError):
    """A malformed expression; `offset` is the 0-based character position in the text."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # "num", "str", "name", "kw", "op", "end"
    text: str
    pos: int


@dataclass(frozen=True, slots=True)
class Node:
    """Base of the expression tree; `pos`/`end` are character offsets into the source."""

    pos: int
    end: int


@dataclass(frozen=True, slots=True)
class Literal(Node):
    value: float | str | bool


@dataclass(frozen=True, slots=True)
class Name(Node):
    name: str


@dataclass(frozen=True, slots=True)
class ListLit(Node):
    items: tuple[Literal, ...]


@dataclass(frozen=True, slots=True)
class Unary(Node):
    op: str  # "-"
    operand: Node


@dataclass(frozen=True, slots=True)
class Not(Node):
    operand: Node


@dataclass(frozen=True, slots=True)
class Binary(Node):
    op: str  # "+ - * / %" or "and" / "or"
    left: Node
    right: Node
    op_pos: int


@dataclass(frozen=True, slots=True)
class Compare(Node):
    op: str
    left: Node
    right: Node
    op_pos: int


@dataclass(frozen=True, slots=True)
class InList(Node):
    operand: Node
    items: Node  # Name of a list (or parameter, rejected by the compiler) or ListLit
    negated: bool


@dataclass(frozen=True, slots=True)
class Between(Node):
    operand: Node
    low: Node
    high: Node
    negated: bool


@dataclass(frozen=True, slots=True)
class IsMissing(Node):
    operand: Node
    negated: bool


@dataclass(frozen=True, slots=True)
class Call(Node):
    func: str
    args: tuple[Node, ...]


def _unescape(body: str) -> str:
    return re.sub(r"\\(.)", r"\1", body)


def tokenize(text: str) -> list[Token]:
    """Split `text` into tokens, ending with an ``end`` token; raise `ExprSyntaxError`."""
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            ch = text[pos]
            if ch in "'\"":
                raise ExprSyntaxError(f"unterminated string starting with {ch}", pos)
            raise ExprSyntaxError(f"unexpected character {ch!r}", pos)
        kind = m.lastgroup or ""
        value = m.group()
        if kind == "op" and value in _FOREIGN:
            raise ExprSyntaxError(f"unexpected {value!r}: {_FOREIGN[value]}", pos)
        if kind == "name" and value in KEYWORDS:
            kind = "kw"
        if kind != "ws":
            tokens.append(Token(kind, value, pos))
        pos = m.end()
    tokens.append(Token("end", "", len(text)))
    return tokens


def _describe(tok: Token) -> str:
    return "end of expression" if tok.kind == "end" else repr(tok.text)


# Binding powers: larger binds tighter.
_BP_OR, _BP_AND, _BP_NOT, _BP_CMP, _BP_ADD, _BP_MUL, _BP_UNARY = 1, 2, 3, 4, 5, 6, 7
_INFIX_ARITH = {"+": _BP_ADD, "-": _BP_ADD, "*": _BP_MUL, "/": _BP_MUL, "%": _BP_MUL}


class _Parser:
    """A Pratt parser: each token has a binding power; `expr(min_bp)` climbs over them."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def advance(self) -> Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def at(self, kind: str, text: str | None = None) -> bool:
        tok = self.tok
        return tok.kind == kind and (text is None or tok.text == text)

    def expect(self, kind: str, text: str, what: str) -> Token:
        if not self.at(kind, text):
            raise ExprSyntaxError(f"expected {what}, found {_describe(self.tok)}", self.tok.pos)
        return self.advance()

    def parse(self) -> Node:
        if self.at("end"):
            raise ExprSyntaxError("empty expression", 0)
        node = self.expr(0)
        if not self.at("end"):
            tok = self.tok
            hint = ""
            if tok.kind == "name" and tok.text.lower() in KEYWORDS:
                hint = f" (keywords are lower case: write '{tok.text.lower()}')"
            elif tok.kind in ("name", "num", "str") or tok.text == "(":
                hint = " (missing an operator such as 'and' or '==' before it?)"
            elif tok.text == ")":
                hint = " (there is no '(' for it to close)"
            raise ExprSyntaxError(f"unexpected {_describe(tok)}{hint}", tok.pos)
        return node

    def expr(self, min_bp: int) -> Node:
        left = self.prefix()
        while True:
            tok = self.tok
            if tok.kind == "kw" and tok.text == "or" and min_bp < _BP_OR:
                self.advance()
                right = self.expr(_BP_OR)
                left = Binary(left.pos, right.end, "or", left, right, tok.pos)
            elif tok.kind == "kw" and tok.text == "and" and min_bp < _BP_AND:
                self.advance()
                right = self.expr(_BP_AND)
                left = Binary(left.pos, right.end, "and", left, right, tok.pos)
            elif self.starts_comparison() and min_bp < _BP_CMP:
                left = self.comparison(left)
                if self.starts_comparison():
                    raise ExprSyntaxError(
                        "comparisons cannot be chained: join them with 'and' "
                        "(or use 'x between a and b')", self.tok.pos)
            elif tok.kind == "op" and tok.text in _INFIX_ARITH and min_bp < _INFIX_ARITH[tok.text]:
                self.advance()
                right = self.expr(_INFIX_ARITH[tok.text])
                left = Binary(left.pos, right.end, tok.text, left, right, tok.pos)
            else:
                return left

    def starts_comparison(self) -> bool:
        tok = self.tok
        if tok.kind == "op" and tok.text in COMPARISONS:
            return True
        if tok.kind == "kw" and tok.text in ("in", "between", "is"):
            return True
        nxt = self.tokens[self.i + 1] if self.i + 1 < len(self.tokens) else tok
        return tok.kind == "kw" and tok.text == "not" and nxt.text in ("in", "between")

    def comparison(self, left: Node) -> Node:
        tok = self.advance()
        if tok.kind == "op":
            right = self.expr(_BP_CMP)
            return Compare(left.pos, right.end, tok.text, left, right, tok.pos)
        negated = False
        if tok.text == "not":
            negated = True
            tok = self.advance()
        if tok.text == "in":
            items = self.list_operand()
            return InList(left.pos, items.end, left, items, negated)
        if tok.text == "between":
            low = self.expr(_BP_CMP)
            self.expect("kw", "and", "'and' between the two bounds of 'between'")
            high = self.expr(_BP_CMP)
            return Between(left.pos, high.end, left, low, high, negated)
        # "is [not] missing"
        if self.at("kw", "not"):
            self.advance()
            negated = True
        end_tok = self.expect("kw", "missing", "'missing' after 'is' (as in 'x is missing')")
        return IsMissing(left.pos, end_tok.pos + len(end_tok.text), left, negated)

    def list_operand(self) -> Node:
        tok = self.tok
        if tok.kind == "name":
            self.advance()
            return Name(tok.pos, tok.pos + len(tok.text), tok.text)
        if tok.kind == "op" and tok.text == "[":
            return self.list_literal()
        raise ExprSyntaxError(
            f"expected a list name or [literal, ...] after 'in', found {_describe(tok)}", tok.pos)

    def list_literal(self) -> ListLit:
        start = self.advance()
        items: list[Literal] = []
        while not self.at("op", "]"):
            node = self.prefix()
            if isinstance(node, Unary) and isinstance(node.operand, Literal):
                value = node.operand.value
                if isinstance(value, float):
                    node = Literal(node.pos, node.end, -value)
            if not isinstance(node, Literal):
                raise ExprSyntaxError(
                    "a [list] may only hold numbers and 'strings'; "
                    "use a named list under 'lists:' for anything else", node.pos)
            items.append(node)
            if not self.at("op", ","):
                break
            self.advance()
        end = self.expect("op", "]", "',' or ']' in the list")
        return ListLit(start.pos, end.pos + 1, tuple(items))

    def prefix(self) -> Node:
        tok = self.advance()
        end = tok.pos + len(tok.text)
        if tok.kind == "num":
            try:
                return Literal(tok.pos, end, float(tok.text.replace("_", "")))
            except ValueError:
                raise ExprSyntaxError(f"malformed number {tok.text!r}", tok.pos) from None
        if tok.kind == "str":
            return Literal(tok.pos, end, _unescape(tok.text[1:-1]))
        if tok.kind == "kw" and tok.text in ("true", "false"):
            return Literal(tok.pos, end, tok.text == "true")
        if tok.kind == "kw" and tok.text == "not":
            operand = self.expr(_BP_NOT)
            return Not(tok.pos, operand.end, operand)
        if tok.kind == "kw" and tok.text == "missing" and self.at("op", "("):
            return self.call(tok)
        if tok.kind == "name":
            if self.at("op", "("):
                return self.call(tok)
            return Name(tok.pos, end, tok.text)
        if tok.kind == "op" and tok.text == "-":
            operand = self.expr(_BP_UNARY)
            return Unary(tok.pos, operand.end, "-", operand)
        if tok.kind == "op" and tok.text == "(":
            inner = self.expr(0)
            opened = self.text[tok.pos:tok.pos + 16].rstrip()
            close = self.expect("op", ")", f"')' to close the '(' of {opened!r}")
            return _with_span(inner, tok.pos, close.pos + 1)
        if tok.kind == "op" and tok.text == "[":
            self.i -= 1
            return self.list_literal()
        if tok.kind == "end":
            raise ExprSyntaxError("expression ends too early: expected a value", tok.pos)
        raise ExprSyntaxError(f"expected a value, found {_describe(tok)}", tok.pos)

    def call(self, name_tok: Token) -> Call:
        self.advance()  # "("
        args: list[Node] = []
        while not self.at("op", ")"):
            args.append(self.expr(0))
            if not self.at("op", ","):
                break
            self.advance()
        close = self.expect("op", ")", f"',' or ')' in the call to {name_tok.text}()")
        return Call(name_tok.pos, close.pos + 1, name_tok.text, tuple(args))


def _with_span(node: Node, pos: int, end: int) -> Node:
    """`node` re-spanned to include its parentheses (for error carets only)."""
    return dataclasses.replace(node, pos=pos, end=end)


def parse(text: str) -> Node:
    """Parse one expression; raise `ExprSyntaxError` with the offset of the first problem."""
    if len(text) > MAX_LENGTH:
        raise ExprSyntaxError(f"expression is too long ({len(text)} characters, at most "
                              f"{MAX_LENGTH})", MAX_LENGTH)
    try:
        tree = _Parser(text).parse()
    except RecursionError:
        raise ExprSyntaxError("expression is nested too deeply", 0) from None
    deepest = _deepest(tree)
    if deepest is not None:
        raise ExprSyntaxError(f"expression is nested too deeply (more than {MAX_DEPTH} levels of "
                              "'not', unary '-' or chained operators): use 'x in [...]' "
                              "for long 'or' chains, or split it into several rules", deepest.pos)
    return tree


def _deepest(tree: Node) -> Node | None:
    """The first node nested deeper than `MAX_DEPTH`, or None (iterative: no recursion)."""
    stack: list[tuple[Node, int]] = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            return node
        for f in dataclasses.fields(node):
            value = getattr(node, f.name)
            children = value if isinstance(value, tuple) else (value,)
            stack.extend((c, depth + 1) for c in children if isinstance(c, Node))
    return None
