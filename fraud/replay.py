"""Batch replay: a transaction file through exactly the consumer's pipeline, to a file.

Every row of the file feeds the state (so windows are full); rows inside ``[start, end)`` are
decided and written, in input order. Actions are written to the output instead of performed.
The file is read in chunks, so memory stays bounded whatever its size; the same input gives
the same output, bit for bit. A second configuration (`compare_rules`, `compare_model`) is
evaluated over the very same features in the same pass, for backtests of a change.

Rows are processed in file order, which is the arrival order the consumer would see; a file
whose timestamps go backwards gets the feature engine's late-event policy
(docs/features.md), and the count of such rows is reported.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from fraud.config import Settings
from fraud.features import (
    FeatureConfig,
    FeatureEngine,
    InMemoryStore,
    StateStore,
    SupportContext,
)
from fraud.features.api import DAY_US, USER_WINDOWS_DAYS
from fraud.logs import get_logger
from fraud.model.scorer import LocalScorer, Scorer, warn_on_label_delay
from fraud.pipeline import (
    Outcome,
    Pipeline,
    StageTimes,
    SupportLookup,
    decide,
    output_columns,
)
from fraud.report import BacktestAccumulator, json_safe
from fraud.rules import ACTIONS, RuleSet, default_vocabulary, load_rules
from fraud.rules.guardrail import GuardrailState
from fraud.schema.batch import TransactionBatch
from fraud.schema.columns import ColumnMap
from fraud.schema.files import read_transactions
from fraud.tabular import TableWriter

__all__ = ["ReplayConfig", "ReplaySummary", "rejects_path", "run_replay"]

log = get_logger(__name__)
LATE_SLACK_DAYS = 7
REJECTED_EXAMPLES = 5  # rejections kept in the summary for the CLI to show


@dataclass(frozen=True, slots=True)
class ReplayConfig:
    """Everything a replay needs, resolved once by the CLI."""

    input: str
    output: Path
    model_dir: Path
    rules_path: str
    columns: ColumnMap | None = None
    start_us: int | None = None
    end_us: int | None = None
    label_delay_days: float = 7.0
    history_k: int = 256
    report_dir: Path | None = None
    compare_rules: str | None = None
    compare_model: Path | None = None
    support_dir: Path | None = None
    chunk_rows: int = 200_000
    # Read ahead, decide behind and write behind in threads (same bytes; see `_Prefetch`,
    # `_Ordered`, `_Output`).
    overlap: bool = True


@dataclass(slots=True)
class ReplaySummary:
    """What a replay did; written beside the output as ``OUTPUT.summary.json``."""

    input: str
    output: str
    rows_read: int = 0
    rows_rejected: int = 0
    rows_decided: int = 0
    rows_out_of_order: int = 0
    actions: dict[str, int] = field(default_factory=dict)
    complete: bool = False
    seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=dict)
    model_version: str = ""
    rules_version: str = ""
    report: dict[str, Any] = field(default_factory=dict)
    # The rejects file (empty when no row was rejected) and the first few rejections as
    # "line N: field: reason (value: ...)", for the CLI to show on stderr.
    rejects: str = ""
    rejected_examples: list[str] = field(default_factory=list)

    @property
    def rows_per_second(self) -> float:
        return self.rows_read / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> str:
        body = {name: getattr(self, name) for name in self.__slots__
                if name != "rejected_examples"}
        body["rows_per_second"] = round(self.rows_per_second, 1)
        return json.dumps(json_safe(body), indent=2, sort_keys=True, default=str,
                          allow_nan=False)


def rejects_path(output: Path) -> Path:
    """``out.csv`` -> ``out.rejects.csv`` (same format as the output)."""
    suffix = "".join(output.suffixes[-2:]) if output.suffix == ".gz" else output.suffix
    return output.with_name(output.name[: -len(suffix)] + ".rejects" + suffix)


def _decide_mask(batch: TransactionBatch, start: int | None, end: int | None
                 ) -> npt.NDArray[np.bool_] | None:
    if start is None and end is None:
        return None
    ts = batch.timestamp_us
    mask = np.ones(len(batch), dtype=bool)
    if start is not None:
        mask &= ts >= start
    if end is not None:
        mask &= ts < end
    return mask


@dataclass(slots=True)
class _Variant:
    """A second configuration evaluated over the same features."""

    scorer: Scorer
    rules: RuleSet
    guardrail: GuardrailState = field(default_factory=GuardrailState)


def _load_rules(path: str) -> RuleSet:
    return load_rules(path, default_vocabulary())


def run_replay(
    config: ReplayConfig,
    *,
    store: StateStore | None = None,
    progress: Callable[[int], None] | None = None,
    settings: Settings | None = None,
) -> ReplaySummary:
    """Replay `config.input`; returns the summary (also written beside the output).

    `progress` is called with the number of rows read after each chunk; `settings` gives
    the S3 endpoint and region for an ``s3://`` input. On Ctrl-C the output
    written so far is closed cleanly and the summary says ``"complete": false``.
    """
    started = time.perf_counter()
    # Reading starts first: the first chunk is read while the model, the rules and the
    # supporting stores load (JSON and Parquet decoding release the GIL).
    read_times = StageTimes()
    chunks = read_transactions(config.input, config.columns, chunk_rows=config.chunk_rows,
                               settings=settings)
    # The supporting-store values of a chunk depend on the chunk alone: the reader looks
    # them up too, once the stores are loaded (it waits for them on its first chunk).
    loaded: Future[SupportLookup | None] = Future()

    def look_up(parsed: Any) -> tuple[Any, SupportContext | None]:
        lookup = loaded.result()
        return parsed, (lookup(parsed.batch) if lookup is not None and len(parsed.batch)
                        else None)

    reader = (_Prefetch(chunks, read_times, look_up) if config.overlap
              else _Inline(chunks, read_times, look_up))
    try:
        scorer, ruleset, variant, support = _load_parts(config)
    except BaseException as exc:
        loaded.set_exception(exc)
        reader.stop()
        raise
    loaded.set_result(support)
    engine = FeatureEngine(FeatureConfig(label_delay_days=config.label_delay_days,
                                         history_k=config.history_k))
    if store is None:
        # Terminal events older than the longest window plus the label delay are never read
        # again; a week of slack absorbs late rows (later ones fail loudly, never silently).
        retain_days = max(USER_WINDOWS_DAYS) + config.label_delay_days + LATE_SLACK_DAYS
        store = InMemoryStore(retain_us=round(retain_days * DAY_US))
    pipeline = Pipeline(engine, store, scorer, lambda: ruleset)
    summary = ReplaySummary(input=config.input, output=str(config.output),
                            model_version=scorer.version, rules_version=ruleset.version)
    # Only a report needs the accumulator; without one it would just grow with the file.
    backtest = (BacktestAccumulator(ruleset, variant.rules if variant else None)
                if config.report_dir is not None else None)
    times = pipeline.times
    last_ts = np.iinfo(np.int64).min
    output = _Output(config.output, times, threaded=config.overlap)
    decided = StageTimes() if config.overlap else times

    def decide_chunk(task: tuple[str, Any]) -> None:
        """Chunk N's score, rules and effects (in order), while chunk N+1's features run."""
        kind, body = task
        if kind == "reject":
            output.reject(body)
            return
        batch, matrix, mask = body
        outcome = pipeline.decide(batch, matrix, mask, times=decided)
        alt = None
        if variant is not None:
            alt = decide(outcome.batch, outcome.features, variant.scorer, variant.rules,
                         variant.guardrail, times=StageTimes())
        if backtest is not None:
            backtest.add(outcome, alt)
        output.write(outcome)
        _account(summary, outcome)  # counted once handed to the writer, which drains on exit

    decider = _Ordered(decide_chunk, "replay-decider", threaded=config.overlap)
    errors: list[BaseException] = []
    try:
        for parsed, context in reader:
            batch = parsed.batch
            summary.rows_read += len(batch) + len(parsed.rejections)
            if parsed.rejections:
                decider.submit(("reject", _rejection_columns(parsed.rejections)))
                summary.rows_rejected += len(parsed.rejections)
                summary.rejects = str(rejects_path(config.output))
                room = REJECTED_EXAMPLES - len(summary.rejected_examples)
                summary.rejected_examples += [str(r) for r in parsed.rejections[:max(room, 0)]]
            if len(batch):
                ts = batch.timestamp_us
                running = np.maximum.accumulate(np.concatenate(([last_ts], ts)))[:-1]
                summary.rows_out_of_order += int(np.sum(ts < running))
                last_ts = max(last_ts, int(ts.max()))
                matrix = pipeline.features_with(batch, context)
                decider.submit(("decide", (batch, matrix, _decide_mask(
                    batch, config.start_us, config.end_us))))
                del batch, matrix  # the decider owns them now
            if progress is not None:
                progress(summary.rows_read)
        summary.complete = True
    except KeyboardInterrupt:
        log.warning("replay_interrupted", rows_read=summary.rows_read,
                    rows_decided=summary.rows_decided)
    except _WorkerFailedError:
        pass  # the worker's own error is collected below
    finally:
        reader.stop()
        times.merge(read_times)
        # Everything decided so far reaches the file, also after Ctrl-C or an error in a
        # worker: the summary's rows_decided then counts exactly the rows written.
        # A worker stopped by the next one's failure reports `_WorkerFailedError`; the one that
        # failed first reports the cause.
        errors += [e for e in (decider.close(), output.close())
                   if e is not None and not isinstance(e, _WorkerFailedError)]
        if decided is not times:
            times.merge(decided)
        if errors:
            summary.complete = False
        summary.seconds = time.perf_counter() - started
        summary.stage_seconds = {k: round(v, 4) for k, v in sorted(times.seconds.items())}
        if backtest is not None and config.report_dir is not None and summary.rows_decided:
            summary.report = backtest.write(config.report_dir, summary_header=_header(summary))
        Path(str(config.output) + ".summary.json").write_text(summary.to_json() + "\n",
                                                               encoding="utf-8")
    if errors:
        raise errors[0]
    if not summary.complete:
        raise KeyboardInterrupt
    return summary


def _load_parts(config: ReplayConfig
                ) -> tuple[Scorer, RuleSet, _Variant | None, SupportLookup | None]:
    """Model, rules, the comparison's, and the supporting stores (loaded in a thread of
    their own beside the rest when overlapping: their JSON decoding releases the GIL)."""
    from fraud.features import SupportStore

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="replay-stores") as pool:
        stores = (pool.submit(SupportStore.from_directory, config.support_dir)
                  if config.support_dir is not None and config.overlap else None)
        scorer = LocalScorer.load(config.model_dir)
        ruleset = _load_rules(config.rules_path)
        variant = None
        if config.compare_rules or config.compare_model:
            variant = _Variant(
                scorer=(LocalScorer.load(config.compare_model) if config.compare_model
                        else scorer),
                rules=_load_rules(config.compare_rules) if config.compare_rules else ruleset,
            )
        for which, loaded in (("model", scorer), ("compare_model", variant and variant.scorer)):
            if isinstance(loaded, LocalScorer):
                warn_on_label_delay(loaded.artifact.manifest.label_delay_days,
                                    config.label_delay_days, which=which)
        if stores is not None:
            support: SupportLookup | None = stores.result().lookup
        elif config.support_dir is not None:
            support = SupportStore.from_directory(config.support_dir).lookup
        else:
            support = None
    return scorer, ruleset, variant, support


class _Inline:
    """The chunks in this thread, each timed as "read", then `prepare`d, timed as
    "support" (the reference for `_Prefetch`)."""

    def __init__(self, chunks: Iterator[Any], times: StageTimes,
                 prepare: Callable[[Any], Any]) -> None:
        self._chunks = chunks
        self._times = times
        self._prepare = prepare

    def __iter__(self) -> Iterator[Any]:
        while True:
            t0 = time.perf_counter()
            try:
                chunk = next(self._chunks)
            except StopIteration:
                return
            t0 = self._times.add("read", t0)
            chunk = self._prepare(chunk)
            self._times.add("support", t0)
            yield chunk
            del chunk  # not pinned while the next one is read

    def stop(self) -> None:
        """Nothing runs ahead, so nothing to stop."""


_DONE = object()


class _Prefetch(_Inline):
    """Reads and validates chunk N+1 in a thread while chunk N is decided.

    Parquet/CSV decoding and the compiled text kernels release the GIL, so on a free core
    this hides most of the read, and the chunk's supporting-store lookups (`prepare`) run
    there too. One chunk ahead at most: the reader starts on chunk N+2 only once the caller
    has taken N+1, so memory holds one chunk more than inline reading. The reader's own
    clock times "read" and "support" (with the benchmark's CPU clock, its thread's CPU).
    """

    def __init__(self, chunks: Iterator[Any], times: StageTimes,
                 prepare: Callable[[Any], Any]) -> None:
        super().__init__(chunks, times, prepare)
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=1)
        self._stopping = threading.Event()
        self._taken = threading.Semaphore(0)
        self._read = StageTimes()
        self._merged = False
        self._thread = threading.Thread(target=self._run, name="replay-reader", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for chunk in _Inline(self._chunks, self._read, self._prepare):
                if not self._put(chunk) or not self._wait_taken():
                    return
                del chunk  # the caller owns it now; do not pin it while reading the next
            self._put(_DONE)
        except BaseException as exc:  # handed to the main thread, which re-raises it
            self._put(exc)

    def _put(self, item: Any) -> bool:
        while not self._stopping.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _wait_taken(self) -> bool:
        while not self._stopping.is_set():
            if self._taken.acquire(timeout=0.1):
                return True
        return False

    def __iter__(self) -> Iterator[Any]:
        while True:
            item = self._queue.get()
            self._taken.release()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join()
        if not self._merged:
            self._merged = True
            self._times.merge(self._read)


class _WorkerFailedError(Exception):
    """A worker thread failed; its error is returned by its `close`."""


class _Ordered:
    """Runs tasks one at a time, in the order submitted: in a thread, or inline.

    `submit` hands a task over only once the previous one is done, so at most one task
    waits and memory holds one chunk more than inline running. The first error stops the
    worker: later tasks are dropped, `submit` raises `_WorkerFailedError` in the caller's
    thread, and `close` (which drains and joins) returns the error.
    """

    def __init__(self, run: Callable[[Any], None], name: str, *, threaded: bool) -> None:
        self._run_task = run
        self._error: BaseException | None = None
        self._queue: queue.Queue[Any] | None = None
        self._thread: threading.Thread | None = None
        if threaded:
            self._queue = queue.Queue(maxsize=1)
            self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
            self._thread.start()

    def submit(self, task: Any) -> None:
        if self._error is not None:
            raise _WorkerFailedError
        if self._queue is None:
            try:
                self._run_task(task)
            except Exception as exc:  # returned by close, as in the threaded case
                self._error = exc
                raise _WorkerFailedError from exc
            return
        self._queue.join()
        if self._error is not None:
            raise _WorkerFailedError
        self._queue.put(task)

    def _loop(self) -> None:
        while self._queue is not None:
            task = self._queue.get()
            try:
                if task is _DONE:
                    return
                if self._error is None:
                    self._run_task(task)
            except BaseException as exc:  # returned by close, raised by the caller
                self._error = exc
            finally:
                del task  # done: let the chunk go before waiting for the next
                self._queue.task_done()

    def close(self) -> BaseException | None:
        """Finish every task handed over, stop the thread; the error met, if any."""
        if self._queue is not None and self._thread is not None and self._thread.is_alive():
            self._queue.put(_DONE)
            self._thread.join()
        return self._error


class _Output:
    """The output and rejects files, written in order by one writer thread (or inline).

    Formatting and encoding chunk N (Arrow's CSV and Parquet writers release the GIL) then
    overlaps deciding chunk N+1; a single thread and a FIFO keep the rows in input order,
    so the bytes are the same either way. A write error is raised in the caller's thread.
    """

    def __init__(self, path: Path, times: StageTimes, *, threaded: bool) -> None:
        self._path = path
        self._times = times
        self._writer = TableWriter(path)
        self._rejects: TableWriter | None = None
        self._own = StageTimes() if threaded else times
        self._worker = _Ordered(self._do, "replay-writer", threaded=threaded)

    def write(self, outcome: Outcome) -> None:
        self._worker.submit(("out", outcome))

    def reject(self, columns: dict[str, npt.NDArray[Any]]) -> None:
        self._worker.submit(("reject", columns))

    def _do(self, task: tuple[str, Any]) -> None:
        kind, body = task
        t0 = time.perf_counter()
        if kind == "out":
            self._writer.write(output_columns(body))
        else:
            self._rejects = self._rejects or TableWriter(rejects_path(self._path))
            self._rejects.write(body)
        self._own.add("write", t0)

    def close(self) -> BaseException | None:
        """Drain, join and close both files; the write error met, if any (not raised, so
        the caller can still record the summary)."""
        try:
            error = self._worker.close()
            if self._own is not self._times:
                self._times.merge(self._own)
        finally:
            self._writer.close()
            if self._rejects is not None:
                self._rejects.close()
        return error


def _account(summary: ReplaySummary, outcome: Outcome) -> None:
    summary.rows_decided += len(outcome)
    # Counting the small integer codes beats sorting a million action-name strings.
    counts = np.bincount(outcome.decisions.action, minlength=len(ACTIONS)).tolist()
    for name, count in sorted(zip(ACTIONS, counts, strict=True)):
        if count:
            summary.actions[name] = summary.actions.get(name, 0) + int(count)


def _rejection_columns(rejections: list[Any]) -> dict[str, npt.NDArray[Any]]:
    return {
        "position": np.asarray([r.position for r in rejections], dtype=object),
        "field": np.asarray([r.field for r in rejections], dtype=object),
        "value": np.asarray([r.value for r in rejections], dtype=object),
        "reason": np.asarray([r.reason for r in rejections], dtype=object),
    }


def _header(summary: ReplaySummary) -> dict[str, Any]:
    return {
        "input": summary.input,
        "rows read": summary.rows_read,
        "rows rejected": summary.rows_rejected,
        "rows decided": summary.rows_decided,
        "model version": summary.model_version,
        "rules version": summary.rules_version,
        "complete": summary.complete,
    }
