"""Templates and static files of the UI (shipped in the wheel as package data).

Jinja2 renders with autoescape on for every template, so every value from a store
(names, paths, params, commands) is HTML-escaped; nothing is marked safe.
"""
from __future__ import annotations

import datetime
from importlib import resources
from typing import Any, Iterable, List, Mapping, Tuple
from urllib.parse import urlencode

import jinja2

from cmfrun.commands.browse import value_text


def when(ms: Any) -> str:
    """Epoch milliseconds as local ``YYYY-MM-DD HH:MM:SS`` (empty for 0/None)."""
    if not ms:
        return ""
    return datetime.datetime.fromtimestamp(float(ms) / 1000).strftime("%Y-%m-%d %H:%M:%S")


def seconds(value: Any) -> str:
    """A duration in seconds, short."""
    if value is None or value == "":
        return ""
    v = float(value)
    return f"{v:.2f} s" if v < 60 else f"{v / 60:.1f} min"


def with_query(base: Mapping[str, Any], **changes: Any) -> str:
    """``?query`` from ``base`` (a query-params multi-dict or mapping) with ``changes``
    (``None`` removes a key, a list sets repeated values)."""
    items: List[Tuple[str, str]] = []
    multi = getattr(base, "multi_items", None)
    pairs: Iterable[Tuple[str, Any]] = multi() if multi is not None else base.items()
    for k, v in pairs:
        if k not in changes:
            items.append((k, str(v)))
    for k, v in changes.items():
        if v is None:
            continue
        if isinstance(v, (list, tuple)):
            items.extend((k, str(x)) for x in v)
        else:
            items.append((k, str(v)))
    return "?" + urlencode(items) if items else "?"


def column_title(col: str) -> str:
    """``param:lr`` -> ``lr``; ``metric:acc`` -> ``acc``."""
    return col.split(":", 1)[1] if ":" in col else col


def column_value(row: Any, col: str) -> str:
    """The value of a chosen column (``param:K`` / ``metric:K``) in an execution row."""
    kind, _, key = col.partition(":")
    source = row.params if kind == "param" else row.metrics
    return value_text(source.get(key))


def environment(prefix: str) -> jinja2.Environment:
    """The Jinja2 environment: package templates, autoescape on, the UI's helpers."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("cmfrun.ui", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(prefix=prefix, with_query=with_query, column_title=column_title, column_value=column_value)
    env.filters.update(when=when, val=value_text, seconds=seconds)
    return env


def static_file(name: str) -> bytes:
    """A file from the package's ``static`` folder (callers pass only known names)."""
    return resources.files("cmfrun.ui").joinpath("static").joinpath(name).read_bytes()


__all__ = ["environment", "static_file", "when", "seconds", "with_query", "column_title", "column_value"]
