"""Content identity the DVC way, computed by DVC's own code (dvc-data).

A file's identity is the md5 DVC 3 records for it; a directory's is DVC's
``.dir`` hash (md5 of its sorted listing). A :class:`Hasher` keeps a hash
cache so an unchanged file is not read twice: inside a DVC repository it is
DVC's own state database (the one ``dvc status`` uses), elsewhere a private
one under ``~/.cache/cmfrun``.

Example::

    hasher = Hasher.for_path("data/train.csv")
    h = hasher.hash("data/train.csv")
    print(h.md5, h.size)
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

from cmfrun.errors import InputFileError

PathLike = Union[str, Path]


@dataclass(frozen=True)
class ContentHash:
    """DVC's identity of a file or directory."""

    md5: str
    size: Optional[int]
    nfiles: Optional[int] = None

    @property
    def isdir(self) -> bool:
        return self.md5.endswith(".dir")


def find_dvc_root(start: PathLike) -> Optional[Path]:
    """The nearest folder at or above ``start`` holding a ``.dvc`` folder."""
    p = Path(start).absolute()
    if not p.is_dir():
        p = p.parent
    for candidate in (p, *p.parents):
        if (candidate / ".dvc").is_dir():
            return candidate
    return None


def _private_state_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "cmfrun" / "state"


class Hasher:
    """Hashes paths with dvc-data, through a hash cache; optionally adds them to DVC's cache.

    Use :meth:`for_path` to get one wired to the right DVC repository (or none).
    """

    def __init__(self, dvc_root: Optional[PathLike] = None, *, state_dir: Optional[PathLike] = None):
        from dvc_data.hashfile.state import State, StateNoop
        from dvc_objects.fs import localfs  # type: ignore[attr-defined]

        self._fs = localfs
        self.dvc_root = Path(dvc_root) if dvc_root else None
        self._repo: Any = None
        self._state: Any
        if self.dvc_root is not None and state_dir is None:
            self._state = self._dvc_repo().state
        elif state_dir is not None:
            os.makedirs(state_dir, exist_ok=True)
            self._state = State(str(self.dvc_root or "/"), str(state_dir))
        else:
            self._state = StateNoop()

    @classmethod
    def for_path(cls, path: PathLike) -> "Hasher":
        """A hasher for files under ``path``: DVC's state and cache in a DVC repository,
        a private hash cache elsewhere."""
        root = find_dvc_root(path)
        if root is not None:
            return cls(root)
        try:
            return cls(state_dir=_private_state_dir())
        except OSError:
            return cls()

    def _dvc_repo(self) -> Any:
        if self._repo is None:
            from dvc.repo import Repo

            self._repo = Repo(str(self.dvc_root))
        return self._repo

    def hash(self, path: PathLike) -> ContentHash:
        """DVC's md5 of a file, or ``.dir`` md5 of a directory (DVC ignore rules apply in a repo)."""
        from dvc_data.hashfile.build import build
        from dvc_data.hashfile.db.local import LocalHashFileDB
        from dvc_data.hashfile.hash import hash_file

        p = os.path.abspath(os.fspath(path))
        if not os.path.exists(p):
            raise InputFileError(f"cannot hash {path}: no such file or directory")
        try:
            if os.path.isdir(p):
                odb = self._odb() or LocalHashFileDB(  # type: ignore[no-untyped-call]
                    self._fs, os.path.join(_private_state_dir(), "staging")
                )
                ignore = self._repo.dvcignore if self._repo is not None else None
                _, meta, obj = build(odb, p, self._fs, "md5", dry_run=True, ignore=ignore, state=self._state)
                return ContentHash(str(obj.hash_info.value), meta.size, meta.nfiles)
            meta, info = hash_file(p, self._fs, "md5", state=self._state)
            return ContentHash(str(info.value), meta.size)
        except PermissionError:
            raise InputFileError(f"cannot hash {path}: permission denied") from None

    def _odb(self) -> Any:
        if self.dvc_root is None:
            return None
        return self._dvc_repo().cache.local

    def save_to_dvc_cache(self, path: PathLike) -> Optional[ContentHash]:
        """Put the bytes of ``path`` into the DVC cache (honouring ``cache.type``).

        Returns the hash, or ``None`` outside a DVC repository. No ``.dvc``
        file is written and git is not touched: ``dvc push`` of the hash (or
        ``cmf artifact push``) can send the object to a remote later.
        """
        if self.dvc_root is None:
            return None
        from dvc_data.hashfile.build import build
        from dvc_data.hashfile.transfer import transfer

        p = os.path.abspath(os.fspath(path))
        odb = self._odb()
        repo = self._dvc_repo()
        staging, meta, obj = build(odb, p, self._fs, "md5", ignore=repo.dvcignore, state=self._state)
        transfer(staging, odb, {obj.hash_info}, hardlink=False, shallow=False)
        return ContentHash(str(obj.hash_info.value), meta.size, meta.nfiles)

    def remote_root(self) -> str:
        """The default DVC remote's URL (``""`` when there is none or outside DVC)."""
        if self.dvc_root is None:
            return ""
        try:
            config = self._dvc_repo().config
            name = config["core"].get("remote")
            if not name:
                return ""
            return str(config["remote"][name]["url"])
        except Exception:  # a broken DVC config must not stop recording
            return ""

    def close(self) -> None:
        """Release DVC's state database."""
        if self._repo is not None:
            self._repo.close()
            self._repo = None
        elif hasattr(self._state, "close"):
            try:
                self._state.close()
            except Exception:
                pass


def plain_md5(path: PathLike) -> str:
    """Plain md5 of a file's bytes (CMF hashes label files this way)."""
    h = hashlib.md5()
    try:
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    except FileNotFoundError:
        raise InputFileError(f"cannot hash {path}: no such file") from None
    return h.hexdigest()


__all__ = ["ContentHash", "Hasher", "find_dvc_root", "plain_md5"]
