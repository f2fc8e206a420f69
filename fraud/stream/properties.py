"""The MultiLangDaemon's ``.properties`` file, written from `Settings`.

KCL silently ignores keys it does not know and its names are case-sensitive, so every key is
spelled once here and a test pins them. Local endpoints (any endpoint on this machine) switch
on what emulators need: POLLING retrieval (no SubscribeToShard), no CloudWatch metrics and no
worker metrics (those probe the EC2 metadata address). See ``notes/kcl-local.md``.

>>> from fraud.config import Settings
>>> props = build_properties(Settings(), command=["/venv/bin/python", "-m", "fraud.stream.x"])
>>> props["streamName"], props["applicationName"], props["retrievalMode"]
('transactions', 'fraud-consumer', 'FANOUT')
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import urlsplit

from fraud.config import Settings
from fraud.errors import ConfigError

__all__ = [
    "DEFAULT_SHUTDOWN_GRACE_MS",
    "QUICK_LEASES",
    "build_properties",
    "is_local_endpoint",
    "render_properties",
    "write_properties",
]

DEFAULT_SHUTDOWN_GRACE_MS = 30_000

# Lease timings for a stack on one machine (the demo, the e2e tests), where a start or a
# takeover should take seconds, not KCL's production minutes. KCL 3's leader counts a worker
# alive while its WorkerMetricStats entry is fresher than two reporting periods: 3 s reports
# make a stopped worker stale in 6 s (with the 30 s default it keeps being handed leases for a
# minute), yet leave room for a loaded machine's late report (at 2 s the leader's own entry
# flickers stale under load, and then it has nobody to give leases to). The leader's
# rebalancing moves a lease outright instead of by graceful hand-off: with reports this
# frequent it may hand a lease to a worker that is just stopping, and KCL 3.1's hand-off
# then leaves it with the old owner as "checkpoint owner", unprocessed, for good (seen in
# the e2e tests). A lease moved outright is redelivered from its checkpoint, which this
# processor makes harmless.
QUICK_LEASES: Mapping[str, str] = {
    "failoverTimeMillis": "3000",
    "leaseAssignmentIntervalMillis": "1000",
    "workerMetricsReporterFreqInMillis": "3000",
    "isGracefulLeaseHandoffEnabled": "false",
}
_LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def is_local_endpoint(url: str | None) -> bool:
    """True when `url` points at this machine (an emulator), which changes several defaults."""
    if not url:
        return False
    host = urlsplit(url).hostname or ""
    return host in _LOCAL_HOSTS or host.startswith("127.")


def build_properties(
    settings: Settings,
    *,
    command: Sequence[str],
    worker_id: str | None = None,
    shutdown_grace_ms: int = DEFAULT_SHUTDOWN_GRACE_MS,
    overrides: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Every key the daemon needs for `settings`, in file order.

    `command` is the child's argv; the daemon splits ``executableName`` on spaces with no
    quoting, so an argument holding whitespace is refused. `worker_id` pins the lease owner
    name: a restarted worker with the same id takes its own leases back at once instead of
    waiting for them to expire.
    `overrides` adds or replaces raw keys (tests shorten failover times with it).
    """
    bad = [part for part in command if not part or any(ch.isspace() for ch in part)]
    if bad or not command:
        raise ConfigError(f"KCL executableName cannot carry empty or spaced arguments: {bad!r}")
    kinesis = settings.aws_endpoint("kinesis")
    dynamodb = settings.aws_endpoint("dynamodb")
    local = is_local_endpoint(kinesis) or is_local_endpoint(dynamodb)
    props: dict[str, str] = {
        "executableName": " ".join(command),
        "processingLanguage": "python/3",
        "streamName": settings.stream_name,
        "applicationName": settings.application_name,
        "regionName": settings.region,
        "AwsCredentialsProvider": (
            "EnvironmentVariableCredentialsProvider" if local else "DefaultCredentialsProvider"
        ),
        "initialPositionInStream": settings.initial_position,
        "shutdownGraceMillis": str(shutdown_grace_ms),
        "retrievalMode": "POLLING" if local else "FANOUT",
    }
    if kinesis:
        props["kinesisEndpoint"] = kinesis
    if dynamodb:
        props["dynamoDBEndpoint"] = dynamodb
    if worker_id:
        props["workerId"] = worker_id
    if local:
        props.update(
            {
                "metricsLevel": "NONE",
                "disableWorkerMetrics": "true",
                "idleTimeBetweenReadsInMillis": "200",
                "parentShardPollIntervalMillis": "1000",
                "shardSyncIntervalMillis": "5000",
            }
        )
    props.update(overrides or {})
    return props


def render_properties(props: Mapping[str, str]) -> str:
    r"""The file text: one ``key = value`` per line; values may not span lines.

    >>> render_properties({"streamName": "t"})
    'streamName = t\n'
    """
    lines = []
    for key, value in props.items():
        if "\n" in value or "\r" in value or "\n" in key or "=" in key:
            raise ConfigError(f"KCL property {key!r} has a value that cannot be written: {value!r}")
        # java.util.Properties treats backslash as an escape character.
        lines.append(f"{key} = {value.replace(chr(92), chr(92) * 2)}")
    return "\n".join(lines) + "\n"


def write_properties(path: Path, props: Mapping[str, str]) -> Path:
    """Write the properties file (its folder goes on the classpath too) and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_properties(props), encoding="utf-8")
    return path
