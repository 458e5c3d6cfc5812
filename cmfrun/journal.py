"""Per-run journal files, merged into the store by whoever can take its lock.

Many wrapped commands may finish at once (``make -j8``, ``dvc exp run --jobs``,
a Slurm array) against one SQLite store. Instead of queueing on the store,
each ``cmfrun --`` run writes its record atomically (temp file +
``os.replace``) to its own journal file::

    <store folder>/.cmfrun-journal/<uuid>.json     (SQLite stores)
    <project root>/.cmfrun-journal/<uuid>.json     (server stores, or when the
                                                    store folder is read-only)

and then merges pending journals when it can take the store's write lock
*without waiting*. Whoever holds the lock merges every finished journal,
rescans until none is left, and rescans once more after releasing it; since
a journal is always written before its writer tries the lock, no journal is
stranded. Any later command that opens the store (``cmf ...`` through
:func:`cmfrun.commands.open_store`) merges what is left.

A journal is written twice: ``RUNNING`` (with the wrapper's pid) before the
child starts, final after it ends. A RUNNING journal whose process is alive
is left alone; one whose process is gone (the wrapper was killed) is merged
as FAILED. A journal being merged is first renamed to ``<uuid>.json.claimed-<pid>``
so two mergers (server stores have no file lock) never write it twice; the
execution name is the run's uuid, so a retry after a crash is idempotent.

This module is imported on the wrapper's hot path: it must not import the
store (ml_metadata) at module level.

Example::

    from cmfrun.store import connect
    merged = merge_pending(connect("mlmd"))
"""
from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Optional, Tuple, Union
from urllib.parse import unquote, urlparse

if TYPE_CHECKING:  # pragma: no cover
    from cmfrun.recorder import RunRecord
    from cmfrun.store import Store, StoreLocation

log = logging.getLogger(__name__)

JOURNAL_DIR = ".cmfrun-journal"
JOURNAL_VERSION = 1
SUFFIX = ".json"
CLAIM = ".claimed-"
BAD = ".bad"
#: How long ``merge_pending(wait=True)`` waits for journals another live merger has claimed.
CLAIM_WAIT_S = 60.0


def _hostname() -> str:
    return os.uname().nodename  # socket's import costs the hot path ~4 ms for the same answer


# -- locations ------------------------------------------------------------------------------
def is_server_uri(store: str) -> bool:
    """Whether ``store`` names a server store (postgresql://, mysql://)."""
    return "://" in store and urlparse(store).scheme.lower() not in ("sqlite", "file")


def sqlite_path(store: str) -> Path:
    """The file of a SQLite store given as a path or ``sqlite://`` URI."""
    if "://" in store:
        return Path(unquote(urlparse(store).path)).absolute()
    return Path(store).expanduser().absolute()


def journal_dir(store: str, root: Path) -> Path:
    """Where runs against ``store`` (from project ``root``) put their journals."""
    if is_server_uri(store):
        return root / JOURNAL_DIR
    return sqlite_path(store).parent / JOURNAL_DIR


def store_key(store: str) -> str:
    """A normal form of a store location used to match journals to a store."""
    if not is_server_uri(store):
        return "sqlite:" + str(sqlite_path(store))
    p = urlparse(store)
    scheme = {"postgres": "postgresql", "mariadb": "mysql"}.get(p.scheme.lower(), p.scheme.lower())
    port = p.port or (5432 if scheme == "postgresql" else 3306)
    return f"{scheme}://{p.hostname}:{port}/{p.path.lstrip('/')}"


def waiting_for(store: str) -> bool:
    """Whether journals of runs against the SQLite ``store`` wait beside it. The file
    itself may not exist yet (the first run's merger has not run, or could not), and a
    reader should then create and fill it rather than report that nothing was recorded."""
    if is_server_uri(store):
        return False
    jdir = journal_dir(store, Path("."))
    key = store_key(store)
    try:
        names = os.listdir(jdir)
    except OSError:
        return False
    for name in names:
        if name.endswith(SUFFIX) and not name.startswith("."):
            entry = _load(jdir / name)
            if entry is not None and _mine(entry, key):
                return True
    return False


