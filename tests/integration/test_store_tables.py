"""Tables over real HTTP: keys, indexes, TTL, on-demand billing; create/delete idempotent."""

from __future__ import annotations

import pytest

from fraud.config import Settings
from fraud.errors import ConfigError
from fraud.store import Dynamo, connect
from fraud.store.tables import (
    TABLES,
    create_tables,
    delete_tables,
    describe_tables,
    table_spec,
)

pytestmark = pytest.mark.integration


def _describe(db: Dynamo, table: str) -> dict:  # type: ignore[type-arg]
    return db.client.describe_table(TableName=db.name(table))["Table"]  # type: ignore[no-any-return]


def test_every_table_exists_with_its_key_and_on_demand_billing(dynamo: Dynamo) -> None:
    for spec in TABLES:
        desc = _describe(dynamo, spec.name)
        assert desc["TableStatus"] == "ACTIVE"
        assert desc["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
        keys = [(k["AttributeName"], k["KeyType"]) for k in desc["KeySchema"]]
        assert keys[0] == (spec.hash_key[0], "HASH")
        if spec.range_key:
            assert keys[1] == (spec.range_key[0], "RANGE")


@pytest.mark.parametrize(("table", "index", "keys"), [
    ("TransactionHistory", "by_terminal", ["terminal_id", "ts"]),
    ("TransactionHistory", "by_transaction", ["transaction_id"]),
    ("Cases", "by_status", ["status", "created_at"]),
    ("Leaderboard", "by_score", ["game_id", "score_key"]),
    ("Followers", "by_follower", ["follower_id", "user_id"]),
    ("Posts", "by_user", ["user_id", "ts"]),
])
def test_indexes(dynamo: Dynamo, table: str, index: str, keys: list[str]) -> None:
    desc = _describe(dynamo, table)
    found = {i["IndexName"]: [k["AttributeName"] for k in i["KeySchema"]]
             for i in desc.get("GlobalSecondaryIndexes", [])}
    assert found[index] == keys


@pytest.mark.parametrize(("table", "attribute"), [
    ("TransactionHistory", "expires_at"), ("Sessions", "ExpirationTimestamp"),
    ("TerminalProfiles", "expires_at")])
def test_ttl(dynamo: Dynamo, table: str, attribute: str) -> None:
    ttl = dynamo.client.describe_time_to_live(TableName=dynamo.name(table))
    assert ttl["TimeToLiveDescription"]["TimeToLiveStatus"] == "ENABLED"
    assert ttl["TimeToLiveDescription"]["AttributeName"] == attribute


def test_create_and_delete_are_idempotent(settings: Settings) -> None:
    db = connect(settings)
    assert len(create_tables(db)) == len(TABLES)
    assert create_tables(db) == []
    assert all(r["status"] == "ACTIVE" for r in describe_tables(db))
    assert len(delete_tables(db)) == len(TABLES)
    assert delete_tables(db) == []
    assert all(r["status"] == "MISSING" for r in describe_tables(db))


# What DESIGN.md's table section and issue 7 ask for, written out independently of `TABLES`:
# table -> (key with types, {index: keys with types}, TTL attribute).
EXPECTED = {
    "UserProfiles": ("user_id:S", {}, ""),
    "TransactionHistory": ("user_id:S,sk:S", {"by_terminal": "terminal_id:S,ts:N",
                                              "by_transaction": "transaction_id:S"},
                           "expires_at"),
    "TerminalProfiles": ("terminal_id:S,bucket:N", {}, "expires_at"),
    "Decisions": ("transaction_id:S", {}, ""),
    "Cases": ("case_id:S", {"by_status": "status:S,created_at:N"}, ""),
    "DeadLetters": ("letter_id:S", {}, ""),
    "Sessions": ("session_id:S", {}, "ExpirationTimestamp"),
    "ShoppingCart": ("user_id:S,product_id:S", {}, ""),
    "DeviceData": ("device_id:S,ts:N", {}, ""),
    "Leaderboard": ("game_id:S,player_id:S", {"by_score": "game_id:S,score_key:S"}, ""),
    "Users": ("user_id:S", {}, ""),
    "Followers": ("user_id:S,follower_id:S", {"by_follower": "follower_id:S,user_id:S"}, ""),
    "Posts": ("post_id:S", {"by_user": "user_id:S,ts:N"}, ""),
}


def test_describe_shows_every_table_as_designed(dynamo: Dynamo) -> None:
    rows = {r["table"].removeprefix(dynamo.prefix): r for r in describe_tables(dynamo)}
    assert set(rows) == set(EXPECTED)
    for table, (key, indexes, ttl) in EXPECTED.items():
        row = rows[table]
        assert (row["status"], row["billing"]) == ("ACTIVE", "PAY_PER_REQUEST"), table
        assert row["key"] == key, table
        shown = dict(part.split("(", 1) for part in row["indexes"].split(";") if part)
        assert {name: text.split(")")[0] for name, text in shown.items()} == indexes, table
        assert row["ttl"] == ttl, table


def test_create_refuses_an_existing_table_of_another_design(settings: Settings) -> None:
    db = connect(settings)
    db.client.create_table(  # Cases as an older design might have made it: no status index
        TableName=db.name("Cases"), BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "case_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "case_id", "AttributeType": "S"}])
    db.client.create_table(  # DeviceData with a string time
        TableName=db.name("DeviceData"), BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "device_id", "KeyType": "HASH"},
                   {"AttributeName": "ts", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "device_id", "AttributeType": "S"},
                              {"AttributeName": "ts", "AttributeType": "S"}])
    with pytest.raises(ConfigError, match=rf"{db.prefix}Cases exists with another design: "
                                          r"index by_status is missing"):
        create_tables(db, [table_spec("Cases")])
    with pytest.raises(ConfigError, match=r"key is device_id:S,ts:S, expected device_id:S,ts:N"):
        create_tables(db, [table_spec("DeviceData")])
    delete_tables(db, [table_spec("Cases"), table_spec("DeviceData")])
    assert create_tables(db, [table_spec("Cases")]) == [db.name("Cases")]
    assert create_tables(db, [table_spec("Cases")]) == []  # and now it is as designed
