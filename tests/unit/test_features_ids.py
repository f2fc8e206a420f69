"""`KeyIndex`: a column's positions among a key set, hash-probed and text-confirmed."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fraud.features import ids
from fraud.features.ids import KeyIndex, local_hashes


def _obj(values: list[str]) -> np.ndarray:
    return np.array(values, dtype=object)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(max_size=6), unique=True, max_size=40),
       st.lists(st.text(max_size=6), max_size=40))
def test_find_is_a_dict_lookup(keys: list[str], values: list[str]) -> None:
    index = KeyIndex(_obj(keys))
    where = {k: i for i, k in enumerate(keys)}
    assert index.find(_obj(values)).tolist() == [where.get(v, -1) for v in values]


def test_a_hash_hit_with_other_text_is_not_a_match() -> None:
    index = KeyIndex(_obj(["alice", "bob"]))
    values = _obj(["mallory", "bob"])
    # As if "mallory" hashed like "alice": the probe hits, the text check refuses it.
    forged = local_hashes(_obj(["alice", "bob"]))
    assert index.find(values, forged).tolist() == [-1, 1]


def test_keys_sharing_a_hash_fall_back_to_a_dict(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ids, "local_hashes",
                        lambda values: np.zeros(len(values), dtype=np.int64))
    index = KeyIndex(_obj(["a", "b", "c"]))
    assert index.find(_obj(["c", "z", "a"])).tolist() == [2, -1, 0]
