"""moto's server as a local emulator of DynamoDB, SNS and S3 (DynamoDB Local is not used).

Registered in `fraud.local.services.SERVICES` on import under the name ``moto``; its endpoint
goes into ``FRAUD_ENDPOINT_URL``.
"""

from __future__ import annotations

import json
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
    """True when moto's own API answers on `endpoint` (so it is moto, not some other server).

    It asks for moto's small config document: ``data.json`` would be a dump of every
    resource, which takes seconds once the tables hold data and would read as "down".
    """
    try:
        with urllib.request.urlopen(f"{endpoint}/moto-api/config", timeout=5) as resp:
            return 200 <= int(resp.status) < 300 and isinstance(json.loads(resp.read()), dict)
    except (urllib.error.URLError, OSError, ValueError):  # JSONDecodeError is a ValueError
        return False


MOTO = ServiceSpec(name="moto", command=moto_command, healthy=moto_healthy,
                   env="FRAUD_ENDPOINT_URL", marker="fraud.local.moto_server", start_timeout=60.0)
register(MOTO)
