"""``fraud consume``: run the KCL MultiLangDaemon with our record processor, supervised."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import click

from fraud.config import Settings, build_settings, settings_options
from fraud.errors import ConfigError
from fraud.logs import configure_logging, get_logger

__all__ = ["command"]

log = get_logger(__name__)


@click.command("consume")
@click.option("--handler", default=None, metavar="MODULE:FACTORY",
              help="Batch handler factory the record processor runs [env: FRAUD_KCL_HANDLER; "
                   "default: the fraud pipeline].")
@click.option("--jars", "jar_dir", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="KCL jar cache, fetched with mvn when incomplete "
                                 "[env: FRAUD_KCL_JARS; default: .local/kcl-jars].")
@click.option("--worker-id", default=None,
              help="Lease owner name; a restart with the same id takes its leases back at once "
                   "[default: a random id per start].")
@click.option("--kcl-property", "kcl_properties", multiple=True, metavar="KEY=VALUE",
              help="Extra or overriding MultiLangDaemon property (repeatable), e.g. "
                   "failoverTimeMillis=3000.")
@click.option("--daemon-log", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="File for the JVM's own log [default: stderr].")
@settings_options("stream_name", "application_name", "region", "endpoint_url",
                  "kinesis_endpoint_url", "initial_position", "table_prefix", "payload_columns",
                  "decisions_stream", "alert_topic", "archive_uri", "model_dir", "rules_path",
                  "rules_reload_seconds", "label_delay_days", "history_k", "scorer",
                  "sagemaker_endpoint", "local_dir", "log_level")
def command(handler: str | None, jar_dir: Path | None, worker_id: str | None,
            kcl_properties: tuple[str, ...], daemon_log: Path | None, **flags: Any) -> None:
    """Consume the stream: the daemon leases shards, our processor decides each record.

    SIGTERM (or Ctrl-C) stops the daemon gracefully: in-flight batches finish and checkpoint.
    Exits non-zero when the daemon dies by itself.
    """
    import os

    from fraud.stream.daemon import DaemonProcess, prepare_daemon, supervise
    from fraud.stream.jars import ensure_jars, find_java
    from fraud.stream.processor import DEFAULT_HANDLER, HANDLER_ENV, load_handler_factory

    settings = build_settings(flags)
    configure_logging(settings.log_level)
    overrides = dict(_property(text) for text in kcl_properties)
    spec = handler or os.environ.get(HANDLER_ENV) or DEFAULT_HANDLER
    load_handler_factory(spec)  # fail here, clearly, rather than in every shard's child
    if spec == DEFAULT_HANDLER:
        _check_pipeline_inputs(settings)
    if importlib.util.find_spec("amazon_kclpy") is None:
        raise ConfigError(
            "amazon-kclpy is not installed: run `python scripts/fetch_kcl_jars.py "
            "--install-kclpy` (make kcl)"
        )
    java = find_java()
    jars = ensure_jars(jar_dir)
    launch = prepare_daemon(settings, java=java, jars=jars, work_dir=settings.local_dir / "kcl",
                            handler_spec=spec, worker_id=worker_id, overrides=overrides)
    code = supervise(DaemonProcess(launch, log_file=daemon_log))
    if code:
        # SystemExit, not click's Exit: `python -m fraud` ignores main()'s return value.
        sys.exit(code)


def _check_pipeline_inputs(settings: Settings) -> None:
    """Refuse a bad model or rules file now, with its own message and exit code 2.

    Otherwise every shard's record processor would fail on start-up, over and over, with
    the reason buried in the daemon's log. An ``s3://`` rules file is read by the
    processor itself (its hot reload keeps the last good rules, and there are none yet).
    """
    from fraud.model.artifact import ArtifactError, check_compatible, read_manifest
    from fraud.rules.loader import load_rules

    try:
        check_compatible(read_manifest(settings.model_dir), Path(settings.model_dir))
    except ArtifactError as exc:
        raise ConfigError(f"--model: {exc}") from exc
    if "://" not in settings.rules_path:
        load_rules(settings.rules_path)  # RulesFileError lists every problem, exit code 2


def _property(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise click.BadParameter(f"expected KEY=VALUE, got {text!r}", param_hint="--kcl-property")
    return key.strip(), value.strip()
