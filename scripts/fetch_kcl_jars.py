#!/usr/bin/env python3
"""Fetch the KCL MultiLangDaemon jars into the cache (and optionally install amazon-kclpy).

Idempotent: a complete cache is left alone. The jars are never committed; ``fraud consume``
calls the same code (`fraud.stream.jars`) when the cache is missing.

    .venv/bin/python scripts/fetch_kcl_jars.py --install-kclpy
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from fraud.errors import FraudError
from fraud.logs import configure_logging
from fraud.stream.jars import KCLPY_VERSION, default_jar_dir, fetch_jars, install_kclpy


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=None,
                        help=f"jar cache folder (default: $FRAUD_KCL_JARS or {default_jar_dir()})")
    parser.add_argument("--maven-repo", type=Path, default=None,
                        help="local Maven repository for mvn (default: ~/.m2/repository)")
    parser.add_argument("--force", action="store_true", help="fetch again even when complete")
    parser.add_argument("--install-kclpy", action="store_true",
                        help=f"also pip install amazon-kclpy=={KCLPY_VERSION} into this Python")
    args = parser.parse_args(argv)
    configure_logging("INFO")
    started = time.monotonic()
    try:
        jars = fetch_jars(args.dest, force=args.force, maven_repo=args.maven_repo)
        if args.install_kclpy:
            install_kclpy(args.dest, maven_repo=args.maven_repo)
    except FraudError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    elapsed = time.monotonic() - started
    print(f"{len(jars.jars)} KCL jars in {jars.directory} ({elapsed:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
