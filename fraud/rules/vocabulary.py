"""The names a rule may use, and their types.

The compiler checks every name in every expression against a `Vocabulary`, so a misspelt
feature is a load-time error rather than a rule that silently never fires. The pipeline builds
the vocabulary from the feature engine's list of names plus the transaction's fields.

Three kinds of value:

* numbers (float64 columns, NaN when missing): amount, lat, lon, score, most features;
* strings (object columns of ``str``, ``""`` when missing): ids, currency, channel, ...;
* flags (0/1 float columns, NaN when missing): features such as ``is_night``; in a condition
  a flag is true only when it is 1.

``score_available`` (a flag) and ``hour`` (UTC hour of the transaction, 0-23) are derived by
the evaluator from ``score`` and ``timestamp_us`` when the caller does not pass them.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from dataclasses import dataclass

from fraud.logs import get_logger

__all__ = [
    "DERIVED_NAMES",
    "DERIVED_SOURCES",
    "ISSUE_FEATURE_NAMES",
    "NUMERIC_FIELDS",
    "STRING_FIELDS",
    "Vocabulary",
    "default_vocabulary",
    "known_feature_names",
]

STRING_FIELDS = (
    "transaction_id", "user_id", "terminal_id", "currency", "device_id", "session_id", "ip",
    "channel", "game_id",
)
NUMERIC_FIELDS = ("amount", "lat", "lon", "score", "timestamp_us", "hour")
# Derived name -> the column it is computed from (when the caller does not pass it).
DERIVED_SOURCES = {"score_available": "score", "hour": "timestamp_us"}
DERIVED_NAMES = tuple(DERIVED_SOURCES)

# The feature names the issue promises; used only when fraud.features is not importable.
ISSUE_FEATURE_NAMES = tuple(
    [f"user_tx_count_{d}d" for d in (1, 7, 30)]
    + [f"user_amount_mean_{d}d" for d in (1, 7, 30)]
    + [f"terminal_tx_count_{d}d" for d in (1, 7, 30)]
    + [f"terminal_fraud_rate_{d}d" for d in (1, 7, 30)]
    + ["is_weekend", "is_night"]
)

_FLAG_PREFIXES = ("is_", "has_")
log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Vocabulary:
    """Known names by kind. A name belongs to exactly one kind."""

    numeric: frozenset[str]
    strings: frozenset[str]
    flags: frozenset[str]

    def __post_init__(self) -> None:
        clash = (self.numeric & self.strings) | (self.numeric & self.flags) | (
            self.strings & self.flags)
        if clash:
            raise ValueError(f"names with two kinds: {sorted(clash)}")

    def kind(self, name: str) -> str | None:
        """``"number"``, ``"string"``, ``"flag"`` or None when unknown."""
        if name in self.numeric:
            return "number"
        if name in self.strings:
            return "string"
        if name in self.flags:
            return "flag"
        return None

    @property
    def names(self) -> frozenset[str]:
        return self.numeric | self.strings | self.flags


def known_feature_names() -> tuple[str, ...]:
    """The feature engine's names, or the issue's list when `fraud.features` is unavailable."""
    for module in ("fraud.features", "fraud.features.api"):
        try:
            names = importlib.import_module(module).FEATURE_NAMES
        except Exception as exc:  # a broken feature package must not break rule checking
            log.warning("feature names unavailable", module=module, error=repr(exc))
            continue
        return tuple(str(name) for name in names)
    return ISSUE_FEATURE_NAMES


def default_vocabulary(
    features: Iterable[str] | None = None,
    *,
    flags: Iterable[str] | None = None,
    extra_strings: Iterable[str] = (),
) -> Vocabulary:
    """Transaction fields + ``score`` + `features` (default: `known_feature_names()`).

    Features are numbers, except those listed in `flags`; when `flags` is None, features named
    ``is_*`` or ``has_*`` are flags. `extra_strings` adds string columns (e.g. extra input
    columns the pipeline carries through).
    """
    names = tuple(known_feature_names() if features is None else features)
    flag_set = (
        {n for n in names if n.startswith(_FLAG_PREFIXES)} if flags is None else set(flags)
    )
    flag_set.add("score_available")
    strings = set(STRING_FIELDS) | set(extra_strings)
    numeric = (set(NUMERIC_FIELDS) | set(names)) - flag_set - strings
    return Vocabulary(frozenset(numeric), frozenset(strings), frozenset(flag_set))
