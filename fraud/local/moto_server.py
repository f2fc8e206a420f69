"""Launcher of moto's server with one local-only speed fix for TransactWriteItems.

moto backs up a table before a transaction so that it can roll back, but it does so once per
*item* of the transaction (a deep copy of the whole table each time): a 100-item transaction
on a table of N items costs 100 full copies, so the project's batched transactional writes
(user states, terminal sets, decisions) slow down quadratically as local tables grow. All
those copies are taken before any change, so they are identical; this launcher makes the
second and later copies of the same table, within one transaction, reuse the first. Nothing
else changes: the rollback still restores a full pre-transaction copy. Transactions are also
serialised, so a backup never races a concurrent transaction.

Run as ``python -m fraud.local.moto_server -H 127.0.0.1 -p PORT`` (moto's own arguments).
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Sequence
from typing import Any

__all__ = ["main", "patch_moto"]

_lock = threading.RLock()


class _CopyOncePerTransaction:
    """Stands in for the `copy` module inside moto's DynamoDB models during a transaction."""

    def __init__(self, owner: int) -> None:
        self._owner = owner
        self._copies: dict[int, tuple[Any, Any]] = {}

    def deepcopy(self, obj: Any, memo: Any = None) -> Any:
        if threading.get_ident() != self._owner:  # another request's thread: plain copy
            return copy.deepcopy(obj, memo)
        key = id(obj)
        if key not in self._copies:
            # Keep `obj` referenced so its id cannot be reused while the cache lives.
            self._copies[key] = (obj, copy.deepcopy(obj, memo))
        return self._copies[key][1]

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)


def patch_moto() -> None:
    """Install the fix (idempotent)."""
    from moto.dynamodb import models

    backend = models.DynamoDBBackend
    if getattr(backend.transact_write_items, "_fraud_patched", False):
        return
    original = backend.transact_write_items

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> Any:
        with _lock:
            saved = getattr(models, "copy")  # noqa: B009
            setattr(models, "copy", _CopyOncePerTransaction(threading.get_ident()))  # noqa: B010
            try:
                return original(self, transact_items)
            finally:
                setattr(models, "copy", saved)  # noqa: B010

    setattr(transact_write_items, "_fraud_patched", True)  # noqa: B010
    setattr(backend, "transact_write_items", transact_write_items)  # noqa: B010


def main(argv: Sequence[str] | None = None) -> None:
    patch_moto()
    from moto.server import main as moto_main

    moto_main(list(argv) if argv is not None else None)


if __name__ == "__main__":
    main()
