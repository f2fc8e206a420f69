"""``fraud generate``: write a synthetic transaction file with injected fraud, and its stores.

Same options, same bytes: every draw comes from ``--seed``. The transaction file's format
follows its extension (.csv, .jsonl, .parquet); the supporting stores go to JSON Lines files
in ``--stores-dir`` (default: ``<FILE without extension>.stores/`` beside FILE).
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from pathlib import Path

import click
from tqdm import tqdm

from fraud.errors import InputError
from fraud.generate import GenerateConfig, default_stores_dir, generate, write_dataset
from fraud.generate.textcols import parse_date
from fraud.tabular import format_of

__all__ = ["command"]

_STAGES = ("population", "legitimate spending", "fraud scenarios", "supporting stores")


def _parse_start(ctx: click.Context, param: click.Parameter, value: str) -> dt.datetime:
    try:
        return parse_date(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None


def _check_out(out: str) -> Path:
    try:
        format_of(out)
    except InputError as exc:
        raise click.BadParameter(str(exc), param_hint="'--out'") from None
    path = Path(out)
    if path.is_dir():
        raise click.BadParameter(f"{out}: is a directory; expected a file name",
                                 param_hint="'--out'")
    return path


@click.command("generate")
@click.option("--out", "out", required=True, metavar="FILE",
              help="Transaction file to write: .csv, .jsonl or .parquet (by extension).")
@click.option("--users", type=click.IntRange(min=1, max=10_000_000), default=2_000,
              show_default=True, help="Customer accounts (a few are fraudster-made).")
@click.option("--terminals", type=click.IntRange(min=1, max=10_000_000), default=500,
              show_default=True, help="Terminals and merchants (shops, web and app merchants).")
@click.option("--days", type=click.IntRange(min=1, max=3660), default=30, show_default=True,
              help="Length of the period in days.")
@click.option("--start", default="2024-01-01", show_default=True, metavar="DATE",
              callback=_parse_start,
              help="First day of the period (UTC), e.g. 2024-01-01 (from 1980 on; the "
                   "period must end by 2199-06-01).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Random seed: the same seed and options give byte-identical files.")
@click.option("--fraud-rate", type=click.FloatRange(min=0.0, max=0.2), default=0.007,
              show_default=True, help="Target share of fraudulent transactions.")
@click.option("--stores-dir", type=click.Path(file_okay=False), default=None, metavar="DIR",
              help="Directory of the supporting stores' JSON Lines files "
                   "[default: <FILE without extension>.stores/].")
def command(out: str, users: int, terminals: int, days: int, start: dt.datetime, seed: int,
            fraud_rate: float, stores_dir: str | None) -> None:
    """Generate synthetic transactions with injected fraud, and the stores that go with them.

    Customers have a home, usual shops, devices, a spending level and daily and weekly
    rhythms. Injected fraud (is_fraud=1, with its scenario and a chargeback label_time):
    compromised_terminal, compromised_card, card_testing, account_takeover, high_amount.
    The stores directory gets users, sessions, devices, carts, followers, posts and scores
    (.jsonl), consistent with the transactions.

    About 1.4 transactions per user and day: the defaults give about 80,000 rows; for about a
    million use --users 12000 --terminals 5000 --days 60.

    Exit codes: 0 ok, 1 runtime failure, 2 usage or input error.
    """
    out_path = _check_out(out)
    target = Path(stores_dir) if stores_dir else default_stores_dir(out_path)
    try:
        cfg = GenerateConfig(users=users, terminals=terminals, days=days, start=start,
                             seed=seed, fraud_rate=fraud_rate)
    except InputError as exc:
        raise click.UsageError(str(exc)) from None
    began = time.perf_counter()
    show = sys.stderr.isatty()
    with tqdm(total=len(_STAGES), desc="generate", unit="step", disable=not show,
              file=sys.stderr) as bar:
        def stage(name: str) -> None:
            bar.set_postfix_str(name)
            bar.update(1)

        ds = generate(cfg, progress=stage)
    try:
        with tqdm(total=ds.summary.rows, desc="write", unit="row", unit_scale=True,
                  disable=not show, file=sys.stderr) as bar:
            def advance(rows: int) -> None:
                bar.update(rows)

            files = write_dataset(ds, out_path, target, progress=advance)
    except OSError as exc:
        raise click.ClickException(f"cannot write the data set: {exc}") from None
    elapsed = time.perf_counter() - began

    s = ds.summary
    total = sum(s.frauds.values())
    share = total / s.rows if s.rows else 0.0
    click.echo(f"transactions: {s.rows:,} ({s.users:,} users, {s.terminals:,} terminals, "
               f"seed {seed})")
    click.echo(f"period: {s.first or '-'} .. {s.last or '-'}")
    kinds = ", ".join(f"{name} {count:,}" for name, count in s.frauds.items())
    click.echo(f"frauds: {total:,} ({share:.2%}): {kinds}")
    click.echo(f"wrote: {files[0]}")
    rows = {name: len(next(iter(cols.values()))) for name, cols in ds.stores.items()}
    click.echo(f"stores: {target}/ " + ", ".join(f"{k} {v:,}" for k, v in rows.items()))
    click.echo(f"took {elapsed:.1f} s")
