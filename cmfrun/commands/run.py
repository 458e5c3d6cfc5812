"""``cmfrun -- CMD``: run a command transparently and record it as an execution.

The order of work keeps the user's command first and the store off the hot path:

1. resolve settings, git state, and (under ``dvc repro``) the stage; hash the inputs;
2. write a RUNNING journal, run the command (:func:`cmfrun.proc.passthrough`);
3. hash the outputs, write the final journal;
4. merge journals into the store: in a detached background process by default,
   inline with ``sync`` (``--sync``/``CMFRUN_SYNC=1``) or ``strict``.

Nothing here raises for a recording problem: it becomes a line in
:attr:`RunOutcome.warnings` (or, with ``strict``, :attr:`RunOutcome.record_error`),
and the child's exit status always comes back.

Example::

    outcome = run_wrapped(["python", "train.py"], RunOptions(sync=True))
    sys.exit(outcome.exit_status)
"""
from __future__ import annotations

import logging
import os
import shlex
import uuid as _uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from cmfrun import journal
from cmfrun.errors import CmfrunError, InputFileError

log = logging.getLogger(__name__)

ENV_SYNC = "CMFRUN_SYNC"
RECORDED_BY = "cmfrun"


@dataclass(frozen=True)
class RunOptions:
    """Wrapper options (``None`` = from environment, ``.cmfconfig`` or default)."""

    mlmd: Optional[str] = None
    pipeline: Optional[str] = None
    stage: Optional[str] = None
    inputs: Tuple[str, ...] = ()
    outputs: Tuple[str, ...] = ()
    metrics: Tuple[str, ...] = ()
    models: Tuple[str, ...] = ()
    log_file: Optional[str] = None
    strict: bool = False
    sync: bool = False


@dataclass(frozen=True)
class RunOutcome:
    """What happened: the child's exit status, and what was (not) recorded."""

    exit_status: int
    uuid: str = ""
    journal: str = ""
    recorded: bool = False
    not_found: bool = False
    warnings: Tuple[str, ...] = ()
    record_error: Optional[str] = None
    dvc_merged: int = 0


def is_dvc_pipeline_command(argv: Sequence[str]) -> bool:
    """``dvc repro ...``, ``dvc exp run ...`` (also ``python -m dvc ...``)."""
    args = list(argv)
    if not args:
        return False
    prog = os.path.basename(args[0])
    if prog.startswith("python") and args[1:3] == ["-m", "dvc"]:
        args = args[2:]
    elif prog != "dvc":
        return False
    rest = [a for a in args[1:] if not a.startswith("-")]
    return bool(rest) and (rest[0] == "repro" or rest[:2] == ["exp", "run"] or rest[:2] == ["experiments", "run"])


def _program_stage(argv: Sequence[str]) -> str:
    """Default stage name: the program, or the script for interpreters (``python train.py`` -> ``train``)."""
    prog = os.path.basename(argv[0])
    interpreters = ("python", "python3", "Rscript", "bash", "sh", "node", "julia", "perl", "ruby")
    if any(prog == i or prog.startswith(i + ".") or prog.startswith("python3") for i in interpreters):
        for i, arg in enumerate(argv[1:], 1):
            if arg == "-m" and i + 1 < len(argv):
                return argv[i + 1].rsplit(".", 1)[-1]
            if arg == "-c":
                break
            if not arg.startswith("-"):
                return os.path.splitext(os.path.basename(arg))[0] or prog
    return os.path.splitext(prog)[0] or prog


def _host_user() -> Tuple[str, str]:
    import getpass

    try:
        user = getpass.getuser()
    except Exception:
        user = ""
    return os.uname().nodename, user


