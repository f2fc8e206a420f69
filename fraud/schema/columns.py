"""``--columns``: map canonical field names to the column names of a foreign export.

Teams bring files whose columns are called ``CUSTOMER_ID`` or ``TX_DATETIME``. Rather than
asking them to rewrite their exports, every command that reads transactions takes
``--columns user_id=CUSTOMER_ID,terminal_id=TERMINAL_ID,timestamp=TX_DATETIME``. Fields that
are not mapped are looked up under their canonical name. A column name may contain ``=``
(only the first one splits) but not ``,``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import click

from fraud.errors import InputError
from fraud.schema.batch import OPTIONAL_FLOAT_FIELDS, OPTIONAL_STRING_FIELDS, REQUIRED_FIELDS

__all__ = ["CANONICAL_FIELDS", "COLUMNS", "LABEL_FIELDS", "ColumnMap", "ColumnMapType"]

LABEL_FIELDS = ("is_fraud", "label_time")
CANONICAL_FIELDS: tuple[str, ...] = (
    *REQUIRED_FIELDS, *OPTIONAL_STRING_FIELDS, *OPTIONAL_FLOAT_FIELDS, *LABEL_FIELDS,
)


@dataclass(frozen=True, slots=True)
class ColumnMap:
    """Canonical field -> source column name, for the fields that are renamed.

    >>> cm = ColumnMap.parse("user_id=CUSTOMER_ID, terminal_id=TERMINAL_ID")
    >>> cm.source("user_id"), cm.source("amount")
    ('CUSTOMER_ID', 'amount')
    >>> str(cm)
    'user_id=CUSTOMER_ID,terminal_id=TERMINAL_ID'
    """

    mapping: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        seen: dict[str, str] = {}
        for canonical, source in self.mapping.items():
            if canonical not in CANONICAL_FIELDS:
                raise InputError(
                    f"--columns: unknown field {canonical!r}; "
                    f"known fields: {', '.join(CANONICAL_FIELDS)}"
                )
            if not source:
                raise InputError(f"--columns: empty column name for field {canonical!r}")
            if source in seen:
                raise InputError(
                    f"--columns: column {source!r} is mapped to both "
                    f"{seen[source]!r} and {canonical!r}"
                )
            seen[source] = canonical

    @classmethod
    def parse(cls, text: str) -> ColumnMap:
        """Parse ``field=COLUMN,field=COLUMN``; raises `InputError` saying what is wrong."""
        mapping: dict[str, str] = {}
        for raw in text.split(","):
            item = raw.strip()
            if not item:
                continue
            canonical, sep, source = item.partition("=")
            canonical, source = canonical.strip(), source.strip()
            if not sep or not canonical or not source:
                raise InputError(
                    f"--columns: malformed pair {item[:60]!r}; expected field=COLUMN, "
                    "e.g. user_id=CUSTOMER_ID"
                )
            if canonical in mapping:
                raise InputError(f"--columns: field {canonical!r} is mapped twice")
            mapping[canonical] = source
        return cls(mapping)

    def source(self, canonical: str) -> str:
        """The column name to read `canonical` from."""
        return self.mapping.get(canonical, canonical)

    def sources(self, fields: tuple[str, ...] = CANONICAL_FIELDS) -> dict[str, str]:
        """Canonical field -> column name for each of `fields`."""
        return {name: self.source(name) for name in fields}

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.mapping.items())

    def __str__(self) -> str:
        return ",".join(f"{k}={v}" for k, v in self.mapping.items())


if TYPE_CHECKING:  # click >= 8.2 types ParamType as a generic; older clicks do not subscript.
    _ColumnsParamBase = click.ParamType[ColumnMap, Any]
else:
    _ColumnsParamBase = click.ParamType


class ColumnMapType(_ColumnsParamBase):
    """click type for ``--columns``; a bad mapping is a usage error (exit code 2)."""

    name = "field=COLUMN,..."

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> ColumnMap:
        if isinstance(value, ColumnMap):
            return value
        try:
            return ColumnMap.parse(str(value))
        except InputError as exc:
            self.fail(str(exc).removeprefix("--columns: "), param, ctx)


COLUMNS = ColumnMapType()
