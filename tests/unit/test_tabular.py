"""One writer for CSV, JSON Lines and Parquet; the format follows the extension."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from fraud.errors import InputError
from fraud.tabular import TableWriter, format_of, write_columns


def columns() -> dict[str, np.ndarray]:
    return {
        "id": np.array(["a", "b"], dtype=object),
        "x": np.array([1.5, 2.0]),
        "n": np.array([1, 2], dtype=np.int64),
    }


@pytest.mark.parametrize(
    ("name", "fmt"),
    [("a.csv", "csv"), ("a.csv.gz", "csv"), ("a.jsonl", "jsonl"), ("a.parquet", "parquet")],
)
def test_format_of(name: str, fmt: str) -> None:
    assert format_of(name) == fmt


def test_unknown_extension_is_an_input_error() -> None:
    with pytest.raises(InputError, match="unknown file type"):
        format_of("a.xlsx")


def test_jsonl_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "o.jsonl"
    assert write_columns(path, columns()) == 2
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert rows == [{"id": "a", "x": 1.5, "n": 1}, {"id": "b", "x": 2.0, "n": 2}]


def test_parquet_appends_chunks(tmp_path: Path) -> None:
    path = tmp_path / "o.parquet"
    with TableWriter(path) as w:
        w.write(columns())
        w.write(columns())
    assert pq.read_table(path).num_rows == 4


def test_csv_has_one_header(tmp_path: Path) -> None:
    path = tmp_path / "o.csv"
    with TableWriter(path) as w:
        w.write(columns())
        w.write(columns())
    lines = path.read_text().splitlines()
    assert len(lines) == 5
    assert lines[0] == '"id","x","n"'
