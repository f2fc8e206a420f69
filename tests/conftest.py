"""Shared test set-up: no test may reach real AWS or the EC2 metadata address."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

DUMMY_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


@contextmanager
def dummy_aws_env() -> Iterator[None]:
    """Dummy credentials, a region, and no instance metadata, for the duration."""
    with pytest.MonkeyPatch.context() as patch:
        for key, value in DUMMY_AWS_ENV.items():
            patch.setenv(key, value)
        patch.delenv("AWS_PROFILE", raising=False)
        yield


@pytest.fixture(autouse=True)
def _info_logging() -> Iterator[None]:
    """Every test starts from INFO logs on stderr: a CLI run in-process (`fraud demo` sets
    WARNING) would otherwise silence the logs a later test in the same worker reads."""
    from fraud.logs import configure_logging

    configure_logging("INFO")
    yield