def _location_key(location: "StoreLocation") -> str:
    if location.backend == "sqlite":
        return "sqlite:" + str(Path(str(location.path)).absolute())
    return f"{location.backend}://{location.host}:{location.port}/{location.database}"


# -- writing --------------------------------------------------------------------------------
def write(path: Path, data: Dict[str, Any], *, durable: bool = True) -> None:
    """Write ``data`` to ``path`` atomically (a reader sees the old or the new file);
    ``durable`` also fsyncs it (the final record; a RUNNING marker need not survive a crash)."""
    if not path.parent.is_dir():
        path.parent.mkdir(parents=True, exist_ok=True)
        # Journals are machine-local state: keep them out of `git status`.
        (path.parent / ".gitignore").write_text("*\n")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(data, fh, default=str)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def new_entry(store: str, run: Dict[str, Any], *, state: str) -> Dict[str, Any]:
    """A journal document for ``run`` (RunRecord fields, FileRefs as dicts)."""
    return {
        "version": JOURNAL_VERSION,
        "store": store,
        "store_key": store_key(store),
        "host": _hostname(),
        "pid": os.getpid(),
        "state": state,
        "run": run,
    }


# -- reading and merging --------------------------------------------------------------------
def to_run_record(entry: Dict[str, Any]) -> "RunRecord":
    """Turn a journal document back into a :class:`~cmfrun.recorder.RunRecord`.

    Wide ints (epoch ms, sizes over 2 GiB) need no care here: the store writes them as
    doubles where a backend's int column is 32-bit."""
    from cmfrun.recorder import FileRef, RunRecord

    run = dict(entry["run"])
    run["inputs"] = tuple(_ref(FileRef, r) for r in run.get("inputs", ()))
    run["outputs"] = tuple(_ref(FileRef, r) for r in run.get("outputs", ()))
    if entry.get("state") == "RUNNING":
        # The wrapper died before the child ended (or before it could say how).
        run["state"] = "FAILED"
        run.setdefault("custom", {})
        run["custom"] = {**run["custom"], "cmfrun_note": "wrapper ended before the command finished"}
    known = set(RunRecord.__dataclass_fields__)
    return RunRecord(**{k: v for k, v in run.items() if k in known})


def _ref(cls: Any, data: Dict[str, Any]) -> Any:
    known = set(cls.__dataclass_fields__)
    return cls(**{k: v for k, v in data.items() if k in known})


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _dirs_for(store: "Store", extra: Optional[List[Path]] = None) -> List[Path]:
    dirs: List[Path] = []
    if store.location.backend == "sqlite" and store.location.path is not None:
        dirs.append(Path(store.location.path).absolute().parent / JOURNAL_DIR)
    try:
        from cmfrun.config import find_root

        dirs.append(find_root(Path.cwd()) / JOURNAL_DIR)
    except OSError:
        pass
    for d in extra or []:
        dirs.append(Path(d))
    out: List[Path] = []
    for d in dirs:
        if d not in out:
            out.append(d)
    return out


def _load(path: Path) -> Optional[Dict[str, Any]]:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("journal %s unreadable (%s): moved aside as %s%s", path, exc, path.name, BAD)
        try:
            os.replace(path, path.with_name(path.name + BAD))
        except OSError:
            pass
        return None
    return data if isinstance(data, dict) else None


def _mine(entry: Dict[str, Any], key: str) -> bool:
    return entry.get("store_key") == key or store_key(str(entry.get("store", ""))) == key


def _finished(entry: Dict[str, Any]) -> bool:
    if entry.get("state") != "RUNNING":
        return True
    if entry.get("host") != _hostname():
        return False  # another machine's run: only that machine can tell if it is alive
    return not _pid_alive(int(entry.get("pid", 0) or 0))


def _claim_pid(name: str) -> Optional[int]:
    """The merger pid in a claimed journal's name (``<uuid>.json.claimed-<pid>``), else ``None``."""
    if CLAIM not in name or name.startswith("."):
        return None
    try:
        return int(name.rsplit(CLAIM, 1)[1])
    except ValueError:
        return None


