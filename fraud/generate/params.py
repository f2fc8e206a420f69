"""What to generate: the validated, frozen parameters of one synthetic data set.

The CLI builds a `GenerateConfig` from its flags; library callers (tests, the demo) build one
directly. Validation lives here, not in the CLI, so both paths refuse the same bad values.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from fraud.errors import InputError

__all__ = ["SCENARIOS", "SCENARIO_SHARES", "GenerateConfig"]

# Index 0 is the legitimate "scenario"; the others are the injected fraud kinds. The numeric
# codes are internal; files carry the names.
SCENARIOS: tuple[str, ...] = (
    "",
    "compromised_terminal",
    "compromised_card",
    "card_testing",
    "account_takeover",
    "high_amount",
)

# Share of the fraud budget each scenario aims for (they sum to 1).
SCENARIO_SHARES: dict[str, float] = {
    "compromised_terminal": 0.22,
    "compromised_card": 0.24,
    "card_testing": 0.20,
    "account_takeover": 0.20,
    "high_amount": 0.14,
}

_MAX_DAYS = 3660
_MAX_USERS = 10_000_000
# Generated files must read back through `fraud.schema`, which refuses times outside
# 1970-01-01 .. 2200-01-01: accounts open up to 3,000 days before the period, and label
# times come up to 120 days after it (sessions expire a little later still).
_FIRST_YEAR = 1980
_LAST_END = dt.datetime(2199, 6, 1, tzinfo=dt.UTC)


@dataclass(frozen=True, slots=True)
class GenerateConfig:
    """Size, period, seed and fraud rate of a synthetic data set.

    `users` counts every account, a few of which (about one in 200, at most) are
    fraudster-created accounts; `fraud_rate` is the target share of fraudulent rows.

    >>> GenerateConfig(users=10, terminals=5, days=2).days
    2
    """

    users: int = 2_000
    terminals: int = 500
    days: int = 30
    start: dt.datetime = field(default_factory=lambda: dt.datetime(2024, 1, 1, tzinfo=dt.UTC))
    seed: int = 0
    fraud_rate: float = 0.007
    currency: str = "USD"

    def __post_init__(self) -> None:
        if not 1 <= self.users <= _MAX_USERS:
            raise InputError(f"users: expected 1..{_MAX_USERS}, got {self.users}")
        if not 1 <= self.terminals <= _MAX_USERS:
            raise InputError(f"terminals: expected 1..{_MAX_USERS}, got {self.terminals}")
        if not 1 <= self.days <= _MAX_DAYS:
            raise InputError(f"days: expected 1..{_MAX_DAYS}, got {self.days}")
        if self.seed < 0:
            raise InputError(f"seed: expected an integer >= 0, got {self.seed}")
        if not 0.0 <= self.fraud_rate <= 0.2:
            raise InputError(f"fraud_rate: expected 0..0.2, got {self.fraud_rate}")
        if self.start.tzinfo is None:
            raise InputError("start: expected a timezone-aware datetime (UTC)")
        if not _FIRST_YEAR <= self.start.year <= _LAST_END.year:
            raise InputError(f"start: expected a year in {_FIRST_YEAR}..{_LAST_END.year}, "
                             f"got {self.start.year}")
        if self.start + dt.timedelta(days=self.days) > _LAST_END:
            raise InputError(f"start: {self.days} days from {self.start:%Y-%m-%d} end after "
                             f"{_LAST_END:%Y-%m-%d}; their label times would fall outside the "
                             "readable range (before 2200-01-01)")
