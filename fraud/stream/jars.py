"""The KCL MultiLangDaemon's jars: fetched with Maven into a cache outside git, never committed.

Which jars: exactly the flat list that `amazon-kclpy` `KCLPY_VERSION` pins in its sdist's
``pom.xml`` (the set its authors run the daemon with). That release is chosen because its KCL
(``amazon-kinesis-client-multilang`` 3.1.3) is the newest multilang Maven Central serves here;
3.2.0 pins 3.5.3, which answers 404. Its Python part is identical to 3.2.0's.

How: ``pip download`` the sdist (no build), add the coordinates Maven insists on to a copy of
its pom, and let ``mvn dependency:copy-dependencies -DexcludeTransitive=true`` fetch the set
into the cache. `install_kclpy` then lays that cache out as a Maven repository in a temporary
folder and points the sdist's own ``setup.py`` at it (``KCL_MVN_REPO_SEARCH_URL=file://…/``),
which is how ``pip install amazon-kclpy`` works without reaching for versions not served.

The cache is complete when its ``manifest.json`` exists and every jar it lists is present; a
partial fetch lives in a ``.partial`` sibling and never looks complete.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from fraud.errors import ConfigError, FraudError
from fraud.logs import get_logger

__all__ = [
    "JAR_DIR_ENV",
    "KCLPY_VERSION",
    "KCL_VERSION",
    "JarSet",
    "default_jar_dir",
    "ensure_jars",
    "fetch_jars",
    "find_java",
    "find_mvn",
    "install_kclpy",
    "load_jars",
    "maven_repository",
]

log = get_logger(__name__)

KCLPY_VERSION = "3.1.3"
KCL_VERSION = "3.1.3"
JAR_DIR_ENV = "FRAUD_KCL_JARS"
_MANIFEST = "manifest.json"
_POM_NS = "http://maven.apache.org/POM/4.0.0"


@dataclass(frozen=True, slots=True)
class JarSet:
    """A complete, verified jar folder: what goes on the daemon's classpath."""

    directory: Path
    jars: tuple[Path, ...]
    kclpy_version: str

    def classpath(self, *extra: Path) -> str:
        """The ``-cp`` value: every jar, then `extra` folders (the properties file's)."""
        return os.pathsep.join(str(p) for p in (*self.jars, *extra))


