"""The loaded, validated, frozen form of a rules file.

A `RuleSet` is built once by the loader and never changes; hot reload swaps the whole object.
Rules are kept in evaluation order: highest `priority` first, then file order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy.typing as npt

from fraud.rules.compiler import Env
from fraud.rules.reasons import ReasonTemplate
from fraud.rules.vocabulary import Vocabulary

__all__ = ["ACTIONS", "ACTION_CODES", "GuardrailConfig", "Rule", "RuleSet", "action_name"]

# Severity order: the most severe matched active rule decides.
ACTIONS = ("none", "flag", "alert", "block")
ACTION_CODES = {name: code for code, name in enumerate(ACTIONS)}

Condition = Callable[[Env], npt.NDArray[Any]]


def action_name(code: int) -> str:
    """``"block"`` for 3, ... ``"none"`` for 0."""
    return ACTIONS[int(code)]


@dataclass(frozen=True, slots=True)
class GuardrailConfig:
    """Sliding window of the `max_rate` guardrail, counted in transactions."""

    window: int = 10_000
    min_transactions: int = 1_000


@dataclass(frozen=True, slots=True, eq=False)
class Rule:
    """One compiled rule. `code` is the action's severity (see `ACTIONS`)."""

    id: str
    description: str
    action: str
    mode: str
    priority: int
    when: str
    unless: str
    reason: ReasonTemplate
    max_rate: float | None
    condition: Condition
    exemption: Condition | None
    line: int

    @property
    def code(self) -> int:
        return ACTION_CODES[self.action]

    @property
    def active(self) -> bool:
        return self.mode == "active"

    @property
    def fingerprint(self) -> str:
        """Identity of what the rule matches; guardrail history survives a reload only if equal."""
        return f"{self.id}\0{self.when}\0{self.unless}"

    def __repr__(self) -> str:
        return f"Rule(id={self.id!r}, action={self.action!r}, mode={self.mode!r})"


@dataclass(frozen=True, slots=True, eq=False)
class RuleSet:
    """A whole rules file: rules in evaluation order plus what they refer to.

    `version` is a short sha256 of the file's bytes and of every list file it reads; every
    decision carries it. `files` are the locations read (the watcher polls them all).
    """

    location: str
    version: str
    name: str
    rules: tuple[Rule, ...]
    parameters: Mapping[str, float | str | bool]
    lists: Mapping[str, frozenset[str]]
    guardrail: GuardrailConfig
    columns: frozenset[str]
    files: tuple[str, ...]
    vocabulary: Vocabulary

    @property
    def rule_ids(self) -> tuple[str, ...]:
        return tuple(rule.id for rule in self.rules)

    def rule(self, rule_id: str) -> Rule:
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        raise KeyError(rule_id)

    def __repr__(self) -> str:
        return (f"RuleSet(location={self.location!r}, version={self.version!r}, "
                f"rules={len(self.rules)})")
