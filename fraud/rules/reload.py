"""Hot reload of the rules in the long-running consumer.

`RulesWatcher` polls the rules file (and the list files it reads) for a changed signature:
mtime+size on a local disk, the ETag on S3. A changed file is loaded and compiled in full
before anything is swapped; then the new `RuleSet` replaces the old one in one reference
assignment, so a batch sees either the old rules or the new ones, never a mix. A file that does
not load is refused and logged with every problem, and the last good rules stay in force until
a fixed file appears (the refused signature is remembered, so it is reported once, not at every
poll).

The clock only paces the polls; decisions never depend on it. In the consumer::

    watcher = RulesWatcher(settings.rules_path, interval=settings.rules_reload_seconds,
                           s3_client=s3)            # raises on an invalid file at start-up
    for batch in batches:
        watcher.poll()                              # cheap unless the interval has passed
        rules = watcher.current                     # one version for the whole batch
        decisions = evaluate(rules, columns, state=guardrail_state)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fraud.errors import FraudError
from fraud.logs import get_logger
from fraud.rules.loader import load_rules
from fraud.rules.problems import Problem, RulesFileError
from fraud.rules.ruleset import RuleSet
from fraud.rules.sources import RuleSource, source_for
from fraud.rules.vocabulary import Vocabulary

__all__ = ["ReloadResult", "RulesWatcher"]

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class ReloadResult:
    """What a check found: ``"unchanged"``, ``"reloaded"`` or ``"rejected"`` (with why)."""

    outcome: str
    version: str
    problems: tuple[Problem, ...] = ()
    error: str = ""


class RulesWatcher:
    """Keeps `current` up to date with the rules file at `location` (path or s3:// URI).

    The first load happens in the constructor and raises on a bad file: a consumer must not
    start without valid rules. Later bad files are refused and the last good rules stay.
    """

    def __init__(
        self,
        location: str,
        *,
        vocabulary: Vocabulary | None = None,
        source: RuleSource | None = None,
        s3_client: Any = None,
        interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.location = location
        self.vocabulary = vocabulary
        self.source = source or source_for(location, s3_client)
        self.interval = interval
        self.clock = clock
        self._lock = threading.Lock()
        # Signatures are taken *before* reading, so a change racing a read is seen next time.
        self._seen: tuple[tuple[str, ...], str] = ((location,), self._signature((location,)))
        self._current = load_rules(location, vocabulary, source=self.source)
        self._last_check = clock()
        log.info("rules loaded", location=location, rules_version=self._current.version,
                 rules=len(self._current.rules))

    @property
    def current(self) -> RuleSet:
        """The rules in force; read it once per batch so a batch uses one version."""
        return self._current

    def poll(self) -> ReloadResult | None:
        """Check for a change if the poll interval has passed (None when it has not, or when
        the interval is 0, which disables reloading)."""
        if self.interval <= 0 or self.clock() - self._last_check < self.interval:
            return None
        return self.check()

    def check(self) -> ReloadResult:
        """Check now; reload when any file of the rules changed."""
        with self._lock:
            self._last_check = self.clock()
            current = self._current
            files = current.files
            try:
                signature = self._signature(files)
            except FraudError as exc:
                log.error("rules check failed; keeping the rules in force",
                          location=self.location, rules_version=current.version,
                          error=str(exc))
                return ReloadResult("rejected", current.version, error=str(exc))
            if (files, signature) == self._seen:
                return ReloadResult("unchanged", current.version)
            self._seen = (files, signature)
            try:
                loaded = load_rules(self.location, self.vocabulary, source=self.source)
            except RulesFileError as exc:
                log.error("new rules refused; keeping the rules in force",
                          location=self.location, rules_version=current.version,
                          problems=[str(p) for p in exc.problems])
                return ReloadResult("rejected", current.version, exc.problems, str(exc))
            except FraudError as exc:
                log.error("new rules unreadable; keeping the rules in force",
                          location=self.location, rules_version=current.version,
                          error=str(exc))
                return ReloadResult("rejected", current.version, error=str(exc))
            except Exception as exc:  # a loader bug must not stop the consumer
                error = f"unexpected {type(exc).__name__} while loading: {exc}"
                log.error("new rules refused (loader failure); keeping the rules in force",
                          location=self.location, rules_version=current.version, error=error)
                return ReloadResult("rejected", current.version, error=error)
            if loaded.version == current.version:
                return ReloadResult("unchanged", current.version)
            self._current = loaded  # the swap: one reference assignment
            log.info("rules reloaded", location=self.location, rules_version=loaded.version,
                     previous_version=current.version, rules=len(loaded.rules))
            return ReloadResult("reloaded", loaded.version)

    def _signature(self, files: tuple[str, ...]) -> str:
        return "|".join(self.source.signature(f) for f in files)
