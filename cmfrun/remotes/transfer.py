"""Push and pull the cache objects of a set of artifacts, through DVC's transfer code.

:func:`push` sends exactly the objects the given artifacts reference (a
directory's ``.dir`` listing and every file in it) from the DVC cache to the
project's default DVC remote with ``dvc_data.hashfile.transfer.transfer``, the
function ``dvc push`` runs: objects already on the remote (by DVC's remote
index and existence checks) are not sent again. No ``.dvc`` files are needed.

:func:`pull` fetches the objects into the DVC cache the same way and writes each
artifact at its recorded path (or under another folder). Recorded paths are
untrusted (the store may come from elsewhere): absolute paths, ``..`` and
symlinks out of the target folder are refused before anything is written. Each
file is written to a temp file beside its target while its md5 is checked, then
renamed: a file appears only when it is complete and correct.

Errors from the remote (unreachable, wrong credentials, missing bucket, full
disk) become :class:`~cmfrun.remotes.RemoteError` naming the remote by name
and URL, with every configured secret removed from the message.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Dict, Iterator, List, Optional, Sequence, Set, Tuple

from cmfrun.errors import CmfrunError, UsageError
from cmfrun.remotes import PullConflictError, RemoteError, UnsafePathError
from cmfrun.remotes.cache import is_md5
from cmfrun.remotes.setup import SECRET_OPTIONS, _scrub_url

log = logging.getLogger(__name__)
_CHUNK = 1 << 20


@dataclass(frozen=True)
class ArtifactRef:
    """An artifact whose bytes move: recorded ``path`` (root-relative) and DVC ``md5``."""

    path: str
    md5: str
    name: str = ""
    type: str = ""


@dataclass(frozen=True)
class PushReport:
    """What :func:`push` did, per artifact: sent now, already on the remote, missing from
    the local cache (logged but gone; not fatal) and failed (the remote refused them)."""

    remote: str
    pushed: Tuple[ArtifactRef, ...] = ()
    already: Tuple[ArtifactRef, ...] = ()
    missing: Tuple[ArtifactRef, ...] = ()
    failed: Tuple[ArtifactRef, ...] = ()
    objects_sent: int = 0
    failure: str = ""  # the first transfer error (secrets removed), when some failed

    def __str__(self) -> str:
        return (
            f"{len(self.pushed)} pushed ({self.objects_sent} objects), {len(self.already)} already on the remote, "
            f"{len(self.missing)} missing from the local cache -> {self.remote}"
        )


@dataclass(frozen=True)
class PulledFile:
    """One file a pull wrote or left alone."""

    path: str
    md5: str


@dataclass(frozen=True)
class PullReport:
    """What :func:`pull` did: files written, files already there with the right content,
    artifacts neither in the local cache nor on the remote, and objects fetched."""

    remote: str
    target: str
    written: Tuple[PulledFile, ...] = ()
    unchanged: Tuple[PulledFile, ...] = ()
    missing: Tuple[ArtifactRef, ...] = ()
    objects_fetched: int = 0

    def __str__(self) -> str:
        return (
            f"{len(self.written)} file(s) written, {len(self.unchanged)} already up to date, "
            f"{len(self.missing)} artifact(s) missing ({self.objects_fetched} objects fetched from {self.remote}) into {self.target}"
        )


@dataclass(frozen=True)
class Location:
    """Where an object's bytes are: the local DVC cache, the default remote (``None``: not checked)."""

    in_cache: bool
    on_remote: Optional[bool] = None


@dataclass
class _Remote:
    repo: Any
    odb: Any
    name: str
    url: str
    secrets: List[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.name} ({self.url})"

    def error(self, what: str, exc: BaseException) -> RemoteError:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        for secret in self.secrets:
            if secret:
                text = text.replace(secret, "***")
        return RemoteError(f"remote {self.label}: {what} failed: {type(exc).__name__}: {text}")


