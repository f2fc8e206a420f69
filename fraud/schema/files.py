"""Read transaction and label files (CSV, JSON Lines, Parquet) into validated batches.

The format follows the extension (`fraud.tabular.format_of`; ``.gz`` allowed on CSV and
JSON Lines). Files are read in chunks of about `chunk_rows` rows and every chunk goes
through the same validation core as Kinesis payloads (`fraud.schema.parse`), so a file and a
stream refuse exactly the same records for exactly the same reasons.

Positions: CSV and JSON Lines rows are named by the physical line they start on (``line 2``
is the first data row of a CSV, after its header; quoted values spanning lines are counted);
Parquet rows by their 1-based row number (``row 1``). Blank lines and CSV rows with every
cell empty carry no data and are skipped without a rejection.

Fail-fast errors (`InputError`, exit code 2): a missing, unreadable, empty or unknown file
type; a required column missing after the ``--columns`` mapping (naming the file, the
missing columns and the columns found); in a CSV or Parquet file, any other column named in
``--columns`` that is not there; a canonical column present twice. Everything else is a
per-row rejection, and the good rows of a file with bad rows are still returned. A row
larger than ``Limits.max_record_bytes`` is refused as a Kinesis record or a JSON line of
that size would be (``record: record too large``).
"""

from __future__ import annotations

import csv
import gzip
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from fraud.config import Settings
from fraud.errors import InputError
from fraud.schema.batch import REQUIRED_FIELDS, Rejection
from fraud.schema.columns import CANONICAL_FIELDS, ColumnMap
from fraud.schema.parse import (
    DEFAULT_LIMITS,
    Limits,
    ParseResult,
    RawColumn,
    UndecodableText,
    Validator,
    load_objects,
    mask_value,
    object_columns,
    validate_transactions,
)
from fraud.schema.seen import SeenIds
from fraud.tabular import format_of

__all__ = [
    "DEFAULT_CHUNK_ROWS",
    "LABEL_REQUIRED",
    "Labels",
    "read_all",
    "read_labels",
    "read_transactions",
]

ObjArray = npt.NDArray[np.object_]
DEFAULT_CHUNK_ROWS = 100_000
LABEL_REQUIRED = ("transaction_id", "is_fraud")
# user_id and timestamp are optional: with them the label feed finds a transaction's history
# item by its key (a batched read) instead of by an index query per label.
LABEL_COLUMNS = ("transaction_id", "is_fraud", "label_time", "user_id", "timestamp")
_PEEK_RECORDS = 100  # JSON Lines: records looked at to decide the file's columns


@dataclass(frozen=True, slots=True, eq=False)
class Labels:
    """A label feed: which transactions were fraud, and when that became known.

    `label_time_us` is `MISSING_TIME` where the file has no label time; `rejections` lists
    the refused rows (same rules and messages as transactions). `user_id` ("" when absent)
    and `timestamp_us` (`MISSING_TIME`) are there when the file carries them, as a
    transaction file does.
    """

    transaction_id: ObjArray
    is_fraud: npt.NDArray[np.int8]
    label_time_us: npt.NDArray[np.int64]
    position: ObjArray
    rejections: list[Rejection]
    user_id: ObjArray | None = None
    timestamp_us: npt.NDArray[np.int64] | None = None

    def __len__(self) -> int:
        return len(self.transaction_id)

    def __repr__(self) -> str:
        return f"Labels(rows={len(self)}, rejected={len(self.rejections)})"


@dataclass(slots=True)
class _Chunk:
    raw: dict[str, RawColumn]
    extra: dict[str, npt.NDArray[Any]]
    positions: ObjArray
    validator: Validator


# ---- shared ---------------------------------------------------------------------------


