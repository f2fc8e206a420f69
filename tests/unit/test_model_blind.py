"""Hostile artifacts found in an outside review: links, oversized or deeply nested
manifests, and unreadable model files are refused with a clear `ArtifactError` (exit 2)."""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from pathlib import Path

import pytest

from fraud.model.artifact import (
    MANIFEST_FILE,
    MAX_MANIFEST_BYTES,
    ArtifactError,
    Manifest,
    load_artifact,
    read_manifest,
    save_artifact,
    sha256_of,
)
from fraud.model.synthetic import NAMES, synthetic_rows
from fraud.model.train import fit_model

ROWS = synthetic_rows(n=600)


def _save(directory: Path) -> Path:
    model = fit_model(ROWS.x, ROWS.is_fraud, "hgb", {"max_iter": 5})
    manifest = Manifest(
        feature_names=NAMES, feature_engine_version="test-1", label_delay_days=7.0,
        algorithm="hgb", params={}, positive_weight=1.0, reference=(1.0, 0.0, 0.0, 0.0),
        train_range=("2023-11-15T00:00:00Z", "2023-12-01T00:00:00Z"), test_range=None,
        counts={"train_rows": 1}, metrics={}, library_versions={},
        created_at="2026-01-01T00:00:00Z", model_sha256="")
    save_artifact(directory, model.estimator, manifest)
    return directory


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _save(tmp_path_factory.mktemp("good"))


def _copy(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for name in (MANIFEST_FILE, "model.skops"):
        (dst / name).write_bytes((src / name).read_bytes())
    return dst


def _load(path: Path) -> object:
    return load_artifact(path, expected_features=NAMES, expected_engine_version="test-1")


def _rehash(path: Path) -> None:
    data = json.loads((path / MANIFEST_FILE).read_text())
    data["model_sha256"] = sha256_of(path / "model.skops")
    (path / MANIFEST_FILE).write_text(json.dumps(data))


def test_good_copy_loads(good: Path, tmp_path: Path) -> None:
    _load(_copy(good, tmp_path / "a"))


def test_symlinked_model_file_is_refused(good: Path, tmp_path: Path) -> None:
    art = _copy(good, tmp_path / "a")
    (art / "model.skops").unlink()
    os.symlink(good / "model.skops", art / "model.skops")
    with pytest.raises(ArtifactError, match="symbolic link"):
        _load(art)


def test_model_file_linked_to_a_device_is_refused_without_reading(good: Path,
                                                                   tmp_path: Path) -> None:
    art = _copy(good, tmp_path / "a")
    (art / "model.skops").unlink()
    os.symlink("/dev/zero", art / "model.skops")   # hashing it would never end
    with pytest.raises(ArtifactError, match="symbolic link"):
        _load(art)


def test_symlinked_manifest_is_refused(good: Path, tmp_path: Path) -> None:
    art = _copy(good, tmp_path / "a")
    (art / MANIFEST_FILE).unlink()
    os.symlink(good / MANIFEST_FILE, art / MANIFEST_FILE)
    with pytest.raises(ArtifactError, match="symbolic link"):
        read_manifest(art)


def test_manifest_that_is_a_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / MANIFEST_FILE).mkdir()
    with pytest.raises(ArtifactError, match="not a regular file"):
        read_manifest(tmp_path)


def test_huge_manifest_is_refused_unread(good: Path, tmp_path: Path) -> None:
    art = _copy(good, tmp_path / "a")
    data = json.loads((art / MANIFEST_FILE).read_text())
    data["extra"] = {"pad": "x" * (MAX_MANIFEST_BYTES + 1)}
    (art / MANIFEST_FILE).write_text(json.dumps(data))
    with pytest.raises(ArtifactError, match="more than"):
        _load(art)


@pytest.mark.parametrize("text", ["[" * 100_000 + "]" * 100_000,
                                  '{"a": ' + "1" * 10_000 + "}"])
