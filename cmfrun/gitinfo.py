"""Git facts about a working tree: HEAD, dirty flag, remote URL.

The one module that talks to git. It runs git's plumbing through
:mod:`cmfrun.proc` rather than importing GitPython: GitPython's import alone
costs ~100 ms, which the ``cmfrun --`` hot path cannot afford, and the three
facts needed are single git commands (see the README's dependency section).
Outside a git repository, or with no commit or no remote, fields are empty.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple, Union

from cmfrun import proc
from cmfrun.errors import ProcessError


@dataclass(frozen=True)
class GitState:
    """What git says about a tree. Empty strings when unknown."""

    root: str = ""
    commit: str = ""
    dirty: Optional[bool] = None
    remote_url: str = ""


def _git(args: list, cwd: Union[str, Path]) -> Optional[str]:
    try:
        out = proc.capture(["git", *args], cwd=cwd, check=False)
    except ProcessError:
        return None  # git itself is missing: behave as outside a repository
    if out.returncode != 0:
        return None
    return out.stdout.strip()


def repo_root(cwd: Union[str, Path] = ".") -> Optional[Path]:
    """The top folder of the git work tree containing ``cwd``, or ``None``."""
    top = _git(["rev-parse", "--show-toplevel"], cwd)
    return Path(top) if top else None


def head_commit(cwd: Union[str, Path] = ".") -> str:
    """Full sha of HEAD, or ``""`` (no repository, or no commit yet)."""
    return _git(["rev-parse", "--verify", "-q", "HEAD"], cwd) or ""


def is_dirty(cwd: Union[str, Path] = ".") -> Optional[bool]:
    """Whether tracked files differ from HEAD (untracked files do not count)."""
    out = _git(["status", "--porcelain", "--untracked-files=no"], cwd)
    return None if out is None else bool(out)


def head_and_dirty(cwd: Union[str, Path] = ".") -> Tuple[str, Optional[bool]]:
    """HEAD's sha (``""`` without a commit) and the dirty flag from ONE git call.

    Half the cost of :func:`head_commit` + :func:`is_dirty` (each a process start);
    ``("", None)`` outside a repository.
    """
    out = _git(["status", "--porcelain=v2", "--branch", "--untracked-files=no"], cwd)
    if out is None:
        return "", None
    sha, dirty = "", False
    for line in out.splitlines():
        if line.startswith("# branch.oid "):
            oid = line.split(" ", 2)[2].strip()
            sha = "" if oid == "(initial)" else oid
        elif line and not line.startswith("#"):
            dirty = True
    return sha, dirty


def remote_url(cwd: Union[str, Path] = ".") -> str:
    """URL of the first remote ``git remote -v`` lists (as CMF records it), or ``""``."""
    out = _git(["remote", "-v"], cwd)
    if not out:
        return ""
    parts = out.splitlines()[0].split()
    return parts[1] if len(parts) > 1 else ""


def state(cwd: Union[str, Path] = ".") -> GitState:
    """All git facts for ``cwd`` at once."""
    root = repo_root(cwd)
    if root is None:
        return GitState()
    return GitState(root=str(root), commit=head_commit(root), dirty=is_dirty(root), remote_url=remote_url(root))


__all__ = ["GitState", "repo_root", "head_commit", "is_dirty", "head_and_dirty", "remote_url", "state"]
