"""The synthetic world: cities, customers, terminals/merchants and customers' devices.

Everything is drawn at once as NumPy columns (no per-customer Python loop), so a population of
a million customers costs about as much as a few array operations. Customers live near one of a
few cities, shop at a handful of usual terminals near home and at a few online merchants, and
own one to three devices; a few accounts are fraudster-made (young, no social footprint).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from fraud.generate.params import GenerateConfig
from fraud.generate.textcols import US_PER_DAY

__all__ = ["CHANNELS", "Devices", "Population", "make_population"]

CHANNELS: tuple[str, ...] = ("pos", "web", "app")
POS, WEB, APP = 0, 1, 2

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
Bool = npt.NDArray[np.bool_]
Obj = npt.NDArray[np.object_]

DEVICE_USUAL, DEVICE_LATE, DEVICE_FRAUD = 0, 1, 2


@dataclass(slots=True)
class Devices:
    """Devices as columns; scenarios append fraudsters' devices with `add`."""

    user: I64
    lat: F64
    lon: F64
    ip: Obj
    kind: I64
    # Not before this time (a late legitimate device is bought mid-period); -1 = any time.
    available_us: I64

    def __len__(self) -> int:
        return len(self.user)

    def add(self, user: I64, lat: F64, lon: F64, ip: Obj, kind: int) -> I64:
        """Append devices; returns their indices."""
        first = len(self)
        n = len(user)
        self.user = np.concatenate([self.user, user])
        self.lat = np.concatenate([self.lat, lat])
        self.lon = np.concatenate([self.lon, lon])
        self.ip = np.concatenate([self.ip, ip])
        self.kind = np.concatenate([self.kind, np.full(n, kind, dtype=np.int64)])
        self.available_us = np.concatenate([self.available_us, np.full(n, -1, dtype=np.int64)])
        return np.arange(first, first + n, dtype=np.int64)


@dataclass(slots=True)
class Population:
    """Customers (index = user number), terminals and devices of one data set."""

    start_us: int
    end_us: int
    city_lat: F64
    city_lon: F64
    # customers
    created_us: I64
    home_lat: F64
    home_lon: F64
    home_city: I64
    tz_hours: I64
    rate_per_day: F64
    amount_mu: F64
    amount_sigma: F64
    p_online: F64
    fraud_account: Bool
    social: F64
    usual_pos_ptr: I64
    usual_pos: I64
    usual_online_ptr: I64
    usual_online: I64
    game_terminal: I64
    device_ptr: I64  # the first devices of user u are device_ptr[u] .. device_ptr[u+1]-1
    late_device: I64  # -1 when none
    # terminals
    term_lat: F64
    term_lon: F64
    term_city: I64
    term_channel: I64
    term_game: I64  # -1 unless a gaming merchant
    devices: Devices

    @property
    def n_users(self) -> int:
        return len(self.created_us)

    @property
    def n_terminals(self) -> int:
        return len(self.term_lat)

    def pos_terminals(self) -> I64:
        return np.flatnonzero(self.term_channel == POS)

    def online_terminals(self, gaming: bool | None = None) -> I64:
        online = self.term_channel != POS
        if gaming is not None:
            online &= (self.term_game >= 0) == gaming
        return np.flatnonzero(online)


def random_ips(rng: np.random.Generator, first_octet: I64) -> Obj:
    """Dotted IPv4 text with the given first octets (the rest random)."""
    rest = rng.integers(1, 255, size=(len(first_octet), 3))
    return np.asarray(
        [f"{a}.{b}.{c}.{d}" for a, (b, c, d) in zip(first_octet.tolist(), rest.tolist(),
                                                      strict=True)],
        dtype=object,
    )


