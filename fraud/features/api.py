"""The feature engine's vocabulary: feature names, configuration, the feature matrix, labels.

Everything here is plain data so that replay, training, the KCL consumer and the DynamoDB
store can depend on it without importing numba. `FEATURE_NAMES` is the model's column order;
bump `FEATURE_ENGINE_VERSION` whenever a definition, a neutral value or the state encoding
changes, so a model artifact can refuse features it was not trained on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from fraud.errors import ConfigError
from fraud.schema.batch import MISSING_TIME

__all__ = [
    "DAY_US",
    "FEATURE_ENGINE_VERSION",
    "FEATURE_NAMES",
    "MAX_WINDOW_CAP",
    "NEUTRAL_VALUES",
    "SUPPORT_FEATURES",
    "USER_WINDOWS_DAYS",
    "FeatureConfig",
    "FeatureMatrix",
    "LabelBatch",
]

FEATURE_ENGINE_VERSION = "1"
DAY_US = 86_400_000_000
MAX_WINDOW_CAP = 1 << 22
USER_WINDOWS_DAYS = (1, 7, 30)

_WINDOWED = (
    *(f"user_tx_count_{w}d" for w in USER_WINDOWS_DAYS),
    *(f"user_amount_mean_{w}d" for w in USER_WINDOWS_DAYS),
    *(f"terminal_tx_count_{w}d" for w in USER_WINDOWS_DAYS),
    *(f"terminal_fraud_rate_{w}d" for w in USER_WINDOWS_DAYS),
)
_BEHAVIOUR = (
    "is_weekend",
    "is_night",
    "amount_to_user_mean",
    "user_seconds_since_prev",
    "user_terminal_seen",
    "user_distinct_terminals_1d",
    "user_distance_from_usual_km",
    "user_new_device",
)
SUPPORT_FEATURES = (
    "session_age_s",
    "session_device_mismatch",
    "cart_amount_ratio",
    "device_distance_km",
    "account_age_days",
    "social_followers",
    "social_posts",
)
FEATURE_NAMES: tuple[str, ...] = (*_WINDOWED, *_BEHAVIOUR, *SUPPORT_FEATURES)

# What a feature is when its input is missing (documented in docs/features.md). -1 marks
# "unknown" for quantities that are otherwise >= 0, so a model can tell the two apart.
NEUTRAL_VALUES: dict[str, float] = {
    "terminal_fraud_rate_1d": 0.0,
    "terminal_fraud_rate_7d": 0.0,
    "terminal_fraud_rate_30d": 0.0,
    "amount_to_user_mean": 1.0,
    "user_seconds_since_prev": -1.0,
    "user_distance_from_usual_km": -1.0,
    "user_new_device": 0.0,
    "session_age_s": -1.0,
    "session_device_mismatch": 0.0,
    "cart_amount_ratio": -1.0,
    "device_distance_km": -1.0,
    "account_age_days": -1.0,
    "social_followers": -1.0,
    "social_posts": -1.0,
}


@dataclass(frozen=True, slots=True)
class FeatureConfig:
    """How features are computed; the same object must be used online and offline.

    The user state keeps the last `history_k` events (for "seen this terminal / device
    before") and every event of the last 30 days up to `window_cap` (for the windows), so
    user windows are exact while a user has at most `window_cap` events in 30 days; beyond
    that they see the newest `window_cap` previous events (see docs/features.md).
    """

    label_delay_days: float = 7.0
    history_k: int = 256
    window_cap: int = 4096

    def __post_init__(self) -> None:
        if not (self.label_delay_days >= 0 and np.isfinite(self.label_delay_days)):
            raise ConfigError(
                f"label_delay_days: expected a finite number >= 0, got {self.label_delay_days!r}"
            )
        if self.history_k < 1:
            raise ConfigError(f"history_k: expected an integer >= 1, got {self.history_k!r}")
        # Window sums are exact 128-bit fixed-point integers (docs/features.md); they stay
        # below 2**63 units while a window holds fewer than 2**23 amounts under 2**40.
        if not 1 <= self.window_cap <= MAX_WINDOW_CAP:
            raise ConfigError(f"window_cap: expected an integer from 1 to {MAX_WINDOW_CAP}, "
                              f"got {self.window_cap!r}")

    @property
    def state_events(self) -> int:
        """The most events a user state can hold."""
        return max(self.history_k, self.window_cap)

    @property
    def label_delay_us(self) -> int:
        return round(self.label_delay_days * DAY_US)


@dataclass(frozen=True, slots=True, eq=False)
class FeatureMatrix:
    """Features of one batch: `values[i, j]` is feature `names[j]` of the batch's row i.

    Rows are in the batch's (input) order; `effective_time_us` is the event time each row was
    processed at (its timestamp, or later for a late event; see the out-of-order policy).
    """

    names: tuple[str, ...]
    values: npt.NDArray[np.float64]
    transaction_id: npt.NDArray[np.object_]
    effective_time_us: npt.NDArray[np.int64]
    # Rows the state already held (a redelivered or retried batch); None when there were none.
    # Their features are approximate: callers must not decide them afresh.
    redelivered: npt.NDArray[np.bool_] | None = None

    def redelivered_ids(self) -> list[str]:
        """Transaction ids of the redelivered rows."""
        if self.redelivered is None:
            return []
        return [str(t) for t in self.transaction_id[self.redelivered]]

    def __len__(self) -> int:
        return int(self.values.shape[0])

    def column(self, name: str) -> npt.NDArray[np.float64]:
        """One feature's values (a view)."""
        return self.values[:, self.names.index(name)]

    def to_columns(self) -> dict[str, npt.NDArray[np.generic]]:
        """`transaction_id` plus one column per feature, ready for `fraud.tabular`."""
        out: dict[str, npt.NDArray[np.generic]] = {"transaction_id": self.transaction_id}
        for j, name in enumerate(self.names):
            out[name] = np.ascontiguousarray(self.values[:, j])
        return out


@dataclass(frozen=True, slots=True, eq=False)
class LabelBatch:
    """A label feed batch: which transactions turned out to be fraud (or not), and when known.

    The feed must carry each transaction's terminal and timestamp (the label CLI looks them up
    from the transaction history); `label_time_us` is `MISSING_TIME` when the feed has none,
    and the label is then known `label_delay_days` after the transaction.
    """

    transaction_id: npt.NDArray[np.object_]
    terminal_id: npt.NDArray[np.object_]
    timestamp_us: npt.NDArray[np.int64]
    is_fraud: npt.NDArray[np.int8]
    label_time_us: npt.NDArray[np.int64]

    def __post_init__(self) -> None:
        n = len(self.transaction_id)
        for name in ("terminal_id", "timestamp_us", "is_fraud", "label_time_us"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"label column {name} has a different length")

    def __len__(self) -> int:
        return len(self.transaction_id)

    @classmethod
    def from_columns(
        cls,
        transaction_id: npt.ArrayLike,
        terminal_id: npt.ArrayLike,
        timestamp_us: npt.ArrayLike,
        is_fraud: npt.ArrayLike,
        label_time_us: npt.ArrayLike | None = None,
    ) -> LabelBatch:
        tx = np.asarray([str(v) for v in np.asarray(transaction_id, dtype=object)], dtype=object)
        term = np.asarray([str(v) for v in np.asarray(terminal_id, dtype=object)], dtype=object)
        ts = np.asarray(timestamp_us, dtype=np.int64)
        lt = (
            np.full(len(tx), MISSING_TIME, dtype=np.int64)
            if label_time_us is None
            else np.asarray(label_time_us, dtype=np.int64)
        )
        return cls(tx, term, ts, np.asarray(is_fraud, dtype=np.int8), lt)
