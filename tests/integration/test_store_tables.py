"""Tables over real HTTP: keys, indexes, TTL, on-demand billing; create/delete idempotent."""

from __future__ import annotations

import pytest

from fraud.config import Settings
from fraud.store import Dynamo, connect
from fraud.store.tables import TABLES, create_tables, delete_tables, describe_tables

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