def _check_file(path: Path) -> str:
    # Existence first: "no such file" is the useful message for a mistyped path, whatever
    # its extension.
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if not path.is_file():
        raise InputError(f"{path}: not a regular file")
    fmt = format_of(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    if size == 0:
        raise InputError(f"{path}: empty file")
    return fmt


def _resolve(path: Path, found: Sequence[str], mapping: ColumnMap, fields: Sequence[str],
             required: Sequence[str], *, schema_known: bool = True) -> dict[str, str]:
    """Canonical field -> source column for the fields present; fail on missing required.

    With `schema_known` (CSV header, Parquet schema) a column named in ``--columns`` must
    exist too: a typo in an optional mapping (``is_fraud=FRAUD_FLG``) would otherwise lose
    that field for the whole file without a word. JSON Lines only peeks at its first
    records, where an optional key may simply not occur yet, so it is let through there.
    """
    sources = mapping.sources(tuple(fields))
    counts: dict[str, int] = {}
    for name in found:
        counts[name] = counts.get(name, 0) + 1
    twice = sorted(s for s in sources.values() if counts.get(s, 0) > 1)
    if twice:
        raise InputError(f"{path}: column(s) {', '.join(twice)} appear more than once")
    missing = [f for f in required if sources[f] not in counts]
    if missing:
        wanted = ", ".join(f if sources[f] == f else f"{f} (as {sources[f]})" for f in missing)
        lower = {name.lower(): name for name in found}
        hints = [f"{f}={lower[sources[f].lower()]}" for f in missing
                 if sources[f].lower() in lower]
        hint = f"; did you mean --columns {','.join(hints)}?" if hints else ""
        shown = _shown(found)
        if not hint and len(found) == 1 and any(sep in found[0] for sep in ";\t|"):
            hint = "; the file must be comma-separated"
        raise InputError(
            f"{path}: missing required column(s): {wanted}; found: {shown or '(none)'}{hint}"
        )
    absent = [f for f, _ in mapping if f in sources and sources[f] not in counts]
    if schema_known and absent:
        named = ", ".join(f"{f} (as {sources[f]})" for f in absent)
        raise InputError(f"{path}: column(s) named in --columns not found: {named}; "
                         f"found: {_shown(found)}")
    return {f: s for f, s in sources.items() if s in counts}


def _shown(found: Sequence[str]) -> str:
    """The columns found, for an error: masked (in a file without a header line the "names"
    are the first record) and at most 40 of them."""
    return ", ".join(mask_value(name) for name in found[:40]) + (
        ", ..." if len(found) > 40 else "")


def _extra_names(found: Sequence[str], used: dict[str, str], mapping: ColumnMap) -> list[str]:
    taken = set(used.values()) | set(CANONICAL_FIELDS) | set(mapping.mapping.values())
    return list(dict.fromkeys(name for name in found if name not in taken))


def _positions(prefix: str, numbers: npt.NDArray[np.int64]) -> ObjArray:
    """``"line 7"`` etc. (built by Arrow: a Python f-string per row costs twice as much)."""
    text = pc.binary_join_element_wise(f"{prefix} ", pa.array(numbers).cast(pa.string()), "")
    return np.asarray(text.to_numpy(zero_copy_only=False), dtype=object)


# ---- CSV ------------------------------------------------------------------------------


def _decode_binary(arr: pa.Array) -> RawColumn:
    """A binary column as text: fast when valid UTF-8, per value when not."""
    try:
        return RawColumn(arr.cast(pa.string()))
    except (pa.ArrowInvalid, UnicodeDecodeError):
        values: list[Any] = []
        for item in arr.to_pylist():
            if item is None:
                values.append(None)
                continue
            try:
                values.append(item.decode("utf-8"))
            except UnicodeDecodeError:
                values.append(UndecodableText(item))
        return RawColumn(np.fromiter(values, object, len(values)))


def _csv_header(path: Path) -> list[str]:
    """Column names from the first line (read apart, so no data row can fail it)."""
    try:
        with _open_lines(path) as fh:
            first = fh.readline(1 << 20)
    except (OSError, EOFError) as exc:
        raise InputError(f"{path}: cannot read: {exc}") from exc
    try:
        text = first.decode("utf-8-sig").rstrip("\r\n")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: header line is not valid UTF-8") from exc
    if not text.strip():
        raise InputError(f"{path}: no header line (the first line is empty)")
    return [name.strip() for name in next(csv.reader([text]))]


def _csv_chunks(path: Path, fields: Sequence[str], required: Sequence[str],
                mapping: ColumnMap, chunk_rows: int, keep_extra: bool,
                limits: Limits) -> Iterator[_Chunk]:
    found = _csv_header(path)
    used = _resolve(path, found, mapping, fields, required)
    extras = _extra_names(found, used, mapping) if keep_extra else []
    skipped: list[tuple[int, int, str, str]] = []  # (row number, newlines, reason, text)

    def on_invalid(row: Any) -> str:
        text = row.text or ""
        skipped.append((int(row.number or 0), text.count("\n"),
                        f"expected {row.expected_columns} columns, got {row.actual_columns}",
                        text))
        return "skip"

    # Every column is read (as bytes, so no type guessing can fail half-way through a
    # file): line numbers need the newlines inside quoted values of all of them. Columns
    # go by position (our own header parse above), so odd or repeated names cannot clash.
    names = [f"c{i}" for i in range(len(found))]
    try:  # opening reads the first block: a corrupt .gz fails here already
        reader = pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(
                use_threads=False, column_names=names, skip_rows=1,
                block_size=max(1 << 20, chunk_rows * 128),
            ),
            parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid,
                                             ignore_empty_lines=False),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.binary()),
                strings_can_be_null=True, null_values=[""], quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, OSError, EOFError) as exc:
        raise InputError(f"{path}: unreadable CSV: {mask_value(str(exc), 160)}") from exc
    # pyarrow numbers rows (header = 1, blank lines included); a quoted value with newlines
    # makes a row span several lines, so lines = row number + newlines in earlier rows.
    row, newlines = 2, 0
    index = {name: found.index(name) for name in [*used.values(), *extras]}
    for batch in _csv_batches(path, reader, chunk_rows):
        n = batch.num_rows
        inner = np.zeros(n, np.int64)
        for arr in batch.columns:
            count = pc.count_substring(arr, "\n")
            if pc.max(count).as_py():  # usually no cell has a newline: skip the copy
                inner += count.fill_null(0).to_numpy(zero_copy_only=False)
        too_big = _oversized(batch.columns, len(batch.columns) - 1, limits)
        empty = np.zeros(n, np.bool_)
        if all(arr.null_count for arr in batch.columns):  # else no row can be all empty
            empty = np.ones(n, np.bool_)
            for arr in batch.columns:
                empty &= arr.is_null().to_numpy(zero_copy_only=False)
        rows = row + np.arange(n, dtype=np.int64)
        bad: list[tuple[int, int, str, str]] = []
        while skipped and skipped[0][0] <= rows[-1]:
            bad.append(skipped.pop(0))
            rows[rows >= bad[-1][0]] += 1
        all_rows = np.concatenate([rows, np.asarray([b[0] for b in bad], np.int64)])
        all_inner = np.concatenate([inner, np.asarray([b[1] for b in bad], np.int64)])
        order = np.argsort(all_rows, kind="stable")
        before = np.cumsum(all_inner[order]) - all_inner[order] + newlines
        all_lines = np.empty_like(all_rows)
        all_lines[order] = all_rows[order] + before
        newlines += int(all_inner.sum())
        row = int(all_rows.max()) + 1
        raw = {f: _decode_binary(batch.column(index[s])) for f, s in used.items()}
        extra = {name: _csv_extra(batch.column(index[name])) for name in extras}
        inserts = [(int(all_lines[n + k]), b[2], b[3]) for k, b in enumerate(bad)]
        yield _assemble(raw, extra, all_lines[:n], np.flatnonzero(~empty), inserts, limits,
                        too_big)
    if skipped:
        raw = {f: RawColumn(pa.nulls(0, pa.string())) for f in used}
        extra = {e: np.zeros(0, object) for e in extras}
        inner = np.asarray([b[1] for b in skipped], np.int64)
        lines = np.asarray([b[0] for b in skipped], np.int64) + newlines + np.cumsum(inner) - inner
        yield _assemble(raw, extra, np.zeros(0, np.int64), np.zeros(0, np.int64),
                        [(int(x), b[2], b[3]) for x, b in zip(lines, skipped, strict=True)],
                        limits)


