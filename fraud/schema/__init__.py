"""Transaction schema: the columnar batch, parsing and validation of payloads and files."""

from fraud.schema.batch import (
    MISSING_TIME,
    OPTIONAL_FLOAT_FIELDS,
    OPTIONAL_STRING_FIELDS,
    REQUIRED_FIELDS,
    Rejection,
    TransactionBatch,
)

__all__ = [
    "MISSING_TIME",
    "OPTIONAL_FLOAT_FIELDS",
    "OPTIONAL_STRING_FIELDS",
    "REQUIRED_FIELDS",
    "Rejection",
    "TransactionBatch",
]
