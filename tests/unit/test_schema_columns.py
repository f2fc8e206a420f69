"""--columns: parsing, clear errors, and the click type."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from fraud.errors import InputError
from fraud.schema.columns import CANONICAL_FIELDS, COLUMNS, ColumnMap


def test_parse_maps_and_defaults() -> None:
    cm = ColumnMap.parse(" user_id = CUSTOMER_ID ,terminal_id=TERMINAL_ID,timestamp=TX_DATETIME,")
    assert cm.source("user_id") == "CUSTOMER_ID"
    assert cm.source("timestamp") == "TX_DATETIME"
    assert cm.source("amount") == "amount"
    assert str(cm) == "user_id=CUSTOMER_ID,terminal_id=TERMINAL_ID,timestamp=TX_DATETIME"
    assert ColumnMap.parse(str(cm)) == cm
    assert set(cm.sources()) == set(CANONICAL_FIELDS)


def test_empty_mapping_is_identity() -> None:
    cm = ColumnMap.parse("")
    assert all(cm.source(f) == f for f in CANONICAL_FIELDS)


def test_source_may_contain_equals() -> None:
    assert ColumnMap.parse("amount=AMT=EUR").source("amount") == "AMT=EUR"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("customer=CUSTOMER_ID", "unknown field 'customer'; known fields: transaction_id"),
        ("user_id", "malformed pair 'user_id'; expected field=COLUMN"),
        ("user_id=", "malformed pair 'user_id='"),
        ("=CUSTOMER_ID", "malformed pair '=CUSTOMER_ID'"),
        ("user_id=A,user_id=B", "field 'user_id' is mapped twice"),
        ("user_id=A,terminal_id=A", "column 'A' is mapped to both 'user_id' and 'terminal_id'"),
    ],
)
def test_errors_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message) as info:
        ColumnMap.parse(text)
    assert info.value.exit_code == 2


def test_click_type() -> None:
    @click.command()
    @click.option("--columns", type=COLUMNS, default="")
    def cmd(columns: ColumnMap) -> None:
        click.echo(columns.source("user_id"))

    ok = CliRunner().invoke(cmd, ["--columns", "user_id=CUSTOMER_ID"])
    assert ok.exit_code == 0 and ok.output.strip() == "CUSTOMER_ID"
    bad = CliRunner().invoke(cmd, ["--columns", "user=CUSTOMER_ID"])
    assert bad.exit_code == 2
    assert "unknown field 'user'" in bad.output
