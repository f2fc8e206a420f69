"""The loop from the live archive to a retrained model: unlabelled transactions + a label feed."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from fraud.cli import main
from fraud.generate import GenerateConfig, generate, write_dataset


def _run(args: list[str]) -> int:
    try:
        main(args)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_train_joins_a_label_feed_onto_unlabelled_transactions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    labelled = tmp_path / "tx.csv"
    write_dataset(generate(GenerateConfig(users=150, terminals=50, days=30, seed=3,
                                          fraud_rate=0.02)), labelled)
    with labelled.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    archive, feed = tmp_path / "archive.csv", tmp_path / "labels.csv"
    keep = [c for c in rows[0] if c not in ("is_fraud", "label_time", "scenario")]
    with archive.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, keep, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    frauds = [r for r in rows if r["is_fraud"] == "1"]
    with feed.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, ["transaction_id", "is_fraud", "label_time"],
                                extrasaction="ignore")
        writer.writeheader()
        writer.writerows(frauds)

    common = ["train", "--input", str(archive), "--train-start", "2024-01-01",
              "--train-end", "2024-01-18", "--param", "max_iter=20", "--top-k", "5"]
    assert _run([*common, "--out", str(tmp_path / "none")]) == 2
    assert "no is_fraud labels" in capsys.readouterr().err
    out = tmp_path / "model"
    assert _run([*common, "--labels", str(feed), "--out", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["train_frauds"] > 0
