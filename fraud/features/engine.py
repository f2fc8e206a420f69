"""The feature engine: one extraction API for the consumer, replay and training.

`FeatureEngine.extract` takes a batch in arrival order and a `StateStore`, computes every
feature in `FEATURE_NAMES` with two kernel calls (users, terminals), and writes the updated
state back. `compute_features` is the whole-file helper: it orders a file by event time and
feeds the labels found in it as the label feed (a label counts only from its label time).

Splitting a stream into batches of any sizes gives the same features as processing it whole,
because everything a row sees is either in the store or arrived earlier in its own batch.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import cast

import numpy as np
import numpy.typing as npt

from fraud.features import kernels
from fraud.features.api import (
    DAY_US,
    FEATURE_NAMES,
    NEUTRAL_VALUES,
    SUPPORT_FEATURES,
    USER_WINDOWS_DAYS,
    FeatureConfig,
    FeatureMatrix,
    LabelBatch,
)
from fraud.features.ids import dense_codes, stable_hash
from fraud.features.store import (
    InMemoryStore,
    StateStore,
    TerminalSnapshot,
    columns_of,
    states_of,
)
from fraud.features.support import SupportContext, SupportStore
from fraud.features.usertable import EVENT_COLUMNS, ColumnarUserStore, UserColumns, ranges
from fraud.schema.batch import MISSING_TIME, TransactionBatch

__all__ = ["FeatureEngine", "compute_features"]

I64 = npt.NDArray[np.int64]
U64 = npt.NDArray[np.uint64]
F64 = npt.NDArray[np.float64]
ObjArray = npt.NDArray[np.object_]

WINDOWS_US = np.array([w * DAY_US for w in USER_WINDOWS_DAYS], dtype=np.int64)
_COL = {name: j for j, name in enumerate(FEATURE_NAMES)}
_USER_COLS = np.array(
    [_COL[f"user_tx_count_{w}d"] for w in USER_WINDOWS_DAYS]
    + [_COL[f"user_amount_mean_{w}d"] for w in USER_WINDOWS_DAYS]
    + [_COL[name] for name in ("amount_to_user_mean", "user_seconds_since_prev",
                               "user_terminal_seen", "user_distinct_terminals_1d",
                               "user_distance_from_usual_km", "user_new_device")],
    dtype=np.int64)
_TERMINAL_COLS = np.array(
    [_COL[f"terminal_tx_count_{w}d"] for w in USER_WINDOWS_DAYS]
    + [_COL[f"terminal_fraud_rate_{w}d"] for w in USER_WINDOWS_DAYS], dtype=np.int64)
_warmed = False


@dataclass(slots=True)
class _UserPass:
    """What the user kernel produced for one batch (batch order unless said otherwise)."""

    eff: I64
    user_ids: ObjArray
    user_codes: I64
    loaded: UserColumns
    seg_off: I64
    combined: dict[str, npt.NDArray[np.generic]]
    aggregates: tuple[I64, F64, I64, F64, F64]
    batch_pos: I64


class FeatureEngine:
    """Computes features batch by batch, keeping state in a `StateStore`.

    >>> from fraud.schema.batch import TransactionBatch
    >>> batch = TransactionBatch.from_columns(transaction_id=["t1", "t2"],
    ...     timestamp_us=[0, 3_600_000_000], user_id=["u", "u"], terminal_id=["a", "b"],
    ...     amount=[10.0, 30.0])
    >>> m = FeatureEngine().extract(batch, InMemoryStore())
    >>> m.column("user_tx_count_1d").tolist(), m.column("user_amount_mean_1d").tolist()
    ([1.0, 2.0], [10.0, 20.0])
    """

    def __init__(self, config: FeatureConfig | None = None) -> None:
        global _warmed  # noqa: PLW0603 - compile once per process, not per engine
        self.config = config or FeatureConfig()
        # Seconds spent in the last `extract`: "features" (all of it but the store writes),
        # "user_kernel" and "terminal_kernel" (the windowed features), "commit".
        self.timings: dict[str, float] = {}
        if not _warmed:
            kernels.warm_up()
            _warmed = True

    def extract(
        self,
        batch: TransactionBatch,
        store: StateStore,
        support: SupportContext | None = None,
        *,
        commit: bool = True,
    ) -> FeatureMatrix:
        """Features of `batch` (rows in arrival order), then the batch's effects on `store`.

        Rows with ``is_fraud == 1`` are also fraud labels (replay files carry their labels),
        known from their `label_time_us`, else `label_delay_days` after the transaction.
        `commit=False` leaves the store untouched (a what-if, or a one-shot file).
        """
        n = len(batch)
        if support is not None and len(support) != n:
            raise ValueError(f"support context has {len(support)} rows, batch has {n}")
        self.timings.clear()
        if n == 0 or not commit:
            return self._extract(batch, store, support, commit=False, loaded=None,
                                 tx_hash=None)
        tx_hash = stable_hash(batch.transaction_id)
        user_codes = dense_codes(batch.user_id)
        loaded = _Loaded(user_codes[1],
                         _load_users(store, user_codes[1], self.config.state_events))
        # A redelivered transaction is stored at or after its own timestamp, so only the
        # state's events from the batch's earliest timestamp on can be repeats.
        held = loaded.columns.tx[loaded.columns.ts >= int(batch.timestamp_us.min())]
        redelivered = np.isin(tx_hash, held) if len(held) else None
        if redelivered is None or not redelivered.any():
            return self._extract(batch, store, support, commit=True, loaded=loaded,
                                 tx_hash=tx_hash, user_codes=user_codes)
        # Transactions the user state already holds (a retried or redelivered batch) are
        # not added again. Their features are computed against the current state without
        # writing anything (an approximation: the effects of a transaction are keyed by its
        # id downstream); the other rows get exactly the features of a clean run.
        again = self._extract(batch.take(redelivered), store, _take(support, redelivered),
                              commit=False, loaded=loaded, tx_hash=None)
        fresh = ~redelivered
        new = self._extract(batch.take(fresh), store, _take(support, fresh), commit=True,
                            loaded=loaded, tx_hash=tx_hash[fresh])
        values = np.empty((n, len(FEATURE_NAMES)), dtype=np.float64, order="F")
        values[redelivered] = again.values
        values[fresh] = new.values
        eff = np.empty(n, dtype=np.int64)
        eff[redelivered] = again.effective_time_us
        eff[fresh] = new.effective_time_us
        return FeatureMatrix(FEATURE_NAMES, values, batch.transaction_id, eff,
                             redelivered=redelivered)

    def _extract(
        self, batch: TransactionBatch, store: StateStore, support: SupportContext | None, *,
        commit: bool, loaded: _Loaded | None, tx_hash: U64 | None,
        user_codes: tuple[I64, ObjArray] | None = None,
    ) -> FeatureMatrix:
        n = len(batch)
        # Column-major: most stages (and a model) read or write whole columns. The kernels
        # fill it in place; stage timings use a monotonic counter, never feature time.
        values = np.empty((n, len(FEATURE_NAMES)), dtype=np.float64, order="F")
        if n == 0:
            return FeatureMatrix(FEATURE_NAMES, values, batch.transaction_id,
                                 np.empty(0, dtype=np.int64))
        timings = self.timings
        started = time.perf_counter()
        term_codes, term_ids = dense_codes(batch.terminal_id)
        users = self._user_pass(batch, store, stable_hash(term_ids)[term_codes], values,
                                loaded, user_codes or dense_codes(batch.user_id))
        snapshot = self._load_terminals(store, term_ids, users.eff)
        skip_event, label_rows, label_time = self._redelivered(
            batch, term_codes, users.eff, snapshot, tx_hash)
        _terminal_features(term_codes, len(term_ids), users.eff, snapshot,
                           skip_event=skip_event, label_rows=label_rows,
                           label_time=label_time, delay_us=self.config.label_delay_us,
                           out=values, timings=timings)
        kernels.calendar_kernel(batch.timestamp_us, values, _COL["is_weekend"],
                                _COL["is_night"])
        _support_features(batch, support, values)
        timings["features"] = time.perf_counter() - started
        if commit and tx_hash is not None:
            started = time.perf_counter()
            self._commit(store, batch, users, tx_hash=tx_hash, skip_event=skip_event,
                         label_rows=label_rows, label_time=label_time)
            timings["commit"] = time.perf_counter() - started
        return FeatureMatrix(FEATURE_NAMES, values, batch.transaction_id, users.eff)

    def apply_labels(self, labels: LabelBatch, store: StateStore) -> int:
        """Feed fraud labels to the terminal state; returns how many fraud labels were sent.

        Non-fraud labels change nothing (terminal state counts known frauds only).
        """
        fraud = labels.is_fraud == 1
        if not np.any(fraud):
            return 0
        ts = labels.timestamp_us[fraud]
        lt = labels.label_time_us[fraud]
        lt = np.where(lt == MISSING_TIME, ts + self.config.label_delay_us, lt)
        store.apply_labels(labels.terminal_id[fraud], ts,
                           stable_hash(labels.transaction_id[fraud]), lt)
        return int(fraud.sum())

    # -- the user side -------------------------------------------------------------------

    def _user_pass(self, batch: TransactionBatch, store: StateStore, term_hash: U64,
                   out: F64, loaded: _Loaded | None, user_codes: tuple[I64, ObjArray],
                   ) -> _UserPass:
        n = len(batch)
        codes, user_ids = user_codes
        n_users = len(user_ids)
        if loaded is None:
            states = _load_users(store, user_ids, self.config.state_events)
        else:
            states = loaded.of(user_ids)
        hist_len = states.hist_len
        order, offs = kernels.group_by_code(codes, n_users)
        counts = np.diff(offs)
        seg_off = np.zeros(n_users + 1, dtype=np.int64)
        np.cumsum(hist_len + counts, out=seg_off[1:])
        m = int(seg_off[-1])
        rank = np.arange(n, dtype=np.int64) - offs[codes[order]]
        batch_pos = np.empty(n, dtype=np.int64)
        batch_pos[order] = seg_off[codes[order]] + hist_len[codes[order]] + rank
        dev_hash = _hash_by_value(batch.device_id)
        combined: dict[str, npt.NDArray[np.generic]] = {
            "ts": np.empty(m, dtype=np.int64), "amount": np.empty(m, dtype=np.float64),
            "terminal": np.empty(m, dtype=np.uint64), "device": np.empty(m, dtype=np.uint64),
            "lat": np.full(m, np.nan), "lon": np.full(m, np.nan),
            "tx": np.zeros(m, dtype=np.uint64),
        }
        for name, src in (("ts", batch.timestamp_us), ("amount", batch.amount),
                          ("terminal", term_hash), ("device", dev_hash), ("lat", batch.lat),
                          ("lon", batch.lon)):
            combined[name][batch_pos] = src
        at = ranges(seg_off[:-1], hist_len)
        for name in EVENT_COLUMNS:
            combined[name][at] = getattr(states, name)
        # The kernel updates the aggregates in place: copies, so `states` stays as read.
        agg_count = states.count.copy()
        agg_sum = states.amount_sum.copy()
        agg_loc = states.loc_count.copy()
        agg_lat = states.lat_sum.copy()
        agg_lon = states.lon_sum.copy()
        started = time.perf_counter()
        # combined["ts"] becomes the effective times, in place. The results scratch is this
        # thread's, kept between batches (`kernels.scratch_rows`).
        kernels.user_kernel(
            seg_off, hist_len, combined["ts"], combined["amount"],  # type: ignore[arg-type]
            combined["terminal"], combined["device"], combined["lat"],  # type: ignore[arg-type]
            combined["lon"], batch_pos, codes, agg_count, agg_sum,  # type: ignore[arg-type]
            agg_loc, agg_lat, agg_lon, self.config.history_k, self.config.window_cap,
            WINDOWS_US, out, _USER_COLS, kernels.scratch_rows("results", n, 8, np.float64),
        )
        self.timings["user_kernel"] = time.perf_counter() - started
        eff: I64 = combined["ts"]  # type: ignore[assignment]
        return _UserPass(eff[batch_pos], user_ids, codes, states, seg_off, combined,
                         (agg_count, agg_sum, agg_loc, agg_lat, agg_lon), batch_pos)

    # -- the terminal side -------------------------------------------------------------

    def _load_terminals(self, store: StateStore, term_ids: ObjArray,
                        eff: I64) -> TerminalSnapshot:
        d = self.config.label_delay_us
        since = int(eff.min()) - d - int(WINDOWS_US.max()) + 1
        until = int(eff.max()) - d
        return store.load_terminals(term_ids.tolist(), since, until)

    def _redelivered(
        self, batch: TransactionBatch, term_codes: I64, eff: I64, snap: TerminalSnapshot,
        tx_hash: U64 | None,
    ) -> tuple[npt.NDArray[np.bool_], I64, I64]:
        """Which batch events and labels the store already holds, and the batch's labels."""
        n = len(batch)
        label_rows = np.flatnonzero(batch.is_fraud == 1).astype(np.int64)
        lt = batch.label_time_us[label_rows]
        label_time = np.where(lt == MISSING_TIME, eff[label_rows] + self.config.label_delay_us,
                              lt).astype(np.int64)
        skip_event = np.zeros(n, dtype=bool)
        skip_label = np.zeros(len(label_rows), dtype=bool)
        # A held event has the very timestamp of its row; a snapshot older than the whole
        # batch (every in-order batch) holds none of them, and needs no membership test.
        if (len(snap.event_ts) and int(snap.event_ts.max()) >= int(eff.min())
                and np.isin(eff, snap.event_ts).any()):
            hashes = stable_hash(batch.transaction_id) if tx_hash is None else tx_hash
            known = set(zip(snap.event_terminal.tolist(), snap.event_ts.tolist(),
                            snap.event_hash.tolist(), strict=True))
            for i in np.flatnonzero(np.isin(eff, snap.event_ts)).tolist():
                key = (int(term_codes[i]), int(eff[i]), int(hashes[i]) & 0xFFFFFFFF)
                skip_event[i] = key in known
        if (len(snap.fraud_ts) and len(label_rows)
                and int(snap.fraud_ts.max()) >= int(eff[label_rows].min())):
            hashes = stable_hash(batch.transaction_id) if tx_hash is None else tx_hash
            known_l = set(zip(snap.fraud_terminal.tolist(), snap.fraud_ts.tolist(),
                              snap.fraud_hash.tolist(), snap.fraud_label_time.tolist(),
                              strict=True))
            for k, i in enumerate(label_rows.tolist()):
                key_l = (int(term_codes[i]), int(eff[i]), int(hashes[i]) & 0xFFFF,
                         int(label_time[k]))
                skip_label[k] = key_l in known_l
        return skip_event, label_rows[~skip_label], label_time[~skip_label]

    # -- writing state back ------------------------------------------------------------

    def _commit(
        self, store: StateStore, batch: TransactionBatch, users: _UserPass, *, tx_hash: U64,
        skip_event: npt.NDArray[np.bool_], label_rows: I64, label_time: I64,
    ) -> None:
        comb = users.combined
        comb["tx"][users.batch_pos] = tx_hash
        agg_count, agg_sum, agg_loc, agg_lat, agg_lon = users.aggregates
        # Keep the last K events, and every event a later window can still reach: those
        # within the longest window of the newest event, at most window_cap of them.
        starts = kernels.state_starts(users.seg_off, np.asarray(comb["ts"], dtype=np.int64),
                                      int(WINDOWS_US.max()),
                                      self.config.history_k, self.config.window_cap)
        lengths = users.seg_off[1:] - starts
        kept = ranges(starts, lengths)
        new = UserColumns.of(lengths, [comb[name][kept] for name in EVENT_COLUMNS],
                             [agg_count, agg_sum, agg_loc, agg_lat, agg_lon,
                              users.loaded.version])
        # What each user's new state adds to the stored one: its rows of this batch.
        _save_users(store, users.user_ids, new,
                    np.diff(users.seg_off) - users.loaded.hist_len)
        keep = ~skip_event
        store.add_terminal_events(batch.terminal_id[keep], users.eff[keep], tx_hash[keep])
        if len(label_rows):
            store.apply_labels(batch.terminal_id[label_rows], users.eff[label_rows],
                               tx_hash[label_rows], label_time)


