"""The columnar batch: canonical dtypes, take/concat, a repr that leaks nothing."""

from __future__ import annotations

import numpy as np
import pytest

from fraud.schema import MISSING_TIME, TransactionBatch


def make(n: int = 3) -> TransactionBatch:
    return TransactionBatch.from_columns(
        transaction_id=[f"t{i}" for i in range(n)],
        timestamp_us=np.arange(n) * 1_000_000,
        user_id=[4111111111111111 + i for i in range(n)],
        terminal_id=["m"] * n,
        amount=np.linspace(1, 2, n),
        extra={"scenario": np.array(["x"] * n, dtype=object)},
    )


def test_defaults_for_missing_optional_columns() -> None:
    b = make()
    assert b.device_id.tolist() == ["", "", ""]
    assert np.isnan(b.lat).all()
    assert (b.is_fraud == -1).all()
    assert (b.label_time_us == MISSING_TIME).all()
    assert b.position.tolist() == ["1", "2", "3"]
    assert not b.has_labels()


def test_ids_become_strings() -> None:
    assert make().user_id[0] == "4111111111111111"


def test_repr_never_shows_values() -> None:
    text = repr(make())
    assert "4111" not in text
    assert "rows=3" in text


def test_take_and_concat_round_trip() -> None:
    b = make(5)
    parts = [b.take(np.arange(0, 2)), b.take(np.arange(2, 5))]
    joined = TransactionBatch.concat(parts)
    for name in TransactionBatch.column_names():
        np.testing.assert_array_equal(getattr(joined, name), getattr(b, name))
    assert joined.extra["scenario"].tolist() == ["x"] * 5
    assert len(b.take(b.amount > 1.5)) == 2


def test_length_mismatch_is_refused() -> None:
    with pytest.raises(ValueError, match="amount"):
        TransactionBatch.from_columns(
            transaction_id=["a"], timestamp_us=[0], user_id=["u"], terminal_id=["t"],
            amount=[1.0, 2.0],
        )


def test_unknown_column_is_refused() -> None:
    with pytest.raises(TypeError, match="bogus"):
        TransactionBatch.from_columns(
            transaction_id=["a"], timestamp_us=[0], user_id=["u"], terminal_id=["t"],
            amount=[1.0], bogus=[1],
        )


def test_concat_of_nothing_is_empty() -> None:
    assert len(TransactionBatch.concat([])) == 0