def _precheck(store: str) -> Optional[str]:
    """A cheap reason the store cannot take a record (no ml_metadata import), else ``None``."""
    if journal.is_server_uri(store):
        import socket
        from urllib.parse import urlparse

        p = urlparse(store)
        scheme = p.scheme.lower()
        if scheme not in ("postgresql", "postgres", "mysql", "mariadb"):
            return f"unknown store URI scheme {scheme!r}"
        try:
            port = p.port or (5432 if scheme.startswith("postgres") else 3306)
            with socket.create_connection((p.hostname or "", port), timeout=1.0):
                return None
        except (OSError, ValueError) as exc:
            return f"cannot reach store {p.hostname}:{p.port or ''}: {exc}"
    path = journal.sqlite_path(store)
    if path.is_dir():
        return f"store path {path} is a directory"
    if path.exists():
        try:
            with open(path, "rb") as fh:
                head = fh.read(16)
        except OSError as exc:
            return f"store {path} is not readable: {exc.strerror}"
        if head and head != b"SQLite format 3\x00":
            return f"store {path} is not an MLMD SQLite file (corrupt or another format)"
        if not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)):
            return f"store {path} is read-only"
        return None
    if not path.parent.is_dir():
        return f"cannot create store {path}: folder {path.parent} does not exist"
    if not os.access(path.parent, os.W_OK):
        return f"cannot create store {path}: folder {path.parent} is read-only"
    return None


