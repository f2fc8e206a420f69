"""Decisions, cases, dead letters, history and the label feed over real HTTP: each effect
happens once however often it is repeated."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fraud.errors import InputError
from fraud.features.api import FeatureConfig, LabelBatch
from fraud.features.engine import FeatureEngine
from fraud.features.store import InMemoryStore
from fraud.schema.batch import MISSING_TIME, TransactionBatch
from fraud.schema.files import read_labels
from fraud.store import Dynamo, RequestCounter
from fraud.store.decisions import (
    Case,
    DeadLetter,
    Decision,
    list_cases,
    set_case_status,
    write_dead_letters,
    write_decisions,
)
from fraud.store.feature_store import DynamoStateStore
from fraud.store.history import find_transactions, write_history
from fraud.store.labels import apply_labels, labels_of

pytestmark = pytest.mark.integration
DAY = 86_400_000_000
T0 = 1_700_000_000_000_000


def _decision(tx: str, action: str = "block") -> Decision:
    return Decision(tx, "u1", T0, action, 0.97, ("high_score",), ("score 0.97 >= 0.9",),
                    "m1", "r1", T0 + 5)


def test_decisions_and_cases_are_written_once(dynamo: Dynamo, counter: RequestCounter) -> None:
    decisions = [_decision(f"t{i}") for i in range(150)]
    cases = [Case(f"t{i}", "u1", T0 + i, "alert", 0.8) for i in range(3)]
    dec, cas = write_decisions(dynamo, decisions, cases)
    assert len(dec.written) == 150 and not dec.duplicates
    assert sorted(cas.written) == ["case-t0", "case-t1", "case-t2"]
    assert counter.snapshot() == {"dynamodb.TransactWriteItems": 2}  # 153 items / 100
    dec2, cas2 = write_decisions(dynamo, [_decision("t1", "flag"), _decision("new")], cases[:1])
    assert dec2.written == ["new"] and dec2.duplicates == ["t1"]
    assert cas2.duplicates == ["case-t0"]
    stored = dynamo.get("Decisions", {"transaction_id": "t1"})
    assert stored is not None and stored["action"] == "block"
    assert [c["case_id"] for c in list_cases(dynamo, "open")] == ["case-t0", "case-t1",
                                                                  "case-t2"]
    set_case_status(dynamo, "case-t1", "investigating", T0 + 99)
    assert [c["case_id"] for c in list_cases(dynamo, "investigating")] == ["case-t1"]
    with pytest.raises(InputError, match="no case"):
        set_case_status(dynamo, "case-nope", "closed", T0)


def test_dead_letters_keep_reason_and_bounded_payload(dynamo: Dynamo) -> None:
    big = b"x" * 100_000
    letter = DeadLetter("shardId-000", "4950001", "amount: not a number", big, T0)
    assert write_dead_letters(dynamo, [letter]).written == ["shardId-000#4950001"]
    assert write_dead_letters(dynamo, [letter]).duplicates == ["shardId-000#4950001"]
    item = dynamo.get("DeadLetters", {"letter_id": "shardId-000#4950001"})
    assert item is not None
    assert item["truncated"] is True and item["payload_bytes"] == 100_000
    assert len(item["payload"]) < 100_000 and item["error"] == "amount: not a number"
    assert "xxx" not in repr(letter)


def _history(dynamo: Dynamo) -> TransactionBatch:
    batch = TransactionBatch.from_columns(
        transaction_id=["a", "b", "c"], timestamp_us=[T0, T0 + 1, T0 + DAY],
        user_id=["u1", "u1", "u2"], terminal_id=["m1", "m2", "m1"], amount=[1.0, 2.0, 3.0])
    write_history(dynamo, batch, scores=np.array([0.1, np.nan, 0.9]),
                  actions=["", "", "block"])
    return batch


def test_history_is_found_by_transaction_id(dynamo: Dynamo) -> None:
    _history(dynamo)
    refs = find_transactions(dynamo, ["a", "c", "zzz"])
    assert set(refs) == {"a", "c"}
    assert refs["c"].terminal_id == "m1" and refs["c"].ts_us == T0 + DAY
    item = dynamo.get("TransactionHistory", {"user_id": "u2", "sk": refs["c"].sk})
    assert item is not None and item["action"] == "block" and item["score"] == 0.9
    assert item["expires_at"] > T0 // 1_000_000


def test_label_feed_applies_each_label_once(dynamo: Dynamo, tmp_path: Path) -> None:
    _history(dynamo)
    feed = tmp_path / "labels.jsonl"
    feed.write_text("\n".join(json.dumps(r) for r in [
        {"transaction_id": "a", "is_fraud": 1, "label_time": "2023-11-20T00:00:00Z"},
        {"transaction_id": "c", "is_fraud": 0},
        {"transaction_id": "ghost", "is_fraud": 1},
    ]) + "\n")
    store = DynamoStateStore(dynamo)
    first = apply_labels(dynamo, store, labels_of(read_labels(feed)))
    assert (first.matched, first.updated, first.repeated, first.unmatched) == (2, 2, 0, ["ghost"])
    assert first.fraud_labels_sent == 1
    second = apply_labels(dynamo, DynamoStateStore(dynamo), labels_of(read_labels(feed)))
    assert (second.updated, second.repeated) == (0, 2)
    snap = DynamoStateStore(dynamo).load_terminals(["m1", "m2"], T0 - DAY, T0 + 2 * DAY)
    assert snap.fraud_ts.tolist() == [T0]  # counted once despite two applications
    # The same logical content as the in-memory store gets from the same labels (the
    # feed now finds them applied, so they go to the engine directly).
    mem = InMemoryStore()
    FeatureEngine(FeatureConfig()).apply_labels(LabelBatch.from_columns(
        ["a", "c"], ["m1", "m1"], [T0, T0 + DAY], [1, 0],
        [1_700_438_400_000_000, MISSING_TIME]), mem)
    mem_snap = mem.load_terminals(["m1", "m2"], T0 - DAY, T0 + 2 * DAY)
    assert mem_snap.fraud_label_time.tolist() == snap.fraud_label_time.tolist()
    refs = find_transactions(dynamo, ["a", "c"])
    a = dynamo.get("TransactionHistory", {"user_id": "u1", "sk": refs["a"].sk})
    c = dynamo.get("TransactionHistory", {"user_id": "u2", "sk": refs["c"].sk})
    assert a is not None and a["is_fraud"] == 1
    assert c is not None and c["is_fraud"] == 0 and c["label_time"] == T0 + DAY + 7 * DAY


def test_labels_with_user_and_timestamp_are_found_by_key(dynamo: Dynamo, counter: RequestCounter,
                                                         tmp_path: Path) -> None:
    _history(dynamo)
    counter.reset()
    feed = tmp_path / "labels.csv"
    # a and c by key (the transaction file's own columns); b without them; the ghost's key
    # finds nothing and its index query neither.
    feed.write_text("transaction_id,is_fraud,user_id,timestamp\n"
                    f"a,1,u1,{T0 // 1000}\nc,1,u2,{(T0 + DAY) // 1000}\nb,1,,\n"
                    f"ghost,1,u9,{T0 // 1000}\n")
    report = apply_labels(dynamo, DynamoStateStore(dynamo), labels_of(read_labels(feed)))
    assert (report.matched, report.updated, report.unmatched) == (3, 3, ["ghost"])
    queries = counter.snapshot().get("dynamodb.Query", 0)
    assert queries == 2  # b and ghost: a and c came from one BatchGetItem
    snap = DynamoStateStore(dynamo).load_terminals(["m1", "m2"], T0 - DAY, T0 + 2 * DAY)
    assert sorted(snap.fraud_ts.tolist()) == [T0, T0 + 1, T0 + DAY]


def test_labels_of_keeps_only_accepted_rows_with_their_lines(tmp_path: Path) -> None:
    feed = tmp_path / "labels.csv"
    feed.write_text("transaction_id,is_fraud\na,1\nb,maybe\nc,0\n")
    parsed = read_labels(feed)
    assert [str(r)[:17] for r in parsed.rejections] == ["line 3: is_fraud:"]
    labels = labels_of(parsed)
    assert [(lab.transaction_id, lab.is_fraud, lab.position) for lab in labels] == [
        ("a", 1, "line 2"), ("c", 0, "line 4")]
    assert all(lab.label_time_us == MISSING_TIME for lab in labels)


def _feed(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_relabels_move_the_terminal_fraud_set_without_double_counting(
    dynamo: Dynamo, tmp_path: Path
) -> None:
    _history(dynamo)
    store = DynamoStateStore(dynamo)

    def frauds(reader: DynamoStateStore) -> list[tuple[int, int]]:
        snap = reader.load_terminals(["m1", "m2"], T0 - DAY, T0 + 2 * DAY)
        return sorted(zip(snap.fraud_ts.tolist(), snap.fraud_label_time.tolist(), strict=True))

    def apply(name: str, rows: list[dict[str, object]]) -> dict[str, object]:
        labels = labels_of(read_labels(_feed(tmp_path / name, rows)))
        return apply_labels(dynamo, store, labels).as_dict()

    assert frauds(store) == []  # the worker's cache now holds these buckets
    apply("1.jsonl", [{"transaction_id": "a", "is_fraud": 1,
                       "label_time": "2023-11-20T00:00:00Z"}])
    first = 1_700_438_400_000_000
    assert frauds(store) == [(T0, first)]
    # The same transaction re-dated: the fraud moves, it is not counted twice.
    moved = apply("2.jsonl", [{"transaction_id": "a", "is_fraud": 1,
                               "label_time": "2023-11-25T00:00:00Z"}])
    assert (moved["updated"], moved["retracted"], moved["repeated"]) == (1, 1, 0)
    later = 1_700_870_400_000_000
    assert frauds(store) == [(T0, later)]
    assert frauds(DynamoStateStore(dynamo)) == [(T0, later)]  # what DynamoDB holds
    # Corrected to "not fraud" (1 -> 0): the fraud leaves the terminal set, twice or not.
    for _ in range(2):
        apply("3.jsonl", [{"transaction_id": "a", "is_fraud": 0}])
        assert frauds(store) == [] and frauds(DynamoStateStore(dynamo)) == []
    # And back to fraud (0 -> 1), counted once however often the feed is applied.
    for _ in range(2):
        apply("4.jsonl", [{"transaction_id": "a", "is_fraud": 1,
                           "label_time": "2023-11-20T00:00:00Z"}])
    assert frauds(DynamoStateStore(dynamo)) == [(T0, first)]
    ref = find_transactions(dynamo, ["a"])["a"]
    item = dynamo.get("TransactionHistory", {"user_id": "u1", "sk": ref.sk})
    assert item is not None and (item["is_fraud"], item["label_time"]) == (1, first)
    # Two label times before the transaction both mean "known at once" (delay 0): one and
    # the same set element, which moving between them must not take out.
    apply("5.jsonl", [{"transaction_id": "a", "is_fraud": 1,
                       "label_time": "2023-11-01T00:00:00Z"}])
    apply("6.jsonl", [{"transaction_id": "a", "is_fraud": 1,
                       "label_time": "2023-10-01T00:00:00Z"}])
    assert frauds(store) == frauds(DynamoStateStore(dynamo)) == [(T0, T0)]


def test_a_retraction_reaches_another_worker_after_its_refresh(
    dynamo: Dynamo, tmp_path: Path
) -> None:
    _history(dynamo)
    feed = _feed(tmp_path / "f.jsonl", [{"transaction_id": "a", "is_fraud": 1}])
    apply_labels(dynamo, DynamoStateStore(dynamo), labels_of(read_labels(feed)))
    other = DynamoStateStore(dynamo, refresh_us=3_600_000_000)
    assert len(other.load_terminals(["m1"], T0 - DAY, T0 + DAY).fraud_ts) == 1
    undo = _feed(tmp_path / "u.jsonl", [{"transaction_id": "a", "is_fraud": 0}])
    report = apply_labels(dynamo, DynamoStateStore(dynamo), labels_of(read_labels(undo)))
    assert report.retracted == 1
    # Within its refresh the other worker may still see it; after, the marker moved: re-read.
    later = other.load_terminals(["m1"], T0 - DAY, T0 + DAY + 3_600_000_000)
    assert len(later.fraud_ts) == 0
