"""Joining a label feed onto transactions: the loop from the live archive back to training.

The consumer's S3 archive holds what was decided, without labels (they arrive days later);
the label feed (chargebacks, confirmed fraud) holds labels without transactions. A transaction
the feed does not name is genuine: with chargebacks, silence is the label.

>>> import numpy as np
>>> from fraud.schema.batch import MISSING_TIME, TransactionBatch
>>> from fraud.schema.files import Labels
>>> batch = TransactionBatch.from_columns(transaction_id=["a", "b"], timestamp_us=[0, 0],
...     user_id=["u", "u"], terminal_id=["t", "t"], amount=[1.0, 2.0])
>>> feed = Labels(np.array(["b"], dtype=object), np.array([1], dtype=np.int8),
...               np.array([5], dtype=np.int64), np.array(["line 2"], dtype=object), [])
>>> join_labels(batch, LabelIndex(feed)).is_fraud.tolist()
[0, 1]
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import numpy.typing as npt

from fraud.schema.batch import MISSING_TIME, TransactionBatch
from fraud.schema.files import Labels

__all__ = ["LabelIndex", "join_labels"]


class LabelIndex:
    """A label feed looked up by transaction id."""

    def __init__(self, labels: Labels) -> None:
        self._rows = {str(t): i for i, t in enumerate(labels.transaction_id)}
        self.labels = labels

    def __len__(self) -> int:
        return len(self._rows)

    def rows_of(self, transaction_ids: npt.NDArray[np.object_]) -> npt.NDArray[np.int64]:
        """Each id's row in the feed, -1 where the feed does not name it."""
        get = self._rows.get
        return np.fromiter((get(str(t), -1) for t in transaction_ids), dtype=np.int64,
                           count=len(transaction_ids))


def join_labels(batch: TransactionBatch, index: LabelIndex) -> TransactionBatch:
    """`batch` with its labels from the feed: named transactions get the feed's label and
    label time, the others are genuine (``is_fraud=0``, label known after the label delay)."""
    rows = index.rows_of(batch.transaction_id)
    hit = rows >= 0
    is_fraud = np.zeros(len(batch), dtype=np.int8)
    label_time = np.full(len(batch), MISSING_TIME, dtype=np.int64)
    is_fraud[hit] = index.labels.is_fraud[rows[hit]]
    label_time[hit] = index.labels.label_time_us[rows[hit]]
    return replace(batch, is_fraud=is_fraud, label_time_us=label_time)
