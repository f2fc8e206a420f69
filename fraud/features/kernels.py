"""numba kernels of the feature engine: one call per batch over grouped arrays.

Each kernel has a plain Python/NumPy twin in `fraud.features.reference`, and the hypothesis
tests in ``tests/unit/test_features_kernels.py`` check the two agree on random streams.
Kernels are compiled with ``cache=True`` (numba honours ``NUMBA_CACHE_DIR``) and warmed up by
`warm_up()` at engine start, never per batch.

The two feature kernels are bound by memory and branch mispredictions, not arithmetic (see
docs/features.md, "Speed"): they visit rows grouped by user or terminal, keep per-row results
in a compact row-major scratch (`aligned_rows`, one or half a cache line per row) and move
them into the column-major feature matrix with one prefetched gather at the end.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np
import numpy.typing as npt

from fraud.features.fixedpoint import fixed_or_wild, fixed_to_float
from fraud.features.grouping import (
    factorize_int64,
    fnv1a_utf32,
    group_by_code,
    segment_count_le,
    sort_segments,
)
from fraud.features.scratch import aligned_rows, prefetch, scratch_rows

__all__ = [
    "N_USER_FEATURES",
    "aligned_rows",
    "calendar_kernel",
    "factorize_int64",
    "fnv1a_utf32",
    "group_by_code",
    "prefetch",
    "scratch_rows",
    "segment_count_le",
    "sort_segments",
    "state_starts",
    "terminal_kernel",
    "user_kernel",
    "warm_up",
]

I64 = npt.NDArray[np.int64]
U64 = npt.NDArray[np.uint64]
F64 = npt.NDArray[np.float64]
I32 = npt.NDArray[np.int32]

N_USER_FEATURES = 12  # counts x3, means x3, ratio, since-prev, seen, distinct, distance, new dev
EARTH_RADIUS_KM = 6371.0088
PREFETCH_AHEAD = 20  # rows a gather asks for ahead (measured on 1 M rows: 6-32 tried)
_FLAG_SEEN = 28  # bits of the packed int32: distinct count below, then two flags
_FLAG_NEW_DEVICE = 29
_MAX_COUNT = 1 << 27  # per-row counts the packed scratch holds (window_cap <= 2**22)


@nb.njit(cache=True, nogil=True, inline="always")
def _right(values: I64, lo: int, hi: int, x: int) -> int:  # pragma: no cover - compiled
    """Index of the first element of sorted values[lo:hi] that is > x (binary search)."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if values[mid] <= x:
            lo = mid + 1
        else:
            hi = mid
    return lo


@nb.njit(cache=True, nogil=True, inline="always")
def _haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:  # pragma: no cover
    p1 = math.radians(lat1)
    p2 = math.radians(lat2)
    dphi = p2 - p1
    dlmb = math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dlmb / 2) ** 2
    return 2.0 * EARTH_RADIUS_KM * math.asin(math.sqrt(min(1.0, a)))


@nb.njit(cache=True, nogil=True, inline="always")
def _advance(ts: I64, x: int, last: int, bound: int, cap: int) -> int:  # pragma: no cover
    """A forward-only cursor: the first index in [x, cap) with ts > bound, else cap.

    ts[x:last + 1] must be sorted, cap <= last + 1 and the answer >= x. Two probes at once
    (independent loads, added up without a branch; sorted, so the count is the step) and a
    loop only for longer jumps: the unpredictable exit of a plain ``while`` loop cost more
    than the work it guarded (a cursor moves ~1 step per row, 0, 1 or 2 at random; two
    probes measured a little faster than four).
    """
    x += (ts[min(x, last)] <= bound) + (ts[min(x + 1, last)] <= bound)
    x = min(x, cap)
    while x < cap and ts[x] <= bound:
        x += 1
    return x