def default_jar_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$FRAUD_KCL_JARS``, else ``.local/kcl-jars`` at the project root (or the cwd).

    The cache deliberately does not follow ``--local-dir``: tests give every run its own local
    dir, and 33 MB of jars should be fetched once per machine, not once per test.
    """
    env = os.environ if environ is None else environ
    if env.get(JAR_DIR_ENV):
        return Path(env[JAR_DIR_ENV]).expanduser()
    root = Path(__file__).resolve().parents[2]
    base = root if (root / "pyproject.toml").is_file() else Path.cwd()
    return base / ".local" / "kcl-jars"


def maven_repository(environ: Mapping[str, str] | None = None) -> Path:
    """The local Maven repository ``mvn`` fills (``~/.m2/repository`` unless overridden)."""
    env = os.environ if environ is None else environ
    if env.get("FRAUD_MAVEN_REPO"):
        return Path(env["FRAUD_MAVEN_REPO"]).expanduser()
    return Path.home() / ".m2" / "repository"


def find_java(environ: Mapping[str, str] | None = None) -> str:
    """The ``java`` executable: ``$JAVA_HOME/bin/java``, else the one on PATH."""
    env = os.environ if environ is None else environ
    home = env.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").is_file():
        return str(Path(home) / "bin" / "java")
    found = shutil.which("java", path=env.get("PATH"))
    if not found:
        raise ConfigError(
            "java not found: install a JRE >= 17 (e.g. apt-get install openjdk-17-jre-headless) "
            "or set JAVA_HOME"
        )
    return found


def find_mvn(environ: Mapping[str, str] | None = None) -> str:
    """The ``mvn`` executable, needed only to fill the jar cache."""
    env = os.environ if environ is None else environ
    found = shutil.which("mvn", path=env.get("PATH"))
    if not found:
        raise ConfigError("mvn not found: install Maven (apt-get install maven) to fetch KCL jars")
    return found


def load_jars(directory: Path) -> JarSet | None:
    """The jar set in `directory` if its manifest says it is complete, else None."""
    manifest = directory / _MANIFEST
    if not manifest.is_file():
        return None
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
        names = [str(n) for n in data["jars"]]
        version = str(data["kclpy_version"])
    except (ValueError, KeyError, TypeError):
        return None
    jars = tuple(directory / n for n in names)
    if version != KCLPY_VERSION or not jars or not all(j.is_file() for j in jars):
        return None
    return JarSet(directory, jars, version)


def _run(cmd: Sequence[str], what: str, env: Mapping[str, str] | None = None) -> None:
    """Run a fetch step; its output goes to stderr (stdout may be a protocol or a pipe)."""
    log.info("kcl_jars_step", step=what, command=" ".join(cmd[:4]))
    proc = subprocess.run(
        list(cmd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=None if env is None else dict(env), check=False,
    )
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.splitlines()[-25:])
        raise FraudError(f"{what} failed (exit {proc.returncode}):\n{tail}")


def _sdist(cache: Path, python: str) -> Path:
    """The amazon-kclpy sdist, downloaded once into `cache` (pip does not build it here)."""
    cache.mkdir(parents=True, exist_ok=True)
    existing = sorted(cache.glob(f"amazon_kclpy-{KCLPY_VERSION}.tar.gz"))
    if existing:
        return existing[0]
    _run(
        [python, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
         "--dest", str(cache), f"amazon-kclpy=={KCLPY_VERSION}"],
        "pip download amazon-kclpy",
    )
    found = sorted(cache.glob("amazon*kclpy-*.tar.gz"))
    if not found:
        raise FraudError(f"pip download left no amazon-kclpy sdist in {cache}")
    return found[0]


def _pom_from_sdist(sdist: Path) -> tuple[bytes, list[tuple[str, str, str]]]:
    """The sdist's pom with project coordinates added, and the (group, artifact, version)s."""
    with tarfile.open(sdist) as tar:
        member = next((m for m in tar.getmembers() if m.name.endswith("/pom.xml")), None)
        handle = tar.extractfile(member) if member is not None else None
        if handle is None:
            raise FraudError(f"{sdist.name} has no pom.xml")
        raw = handle.read()
    ET.register_namespace("", _POM_NS)
    root = ET.fromstring(raw)
    ns = {"m": _POM_NS}
    props = {
        f"${{{el.tag.split('}')[-1]}}}": (el.text or "")
        for el in root.findall("m:properties/*", ns)
    }
    coords = []
    for dep in root.iter(f"{{{_POM_NS}}}dependency"):
        group = dep.findtext("m:groupId", default="", namespaces=ns)
        artifact = dep.findtext("m:artifactId", default="", namespaces=ns)
        version = dep.findtext("m:version", default="", namespaces=ns)
        coords.append((group, artifact, props.get(version, version)))
    # Maven refuses a pom without coordinates; the sdist's has none (setup.py only parses it).
    for index, (tag, text) in enumerate(
        [("groupId", "fraud.local"), ("artifactId", "kcl-jars"),
         ("version", KCLPY_VERSION), ("packaging", "pom")], start=1,
    ):
        el = ET.Element(f"{{{_POM_NS}}}{tag}")
        el.text = text
        root.insert(index, el)
    return ET.tostring(root, xml_declaration=True, encoding="utf-8"), coords


def _jar_name(coord: tuple[str, str, str]) -> str:
    return f"{coord[1]}-{coord[2]}.jar"