def _csr_sample(rng: np.random.Generator, counts: I64, group: I64, group_start: I64,
                group_size: I64) -> tuple[I64, I64]:
    """For each owner i, `counts[i]` draws from the slice of its group; returns (ptr, values)."""
    ptr = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=ptr[1:])
    owner = np.repeat(np.arange(len(counts)), counts)
    g = group[owner]
    pick = group_start[g] + np.floor(rng.random(len(owner)) * group_size[g]).astype(np.int64)
    return ptr, pick


def _terminals(rng: np.random.Generator, m: int, city_lat: F64, city_lon: F64,
               city_w: F64) -> tuple[F64, F64, I64, I64, I64]:
    n_cities = len(city_lat)
    channel = rng.choice(3, size=m, p=[0.74, 0.17, 0.09]).astype(np.int64)
    channel[0] = POS  # every world has a shop and, when it can, a web merchant
    if m >= 2:
        channel[1] = WEB
    city = rng.choice(n_cities, size=m, p=city_w).astype(np.int64)
    first = np.flatnonzero(channel == POS)[:n_cities]
    city[first] = np.arange(len(first))  # each city gets a shop while there are enough
    lat = city_lat[city] + rng.normal(0, 0.15, m)
    lon = city_lon[city] + rng.normal(0, 0.15, m)
    game = np.full(m, -1, dtype=np.int64)
    gaming = (channel == APP) & (rng.random(m) < 0.35)
    if m >= 4 and not gaming.any():
        gaming[m - 1] = True
        channel[m - 1] = APP
    game[gaming] = np.arange(int(gaming.sum()))
    return lat, lon, city, channel, game


