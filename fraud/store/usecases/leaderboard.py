"""Leaderboards: a player's score per game and the top N of a game.

Table Leaderboard, key (game_id, player_id): one item per player, so a score update is one
conditional UpdateItem and a player can never appear twice. The index ``by_score``
(game_id, score_key) orders a game's players: ``score_key`` is the score encoded so that
string order is numeric order, with ``#player_id`` appended, so players with equal scores are
distinct index entries (never lost) in a stable order. ``prev_score`` keeps the score before
the last update, for the "sudden score jump" feature.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Any

from fraud.errors import InputError
from fraud.store.dynamo import Dynamo, error_code

__all__ = ["Leaderboard", "ScoreEntry", "score_key"]


def score_key(score: float, player_id: str) -> str:
    """A string that sorts like `score` (then by player id).

    >>> sorted([score_key(2, "a"), score_key(-1.5, "b"), score_key(10, "c")])[-1][-2:]
    '#c'
    """
    if not math.isfinite(score):
        raise InputError(f"score must be a finite number, got {score!r}")
    (bits,) = struct.unpack(">Q", struct.pack(">d", float(score) + 0.0))
    # IEEE-754 order trick: flip every bit of negatives, only the sign bit of the rest.
    bits = bits ^ 0xFFFFFFFFFFFFFFFF if bits >> 63 else bits | (1 << 63)
    return f"{bits:016x}#{player_id}"


@dataclass(frozen=True, slots=True)
class ScoreEntry:
    """A player's current score in a game."""

    game_id: str
    player_id: str
    score: float
    ts_us: int
    prev_score: float | None = None


class Leaderboard:
    """The leaderboard access patterns over the Leaderboard table."""

    def __init__(self, dynamo: Dynamo) -> None:
        self.dynamo = dynamo

    def __repr__(self) -> str:
        return f"Leaderboard({self.dynamo!r})"

    def update(self, game_id: str, player_id: str, score: float, ts_us: int) -> bool:
        """Set a player's score as of `ts_us`; False (no change) if a newer score is stored.

        A repeat (the same score at the same time, e.g. a retried request whose first try
        landed) is also a no-op returning False: applied again it would overwrite
        ``prev_score`` with the score itself and hide the jump the features look for.
        """
        try:
            self.dynamo.call(
                "update_item", "Leaderboard", TableName=self.dynamo.name("Leaderboard"),
                Key={"game_id": {"S": game_id}, "player_id": {"S": player_id}},
                UpdateExpression=("SET prev_score = if_not_exists(score, :s), score = :s, "
                                  "score_key = :k, ts = :t"),
                ConditionExpression=("attribute_not_exists(ts) OR ts < :t "
                                     "OR (ts = :t AND score <> :s)"),
                ExpressionAttributeValues=Dynamo.values(
                    s=float(score), k=score_key(score, player_id), t=int(ts_us)),
            )
        except Exception as exc:
            if error_code(exc.__cause__) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def get(self, game_id: str, player_id: str) -> ScoreEntry | None:
        row = self.dynamo.get("Leaderboard", {"game_id": game_id, "player_id": player_id})
        return None if row is None else _entry(row)

    def top(self, game_id: str, n: int = 10) -> list[ScoreEntry]:
        """The `n` best players of a game, highest score first (ties by player id, descending)."""
        if n < 1:
            raise InputError(f"top: n must be >= 1, got {n}")
        rows = self.dynamo.query_all(
            "Leaderboard", IndexName="by_score", KeyConditionExpression="game_id = :g",
            ExpressionAttributeValues=Dynamo.values(g=game_id), ScanIndexForward=False, Limit=n,
        )
        return [_entry(r) for r in rows]


def _entry(row: dict[str, Any]) -> ScoreEntry:
    prev = row.get("prev_score")
    return ScoreEntry(str(row["game_id"]), str(row["player_id"]), float(row["score"]),
                      int(row["ts"]), None if prev is None else float(prev))
