"""The Python environment of a run, as CMF's ``Environment`` artifact.

CMF runs ``pip freeze`` on every ``create_execution`` (about 1 s). Here the
package list is read from the interpreter's ``*.dist-info`` folders and
cached under ``~/.cache/cmfrun/env`` keyed by the site-packages folders'
modification times, so an unchanged environment costs a few ``stat`` calls.
Its identity is the md5 of the list, so the same environment is one artifact.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from cmfrun import schema


@dataclass(frozen=True)
class PythonEnv:
    """``packages`` are ``name==version`` lines, sorted, lower-case names."""

    python: str
    packages: Tuple[str, ...]

    @property
    def text(self) -> str:
        """The file content CMF would write (one requirement per line)."""
        return "\n".join(self.packages) + "\n"

    @property
    def md5(self) -> str:
        return hashlib.md5(self.text.encode()).hexdigest()

    @property
    def path(self) -> str:
        """CMF's file name for this environment (``cmf_artifacts/python_env_<h>.txt``)."""
        return f"cmf_artifacts/python_env_{self.md5}.txt"


def _site_dirs(paths: Sequence[str]) -> List[str]:
    return sorted({p for p in paths if p and os.path.isdir(p) and ("site-packages" in p or "dist-packages" in p)})


def _scan(dirs: Sequence[str]) -> Tuple[str, ...]:
    found: Dict[str, str] = {}
    for d in dirs:
        try:
            names = os.listdir(d)
        except OSError:
            continue
        for entry in names:
            if entry.endswith(".dist-info") or entry.endswith(".egg-info"):
                stem = entry.rsplit(".", 1)[0]
                if "-" not in stem:
                    continue
                name, version = stem.split("-", 1)
                found.setdefault(name.lower().replace("_", "-"), version)
    return tuple(sorted(f"{n}=={v}" for n, v in found.items()))


def current(paths: Optional[Sequence[str]] = None, cache_dir: Optional[Path] = None) -> PythonEnv:
    """The environment of this interpreter (or of the given ``sys.path``-like list)."""
    dirs = _site_dirs(list(paths) if paths is not None else sys.path)
    python = sys.version.split()[0]
    key_src = python + "|" + "|".join(f"{d}:{os.stat(d).st_mtime_ns}" for d in dirs)
    key = hashlib.md5(key_src.encode()).hexdigest()
    base = cache_dir or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cmfrun" / "env"
    cached = base / f"{key}.json"
    try:
        data = json.loads(cached.read_text())
        return PythonEnv(data["python"], tuple(data["packages"]))
    except (OSError, ValueError, KeyError):
        pass
    env = PythonEnv(python, _scan(dirs))
    try:
        base.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"python": env.python, "packages": list(env.packages)}))
        os.replace(tmp, cached)
    except OSError:
        pass  # a read-only home only costs the rescan next time
    return env


ENVIRONMENT_TYPE = schema.ENVIRONMENT

__all__ = ["PythonEnv", "current"]