def make_population(cfg: GenerateConfig, rng: np.random.Generator, start_us: int) -> Population:
    """Draw the whole world for `cfg` from `rng`."""
    n, m = cfg.users, cfg.terminals
    end_us = start_us + cfg.days * US_PER_DAY
    n_cities = int(np.clip(round(np.sqrt(n) / 3), 2, 25))
    city_lat = rng.uniform(27.0, 47.0, n_cities)
    city_lon = rng.uniform(-122.0, -72.0, n_cities)
    zipf: F64 = 1.0 / np.arange(1, n_cities + 1, dtype=np.float64) ** 0.8
    city_w: F64 = zipf / zipf.sum()

    t_lat, t_lon, t_city, t_channel, t_game = _terminals(rng, m, city_lat, city_lon, city_w)

    n_fraud = min(n // 200, 500) if cfg.fraud_rate > 0 else 0
    fraud_account = np.zeros(n, dtype=np.bool_)
    fraud_account[n - n_fraud:] = True

    home_city = rng.choice(n_cities, size=n, p=city_w).astype(np.int64)
    home_lat = city_lat[home_city] + rng.normal(0, 0.15, n)
    home_lon = city_lon[home_city] + rng.normal(0, 0.15, n)
    tz_hours = np.round(home_lon / 15.0).astype(np.int64)

    # Account age: most accounts predate the period, some open during it; fraudster accounts
    # open during it and start spending within days.
    span = cfg.days * US_PER_DAY
    age_days = np.exp(rng.uniform(np.log(30), np.log(3000), n))
    created = start_us - (age_days * US_PER_DAY).astype(np.int64)
    young = (rng.random(n) < 0.06) | fraud_account
    created[young] = start_us + (rng.random(int(young.sum())) * 0.6 * span).astype(np.int64)

    rate = np.exp(rng.normal(np.log(1.2), 0.6, n))
    rate[fraud_account] = 0.4
    mu = rng.normal(np.log(32.0), 0.6, n)
    sigma = rng.uniform(0.35, 0.85, n)
    p_online = rng.beta(2.0, 5.0, n)
    p_online[fraud_account] = 1.0
    social = np.exp(rng.normal(np.log(0.08), 1.0, n))
    social[fraud_account] = 0.0

    # Usual shops: near home (the home city's shops), two to eight of them.
    pos_idx = np.flatnonzero(t_channel == POS)
    order = pos_idx[np.argsort(t_city[pos_idx], kind="stable")]
    city_size = np.bincount(t_city[order], minlength=n_cities).astype(np.int64)
    city_start = np.zeros(n_cities, dtype=np.int64)
    np.cumsum(city_size[:-1], out=city_start[1:])
    empty = city_size == 0  # a city without shops: its people shop anywhere
    city_start[empty] = 0
    city_size[empty] = len(order)
    n_pos = np.minimum(2 + rng.poisson(2.0, n), 8).astype(np.int64)
    pos_ptr, pos_pick = _csr_sample(rng, n_pos, home_city, city_start, city_size)
    usual_pos = order[pos_pick]

    # Usual online merchants: popular ones more often.
    online_idx = np.flatnonzero((t_channel != POS) & (t_game < 0))
    if len(online_idx) == 0:
        online_idx = np.flatnonzero(t_channel != POS)
    if len(online_idx) == 0:
        online_idx = pos_idx  # a one-terminal world: "online" spending goes to the shop
    pop = 1.0 / np.arange(1, len(online_idx) + 1) ** 0.9
    cdf = np.cumsum(pop) / pop.sum()
    n_online = np.minimum(1 + rng.poisson(1.5, n), 6).astype(np.int64)
    online_ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(n_online, out=online_ptr[1:])
    draws = np.searchsorted(cdf, rng.random(int(n_online.sum())), side="right")
    usual_online = online_idx[np.minimum(draws, len(online_idx) - 1)]

    game_idx = np.flatnonzero(t_game >= 0)
    game_terminal = np.full(n, -1, dtype=np.int64)
    if len(game_idx):
        gamer = (rng.random(n) < 0.2) & ~fraud_account
        game_terminal[gamer] = game_idx[rng.integers(0, len(game_idx), int(gamer.sum()))]

    n_dev = (1 + (rng.random(n) < 0.5) + (rng.random(n) < 0.15)).astype(np.int64)
    n_dev[fraud_account] = 1
    late = (rng.random(n) < 0.08) & ~fraud_account
    device_ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(n_dev, out=device_ptr[1:])
    owner = np.concatenate([np.repeat(np.arange(n), n_dev), np.flatnonzero(late)])
    kinds = np.concatenate([np.full(int(n_dev.sum()), DEVICE_USUAL),
                            np.full(int(late.sum()), DEVICE_LATE)]).astype(np.int64)
    available = np.full(len(owner), -1, dtype=np.int64)
    late_at = start_us + (rng.uniform(0.1, 0.9, int(late.sum())) * span).astype(np.int64)
    available[kinds == DEVICE_LATE] = np.maximum(late_at, created[late] + US_PER_DAY)
    late_device = np.full(n, -1, dtype=np.int64)
    late_device[late] = np.arange(int(n_dev.sum()), len(owner))
    octet = (11 + home_city[owner] * 7) % 200 + 20
    devices = Devices(
        user=owner.astype(np.int64),
        lat=home_lat[owner] + rng.normal(0, 0.03, len(owner)),
        lon=home_lon[owner] + rng.normal(0, 0.03, len(owner)),
        ip=random_ips(rng, octet.astype(np.int64)),
        kind=kinds,
        available_us=available,
    )
    return Population(
        start_us=start_us, end_us=end_us, city_lat=city_lat, city_lon=city_lon,
        created_us=created, home_lat=home_lat, home_lon=home_lon, home_city=home_city,
        tz_hours=tz_hours, rate_per_day=rate, amount_mu=mu, amount_sigma=sigma,
        p_online=p_online, fraud_account=fraud_account, social=social,
        usual_pos_ptr=pos_ptr, usual_pos=usual_pos, usual_online_ptr=online_ptr,
        usual_online=usual_online, game_terminal=game_terminal, device_ptr=device_ptr,
        late_device=late_device, term_lat=t_lat, term_lon=t_lon, term_city=t_city,
        term_channel=t_channel, term_game=t_game, devices=devices,
    )