def _take(support: SupportContext | None, rows: npt.NDArray[np.bool_]
          ) -> SupportContext | None:
    if support is None:
        return None
    return SupportContext(*(getattr(support, f.name)[rows] for f in fields(support)))


@dataclass(slots=True)
class _Loaded:
    """The user states read for a batch, which parts of it may then be computed from."""

    user_ids: ObjArray
    columns: UserColumns

    def of(self, user_ids: ObjArray) -> UserColumns:
        """The states of `user_ids` (a subset of the loaded users), in that order."""
        if len(user_ids) == len(self.user_ids) and np.array_equal(user_ids, self.user_ids):
            return self.columns
        where = {u: i for i, u in enumerate(self.user_ids.tolist())}
        return self.columns.take(np.fromiter((where[u] for u in user_ids.tolist()),
                                             dtype=np.int64, count=len(user_ids)))


@functools.cache
def _columnar(kind: type) -> bool:
    """Whether stores of this type are a `ColumnarUserStore` (once per type: a runtime
    Protocol check costs far more than the dict probe)."""
    return issubclass(kind, ColumnarUserStore)


def _load_users(store: StateStore, user_ids: ObjArray, keep: int) -> UserColumns:
    """The states of `user_ids` column-wise, from a columnar store without a Python object
    per user, from any other store through its `UserState` records."""
    if _columnar(type(store)):
        return cast(ColumnarUserStore, store).load_user_columns(user_ids, keep)
    ids = user_ids.tolist()
    loaded = store.load_users(ids)
    return columns_of([loaded.get(u) for u in ids], keep)


