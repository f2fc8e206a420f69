"""Settings resolve flag > FRAUD_* variable > default, and bad values name their source."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from fraud.config import SETTINGS, Settings, build_settings, settings_options
from fraud.errors import ConfigError


def test_defaults_when_nothing_given() -> None:
    assert build_settings({}, environ={}) == Settings()


def test_environment_overrides_default() -> None:
    s = build_settings({}, environ={"FRAUD_TABLE_PREFIX": "prod-", "FRAUD_HISTORY_K": "32"})
    assert s.table_prefix == "prod-"
    assert s.history_k == 32


def test_flag_overrides_environment() -> None:
    s = build_settings({"table_prefix": "cli-"}, environ={"FRAUD_TABLE_PREFIX": "env-"})
    assert s.table_prefix == "cli-"


def test_types_are_parsed() -> None:
    s = build_settings({"model_dir": "m/x", "label_delay_days": "2.5"}, environ={})
    assert s.model_dir == Path("m/x")
    assert s.label_delay_days == 2.5


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"FRAUD_HISTORY_K": "zero"}, "FRAUD_HISTORY_K"),
        ({"FRAUD_HISTORY_K": "0"}, ">= 1"),
        ({"FRAUD_LABEL_DELAY_DAYS": "-1"}, "FRAUD_LABEL_DELAY_DAYS"),
        ({"FRAUD_LABEL_DELAY_DAYS": "nan"}, "finite"),
        ({"FRAUD_ENDPOINT_URL": "127.0.0.1:4566"}, "http://"),
        ({"FRAUD_SCORER": "magic"}, "local, sagemaker"),
    ],
)
def test_bad_values_name_their_source(env: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        build_settings({}, environ=env)


def test_settings_are_frozen() -> None:
    s = Settings()
    with pytest.raises(AttributeError):
        s.region = "eu-west-1"  # type: ignore[misc]


def test_every_setting_has_a_unique_fraud_variable() -> None:
    envs = [s.env for s in SETTINGS]
    assert len(envs) == len(set(envs))
    assert all(e.startswith("FRAUD_") for e in envs)


def test_endpoint_per_service() -> None:
    s = Settings(endpoint_url="http://127.0.0.1:1", kinesis_endpoint_url="http://127.0.0.1:2")
    assert s.aws_endpoint("dynamodb") == "http://127.0.0.1:1"
    assert s.aws_endpoint("kinesis") == "http://127.0.0.1:2"


def test_options_show_variables_in_help_and_resolve() -> None:
    @click.command()
    @settings_options("table_prefix", "scorer")
    def show(**flags: object) -> None:
        click.echo(build_settings(flags).table_prefix)

    runner = CliRunner()
    help_text = runner.invoke(show, ["--help"]).output
    assert "FRAUD_TABLE_PREFIX" in help_text
    assert "FRAUD_SCORER" in help_text
    result = runner.invoke(show, [], env={"FRAUD_TABLE_PREFIX": "from-env-"})
    assert result.output.strip() == "from-env-"
    result = runner.invoke(show, ["--table-prefix", "flag-"], env={"FRAUD_TABLE_PREFIX": "e-"})
    assert result.output.strip() == "flag-"
    assert runner.invoke(show, ["--scorer", "nope"]).exit_code == 2


def test_readme_lists_every_variable() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    missing = [s.env for s in SETTINGS if f"`{s.env}`" not in readme]
    assert not missing, f"README.md does not document {missing}"