@nb.njit(cache=True, nogil=True, inline="always")
def _window_total(p_hi: U64, p_lo: U64, p_wild: I64, amount: F64, a: int, sh: np.uint64,
                  sl: np.uint64, sz: int, c: int, p: int) -> float:  # pragma: no cover
    """The window sum of amount[c:p + 1] (`fraud.features.fixedpoint.window_sum`'s rule).

    (sh, sl) is the exact fixed-point sum of the segment's amounts up to p and sz how many
    were wild; p_hi/p_lo/p_wild hold the same at each offset, so entry `a` (= c - start)
    subtracted gives the window's exact sum, in 128-bit two's-complement arithmetic on
    unsigned words (wrap-around is exact modulo 2**128, and a window's sum fits).
    """
    if sz == p_wild[a]:
        lo = sl - p_lo[a]
        hi = sh - p_hi[a] - (np.uint64(1) if sl < p_lo[a] else np.uint64(0))
        return fixed_to_float(np.int64(hi), lo)
    total = 0.0  # a wild amount in the window: the plain float sum, newest first
    for j in range(p, c - 1, -1):
        total += amount[j]
    return total


@nb.njit(cache=True, nogil=True, inline="always")
def _probe(table: I64, key: np.int64, gen: int, shift: int,
           mask: int) -> np.int64:  # pragma: no cover - compiled
    """Slot of `key` in an open-addressing table (one 32-byte line per slot: generation, key,
    last position, count); a slot of another generation is free, so nothing is cleared."""
    j = np.int64(np.uint64(key) * np.uint64(11400714819323198485) >> np.uint64(shift)) & mask
    while True:
        if table[j, 0] != gen:
            table[j, 0] = gen
            table[j, 1] = key
            table[j, 2] = -1
            table[j, 3] = 0
            return j
        if table[j, 1] == key:
            return j
        j = (j + 1) & mask


