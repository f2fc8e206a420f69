"""Plain Python values to DynamoDB's typed attribute values and back.

boto3's own serializer insists on `Decimal` for numbers; the pipeline deals in floats and
NumPy scalars, so this small codec takes those directly (NaN and infinities are refused:
DynamoDB cannot store them) and gives back `int` for integral numbers, `float` otherwise.

>>> to_item({"user_id": "u1", "n": 3, "ok": True})
{'user_id': {'S': 'u1'}, 'n': {'N': '3'}, 'ok': {'BOOL': True}}
>>> from_item(to_item({"a": [1, 2.5, None], "s": {7, 9}})) == {"a": [1, 2.5, None], "s": {7, 9}}
True
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["from_attr", "from_item", "number_text", "to_attr", "to_item"]


def number_text(value: Any) -> str:
    """The DynamoDB `N` text of an int or finite float."""
    if isinstance(value, bool):
        raise TypeError("a bool is not a number here")
    if isinstance(value, int | np.integer):
        return str(int(value))
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"DynamoDB cannot store the number {number!r}")
    if number.is_integer() and abs(number) < 2**53:
        return str(int(number))
    return repr(number)


def to_attr(value: Any) -> dict[str, Any]:
    """One typed attribute value."""
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool | np.bool_):
        return {"BOOL": bool(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"B": bytes(value)}
    if isinstance(value, int | float | np.integer | np.floating):
        return {"N": number_text(value)}
    if isinstance(value, Mapping):
        return {"M": {str(k): to_attr(v) for k, v in value.items()}}
    if isinstance(value, set | frozenset):
        if not value:
            raise ValueError("DynamoDB cannot store an empty set")
        if all(isinstance(v, str) for v in value):
            return {"SS": sorted(value)}
        return {"NS": sorted(number_text(v) for v in value)}
    if isinstance(value, list | tuple):
        return {"L": [to_attr(v) for v in value]}
    raise TypeError(f"cannot store a {type(value).__name__} in DynamoDB")


def to_item(values: Mapping[str, Any]) -> dict[str, Any]:
    """A typed item (or key) from a mapping of plain values."""
    return {name: to_attr(value) for name, value in values.items()}


def _number(text: str) -> int | float:
    if any(c in text for c in ".eE"):
        number = float(text)
        return int(number) if number.is_integer() and "." not in text else number
    return int(text)


def from_attr(attr: Mapping[str, Any]) -> Any:
    """The plain value of one typed attribute value."""
    (kind, raw), = attr.items()
    if kind == "S":
        return raw
    if kind == "N":
        return _number(raw)
    if kind == "B":
        return bytes(raw)
    if kind == "BOOL":
        return bool(raw)
    if kind == "NULL":
        return None
    if kind == "M":
        return {k: from_attr(v) for k, v in raw.items()}
    if kind == "L":
        return [from_attr(v) for v in raw]
    if kind == "SS":
        return set(raw)
    if kind == "NS":
        return {_number(v) for v in raw}
    if kind == "BS":
        return {bytes(v) for v in raw}
    raise ValueError(f"unknown DynamoDB attribute type {kind!r}")


def from_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """A plain mapping from a typed item."""
    return {name: from_attr(attr) for name, attr in item.items()}
