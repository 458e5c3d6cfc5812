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
from typing import List, Optional, Tuple, Union

from cmfrun import proc
from cmfrun.errors import ProcessError


@dataclass(frozen=True)
class GitState:
    """What git says about a tree. Empty strings when unknown."""

    root: str = ""
    commit: str = ""
    dirty: Optional[bool] = None
    remote_url: str = ""


def _git(args: List[str], cwd: Union[str, Path]) -> Optional[str]:
    try:
        out = proc.capture(["git", *args], cwd=cwd, check=False)
    except ProcessError:
        return None  # git itself is missing: behave as outside a repository
    if out.returncode != 0:
        return None
    return str(out.stdout).strip()


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


def _git_dir(start: Path) -> Optional[Tuple[Path, Path]]:
    """(work tree top, git dir) found by walking up; ``None`` outside git or for odd layouts."""
    for d in (start, *start.parents):
        dot = d / ".git"
        if dot.is_dir():
            return d, dot
        if dot.is_file():
            return None  # worktree/submodule: let git answer
    return None


def _read_head(git_dir: Path) -> Optional[str]:
    """HEAD's sha read from the files (``None`` when git must be asked)."""
    try:
        head = (git_dir / "HEAD").read_text().strip()
    except OSError:
        return None
    if not head.startswith("ref: "):
        return head if len(head) == 40 else None
    ref = head[5:]
    try:
        return (git_dir / ref).read_text().strip()
    except FileNotFoundError:
        pass
    except OSError:
        return None
    try:
        for line in (git_dir / "packed-refs").read_text().splitlines():
            if line.endswith(" " + ref):
                return line.split(" ", 1)[0]
    except FileNotFoundError:
        return ""  # unborn branch: no commit yet
    except OSError:
        return None
    return ""


def _first_remote(git_dir: Path) -> Optional[str]:
    """URL of the first remote in .git/config (what ``git remote -v`` lists first)."""
    try:
        text = (git_dir / "config").read_text()
    except OSError:
        return None
    in_remote = False
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("["):
            in_remote = line.startswith('[remote "')
        elif in_remote and line.replace(" ", "").startswith("url="):
            return line.split("=", 1)[1].strip()
    return ""


def quick_state(cwd: Union[str, Path]) -> GitState:
    """:func:`state` with one ``git status`` call: HEAD and the first remote are read from
    the ``.git`` files (the wrapper's hot path cannot afford four git runs); worktrees,
    submodules and anything unusual fall back to asking git."""
    cwd = Path(cwd).absolute()
    found = _git_dir(cwd)
    if found is None:
        return state(cwd)
    top, git_dir = found
    commit = _read_head(git_dir)
    remote = _first_remote(git_dir)
    try:
        out = proc.capture(["git", "status", "--porcelain", "--untracked-files=no"], cwd=top, check=False)
        dirty: Optional[bool] = bool(out.stdout.strip()) if out.returncode == 0 else None
    except ProcessError:
        dirty = None
    if commit is None or remote is None:
        return state(cwd)
    return GitState(str(top), commit, dirty, remote)


def quick_head(root: Union[str, Path]) -> str:
    """HEAD's sha read from the ``.git`` files when possible, else from git."""
    found = _git_dir(Path(root).absolute())
    head = _read_head(found[1]) if found else None
    return head if head is not None else head_commit(root)


__all__ = [
    "GitState",
    "repo_root",
    "head_commit",
    "is_dirty",
    "head_and_dirty",
    "remote_url",
    "state",
    "quick_state",
    "quick_head",
]
