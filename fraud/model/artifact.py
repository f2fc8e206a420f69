"""Model artifacts: a manifest plus a model file that cannot run code when it is loaded.

An artifact is a directory::

    DIR/manifest.json   what the model is (see `Manifest`)
    DIR/model.skops     the fitted scikit-learn estimator, in skops' format

Plain pickle would execute whatever the file says on load, so a model file from a shared
bucket would be a remote-code-execution hole. skops stores estimators as data and refuses to
build any type it has not been told to trust; we never pass ``trusted=True``: the types a file
asks for are checked against `ALLOWED_TYPES`, an explicit list kept here, and a file that asks
for anything else is refused by name before a single object is built.

Loading also checks, in this order, so the first error is the most useful one: the manifest
parses and has every field, the artifact format version, the feature engine version and the
feature names (the model's column order), then the sha256 of the model file, then the types.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fraud.errors import ModelError

__all__ = [
    "ALLOWED_ESTIMATORS",
    "ALLOWED_TYPES",
    "ARTIFACT_FORMAT_VERSION",
    "MANIFEST_FILE",
    "MODEL_FILE",
    "Artifact",
    "ArtifactError",
    "Manifest",
    "check_compatible",
    "load_artifact",
    "read_manifest",
    "save_artifact",
    "sha256_of",
]

ARTIFACT_FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
MODEL_FILE = "model.skops"
# A real manifest is a few KiB; a bigger one is refused before it is read into memory.
MAX_MANIFEST_BYTES = 4 << 20
# A model of ours is a few hundred kB; a forest of deep trees a few hundred MB at most.
MAX_MODEL_BYTES = 1 << 30
# Plain-data type names the pre-scan of a skops schema does not report as suspicious.
_PLAIN_BUILTINS = frozenset({"dict", "list", "tuple", "str", "int", "float", "bool",
                             "NoneType", "bytes", "slice", "set", "frozenset", "complex",
                             "type"})

# Types skops does not trust by default that our three algorithms need. Anything else in a
# model file (a function, an arbitrary class) is refused. Extend only with plain-data types.
ALLOWED_TYPES: frozenset[str] = frozenset({
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
    "sklearn.tree._tree.Tree",
    "sklearn._loss.loss.HalfBinomialLoss",
    "sklearn._loss.link.LogitLink",
    "sklearn._loss._loss.CyHalfBinomialLoss",
    "sklearn.utils._bunch.Bunch",
    "numpy.dtype",
})

# What the loaded object may be: exactly the shapes `fraud.model.train` makes (a Pipeline
# only as imputer -> scaler -> logistic regression), so a file holding any other estimator
# or transformer, even one made of trusted types, is refused.
ALLOWED_ESTIMATORS: dict[str, tuple[str, ...]] = {
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier":
        (),
    "sklearn.ensemble._forest.RandomForestClassifier": (),
    "sklearn.pipeline.Pipeline": (
        "sklearn.impute._base.SimpleImputer",
        "sklearn.preprocessing._data.StandardScaler",
        "sklearn.linear_model._logistic.LogisticRegression",
    ),
}


class ArtifactError(ModelError):
    """An artifact that is missing, unreadable or refused by verification.

    The artifact directory is the caller's input (``--model``, ``FRAUD_MODEL_DIR``), so,
    like `fraud.errors.InputError`, this exits the CLI with code 2; it is still a
    `ModelError`, so code that catches model errors catches it too.
    """

    exit_code = 2


@dataclass(frozen=True, slots=True)
class Manifest:
    """Everything needed to trust, use and reproduce a model; stored as ``manifest.json``.

    `reference` is the neutral value of each feature (its training median): reason codes
    measure how much a feature's actual value raised the score compared with this value.
    `positive_weight` is the weight fraud rows had in training; scores are corrected for it
    so that they read as probabilities (see `fraud.model.scorer.correct_for_weight`).
    """

    feature_names: tuple[str, ...]
    feature_engine_version: str
    label_delay_days: float
    algorithm: str
    params: Mapping[str, Any]
    positive_weight: float
    reference: tuple[float, ...]
    train_range: tuple[str, str]
    test_range: tuple[str, str] | None
    counts: Mapping[str, int]
    metrics: Mapping[str, Any]
    library_versions: Mapping[str, str]
    created_at: str
    model_sha256: str
    seed: int = 0
    model_file: str = MODEL_FILE
    format_version: int = ARTIFACT_FORMAT_VERSION
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        data = asdict(self)
        data["feature_names"] = list(self.feature_names)
        data["reference"] = list(self.reference)
        data["train_range"] = list(self.train_range)
        data["test_range"] = None if self.test_range is None else list(self.test_range)
        return json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n"


@dataclass(frozen=True, slots=True, eq=False)
class Artifact:
    """A verified, loaded artifact: its manifest and the estimator (read-only by convention)."""

    manifest: Manifest
    model: Any
    path: Path

    def __repr__(self) -> str:
        m = self.manifest
        return (f"Artifact(path={str(self.path)!r}, algorithm={m.algorithm!r}, "
                f"sha256={m.model_sha256[:12]})")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_artifact(directory: str | Path, model: Any, manifest: Manifest) -> Manifest:
    """Write the model file and the manifest (with the model's real hash) into `directory`.

    Returns the manifest as written. The model is checked to load back under the allow-list
    before the manifest is written, so an artifact that cannot be loaded is never published.
    """
    import skops.io as sio

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    model_path = out / manifest.model_file
    try:
        sio.dump(model, model_path, compression=zipfile.ZIP_DEFLATED, compresslevel=9)
    except Exception as exc:  # skops raises many types; all mean "could not serialise"
        raise ModelError(f"{model_path}: could not write the model: {exc}") from exc
    _check_types(model_path)
    data = asdict(manifest)
    data["model_sha256"] = sha256_of(model_path)
    written = Manifest(**data)
    (out / MANIFEST_FILE).write_text(written.to_json(), encoding="utf-8")
    return written


_REQUIRED: dict[str, type | tuple[type, ...]] = {
    "format_version": int,
    "feature_names": list,
    "feature_engine_version": str,
    "label_delay_days": (int, float),
    "algorithm": str,
    "params": dict,
    "positive_weight": (int, float),
    "reference": list,
    "train_range": list,
    "counts": dict,
    "metrics": dict,
    "library_versions": dict,
    "created_at": str,
    "model_sha256": str,
    "model_file": str,
}


def _regular_file(path: Path, what: str, missing: str) -> int:
    """The size of `path`, which must be a regular file and not a symbolic link: an artifact
    is a self-contained directory, and a link (or a device, a FIFO) could make the loader
    read something the artifact's author does not control, or read forever (/dev/zero)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError as exc:
        raise ArtifactError(f"{path}: {missing}") from exc
    except OSError as exc:
        raise ArtifactError(f"{path}: cannot read the {what}: {exc}") from exc
    if stat.S_ISLNK(st.st_mode):
        raise ArtifactError(f"{path}: the {what} is a symbolic link; an artifact must hold "
                            f"regular files (copy the file instead of linking it)")
    if not stat.S_ISREG(st.st_mode):
        raise ArtifactError(f"{path}: the {what} is not a regular file")
    return st.st_size


def _read_model(path: Path, size: int) -> bytes:
    """The model file's bytes, opened without following a link (it was checked to be a
    regular file; a link put there since is refused by the open itself) and size-capped."""
    if size > MAX_MODEL_BYTES:
        raise ArtifactError(f"{path}: the model file has {size} bytes, more than the "
                            f"{MAX_MODEL_BYTES} a model may have; refused unread")
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd, "rb") as fh:
            data = fh.read(MAX_MODEL_BYTES + 1)
    except OSError as exc:
        raise ArtifactError(f"{path}: cannot read the model file: {exc}") from exc
    if len(data) > MAX_MODEL_BYTES:
        raise ArtifactError(f"{path}: the model file grew past {MAX_MODEL_BYTES} bytes")
    return data


