"""The training report: PR and ROC curves, score histograms by label, feature importances
(PNG, matplotlib's Agg backend, no display needed) and a short Markdown summary.

Feature importance here is the mean absolute occlusion contribution over test rows (how much
the score moves when the feature is set to its training median): the same measure the reason
codes use, so the report and the per-transaction reasons tell one story.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["summary_markdown", "write_report"]

F64 = npt.NDArray[np.float64]


def _fmt(value: Any) -> str:
    if value is None:  # NaN metrics are stored as JSON null
        return "n/a"
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.4f}"
    return str(value)


def _pairs(mapping: Mapping[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in mapping.items()) or "none"


def summary_markdown(manifest: Mapping[str, Any], importances: Sequence[tuple[str, float]],
                     images: Sequence[str]) -> str:
    """The report's ``summary.md`` text from a manifest dict."""
    m = manifest
    metrics = m.get("metrics", {})
    lines = [
        f"# Model report: {m.get('algorithm')}",
        "",
        f"- Training range: {' to '.join(m.get('train_range', []))} (half-open, UTC)",
        f"- Test range: {' to '.join(m.get('test_range') or ['none'])}",
        f"- Label delay: {m.get('label_delay_days')} days",
        f"- Rows: {_pairs(m.get('counts', {}))}",
        f"- Parameters: {_pairs(m.get('params', {}))}",
        "",
    ]
    test = metrics.get("test")
    if test:
        k = test.get("card_precision_k", 100)
        lines += [
            "## Test metrics",
            "",
            "| metric | value |",
            "|---|---|",
            f"| AUC ROC | {_fmt(test.get('auc_roc'))} |",
            f"| Average precision | {_fmt(test.get('average_precision'))} |",
            f"| Card precision@{k} (mean over {test.get('card_precision_days')} days) "
            f"| {_fmt(test.get(f'card_precision_at_{k}'))} |",
            f"| Card precision@{k} of a perfect ranking (ceiling) "
            f"| {_fmt(test.get(f'card_precision_at_{k}_ceiling'))} |",
            "",
            "| threshold | flagged | precision | recall |",
            "|---|---|---|---|",
        ]
        for t in test.get("thresholds", []):
            lines.append(f"| {t['threshold']} | {t['flagged']} | {_fmt(t['precision'])} "
                         f"| {_fmt(t['recall'])} |")
        lines.append("")
    else:
        lines += ["No test range: no held-out metrics.", ""]
    if importances:
        lines += ["## Top features (mean |score change| when set to the training median)", ""]
        lines += [f"{i + 1}. {n}: {v:.4f}" for i, (n, v) in enumerate(importances[:10])]
        lines.append("")
    if images:
        lines += ["## Figures", ""] + [f"![{Path(p).stem}]({Path(p).name})" for p in images]
        lines.append("")
    return "\n".join(lines)


def write_report(directory: str | Path, manifest: Mapping[str, Any],
                 scores: F64 | None, labels: npt.NDArray[Any] | None,
                 importances: Sequence[tuple[str, float]]) -> list[Path]:
    """Write the PNGs (when there are test scores) and ``summary.md``; returns the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve, roc_curve

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if scores is not None and labels is not None and len(scores):
        y = np.asarray(labels) > 0
        if 0 < int(y.sum()) < y.size:
            prec, rec, _ = precision_recall_curve(y, scores)
            fig, ax = plt.subplots(figsize=(5, 4))
            ax.plot(rec, prec)
            ax.set(xlabel="recall", ylabel="precision", title="Precision-recall (test)")
            written.append(_save(fig, out / "pr_curve.png"))
            fpr, tpr, _ = roc_curve(y, scores)
            fig, ax = plt.subplots(figsize=(5, 4))
            ax.plot(fpr, tpr)
            ax.plot([0, 1], [0, 1], linestyle=":", color="grey")
            ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (test)")
            written.append(_save(fig, out / "roc_curve.png"))
        fig, ax = plt.subplots(figsize=(5, 4))
        bins = [i / 40 for i in range(41)]
        for flag, name in ((False, "genuine"), (True, "fraud")):
            if np.any(y == flag):
                ax.hist(scores[y == flag], bins=bins, alpha=0.6, density=True, label=name)
        ax.set(xlabel="score", ylabel="density", yscale="log", title="Scores by label (test)")
        ax.legend()
        written.append(_save(fig, out / "score_histogram.png"))
    if importances:
        top = list(importances[:20])[::-1]
        fig, ax = plt.subplots(figsize=(6, 0.3 * len(top) + 1.2))
        ax.barh([n for n, _ in top], [v for _, v in top])
        ax.set(xlabel="mean |score change| at the training median", title="Feature importance")
        written.append(_save(fig, out / "feature_importance.png"))
    summary = out / "summary.md"
    summary.write_text(summary_markdown(manifest, importances, [str(p) for p in written]),
                       encoding="utf-8")
    return [*written, summary]


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    # Fixed metadata so the same data gives byte-identical PNGs.
    fig.savefig(path, dpi=80, metadata={"Software": None})
    plt.close(fig)
    return path
