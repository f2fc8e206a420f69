"""Reason templates: ``"score {score:.2f} >= {block_score}"`` filled from a matched row.

Placeholders are checked at load time (the name must be a column or a parameter, the format
spec must suit its type), so a typo never turns into a broken decision record at 3 a.m.
Missing values render as ``missing``. Text is built only for the rows a rule matched.
"""

from __future__ import annotations

import difflib
import math
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from fraud.rules.compiler import CompileError, Scope

__all__ = ["ReasonTemplate", "compile_reason"]

MISSING_TEXT = "missing"
MAX_FORMAT_WIDTH = 200  # a reason is a line in a case file, not a layout engine


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    spec: str
    kind: str  # "number", "string", "flag" or "param"
    const: Any = None


@dataclass(frozen=True, slots=True)
class ReasonTemplate:
    """A parsed template: literal text and fields, alternating."""

    text: str
    parts: tuple[str | _Field, ...]

    @property
    def columns(self) -> frozenset[str]:
        return frozenset(p.name for p in self.parts if isinstance(p, _Field) and p.kind != "param")

    def render(self, columns: Mapping[str, Any], rows: npt.ArrayLike) -> list[str]:
        """The text for each of `rows` (indices into the batch's columns)."""
        index = np.asarray(rows, dtype=np.intp)
        # Constants are formatted once; each column field is formatted as one list; the
        # pieces are then joined row by row with a single str.format per row.
        pattern: list[str] = []
        lists: list[list[str]] = []
        for part in self.parts:
            if isinstance(part, str):
                pattern.append(part.replace("{", "{{").replace("}", "}}"))
            elif part.kind == "param":
                pattern.append(_format(part, part.const).replace("{", "{{").replace("}", "}}"))
            else:
                pattern.append("{}")
                values = columns[part.name][index].tolist()
                lists.append(_format_many(part, values))
        template = "".join(pattern)
        if not lists:
            return [template.replace("{{", "{").replace("}}", "}")] * len(index)
        fill = template.format
        return [fill(*row) for row in zip(*lists, strict=True)]


def _plain_number(value: float) -> str:
    # Whole numbers up to 2**53 (every float64 integer is exact there, timestamps in
    # microseconds included) print in full; others in plain decimals with at most 6 places
    # (an amount of 1234567.89 stays that, not 1.23457e+06); only the very small or very
    # large fall back to 6 significant digits with an exponent.
    if value.is_integer() and abs(value) <= 2**53:
        return str(int(value))
    if 1e-4 <= abs(value) < 1e15:
        return f"{value:.6f}".rstrip("0").rstrip(".")
    return f"{value:.6g}"


def _format_many(field: _Field, values: list[Any]) -> list[str]:
    """`_format` over a column's values, with the common cases as tight comprehensions."""
    missing = MISSING_TEXT
    if field.kind == "string" and not field.spec:
        return [v or missing for v in values]
    if field.kind == "number":
        isnan = math.isnan
        if field.spec:
            fmt = ("{:" + field.spec + "}").format
            return [missing if isnan(v) else fmt(v) for v in values]
        return [missing if isnan(v) else _plain_number(v) for v in values]
    return [_format(field, v) for v in values]


def _format(field: _Field, value: Any) -> str:
    if field.kind == "flag":
        value = MISSING_TEXT if math.isnan(value) else ("true" if value == 1.0 else "false")
        return format(value, field.spec)
    if isinstance(value, float) and math.isnan(value):
        return MISSING_TEXT
    if value == "" and field.kind == "string":
        return MISSING_TEXT
    if isinstance(value, bool):
        return format("true" if value else "false", field.spec)
    if isinstance(value, float) and not field.spec:
        return _plain_number(value)
    return format(value, field.spec)


def compile_reason(text: str, scope: Scope) -> tuple[ReasonTemplate | None, list[CompileError]]:
    """Parse `text`; errors carry the offset of the bad placeholder within `text`."""
    try:
        pieces = list(string.Formatter().parse(text))
    except ValueError as exc:
        return None, [CompileError(f"malformed reason template: {exc} "
                                   "(write '{{' and '}}' for literal braces)", 0)]
    parts: list[str | _Field] = []
    errors: list[CompileError] = []
    offset = 0
    for literal, name, spec, conversion in pieces:
        offset += len(literal.replace("{", "{{").replace("}", "}}"))
        if literal:
            parts.append(literal)
        if name is None:
            continue
        where = offset + 1
        offset += len(name) + 2 + (len(spec) + 1 if spec else 0) + (2 if conversion else 0)
        field = _resolve(name, spec or "", conversion, scope, where=where, errors=errors)
        if field is not None:
            parts.append(field)
    return (None, errors) if errors else (ReasonTemplate(text, tuple(parts)), [])


def _resolve(name: str, spec: str, conversion: str | None, scope: Scope, *, where: int,
             errors: list[CompileError]) -> _Field | None:
    if conversion:
        errors.append(CompileError(f"'!{conversion}' is not supported in reasons", where))
        return None
    if not name.isidentifier():
        errors.append(CompileError(
            f"placeholder {{{name}}} must be a plain name (a field, feature or parameter)",
            where))
        return None
    kind = scope.vocabulary.kind(name)
    sample: Any
    if kind is not None:
        field = _Field(name, spec, kind)
        sample = {"number": 1.5, "flag": 1.0}.get(kind, "x")
    elif name in scope.parameters:
        field = _Field(name, spec, "param", scope.parameters[name])
        sample = field.const
    else:
        close = difflib.get_close_matches(
            name, sorted(scope.vocabulary.names | set(scope.parameters)), n=1)
        hint = f" (did you mean {{{close[0]}}}?)" if close else ""
        errors.append(CompileError(
            f"unknown placeholder {{{name}}}{hint}; expected a transaction field, feature, "
            "'score' or a parameter", where))
        return None
    widest = max((int(n) for n in re.findall(r"\d+", spec)), default=0)
    if widest > MAX_FORMAT_WIDTH:
        # Checked before the trial format below: {amount:>999999999} would build a gigabyte.
        errors.append(CompileError(f"bad format {{{name}:{spec}}}: widths and precisions of "
                                   f"at most {MAX_FORMAT_WIDTH}, got {widest}", where))
        return None
    try:
        _format(field, sample)
    except (ValueError, TypeError) as exc:
        hint = (" (numbers are decimals: '.0f' prints a whole number)"
                if spec.endswith(("d", "n")) and isinstance(sample, float) else "")
        if kind == "flag" or isinstance(sample, bool):
            hint = " (true/false values print as the text 'true'/'false': use a text format " \
                   "such as '>5')"
        errors.append(CompileError(f"bad format {{{name}:{spec}}} for a {kind or 'parameter'}: "
                                   f"{exc}{hint}", where))
        return None
    return field
