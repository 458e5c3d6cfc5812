"""``dvc.lock`` -> frozen records, for every lock layout DVC has written.

* schema ``2.0`` (DVC 2 and 3): ``{schema: '2.0', stages: {name: {...}}}``, entries with
  ``md5`` and, from DVC 3, ``hash: md5`` (both may be mixed in one file);
* DVC 1.x: the stages at the top level, no ``schema`` key.

Values follow YAML 1.2 as DVC's ruamel parser reads them (``1e-05`` is a float,
``yes`` and ``2020-01-01`` are strings, ``010`` is ten); PyYAML's C parser does the
work with a YAML 1.2 core resolver. Paths in a lock are relative to the stage's
``wdir``, which only ``dvc.yaml`` states: :func:`read_lock` takes the resolved
stage definitions (``cmfrun.dvcyaml.load_stages``) and falls back to the lock's
folder. Every path becomes project-root-relative with ``/`` separators.

A lock DVC itself would refuse (not YAML, merge-conflict markers, duplicate
keys, wrong shape) raises :class:`~cmfrun.errors.LockFileError` naming the file
and line.

Example::

    lock = read_lock(Path("dvc.lock"), root=Path("."))
    for stage in lock.stages:
        print(stage.name, [o.path for o in stage.outs])
"""
from __future__ import annotations

import gc
import json
import logging
import os
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import yaml

from cmfrun.errors import LockFileError

log = logging.getLogger(__name__)

DEFAULT_PARAMS_FILE = "params.yaml"
_CONFLICT = re.compile(r"^(<{7}|={7}|>{7})(\s|$)")
_WINDOWS_ABS = re.compile(r"^[A-Za-z]:/")


# -- YAML 1.2 core schema on PyYAML's C parser --------------------------------------------------
_Base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _DuplicateKey(Exception):
    def __init__(self, key: str, line: int, first: int):
        super().__init__(key)
        self.key, self.line, self.first = key, line, first


