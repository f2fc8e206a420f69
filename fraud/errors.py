"""The project's exception tree.

Every error the project raises on purpose is a `FraudError`. The CLI maps `InputError` and
`ConfigError` (the caller's fault) to exit code 2 and every other `FraudError` to exit code 1.
boto3/botocore errors are wrapped at the boundary with ``raise StoreError(...) from exc``.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "FraudError",
    "InputError",
    "ModelError",
    "RulesError",
    "ScoreUnavailableError",
    "StaleWriteError",
    "StoreError",
]


class FraudError(Exception):
    """Base class of every error raised by this package on purpose."""

    exit_code: int = 1


class InputError(FraudError):
    """Bad input from the caller: a file, a column mapping, an argument."""

    exit_code = 2


class ConfigError(FraudError):
    """A setting is missing, malformed or contradicts another one."""

    exit_code = 2


class RulesError(FraudError):
    """A rules file failed to load or validate."""

    exit_code = 2


class ModelError(FraudError):
    """A model artifact could not be trained, written, loaded or verified."""


class ScoreUnavailableError(ModelError):
    """The scorer could not produce scores (e.g. a remote endpoint failed)."""


class StoreError(FraudError):
    """A state store (DynamoDB, S3, ...) request failed."""


class StaleWriteError(StoreError):
    """A versioned write lost: another writer updated the item first."""
