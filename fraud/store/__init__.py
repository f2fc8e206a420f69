"""State in DynamoDB: table definitions, the batched client layer, the feature store, the
decision/case/dead-letter writers, the transaction history, the label feed, the seed use cases
and their seeding.

Typical wiring (one client, one request counter, shared by every stage)::

    counter = RequestCounter()
    dynamo = Dynamo(dynamodb_client(settings, counter=counter), settings.table_prefix)
    store = DynamoStateStore(dynamo)          # a fraud.features.store.StateStore
    ...
    counter.per(transactions)                 # requests per transaction, for the report
"""

from __future__ import annotations

from fraud.config import Settings
from fraud.store.clients import RequestCounter, dynamodb_client, make_client
from fraud.store.dynamo import Backoff, ConditionalPut, Dynamo

__all__ = ["Backoff", "ConditionalPut", "Dynamo", "RequestCounter", "connect", "dynamodb_client",
           "make_client"]


def connect(settings: Settings, counter: RequestCounter | None = None) -> Dynamo:
    """A `Dynamo` for `settings`, counting its requests into `counter`."""
    return Dynamo(dynamodb_client(settings, counter=counter), settings.table_prefix)