def test_deep_or_absurd_json_is_a_clear_refusal(tmp_path: Path, text: str) -> None:
    (tmp_path / MANIFEST_FILE).write_text(text)
    with pytest.raises(ArtifactError, match="not a readable JSON manifest"):
        read_manifest(tmp_path)


class _Boom:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("echo pwned > /dev/null",))


def test_pickle_renamed_is_named_as_a_pickle(good: Path, tmp_path: Path) -> None:
    art = _copy(good, tmp_path / "a")
    (art / "model.skops").write_bytes(pickle.dumps(_Boom()))
    _rehash(art)
    with pytest.raises(ArtifactError, match="looks like a pickle"):
        _load(art)


def test_malformed_schema_naming_os_system_names_it(good: Path, tmp_path: Path) -> None:
    art = _copy(good, tmp_path / "a")
    with zipfile.ZipFile(good / "model.skops") as zin:
        schema = json.loads(zin.read("schema.json"))
        # An os.system node that skops cannot even parse (no content of the right shape).
        schema["content"]["content"]["loss"] = {"__class__": "system", "__module__": "os",
                                                "__loader__": "ObjectNode",
                                                "content": {"__class__": "dict",
                                                            "__module__": "builtins",
                                                            "__loader__": "DictNode",
                                                            "content": {}}}
        with zipfile.ZipFile(art / "model.skops", "w") as zout:
            for name in zin.namelist():
                zout.writestr(name, json.dumps(schema) if name == "schema.json"
                              else zin.read(name))
    _rehash(art)
    with pytest.raises(ArtifactError, match=r"outside the allow-list: \['os.system'\]"):
        _load(art)


def test_cli_exit_code_is_2_for_a_linked_model(good: Path, tmp_path: Path) -> None:
    art = _copy(good, tmp_path / "a")
    (art / "model.skops").unlink()
    os.symlink(good / "model.skops", art / "model.skops")
    with pytest.raises(ArtifactError) as info:
        _load(art)
    assert info.value.exit_code == 2


def test_label_delay_mismatch_is_reported() -> None:
    from fraud.model.scorer import label_delay_mismatch

    assert label_delay_mismatch(30.0, 30) is None
    assert label_delay_mismatch(30.0, None) is None
    message = label_delay_mismatch(30.0, 7.0)
    assert message is not None and "30 days" in message and "with 7" in message


def test_build_scorer_still_loads_with_another_delay(good: Path,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from types import SimpleNamespace

    import fraud.model.scorer as scorer_module

    original = scorer_module.load_artifact
    monkeypatch.setattr(scorer_module, "load_artifact", lambda d: original(
        d, expected_features=NAMES, expected_engine_version="test-1"))
    same = SimpleNamespace(scorer="local", model_dir=good, label_delay_days=7.0)
    assert isinstance(scorer_module.build_scorer(same), scorer_module.LocalScorer)
    assert "label_delay_mismatch" not in capsys.readouterr().err
    other = SimpleNamespace(scorer="local", model_dir=good, label_delay_days=30.0)
    assert isinstance(scorer_module.build_scorer(other), scorer_module.LocalScorer)
    err = capsys.readouterr().err
    assert "label_delay_mismatch" in err and "features are computed with 30" in err


def test_the_bytes_hashed_are_the_bytes_loaded(good: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import skops.io as sio

    def by_path(*_: object, **__: object) -> object:
        raise AssertionError("loaded from the path again, after the hash was checked")

    monkeypatch.setattr(sio, "load", by_path)
    _load(_copy(good, tmp_path / "copy"))  # the read-once path: sio.loads on those bytes


def test_an_oversized_model_file_is_refused_unread(good: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from fraud.model import artifact

    copy = _copy(good, tmp_path / "copy")
    monkeypatch.setattr(artifact, "MAX_MODEL_BYTES", 1000)
    with pytest.raises(ArtifactError, match="more than the 1000 a model may have"):
        _load(copy)
