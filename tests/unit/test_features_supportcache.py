"""The supporting stores' binary cache: same lookups, rebuilt whenever its source changes."""

from __future__ import annotations

import shutil
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from fraud.features import SupportStore, support, supportcache
from fraud.features.supportcache import CACHE_DIR
from fraud.generate import GenerateConfig, default_stores_dir, generate, write_dataset
from fraud.schema.batch import TransactionBatch
from fraud.schema.files import read_transactions


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, TransactionBatch]:
    path = tmp_path_factory.mktemp("cache") / "tx.parquet"
    write_dataset(generate(GenerateConfig(users=120, terminals=30, days=6,
                                          start=datetime(2024, 3, 1, tzinfo=UTC), seed=5)),
                  path)
    batch = TransactionBatch.concat([p.batch for p in read_transactions(str(path), None)])
    return default_stores_dir(path), batch


def _copy(world: tuple[Path, TransactionBatch], tmp_path: Path) -> Path:
    stores = tmp_path / "stores"
    shutil.copytree(world[0], stores)
    shutil.rmtree(stores / CACHE_DIR, ignore_errors=True)
    return stores


def _same(a: SupportStore, b: SupportStore, batch: TransactionBatch) -> None:
    x, y = a.lookup(batch), b.lookup(batch)
    for f in fields(x):
        left, right = getattr(x, f.name), getattr(y, f.name)
        if left.dtype == object:
            assert left.tolist() == right.tolist(), f.name
        else:
            np.testing.assert_array_equal(left, right, err_msg=f.name)


def _no_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object) -> None:
        raise AssertionError("parsed the JSON Lines again")

    monkeypatch.setattr(support, "_load_columns", refuse)
    monkeypatch.setattr(support, "_load_rows", refuse)


def test_the_second_load_reads_the_cache_and_answers_the_same(
        world: tuple[Path, TransactionBatch], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    stores = _copy(world, tmp_path)
    first = SupportStore.from_directory(stores)
    assert sorted(p.name for p in (stores / CACHE_DIR).iterdir()) == [
        "carts.jsonl.arrow", "devices.jsonl.arrow", "followers.jsonl.arrow",
        "posts.jsonl.arrow", "sessions.jsonl.arrow", "users.jsonl.arrow"]
    _no_parsing(monkeypatch)
    _same(first, SupportStore.from_directory(stores), world[1])


def test_a_changed_source_is_read_again(world: tuple[Path, TransactionBatch],
                                        tmp_path: Path) -> None:
    stores = _copy(world, tmp_path)
    SupportStore.from_directory(stores)
    sessions = stores / "sessions.jsonl"
    lines = sessions.read_text().splitlines(keepends=True)
    sessions.write_text("".join(lines[: len(lines) // 2]))  # half the sessions are gone
    reread = SupportStore.from_directory(stores)
    shutil.rmtree(stores / CACHE_DIR)
    _same(reread, SupportStore.from_directory(stores), world[1])


def test_a_broken_cache_file_is_rebuilt(world: tuple[Path, TransactionBatch],
                                        tmp_path: Path) -> None:
    stores = _copy(world, tmp_path)
    fresh = SupportStore.from_directory(stores)
    (stores / CACHE_DIR / "devices.jsonl.arrow").write_bytes(b"not arrow")
    _same(fresh, SupportStore.from_directory(stores), world[1])
    assert (stores / CACHE_DIR / "devices.jsonl.arrow").read_bytes()[:6] == b"ARROW1"


def test_an_unwritable_directory_means_no_cache(world: tuple[Path, TransactionBatch],
                                              tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    stores = _copy(world, tmp_path)

    def read_only(*args: object, **kw: object) -> None:
        raise PermissionError(13, "Read-only file system")

    monkeypatch.setattr(supportcache.tempfile, "mkstemp", read_only)
    loaded = SupportStore.from_directory(stores)
    assert not any((stores / CACHE_DIR).glob("*"))
    monkeypatch.undo()
    _same(loaded, SupportStore.from_directory(stores), world[1])