def _csv_batches(path: Path, reader: Any, chunk_rows: int) -> Iterator[pa.RecordBatch]:
    """The reader's record batches cut to at most `chunk_rows` rows, errors as InputError."""
    rows = 0
    while True:
        try:
            big = reader.read_next_batch()
        except StopIteration:
            return
        except (pa.ArrowInvalid, OSError, EOFError) as exc:
            raise InputError(f"{path}: unreadable CSV after data row {rows}: "
                             f"{mask_value(str(exc), 160)}") from exc
        for offset in range(0, big.num_rows, chunk_rows):
            piece = big.slice(offset, chunk_rows)
            rows += piece.num_rows
            yield piece


def _csv_extra(arr: pa.Array) -> ObjArray:
    """An extra column as text, ``""`` for empty cells; bad UTF-8 is replaced, not refused."""
    try:
        text = arr.cast(pa.string())
    except pa.ArrowInvalid:
        values = ["" if b is None else b.decode("utf-8", "replace") for b in arr.to_pylist()]
        return np.fromiter(values, object, len(values))
    return np.asarray(text.fill_null("").to_numpy(zero_copy_only=False), dtype=object)


def _oversized(columns: Sequence[pa.Array], separators: int,
               limits: Limits) -> npt.NDArray[np.bool_] | None:
    """Rows whose text takes more than ``limits.max_record_bytes`` (None: no such row).

    The same limit as a Kinesis record or a JSON Lines line: a file is no back door for a
    megabyte-sized "transaction". Counted over the variable-width columns read (every cell
    of a CSV row, as bytes) plus `separators`; fixed-width numbers are small by nature.
    """
    sizes: npt.NDArray[np.int64] | None = None
    for arr in columns:
        kind = arr.type
        if not (pa.types.is_string(kind) or pa.types.is_binary(kind)
                or pa.types.is_large_string(kind) or pa.types.is_large_binary(kind)):
            continue
        length = pc.binary_length(arr).fill_null(0).to_numpy(zero_copy_only=False)
        sizes = length.astype(np.int64) if sizes is None else sizes + length
    if sizes is None:
        return None
    big = sizes + separators > limits.max_record_bytes
    return big if big.any() else None


