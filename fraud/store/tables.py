"""The DynamoDB tables: one declaration each, and idempotent create / describe / delete.

Keys follow ``docs`` / DESIGN.md. Times stored as keys or counters are integers: ``ts`` and
``created_at`` are microseconds since the epoch (they sort and compare as numbers); TTL
attributes are *seconds* since the epoch, as DynamoDB's TTL requires. Every table is on-demand
(PAY_PER_REQUEST): the stream's load is spiky, and on-demand absorbs that without tuning.

Indexes and why they exist:

* TransactionHistory ``by_terminal`` (terminal_id, ts): a terminal's recent transactions
  (investigations, backfills); ``by_transaction`` (transaction_id): the label feed finds a
  transaction's user, time and terminal from its id alone.
* Cases ``by_status`` (status, created_at): the open-case queue, oldest first.
* Leaderboard ``by_score`` (game_id, score_key): top N of a game; the score key is the score
  made sortable with the player id appended, so equal scores never collide.
* Followers ``by_follower`` (follower_id, user_id): whom a user follows (their feed).
* Posts ``by_user`` (user_id, ts): a user's posts, newest first.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fraud.errors import ConfigError, StoreError
from fraud.logs import get_logger
from fraud.store.dynamo import Dynamo, error_code

__all__ = ["TABLES", "IndexSpec", "TableSpec", "create_tables", "delete_tables",
           "describe_tables", "table_spec"]

_log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class IndexSpec:
    """A global secondary index: key attributes as (name, "S" | "N") and its projection."""

    name: str
    hash_key: tuple[str, str]
    range_key: tuple[str, str] | None = None
    projection: tuple[str, ...] | None = None  # None = ALL; else INCLUDE these (or KEYS_ONLY)


@dataclass(frozen=True, slots=True)
class TableSpec:
    """One table: logical name (prefixed at run time), key, indexes and TTL attribute."""

    name: str
    hash_key: tuple[str, str]
    range_key: tuple[str, str] | None = None
    indexes: tuple[IndexSpec, ...] = ()
    ttl_attribute: str | None = None

    def key_schema(self) -> list[dict[str, str]]:
        return _key_schema(self.hash_key, self.range_key)

    def attribute_definitions(self) -> list[dict[str, str]]:
        attrs: dict[str, str] = {}
        for key in (self.hash_key, self.range_key):
            if key:
                attrs[key[0]] = key[1]
        for index in self.indexes:
            for key in (index.hash_key, index.range_key):
                if key:
                    attrs[key[0]] = key[1]
        return [{"AttributeName": n, "AttributeType": t} for n, t in sorted(attrs.items())]

    def create_request(self, table_name: str) -> dict[str, Any]:
        request: dict[str, Any] = {
            "TableName": table_name,
            "KeySchema": self.key_schema(),
            "AttributeDefinitions": self.attribute_definitions(),
            "BillingMode": "PAY_PER_REQUEST",
        }
        if self.indexes:
            request["GlobalSecondaryIndexes"] = [
                {"IndexName": i.name, "KeySchema": _key_schema(i.hash_key, i.range_key),
                 "Projection": _projection(i.projection)}
                for i in self.indexes
            ]
        return request


def _key_schema(hash_key: tuple[str, str], range_key: tuple[str, str] | None
                ) -> list[dict[str, str]]:
    schema = [{"AttributeName": hash_key[0], "KeyType": "HASH"}]
    if range_key:
        schema.append({"AttributeName": range_key[0], "KeyType": "RANGE"})
    return schema


def _projection(attrs: tuple[str, ...] | None) -> dict[str, Any]:
    if attrs is None:
        return {"ProjectionType": "ALL"}
    if not attrs:
        return {"ProjectionType": "KEYS_ONLY"}
    return {"ProjectionType": "INCLUDE", "NonKeyAttributes": list(attrs)}


S, N = "S", "N"
TABLES: tuple[TableSpec, ...] = (
    TableSpec("UserProfiles", ("user_id", S)),
    TableSpec(
        "TransactionHistory", ("user_id", S), ("sk", S),
        indexes=(
            IndexSpec("by_terminal", ("terminal_id", S), ("ts", N)),
            IndexSpec("by_transaction", ("transaction_id", S), None,
                      ("terminal_id", "ts", "eff_ts")),
        ),
        ttl_attribute="expires_at",
    ),
    TableSpec("TerminalProfiles", ("terminal_id", S), ("bucket", N), ttl_attribute="expires_at"),
    TableSpec("Decisions", ("transaction_id", S)),
    TableSpec("Cases", ("case_id", S),
              indexes=(IndexSpec("by_status", ("status", S), ("created_at", N)),)),
    TableSpec("DeadLetters", ("letter_id", S)),
    TableSpec("Sessions", ("session_id", S), ttl_attribute="ExpirationTimestamp"),
    TableSpec("ShoppingCart", ("user_id", S), ("product_id", S)),
    TableSpec("DeviceData", ("device_id", S), ("ts", N)),
    TableSpec("Leaderboard", ("game_id", S), ("player_id", S),
              indexes=(IndexSpec("by_score", ("game_id", S), ("score_key", S)),)),
    TableSpec("Users", ("user_id", S)),
    TableSpec("Followers", ("user_id", S), ("follower_id", S),
              indexes=(IndexSpec("by_follower", ("follower_id", S), ("user_id", S)),)),
    TableSpec("Posts", ("post_id", S), indexes=(IndexSpec("by_user", ("user_id", S), ("ts", N)),)),
)
_BY_NAME = {t.name: t for t in TABLES}


def table_spec(name: str) -> TableSpec:
    """The declaration of logical table `name`."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise StoreError(f"unknown table {name!r}; known: {', '.join(_BY_NAME)}") from None


