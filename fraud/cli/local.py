"""``fraud local up|down|status``: the local AWS endpoints on 127.0.0.1.

``up`` starts every registered emulator (moto's server for DynamoDB/SNS/S3, plus any other
registered one) on a free port, waits until each answers, and prints the ``export`` lines that
point the other commands at them. It is idempotent: a running service is reported, not
restarted. ``down`` stops them (SIGTERM, then SIGKILL after ``--timeout``) and removes the
state file. ``status`` prints each service and exits 0 when all recorded services are up and
answering, 3 when none is recorded or any is down.
"""

from __future__ import annotations

from typing import Any

import click

from fraud.config import Settings, build_settings, settings_options
from fraud.logs import configure_logging

__all__ = ["command"]

STATUS_DOWN = 3


def _settings(flags: dict[str, Any]) -> Settings:
    settings = build_settings(flags)
    configure_logging(settings.log_level)  # logs to stderr; stdout carries the export lines
    return settings


@click.group("local")
def command() -> None:
    """Start, stop and inspect the local AWS endpoints (moto server on 127.0.0.1).

    State (pids, ports, logs) is kept in <local-dir>/local.json.
    """


@command.command("up")
@click.option("--service", "services", multiple=True,
              help="Start only this service (repeatable); default: every registered one.")
@click.option("--provision/--no-provision", default=True, show_default=True,
              help="Also create the tables, the streams, the alert topic and the archive "
              "bucket on the endpoints (idempotent).")
@click.option("--shards", type=click.IntRange(min=1), default=2, show_default=True,
              help="Shards of the transactions stream when it is created.")
@settings_options("local_dir", "table_prefix", "stream_name", "decisions_stream",
                  "alert_topic", "archive_uri", "region")
def up(services: tuple[str, ...], provision: bool, shards: int, **flags: Any) -> None:
    """Start the local endpoints (idempotent) and print the export lines to use them."""
    from dataclasses import replace

    from fraud.local import start

    settings = _settings(flags)
    endpoints: dict[str, str] = {}
    for service, started in start(settings.local_dir, services or None):
        verb = "started" if started else "already running"
        click.echo(f"# {service.name} {verb}: pid {service.pid}, {service.endpoint}, "
                   f"log {service.log}", err=True)
        click.echo(service.export_line)
        endpoints[service.name] = service.endpoint
    if provision and "moto" in endpoints:
        from fraud.local.provision import provision as create_all

        # Only moto's server (--service moto): tables, topic and bucket, but no streams.
        kinesis = endpoints.get("kinesis")
        done = create_all(replace(settings, endpoint_url=endpoints["moto"],
                                  kinesis_endpoint_url=kinesis), shards=shards,
                          streams=kinesis is not None)
        streams = f"streams {', '.join(done.streams)}" if done.streams else "no streams"
        click.echo(f"# ready: {len(done.tables)} tables ({settings.table_prefix}*), {streams}, "
                   f"topic {done.topic_arn}" + (f", bucket {done.bucket}" if done.bucket else ""),
                   err=True)


@command.command("down")
@click.option("--service", "services", multiple=True,
              help="Stop only this service (repeatable); default: every recorded one.")
@click.option("--timeout", type=float, default=10.0, show_default=True,
              help="Seconds to wait after SIGTERM before SIGKILL.")
@settings_options("local_dir")
def down(services: tuple[str, ...], timeout: float, **flags: Any) -> None:
    """Stop the local endpoints and remove the state file."""
    from fraud.local import stop

    settings = _settings(flags)
    stopped = stop(settings.local_dir, services or None, timeout=timeout)
    if not stopped:
        click.echo("nothing running")
    for name, was_running in stopped:
        click.echo(f"{name}: {'stopped' if was_running else 'was not running'}")


@command.command("status")
@settings_options("local_dir")
def status_cmd(**flags: Any) -> None:
    """Show the local endpoints; exit 0 if all are up, 3 if none or any is down."""
    from fraud.local import status

    settings = _settings(flags)
    services = status(settings.local_dir)
    if not services:
        click.echo("down: no local services recorded")
        raise SystemExit(STATUS_DOWN)  # not click.Exit: `python -m fraud` drops its code
    all_up = True
    for s in services:
        state = "up" if s.healthy else ("not answering" if s.alive else "down")
        all_up = all_up and s.healthy
        click.echo(f"{s.name}: {state} pid={s.pid} endpoint={s.endpoint} "
                   f"since={s.started_at} log={s.log}")
        if s.healthy:
            click.echo(f"  {s.export_line}")
    if not all_up:
        raise SystemExit(STATUS_DOWN)  # not click.Exit: `python -m fraud` drops its code