class _Failures(logging.Handler):
    """Collects dvc-data's per-object transfer errors (it logs them instead of raising) so the
    first cause can be named in one line, and keeps their tracebacks off the terminal."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.first: Optional[BaseException] = None

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR and self.first is None and record.exc_info and record.exc_info[1] is not None:
            self.first = record.exc_info[1]
        log.debug("dvc-data: %s", record.getMessage())


@contextlib.contextmanager
def _quiet_dvc_data() -> Iterator[_Failures]:
    # DVC's own logging setup gives dvc_data a terminal handler: swap it out meanwhile.
    logger = logging.getLogger("dvc_data")
    handler = _Failures()
    saved = (logger.handlers[:], logger.propagate)
    logger.handlers = [handler]
    logger.propagate = False
    try:
        yield handler
    finally:
        logger.handlers, logger.propagate = saved


@functools.lru_cache(maxsize=None)
def _ssh_client_class() -> Any:
    """dvc-ssh's interactive client, minus the password prompts that make no sense here.

    When the configured password is refused, or when no password is configured and stdin is
    not a terminal, dvc-ssh's client asks for one with ``getpass`` (which, without a
    terminal, reads it from stdin and warns that it may be echoed). For ``cmf artifact`` a
    refused login is one error line naming the remote (exit 3): it never prompts then. With
    no password configured, on a terminal, it still asks, as ``dvc push`` does.
    """
    from dvc_ssh.client import InteractiveSSHClient

    class Client(InteractiveSSHClient):  # type: ignore[misc]
        def _may_ask(self) -> bool:
            return self._conn is not None and self._conn._options.password is None and sys.stdin.isatty()

        async def password_auth_requested(self) -> Optional[str]:
            return await super().password_auth_requested() if self._may_ask() else None  # type: ignore[no-any-return]

        async def kbdint_challenge_received(self, name: str, instructions: str, lang: str, prompts: Any) -> Any:
            return await super().kbdint_challenge_received(name, instructions, lang, prompts) if self._may_ask() else None

    return Client


def _no_password_prompts(odb: Any) -> None:
    """Give an SSH remote the client of :func:`_ssh_client_class` (before it first connects)."""
    if getattr(odb.fs, "protocol", "") == "ssh":
        odb.fs.fs_args["client_factory"] = _ssh_client_class()


@contextlib.contextmanager
def open_remote(root: Path, remote: Optional[str] = None) -> Iterator[_Remote]:
    """The DVC repository at ``root`` and its remote (default: ``core.remote``)."""
    from dvc.config import ConfigError
    from dvc.exceptions import NotDvcRepoError
    from dvc.repo import Repo

    try:
        repo = Repo(str(root))
    except NotDvcRepoError:
        raise UsageError(f"{root} is not a DVC repository: run `cmf init` first") from None
    try:
        name = remote or repo.config["core"].get("remote") or ""
        if not name:
            raise UsageError(f"{root} has no default DVC remote: run `cmf init local --path DIR` (or minioS3, amazonS3, sshremote, osdfremote)")
        conf = dict(repo.config["remote"].get(name) or {})
        if not conf:
            raise UsageError(f"DVC remote {name!r} is not configured in {root}")
        url = _scrub_url(str(conf.get("url", "")))
        secrets = [str(v) for k, v in conf.items() if k in SECRET_OPTIONS and v]
        secrets += [s.split(" ", 1)[1] for s in secrets if s.startswith("Bearer ")]
        handle = _Remote(repo, None, name, url, secrets)
        try:
            handle.odb = repo.cloud.get_remote_odb(name, "push")
            _no_password_prompts(handle.odb)
        except ConfigError as exc:
            raise UsageError(f"remote {handle.label}: {str(exc).splitlines()[0]}") from None
        except CmfrunError:
            raise
        except Exception as exc:  # e.g. a missing dvc-s3/dvc-ssh plugin, a bad URL
            raise handle.error("opening", exc) from None
        yield handle
    finally:
        repo.close()


def _ids(refs: Sequence[ArtifactRef]) -> Set[Any]:
    from dvc_data.hashfile.hash_info import HashInfo

    return {HashInfo("md5", r.md5) for r in refs}


def _expand(odb: Any, refs: Sequence[ArtifactRef]) -> Tuple[Set[Any], Dict[str, Optional[Set[str]]]]:
    """Every object id of ``refs`` (a directory's listing and its files, from ``odb``) and,
    per directory hash, its file ids (``None`` when the listing is not in ``odb``).

    dvc-data's transfer moves a directory's files only when they are listed too.
    """
    from dvc_data.hashfile.hash_info import HashInfo

    ids = _ids(refs)
    trees: Dict[str, Optional[Set[str]]] = {}
    for ref in refs:
        if ref.md5.endswith(".dir") and ref.md5 not in trees:
            entries = _entries(odb, ref.md5)
            trees[ref.md5] = entries
            ids |= {HashInfo("md5", e) for e in entries or ()}
    return ids, trees


def _entries(odb: Any, md5: str) -> Optional[Set[str]]:
    """The object ids of a directory's files (``None`` when its listing is not in ``odb``)."""
    from dvc_data.hashfile.hash_info import HashInfo
    from dvc_data.hashfile.transfer import find_tree_by_obj_id

    tree = find_tree_by_obj_id([odb], HashInfo("md5", md5))
    if tree is None:
        return None
    return {str(oid.value) for _, _, oid in tree}


def _check_refs(refs: Sequence[ArtifactRef]) -> None:
    bad = [r for r in refs if not is_md5(r.md5)]
    if bad:
        raise UsageError(f"artifact {bad[0].path or bad[0].name} has no DVC md5 ({bad[0].md5!r}): its bytes cannot move")


#: Objects at least this big are sent in a transfer of their own when the remote can send one
#: file as parallel parts (S3, Azure: the fsspec filesystem has ``max_concurrency``).
#: dvc-objects uses parallel parts only for a file alone in its batch, which ``dvc push`` gets
#: for a big tracked file by luck of its grouping; in one batch of every object it would go
#: up one part at a time. (s3fs sends files under 2 x 50 MiB in one request anyway.)
LARGE_OBJECT = 64 << 20


class _Phases:
    """One progress callback over several ``transfer`` calls: each call's ``set_size(n)``
    counts on from the objects the calls before it sent, so the bar never runs backwards."""

    def __init__(self, outer: Any) -> None:
        self.outer = outer
        self.before = 0
        self.size: Optional[int] = None
        self.value = 0

    def next_phase(self) -> None:
        self.before += self.value
        self.size, self.value = None, 0

    def set_size(self, size: int) -> None:
        self.size = size
        self.outer.set_size(self.before + size)

    def absolute_update(self, value: int) -> None:
        self.value = value
        self.outer.absolute_update(self.before + value)

    def relative_update(self, inc: int = 1) -> None:
        self.value += inc
        self.outer.relative_update(inc)

    def branched(self, path_1: Any, path_2: Any, **kwargs: Any) -> Any:
        return self.outer.branched(path_1, path_2, **kwargs)

    def wrap(self, iterable: Any) -> Iterator[Any]:
        for item in iterable:
            yield item
            self.relative_update()


def _push_batches(local: Any, odb: Any, ids: Set[Any]) -> List[Set[Any]]:
    """``ids`` as transfer batches: each object of :data:`LARGE_OBJECT` or more alone (only
    for remotes that send a file's parts in parallel), then all the others together."""
    if not hasattr(odb.fs.fs, "max_concurrency"):
        return [ids]
    large: Set[Any] = set()
    for oid in ids:
        try:
            if os.path.getsize(local.oid_to_path(oid.value)) >= LARGE_OBJECT:
                large.add(oid)
        except OSError:  # not in the local cache: the transfer reports it missing
            continue
    rest = ids - large
    return [{oid} for oid in sorted(large, key=lambda o: str(o.value))] + ([rest] if rest else [])


def push(root: Path, refs: Sequence[ArtifactRef], *, jobs: Optional[int] = None, callback: Any = None, remote: Optional[str] = None) -> PushReport:
    """Send the cache objects of ``refs`` to the remote; see the module docstring."""
    from dvc_data.hashfile.db import get_index
    from dvc_data.hashfile.transfer import transfer
    from fsspec.callbacks import DEFAULT_CALLBACK

    _check_refs(refs)
    with open_remote(root, remote) as rem:
        local = rem.repo.cache.local
        statuses: List[Any] = []
        ids, trees = _expand(local, refs)
        progress = _Phases(callback or DEFAULT_CALLBACK)
        transferred: Set[Any] = set()
        not_sent: Set[Any] = set()
        try:
            with _quiet_dvc_data() as failures, contextlib.closing(get_index(rem.odb)) as index:
                for batch in _push_batches(local, rem.odb, ids):
                    result = transfer(
                        local,
                        rem.odb,
                        batch,
                        jobs=jobs,
                        dest_index=index,
                        cache_odb=local,
                        validate_status=statuses.append,
                        callback=progress,
                    )
                    transferred |= result.transferred
                    not_sent |= result.failed
                    progress.next_phase()
        except CmfrunError:
            raise
        except Exception as exc:
            raise rem.error("push", exc) from None
        sent = {str(h.value) for h in transferred}
        failed = {str(h.value) for h in not_sent}
        missing = {str(h.value) for status in statuses for h in status.missing}
        out: Dict[str, List[ArtifactRef]] = {"pushed": [], "already": [], "missing": [], "failed": []}
        for ref in refs:
            mine = {ref.md5} | (trees.get(ref.md5) or set())
            if mine & failed:
                out["failed"].append(ref)
            elif mine & missing:
                out["missing"].append(ref)
            elif mine & sent:
                out["pushed"].append(ref)
            else:
                out["already"].append(ref)
        cause = ""
        if failures.first is not None:
            cause = rem.error("push", failures.first).args[0].split(": push failed: ", 1)[-1]
        return PushReport(
            rem.label,
            tuple(out["pushed"]),
            tuple(out["already"]),
            tuple(out["missing"]),
            tuple(out["failed"]),
            objects_sent=len(sent),
            failure=cause,
        )


def locate(root: Path, md5s: Sequence[str], *, remote: bool = False) -> Dict[str, Location]:
    """Where the bytes of each hash are: the local cache, and (``remote=True``) the remote.

    A directory counts as present when its listing and every file of it are.
    """
    from cmfrun.hashing import find_dvc_root
    from cmfrun.remotes.cache import cache_dir, in_cache

    dvc_root = find_dvc_root(root)
    wanted = [m for m in dict.fromkeys(md5s) if is_md5(m)]
    if dvc_root is None:
        return {m: Location(False) for m in wanted}
    cache = cache_dir(dvc_root)
    local: Dict[str, bool] = {}
    for m in wanted:
        present = in_cache(cache, m)
        if present and m.endswith(".dir"):
            from dvc_data.hashfile.db.local import LocalHashFileDB
            from dvc_objects.fs import localfs  # type: ignore[attr-defined]

            entries = _entries(LocalHashFileDB(localfs, str(cache / "files" / "md5")), m) or set()  # type: ignore[no-untyped-call]
            present = all(in_cache(cache, e) for e in entries)
        local[m] = present
    if not remote:
        return {m: Location(local[m]) for m in wanted}
    from dvc_data.hashfile.db import get_index
    from dvc_data.hashfile.status import compare_status

    refs = [ArtifactRef("", m) for m in wanted]
    with open_remote(dvc_root) as rem:
        ids, trees = _expand(rem.repo.cache.local, refs)
        try:
            status = compare_status(rem.repo.cache.local, rem.odb, ids, check_deleted=True, dest_index=get_index(rem.odb), cache_odb=rem.repo.cache.local)
        except CmfrunError:
            raise
        except Exception as exc:
            raise rem.error("status", exc) from None
        there = {str(h.value) for h in status.ok | status.deleted}
        elsewhere = {str(h.value) for h in status.new | status.missing}
        out: Dict[str, Location] = {}
        for m in wanted:
            mine = {m} | (trees.get(m) or set())
            out[m] = Location(local[m], bool(mine & there) and not (mine & elsewhere))
        return out


# -- pull ------------------------------------------------------------------------------------
def safe_target(base: Path, rel: str) -> Path:
    """``base/rel`` if that stays inside ``base``; else :class:`UnsafePathError`.

    Refused: empty, absolute (``/x``, ``~x``, ``C:\\x``), any ``..`` step, a NUL, and
    a path that a symlink (at any level, the file itself included) leads out of ``base``.
    """
    text = str(rel)
    parts = PurePosixPath(text.replace("\\", "/")).parts
    if (
        not text
        or "\x00" in text
        or text.startswith(("/", "\\", "~"))
        or (len(text) > 1 and text[1] == ":")
        or any(p == ".." for p in parts)
    ):
        raise UnsafePathError(f"refusing to write {text!r}: absolute or outside the target folder")
    target = base.joinpath(*parts)
    real_base = os.path.realpath(base)
    real = os.path.realpath(target)
    if real != real_base and not real.startswith(real_base.rstrip(os.sep) + os.sep):
        raise UnsafePathError(f"refusing to write {text!r}: a symlink leads outside {base}")
    return target


def _md5_of(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _write_verified(src: Path, target: Path, md5: str) -> None:
    """Copy ``src`` to ``target`` through a temp file beside it, checking the md5 on the way."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.cmfrun-{os.getpid()}.tmp")
    digest = hashlib.md5()
    try:
        with open(src, "rb") as fin, open(tmp, "wb") as fout:
            for chunk in iter(lambda: fin.read(_CHUNK), b""):
                digest.update(chunk)
                fout.write(chunk)
        if digest.hexdigest() != md5:
            raise RemoteError(f"{target}: the fetched bytes have md5 {digest.hexdigest()}, not {md5}: not written")
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _files_of(ref: ArtifactRef, local: Any, base: Path) -> Optional[List[Tuple[str, str, Path]]]:
    """(shown path, md5, target) of every file of ``ref``; ``None`` if its listing is not cached."""
    from dvc_data.hashfile.hash_info import HashInfo
    from dvc_data.hashfile.transfer import find_tree_by_obj_id

    top = safe_target(base, ref.path)
    if not ref.md5.endswith(".dir"):
        return [(ref.path, ref.md5, top)]
    tree = find_tree_by_obj_id([local], HashInfo("md5", ref.md5))
    if tree is None:
        return None
    out = []
    for key, _, oid in tree:
        rel = "/".join((ref.path, *key))
        out.append((rel, str(oid.value), safe_target(base, rel)))
    return out


def pull(
    root: Path,
    refs: Sequence[ArtifactRef],
    *,
    out_dir: Optional[Path] = None,
    force: bool = False,
    jobs: Optional[int] = None,
    callback: Any = None,
    remote: Optional[str] = None,
) -> PullReport:
    """Fetch the objects of ``refs`` and write each artifact under ``out_dir`` (default ``root``)."""
    from dvc_data.hashfile.db import get_index
    from dvc_data.hashfile.transfer import transfer
    from fsspec.callbacks import DEFAULT_CALLBACK

    _check_refs(refs)
    base = Path(os.path.abspath(out_dir if out_dir is not None else root))
    for ref in refs:  # every recorded path is checked before anything is fetched or written
        safe_target(base, ref.path)
    with open_remote(root, remote) as rem:
        local = rem.repo.cache.local
        dirs = [r for r in refs if r.md5.endswith(".dir")]
        fetched = 0
        try:
            # First the directory listings (to know their files), then every object.
            for phase in ([dirs] if dirs else []) + [None]:
                ids = _ids(phase) if phase is not None else _expand(local, refs)[0]
                with _quiet_dvc_data() as failures:
                    result = transfer(
                        rem.odb,
                        local,
                        ids,
                        jobs=jobs,
                        src_index=get_index(rem.odb),
                        cache_odb=local,
                        verify=rem.odb.verify,
                        callback=(callback or DEFAULT_CALLBACK) if phase is None else DEFAULT_CALLBACK,
                    )
                fetched += len(result.transferred)
                if result.failed:
                    break
        except CmfrunError:
            raise
        except Exception as exc:
            raise rem.error("fetch", exc) from None
        if result.failed:
            if failures.first is not None:
                raise rem.error(f"fetching {len(result.failed)} object(s)", failures.first)
            raise RemoteError(f"remote {rem.label}: {len(result.failed)} object(s) could not be fetched")
        plan: List[Tuple[str, str, Path]] = []
        missing: List[ArtifactRef] = []
        for ref in dict.fromkeys(refs):
            files = _files_of(ref, local, base)
            if files is None or any(not local.exists(md5) for _, md5, _ in files):
                missing.append(ref)
                continue
            plan.extend(files)
        # Decide every file before writing any: a conflict refuses the whole pull.
        write: List[Tuple[str, str, Path]] = []
        unchanged: List[PulledFile] = []
        conflicts: List[str] = []
        seen: Set[Path] = set()
        for shown, md5, target in plan:
            if target in seen:
                continue
            seen.add(target)
            if target.is_dir() and not target.is_symlink():
                conflicts.append(f"{shown} (a folder)")
            elif target.exists() or target.is_symlink():
                if target.is_file() and not target.is_symlink() and _md5_of(target) == md5:
                    unchanged.append(PulledFile(shown, md5))
                elif force and not target.is_dir():
                    write.append((shown, md5, target))
                else:
                    conflicts.append(shown)
            else:
                write.append((shown, md5, target))
        if conflicts:
            more = f" and {len(conflicts) - 1} more" if len(conflicts) > 1 else ""
            raise PullConflictError(f"{conflicts[0]}{more} exist(s) with other content: nothing written (--force replaces)")
        written: List[PulledFile] = []
        for shown, md5, target in write:
            try:
                _write_verified(Path(local.oid_to_path(md5)), target, md5)
            except RemoteError as exc:
                raise RemoteError(f"remote {rem.label}: {exc}") from None
            written.append(PulledFile(shown, md5))
        return PullReport(
            rem.label,
            str(base),
            tuple(written),
            tuple(unchanged),
            tuple(missing),
            objects_fetched=fetched,
        )


__all__ = [
    "ArtifactRef",
    "PushReport",
    "PulledFile",
    "PullReport",
    "Location",
    "open_remote",
    "push",
    "pull",
    "locate",
    "safe_target",
]
