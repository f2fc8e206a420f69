"""Reading an ``s3://bucket/prefix`` of transaction files (e.g. the archive) as one input.

`fraud.schema.files.read_transactions` uses this for s3:// paths: the objects under the
prefix, sorted by key, whose names end in a known extension (``.csv``, ``.jsonl``,
``.parquet``, ``.gz`` allowed on text formats; anything else, such as a ``_SUCCESS`` marker,
is skipped), each downloaded to a temporary file (streamed, so memory stays bounded) and read
by the same chunked readers and the same validation as a local file.

>>> parse_s3_uri("s3://archive/fraud/decided")
('archive', 'fraud/decided/')
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from fraud.config import Settings
from fraud.errors import ConfigError, InputError, StoreError
from fraud.tabular import format_of

__all__ = ["S3Object", "download", "is_s3_uri", "list_data_objects", "parse_s3_uri",
           "s3_client"]


def is_s3_uri(path: object) -> bool:
    return isinstance(path, str) and path.startswith("s3://")


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """(bucket, key prefix) of ``s3://bucket/prefix``; the prefix ends in "/" when not empty."""
    if not uri.startswith("s3://"):
        raise ConfigError(f"{uri!r}: expected an s3://bucket/prefix URI")
    bucket, _, prefix = uri[len("s3://"):].partition("/")
    if not bucket:
        raise ConfigError(f"{uri!r}: no bucket name")
    prefix = prefix.strip("/")
    return bucket, f"{prefix}/" if prefix else ""


class S3Object:
    """One object to read: bucket, key and size."""

    __slots__ = ("bucket", "key", "size")

    def __init__(self, bucket: str, key: str, size: int) -> None:
        self.bucket = bucket
        self.key = key
        self.size = size

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def __repr__(self) -> str:
        return f"S3Object({self.uri!r}, size={self.size})"


def s3_client(settings: Settings | None) -> Any:
    """An S3 client from `settings` (or from the environment's settings when None)."""
    from fraud.config import build_settings
    from fraud.store.clients import make_client

    return make_client("s3", settings if settings is not None else build_settings())


def _wrap(uri: str, exc: Exception) -> InputError:
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("NoSuchBucket", "NoSuchKey", "404", "AccessDenied", "403"):
            return InputError(f"{uri}: cannot read: {code}")
        return InputError(f"{uri}: S3 error: {code}: {exc}")
    return InputError(f"{uri}: S3 error: {exc}")


def list_data_objects(s3: Any, uri: str) -> list[S3Object]:
    """The readable objects under `uri`, sorted by key. A URI naming one object gives it.

    Raises `InputError` when the bucket cannot be listed or nothing readable is there.
    """
    bucket, prefix = parse_s3_uri(uri)
    exact = prefix.rstrip("/")
    objects: list[S3Object] = []
    try:
        if exact:
            with contextlib.suppress(ClientError):
                head = s3.head_object(Bucket=bucket, Key=exact)
                objects.append(S3Object(bucket, exact, int(head.get("ContentLength", 0))))
        if not objects:
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                                     Prefix=prefix):
                for entry in page.get("Contents", []):
                    objects.append(S3Object(bucket, str(entry["Key"]), int(entry["Size"])))
    except (ClientError, BotoCoreError) as exc:
        raise _wrap(uri, exc) from exc
    readable = []
    for obj in objects:
        try:
            format_of(obj.key)
        except InputError:
            continue
        readable.append(obj)
    if not readable:
        raise InputError(f"{uri}: no .csv, .jsonl or .parquet objects under this prefix")
    return sorted(readable, key=lambda o: o.key)


@contextlib.contextmanager
def download(s3: Any, obj: S3Object) -> Iterator[Path]:
    """The object in a temporary file (same extension, so the format is recognised)."""
    suffix = "".join(Path(obj.key).suffixes[-2:])
    with tempfile.TemporaryDirectory(prefix="fraud-s3-") as tmp:
        path = Path(tmp) / f"object{suffix}"
        try:
            with open(path, "wb") as fh:
                s3.download_fileobj(obj.bucket, obj.key, fh)
        except (ClientError, BotoCoreError) as exc:
            raise _wrap(obj.uri, exc) from exc
        except OSError as exc:
            raise StoreError(f"{obj.uri}: cannot write a temporary copy: {exc}") from exc
        yield path
