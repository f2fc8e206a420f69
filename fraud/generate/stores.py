"""The supporting stores, derived from the final transactions so that they agree with them.

Sessions are cut from each device's transactions (a new one after 30 idle minutes); devices
are registered before their first session and report readings near where they are; web
purchases have cart lines that add up to about the amount (not for some frauds); followers,
posts and game scores give each account a history. Every function returns columns ready for
`fraud.tabular.write_columns` (ids as text, times as ISO-8601 UTC with 'Z').
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from fraud.generate.params import SCENARIOS
from fraud.generate.population import DEVICE_FRAUD, DEVICE_LATE, WEB, Population
from fraud.generate.rows import CART_MATCH, CART_MISMATCH, Rows
from fraud.generate.textcols import (
    US_PER_DAY,
    US_PER_HOUR,
    US_PER_MINUTE,
    US_PER_SECOND,
    format_ids,
    id_width,
    iso_utc,
)

__all__ = ["STORE_FIELDS", "Columns", "carts", "device_created", "device_readings", "followers",
           "posts", "scores", "sessions", "users"]

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
Obj = npt.NDArray[np.object_]
Columns = dict[str, npt.NDArray[np.generic]]

# The contract with the loaders/seeders of the supporting tables: file stem -> fields.
STORE_FIELDS: dict[str, tuple[str, ...]] = {
    "users": ("user_id", "created_at", "home_lat", "home_lon"),
    "sessions": ("session_id", "user_id", "device_id", "ip", "created_at", "expires_at"),
    "devices": ("device_id", "user_id", "ts", "lat", "lon", "status"),
    "carts": ("user_id", "product_id", "quantity", "price", "added_at"),
    "followers": ("user_id", "follower_id", "since"),
    "posts": ("post_id", "user_id", "ts"),
    "scores": ("game_id", "player_id", "score", "ts"),
}

_SESSION_IDLE_US = 30 * US_PER_MINUTE
_PRODUCTS = 99_991  # prime: a per-user stride walks every product before repeating one
_ATO = SCENARIOS.index("account_takeover")


def _group_starts(sorted_keys: I64) -> I64:
    if len(sorted_keys) == 0:
        return np.zeros(0, dtype=np.int64)
    change = np.flatnonzero(sorted_keys[1:] != sorted_keys[:-1]) + 1
    return np.concatenate([[0], change]).astype(np.int64)


def _rank_within(keys: I64) -> I64:
    """0, 1, 2 ... within each run of equal keys of an already grouped array."""
    starts = _group_starts(keys)
    sizes = np.diff(np.append(starts, len(keys)))
    ranks: I64 = np.arange(len(keys), dtype=np.int64) - np.repeat(starts, sizes)
    return ranks


def sessions(rows: Rows, pop: Population, rng: np.random.Generator, user_ids: Obj,
             device_ids: Obj) -> tuple[Obj, I64, Columns]:
    """(session id per row, first-session time per device or -1, the sessions table)."""
    row_session = np.empty(len(rows), dtype=object)
    row_session[:] = ""
    first_session = np.full(len(pop.devices), -1, dtype=np.int64)
    sel = np.flatnonzero(rows.device >= 0)
    idx = sel[np.lexsort((rows.ts_us[sel], rows.device[sel]))]
    dev, ts = rows.device[idx], rows.ts_us[idx]
    new = np.ones(len(idx), dtype=np.bool_)
    new[1:] = (dev[1:] != dev[:-1]) | (ts[1:] - ts[:-1] > _SESSION_IDLE_US)
    starts = np.flatnonzero(new)
    which = np.cumsum(new) - 1
    s_dev = dev[starts]
    last = np.maximum.reduceat(ts, starts) if len(starts) else np.zeros(0, dtype=np.int64)
    fraud = pop.devices.kind[s_dev] == DEVICE_FRAUD
    lead = np.where(fraud, rng.uniform(30, 600, len(starts)), rng.uniform(5, 900, len(starts)))
    created = ts[starts] - (lead * US_PER_SECOND).astype(np.int64)
    expires = last + _SESSION_IDLE_US
    order = np.argsort(created, kind="stable")
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    ids = format_ids("S", np.arange(len(order)), id_width(len(order), 9))
    row_session[idx] = ids[rank[which]]
    device_first = _group_starts(s_dev)
    first_session[s_dev[device_first]] = created[device_first]
    table: Columns = {
        "session_id": ids,
        "user_id": user_ids[pop.devices.user[s_dev[order]]],
        "device_id": device_ids[s_dev[order]],
        "ip": pop.devices.ip[s_dev[order]],
        "created_at": iso_utc(created[order]),
        "expires_at": iso_utc(expires[order]),
    }
    return row_session, first_session, table


def device_created(pop: Population, rng: np.random.Generator, first_session: I64) -> I64:
    """When each device was registered: before its first session and after its account."""
    dev = pop.devices
    owner_created = pop.created_us[dev.user]
    used = first_session >= 0
    hi = np.where(used, first_session - US_PER_MINUTE, pop.end_us - US_PER_HOUR)
    room = np.clip(hi - owner_created, 0, 200 * US_PER_DAY)
    created = hi - (rng.uniform(0.05, 1.0, len(dev)) * room).astype(np.int64)
    late = dev.kind == DEVICE_LATE
    created[late] = np.minimum(dev.available_us[late], hi[late])
    fraud = dev.kind == DEVICE_FRAUD
    created[fraud] = hi[fraud] - (rng.uniform(1, 20, int(fraud.sum())) * US_PER_MINUTE).astype(
        np.int64)
    out: I64 = np.minimum(created, hi)
    return out


def device_readings(pop: Population, rng: np.random.Generator, created: I64, user_ids: Obj,
                    device_ids: Obj) -> Columns:
    """A registration reading per device, then readings every few days (fraud: for hours)."""
    dev = pop.devices
    n = len(dev)
    fraud = dev.kind == DEVICE_FRAUD
    begin = np.maximum(created, pop.start_us)
    span = np.maximum(pop.end_us - begin, 0)
    count = np.where(fraud, 1 + rng.poisson(1.0, n), rng.poisson(span / (4 * US_PER_DAY)))
    span = np.where(fraud, 3 * US_PER_HOUR, span)
    owner = np.repeat(np.arange(n), count)
    ts = begin[owner] + (rng.random(len(owner)) * span[owner]).astype(np.int64) + 1
    ts = np.minimum(ts, pop.end_us - 1)
    device = np.concatenate([np.arange(n), owner])
    when = np.concatenate([created, ts])
    status = np.concatenate([np.full(n, "new", dtype=object),
                             np.where(rng.random(len(owner)) < 0.85, "active", "idle")
                             .astype(object)])
    jitter = np.concatenate([np.zeros(n), np.where(fraud[owner], 0.01, 0.02)])
    order = np.lexsort((when, device))
    device, when, status, jitter = device[order], when[order], status[order], jitter[order]
    return {
        "device_id": device_ids[device],
        "user_id": user_ids[dev.user[device]],
        "ts": iso_utc(when),
        "lat": np.round(dev.lat[device] + rng.normal(0, 1, len(device)) * jitter, 6),
        "lon": np.round(dev.lon[device] + rng.normal(0, 1, len(device)) * jitter, 6),
        "status": status,
    }


def carts(rows: Rows, pop: Population, rng: np.random.Generator, user_ids: Obj) -> Columns:
    """Cart lines of web purchases: they sum to about the amount, except for mismatch fraud."""
    sel = np.flatnonzero((rows.channel == WEB) & np.isin(rows.cart, (CART_MATCH, CART_MISMATCH)))
    k = np.minimum(1 + rng.poisson(1.2, len(sel)), 6)
    row = np.repeat(sel, k)
    first = np.zeros(len(sel) + 1, dtype=np.int64)
    np.cumsum(k, out=first[1:])
    share = rng.exponential(1.0, len(row))
    if len(row):
        share /= np.repeat(np.add.reduceat(share, first[:-1]), k)
    factor = np.where(rows.cart[sel] == CART_MISMATCH, rng.uniform(0.05, 0.5, len(sel)),
                      rng.uniform(0.93, 1.0, len(sel)))
    line = (rows.amount[sel] * factor)[np.repeat(np.arange(len(sel)), k)] * share
    quantity = np.where(rng.random(len(row)) < 0.8, 1, rng.integers(2, 4, len(row)))
    price = np.maximum(np.round(line / quantity, 2), 0.01)
    user = rows.user[row]
    added = rows.ts_us[row] - (rng.uniform(1, 180, len(row)) * US_PER_MINUTE).astype(np.int64)
    added = np.maximum(added, pop.created_us[user] + 1)
    # Distinct products per user (the table's key is user_id + product_id).
    order = np.argsort(user, kind="stable")
    nth = np.empty(len(row), dtype=np.int64)
    nth[order] = _rank_within(user[order])
    offset = (user * 7919) % _PRODUCTS
    stride = 1 + (user * 104_729) % (_PRODUCTS - 1)
    product = (offset + nth * stride) % _PRODUCTS
    return {
        "user_id": user_ids[user],
        "product_id": format_ids("P", product, 5),
        "quantity": quantity.astype(np.int64),
        "price": price,
        "added_at": iso_utc(added),
    }


def users(pop: Population, user_ids: Obj) -> Columns:
    return {
        "user_id": user_ids,
        "created_at": iso_utc(pop.created_us),
        "home_lat": np.round(pop.home_lat, 6),
        "home_lon": np.round(pop.home_lon, 6),
    }


def followers(pop: Population, rng: np.random.Generator, user_ids: Obj) -> Columns:
    """A social graph: mostly people from the same city; fraudster accounts barely followed."""
    n = pop.n_users
    indeg = np.minimum(np.floor(np.exp(rng.normal(1.0, 1.1, n))), max(n - 1, 0)).astype(np.int64)
    indeg[pop.fraud_account] = (rng.random(int(pop.fraud_account.sum())) < 0.3).astype(np.int64)
    followed = np.repeat(np.arange(n), indeg)
    by_city = np.argsort(pop.home_city, kind="stable")
    city_size = np.bincount(pop.home_city, minlength=len(pop.city_lat))
    city_start = np.concatenate([[0], np.cumsum(city_size)[:-1]])
    c = pop.home_city[followed]
    local = by_city[city_start[c] + np.floor(rng.random(len(followed)) * city_size[c])
                    .astype(np.int64)]
    anyone = rng.integers(0, n, len(followed))
    follower = np.where(rng.random(len(followed)) < 0.7, local, anyone)
    key = np.unique(followed[followed != follower] * n + follower[followed != follower])
    followed, follower = key // n, key % n
    lo = np.maximum(pop.created_us[followed], pop.created_us[follower])
    since = lo + (rng.random(len(key)) * np.maximum(pop.end_us - lo, 1)).astype(np.int64)
    return {"user_id": user_ids[followed], "follower_id": user_ids[follower],
            "since": iso_utc(since)}


def posts(pop: Population, rng: np.random.Generator, user_ids: Obj) -> Columns:
    """Posts from the last 90 days before the period to its end, at each user's pace."""
    lo = np.maximum(pop.created_us, pop.start_us - 90 * US_PER_DAY)
    span = np.maximum(pop.end_us - lo, 0)
    count = rng.poisson(pop.social * span / US_PER_DAY)
    user = np.repeat(np.arange(pop.n_users), count)
    ts = lo[user] + (rng.random(len(user)) * span[user]).astype(np.int64)
    order = np.argsort(ts, kind="stable")
    return {"post_id": format_ids("PO", np.arange(len(user)), id_width(len(user), 9)),
            "user_id": user_ids[user[order]], "ts": iso_utc(ts[order])}


