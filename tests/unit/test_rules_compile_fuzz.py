"""Any expression either fails to load with positioned errors or evaluates without crashing."""

from __future__ import annotations

import warnings

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from fraud.rules import expr as ex
from fraud.rules.compiler import Env, Scope, compile_condition
from fraud.rules.vocabulary import default_vocabulary

SCOPE = Scope(default_vocabulary(["is_night", "user_tx_count_1d"]),
              {"limit": 10.0, "word": "web", "on": True}, {"deny": frozenset({"u1"})})
TOKENS = ["amount", "score", "user_id", "channel", "is_night", "user_tx_count_1d", "limit",
          "word", "on", "deny", "1", "0", "2.5", "'web'", "'u1'", "true", "and", "or", "not",
          "in", "not in", "between", "is missing", "is not missing", "==", "!=", "<", ">=",
          "+", "-", "*", "/", "%", "(", ")", "[1, 2]", "['a']", "abs(", "min(", "max(",
          "coalesce(", "missing(", "distance_km(", ",", "nope"]
COLUMNS = {
    "amount": np.array([1.0, np.nan, 0.0]),
    "score": np.array([0.5, np.nan, 1.0]),
    "user_id": np.array(["u1", "", "u2"], dtype=object),
    "channel": np.array(["web", "", "app"], dtype=object),
    "is_night": np.array([1.0, np.nan, 0.0]),
    "user_tx_count_1d": np.array([3.0, 0.0, np.nan]),
    "lat": np.array([1.0, np.nan, 0.0]),
    "lon": np.array([1.0, np.nan, 0.0]),
}


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), min_size=1, max_size=12))
def test_compile_and_evaluate_never_crash(tokens: list[str]) -> None:
    text = " ".join(tokens)
    try:
        tree = ex.parse(text)
    except ex.ExprSyntaxError as exc:
        assert 0 <= exc.offset <= len(text)
        return
    fn, used, errors = compile_condition(tree, SCOPE)
    if fn is None:
        assert errors
        assert all(0 <= e.offset <= len(text) for e in errors)
        return
    assert used <= set(COLUMNS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy RuntimeWarning leaks out either
        result = fn(Env(COLUMNS, 3))
    assert result.dtype == bool and result.shape == (3,)
