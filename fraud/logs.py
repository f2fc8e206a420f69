"""Structured JSON logs on stderr.

stdout belongs to the KCL MultiLangDaemon protocol and to command output, so logs never go
there. Never log card numbers or raw records: log ids, counts and reasons.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import structlog

__all__ = ["configure_logging", "get_logger"]


_configured = False


class _Stderr:
    """Whatever `sys.stderr` is at the time of writing (test runners and daemons swap it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_logging(level: str = "INFO") -> None:
    """Route structlog and the stdlib's logging to stderr as one JSON object per line."""
    global _configured  # noqa: PLW0603 - process-wide logging set-up, done once or on demand
    _configured = True
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        structlog.processors.JSONRenderer(sort_keys=True),
    ]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=_Stderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processor=structlog.processors.JSONRenderer(sort_keys=True),
            foreign_pre_chain=[
                structlog.stdlib.add_log_level,
                structlog.stdlib.add_logger_name,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(numeric, logging.INFO) if numeric < logging.INFO else numeric)
    for noisy in ("botocore", "boto3", "urllib3", "numba", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def get_logger(name: str) -> Any:
    """A structlog logger bound to `name` (the module).

    Logging is configured on first use if nobody did it yet: structlog's own default writes
    to stdout, which would corrupt the KCL protocol and command output.
    """
    if not _configured:
        configure_logging(os.environ.get("FRAUD_LOG_LEVEL", "INFO"))
    return _Named(name)


class _Named:
    """A logger that binds its name at each call, not once: module-level loggers are made
    at import time, and must follow a later `configure_logging` (level and output)."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, method: str) -> Any:
        return getattr(structlog.get_logger().bind(logger=self._name), method)
