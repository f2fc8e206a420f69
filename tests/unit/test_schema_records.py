"""Row-by-row reading of small record files (seed data, supporting stores): bad bytes and
bad JSON are an `InputError` naming the file and line, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from fraud.errors import InputError
from fraud.schema.records import iter_records


@pytest.mark.parametrize(("name", "content", "message"), [
    ("s.jsonl", b'{"a": 1}\n\xff\xfe\n', r"s\.jsonl:2: not valid UTF-8"),
    ("s.jsonl", b'{"a": 1}\n' + b"[" * 100_000 + b"\n", r"s\.jsonl:2: not valid JSON"),
    ("s.jsonl", b'{"a": 1}\n[1]\n', r"s\.jsonl:2: expected a JSON object"),
    ("s.csv", b"a,b\n1,2\n3,\xff\n", r"s\.csv: not valid UTF-8 after line"),
    ("s.csv", b'a,b\n1,"' + b"x" * 200_000 + b'"\n', r"s\.csv: unreadable CSV after line"),
])
def test_bad_store_files_name_file_and_line(tmp_path: Path, name: str, content: bytes,
                                            message: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InputError, match=message):
        list(iter_records(path))


def test_good_rows_come_with_their_line(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_bytes(b'{"a": 1}\n\n{"a": 2}\n')
    assert list(iter_records(path)) == [(f"{path}:1", {"a": 1}), (f"{path}:3", {"a": 2})]
