"""A crash marker for the e2e tests: the real pipeline, and a SIGKILL at the worst moment.

`CrashingPipelineHandler` is `fraud.stream.handler.PipelineHandler` unchanged, except that
once a batch holding the marker transaction (``FRAUD_E2E_CRASH_TX``) has made all its effects
durable, it SIGKILLs its whole process group - the daemon JVM and every record processor -
*before* the record processor can checkpoint. The restarted worker is then bound to receive
that batch again: the crash every exactly-once claim is about, made certain instead of
hoped for. A flag file (``FRAUD_E2E_CRASH_FLAG``) makes it crash only once.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Sequence
from pathlib import Path

from fraud.stream.handler import PipelineHandler
from fraud.stream.processor import StreamRecord

__all__ = ["CrashingPipelineHandler"]


class CrashingPipelineHandler(PipelineHandler):
    def handle(self, shard_id: str, records: Sequence[StreamRecord]) -> None:
        super().handle(shard_id, records)
        marker = os.environ.get("FRAUD_E2E_CRASH_TX", "").encode()
        flag = Path(os.environ.get("FRAUD_E2E_CRASH_FLAG", ""))
        if not marker or flag.exists() or not any(marker in r.data for r in records):
            return
        # Where the crashed batch ends: the restarted worker must checkpoint past it.
        flag.write_text(f"{shard_id} {records[-1].sequence_number}\n")
        os.killpg(os.getpgrp(), signal.SIGKILL)
