"""Local AWS endpoints on 127.0.0.1 for development, the demo and the integration tests.

``from fraud.local import start, stop, status`` with the emulators registered: moto's server
(DynamoDB, SNS, S3; `fraud.local.moto`) and, when its module is present, the Kinesis emulator
(`fraud.stream.emulator.service_spec`). Another emulator is added by registering a
`ServiceSpec` (see `fraud.local.services`).
"""

from __future__ import annotations

from fraud.local import moto as _moto  # noqa: F401  (registers the moto service)
from fraud.local.services import (
    SERVICES,
    LocalError,
    RunningService,
    ServiceSpec,
    register,
    start,
    state_path,
    status,
    stop,
)


def _register_kinesis() -> None:
    try:
        from fraud.stream.emulator import service_spec
    except ImportError:  # the stream package is optional for the store's own use
        return
    register(service_spec())


_register_kinesis()

__all__ = ["SERVICES", "LocalError", "RunningService", "ServiceSpec", "register", "start",
           "state_path", "status", "stop"]
