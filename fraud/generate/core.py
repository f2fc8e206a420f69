"""Generate a whole data set (pure, in memory) and write it out (the thin I/O shell).

`generate` draws everything from one seed through independent child streams
(`numpy.random.SeedSequence.spawn`), so a change in one part (say the fraud rate) leaves the
others' draws alone, and the same config gives the same bytes on every run.

>>> ds = generate(GenerateConfig(users=50, terminals=20, days=3, seed=1))
>>> sorted(ds.stores) == sorted(stores.STORE_FIELDS)
True
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from fraud.features.support import default_stores_dir
from fraud.generate import scenarios, stores
from fraud.generate.jsonl import write_jsonl
from fraud.generate.legit import legit_rows
from fraud.generate.params import SCENARIO_SHARES, SCENARIOS, GenerateConfig
from fraud.generate.population import CHANNELS, make_population
from fraud.generate.rows import Rows
from fraud.generate.textcols import US_PER_DAY, format_ids, id_width, iso_utc, us_from_date
from fraud.schema.batch import MISSING_TIME, TransactionBatch
from fraud.tabular import TableWriter, format_of

__all__ = ["TRANSACTION_FIELDS", "Dataset", "Summary", "default_stores_dir", "generate",
           "write_dataset"]

TRANSACTION_FIELDS: tuple[str, ...] = (
    "transaction_id", "timestamp", "user_id", "terminal_id", "amount", "currency", "device_id",
    "session_id", "ip", "lat", "lon", "channel", "game_id", "is_fraud", "label_time", "scenario",
)

Progress = Callable[[str], None]
_CHUNK = 200_000


@dataclass(frozen=True, slots=True)
class Summary:
    """What was generated, for the CLI's closing lines and for callers' checks."""

    rows: int
    users: int
    terminals: int
    frauds: dict[str, int]
    first: str
    last: str


@dataclass(slots=True)
class Dataset:
    """Transactions (columns in `TRANSACTION_FIELDS` order) and the supporting stores."""

    transactions: dict[str, npt.NDArray[np.generic]]
    timestamp_us: npt.NDArray[np.int64]
    label_time_us: npt.NDArray[np.int64]
    stores: dict[str, dict[str, npt.NDArray[np.generic]]]
    summary: Summary
    files: list[Path] = field(default_factory=list)

    def to_batch(self) -> TransactionBatch:
        """The transactions as a `TransactionBatch` (scenario kept as an extra column)."""
        t: dict[str, Any] = dict(self.transactions)
        return TransactionBatch(
            transaction_id=t["transaction_id"], timestamp_us=self.timestamp_us,
            user_id=t["user_id"], terminal_id=t["terminal_id"],
            amount=t["amount"].astype(np.float64), currency=t["currency"],
            device_id=t["device_id"], session_id=t["session_id"], ip=t["ip"],
            channel=t["channel"], game_id=t["game_id"], lat=t["lat"].astype(np.float64),
            lon=t["lon"].astype(np.float64), is_fraud=t["is_fraud"].astype(np.int8),
            label_time_us=self.label_time_us,
            position=np.asarray([str(i + 2) for i in range(len(self.timestamp_us))],
                                dtype=object),
            extra={"scenario": t["scenario"]},
        )


def _label_delay_us(rng: np.random.Generator, n: int) -> npt.NDArray[np.int64]:
    """Chargeback delays: gamma-distributed, mostly 2 to 60 days, at least 1, at most 120."""
    days = np.clip(1.0 + rng.gamma(2.0, 8.0, n), 1.0, 120.0)
    delay: npt.NDArray[np.int64] = (days * US_PER_DAY).astype(np.int64)
    return delay


def _text(values: npt.NDArray[np.object_], index: npt.NDArray[np.int64]) -> npt.NDArray[np.object_]:
    """values[index] with '' where index is -1."""
    out = np.empty(len(index), dtype=object)
    out[:] = ""
    ok = index >= 0
    out[ok] = values[index[ok]]
    return out


def generate(cfg: GenerateConfig, progress: Progress | None = None) -> Dataset:
    """Draw the population, legitimate spending, the fraud scenarios and the stores."""
    step = progress or (lambda _name: None)
    seeds = np.random.SeedSequence(cfg.seed).spawn(8)
    rng = [np.random.Generator(np.random.PCG64(s)) for s in seeds]
    start_us = us_from_date(cfg.start)

    pop = make_population(cfg, rng[0], start_us)
    step("population")
    base = legit_rows(pop, rng[1], cfg.start, cfg.days)
    step("legitimate spending")

    budget = cfg.fraud_rate * len(base)
    share = {k: round(v * budget) for k, v in SCENARIO_SHARES.items()}
    frng = rng[2]
    scenarios.compromised_terminal(base, pop, frng, share["compromised_terminal"])
    scenarios.compromised_card(base, pop, frng, share["compromised_card"])
    added = [
        scenarios.card_testing(pop, frng, share["card_testing"]),
        scenarios.account_takeover(pop, frng, share["account_takeover"]),
        scenarios.high_amount(pop, frng, share["high_amount"]),
    ]
    rows = Rows.concat([base, *added])
    rows = rows.take(np.argsort(rows.ts_us, kind="stable"))
    step("fraud scenarios")

    n = len(rows)
    user_ids = format_ids("U", np.arange(pop.n_users), id_width(pop.n_users, 7))
    terminal_ids = format_ids("T", np.arange(pop.n_terminals),
                              id_width(pop.n_terminals, 6))
    device_ids = format_ids("D", np.arange(len(pop.devices)), id_width(len(pop.devices), 8))
    n_games = int(pop.term_game.max()) + 1 if pop.n_terminals else 0
    game_ids = format_ids("G", np.arange(max(n_games, 0)), id_width(n_games, 3))

    row_session, first_session, session_table = stores.sessions(rows, pop, rng[3], user_ids,
                                                                device_ids)
    created = stores.device_created(pop, rng[4], first_session)
    store_cols = {
        "users": stores.users(pop, user_ids),
        "sessions": session_table,
        "devices": stores.device_readings(pop, rng[4], created, user_ids, device_ids),
        "carts": stores.carts(rows, pop, rng[5], user_ids),
        "followers": stores.followers(pop, rng[6], user_ids),
        "posts": stores.posts(pop, rng[6], user_ids),
        "scores": stores.scores(rows, pop, rng[7], user_ids, game_ids),
    }
    step("supporting stores")

    fraud = rows.scenario > 0
    label_us = np.full(n, MISSING_TIME, dtype=np.int64)
    label_us[fraud] = rows.ts_us[fraud] + _label_delay_us(rng[2], int(fraud.sum()))
    label_text = np.empty(n, dtype=object)
    label_text[:] = ""
    label_text[fraud] = iso_utc(label_us[fraud])
    currency = np.empty(n, dtype=object)
    currency[:] = cfg.currency
    names = np.asarray(SCENARIOS, dtype=object)
    transactions: dict[str, npt.NDArray[np.generic]] = {
        "transaction_id": format_ids("TX", np.arange(n), id_width(n, 10)),
        "timestamp": iso_utc(rows.ts_us),
        "user_id": user_ids[rows.user],
        "terminal_id": terminal_ids[rows.terminal],
        "amount": np.round(rows.amount, 2),
        "currency": currency,
        "device_id": _text(device_ids, rows.device),
        "session_id": row_session,
        "ip": _text(pop.devices.ip, rows.device),
        "lat": np.round(rows.lat, 6),
        "lon": np.round(rows.lon, 6),
        "channel": np.asarray(CHANNELS, dtype=object)[rows.channel],
        "game_id": _text(game_ids, rows.game),
        "is_fraud": fraud.astype(np.int8),
        "label_time": label_text,
        "scenario": names[rows.scenario],
    }
    counts = np.bincount(rows.scenario, minlength=len(SCENARIOS))
    summary = Summary(
        rows=n, users=pop.n_users, terminals=pop.n_terminals,
        frauds={name: int(counts[i]) for i, name in enumerate(SCENARIOS) if i > 0},
        first=str(transactions["timestamp"][0]) if n else "",
        last=str(transactions["timestamp"][-1]) if n else "",
    )
    return Dataset(transactions=transactions, timestamp_us=rows.ts_us, label_time_us=label_us,
                   stores=store_cols, summary=summary)


def write_dataset(ds: Dataset, out: str | Path, stores_dir: str | Path | None = None,
                  progress: Callable[[int], None] | None = None) -> list[Path]:
    """Write the transactions to `out` (format by extension) and the stores as JSON Lines.

    `progress` is called with the number of transaction rows written after each chunk.
    Returns the paths written, transactions first.
    """
    out_path = Path(out)
    target = Path(stores_dir) if stores_dir is not None else default_stores_dir(out_path)
    n = len(ds.timestamp_us)
    if format_of(out_path) == "jsonl" and out_path.suffix.lower() != ".gz":
        # Same bytes as TableWriter's JSON Lines, several times faster (see fraud.generate.jsonl).
        write_jsonl(out_path, ds.transactions)
        if progress is not None:
            progress(n)
    else:
        with TableWriter(out_path) as writer:
            for lo in range(0, max(n, 1), _CHUNK):
                writer.write({k: v[lo:lo + _CHUNK] for k, v in ds.transactions.items()})
                if progress is not None:
                    progress(min(_CHUNK, n - lo))
    written = [out_path]
    target.mkdir(parents=True, exist_ok=True)
    for name, fields in stores.STORE_FIELDS.items():
        path = target / f"{name}.jsonl"
        columns = ds.stores[name]
        write_jsonl(path, {f: columns[f] for f in fields})
        written.append(path)
    ds.files = written
    return written
