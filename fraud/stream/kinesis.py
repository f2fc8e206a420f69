"""Kinesis stream helpers: a client from `Settings`, create-if-absent, wait, describe.

boto3 errors are wrapped into `StoreError` here, at the boundary, with the stream's name.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fraud.config import Settings
from fraud.errors import StoreError
from fraud.logs import get_logger

if TYPE_CHECKING:
    from mypy_boto3_kinesis import KinesisClient

__all__ = ["StreamInfo", "describe_stream", "ensure_stream", "kinesis_client", "wait_active"]

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class StreamInfo:
    name: str
    arn: str
    status: str
    open_shards: int


def kinesis_client(settings: Settings) -> KinesisClient:
    """A Kinesis client for `settings` (local endpoint when one is set; see `make_client`)."""
    from fraud.store.clients import make_client

    client: KinesisClient = make_client("kinesis", settings)
    return client


def describe_stream(client: KinesisClient, name: str) -> StreamInfo | None:
    """The stream's summary, or None when it does not exist."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        summary = client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            return None
        raise StoreError(f"describe stream {name}: {exc}") from exc
    except BotoCoreError as exc:
        raise StoreError(f"describe stream {name}: {exc}") from exc
    return StreamInfo(
        name=name,
        arn=summary["StreamARN"],
        status=summary["StreamStatus"],
        open_shards=int(summary.get("OpenShardCount", 0)),
    )


def wait_active(
    client: KinesisClient,
    name: str,
    *,
    timeout: float = 60.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> StreamInfo:
    """Poll until the stream is ACTIVE (creation and resharding take a moment)."""
    deadline = clock() + timeout
    while True:
        info = describe_stream(client, name)
        if info is not None and info.status == "ACTIVE":
            return info
        if clock() >= deadline:
            state = "missing" if info is None else info.status
            raise StoreError(f"stream {name} not ACTIVE after {timeout:.0f} s (it is {state})")
        sleep(0.2)


def ensure_stream(client: KinesisClient, name: str, shards: int = 1, **wait: Any) -> StreamInfo:
    """Create the stream with `shards` shards unless it exists; return it once ACTIVE."""
    from botocore.exceptions import BotoCoreError, ClientError

    if describe_stream(client, name) is None:
        try:
            client.create_stream(StreamName=name, ShardCount=shards)
            log.info("stream_created", stream=name, shards=shards)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ResourceInUseException":
                raise StoreError(f"create stream {name}: {exc}") from exc
        except BotoCoreError as exc:
            raise StoreError(f"create stream {name}: {exc}") from exc
    return wait_active(client, name, **wait)
