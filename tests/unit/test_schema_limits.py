"""Files refuse what a Kinesis payload refuses: oversized records, late keys, mapping typos.

Each test here pins a gap an outside reviewer found: a CSV or Parquet row of megabytes went
through while the same JSON record was refused; a JSON Lines key first seen after the
peeked records (label_time on the rare fraud row) was dropped for the whole file; a
``--columns`` entry naming an absent optional column was silently ignored.
"""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fraud.errors import InputError
from fraud.schema import ColumnMap, Limits, parse_payloads, read_all
from fraud.schema.batch import MISSING_TIME, REQUIRED_FIELDS
from fraud.schema.decode import show

HEADER = "transaction_id,timestamp,user_id,terminal_id,amount,note"
LIMITS = Limits(max_record_bytes=200)


def _reasons(result: Any) -> list[tuple[str, str, str]]:
    return [(r.position, r.field, r.reason) for r in result.rejections]


def test_oversized_csv_row_is_refused_like_an_oversized_payload(tmp_path: Path) -> None:
    path = tmp_path / "tx.csv"
    path.write_text(f"{HEADER}\na,2024-01-01,u,m,1,{'x' * 300}\nb,2024-01-01,u,m,1,ok\n")
    result = read_all(path, limits=LIMITS)
    assert result.batch.transaction_id.tolist() == ["b"]
    too_large = "record too large (more than 200 bytes)"
    assert _reasons(result) == [("line 2", "record", too_large)]
    payload = json.dumps({"transaction_id": "a", "timestamp": "2024-01-01", "user_id": "u",
                          "terminal_id": "m", "amount": 1, "note": "x" * 300}).encode()
    assert [r.reason for r in parse_payloads([payload], ["s1"], limits=LIMITS).rejections] == [
        too_large]


def test_oversized_row_keeps_line_numbers_and_other_rejections(tmp_path: Path) -> None:
    path = tmp_path / "tx.csv"
    path.write_text(f"{HEADER}\n\na,2024-01-01,u,m,-1,\nb,2024-01-01,u,m,1,\"{'y' * 300}\n"
                    "z\"\nc,2024-01-01,u,m,1,\n")
    result = read_all(path, limits=LIMITS, chunk_rows=1)
    assert result.batch.transaction_id.tolist() == ["c"]
    assert [(p, f) for p, f, _ in _reasons(result)] == [("line 3", "amount"),
                                                        ("line 4", "record")]
    assert result.batch.position.tolist() == ["line 6"]


def test_oversized_parquet_row_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "tx.parquet"
    pq.write_table(pa.table({
        "transaction_id": ["a", "b"], "timestamp": ["2024-01-01", "2024-01-01"],
        "user_id": ["u", "u"], "terminal_id": ["m", "m"], "amount": [1.0, 2.0],
        "note": ["x" * 300, "ok"],
    }), path)
    result = read_all(path, limits=LIMITS)
    assert result.batch.transaction_id.tolist() == ["b"]
    assert _reasons(result) == [("row 1", "record", "record too large (more than 200 bytes)")]


def test_default_limit_leaves_ordinary_rows_alone(tmp_path: Path) -> None:
    path = tmp_path / "tx.csv"
    path.write_text(f"{HEADER}\na,2024-01-01,u,m,1,{'x' * 300}\n")
    assert len(read_all(path).batch) == 1


def test_jsonl_keys_first_seen_after_the_peek_still_count(tmp_path: Path) -> None:
    path = tmp_path / "tx.jsonl"
    rows = []
    for i in range(150):
        row: dict[str, Any] = {"transaction_id": f"t{i}", "timestamp": "2024-01-01T00:00:00Z",
                               "user_id": "u", "terminal_id": "m", "amount": 1.0}
        if i >= 120:
            row.update(is_fraud=1, label_time="2024-01-09T00:00:00Z")
        if i == 149:
            row["lat"] = 95.0
        rows.append(json.dumps(row))
    path.write_text("\n".join(rows) + "\n")
    result = read_all(path)
    batch = result.batch
    assert len(batch) == 149
    assert batch.is_fraud.tolist() == [-1] * 120 + [1] * 29
    assert (batch.label_time_us[120:] != MISSING_TIME).all()
    assert _reasons(result) == [("line 150", "lat", "out of range [-90, 90]")]


