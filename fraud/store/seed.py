"""Loading the supporting stores from the generator's JSON Lines directory, in batches.

Reads ``users``, ``sessions``, ``devices``, ``carts``, ``followers``, ``posts`` and ``scores``
``.jsonl`` (each optional; at least one must be there), derives what the use-case APIs keep in
step at run time (cart summaries, device latest fixes, follower/post counters, each player's
latest score and the one before it) and writes everything with BatchWriteItem, 25 items per
request. Items are computed absolutely, not incremented, so seeding twice gives the same
tables. Times are ISO-8601 (or epoch numbers) in the files, epoch microseconds in the tables.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fraud.errors import InputError
from fraud.features.support import parse_time_us
from fraud.logs import get_logger
from fraud.schema.records import iter_records, require
from fraud.store.dynamo import Dynamo
from fraud.store.usecases.cart import SUMMARY_PRODUCT
from fraud.store.usecases.devices import LATEST_TS
from fraud.store.usecases.leaderboard import score_key

__all__ = ["SEED_FILES", "SeedReport", "seed_directory"]

SEED_FILES = ("users", "sessions", "devices", "carts", "followers", "posts", "scores")
_US = 1_000_000
_log = get_logger(__name__)


@dataclass(slots=True)
class SeedReport:
    """Rows read per file, items written per table, and requests sent."""

    rows: dict[str, int] = field(default_factory=dict)
    items: dict[str, int] = field(default_factory=dict)
    requests: int = 0


def _float(row: dict[str, Any], name: str, where: str) -> float:
    value = row.get(name)
    if value is None or value == "":
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InputError(f"{where}: {name}: expected a number, got {str(value)[:30]!r}") from None


def _time(row: dict[str, Any], name: str, where: str) -> int:
    return parse_time_us(require(row, name, where), f"{where}: {name}")


def _located(item: dict[str, Any], lat: float, lon: float, prefix: str = "") -> None:
    if math.isfinite(lat) and math.isfinite(lon):
        item[prefix + "lat"], item[prefix + "lon"] = lat, lon


class _Seed:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.report = SeedReport()
        self.tables: dict[str, dict[tuple[Any, ...], dict[str, Any]]] = {}

    def rows(self, name: str) -> Iterator[tuple[str, dict[str, Any]]]:
        path = self.dir / f"{name}.jsonl"
        if not path.exists():
            return
        count = 0
        for where, row in iter_records(path):
            count += 1
            yield where, row
        self.report.rows[name] = count

    def put(self, table: str, key: tuple[Any, ...], item: dict[str, Any]) -> None:
        self.tables.setdefault(table, {})[key] = item

    def merge(self, table: str, key: tuple[Any, ...], initial: dict[str, Any]
              ) -> dict[str, Any]:
        """The item at `key`, created from `initial` when absent (for merging several files)."""
        return self.tables.setdefault(table, {}).setdefault(key, initial)


def seed_directory(dynamo: Dynamo, directory: Path) -> SeedReport:
    """Load every supporting-store file found in `directory` into its table(s)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise InputError(f"{directory}: not a directory")
    present = [n for n in SEED_FILES if (directory / f"{n}.jsonl").exists()]
    if not present:
        names = ", ".join(f"{n}.jsonl" for n in SEED_FILES)
        raise InputError(f"{directory}: none of the seed files found (expected some of {names})")
    seed = _Seed(directory)
    _users(seed)
    _sessions(seed)
    _devices(seed)
    _carts(seed)
    _social(seed)
    _scores(seed)
    for table, items in seed.tables.items():
        seed.report.requests += dynamo.batch_write(puts={table: list(items.values())})
        seed.report.items[table] = len(items)
        _log.info("seed.table", table=table, items=len(items))
    return seed.report


def _users(seed: _Seed) -> None:
    for where, row in seed.rows("users"):
        user = str(require(row, "user_id", where))
        item = seed.merge("Users", (user,), {"user_id": user})
        item["created_at"] = _time(row, "created_at", where)
        _located(item, _float(row, "home_lat", where), _float(row, "home_lon", where), "home_")


