"""The ``cmfrun -- CMD`` wrapper command (filled in by its issue)."""
from __future__ import annotations

import click


@click.command(context_settings={"ignore_unknown_options": True, "help_option_names": ["-h", "--help"]})
@click.argument("argv", nargs=-1, type=click.UNPROCESSED)
def run_command(argv: tuple) -> int:
    """Run CMD and record it as an execution. Example: cmfrun -- python train.py"""
    raise click.UsageError("not implemented yet")
