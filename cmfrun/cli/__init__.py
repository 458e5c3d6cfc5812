"""The command line: the only module family that uses click or writes to the terminal.

``cmfrun`` (the wrapper) and ``cmf`` (the CMF-style command group) are two
console scripts. Each sub-module registers its commands on the ``cmf`` group;
errors of the :class:`~cmfrun.errors.CmfrunError` family become one line on
stderr and their exit code here, in :func:`handle_errors`, and nowhere else.
"""
from __future__ import annotations

import logging
import sys
from typing import Any, Callable, List, Optional

import click

from cmfrun.errors import CmfrunError


def fail(message: str, code: int) -> "click.exceptions.Exit":
    """Print ``message`` as one ``cmfrun: error:`` line and return the exit to raise."""
    click.echo(f"cmfrun: error: {message}", err=True)
    return click.exceptions.Exit(code)


def handle_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator for click callbacks: user errors -> one line + exit code."""
    import functools

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except CmfrunError as exc:
            raise fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, exc.exit_code) from None

    return wrapper


MLMD_HELP = "Metadata store: file path or postgresql:// / mysql:// URI (default: CMFRUN_MLMD, .cmfconfig, ./mlmd)."


def mlmd_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """The ``-f/--mlmd STORE`` option every ``cmf`` command takes."""
    return click.option("-f", "--mlmd", "mlmd", default=None, metavar="STORE", help=MLMD_HELP)(func)


def subgroup(parent: click.Group, name: str, help_text: str) -> click.Group:
    """The ``name`` sub-group of ``parent`` (``cmf dvc``, ``cmf execution``...), created by
    whichever command module registers first."""
    existing = parent.commands.get(name)
    if isinstance(existing, click.Group):
        return existing
    group = click.Group(name, help=help_text, context_settings={"help_option_names": ["-h", "--help"]})
    parent.add_command(group)
    return group


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cmfrun", prog_name="cmf")
@click.option("-v", "--verbose", is_flag=True, help="Log what cmfrun does to stderr.")
def cmf(verbose: bool) -> None:
    """cmf: inspect and manage a cmfrun/CMF metadata store.

    Example: cmf execution list -p my-pipeline
    """
    if verbose:
        logging.basicConfig(level=logging.INFO, format="cmfrun: %(message)s")


def _register_all() -> None:
    from cmfrun.cli import artifacts, deployment, graph, ingest, metadata, openlineage, query, server, ui

    for module in (ingest, query, metadata, deployment, openlineage, ui, artifacts, graph, server):
        module.register(cmf)


_register_all()


def cmf_main(argv: Optional[List[str]] = None) -> int:
    """Entry point of the ``cmf`` console script."""
    return _standalone(cmf, argv, prog="cmf")


def run_main(argv: Optional[List[str]] = None) -> int:
    """Entry point of the ``cmfrun`` console script (the wrapper)."""
    from cmfrun.cli.run import run_command

    return _standalone(run_command, argv, prog="cmfrun")


def _standalone(command: click.Command, argv: Optional[List[str]], prog: str) -> int:
    try:
        result = command.main(args=argv, prog_name=prog, standalone_mode=False)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        return 2
    except click.exceptions.Abort:
        click.echo("Aborted!", err=True)
        return 130
    except CmfrunError as exc:
        click.echo(f"cmfrun: error: {exc}", err=True)
        return exc.exit_code
    return int(result or 0) if isinstance(result, int) else 0


def main() -> None:  # pragma: no cover - `python -m cmfrun.cli`
    sys.exit(cmf_main())