_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
# The YAML 1.2 core schema (what ruamel, hence DVC, uses): no yes/no/on/off booleans,
# no sexagesimals or dates, ``1e-05`` a float, a leading 0 decimal.
_CORE = (
    (_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")),
    (_INT, re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")),
    (_FLOAT, re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
                        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$")),
    (_NULL, re.compile(r"^(?:~|null|Null|NULL)$")),
)
_MAYBE_TYPED = frozenset("-+0123456789.tTfFnN~")
# The four patterns as one alternation, a group each (the first that matches wins, as in
# order): one regex call per scalar that may be typed (md5 hashes start with a digit).
_CORE_ONE = re.compile("|".join(f"({pattern.pattern})" for _, pattern in _CORE))
_CORE_TAGS = {i: tag for i, (tag, _) in enumerate(_CORE, 1)}


class _Loader(_Base):  # type: ignore[misc,valid-type]
    """PyYAML's C parser and composer with YAML 1.2 core-schema scalar resolution."""

    def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
        if kind is yaml.ScalarNode:
            if not implicit[0]:
                return _STR
            if not value:
                return _NULL
            if value[0] in _MAYBE_TYPED:
                typed = _CORE_ONE.match(value)
                if typed is not None:
                    return _CORE_TAGS[typed.lastindex or 0]
            return _STR
        return _SEQ if kind is yaml.SequenceNode else _MAP


def _scalar(node: Any) -> Any:
    tag, text = node.tag, node.value
    if tag == _STR:
        return text
    if tag == _INT:
        sign = -1 if text.startswith("-") else 1
        body = text.lstrip("+-")
        if body.startswith("0o"):
            return sign * int(body[2:], 8)
        if body.startswith("0x"):
            return sign * int(body[2:], 16)
        return int(text, 10)
    if tag == _FLOAT:
        low = text.lower()
        if low.endswith("inf"):
            return float("-inf") if low.startswith("-") else float("inf")
        if low.endswith("nan"):
            return float("nan")
        return float(text)
    if tag == _BOOL:
        return text.lower() == "true"
    if tag == _NULL:
        return None
    raise yaml.constructor.ConstructorError(None, None, f"unsupported tag {tag!r}", node.start_mark)


def _build(node: Any, memo: Dict[int, Any]) -> Any:
    """Nodes -> Python values (a lean replacement of PyYAML's constructor: about 3x faster
    on large locks), refusing duplicate keys as DVC does."""
    if isinstance(node, yaml.ScalarNode):
        return _scalar(node)
    key = id(node)
    if key in memo:  # an alias
        return memo[key]
    if isinstance(node, yaml.SequenceNode):
        seq: List[Any] = []
        memo[key] = seq
        seq.extend(_build(n, memo) for n in node.value)
        return seq
    mapping: Dict[Any, Any] = {}
    memo[key] = mapping
    lines: Dict[Any, int] = {}
    for key_node, value_node in node.value:
        k = _build(key_node, memo)
        if isinstance(k, (list, dict)):
            raise yaml.constructor.ConstructorError(None, None, "unhashable key", key_node.start_mark)
        if k in mapping:
            raise _DuplicateKey(str(k), key_node.start_mark.line + 1, lines[k])
        lines[k] = key_node.start_mark.line + 1
        mapping[k] = _build(value_node, memo)
    return mapping


def parse_yaml(text: str, name: str) -> Any:
    """Parse ``text`` with YAML 1.2 rules; errors name ``name`` and the line."""
    # The per-line scan only when a marker can be there at all (a substring search is ~100x faster).
    if "<<<<<<<" in text or "=======" in text or ">>>>>>>" in text:
        for number, line in enumerate(text.splitlines(), 1):
            if _CONFLICT.match(line):
                raise LockFileError(f"{name}:{number}: merge-conflict marker {line.split()[0]!r}: resolve the conflict first")
    # Parsing allocates ~100k small objects that never form cycles; the cyclic GC would
    # rescan the whole heap several times meanwhile (superlinear on big locks).
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
        finally:
            loader.dispose()
        return None if node is None else _build(node, {})
    except _DuplicateKey as dup:
        raise LockFileError(f"{name}:{dup.line}: duplicate key {dup.key!r} (first at line {dup.first})") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f":{mark.line + 1}" if mark is not None else ""
        raise LockFileError(f"{name}{where}: not valid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise LockFileError(f"{name}: not valid YAML: {str(exc).splitlines()[0]}") from None
    except RecursionError:
        raise LockFileError(f"{name}: not valid YAML: nested too deeply") from None
    finally:
        if gc_was_enabled:
            gc.enable()


# -- records --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LockEntry:
    """One dep or out of a lock stage. ``md5`` is ``None`` for entries DVC could not hash
    (custom-scheme URLs such as ``s3://`` deps record an ``etag`` instead)."""

    path: str
    raw_path: str
    md5: Optional[str]
    size: Optional[int] = None
    nfiles: Optional[int] = None

    @property
    def is_dir(self) -> bool:
        """Whether the entry is a directory (DVC's ``.dir`` hash)."""
        return bool(self.md5 and self.md5.endswith(".dir"))

    @property
    def is_url(self) -> bool:
        """Whether the path is a URL (``s3://``, ``https://``, ...) rather than a file."""
        return "://" in self.path


@dataclass(frozen=True)
class LockParam:
    """One parameter value: ``file`` as the lock writes it (relative to wdir), the dotted
    ``key`` and its value (nested mappings stay mappings here)."""

    file: str
    key: str
    value: Any


@dataclass(frozen=True)
class LockStage:
    """One stage of a ``dvc.lock``; paths are project-root-relative posix paths."""

    name: str
    cmd: Union[str, Tuple[str, ...]]
    wdir: str
    deps: Tuple[LockEntry, ...] = ()
    outs: Tuple[LockEntry, ...] = ()
    params: Tuple[LockParam, ...] = ()
    line: int = 0
    in_dvc_yaml: bool = True


@dataclass(frozen=True)
class LockFile:
    """A parsed ``dvc.lock``: ``path`` relative to the project root, ``schema`` ``"2.0"`` or ``"1"``."""

    path: str
    schema: str
    stages: Tuple[LockStage, ...]
    warnings: Tuple[str, ...] = ()


# -- paths ----------------------------------------------------------------------------------------
def to_root_relative(root: Path, base: str, path: str) -> str:
    """``path`` as written in a lock (relative to ``base``, itself root-relative) as a
    root-relative posix path; URLs are kept, absolute paths outside the root too."""
    path = path.replace("\\", "/")
    if "://" in path:
        return path
    if _WINDOWS_ABS.match(path):
        return path.rstrip("/")
    if path.startswith("/"):
        try:
            return Path(path).relative_to(root).as_posix() or "."
        except ValueError:
            try:
                return Path(path).resolve().relative_to(root.resolve()).as_posix() or "."
            except ValueError:
                return posixpath.normpath(path)
    joined = posixpath.normpath(posixpath.join(base, path) if base and base != "." else path)
    return joined.rstrip("/") or "."


# -- reading --------------------------------------------------------------------------------------
def _opt_int(value: Any) -> Optional[int]:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _entries(raw: Any, where: str, root: Path, base: str) -> Tuple[LockEntry, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise LockFileError(f"{where}: expected a list of entries")
    out: List[LockEntry] = []
    for item in raw:
        if not isinstance(item, dict) or "path" not in item:
            raise LockFileError(f"{where}: every entry needs a 'path'")
        raw_path = str(item["path"])
        md5 = item.get("md5")
        out.append(
            LockEntry(
                path=to_root_relative(root, base, raw_path),
                raw_path=raw_path,
                md5=str(md5) if md5 is not None else None,
                size=_opt_int(item.get("size")),
                nfiles=_opt_int(item.get("nfiles")),
            )
        )
    return tuple(out)


def _params(raw: Any, where: str) -> Tuple[LockParam, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise LockFileError(f"{where}: 'params' must map files to values")
    out: List[LockParam] = []
    for file, values in raw.items():
        if values is None:
            continue
        if not isinstance(values, dict):
            raise LockFileError(f"{where}: params of {file!r} must be a mapping")
        for key, value in values.items():
            out.append(LockParam(str(file).replace("\\", "/"), str(key), value))
    return tuple(out)


def _cmd(raw: Any, where: str) -> Union[str, Tuple[str, ...]]:
    if isinstance(raw, list):
        return tuple(str(c) for c in raw)
    if raw is None:
        raise LockFileError(f"{where}: no 'cmd'")
    return str(raw)


def read_lock(
    lock_path: Path,
    root: Path,
    *,
    stage_wdirs: Optional[Mapping[str, str]] = None,
    text: Optional[str] = None,
) -> LockFile:
    """Parse ``lock_path``. ``stage_wdirs`` maps stage names to their root-relative wdir
    (from ``dvc.yaml``); ``None`` means no usable ``dvc.yaml`` (wdir = the lock's folder)."""
    lock_path = Path(lock_path)
    root = Path(root).absolute()
    try:
        rel_lock = Path(os.path.relpath(lock_path.absolute(), root)).as_posix()
    except ValueError:
        rel_lock = lock_path.as_posix()
    if text is None:
        try:
            text = lock_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise LockFileError(f"{rel_lock}: no such file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise LockFileError(f"{rel_lock}: cannot read: {exc}") from None
    data = parse_yaml(text, rel_lock)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise LockFileError(f"{rel_lock}:1: expected a mapping of stages, got {type(data).__name__}")
    if "schema" in data:
        version = str(data.get("schema"))
        if version != "2.0":
            raise LockFileError(f"{rel_lock}: unsupported dvc.lock schema {version!r} (DVC writes '2.0')")
        stages_raw = data.get("stages") or {}
        extra = sorted(set(data) - {"schema", "stages"})
        if extra:
            raise LockFileError(f"{rel_lock}: unexpected top-level key {extra[0]!r}")
    else:
        version = "1"
        stages_raw = data
    if not isinstance(stages_raw, dict):
        raise LockFileError(f"{rel_lock}: 'stages' must be a mapping")
    lines = _line_numbers(text, version)
    lock_dir = posixpath.dirname(rel_lock)
    lock_dir = "" if lock_dir in ("", ".") else lock_dir
    warnings: List[str] = []
    stages: List[LockStage] = []
    for name, body in stages_raw.items():
        name = str(name)
        where = f"{rel_lock}:{lines[name]}: stage {name!r}" if name in lines else f"{rel_lock}: stage {name!r}"
        if not isinstance(body, dict):
            raise LockFileError(f"{where}: expected a mapping")
        in_yaml = stage_wdirs is not None and name in stage_wdirs
        if stage_wdirs is not None and not in_yaml:
            warnings.append(f"{rel_lock}: stage {name!r} is not defined in dvc.yaml any more; paths read relative to {lock_dir or '.'}")
        wdir = stage_wdirs[name] if in_yaml and stage_wdirs is not None else (lock_dir or ".")
        base = "" if wdir == "." else wdir
        stages.append(
            LockStage(
                name=name,
                cmd=_cmd(body.get("cmd"), where),
                wdir=wdir,
                deps=_entries(body.get("deps"), where, root, base),
                outs=_entries(body.get("outs"), where, root, base),
                params=_params(body.get("params"), where),
                line=lines.get(name, 0),
                in_dvc_yaml=in_yaml or stage_wdirs is None,
            )
        )
    return LockFile(path=rel_lock, schema=version, stages=tuple(stages), warnings=tuple(warnings))


def _line_numbers(text: str, version: str) -> Dict[str, int]:
    """Line of each stage key (for messages); a cheap scan, not a second parse."""
    indent = None
    out: Dict[str, int] = {}
    in_stages = version == "1"
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        stripped = line.lstrip(" ")
        level = len(line) - len(stripped)
        if version != "1" and level == 0:
            in_stages = stripped.startswith("stages:")
            continue
        if not in_stages:
            continue
        if indent is None:
            indent = level
        if level == indent and ":" in stripped:
            key = stripped.split(":", 1)[0].strip().strip("'\"")
            out.setdefault(key, number)
    return out


# -- params ---------------------------------------------------------------------------------------
def param_key(file: str, key: str) -> str:
    """The execution custom-property key of a parameter: the dotted key alone for the
    stage's ``params.yaml`` (as ``cmfrun.dvcyaml.read_params`` keys it), ``<file>:<key>``
    for any other params file (as ``dvc params diff`` shows them)."""
    if file == DEFAULT_PARAMS_FILE or file == "./" + DEFAULT_PARAMS_FILE:
        return key
    return f"{file}:{key}"


def flatten_params(params: Tuple[LockParam, ...]) -> Dict[str, Union[int, float, str]]:
    """Parameters as MLMD-storable custom properties, flattened the way the wrapper
    flattens ``read_params`` values: nested mappings become dotted keys (``train: {lr:
    0.1}`` -> ``train.lr``), booleans ints, lists JSON text, ``null`` and empty mappings
    nothing; numbers stay numbers."""
    out: Dict[str, Union[int, float, str]] = {}

    def put(key: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                put(f"{key}.{k}", v)
        elif isinstance(value, (list, tuple)):
            out[key] = json.dumps(value, default=str)
        elif isinstance(value, bool):
            out[key] = int(value)
        elif isinstance(value, (int, float, str)):
            out[key] = value
        elif value is not None:
            out[key] = str(value)

    for p in params:
        put(param_key(p.file, p.key), p.value)
    return out


__all__ = [
    "LockEntry",
    "LockParam",
    "LockStage",
    "LockFile",
    "parse_yaml",
    "read_lock",
    "to_root_relative",
    "param_key",
    "flatten_params",
]