def pending(store: "Store", extra_dirs: Optional[List[Path]] = None) -> List[Path]:
    """Finished journals waiting for ``store`` (oldest first)."""
    key = _location_key(store.location)
    found: List[Tuple[float, Path]] = []
    for d in _dirs_for(store, extra_dirs):
        try:
            names = os.listdir(d)
        except OSError:
            continue
        for name in names:
            path = d / name
            if name.endswith(SUFFIX) and not name.startswith("."):
                entry = _load(path)
                if entry is None or not _mine(entry, key) or not _finished(entry):
                    continue
            elif _claim_pid(name) is not None:
                if _pid_alive(int(_claim_pid(name) or 0)):
                    continue  # its merger is at work; a dead merger's claim is taken over
                entry = _load(path)
                if entry is None or not _mine(entry, key):
                    continue
            else:
                continue
            try:
                found.append((path.stat().st_mtime, path))
            except FileNotFoundError:
                continue
    return [p for _, p in sorted(found)]


def _claimed_by_others(store: "Store", extra_dirs: Optional[List[Path]]) -> List[Path]:
    out: List[Path] = []
    for d in _dirs_for(store, extra_dirs):
        try:
            names = os.listdir(d)
        except OSError:
            continue
        for name in names:
            pid = _claim_pid(name)
            if pid is not None and pid != os.getpid() and _pid_alive(pid):
                out.append(d / name)
    return out


def merge_file(
    store: "Store", path: Path, merged: Optional[List[Tuple[str, str]]] = None, entries: Optional[List[Dict[str, Any]]] = None
) -> bool:
    """Claim, record and delete one journal; ``False`` if another merger took it first.
    ``merged`` collects the recorded run's (execution type, name); ``entries`` the journal
    documents, for work done after the store's lock is released."""
    from cmfrun.recorder import record_run

    base = path.name.split(CLAIM, 1)[0]
    claimed = path.with_name(f"{base}{CLAIM}{os.getpid()}")
    try:
        os.replace(path, claimed)
    except FileNotFoundError:
        return False
    entry = _load(claimed)
    if entry is None:
        return False
    try:
        record_run(store, to_run_record(entry))
    except BaseException:
        # Put it back so the next merge retries: nothing recorded is lost.
        try:
            os.replace(claimed, path.with_name(base))
        except OSError:
            pass
        raise
    os.unlink(claimed)
    if merged is not None:
        run = entry.get("run", {})
        merged.append((str(run.get("execution_type") or run.get("stage", "")), str(run.get("execution_name", ""))))
    if entries is not None:
        entries.append(entry)
    return True


def _cache_bytes(entry: Dict[str, Any]) -> None:
    """Put the run's recorded files into the DVC cache (if in a DVC repository), so
    ``cmf artifact push`` can send them; done here, in the merger, off the wrapper's
    hot path. A failure is logged, never raised: the record is already safe."""
    run = entry.get("run")
    if not isinstance(run, dict) or entry.get("state") == "RUNNING":
        return
    try:
        from cmfrun.remotes.cache import cache_journal_run

        cache_journal_run(run)
    except Exception as exc:
        log.warning("recorded files not cached for push: %s", exc)


def merge_pending(
    store: "Store",
    *,
    wait: bool = True,
    extra_dirs: Optional[List[Path]] = None,
    merged: Optional[List[Tuple[str, str]]] = None,
) -> int:
    """Merge every finished run journal waiting for ``store``; returns how many were merged.

    With ``wait=False`` it returns 0 at once when another process holds the
    store's write lock (that process merges them). Read-only stores merge nothing.
    """
    if store.read_only:
        return 0
    total = 0
    deadline = time.monotonic() + CLAIM_WAIT_S
    while True:
        todo = pending(store, extra_dirs)
        if not todo:
            if wait and _claimed_by_others(store, extra_dirs) and time.monotonic() < deadline:
                time.sleep(0.05)
                continue
            return total
        entries: List[Dict[str, Any]] = []
        with store.write_lock(blocking=wait) as held:
            if not held:
                return total
            while todo:
                for path in todo:
                    if merge_file(store, path, merged, entries):
                        total += 1
                todo = pending(store, extra_dirs)
        for entry in entries:  # outside the lock: copying bytes must not hold up other writers
            _cache_bytes(entry)
        # Released: loop to rescan, catching journals whose writers found the lock taken.


