"""What several commands print the same way (not a command itself: see ``COMMANDS``)."""

from __future__ import annotations

from collections.abc import Sequence

import click

from fraud.schema.batch import Rejection

__all__ = ["SHOWN_REJECTIONS", "echo_rejections"]

SHOWN_REJECTIONS = 5


def echo_rejections(source: object, rejections: Sequence[Rejection], *,
                    what: str = "rejected", shown: int = SHOWN_REJECTIONS) -> None:
    """The first `shown` refused rows of `source` on stderr (position, field, reason), then
    how many more there were; the full list goes wherever the command keeps it."""
    for rejection in rejections[:shown]:
        click.echo(f"{what}: {source}: {rejection}", err=True)
    if len(rejections) > shown:
        click.echo(f"{what}: ... and {len(rejections) - shown} more", err=True)
