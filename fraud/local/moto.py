"""moto's server as a local emulator of DynamoDB, SNS and S3 (DynamoDB Local is not used).

Registered in `fraud.local.services.SERVICES` on import under the name ``moto``; its endpoint
goes into ``FRAUD_ENDPOINT_URL``.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request
from collections.abc import Sequence

from fraud.local.services import ServiceSpec, register

__all__ = ["MOTO", "moto_command", "moto_healthy"]


def moto_command(port: int) -> Sequence[str]:
    """moto's server bound to 127.0.0.1 only, on `port` (same interpreter as ours).

    Started through `fraud.local.moto_server`, which speeds up moto's transactions.
    """
    return [sys.executable, "-m", "fraud.local.moto_server", "-H", "127.0.0.1", "-p", str(port)]


def moto_healthy(endpoint: str) -> bool:
    """True when moto's own API answers on `endpoint` (so it is moto, not some other server)."""
    try:
        with urllib.request.urlopen(f"{endpoint}/moto-api/data.json", timeout=2) as resp:
            return int(resp.status) == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


MOTO = ServiceSpec(name="moto", command=moto_command, healthy=moto_healthy,
                   env="FRAUD_ENDPOINT_URL", marker="fraud.local.moto_server", start_timeout=60.0)
register(MOTO)