@nb.njit(cache=True, nogil=True)
def user_kernel(
    seg_off: I64, hist_len: I64, ts: I64, amount: F64, terminal: U64, device: U64,
    lat: F64, lon: F64, row_pos: I64, row_user: I64, agg_count: I64, agg_sum: F64,
    agg_loc: I64, agg_lat: F64, agg_lon: F64, history_k: int, window_cap: int,
    windows_us: I64, out: F64, cols: I64, res: F64,
) -> None:  # pragma: no cover - compiled
    """User features over each user's history followed by the batch's rows (arrival order).

    Segment s (offsets `seg_off`) holds user s's `hist_len[s]` stored events, then the
    batch's rows of that user in arrival order; batch row r sits at position `row_pos[r]` of
    segment `row_user[r]`. Writes feature k of row r to ``out[r, cols[k]]`` (counts per
    window, means per window, then the six behaviour features), turns `ts` into effective
    times in place and updates the aggregates with the batch's rows. `windows_us`: the three
    window lengths, ascending. `res` is scratch from the caller, ``aligned_rows(len(row_pos),
    8, np.float64)``: one cache line of results per row, in visiting order.

    O(1) amortised work per row and one pass over each segment, everything it needs kept in
    small per-user tables that stay in cache: fixed-point prefix sums of the amounts
    (`fraud.features.fixedpoint`; a window's sum is a difference of two, exact, so it
    depends only on the window's content, however the stream was batched), a forward-only
    cursor per window, and a hash table of the user's terminals (last position, count in
    the 1-day window) and devices, for "seen before" and the sliding distinct count.
    """
    if len(windows_us) != 3 or window_cap >= _MAX_COUNT:
        raise ValueError("user_kernel: three windows and window_cap < 2**27 expected")
    n_seg = len(seg_off) - 1
    eff = ts
    w0, w1, w2 = windows_us[0], windows_us[1], windows_us[2]
    longest = 1
    for s in range(n_seg):
        longest = max(longest, seg_off[s + 1] - seg_off[s])
    size = 16
    while size < 2 * longest:
        size *= 2
    terms = np.full((size, 4), -1, dtype=np.int64)
    devs = np.full((size, 4), -1, dtype=np.int64)
    p_hi = np.zeros(longest + 1, dtype=np.uint64)
    p_lo = np.zeros(longest + 1, dtype=np.uint64)
    p_wild = np.zeros(longest + 1, dtype=np.int64)
    slot = np.empty(longest, dtype=np.int64)
    # Per row: window sums x3, amount ratio, (int64) gap to the previous event, distance,
    # then int32 counts x3 and the distinct count with the two flags above it.
    flags = res.view(np.int32)
    since = res.view(np.int64)[:, 4]
    shift = np.empty(n_seg, dtype=np.int64)
    q = 0  # results go to res[q] in visiting order; row r's are at row_pos[r] + shift[s]
    for s in range(n_seg):
        start = seg_off[s]
        end = seg_off[s + 1]
        first_new = start + hist_len[s]
        shift[s] = q - first_new
        if first_new >= end:
            continue
        bits = 4
        while (1 << bits) < 2 * (end - start):
            bits += 1
        mask = (1 << bits) - 1
        hshift = 64 - bits
        sh = np.uint64(0)
        sl = np.uint64(0)
        sz = 0
        distinct = 0
        u0 = u1 = u2 = start  # time cursors of the three windows
        c0 = start  # first position the distinct-terminal count holds
        a_count = agg_count[s]
        a_sum = agg_sum[s]
        a_loc = agg_loc[s]
        a_lat = agg_lat[s]
        a_lon = agg_lon[s]
        for p in range(start, end):
            j = p - start
            if p >= first_new and p > start and eff[p - 1] > eff[p]:
                eff[p] = eff[p - 1]
            # Enter position p (history rows too): prefix sums, terminal and device tables.
            xh, xl, xw = fixed_or_wild(amount[p])
            nl = sl + xl
            sh += np.uint64(xh) + (np.uint64(1) if nl < sl else np.uint64(0))
            sl = nl
            sz += xw
            p_hi[j + 1] = sh
            p_lo[j + 1] = sl
            p_wild[j + 1] = sz
            k = _probe(terms, np.int64(terminal[p]), s, hshift, mask)
            slot[j] = k
            prev_term = terms[k, 2]
            terms[k, 2] = p
            terms[k, 3] += 1
            if terms[k, 3] == 1:
                distinct += 1
            prev_dev = -1
            if device[p] != 0:
                ds = _probe(devs, np.int64(device[p]), s, hshift, mask)
                prev_dev = devs[ds, 2]
                devs[ds, 2] = p
            if p < first_new:
                continue
            t = eff[p]
            row = q
            q += 1
            lookback = max(start, p - history_k)  # "seen before": the previous K events
            reach = p - window_cap  # windows: at most window_cap previous events
            # eff is sorted up to p only (later rows are not clamped yet): probes stop at p.
            u0 = _advance(eff, u0, p, t - w0, p)
            c = max(u0, reach)
            while c0 < c:  # leaving the 1-day window
                k = slot[c0 - start]
                terms[k, 3] -= 1
                if terms[k, 3] == 0:
                    distinct -= 1
                c0 += 1
            u1 = _advance(eff, u1, p, t - w1, p)
            c1 = max(u1, reach)
            u2 = _advance(eff, u2, p, t - w2, p)
            c2 = max(u2, reach)
            # Sums here, means (and the gap in seconds) in the gather: its divisions overlap
            # its memory waits, here they would queue behind the divider.
            res[row, 0] = _window_total(p_hi, p_lo, p_wild, amount, c0 - start, sh, sl, sz,
                                        c0, p)
            res[row, 1] = _window_total(p_hi, p_lo, p_wild, amount, c1 - start, sh, sl, sz,
                                        c1, p)
            res[row, 2] = _window_total(p_hi, p_lo, p_wild, amount, c2 - start, sh, sl, sz,
                                        c2, p)
            mean = a_sum / a_count if a_count > 0 else 0.0
            res[row, 3] = amount[p] / mean if a_count > 0 and mean > 0 else 1.0
            since[row] = t - eff[p - 1] if p > start else -1
            la = lat[p]
            lo_ = lon[p]
            located = not (math.isnan(la) or math.isnan(lo_))
            if located and a_loc > 0:
                res[row, 5] = _haversine_km(la, lo_, a_lat / a_loc, a_lon / a_loc)
            else:
                res[row, 5] = -1.0
            flags[row, 12] = p - c0 + 1
            flags[row, 13] = p - c1 + 1
            flags[row, 14] = p - c2 + 1
            seen = 1 if prev_term >= lookback else 0
            new_dev = 1 if device[p] != 0 and prev_dev < lookback else 0
            flags[row, 15] = distinct | (seen << _FLAG_SEEN) | (new_dev << _FLAG_NEW_DEVICE)
            a_count += 1
            a_sum += amount[p]
            if located:
                a_loc += 1
                a_lat += la
                a_lon += lo_
        agg_count[s] = a_count
        agg_sum[s] = a_sum
        agg_loc[s] = a_loc
        agg_lat[s] = a_lat
        agg_lon[s] = a_lon
    _user_gather(row_pos, row_user, shift, res, flags, res.view(np.int64), out, cols)


