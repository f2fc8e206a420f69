"""``fraud demo``: the product end to end on generated data, printing what it decided."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

import click

from fraud.config import build_settings, settings_options
from fraud.logs import configure_logging

__all__ = ["command"]

DAY_US = 86_400_000_000


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.3f}"
    return str(value)


@click.command(name="demo")
@click.option("--mode", type=click.Choice(["stream", "replay"]), default="stream",
              show_default=True,
              help="stream: local AWS, the real KCL consumer, a produced day of transactions. "
              "replay: the same pipeline over the generated file, no AWS at all.")
@click.option("--users", type=click.IntRange(min=10), default=1000, show_default=True,
              help="Customers in the generated world.")
@click.option("--terminals", type=click.IntRange(min=5), default=200, show_default=True,
              help="Terminals/merchants in the generated world.")
@click.option("--days", type=click.IntRange(min=2), default=12, show_default=True,
              help="Days of transactions; the last one is decided, the rest warm the state.")
@click.option("--seed", type=int, default=7, show_default=True, help="Random seed.")
@settings_options("model_dir", "rules_path", "label_delay_days", "history_k", "local_dir",
                  "log_level")
def command(mode: str, users: int, terminals: int, days: int, seed: int,
            **flags: Any) -> None:
    """Run the product end to end on generated data and print what it decided.

    Files (data, decisions, the consumer's logs, a backtest report) land under
    LOCAL_DIR/demo. The stream mode starts local endpoints on 127.0.0.1 and stops them at the
    end.
    """
    settings = build_settings(flags)
    # The demo talks to a person on stdout; its own logs stay quiet unless asked for (the
    # consumer's processes still log at the configured level, into the daemon log).
    explicit = flags.get("log_level") is not None or "FRAUD_LOG_LEVEL" in os.environ
    configure_logging(settings.log_level if explicit else "WARNING")
    if mode == "stream":
        from fraud.demo import DemoConfig, run_demo

        code = run_demo(settings, DemoConfig(users=users, terminals=terminals, days=days,
                                             seed=seed), click.echo)
        if code:
            raise SystemExit(code)
        return
    _replay_demo(settings, users, terminals, days, seed)


def _replay_demo(settings: Any, users: int, terminals: int, days: int, seed: int) -> None:
    from datetime import UTC, datetime

    from fraud.generate import GenerateConfig, generate, write_dataset
    from fraud.replay import ReplayConfig, run_replay

    work = Path(settings.local_dir) / "demo"
    work.mkdir(parents=True, exist_ok=True)
    start = datetime(2024, 3, 1, tzinfo=UTC)
    t0 = time.perf_counter()
    data = generate(GenerateConfig(users=users, terminals=terminals, days=days, start=start,
                                   fraud_rate=0.02,
                                   seed=seed))
    input_path = work / "transactions.csv"
    write_dataset(data, input_path)
    summary = data.summary
    frauds = sum(summary.frauds.values())
    click.echo(f"generated {summary.rows} transactions, {frauds} fraudulent, over "
               f"{days} days for {users} customers and {terminals} terminals "
               f"({time.perf_counter() - t0:.1f}s) -> {input_path}")
    for scenario, count in sorted(summary.frauds.items()):
        click.echo(f"  {scenario:<22} {count:>7}")

    decide_from = int(start.timestamp() * 1_000_000) + (days - 1) * DAY_US
    output = work / "decisions.csv"
    report_dir = work / "report"
    result = run_replay(ReplayConfig(
        input=str(input_path), output=output, model_dir=settings.model_dir,
        rules_path=settings.rules_path, start_us=decide_from,
        label_delay_days=settings.label_delay_days, report_dir=report_dir,
        support_dir=work / "transactions.stores",
    ))
    click.echo(f"\nreplayed {result.rows_read} rows through features, model "
               f"{result.model_version} and rules {result.rules_version} in "
               f"{result.seconds:.1f}s ({result.rows_per_second:,.0f} rows/s); "
               f"decided the last day: {result.rows_decided} transactions")
    report = result.report
    click.echo(f"\n{'action':<8} {'count':>7} {'precision':>10} {'recall':>8}")
    actions = report.get("current", {}).get("actions", {})
    for name in ("block", "alert", "flag"):
        row = actions.get(name, {"hits": result.actions.get(name, 0),
                                 "precision": math.nan, "recall": math.nan})
        click.echo(f"{name:<8} {row['hits']:>7} {_fmt(row['precision']):>10} "
                   f"{_fmt(row['recall']):>8}")
    click.echo(f"{'none':<8} {result.actions.get('none', 0):>7}")
    metrics = report.get("metrics")
    if metrics:
        click.echo(f"\nmodel on the decided day: AUC {_fmt(metrics['auc_roc'])}, "
                   f"average precision {_fmt(metrics['average_precision'])}")
    click.echo(f"\ndecisions: {output}\nreport:    {report_dir / 'summary.md'}")
