"""fraud: a real-time fraud detection stream processor.

Transactions arrive on a Kinesis stream; the KCL MultiLangDaemon drives a Python record
processor that builds features (numba), scores them (scikit-learn) and runs a YAML rule set
to decide `block`, `alert` or `flag`, each performed exactly once. The same pipeline runs as a
batch replay over files and feeds model training.
"""

from fraud.errors import (
    ConfigError,
    FraudError,
    InputError,
    ModelError,
    RulesError,
    StoreError,
)

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "FraudError",
    "InputError",
    "ModelError",
    "RulesError",
    "StoreError",
    "__version__",
]
