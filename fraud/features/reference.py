"""Plain Python/NumPy twins of the numba kernels, written for clarity, not speed.

`reference_features` recomputes every feature of a stream row by row, straight from the
definitions in docs/features.md, with no state store and no batching; the kernel helpers have
one-line NumPy twins. Tests compare the kernels against these on random streams.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from fraud.features.api import DAY_US, FEATURE_NAMES, USER_WINDOWS_DAYS, FeatureConfig
from fraud.features.fixedpoint import FIXED_BITS, WILD_AMOUNT
from fraud.features.kernels import EARTH_RADIUS_KM
from fraud.features.support import SupportContext
from fraud.schema.batch import MISSING_TIME, TransactionBatch

__all__ = [
    "factorize_reference",
    "fnv1a_reference",
    "group_by_code_reference",
    "reference_features",
    "segment_count_le_reference",
    "sort_segments_reference",
    "window_sum_reference",
]

I64 = npt.NDArray[np.int64]


def fnv1a_reference(text: str) -> int:
    """FNV-1a 64 over the little-endian UTF-32 bytes of `text`; "" is 0 and 0 becomes 1."""
    if not text:
        return 0
    h = 14695981039346656037
    for byte in text.encode("utf-32-le"):
        h = ((h ^ byte) * 1099511628211) % (1 << 64)
    return h or 1


def factorize_reference(keys: I64) -> tuple[I64, I64]:
    """Codes in order of first appearance and each code's first row."""
    seen: dict[int, int] = {}
    codes = [seen.setdefault(int(k), len(seen)) for k in keys]
    first = [codes.index(c) for c in range(len(seen))]
    return np.asarray(codes, dtype=np.int64), np.asarray(first, dtype=np.int64)


def group_by_code_reference(codes: I64, n_codes: int) -> tuple[I64, I64]:
    order = np.argsort(codes, kind="stable").astype(np.int64)
    offsets = np.searchsorted(codes[order], np.arange(n_codes + 1)).astype(np.int64)
    return order, offsets


def sort_segments_reference(codes: I64, times: I64, n_codes: int) -> tuple[I64, I64]:
    order = np.lexsort((times, codes)).astype(np.int64)
    offsets = np.searchsorted(codes[order], np.arange(n_codes + 1)).astype(np.int64)
    return order, offsets


def segment_count_le_reference(offsets: I64, times: I64, codes: I64, t: I64) -> I64:
    out = []
    for c, ti in zip(codes.tolist(), t.tolist(), strict=True):
        if c < 0:
            out.append(0)
            continue
        seg = times[offsets[c]:offsets[c + 1]].tolist()
        out.append(int(offsets[c]) + sum(1 for x in seg if x <= ti))
    return np.asarray(out, dtype=np.int64)


def window_sum_reference(amounts: list[float]) -> float:
    """A user window's amount sum, straight from its definition in docs/features.md.

    Each amount on the 2**-64 grid (``round(a * 2**64)``: exact for ordinary amounts), summed
    exactly with Python integers and rounded once to float64. If any amount is not finite or
    has |a| >= 2**40 (`WILD_AMOUNT`), the plain float sum, newest (last) first.
    """
    if not all(abs(a) < WILD_AMOUNT for a in amounts):
        total = 0.0
        for a in reversed(amounts):
            total += a
        return total
    exact = sum(round(a * 2.0**FIXED_BITS) for a in amounts)
    return math.ldexp(float(exact), -FIXED_BITS)


