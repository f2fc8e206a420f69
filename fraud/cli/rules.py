"""``fraud rules check|test``: validate rule files and run their fixtures.

``check`` prints every problem as ``file:line:col: message`` (the format editors and CI
annotate) on stdout and exits 2 when there is any. ``test`` runs the fixture files under
``tests/`` beside the rules file (those whose ``rules:`` names it), prints a unified diff for
each failing case and exits 1 when a case fails.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from fraud.config import build_settings, settings_options
from fraud.errors import InputError
from fraud.rules.fixtures import discover_fixtures, load_fixtures, run_fixtures
from fraud.rules.loader import load_rules
from fraud.rules.problems import RulesFileError
from fraud.rules.ruleset import RuleSet
from fraud.rules.vocabulary import Vocabulary, default_vocabulary, known_feature_names

__all__ = ["command"]

_FEATURE_HELP = ("Extra feature name the rules may use (repeatable), on top of the feature "
                 "engine's own names.")


def _vocabulary(extra: tuple[str, ...]) -> Vocabulary:
    return default_vocabulary((*known_feature_names(), *extra))


def _s3_client(flags: dict[str, Any]) -> Any:
    """A boto3 S3 client for s3:// rules (region and endpoint from the usual settings)."""
    import boto3

    settings = build_settings(flags)
    return boto3.client("s3", region_name=settings.region,
                        endpoint_url=settings.aws_endpoint("s3"))


def _load(path: str, vocab: Vocabulary, s3_client: Any = None) -> RuleSet | None:
    """The rule set, or None after printing its problems."""
    try:
        return load_rules(path, vocab, s3_client=s3_client)
    except InputError as exc:  # no such file: one more problem in the listing
        click.echo(str(exc))
        return None
    except RulesFileError as exc:
        for problem in exc.problems:
            click.echo(str(problem))
        n = len(exc.problems)
        click.echo(f"{path}: {n} problem{'s' if n != 1 else ''}", err=True)
        return None


@click.group("rules")
def command() -> None:
    """Check and test YAML rule files (format: docs/rules.md)."""


@command.command("check")
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
@click.option("--feature", "features", multiple=True, metavar="NAME", help=_FEATURE_HELP)
@settings_options("region", "endpoint_url")
def check(files: tuple[str, ...], features: tuple[str, ...], **flags: Any) -> None:
    """Validate rule files (paths or s3:// URIs): every problem is listed as
    FILE:LINE:COL: MESSAGE.

    Exit code 0 when every file is valid, 2 otherwise.
    """
    vocab = _vocabulary(features)
    s3 = _s3_client(flags) if any(f.startswith("s3://") for f in files) else None
    failed = False
    for path in files:
        ruleset = _load(path, vocab, s3)
        if ruleset is None:
            failed = True
            continue
        shadow = sum(1 for r in ruleset.rules if not r.active)
        click.echo(f"{path}: ok ({len(ruleset.rules)} rules, {shadow} shadow, "
                   f"version {ruleset.version})")
    if failed:
        sys.exit(2)


@command.command("test")
@click.argument("file", metavar="FILE")
@click.option("--fixtures", "fixture_paths", multiple=True, metavar="PATH",
              help="Fixture file or directory to run (repeatable); default: the files under "
                   "tests/ beside FILE whose 'rules:' names FILE.")
@click.option("--feature", "features", multiple=True, metavar="NAME", help=_FEATURE_HELP)
def test(file: str, fixture_paths: tuple[str, ...], features: tuple[str, ...]) -> None:
    """Run the fixtures of the rules FILE; print a diff for every failing case.

    Exit code 0 when every case passes, 1 when one fails, 2 when a file is invalid.
    """
    vocab = _vocabulary(features)
    ruleset = _load(file, vocab)
    if ruleset is None:
        sys.exit(2)
    paths: list[Path] = []
    for given in fixture_paths:
        p = Path(given)
        paths.extend(sorted(p.rglob("*.y*ml")) if p.is_dir() else [p])
    if not fixture_paths:
        paths = discover_fixtures(file)
    if not paths:
        raise InputError(f"no fixture files for {file}: put them under "
                         f"{Path(file).parent / 'tests'} with 'rules: {Path(file).name}' "
                         "(relative to the fixture file), or pass --fixtures")
    passed = failed = 0
    invalid = False
    for path in paths:
        try:
            fixtures = load_fixtures(path, vocab)
        except RulesFileError as exc:
            for problem in exc.problems:
                click.echo(str(problem))
            invalid = True
            continue
        except InputError as exc:  # a --fixtures path that is not there: listed, the rest run
            click.echo(str(exc))
            invalid = True
            continue
        named = Path(fixtures.rules).resolve() if fixtures.rules else None
        if named is not None and "://" not in file and named != Path(file).resolve():
            # Allowed (a candidate rules file against the current fixtures), but said.
            click.echo(f"note: {path} was written for {fixtures.rules}; running it against "
                       f"{file}")
        for result in run_fixtures(ruleset, fixtures):
            if result.passed:
                passed += 1
                continue
            failed += 1
            click.echo(f"FAIL {result.file}:{result.case.line}: {result.case.name}")
            for line in result.diff:
                click.echo(f"    {line}")
    click.echo(f"{passed} passed, {failed} failed (rules version {ruleset.version})")
    if invalid:
        sys.exit(2)
    if failed:
        sys.exit(1)


@command.command("names")
@click.option("--feature", "features", multiple=True, metavar="NAME", help=_FEATURE_HELP)
def names(features: tuple[str, ...]) -> None:
    """List every name a rule may use, with its kind (number, string, flag)."""
    vocab = _vocabulary(features)
    for name in sorted(vocab.names):
        click.echo(f"{name}\t{vocab.kind(name)}")