def _assemble(raw: dict[str, RawColumn], extra: dict[str, npt.NDArray[Any]],
              starts: npt.NDArray[np.int64], keep: npt.NDArray[np.int64],
              inserts: list[tuple[int, str, str]], limits: Limits,
              too_big: npt.NDArray[np.bool_] | None = None) -> _Chunk:
    """Keep the rows with data and splice refused (unparseable) rows in at their place;
    rows flagged in `too_big` (indexed like `starts`) are refused as too large."""
    lines = starts[keep]
    take = keep
    if inserts:
        at = np.searchsorted(lines, [s for s, _, _ in inserts])
        lines = np.insert(lines, at, [s for s, _, _ in inserts])
        take = np.insert(keep, at, -1)
    if len(take) == len(starts) and not inserts:
        picked = raw
        extras = extra
    else:
        picked = {f: _take(c, take) for f, c in raw.items()}
        extras = {n: _take_array(v, take, "") for n, v in extra.items()}
    positions = _positions("line", lines)
    validator = Validator(positions, limits)
    refused = np.flatnonzero(take < 0).tolist()
    for i, (_, reason, text) in zip(refused, inserts, strict=True):
        validator.reject_row(i, "record", text, reason)
    if too_big is not None:
        _refuse_oversized(validator, np.flatnonzero((take >= 0) & too_big[np.maximum(take, 0)]),
                          limits)
    return _Chunk(picked, extras, positions, validator)


def _refuse_oversized(validator: Validator, rows: npt.NDArray[np.int64], limits: Limits) -> None:
    for i in rows.tolist():
        validator.reject_row(i, "record", "", "record too large (more than "
                             f"{limits.max_record_bytes} bytes)")


def _take_array(values: npt.NDArray[Any], take: npt.NDArray[np.int64],
                fill: Any) -> npt.NDArray[Any]:
    out = values[np.maximum(take, 0)] if len(values) else np.full(len(take), fill, object)
    out[take < 0] = fill
    return out


def _take(col: RawColumn, take: npt.NDArray[np.int64]) -> RawColumn:
    """Rows `take` of a column; -1 makes a missing value (for a row pyarrow refused)."""
    if isinstance(col.values, pa.Array):
        if len(col.values) == 0:
            return RawColumn(pa.nulls(len(take), pa.string()))
        return RawColumn(col.values.take(pa.array(np.maximum(take, 0), mask=take < 0)))
    return RawColumn(_take_array(col.values, take, None))


