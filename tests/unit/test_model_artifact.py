"""Artifacts: round trip, and every mismatch or unsafe model file refused with a clear error."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from fraud.errors import ModelError
from fraud.model.artifact import (
    ARTIFACT_FORMAT_VERSION,
    MANIFEST_FILE,
    Manifest,
    load_artifact,
    save_artifact,
)
from fraud.model.synthetic import NAMES, synthetic_rows
from fraud.model.train import fit_model

ROWS = synthetic_rows(n=1500)


def _manifest(**over: object) -> Manifest:
    base = dict(feature_names=NAMES, feature_engine_version="test-1", label_delay_days=7.0,
                algorithm="hgb", params={}, positive_weight=1.0,
                reference=(1.0, 0.0, 0.0, 0.0),
                train_range=("2023-11-15T00:00:00Z", "2023-12-01T00:00:00Z"),
                test_range=None, counts={"train_rows": 1}, metrics={},
                library_versions={}, created_at="2026-01-01T00:00:00Z", model_sha256="")
    base.update(over)
    return Manifest(**base)  # type: ignore[arg-type]


def _save(tmp_path: Path, algorithm: str = "hgb") -> Path:
    params = {"max_iter": 20} if algorithm == "hgb" else (
        {"n_estimators": 5} if algorithm == "rf" else {})
    model = fit_model(ROWS.x, ROWS.is_fraud, algorithm, params)
    save_artifact(tmp_path, model.estimator, _manifest(algorithm=algorithm))
    return tmp_path


def _load(path: Path, names: tuple[str, ...] = NAMES) -> object:
    return load_artifact(path, expected_features=names, expected_engine_version="test-1")


@pytest.mark.parametrize("algorithm", ["hgb", "rf", "lr"])
def test_round_trip_every_algorithm(tmp_path: Path, algorithm: str) -> None:
    _save(tmp_path, algorithm)
    art = load_artifact(tmp_path, NAMES, "test-1")
    manifest = json.loads((tmp_path / MANIFEST_FILE).read_text())
    assert manifest["format_version"] == ARTIFACT_FORMAT_VERSION
    assert len(manifest["model_sha256"]) == 64
    assert art.model.predict_proba(ROWS.x[:5]).shape == (5, 2)


def test_model_file_changed_is_refused(tmp_path: Path) -> None:
    _save(tmp_path)
    with open(tmp_path / "model.skops", "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(ModelError, match="sha256 mismatch"):
        _load(tmp_path)


def test_format_version_mismatch(tmp_path: Path) -> None:
    _save(tmp_path)
    doc = json.loads((tmp_path / MANIFEST_FILE).read_text())
    doc["format_version"] = 99
    (tmp_path / MANIFEST_FILE).write_text(json.dumps(doc))
    with pytest.raises(ModelError, match="format version 99"):
        _load(tmp_path)


def test_feature_list_mismatch_names_the_difference(tmp_path: Path) -> None:
    _save(tmp_path)
    with pytest.raises(ModelError, match=r"feature list mismatch: missing \['extra'\]"):
        _load(tmp_path, (*NAMES, "extra"))
    swapped = (NAMES[1], NAMES[0], *NAMES[2:])
    with pytest.raises(ModelError, match="order differs from position 0"):
        _load(tmp_path, swapped)


def test_engine_version_mismatch(tmp_path: Path) -> None:
    _save(tmp_path)
    with pytest.raises(ModelError, match="feature engine version mismatch"):
        load_artifact(tmp_path, NAMES, "test-2")


def test_missing_or_broken_manifest(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no manifest"):
        _load(tmp_path)
    (tmp_path / MANIFEST_FILE).write_text("{not json")
    with pytest.raises(ModelError, match="not a readable JSON manifest"):
        _load(tmp_path)
    (tmp_path / MANIFEST_FILE).write_text(json.dumps({"format_version": 1}))
    with pytest.raises(ModelError, match="missing field"):
        _load(tmp_path)


def test_model_file_cannot_escape_the_directory(tmp_path: Path) -> None:
    _save(tmp_path)
    doc = json.loads((tmp_path / MANIFEST_FILE).read_text())
    doc["model_file"] = "../elsewhere.skops"
    (tmp_path / MANIFEST_FILE).write_text(json.dumps(doc))
    with pytest.raises(ModelError, match="plain file name"):
        _load(tmp_path)


def test_untrusted_type_is_refused_by_name(tmp_path: Path) -> None:
    """A model file asking for a function (code) is refused before anything is built,
    even when its hash matches the manifest."""
    import skops.io as sio
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    from fraud.model.artifact import sha256_of

    evil = make_pipeline(FunctionTransformer(os.system))
    sio.dump(evil, tmp_path / "model.skops", compression=zipfile.ZIP_DEFLATED)
    manifest = _manifest(model_sha256=sha256_of(tmp_path / "model.skops"))
    (tmp_path / MANIFEST_FILE).write_text(manifest.to_json())
    with pytest.raises(ModelError, match=r"outside the allow-list: \['posix.system'\]"):
        _load(tmp_path)


def test_other_estimator_of_trusted_types_is_refused(tmp_path: Path) -> None:
    """Trusted types, wrong shape: a pipeline that is not imputer -> scaler -> LR."""
    import skops.io as sio
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    from fraud.model.artifact import sha256_of

    sneaky = make_pipeline(FunctionTransformer(np.exp))
    sio.dump(sneaky, tmp_path / "model.skops")
    manifest = _manifest(model_sha256=sha256_of(tmp_path / "model.skops"))
    (tmp_path / MANIFEST_FILE).write_text(manifest.to_json())
    with pytest.raises(ModelError, match=r"pipeline steps .*FunctionTransformer"):
        _load(tmp_path)


def test_pickle_file_is_not_loaded(tmp_path: Path) -> None:
    import pickle

    from fraud.model.artifact import sha256_of

    (tmp_path / "model.skops").write_bytes(pickle.dumps({"a": 1}))
    manifest = _manifest(model_sha256=sha256_of(tmp_path / "model.skops"))
    (tmp_path / MANIFEST_FILE).write_text(manifest.to_json())
    with pytest.raises(ModelError, match="not a readable skops file"):
        _load(tmp_path)
