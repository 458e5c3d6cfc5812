"""Files cmflib uploads (python environments, labels, tensorboard logs), kept content-addressed.

Bytes go to ``<data>/blobs/sha256/<ab>/<sha256>``; what the client called the
file goes into a small JSON index entry ``<data>/index/<kind>/<sha256 of the key>.json``.
An uploaded name is untrusted and never becomes part of a path: only hashes do,
so no name (``../../etc/passwd``, an absolute path, NUL bytes) can make the
server write outside its data folder. Writes are atomic (temporary file in
``<data>/tmp`` + rename), so a crash never leaves half a file under its hash.
"""
from __future__ import annotations

import hashlib
import json
import os
import posixpath
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Dict, List, Optional

from cmfrun import errors

KINDS = ("python-env", "label", "tensorboard")
_CHUNK = 1024 * 1024
_MAX_NAME = 1024


@dataclass(frozen=True)
class StoredFile:
    """One uploaded file: its kind, the client's name (and pipeline), content hash and size.

    ``new_content``: the bytes were not on the server before; ``existed``: the
    name was already known (its entry now points at these bytes).
    """

    kind: str
    name: str
    pipeline: str
    sha256: str
    size: int
    new_content: bool = False
    existed: bool = False


def clean_name(name: Optional[str]) -> str:
    """The uploaded name as a tidy relative POSIX path, or :class:`UsageError` (empty, NUL, ``..``)."""
    if not name or not name.strip():
        raise errors.UsageError("the upload has no file name")
    if "\x00" in name or len(name) > _MAX_NAME:
        raise errors.UsageError("the upload's file name is not acceptable (NUL byte or too long)")
    norm = posixpath.normpath(name.replace("\\", "/")).lstrip("/")
    if norm in ("", ".") or norm == ".." or norm.startswith("../"):
        raise errors.UsageError(f"the upload's file name {name!r} escapes its folder")
    return norm


class UploadStore:
    """The data folder's uploaded files. ``root`` is created on first write."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).absolute()

    def _index_path(self, kind: str, key: str) -> Path:
        if kind not in KINDS:
            raise errors.UsageError(f"unknown upload kind {kind!r}")
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
        return self.root / "index" / kind / f"{digest}.json"

    def blob_path(self, sha256: str) -> Path:
        """Where the bytes with this sha256 live (the hash is checked to be hex first)."""
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise errors.UsageError(f"not a sha256: {sha256!r}")
        return self.root / "blobs" / "sha256" / sha256[:2] / sha256

    @staticmethod
    def key(kind: str, name: str, pipeline: str = "") -> str:
        """The index key: CMF's server keeps env files and labels by base name, tensorboard
        logs by pipeline and relative path."""
        if kind == "tensorboard":
            return f"{pipeline}/{name}"
        return posixpath.basename(name)

    def save(self, kind: str, name: Optional[str], stream: BinaryIO, *, pipeline: str = "") -> StoredFile:
        """Store the bytes of ``stream`` under ``kind``/``name`` (replacing what the name meant)."""
        clean = clean_name(name)
        if kind == "tensorboard":
            if not pipeline.strip() or "\x00" in pipeline:
                raise errors.UsageError("a tensorboard upload needs a pipeline_name")
        tmp_dir = self.root / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        fd, tmp_name = tempfile.mkstemp(dir=tmp_dir, prefix="upload-")
        try:
            with os.fdopen(fd, "wb") as out:
                while True:
                    chunk = stream.read(_CHUNK)
                    if not chunk:
                        break
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
            sha = digest.hexdigest()
            blob = self.blob_path(sha)
            new_content = not blob.exists()
            if new_content:
                blob.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp_name, blob)
        finally:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)
        key = self.key(kind, clean, pipeline)
        index = self._index_path(kind, key)
        previous = self._read_index(index)
        entry = StoredFile(kind, clean, pipeline, sha, size, new_content, existed=previous is not None)
        self._write_index(index, entry)
        return entry

    def find(self, kind: str, name: str, *, pipeline: str = "") -> Optional[StoredFile]:
        """The stored file a name refers to, or ``None``."""
        try:
            clean = clean_name(name)
        except errors.UsageError:
            return None
        entry = self._read_index(self._index_path(kind, self.key(kind, clean, pipeline)))
        return entry

    def list(self, kind: str) -> List[StoredFile]:
        """Every stored file of a kind, by name."""
        folder = self.root / "index" / kind
        out = []
        if folder.is_dir():
            for path in folder.glob("*.json"):
                entry = self._read_index(path)
                if entry is not None:
                    out.append(entry)
        return sorted(out, key=lambda e: (e.pipeline, e.name))

    def read(self, entry: StoredFile) -> bytes:
        """The bytes of a stored file."""
        return self.blob_path(entry.sha256).read_bytes()

    @staticmethod
    def _read_index(path: Path) -> Optional[StoredFile]:
        try:
            data: Dict[str, object] = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        return StoredFile(
            kind=str(data.get("kind", "")),
            name=str(data.get("name", "")),
            pipeline=str(data.get("pipeline", "")),
            sha256=str(data.get("sha256", "")),
            size=int(str(data.get("size", 0))),
        )

    def _write_index(self, path: Path, entry: StoredFile) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        body = {"kind": entry.kind, "name": entry.name, "pipeline": entry.pipeline, "sha256": entry.sha256, "size": entry.size}
        fd, tmp_name = tempfile.mkstemp(dir=self.root / "tmp", prefix="index-")
        try:
            with os.fdopen(fd, "w") as out:
                json.dump(body, out)
            os.replace(tmp_name, path)
        finally:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)


__all__ = ["KINDS", "StoredFile", "UploadStore", "clean_name"]