def test_jsonl_mapped_key_first_seen_late_is_read(tmp_path: Path) -> None:
    path = tmp_path / "tx.jsonl"
    rows = [{"id": f"t{i}", "timestamp": 1706703005, "user_id": "u", "terminal_id": "m",
             "amount": 1} for i in range(120)]
    rows[-1]["FRAUD"] = 1
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    batch = read_all(path, ColumnMap.parse("transaction_id=id,is_fraud=FRAUD")).batch
    assert batch.is_fraud.tolist()[-2:] == [-1, 1]


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_mapped_optional_column_that_is_absent_fails_fast(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"tx.{suffix}"
    table = pa.table({"transaction_id": ["a"], "timestamp": ["2024-01-01"], "user_id": ["u"],
                      "terminal_id": ["m"], "amount": [1.0]})
    if suffix == "csv":
        path.write_text("transaction_id,timestamp,user_id,terminal_id,amount\n"
                        "a,2024-01-01,u,m,1\n")
    else:
        pq.write_table(table, path)
    with pytest.raises(InputError) as info:
        read_all(path, ColumnMap.parse("is_fraud=FRAUD_FLG,lat=LAT"))
    message = str(info.value)
    assert info.value.exit_code == 2
    assert "not found: is_fraud (as FRAUD_FLG), lat (as LAT)" in message
    assert "found: transaction_id, timestamp, user_id, terminal_id, amount" in message
    # a mapping for a field the reader does not read (a label feed) is no error
    assert len(read_all(path, ColumnMap.parse("user_id=user_id")).batch) == 1


def test_missing_file_is_no_such_file_whatever_its_name(tmp_path: Path) -> None:
    for name in ("nonexistent", "tx.txt", "tx.csv"):
        with pytest.raises(InputError, match="no such file"):
            read_all(tmp_path / name)


def test_a_semicolon_file_gets_a_hint(tmp_path: Path) -> None:
    path = tmp_path / "tx.csv"
    path.write_text("transaction_id;timestamp;user_id;terminal_id;amount\na;1;u;m;1\n")
    with pytest.raises(InputError, match="must be comma-separated"):
        read_all(path)


def test_a_parquet_timestamp_is_shown_as_iso_text(tmp_path: Path) -> None:
    path = tmp_path / "tx.parquet"
    pq.write_table(pa.table({
        "transaction_id": ["a"], "user_id": ["u"], "terminal_id": ["m"], "amount": [1.0],
        "timestamp": pa.array([9_000_000_000 * 1_000_000], pa.timestamp("us", tz="UTC")),
    }), path)
    (rejection,) = read_all(path).rejections
    assert rejection.field == "timestamp" and rejection.value == "2255-03-14T16:00:00"
    assert show(np.datetime64("2024-01-31T12:00", "us").item()) == "2024-01-31T12:00:00"


# ---- hostile Parquet: any column types, any values; every row has exactly one outcome ----

_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "string": st.one_of(st.none(), st.text(max_size=12),
                        st.sampled_from(["2024-01-31", "1706703005", "nan", "-1", "1e999"])),
    "int64": st.one_of(st.none(), st.integers(-2**63, 2**63 - 1)),
    "float64": st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
    "bool": st.one_of(st.none(), st.booleans()),
    "binary": st.one_of(st.none(), st.binary(max_size=8)),
    "timestamp": st.one_of(st.none(), st.integers(-2**62, 2**62)),
    "list": st.one_of(st.none(), st.lists(st.integers(0, 9), max_size=3)),
}
_TYPES = {"string": pa.string(), "int64": pa.int64(), "float64": pa.float64(),
          "bool": pa.bool_(), "binary": pa.binary(), "timestamp": pa.timestamp("us"),
          "list": pa.list_(pa.int64())}
_FIELDS = (*REQUIRED_FIELDS, "lat", "is_fraud", "label_time", "currency")


@st.composite
def _tables(draw: st.DrawFn) -> pa.Table:
    n = draw(st.integers(1, 8))
    columns = {}
    for name in _FIELDS:
        kind = draw(st.sampled_from(sorted(_TYPES)))
        values = draw(st.lists(_VALUES[kind], min_size=n, max_size=n))
        columns[name] = pa.array(values, _TYPES[kind])
    return pa.table(columns)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(table=_tables())
def test_hostile_parquet_never_raises_and_accounts_for_every_row(tmp_path: Path,
                                                                 table: pa.Table) -> None:
    path = tmp_path / "h.parquet"
    pq.write_table(table, path)
    result = read_all(path)
    assert sorted([*result.accepted.tolist(), *result.rejected.tolist()]) == list(
        range(table.num_rows))
    batch = result.batch
    assert all(math.isfinite(a) and a >= 0 for a in batch.amount.tolist())
    assert all(t and len(t) <= 256 for t in batch.transaction_id.tolist())
    assert len(set(batch.transaction_id.tolist())) == len(batch)
    assert set(batch.is_fraud.tolist()) <= {-1, 0, 1}
    for rejection in result.rejections:
        assert rejection.position.startswith("row ") and rejection.reason
        assert rejection.field in (*_FIELDS, "record")


def test_negative_zero_amount_reads_as_zero() -> None:
    payload = (b'{"transaction_id": "a", "timestamp": 1706703005, "user_id": "u",'
               b' "terminal_id": "m", "amount": -0.0, "lat": -0.0}')
    batch = parse_payloads([payload], ["s1"]).batch
    assert str(batch.amount[0]) == "0.0" and str(batch.lat[0]) == "0.0"


def test_parquet_extra_column_named_twice_is_not_carried(tmp_path: Path) -> None:
    path = tmp_path / "tx.parquet"
    names = ["transaction_id", "timestamp", "user_id", "terminal_id", "amount", "note", "note",
             "memo"]
    values = ["a", "2024-01-01", "u", "m", 1.0, "x", "y", "z"]
    pq.write_table(pa.Table.from_arrays([pa.array([v]) for v in values], names=names), path)
    result = read_all(path)
    assert result.batch.transaction_id.tolist() == ["a"]
    assert list(result.batch.extra) == ["memo"]


@pytest.mark.parametrize("name", ["tx.csv.gz", "tx.jsonl.gz"])
def test_truncated_gzip_is_an_input_error(tmp_path: Path, name: str) -> None:
    rows = [{"transaction_id": f"t{i}", "timestamp": 1706703005 + i, "user_id": "u",
             "terminal_id": "m", "amount": 1} for i in range(5000)]
    if name.startswith("tx.csv"):
        text = "transaction_id,timestamp,user_id,terminal_id,amount\n" + "".join(
            f"{r['transaction_id']},{r['timestamp']},u,m,1\n" for r in rows)
    else:
        text = "".join(json.dumps(r) + "\n" for r in rows)
    path = tmp_path / name
    path.write_bytes(gzip.compress(text.encode())[:2000])
    with pytest.raises(InputError, match=f"{name}: (unreadable CSV|cannot read)"):
        read_all(path)
