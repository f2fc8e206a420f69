"""Settings: one frozen object built from CLI flags, then `FRAUD_*` variables, then defaults.

Each setting is declared once in `SETTINGS` with its environment variable, type, default and
help text. `settings_options` turns a chosen subset into click options (the variable is named in
``--help``) and `build_settings` resolves flag > environment > default, validating every value
with an error that names the flag or variable it came from.

>>> s = build_settings({"label_delay_days": None}, environ={"FRAUD_LABEL_DELAY_DAYS": "3"})
>>> s.label_delay_days
3.0
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from fraud.errors import ConfigError

if TYPE_CHECKING:
    from fraud.schema.columns import ColumnMap

__all__ = ["SETTINGS", "Setting", "Settings", "build_settings", "settings_options"]

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class Settings:
    """Every knob of the product. Built once; never mutated; passed down explicitly."""

    region: str = "us-east-1"
    endpoint_url: str | None = None
    kinesis_endpoint_url: str | None = None
    table_prefix: str = "fraud-"
    stream_name: str = "transactions"
    decisions_stream: str = "fraud-decisions"
    application_name: str = "fraud-consumer"
    alert_topic: str = "fraud-alerts"
    archive_uri: str | None = None
    model_dir: Path = Path("models/default")
    rules_path: str = "rules/default.yaml"
    rules_reload_seconds: float = 10.0
    label_delay_days: float = 7.0
    payload_columns: ColumnMap | None = None
    history_k: int = 256
    initial_position: str = "TRIM_HORIZON"
    scorer: str = "local"
    sagemaker_endpoint: str | None = None
    local_dir: Path = Path(".local")
    log_level: str = "INFO"

    def aws_endpoint(self, service: str) -> str | None:
        """The endpoint URL for a boto3 client of `service` (None means AWS's own)."""
        if service == "kinesis" and self.kinesis_endpoint_url:
            return self.kinesis_endpoint_url
        return self.endpoint_url


@dataclass(frozen=True, slots=True)
class Setting:
    """How one field of `Settings` is named, parsed and documented."""

    field: str
    env: str
    parse: Callable[[str], Any]
    help: str
    choices: tuple[str, ...] = ()
    long: str = ""

    @property
    def flag(self) -> str:
        return "--" + (self.long or self.field.replace("_", "-"))

    def default(self) -> Any:
        return _DEFAULTS[self.field]


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")  # refused just below, with the same message
    if not value >= 0 or value == float("inf"):
        raise ValueError(f"expected a finite number >= 0, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0  # refused just below, with the same message
    if value < 1:
        raise ValueError(f"expected an integer >= 1, got {text!r}")
    return value


def _optional(text: str) -> str | None:
    return text or None


def _url(text: str) -> str | None:
    if not text:
        return None
    if not text.startswith(("http://", "https://")):
        raise ValueError(f"expected an http:// or https:// URL, got {text!r}")
    return text


def _column_map(text: str) -> ColumnMap | None:
    from fraud.errors import InputError
    from fraud.schema.columns import ColumnMap

    if not text.strip():
        return None
    try:
        return ColumnMap.parse(text)
    except InputError as exc:
        raise ValueError(str(exc).removeprefix("--columns: ")) from exc


_DEFAULTS: dict[str, Any] = {f.name: f.default for f in dataclasses.fields(Settings)}

SETTINGS: tuple[Setting, ...] = (
    Setting("region", "FRAUD_REGION", str, "AWS region of every client."),
    Setting("endpoint_url", "FRAUD_ENDPOINT_URL", _url,
            "Endpoint for DynamoDB, SNS, S3 (e.g. a local moto server); unset means AWS."),
    Setting("kinesis_endpoint_url", "FRAUD_KINESIS_ENDPOINT_URL", _url,
            "Endpoint for Kinesis when it differs from --endpoint-url (e.g. kinesis-local)."),
    Setting("table_prefix", "FRAUD_TABLE_PREFIX", str, "Prefix of every DynamoDB table name."),
    Setting("stream_name", "FRAUD_STREAM", str, "Kinesis stream of incoming transactions.",
            long="stream"),
    Setting("decisions_stream", "FRAUD_DECISIONS_STREAM", str,
            "Kinesis stream that receives block decisions for the authorising system."),
    Setting("application_name", "FRAUD_APPLICATION_NAME", str,
            "KCL application name (also the lease table); consumers sharing it share shards."),
    Setting("alert_topic", "FRAUD_ALERT_TOPIC", str, "SNS topic name (or ARN) for alerts."),
    Setting("archive_uri", "FRAUD_ARCHIVE_URI", _optional,
            "s3://bucket/prefix where decided transactions are archived; unset disables."),
    Setting("model_dir", "FRAUD_MODEL_DIR", Path, "Directory of the model artifact to score with.",
            long="model"),
    Setting("rules_path", "FRAUD_RULES", str, "Rules file: a local path or an s3:// URI.",
            long="rules"),
    Setting("rules_reload_seconds", "FRAUD_RULES_RELOAD_SECONDS", _positive_float,
            "How often the consumer checks the rules file for changes (0 disables)."),
    Setting("label_delay_days", "FRAUD_LABEL_DELAY_DAYS", _positive_float,
            "Days after a transaction when its label is known, when it has no label_time."),
    Setting("payload_columns", "FRAUD_PAYLOAD_COLUMNS", _column_map,
            "Field names in the stream's JSON records when they are not the canonical ones, "
            "e.g. user_id=CUSTOMER_ID,timestamp=TX_DATETIME,amount=TX_AMOUNT."),
    Setting("history_k", "FRAUD_HISTORY_K", _positive_int,
            "Recent events kept per customer in the feature state."),
    Setting("initial_position", "FRAUD_INITIAL_POSITION", str,
            "Where a new consumer starts reading a shard.", ("TRIM_HORIZON", "LATEST")),
    Setting("scorer", "FRAUD_SCORER", str,
            "Where scores come from: the local artifact or a SageMaker endpoint.",
            ("local", "sagemaker")),
    Setting("sagemaker_endpoint", "FRAUD_SAGEMAKER_ENDPOINT", _optional,
            "SageMaker endpoint name when --scorer sagemaker."),
    Setting("local_dir", "FRAUD_LOCAL_DIR", Path,
            "Working directory of the local AWS stack (state file, logs, emulators)."),
    Setting("log_level", "FRAUD_LOG_LEVEL", str.upper, "Log level of the JSON logs on stderr.",
            ("DEBUG", "INFO", "WARNING", "ERROR")),
)
_BY_FIELD = {s.field: s for s in SETTINGS}
# What --help shows for a value (values are parsed by build_settings, not by click).
_METAVARS: dict[Callable[[str], Any], str] = {
    _positive_float: "NUMBER", _positive_int: "INTEGER", _url: "URL", Path: "PATH",
    _column_map: "field=COLUMN,...",
}


def _resolve(setting: Setting, raw: str, source: str) -> Any:
    try:
        value = setting.parse(raw)
    except ValueError as exc:
        raise ConfigError(f"{source}: {exc}") from exc
    if setting.choices and value not in setting.choices:
        allowed = ", ".join(setting.choices)
        raise ConfigError(f"{source}: {raw!r} is not one of {allowed}")
    return value


def build_settings(
    flags: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Resolve every setting: a flag given on the command line, else its variable, else default.

    `flags` maps field names to CLI values (None means "not given"); keys that are not
    settings are ignored, so a command can pass its whole keyword set.
    """
    flags = flags or {}
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        given = flags.get(setting.field)
        if given is not None:
            values[setting.field] = _resolve(setting, str(given), setting.flag)
        elif env.get(setting.env) is not None:
            values[setting.field] = _resolve(setting, env[setting.env], setting.env)
    return Settings(**values)


def settings_options(*fields: str) -> Callable[[F], F]:
    """A click decorator adding ``--flag`` options for the named settings.

    Defaults are left to `build_settings` so that flag > environment > default holds; the help
    text names the variable and the default.
    """
    unknown = [f for f in fields if f not in _BY_FIELD]
    if unknown:
        raise ValueError(f"unknown settings: {unknown}")

    def decorate(func: F) -> F:
        for name in reversed(fields):
            s = _BY_FIELD[name]
            default = s.default()
            shown = "unset" if default is None else str(default)
            kind: Any = click.Choice(s.choices, case_sensitive=False) if s.choices else str
            func = click.option(
                s.flag,
                s.field,
                type=kind,
                default=None,
                metavar=None if s.choices else _METAVARS.get(s.parse, "TEXT"),
                help=f"{s.help} [env: {s.env}; default: {shown}]",
            )(func)
        return func

    return decorate
