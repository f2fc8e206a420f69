"""Action sinks with exactly-once effects, and the S3 archive of decided transactions.

The consumer's handler, per Kinesis batch, after the pipeline decided it::

    performer = ActionPerformer(dynamo=dynamo, sns=sns, kinesis=kinesis,
                                alert_topic=settings.alert_topic,
                                decisions_stream=settings.decisions_stream, clock=time.time)
    archive = Archive(s3, settings.archive_uri, clock=time.time)
    report = performer.perform(outcome, shard_id=shard_id)   # raises StoreError: retry batch
    archive.add(outcome, shard_id=shard_id)                   # flushes by size / time
    archive.flush()                                           # at shard end and shutdown

`perform` is safe to repeat with the same outcome (see `fraud.actions.perform` for the outbox
and its one at-least-once window); `read_transactions("s3://bucket/prefix")` reads the archive.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fraud.actions.archive import Archive, ArchivedObject, archive_columns
    from fraud.actions.perform import ActionPerformer, EffectsReport
    from fraud.actions.publish import AlertTopic

__all__ = ["ActionPerformer", "AlertTopic", "Archive", "ArchivedObject", "EffectsReport",
           "archive_columns"]

# Imported on first use: `fraud.schema.files` reads s3:// inputs through
# `fraud.actions.s3input`, and should not pay for the pipeline's imports (numba) to do so.
_HOMES = {"Archive": "archive", "ArchivedObject": "archive", "archive_columns": "archive",
          "ActionPerformer": "perform", "EffectsReport": "perform", "AlertTopic": "publish"}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(f"fraud.actions.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'fraud.actions' has no attribute {name!r}")
