"""The `max_rate` guardrail: a rule matching too many transactions is demoted to ``flag``.

A rule's rate is the share of the last `window` transactions (counted in transactions, in
input order, not wall-clock time) that the rule matched, the current transaction included.
While that rate is above the rule's `max_rate` (and at least `min_transactions` have been
seen), its matches act as ``flag`` instead of ``block``/``alert``; when the rate falls back to
`max_rate` or below, the rule acts normally again. The rate counts matches whether or not the
rule was demoted, so a demoted rule does not flap back as soon as it stops blocking.

The window lives in a `GuardrailState` that the caller owns and passes in (one per consumer
process; a fresh one for a replay), so the same input replays to the same decisions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from fraud.logs import get_logger
from fraud.rules.ruleset import RuleSet

__all__ = ["GuardrailState", "GuardrailStatus"]

log = get_logger(__name__)
Bools = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class GuardrailStatus:
    """One rule's guardrail after a batch: its rate at the end, how many of the batch's rows
    it was demoted for, whether it is demoted now, and its state changes during the batch in
    order (``"demoted"``, ``"restored"``; empty when it stayed as it was)."""

    rule_id: str
    max_rate: float
    rate: float
    window_transactions: int
    demoted_rows: int
    demoted: bool
    changes: tuple[str, ...]


@dataclass(slots=True)
class _Window:
    fingerprint: str
    size: int
    history: Bools
    seen: int = 0
    demoted: bool = False


@dataclass(slots=True)
class GuardrailState:
    """Sliding-window history of every guarded rule, keyed by rule id.

    History survives a rules reload for a rule whose condition and window are unchanged; an
    edited rule starts afresh, and a rule gone from the file is forgotten - so use one state
    per stream of rule sets (a what-if replay of a second rule set needs its own state).
    """

    windows: dict[str, _Window] = field(default_factory=dict)

    def apply(self, ruleset: RuleSet, matches: Bools) -> tuple[Bools, tuple[GuardrailStatus, ...]]:
        """Rows (rules x n) whose match is demoted, and the status of every guarded rule."""
        demoted = np.zeros(matches.shape, dtype=bool)
        statuses: list[GuardrailStatus] = []
        config = ruleset.guardrail
        for r, rule in enumerate(ruleset.rules):
            if rule.max_rate is None:
                continue
            win = self.windows.get(rule.id)
            if win is None or win.fingerprint != rule.fingerprint or win.size != config.window:
                win = _Window(rule.fingerprint, config.window, np.zeros(0, dtype=bool))
                self.windows[rule.id] = win
            over = self._advance(win, matches[r], rule.max_rate, config.min_transactions)
            if not rule.active or rule.code <= 1:
                # A flag or shadow rule has nothing milder to become: its rate is tracked
                # (and reported), but it is never demoted nor logged as such.
                over = np.zeros_like(over)
            demoted[r] = over & matches[r]
            steps = np.diff(np.concatenate([[win.demoted], over]).astype(np.int8))
            changes = tuple("demoted" if step > 0 else "restored" for step in steps[steps != 0])
            win.demoted = bool(over[-1]) if len(over) else win.demoted
            rate = float(win.history.mean()) if len(win.history) else 0.0
            status = GuardrailStatus(rule.id, rule.max_rate, rate, len(win.history),
                                     int(demoted[r].sum()), win.demoted, changes)
            if changes:
                _log_change(status, ruleset.version)
            statuses.append(status)
        # Rules gone from the file take their history with them.
        for rule_id in set(self.windows) - {rule.id for rule in ruleset.rules}:
            del self.windows[rule_id]
        return demoted, tuple(statuses)

    @staticmethod
    def _advance(win: _Window, matched: Bools, max_rate: float, minimum: int) -> Bools:
        """Per row: is the rule over its rate at that row? Updates `win` to the batch's end."""
        n = len(matched)
        h = len(win.history)
        seq = np.concatenate([win.history, matched])
        sums = np.concatenate([[0], np.cumsum(seq, dtype=np.int64)])
        ends = np.arange(h + 1, h + n + 1)
        starts = np.maximum(ends - win.size, 0)
        counts = sums[ends] - sums[starts]
        rate = counts / (ends - starts)
        seen = win.seen + np.arange(1, n + 1)
        over: Bools = (rate > max_rate) & (seen >= minimum)
        win.history = seq[-win.size:].copy()
        win.seen += n
        return over


def _log_change(status: GuardrailStatus, version: str) -> None:
    fields: dict[str, Any] = {
        "rule_id": status.rule_id, "rate": round(status.rate, 6),
        "max_rate": status.max_rate, "window": status.window_transactions,
        "demoted_rows": status.demoted_rows, "demoted_now": status.demoted,
        "demotions": status.changes.count("demoted"),
        "restorations": status.changes.count("restored"), "rules_version": version,
    }
    # A batch may both demote and restore a rule (the counts say how often; `demoted_now` is
    # where it ended): a warning only when a decision was demoted, or the rule stays demoted.
    if "demoted" in status.changes and (status.demoted or status.demoted_rows):
        log.warning("rule demoted to flag by guardrail", **fields)
    elif "demoted" in status.changes:  # over the limit for a moment; no decision changed
        log.info("rule briefly over its max_rate; no row demoted", **fields)
    if status.changes and status.changes[-1] == "restored":
        log.info("rule restored by guardrail", **fields)
