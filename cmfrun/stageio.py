"""A run's inputs and outputs as :class:`~cmfrun.recorder.FileRef`-shaped dicts.

Under ``dvc repro``/``dvc exp run`` the stage named by ``DVC_STAGE`` is
resolved from its ``dvc.yaml`` (DVC's own resolver: foreach, matrix,
templating, ``wdir``); elsewhere paths come from ``--in``/``--out`` (files,
directories, globs). Hashes are DVC's md5 (``.dir`` for directories).

Inside a DVC stage, ``dvc`` itself holds the repository lock, so nothing here
opens ``dvc.repo.Repo``: the hash cache is DVC's state database opened
directly (:func:`dvc_state_dir` computes its location the way DVC does), which
is a multi-process SQLite cache that needs no repository lock.

This module returns plain dicts (JSON-ready for the run journal) so the
wrapper's hot path never imports the store.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from cmfrun.errors import InputFileError

log = logging.getLogger(__name__)

DATASET = "Dataset"
MODEL = "Model"
METRICS = "Metrics"


def dvc_state_dir(dvc_root: Path) -> Optional[str]:
    """Where DVC keeps the hash cache ("state") of the repository at ``dvc_root``.

    Mirrors ``dvc.repo.Repo.site_cache_dir`` for a plain (non-git-fs) repo without
    importing or opening the repo; ``None`` if DVC's helper cannot be imported.
    """
    import getpass
    import hashlib

    try:
        from dvc.dirs import site_cache_dir
        from dvc.version import version_tuple
    except Exception:  # pragma: no cover - dvc is a dependency
        return None
    configured = _dvc_config_value(dvc_root, "core", "site_cache_dir")
    base = site_cache_dir(configured)
    root_dir = str(dvc_root)
    btime = getattr(os.stat(root_dir), "st_birthtime", None)
    try:
        user = getpass.getuser()
    except Exception:
        return None
    token = hashlib.md5(str((root_dir, None, btime, user, version_tuple[0], 0)).encode()).hexdigest()
    return os.path.join(base, "repo", token)


def _dvc_config_value(dvc_root: Path, section: str, key: str) -> Optional[str]:
    """One value of ``.dvc/config`` (INI); local config wins as in DVC."""
    import configparser

    value: Optional[str] = None
    for name in ("config", "config.local"):
        path = dvc_root / ".dvc" / name
        if not path.is_file():
            continue
        parser = configparser.ConfigParser()
        try:
            parser.read(path, encoding="utf-8")
        except configparser.Error:
            continue
        if parser.has_option(section, key):
            value = parser.get(section, key).strip().strip("'\"")
    return value


def make_hasher(start: Path) -> Any:
    """A :class:`~cmfrun.hashing.Hasher` that never opens (or locks) the DVC repository.

    In a DVC repository it uses DVC's own state database as hash cache, so
    files DVC has hashed are not read again; elsewhere cmfrun's private cache.
    """
    from cmfrun.hashing import Hasher, find_dvc_root

    root = find_dvc_root(start)
    if root is not None:
        state = dvc_state_dir(root)
        if state:
            try:
                return Hasher(state_dir=state)
            except Exception as exc:  # an unreadable DVC state only costs re-reading the data
                log.info("DVC state at %s not usable (%s): private hash cache", state, exc)
    return Hasher.for_path(start) if root is None else Hasher()


def rel_to_root(path: str, root: Path, cwd: Path) -> str:
    """``path`` (relative to ``cwd``) as a root-relative posix path; absolute if outside root."""
    full = Path(os.path.normpath(cwd / path))
    try:
        return full.relative_to(root).as_posix() or "."
    except ValueError:
        return full.as_posix()


def expand(patterns: Iterable[str], cwd: Path, *, must_exist: bool) -> List[str]:
    """Expand globs (relative to ``cwd``); a pattern without matches is kept literally
    unless ``must_exist`` (then a missing input is an :class:`InputFileError`)."""
    out: List[str] = []
    for pat in patterns:
        if any(ch in pat for ch in "*?["):
            import glob

            matches = sorted(glob.glob(str(cwd / pat), recursive=True))
            if matches:
                out.extend(os.path.relpath(m, cwd) for m in matches)
                continue
            if must_exist:
                raise InputFileError(f"--in {pat}: no file matches")
            continue
        if must_exist and not (cwd / pat).exists():
            raise InputFileError(f"--in {pat}: no such file or directory")
        out.append(pat)
    return out


def flatten(values: Any, prefix: str = "") -> Dict[str, Any]:
    """Nested dicts -> ``a.b`` keys; lists become JSON text (MLMD holds only scalars)."""
    import json

    flat: Dict[str, Any] = {}
    if isinstance(values, dict):
        for key, value in values.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            flat.update(flatten(value, name))
    elif isinstance(values, (list, tuple)):
        flat[prefix or "value"] = json.dumps(values, default=str)
    elif isinstance(values, bool):
        flat[prefix or "value"] = int(values)
    elif isinstance(values, (int, float, str)):
        flat[prefix or "value"] = values
    elif values is not None:
        flat[prefix or "value"] = str(values)
    return flat


def read_metrics(path: Path) -> Dict[str, Any]:
    """Flattened values of a JSON/YAML (or TOML) metrics file; ``{}`` when unreadable."""
    import json

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return {}
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        elif path.suffix.lower() == ".toml":
            import tomllib  # type: ignore[import-not-found]

            data = tomllib.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception:
        return {}
    return flatten(data) if isinstance(data, dict) else {}


def file_ref(hasher: Any, root: Path, rel: str, kind: str = DATASET, custom: Optional[Dict[str, Any]] = None) -> Optional[Dict[str, Any]]:
    """A JSON-ready FileRef for ``rel`` (root-relative), or ``None`` if it does not exist."""
    full = root / rel if not os.path.isabs(rel) else Path(rel)
    if not full.exists():
        return None
    h = hasher.hash(full)
    ref: Dict[str, Any] = {"path": rel, "md5": h.md5, "type": kind, "size": h.size, "nfiles": h.nfiles}
    if custom:
        ref["custom"] = custom
    return ref


@dataclass(frozen=True)
class StagePlan:
    """What a DVC stage reads and writes (root-relative paths)."""

    name: str
    dvcfile: str
    deps: Tuple[str, ...]
    outs: Tuple[Tuple[str, str], ...]  # (path, artifact type)
    params: Dict[str, Any]


def _candidate_yamls(dvc_stage: str, dvc_root: Path, cwd: Path) -> Tuple[str, List[Path]]:
    """The stage name and the dvc.yaml files that may define it, most likely first.

    DVC sets ``DVC_STAGE`` to ``name`` for the ``dvc.yaml`` in the directory dvc was
    started from, else ``<relpath to dvc.yaml from there>:name``.
    """
    name = dvc_stage
    candidates: List[Path] = []
    if ":" in dvc_stage:
        file_part, name = dvc_stage.rsplit(":", 1)
        bases = [dvc_root, Path.cwd(), *[p for p in (cwd, *cwd.parents)]]
        for base in bases:
            p = Path(os.path.normpath(base / file_part))
            if p.name != "dvc.yaml":
                p = p / "dvc.yaml" if p.is_dir() else p
            if p.is_file() and p not in candidates:
                candidates.append(p)
    here = cwd
    chain = [here, *here.parents]
    for d in chain:
        p = d / "dvc.yaml"
        if p.is_file() and p not in candidates:
            candidates.append(p)
        if d == dvc_root:
            break
    root_yaml = dvc_root / "dvc.yaml"
    if root_yaml.is_file() and root_yaml not in candidates:
        candidates.append(root_yaml)
    return name, candidates


def resolve_dvc_stage(dvc_stage: str, dvc_root: Path, cwd: Path, root: Path) -> Optional[StagePlan]:
    """The stage ``DVC_STAGE`` names, with its params' values, or ``None`` if not found.

    ``root`` is the project root paths are made relative to (normally ``DVC_ROOT``).
    """
    from cmfrun import dvcyaml

    name, candidates = _candidate_yamls(dvc_stage, dvc_root, cwd)
    for yaml_path in candidates:
        stage = _plain_stage(yaml_path, name, dvc_root)
        if stage is None:
            stage = dvcyaml.load_stage(yaml_path, name, root=dvc_root)
        if stage is None:
            continue
        outs: List[Tuple[str, str]] = []
        for out in stage.outs:
            kind = METRICS if out.kind == "metrics" else MODEL if out.is_model else DATASET
            outs.append((_reroot(out.path, dvc_root, root), kind))
        params = _read_params(dvc_root, stage.params, stage.wdir)
        return StagePlan(
            name=stage.name,
            dvcfile=stage.dvcfile,
            deps=tuple(_reroot(d, dvc_root, root) for d in stage.deps),
            outs=tuple(outs),
            params=flatten(params),
        )
    return None


#: Markers of dvc.yaml features only DVC's resolver handles (templating, foreach, matrix).
_TEMPLATED = ("${", "foreach", "matrix", "vars")


def _plain_stage(yaml_path: Path, name: str, dvc_root: Path) -> Optional[Any]:
    """The stage from a dvc.yaml that uses no templating, parsed with PyYAML alone.

    DVC's resolver costs ~100 ms of imports per wrapped stage; a plain dvc.yaml needs
    none of it. Returns ``None`` (caller uses the resolver) for anything templated.
    """
    from cmfrun import dvcyaml

    if "@" in name:
        return None
    try:
        text = yaml_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    if any(marker in text for marker in _TEMPLATED):
        return None
    data = _yaml_load(text)
    if not isinstance(data, dict) or not isinstance(data.get("stages"), dict):
        return None
    d = data["stages"].get(name)
    if not isinstance(d, dict):
        return None
    root = dvc_root.absolute()
    rel_dir = os.path.relpath(yaml_path.absolute().parent, root)
    yaml_dir = "" if rel_dir == "." else Path(rel_dir).as_posix()
    dvcfile = Path(os.path.relpath(yaml_path.absolute(), root)).as_posix()
    # The same record builder load_stage uses, so both paths agree.
    models = dvcyaml._model_paths(data, yaml_dir, root)
    return dvcyaml._stage(name, d, root=root, yaml_dir=yaml_dir, dvcfile=dvcfile, models=models)


def _yaml_load(text: str) -> Any:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        return yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader
    except yaml.YAMLError:
        return None


def _read_params(root: Path, params: Sequence[Any], wdir: str = ".") -> Dict[str, Any]:
    """Param values (DVC keys); YAML/JSON files without DVC's loaders (~70 ms of imports)."""
    from cmfrun import dvcyaml

    if any(Path(p.file).suffix.lower() not in (".yaml", ".yml", ".json") for p in params):
        return dvcyaml.read_params(root, tuple(params), wdir)
    import json

    values: Dict[str, Any] = {}
    for p in params:
        path = root / p.file
        if not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
            data = json.loads(text) if path.suffix.lower() == ".json" else _yaml_load(text)
        except (OSError, ValueError, UnicodeDecodeError):
            return dvcyaml.read_params(root, tuple(params), wdir)  # let DVC's loader name the problem
        if not isinstance(data, dict):
            continue
        for key in p.keys or tuple(str(k) for k in data):
            cur: Any = data
            for part in key.split("."):
                if isinstance(cur, dict) and part in cur:
                    cur = cur[part]
                else:
                    break
            else:
                values[dvcyaml.param_prefix(p, wdir) + key] = cur
    return values