def fetch_jars(
    directory: Path | None = None,
    *,
    force: bool = False,
    python: str = sys.executable,
    maven_repo: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> JarSet:
    """Fill `directory` with the daemon's jars unless it is already complete (idempotent)."""
    directory = directory or default_jar_dir(environ)
    if not force and (done := load_jars(directory)) is not None:
        log.info("kcl_jars_cached", directory=str(directory), jars=len(done.jars))
        return done
    _check_replaceable(directory)
    mvn = find_mvn(environ)
    repo = maven_repo or maven_repository(environ)
    sdist = _sdist(directory.parent / "kcl-sdist", python)
    pom, coords = _pom_from_sdist(sdist)
    names = [_jar_name(c) for c in coords]
    partial = directory.with_name(directory.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    (partial / "pom.xml").write_bytes(pom)
    _run(
        [mvn, "-B", "-q", f"-Dmaven.repo.local={repo}", "-f", str(partial / "pom.xml"),
         "dependency:copy-dependencies", "-DexcludeTransitive=true",
         f"-DoutputDirectory={partial}"],
        "mvn dependency:copy-dependencies",
    )
    missing = [n for n in names if not (partial / n).is_file()]
    if missing:
        raise FraudError(f"mvn did not deliver {len(missing)} jar(s): {', '.join(missing[:5])}")
    manifest = {
        "kclpy_version": KCLPY_VERSION,
        "kcl_version": KCL_VERSION,
        "jars": sorted(names),
        "coordinates": [":".join(c) for c in coords],
    }
    (partial / _MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    shutil.rmtree(directory, ignore_errors=True)
    partial.rename(directory)
    jars = load_jars(directory)
    if jars is None:  # pragma: no cover - we just wrote it
        raise FraudError(f"jar cache {directory} is incomplete right after fetching")
    log.info("kcl_jars_fetched", directory=str(directory), jars=len(jars.jars))
    return jars


def _check_replaceable(directory: Path) -> None:
    """Refuse to replace a folder that holds anything but a jar cache (a mistyped --dest)."""
    if not directory.is_dir():
        return
    foreign = [p.name for p in directory.iterdir()
               if not (p.suffix == ".jar" or p.name in (_MANIFEST, "pom.xml"))]
    if foreign:
        raise ConfigError(
            f"{directory} is not a KCL jar cache (it holds {', '.join(sorted(foreign)[:3])}); "
            "choose an empty or new folder"
        )


def ensure_jars(directory: Path | None = None, environ: Mapping[str, str] | None = None) -> JarSet:
    """The complete jar set, fetching it first when missing (what ``fraud consume`` calls)."""
    directory = directory or default_jar_dir(environ)
    return load_jars(directory) or fetch_jars(directory, environ=environ)


def _installed_kclpy(python: str) -> str | None:
    probe = subprocess.run(
        [python, "-c", "import importlib.metadata as m; print(m.version('amazon-kclpy'))"],
        capture_output=True, text=True, check=False,
    )
    return probe.stdout.strip() if probe.returncode == 0 else None


def install_kclpy(
    directory: Path | None = None,
    *,
    python: str = sys.executable,
    maven_repo: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> str:
    """``pip install amazon-kclpy`` into `python`'s environment, its jars from our cache.

    Fetches the jars first, then serves them to the sdist's setup.py through ``file://``.
    Skips when that version is already installed. Returns the version.
    """
    if _installed_kclpy(python) == KCLPY_VERSION:
        log.info("kclpy_installed", version=KCLPY_VERSION, skipped=True)
        return KCLPY_VERSION
    jars = fetch_jars(directory, python=python, maven_repo=maven_repo, environ=environ)
    sdist = _sdist(jars.directory.parent / "kcl-sdist", python)
    _, coords = _pom_from_sdist(sdist)
    env = dict(os.environ if environ is None else environ)
    with tempfile.TemporaryDirectory() as tmp:
        # setup.py wants a Maven-layout URL; lay our verified cache out that way (symlinks), so
        # the install needs neither the network nor a particular state of ~/.m2.
        layout = Path(tmp) / "repo"
        for group, artifact, version in coords:
            folder = layout.joinpath(*group.split("."), artifact, version)
            folder.mkdir(parents=True, exist_ok=True)
            name = _jar_name((group, artifact, version))
            (folder / name).symlink_to(jars.directory.resolve() / name)
        env["KCL_MVN_REPO_SEARCH_URL"] = layout.as_uri() + "/"
        _run(
            [python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-cache-dir",
             str(sdist)],
            "pip install amazon-kclpy",
            env=env,
        )
    log.info("kclpy_installed", version=KCLPY_VERSION, skipped=False)
    return KCLPY_VERSION
