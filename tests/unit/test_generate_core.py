"""The generator: determinism, the fraud scenarios' traces, and consistent supporting stores."""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.csv as pacsv
import pytest

from fraud.errors import InputError
from fraud.generate import (
    SCENARIOS,
    STORE_FIELDS,
    TRANSACTION_FIELDS,
    Dataset,
    GenerateConfig,
    default_stores_dir,
    generate,
    write_dataset,
)
from fraud.tabular import TableWriter

CFG = GenerateConfig(users=400, terminals=120, days=21, seed=3, fraud_rate=0.03)
FRAUD_KINDS = [s for s in SCENARIOS if s]


def _us(text: str) -> int:
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    assert value.tzinfo is not None and text.endswith("Z")
    return (value - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)


@pytest.fixture(scope="module")
def ds() -> Dataset:
    return generate(CFG)


@pytest.fixture(scope="module")
def tx(ds: Dataset) -> list[dict[str, Any]]:
    cols = ds.transactions
    return [dict(zip(cols, row, strict=True)) for row in zip(*cols.values(), strict=True)]


def _by(rows: list[dict[str, Any]], key: str) -> dict[Any, list[dict[str, Any]]]:
    out: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        out[row[key]].append(row)
    return out


def _store(ds: Dataset, name: str) -> list[dict[str, Any]]:
    cols = ds.stores[name]
    assert tuple(cols) == STORE_FIELDS[name]
    return [dict(zip(cols, row, strict=True)) for row in zip(*cols.values(), strict=True)]


def _km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = np.radians(lat1), np.radians(lat2)
    a = (np.sin((p2 - p1) / 2) ** 2
         + np.cos(p1) * np.cos(p2) * np.sin(np.radians(lon2 - lon1) / 2) ** 2)
    return float(6371 * 2 * np.arcsin(np.sqrt(a)))


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    small = GenerateConfig(users=150, terminals=40, days=7, seed=11, fraud_rate=0.03)
    paths = []
    for name in ("a", "b"):
        paths.append(write_dataset(generate(small), tmp_path / name / "tx.csv"))
    other = write_dataset(generate(GenerateConfig(users=150, terminals=40, days=7, seed=12,
                                                  fraud_rate=0.03)), tmp_path / "c" / "tx.csv")
    assert len(paths[0]) == 1 + len(STORE_FIELDS)
    for first, second in zip(paths[0], paths[1], strict=True):
        assert first.read_bytes() == second.read_bytes(), first.name
    assert paths[0][0].read_bytes() != other[0].read_bytes()


def test_transaction_columns_and_timestamps(ds: Dataset) -> None:
    cols = ds.transactions
    assert tuple(cols) == TRANSACTION_FIELDS
    ts = [_us(t) for t in cols["timestamp"]]
    assert ts == ds.timestamp_us.tolist()
    assert ts == sorted(ts)
    start = _us("2024-01-01T00:00:00Z")
    assert start <= ts[0] and ts[-1] < start + 21 * 86_400_000_000
    assert len(set(cols["transaction_id"])) == len(ts)
    assert set(cols["channel"]) == {"pos", "web", "app"}
    assert np.array_equal(np.round(cols["amount"], 2), cols["amount"])
    assert cols["amount"].min() > 0


def test_every_scenario_is_present_labelled_and_delayed(ds: Dataset) -> None:
    cols = ds.transactions
    fraud = cols["is_fraud"] == 1
    assert set(cols["scenario"][fraud]) == set(FRAUD_KINDS)
    assert set(cols["scenario"][~fraud]) == {""}
    assert set(cols["label_time"][~fraud]) == {""}
    label = np.array([_us(t) for t in cols["label_time"][fraud]])
    delay_days = (label - ds.timestamp_us[fraud]) / 86_400_000_000
    assert delay_days.min() >= 1.0 and delay_days.max() <= 120.0
    assert 5 < np.median(delay_days) < 30


def test_default_size_has_a_realistic_fraud_rate() -> None:
    summary = generate(GenerateConfig(seed=1)).summary
    total = sum(summary.frauds.values())
    assert 0.005 <= total / summary.rows <= 0.012
    assert all(count > 20 for count in summary.frauds.values()), summary.frauds
    assert 40_000 < summary.rows < 150_000


