"""SeenIds keeps only hashes in memory: runs, merges, its Bloom filter and its spill file."""

from __future__ import annotations

import builtins
import tempfile
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fraud.errors import FraudError
from fraud.schema.seen import SeenIds

_IDS = st.sampled_from(["a", "b", "c", "é", "\U0001f600", "x" * 40, "T1", "T2", "T10", "7"])


def _model_check(seen: SeenIds, chunks: list[list[str]]) -> None:
    first: dict[str, str] = {}
    line = 0
    for keys in chunks:
        positions = [f"part-é line {line + k}" for k in range(len(keys))]
        line += len(keys)
        expected = []
        for k, key in enumerate(keys):
            if key in first:
                expected.append((k, first[key]))
            else:
                first[key] = positions[k]
        assert seen.claim(keys, positions) == expected
        assert len(seen) == len(first)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(_IDS, max_size=5), max_size=12))
def test_small_runs_merge_and_still_match_a_dictionary(chunks: list[list[str]]) -> None:
    class Tiny(SeenIds):
        MAX_RUN = 3  # many capped runs, many merges

    _model_check(Tiny(), chunks)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(_IDS, max_size=5), max_size=8), st.integers(0, 3))
def test_hash_collisions_across_runs_are_told_apart_by_text(
        chunks: list[list[str]], bucket: int) -> None:
    real_hash = builtins.hash
    with pytest.MonkeyPatch.context() as mp:
        # Only a few hash values for all ids: most hits are collisions, never duplicates.
        mp.setattr(builtins, "hash", lambda value: real_hash(value) % 3 + bucket)
        _model_check(SeenIds(), chunks)


def test_filter_growth_keeps_every_duplicate() -> None:
    seen = SeenIds()
    size = 30_000
    for c in range(5):  # 150,000 ids: the filter (sized for 65,536 at first) grows
        keys = [f"id{c * size + i}" for i in range(size)]
        assert seen.claim(keys, [f"row {c * size + i}" for i in range(size)]) == []
    again = ["id0", "new", "id149999", "id77777", "new"]
    assert seen.claim(again, ["r1", "r2", "r3", "r4", "r5"]) == [
        (0, "row 0"), (2, "row 149999"), (3, "row 77777"), (4, "r2")]
    assert len(seen) == 150_001
    seen.close()


def test_memory_per_id_holds_no_text() -> None:
    seen = SeenIds()
    seen.claim(["warm"], ["up"])
    n = 400_000
    keys = [f"transaction-{i:012d}" for i in range(n)]
    positions = [f"s3-object-with-a-long-name.parquet row {i}" for i in range(n)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for c in range(0, n, 100_000):
            seen.claim(keys[c:c + 100_000], positions[c:c + 100_000])
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    # 8-byte hashes, 4-byte ordinals, a Bloom filter of 2-4 bytes: text would be > 50 bytes.
    assert held / n < 24
    assert seen.claim(["transaction-000000399999"], ["x"]) == [
        (0, "s3-object-with-a-long-name.parquet row 399999")]


def test_an_unwritable_temporary_directory_is_a_clear_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(**_: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tempfile, "TemporaryFile", refuse)
    with pytest.raises(FraudError, match=r"seen transaction ids .*No space left.*TMPDIR"):
        SeenIds().claim(["a"], ["line 2"])


def test_a_closed_set_refuses_new_ids() -> None:
    seen = SeenIds()
    assert seen.claim(["a"], ["line 2"]) == []
    seen.close()
    with pytest.raises(ValueError, match="closed"):
        seen.claim(["b"], ["line 3"])


def test_lone_surrogates_are_kept_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every hash the same, so each answer comes from the text read back from the spill.
    monkeypatch.setattr(builtins, "hash", lambda value: 1)
    seen = SeenIds()
    assert seen.claim(["\ud800", "\udfff"], ["seq-\ud800", "seq-2"]) == []
    assert seen.claim(["\udfff", "\ud800x", "\ud800"], ["a", "b", "c"]) == [
        (0, "seq-2"), (2, "seq-\ud800")]


@settings(max_examples=100, deadline=None)
@given(st.lists(_IDS, max_size=12))
def test_one_batch_without_a_set_finds_the_same_repeats(keys: list[str]) -> None:
    from fraud.schema.parse import _repeats

    positions = [f"seq-{k}" for k in range(len(keys))]
    assert _repeats(keys, positions) == SeenIds().claim(keys, positions)