def _save_users(store: StateStore, user_ids: ObjArray, states: UserColumns,
                appended: I64) -> None:
    if _columnar(type(store)):
        cast(ColumnarUserStore, store).save_user_columns(user_ids, states, appended)
    else:
        store.save_users(states_of(states, user_ids.tolist()))


def _hash_by_value(values: ObjArray) -> U64:
    """Stable hashes of a column, computed once per distinct value."""
    codes, distinct = dense_codes(values)
    return stable_hash(distinct)[codes]


def _terminal_features(
    term_codes: I64, n_terms: int, eff: I64, snap: TerminalSnapshot, *,
    skip_event: npt.NDArray[np.bool_], label_rows: I64, label_time: I64, delay_us: int,
    out: F64, timings: dict[str, float],
) -> None:
    n = len(term_codes)
    n_store = len(snap.event_ts)
    ev_code = np.concatenate([snap.event_terminal, term_codes[~skip_event]])
    ev_ts = np.concatenate([snap.event_ts, eff[~skip_event]])
    order, ev_off = kernels.sort_segments(ev_code, ev_ts, n_terms)
    where = np.empty(len(order), dtype=np.int64)
    where[order] = np.arange(len(order), dtype=np.int64)
    store_pos = where[:n_store]
    batch_pos = np.full(n, -1, dtype=np.int64)
    batch_pos[~skip_event] = where[n_store:]
    fr_code = np.concatenate([snap.fraud_terminal, term_codes[label_rows]])
    fr_ts = np.concatenate([snap.fraud_ts, eff[label_rows]])
    fr_lt = np.concatenate([snap.fraud_label_time, label_time])
    fr_rank = np.concatenate([np.full(len(snap.fraud_ts), -1, dtype=np.int64), label_rows])
    f_order, fr_off = kernels.sort_segments(fr_code, fr_ts, n_terms)
    started = time.perf_counter()
    kernels.terminal_kernel(
        term_codes, eff, ev_off, ev_ts[order], batch_pos, store_pos, fr_off,
        fr_ts[f_order], fr_lt[f_order], fr_rank[f_order], delay_us, WINDOWS_US, out,
        _TERMINAL_COLS, kernels.scratch_rows("arrival", len(order), 1, np.int32).reshape(-1),
        kernels.scratch_rows("results", max(n, len(order)), 8, np.int32),
    )
    timings["terminal_kernel"] = time.perf_counter() - started


