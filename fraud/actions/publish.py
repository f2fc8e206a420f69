"""The two publishers that leave AWS's transactional world: Kinesis PutRecords and SNS.

Both send in the service's largest batches (500 records, 10 messages), retry only the entries
that failed (throttling, internal errors) with the project's backoff, and report which
transaction ids made it, so the caller can mark exactly those as done even when others did
not. Neither service can make a publish conditional, so each message carries the transaction
id as the consumer's idempotency key: in the stream payload (the authorising system keys on
it), and on SNS as a ``transaction_id`` message attribute - plus, on a FIFO topic, as the
``MessageDeduplicationId``, so SNS itself drops a repeat within its 5-minute window.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from fraud.errors import ConfigError, StoreError
from fraud.logs import get_logger
from fraud.store.dynamo import Backoff, error_code

__all__ = [
    "KINESIS_BATCH",
    "SNS_BATCH",
    "AlertTopic",
    "Message",
    "PublishResult",
    "put_stream_records",
]

KINESIS_BATCH = 500
SNS_BATCH = 10
_MAX_KEY = 256  # Kinesis partition key length
_DEDUP_OK = re.compile(r"^[\x21-\x7e]{1,128}$")  # what SNS accepts as a deduplication id

_log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Message:
    """One outgoing message: its transaction (idempotency key), routing key and body."""

    transaction_id: str
    key: str  # stream partition key / FIFO message group: the customer id
    body: str

    def __repr__(self) -> str:
        return f"Message({self.transaction_id!r}, bytes={len(self.body)})"


@dataclass(slots=True)
class PublishResult:
    """Transaction ids published, requests sent, and the last error if some never made it."""

    published: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    requests: int = 0
    error: str = ""


def _call(client: Any, service: str, operation: str, target: str, **kwargs: Any) -> Any:
    try:
        return getattr(client, operation)(**kwargs)
    except ClientError as exc:
        message = exc.response.get("Error", {}).get("Message", "")
        raise StoreError(f"{service} {operation} on {target}: {error_code(exc)}: "
                         f"{message}") from exc
    except BotoCoreError as exc:
        raise StoreError(f"{service} {operation} on {target}: {exc}") from exc


def _partition_key(key: str) -> str:
    # Kinesis allows 1-256 characters; a longer (or empty) id keeps its shard by hashing.
    if 0 < len(key) <= _MAX_KEY:
        return key
    return hashlib.sha256(key.encode()).hexdigest()


def put_stream_records(kinesis: Any, stream: str, messages: Sequence[Message],
                       backoff: Backoff | None = None) -> PublishResult:
    """PutRecords in batches of 500, retrying the failed records of each batch.

    Nothing raises: records still failing after the retries, and every record from a batch
    whose request failed (stream missing, access denied) on, are returned in `failed` with
    the last error, so the caller can still mark what did go out.
    """
    backoff = backoff or Backoff()
    result = PublishResult()
    for start in range(0, len(messages), KINESIS_BATCH):
        todo = list(messages[start:start + KINESIS_BATCH])
        for attempt in range(backoff.attempts + 1):
            if attempt:
                backoff.wait(attempt)
            records = [{"Data": m.body.encode(), "PartitionKey": _partition_key(m.key)}
                       for m in todo]
            try:
                answer = _call(kinesis, "Kinesis", "put_records", stream, StreamName=stream,
                               Records=records)
            except StoreError as exc:  # the request itself failed: this and later batches
                result.error = str(exc)
                sent = set(result.published)
                result.failed.extend(m.transaction_id for m in messages[start:]
                                     if m.transaction_id not in sent)
                return result
            result.requests += 1
            retry: list[Message] = []
            for message, entry in zip(todo, answer.get("Records", []), strict=True):
                if entry.get("ErrorCode"):
                    retry.append(message)
                    result.error = f"{entry['ErrorCode']}: {entry.get('ErrorMessage', '')}"
                else:
                    result.published.append(message.transaction_id)
            todo = retry
            if not todo:
                break
            _log.debug("kinesis.failed_records", stream=stream, records=len(todo),
                       attempt=attempt)
        result.failed.extend(m.transaction_id for m in todo)
    return result


class AlertTopic:
    """An SNS topic named by name or ARN, resolved to its ARN once, published to in batches.

    A name is resolved with CreateTopic (idempotent: it returns the existing topic's ARN),
    falling back to ListTopics when the role may not create topics. A name or ARN ending in
    ``.fifo`` is a FIFO topic: messages then carry a deduplication id and a group (the
    customer, so one customer's alerts stay in order).
    """

    def __init__(self, sns: Any, topic: str, backoff: Backoff | None = None) -> None:
        if not topic:
            raise ConfigError("alert topic: empty name (set --alert-topic / FRAUD_ALERT_TOPIC)")
        self.sns = sns
        self.topic = topic
        self.fifo = topic.endswith(".fifo")
        self.backoff = backoff or Backoff()
        self._arn: str | None = topic if topic.startswith("arn:") else None

    def __repr__(self) -> str:
        return f"AlertTopic({self.topic!r}, fifo={self.fifo})"

    @property
    def arn(self) -> str:
        """The topic's ARN (one request the first time, for a name)."""
        if self._arn is None:
            self._arn = self._resolve()
        return self._arn

    def _resolve(self) -> str:
        attributes = {"FifoTopic": "true"} if self.fifo else {}
        try:
            answer = self.sns.create_topic(Name=self.topic, Attributes=attributes)
            return str(answer["TopicArn"])
        except ClientError as exc:
            if error_code(exc) not in ("AuthorizationError", "AccessDenied",
                                       "AccessDeniedException"):
                raise StoreError(f"SNS create_topic {self.topic}: {error_code(exc)}: "
                                 f"{exc.response.get('Error', {}).get('Message', '')}") from exc
        except BotoCoreError as exc:
            raise StoreError(f"SNS create_topic {self.topic}: {exc}") from exc
        token: str | None = None
        while True:
            kwargs = {"NextToken": token} if token else {}
            page = _call(self.sns, "SNS", "list_topics", self.topic, **kwargs)
            for topic in page.get("Topics", []):
                if str(topic["TopicArn"]).rsplit(":", 1)[-1] == self.topic:
                    return str(topic["TopicArn"])
            token = page.get("NextToken")
            if not token:
                raise ConfigError(f"alert topic {self.topic!r}: no such SNS topic, and no "
                                  "permission to create it")

    def _entry(self, index: int, message: Message) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "Id": f"m{index}",  # batch-local; transaction ids may hold characters SNS refuses
            "Message": message.body,
            "Subject": "Transaction alert",
            "MessageAttributes": {
                "transaction_id": {"DataType": "String", "StringValue": message.transaction_id},
            },
        }
        if self.fifo:
            tid = message.transaction_id
            entry["MessageDeduplicationId"] = (
                tid if _DEDUP_OK.match(tid) else hashlib.sha256(tid.encode()).hexdigest())
            entry["MessageGroupId"] = _partition_key(message.key)[:128]
        return entry

    def publish(self, messages: Sequence[Message]) -> PublishResult:
        """PublishBatch, 10 messages per request, retrying the entries that failed."""
        result = PublishResult()
        if not messages:
            return result
        try:
            arn = self.arn
        except StoreError as exc:
            result.error = str(exc)
            result.failed.extend(m.transaction_id for m in messages)
            return result
        for start in range(0, len(messages), SNS_BATCH):
            todo = list(messages[start:start + SNS_BATCH])
            for attempt in range(self.backoff.attempts + 1):
                if attempt:
                    self.backoff.wait(attempt)
                entries = [self._entry(k, m) for k, m in enumerate(todo)]
                try:
                    answer = _call(self.sns, "SNS", "publish_batch", self.topic,
                                   TopicArn=arn, PublishBatchRequestEntries=entries)
                except StoreError as exc:  # the request itself failed: this and later ones
                    result.error = str(exc)
                    done = set(result.published) | set(result.failed)
                    result.failed.extend(m.transaction_id for m in messages[start:]
                                         if m.transaction_id not in done)
                    return result
                result.requests += 1
                ok = {str(e["Id"]) for e in answer.get("Successful", [])}
                fatal = set()
                for failure in answer.get("Failed", []):
                    result.error = f"{failure.get('Code', '')}: {failure.get('Message', '')}"
                    if failure.get("SenderFault"):  # a retry cannot fix the caller's mistake
                        fatal.add(str(failure.get("Id", "")))
                retry = []
                for k, message in enumerate(todo):
                    if f"m{k}" in ok:
                        result.published.append(message.transaction_id)
                    elif f"m{k}" in fatal:
                        result.failed.append(message.transaction_id)
                    else:
                        retry.append(message)
                todo = retry
                if not todo:
                    break
            result.failed.extend(m.transaction_id for m in todo)
        return result