def read_manifest(directory: str | Path) -> Manifest:
    """Parse and validate ``DIR/manifest.json`` (no version or feature checks)."""
    path = Path(directory) / MANIFEST_FILE
    size = _regular_file(path, "manifest",
                         f"no manifest; is {directory} a model artifact?")
    if size > MAX_MANIFEST_BYTES:
        raise ArtifactError(f"{path}: manifest is {size} bytes, more than the "
                            f"{MAX_MANIFEST_BYTES} a manifest may have; refused unread")
    try:
        with open(path, "rb") as fh:
            text = fh.read(MAX_MANIFEST_BYTES + 1).decode("utf-8")
        if len(text) > MAX_MANIFEST_BYTES:
            raise ArtifactError(f"{path}: manifest grew past {MAX_MANIFEST_BYTES} bytes")
        raw = json.loads(text)
    except FileNotFoundError as exc:
        raise ArtifactError(f"{path}: no manifest; is {directory} a model artifact?") from exc
    except (OSError, UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError included
        raise ArtifactError(f"{path}: not a readable JSON manifest: {exc}") from exc
    except RecursionError as exc:
        raise ArtifactError(f"{path}: not a readable JSON manifest: nested too deeply") from exc
    if not isinstance(raw, dict):
        raise ArtifactError(f"{path}: expected a JSON object, got {type(raw).__name__}")
    if "format_version" in raw and raw["format_version"] != ARTIFACT_FORMAT_VERSION:
        raise ArtifactError(
            f"{path}: artifact format version {raw['format_version']!r} is not supported "
            f"(this code reads version {ARTIFACT_FORMAT_VERSION})"
        )
    for key, kind in _REQUIRED.items():
        if key not in raw:
            raise ArtifactError(f"{path}: missing field {key!r}")
        if not isinstance(raw[key], kind) or isinstance(raw[key], bool):
            raise ArtifactError(f"{path}: field {key!r} has the wrong type "
                             f"({type(raw[key]).__name__})")
    names = raw["feature_names"]
    if not all(isinstance(n, str) for n in names) or len(set(names)) != len(names):
        raise ArtifactError(f"{path}: feature_names must be distinct strings")
    reference = raw["reference"]
    if len(reference) != len(names) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in reference
    ):
        raise ArtifactError(f"{path}: reference must hold one number per feature "
                            f"({len(reference)} values for {len(names)} feature names; "
                            f"a feature list edited by hand?)")
    model_file = raw["model_file"]
    if "/" in model_file or "\\" in model_file or model_file in ("", ".", ".."):
        raise ArtifactError(f"{path}: model_file must be a plain file name, "
                            f"got {raw['model_file']!r}")
    known = {f for f in Manifest.__dataclass_fields__}
    values = {k: v for k, v in raw.items() if k in known}
    values["feature_names"] = tuple(names)
    values["reference"] = tuple(float(v) for v in reference)
    values["train_range"] = tuple(raw["train_range"])
    test_range = raw.get("test_range")
    values["test_range"] = None if test_range is None else tuple(test_range)
    return Manifest(**values)


