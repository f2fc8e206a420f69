"""``python -m fraud`` runs the CLI."""

import sys

from fraud.cli import main

sys.exit(main())
