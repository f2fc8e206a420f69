"""boto3 clients for the whole project, and a counter of every request they send.

One factory so that every client gets the same endpoint (a local emulator or AWS), region,
timeouts and retry policy, and so that request counting is wired in one place. Requests are
counted on botocore's ``request-created`` event, which fires once per HTTP attempt (botocore's
own retries included), so the count is what DynamoDB actually served and billed.

>>> from fraud.config import Settings
>>> counter = RequestCounter()
>>> client = make_client("dynamodb", Settings(endpoint_url="http://127.0.0.1:1"), counter=counter)
>>> counter.total()
0
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
)

from fraud.config import Settings
from fraud.errors import ConfigError, StoreError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

__all__ = ["RequestCounter", "dynamodb_client", "explain_endpoint_errors", "is_local_endpoint",
           "make_client"]

_LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
# Local emulators accept any credentials; these are used only when none are configured, so
# `fraud local up` works on a machine that has never seen AWS.
_LOCAL_CREDENTIALS = {"aws_access_key_id": "local", "aws_secret_access_key": "local"}


def is_local_endpoint(url: str | None) -> bool:
    """True when `url` points at this machine (an emulator such as moto's server)."""
    if not url:
        return False
    host = urlsplit(url).hostname or ""
    return host in _LOCAL_HOSTS or host.startswith("127.")


class RequestCounter:
    """Counts HTTP requests per (service, operation), across any number of clients.

    Thread-safe: a KCL worker may share one counter between threads. `per(n)` gives requests
    per transaction for a report.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str]] = Counter()

    def __repr__(self) -> str:
        return f"RequestCounter(total={self.total()})"

    def attach(self, client: Any) -> None:
        """Count every request `client` sends from now on."""
        client.meta.events.register("request-created", self._on_request)

    def _on_request(self, event_name: str, **_: Any) -> None:
        # event_name is "request-created.<service>.<Operation>"
        parts = event_name.split(".")
        service = parts[1] if len(parts) > 1 else "?"
        operation = parts[2] if len(parts) > 2 else "?"
        with self._lock:
            self._counts[(service, operation)] += 1

    def total(self, service: str | None = None) -> int:
        """Requests sent, in all or in one service."""
        with self._lock:
            return sum(n for (s, _), n in self._counts.items() if service in (None, s))

    def snapshot(self) -> dict[str, int]:
        """Counts keyed ``"service.Operation"``, sorted, e.g. for a JSON report."""
        with self._lock:
            return {f"{s}.{o}": n for (s, o), n in sorted(self._counts.items())}

    def per(self, transactions: int, service: str | None = None) -> float:
        """Requests per transaction (0.0 when there were no transactions)."""
        return self.total(service) / transactions if transactions else 0.0

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()


def _config(settings: Settings) -> Config:
    return Config(
        region_name=settings.region,
        connect_timeout=3,
        read_timeout=10,
        retries={"mode": "standard", "max_attempts": 5},
        max_pool_connections=32,
        # Every request is built by this project's own code (and tested); botocore's
        # client-side validation walked each parameter of every call, a large share of the
        # consumer's CPU per transaction. The service still validates, and errors still
        # reach `StoreError` with their message.
        parameter_validation=False,
    )


def make_client(
    service: str,
    settings: Settings,
    *,
    counter: RequestCounter | None = None,
    session: boto3.Session | None = None,
) -> Any:
    """A boto3 client of `service` configured from `settings`.

    The endpoint comes from ``settings.aws_endpoint(service)``; for a local endpoint with no
    credentials in the environment (nor a profile), dummy credentials are used (emulators
    ignore them).
    """
    session = session or boto3.Session(region_name=settings.region)
    endpoint = settings.aws_endpoint(service)
    extra: dict[str, Any] = {}
    if is_local_endpoint(endpoint) and not _has_explicit_credentials():
        # Never walk the full credential chain for an emulator: its last step probes the
        # EC2 metadata address.
        extra.update(_LOCAL_CREDENTIALS)
    client = session.client(  # type: ignore[call-overload]
        service, endpoint_url=endpoint, config=_config(settings), **extra
    )
    if counter is not None:
        counter.attach(client)
    return client


def dynamodb_client(
    settings: Settings, *, counter: RequestCounter | None = None
) -> DynamoDBClient:
    """A typed DynamoDB client (see `make_client`)."""
    client: DynamoDBClient = make_client("dynamodb", settings, counter=counter)
    return client


def _has_explicit_credentials() -> bool:
    return bool(os.environ.get("AWS_ACCESS_KEY_ID") or os.environ.get("AWS_PROFILE"))


# Where each service's endpoint is set, for "nothing answers at ..." messages.
_ENDPOINT_SETTING = {
    "dynamodb": "--endpoint-url / FRAUD_ENDPOINT_URL",
    "kinesis": "--kinesis-endpoint-url / FRAUD_KINESIS_ENDPOINT_URL, else --endpoint-url / "
               "FRAUD_ENDPOINT_URL",
}


@contextlib.contextmanager
def explain_endpoint_errors(settings: Settings, service: str = "dynamodb", *,
                            not_found: str | None = None) -> Iterator[None]:
    """Turn "nothing answers at the local endpoint", "no such table" (or stream) and "no
    credentials for AWS" into a `ConfigError` (exit code 2) that says where and what to do,
    for the commands a user runs by hand. Other store errors pass through unchanged.

    `not_found` is the message for a missing resource; by default, the DynamoDB tables'.
    """
    try:
        yield
    except StoreError as exc:
        cause = exc.__cause__
        endpoint = settings.aws_endpoint(service)
        where = endpoint or f"AWS {settings.region}"
        if isinstance(cause, EndpointConnectionError | ConnectTimeoutError) and \
                is_local_endpoint(endpoint):
            raise ConfigError(
                f"cannot reach {service} at {endpoint} "
                f"({_ENDPOINT_SETTING.get(service, _ENDPOINT_SETTING['dynamodb'])}): "
                "nothing answers there; start the local endpoints with "
                "`eval \"$(fraud local up)\"` or fix the URL") from exc
        if isinstance(cause, ClientError) and \
                cause.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            if not_found is not None:
                raise ConfigError(f"{not_found} at {where}") from exc
            if "fraud tables create" in str(exc):  # `Dynamo.call` said what to do
                raise ConfigError(str(exc)) from exc
            raise ConfigError(
                f"{exc}: the {settings.table_prefix}* tables are not all there at "
                f"{where}; create them with "
                f"`fraud tables create --table-prefix {settings.table_prefix}`") from exc
        if isinstance(cause, NoCredentialsError):
            raise ConfigError(
                f"no AWS credentials found for {service} in {settings.region} (no endpoint "
                "set, so this is real AWS); for the local stack set FRAUD_ENDPOINT_URL "
                "(`eval \"$(fraud local up)\"`), for AWS configure credentials") from exc
        raise
