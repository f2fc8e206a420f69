"""``fraud tables create|describe|delete|seed``: the DynamoDB tables of the product.

Every sub-command is idempotent: ``create`` skips existing tables (refusing one whose key or
indexes differ from the declared design) and waits until all are ACTIVE (TTL switched on
where declared); ``delete`` skips missing ones and waits until they are
gone; ``seed`` overwrites items with the same content. Table names are ``<prefix><Table>``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, TypeVar

import click

from fraud.config import Settings, build_settings, settings_options
from fraud.logs import configure_logging

__all__ = ["command"]

F = TypeVar("F", bound=Callable[..., Any])


def _aws_options(func: F) -> F:
    func = settings_options("region", "endpoint_url", "log_level")(func)
    return click.option(
        "--prefix", "--table-prefix", "table_prefix", default=None,
        help="Prefix of every table name. [env: FRAUD_TABLE_PREFIX; default: fraud-]",
    )(func)


def _connect(flags: dict[str, Any]) -> tuple[Settings, Any]:
    from fraud.store import connect

    settings = build_settings(flags)
    configure_logging(settings.log_level)
    return settings, connect(settings)


def explain_endpoint_errors(settings: Settings) -> AbstractContextManager[None]:
    """`fraud.store.clients.explain_endpoint_errors` (imported late: boto3 is slow to load)."""
    from fraud.store.clients import explain_endpoint_errors as explain

    return explain(settings)


@click.group("tables")
def command() -> None:
    """Create, describe, delete and seed the DynamoDB tables (on-demand billing)."""


@command.command("create")
@click.option("--timeout", type=float, default=300.0, show_default=True,
              help="Seconds to wait for the tables to become ACTIVE.")
@_aws_options
def create(timeout: float, **flags: Any) -> None:
    """Create missing tables and indexes, wait until ACTIVE, enable TTL. Idempotent."""
    from fraud.store.tables import TABLES, create_tables

    settings, dynamo = _connect(flags)
    with explain_endpoint_errors(settings):
        created = create_tables(dynamo, timeout=timeout)
    for spec in TABLES:
        name = dynamo.name(spec.name)
        click.echo(f"{name}: {'created' if name in created else 'exists'}")


@command.command("delete")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--timeout", type=float, default=300.0, show_default=True,
              help="Seconds to wait for the tables to disappear.")
@_aws_options
def delete(yes: bool, timeout: float, **flags: Any) -> None:
    """Delete the tables (and their data). Idempotent."""
    from fraud.store.tables import TABLES, delete_tables

    settings, dynamo = _connect(flags)
    if not yes:
        if not sys.stdin.isatty():
            raise click.UsageError("refusing to delete without --yes: there is no terminal "
                                   "to confirm on")
        where = settings.endpoint_url or f"AWS {settings.region}"
        click.confirm(f"Delete every {settings.table_prefix}* table at {where}?", abort=True)
    with explain_endpoint_errors(settings):
        deleted = delete_tables(dynamo, timeout=timeout)
    for spec in TABLES:
        name = dynamo.name(spec.name)
        click.echo(f"{name}: {'deleted' if name in deleted else 'absent'}")


@command.command("describe")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per table.")
@_aws_options
def describe(as_json: bool, **flags: Any) -> None:
    """Status, item count, billing, key, indexes and TTL of every table (MISSING when absent).

    Items counts are DynamoDB's own estimate (refreshed about every six hours on AWS).
    """
    from fraud.store.tables import describe_tables

    settings, dynamo = _connect(flags)
    with explain_endpoint_errors(settings):
        rows = describe_tables(dynamo)
    for row in rows:
        if as_json:
            click.echo(json.dumps(row, sort_keys=True))
        else:
            items = "-" if row["items"] is None else row["items"]
            extra = f" indexes={row['indexes']}" if row["indexes"] else ""
            ttl = f" ttl={row['ttl']}" if row["ttl"] else ""
            billing = f" billing={row['billing']}" if row["billing"] else ""
            click.echo(f"{row['table']}: {row['status']} items={items}{billing} "
                       f"key={row['key']}{extra}{ttl}")
    missing = sum(row["status"] == "MISSING" for row in rows)
    if missing:  # a script checking "are the tables there?" gets its answer from the exit code
        click.echo(f"{missing} of {len(rows)} tables missing; create them with `fraud tables "
                   f"create --table-prefix {settings.table_prefix}`", err=True)
        sys.exit(2)


@command.command("seed")
@click.option("--input", "input_dir", required=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Directory written by `fraud generate` (users.jsonl, sessions.jsonl, ...).")
@_aws_options
def seed(input_dir: Path, **flags: Any) -> None:
    """Load the supporting-store data (sessions, devices, carts, social, scores) in batches."""
    from fraud.store.seed import seed_directory

    settings, dynamo = _connect(flags)
    with explain_endpoint_errors(settings):
        report = seed_directory(dynamo, input_dir)
    for name, count in sorted(report.rows.items()):
        click.echo(f"read {name}.jsonl: {count} rows")
    for table, count in sorted(report.items.items()):
        click.echo(f"wrote {dynamo.name(table)}: {count} items")
    click.echo(f"requests: {report.requests}")
