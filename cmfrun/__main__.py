"""``python -m cmfrun -- CMD`` runs the wrapper, like the ``cmfrun`` script.

:func:`main` is also the fastest entry for the console script
(``cmfrun = "cmfrun.__main__:main"``): plain option forms are parsed without
importing click or the ``cmf`` command group (~25 ms per run); anything else
(``--help``, a typo, a missing value) goes to the click command.
"""
import os
import sys
from typing import List, Optional


def main(argv: Optional[List[str]] = None) -> int:
    """Run the wrapper on ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    args = sys.argv[1:] if argv is None else list(argv)
    from cmfrun.commands.run import parse_fast, render, run_wrapped
    from cmfrun.errors import CmfrunError

    parsed = parse_fast(args)
    if parsed is None:
        from cmfrun.cli import run_main

        return run_main(args)
    options, command = parsed
    try:
        outcome = run_wrapped(command, options)
    except CmfrunError as exc:
        sys.stderr.write(f"cmfrun: error: {str(exc).splitlines()[0]}\n")
        return exc.exit_code
    lines, status = render(outcome, command[0], options.strict)
    for line in lines:
        sys.stderr.write(line + "\n")
    sys.stderr.flush()
    return status


if __name__ == "__main__":
    # `python -m` puts the current folder first on sys.path: a user's copy.py or json.py
    # there would shadow the standard library inside the wrapper.
    if sys.path and sys.path[0] in ("", os.getcwd()):
        del sys.path[0]
    sys.exit(main())
