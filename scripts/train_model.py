#!/usr/bin/env python3
"""Train a model artifact: a thin wrapper for ``fraud train`` (same options, same output).

    python scripts/train_model.py --input data/tx.csv --train-start 2024-01-01 \
        --train-end 2024-02-01 --out models/candidate
"""

from __future__ import annotations

import sys

from fraud.cli import main

if __name__ == "__main__":
    main(["train", *sys.argv[1:]])