@nb.njit(cache=True, nogil=True)
def _user_gather(row_pos: I64, row_user: I64, shift: I64, res: F64, flags: I32, ires: I64,
                 out: F64, cols: I64) -> None:  # pragma: no cover - compiled
    """Row r's results from `res` (at row_pos[r] + shift[user]) into the feature matrix."""
    n = len(row_pos)
    low = (1 << _FLAG_SEEN) - 1
    for r in range(n):
        if r + PREFETCH_AHEAD < n:
            ahead = r + PREFETCH_AHEAD
            prefetch(res, (row_pos[ahead] + shift[row_user[ahead]]) * 8)
        at = row_pos[r] + shift[row_user[r]]
        f = flags[at, 15]
        n0 = flags[at, 12]
        n1 = flags[at, 13]
        n2 = flags[at, 14]
        out[r, cols[0]] = n0
        out[r, cols[1]] = n1
        out[r, cols[2]] = n2
        out[r, cols[3]] = res[at, 0] / n0
        out[r, cols[4]] = res[at, 1] / n1
        out[r, cols[5]] = res[at, 2] / n2
        out[r, cols[6]] = res[at, 3]
        gap = ires[at, 4]
        out[r, cols[7]] = gap / 1e6 if gap >= 0 else -1.0
        out[r, cols[8]] = (f >> _FLAG_SEEN) & 1
        out[r, cols[9]] = f & low
        out[r, cols[10]] = res[at, 5]
        out[r, cols[11]] = (f >> _FLAG_NEW_DEVICE) & 1


@nb.njit(cache=True, nogil=True)
def terminal_kernel(
    term_code: I64, eff_t: I64, ev_off: I64, ev_ts: I64, batch_pos: I64, store_pos: I64,
    fr_off: I64, fr_ts: I64, fr_label_time: I64, fr_rank: I64, delay_us: int,
    windows_us: I64, out: F64, cols: I64, work: I32, res: I32,
) -> None:  # pragma: no cover - compiled
    """Terminal counts and known-fraud rates over (t-d-w, t-d]; writes ``out[i, cols[k]]``.

    `ev_ts` holds every event (store and batch) sorted by (terminal, time) with segment
    offsets `ev_off`; row i's own event sits at `batch_pos[i]` (-1: already in the store). A
    row sees store events and the batch events that arrived no later than itself, and a fraud
    label only if it arrived no later (`fr_rank` <= i; store labels have -1) and its label
    time is <= the row's time. `windows_us`: the three window lengths, ascending.

    Usual case: along each terminal's time order its batch events are in arrival order, so
    "arrived by row i" is "at or before row i's own position"; each terminal segment is then
    walked once with forward-only cursors (`_advance`) and, where the segment has store
    events, a prefix count of them. Otherwise (late arrivals, redelivery) rows go in arrival
    order over a Fenwick tree of arrived events.

    Scratch from the caller: `work`, int32 of len(ev_ts); `res`, ``aligned_rows(max(len(ev_ts),
    len(term_code)), 8, np.int32)`` (event and fraud counts per window, half a cache line per
    event), written in walk order and gathered into `out` by row at the end.
    """
    n = len(term_code)
    m = len(ev_ts)
    if len(windows_us) != 3 or max(n, m) >= 1 << 31:
        raise ValueError("terminal_kernel: three windows and fewer than 2**31 events expected")
    arrival = work[:m]
    arrival[:] = -1
    ordered = True
    for i in range(n):
        if batch_pos[i] >= 0:
            arrival[batch_pos[i]] = i
        else:
            ordered = False
    if ordered:
        ordered = _terminal_ordered(ev_off, ev_ts, arrival, fr_off, fr_ts, fr_label_time,
                                    fr_rank, delay_us, windows_us, res)
    if ordered:
        _terminal_gather(batch_pos, res, len(windows_us), out, cols)
    else:
        _terminal_any(term_code, eff_t, ev_off, ev_ts, batch_pos, store_pos, fr_off, fr_ts,
                      fr_label_time, fr_rank, delay_us, windows_us, res)
        _terminal_gather(np.arange(n), res, len(windows_us), out, cols)