def test_fewer_transactions_at_night_and_legit_amounts_lognormal(ds: Dataset,
                                                                 tx: list[dict[str, Any]]
                                                                 ) -> None:
    legit = ds.transactions["is_fraud"] == 0
    hours = (ds.timestamp_us[legit] // 3_600_000_000 + 24 - 5) % 24  # roughly US local time
    per_hour = np.bincount(hours, minlength=24)
    assert per_hour[2:5].sum() * 4 < per_hour[12:15].sum()
    amounts = ds.transactions["amount"][legit]
    assert 15 < np.median(amounts) < 60
    assert np.mean(amounts) > np.median(amounts)  # right-skewed


def test_sessions_devices_and_users_precede_their_transactions(
        ds: Dataset, tx: list[dict[str, Any]]) -> None:
    sessions = {s["session_id"]: s for s in _store(ds, "sessions")}
    registered: dict[object, int] = {}
    owner: dict[object, object] = {}
    for reading in _store(ds, "devices"):
        t = _us(str(reading["ts"]))
        registered[reading["device_id"]] = min(registered.get(reading["device_id"], t), t)
        owner[reading["device_id"]] = reading["user_id"]
    users = {u["user_id"]: _us(str(u["created_at"])) for u in _store(ds, "users")}
    with_session = 0
    for row in tx:
        t = _us(str(row["timestamp"]))
        assert users[row["user_id"]] < t
        if row["channel"] == "pos":
            assert row["session_id"] == "" and row["device_id"] == ""
            continue
        with_session += 1
        session = sessions[row["session_id"]]
        assert session["device_id"] == row["device_id"]
        assert session["user_id"] == row["user_id"]
        assert session["ip"] == row["ip"]
        assert _us(str(session["created_at"])) < t <= _us(str(session["expires_at"]))
        assert registered[row["device_id"]] < _us(str(session["created_at"]))
        assert owner[row["device_id"]] == row["user_id"]
    assert with_session > 100


def test_account_takeover_is_new_device_far_away_fresh_session(
        ds: Dataset, tx: list[dict[str, Any]]) -> None:
    users = {u["user_id"]: u for u in _store(ds, "users")}
    sessions = {s["session_id"]: s for s in _store(ds, "sessions")}
    first_seen: dict[object, int] = {}
    for row in tx:
        if row["device_id"]:
            first_seen.setdefault(row["device_id"], _us(str(row["timestamp"])))
    ato = [r for r in tx if r["scenario"] == "account_takeover"]
    assert ato
    for row in ato:
        home = users[row["user_id"]]
        assert _km(float(home["home_lat"]), float(home["home_lon"]),
                   float(row["lat"]), float(row["lon"])) > 50
        first = first_seen[row["device_id"]]
        assert _us(str(row["timestamp"])) - first < 6 * 3_600_000_000
        created = _us(str(sessions[row["session_id"]]["created_at"]))
        assert first - created <= 10 * 60_000_000
        # The device never served this customer before the takeover.
        earlier = [r for r in tx if r["user_id"] == row["user_id"]
                   and r["device_id"] == row["device_id"] and r["scenario"] == ""]
        assert not earlier


def test_card_testing_bursts_small_amounts(tx: list[dict[str, Any]]) -> None:
    rows = [r for r in tx if r["scenario"] == "card_testing"]
    assert rows and all(0.5 <= float(r["amount"]) <= 5.0 for r in rows)
    per_session = _by(rows, "session_id")
    assert max(len(v) for v in per_session.values()) >= 5


def test_compromised_card_spending_jumps(tx: list[dict[str, Any]]) -> None:
    ratios = []
    for rows in _by(tx, "user_id").values():
        stolen = [float(r["amount"]) for r in rows if r["scenario"] == "compromised_card"]
        normal = [float(r["amount"]) for r in rows if r["scenario"] == ""]
        if stolen and normal:
            ratios.append(np.median(stolen) / np.median(normal))
    assert ratios and np.median(ratios) > 2


def test_compromised_terminal_has_many_frauds_over_days(tx: list[dict[str, Any]]) -> None:
    rows = [r for r in tx if r["scenario"] == "compromised_terminal"]
    per_terminal = _by(rows, "terminal_id")
    busiest = max(per_terminal.values(), key=len)
    times = [_us(str(r["timestamp"])) for r in busiest]
    assert len(busiest) >= 5
    assert max(times) - min(times) > 3 * 86_400_000_000


def test_fraudster_accounts_are_young_and_socially_empty(ds: Dataset,
                                                         tx: list[dict[str, Any]]) -> None:
    users = {u["user_id"]: _us(str(u["created_at"])) for u in _store(ds, "users")}
    followed = _by(_store(ds, "followers"), "user_id")
    posted = _by(_store(ds, "posts"), "user_id")
    start = _us("2024-01-01T00:00:00Z")
    young = {r["user_id"] for r in tx if r["scenario"] == "high_amount"
             and users[r["user_id"]] > start}
    assert young
    for user in young:
        assert len(followed.get(user, [])) <= 1 and not posted.get(user)
    amounts = [float(r["amount"]) for r in tx if r["scenario"] == "high_amount"]
    assert min(amounts) >= 150


def test_web_carts_add_up_to_about_the_amount(ds: Dataset, tx: list[dict[str, Any]]) -> None:
    carts = _store(ds, "carts")
    assert len({(c["user_id"], c["product_id"]) for c in carts}) == len(carts)
    cart_total: dict[object, float] = defaultdict(float)
    for c in carts:
        cart_total[c["user_id"]] += float(c["price"]) * int(c["quantity"])
    web_total: dict[object, float] = defaultdict(float)
    fraud_users = {r["user_id"] for r in tx if r["is_fraud"] == 1}
    for r in tx:
        if r["channel"] == "web":
            web_total[r["user_id"]] += float(r["amount"])
    clean = [u for u in web_total if u not in fraud_users]
    ratio = sum(cart_total[u] for u in clean) / sum(web_total[u] for u in clean)
    assert 0.9 < ratio < 1.0


def test_social_and_game_stores_resolve(ds: Dataset) -> None:
    users = {u["user_id"]: _us(str(u["created_at"])) for u in _store(ds, "users")}
    follows = _store(ds, "followers")
    assert follows
    for f in follows:
        assert f["user_id"] != f["follower_id"]
        assert _us(str(f["since"])) >= max(users[f["user_id"]], users[f["follower_id"]])
    assert len({(f["user_id"], f["follower_id"]) for f in follows}) == len(follows)
    for p in _store(ds, "posts"):
        assert _us(str(p["ts"])) >= users[p["user_id"]]
    scores = _store(ds, "scores")
    assert scores and all(s["player_id"] in users for s in scores)
    games = set(ds.transactions["game_id"]) - {""}
    assert games and games <= {s["game_id"] for s in scores}


def test_written_files_round_trip(tmp_path: Path, ds: Dataset) -> None:
    files = write_dataset(ds, tmp_path / "out.csv")
    assert files[0] == tmp_path / "out.csv"
    table = pacsv.read_csv(files[0], convert_options=pacsv.ConvertOptions(
        strings_can_be_null=False))
    assert tuple(table.column_names) == TRANSACTION_FIELDS
    assert table.num_rows == ds.summary.rows
    stores_dir = tmp_path / "out.stores"
    for name, fields in STORE_FIELDS.items():
        lines = (stores_dir / f"{name}.jsonl").read_text().splitlines()
        assert len(lines) == len(ds.stores[name][fields[0]])
        assert tuple(json.loads(lines[0])) == fields


def test_fast_jsonl_equals_table_writer_bytes(tmp_path: Path) -> None:
    small = generate(GenerateConfig(users=60, terminals=20, days=3, seed=5, fraud_rate=0.05))
    fast = write_dataset(small, tmp_path / "fast.jsonl", tmp_path / "stores")[0]
    with TableWriter(tmp_path / "slow.jsonl") as writer:
        writer.write(small.transactions)
    assert fast.read_bytes() == (tmp_path / "slow.jsonl").read_bytes()


def test_to_batch_keeps_labels_and_scenarios(ds: Dataset) -> None:
    batch = ds.to_batch()
    assert len(batch) == ds.summary.rows
    assert batch.has_labels()
    fraud = batch.is_fraud == 1
    assert (batch.label_time_us[fraud] > batch.timestamp_us[fraud]).all()
    assert set(batch.extra["scenario"][fraud]) == set(FRAUD_KINDS)


@pytest.mark.parametrize(("out", "expected"), [
    ("data/tx.csv", "data/tx.stores"),
    ("tx.jsonl.gz", "tx.stores"),
    ("a.b.parquet", "a.b.stores"),
])
def test_default_stores_dir(out: str, expected: str) -> None:
    assert default_stores_dir(out) == Path(expected)


@pytest.mark.parametrize("kwargs", [{"users": 0}, {"days": 0}, {"terminals": 0},
                                    {"fraud_rate": 0.5}, {"seed": -1}])
def test_config_refuses_bad_values(kwargs: dict[str, int | float]) -> None:
    with pytest.raises(InputError, match=next(iter(kwargs))):
        GenerateConfig(**kwargs)


def test_tiny_worlds_still_generate() -> None:
    for users, terminals in [(1, 1), (2, 2), (3, 1), (5, 7)]:
        ds = generate(GenerateConfig(users=users, terminals=terminals, days=1, seed=2))
        assert len(ds.timestamp_us) == ds.summary.rows
