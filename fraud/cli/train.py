"""``fraud train``: train a model artifact on labelled history, with the protocol of issue 4.

Features are computed point in time over the whole file (from its first row, so windows are
full); rows in ``[--train-start, --train-end)`` train, rows in ``[--test-start, --test-end)``
evaluate. Training sees a label only if it was known by ``--train-end`` plus the label delay:
a label is known at its ``label_time`` or, when the file has none (most exports, e.g. the
Fraud Detection Handbook's), ``--label-delay-days`` after its transaction, so then every
training-range label is used and the delay is the gap before the test range.
Metrics go to stdout and into the artifact's manifest; the report (PNGs + summary.md) goes to
``--report`` (default ``OUT/report``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from fraud.cli.shared import echo_rejections
from fraud.config import build_settings, settings_options
from fraud.errors import InputError
from fraud.logs import configure_logging, get_logger
from fraud.schema.columns import COLUMNS, ColumnMap
from fraud.schema.timeparse import TIME

__all__ = ["command", "parse_params"]

log = get_logger(__name__)


def parse_params(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``("max_iter=100", "positive_weight=sqrt")`` -> ``{"max_iter": 100, ...}``."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--param: expected NAME=VALUE, got {pair!r}")
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        out[key.strip()] = value
    return out


def _load_rows(input_path: str, columns: ColumnMap, config: Any, support_dir: Path | None,
               chunk_rows: int, settings: Any = None, labels_path: str | None = None) -> Any:
    import numpy as np

    from fraud.features import SupportStore, compute_features
    from fraud.features.support import stores_dir_beside
    from fraud.model.train import LabelledRows
    from fraud.schema.batch import TransactionBatch
    from fraud.schema.files import read_transactions

    if "://" not in input_path and not Path(input_path).exists():
        raise InputError(f"--input: {input_path}: no such file")
    chunks, rejections = [], []
    for parsed in read_transactions(input_path, columns, chunk_rows=chunk_rows,
                                    settings=settings):
        chunks.append(parsed.batch)
        rejections.extend(parsed.rejections)
    echo_rejections(input_path, rejections)
    batch = TransactionBatch.concat(chunks)
    if len(batch) == 0:
        raise InputError(f"--input: {input_path}: no valid transactions")
    if labels_path is not None:
        from fraud.schema.files import read_labels
        from fraud.schema.labels import LabelIndex, join_labels

        feed = read_labels(labels_path)
        echo_rejections(labels_path, feed.rejections, what="rejected label")
        batch = join_labels(batch, LabelIndex(feed))
    if not batch.has_labels():
        raise InputError(f"--input: {input_path}: no is_fraud labels; training needs them "
                         "(map the label column with --columns is_fraud=NAME)")
    if support_dir is None:
        support_dir = stores_dir_beside(input_path)
    support = SupportStore.from_directory(support_dir) if support_dir is not None else None
    matrix = compute_features(batch, config, support)
    rows = LabelledRows(
        x=np.ascontiguousarray(matrix.values, dtype=np.float64), names=tuple(matrix.names),
        timestamp_us=batch.timestamp_us, is_fraud=batch.is_fraud,
        label_time_us=batch.label_time_us, card=batch.user_id)
    return rows, len(rejections)


def _fmt(value: Any) -> str:
    return "n/a" if value is None else (f"{value:.4f}" if isinstance(value, float) else str(value))


@click.command(name="train")
@click.option("--input", "input_path", required=True, metavar="FILE",
              help="Labelled transactions (.csv, .jsonl, .parquet; .gz allowed).")
@click.option("--train-start", required=True, type=TIME, help="Start of training (inclusive, UTC).")
@click.option("--train-end", required=True, type=TIME, help="End of training (exclusive, UTC).")
@click.option("--test-start", type=TIME, default=None,
              help="Start of the test range (inclusive); default: train end + label delay.")
@click.option("--test-end", type=TIME, default=None,
              help="End of the test range (exclusive); default: after the last row.")
@click.option("--algorithm", type=click.Choice(["hgb", "rf", "lr"]), default="hgb",
              show_default=True,
              help="hgb: HistGradientBoosting; rf: RandomForest; lr: scaled LogisticRegression.")
@click.option("--columns", type=COLUMNS, default=None,
              help="Map canonical fields to the file's columns: user_id=CUSTOMER_ID,...")
@click.option("--search", is_flag=True,
              help="Pick hyper-parameters on time-ordered folds inside the training range.")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE",
              help="Estimator parameter (repeatable), e.g. max_iter=100, positive_weight=sqrt.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option("--top-k", "k", type=click.IntRange(min=1), default=100, show_default=True,
              help="k of card precision@k.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Artifact directory to write (manifest.json + model.skops).")
@click.option("--report", "report_dir", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="Report directory; default: OUT/report.")
@click.option("--support-dir", type=click.Path(file_okay=False, exists=True, path_type=Path),
              default=None, help="Supporting-store JSONL directory; default: INPUT's .stores "
              "directory if present.")
@click.option("--chunk-rows", type=click.IntRange(min=1), default=500_000, show_default=True,
              help="Rows read per chunk.")
@click.option("--labels", "labels_path", default=None, metavar="FILE",
              help="A label feed (transaction_id, is_fraud[, label_time]) joined onto INPUT, "
              "e.g. for the consumer's s3:// archive; transactions it does not name are genuine.")
@settings_options("label_delay_days", "history_k", "rules_path", "region", "endpoint_url",
                  "log_level")
def command(input_path: str, train_start: int, train_end: int, test_start: int | None,
            test_end: int | None, algorithm: str, columns: ColumnMap | None, search: bool,
            params: tuple[str, ...], seed: int, k: int, out: Path, report_dir: Path | None,
            support_dir: Path | None, chunk_rows: int, labels_path: str | None,
            **flags: Any) -> None:
    """Train a model artifact on labelled history and print its held-out metrics.

    Dates are half-open ranges in UTC (2024-01-01, 2024-01-01T06:00:00Z or epoch seconds).
    Training uses the labels known by --train-end plus the label delay; a label without a
    label_time counts as known --label-delay-days after its transaction.
    """
    from fraud.features import FEATURE_ENGINE_VERSION, FeatureConfig
    from fraud.model.run import TrainSpec, rule_thresholds, run_training

    settings = build_settings(flags)
    configure_logging(settings.log_level)
    spec = TrainSpec(
        train_start_us=train_start, train_end_us=train_end, test_start_us=test_start,
        test_end_us=test_end, algorithm=algorithm, label_delay_days=settings.label_delay_days,
        params=parse_params(params), search=search, seed=seed, k=k,
        thresholds=rule_thresholds(settings.rules_path),
        feature_engine_version=FEATURE_ENGINE_VERSION)
    config = FeatureConfig(label_delay_days=settings.label_delay_days,
                           history_k=settings.history_k)
    rows, rejected = _load_rows(input_path, columns or ColumnMap(), config, support_dir,
                                chunk_rows, settings, labels_path)
    outcome = run_training(rows, spec, out, report_dir=report_dir,
                           input_name=Path(input_path).name)
    m = outcome.manifest
    click.echo(f"model: {out} ({m.algorithm}, sha256 {m.model_sha256[:12]})")
    click.echo(f"train: {m.train_range[0]} .. {m.train_range[1]}: "
               f"{m.counts['train_labelled_rows']} labelled rows, {m.counts['train_frauds']} "
               f"frauds ({m.counts['train_labels_not_yet_known']} labels not yet known, "
               f"{rejected} rows rejected)")
    assumed = m.counts.get("train_labels_without_label_time", 0)
    if assumed:
        click.echo(f"  {assumed} of these rows have no label_time (as genuine rows often "
                   f"don't): their labels count as known {m.label_delay_days:g} days after "
                   "the transaction")
    test = m.metrics.get("test")
    if not test:
        click.echo("test: no rows in the test range; no held-out metrics")
        return
    if m.test_range is None:
        return
    click.echo(f"test:  {m.test_range[0]} .. {m.test_range[1]}: {test['rows']} rows, "
               f"{test['frauds']} frauds")
    click.echo(f"  auc_roc            {_fmt(test['auc_roc'])}")
    click.echo(f"  average_precision  {_fmt(test['average_precision'])}")
    click.echo(f"  card_precision@{k:<3} {_fmt(test[f'card_precision_at_{k}'])} "
               f"(mean over {test['card_precision_days']} days; a perfect ranking: "
               f"{_fmt(test[f'card_precision_at_{k}_ceiling'])})")
    for t in test["thresholds"]:
        click.echo(f"  score >= {t['threshold']}: flagged {t['flagged']}, precision "
                   f"{_fmt(t['precision'])}, recall {_fmt(t['recall'])}")
    report = report_dir if report_dir is not None else out / "report"
    click.echo(f"report: {report / 'summary.md'}")