def _haversine_km(lat1: F64, lon1: F64, lat2: F64, lon2: F64) -> F64:
    p1, p2 = np.radians(lat1), np.radians(lat2)
    a = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(
        np.radians(lon2 - lon1) / 2) ** 2
    out: F64 = 2.0 * kernels.EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.minimum(a, 1.0)))
    return out


def _support_features(batch: TransactionBatch, ctx: SupportContext | None,
                      values: F64) -> None:
    if ctx is None:
        for name in SUPPORT_FEATURES:
            values[:, _COL[name]] = NEUTRAL_VALUES[name]
        return
    t = batch.timestamp_us
    known = ctx.session_created_us != MISSING_TIME
    values[:, _COL["session_age_s"]] = np.where(
        known, (t - np.where(known, ctx.session_created_us, 0)) / 1e6, -1.0)
    dev = batch.device_id
    mismatch = (ctx.session_device_id != "") & (dev != "") & (ctx.session_device_id != dev)
    values[:, _COL["session_device_mismatch"]] = mismatch.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = batch.amount / ctx.cart_value
    values[:, _COL["cart_amount_ratio"]] = np.where(ctx.cart_value > 0, ratio, -1.0)
    located = (np.isfinite(ctx.device_lat) & np.isfinite(ctx.device_lon)
               & np.isfinite(batch.lat) & np.isfinite(batch.lon))
    with np.errstate(invalid="ignore"):
        dist = _haversine_km(batch.lat, batch.lon, ctx.device_lat, ctx.device_lon)
    values[:, _COL["device_distance_km"]] = np.where(located, dist, -1.0)
    acct = ctx.account_created_us != MISSING_TIME
    values[:, _COL["account_age_days"]] = np.where(
        acct, (t - np.where(acct, ctx.account_created_us, 0)) / DAY_US, -1.0)
    values[:, _COL["social_followers"]] = np.where(ctx.followers >= 0, ctx.followers, -1.0)
    values[:, _COL["social_posts"]] = np.where(ctx.posts >= 0, ctx.posts, -1.0)


