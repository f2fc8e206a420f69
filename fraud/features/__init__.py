"""Point-in-time features for fraud scoring: per-user and per-terminal state, numba kernels.

Public API (everything else is internal):

* `FEATURE_NAMES`, `FEATURE_ENGINE_VERSION`, `FeatureConfig`, `FeatureMatrix`, `LabelBatch`;
* `FeatureEngine(config).extract(batch, store, support)` and `.apply_labels(labels, store)`;
* `compute_features(batch_or_chunks, config, support_store)` for whole files;
* `StateStore` (Protocol), `InMemoryStore`, `UserState`, `TerminalSnapshot` and the DynamoDB
  element encodings `event_element`, `label_element`, `day_bucket`;
* `SupportContext`, `SupportStore` for the supporting stores.

Definitions, neutral values and the out-of-order policy: docs/features.md.
"""

from __future__ import annotations

from fraud.features.api import (
    FEATURE_ENGINE_VERSION,
    FEATURE_NAMES,
    NEUTRAL_VALUES,
    FeatureConfig,
    FeatureMatrix,
    LabelBatch,
)
from fraud.features.engine import FeatureEngine, compute_features
from fraud.features.ids import stable_hash
from fraud.features.store import (
    InMemoryStore,
    StateStore,
    TerminalSnapshot,
    UserState,
    day_bucket,
    event_element,
    label_element,
)
from fraud.features.support import SupportContext, SupportStore

__all__ = [
    "FEATURE_ENGINE_VERSION",
    "FEATURE_NAMES",
    "NEUTRAL_VALUES",
    "FeatureConfig",
    "FeatureEngine",
    "FeatureMatrix",
    "InMemoryStore",
    "LabelBatch",
    "StateStore",
    "SupportContext",
    "SupportStore",
    "TerminalSnapshot",
    "UserState",
    "compute_features",
    "day_bucket",
    "event_element",
    "label_element",
    "stable_hash",
]
