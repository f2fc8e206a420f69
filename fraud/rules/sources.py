"""Where rule files come from: a local path or an ``s3://bucket/key`` URI.

A `RuleSource` reads a file's bytes and gives a cheap change signature (mtime+size locally,
the ETag on S3) so the hot-reload watcher can poll without downloading. The boto3 S3 client is
passed in (never built here), so tests use moto and production uses the normal credential chain.
"""

from __future__ import annotations

import os
import posixpath
from pathlib import Path
from typing import Any, Protocol

from fraud.errors import InputError, StoreError

__all__ = ["LocalSource", "RuleSource", "S3Source", "join_location", "source_for"]


class RuleSource(Protocol):
    """Reads rule files and tells when they changed."""

    def read(self, location: str) -> bytes:
        """The file's bytes; `InputError` when it does not exist or cannot be read."""
        ...

    def signature(self, location: str) -> str:
        """A string that changes whenever the file changes ("" when it is absent)."""
        ...


class LocalSource:
    """Files on the local file system."""

    def read(self, location: str) -> bytes:
        try:
            return Path(location).read_bytes()
        except FileNotFoundError:
            raise InputError(f"{location}: no such file") from None
        except IsADirectoryError:
            raise InputError(f"{location}: is a directory, expected a rules file") from None
        except OSError as exc:
            raise InputError(f"{location}: cannot read: {exc.strerror}") from exc

    def signature(self, location: str) -> str:
        try:
            st = os.stat(location)
        except OSError:
            return ""
        return f"{st.st_mtime_ns}:{st.st_size}:{st.st_ino}"


def _split_s3(location: str) -> tuple[str, str]:
    rest = location[len("s3://"):]
    bucket, _, key = rest.partition("/")
    if not bucket or not key:
        raise InputError(f"{location}: expected s3://bucket/key")
    return bucket, key


class S3Source:
    """Objects in S3 through a boto3 client passed in by the caller."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def read(self, location: str) -> bytes:
        bucket, key = _split_s3(location)
        try:
            response = self.client.get_object(Bucket=bucket, Key=key)
            body: bytes = response["Body"].read()
        except self.client.exceptions.NoSuchKey:
            raise InputError(f"{location}: no such object") from None
        except self.client.exceptions.NoSuchBucket:
            raise InputError(f"{location}: no such bucket {bucket!r}") from None
        except Exception as exc:  # botocore errors: wrapped at the boundary
            raise StoreError(f"{location}: cannot read from S3: {exc}") from exc
        return body

    def signature(self, location: str) -> str:
        bucket, key = _split_s3(location)
        try:
            head = self.client.head_object(Bucket=bucket, Key=key)
        except Exception as exc:
            code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
            if code in ("404", "NoSuchKey", "NotFound"):
                return ""
            raise StoreError(f"{location}: cannot check S3 object: {exc}") from exc
        return str(head.get("ETag", "")) + ":" + str(head.get("ContentLength", ""))


def source_for(location: str, s3_client: Any = None) -> RuleSource:
    """The source that can read `location` (an S3 URI needs `s3_client`)."""
    if location.startswith("s3://"):
        if s3_client is None:
            raise InputError(f"{location}: an S3 client is needed to read s3:// rules")
        return S3Source(s3_client)
    return LocalSource()


def join_location(base: str, relative: str) -> str:
    """`relative` resolved against the directory of `base` (a path or an s3:// URI)."""
    if relative.startswith("s3://") or os.path.isabs(relative):
        return relative
    if base.startswith("s3://"):
        return posixpath.join(posixpath.dirname(base), relative)
    return str(Path(base).parent / relative)