def scores(rows: Rows, pop: Population, rng: np.random.Generator, user_ids: Obj,
           game_ids: Obj) -> Columns:
    """Leaderboard entries of gamers; a takeover inside a game comes with a score jump."""
    gamer = np.flatnonzero(pop.game_terminal >= 0)
    game = pop.term_game[pop.game_terminal[gamer]]
    lo = np.maximum(pop.created_us[gamer], pop.start_us)
    span = np.maximum(pop.end_us - lo, 0)
    count = 1 + rng.poisson(span / (2 * US_PER_DAY))
    who = np.repeat(np.arange(len(gamer)), count)
    ts = lo[who] + (rng.random(len(who)) * span[who]).astype(np.int64)
    order = np.lexsort((ts, who))
    who, ts = who[order], ts[order]
    skill = np.exp(rng.normal(np.log(100.0), 0.5, len(gamer)))
    gain = rng.gamma(2.0, skill[who])
    total = np.cumsum(gain)
    starts = _group_starts(who)
    sizes = np.diff(np.append(starts, len(who)))
    before = np.concatenate([[0.0], total])[starts]
    score = np.round(total - np.repeat(before, sizes)).astype(np.int64)
    best = np.zeros(pop.n_users, dtype=np.int64)
    np.maximum.at(best, gamer[who], score)
    ato = np.flatnonzero((rows.scenario == _ATO) & (rows.game >= 0))
    jump_user = rows.user[ato]
    jump = (best[jump_user] * rng.uniform(3, 8, len(ato)) + 5_000).astype(np.int64)
    jump_ts = rows.ts_us[ato] + (rng.uniform(1, 30, len(ato)) * US_PER_MINUTE).astype(np.int64)
    all_user = np.concatenate([gamer[who], jump_user])
    all_game = np.concatenate([game[who], rows.game[ato]])
    all_ts = np.concatenate([ts, jump_ts])
    all_score = np.concatenate([score, jump])
    order = np.argsort(all_ts, kind="stable")
    return {"game_id": game_ids[all_game[order]], "player_id": user_ids[all_user[order]],
            "score": all_score[order], "ts": iso_utc(all_ts[order])}
