"""kinesis-local plumbing that needs no process: env, service command, marker, pin files."""

from __future__ import annotations

import json
from pathlib import Path

from fraud.stream.emulator import (
    MARKER,
    default_tool_dir,
    emulator_env,
    service_command,
    service_spec,
)


def test_the_npm_pin_and_the_loopback_preload_are_in_the_tool_folder() -> None:
    tool = default_tool_dir()
    package = json.loads((tool / "package.json").read_text())
    lock = json.loads((tool / "package-lock.json").read_text())
    assert package["dependencies"] == {"kinesis-local": "0.6.2"}
    assert lock["packages"]["node_modules/kinesis-local"]["version"] == "0.6.2"
    assert "127.0.0.1" in (tool / "loopback.cjs").read_text()


def test_environment_sets_ports_certificate_and_region(tmp_path: Path) -> None:
    env = emulator_env({"HOME": "/h"}, tmp_path / "main.js", port=1, tls_port=2, region="r")
    assert env["KINESIS_MOCK_PLAIN_PORT"] == "1"
    assert env["KINESIS_MOCK_TLS_PORT"] == "2"
    assert env["KINESIS_MOCK_CERT_PATH"] == str(tmp_path / "server.json")
    assert env["AWS_REGION"] == "r"
    assert env["HOME"] == "/h"


def test_service_command_carries_the_marker_before_and_after_exec() -> None:
    argv = service_command(4568)
    assert argv[1:5] == ["-m", "fraud.stream.emulator", "--port", "4568"]
    assert MARKER in " ".join(argv)  # the launcher's own command line
    assert MARKER in str(default_tool_dir() / "node_modules" / "kinesis-local" / "main.js")
    spec = service_spec()
    assert spec.name == "kinesis"
    assert spec.env == "FRAUD_KINESIS_ENDPOINT_URL"
    assert spec.marker == MARKER