# -- background merge -------------------------------------------------------------------------
MERGER_LOCK = "merger.lock"
#: How long an idle background merger waits for more journals before exiting (one
#: ml_metadata import then serves a whole `dvc repro` or `make -j`).
MERGER_LINGER_S = 2.0


def _try_flock(path: Path) -> Optional[Any]:
    """An open file holding an exclusive flock on ``path``, or ``None`` if someone else holds it."""
    import fcntl

    try:
        fh = open(path, "a+b")
    except OSError:
        return None
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.close()
        return None
    return fh


def merger_running(jdir: Path) -> bool:
    """Whether a background merger is alive for ``jdir`` (it holds ``merger.lock``)."""
    fh = _try_flock(jdir / MERGER_LOCK)
    if fh is None:
        return (jdir / MERGER_LOCK).exists()
    fh.close()
    return False


def spawn_merger(store: str, root: Path, extra_dirs: Optional[List[Path]] = None) -> bool:
    """Start the merger (:func:`main`) detached (own session, no terminal) to merge
    pending journals without making the wrapped command wait for ml_metadata.

    Does nothing (returns ``False``) when a merger is already alive: it rescans after
    it stops holding its lock, and this run's journal was written before the check.
    """
    import subprocess

    jdir = journal_dir(store, root)
    if merger_running(jdir):
        return False
    # Not `-m`: that puts the cwd first on sys.path, and a project's copy.py or json.py
    # would shadow the standard library in the merger.
    code = "import sys; sys.path.pop(0); from cmfrun.journal import main; sys.exit(main(sys.argv[1:]))"
    argv = [sys.executable, "-c", code, "--store", store, "--root", str(root)]
    for d in extra_dirs or []:
        argv += ["--dir", str(d)]
    try:
        err: Any = open(jdir / "merge.log", "ab")
    except OSError:
        err = subprocess.DEVNULL
    try:
        subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
            close_fds=True,
            cwd=str(root),
        )
    finally:
        if err is not subprocess.DEVNULL:
            err.close()
    return True


def merge_now(
    store: str, *, wait: bool, extra_dirs: Optional[List[Path]] = None, warnings: Optional[List[str]] = None
) -> int:
    """Open ``store`` (creating it if needed) and merge its pending journals. With
    ``CMFRUN_OPENLINEAGE_URL`` set, the merged runs are sent there too; a failure to send
    is appended to ``warnings`` (never raised)."""
    from cmfrun.store import connect

    st = connect(store, create=True)
    try:
        runs: List[Tuple[str, str]] = []
        merged = merge_pending(st, wait=wait, extra_dirs=extra_dirs, merged=runs)
        problem = _send_openlineage(st, runs)
        if problem and warnings is not None:
            warnings.append(problem)
        problem = _send_graph(st, runs, None)
        if problem and warnings is not None:
            warnings.append(problem)
        return merged
    finally:
        st.close()


