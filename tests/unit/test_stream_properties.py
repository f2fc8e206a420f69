"""The daemon's properties file: exact key names (KCL ignores unknown ones) and local mode."""

from __future__ import annotations

from pathlib import Path

import pytest

from fraud.config import Settings
from fraud.errors import ConfigError
from fraud.stream.properties import (
    build_properties,
    is_local_endpoint,
    render_properties,
    write_properties,
)

CMD = ["/venv/bin/python", "-m", "fraud.stream.processor", "pkg.mod:Factory"]


def local_settings() -> Settings:
    return Settings(endpoint_url="http://127.0.0.1:5000", kinesis_endpoint_url="http://127.0.0.1:4568",
                    stream_name="tx", application_name="app", region="eu-west-1",
                    initial_position="LATEST")


def test_local_endpoints_switch_on_what_emulators_need() -> None:
    props = build_properties(local_settings(), command=CMD, worker_id="w1")
    assert props["executableName"] == " ".join(CMD)
    assert props["streamName"] == "tx"
    assert props["applicationName"] == "app"
    assert props["regionName"] == "eu-west-1"
    assert props["initialPositionInStream"] == "LATEST"
    assert props["kinesisEndpoint"] == "http://127.0.0.1:4568"
    assert props["dynamoDBEndpoint"] == "http://127.0.0.1:5000"
    assert props["AwsCredentialsProvider"] == "EnvironmentVariableCredentialsProvider"
    assert props["retrievalMode"] == "POLLING"
    assert props["metricsLevel"] == "NONE"
    assert props["disableWorkerMetrics"] == "true"
    assert props["shutdownGraceMillis"] == "30000"
    assert props["workerId"] == "w1"


def test_aws_mode_has_no_endpoints_and_uses_the_default_chain() -> None:
    props = build_properties(Settings(), command=CMD)
    assert "kinesisEndpoint" not in props and "dynamoDBEndpoint" not in props
    assert props["AwsCredentialsProvider"] == "DefaultCredentialsProvider"
    assert props["retrievalMode"] == "FANOUT"
    assert "metricsLevel" not in props and "workerId" not in props


def test_kinesis_endpoint_falls_back_to_the_shared_endpoint() -> None:
    props = build_properties(Settings(endpoint_url="http://localhost:1"), command=CMD)
    assert props["kinesisEndpoint"] == props["dynamoDBEndpoint"] == "http://localhost:1"


def test_overrides_replace_and_add_keys() -> None:
    props = build_properties(local_settings(), command=CMD,
                             overrides={"failoverTimeMillis": "3000", "retrievalMode": "X"})
    assert props["failoverTimeMillis"] == "3000"
    assert props["retrievalMode"] == "X"


@pytest.mark.parametrize("bad", [["/path with space/python", "-m", "x"], [], ["python", ""]])
def test_command_arguments_with_whitespace_are_refused(bad: list[str]) -> None:
    with pytest.raises(ConfigError, match="executableName"):
        build_properties(Settings(), command=bad)


@pytest.mark.parametrize(
    ("url", "local"),
    [("http://127.0.0.1:4568", True), ("http://localhost:1", True), ("http://127.9.9.9", True),
     ("https://kinesis.us-east-1.amazonaws.com", False), (None, False), ("", False)],
)
def test_is_local_endpoint(url: str | None, local: bool) -> None:
    assert is_local_endpoint(url) is local


def test_render_escapes_backslashes_and_refuses_newlines(tmp_path: Path) -> None:
    assert render_properties({"a": r"c:\x"}) == "a = c:\\\\x\n"
    with pytest.raises(ConfigError, match="'a'"):
        render_properties({"a": "x\ny"})
    path = write_properties(tmp_path / "sub" / "app.properties", {"streamName": "tx"})
    assert path.read_text() == "streamName = tx\n"
