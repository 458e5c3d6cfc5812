"""``cmf repo push`` / ``cmf repo pull``: git, artifacts and metadata in one go.

Push: ``git push`` (the current branch to its remote), then the pipeline's artifacts to the
DVC remote (``cmf artifact push``), then its metadata to the cmf server (``cmf metadata push``):
code first, then the data, then the records that point at both.

Pull: ``git pull --ff-only``, then the metadata, then the artifacts: the artifact pull reads
the (just pulled) metadata to know which files to fetch, so it must come after it.

Each stops at the first step that fails; :class:`RepoStepError` names the step, and the
steps before it stay done (a rerun repeats them harmlessly: each is idempotent).
"""
from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, List, Optional, Tuple

from cmfrun import config, errors, proc
from cmfrun.commands import open_store
from cmfrun.commands.metadata import TransferResult, pull, push

log = logging.getLogger(__name__)


class RepoStepError(errors.CmfrunError):
    """One step of ``cmf repo push/pull`` failed; the message names it (exit code: the step's)."""

    def __init__(self, direction: str, step: str, number: int, cause: errors.CmfrunError) -> None:
        first = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
        super().__init__(f"repo {direction} stopped at step {number} ({step}): {first}")
        self.step = step
        self.exit_code = cause.exit_code


@dataclass(frozen=True)
class RepoStep:
    """A step that ran: its name and a one-line summary."""

    name: str
    summary: str


@dataclass(frozen=True)
class RepoResult:
    """What ``cmf repo push/pull`` did, step by step."""

    direction: str
    pipeline: str
    steps: Tuple[RepoStep, ...]
    metadata: Optional[TransferResult]


def _git(root: Path, *args: str, timeout: float = 600) -> str:
    res = proc.capture(["git", *args], cwd=root, timeout=timeout)
    return " ".join((res.stdout + res.stderr).split())


def _branch_and_remote(root: Path) -> Tuple[str, str]:
    if proc.capture(["git", "rev-parse", "--is-inside-work-tree"], cwd=root, check=False).returncode != 0:
        raise errors.UsageError(f"{root} is not a git repository")
    branch = proc.capture(["git", "rev-parse", "--abbrev-ref", "HEAD"], cwd=root).stdout.strip()
    if branch == "HEAD":
        raise errors.UsageError("git HEAD is detached: check out a branch first")
    upstream = proc.capture(["git", "config", f"branch.{branch}.remote"], cwd=root, check=False).stdout.strip()
    remotes = proc.capture(["git", "remote"], cwd=root).stdout.split()
    remote = upstream or ("origin" if "origin" in remotes else (remotes[0] if remotes else ""))
    if not remote:
        raise errors.UsageError("the git repository has no remote to push to or pull from")
    return branch, remote


def git_push(root: Path) -> str:
    """Push the current branch to its remote; returns a one-line summary."""
    branch, remote = _branch_and_remote(root)
    _git(root, "push", remote, f"HEAD:refs/heads/{branch}")
    return f"pushed branch {branch} to {remote}"


def git_pull(root: Path) -> str:
    """Fast-forward the current branch from its remote; returns a one-line summary."""
    branch, remote = _branch_and_remote(root)
    _git(root, "pull", "--ff-only", remote, branch)
    return f"pulled branch {branch} from {remote}"


def _artifacts_function(name: str) -> Callable[..., Any]:
    """``cmfrun.commands.artifacts.<name>`` (the artifacts commands), imported when needed."""
    try:
        module = importlib.import_module("cmfrun.commands.artifacts")
    except ImportError:
        raise errors.UsageError("artifact transfer is not available: this cmfrun has no cmfrun.commands.artifacts") from None
    fn = getattr(module, name, None)
    if not callable(fn):
        raise errors.UsageError(f"artifact transfer is not available: cmfrun.commands.artifacts has no {name}()")
    return fn  # type: ignore[no-any-return]


def _summary(result: Any) -> str:
    text = str(result) if result is not None else "done"
    return (text.splitlines() or ["done"])[0][:200]


def _run_steps(direction: str, pipeline: str, steps: List[Tuple[str, Callable[[], Any]]]) -> Tuple[Tuple[RepoStep, ...], Any]:
    done: List[RepoStep] = []
    last: Any = None
    for number, (name, step) in enumerate(steps, start=1):
        try:
            last = step()
        except errors.CmfrunError as exc:
            raise RepoStepError(direction, name, number, exc) from None
        done.append(RepoStep(name, last if isinstance(last, str) else _summary(last)))
        log.info("repo %s: step %d (%s) done", direction, number, name)
    return tuple(done), last


def repo_push(
    pipeline_name: str,
    filepath: str = "./mlmd",
    tensorboard_path: str = "",
    execution_uuid: str = "",
    jobs: int = 32,
    *,
    server: Optional[str] = None,
    token: Optional[str] = None,
    root: Optional[Path] = None,
) -> RepoResult:
    """Push code (git), artifacts (DVC remote) and metadata (cmf server), in that order
    (CMF's ``repo_push``); stops at the first failing step with :class:`RepoStepError`."""
    if tensorboard_path:
        raise errors.UsageError("cmfrun's repo push does not upload tensorboard logs (cmflib's client does)")
    top = root or config.find_root()
    meta: List[TransferResult] = []

    def metadata() -> str:
        store = open_store(filepath or "./mlmd", create=False)
        try:
            res = push(store, pipeline_name, server=server, token=token, execution_uuid=execution_uuid or None, root=top)
        finally:
            store.close()
        meta.append(res)
        return f"{res.executions_sent} execution(s) sent to {res.peer}"

    steps, _ = _run_steps("push", pipeline_name, [
        ("git", lambda: git_push(top)),
        ("artifacts", lambda: _artifacts_function("artifact_push")(pipeline_name, filepath, jobs)),
        ("metadata", metadata),
    ])
    return RepoResult("push", pipeline_name, steps, meta[0] if meta else None)


def repo_pull(
    pipeline_name: str,
    file_name: str = "./mlmd",
    execution_uuid: str = "",
    *,
    server: Optional[str] = None,
    token: Optional[str] = None,
    root: Optional[Path] = None,
) -> RepoResult:
    """Pull code (git), metadata (cmf server), then the artifacts it names (CMF's ``repo_pull``);
    stops at the first failing step with :class:`RepoStepError`."""
    top = root or config.find_root()
    meta: List[TransferResult] = []

    def metadata() -> str:
        store = open_store(file_name or "./mlmd", create=True)
        try:
            res = pull(store, pipeline_name, server=server, token=token, execution_uuid=execution_uuid or None, root=top)
        finally:
            store.close()
        meta.append(res)
        return f"{res.executions_sent} execution(s) received from {res.peer}"

    steps, _ = _run_steps("pull", pipeline_name, [
        ("git", lambda: git_pull(top)),
        ("metadata", metadata),
        ("artifacts", lambda: _artifacts_function("artifact_pull")(pipeline_name, file_name)),
    ])
    return RepoResult("pull", pipeline_name, steps, meta[0] if meta else None)


__all__ = ["RepoStepError", "RepoStep", "RepoResult", "repo_push", "repo_pull", "git_push", "git_pull"]