def _feature_mismatch(found: Sequence[str], expected: Sequence[str]) -> str | None:
    if tuple(found) == tuple(expected):
        return None
    missing = [n for n in expected if n not in found]
    extra = [n for n in found if n not in expected]
    parts = []
    if missing:
        parts.append(f"missing {missing}")
    if extra:
        parts.append(f"unknown {extra}")
    if not parts:
        at = next(i for i, (a, b) in enumerate(zip(found, expected, strict=True)) if a != b)
        parts.append(f"order differs from position {at}: artifact has {found[at]!r}, "
                     f"the feature engine has {expected[at]!r}")
    return "; ".join(parts)


def _type_name(obj: Any) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def _check_types(model_path: Path, data: bytes | None = None) -> list[str]:
    """The file's types that skops does not trust by default, refused unless allow-listed.
    With `data` (the file's bytes, read once) those very bytes are checked."""
    import skops.io as sio

    try:
        untrusted = sorted(sio.get_untrusted_types(data=data) if data is not None
                           else sio.get_untrusted_types(file=model_path))
    except Exception as exc:  # a corrupt zip or schema surfaces as many exception types
        raise ArtifactError(f"{model_path}: not a readable skops file: {exc!r}"
                            f"{_why_unreadable(model_path)}") from exc
    refused = [t for t in untrusted if t not in ALLOWED_TYPES]
    if refused:
        raise ArtifactError(f"{model_path}: refusing to load types outside the allow-list: "
                            f"{refused}")
    return untrusted


def _schema_names(node: Any, out: set[str], depth: int = 0) -> None:
    """Every ``module.class`` (and FunctionNode / MethodNode target) a skops schema names."""
    if depth > 200:
        return
    if isinstance(node, dict):
        mod, cls = node.get("__module__"), node.get("__class__")
        if isinstance(mod, str) and isinstance(cls, str):
            out.add(f"{mod}.{cls}")
        content = node.get("content")
        if isinstance(content, dict):
            mod, fn = content.get("module_path"), content.get("function")
            if isinstance(mod, str) and isinstance(fn, str):
                out.add(f"{mod}.{fn}")
        for value in node.values():
            _schema_names(value, out, depth + 1)
    elif isinstance(node, list):
        for value in node:
            _schema_names(value, out, depth + 1)