class _Recording:
    """The journal side of one run; every method swallows recording errors into warnings."""

    def __init__(self, options: RunOptions, argv: Sequence[str]):
        self.options = options
        self.argv = list(argv)
        self.warnings: List[str] = []
        self.problem: Optional[str] = None
        self.path: Optional[Path] = None
        self.run: Dict[str, Any] = {}
        self.settings: Any = None
        self.cwd = Path.cwd()
        self.hasher: Any = None
        self.plan: Any = None
        self.extra_dirs: List[Path] = []

    def fail(self, what: str, exc: BaseException) -> None:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if not isinstance(exc, (CmfrunError, OSError)):
            log.debug("recording failed", exc_info=True)
            msg = f"{type(exc).__name__}: {msg}"
        self.problem = self.problem or f"{what}: {msg}"

    # -- before the child ------------------------------------------------------------------
    def prepare(self) -> None:
        from cmfrun import config, envinfo, gitinfo

        o = self.options
        env = os.environ
        s = config.resolve(store=o.mlmd, pipeline=o.pipeline, stage=o.stage, cwd=self.cwd)
        self.settings = s
        root = s.root
        dvc_stage = env.get("DVC_STAGE")
        dvc_root = Path(env["DVC_ROOT"]) if env.get("DVC_ROOT") else None
        stage = s.stage or dvc_stage or _program_stage(self.argv)
        if dvc_stage and not s.stage and ":" in stage:
            stage = stage.rsplit(":", 1)[1]  # sub/dvc.yaml:train -> train (matches dvc.lock's stage name)
        uuid = str(_uuid.uuid1())  # CMF's Execution_uuid form; recorder.new_uuid would import the store
        git = gitinfo.quick_state(self.cwd)
        host, user = _host_user()
        try:
            wd = self.cwd.relative_to(root).as_posix() or "."
        except ValueError:
            wd = self.cwd.as_posix()
        pyenv = envinfo.current()
        self.run = {
            "pipeline": s.pipeline,
            "root": str(root),  # journal only (not a RunRecord field): where recorded paths are relative to
            "stage": stage,
            "command": shlex.join(self.argv),
            "uuid": uuid,
            "execution_type": stage,
            "execution_name": uuid,
            "state": "RUNNING",
            "git_repo": git.remote_url,
            "git_start_commit": git.commit,
            "git_end_commit": "",
            "properties": {
                "Working_Dir": wd,
                "Host": host,
                "User": user,
                "Recorded_By": RECORDED_BY,
                **({"Git_Dirty": int(git.dirty)} if git.dirty is not None else {}),
            },
            "custom": {},
            "inputs": [
                {
                    "path": pyenv.path,
                    "md5": pyenv.md5,
                    "type": "Environment",
                    "custom": {"packages": pyenv.text, "python": pyenv.python},
                }
            ],
            "outputs": [],
        }
        self._git_root = git.root
        # Inputs: the DVC stage's deps and params, then --in.
        if not (dvc_stage or o.inputs or o.outputs or o.metrics or o.models):
            return  # nothing to resolve or hash: keep the hot path free of stageio's imports
        from cmfrun import stageio

        paths_in: List[Tuple[str, str]] = []
        if dvc_stage and dvc_root is not None and not is_dvc_pipeline_command(self.argv):
            unresolved = False
            try:
                self.plan = stageio.resolve_dvc_stage(dvc_stage, dvc_root.absolute(), self.cwd, root)
            except CmfrunError as exc:
                # The run itself is still recorded (command, exit status, git, environment);
                # only its inputs and outputs are not: a warning, not a recording failure.
                unresolved = True
                first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                self.warnings.append(f"stage {dvc_stage} not resolved ({first}): inputs/outputs not recorded")
            if self.plan is None and not unresolved and self.problem is None:
                self.warnings.append(f"stage {dvc_stage!r} not found in any dvc.yaml: inputs/outputs not recorded")
            if self.plan is not None:
                self.run["custom"].update(self.plan.params)
                paths_in += [(d, stageio.DATASET) for d in self.plan.deps]
        for p in stageio.expand(o.inputs, self.cwd, must_exist=True):
            paths_in.append((stageio.rel_to_root(p, root, self.cwd), stageio.DATASET))
        if paths_in:
            self.hasher = stageio.lazy_hasher(root, [p for p, _ in paths_in])
            refs, skipped = stageio.hash_many(self.hasher, root, paths_in)
            self.run["inputs"] += refs
            for p in skipped:
                if "://" not in p:
                    self.warnings.append(f"input {p} does not exist: not recorded")

    def start(self) -> None:
        s = self.settings
        store = s.store
        self.path = journal.journal_dir(store, s.root) / f"{self.run['uuid']}.json"
        try:
            journal.write(self.path, journal.new_entry(store, self.run, state="RUNNING"), durable=False)
        except OSError:
            # The store's folder is read-only: keep the journal at the project root.
            fallback = s.root / journal.JOURNAL_DIR
            self.extra_dirs.append(fallback)
            self.path = fallback / f"{self.run['uuid']}.json"
            journal.write(self.path, journal.new_entry(store, self.run, state="RUNNING"), durable=False)

    # -- after the child -------------------------------------------------------------------
    def finish(self, child: Any) -> None:
        from cmfrun import gitinfo

        o = self.options
        root = self.settings.root
        if child.not_found:
            state = "FAILED"
        elif child.signal in (2, 15) or child.interrupted in (2, 15):
            state = "CANCELED"
        else:
            state = "COMPLETE" if child.exit_status == 0 else "FAILED"
        self.run["state"] = state
        props = self.run["properties"]
        props.update(
            {
                "Exit_Code": int(child.exit_status),
                "Start_Time_ms": int(child.start_ms),
                "End_Time_ms": int(child.end_ms),
                "Duration_s": float(child.duration_s),
                "Peak_RSS_KiB": int(child.peak_rss_kib),
                "CPU_Time_s": float(child.cpu_s),
            }
        )
        if self._git_root:
            self.run["git_end_commit"] = gitinfo.quick_head(Path(self._git_root))
        if child.not_found or not (self.plan is not None or o.outputs or o.metrics or o.models):
            return
        from cmfrun import stageio

        items: List[Tuple[str, str]] = []
        if self.plan is not None:
            items += list(self.plan.outs)
        models = {stageio.rel_to_root(p, root, self.cwd) for p in o.models}
        for p in stageio.expand(o.outputs + o.models, self.cwd, must_exist=False):
            rel = stageio.rel_to_root(p, root, self.cwd)
            items.append((rel, stageio.MODEL if rel in models else stageio.DATASET))
        for p in stageio.expand(o.metrics, self.cwd, must_exist=False):
            items.append((stageio.rel_to_root(p, root, self.cwd), stageio.METRICS))
        # Explicit types win over the default Dataset for a path listed twice.
        rank = {stageio.DATASET: 0, stageio.MODEL: 1, stageio.METRICS: 2}
        best: Dict[str, str] = {}
        for rel, kind in items:
            if rank[kind] >= rank.get(best.get(rel, stageio.DATASET), 0):
                best[rel] = kind
        ordered = [(rel, best[rel]) for rel in dict.fromkeys(r for r, _ in items)]
        if ordered:
            # A fresh decision for the outputs (small inputs, large outputs or the reverse);
            # a dvc-data hasher already opened for the inputs is shared.
            out_hasher = stageio.lazy_hasher(root, [p for p, _ in ordered])
            if self.hasher is not None:
                out_hasher._real = self.hasher._real
            self.hasher = out_hasher
            refs, skipped = stageio.hash_many(self.hasher, root, ordered)
            self.run["outputs"] = refs
            if state == "COMPLETE":
                for p in skipped:
                    if "://" not in p:
                        self.warnings.append(f"output {p} was not written: not recorded")

    def commit(self) -> None:
        assert self.path is not None
        journal.write(self.path, journal.new_entry(self.settings.store, self.run, state=self.run["state"]))

    def close(self) -> None:
        if self.hasher is not None:
            try:
                self.hasher.close()
            except Exception:
                pass


