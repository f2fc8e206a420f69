"""TransactionHistory: every processed transaction, its score and action, and later its label.

Items are keyed (user_id, ``sk``) with ``sk = <ts_us zero-padded to 20 digits>#<transaction_id>``
so a user's history sorts by time and two transactions at the same microsecond stay apart.
``expires_at`` (seconds) lets DynamoDB's TTL drop old history. Writes are unconditional
BatchWriteItem puts (25 per request): the key is deterministic, so a redelivered transaction
rewrites the same item rather than adding one. Items are marshalled column by column
(`fraud.store.marshal.number_column`), not value by value: this is the consumer's biggest
write, one item per transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from fraud.logs import get_logger
from fraud.schema.batch import TransactionBatch
from fraud.store.dynamo import Dynamo
from fraud.store.marshal import TypedColumn, number_column, string_column, typed_items

__all__ = [
    "DEFAULT_RETENTION_DAYS",
    "HistoryRef",
    "find_by_key",
    "find_transactions",
    "history_sort_key",
    "write_history",
]

DEFAULT_RETENTION_DAYS = 400
_US = 1_000_000
_log = get_logger(__name__)


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
    n = len(batch)
    ts = np.asarray(batch.timestamp_us, dtype=np.int64)
    tx = batch.transaction_id.tolist()
    users = batch.user_id.tolist()
    keys = [history_sort_key(t, x) for t, x in zip(ts.tolist(), tx, strict=True)]
    columns: dict[str, TypedColumn] = {
        "user_id": string_column(users, required=True),
        "sk": string_column(keys, required=True),
        "transaction_id": string_column(tx, required=True),
        "ts": number_column(ts),
        "terminal_id": string_column(batch.terminal_id, required=True),
        "amount": number_column(np.asarray(batch.amount, dtype=np.float64)),
        "expires_at": number_column(ts // _US + int(retention_days * 86_400)),
    }
    if effective_time_us is not None:
        eff = np.asarray(effective_time_us, dtype=np.int64)
        columns["eff_ts"] = [a if moved else None for a, moved in
                             zip(number_column(eff), (eff != ts).tolist(), strict=True)]
    for name in ("currency", "device_id", "session_id", "channel", "game_id"):
        columns[name] = string_column(getattr(batch, name))
    located = np.isfinite(batch.lat) & np.isfinite(batch.lon)
    columns["lat"] = number_column(np.where(located, batch.lat, np.nan))
    columns["lon"] = number_column(np.where(located, batch.lon, np.nan))
    if scores is not None:
        columns["score"] = number_column(np.asarray(scores, dtype=np.float64))
    if actions is not None:
        columns["action"] = string_column([str(a) if a else "" for a in actions])
    for name, column in (numbers or {}).items():
        columns[name] = number_column(np.asarray(column, dtype=np.int64))
    # Duplicate transactions within the batch: the last row wins (one put per key).
    items = dict(zip(zip(users, keys, strict=True), typed_items(columns), strict=True))
    if len(items) < n:
        _log.debug("history.duplicates", rows=n, items=len(items))
    return dynamo.batch_write(puts={"TransactionHistory": list(items.values())}, typed=True)


def find_transactions(dynamo: Dynamo, transaction_ids: Sequence[str], *,
                      workers: int = 8) -> dict[str, HistoryRef]:
    """History references of these transactions (one index query each; absent ids omitted).

    Used by the label feed, whose input has only transaction ids. A query cannot be batched,
    so up to `workers` run at once (a boto3 client is safe to share between threads, and its
    connection pool holds 10). The index is eventually consistent: a transaction written a
    moment ago may not be found yet.
    """
    from concurrent.futures import ThreadPoolExecutor

    def look_up(tx: str) -> HistoryRef | None:
        rows = dynamo.query_all(
            "TransactionHistory", IndexName="by_transaction",
            KeyConditionExpression="transaction_id = :t",
            ExpressionAttributeValues=Dynamo.values(t=tx),
        )
        return _ref(rows[0]) if rows else None

    unique = list(dict.fromkeys(transaction_ids))
    if len(unique) < 2 or workers < 2:
        refs = [look_up(tx) for tx in unique]
    else:
        with ThreadPoolExecutor(max_workers=min(workers, len(unique)),
                                thread_name_prefix="label-lookup") as pool:
            refs = list(pool.map(look_up, unique))
    return {tx: ref for tx, ref in zip(unique, refs, strict=True) if ref is not None}


def find_by_key(dynamo: Dynamo, keys: Sequence[tuple[str, str, int]]
                ) -> dict[str, HistoryRef]:
    """History references of transactions given as (transaction_id, user_id, timestamp_us).

    The item key follows from those (`history_sort_key`), so this is a batched read, 100 keys
    per request, instead of an index query per transaction; a key that finds nothing (a
    timestamp written differently, say) is simply absent from the result.
    """
    if not keys:
        return {}
    got = dynamo.batch_get(
        {"TransactionHistory": [{"user_id": user, "sk": history_sort_key(ts, tx)}
                                for tx, user, ts in keys]},
        projection={"TransactionHistory": ("user_id", "sk", "transaction_id", "terminal_id",
                                           "ts", "eff_ts")},
    )["TransactionHistory"]
    return {ref.transaction_id: ref for ref in map(_ref, got)}


def _ref(row: Mapping[str, Any]) -> HistoryRef:
    return HistoryRef(str(row["transaction_id"]), str(row["user_id"]), str(row["sk"]),
                      str(row["terminal_id"]), int(row.get("eff_ts", row["ts"])))
