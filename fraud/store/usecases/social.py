"""Accounts and the social feed: users, follow/unfollow, posts, a user's feed.

Tables: Users (user_id: account creation, home location, and ``followers`` / ``posts``
counters), Followers (user_id = the followed, follower_id; index ``by_follower`` answers
"whom does X follow"), Posts (post_id; index ``by_user`` (user_id, ts) gives a user's posts
newest first). Follow, unfollow and post change the relation item and the counter in one
transaction, conditioned on the relation's (non-)existence, so a repeat changes nothing and
the counters stay exact; the fraud features read the counters with one BatchGetItem key.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from fraud.errors import InputError
from fraud.store.dynamo import Dynamo, error_code
from fraud.store.marshal import to_item

__all__ = ["Post", "Social", "UserAccount"]


@dataclass(frozen=True, slots=True)
class UserAccount:
    """An account as the Users table holds it."""

    user_id: str
    created_at_us: int
    home_lat: float = math.nan
    home_lon: float = math.nan
    followers: int = 0
    posts: int = 0


@dataclass(frozen=True, slots=True)
class Post:
    post_id: str
    user_id: str
    ts_us: int


def _account(row: dict[str, Any]) -> UserAccount:
    return UserAccount(str(row["user_id"]), int(row.get("created_at", -1)),
                       float(row.get("home_lat", math.nan)), float(row.get("home_lon", math.nan)),
                       int(row.get("followers", 0)), int(row.get("posts", 0)))


class Social:
    """Users, the follower graph and posts."""

    def __init__(self, dynamo: Dynamo) -> None:
        self.dynamo = dynamo

    def __repr__(self) -> str:
        return f"Social({self.dynamo!r})"

    # -- accounts --------------------------------------------------------------------------

    def put_user(self, user_id: str, created_at_us: int, home_lat: float = math.nan,
                 home_lon: float = math.nan) -> None:
        """Create or update an account's profile (its counters are left as they are)."""
        values: dict[str, Any] = {"c": int(created_at_us)}
        sets = ["created_at = :c"]
        if math.isfinite(home_lat) and math.isfinite(home_lon):
            values.update(la=float(home_lat), lo=float(home_lon))
            sets += ["home_lat = :la", "home_lon = :lo"]
        self.dynamo.call("update_item", "Users", TableName=self.dynamo.name("Users"),
                         Key={"user_id": {"S": user_id}}, UpdateExpression="SET " + ", ".join(sets),
                         ExpressionAttributeValues=Dynamo.values(**values))

    def user(self, user_id: str) -> UserAccount | None:
        row = self.dynamo.get("Users", {"user_id": user_id})
        return None if row is None else _account(row)

    # -- graph -----------------------------------------------------------------------------

    def _counter(self, user_id: str, name: str, delta: int) -> dict[str, Any]:
        return {"Update": {"TableName": self.dynamo.name("Users"),
                           "Key": to_item({"user_id": user_id}),
                           "UpdateExpression": "ADD #c :d",
                           "ExpressionAttributeNames": {"#c": name},
                           "ExpressionAttributeValues": {":d": {"N": str(delta)}}}}

    def _transact(self, items: list[dict[str, Any]], table: str) -> bool:
        try:
            self.dynamo.call("transact_write_items", table, TransactItems=items)
        except Exception as exc:
            cause = exc.__cause__
            reasons = getattr(cause, "response", {}).get("CancellationReasons") or []
            if error_code(cause) == "TransactionCanceledException" and any(
                    r.get("Code") == "ConditionalCheckFailed" for r in reasons):
                return False
            raise
        return True

    def follow(self, user_id: str, follower_id: str, since_us: int) -> bool:
        """`follower_id` follows `user_id`; False if already following."""
        if user_id == follower_id:
            raise InputError(f"user {user_id!r} cannot follow themselves")
        put = {"Put": {"TableName": self.dynamo.name("Followers"),
                       "Item": to_item({"user_id": user_id, "follower_id": follower_id,
                                        "since": int(since_us)}),
                       "ConditionExpression": "attribute_not_exists(follower_id)"}}
        return self._transact([put, self._counter(user_id, "followers", 1)], "Followers")

    def unfollow(self, user_id: str, follower_id: str) -> bool:
        """Undo a follow; False if not following."""
        delete = {"Delete": {"TableName": self.dynamo.name("Followers"),
                             "Key": to_item({"user_id": user_id, "follower_id": follower_id}),
                             "ConditionExpression": "attribute_exists(follower_id)"}}
        return self._transact([delete, self._counter(user_id, "followers", -1)], "Followers")

    def followers(self, user_id: str) -> list[str]:
        rows = self.dynamo.query_all("Followers", KeyConditionExpression="user_id = :u",
                                     ExpressionAttributeValues=Dynamo.values(u=user_id))
        return [str(r["follower_id"]) for r in rows]

    def following(self, follower_id: str) -> list[str]:
        rows = self.dynamo.query_all("Followers", IndexName="by_follower",
                                     KeyConditionExpression="follower_id = :f",
                                     ExpressionAttributeValues=Dynamo.values(f=follower_id))
        return [str(r["user_id"]) for r in rows]

    # -- posts and feed --------------------------------------------------------------------

    def post(self, post_id: str, user_id: str, ts_us: int) -> bool:
        """Publish a post; False if that post id exists already."""
        put = {"Put": {"TableName": self.dynamo.name("Posts"),
                       "Item": to_item({"post_id": post_id, "user_id": user_id,
                                        "ts": int(ts_us)}),
                       "ConditionExpression": "attribute_not_exists(post_id)"}}
        return self._transact([put, self._counter(user_id, "posts", 1)], "Posts")

    def posts_of(self, user_id: str, limit: int = 20) -> list[Post]:
        """A user's posts, newest first."""
        rows = self.dynamo.query_all("Posts", IndexName="by_user",
                                     KeyConditionExpression="user_id = :u",
                                     ExpressionAttributeValues=Dynamo.values(u=user_id),
                                     ScanIndexForward=False, Limit=limit)
        return [Post(str(r["post_id"]), str(r["user_id"]), int(r["ts"])) for r in rows]

    def feed(self, user_id: str, limit: int = 20) -> list[Post]:
        """The newest `limit` posts of the people `user_id` follows, newest first.

        Fan-out on read: one index query per followed user, each limited to `limit`.
        """
        if limit < 1:
            raise InputError(f"feed: limit must be >= 1, got {limit}")
        candidates = [p for u in self.following(user_id) for p in self.posts_of(u, limit)]
        # Sorted whole rather than merged: the index orders posts of equal time arbitrarily,
        # and the feed's order must not depend on that.
        return sorted(candidates, key=lambda p: (-p.ts_us, p.post_id))[:limit]