@nb.njit(cache=True, nogil=True)
def _terminal_gather(slot: I64, res: I32, nw: int, out: F64,
                     cols: I64) -> None:  # pragma: no cover - compiled
    """Row i's counts from ``res[slot[i]]`` into the matrix, fraud rates divided out here."""
    n = len(slot)
    width = res.shape[1]
    for i in range(n):
        if i + PREFETCH_AHEAD < n:
            prefetch(res, slot[i + PREFETCH_AHEAD] * width)
        k = slot[i]
        for w in range(nw):
            cnt = res[k, w]
            frauds = res[k, nw + w]
            out[i, cols[w]] = cnt
            # 0 / cnt is +0.0 exactly, and no fraud is by far the usual case.
            out[i, cols[nw + w]] = min(frauds / cnt, 1.0) if frauds > 0 and cnt > 0 else 0.0


@nb.njit(cache=True, nogil=True)
def _terminal_ordered(
    ev_off: I64, ev_ts: I64, arrival: I32, fr_off: I64, fr_ts: I64, fr_label_time: I64,
    fr_rank: I64, delay_us: int, windows_us: I64, res: I32,
) -> bool:  # pragma: no cover - compiled
    """The usual case's walk; False (results incomplete) as soon as a terminal's batch events
    turn out not to be in arrival order along its time order."""
    longest = 0
    for c in range(len(ev_off) - 1):
        longest = max(longest, ev_off[c + 1] - ev_off[c])
    ps = np.empty(longest + 1, dtype=np.int64)  # store events before each segment position
    for c in range(len(ev_off) - 1):
        a = ev_off[c]
        b = ev_off[c + 1]
        run = 0
        ps[0] = 0
        for k in range(a, b):
            run += arrival[k] < 0
            ps[k - a + 1] = run
        # Two copies of the walk, the store-free one with the prefix counts compiled away.
        if run == 0:
            ok = _terminal_segment(a, b, fr_off[c], fr_off[c + 1], ev_ts, arrival, fr_ts,
                                   fr_label_time, fr_rank, delay_us, windows_us, ps, res, True)
        else:
            ok = _terminal_segment(a, b, fr_off[c], fr_off[c + 1], ev_ts, arrival, fr_ts,
                                   fr_label_time, fr_rank, delay_us, windows_us, ps, res, False)
        if not ok:
            return False
    return True


@nb.njit(cache=True, nogil=True, inline="always")
def _frauds_known(fr_ts: I64, fr_rank: I64, fr_label_time: I64, y: int, fhi: int, bound: int,
                  i: int, t: int) -> tuple[int, int]:  # pragma: no cover - compiled
    """Move the window's label cursor y past `bound`; count the labels in [y, fhi) row i knows
    at time t (arrived no later than row i, label time reached)."""
    while y < fhi and fr_ts[y] <= bound:
        y += 1
    frauds = 0
    for f in range(y, fhi):
        if fr_rank[f] <= i and fr_label_time[f] <= t:
            frauds += 1
    return y, frauds


