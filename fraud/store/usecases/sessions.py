"""Sessions: created on login, looked up by id, expired by DynamoDB's TTL.

Table Sessions, key session_id; ``ExpirationTimestamp`` (seconds since the epoch) is the TTL
attribute. TTL deletion is lazy (DynamoDB removes expired items within days, not at once), so
every read also treats a session past its expiry as absent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fraud.errors import InputError
from fraud.store.dynamo import ConditionalPut, Dynamo

__all__ = ["DEFAULT_SESSION_TTL_S", "Session", "Sessions"]

DEFAULT_SESSION_TTL_S = 24 * 3600
_US = 1_000_000


@dataclass(frozen=True, slots=True)
class Session:
    """A login session. `expires_at_s` is in seconds (the TTL attribute's unit)."""

    session_id: str
    user_id: str
    device_id: str
    ip: str
    created_at_us: int
    expires_at_s: int

    def item(self) -> dict[str, Any]:
        return {"session_id": self.session_id, "user_id": self.user_id,
                "device_id": self.device_id, "ip": self.ip, "created_at": self.created_at_us,
                "ExpirationTimestamp": self.expires_at_s}

    def alive_at(self, now_us: int) -> bool:
        return self.created_at_us <= now_us < self.expires_at_s * _US

    def __repr__(self) -> str:  # the ip is personal data
        return f"Session({self.session_id!r}, user={self.user_id!r})"


def session_from_item(row: dict[str, Any]) -> Session:
    return Session(str(row["session_id"]), str(row.get("user_id", "")),
                   str(row.get("device_id", "")), str(row.get("ip", "")),
                   int(row["created_at"]), int(row["ExpirationTimestamp"]))


class Sessions:
    """The session access patterns over the Sessions table."""

    def __init__(self, dynamo: Dynamo) -> None:
        self.dynamo = dynamo

    def __repr__(self) -> str:
        return f"Sessions({self.dynamo!r})"

    def create(self, session_id: str, user_id: str, device_id: str, ip: str,
               created_at_us: int, ttl_s: int = DEFAULT_SESSION_TTL_S) -> bool:
        """Record a login; False when the session id already exists (a repeat)."""
        if ttl_s < 1:
            raise InputError(f"session {session_id!r}: ttl must be >= 1 s, got {ttl_s}")
        session = Session(session_id, user_id, device_id, ip, int(created_at_us),
                          int(created_at_us) // _US + int(ttl_s))
        written, _ = self.dynamo.put_once(
            [ConditionalPut("Sessions", session.item(), "session_id")])
        return bool(written)

    def get(self, session_id: str, now_us: int) -> Session | None:
        """The session if it exists and has not expired at `now_us`."""
        row = self.dynamo.get("Sessions", {"session_id": session_id})
        if row is None:
            return None
        session = session_from_item(row)
        return session if session.alive_at(now_us) else None

    def get_many(self, session_ids: Sequence[str], now_us: int) -> dict[str, Session]:
        """Live sessions among these ids, in BatchGetItem requests of 100."""
        ids = sorted({s for s in session_ids if s})
        rows = self.dynamo.batch_get({"Sessions": [{"session_id": s} for s in ids]})["Sessions"]
        found = (session_from_item(r) for r in rows)
        return {s.session_id: s for s in found if s.alive_at(now_us)}

    def end(self, session_id: str) -> None:
        """Log out: delete the session now rather than waiting for its TTL."""
        self.dynamo.call("delete_item", "Sessions", TableName=self.dynamo.name("Sessions"),
                         Key={"session_id": {"S": session_id}})