def _wait(dynamo: Dynamo, names: Sequence[str], want: Callable[[str | None], bool],
          timeout: float, what: str) -> None:
    """Poll DescribeTable until every table satisfies `want(status)` (None = absent)."""
    deadline = time.monotonic() + timeout
    left = list(names)
    while left:
        left = [n for n in left if not want(_status(dynamo, n))]
        if not left:
            return
        if time.monotonic() > deadline:
            raise StoreError(f"tables not {what} after {timeout:.0f}s: {', '.join(left)}")
        time.sleep(0.5)


def _status(dynamo: Dynamo, name: str) -> str | None:
    try:
        desc = dynamo.client.describe_table(TableName=name)["Table"]
    except Exception as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return None
        raise StoreError(f"DynamoDB describe_table on {name}: {exc}") from exc
    status = str(desc.get("TableStatus", ""))
    indexes = desc.get("GlobalSecondaryIndexes") or []
    if status == "ACTIVE" and any(i.get("IndexStatus", "ACTIVE") != "ACTIVE" for i in indexes):
        return "INDEXES_CREATING"
    return status


def create_tables(dynamo: Dynamo, specs: Sequence[TableSpec] = TABLES,
                  timeout: float = 300.0) -> list[str]:
    """Create missing tables, wait until all are ACTIVE, switch TTL on. Idempotent.

    A table that exists already must have the declared key and indexes (`ConfigError`
    otherwise). Returns the names of tables created by this call.
    """
    created: list[str] = []
    for spec in specs:
        name = dynamo.name(spec.name)
        if _status(dynamo, name) is not None:
            continue
        try:
            dynamo.client.create_table(**spec.create_request(name))
            created.append(name)
            _log.info("tables.created", table=name)
        except Exception as exc:
            if error_code(exc) != "ResourceInUseException":  # created concurrently: fine
                raise StoreError(f"DynamoDB create_table {name}: {exc}") from exc
    _wait(dynamo, [dynamo.name(s.name) for s in specs], lambda s: s == "ACTIVE", timeout,
          "active")
    for spec in specs:
        name = dynamo.name(spec.name)
        if name not in created:
            _check_design(dynamo, spec, name)
    for spec in specs:
        if spec.ttl_attribute:
            _enable_ttl(dynamo, dynamo.name(spec.name), spec.ttl_attribute)
    return created