@nb.njit(cache=True, nogil=True, inline="always")
def _events_seen(ps: I64, a: int, hi: int, x: int, own: int,
                 no_store: bool) -> int:  # pragma: no cover - compiled
    """Events in [x, hi) that row k sees: store events, and batch events before `own`."""
    if no_store:
        return max(own - x, 0)
    cnt = ps[hi - a] - ps[x - a]
    if own > x:
        cnt += (own - ps[own - a]) - (x - ps[x - a])
    return int(cnt)


@nb.njit(cache=True, nogil=True, inline="always")
def _terminal_segment(
    a: int, b: int, fa: int, fb: int, ev_ts: I64, arrival: I32, fr_ts: I64,
    fr_label_time: I64, fr_rank: I64, delay_us: int, windows_us: I64, ps: I64, res: I32,
    no_store: bool,
) -> bool:  # pragma: no cover - compiled
    w0, w1, w2 = windows_us[0], windows_us[1], windows_us[2]
    hi = x0 = x1 = x2 = a
    fhi = y0 = y1 = y2 = fa
    last = b - 1
    arrived = -1
    for k in range(a, b):
        i = arrival[k]
        if i < 0:
            continue
        if i < arrived:
            return False
        arrived = i
        # The row's own event holds its effective time: reading it here, in the walk's
        # order, instead of eff_t[i] (a random access) keeps the cursors off cache misses.
        t = ev_ts[k]
        q = t - delay_us
        hi = _advance(ev_ts, hi, last, q, b)
        while fhi < fb and fr_ts[fhi] <= q:
            fhi += 1
        own = min(hi, k + 1)
        x0 = _advance(ev_ts, x0, last, q - w0, hi)
        x1 = _advance(ev_ts, x1, last, q - w1, hi)
        x2 = _advance(ev_ts, x2, last, q - w2, hi)
        res[k, 0] = _events_seen(ps, a, hi, x0, own, no_store)
        res[k, 1] = _events_seen(ps, a, hi, x1, own, no_store)
        res[k, 2] = _events_seen(ps, a, hi, x2, own, no_store)
        if fhi > fa:
            y0, res[k, 3] = _frauds_known(fr_ts, fr_rank, fr_label_time, y0, fhi, q - w0, i, t)
            y1, res[k, 4] = _frauds_known(fr_ts, fr_rank, fr_label_time, y1, fhi, q - w1, i, t)
            y2, res[k, 5] = _frauds_known(fr_ts, fr_rank, fr_label_time, y2, fhi, q - w2, i, t)
        else:
            res[k, 3] = 0
            res[k, 4] = 0
            res[k, 5] = 0
    return True


@nb.njit(cache=True, nogil=True)
def _terminal_any(
    term_code: I64, eff_t: I64, ev_off: I64, ev_ts: I64, batch_pos: I64, store_pos: I64,
    fr_off: I64, fr_ts: I64, fr_label_time: I64, fr_rank: I64, delay_us: int,
    windows_us: I64, res: I32,
) -> None:  # pragma: no cover - compiled
    n = len(term_code)
    nw = len(windows_us)
    m = len(ev_ts)
    tree = np.zeros(m + 1, dtype=np.int64)
    for k in range(len(store_pos)):
        x = store_pos[k] + 1
        while x <= m:
            tree[x] += 1
            x += x & (-x)
    for i in range(n):
        x = batch_pos[i] + 1
        while 0 < x <= m:  # batch_pos -1: the event is already in the store (redelivery)
            tree[x] += 1
            x += x & (-x)
        c = term_code[i]
        t = eff_t[i]
        q = t - delay_us
        a = ev_off[c]
        fa = fr_off[c]
        hi = _right(ev_ts, a, ev_off[c + 1], q)
        fhi = _right(fr_ts, fa, fr_off[c + 1], q)
        upper = 0
        x = hi
        while x > 0:
            upper += tree[x]
            x -= x & (-x)
        for w in range(nw):
            bound = q - windows_us[w]
            lo = _right(ev_ts, a, hi, bound)
            flo = _right(fr_ts, fa, fhi, bound)
            lower = 0
            x = lo
            while x > 0:
                lower += tree[x]
                x -= x & (-x)
            cnt = upper - lower
            frauds = 0
            for f in range(flo, fhi):
                if fr_rank[f] <= i and fr_label_time[f] <= t:
                    frauds += 1
            res[i, w] = cnt
            res[i, nw + w] = frauds


