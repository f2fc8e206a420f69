"""Transaction and label files: CSV, JSON Lines, Parquet; mapping, positions, chunking."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fraud.errors import InputError
from fraud.schema.batch import MISSING_TIME
from fraud.schema.columns import ColumnMap
from fraud.schema.files import read_all, read_labels, read_transactions
from fraud.schema.parse import ParseResult

HEADER = "transaction_id,timestamp,user_id,terminal_id,amount,scenario"
ROWS = [
    "t1,2024-01-31T12:00:00Z,u1,m1,10.5,normal",
    "t2,2024-01-31,u2,m2,-1,fraud",
    "t3,1706703005,007,m3,3,normal",
    "t4,1706703005123,u4,m4,nan,normal",
    "t1,2024-01-31,u5,m5,5,normal",
    "t6,2024-02-30,u6,m6,5,normal",
    "t7,2024-01-31,,m7,5,normal",
    "t8,2024-01-31,u8,m8,7,card-test",
]


def write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def summary(result: ParseResult) -> tuple[list[str], list[str]]:
    return (result.batch.transaction_id.tolist(),
            [f"{r.position}|{r.field}|{r.reason.split(' (')[0]}" for r in result.rejections])


EXPECTED = (
    ["t1", "t3", "t8"],
    ["line 3|amount|negative amount", "line 5|amount|not a finite number",
     "line 6|transaction_id|duplicate transaction_id",
     "line 7|timestamp|impossible date or time", "line 8|user_id|missing required field"],
)


def test_csv_good_and_bad_rows(tmp_path: Path) -> None:
    path = write(tmp_path / "tx.csv", "\n".join([HEADER, *ROWS]) + "\n")
    result = read_all(path)
    assert summary(result) == EXPECTED
    b = result.batch
    assert b.user_id.tolist() == ["u1", "007", "u8"]  # ids stay text: 007 keeps its zeros
    assert b.timestamp_us.tolist() == [1706702400000000, 1706703005000000, 1706659200000000]
    assert b.position.tolist() == ["line 2", "line 4", "line 9"]
    assert b.extra["scenario"].tolist() == ["normal", "normal", "card-test"]
    assert result.accepted.tolist() == [0, 2, 7]
    assert result.rejected.tolist() == [1, 3, 4, 5, 6]


def test_extra_columns_can_be_dropped(tmp_path: Path) -> None:
    path = write(tmp_path / "tx.csv", "\n".join([HEADER, *ROWS]) + "\n")
    assert dict(read_all(path, keep_extra=False).batch.extra) == {}


def test_gzip_csv_and_crlf(tmp_path: Path) -> None:
    text = "\r\n".join([HEADER, *ROWS]) + "\r\n"
    path = tmp_path / "tx.csv.gz"
    path.write_bytes(gzip.compress(text.encode()))
    assert summary(read_all(path)) == EXPECTED


def test_csv_line_numbers_count_quoted_newlines_blank_and_broken_rows(tmp_path: Path) -> None:
    text = (
        "\ufeff" + HEADER + "\n"
        't1,2024-01-31,u1,m1,1,"two\nlines"\n'  # lines 2-3
        "\n"  # line 4: blank, skipped
        "t2,2024-01-31,u2,m2\n"  # line 5: too few cells
        ",,,,,\n"  # line 6: no data at all, skipped
        "t3,2024-01-31,u3,m3,-3,x\n"  # line 7
        "t4,2024-01-31,u4,m4,4,x,extra\n"  # line 8: too many cells
        "t5,2024-01-31,u5,m5,5,x\n"  # line 9
    )
    path = write(tmp_path / "tx.csv", text)
    for chunk_rows in (1, 2, 3, 100):
        result = read_all(path, chunk_rows=chunk_rows)
        assert result.batch.position.tolist() == ["line 2", "line 9"]
        assert result.batch.extra["scenario"].tolist() == ["two\nlines", "x"]
        assert [(r.position, r.field, r.reason) for r in result.rejections] == [
            ("line 5", "record", "expected 6 columns, got 4"),
            ("line 7", "amount", "negative amount"),
            ("line 8", "record", "expected 6 columns, got 7"),
        ]
        assert result.rejections[0].value == "t2,2024-01-31,u2,m2"
        assert result.total == 5


def test_csv_cell_that_is_not_utf8(tmp_path: Path) -> None:
    text = (HEADER + "\n").encode() + (b"t1,2024-01-31,u\xff\xfe,m1,1,x\n"
                                       b"t2,2024-01-31,u2,m2,2,\xff\n")
    result = read_all(write(tmp_path / "tx.csv", text))
    assert [(r.position, r.field, r.reason) for r in result.rejections] == [
        ("line 2", "user_id", "not valid UTF-8 text")]
    assert result.rejections[0].value == "u\\xff\\xfe"
    assert result.batch.extra["scenario"].tolist() == ["\ufffd"]  # extras are never refused


def test_column_mapping(tmp_path: Path) -> None:
    text = ("TX_ID,TX_DATETIME,CUSTOMER_ID,TERMINAL_ID,TX_AMOUNT,TX_FRAUD\n"
            "1,2024-01-31 00:00:31,596,3156,57.16,0\n"
            "2,2024-01-31 00:02:10,4961,3412,81.51,1\n")
    path = write(tmp_path / "sim.csv", text)
    cm = ColumnMap.parse("transaction_id=TX_ID,timestamp=TX_DATETIME,user_id=CUSTOMER_ID,"
                         "terminal_id=TERMINAL_ID,amount=TX_AMOUNT,is_fraud=TX_FRAUD")
    result = read_all(path, cm)
    assert result.rejections == []
    assert result.batch.user_id.tolist() == ["596", "4961"]
    assert result.batch.is_fraud.tolist() == [0, 1]
    assert result.batch.amount.tolist() == [57.16, 81.51]
    assert dict(result.batch.extra) == {}


def test_missing_required_column_fails_fast_with_one_message(tmp_path: Path) -> None:
    path = write(tmp_path / "sim.csv", "TX_ID,TX_DATETIME,USER_ID,amount\n1,2,3,4\n")
    cm = ColumnMap.parse("transaction_id=TX_ID,timestamp=TX_DATETIME")
    with pytest.raises(InputError) as info:
        read_all(path, cm)
    message = str(info.value)
    assert info.value.exit_code == 2
    assert str(path) in message
    assert "missing required column(s): user_id, terminal_id" in message
    assert "found: TX_ID, TX_DATETIME, USER_ID, amount" in message
    assert message.endswith("did you mean --columns user_id=USER_ID?")
    with pytest.raises(InputError, match=r"timestamp \(as TX_DATETIME\)"):
        read_all(write(tmp_path / "b.csv", "TX_ID,user_id,terminal_id,amount\n1,2,3,4\n"), cm)


def test_duplicate_canonical_column_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", HEADER + ",amount\n" + ROWS[0] + ",3\n")
    with pytest.raises(InputError, match=r"column.*amount appear more than once"):
        read_all(path)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.csv", None, "no such file"),
        ("empty.csv", b"", "empty file"),
        ("empty.jsonl", b"", "empty file"),
        ("blank.jsonl", b"\n\n  \n", "no records"),
        ("array.json", b'[{"a": 1}]\n', "looks like a JSON array"),
        ("tx.txt", b"x", "unknown file type"),
        ("tx.parquet", b"not parquet at all", "not a readable Parquet file"),
        ("head.csv", b"\n\n", "no header line"),
    ],
)
def test_bad_files_raise_input_error(tmp_path: Path, name: str, content: bytes | None,
                                     message: str) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InputError, match=message):
        read_all(path)


def test_directory_is_not_a_file(tmp_path: Path) -> None:
    (tmp_path / "d.csv").mkdir()
    with pytest.raises(InputError, match="not a regular file"):
        read_all(tmp_path / "d.csv")


def test_header_only_csv_is_empty_result(tmp_path: Path) -> None:
    result = read_all(write(tmp_path / "h.csv", HEADER + "\n"))
    assert len(result.batch) == 0 and result.total == 0


def jsonl_text() -> str:
    lines = []
    for row in ROWS:
        tid, ts, user, term, amount, scen = row.split(",")
        obj: dict[str, Any] = {"transaction_id": tid, "timestamp": ts, "terminal_id": term,
                               "amount": float(amount) if amount != "nan" else "nan",
                               "scenario": scen}
        if user:
            obj["user_id"] = user
        lines.append(json.dumps(obj))
    return "\n".join(lines) + "\n"


def test_jsonl_matches_csv(tmp_path: Path) -> None:
    result = read_all(write(tmp_path / "tx.jsonl", jsonl_text()))
    ids, reasons = summary(result)
    assert ids == EXPECTED[0]
    # JSON Lines has no header: every position is one line earlier than in the CSV
    assert reasons == [r.replace(f"line {n}", f"line {n - 1}")
                       for r, n in zip(EXPECTED[1], (3, 5, 6, 7, 8), strict=True)]
    assert result.batch.extra["scenario"].tolist() == ["normal", "normal", "card-test"]


def test_jsonl_blank_and_broken_lines(tmp_path: Path) -> None:
    good = json.dumps({"transaction_id": "a", "timestamp": 1706703005, "user_id": 1,
                       "terminal_id": 2, "amount": 3})
    text = good + "\n\n{broken\n[1]\n" + good.replace('"a"', '"b"') + "\n"
    path = tmp_path / "tx.ndjson.gz"
    path.write_bytes(gzip.compress(text.encode()))
    result = read_all(path)
    assert result.batch.position.tolist() == ["line 1", "line 5"]
    assert [(r.position, r.reason.split(":")[0]) for r in result.rejections] == [
        ("line 3", "not valid JSON"), ("line 4", "not a JSON object (got array)")]


def test_jsonl_missing_required_field_everywhere_fails_fast(tmp_path: Path) -> None:
    text = json.dumps({"transaction_id": "a", "timestamp": 1, "user_id": 1, "amount": 3})
    with pytest.raises(InputError, match=r"missing required column\(s\): terminal_id; found: "
                                         r"transaction_id, timestamp, user_id, amount"):
        read_all(write(tmp_path / "tx.jsonl", text + "\n"))


def parquet_table() -> pa.Table:
    return pa.table({
        "transaction_id": pa.array([1, 2, 3, None, 5], pa.int64()),
        "timestamp": pa.array([1706703005_000000] * 4 + [-1_000000],
                              pa.timestamp("us", tz="UTC")),
        "user_id": ["a", "b", "c", "d", "e"],
        "terminal_id": pa.array(["m"] * 5).dictionary_encode(),
        "amount": pa.array([1.0, None, float("nan"), 2.0, 3.0]),
        "is_fraud": pa.array([True, False, None, True, False]),
        "lat": pa.array([45.0, None, None, None, None], pa.float32()),
        "scenario": ["s1", "s2", "s3", "s4", None],
        "score": [1, 2, 3, 4, 5],
    })


def test_parquet_typed_columns(tmp_path: Path) -> None:
    path = tmp_path / "tx.parquet"
    pq.write_table(parquet_table(), path)
    result = read_all(path, chunk_rows=2)
    b = result.batch
    assert b.transaction_id.tolist() == ["1"]
    assert b.timestamp_us.tolist() == [1706703005_000000]
    assert b.is_fraud.tolist() == [1] and b.lat.tolist() == [45.0]
    assert b.extra["scenario"].tolist() == ["s1"] and b.extra["score"].tolist() == [1]
    assert [(r.position, r.field, r.reason.split(" (")[0]) for r in result.rejections] == [
        ("row 2", "amount", "missing required field"),
        ("row 3", "amount", "not a finite number"),
        ("row 4", "transaction_id", "missing required field"),
        ("row 5", "timestamp", "impossible date"),
    ]


def test_parquet_wrong_column_types_are_per_row_rejections(tmp_path: Path) -> None:
    path = tmp_path / "tx.parquet"
    pq.write_table(pa.table({
        "transaction_id": ["a", "b"], "timestamp": ["2024-01-31", "2024-01-31"],
        "user_id": pa.array([[1], [2]]), "terminal_id": ["m", "m"],
        "amount": pa.array([True, False]),
    }), path)
    result = read_all(path)
    assert len(result.batch) == 0
    assert {r.field for r in result.rejections} == {"user_id"}
    assert result.rejections[0].reason == (
        "wrong type: expected text or a whole number, got array")


def test_chunking_never_changes_the_result(tmp_path: Path) -> None:
    rows = [f"t{i % 37},{1706703005 + i},u{i},m{i % 5},{(i % 11) - 1},s{i}" for i in range(300)]
    path = write(tmp_path / "tx.csv", "\n".join([HEADER, *rows]) + "\n")
    whole = read_all(path, chunk_rows=10_000)
    for chunk_rows in (1, 7, 64):
        parts = list(read_transactions(path, chunk_rows=chunk_rows))
        assert all(len(p.accepted) + len(p.rejected) <= chunk_rows for p in parts)
        joined = ParseResult.concat(parts)
        assert summary(joined) == summary(whole)
        assert joined.accepted.tolist() == whole.accepted.tolist()
        assert np.array_equal(joined.batch.amount, whole.batch.amount)
    # a refused row does not claim its id, so each of the 37 ids is accepted once
    assert sorted(whole.batch.transaction_id.tolist()) == sorted(f"t{k}" for k in range(37))


@settings(max_examples=40, deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(cells=st.lists(st.lists(st.text(alphabet="ab1-.:\n\",", max_size=6), min_size=6,
                               max_size=6), max_size=12),
       chunk_rows=st.integers(1, 5))
def test_hostile_csv_cells(tmp_path: Path, cells: list[list[str]], chunk_rows: int) -> None:
    def quote(cell: str) -> str:
        return '"' + cell.replace('"', '""') + '"' if any(c in cell for c in '",\n') else cell

    text = HEADER + "\n" + "".join(",".join(map(quote, row)) + "\n" for row in cells)
    path = write(tmp_path / "h.csv", text)
    result = read_all(path, chunk_rows=chunk_rows)
    data_rows = [row for row in cells if any(row)]
    assert result.total == len(data_rows)
    assert sorted([*result.accepted.tolist(), *result.rejected.tolist()]) == list(
        range(result.total))
    lines = [int(p.split()[1]) for p in result.batch.position.tolist()]
    assert lines == sorted(lines)


def test_labels_csv(tmp_path: Path) -> None:
    text = ("tx,fraud,known\nt1,1,2024-02-01\nt2,0,\nt3,2,\nt1,0,\nt4,true,1706703005\n"
            "t5,,2024-02-01\n")
    labels = read_labels(write(tmp_path / "l.csv", text),
                         ColumnMap.parse("transaction_id=tx,is_fraud=fraud,label_time=known"))
    assert labels.transaction_id.tolist() == ["t1", "t2", "t4"]
    assert labels.is_fraud.tolist() == [1, 0, 1]
    assert labels.label_time_us.tolist() == [1706745600000000, MISSING_TIME, 1706703005000000]
    assert labels.position.tolist() == ["line 2", "line 3", "line 6"]
    assert [(r.position, r.field, r.reason.split(" (")[0]) for r in labels.rejections] == [
        ("line 4", "is_fraud", "must be 0 or 1"),
        ("line 5", "transaction_id", "duplicate transaction_id"),
        ("line 7", "is_fraud", "missing required field"),
    ]


def test_labels_missing_column(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"missing required column\(s\): is_fraud"):
        read_labels(write(tmp_path / "l.csv", "transaction_id,label\nt1,1\n"))


def test_labels_parquet(tmp_path: Path) -> None:
    path = tmp_path / "l.parquet"
    pq.write_table(pa.table({"transaction_id": ["a", "b"], "is_fraud": [1, 0]}), path)
    labels = read_labels(path)
    assert labels.is_fraud.tolist() == [1, 0] and labels.rejections == []
    assert labels.label_time_us.tolist() == [MISSING_TIME, MISSING_TIME]


@settings(max_examples=40, deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(rows=st.lists(st.tuples(
    st.sampled_from(["t1", "t2", "", "x" * 300]),
    st.sampled_from(["2024-01-31", "1706703005", "2024-02-30", "nope", "", "1969-01-01"]),
    st.text(alphabet="u7 é", max_size=4),
    st.sampled_from(["m", ""]),
    st.text(alphabet="0123456789.-eEnaif+", max_size=6),
    st.sampled_from(["", "0", "1", "true", "2", "yes"]),
    st.text(alphabet="0123456789.-", max_size=5),
), max_size=10))
def test_csv_and_jsonl_refuse_the_same_rows_for_the_same_reasons(
    tmp_path: Path, rows: list[tuple[str, ...]]
) -> None:
    names = ["transaction_id", "timestamp", "user_id", "terminal_id", "amount", "is_fraud",
             "lat"]

    def quote(cell: str) -> str:
        return f'"{cell}"' if cell.strip() != cell or cell == "" else cell

    rows = [row for row in rows if any(row)]
    csv_text = ",".join(names) + "\n" + "".join(
        ",".join(quote(c) for c in row) + "\n" for row in rows)
    json_text = json.dumps({n: "x" for n in names}) + "\n"  # line 1 so lines match the CSV
    json_text += "".join(json.dumps({n: c for n, c in zip(names, row, strict=True) if c})
                         + "\n" for row in rows)
    from_csv = read_all(write(tmp_path / "a.csv", csv_text))
    from_json = ParseResult.concat(list(read_transactions(write(tmp_path / "a.jsonl",
                                                                json_text))))
    json_rejections = [r for r in from_json.rejections if r.position != "line 1"]
    assert [str(r) for r in from_csv.rejections] == [str(r) for r in json_rejections]
    assert from_csv.batch.transaction_id.tolist() == [
        t for t, p in zip(from_json.batch.transaction_id.tolist(),
                          from_json.batch.position.tolist(), strict=True) if p != "line 1"]


def test_parquet_dates_decimals_and_int_epochs(tmp_path: Path) -> None:
    from decimal import Decimal

    path = tmp_path / "tx.parquet"
    pq.write_table(pa.table({
        "transaction_id": ["a", "b", "c"],
        "timestamp": pa.array([1706703005, 1706703005123, 10**15], pa.int64()),
        "user_id": pa.array([7, 8, 9], pa.uint16()),
        "terminal_id": pa.array([1.0, 2.0, 3.5]),
        "amount": pa.array([Decimal("1.25"), Decimal("2.50"), Decimal("3.00")],
                           pa.decimal128(5, 2)),
        "label_time": pa.array([19753, None, 19753], pa.date32()),
    }), path)
    result = read_all(path)
    b = result.batch
    assert b.transaction_id.tolist() == ["a", "b"]
    assert b.timestamp_us.tolist() == [1706703005_000000, 1706703005_123000]
    assert b.user_id.tolist() == ["7", "8"] and b.terminal_id.tolist() == ["1", "2"]
    assert b.amount.tolist() == [1.25, 2.5]
    assert b.label_time_us.tolist() == [19753 * 86_400_000_000, MISSING_TIME]
    assert [(r.position, r.field, r.reason.split(" (")[0]) for r in result.rejections] == [
        ("row 3", "timestamp", "impossible date")]


def test_labels_jsonl(tmp_path: Path) -> None:
    text = ('{"id": "a", "fraud": true, "at": "2024-02-01T00:00:00Z"}\n'
            '{"id": "b", "fraud": 0}\n{"id": "c", "fraud": "maybe"}\n')
    labels = read_labels(write(tmp_path / "l.jsonl", text),
                         ColumnMap.parse("transaction_id=id,is_fraud=fraud,label_time=at"))
    assert labels.transaction_id.tolist() == ["a", "b"]
    assert labels.is_fraud.tolist() == [1, 0]
    assert [str(r) for r in labels.rejections] == [
        "line 3: is_fraud: must be 0 or 1 (value: maybe)"]


def test_header_names_are_trimmed(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", " transaction_id ,timestamp,user_id,terminal_id,amount,x,x\n"
                                     "1,2024-01-31,u,m,5,a,b\n")
    result = read_all(path)
    assert result.batch.transaction_id.tolist() == ["1"]
    assert result.batch.extra["x"].tolist() == ["a"]  # a repeated extra keeps the first


def test_package_exports_load_lazily() -> None:
    from fraud import schema

    assert schema.read_all is read_all
    assert schema.ColumnMap is ColumnMap
    with pytest.raises(AttributeError):
        _ = schema.no_such_name


def test_jsonl_overlong_line_is_one_rejection(tmp_path: Path) -> None:
    good = json.dumps({"transaction_id": "a", "timestamp": 1706703005, "user_id": 1,
                       "terminal_id": 2, "amount": 3})
    huge = '{"transaction_id": "' + "z" * 200_000 + '"}'
    text = "\n".join([good, huge, good.replace('"a"', '"b"')]) + "\n"
    result = read_all(write(tmp_path / "tx.jsonl", text))
    assert result.batch.position.tolist() == ["line 1", "line 3"]
    assert [str(r) for r in result.rejections] == [
        "line 2: record: record too large (more than 65536 bytes) (value: )"]
