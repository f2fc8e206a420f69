"""numba kernels of the feature engine: one call per batch over grouped arrays.

Each kernel has a plain Python/NumPy twin in `fraud.features.reference`, and the hypothesis
tests in ``tests/unit/test_features_kernels.py`` check the two agree on random streams.
Kernels are compiled with ``cache=True`` (numba honours ``NUMBA_CACHE_DIR``) and warmed up by
`warm_up()` at engine start, never per batch.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np
import numpy.typing as npt

from fraud.features.fixedpoint import fixed_or_wild, fixed_to_float

__all__ = [
    "N_USER_FEATURES",
    "calendar_kernel",
    "factorize_int64",
    "fnv1a_utf32",
    "group_by_code",
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

N_USER_FEATURES = 12  # counts x3, means x3, ratio, since-prev, seen, distinct, distance, new dev
EARTH_RADIUS_KM = 6371.0088


@nb.njit(cache=True, nogil=True)
def fnv1a_utf32(codepoints: npt.NDArray[np.uint32]) -> U64:  # pragma: no cover - compiled
    """FNV-1a 64 of each row of a UTF-32 matrix (NUL padding ignored); "" hashes to 0."""
    n, width = codepoints.shape
    out = np.zeros(n, dtype=np.uint64)
    prime = np.uint64(1099511628211)
    for i in range(n):
        h = np.uint64(14695981039346656037)
        length = 0
        for k in range(width):
            c = codepoints[i, k]
            if c == 0:
                break
            length += 1
            for shift in range(0, 32, 8):
                h ^= np.uint64((c >> shift) & 0xFF)
                h *= prime
        if length == 0:
            out[i] = np.uint64(0)
        elif h == np.uint64(0):
            out[i] = np.uint64(1)
        else:
            out[i] = h
    return out


@nb.njit(cache=True, nogil=True)
def factorize_int64(keys: I64) -> tuple[I64, I64]:  # pragma: no cover - compiled
    """Dense codes in order of first appearance, and the first row of each code (hash table)."""
    n = len(keys)
    size = 16
    while size < 2 * n:
        size *= 2
    mask = size - 1
    slot_key = np.empty(size, dtype=np.int64)
    slot_code = np.full(size, -1, dtype=np.int64)
    codes = np.empty(n, dtype=np.int64)
    first = np.empty(n, dtype=np.int64)
    n_codes = 0
    for i in range(n):
        k = keys[i]
        s = (np.uint64(k) * np.uint64(11400714819323198485)) >> np.uint64(40)
        j = np.int64(s) & mask
        while True:
            c = slot_code[j]
            if c < 0:
                slot_key[j] = k
                slot_code[j] = n_codes
                codes[i] = n_codes
                first[n_codes] = i
                n_codes += 1
                break
            if slot_key[j] == k:
                codes[i] = c
                break
            j = (j + 1) & mask
    return codes, first[:n_codes].copy()


@nb.njit(cache=True, nogil=True)
def group_by_code(codes: I64, n_codes: int) -> tuple[I64, I64]:  # pragma: no cover
    """A stable counting sort: (order, offsets) so rows of code c are order[off[c]:off[c+1]]."""
    offsets = np.zeros(n_codes + 1, dtype=np.int64)
    for i in range(len(codes)):
        offsets[codes[i] + 1] += 1
    for c in range(n_codes):
        offsets[c + 1] += offsets[c]
    fill = offsets[:-1].copy()
    order = np.empty(len(codes), dtype=np.int64)
    for i in range(len(codes)):
        c = codes[i]
        order[fill[c]] = i
        fill[c] += 1
    return order, offsets


@nb.njit(cache=True, nogil=True)
def sort_segments(codes: I64, times: I64, n_codes: int) -> tuple[I64, I64]:  # pragma: no cover
    """Order rows by (code, time), stable; O(n) when each code's rows are already in time order.

    Returns (order, offsets) like `group_by_code`.
    """
    order, offsets = group_by_code(codes, n_codes)
    for c in range(n_codes):
        a = offsets[c]
        b = offsets[c + 1]
        ordered = True
        for k in range(a + 1, b):
            if times[order[k]] < times[order[k - 1]]:
                ordered = False
                break
        if not ordered:
            seg = order[a:b].copy()
            idx = np.argsort(times[seg], kind="mergesort")
            order[a:b] = seg[idx]
    return order, offsets


@nb.njit(cache=True, nogil=True)
def segment_count_le(offsets: I64, times: I64, codes: I64, t: I64) -> I64:  # pragma: no cover
    """For each query, one past the last row of segment `codes[i]` with time <= t[i].

    Unknown codes (-1) give 0. Segments are sorted by time.
    """
    out = np.zeros(len(codes), dtype=np.int64)
    for i in range(len(codes)):
        c = codes[i]
        if c < 0:
            continue
        lo = offsets[c]
        hi = offsets[c + 1]
        out[i] = lo + np.searchsorted(times[lo:hi], t[i], side="right")
    return out


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


@nb.njit(cache=True, nogil=True)
def _prev_same(keys: U64, seg_off: I64, skip_zero: bool, prev: I64) -> None:  # pragma: no cover
    """Fill `prev` with the previous position in the same segment holding the same key
    (-1 when none)."""
    prev[:] = -1
    longest = 1
    for s in range(len(seg_off) - 1):
        longest = max(longest, seg_off[s + 1] - seg_off[s])
    size = 16
    while size < 2 * longest:
        size *= 2
    mask = size - 1
    slot_key = np.zeros(size, dtype=np.uint64)
    slot_pos = np.zeros(size, dtype=np.int64)
    slot_gen = np.full(size, -1, dtype=np.int64)
    for s in range(len(seg_off) - 1):
        for p in range(seg_off[s], seg_off[s + 1]):
            k = keys[p]
            if skip_zero and k == 0:
                continue
            j = np.int64((k * np.uint64(11400714819323198485)) >> np.uint64(40)) & mask
            while True:
                if slot_gen[j] != s:
                    slot_gen[j] = s
                    slot_key[j] = k
                    slot_pos[j] = p
                    break
                if slot_key[j] == k:
                    prev[p] = slot_pos[j]
                    slot_pos[j] = p
                    break
                j = (j + 1) & mask


@nb.njit(cache=True, nogil=True)
def user_kernel(
    seg_off: I64, hist_len: I64, ts: I64, amount: F64, terminal: U64, device: U64,
    lat: F64, lon: F64, row_pos: I64, row_user: I64, agg_count: I64, agg_sum: F64,
    agg_loc: I64, agg_lat: F64, agg_lon: F64, history_k: int, window_cap: int,
    windows_us: I64, out: F64, cols: I64, work: I64, res: F64,
) -> None:  # pragma: no cover - compiled
    """User features over each user's history followed by the batch's rows (arrival order).

    Segment s (offsets `seg_off`) holds user s's `hist_len[s]` stored events, then the
    batch's rows of that user in arrival order; batch row r sits at position `row_pos[r]` of
    segment `row_user[r]`. Writes feature k of row r to ``out[r, cols[k]]`` (counts per
    window, means per window, then the six behaviour features), turns `ts` into effective
    times in place and updates the aggregates with the batch's rows. Windows must be
    ascending. `work` (int64, 3 x len(ts)) and `res` (row-major, batch rows x 12) are
    scratch space from the caller: NumPy gives large arrays transparent huge pages, numba's
    allocator does not, and the page faults then cost ~4x more.

    O(1) amortised work per row: one forward-only cursor per window, and running window
    sums kept as exact 128-bit integers (`fraud.features.fixedpoint`), so adding the entering
    and subtracting the leaving amounts never drifts and a sum depends only on the window's
    content, however the stream was batched. The distinct-terminal count slides with the
    1-day cursor (`_prev_same` / its inverse tell when a terminal enters or leaves).
    """
    nw = len(windows_us)
    m = len(ts)
    eff = ts
    prev_term = work[0]
    prev_dev = work[1]
    next_term = work[2]
    q = 0  # results go to res[q] in visiting order; row r's are at row_pos[r] + shift[s]
    shift = np.empty(len(seg_off) - 1, dtype=np.int64)
    _prev_same(terminal, seg_off, False, prev_term)
    _prev_same(device, seg_off, True, prev_dev)
    next_term[:] = m
    for p in range(m):
        if prev_term[p] >= 0:
            next_term[prev_term[p]] = p
    cur = np.empty(nw, dtype=np.int64)
    sh = np.zeros(nw, dtype=np.int64)
    sl = np.zeros(nw, dtype=np.uint64)
    nwild = np.zeros(nw, dtype=np.int64)
    for s in range(len(seg_off) - 1):
        start = seg_off[s]
        end = seg_off[s + 1]
        first_new = start + hist_len[s]
        shift[s] = q - first_new
        if first_new >= end:
            continue
        if first_new > start and eff[first_new - 1] > eff[first_new]:
            eff[first_new] = eff[first_new - 1]
        # The windows of the first new row, over the history: a binary search each, then
        # their sums and the distinct count once; from there everything slides. Windows
        # are nested (ascending lengths), so one pass back from the newest history event
        # fills every window's sum as it passes the window's start.
        reach = max(start, first_new - window_cap)
        h = np.int64(0)
        lw = np.uint64(0)
        z = 0
        x = first_new - 1
        for w in range(nw):
            c = max(_right(eff, start, first_new, eff[first_new] - windows_us[w]), reach)
            cur[w] = c
            while x >= c:
                xh, xl, xw = fixed_or_wild(amount[x])
                nl = lw + xl
                h += xh + (1 if nl < lw else 0)
                lw = nl
                z += xw
                x -= 1
            sh[w] = h
            sl[w] = lw
            nwild[w] = z
        distinct = 0
        for x in range(cur[0], first_new):
            if prev_term[x] < cur[0]:
                distinct += 1
        for p in range(first_new, end):
            if p > start and eff[p - 1] > eff[p]:
                eff[p] = eff[p - 1]
            t = eff[p]
            row = q
            q += 1
            lookback = max(start, p - history_k)  # "seen before": the previous K events
            reach = p - window_cap  # windows: at most window_cap previous events
            ph, pl, pw = fixed_or_wild(amount[p])
            if prev_term[p] < cur[0]:
                distinct += 1
            for w in range(nw):
                nl = sl[w] + pl
                sh[w] += ph + (1 if nl < sl[w] else 0)
                sl[w] = nl
                nwild[w] += pw
                c = cur[w]
                bound = t - windows_us[w]
                while c < p and (eff[c] <= bound or c < reach):
                    xh, xl, xw = fixed_or_wild(amount[c])
                    nl = sl[w] - xl
                    sh[w] -= xh + (1 if sl[w] < xl else 0)
                    sl[w] = nl
                    nwild[w] -= xw
                    if w == 0:
                        distinct -= 1 if next_term[c] > p else 0
                    c += 1
                cur[w] = c
                cnt = p - c + 1
                if nwild[w] == 0:
                    total = fixed_to_float(sh[w], sl[w])
                else:  # a wild amount in the window: the plain float sum, newest first
                    total = 0.0
                    for j in range(p, c - 1, -1):
                        total += amount[j]
                res[row, w] = cnt
                res[row, nw + w] = total / cnt
            c = agg_count[s]
            mean = agg_sum[s] / c if c > 0 else 0.0
            res[row, 2 * nw + 0] = amount[p] / mean if c > 0 and mean > 0 else 1.0
            res[row, 2 * nw + 1] = (t - eff[p - 1]) / 1e6 if p > start else -1.0
            res[row, 2 * nw + 2] = 1.0 if prev_term[p] >= lookback else 0.0
            res[row, 2 * nw + 3] = distinct
            la = lat[p]
            lo_ = lon[p]
            located = not (math.isnan(la) or math.isnan(lo_))
            if located and agg_loc[s] > 0:
                res[row, 2 * nw + 4] = _haversine_km(
                    la, lo_, agg_lat[s] / agg_loc[s], agg_lon[s] / agg_loc[s])
            else:
                res[row, 2 * nw + 4] = -1.0
            res[row, 2 * nw + 5] = 1.0 if device[p] != 0 and prev_dev[p] < lookback else 0.0
            agg_count[s] += 1
            agg_sum[s] += amount[p]
            if located:
                agg_loc[s] += 1
                agg_lat[s] += la
                agg_lon[s] += lo_
    width = res.shape[1]
    for r in range(len(row_pos)):
        at = row_pos[r] + shift[row_user[r]]
        for j in range(width):
            out[r, cols[j]] = res[at, j]


@nb.njit(cache=True, nogil=True)
def terminal_kernel(
    term_code: I64, eff_t: I64, ev_off: I64, ev_ts: I64, batch_pos: I64, store_pos: I64,
    fr_off: I64, fr_ts: I64, fr_label_time: I64, fr_rank: I64, delay_us: int,
    windows_us: I64, out: F64, cols: I64, work: I64, res: F64,
) -> None:  # pragma: no cover - compiled
    """Terminal counts and known-fraud rates over (t-d-w, t-d]; writes ``out[i, cols[k]]``.

    `ev_ts` holds every event (store and batch) sorted by (terminal, time) with segment
    offsets `ev_off`; row i's own event sits at `batch_pos[i]` (-1: already in the store). A
    row sees store events and the batch events that arrived no later than itself, and a fraud
    label only if it arrived no later (`fr_rank` <= i; store labels have -1) and its label
    time is <= the row's time.

    Usual case: along each terminal's time order its batch events are in arrival order, so
    "arrived by row i" is "at or before row i's own position"; each terminal segment is then
    walked once with forward-only cursors and two prefix counts. Otherwise (late arrivals,
    redelivery) rows go in arrival order over a Fenwick tree of arrived events.

    `work` (int64, 2 x (len(ev_ts) + 1)) and `res` (row-major, len(term_code) x 2 *
    windows) are scratch space from the caller (see `user_kernel` on why).
    """
    n = len(term_code)
    m = len(ev_ts)
    arrival = work[0, :m]
    arrival[:] = -1
    ordered = True
    for i in range(n):
        if batch_pos[i] >= 0:
            arrival[batch_pos[i]] = i
        else:
            ordered = False
    for c in range(len(ev_off) - 1):
        if not ordered:
            break
        last = -1
        for k in range(ev_off[c], ev_off[c + 1]):
            if arrival[k] >= 0:
                if arrival[k] < last:
                    ordered = False
                    break
                last = arrival[k]
    if ordered:
        _terminal_ordered(ev_off, ev_ts, arrival, fr_off, fr_ts, fr_label_time, fr_rank,
                          delay_us, windows_us, res, work[1])
    else:
        _terminal_any(term_code, eff_t, ev_off, ev_ts, batch_pos, store_pos, fr_off, fr_ts,
                      fr_label_time, fr_rank, delay_us, windows_us, res)
    # Rows were visited out of order: their results went to the row-major `res` (one cache
    # line per row); copy them into the column-major `out` in blocks, both sides streaming.
    for i0 in range(0, n, 1024):
        i1 = min(n, i0 + 1024)
        for j in range(res.shape[1]):
            cj = cols[j]
            for i in range(i0, i1):
                out[i, cj] = res[i, j]


@nb.njit(cache=True, nogil=True)
def _terminal_ordered(
    ev_off: I64, ev_ts: I64, arrival: I64, fr_off: I64, fr_ts: I64, fr_label_time: I64,
    fr_rank: I64, delay_us: int, windows_us: I64, res: F64, from_store: I64,
) -> None:  # pragma: no cover - compiled
    nw = len(windows_us)
    m = len(ev_ts)
    # Store events before position k; the batch events before k are k minus that.
    from_store[0] = 0
    for k in range(m):
        from_store[k + 1] = from_store[k] + (1 if arrival[k] < 0 else 0)
    lo = np.empty(nw, dtype=np.int64)
    flo = np.empty(nw, dtype=np.int64)
    for c in range(len(ev_off) - 1):
        a = ev_off[c]
        b = ev_off[c + 1]
        fa = fr_off[c]
        fb = fr_off[c + 1]
        hi = a
        fhi = fa
        lo[:] = a
        flo[:] = fa
        for k in range(a, b):
            i = arrival[k]
            if i < 0:
                continue
            # The row's own event holds its effective time: reading it here, in the walk's
            # order, instead of eff_t[i] (a random access) keeps the cursors off cache misses.
            t = ev_ts[k]
            q = t - delay_us
            while hi < b and ev_ts[hi] <= q:
                hi += 1
            while fhi < fb and fr_ts[fhi] <= q:
                fhi += 1
            own = min(hi, k + 1)
            for w in range(nw):
                bound = q - windows_us[w]
                x = lo[w]
                while x < hi and ev_ts[x] <= bound:
                    x += 1
                lo[w] = x
                y = flo[w]
                while y < fhi and fr_ts[y] <= bound:
                    y += 1
                flo[w] = y
                cnt = from_store[hi] - from_store[x]
                if own > x:
                    cnt += (own - from_store[own]) - (x - from_store[x])
                frauds = 0
                for f in range(y, fhi):
                    if fr_rank[f] <= i and fr_label_time[f] <= t:
                        frauds += 1
                res[i, w] = cnt
                res[i, nw + w] = min(frauds / cnt, 1.0) if cnt > 0 else 0.0


@nb.njit(cache=True, nogil=True)
def _terminal_any(
    term_code: I64, eff_t: I64, ev_off: I64, ev_ts: I64, batch_pos: I64, store_pos: I64,
    fr_off: I64, fr_ts: I64, fr_label_time: I64, fr_rank: I64, delay_us: int,
    windows_us: I64, res: F64,
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
            res[i, nw + w] = min(frauds / cnt, 1.0) if cnt > 0 else 0.0


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
                    f0.copy(), 4, 8, w, out, cols, np.zeros((3, 1), dtype=np.int64),
                    np.zeros((1, 12)))
        for own in (i0, np.full(1, -1, dtype=np.int64)):  # the ordered and general paths
            terminal_kernel(i0, i0, np.array([0, 1], dtype=np.int64), i0, own,
                            np.zeros(0, dtype=np.int64), np.zeros(2, dtype=np.int64),
                            np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64),
                            np.zeros(0, dtype=np.int64), 0, w, out, cols,
                            np.zeros((2, 2), dtype=np.int64), np.zeros((1, 6)))
        calendar_kernel(i0, out, 0, 1)
