"""Legitimate spending: who buys, when, where, how much and on which device.

The rhythms a feature engine learns from are built in: each customer has a rate (some buy
daily, some weekly), a log-normal spending level, a daily rhythm in local time (quiet at
night), a weekly rhythm (busier Fridays and Saturdays), usual shops near home and usual online
merchants. Legitimate noise overlaps the fraud signals on purpose: a few purchases far from
home (travel), a few big-ticket amounts, a new phone bought mid-period.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import numpy.typing as npt

from fraud.generate.population import POS, WEB, Population
from fraud.generate.rows import CART_MATCH, CART_NONE, Rows
from fraud.generate.textcols import US_PER_DAY, US_PER_HOUR

__all__ = ["GAME_PRICES", "HOUR_WEIGHTS", "WEEKDAY_WEIGHTS", "legit_rows", "pick_biased"]

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

# Monday .. Sunday
WEEKDAY_WEIGHTS = np.array([0.92, 0.95, 0.98, 1.0, 1.15, 1.2, 0.8])
# Local hour 0 .. 23
HOUR_WEIGHTS = np.array([0.25, 0.15, 0.1, 0.08, 0.08, 0.15, 0.4, 0.8, 1.2, 1.4, 1.5, 1.6,
                         1.8, 1.7, 1.5, 1.5, 1.6, 1.8, 1.9, 1.8, 1.5, 1.1, 0.7, 0.4])
GAME_PRICES = np.array([0.99, 1.99, 4.99, 9.99, 19.99, 49.99, 99.99])
_GAME_PRICE_W = np.array([0.25, 0.22, 0.2, 0.15, 0.1, 0.06, 0.02])


def pick_biased(rng: np.random.Generator, ptr: I64, values: I64, owner: I64) -> I64:
    """One of each owner's `values[ptr[o]:ptr[o+1]]`, the first ones more often (r**2)."""
    count = ptr[owner + 1] - ptr[owner]
    pos = np.floor(count * rng.random(len(owner)) ** 2).astype(np.int64)
    picked: I64 = values[ptr[owner] + np.minimum(pos, count - 1)]
    return picked


def _day_cdf(start: dt.datetime, days: int) -> F64:
    """Cumulative weekday weights of local days -1 .. days (index 0 is the day before start)."""
    weekday = (start.weekday() - 1 + np.arange(days + 2)) % 7
    cdf = np.zeros(days + 3)
    np.cumsum(WEEKDAY_WEIGHTS[weekday], out=cdf[1:])
    return cdf


def legit_rows(pop: Population, rng: np.random.Generator, start: dt.datetime,
               days: int) -> Rows:
    """Every customer's ordinary transactions over the period, grouped by customer."""
    start_us = pop.start_us
    active_from = np.maximum(start_us, pop.created_us + US_PER_HOUR)
    # Customers live in local time, so the UTC period starts and ends inside local days: draw
    # from the local day before to the local day after, then keep what falls in the period.
    first_day = (active_from - start_us) // US_PER_DAY  # 0-based; the cdf has day -1 first
    cdf = _day_cdf(start, days)
    weight = cdf[days + 2] - cdf[first_day]
    counts = rng.poisson(pop.rate_per_day * weight).astype(np.int64)
    user = np.repeat(np.arange(pop.n_users, dtype=np.int64), counts)
    n = len(user)

    u = cdf[first_day[user]] + rng.random(n) * weight[user]
    day = np.minimum(np.searchsorted(cdf, u, side="right") - 1, days + 1) - 1
    hour = rng.choice(24, size=n, p=HOUR_WEIGHTS / HOUR_WEIGHTS.sum())
    within = (rng.random(n) * US_PER_HOUR).astype(np.int64)
    ts = start_us + day * US_PER_DAY + hour * US_PER_HOUR + within
    ts -= pop.tz_hours[user] * US_PER_HOUR  # local time -> UTC
    keep = (ts >= active_from[user]) & (ts < pop.end_us)
    user, ts = user[keep], ts[keep]
    n = len(user)

    online = rng.random(n) < pop.p_online[user]
    terminal = np.empty(n, dtype=np.int64)
    pos_rows = np.flatnonzero(~online)
    terminal[pos_rows] = pick_biased(rng, pop.usual_pos_ptr, pop.usual_pos, user[pos_rows])
    on_rows = np.flatnonzero(online)
    terminal[on_rows] = pick_biased(rng, pop.usual_online_ptr, pop.usual_online, user[on_rows])
    # Explore: a shop anywhere (travel) or a new online merchant.
    roam = rng.random(n) < 0.03
    all_pos = pop.pos_terminals()
    pos_roam = np.flatnonzero(roam & ~online)
    terminal[pos_roam] = all_pos[rng.integers(0, len(all_pos), len(pos_roam))]
    all_online = pop.online_terminals(gaming=False)
    if len(all_online):
        on_roam = np.flatnonzero(roam & online)
        terminal[on_roam] = all_online[rng.integers(0, len(all_online), len(on_roam))]
    gamer = pop.game_terminal[user]
    gaming = online & (gamer >= 0) & (rng.random(n) < 0.3)
    terminal[gaming] = gamer[gaming]
    channel = pop.term_channel[terminal]
    game = pop.term_game[terminal]

    amount = np.exp(pop.amount_mu[user] + pop.amount_sigma[user] * rng.standard_normal(n))
    big = rng.random(n) < 0.003
    amount[big] *= rng.uniform(5.0, 15.0, int(big.sum()))
    is_game = game >= 0
    amount[is_game] = rng.choice(GAME_PRICES, size=int(is_game.sum()),
                                 p=_GAME_PRICE_W / _GAME_PRICE_W.sum())
    amount = np.round(np.clip(amount, 0.5, 25_000.0), 2)

    device = np.full(n, -1, dtype=np.int64)
    has_device = channel != POS
    dev_rows = np.flatnonzero(has_device)
    du = user[dev_rows]
    n_dev = pop.device_ptr[du + 1] - pop.device_ptr[du]
    second = np.floor(rng.random(len(du)) * n_dev).astype(np.int64)
    slot = np.where(rng.random(len(du)) < 0.75, 0, second)
    chosen = pop.device_ptr[du] + slot
    late = pop.late_device[du]
    use_late = (late >= 0) & (rng.random(len(du)) < 0.6)
    use_late &= ts[dev_rows] >= pop.devices.available_us[np.maximum(late, 0)]
    chosen[use_late] = late[use_late]
    device[dev_rows] = chosen

    lat = pop.term_lat[terminal].copy()
    lon = pop.term_lon[terminal].copy()
    lat[dev_rows] = pop.devices.lat[chosen] + rng.normal(0, 0.01, len(dev_rows))
    lon[dev_rows] = pop.devices.lon[chosen] + rng.normal(0, 0.01, len(dev_rows))

    cart = np.full(n, CART_NONE, dtype=np.int64)
    web = channel == WEB  # in-app purchases carry no cart: items are bought one at a time
    cart[web & (rng.random(n) >= 0.03)] = CART_MATCH
    return Rows(ts_us=ts, user=user, terminal=terminal, amount=amount, device=device,
                lat=lat, lon=lon, channel=channel, game=game,
                scenario=np.zeros(n, dtype=np.int64), cart=cart)