def compute_features(
    batch_or_chunks: TransactionBatch | Iterable[TransactionBatch],
    config: FeatureConfig | None = None,
    support_store: SupportStore | None = None,
) -> FeatureMatrix:
    """Features of a whole file, rows in input order, as a point-in-time replay would see them.

    Rows are processed in timestamp order (a stable sort: equal timestamps keep input order),
    from empty state; the labels in the file are the label feed (each known from its
    label_time, or `label_delay_days` after its transaction).
    """
    batch = (batch_or_chunks if isinstance(batch_or_chunks, TransactionBatch)
             else TransactionBatch.concat(list(batch_or_chunks)))
    order = np.argsort(batch.timestamp_us, kind="stable")
    in_order = bool(np.all(order == np.arange(len(order))))
    ordered = batch if in_order else batch.take(order)
    support = support_store.lookup(ordered) if support_store is not None else None
    engine = FeatureEngine(config)
    matrix = engine.extract(ordered, InMemoryStore(), support, commit=False)
    if in_order:
        return matrix
    values = np.empty_like(matrix.values)
    values[order] = matrix.values
    eff = np.empty_like(matrix.effective_time_us)
    eff[order] = matrix.effective_time_us
    return FeatureMatrix(matrix.names, values, batch.transaction_id, eff)
