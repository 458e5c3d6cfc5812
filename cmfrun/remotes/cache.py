"""Put recorded files into DVC's local cache, in DVC's own layout.

A file's object is ``<cache>/files/md5/ab/cdef...`` (read-only, as dvc-data
leaves it), a directory's is its ``.dir`` listing plus one object per file. Small
files are copied straight into that layout while their md5 is computed in the
same pass (one read, no dvc-data transfer, no hash-state update): the object is
named by the bytes actually copied, so a file that changed since it was recorded
is never cached under its old hash. Directories go through dvc-data
(:meth:`cmfrun.hashing.Hasher.save_to_dvc_cache`).

Example::

    root = find_dvc_root("data/train.csv")
    h = save_file(cache_dir(root), "data/train.csv")
"""
from __future__ import annotations

import configparser
import hashlib
import logging
import os
from pathlib import Path
from typing import Iterable, List, Mapping, Optional, Tuple, Union

from cmfrun.hashing import ContentHash, Hasher, find_dvc_root

log = logging.getLogger(__name__)
PathLike = Union[str, Path]
#: DVC 3 keeps md5 objects under this sub-folder of the cache.
FILES_DIR = ("files", "md5")
#: Cache objects are read-only, as dvc-data protects them.
OBJECT_MODE = 0o444
_CHUNK = 1 << 20


def is_md5(text: str) -> bool:
    """Whether ``text`` is a DVC md5 (32 hex digits, ``.dir`` for a directory)."""
    bare = text[:-4] if text.endswith(".dir") else text
    return len(bare) == 32 and all(c in "0123456789abcdef" for c in bare)


def cache_dir(dvc_root: PathLike) -> Path:
    """The DVC cache folder of the repository at ``dvc_root`` (``cache.dir`` or ``.dvc/cache``).

    Read from the config files directly (no ``dvc.repo.Repo``): this runs on every
    ``log_*`` call and in the background merger.
    """
    dvc_dir = Path(dvc_root) / ".dvc"
    configured: Optional[str] = None
    for name in ("config", "config.local"):
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read(dvc_dir / name, encoding="utf-8")
        except (configparser.Error, OSError):
            continue
        if parser.has_option("cache", "dir"):
            configured = parser.get("cache", "dir")
    if not configured:
        return dvc_dir / "cache"
    path = Path(os.path.expanduser(configured))
    return path if path.is_absolute() else (dvc_dir / path).resolve()


def object_path(cache: PathLike, md5: str) -> Path:
    """Where the object of ``md5`` (``.dir`` for a directory listing) lives in ``cache``."""
    bare, suffix = (md5[:-4], ".dir") if md5.endswith(".dir") else (md5, "")
    return Path(cache).joinpath(*FILES_DIR, bare[:2], bare[2:] + suffix)


def in_cache(cache: PathLike, md5: str) -> bool:
    """Whether ``cache`` holds the object of ``md5`` (for a ``.dir``: the listing itself)."""
    return object_path(cache, md5).is_file()


def save_file(cache: PathLike, path: PathLike) -> ContentHash:
    """Copy the file ``path`` into ``cache`` under the md5 of the bytes copied; returns that hash.

    Nothing is copied when the object is already there; a reader never sees a
    partial object (temp file + rename in the object's folder).
    """
    objects = Path(cache).joinpath(*FILES_DIR)
    objects.mkdir(parents=True, exist_ok=True)
    tmp = objects / f".cmfrun-{os.getpid()}-{id(path)}.tmp"
    digest = hashlib.md5()
    size = 0
    try:
        with open(path, "rb") as src, open(tmp, "wb") as dst:
            for chunk in iter(lambda: src.read(_CHUNK), b""):
                digest.update(chunk)
                dst.write(chunk)
                size += len(chunk)
        md5 = digest.hexdigest()
        target = object_path(cache, md5)
        if target.exists():
            os.unlink(tmp)
        else:
            target.parent.mkdir(exist_ok=True)
            os.chmod(tmp, OBJECT_MODE)
            os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return ContentHash(md5, size)


def cache_recorded(root: PathLike, refs: Iterable[Tuple[str, str]]) -> List[str]:
    """Make the recorded ``(root-relative path, md5)`` pairs pushable: put each one whose
    object is not in the DVC cache yet into it, if the file still has the recorded
    content. Returns the paths cached. Outside a DVC repository nothing happens.

    Runs in the background merger (off the wrapper's hot path). Problems are logged,
    never raised: caching must not stop a run from being recorded.
    """
    base = Path(root)
    dvc_root = find_dvc_root(base)
    if dvc_root is None:
        return []
    cache = cache_dir(dvc_root)
    done: List[str] = []
    hasher: Optional[Hasher] = None
    try:
        for rel, md5 in refs:
            if not rel or "://" in rel or in_cache(cache, md5):
                continue
            path = base / rel
            try:
                if path.is_file() and not md5.endswith(".dir"):
                    saved = save_file(cache, path)
                    if saved.md5 != md5:
                        log.info("%s changed since it was recorded (%s, now %s): cached under its new hash", rel, md5, saved.md5)
                        continue
                elif path.is_dir() and md5.endswith(".dir"):
                    hasher = hasher or Hasher(dvc_root)
                    if hasher.hash(path).md5 != md5:
                        log.info("%s changed since it was recorded: not cached", rel)
                        continue
                    hasher.save_to_dvc_cache(path)
                else:
                    continue
                done.append(rel)
            except Exception as exc:  # one unreadable file must not stop the others
                log.warning("could not cache %s: %s", rel, exc)
    finally:
        if hasher is not None:
            hasher.close()
    return done


def cache_journal_run(run: Mapping[str, object]) -> List[str]:
    """:func:`cache_recorded` for a wrapper journal's ``run`` (its ``root``, inputs and outputs)."""
    root = run.get("root")
    if not isinstance(root, str) or not root:
        return []
    refs: List[Tuple[str, str]] = []
    for key in ("inputs", "outputs"):
        items = run.get(key) or []
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict) and is_md5(str(item.get("md5", ""))):
                refs.append((str(item.get("path", "")), str(item["md5"])))
    return cache_recorded(root, refs)


__all__ = ["FILES_DIR", "is_md5", "cache_dir", "object_path", "in_cache", "save_file", "cache_recorded", "cache_journal_run"]
