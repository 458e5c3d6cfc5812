"""``dvc.yaml`` -> stage definitions, resolved by DVC's own resolver.

DVC's ``DataResolver`` expands ``vars``/templating, ``foreach`` and
``matrix`` exactly as ``dvc repro`` does; this module only turns its output
into frozen records with paths relative to the project root (``wdir``
applied, ``/`` separators, no trailing ``/``). It deliberately avoids
``dvc.repo.Repo`` (a ~0.3 s import and index build) so the wrapper can
resolve one stage per run cheaply.

Example::

    stage = load_stage(Path("dvc.yaml"), "train", root=Path("."))
    print(stage.deps, [o.path for o in stage.outs])
"""
from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Set, Tuple, Union

from cmfrun.errors import InputFileError

DEFAULT_PARAMS_FILE = "params.yaml"
#: File suffixes recorded as Model artifacts when a stage's out has no explicit type.
MODEL_SUFFIXES = (".pkl", ".pickle", ".joblib", ".pt", ".pth", ".h5", ".hdf5", ".keras", ".onnx", ".ckpt",
                  ".safetensors", ".model", ".bst", ".cbm", ".tflite", ".pb")


@dataclass(frozen=True)
class OutDef:
    """One out of a stage. ``kind`` is ``out``, ``metrics`` or ``plots``."""

    path: str
    kind: str = "out"
    cache: bool = True
    is_model: bool = False


@dataclass(frozen=True)
class ParamDef:
    """Params a stage reads from one file; ``keys`` empty means the whole file."""

    file: str
    keys: Tuple[str, ...] = ()


@dataclass(frozen=True)
class StageDef:
    """A resolved stage of a ``dvc.yaml``; paths are relative to the project root."""

    name: str
    cmd: Union[str, Tuple[str, ...]]
    wdir: str
    dvcfile: str
    deps: Tuple[str, ...] = ()
    outs: Tuple[OutDef, ...] = ()
    params: Tuple[ParamDef, ...] = ()


def _rel(root: Path, base: str, path: str) -> str:
    """``path`` (relative to ``base``, itself relative to ``root``) as a root-relative posix path."""
    path = path.replace("\\", "/")
    if "://" in path:
        return path
    if os.path.isabs(path):
        try:
            return Path(path).resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            return Path(path).as_posix()
    joined = posixpath.normpath(posixpath.join(base, path)) if base else posixpath.normpath(path)
    return joined.rstrip("/") or "."


def _entries(items: Any) -> List[Tuple[str, Dict[str, Any]]]:
    """DVC's list form: ``["a", {"b": {"cache": false}}]`` -> ``[("a", {}), ("b", {...})]``."""
    out: List[Tuple[str, Dict[str, Any]]] = []
    for item in items or []:
        if isinstance(item, str):
            out.append((item, {}))
        elif isinstance(item, dict):
            for key, opts in item.items():
                out.append((str(key), dict(opts or {}) if isinstance(opts, dict) else {}))
    return out


def _model_paths(data: Mapping[str, Any], base: str, root: Path) -> Set[str]:
    """Paths declared as ``type: model`` in the top-level ``artifacts`` section."""
    found: Set[str] = set()
    for _, spec in (data.get("artifacts") or {}).items():
        if isinstance(spec, dict) and spec.get("type") == "model" and spec.get("path"):
            found.add(_rel(root, base, str(spec["path"])))
    return found


def _stage(name: str, d: Mapping[str, Any], *, root: Path, yaml_dir: str, dvcfile: str, models: Set[str]) -> StageDef:
    wdir = _rel(root, yaml_dir, str(d.get("wdir", ".")))
    base = "" if wdir == "." else wdir
    outs: List[OutDef] = []
    for kind in ("outs", "metrics", "plots"):
        for path, opts in _entries(d.get(kind)):
            rel = _rel(root, base, path)
            is_model = rel in models or (kind == "outs" and rel.lower().endswith(MODEL_SUFFIXES))
            outs.append(OutDef(rel, kind={"outs": "out"}.get(kind, kind), cache=bool(opts.get("cache", True)),
                               is_model=is_model))
    params: List[ParamDef] = []
    default_params = _rel(root, base, DEFAULT_PARAMS_FILE)
    plain: List[str] = []
    for item in d.get("params") or []:
        if isinstance(item, str):
            plain.append(item)
        elif isinstance(item, dict):
            for file, keys in item.items():
                params.append(ParamDef(_rel(root, base, str(file)), tuple(str(k) for k in keys or [])))
    if plain:
        params.insert(0, ParamDef(default_params, tuple(plain)))
    cmd = d.get("cmd", "")
    return StageDef(
        name=name,
        cmd=tuple(str(c) for c in cmd) if isinstance(cmd, list) else str(cmd),
        wdir=wdir,
        dvcfile=dvcfile,
        deps=tuple(_rel(root, base, p) for p, _ in _entries(d.get("deps"))),
        outs=tuple(outs),
        params=tuple(params),
    )


