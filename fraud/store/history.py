"""TransactionHistory: every processed transaction, its score and action, and later its label.

Items are keyed (user_id, ``sk``) with ``sk = <ts_us zero-padded to 20 digits>#<transaction_id>``
so a user's history sorts by time and two transactions at the same microsecond stay apart.
``expires_at`` (seconds) lets DynamoDB's TTL drop old history. Writes are unconditional
BatchWriteItem puts (25 per request): the key is deterministic, so a redelivered transaction
rewrites the same item rather than adding one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from fraud.schema.batch import TransactionBatch
from fraud.store.dynamo import Dynamo

__all__ = [
    "DEFAULT_RETENTION_DAYS",
    "HistoryRef",
    "find_transactions",
    "history_sort_key",
    "write_history",
]

DEFAULT_RETENTION_DAYS = 400
_US = 1_000_000


def history_sort_key(ts_us: int, transaction_id: str) -> str:
    """The sort key of a history item (time order, then id)."""
    return f"{int(ts_us):020d}#{transaction_id}"


@dataclass(frozen=True, slots=True)
class HistoryRef:
    """Where a transaction's history item is, and what the label feed needs from it."""

    transaction_id: str
    user_id: str
    sk: str
    terminal_id: str
    ts_us: int  # the engine's effective time of the event (usually its timestamp)


def write_history(
    dynamo: Dynamo,
    batch: TransactionBatch,
    scores: npt.NDArray[np.float64] | None = None,
    actions: Sequence[str] | None = None,
    *,
    retention_days: float = DEFAULT_RETENTION_DAYS,
    effective_time_us: npt.NDArray[np.int64] | None = None,
    numbers: Mapping[str, npt.NDArray[np.int64]] | None = None,
) -> int:
    """Put one history item per transaction (NaN score = not computed); returns requests sent.

    `numbers` adds integer attributes per row (e.g. the consumer's ``arrival_ms`` and
    ``decided_at``, from which arrival-to-decision latency is measured).

    `effective_time_us` is the feature engine's event time per row
    (`FeatureMatrix.effective_time_us`); when it differs from the timestamp it is kept as
    ``eff_ts``, so the label feed labels the very terminal event the engine recorded.

    Duplicate transaction ids within the batch are written once (the last row wins).
    """
    items: dict[tuple[str, str], dict[str, Any]] = {}
    ttl = int(retention_days * 86_400)
    for i in range(len(batch)):
        ts = int(batch.timestamp_us[i])
        tx = str(batch.transaction_id[i])
        item: dict[str, Any] = {
            "user_id": str(batch.user_id[i]), "sk": history_sort_key(ts, tx),
            "transaction_id": tx, "ts": ts, "terminal_id": str(batch.terminal_id[i]),
            "amount": float(batch.amount[i]), "expires_at": ts // _US + ttl,
        }
        if effective_time_us is not None and int(effective_time_us[i]) != ts:
            item["eff_ts"] = int(effective_time_us[i])
        for name in ("currency", "device_id", "session_id", "channel", "game_id"):
            value = str(getattr(batch, name)[i])
            if value:
                item[name] = value
        lat, lon = float(batch.lat[i]), float(batch.lon[i])
        if math.isfinite(lat) and math.isfinite(lon):
            item["lat"], item["lon"] = lat, lon
        if scores is not None and math.isfinite(float(scores[i])):
            item["score"] = float(scores[i])
        if actions is not None and actions[i]:
            item["action"] = str(actions[i])
        for name, column in (numbers or {}).items():
            item[name] = int(column[i])
        items[(item["user_id"], item["sk"])] = item
    return dynamo.batch_write(puts={"TransactionHistory": list(items.values())})


def find_transactions(dynamo: Dynamo, transaction_ids: Sequence[str]) -> dict[str, HistoryRef]:
    """History references of these transactions (one index query each; absent ids omitted).

    Used by the label feed, whose input has only transaction ids. The index is eventually
    consistent: a transaction written a moment ago may not be found yet.
    """
    found: dict[str, HistoryRef] = {}
    for tx in dict.fromkeys(transaction_ids):
        rows = dynamo.query_all(
            "TransactionHistory", IndexName="by_transaction",
            KeyConditionExpression="transaction_id = :t",
            ExpressionAttributeValues=Dynamo.values(t=tx),
        )
        if rows:
            row = rows[0]
            found[tx] = HistoryRef(tx, str(row["user_id"]), str(row["sk"]),
                                   str(row["terminal_id"]),
                                   int(row.get("eff_ts", row["ts"])))
    return found
