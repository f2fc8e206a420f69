"""Text columns decode the same whether converted row by row or through a dictionary."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from fraud.schema.decode import RawColumn, decode_text


def _plain(values: list[str | None], max_chars: int) -> tuple[list[str], list[bool], list[int]]:
    out, missing, codes = [], [], []
    for v in values:
        too_long = v is not None and len(v) > max_chars
        out.append("" if v is None or too_long else v)
        missing.append(v is None or v == "")
        codes.append(5 if too_long else 0)  # TOO_LONG
    return out, missing, codes


@pytest.mark.parametrize("distinct", [3, 2_000, 40_000])
def test_repeated_and_distinct_columns_decode_alike(distinct: int) -> None:
    rng = np.random.default_rng(distinct)
    words = ["", "é", "x" * 9, "U1", None, *(f"user-{i}" for i in range(distinct))]
    values = [words[i] for i in rng.integers(0, len(words), 40_000).tolist()]
    arr = pa.array(values, pa.string()).slice(3)  # a slice: offsets do not start at 0
    out, missing, codes = decode_text(RawColumn(arr), max_chars=8)
    want = _plain(values[3:], 8)
    assert out.dtype == object
    assert out.tolist() == want[0]
    assert missing.tolist() == want[1]
    assert codes.tolist() == want[2]
    out[0] = "changed"  # the rows are the caller's own array, not a shared table
    assert decode_text(RawColumn(arr), max_chars=8)[0][0] == want[0][0]