def _why_unreadable(model_path: Path) -> str:
    """A hint for a model file skops could not read: a pickle, or the suspicious types its
    schema names (nothing in the file is built or run to find out)."""
    try:
        with open(model_path, "rb") as fh:
            head = fh.read(2)
        if head[:1] == b"\x80" or head in (b"(d", b"(l", b"cb", b"cp", b"cc"):
            return "; it looks like a pickle, which is never loaded (pickle runs code)"
        with zipfile.ZipFile(model_path) as zf:
            info = zf.getinfo("schema.json")
            if info.file_size > (64 << 20):
                return ""
            schema = json.loads(zf.read(info))
    except Exception:  # the hint is best effort; the refusal stands either way
        return ""
    names: set[str] = set()
    _schema_names(schema, names)
    odd = sorted(n for n in names
                 if not n.startswith(("sklearn.", "numpy.", "scipy."))
                 and not (n.startswith("builtins.") and n[9:] in _PLAIN_BUILTINS))
    return f"; it names types outside the allow-list: {odd}" if odd else ""


def check_compatible(manifest: Manifest, path: Path,
                     expected_features: Sequence[str] | None = None,
                     expected_engine_version: str | None = None) -> None:
    """Refuse a manifest whose feature engine version or feature list differs from what the
    pipeline will feed (defaults: `fraud.features.api`'s own)."""
    if expected_features is None or expected_engine_version is None:
        from fraud.features.api import FEATURE_ENGINE_VERSION, FEATURE_NAMES

        expected_features = FEATURE_NAMES if expected_features is None else expected_features
        if expected_engine_version is None:
            expected_engine_version = FEATURE_ENGINE_VERSION
    if manifest.feature_engine_version != expected_engine_version:
        raise ArtifactError(
            f"{path}: feature engine version mismatch: artifact was trained on version "
            f"{manifest.feature_engine_version!r}, the feature engine is "
            f"{expected_engine_version!r}"
        )
    problem = _feature_mismatch(manifest.feature_names, expected_features)
    if problem:
        raise ArtifactError(f"{path}: feature list mismatch: {problem}")


def load_artifact(
    directory: str | Path,
    expected_features: Sequence[str] | None = None,
    expected_engine_version: str | None = None,
) -> Artifact:
    """Verify and load an artifact; every mismatch is a `ModelError` that names it.

    `expected_features` / `expected_engine_version` default to the feature engine's own
    (`fraud.features.api`), i.e. what the pipeline will feed the model.
    """
    import skops.io as sio

    path = Path(directory)
    manifest = read_manifest(path)
    check_compatible(manifest, path, expected_features, expected_engine_version)
    model_path = path / manifest.model_file
    size = _regular_file(model_path, "model file",
                         "model file named by the manifest does not exist")
    # Read once: the bytes hashed are the bytes checked and loaded, so the file cannot be
    # swapped between the check and the load.
    data = _read_model(model_path, size)
    actual = hashlib.sha256(data).hexdigest()
    if actual != manifest.model_sha256:
        raise ArtifactError(
            f"{model_path}: sha256 mismatch: manifest says {manifest.model_sha256}, "
            f"file has {actual}; the model file was changed or replaced"
        )
    trusted = _check_types(model_path, data)
    try:
        model = sio.loads(data, trusted=trusted)
    except Exception as exc:  # skops raises many types; all mean "not a model we can use"
        raise ArtifactError(f"{model_path}: could not load the model: {exc}") from exc
    kind = _type_name(model)
    if kind not in ALLOWED_ESTIMATORS:
        raise ArtifactError(f"{model_path}: holds a {kind}, not one of {list(ALLOWED_ESTIMATORS)}")
    steps = tuple(_type_name(step) for _, step in getattr(model, "steps", []))
    if steps != ALLOWED_ESTIMATORS[kind]:
        raise ArtifactError(f"{model_path}: pipeline steps {list(steps)} are not "
                         f"{list(ALLOWED_ESTIMATORS[kind])}")
    if not callable(getattr(model, "predict_proba", None)):
        raise ArtifactError(f"{model_path}: the model has no predict_proba")
    n_in = getattr(model, "n_features_in_", None)
    if n_in is not None and int(n_in) != len(manifest.feature_names):
        raise ArtifactError(f"{model_path}: model expects {n_in} features, manifest lists "
                         f"{len(manifest.feature_names)}")
    if not np.all(np.isfinite(manifest.reference)):
        raise ArtifactError(f"{path / MANIFEST_FILE}: reference values must be finite")
    return Artifact(manifest=manifest, model=model, path=path)