@nb.njit(cache=True, nogil=True)
def state_starts(seg_off: I64, eff: I64, horizon_us: int, history_k: int,
                 window_cap: int) -> I64:  # pragma: no cover - compiled
    """Where each user's kept state begins: the last K events, plus every event within
    `horizon_us` of the newest one (at most `window_cap` of them)."""
    n_users = len(seg_off) - 1
    out = np.empty(n_users, dtype=np.int64)
    for s in range(n_users):
        first = seg_off[s]
        end = seg_off[s + 1]
        recent = _right(eff, first, end, eff[end - 1] - horizon_us)
        out[s] = max(first, min(end - history_k, max(recent, end - window_cap)))
    return out


@nb.njit(cache=True, nogil=True)
def calendar_kernel(
    ts: I64, out: F64, col_weekend: int, col_night: int
) -> None:  # pragma: no cover - compiled
    """is_weekend (Saturday/Sunday, UTC) and is_night (hour <= 6, UTC) of each timestamp."""
    day_us = 86_400_000_000
    hour_us = 3_600_000_000
    for i in range(len(ts)):
        day = ts[i] // day_us  # floor division: correct before 1970 too
        out[i, col_weekend] = 1.0 if (day + 3) % 7 >= 5 else 0.0
        out[i, col_night] = 1.0 if (ts[i] - day * day_us) // hour_us <= 6 else 0.0


def warm_up() -> None:
    """Compile (or load from cache) every kernel once, at start-up."""
    i0 = np.zeros(1, dtype=np.int64)
    u0 = np.zeros(1, dtype=np.uint64)
    f0 = np.zeros(1, dtype=np.float64)
    fnv1a_utf32(np.zeros((1, 1), dtype=np.uint32))
    factorize_int64(i0)
    group_by_code(i0, 1)
    segment_count_le(np.zeros(2, dtype=np.int64), i0, i0, i0)
    sort_segments(i0, i0, 1)
    state_starts(np.array([0, 1], dtype=np.int64), i0, 1, 1, 1)
    w = np.array([1, 2, 3], dtype=np.int64)
    # Two rows, so the Fortran-ordered matrix is not also C-contiguous (a distinct type).
    for out in (np.zeros((2, 12)), np.zeros((2, 12), order="F")):
        cols = np.arange(12, dtype=np.int64)
        user_kernel(np.array([0, 1], dtype=np.int64), i0.copy(), i0.copy(), f0.copy(), u0, u0,
                    f0, f0, i0.copy(), i0.copy(), i0.copy(), f0.copy(), i0.copy(), f0.copy(),
                    f0.copy(), 4, 8, w, out, cols, aligned_rows(1, 8, np.float64))
        for own in (i0, np.full(1, -1, dtype=np.int64)):  # the ordered and general paths
            terminal_kernel(i0, i0, np.array([0, 1], dtype=np.int64), i0, own,
                            np.zeros(0, dtype=np.int64), np.zeros(2, dtype=np.int64),
                            np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64),
                            np.zeros(0, dtype=np.int64), 0, w, out, cols,
                            np.zeros(1, dtype=np.int32), aligned_rows(1, 8, np.int32))
        calendar_kernel(i0, out, 0, 1)
