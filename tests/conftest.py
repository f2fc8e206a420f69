"""Shared test set-up: no test may reach real AWS or the EC2 metadata address."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]

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


def load_script(name: str) -> ModuleType:
    """``scripts/NAME`` imported as a module (the scripts are not a package)."""
    spec = importlib.util.spec_from_file_location(Path(name).stem, ROOT / "scripts" / name)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def moto_s3() -> Iterator[Any]:
    """An S3 client on moto's in-process mock (no network), with dummy credentials."""
    import boto3
    from moto import mock_aws

    with dummy_aws_env(), mock_aws():
        yield boto3.client("s3", region_name="us-east-1")


@pytest.fixture(autouse=True)
def _info_logging() -> Iterator[None]:
    """Every test starts from INFO logs on stderr: a CLI run in-process (`fraud demo` sets
    WARNING) would otherwise silence the logs a later test in the same worker reads."""
    from fraud.logs import configure_logging

    configure_logging("INFO")
    yield