def _background(store: str, root: Path, extra_dirs: List[Path], linger: float) -> int:
    """The merger loop: hold ``merger.lock``, merge until idle for ``linger`` s, release,
    rescan (a writer that saw the lock held relies on this), repeat if needed."""
    from cmfrun.store import connect

    jdir = journal_dir(store, root)
    st = None
    total = 0
    lineage_ok = True  # after one failed OpenLineage send: one warning, no more tries
    graph_ok = True  # the same for the graph database
    try:
        os.nice(10)  # bookkeeping: leave the CPU to the pipeline that is still running
    except OSError:
        pass
    try:
        while True:
            fh = _try_flock(jdir / MERGER_LOCK)
            if fh is None:
                return total  # another merger is alive: it will rescan
            try:
                if st is None:
                    st = connect(store, create=True)
                idle_until = time.monotonic() + linger
                while True:
                    runs: List[Tuple[str, str]] = []
                    merged = merge_pending(st, wait=True, extra_dirs=extra_dirs, merged=runs)
                    total += merged
                    if lineage_ok:
                        problem = _send_openlineage(st, runs)
                        if problem:
                            # The detached merger's stderr is <journal dir>/merge.log.
                            sys.stderr.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} cmfrun: warning: {problem}\n")
                            lineage_ok = False
                    if graph_ok:
                        problem = _send_graph(st, runs, root)
                        if problem:
                            sys.stderr.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} cmfrun: warning: {problem}\n")
                            graph_ok = False
                    if merged:
                        idle_until = time.monotonic() + linger
                    elif time.monotonic() >= idle_until:
                        break
                    time.sleep(0.1)
            finally:
                fh.close()
            if not pending(st, extra_dirs):
                return total
    finally:
        if st is not None:
            st.close()


#: Set to an OpenLineage endpoint, the background merger sends each merged run there.
ENV_OPENLINEAGE_URL = "CMFRUN_OPENLINEAGE_URL"


def _send_openlineage(store: "Store", runs: List[Tuple[str, str]]) -> Optional[str]:
    """Live OpenLineage emission of just-merged runs, by whoever merged them (the
    background merger, or a ``--sync`` run after its command ended: never before or
    during the command). Returns the one warning for a failure (the runs are in the
    store; `cmf openlineage export --since` sends them later), else ``None``."""
    url = os.environ.get(ENV_OPENLINEAGE_URL, "").strip()
    runs = [r for r in runs if r[1]]
    if not url or not runs:
        return None
    try:
        # The merger is an entry point of its own (a detached process): it may reach up to
        # the integration, lazily, and only when the variable asks for it.
        from cmfrun.integrations import openlineage

        openlineage.emit_live(store, runs, url, openlineage.api_key_from_env())
        return None
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return (
            f"{len(runs)} run(s) not sent to OpenLineage: {first} "
            "(send them later: cmf openlineage export -p PIPELINE --since TIME --url URL)"
        )


def _send_graph(store: "Store", runs: List[Tuple[str, str]], root: Optional[Path]) -> Optional[str]:
    """Mirror just-merged runs into the graph database when ``CMFRUN_GRAPH`` (or ``graph``
    in ``.cmfconfig``) asks for it; returns the one warning for a failure, else ``None``."""
    if not runs:
        return None
    # As for OpenLineage: the merger is an entry point of its own and may reach up to the
    # integration, lazily (graph clients load only when a graph is configured).
    from cmfrun.integrations import graph

    return graph.mirror_runs(store, runs, root=root)


def main(argv: Optional[List[str]] = None) -> int:
    """The background merger's entry (:func:`spawn_merger` runs it): ``--store URI [--root DIR]``."""
    import argparse

    parser = argparse.ArgumentParser(prog="cmfrun-merge", description=main.__doc__)
    parser.add_argument("--store", required=True)
    parser.add_argument("--root", default=".")
    parser.add_argument("--dir", action="append", default=[])
    parser.add_argument("--linger", type=float, default=MERGER_LINGER_S)
    args = parser.parse_args(argv)
    try:
        _background(args.store, Path(args.root), [Path(d) for d in args.dir], args.linger)
    except Exception as exc:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
        # The detached merger's stderr is <journal dir>/merge.log.
        sys.stderr.write(f"{stamp} cmfrun: journals not merged into {args.store}: {exc}\n")
        return 3
    return 0


__all__ = [
    "waiting_for",
    "JOURNAL_DIR",
    "journal_dir",
    "store_key",
    "write",
    "new_entry",
    "to_run_record",
    "pending",
    "merge_file",
    "merge_pending",
    "spawn_merger",
    "merger_running",
    "merge_now",
    "main",
]