def _sessions(seed: _Seed) -> None:
    for where, row in seed.rows("sessions"):
        sid = str(require(row, "session_id", where))
        created = _time(row, "created_at", where)
        expires = _time(row, "expires_at", where)
        if expires < created:
            raise InputError(f"{where}: expires_at is before created_at")
        seed.put("Sessions", (sid,), {
            "session_id": sid, "user_id": str(row.get("user_id") or ""),
            "device_id": str(row.get("device_id") or ""), "ip": str(row.get("ip") or ""),
            "created_at": created, "ExpirationTimestamp": -(-expires // _US),
        })


def _devices(seed: _Seed) -> None:
    latest: dict[str, dict[str, Any]] = {}
    for where, row in seed.rows("devices"):
        dev = str(require(row, "device_id", where))
        ts = _time(row, "ts", where)
        if ts < 0:
            raise InputError(f"{where}: ts is before 1970")
        item: dict[str, Any] = {"device_id": dev, "ts": ts}
        if row.get("user_id"):
            item["user_id"] = str(row["user_id"])
        if row.get("status"):
            item["status"] = str(row["status"])
        _located(item, _float(row, "lat", where), _float(row, "lon", where))
        seed.put("DeviceData", (dev, ts), item)
        if "lat" in item and (dev not in latest or ts > latest[dev]["seen_at"]):
            latest[dev] = {**item, "ts": LATEST_TS, "seen_at": ts}
    for dev, item in latest.items():
        seed.put("DeviceData", (dev, LATEST_TS), item)


def _carts(seed: _Seed) -> None:
    for where, row in seed.rows("carts"):
        user = str(require(row, "user_id", where))
        product = str(require(row, "product_id", where))
        if product.startswith("#"):
            raise InputError(f"{where}: product_id may not start with '#'")
        quantity = _float(row, "quantity", where)
        price = _float(row, "price", where)
        if not (quantity >= 1 and quantity.is_integer() and price >= 0):
            raise InputError(f"{where}: quantity must be a whole number >= 1 and price >= 0")
        added = _time(row, "added_at", where)
        line = seed.merge("ShoppingCart", (user, product), {"quantity": 0})
        line.update(user_id=user, product_id=product, quantity=line["quantity"] + int(quantity))
        if added >= line.get("added_at", added):
            line.update(price=price, added_at=added)
    summaries: dict[str, dict[str, Any]] = {}
    for (user, _), line in seed.tables.get("ShoppingCart", {}).items():
        s = summaries.setdefault(user, {"user_id": user, "product_id": SUMMARY_PRODUCT,
                                        "cart_value": 0.0, "updated_at": line["added_at"]})
        s["cart_value"] += line["quantity"] * line["price"]
        s["updated_at"] = max(s["updated_at"], line["added_at"])
    for user, s in summaries.items():
        seed.put("ShoppingCart", (user, SUMMARY_PRODUCT), s)


def _social(seed: _Seed) -> None:
    followers: Counter[str] = Counter()
    posts: Counter[str] = Counter()
    for where, row in seed.rows("followers"):
        user = str(require(row, "user_id", where))
        follower = str(require(row, "follower_id", where))
        key = (user, follower)
        if key not in seed.tables.get("Followers", {}):
            followers[user] += 1
        seed.put("Followers", key, {"user_id": user, "follower_id": follower,
                                    "since": _time(row, "since", where)})
    for where, row in seed.rows("posts"):
        post = str(require(row, "post_id", where))
        user = str(require(row, "user_id", where))
        previous = seed.tables.get("Posts", {}).get((post,))
        if previous is not None:
            posts[previous["user_id"]] -= 1
        posts[user] += 1
        seed.put("Posts", (post,), {"post_id": post, "user_id": user,
                                    "ts": _time(row, "ts", where)})
    for user in set(followers) | set(posts):
        item = seed.merge("Users", (user,), {"user_id": user})
        item["followers"] = followers[user]
        item["posts"] = posts[user]


def _scores(seed: _Seed) -> None:
    history: dict[tuple[str, str], list[tuple[int, float]]] = {}
    for where, row in seed.rows("scores"):
        game = str(require(row, "game_id", where))
        player = str(require(row, "player_id", where))
        score = _float(row, "score", where)
        if not math.isfinite(score):
            raise InputError(f"{where}: score: expected a number")
        history.setdefault((game, player), []).append((_time(row, "ts", where), score))
    for (game, player), events in history.items():
        events.sort()
        ts, score = events[-1]
        prev = events[-2][1] if len(events) > 1 else score
        seed.put("Leaderboard", (game, player), {
            "game_id": game, "player_id": player, "score": score,
            "score_key": score_key(score, player), "ts": ts, "prev_score": prev,
        })
