"""Backtest report of a replay: what the rules and the model did against the labels.

Accumulated chunk by chunk (memory grows only with the labelled decided rows' score, label,
day and card hash), then written as ``report.json``, ``summary.md`` and PNG plots. With a
second configuration it also reports the difference: what would be blocked that was not, and
the change in precision and recall per action: the gate a team runs before shipping a change.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from fraud.features import stable_hash
from fraud.model.metrics import evaluate as model_metrics
from fraud.pipeline import Outcome
from fraud.rules import ACTIONS, RuleSet

__all__ = ["BacktestAccumulator", "json_safe", "save_pr_curve", "save_score_histogram"]

F64 = npt.NDArray[np.float64]
EXAMPLES = 20


@dataclass(slots=True)
class _Counts:
    hits: int = 0
    labelled: int = 0
    fraud: int = 0

    def add(self, hit: npt.NDArray[np.bool_], labels: npt.NDArray[np.int8]) -> None:
        self.hits += int(hit.sum())
        self.labelled += int(np.sum(hit & (labels >= 0)))
        self.fraud += int(np.sum(hit & (labels == 1)))

    def row(self, total_fraud: int) -> dict[str, Any]:
        return {
            "hits": self.hits,
            "precision": _ratio(self.fraud, self.labelled),
            "recall": _ratio(self.fraud, total_fraud),
            "frauds_caught": self.fraud,
        }


def _ratio(a: int, b: int) -> float:
    return a / b if b else math.nan


@dataclass(slots=True)
class _Side:
    """Per-rule and per-action counts of one configuration."""

    ruleset: RuleSet
    rules: list[_Counts] = field(default_factory=list)
    actions: dict[str, _Counts] = field(default_factory=dict)
    scores: list[npt.NDArray[np.float32]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rules = [_Counts() for _ in self.ruleset.rules]
        self.actions = {name: _Counts() for name in ACTIONS if name != "none"}

    def add(self, outcome: Outcome, labels: npt.NDArray[np.int8],
            labelled: npt.NDArray[np.bool_]) -> None:
        d = outcome.decisions
        for r, counts in enumerate(self.rules):
            counts.add(d.matches[r], labels)
        names = d.action_names()
        for name, counts in self.actions.items():
            counts.add(names == name, labels)
        self.scores.append(outcome.score[labelled].astype(np.float32))

    def table(self, total_fraud: int) -> dict[str, Any]:
        rules = []
        for rule, counts in zip(self.ruleset.rules, self.rules, strict=True):
            rules.append({"rule": rule.id, "action": rule.action, "mode": rule.mode,
                          **counts.row(total_fraud)})
        actions = {name: c.row(total_fraud) for name, c in self.actions.items()}
        return {"rules_version": self.ruleset.version, "rules": rules, "actions": actions}


class BacktestAccumulator:
    """Collects what a replay decided, chunk by chunk, for the report."""

    def __init__(self, ruleset: RuleSet, compare_rules: RuleSet | None = None) -> None:
        self.main = _Side(ruleset)
        self.alt: _Side | None = _Side(compare_rules) if compare_rules is not None else None
        self.labels: list[npt.NDArray[np.int8]] = []
        self.times: list[npt.NDArray[np.int64]] = []
        self.cards: list[npt.NDArray[np.uint64]] = []
        self.total_fraud = 0
        self.newly_blocked = 0
        self.unblocked = 0
        self.examples: list[dict[str, Any]] = []
        self.model_versions: tuple[str, str] = ("", "")

    def add(self, outcome: Outcome, alt: Outcome | None = None) -> None:
        b = outcome.batch
        labels = b.is_fraud
        labelled = labels >= 0
        self.total_fraud += int(np.sum(labels == 1))
        self.labels.append(labels[labelled])
        self.times.append(b.timestamp_us[labelled])
        self.cards.append(stable_hash(b.user_id[labelled]))
        self.main.add(outcome, labels, labelled)
        self.model_versions = (outcome.model_version, self.model_versions[1])
        if alt is None:
            return
        if self.alt is None:
            raise ValueError("a candidate outcome needs the accumulator built with its rules")
        self.alt.add(alt, labels, labelled)
        self.model_versions = (outcome.model_version, alt.model_version)
        block = ACTIONS.index("block")
        was, now = outcome.decisions.action == block, alt.decisions.action == block
        new = now & ~was
        self.newly_blocked += int(new.sum())
        self.unblocked += int(np.sum(was & ~now))
        for i in np.flatnonzero(new)[: max(0, EXAMPLES - len(self.examples))]:
            self.examples.append({
                "transaction_id": str(b.transaction_id[i]),
                "is_fraud": int(labels[i]),
                "score_before": float(outcome.score[i]),
                "score_after": float(alt.score[i]),
                "rules_after": alt.decisions.matched(int(i)),
            })

    def write(self, directory: Path, summary_header: dict[str, Any]) -> dict[str, Any]:
        """Write report.json, summary.md and the plots; return the report as a dict."""
        directory.mkdir(parents=True, exist_ok=True)
        labels = np.concatenate(self.labels) if self.labels else np.zeros(0, np.int8)
        report: dict[str, Any] = {"header": summary_header, "labelled_rows": int(labels.size),
                                  "frauds": self.total_fraud}
        plots: list[str] = []
        main_scores = _concat(self.main.scores)
        if labels.size and self.total_fraud:
            report["metrics"] = self._metrics(main_scores, labels)
            plots.append(save_pr_curve(directory / "pr_curve.png", labels,
                                       {"current": main_scores, **self._alt_scores()}))
            plots.append(save_score_histogram(directory / "score_distribution.png", labels,
                                              main_scores))
        report["current"] = self.main.table(self.total_fraud)
        if self.alt is not None:
            alt_scores = _concat(self.alt.scores)
            report["candidate"] = self.alt.table(self.total_fraud)
            if labels.size and self.total_fraud:
                report["candidate"]["metrics"] = self._metrics(alt_scores, labels)
            report["difference"] = self._difference(report)
        report["plots"] = [Path(p).name for p in plots]
        (directory / "report.json").write_text(
            json.dumps(json_safe(report), indent=2, sort_keys=True) + "\n", encoding="utf-8")
        (directory / "summary.md").write_text(_markdown(report), encoding="utf-8")
        return report

    def _alt_scores(self) -> dict[str, F64]:
        if self.alt is None or self.model_versions[0] == self.model_versions[1]:
            return {}
        return {"candidate": _concat(self.alt.scores)}

    def _metrics(self, scores: F64, labels: npt.NDArray[np.int8]) -> dict[str, Any]:
        m = model_metrics(np.nan_to_num(scores, nan=0.0), labels,
                          timestamp_us=np.concatenate(self.times),
                          cards=np.concatenate(self.cards), k=100)
        return {key: m[key] for key in ("rows", "frauds", "auc_roc", "average_precision",
                                        "card_precision_at_100")}

    def _difference(self, report: dict[str, Any]) -> dict[str, Any]:
        diff: dict[str, Any] = {"newly_blocked": self.newly_blocked,
                                "no_longer_blocked": self.unblocked,
                                "newly_blocked_examples": self.examples, "actions": {}}
        for name, before in report["current"]["actions"].items():
            after = report["candidate"]["actions"][name]
            diff["actions"][name] = {
                "hits": after["hits"] - before["hits"],
                "precision": after["precision"] - before["precision"],
                "recall": after["recall"] - before["recall"],
            }
        return diff


def _concat(parts: list[npt.NDArray[np.float32]]) -> F64:
    if not parts:
        return np.zeros(0)
    return np.concatenate(parts).astype(np.float64)


def json_safe(value: Any) -> Any:
    """`value` with NaN/inf floats as None (JSON has no NaN) and floats rounded to 6 places."""
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else round(value, 6)
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.4f}"
    return str(value)


def _rule_table(side: dict[str, Any]) -> list[str]:
    lines = ["| rule | action | mode | hits | precision | recall |", "|---|---|---|---:|---:|---:|"]
    for r in side["rules"]:
        lines.append(f"| {r['rule']} | {r['action']} | {r['mode']} | {r['hits']} | "
                     f"{_fmt(r['precision'])} | {_fmt(r['recall'])} |")
    lines += ["", "| action | transactions | precision | recall |", "|---|---:|---:|---:|"]
    for name, a in side["actions"].items():
        lines.append(f"| {name} | {a['hits']} | {_fmt(a['precision'])} | {_fmt(a['recall'])} |")
    return lines


def _markdown(report: dict[str, Any]) -> str:
    lines = ["# Replay backtest", ""]
    lines += [f"- {key}: {_fmt(value)}" for key, value in report["header"].items()]
    lines += [f"- labelled rows decided: {report['labelled_rows']}",
              f"- frauds among them: {report['frauds']}", ""]
    if "metrics" in report:
        m = report["metrics"]
        lines += ["## Model", "", "| metric | value |", "|---|---:|",
                  f"| AUC ROC | {_fmt(m['auc_roc'])} |",
                  f"| average precision | {_fmt(m['average_precision'])} |",
                  f"| card precision@100 | {_fmt(m['card_precision_at_100'])} |", ""]
    lines += ["## Rules (current)", "", *_rule_table(report["current"]), ""]
    if "candidate" in report:
        lines += ["## Rules (candidate)", "", *_rule_table(report["candidate"]), ""]
        d = report["difference"]
        lines += ["## Difference (candidate - current)", "",
                  f"- would be blocked that were not: {d['newly_blocked']}",
                  f"- blocked now, not by the candidate: {d['no_longer_blocked']}", "",
                  "| action | change in hits | change in precision | change in recall |",
                  "|---|---:|---:|---:|"]
        for name, a in d["actions"].items():
            lines.append(f"| {name} | {a['hits']:+d} | {_fmt(a['precision'])} | "
                         f"{_fmt(a['recall'])} |")
        if d["newly_blocked_examples"]:
            lines += ["", "Examples of newly blocked transactions:", ""]
            for ex in d["newly_blocked_examples"]:
                lines.append(f"- {ex['transaction_id']} (fraud={ex['is_fraud']}, score "
                             f"{ex['score_before']:.3f} -> {ex['score_after']:.3f}, "
                             f"rules {';'.join(ex['rules_after'])})")
        lines.append("")
    for plot in report["plots"]:
        lines.append(f"![{plot}]({plot})")
    return "\n".join(lines) + "\n"


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> str:
    plt = _pyplot()
    fig.tight_layout()
    fig.savefig(path, dpi=80, metadata={"Software": None})  # fixed metadata: same bytes
    plt.close(fig)
    return str(path)


def save_pr_curve(path: Path, labels: npt.NDArray[Any], scores: dict[str, F64]) -> str:
    """Precision-recall curves of one or more score columns against the same labels."""
    from sklearn.metrics import average_precision_score, precision_recall_curve

    plt = _pyplot()
    y = np.asarray(labels) > 0
    fig, ax = plt.subplots(figsize=(5, 4))
    for name, raw in scores.items():
        s = np.nan_to_num(raw, nan=0.0)
        precision, recall, _ = precision_recall_curve(y, s)
        ax.plot(recall, precision, label=f"{name} (AP {average_precision_score(y, s):.3f})")
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall")
    ax.legend()
    return _save(fig, path)


def save_score_histogram(path: Path, labels: npt.NDArray[Any], scores: F64) -> str:
    """Score distributions of genuine and fraudulent transactions (log density)."""
    plt = _pyplot()
    y = np.asarray(labels) > 0
    fig, ax = plt.subplots(figsize=(5, 4))
    bins = np.linspace(0.0, 1.0, 41)
    for flag, name in ((False, "genuine"), (True, "fraud")):
        part = scores[(y == flag) & ~np.isnan(scores)]
        if part.size:
            ax.hist(part, bins=bins, alpha=0.6, density=True, label=name)
    ax.set(xlabel="score", ylabel="density", yscale="log", title="Scores by label")
    ax.legend()
    return _save(fig, path)
