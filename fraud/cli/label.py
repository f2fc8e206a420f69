"""``fraud label --input FILE``: apply a label feed (chargebacks, confirmed fraud).

The file (JSONL, CSV or Parquet) has ``transaction_id``, ``is_fraud`` and optionally
``label_time``; each label updates the transaction's history item and, for fraud, the
terminal's fraud set. Applying the same feed twice changes nothing the second time. Prints a
JSON report: labels, matched, updated, repeated, unmatched, DynamoDB requests.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from fraud.config import build_settings, settings_options
from fraud.logs import configure_logging

__all__ = ["command"]


@click.command("label")
@click.option("--input", "input_path", required=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="Label file: transaction_id, is_fraud, label_time (JSONL, CSV or Parquet).")
@click.option("--prefix", "table_prefix", default=None,
              help="Prefix of every table name. [env: FRAUD_TABLE_PREFIX; default: fraud-]")
@settings_options("region", "endpoint_url", "label_delay_days", "log_level")
def command(input_path: Path, **flags: Any) -> None:
    """Apply a label feed to the transaction history and terminal fraud counters."""
    from fraud.store import RequestCounter, connect
    from fraud.store.feature_store import DynamoStateStore
    from fraud.store.labels import apply_labels, read_labels

    settings = build_settings(flags)
    configure_logging(settings.log_level)
    labels = read_labels(input_path)
    counter = RequestCounter()
    dynamo = connect(settings, counter)
    report = apply_labels(dynamo, DynamoStateStore(dynamo), labels,
                          label_delay_days=settings.label_delay_days)
    out = report.as_dict()
    out["requests"] = counter.total()
    click.echo(json.dumps(out, sort_keys=True))
