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
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "TypedColumn",
    "from_attr",
    "from_item",
    "number_column",
    "number_text",
    "string_column",
    "to_attr",
    "to_item",
    "typed_items",
]

TypedColumn = list[dict[str, Any] | None]


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


# -- whole columns at once ------------------------------------------------------------------
# A batch's items (e.g. 10,000 history rows) marshalled value by value cost more CPU than the
# rest of the write; these convert a column's numbers to text in one NumPy call instead.


def number_column(values: npt.ArrayLike) -> TypedColumn:
    """Typed ``N`` attributes of a numeric column; None where the value is NaN or infinite.

    The same text as `number_text` (integral floats below 2**53 without a fraction).

    >>> number_column(np.array([3.0, 2.5, np.nan]))
    [{'N': '3'}, {'N': '2.5'}, None]
    >>> number_column(np.array([7, -1], dtype=np.int64))
    [{'N': '7'}, {'N': '-1'}]
    """
    arr = np.asarray(values)
    if arr.dtype.kind in "iu":
        return [{"N": t} for t in arr.astype(np.int64).astype(str).tolist()]
    if arr.dtype.kind not in "f":
        raise TypeError(f"not a numeric column: dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    finite = np.isfinite(arr)
    safe = np.where(finite, arr, 0.0)
    integral = (safe == np.trunc(safe)) & (np.abs(safe) < 2.0**53)
    texts = np.where(integral, np.where(integral, safe, 0.0).astype(np.int64).astype(str),
                     safe.astype(str))
    return [{"N": t} if ok else None
            for t, ok in zip(texts.tolist(), finite.tolist(), strict=True)]


def string_column(values: Sequence[Any] | npt.NDArray[np.object_],
                  *, required: bool = False) -> TypedColumn:
    """Typed ``S`` attributes of a string column; None for "" unless `required`.

    >>> string_column(np.array(["a", ""], dtype=object))
    [{'S': 'a'}, None]
    """
    texts = values.tolist() if isinstance(values, np.ndarray) else list(values)
    if required:
        return [{"S": str(t)} for t in texts]
    return [{"S": str(t)} if t else None for t in texts]


def typed_items(columns: Mapping[str, TypedColumn]) -> list[dict[str, Any]]:
    """Rows of typed items from equally long typed columns (None leaves the attribute out).

    >>> typed_items({"k": string_column(["a", "b"]), "n": number_column([1.5, np.nan])})
    [{'k': {'S': 'a'}, 'n': {'N': '1.5'}}, {'k': {'S': 'b'}}]
    """
    names = list(columns)
    return [{k: v for k, v in zip(names, row, strict=True) if v is not None}
            for row in zip(*columns.values(), strict=True)]
