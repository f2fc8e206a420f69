"""Create what the product needs on a set of endpoints: tables, streams, topic, bucket.

Used by ``fraud local up`` and the demo on the local stack; every step is idempotent, so it is
also safe against real AWS (where a team would rather use infrastructure as code).
"""

from __future__ import annotations

from dataclasses import dataclass

from fraud.config import Settings
from fraud.logs import get_logger

__all__ = ["Provisioned", "bucket_of", "provision"]

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Provisioned:
    """What exists after `provision`."""

    tables: tuple[str, ...]
    streams: tuple[str, ...]
    topic_arn: str
    bucket: str | None


def bucket_of(uri: str) -> str:
    """``s3://bucket/prefix`` -> ``bucket``."""
    return uri.removeprefix("s3://").split("/", 1)[0]


def provision(settings: Settings, *, shards: int = 2, streams: bool = True) -> Provisioned:
    """Tables (prefixed), the transactions and decisions streams, the alert topic, the bucket.

    `streams=False` leaves Kinesis alone (e.g. only moto's server was started).
    """
    from fraud.store.clients import make_client
    from fraud.store.dynamo import Dynamo
    from fraud.store.tables import TABLES, create_tables

    dynamo = Dynamo(make_client("dynamodb", settings), prefix=settings.table_prefix)
    create_tables(dynamo)
    if streams:
        from fraud.stream.kinesis import ensure_stream, kinesis_client

        kinesis = kinesis_client(settings)
        ensure_stream(kinesis, settings.stream_name, shards=shards)
        ensure_stream(kinesis, settings.decisions_stream, shards=1)
    topic = settings.alert_topic
    if not topic.startswith("arn:"):
        topic = make_client("sns", settings).create_topic(Name=topic)["TopicArn"]
    bucket = None
    if settings.archive_uri:
        bucket = bucket_of(settings.archive_uri)
        s3 = make_client("s3", settings)
        try:
            s3.head_bucket(Bucket=bucket)
        except Exception:  # absent (404) or not ours: creating it says which
            s3.create_bucket(Bucket=bucket)
    done = Provisioned(tables=tuple(dynamo.name(t.name) for t in TABLES),
                       streams=(settings.stream_name, settings.decisions_stream) if streams
                       else (),
                       topic_arn=topic, bucket=bucket)
    log.info("provisioned", tables=len(done.tables), streams=list(done.streams),
             topic=topic, bucket=bucket)
    return done