def run_wrapped(argv: Sequence[str], options: RunOptions = RunOptions()) -> RunOutcome:
    """Run ``argv`` transparently and record it; never raises for a recording problem."""
    from cmfrun import proc

    if not argv:
        raise InputFileError("no command given: cmfrun [OPTIONS] -- COMMAND [ARGS...]")
    rec = _Recording(options, argv)
    stage_ok = False
    # `cmfrun -- dvc repro` is not an execution of its own: its stages are (their own
    # journals if wrapped, else the merged dvc.lock).
    wrapping_dvc = is_dvc_pipeline_command(argv)
    try:
        rec.prepare()
        if not wrapping_dvc:
            rec.start()
        stage_ok = True
    except Exception as exc:  # recording must never stop the user's command
        rec.fail("run not recorded", exc)
    child = proc.passthrough(argv, log_file=options.log_file)
    uuid = str(rec.run.get("uuid", ""))
    recorded = False
    dvc_merged = 0
    if stage_ok and not wrapping_dvc:
        try:
            rec.finish(child)
            rec.commit()
        except Exception as exc:
            rec.fail("run not recorded", exc)
    rec.close()
    sync = options.sync or options.strict or os.environ.get(ENV_SYNC, "") not in ("", "0")
    if stage_ok and rec.problem is None:
        store = rec.settings.store
        if sync or wrapping_dvc:
            try:
                journal.merge_now(store, wait=True, extra_dirs=rec.extra_dirs, warnings=rec.warnings)
                recorded = True
            except Exception as exc:
                where = f"run kept in journal {rec.path}" if rec.path else "stage journals kept"
                rec.fail(f"{where}, not in the store", exc)
        else:
            reason = _precheck(store)
            if reason:
                rec.problem = f"run kept in journal {rec.path}, not in the store: {reason}"
            else:
                try:
                    journal.spawn_merger(store, rec.settings.root, rec.extra_dirs)
                except OSError as exc:
                    rec.fail(f"run kept in journal {rec.path}", exc)
        if wrapping_dvc and rec.problem is None and not child.not_found:
            try:
                dvc_merged = _ingest_locks(rec.settings)
            except Exception as exc:
                rec.fail("dvc.lock not merged", exc)
    warnings = list(rec.warnings)
    if rec.problem:
        warnings.append(rec.problem)
    return RunOutcome(
        exit_status=child.exit_status,
        uuid=uuid,
        journal=str(rec.path or ""),
        recorded=recorded,
        not_found=child.not_found,
        warnings=tuple(warnings),
        record_error=rec.problem,
        dvc_merged=dvc_merged,
    )


