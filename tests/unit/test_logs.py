"""JSON logs on stderr, following the latest `configure_logging` wherever the logger was made."""

from __future__ import annotations

import json

import pytest

from fraud.logs import configure_logging, get_logger

made_at_import = get_logger("tests.made_at_import")


def test_a_logger_made_before_configuration_follows_it(
        capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("WARNING")
    made_at_import.info("hidden")
    configure_logging("INFO")
    made_at_import.info("shown", card_count=1)
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(e["event"], e["logger"], e["level"]) for e in lines] == [
        ("shown", "tests.made_at_import", "info")]
    assert lines[0]["card_count"] == 1 and "timestamp" in lines[0]
