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

# Parsing and file reading pull in pyarrow: load them on first use, so importing the batch
# type (every stage does) stays cheap.
_LAZY = {
    "COLUMNS": "fraud.schema.columns",
    "ColumnMap": "fraud.schema.columns",
    "DEFAULT_LIMITS": "fraud.schema.parse",
    "Labels": "fraud.schema.files",
    "Limits": "fraud.schema.parse",
    "ParseResult": "fraud.schema.parse",
    "TIME": "fraud.schema.timeparse",
    "mask_value": "fraud.schema.parse",
    "parse_cli_time": "fraud.schema.timeparse",
    "parse_payloads": "fraud.schema.parse",
    "read_all": "fraud.schema.files",
    "read_labels": "fraud.schema.files",
    "read_transactions": "fraud.schema.files",
}
__all__ += sorted(_LAZY)  # noqa: PLE0605


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'fraud.schema' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