def _resolver(dvc_yaml: Path) -> Tuple[Any, Dict[str, Any]]:
    from types import SimpleNamespace

    from dvc.fs import LocalFileSystem
    from dvc.parsing import DataResolver
    from dvc.utils.serialize import load_yaml

    fs = LocalFileSystem()
    if not dvc_yaml.is_file():
        raise InputFileError(f"{dvc_yaml}: no such file")
    try:
        data = load_yaml(str(dvc_yaml), fs=fs)
    except Exception as exc:
        raise InputFileError(f"{dvc_yaml}: not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise InputFileError(f"{dvc_yaml}: expected a mapping with 'stages'")
    # DataResolver needs only a filesystem and the 'parsing' config from a repo.
    shim = SimpleNamespace(fs=fs, config={})
    try:
        return DataResolver(shim, str(dvc_yaml.parent.absolute()), data), data
    except Exception as exc:
        raise InputFileError(f"{dvc_yaml}: {str(exc).splitlines()[0]}") from None


def _locate(dvc_yaml: Path, root: Optional[Path]) -> Tuple[Path, Path, str, str]:
    """(absolute dvc.yaml, absolute root, its folder and its path relative to root)."""
    dvc_yaml = Path(dvc_yaml).absolute()
    root = Path(root or dvc_yaml.parent).absolute()
    yaml_dir = _rel(root, "", os.path.relpath(dvc_yaml.parent, root))
    return dvc_yaml, root, "" if yaml_dir == "." else yaml_dir, _rel(root, "", os.path.relpath(dvc_yaml, root))


def load_stages(dvc_yaml: Path, root: Optional[Path] = None) -> Dict[str, StageDef]:
    """Every stage of ``dvc_yaml`` (foreach/matrix expanded: ``name@key``)."""
    dvc_yaml, root, yaml_dir, dvcfile = _locate(dvc_yaml, root)
    resolver, data = _resolver(dvc_yaml)
    models = _model_paths(data, yaml_dir, root)
    try:
        resolved = resolver.resolve()["stages"]
    except Exception as exc:
        raise InputFileError(f"{dvc_yaml}: {str(exc).splitlines()[0]}") from None
    return {
        name: _stage(name, d or {}, root=root, yaml_dir=yaml_dir, dvcfile=dvcfile, models=models)
        for name, d in resolved.items()
    }


def load_stage(dvc_yaml: Path, name: str, root: Optional[Path] = None) -> Optional[StageDef]:
    """One stage by its full name (``train`` or ``train@lr-0.1``), or ``None`` when absent."""
    dvc_yaml, root, yaml_dir, dvcfile = _locate(dvc_yaml, root)
    resolver, data = _resolver(dvc_yaml)
    try:
        if not resolver.has_key(name):
            return None
        resolved = resolver.resolve_one(name)
    except Exception as exc:
        raise InputFileError(f"{dvc_yaml}: stage {name!r}: {str(exc).splitlines()[0]}") from None
    d = resolved.get(name) or {}
    return _stage(name, d, root=root, yaml_dir=yaml_dir, dvcfile=dvcfile, models=_model_paths(data, yaml_dir, root))


def param_prefix(param: ParamDef, wdir: str = ".") -> str:
    """How a params file prefixes its keys: nothing for the stage's own ``params.yaml``,
    else ``<file relative to wdir>:`` (``config/model.json:arch.name``), as ingest keys them."""
    base = "" if wdir in ("", ".") else wdir
    if param.file == _rel(Path("/"), base, DEFAULT_PARAMS_FILE):
        return ""
    rel = posixpath.relpath(param.file, base or ".")
    return f"{rel}:"


def read_params(root: Path, params: Tuple[ParamDef, ...], wdir: str = ".") -> Dict[str, Any]:
    """Values of a stage's params, keyed as DVC shows them (``train.lr``; other files than
    the stage's ``params.yaml`` as ``<file>:<key>``); files with ``keys=()`` contribute all
    their top-level keys. Missing files or keys are skipped."""
    from dvc.utils.serialize import LOADERS

    values: Dict[str, Any] = {}
    for p in params:
        path = root / p.file
        loader = LOADERS.get(path.suffix.lower())
        if loader is None or not path.is_file():
            continue
        try:
            data = loader(str(path))
        except Exception as exc:
            raise InputFileError(f"{p.file}: cannot read params: {str(exc).splitlines()[0]}") from None
        keys = p.keys or tuple(str(k) for k in (data or {}).keys())
        for key in keys:
            cur: Any = data
            for part in key.split("."):
                if isinstance(cur, dict) and part in cur:
                    cur = cur[part]
                else:
                    cur = _MISSING
                    break
            if cur is not _MISSING:
                values[param_prefix(p, wdir) + key] = _plain(cur)
    return values


_MISSING = object()


def _plain(value: Any) -> Any:
    """ruamel/tomlkit containers -> plain Python values."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return value if value is None else str(value)


__all__ = ["OutDef", "ParamDef", "StageDef", "MODEL_SUFFIXES", "load_stages", "load_stage", "read_params", "param_prefix"]
