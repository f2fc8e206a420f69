"""Synthetic transactions with injected fraud, and the supporting stores that go with them.

>>> from fraud.generate import GenerateConfig, generate
>>> ds = generate(GenerateConfig(users=100, terminals=40, days=5, seed=7))
>>> int(ds.transactions["is_fraud"].sum()) > 0
True

The pure core is `generate` (arrays in memory); `write_dataset` writes the transaction file
(CSV, JSON Lines or Parquet by extension) and the stores' JSON Lines files.

Transactions (`TRANSACTION_FIELDS`, sorted by timestamp, ids ``TX``/``U``/``T``/``D``/``S``
plus digits): times are ISO-8601 UTC with microseconds and 'Z'; `amount` has two decimals;
`device_id`, `session_id` and `ip` are empty for card-present (``pos``) rows; `game_id` is set
only for purchases at gaming merchants; fraud rows have ``is_fraud=1``, their `scenario` and
``label_time = timestamp + chargeback delay`` (1 + Gamma(2, 8 days), at most 120 days);
legitimate rows have ``is_fraud=0`` and empty `label_time` and `scenario`.

Size: about 1.4 transactions per user and day, so ``users * days * 1.4`` rows; the CLI's
defaults (2,000 users, 30 days) give about 80,000, and 12,000 users over 60 days give about a
million (a few seconds of CPU for generation plus CSV or Parquet output).
"""

from __future__ import annotations

from fraud.generate.core import (
    TRANSACTION_FIELDS,
    Dataset,
    Summary,
    default_stores_dir,
    generate,
    write_dataset,
)
from fraud.generate.params import SCENARIOS, GenerateConfig
from fraud.generate.stores import STORE_FIELDS

__all__ = [
    "SCENARIOS",
    "STORE_FIELDS",
    "TRANSACTION_FIELDS",
    "Dataset",
    "GenerateConfig",
    "Summary",
    "default_stores_dir",
    "generate",
    "write_dataset",
]