# ---- JSON Lines ------------------------------------------------------------------------


def _open_lines(path: Path) -> BinaryIO | gzip.GzipFile:
    if path.suffix.lower() == ".gz":
        return gzip.GzipFile(path, "rb")
    return open(path, "rb")


def _jsonl_chunks(path: Path, fields: Sequence[str], required: Sequence[str],
                  mapping: ColumnMap, chunk_rows: int, keep_extra: bool,
                  limits: Limits) -> Iterator[_Chunk]:
    keys: dict[str, None] = {}
    records = 0
    try:
        with _open_lines(path) as fh:
            for _, raw_line in _bounded_lines(fh, limits.max_record_bytes):
                if not raw_line.strip():
                    continue
                if records == 0 and raw_line.lstrip().startswith(b"["):
                    raise InputError(f"{path}: looks like a JSON array; expected JSON Lines "
                                     "(one object per line)")
                records += 1
                try:
                    obj = json.loads(raw_line)
                except (ValueError, RecursionError):
                    obj = None
                if isinstance(obj, dict):
                    keys.update(dict.fromkeys(obj))
                if records >= _PEEK_RECORDS:
                    break
    except (OSError, EOFError) as exc:
        raise InputError(f"{path}: cannot read: {exc}") from exc
    if records == 0:
        raise InputError(f"{path}: no records (only blank lines)")
    found = list(keys)
    used = _resolve(path, found, mapping, fields, required, schema_known=False)
    extras = _extra_names(found, used, mapping) if keep_extra else []
    # Every field is looked up in every record, not only those seen in the first records:
    # a key that first turns up later (label_time on the rare fraud row) still counts.
    used = mapping.sources(tuple(fields))
    payloads: list[bytes] = []
    lines: list[int] = []
    number = 0
    try:
        with _open_lines(path) as fh:
            for number, raw_line in _bounded_lines(fh, limits.max_record_bytes):
                if not raw_line.strip():
                    continue
                payloads.append(raw_line.rstrip(b"\r\n"))
                lines.append(number)
                if len(payloads) >= chunk_rows:
                    yield _json_chunk(payloads, lines, used, extras, limits)
                    payloads, lines = [], []
    except (OSError, EOFError) as exc:
        raise InputError(f"{path}: cannot read after line {number}: {exc}") from exc
    if payloads:
        yield _json_chunk(payloads, lines, used, extras, limits)


def _bounded_lines(fh: BinaryIO | gzip.GzipFile, limit: int) -> Iterator[tuple[int, bytes]]:
    """Numbered lines; one longer than `limit` is never held whole (a stand-in is yielded,
    which the size check refuses), so a file without newlines cannot exhaust memory."""
    number = 0
    while True:
        line = fh.readline(limit + 2)
        if not line:
            return
        number += 1
        if len(line) == limit + 2 and not line.endswith(b"\n"):
            while line and not line.endswith(b"\n"):
                line = fh.readline(1 << 20)
            line = b"x" * (limit + 1)
        yield number, line


def _json_chunk(payloads: list[bytes], lines: list[int], used: dict[str, str],
                extras: list[str], limits: Limits) -> _Chunk:
    positions = _positions("line", np.asarray(lines, np.int64))
    validator = Validator(positions, limits)
    objects = load_objects(payloads, validator)
    extra = {name: np.fromiter((_text(o.get(name)) for o in objects), object, len(objects))
             for name in extras}
    return _Chunk(object_columns(objects, used), extra, positions, validator)


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if type(value) is str else json.dumps(value, default=str)


# ---- Parquet --------------------------------------------------------------------------


