"""The DynamoDB boundary: batched reads and writes with retries, and wrapped errors.

Every DynamoDB call of the project goes through `Dynamo`, which

* maps logical table names ("UserProfiles") to real ones (prefix from the settings);
* reads with BatchGetItem in requests of at most 100 keys, several tables per request, and
  retries `UnprocessedKeys` with exponential backoff and full jitter;
* writes with BatchWriteItem in requests of at most 25 items, retrying `UnprocessedItems`;
* in both, a request refused whole for throttling (after botocore's own retries) counts as
  a round with nothing processed; after `Backoff.attempts` retries it gives up with an error
  naming the tables and how many keys/items were left (only what is left is ever re-sent,
  so nothing is read or written twice, and nothing is dropped silently);
* writes "first write wins" items with TransactWriteItems (BatchWriteItem has no conditions),
  up to 100 per request, and reports which ones already existed;
* wraps every boto3/botocore error in `StoreError` naming the operation and the table.

Keys and items are plain Python mappings here (see `fraud.store.marshal`).
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from fraud.errors import ConfigError, StoreError
from fraud.logs import get_logger
from fraud.store.marshal import from_item, to_attr, to_item

__all__ = [
    "BATCH_GET_LIMIT",
    "BATCH_WRITE_LIMIT",
    "THROTTLE_CODES",
    "TRANSACT_LIMIT",
    "Backoff",
    "ConditionalPut",
    "Dynamo",
    "check_prefix",
    "error_code",
]

BATCH_GET_LIMIT = 100
BATCH_WRITE_LIMIT = 25
TRANSACT_LIMIT = 100
# A whole request refused for load: botocore retried it already (standard mode); the batch
# loops then treat it as a round in which nothing was processed, with their own backoff.
THROTTLE_CODES = frozenset({"ProvisionedThroughputExceededException", "ThrottlingException",
                            "RequestLimitExceeded", "InternalServerError"})

_log = get_logger(__name__)


_NAME_CHARS = re.compile(r"[A-Za-z0-9_.-]*")
_LONGEST_TABLE = len("TransactionHistory")


def check_prefix(prefix: str) -> None:
    """Refuse a table prefix DynamoDB would refuse in a table name, before any request."""
    if not _NAME_CHARS.fullmatch(prefix) or len(prefix) + _LONGEST_TABLE > 255:
        raise ConfigError(
            f"table prefix {prefix!r} (--table-prefix / FRAUD_TABLE_PREFIX): DynamoDB table "
            "names allow only letters, digits, '_', '-' and '.', 255 characters at most")


def error_code(exc: BaseException | None) -> str:
    """The AWS error code of a botocore `ClientError` ("" for anything else)."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with full jitter (delay uniform in [0, min(cap, base * 2**n)]).

    `sleep` and `rng` are injectable so tests neither sleep nor depend on chance.
    """

    base: float = 0.05
    cap: float = 2.0
    attempts: int = 10
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)

    def wait(self, attempt: int) -> None:
        """Sleep before retry number `attempt` (1 = the first retry)."""
        self.sleep(self.rng.uniform(0.0, min(self.cap, self.base * 2 ** (attempt - 1))))


@dataclass(frozen=True, slots=True)
class ConditionalPut:
    """An item to put only if its key does not exist yet (`attribute_not_exists`)."""

    table: str
    item: Mapping[str, Any]
    key_attribute: str


def _chunks(seq: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(seq), size):
        yield seq[start:start + size]


def _count(request: Mapping[str, Any], field: str | None = None) -> int:
    """Keys (``field="Keys"``) or write requests left in a batch request."""
    return sum(len(v[field]) if field else len(v) for v in request.values())


def _key_id(key: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, repr(v)) for k, v in key.items()))


class Dynamo:
    """A DynamoDB client with the project's batching, retries, naming and error wrapping."""

    def __init__(self, client: Any, prefix: str = "fraud-", backoff: Backoff | None = None):
        check_prefix(prefix)
        self.client = client
        self.prefix = prefix
        self.backoff = backoff or Backoff()

    def __repr__(self) -> str:
        return f"Dynamo(prefix={self.prefix!r})"

    def name(self, table: str) -> str:
        """The real name of logical table `table`."""
        return self.prefix + table

    def call(self, operation: str, table: str, **kwargs: Any) -> dict[str, Any]:
        """Call client operation `operation` (snake_case), wrapping errors with context."""
        try:
            result: dict[str, Any] = getattr(self.client, operation)(**kwargs)
        except ClientError as exc:
            hint = ""
            if error_code(exc) == "ResourceNotFoundException":
                hint = (f" (are the {self.prefix}* tables there? create them with "
                        f"`fraud tables create --table-prefix {self.prefix}`)")
            raise StoreError(
                f"DynamoDB {operation} on {table}: {error_code(exc)}: "
                f"{exc.response.get('Error', {}).get('Message', '')}{hint}"
            ) from exc
        except BotoCoreError as exc:
            raise StoreError(f"DynamoDB {operation} on {table}: {exc}") from exc
        return result

    # -- reads ---------------------------------------------------------------------------

    def batch_get(
        self,
        requests: Mapping[str, Sequence[Mapping[str, Any]]],
        *,
        projection: Mapping[str, Sequence[str]] | None = None,
        consistent: bool = False,
        raw: bool = False,
    ) -> dict[str, list[dict[str, Any]]]:
        """Items for the given keys of several logical tables, in as few requests as possible.

        Duplicate keys are asked once; absent items are simply missing from the result.
        `raw=True` returns the typed items as DynamoDB sent them (``{"N": "12"}``...), for
        callers that decode big attributes (Number Sets) faster than the generic codec can.
        """
        pending: list[tuple[str, dict[str, Any]]] = []
        for table, keys in requests.items():
            seen: set[tuple[tuple[str, str], ...]] = set()
            for key in keys:
                ident = _key_id(key)
                if ident not in seen:
                    seen.add(ident)
                    pending.append((table, to_item(key)))
        out: dict[str, list[dict[str, Any]]] = {table: [] for table in requests}
        by_name = {self.name(t): t for t in requests}
        for chunk in _chunks(pending, BATCH_GET_LIMIT):
            request: dict[str, dict[str, Any]] = {}
            for table, key in chunk:
                entry = request.setdefault(
                    self.name(table), {"Keys": [], "ConsistentRead": consistent}
                )
                entry["Keys"].append(key)
                if projection and table in projection:
                    names = {f"#p{i}": a for i, a in enumerate(projection[table])}
                    entry["ProjectionExpression"] = ", ".join(names)
                    entry["ExpressionAttributeNames"] = names
            self._get_until_done(request, by_name, out, raw)
        return out

    def _get_until_done(
        self,
        request: dict[str, Any],
        by_name: Mapping[str, str],
        out: dict[str, list[dict[str, Any]]],
        raw: bool = False,
    ) -> None:
        tables = ",".join(sorted(by_name.values()))
        for attempt in range(self.backoff.attempts + 1):
            if attempt:
                self.backoff.wait(attempt)
            result = self._batch_call("batch_get_item", tables, request, "UnprocessedKeys")
            for name, items in result.get("Responses", {}).items():
                out[by_name[name]].extend(items if raw else (from_item(i) for i in items))
            request = result.get("UnprocessedKeys") or {}
            if not request:
                return
            _log.debug("dynamodb.unprocessed_keys", tables=tables, keys=_count(request, "Keys"),
                       attempt=attempt)
        raise StoreError(
            f"DynamoDB batch_get_item on {tables}: {_count(request, 'Keys')} keys still "
            f"unprocessed after {self.backoff.attempts} retries (throttled?)"
        )

    def _batch_call(self, operation: str, tables: str, request: dict[str, Any],
                    unprocessed: str) -> dict[str, Any]:
        """One batch request; a throttled request comes back as "all of it unprocessed"."""
        try:
            return self.call(operation, tables, RequestItems=request)
        except StoreError as exc:
            if error_code(exc.__cause__) not in THROTTLE_CODES:
                raise
            _log.warning("dynamodb.throttled", operation=operation, tables=tables,
                       code=error_code(exc.__cause__))
            return {unprocessed: request}

    def query_all(self, table: str, **kwargs: Any) -> list[dict[str, Any]]:
        """Every item a Query returns, following pages (stops at `Limit` if given)."""
        limit = kwargs.get("Limit")
        items: list[dict[str, Any]] = []
        while True:
            result = self.call("query", table, TableName=self.name(table), **kwargs)
            items.extend(from_item(i) for i in result.get("Items", []))
            last = result.get("LastEvaluatedKey")
            if not last or (limit is not None and len(items) >= limit):
                return items[:limit] if limit is not None else items
            kwargs["ExclusiveStartKey"] = last

    def get(self, table: str, key: Mapping[str, Any], consistent: bool = False
            ) -> dict[str, Any] | None:
        """One item, or None."""
        result = self.call("get_item", table, TableName=self.name(table), Key=to_item(key),
                           ConsistentRead=consistent)
        item = result.get("Item")
        return from_item(item) if item else None

    # -- writes --------------------------------------------------------------------------

    def batch_write(
        self,
        puts: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
        deletes: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
        *,
        typed: bool = False,
    ) -> int:
        """Unconditional puts and deletes in requests of 25, retrying unprocessed items.

        A key must appear at most once per call (DynamoDB refuses duplicates in one request).
        `typed=True`: the put items are typed already (e.g. from `marshal.typed_items`).
        Returns the number of requests sent.
        """
        ops: list[tuple[str, dict[str, Any]]] = []
        for table, items in (puts or {}).items():
            ops.extend((table, {"PutRequest": {"Item": i if typed else to_item(i)}})
                       for i in items)
        for table, keys in (deletes or {}).items():
            ops.extend((table, {"DeleteRequest": {"Key": to_item(k)}}) for k in keys)
        sent = 0
        for chunk in _chunks(ops, BATCH_WRITE_LIMIT):
            request: dict[str, list[dict[str, Any]]] = {}
            for table, op in chunk:
                request.setdefault(self.name(table), []).append(op)
            sent += self._write_until_done(request)
        return sent

    def _write_until_done(self, request: dict[str, Any]) -> int:
        tables = ",".join(sorted(request))
        for attempt in range(self.backoff.attempts + 1):
            if attempt:
                self.backoff.wait(attempt)
            result = self._batch_call("batch_write_item", tables, request, "UnprocessedItems")
            request = result.get("UnprocessedItems") or {}
            if not request:
                return attempt + 1
            _log.debug("dynamodb.unprocessed_items", tables=tables, items=_count(request),
                       attempt=attempt)
        raise StoreError(
            f"DynamoDB batch_write_item on {tables}: {_count(request)} items still "
            f"unprocessed after {self.backoff.attempts} retries (throttled?)"
        )

    def put_once(self, puts: Sequence[ConditionalPut]) -> tuple[list[int], list[int]]:
        """Put items that do not exist yet; an item whose key exists is left untouched.

        Uses TransactWriteItems (conditions are not allowed in BatchWriteItem), 100 items per
        request. A transaction is all-or-nothing, so when some conditions fail the request is
        sent again without them. Returns (indices written, indices that already existed).
        """
        written: list[int] = []
        existing: list[int] = []
        indices = list(range(len(puts)))
        for chunk in _chunks(indices, TRANSACT_LIMIT):
            todo = list(chunk)
            attempt = 0
            while todo:
                failed, retry = self._transact_puts([puts[i] for i in todo])
                if not failed and not retry:
                    written.extend(todo)
                    break
                existing.extend(todo[j] for j in failed)
                keep = [todo[j] for j in range(len(todo)) if j not in failed]
                if retry:
                    attempt += 1
                    if attempt > self.backoff.attempts:
                        tables = ",".join(sorted({puts[i].table for i in keep}))
                        raise StoreError(
                            f"DynamoDB transact_write_items on {tables}: {len(keep)} items "
                            f"still conflicting or throttled after {self.backoff.attempts} "
                            "retries")
                    self.backoff.wait(attempt)
                todo = keep
        return sorted(written), sorted(existing)

    def _transact_puts(self, puts: Sequence[ConditionalPut]) -> tuple[set[int], bool]:
        """One TransactWriteItems: (positions whose condition failed, whether to retry)."""
        items = [
            {"Put": {
                "TableName": self.name(p.table),
                "Item": to_item(p.item),
                "ConditionExpression": "attribute_not_exists(#k)",
                "ExpressionAttributeNames": {"#k": p.key_attribute},
            }}
            for p in puts
        ]
        tables = ",".join(sorted({p.table for p in puts}))
        try:
            self.client.transact_write_items(TransactItems=items)
        except ClientError as exc:
            code = error_code(exc)
            if code == "TransactionCanceledException":
                reasons = exc.response.get("CancellationReasons") or []
                failed = {j for j, r in enumerate(reasons)
                          if r.get("Code") == "ConditionalCheckFailed"}
                if failed or reasons:
                    return failed, not failed
            if code in ("TransactionCanceledException", "TransactionConflictException",
                        "ProvisionedThroughputExceededException", "ThrottlingException"):
                return set(), True
            raise StoreError(f"DynamoDB transact_write_items on {tables}: {code}: "
                             f"{exc.response.get('Error', {}).get('Message', '')}") from exc
        except BotoCoreError as exc:
            raise StoreError(f"DynamoDB transact_write_items on {tables}: {exc}") from exc
        return set(), False

    @staticmethod
    def values(**values: Any) -> dict[str, Any]:
        """``ExpressionAttributeValues`` from keyword arguments (``:name`` -> typed value)."""
        return {f":{k}": to_attr(v) for k, v in values.items()}
