"""``python -m fraud`` runs the CLI."""

from fraud.cli import main

main()