#: The wrapper's options: name -> (RunOptions field, kind). ``cmfrun/cli/run.py`` declares the
#: same options for click (help, errors); ``tests/test_run.py`` checks the two parse alike.
OPTION_SPEC: Dict[str, Tuple[str, str]] = {
    "-f": ("mlmd", "one"), "--mlmd": ("mlmd", "one"),
    "-p": ("pipeline", "one"), "--pipeline": ("pipeline", "one"),
    "-s": ("stage", "one"), "--stage": ("stage", "one"),
    "-i": ("inputs", "many"), "--in": ("inputs", "many"),
    "-o": ("outputs", "many"), "--out": ("outputs", "many"),
    "-m": ("metrics", "many"), "--metrics": ("metrics", "many"),
    "--model": ("models", "many"),
    "--log": ("log_file", "one"),
    "--strict": ("strict", "flag"),
    "--sync": ("sync", "flag"),
}


def parse_fast(args: Sequence[str]) -> Optional[Tuple[RunOptions, List[str]]]:
    """Parse ``[OPTIONS] -- COMMAND...`` without click (~25 ms of imports on every run).

    Returns ``None`` for anything but the plain forms (``--help``, an unknown option, a
    missing value, no command): the click command then parses, explains or refuses.
    Multi-path options take every word up to the next option or ``--`` when ``--`` is given.
    """
    args = list(args)
    has_dashdash = "--" in args
    values: Dict[str, Any] = {}
    i = 0
    current: Optional[str] = None
    while i < len(args):
        word = args[i]
        if word == "--":
            command = args[i + 1 :]
            break
        if word.startswith("-") and len(word) > 1:
            name, eq, inline = word.partition("=") if word.startswith("--") else (word, "", "")
            if name not in OPTION_SPEC:
                return None
            field_name, kind = OPTION_SPEC[name]
            current = None
            if kind == "flag":
                if eq:
                    return None
                values[field_name] = True
                i += 1
                continue
            if eq:
                value = inline
                i += 1
            else:
                if i + 1 >= len(args) or args[i + 1] == "--":
                    return None
                value = args[i + 1]
                i += 2
            if kind == "many":
                values.setdefault(field_name, []).append(value)
                current = field_name
            else:
                values[field_name] = value
            continue
        if current is not None and has_dashdash:
            values[current].append(word)
            i += 1
            continue
        command = args[i:]  # without `--`: the first plain word starts the command
        break
    else:
        return None
    if not command:
        return None
    for key in ("inputs", "outputs", "metrics", "models"):
        if key in values:
            values[key] = tuple(values[key])
    return RunOptions(**values), command


def render(outcome: RunOutcome, program: str, strict: bool) -> Tuple[List[str], int]:
    """The stderr lines and exit status of a finished wrapper run (the CLIs print them)."""
    lines: List[str] = []
    if outcome.not_found:
        lines.append(f"cmfrun: {program}: command not found")
    for line in outcome.warnings:
        prefix = "cmfrun: error: " if strict and outcome.record_error == line else "cmfrun: warning: "
        lines.append(prefix + line)
    if strict and outcome.record_error and outcome.exit_status == 0:
        return lines, 3
    return lines, int(outcome.exit_status)


def _lock_files(root: Path) -> List[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and d not in ("node_modules", "__pycache__")]
        if "dvc.lock" in filenames:
            found.append(Path(dirpath) / "dvc.lock")
    return sorted(found)


def _ingest_locks(settings: Any) -> int:
    """After ``dvc repro``/``dvc exp run``: merge every dvc.lock of the project."""
    try:
        from cmfrun.ingest import ingest_locks  # type: ignore[attr-defined]
    except ImportError as exc:
        raise CmfrunError(f"ingest not available ({exc})") from None
    from cmfrun.store import connect

    locks = _lock_files(Path(settings.root))
    if not locks:
        return 0
    store = connect(settings.store, create=True)
    try:
        result = ingest_locks(store, locks, pipeline=settings.pipeline, root=Path(settings.root))
    finally:
        store.close()
    return int(getattr(result, "executions_created", 0)) + int(getattr(result, "executions_merged", 0))


__all__ = ["RunOptions", "RunOutcome", "run_wrapped", "is_dvc_pipeline_command", "parse_fast", "render", "OPTION_SPEC"]
