"""``fraud train`` end to end on a tiny generated file, and its input errors (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fraud.cli import main
from fraud.model.scorer import LocalScorer


@pytest.fixture(scope="module")
def data_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from fraud.generate import GenerateConfig, generate, write_dataset

    path = tmp_path_factory.mktemp("data") / "tx.csv"
    write_dataset(generate(GenerateConfig(users=150, terminals=50, days=30, seed=3,
                                          fraud_rate=0.02)), path)
    return path


def _run(args: list[str]) -> int:
    try:
        main(args)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_train_writes_a_loadable_artifact(data_file: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "model"
    code = _run(["train", "--input", str(data_file), "--train-start", "2024-01-01",
                 "--train-end", "2024-01-18", "--test-start", "2024-01-23",
                 "--test-end", "2024-01-31", "--param", "max_iter=20", "--top-k", "5",
                 "--out", str(out), "--report", str(tmp_path / "report")])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "auc_roc" in printed and "card_precision@5" in printed
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["params"]["max_iter"] == 20
    assert manifest["test_range"] == ["2024-01-23T00:00:00Z", "2024-01-31T00:00:00Z"]
    assert (tmp_path / "report" / "summary.md").is_file()
    scorer = LocalScorer.load(out)  # the engine's own feature list and version
    x = np.tile(np.asarray(scorer.reference), (3, 1))
    assert scorer.score(x).shape == (3,)


@pytest.mark.parametrize(("args", "message"), [
    (["--train-start", "2024-13-01", "--train-end", "2024-01-18"], "--train-start"),
    (["--train-start", "2024-01-10", "--train-end", "2024-01-05"], "must be after"),
    (["--train-start", "2024-01-01", "--train-end", "2024-01-18",
      "--test-start", "2024-01-10", "--test-end", "2024-01-20"], "overlaps"),
    (["--train-start", "2024-01-01", "--train-end", "2024-01-18", "--param", "oops"],
     "NAME=VALUE"),
    (["--train-start", "2024-01-01", "--train-end", "2024-01-18", "--param", "max_iter=-3"],
     "bad parameter"),
    # Ranges outside the file: name the range and the file's span (2024-01-01 .. 01-30).
    (["--train-start", "2023-01-01", "--train-end", "2023-02-01"],
     "no labelled transactions in [2023-01-01T00:00:00Z, 2023-02-01T00:00:00Z); "
     "the file's transactions span 2024-01-01"),
    (["--train-start", "2024-01-01", "--train-end", "2024-01-18",
      "--test-start", "2025-01-01", "--test-end", "2025-02-01"],
     "--test-start/--test-end: no labelled transactions"),
])
def test_bad_input_exits_2_with_a_clear_message(
        data_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        args: list[str], message: str) -> None:
    code = _run(["train", "--input", str(data_file), "--out", str(tmp_path / "m"), *args])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert "Traceback" not in err


def test_missing_input_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = _run(["train", "--input", str(tmp_path / "nope.csv"), "--train-start", "2024-01-01",
                 "--train-end", "2024-01-18", "--out", str(tmp_path / "m")])
    assert code == 2 and "no such file" in capsys.readouterr().err


ROOT = Path(__file__).resolve().parents[2]


def _broken_artifacts(tmp_path: Path) -> list[tuple[Path, str]]:
    """Copies of the shipped model, each broken in one way a caller could hand us."""
    import shutil

    def copy(name: str) -> Path:
        return Path(shutil.copytree(ROOT / "models" / "default", tmp_path / name))

    missing_model = copy("no-model")
    (missing_model / "model.skops").unlink()
    changed = copy("changed")
    data = bytearray((changed / "model.skops").read_bytes())
    data[len(data) // 2] ^= 1
    (changed / "model.skops").write_bytes(bytes(data))
    engine = copy("engine")
    manifest = json.loads((engine / "manifest.json").read_text())
    manifest["feature_engine_version"] = "999"
    (engine / "manifest.json").write_text(json.dumps(manifest))
    return [(tmp_path / "nope", "no manifest"), (missing_model, "does not exist"),
            (changed, "sha256 mismatch"), (engine, "feature engine version mismatch")]


def test_missing_or_refused_model_exits_2_with_a_clear_message(
        data_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A bad ``--model`` is the caller's input: exit 2 and one line naming the problem."""
    for model_dir, message in _broken_artifacts(tmp_path):
        code = _run(["replay", "--input", str(data_file), "--model", str(model_dir),
                     "--rules", str(ROOT / "rules" / "default.yaml"),
                     "--output", str(tmp_path / "out.csv")])
        err = capsys.readouterr().err
        assert code == 2, (model_dir, err)
        assert message in err and str(model_dir) in err and "Traceback" not in err