def _reroot(path: str, dvc_root: Path, root: Path) -> str:
    if "://" in path or os.path.isabs(path) or dvc_root == root:
        return path
    return rel_to_root(path, root, dvc_root)


#: Below this total size, files are hashed with hashlib (DVC 3's file md5 is the plain md5
#: of the bytes) instead of paying ~120 ms to import dvc-data; above it, through dvc-data
#: and DVC's hash cache so large data is not read again.
SMALL_TOTAL_BYTES = 32 << 20


class LazyHasher:
    """Plain md5 for a small set of plain files; dvc-data (via :func:`make_hasher`) otherwise."""

    def __init__(self, root: Path, small: bool):
        self.root = root
        self.small = small
        self._real: Any = None

    def hash(self, path: Path) -> Any:
        from cmfrun.hashing import ContentHash  # light module: dvc-data is imported lazily inside

        if self.small and os.path.isfile(path):
            import hashlib

            h = hashlib.md5()
            with open(path, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
            return ContentHash(h.hexdigest(), os.path.getsize(path))
        if self._real is None:
            self._real = make_hasher(self.root)
        return self._real.hash(path)

    def close(self) -> None:
        if self._real is not None:
            self._real.close()


def lazy_hasher(root: Path, paths: Sequence[str]) -> LazyHasher:
    """A :class:`LazyHasher` for ``paths`` (root-relative): plain md5 when all are small files."""
    total = 0
    for rel in paths:
        full = root / rel
        try:
            st = os.stat(full)
        except OSError:
            continue
        if not os.path.isfile(full):
            return LazyHasher(root, small=False)
        total += st.st_size
    return LazyHasher(root, small=total <= SMALL_TOTAL_BYTES)


def hash_many(hasher: Any, root: Path, items: Sequence[Tuple[str, str]]) -> Tuple[List[Dict[str, Any]], List[str]]:
    """FileRefs for ``(path, type)`` items (metrics get their values); plus paths skipped."""
    refs: List[Dict[str, Any]] = []
    skipped: List[str] = []
    seen = set()
    for rel, kind in items:
        if rel in seen:
            continue
        seen.add(rel)
        if "://" in rel:
            skipped.append(rel)  # remote deps (s3://...) are not hashed locally
            continue
        custom = read_metrics(root / rel) if kind == METRICS else None
        try:
            ref = file_ref(hasher, root, rel, kind, custom)
        except InputFileError as exc:
            log.info("%s", exc)
            ref = None
        if ref is None:
            skipped.append(rel)
        else:
            refs.append(ref)
    return refs, skipped


__all__ = [
    "StagePlan",
    "dvc_state_dir",
    "make_hasher",
    "rel_to_root",
    "expand",
    "flatten",
    "read_metrics",
    "file_ref",
    "resolve_dvc_stage",
    "hash_many",
    "LazyHasher",
    "lazy_hasher",
]