def _arrow_raw(arr: pa.Array) -> RawColumn:
    """A typed Arrow column as a raw column the validation core understands."""
    kind = arr.type
    if pa.types.is_dictionary(kind):
        return _arrow_raw(arr.dictionary_decode())
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return RawColumn(arr.cast(pa.string()))
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        return _decode_binary(arr.cast(pa.binary()))
    nulls = arr.is_null().to_numpy(zero_copy_only=False)
    if pa.types.is_decimal(kind):
        arr, kind = arr.cast(pa.float64()), pa.float64()
    if pa.types.is_date(kind):
        arr, kind = arr.cast(pa.timestamp("us")), pa.timestamp("us")
    if pa.types.is_timestamp(kind):
        micros = arr.cast(pa.timestamp("us", tz=kind.tz), safe=False).cast(pa.int64())
        values = micros.fill_null(0).to_numpy(zero_copy_only=False).view("datetime64[us]")
        return RawColumn(values, missing=nulls)
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind):
        filled = arr.fill_null(False if pa.types.is_boolean(kind) else 0)
        return RawColumn(filled.to_numpy(zero_copy_only=False), missing=nulls)
    values = arr.to_pylist()  # anything else (lists, structs, ...) is a wrong type per row
    return RawColumn(np.fromiter(values, object, len(values)))


def _parquet_chunks(path: Path, fields: Sequence[str], required: Sequence[str],
                    mapping: ColumnMap, chunk_rows: int, keep_extra: bool,
                    limits: Limits) -> Iterator[_Chunk]:
    try:
        # No pre-buffering: its read cache keeps every row group read so far until the
        # reader is closed (~28 bytes per row here, growing with the file; see
        # apache/arrow#39808), and a local file decodes with less CPU without it.
        pf = pq.ParquetFile(path, pre_buffer=False)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{path}: not a readable Parquet file: {exc}") from exc
    found = list(pf.schema_arrow.names)
    used = _resolve(path, found, mapping, fields, required)
    extras = _extra_names(found, used, mapping) if keep_extra else []
    # Arrow selects columns by name: an extra name that occurs twice cannot be told apart,
    # so it is not carried (an extra column is never a reason to refuse a file).
    extras = [name for name in extras if found.count(name) == 1]
    row = 1
    try:
        for batch in pf.iter_batches(batch_size=chunk_rows,
                                     columns=list(dict.fromkeys([*used.values(), *extras]))):
            n = batch.num_rows
            positions = _positions("row", np.arange(row, row + n, dtype=np.int64))
            row += n
            too_big = _oversized(batch.columns, 0, limits)
            raw = {f: _arrow_raw(batch.column(s)) for f, s in used.items()}
            extra = {}
            for name in extras:
                values = batch.column(name).to_numpy(zero_copy_only=False)
                if values.dtype == object:
                    values = np.where([v is None for v in values], "", values)
                extra[name] = values
            validator = Validator(positions, limits)
            if too_big is not None:
                _refuse_oversized(validator, np.flatnonzero(too_big), limits)
            yield _Chunk(raw, extra, positions, validator)
            del batch, raw, extra, positions, validator  # not pinned while the next is decoded
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{path}: unreadable Parquet data after row {row - 1}: {exc}") from exc


# ---- public -----------------------------------------------------------------------------


def _chunks(path: str | Path, columns: ColumnMap | None, fields: Sequence[str],
            required: Sequence[str], chunk_rows: int, keep_extra: bool,
            limits: Limits) -> Iterator[_Chunk]:
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be positive")
    p = Path(path)
    fmt = _check_file(p)
    reader = {"csv": _csv_chunks, "jsonl": _jsonl_chunks, "parquet": _parquet_chunks}[fmt]
    return reader(p, fields, required, columns or ColumnMap(), chunk_rows, keep_extra, limits)


def read_transactions(
    path: str | Path,
    columns: ColumnMap | None = None,
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    keep_extra: bool = True,
    limits: Limits = DEFAULT_LIMITS,
    s3_client: Any = None,
    settings: Settings | None = None,
) -> Iterator[ParseResult]:
    """Validated chunks of a transaction file, in file order.

    Indices in each result count records from the start of the file; a duplicate
    transaction_id is caught across chunks too, so the chunk size never changes the outcome.
    Non-canonical columns are carried in ``batch.extra`` unless `keep_extra` is false.

    An ``s3://bucket/prefix`` path reads every .csv/.jsonl/.parquet object under the prefix,
    sorted by key, as one input (an archive written by `fraud.actions.Archive`): positions
    name the object (``dt=2024-01-31/part-....parquet row 3``) and a transaction_id repeated
    in a later object is refused as a duplicate. The S3 client is `s3_client`, else one built
    from `settings` (else from the ``FRAUD_*`` environment).
    """
    seen = SeenIds()
    base = 0
    try:
        for chunk in _source_chunks(path, columns, chunk_rows, keep_extra, limits, s3_client,
                                    settings):
            result = validate_transactions(chunk.raw, chunk.positions,
                                           validator=chunk.validator, extra=chunk.extra,
                                           seen=seen, index_base=base, limits=limits)
            base += len(chunk.positions)
            yield result
            # Neither the raw chunk nor the result stays pinned while the next one is read.
            del chunk, result
    finally:
        seen.close()  # its temporary file goes now, not whenever the generator is collected


