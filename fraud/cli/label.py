"""``fraud label --input FILE``: apply a label feed (chargebacks, confirmed fraud).

The file (JSONL, CSV or Parquet; ``--columns`` maps foreign names) has ``transaction_id``,
``is_fraud`` and optionally ``label_time``, read by the same reader as training's
``--labels``: a refused row (bad value, repeated transaction) is reported on stderr with its
line and reason, and the good rows are applied. Each label updates the transaction's history
item and the terminal's fraud set: a fraud label is added once, and taken out again when a
later label says "not fraud" (or moves its label time); applying the same feed twice changes
nothing the second time. Prints a JSON report: labels, rejected, matched, updated, repeated
(already so), fraud_labels_sent, retracted, conflicts (changed by another writer meanwhile:
run again), unmatched, and the DynamoDB requests sent.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from fraud.cli.shared import echo_rejections
from fraud.config import build_settings, settings_options
from fraud.errors import InputError
from fraud.logs import configure_logging
from fraud.schema.columns import COLUMNS, ColumnMap

__all__ = ["command"]


@click.command("label")
@click.option("--input", "input_path", required=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="Label file: transaction_id, is_fraud, label_time (JSONL, CSV or Parquet).")
@click.option("--columns", type=COLUMNS, default=None,
              help="Map canonical fields to the file's columns: is_fraud=CHARGEBACK,...")
@click.option("--prefix", "--table-prefix", "table_prefix", default=None,
              help="Prefix of every table name. [env: FRAUD_TABLE_PREFIX; default: fraud-]")
@settings_options("region", "endpoint_url", "label_delay_days", "log_level")
def command(input_path: Path, columns: ColumnMap | None, **flags: Any) -> None:
    """Apply a label feed to the transaction history and terminal fraud counters."""
    from fraud.schema.files import read_labels
    from fraud.store import RequestCounter, connect
    from fraud.store.clients import explain_endpoint_errors
    from fraud.store.feature_store import DynamoStateStore
    from fraud.store.labels import apply_labels, labels_of

    settings = build_settings(flags)
    configure_logging(settings.log_level)
    feed = read_labels(input_path, columns)
    echo_rejections(input_path, feed.rejections, what="rejected label")
    if len(feed) == 0:
        raise InputError(f"--input: {input_path}: no valid labels"
                         + (f" ({len(feed.rejections)} rows refused)" if feed.rejections else ""))
    counter = RequestCounter()
    dynamo = connect(settings, counter)
    with explain_endpoint_errors(settings):
        report = apply_labels(dynamo, DynamoStateStore(dynamo), labels_of(feed),
                              label_delay_days=settings.label_delay_days)
    out = report.as_dict()
    out["rejected"] = len(feed.rejections)
    out["requests"] = counter.total()
    click.echo(json.dumps(out, sort_keys=True))
    if report.labels and not report.matched:
        where = settings.endpoint_url or f"AWS {settings.region}"
        click.echo(f"note: none of the {report.labels} labels matched a transaction in "
                   f"{dynamo.name('TransactionHistory')} at {where}: labels apply to "
                   "transactions the consumer recorded (a wrong --table-prefix?)", err=True)
    elif report.unmatched:
        click.echo(f"note: {len(report.unmatched)} of {report.labels} labels matched no "
                   "recorded transaction (e.g. " + ", ".join(report.unmatched[:3]) + ")",
                   err=True)