def _check_design(dynamo: Dynamo, spec: TableSpec, name: str) -> None:
    """Refuse to call an existing table ready when its key or indexes differ from `spec`
    (an older design, or someone else's table under this prefix): the code would fail on it
    later, less clearly."""
    desc = dynamo.call("describe_table", name, TableName=name)["Table"]
    types = _attribute_types(desc.get("AttributeDefinitions", []))
    want_types = _attribute_types(spec.attribute_definitions())
    problems: list[str] = []
    have_key = _typed_keys(desc.get("KeySchema", []), types)
    want_key = _typed_keys(spec.key_schema(), want_types)
    if have_key != want_key:
        problems.append(f"key is {have_key}, expected {want_key}")
    have = {i["IndexName"]: _typed_keys(i["KeySchema"], types)
            for i in desc.get("GlobalSecondaryIndexes") or []}
    for index in spec.indexes:
        want = _typed_keys(_key_schema(index.hash_key, index.range_key), want_types)
        if index.name not in have:
            problems.append(f"index {index.name} is missing")
        elif have[index.name] != want:
            problems.append(f"index {index.name} is on {have[index.name]}, expected {want}")
    if problems:
        raise ConfigError(
            f"table {name} exists with another design: {'; '.join(problems)}. Delete it "
            "(`fraud tables delete`, which deletes its data) or choose another --table-prefix")


def _enable_ttl(dynamo: Dynamo, name: str, attribute: str) -> None:
    current = dynamo.call("describe_time_to_live", name, TableName=name)
    desc = current.get("TimeToLiveDescription", {})
    if desc.get("TimeToLiveStatus") in ("ENABLED", "ENABLING"):
        if desc.get("AttributeName") != attribute:
            raise StoreError(f"table {name}: TTL is on attribute {desc.get('AttributeName')!r}, "
                             f"expected {attribute!r}")
        return
    dynamo.call("update_time_to_live", name, TableName=name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": attribute})


def delete_tables(dynamo: Dynamo, specs: Sequence[TableSpec] = TABLES,
                  timeout: float = 300.0) -> list[str]:
    """Delete existing tables and wait until they are gone. Idempotent."""
    deleted: list[str] = []
    for spec in specs:
        name = dynamo.name(spec.name)
        try:
            dynamo.client.delete_table(TableName=name)
            deleted.append(name)
        except Exception as exc:
            if error_code(exc) != "ResourceNotFoundException":
                raise StoreError(f"DynamoDB delete_table {name}: {exc}") from exc
    _wait(dynamo, deleted, lambda s: s is None, timeout, "deleted")
    return deleted


def _attribute_types(definitions: Sequence[dict[str, str]]) -> dict[str, str]:
    """Attribute name -> DynamoDB type (S, N, B) from AttributeDefinitions."""
    return {a["AttributeName"]: a["AttributeType"] for a in definitions}


def _typed_keys(schema: Sequence[dict[str, str]], types: dict[str, str]) -> str:
    """``user_id:S,sk:S`` from a key schema and the attribute types."""
    return ",".join(f"{k['AttributeName']}:{types.get(k['AttributeName'], '?')}" for k in schema)


def describe_tables(dynamo: Dynamo, specs: Sequence[TableSpec] = TABLES) -> list[dict[str, Any]]:
    """One summary row per table: name, status, item count, billing mode, key (name:type),
    indexes (name(keys)[projection]), TTL attribute."""
    rows: list[dict[str, Any]] = []
    for spec in specs:
        name = dynamo.name(spec.name)
        row: dict[str, Any] = {"table": name, "status": "MISSING", "items": None,
                               "billing": "", "key": "", "indexes": "", "ttl": ""}
        try:
            desc = dynamo.client.describe_table(TableName=name)["Table"]
        except Exception as exc:
            if error_code(exc) != "ResourceNotFoundException":
                raise StoreError(f"DynamoDB describe_table {name}: {exc}") from exc
            rows.append(row)
            continue
        types = _attribute_types(desc.get("AttributeDefinitions", []))
        row["status"] = desc.get("TableStatus")
        row["items"] = desc.get("ItemCount")
        # No BillingModeSummary means provisioned capacity (DynamoDB's own default).
        row["billing"] = desc.get("BillingModeSummary", {}).get("BillingMode", "PROVISIONED")
        row["key"] = _typed_keys(desc.get("KeySchema", []), types)
        row["indexes"] = ";".join(
            f"{i['IndexName']}({_typed_keys(i['KeySchema'], types)})"
            f"[{i.get('Projection', {}).get('ProjectionType', '?')}]"
            for i in desc.get("GlobalSecondaryIndexes") or []
        )
        ttl = dynamo.call("describe_time_to_live", name, TableName=name)
        ttl_desc = ttl.get("TimeToLiveDescription", {})
        if ttl_desc.get("TimeToLiveStatus") in ("ENABLED", "ENABLING"):
            row["ttl"] = ttl_desc.get("AttributeName", "")
        rows.append(row)
    return rows