def _source_chunks(path: str | Path, columns: ColumnMap | None, chunk_rows: int,
                   keep_extra: bool, limits: Limits, s3_client: Any,
                   settings: Settings | None) -> Iterator[_Chunk]:
    """Chunks of a local file, or of every object under an s3:// prefix in key order."""
    if not (isinstance(path, str) and path.startswith("s3://")):
        yield from _chunks(path, columns, CANONICAL_FIELDS, REQUIRED_FIELDS, chunk_rows,
                           keep_extra, limits)
        return
    from fraud.actions.s3input import download, list_data_objects, parse_s3_uri
    from fraud.actions.s3input import s3_client as make

    client = s3_client if s3_client is not None else make(settings)
    _, prefix = parse_s3_uri(path)
    for obj in list_data_objects(client, path):
        name = obj.key[len(prefix):] if obj.key.startswith(prefix) else obj.key
        with download(client, obj) as local:
            try:
                for chunk in _chunks(local, columns, CANONICAL_FIELDS, REQUIRED_FIELDS,
                                     chunk_rows, keep_extra, limits):
                    named = np.asarray([f"{name} {p}" for p in chunk.positions.tolist()],
                                       dtype=object)
                    chunk.positions = named
                    chunk.validator.positions = named
                    yield chunk
            except InputError as exc:
                raise InputError(str(exc).replace(str(local), obj.uri)) from exc


def read_all(path: str | Path, columns: ColumnMap | None = None, **options: Any) -> ParseResult:
    """The whole file as one `ParseResult` (see `read_transactions` for the options)."""
    return ParseResult.concat(list(read_transactions(path, columns, **options)))


def read_labels(
    path: str | Path,
    columns: ColumnMap | None = None,
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    limits: Limits = DEFAULT_LIMITS,
) -> Labels:
    """A label file: ``transaction_id`` and ``is_fraud`` required; ``label_time``, and the
    transaction's ``user_id`` and ``timestamp``, optional.

    A repeated transaction_id is refused (the first label wins), like in transactions.
    """
    seen = SeenIds()
    ids, fraud, times, positions, users, stamps = [], [], [], [], [], []
    rejections: list[Rejection] = []
    try:
        for chunk in _chunks(path, columns, LABEL_COLUMNS, LABEL_REQUIRED, chunk_rows, False,
                             limits):
            v = chunk.validator
            tid = v.text("transaction_id", chunk.raw.get("transaction_id"), required=True)
            label = v.label("is_fraud", chunk.raw.get("is_fraud"), required=True)
            when = v.time("label_time", chunk.raw.get("label_time"))
            user = v.text("user_id", chunk.raw.get("user_id"))
            stamp = v.time("timestamp", chunk.raw.get("timestamp"))
            v.unique("transaction_id", tid, seen)
            idx = v.accepted_index()
            ids.append(tid[idx])
            fraud.append(label[idx])
            times.append(when[idx])
            users.append(user[idx])
            stamps.append(stamp[idx])
            positions.append(chunk.positions[idx])
            rejections.extend(v.rejections()[0])
    finally:
        seen.close()
    return Labels(
        transaction_id=np.concatenate([np.zeros(0, object), *ids]),
        is_fraud=np.concatenate([np.zeros(0, np.int8), *fraud]),
        label_time_us=np.concatenate([np.zeros(0, np.int64), *times]),
        position=np.concatenate([np.zeros(0, object), *positions]),
        rejections=rejections,
        user_id=np.concatenate([np.zeros(0, object), *users]),
        timestamp_us=np.concatenate([np.zeros(0, np.int64), *stamps]),
    )
