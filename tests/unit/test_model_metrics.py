"""Metrics: card precision@k by hand, caught cards left out, thresholds, degenerate cases."""

from __future__ import annotations

import math

import numpy as np

from fraud.model.metrics import DAY_US, card_precision_at_k, evaluate, threshold_metrics


def test_card_precision_uses_each_cards_best_score_per_day() -> None:
    scores = np.array([0.9, 0.1, 0.8, 0.7, 0.2])
    labels = np.array([0, 1, 0, 1, 1])
    ts = np.zeros(5, dtype=np.int64)
    cards = np.array(["a", "a", "b", "c", "d"], dtype=object)
    # card a: best 0.9, fraud (its second tx); b 0.8 genuine; c 0.7 fraud; d 0.2 fraud
    m = card_precision_at_k(scores, labels, ts, cards, k=2)
    assert m.daily.tolist() == [0.5]  # top 2 = a (fraud), b (genuine)
    m = card_precision_at_k(scores, labels, ts, cards, k=3)
    assert m.daily.tolist() == [2 / 3]


def test_cards_caught_earlier_are_left_out() -> None:
    scores = np.array([0.9, 0.5, 0.9, 0.5])
    labels = np.array([1, 0, 1, 1])
    ts = np.array([0, 0, DAY_US, DAY_US + 5])
    cards = np.array(["a", "b", "a", "b"], dtype=object)
    m = card_precision_at_k(scores, labels, ts, cards, k=1)
    # day 0: a caught (fraud, top 1). day 1: a is left out, b is the top card, and fraud.
    assert m.daily.tolist() == [1.0, 1.0]
    assert m.days.tolist() == [0, 1]
    assert m.mean == 1.0


def test_genuine_top_card_is_not_caught() -> None:
    scores = np.array([0.9, 0.1, 0.9, 0.1])
    labels = np.array([0, 0, 1, 0])
    ts = np.array([0, 0, DAY_US, DAY_US])
    cards = np.array(["a", "b", "a", "b"], dtype=object)
    m = card_precision_at_k(scores, labels, ts, cards, k=1)
    assert m.daily.tolist() == [0.0, 1.0]  # a was not caught on day 0, so it counts on day 1


def test_denominator_is_k_even_with_few_cards() -> None:
    m = card_precision_at_k(np.array([0.5]), np.array([1]), np.array([0]),
                            np.array(["a"], dtype=object), k=100)
    assert m.daily.tolist() == [0.01]


def test_threshold_metrics() -> None:
    out = threshold_metrics(np.array([0.95, 0.8, 0.6, 0.1]), np.array([1, 0, 1, 1]),
                            (0.5, 0.9, 0.99))
    assert out[0] == {"threshold": 0.5, "flagged": 3, "precision": 2 / 3, "recall": 2 / 3}
    assert out[1]["precision"] == 1.0 and out[1]["recall"] == 1 / 3
    assert math.isnan(out[2]["precision"]) and out[2]["recall"] == 0.0


def test_evaluate_skips_unlabelled_and_handles_one_class() -> None:
    scores = np.array([0.9, 0.2, 0.4])
    labels = np.array([1, 0, -1])
    ts = np.zeros(3, dtype=np.int64)
    cards = np.array(["a", "b", "c"], dtype=object)
    m = evaluate(scores, labels, timestamp_us=ts, cards=cards, k=1)
    assert m["rows"] == 2 and m["frauds"] == 1
    assert m["auc_roc"] == 1.0 and m["card_precision_at_1"] == 1.0
    one = evaluate(scores[1:2], labels[1:2], timestamp_us=ts[:1], cards=cards[:1])
    assert math.isnan(one["auc_roc"]) and math.isnan(one["average_precision"])


def test_ceiling_is_what_a_perfect_ranking_gets() -> None:
    scores = np.array([0.1, 0.9, 0.2, 0.3])
    labels = np.array([1, 0, 1, 0])
    cards = np.array(["a", "b", "c", "d"], dtype=object)
    m = card_precision_at_k(scores, labels, np.zeros(4, dtype=np.int64), cards, k=2)
    assert m.ceiling.tolist() == [1.0]
    assert m.daily.tolist() == [0.0]
    perfect = card_precision_at_k(labels.astype(float), labels, np.zeros(4, dtype=np.int64),
                                  cards, k=2)
    assert perfect.mean == perfect.mean_ceiling == 1.0


def test_ceiling_is_the_perfect_rankings_score_whatever_the_model() -> None:
    """The ceiling is the metric of a perfect ranking, not "what this model left over": a
    perfect ranking catches card a on day 0 and so has nothing left to find on day 1."""
    labels = np.array([1, 0, 1])
    ts = np.array([0, 5, DAY_US])
    cards = np.array(["a", "b", "a"], dtype=object)
    misses = card_precision_at_k(np.array([0.1, 0.9, 0.9]), labels, ts, cards, k=1)
    finds = card_precision_at_k(np.array([0.9, 0.1, 0.9]), labels, ts, cards, k=1)
    perfect = card_precision_at_k(labels.astype(float), labels, ts, cards, k=1)
    assert misses.daily.tolist() == [0.0, 1.0]  # missed on day 0, caught on day 1
    assert finds.daily.tolist() == [1.0, 0.0]
    assert perfect.daily.tolist() == [1.0, 0.0]
    assert misses.ceiling.tolist() == finds.ceiling.tolist() == perfect.daily.tolist()
    assert misses.mean_ceiling == finds.mean_ceiling == perfect.mean == 0.5
