"""Injected fraud: five scenarios, each leaving the traces a feature engine can pick up.

* compromised_terminal - a skimmed shop: every sale there is fraudulent for two to four weeks
  (the signal: a terminal with many confirmed frauds, once labels arrive);
* compromised_card - a stolen card: for one to two weeks a third of its spending jumps several
  times the usual amount, partly at shops and merchants the customer never used;
* card_testing - a burst of tiny charges a minute apart, from a new device far from home,
  often at the same few weak merchants;
* account_takeover - a new device, far location, new session, one to five larger purchases,
  web carts that do not match the amount;
* high_amount - a single very large purchase: from young fraudster-made accounts without social
  footprint, or on an ordinary customer's card.

Legitimate noise overlaps each signal (travel, big-ticket buys, new phones, young accounts), so
no single feature separates fraud perfectly. Each function returns the rows it adds, or marks
rows of `base` in place; `budget` is the number of fraudulent rows to aim for.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from fraud.generate.legit import GAME_PRICES, HOUR_WEIGHTS, pick_biased
from fraud.generate.params import SCENARIOS
from fraud.generate.population import DEVICE_FRAUD, POS, WEB, Population, random_ips
from fraud.generate.rows import CART_MATCH, CART_MISMATCH, CART_NONE, Rows
from fraud.generate.textcols import US_PER_DAY, US_PER_HOUR, US_PER_MINUTE

__all__ = ["account_takeover", "card_testing", "compromised_card", "compromised_terminal",
           "high_amount"]

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

_CODE = {name: i for i, name in enumerate(SCENARIOS)}
_FRAUD_OCTETS = np.array([45, 91, 103, 176, 185, 193], dtype=np.int64)


def _take_until(counts: I64, budget: int) -> int:
    """How many of the candidates (in order) it takes to reach `budget` rows (at least 1)."""
    if len(counts) == 0:
        return 0
    reached = np.searchsorted(np.cumsum(counts), budget, side="left")
    return min(int(reached) + 1, len(counts))


def _far_place(pop: Population, rng: np.random.Generator, user: I64) -> tuple[F64, F64]:
    """A location in another city than each user's home (the fraudster's)."""
    n_cities = len(pop.city_lat)
    shift = 1 + rng.integers(0, max(n_cities - 1, 1), len(user))
    city = (pop.home_city[user] + shift) % n_cities
    return (pop.city_lat[city] + rng.normal(0, 0.2, len(user)),
            pop.city_lon[city] + rng.normal(0, 0.2, len(user)))


def _fraud_devices(pop: Population, rng: np.random.Generator, user: I64, lat: F64,
                   lon: F64) -> I64:
    octet = _FRAUD_OCTETS[rng.integers(0, len(_FRAUD_OCTETS), len(user))]
    return pop.devices.add(user, lat, lon, random_ips(rng, octet), DEVICE_FRAUD)


def _victims(pop: Population, rng: np.random.Generator) -> I64:
    """Ordinary customers whose accounts predate the period, in random order."""
    ok = np.flatnonzero(~pop.fraud_account & (pop.created_us < pop.start_us))
    if len(ok) == 0:
        ok = np.flatnonzero(~pop.fraud_account)
    return rng.permutation(ok)


def _event_times(pop: Population, rng: np.random.Generator, user: I64, tail_us: int) -> I64:
    """A start time per event after the user's account opened, leaving `tail_us` before the end."""
    lo = np.maximum(pop.start_us, pop.created_us[user] + US_PER_HOUR)
    hi = np.maximum(lo + 1, pop.end_us - tail_us)
    times: I64 = lo + (rng.random(len(user)) * (hi - lo)).astype(np.int64)
    # Fraudsters keep odd hours, but half of them follow the customers' daily rhythm, so the
    # hour of day is a hint, not a giveaway.
    usual = rng.random(len(user)) < 0.5
    local_hour = (times // US_PER_HOUR + pop.tz_hours[user]) % 24
    hour = rng.choice(24, size=len(user), p=HOUR_WEIGHTS / HOUR_WEIGHTS.sum())
    shifted = times + (hour - local_hour) * US_PER_HOUR
    times = np.where(usual, np.clip(shifted, lo, hi), times)
    return times


def _online_terminals(pop: Population) -> I64:
    online = pop.online_terminals(gaming=False)
    return online if len(online) else np.arange(pop.n_terminals, dtype=np.int64)


def compromised_terminal(base: Rows, pop: Population, rng: np.random.Generator,
                         budget: int) -> None:
    """Mark every sale at a few skimmed shops, within their compromise window, as fraud."""
    if budget <= 0:
        return
    shops = np.flatnonzero(np.bincount(base.terminal[base.channel == POS],
                                       minlength=pop.n_terminals))
    shops = rng.permutation(shops)
    span = pop.end_us - pop.start_us
    marked = 0
    for shop in shops.tolist():
        window = int(rng.uniform(14, 28) * US_PER_DAY)
        begin = pop.start_us + int(rng.random() * max(span - window, 0))
        hit = np.flatnonzero((base.terminal == shop) & (base.ts_us >= begin)
                             & (base.ts_us < begin + window) & (base.scenario == 0))
        # A busy shop in a small world would blow the budget: its window then ends early.
        hit = hit[np.argsort(base.ts_us[hit], kind="stable")][: budget - marked]
        base.scenario[hit] = _CODE["compromised_terminal"]
        marked += len(hit)
        if marked >= budget:
            break


def compromised_card(base: Rows, pop: Population, rng: np.random.Generator,
                     budget: int) -> None:
    """Turn a third of some cards' spending within a one-to-two-week window into fraud."""
    if budget <= 0:
        return
    victims = _victims(pop, rng)
    slot = np.full(pop.n_users, -1, dtype=np.int64)
    slot[victims] = np.arange(len(victims))
    span = pop.end_us - pop.start_us
    window = (rng.uniform(7, 14, len(victims)) * US_PER_DAY).astype(np.int64)
    begin = pop.start_us + (rng.random(len(victims)) * np.maximum(span - window, 0)).astype(
        np.int64)
    s = slot[base.user]
    ok = s >= 0
    sv = np.maximum(s, 0)
    cand = (ok & (base.ts_us >= begin[sv]) & (base.ts_us < begin[sv] + window[sv])
            & (base.scenario == 0) & (rng.random(len(base)) < 1 / 3))
    per_victim = np.bincount(s[cand], minlength=len(victims)).astype(np.int64)
    take = _take_until(per_victim, budget)
    rows = np.flatnonzero(cand & (s < take))
    if len(rows) == 0:
        return
    base.scenario[rows] = _CODE["compromised_card"]
    base.amount[rows] = np.round(base.amount[rows] * rng.uniform(2.5, 6.0, len(rows)), 2)
    # Some of it goes to places the customer never used: a shop anywhere, or a web merchant.
    moved = rows[rng.random(len(rows)) < 0.4]
    shops = pop.pos_terminals()
    to_shop = moved[rng.random(len(moved)) < 0.5]
    base.terminal[to_shop] = shops[rng.integers(0, len(shops), len(to_shop))]
    online = _online_terminals(pop)
    to_web = np.setdiff1d(moved, to_shop)
    base.terminal[to_web] = online[rng.integers(0, len(online), len(to_web))]
    base.channel[moved] = pop.term_channel[base.terminal[moved]]
    base.game[moved] = pop.term_game[base.terminal[moved]]
    base.lat[moved] = pop.term_lat[base.terminal[moved]]
    base.lon[moved] = pop.term_lon[base.terminal[moved]]
    # Card-not-present use comes from the fraudster's device, one per stolen card.
    cnp = rows[base.channel[rows] != POS]
    base.device[rows[base.channel[rows] == POS]] = -1
    if len(cnp):
        users, first = np.unique(base.user[cnp], return_inverse=True)
        lat, lon = _far_place(pop, rng, users)
        dev = _fraud_devices(pop, rng, users, lat, lon)
        base.device[cnp] = dev[first]
        base.lat[cnp] = lat[first] + rng.normal(0, 0.01, len(cnp))
        base.lon[cnp] = lon[first] + rng.normal(0, 0.01, len(cnp))
    base.cart[rows] = np.where(base.channel[rows] == WEB, CART_MATCH, CART_NONE)


def _burst_rows(pop: Population, rng: np.random.Generator, user: I64, sizes: I64,
                start: I64, gap_mean_us: float, terminal: I64, device: I64, lat: F64,
                lon: F64, scenario: str) -> Rows:
    """Rows for events of `sizes[i]` transactions each, starting at `start[i]`."""
    event = np.repeat(np.arange(len(user)), sizes)
    n = len(event)
    gaps = rng.exponential(gap_mean_us, n).astype(np.int64) + 1_000_000
    first = np.zeros(len(user) + 1, dtype=np.int64)
    np.cumsum(sizes, out=first[1:])
    offsets = np.cumsum(gaps)
    offsets -= np.repeat(offsets[first[:-1]], sizes)  # each event starts at its own start
    ts = start[event] + offsets
    ts = np.minimum(ts, pop.end_us - 1)
    term = terminal[event]
    return Rows(
        ts_us=ts, user=user[event], terminal=term, amount=np.zeros(n), device=device[event],
        lat=lat[event] + rng.normal(0, 0.01, n), lon=lon[event] + rng.normal(0, 0.01, n),
        channel=pop.term_channel[term], game=pop.term_game[term],
        scenario=np.full(n, _CODE[scenario], dtype=np.int64),
        cart=np.full(n, CART_NONE, dtype=np.int64),
    )


def card_testing(pop: Population, rng: np.random.Generator, budget: int) -> Rows:
    """Bursts of 5-30 tiny charges, about a minute apart, mostly at a few weak merchants."""
    if budget <= 0:
        return Rows.empty()
    sizes_all = np.minimum(5 + rng.poisson(6.0, max(budget, 1)), 30).astype(np.int64)
    n_events = _take_until(sizes_all, budget)
    victims = _victims(pop, rng)
    user = victims[rng.integers(0, len(victims), n_events)]
    sizes = sizes_all[:n_events]
    online = _online_terminals(pop)
    weak = online[rng.integers(0, len(online), min(3, len(online)))]
    terminal = np.where(rng.random(n_events) < 0.7,
                        weak[rng.integers(0, len(weak), n_events)],
                        online[rng.integers(0, len(online), n_events)])
    lat, lon = _far_place(pop, rng, user)
    device = _fraud_devices(pop, rng, user, lat, lon)
    start = _event_times(pop, rng, user, 2 * US_PER_HOUR)
    rows = _burst_rows(pop, rng, user, sizes, start, 45e6, terminal, device, lat, lon,
                       "card_testing")
    amount = rng.uniform(0.5, 5.0, len(rows))
    round_one = rng.random(len(rows)) < 0.3
    amount[round_one] = 1.0
    rows.amount = np.round(amount, 2)
    return rows


def account_takeover(pop: Population, rng: np.random.Generator, budget: int) -> Rows:
    """A fraudster logs in from a new device far away and buys a few expensive things."""
    if budget <= 0:
        return Rows.empty()
    sizes_all = np.minimum(1 + rng.poisson(1.2, max(budget, 1)), 5).astype(np.int64)
    n_events = _take_until(sizes_all, budget)
    victims = _victims(pop, rng)
    user = victims[rng.integers(0, len(victims), n_events)]
    sizes = sizes_all[:n_events]
    online = _online_terminals(pop)
    terminal = online[rng.integers(0, len(online), n_events)]
    gamer = pop.game_terminal[user]
    in_game = (gamer >= 0) & (rng.random(n_events) < 0.3)
    terminal[in_game] = gamer[in_game]
    lat, lon = _far_place(pop, rng, user)
    device = _fraud_devices(pop, rng, user, lat, lon)
    start = _event_times(pop, rng, user, 4 * US_PER_HOUR)
    rows = _burst_rows(pop, rng, user, sizes, start, 20 * US_PER_MINUTE, terminal, device,
                       lat, lon, "account_takeover")
    level = np.exp(pop.amount_mu[rows.user])
    amount = np.clip(level * rng.uniform(3.0, 10.0, len(rows)), 20.0, 9_000.0)
    rows.amount = np.round(amount, 2).astype(np.float64)
    games = rows.game >= 0
    rows.amount[games] = GAME_PRICES[-3:][rng.integers(0, 3, int(games.sum()))]
    web = rows.channel == WEB
    rows.cart[web] = np.where(rng.random(int(web.sum())) < 0.5, CART_MISMATCH, CART_NONE)
    return rows


def high_amount(pop: Population, rng: np.random.Generator, budget: int) -> Rows:
    """Very large single purchases: from fraudster-made accounts, or on ordinary cards."""
    if budget <= 0:
        return Rows.empty()
    own = np.flatnonzero(pop.fraud_account)
    n_own = min(len(own), (budget + 1) // 2)
    n_card = max(budget - n_own, 0)
    victims = _victims(pop, rng)
    user = np.concatenate([own[:n_own], victims[rng.integers(0, len(victims), n_card)]])
    n = len(user)
    from_account = np.arange(n) < n_own
    lo = np.maximum(pop.start_us, pop.created_us[user] + US_PER_HOUR)
    lo[from_account] += (rng.uniform(1, 8, n_own) * US_PER_DAY).astype(np.int64)
    lo = np.minimum(lo, pop.end_us - US_PER_HOUR)
    ts = lo + (rng.random(n) * np.maximum(pop.end_us - lo, 1)).astype(np.int64)
    ts = np.clip(ts, pop.created_us[user] + 1, pop.end_us - 1)
    online = _online_terminals(pop)
    terminal = online[rng.integers(0, len(online), n)]
    # On an ordinary card half of them happen at one of the customer's usual shops.
    at_shop = ~from_account & (rng.random(n) < 0.5)
    terminal[at_shop] = pick_biased(rng, pop.usual_pos_ptr, pop.usual_pos, user[at_shop])
    channel = pop.term_channel[terminal]
    device = np.where(channel != POS, pop.device_ptr[user], -1).astype(np.int64)
    lat = np.where(channel != POS, pop.devices.lat[pop.device_ptr[user]], pop.term_lat[terminal])
    lon = np.where(channel != POS, pop.devices.lon[pop.device_ptr[user]], pop.term_lon[terminal])
    amount = np.where(from_account, np.exp(rng.normal(np.log(1500.0), 0.5, n)),
                      np.exp(pop.amount_mu[user]) * rng.uniform(8.0, 25.0, n))
    cart = np.where((channel == WEB) & (rng.random(n) < 0.5), CART_MATCH, CART_NONE)
    return Rows(
        ts_us=ts.astype(np.int64), user=user, terminal=terminal,
        amount=np.round(np.clip(amount, 150.0, 20_000.0), 2), device=device,
        lat=lat + rng.normal(0, 0.01, n), lon=lon + rng.normal(0, 0.01, n), channel=channel,
        game=pop.term_game[terminal], scenario=np.full(n, _CODE["high_amount"], dtype=np.int64),
        cart=cart.astype(np.int64),
    )
