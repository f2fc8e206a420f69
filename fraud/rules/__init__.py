"""The YAML rule engine: rules files -> compiled rule sets -> vectorised decisions.

Load once (`load_rules`, or `RulesWatcher` in a long-running consumer, which hot-reloads),
then per batch ``evaluate(watcher.current, columns_for_batch(batch, features, score),
state=guardrail_state)``. The format is documented for rule authors in docs/rules.md;
rules/schema.json validates it in editors.
"""

from __future__ import annotations

from fraud.rules.evaluator import Decisions, RuleHit, columns_for_batch, evaluate
from fraud.rules.guardrail import GuardrailState, GuardrailStatus
from fraud.rules.loader import FORMAT_VERSION, load_rules, parse_rules
from fraud.rules.problems import Problem, RulesFileError
from fraud.rules.reload import ReloadResult, RulesWatcher
from fraud.rules.ruleset import ACTION_CODES, ACTIONS, GuardrailConfig, Rule, RuleSet, action_name
from fraud.rules.vocabulary import Vocabulary, default_vocabulary, known_feature_names

__all__ = [
    "ACTIONS",
    "ACTION_CODES",
    "FORMAT_VERSION",
    "Decisions",
    "GuardrailConfig",
    "GuardrailState",
    "GuardrailStatus",
    "Problem",
    "ReloadResult",
    "Rule",
    "RuleHit",
    "RuleSet",
    "RulesFileError",
    "RulesWatcher",
    "Vocabulary",
    "action_name",
    "columns_for_batch",
    "default_vocabulary",
    "evaluate",
    "known_feature_names",
    "load_rules",
    "parse_rules",
]
