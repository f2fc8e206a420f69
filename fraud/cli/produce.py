"""``fraud produce``: put a transaction file onto the Kinesis stream (PutRecords batches)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from fraud.config import build_settings, settings_options
from fraud.logs import configure_logging

__all__ = ["command"]

_SHOWN_REJECTIONS = 20


@click.command("produce")
@click.option("--input", "input_path", required=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="Transaction file (.csv, .jsonl or .parquet; .gz allowed on text).")
@click.option("--rate", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Records per second at most (default: as fast as the stream takes them).")
@click.option("--raw", is_flag=True,
              help="Send rows as they are, invalid ones included (to exercise the consumer's "
                   "dead letters); default: validate, send canonical JSON, report rejects.")
@click.option("--unordered", is_flag=True,
              help="Allow one customer's records in the same call (faster; a partial failure "
                   "can then reorder that customer's records).")
@settings_options("stream_name", "region", "endpoint_url", "kinesis_endpoint_url", "log_level")
def command(input_path: Path, rate: float | None, raw: bool, unordered: bool,
            **flags: Any) -> None:
    """Put every row of FILE onto the stream as JSON, partition key = user_id.

    Failed records are retried with backoff until Kinesis accepts them; rows that fail
    validation are listed on stderr and not sent (unless --raw). The throughput is printed.
    """
    from tqdm import tqdm

    from fraud.store.clients import explain_endpoint_errors
    from fraud.stream.kinesis import kinesis_client
    from fraud.stream.producer import (
        MAX_RECORDS_PER_CALL,
        Entry,
        encode_batch,
        encode_rows,
        plan_batches,
        put_all,
    )

    settings = build_settings(flags)
    configure_logging(settings.log_level)
    rejected = 0

    def validated() -> Iterator[Entry]:
        nonlocal rejected
        from fraud.schema.files import read_transactions

        for result in read_transactions(input_path):
            for rejection in result.rejections:
                rejected += 1
                if rejected <= _SHOWN_REJECTIONS:
                    click.echo(f"rejected: {input_path.name}: {rejection}", err=True)
            yield from encode_batch(result.batch, f"{input_path.name}:")

    if raw:
        from fraud.stream.source import read_rows

        entries: Iterator[Entry] = encode_rows(read_rows(input_path))
    else:
        entries = validated()
    per_call = MAX_RECORDS_PER_CALL if rate is None else max(1, min(MAX_RECORDS_PER_CALL,
                                                                    int(rate)))
    batches = plan_batches(entries, max_records=per_call, one_per_key=not unordered)
    client = kinesis_client(settings)
    with tqdm(unit="rec", file=sys.stderr, disable=not sys.stderr.isatty(),
              desc=settings.stream_name) as bar:

        def progress(accepted: int) -> None:
            bar.update(accepted)

        with explain_endpoint_errors(
                settings, "kinesis",
                not_found=f"stream {settings.stream_name!r} not found (--stream / FRAUD_STREAM; "
                          "`fraud local up` creates the local one, or fix the name)"):
            stats = put_all(client, settings.stream_name, batches, rate=rate,
                            on_progress=progress)
    if rejected:
        click.echo(f"{rejected} invalid row(s) not sent", err=True)
    click.echo(
        f"put {stats.records} records ({stats.bytes} bytes) to {settings.stream_name} in "
        f"{stats.seconds:.2f} s: {stats.records_per_second:.0f} records/s, {stats.calls} calls, "
        f"{stats.retried_records} retried"
    )
