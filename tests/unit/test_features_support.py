"""Supporting stores: point-in-time lookups and the features built from them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fraud.errors import InputError
from fraud.features import FeatureEngine, InMemoryStore, SupportContext, SupportStore
from fraud.features.reference import reference_features
from fraud.features.support import parse_time_us
from fraud.schema.batch import MISSING_TIME, TransactionBatch

T0 = 1_700_000_000_000_000
S = 1_000_000
DAY = 86_400 * S


def iso(us: int) -> str:
    return np.datetime_as_string(np.datetime64(us, "us"), unit="us") + "Z"


def write(directory: Path, name: str, rows: list[dict[str, object]]) -> None:
    (directory / name).write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture
def stores(tmp_path: Path) -> SupportStore:
    write(tmp_path, "users.jsonl", [
        {"user_id": "u1", "created_at": iso(T0 - 100 * DAY), "home_lat": 45.0, "home_lon": 7.0},
        {"user_id": "u2", "created_at": iso(T0 + DAY), "home_lat": 1.0, "home_lon": 2.0}])
    write(tmp_path, "sessions.jsonl", [
        {"session_id": "s1", "user_id": "u1", "device_id": "d1", "ip": "10.0.0.1",
         "created_at": iso(T0 - 60 * S), "expires_at": iso(T0 + 3600 * S)},
        {"session_id": "s2", "user_id": "u1", "device_id": "d9", "ip": "10.0.0.2",
         "created_at": iso(T0 - 10 * S), "expires_at": iso(T0 + 3600 * S)}])
    write(tmp_path, "devices.jsonl", [
        {"device_id": "d1", "user_id": "u1", "ts": iso(T0 - 50 * S), "lat": 45.0, "lon": 7.0,
         "status": "ok"},
        {"device_id": "d1", "user_id": "u1", "ts": iso(T0 - 40 * S), "lat": None, "lon": None,
         "status": "ok"},
        {"device_id": "d1", "user_id": "u1", "ts": iso(T0 + 50 * S), "lat": 0.0, "lon": 0.0,
         "status": "ok"}])
    write(tmp_path, "carts.jsonl", [
        {"user_id": "u1", "product_id": "p1", "quantity": 2, "price": 25.0,
         "added_at": iso(T0 - 100 * S)},
        {"user_id": "u1", "product_id": "p2", "quantity": 1, "price": 1000.0,
         "added_at": iso(T0 - 2 * DAY)},
        {"user_id": "u1", "product_id": "p3", "quantity": 1, "price": 7.0,
         "added_at": iso(T0 + 5 * S)}])
    write(tmp_path, "followers.jsonl", [
        {"user_id": "u1", "follower_id": "f1", "since": iso(T0 - DAY)},
        {"user_id": "u1", "follower_id": "f2", "since": iso(T0 + DAY)}])
    write(tmp_path, "posts.jsonl", [{"post_id": "p", "user_id": "u1", "ts": iso(T0 - S)}])
    return SupportStore.from_directory(tmp_path)


def tx_batch() -> TransactionBatch:
    return TransactionBatch.from_columns(
        transaction_id=["a", "b", "c"], timestamp_us=[T0, T0, T0], user_id=["u1", "u2", "u3"],
        terminal_id=["m", "m", "m"], amount=[100.0, 5.0, 5.0], device_id=["d1", "", "d1"],
        session_id=["s1", "s2", "nope"], lat=[45.0, np.nan, 46.0], lon=[8.0, np.nan, 7.0])


def test_lookups_use_only_data_known_at_the_transaction_time(stores: SupportStore) -> None:
    ctx = stores.lookup(tx_batch())
    assert ctx.session_created_us.tolist() == [T0 - 60 * S, T0 - 10 * S, MISSING_TIME]
    assert ctx.session_device_id.tolist() == ["d1", "d9", ""]
    assert ctx.cart_value[0] == 50.0  # p2 is older than a day, p3 is in the future
    assert np.isnan(ctx.cart_value[1:]).all()
    assert ctx.device_lat.tolist()[0] == 45.0 and ctx.device_seen_us[0] == T0 - 50 * S
    assert ctx.device_lat[2] == 45.0 and np.isnan(ctx.device_lat[1])
    assert ctx.account_created_us.tolist() == [T0 - 100 * DAY, MISSING_TIME, MISSING_TIME]
    # u2's account is created after the transaction and u3 is unknown: no footprint known.
    assert ctx.followers.tolist() == [1, -1, -1]
    assert ctx.posts.tolist() == [1, -1, -1]


def test_support_features_match_reference_and_neutral_values(stores: SupportStore) -> None:
    batch = tx_batch()
    ctx = stores.lookup(batch)
    engine = FeatureEngine()
    got = engine.extract(batch, InMemoryStore(), ctx)
    expected = reference_features(batch, engine.config, ctx)
    np.testing.assert_allclose(got.values, expected, rtol=1e-12)
    assert got.column("session_age_s").tolist() == [60.0, 10.0, -1.0]
    assert got.column("session_device_mismatch").tolist() == [0.0, 0.0, 0.0]
    assert got.column("cart_amount_ratio").tolist() == [2.0, -1.0, -1.0]
    assert got.column("account_age_days").tolist() == [100.0, -1.0, -1.0]
    assert 78 < got.column("device_distance_km")[0] < 80  # 1 degree of longitude at 45 N
    none = engine.extract(batch, InMemoryStore(), SupportContext.empty(3))
    assert none.column("social_posts").tolist() == [-1.0] * 3


def test_bad_support_files_name_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "users.jsonl").write_text('{"user_id": "u", "created_at": "2024-01-01"}\n{oops\n')
    with pytest.raises(InputError, match=r"users.jsonl:2: not valid JSON"):
        SupportStore.from_directory(tmp_path)
    (tmp_path / "users.jsonl").write_text('{"user_id": "u"}\n')
    with pytest.raises(InputError, match=r"users.jsonl:1: missing field 'created_at'"):
        SupportStore.from_directory(tmp_path)


@pytest.mark.parametrize(("value", "expected"), [
    ("2023-11-14T22:13:20Z", T0), ("2023-11-14T22:13:20.000000+00:00", T0),
    (T0 // S, T0), (T0 // 1000, T0), (T0, T0), ("1700000000", T0)])
def test_times_parse_in_every_documented_form(value: object, expected: int) -> None:
    assert parse_time_us(value, "here") == expected


def test_bad_time_is_an_input_error() -> None:
    with pytest.raises(InputError, match="here: not an ISO-8601"):
        parse_time_us("yesterday", "here")