def _haversine(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = (math.sin((p2 - p1) / 2) ** 2
         + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2)
    return 2.0 * EARTH_RADIUS_KM * math.asin(math.sqrt(min(1.0, a)))


@dataclass
class _User:
    events: list[tuple[int, float, str, str]] = field(default_factory=list)
    count: int = 0
    amount_sum: float = 0.0
    loc: int = 0
    lat_sum: float = 0.0
    lon_sum: float = 0.0


def reference_features(
    batch: TransactionBatch, config: FeatureConfig, support: SupportContext | None = None
) -> npt.NDArray[np.float64]:
    """Every feature of `batch` taken as one stream in arrival order (rows = batch order).

    Rows with is_fraud == 1 are fraud labels that arrive with their row.
    """
    k = config.history_k
    d = config.label_delay_us
    users: dict[str, _User] = defaultdict(_User)
    term_events: dict[str, list[tuple[int, int]]] = defaultdict(list)  # (ts, arrival)
    term_frauds: dict[str, list[tuple[int, int, int]]] = defaultdict(list)  # (ts, lt, arr)
    out = np.zeros((len(batch), len(FEATURE_NAMES)))
    col = {name: j for j, name in enumerate(FEATURE_NAMES)}
    for i in range(len(batch)):
        u = users[str(batch.user_id[i])]
        ts = int(batch.timestamp_us[i])
        t = max(ts, u.events[-1][0]) if u.events else ts
        amount = float(batch.amount[i])
        term = str(batch.terminal_id[i])
        dev = str(batch.device_id[i])
        lat, lon = float(batch.lat[i]), float(batch.lon[i])
        previous = u.events[-k:]
        window_all = [*u.events[-config.window_cap:], (t, amount, term, dev)]
        for w in USER_WINDOWS_DAYS:
            inside = [e for e in window_all if e[0] > t - w * DAY_US]
            out[i, col[f"user_tx_count_{w}d"]] = len(inside)
            out[i, col[f"user_amount_mean_{w}d"]] = \
                window_sum_reference([e[1] for e in inside]) / len(inside)
        mean = u.amount_sum / u.count if u.count else 0.0
        out[i, col["amount_to_user_mean"]] = amount / mean if u.count and mean > 0 else 1.0
        out[i, col["user_seconds_since_prev"]] = (t - u.events[-1][0]) / 1e6 if u.events \
            else -1.0
        out[i, col["user_terminal_seen"]] = float(any(e[2] == term for e in previous))
        day = [e for e in window_all if e[0] > t - DAY_US]
        out[i, col["user_distinct_terminals_1d"]] = len({e[2] for e in day})
        located = not (math.isnan(lat) or math.isnan(lon))
        out[i, col["user_distance_from_usual_km"]] = (
            _haversine(lat, lon, u.lat_sum / u.loc, u.lon_sum / u.loc)
            if located and u.loc else -1.0)
        out[i, col["user_new_device"]] = float(dev != "" and all(e[3] != dev for e in previous))
        u.events.append((t, amount, term, dev))
        u.count += 1
        u.amount_sum += amount
        if located:
            u.loc += 1
            u.lat_sum += lat
            u.lon_sum += lon
        term_events[term].append((t, i))
        if int(batch.is_fraud[i]) == 1:
            lt = int(batch.label_time_us[i])
            term_frauds[term].append((t, t + d if lt == MISSING_TIME else lt, i))
        q = t - d
        for w in USER_WINDOWS_DAYS:
            lo = q - w * DAY_US
            cnt = sum(1 for ets, _ in term_events[term] if lo < ets <= q)
            frauds = sum(1 for fts, flt, _ in term_frauds[term] if lo < fts <= q and flt <= t)
            out[i, col[f"terminal_tx_count_{w}d"]] = cnt
            out[i, col[f"terminal_fraud_rate_{w}d"]] = min(frauds / cnt, 1.0) if cnt else 0.0
        out[i, col["is_weekend"]] = float((ts // DAY_US + 3) % 7 >= 5)
        out[i, col["is_night"]] = float((ts // 3_600_000_000) % 24 <= 6)
    _support_reference(batch, support, out, col)
    return out


def _support_reference(batch: TransactionBatch, ctx: SupportContext | None,
                       out: npt.NDArray[np.float64], col: dict[str, int]) -> None:
    for i in range(len(batch)):
        ts = int(batch.timestamp_us[i])
        amount = float(batch.amount[i])
        lat, lon = float(batch.lat[i]), float(batch.lon[i])
        dev = str(batch.device_id[i])
        values = {"session_age_s": -1.0, "session_device_mismatch": 0.0,
                  "cart_amount_ratio": -1.0, "device_distance_km": -1.0,
                  "account_age_days": -1.0, "social_followers": -1.0, "social_posts": -1.0}
        if ctx is not None:
            created = int(ctx.session_created_us[i])
            if created != MISSING_TIME:
                values["session_age_s"] = (ts - created) / 1e6
            sdev = str(ctx.session_device_id[i])
            values["session_device_mismatch"] = float(sdev != "" and dev not in ("", sdev))
            cart = float(ctx.cart_value[i])
            if cart > 0:
                values["cart_amount_ratio"] = amount / cart
            dlat, dlon = float(ctx.device_lat[i]), float(ctx.device_lon[i])
            if not any(math.isnan(x) for x in (lat, lon, dlat, dlon)):
                values["device_distance_km"] = _haversine(lat, lon, dlat, dlon)
            acct = int(ctx.account_created_us[i])
            if acct != MISSING_TIME:
                values["account_age_days"] = (ts - acct) / DAY_US
            if ctx.followers[i] >= 0:
                values["social_followers"] = float(ctx.followers[i])
            if ctx.posts[i] >= 0:
                values["social_posts"] = float(ctx.posts[i])
        for name, value in values.items():
            out[i, col[name]] = value
