"""``fraud replay``: a transaction file through the consumer's pipeline, into a file."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any

import click

from fraud.config import build_settings, settings_options
from fraud.features import StateStore
from fraud.features.support import stores_dir_beside
from fraud.logs import configure_logging
from fraud.schema.columns import COLUMNS
from fraud.schema.timeparse import TIME

__all__ = ["command"]


def _store(kind: str, settings: Any, counter: Any = None) -> StateStore | None:
    if kind == "memory":
        return None
    from fraud.store.clients import dynamodb_client
    from fraud.store.dynamo import Dynamo
    from fraud.store.feature_store import DynamoStateStore

    return DynamoStateStore(Dynamo(dynamodb_client(settings, counter=counter),
                                   prefix=settings.table_prefix))


@click.command(name="replay")
@click.option("--input", "input_path", required=True, metavar="FILE",
              help="Transactions to replay (.csv, .jsonl, .parquet; .gz allowed).")
@click.option("--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Decisions, one row per decided transaction (.csv, .jsonl, .parquet).")
@click.option("--columns", type=COLUMNS, default=None,
              help="Map canonical fields to the file's columns: user_id=CUSTOMER_ID,...")
@click.option("--from", "start", type=TIME, default=None,
              help="Decide rows from this time on (inclusive, UTC); earlier rows only feed state.")
@click.option("--to", "end", type=TIME, default=None,
              help="Decide rows before this time (exclusive, UTC).")
@click.option("--report", "report_dir", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="Write a backtest report here (needs labels in the input).")
@click.option("--store", type=click.Choice(["memory", "dynamodb"]), default="memory",
              show_default=True, help="Where feature state lives during the replay.")
@click.option("--compare-rules", metavar="FILE", default=None,
              help="A candidate rules file evaluated over the same data in the same pass "
                   "(needs --report).")
@click.option("--compare-model", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="A candidate model artifact scored in the same pass "
              "(needs --report).")
@click.option("--support-dir", type=click.Path(file_okay=False, exists=True, path_type=Path),
              default=None, help="Supporting-store data (sessions, devices, carts, social) "
              "written by `fraud generate`; default: INPUT's .stores directory if present.")
@click.option("--chunk-rows", type=click.IntRange(min=1), default=200_000, show_default=True,
              help="Rows read and decided per batch.")
@click.option("--overlap/--no-overlap", default=True, show_default=True,
              help="Pipeline the chunks over threads: read chunk N+2, compute N+1's "
                   "features, score and rule N, write N-1 at once (same output either way; "
                   "--no-overlap holds fewer chunks).")
@settings_options("model_dir", "rules_path", "label_delay_days", "history_k", "region",
                  "endpoint_url", "table_prefix", "log_level")
def command(input_path: str, output: Path, columns: Any, start: int | None, end: int | None,
            report_dir: Path | None, store: str, compare_rules: str | None,
            compare_model: Path | None, support_dir: Path | None, chunk_rows: int,
            overlap: bool, **flags: Any) -> None:
    """Replay a transaction file through the pipeline the consumer runs.

    Every row feeds the feature state; rows in [--from, --to) are scored, run through the
    rules and written to OUTPUT in input order. Rejected rows are listed on stderr (the
    first few, with line, field and reason) and all go to OUTPUT with .rejects before its
    extension (out.csv -> out.rejects.csv); OUTPUT.summary.json says what was done (and
    whether it completed).

    --store dynamodb reads and updates the DynamoDB feature state (UserProfiles,
    TerminalProfiles) in place: it backfills state for the consumer, it does not write
    TransactionHistory or decisions. Replay a period into those tables once; a second
    replay of the same rows sees them already in the state.
    """
    from fraud.replay import ReplayConfig, run_replay

    settings = build_settings(flags)
    configure_logging(settings.log_level)
    if start is not None and end is not None and start >= end:
        raise click.BadParameter("must be after --from", param_hint="--to")
    if (compare_rules or compare_model) and report_dir is None:
        # The comparison lives in the backtest report; without one it would be computed and
        # thrown away.
        raise click.UsageError("--compare-rules / --compare-model need --report DIR: the "
                               "comparison is written to the backtest report")
    config = ReplayConfig(
        input=input_path, output=output, model_dir=settings.model_dir,
        rules_path=settings.rules_path, columns=columns, start_us=start, end_us=end,
        label_delay_days=settings.label_delay_days, history_k=settings.history_k,
        report_dir=report_dir, compare_rules=compare_rules, compare_model=compare_model,
        support_dir=support_dir or stores_dir_beside(input_path), chunk_rows=chunk_rows,
        overlap=overlap,
    )
    bar: Any = None
    if sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(unit=" rows", unit_scale=True, file=sys.stderr)

    def progress(rows: int) -> None:
        if bar is not None:
            bar.update(rows - bar.n)

    counter: Any = None
    if store == "dynamodb":
        from fraud.store.clients import RequestCounter

        counter = RequestCounter()
    from fraud.store.clients import explain_endpoint_errors

    try:
        # With --store dynamodb, an unreachable local endpoint or missing tables are the
        # caller's to fix: exit 2 with what to do, as `fraud label` and `fraud tables` do.
        with (explain_endpoint_errors(settings) if store == "dynamodb"
              else contextlib.nullcontext()):
            summary = run_replay(config, store=_store(store, settings, counter),
                                 progress=progress, settings=settings)
    except KeyboardInterrupt:
        click.echo(f"interrupted: {output} is partial (see {output}.summary.json)", err=True)
        sys.exit(130)
    finally:
        if bar is not None:
            bar.close()
    if summary.rejected_examples:
        for example in summary.rejected_examples:
            click.echo(f"rejected: {input_path}: {example}", err=True)
        if summary.rows_rejected > len(summary.rejected_examples):
            click.echo(f"rejected: ... and "
                       f"{summary.rows_rejected - len(summary.rejected_examples)} more",
                       err=True)
    acts = ", ".join(f"{k}={v}" for k, v in sorted(summary.actions.items()))
    click.echo(f"replayed {summary.rows_read} rows in {summary.seconds:.2f}s "
               f"({summary.rows_per_second:,.0f} rows/s): decided {summary.rows_decided}"
               + (f" [{acts}]" if acts else "") + f", rejected {summary.rows_rejected}")
    if summary.rows_out_of_order:
        click.echo(f"note: {summary.rows_out_of_order} rows arrived out of time order "
                   "(late-event policy applied; see docs/features.md)", err=True)
    if counter is not None:  # the feature state's DynamoDB traffic, every request counted
        ops = ", ".join(f"{k.split('.', 1)[1]}={v}" for k, v in counter.snapshot().items())
        click.echo(f"dynamodb: {counter.total()} requests ({ops}), "
                   f"{counter.per(summary.rows_read):.4f} per transaction")
    click.echo(f"output: {output}")
    if summary.rejects:
        click.echo(f"rejects: {summary.rejects}")
    if report_dir is not None and not summary.report:
        click.echo(f"note: no report written to {report_dir}: no row was decided "
                   "(check --from/--to against the file's times)", err=True)
    if summary.report:
        click.echo(f"report: {report_dir}/summary.md")
        if not summary.report.get("labelled_rows"):
            click.echo("note: the decided rows carry no labels (is_fraud); the report has "
                       "no precision, recall or model metrics", err=True)
        metrics = summary.report.get("metrics")
        if metrics:
            click.echo("model: " + ", ".join(
                f"{k}={v:.4f}" for k, v in metrics.items()
                if isinstance(v, float)))
        difference = summary.report.get("difference")
        if difference:
            click.echo(f"candidate: {difference['newly_blocked']} newly blocked, "
                       f"{difference['no_longer_blocked']} no longer blocked "
                       f"(per rule and action: {report_dir}/summary.md)")
