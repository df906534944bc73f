"""The console-script entry point: the ``trapcount`` group with every command registered
(importing ``trap`` and ``office`` adds their commands to it)."""

from __future__ import annotations

import os
import sys

import click

from edge_agent.cli import office, trap  # noqa: F401 (registers the commands)
from edge_agent.cli.app import cli, one_line

__all__ = ["cli", "main"]


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    try:
        cli.main(args=argv, prog_name="trapcount")
    except Exception as exc:  # a bug, not a user error: still one line unless debugging
        if os.environ.get("TRAPCOUNT_DEBUG"):
            raise
        click.echo(
            f"Error: unexpected {type(exc).__name__}: {one_line(exc)} "
            "(TRAPCOUNT_DEBUG=1 shows the traceback)",
            err=True,
        )
        sys.exit(1)
