"""The one module that starts processes.

Capture mode (git, dvc): :func:`capture` runs a helper and turns any failure,
a missing executable included, into one :class:`ProcessError` that shows argv,
exit code and output. Passthrough mode (the user's command, for ``cmfrun --``)
lives here too: inherited stdio, argv list, never ``shell=True``.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Mapping, Optional, Sequence, Union

from cmfrun.errors import ProcessError

PathLike = Union[str, Path]


def capture(
    argv: Sequence[str],
    *,
    cwd: Optional[PathLike] = None,
    env: Optional[Mapping[str, str]] = None,
    check: bool = True,
    timeout: Optional[float] = 120,
) -> subprocess.CompletedProcess:
    """Run a helper program and return its completed process (text stdout/stderr).

    >>> capture(["git", "--version"]).stdout.startswith("git version")
    True
    """
    try:
        proc = subprocess.run(
            list(argv),
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            timeout=timeout,
        )
    except FileNotFoundError:
        raise ProcessError(f"{argv[0]}: program not found (ran {list(argv)!r})") from None
    except subprocess.TimeoutExpired:
        raise ProcessError(f"{list(argv)!r} did not finish within {timeout} s") from None
    if check and proc.returncode != 0:
        raise ProcessError(
            f"{list(argv)!r} exited with {proc.returncode}: "
            + " ".join((proc.stderr or proc.stdout or "").split())[:500]
        )
    return proc


def which(program: str) -> Optional[str]:
    """Full path of ``program`` on PATH (or as given when it contains a ``/``), else ``None``."""
    import shutil

    if os.sep in program:
        return program if os.access(program, os.X_OK) and not os.path.isdir(program) else None
    return shutil.which(program)


__all__ = ["capture", "which"]
