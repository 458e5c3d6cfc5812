"""The ``cmfrun -- CMD`` wrapper command: parse options, run, print warnings, exit as the child.

Everything after ``--`` passes through untouched. Before ``--``, ``--in``,
``--out``, ``--metrics`` and ``--model`` take one or more paths, so a
Makefile's ``cmfrun --in $^ --out $@ -- python train.py`` works even when
``$^`` expands to several words (the words up to the next option or ``--``
belong to the option). Without ``--`` the first word that is not an option
starts the command, and each path option takes exactly one value.
"""
from __future__ import annotations

from typing import Any, List, Optional, Tuple

import click

#: Options that take several words before ``--`` (Makefile ``$^``).
_MULTI = {"--in", "-i", "--out", "-o", "--metrics", "-m", "--model"}
#: Options that take exactly one value.
_SINGLE = {"--mlmd", "-f", "--pipeline", "-p", "--stage", "-s", "--log"}


def split_multi(args: List[str]) -> List[str]:
    """Rewrite ``--in a b --out c -- cmd`` as ``--in a --in b --out c -- cmd``."""
    if "--" not in args:
        return args
    cut = args.index("--")
    head, tail = args[:cut], args[cut:]
    out: List[str] = []
    current: Optional[str] = None
    i = 0
    while i < len(head):
        word = head[i]
        if word in _MULTI:
            current = word
            if i + 1 < len(head):
                out += [word, head[i + 1]]
                i += 2
                continue
        elif word in _SINGLE:
            current = None
            out.append(word)
            if i + 1 < len(head):
                out.append(head[i + 1])
                i += 2
                continue
        elif word.startswith("-"):
            current = None
            out.append(word)
        elif current is not None:
            out += [current, word]
        else:
            out.append(word)
        i += 1
    return out + tail


class _WrapperCommand(click.Command):
    def parse_args(self, ctx: click.Context, args: List[str]) -> List[str]:
        return super().parse_args(ctx, split_multi(list(args)))


@click.command(
    cls=_WrapperCommand,
    context_settings={
        # Not ignore_unknown_options: a typo before `--` must be an error, not the command.
        # Without `--`, the first word that is not an option starts the command and
        # everything after it (options included) is passed through.
        "allow_interspersed_args": False,
        "help_option_names": ["-h", "--help"],
    },
)
@click.option("-f", "--mlmd", metavar="PATH|URI", help="Store (default: env CMFRUN_MLMD, .cmfconfig, mlmd at the project root).")
@click.option("-p", "--pipeline", help="Pipeline name (default: CMFRUN_PIPELINE, .cmfconfig, project folder name).")
@click.option("-s", "--stage", help="Stage name (default: CMFRUN_STAGE, .cmfconfig, DVC_STAGE, program name).")
@click.option("-i", "--in", "inputs", multiple=True, metavar="PATH", help="Input file/dir/glob (repeatable; several words before --).")
@click.option("-o", "--out", "outputs", multiple=True, metavar="PATH", help="Output file/dir/glob (repeatable).")
@click.option("-m", "--metrics", multiple=True, metavar="FILE", help="JSON/YAML metrics file written by the command (repeatable).")
@click.option("--model", multiple=True, metavar="PATH", help="Output to record as a Model (repeatable).")
@click.option("--log", "log_file", metavar="FILE", help="Also append the command's stdout+stderr to FILE.")
@click.option("--strict", is_flag=True, help="Fail (exit 3) when the run cannot be recorded, and record synchronously.")
@click.option("--sync", is_flag=True, help="Merge the record into the store before exiting (also CMFRUN_SYNC=1).")
@click.argument("argv", nargs=-1, type=click.UNPROCESSED)
def run_command(
    mlmd: Optional[str],
    pipeline: Optional[str],
    stage: Optional[str],
    inputs: Tuple[str, ...],
    outputs: Tuple[str, ...],
    metrics: Tuple[str, ...],
    model: Tuple[str, ...],
    log_file: Optional[str],
    strict: bool,
    sync: bool,
    argv: Tuple[str, ...],
) -> int:
    """Run COMMAND unchanged and record it as an execution (inputs, outputs, params,
    git state, environment, resources) in the metadata store.

    The exit status is COMMAND's own (a signal death is 128+N); 127 if COMMAND
    does not exist. Example:

        cmfrun --in data/raw --out data/prepared -- python prepare.py
    """
    from cmfrun.cli import fail
    from cmfrun.commands.run import RunOptions, render, run_wrapped
    from cmfrun.errors import CmfrunError

    args = list(argv)
    if args and args[0] == "--":
        args = args[1:]
    if not args:
        raise click.UsageError("no command given: cmfrun [OPTIONS] -- COMMAND [ARGS...]")
    options = RunOptions(
        mlmd=mlmd,
        pipeline=pipeline,
        stage=stage,
        inputs=inputs,
        outputs=outputs,
        metrics=metrics,
        models=model,
        log_file=log_file,
        strict=strict,
        sync=sync,
    )
    try:
        outcome: Any = run_wrapped(args, options)
    except CmfrunError as exc:
        raise fail(str(exc).splitlines()[0], exc.exit_code) from None
    lines, status = render(outcome, args[0], strict)
    for line in lines:
        click.echo(line, err=True)
    return status
