"""Integration fixtures: moto's server on 127.0.0.1, started through `fraud.local`.

The server is started once per test session by the same code as ``fraud local up`` and
stopped at the end; every test gets its own table prefix, so tests never see each other's
items. Credentials are dummies and the EC2 metadata lookup is off: nothing here can reach AWS.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from fraud.config import Settings
from fraud.local import start, stop
from fraud.store import Dynamo, RequestCounter, connect
from fraud.store.tables import create_tables
from tests.conftest import dummy_aws_env


@pytest.fixture(scope="session")
def aws_env() -> Iterator[None]:
    with dummy_aws_env():
        yield


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
