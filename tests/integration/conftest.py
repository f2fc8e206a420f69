"""Integration fixtures: moto's server on 127.0.0.1, started through `fraud.local`.

The server is started once per test session by the same code as ``fraud local up`` and
stopped at the end; every test gets its own table prefix, so tests never see each other's
items. Credentials are dummies and the EC2 metadata lookup is off: nothing here can reach AWS.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from fraud.config import Settings
from fraud.local import start, stop
from fraud.store import Dynamo, RequestCounter, connect
from fraud.store.tables import create_tables

_DUMMY_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="session")
def aws_env() -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in _DUMMY_ENV}
    os.environ.update(_DUMMY_ENV)
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def local_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("local")


@pytest.fixture(scope="session")
def moto_endpoint(aws_env: None, local_dir: Path) -> Iterator[str]:
    """The endpoint of a moto server started for this test session (127.0.0.1, free port)."""
    ((service, _),) = start(local_dir, ["moto"])
    assert service.endpoint.startswith("http://127.0.0.1:")
    yield service.endpoint
    stop(local_dir, ["moto"])


@pytest.fixture
def settings(moto_endpoint: str) -> Settings:
    return Settings(endpoint_url=moto_endpoint, table_prefix=f"t{uuid.uuid4().hex[:10]}-")


@pytest.fixture
def counter() -> RequestCounter:
    return RequestCounter()


@pytest.fixture
def dynamo(settings: Settings, counter: RequestCounter) -> Dynamo:
    """A `Dynamo` on fresh tables (own prefix), counting requests into `counter`."""
    db = connect(settings, counter)
    create_tables(db)
    counter.reset()
    return db
