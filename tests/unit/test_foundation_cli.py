"""The CLI contract as an outside user meets it: every variable documented, clear errors.

`main` is called in-process (as the console script does) so exit codes and stderr are the
real ones: 0 ok, 1 runtime failure, 2 usage or input error, and never a traceback.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner

from fraud.cli import COMMANDS, ENVIRONMENT, cli, main
from fraud.config import SETTINGS, build_settings, settings_options
from fraud.errors import ConfigError, InputError
from fraud.generate import STORE_FIELDS, GenerateConfig, generate
from fraud.schema.timeparse import TIME_OK, parse_time_strings


def _main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    code = info.value.code
    return (code if isinstance(code, int) else 1), out, err


def test_top_level_help_lists_every_variable() -> None:
    text = re.sub(r"\s+", " ", CliRunner().invoke(cli, ["--help"]).output)
    for setting in SETTINGS:
        assert setting.env in text, setting.env
        assert " ".join(setting.help.split()[:3]) in text
    assert "FRAUD_KCL_JARS" in text and "FRAUD_KCL_HANDLER" in text
    assert [env for env, _ in ENVIRONMENT][: len(SETTINGS)] == [s.env for s in SETTINGS]


def test_readme_lists_every_variable_of_the_help() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    assert [env for env, _ in ENVIRONMENT if f"`{env}`" not in readme] == []


@pytest.mark.parametrize(("env", "message"), [
    ({"FRAUD_LABEL_DELAY_DAYS": "abc"}, "FRAUD_LABEL_DELAY_DAYS: expected a finite number >= 0, "
                                        "got 'abc'"),
    ({"FRAUD_HISTORY_K": "1e3"}, "FRAUD_HISTORY_K: expected an integer >= 1, got '1e3'"),
    ({"FRAUD_RULES_RELOAD_SECONDS": ""}, "FRAUD_RULES_RELOAD_SECONDS: expected a finite number"),
])
def test_bad_numbers_say_what_was_expected(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_settings({}, environ=env)
    assert str(info.value) == message or str(info.value).startswith(message)


def test_setting_flags_show_their_kind_in_help() -> None:
    @click.command()
    @settings_options("history_k", "label_delay_days", "endpoint_url", "model_dir", "region")
    def show(**flags: object) -> None:
        """Nothing."""

    text = CliRunner().invoke(show, ["--help"]).output
    for flag in ("--history-k INTEGER", "--label-delay-days NUMBER", "--endpoint-url URL",
                 "--model PATH", "--region TEXT"):
        assert flag in text


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_an_unknown_option_is_a_usage_error_for_every_command(
        name: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _main([name, "--no-such-option"], capsys)
    assert code == 2
    assert "No such option" in err


def test_input_errors_exit_2_and_runtime_failures_exit_1(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _main(["features", "--input", str(tmp_path / "nope"), "--output",
                          str(tmp_path / "f.csv")], capsys)
    assert code == 2 and "no such file" in err
    source = tmp_path / "tx.csv"
    source.write_text("transaction_id,timestamp,user_id,terminal_id,amount\na,1,u,m,1\n")
    code, _, err = _main(["features", "--input", str(source), "--output",
                          str(tmp_path / "f.csv"), "--columns", "lat=LATITUDE"], capsys)
    assert code == 2 and "not found: lat (as LATITUDE)" in err
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, _, err = _main(["generate", "--out", str(blocker / "x.csv"), "--users", "5",
                          "--terminals", "3", "--days", "1"], capsys)
    assert code == 1 and "cannot write" in err


@pytest.mark.parametrize(("start", "days", "needle"), [
    ("1975-01-01", 10, "year in 1980..2199"),
    ("2300-01-01", 10, "year in 1980..2199"),
    ("2199-05-01", 60, "outside the readable range"),
])
def test_generate_refuses_periods_the_reader_would_refuse(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], start: str, days: int,
        needle: str) -> None:
    code, _, err = _main(["generate", "--out", str(tmp_path / "x.csv"), "--start", start,
                          "--days", str(days), "--users", "5"], capsys)
    assert code == 2 and needle in err
    assert not (tmp_path / "x.csv").exists()


@pytest.mark.parametrize("start", [dt.datetime(1980, 1, 1, tzinfo=dt.UTC),
                                   dt.datetime(2199, 5, 1, tzinfo=dt.UTC)])
def test_generated_times_at_the_edges_read_back(start: dt.datetime) -> None:
    ds = generate(GenerateConfig(users=60, terminals=10, days=31, start=start, seed=2,
                                 fraud_rate=0.2))
    texts = [ds.transactions["timestamp"], ds.transactions["label_time"]]
    for name, fields in STORE_FIELDS.items():
        texts += [ds.stores[name][f] for f in fields
                  if f in ("ts", "since", "created_at", "expires_at", "added_at")]
    values = [str(v) for column in texts for v in column.tolist() if v]
    assert len(values) > 1000
    _, status = parse_time_strings(values)
    assert np.all(status == TIME_OK)


def test_config_errors_are_input_errors_with_exit_2() -> None:
    with pytest.raises(InputError) as info:
        GenerateConfig(start=dt.datetime(2199, 5, 1, tzinfo=dt.UTC), days=60)
    assert info.value.exit_code == 2
