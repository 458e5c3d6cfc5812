"""Where settings come from: option > environment variable > ``.cmfconfig`` > default.

``.cmfconfig`` is an INI file at the project root::

    [cmfrun]
    mlmd = mlmd                 # store path (relative to the project root) or URI
    pipeline = my-pipeline
    stage = train
    engine = sql                # store engine: mlmd or sql (see cmfrun.store)

The project root is the nearest folder holding ``.cmfconfig``, else the git
work tree's top, else the DVC root, else the current directory.
"""
from __future__ import annotations

import configparser
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional, Union

from cmfrun.errors import InputFileError

CONFIG_FILE = ".cmfconfig"
ENV_MLMD = "CMFRUN_MLMD"
ENV_PIPELINE = "CMFRUN_PIPELINE"
ENV_STAGE = "CMFRUN_STAGE"
SECTION = "cmfrun"


@dataclass(frozen=True)
class Settings:
    """Resolved settings; ``store`` is a path or URI string."""

    root: Path
    store: str
    pipeline: str
    stage: Optional[str]


def find_root(start: Union[str, Path] = ".") -> Path:
    """The project root for ``start`` (see module docstring)."""
    here = Path(start).absolute()
    for marker in (CONFIG_FILE, ".git", ".dvc"):
        for candidate in (here, *here.parents):
            if (candidate / marker).exists():
                return candidate
    return here


def read_file(root: Path) -> Mapping[str, str]:
    """The ``[cmfrun]`` section of ``root/.cmfconfig`` (empty when absent)."""
    path = root / CONFIG_FILE
    if not path.is_file():
        return {}
    parser = configparser.ConfigParser(inline_comment_prefixes=("#", ";"))
    try:
        parser.read(path, encoding="utf-8")
    except configparser.Error as exc:
        first = str(exc).splitlines()[0]
        raise InputFileError(f"{path}: not a valid config file: {first}") from None
    return dict(parser[SECTION]) if parser.has_section(SECTION) else {}


def write_file(root: Path, values: Mapping[str, str]) -> Path:
    """Write (merge) ``values`` into ``root/.cmfconfig``; returns its path."""
    path = root / CONFIG_FILE
    parser = configparser.ConfigParser()
    if path.is_file():
        parser.read(path, encoding="utf-8")
    if not parser.has_section(SECTION):
        parser.add_section(SECTION)
    for key, value in values.items():
        parser[SECTION][key] = value
    with open(path, "w", encoding="utf-8") as fh:
        parser.write(fh)
    return path


def resolve(
    *,
    store: Optional[str] = None,
    pipeline: Optional[str] = None,
    stage: Optional[str] = None,
    cwd: Union[str, Path] = ".",
    env: Optional[Mapping[str, str]] = None,
) -> Settings:
    """Resolve settings for a command run in ``cwd``."""
    env = os.environ if env is None else env
    root = find_root(cwd)
    dvc_root = env.get("DVC_ROOT")
    if dvc_root and not (root / CONFIG_FILE).exists() and (Path(dvc_root) / CONFIG_FILE).exists():
        root = Path(dvc_root)
    from_file = read_file(root)
    store_value = store or env.get(ENV_MLMD) or from_file.get("mlmd") or "mlmd"
    if "://" not in store_value and not os.path.isabs(store_value):
        base = Path(cwd).absolute() if (store or env.get(ENV_MLMD)) else root
        store_value = str(base / store_value)
    return Settings(
        root=root,
        store=store_value,
        pipeline=pipeline or env.get(ENV_PIPELINE) or from_file.get("pipeline") or root.name,
        stage=stage or env.get(ENV_STAGE) or from_file.get("stage") or None,
    )


__all__ = ["CONFIG_FILE", "ENV_MLMD", "ENV_PIPELINE", "ENV_STAGE", "Settings", "find_root", "read_file", "write_file", "resolve"]
