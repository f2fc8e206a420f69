"""The jar cache: complete only with its manifest and every jar; the pom gets coordinates."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from fraud.errors import ConfigError
from fraud.stream import jars as jars_mod
from fraud.stream.jars import KCLPY_VERSION, default_jar_dir, find_java, load_jars

POM = b"""<?xml version="1.0" encoding="utf-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <properties><kcl.version>3.1.3</kcl.version></properties>
  <dependencies>
    <dependency><groupId>software.amazon.kinesis</groupId>
      <artifactId>amazon-kinesis-client-multilang</artifactId><version>${kcl.version}</version>
    </dependency>
    <dependency><groupId>com.example</groupId><artifactId>lib</artifactId>
      <version>1.0</version></dependency>
  </dependencies>
</project>
"""


def _cache(tmp_path: Path, names: list[str], version: str = KCLPY_VERSION) -> Path:
    for name in names:
        (tmp_path / name).write_bytes(b"jar")
    (tmp_path / "manifest.json").write_text(json.dumps({"kclpy_version": version, "jars": names}))
    return tmp_path


def test_complete_cache_loads_in_manifest_order(tmp_path: Path) -> None:
    jar_set = load_jars(_cache(tmp_path, ["a.jar", "b.jar"]))
    assert jar_set is not None
    assert [p.name for p in jar_set.jars] == ["a.jar", "b.jar"]
    extra = tmp_path / "props"
    assert jar_set.classpath(extra).split(":") == [
        str(tmp_path / "a.jar"), str(tmp_path / "b.jar"), str(extra)]


def test_missing_jar_or_manifest_or_other_version_is_incomplete(tmp_path: Path) -> None:
    assert load_jars(tmp_path) is None
    _cache(tmp_path, ["a.jar", "b.jar"])
    (tmp_path / "b.jar").unlink()
    assert load_jars(tmp_path) is None
    other = tmp_path / "other"
    other.mkdir()
    assert load_jars(_cache(other, ["a.jar"], version="0.0.1")) is None
    (other / "manifest.json").write_text("{not json")
    assert load_jars(other) is None


def test_fetch_is_skipped_when_complete(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _cache(tmp_path, ["a.jar"])

    def no_mvn(*args: object, **kwargs: object) -> str:
        raise AssertionError("mvn must not run for a complete cache")

    monkeypatch.setattr(jars_mod, "find_mvn", no_mvn)
    assert jars_mod.fetch_jars(tmp_path).jars == (tmp_path / "a.jar",)


def test_pom_gets_coordinates_and_resolved_versions(tmp_path: Path) -> None:
    sdist = tmp_path / f"amazon_kclpy-{KCLPY_VERSION}.tar.gz"
    with tarfile.open(sdist, "w:gz") as tar:
        info = tarfile.TarInfo(f"amazon_kclpy-{KCLPY_VERSION}/pom.xml")
        info.size = len(POM)
        tar.addfile(info, io.BytesIO(POM))
    pom, coords = jars_mod._pom_from_sdist(sdist)
    assert coords == [("software.amazon.kinesis", "amazon-kinesis-client-multilang", "3.1.3"),
                      ("com.example", "lib", "1.0")]
    text = pom.decode()
    assert "<groupId>fraud.local</groupId>" in text
    assert "<packaging>pom</packaging>" in text
    # The coordinates come right after modelVersion, where Maven expects them.
    assert text.index("<modelVersion>") < text.index("<groupId>fraud.local")


def test_default_jar_dir_honours_the_variable(tmp_path: Path) -> None:
    assert default_jar_dir({"FRAUD_KCL_JARS": str(tmp_path)}) == tmp_path
    assert default_jar_dir({}).parts[-2:] == (".local", "kcl-jars")


def test_find_java_names_the_fix_when_absent(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="java not found"):
        find_java({"PATH": str(tmp_path)})
    java = tmp_path / "jdk" / "bin" / "java"
    java.parent.mkdir(parents=True)
    java.write_text("")
    assert find_java({"JAVA_HOME": str(tmp_path / "jdk"), "PATH": ""}) == str(java)


def test_fetch_refuses_to_replace_a_folder_that_is_not_a_jar_cache(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not a KCL jar cache"):
        jars_mod.fetch_jars(tmp_path, force=True)
    assert (tmp_path / "notes.txt").read_text() == "mine"
