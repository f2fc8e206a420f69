"""The seed use cases over real HTTP: cart, leaderboard, sessions, devices, social feed,
seeding from a generator-like directory, and the support lookup the features read."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from fraud.errors import InputError
from fraud.schema.batch import MISSING_TIME, TransactionBatch
from fraud.store import Dynamo, RequestCounter
from fraud.store.seed import seed_directory
from fraud.store.support import read_support
from fraud.store.usecases import (
    DeviceData,
    Leaderboard,
    Reading,
    Sessions,
    ShoppingCart,
    Social,
)

pytestmark = pytest.mark.integration
S = 1_000_000
T0 = 1_700_000_000 * S


def test_cart_add_remove_get(dynamo: Dynamo) -> None:
    cart = ShoppingCart(dynamo)
    cart.add("u1", "p1", 2, 10.0, T0)
    cart.add("u1", "p2", 1, 5.5, T0 + 1)
    cart.add("u1", "p1", 1, 10.0, T0 + 2)
    lines = {line.product_id: line for line in cart.get("u1")}
    assert set(lines) == {"p1", "p2"} and lines["p1"].quantity == 3
    assert cart.value("u1") == (35.5, T0 + 2)
    assert cart.remove("u1", "p1", T0 + 3)
    assert not cart.remove("u1", "p1", T0 + 4)
    assert [line.product_id for line in cart.get("u1")] == ["p2"]
    assert cart.value("u1") == (5.5, T0 + 3)
    assert cart.get("nobody") == [] and cart.value("nobody") is None
    with pytest.raises(InputError):
        cart.add("u1", "p3", 0, 1.0, T0)


def test_leaderboard_top_n_keeps_equal_scores(dynamo: Dynamo) -> None:
    board = Leaderboard(dynamo)
    for player, score in [("a", 50), ("b", 70), ("c", 70), ("d", -3.5), ("e", 70)]:
        assert board.update("g1", player, score, T0)
    top = board.top("g1", 4)
    assert [(e.player_id, e.score) for e in top] == [("e", 70), ("c", 70), ("b", 70), ("a", 50)]
    assert board.update("g1", "d", 99, T0 + 10)
    assert not board.update("g1", "d", 1, T0 + 5)  # an older score does not win
    entry = board.get("g1", "d")
    assert entry is not None and (entry.score, entry.prev_score) == (99, -3.5)
    assert [e.player_id for e in board.top("g1", 1)] == ["d"]
    assert len(board.top("g1", 100)) == 5 and board.top("other", 3) == []


def test_a_repeated_score_update_keeps_the_jump(dynamo: Dynamo) -> None:
    board = Leaderboard(dynamo)
    assert board.update("g2", "p", 10, T0)
    assert board.update("g2", "p", 900, T0 + 1)
    assert not board.update("g2", "p", 900, T0 + 1)  # a retry of the same update
    entry = board.get("g2", "p")
    assert entry is not None and (entry.score, entry.prev_score) == (900, 10)
    assert board.update("g2", "p", 950, T0 + 1)  # another score at the same time still wins
    entry = board.get("g2", "p")
    assert entry is not None and (entry.score, entry.prev_score) == (950, 900)
    # Many players on one score: none is lost, and top N is exactly N of them.
    for i in range(30):
        board.update("g3", f"p{i:02d}", 7.0, T0)
    assert len(board.top("g3", 30)) == 30 and len(board.top("g3", 12)) == 12
    assert {e.player_id for e in board.top("g3", 30)} == {f"p{i:02d}" for i in range(30)}


def test_sessions_create_lookup_expire(dynamo: Dynamo) -> None:
    sessions = Sessions(dynamo)
    assert sessions.create("s1", "u1", "d1", "10.0.0.1", T0, ttl_s=3600)
    assert not sessions.create("s1", "u2", "d2", "10.0.0.2", T0)  # a repeat changes nothing
    got = sessions.get("s1", T0 + 60 * S)
    assert got is not None and got.user_id == "u1" and got.expires_at_s == T0 // S + 3600
    assert sessions.get("s1", T0 + 3601 * S) is None  # expired, even before TTL deletes it
    item = dynamo.get("Sessions", {"session_id": "s1"})
    assert item is not None and item["ExpirationTimestamp"] == T0 // S + 3600
    assert set(sessions.get_many(["s1", "s2", ""], T0 + 1)) == {"s1"}
    sessions.end("s1")
    assert sessions.get("s1", T0 + 1) is None


def test_device_readings_by_time_range(dynamo: Dynamo) -> None:
    devices = DeviceData(dynamo)
    readings = [Reading("d1", T0 + i * S, "u1", 40.0 + i, 2.0, "ok", {"battery": 90.0 - i})
                for i in range(40)]
    readings.append(Reading("d1", T0 + 100 * S, status="no-fix"))
    devices.append(readings)
    got = devices.query("d1", T0 + 10 * S, T0 + 19 * S)
    assert [r.ts_us for r in got] == [T0 + i * S for i in range(10, 20)]
    assert got[0].lat == 50.0 and got[0].values == {"battery": 80.0}
    latest = devices.latest("d1")
    assert latest is not None and latest.ts_us == T0 + 39 * S  # newest *located* reading
    devices.append([Reading("d1", T0, lat=1.0, lon=1.0)])  # late and old: latest stays
    latest = devices.latest("d1")
    assert latest is not None and latest.lat == 79.0
    assert devices.query("d1", 0, T0 - 1) == []


def test_social_follow_post_feed(dynamo: Dynamo) -> None:
    social = Social(dynamo)
    social.put_user("alice", T0, 48.0, 2.0)
    assert social.follow("bob", "alice", T0)
    assert social.follow("carol", "alice", T0)
    assert not social.follow("bob", "alice", T0 + 1)  # repeat: counted once
    for i, (post, user) in enumerate([("p1", "bob"), ("p2", "carol"), ("p3", "bob"),
                                      ("p4", "dave")]):
        assert social.post(post, user, T0 + i)
    assert not social.post("p1", "bob", T0 + 9)
    assert [p.post_id for p in social.feed("alice", 10)] == ["p3", "p2", "p1"]
    assert [p.post_id for p in social.feed("alice", 2)] == ["p3", "p2"]
    bob = social.user("bob")
    assert bob is not None and (bob.followers, bob.posts) == (1, 2)
    assert sorted(social.following("alice")) == ["bob", "carol"]
    assert social.unfollow("bob", "alice") and not social.unfollow("bob", "alice")
    bob = social.user("bob")
    assert bob is not None and bob.followers == 0
    assert [p.post_id for p in social.feed("alice", 10)] == ["p2"]


def _write(directory: Path, name: str, rows: list[dict[str, object]]) -> None:
    (directory / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def _seed_dir(tmp_path: Path) -> Path:
    d = tmp_path / "support"
    d.mkdir()
    _write(d, "users", [{"user_id": "u1", "created_at": "2023-01-01T00:00:00Z",
                         "home_lat": 48.8, "home_lon": 2.3},
                        {"user_id": "u2", "created_at": "2023-06-01T00:00:00Z",
                         "home_lat": None, "home_lon": None}])
    _write(d, "sessions", [{"session_id": "s1", "user_id": "u1", "device_id": "d1",
                            "ip": "10.0.0.1", "created_at": "2023-11-14T22:00:00Z",
                            "expires_at": "2023-11-15T22:00:00Z"}])
    _write(d, "devices", [{"device_id": "d1", "user_id": "u1", "ts": "2023-11-14T21:00:00Z",
                           "lat": 48.85, "lon": 2.35, "status": "ok"},
                          {"device_id": "d1", "user_id": "u1", "ts": "2023-11-14T21:30:00Z",
                           "lat": None, "lon": None, "status": "no-fix"}])
    _write(d, "carts", [{"user_id": "u1", "product_id": "p1", "quantity": 2, "price": 15.0,
                         "added_at": "2023-11-14T21:50:00Z"}])
    _write(d, "followers", [{"user_id": "u1", "follower_id": "u2",
                             "since": "2023-07-01T00:00:00Z"}])
    _write(d, "posts", [{"post_id": "p1", "user_id": "u1", "ts": "2023-08-01T00:00:00Z"},
                        {"post_id": "p2", "user_id": "u1", "ts": "2023-09-01T00:00:00Z"}])
    _write(d, "scores", [{"game_id": "g", "player_id": "u1", "score": 10,
                          "ts": "2023-11-01T00:00:00Z"},
                         {"game_id": "g", "player_id": "u1", "score": 500,
                          "ts": "2023-11-02T00:00:00Z"},
                         {"game_id": "g", "player_id": "u2", "score": 500,
                          "ts": "2023-11-02T00:00:00Z"}])
    return d


def test_seeding_loads_every_use_case_and_is_repeatable(
    dynamo: Dynamo, counter: RequestCounter, tmp_path: Path
) -> None:
    directory = _seed_dir(tmp_path)
    report = seed_directory(dynamo, directory)
    assert report.rows == {"users": 2, "sessions": 1, "devices": 2, "carts": 1,
                           "followers": 1, "posts": 2, "scores": 3}
    assert report.requests == counter.total("dynamodb") <= 8
    seed_directory(dynamo, directory)  # twice: same content, counters not doubled
    u1 = Social(dynamo).user("u1")
    assert u1 is not None and (u1.followers, u1.posts) == (1, 2)
    assert ShoppingCart(dynamo).value("u1") == (30.0, 1699998600 * 1_000_000)
    entry = Leaderboard(dynamo).get("g", "u1")
    assert entry is not None and (entry.score, entry.prev_score) == (500, 10)
    assert {e.player_id for e in Leaderboard(dynamo).top("g", 2)} == {"u1", "u2"}
    assert Sessions(dynamo).get("s1", 1700000000 * 1_000_000) is not None
    assert [p.post_id for p in Social(dynamo).feed("u2")] == ["p2", "p1"]

    # What the supporting features read, in one batched pass.
    batch = TransactionBatch.from_columns(
        transaction_id=["t1", "t2"], timestamp_us=[1700002800 * S, 1600000000 * S],
        user_id=["u1", "u1"], terminal_id=["m", "m"], amount=[60.0, 1.0],
        session_id=["s1", "s1"], device_id=["d1", "d1"])
    counter.reset()
    ctx = read_support(dynamo, batch)
    assert counter.total() == 1
    assert ctx.session_device_id.tolist() == ["d1", ""]
    assert ctx.cart_value[0] == 30.0 and math.isnan(ctx.cart_value[1])
    assert ctx.device_lat[0] == 48.85 and ctx.followers.tolist() == [1, 1]
    assert ctx.account_created_us[1] == MISSING_TIME  # account created after that transaction
    assert np.all(ctx.posts == 2)


def test_seeding_errors_name_file_line_and_field(dynamo: Dynamo, tmp_path: Path) -> None:
    d = tmp_path / "bad"
    d.mkdir()
    with pytest.raises(InputError, match="none of the seed files"):
        seed_directory(dynamo, d)
    _write(d, "users", [{"user_id": "u1", "created_at": "2023-01-01T00:00:00Z"},
                        {"user_id": "u2"}])
    with pytest.raises(InputError, match=r"users.jsonl:2: missing field 'created_at'"):
        seed_directory(dynamo, d)
    (d / "users.jsonl").write_text('{"user_id": "u1", "created_at": "yesterday"}\n')
    with pytest.raises(InputError, match=r"users.jsonl:1: created_at"):
        seed_directory(dynamo, d)
