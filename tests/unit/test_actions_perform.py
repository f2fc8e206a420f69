"""Action sinks against moto in-process: each action's effect, exactly once across redeliveries,
crashes between the decision and its publish completed on redelivery."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from fraud.actions import ActionPerformer, EffectsReport
from fraud.actions.testing import make_outcome
from fraud.config import Settings
from fraud.errors import StoreError
from fraud.store import Backoff, Dynamo, RequestCounter, connect, make_client
from fraud.store.decisions import get_decision, list_cases
from fraud.store.tables import create_tables, table_spec

STREAM = "fraud-decisions"
NOW = 1_706_800_000.0
NO_WAIT = Backoff(sleep=lambda _: None, attempts=3)
_EXAMPLES = itertools.count()


@dataclass
class Aws:
    settings: Settings
    dynamo: Dynamo
    counter: RequestCounter
    sns: Any
    kinesis: Any
    sqs: Any
    queue_url: str
    topic_arn: str


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_EC2_METADATA_DISABLED": "true"}.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        settings = Settings(table_prefix="act-")
        counter = RequestCounter()
        dynamo = connect(settings, counter)
        create_tables(dynamo, [table_spec("Decisions"), table_spec("Cases")])
        counter.reset()
        kinesis = make_client("kinesis", settings)
        kinesis.create_stream(StreamName=STREAM, ShardCount=1)
        sns = make_client("sns", settings)
        sqs = make_client("sqs", settings)
        arn = sns.create_topic(Name="fraud-alerts")["TopicArn"]
        queue_url = sqs.create_queue(QueueName="alerts")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=queue_arn)
        yield Aws(settings, dynamo, counter, sns, kinesis, sqs, queue_url, arn)


def performer(aws: Aws, *, kinesis: Any = None, sns: Any = None,
              topic: str = "fraud-alerts") -> ActionPerformer:
    return ActionPerformer(dynamo=aws.dynamo, sns=sns or aws.sns, kinesis=kinesis or aws.kinesis,
                           alert_topic=topic, decisions_stream=STREAM, clock=lambda: NOW,
                           backoff=NO_WAIT)


def stream_records(aws: Aws) -> list[dict[str, Any]]:
    shard = aws.kinesis.list_shards(StreamName=STREAM)["Shards"][0]["ShardId"]
    iterator = aws.kinesis.get_shard_iterator(StreamName=STREAM, ShardId=shard,
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    records = aws.kinesis.get_records(ShardIterator=iterator, Limit=1000)["Records"]
    return [dict(json.loads(r["Data"]), _key=r["PartitionKey"]) for r in records]


def alerts(aws: Aws) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while True:
        got = aws.sqs.receive_message(QueueUrl=aws.queue_url, MaxNumberOfMessages=10)
        messages = got.get("Messages", [])
        if not messages:
            return out
        for message in messages:
            envelope = json.loads(message["Body"])
            out.append({"body": json.loads(envelope["Message"]),
                        "attributes": envelope.get("MessageAttributes", {})})
            aws.sqs.delete_message(QueueUrl=aws.queue_url,
                                   ReceiptHandle=message["ReceiptHandle"])


class Failing:
    """A client whose `operation` raises (or is answered by `answer`); the rest passes through."""

    def __init__(self, inner: Any, operation: str, answer: Any = None) -> None:
        self.inner = inner
        self.operation = operation
        self.answer = answer
        self.calls: list[dict[str, Any]] = []

    def __getattr__(self, name: str) -> Any:
        if name != self.operation:
            return getattr(self.inner, name)

        def call(**kwargs: Any) -> Any:
            self.calls.append(kwargs)
            if self.answer is not None:
                return self.answer(self.inner, kwargs, len(self.calls))
            raise ClientError({"Error": {"Code": "InternalFailure", "Message": "boom"}},
                              self.operation)

        return call


def test_each_action_has_its_effect(aws: Aws) -> None:
    outcome = make_outcome(["block", "alert", "flag", ""], positions=["11", "12", "13", "14"])
    report = performer(aws).perform(outcome, shard_id="shardId-1")
    assert report.written == ("t0", "t1", "t2") and report.duplicates == ()
    assert report.streamed == ("t0",) and report.alerted == ("t1",) and report.cases == ("t2",)

    block = get_decision(aws.dynamo, "t0")
    assert block is not None
    assert (block["action"], block["effects"], block["rule_hits"]) == ("block", "done",
                                                                       ["rule_block"])
    assert block["decided_at"] == int(NOW * 1_000_000) and block["source"] == "shardId-1"
    assert block["position"] == "11" and block["model_version"] == "model-1"
    assert get_decision(aws.dynamo, "t3") is None  # no action, no decision record

    (record,) = stream_records(aws)
    assert record["transaction_id"] == "t0" and record["_key"] == "u0"
    assert record["action"] == "block" and record["rule_ids"] == ["rule_block"]
    assert record["reasons"] == ["rule_block: because block"]
    assert (record["model_version"], record["rules_version"]) == ("model-1", "rules-1")

    (alert,) = alerts(aws)
    assert alert["body"]["transaction_id"] == "t1" and alert["body"]["user_id"] == "u1"
    assert alert["body"]["amount"] == 11.0 and alert["body"]["reasons"] == [
        "rule_alert: because alert"]
    assert alert["attributes"]["transaction_id"]["Value"] == "t1"

    (case,) = list_cases(aws.dynamo)
    assert (case["case_id"], case["transaction_id"], case["status"]) == ("case-t2", "t2", "open")


def test_redelivery_does_nothing_twice(aws: Aws) -> None:
    outcome = make_outcome(["block", "alert", "flag", "block"])
    performer(aws).perform(outcome)
    again = performer(aws).perform(outcome)
    assert again.written == () and again.duplicates == ("t0", "t1", "t2", "t3")
    assert again.resumed == () and again.streamed == () and again.alerted == ()
    assert again.cases == ()
    assert sorted(r["transaction_id"] for r in stream_records(aws)) == ["t0", "t3"]
    assert len(alerts(aws)) == 1
    assert len(list_cases(aws.dynamo)) == 1


def test_crash_between_decision_and_publish_is_completed_on_redelivery(aws: Aws) -> None:
    outcome = make_outcome(["block", "alert", "block"])
    broken = Failing(aws.kinesis, "put_records")
    with pytest.raises(StoreError, match="Kinesis put_records on fraud-decisions"):
        performer(aws, kinesis=broken).perform(outcome)
    effects = [get_decision(aws.dynamo, t)["effects"] for t in ("t0", "t1", "t2")]  # type: ignore[index]
    assert effects == ["pending", "done", "pending"]  # the alert went out; the blocks did not
    assert stream_records(aws) == [] and len(alerts(aws)) == 1

    # The redelivered batch (decided again, possibly by newer rules) finds the blocks
    # pending and publishes what was first decided; the alert is not sent again.
    redelivered = make_outcome(["block", "alert", "block"], rules_version="rules-2")
    report = performer(aws).perform(redelivered)
    assert report.written == () and report.resumed == ("t0", "t2") and report.alerted == ()
    records = stream_records(aws)
    assert [r["transaction_id"] for r in records] == ["t0", "t2"]
    assert {r["rules_version"] for r in records} == {"rules-1"}
    assert alerts(aws) == []
    assert all(get_decision(aws.dynamo, t)["effects"] == "done"  # type: ignore[index]
               for t in ("t0", "t1", "t2"))

    # and a third delivery sends nothing
    third = performer(aws).perform(redelivered)
    assert third.resumed == () and len(stream_records(aws)) == 2 and alerts(aws) == []


def test_what_was_published_before_a_failure_is_not_sent_again(aws: Aws) -> None:
    outcome = make_outcome(["block", "alert"])
    broken_sns = Failing(aws.sns, "publish_batch")
    with pytest.raises(StoreError, match="SNS publish_batch"):
        performer(aws, sns=broken_sns).perform(outcome)
    assert get_decision(aws.dynamo, "t1")["effects"] == "pending"  # type: ignore[index]
    assert len(stream_records(aws)) == 1  # the block went out before the alert failed
    assert get_decision(aws.dynamo, "t0")["effects"] == "done"  # type: ignore[index]
    report = performer(aws).perform(outcome)
    assert report.resumed == ("t1",) and report.streamed == () and report.alerted == ("t1",)
    assert len(stream_records(aws)) == 1 and len(alerts(aws)) == 1


def test_failed_stream_records_are_retried_and_marked_done(aws: Aws) -> None:
    def first_record_fails_once(inner: Any, kwargs: dict[str, Any], call: int) -> Any:
        answer = inner.put_records(**kwargs)
        if call == 1:
            kwargs["Records"] = kwargs["Records"][1:]
            answer = inner.put_records(**kwargs)
            answer["Records"] = [{"ErrorCode": "ProvisionedThroughputExceededException",
                                  "ErrorMessage": "slow down"}, *answer["Records"]]
        return answer

    flaky = Failing(aws.kinesis, "put_records", first_record_fails_once)
    outcome = make_outcome(["block", "block", "block"])
    report = performer(aws, kinesis=flaky).perform(outcome)
    assert sorted(report.streamed) == ["t0", "t1", "t2"]
    assert [len(c["Records"]) for c in flaky.calls] == [2, 1]  # only the failed one again


def test_persistently_failing_records_leave_the_decision_pending(aws: Aws) -> None:
    def always_fails(inner: Any, kwargs: dict[str, Any], call: int) -> Any:
        return {"FailedRecordCount": len(kwargs["Records"]),
                "Records": [{"ErrorCode": "InternalFailure", "ErrorMessage": "x"}
                            for _ in kwargs["Records"]]}

    flaky = Failing(aws.kinesis, "put_records", always_fails)
    with pytest.raises(StoreError, match="1 decision"):
        performer(aws, kinesis=flaky).perform(make_outcome(["block"]))
    assert len(flaky.calls) == NO_WAIT.attempts + 1
    assert get_decision(aws.dynamo, "t0")["effects"] == "pending"  # type: ignore[index]


def test_dynamodb_requests_are_batched(aws: Aws) -> None:
    actions = ["block" if i % 50 == 0 else "" for i in range(1000)]
    actions[7] = "flag"
    actions[8] = "alert"
    report = performer(aws).perform(make_outcome(actions))
    assert report.actioned == 22 and len(report.streamed) == 20
    # one transaction of conditional puts, one of "done" updates: for 1000 transactions
    assert aws.counter.snapshot() == {"dynamodb.TransactWriteItems": 2}


def test_flags_are_never_split_from_their_cases(aws: Aws) -> None:
    outcome = make_outcome(["flag"] * 130 + ["block"])
    report = performer(aws).perform(outcome)
    assert len(report.written) == 131 and len(report.cases) == 130
    assert len(list_cases(aws.dynamo)) == 130
    again = performer(aws).perform(outcome)
    assert len(again.duplicates) == 131 and again.cases == ()


def test_topic_name_is_resolved_once_and_fifo_messages_carry_dedup_ids(aws: Aws) -> None:
    arn = aws.sns.create_topic(Name="alerts.fifo", Attributes={"FifoTopic": "true"})["TopicArn"]
    sns = Failing(aws.sns, "publish_batch", lambda inner, kw, _: inner.publish_batch(**kw))
    counting = Failing(sns, "create_topic", lambda inner, kw, _: inner.create_topic(**kw))
    one = performer(aws, sns=counting, topic="alerts.fifo")
    one.perform(make_outcome(["alert", "alert"], prefix="a"))
    one.perform(make_outcome(["alert"], prefix="b"))
    assert len(counting.calls) == 1
    entries = [e for call in sns.calls for e in call["PublishBatchRequestEntries"]]
    assert {c["TopicArn"] for c in sns.calls} == {arn}
    assert [(e["MessageDeduplicationId"], e["MessageGroupId"]) for e in entries] == [
        ("a0", "u0"), ("a1", "u1"), ("b0", "u0")]


def test_alerts_go_out_ten_per_request(aws: Aws) -> None:
    sns = Failing(aws.sns, "publish_batch", lambda inner, kw, _: inner.publish_batch(**kw))
    report = performer(aws, sns=sns).perform(make_outcome(["alert"] * 23))
    assert len(report.alerted) == 23
    assert [len(c["PublishBatchRequestEntries"]) for c in sns.calls] == [10, 10, 3]
    assert len(alerts(aws)) == 23


def test_nothing_to_do_sends_nothing(aws: Aws) -> None:
    report = performer(aws).perform(make_outcome(["", ""]))
    assert report == EffectsReport() and aws.counter.total() == 0
    assert str(report).startswith("actioned=0")


def test_no_card_data_or_raw_fields_in_messages(aws: Aws) -> None:
    performer(aws).perform(make_outcome(["alert", "block"]))
    (alert,) = alerts(aws)
    assert set(alert["body"]) == {"transaction_id", "user_id", "amount", "currency", "action",
                                  "reasons", "ts"}
    (record,) = stream_records(aws)
    assert "amount" not in record and "terminal_id" not in record


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(actions=st.lists(st.sampled_from(["block", "alert", "flag", ""]), min_size=1,
                        max_size=30),
       broken=st.sets(st.sampled_from(["put_records", "publish_batch"])),
       deliveries=st.integers(min_value=1, max_value=3))
def test_every_effect_exactly_once_whatever_fails_and_however_often_redelivered(
        aws: Aws, actions: list[str], broken: set[str], deliveries: int) -> None:
    prefix = f"p{next(_EXAMPLES)}-"
    outcome = make_outcome(actions, prefix=prefix)
    kinesis = Failing(aws.kinesis, "put_records") if "put_records" in broken else aws.kinesis
    sns = Failing(aws.sns, "publish_batch") if "publish_batch" in broken else aws.sns
    try:
        performer(aws, kinesis=kinesis, sns=sns).perform(outcome)
    except StoreError:
        assert broken & {"put_records", "publish_batch"}
    for _ in range(deliveries):  # healthy redeliveries
        performer(aws).perform(outcome)
    streamed = [r["transaction_id"] for r in stream_records(aws)
                if r["transaction_id"].startswith(prefix)]
    alerted = [a["body"]["transaction_id"] for a in alerts(aws)
               if a["body"]["transaction_id"].startswith(prefix)]
    expect = [f"{prefix}{i}" for i, a in enumerate(actions) if a == "block"]
    assert sorted(streamed) == sorted(expect)
    assert sorted(alerted) == sorted(f"{prefix}{i}" for i, a in enumerate(actions)
                                     if a == "alert")
    cases = [c for c in list_cases(aws.dynamo) if c["transaction_id"].startswith(prefix)]
    assert len(cases) == actions.count("flag")
    for i, action in enumerate(actions):
        stored = get_decision(aws.dynamo, f"{prefix}{i}")
        assert (stored is None) == (action == "")
        assert stored is None or stored["effects"] == "done"
