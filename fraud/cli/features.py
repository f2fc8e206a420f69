"""``fraud features``: point-in-time features of a transaction file, one row per transaction.

The file is read in chunks, ordered by event time as a whole (features need every earlier
transaction), and the features are written in input order next to ``transaction_id``. Labels
in the file (``is_fraud``, ``label_time``) are the label feed: a fraud label counts only from
its label time, or ``--label-delay-days`` after its transaction when it has none.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import numpy as np

from fraud.cli.shared import echo_rejections
from fraud.config import build_settings, settings_options
from fraud.errors import InputError
from fraud.features.support import stores_dir_beside
from fraud.logs import configure_logging, get_logger
from fraud.schema.columns import COLUMNS, ColumnMap

__all__ = ["command", "rejects_csv"]

log = get_logger(__name__)


@click.command(name="features")
@click.option("--input", "input_path", required=True, metavar="FILE",
              help="Transactions (.csv, .jsonl, .parquet; .gz allowed).")
@click.option("--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="transaction_id plus every feature, in input order (.csv or .parquet).")
@click.option("--columns", type=COLUMNS, default=None,
              help="Map canonical fields to the file's columns: user_id=CUSTOMER_ID,...")
@click.option("--support-dir", type=click.Path(file_okay=False, exists=True, path_type=Path),
              default=None, help="Supporting-store JSONL directory (sessions, devices, carts, "
              "social); default: INPUT's .stores directory if present, else none.")
@click.option("--chunk-rows", type=click.IntRange(min=1), default=500_000, show_default=True,
              help="Rows read per chunk.")
@settings_options("label_delay_days", "history_k", "log_level")
def command(input_path: str, output: Path, columns: ColumnMap | None,
            support_dir: Path | None, chunk_rows: int, **flags: Any) -> None:
    """Compute point-in-time features for a transaction file.

    Rows that fail validation are left out of OUTPUT and listed on stderr with their line
    and reason (and all in OUTPUT with .rejects.csv in place of its extension: out.parquet
    -> out.rejects.csv). Feature definitions: docs/features.md.
    """
    from fraud.features import FeatureConfig, SupportStore, compute_features
    from fraud.schema.files import read_transactions
    from fraud.tabular import TableWriter, format_of, write_columns

    settings = build_settings(flags)
    configure_logging(settings.log_level)
    format_of(output)  # an unknown extension is an input error before any work is done
    if not Path(input_path).exists():
        raise InputError(f"--input: {input_path}: no such file")
    config = FeatureConfig(label_delay_days=settings.label_delay_days,
                           history_k=settings.history_k)
    chunks = []
    rejections: list[Any] = []
    for parsed in read_transactions(input_path, columns or ColumnMap(), chunk_rows=chunk_rows):
        chunks.append(parsed.batch)
        rejections.extend(parsed.rejections)
    if rejections:
        echo_rejections(input_path, rejections)
        rejects = rejects_csv(output)
        with TableWriter(rejects) as writer:
            writer.write({
                "position": np.asarray([r.position for r in rejections], dtype=object),
                "field": np.asarray([r.field for r in rejections], dtype=object),
                "value": np.asarray([r.value for r in rejections], dtype=object),
                "reason": np.asarray([r.reason for r in rejections], dtype=object),
            })
    directory = support_dir or stores_dir_beside(input_path)
    support = SupportStore.from_directory(directory) if directory is not None else None
    matrix = compute_features(chunks, config, support)
    rows = write_columns(output, matrix.to_columns())
    log.info("features written", rows=rows, rejected=len(rejections), output=str(output))
    click.echo(f"wrote {rows} rows x {len(matrix.names)} features to {output}"
               + (f" ({len(rejections)} rows rejected: {rejects_csv(output)})"
                  if rejections else ""), err=True)


def rejects_csv(output: Path) -> Path:
    """Where `fraud features` lists the rejected rows: ``feats.v2.parquet`` ->
    ``feats.v2.rejects.csv`` (only the extension, and a ``.gz`` after it, is replaced)."""
    suffix = "".join(output.suffixes[-2:]) if output.suffix == ".gz" else output.suffix
    return output.with_name(output.name[: len(output.name) - len(suffix)] + ".rejects.csv")
