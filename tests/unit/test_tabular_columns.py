"""Arrow text columns (`fraud.tabular`) and the replay output built from them: the same cells
and the same file bytes as the object-array way they replace."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fraud.tabular import (
    TableWriter,
    constant_text,
    iso_utc_column,
    lookup_text,
    sparse_text,
)

# 0001-01-01 .. 9999-12-31 (the kernel's range) and a little either side (numpy's way).
_LOW, _HIGH = -62_135_596_800_000_000, 253_402_300_800_000_000
_TIMES = st.one_of(st.integers(_LOW, _HIGH - 1), st.integers(-10**12, 10**16),
                   st.integers(_LOW - 10**15, _LOW), st.integers(_HIGH, _HIGH + 10**15))


def _numpy_iso(ts: np.ndarray, unit: str) -> list[str]:
    text = np.datetime_as_string(ts.astype("datetime64[us]"), unit=unit, timezone="UTC")
    return [str(x) for x in text.tolist()]


@settings(max_examples=150, deadline=None)
@given(st.lists(_TIMES, max_size=40), st.booleans())
def test_iso_column_equals_numpy(values: list[int], whole_ms: bool) -> None:
    ts = np.asarray(values, dtype=np.int64)
    if whole_ms:
        ts = ts - ts % 1000
    unit = "ms" if not np.any(ts % 1000) else "us"
    assert iso_utc_column(ts).to_pylist() == _numpy_iso(ts, unit)
    assert iso_utc_column(ts).type == pa.string()


def test_iso_column_dates_change_inside_sorted_input() -> None:
    # The kernel reuses a day's date text while the day does not change.
    day = 86_400_000_000
    ts = np.array([day - 1, day, day + 1, 59 * day, 60 * day - 1, 60 * day], dtype=np.int64)
    assert iso_utc_column(ts).to_pylist() == _numpy_iso(ts, "us")
    assert iso_utc_column(ts).to_pylist()[3] == "1970-03-01T00:00:00.000000Z"


def test_lookup_constant_and_sparse_text() -> None:
    assert lookup_text(np.array([3, 0, 1], np.int8), ["", "flag", "alert", "block"]
                       ).to_pylist() == ["block", "", "flag"]
    assert constant_text("v", 0).to_pylist() == []
    assert sparse_text(4, np.array([0, 3]), ["a", 'b "q"']).to_pylist() == [
        "a", "", "", 'b "q"']
    assert sparse_text(0, np.zeros(0, np.int64), []).to_pylist() == []


def _columns(arrow: bool) -> dict[str, object]:
    ts = np.array([0, 1_500_001, 86_400_000_000], dtype=np.int64)
    texts = ["", 'say "hi", ok', "é;x"]
    if arrow:
        return {"id": np.array(["a", "b", "c"], dtype=object), "timestamp": iso_utc_column(ts),
                "score": np.array([0.1, np.nan, 1.0]),
                "action": lookup_text(np.array([0, 3, 1]), ["", "flag", "alert", "block"]),
                "text": sparse_text(3, np.array([1, 2]), texts[1:]),
                "version": constant_text("v1", 3)}
    return {"id": np.array(["a", "b", "c"], dtype=object),
            "timestamp": np.asarray(_numpy_iso(ts, "us"), dtype=object),
            "score": np.array([0.1, np.nan, 1.0]),
            "action": np.array(["", "block", "flag"], dtype=object),
            "text": np.array(texts, dtype=object),
            "version": np.array(["v1"] * 3, dtype=object)}


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_arrow_columns_write_the_same_file_as_object_arrays(tmp_path: Path,
                                                            suffix: str) -> None:
    digests = []
    for arrow in (False, True):
        path = tmp_path / f"{arrow}{suffix}"
        with TableWriter(path) as writer:
            writer.write(_columns(arrow))  # type: ignore[arg-type]
            writer.write(_columns(arrow))  # type: ignore[arg-type]
        assert writer.rows == 6
        if suffix == ".parquet":
            table = pq.read_table(path)
            digests.append((str(table.schema), [repr(table.to_pylist())]))
        else:
            digests.append((hashlib.md5(path.read_bytes()).hexdigest(), []))
    assert digests[0] == digests[1]
