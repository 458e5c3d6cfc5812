"""String literals in MLMD filter queries: the one place that decides which text may go in.

ml-metadata parses a filter query with ZetaSQL, then writes each string literal back
into the SQL it runs without escaping it for the backend (ml-metadata 1.17.1, checked
on each backend): on PostgreSQL the literal is re-quoted with single quotes as is, so
a value holding ``'`` ends the string and the rest runs as SQL; on SQLite a value with
both quote kinds breaks the query; a backslash or control character is re-escaped
ZetaSQL's way and then matches nothing on SQLite/PostgreSQL; on PostgreSQL backticks
are stripped from the whole query. ZetaSQL itself does not read ``''`` as a quote.

So a value goes into a filter query only when it holds none of those characters
(:func:`filter_safe`); the others are looked up one by one with MLMD's per-name calls
(:func:`artifacts_named`, :func:`executions_named`, ``Store.artifacts_by_uri``), which
escape the value themselves (on PostgreSQL ml-metadata cannot escape a backslash either:
:class:`cmfrun.store.mlmd.MlmdStore` has the sql engine make those calls). The sql engine
binds every literal as a parameter
(:mod:`cmfrun.store.filterquery`), so the rule is only needed for ml-metadata, but both
engines follow it: one query text means the same on both.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Iterable, List, Optional, Tuple

from cmfrun import errors

if TYPE_CHECKING:
    from cmfrun.records import Artifact, Execution
    from cmfrun.store import Store

#: Characters no filter-query literal may hold (see the module docstring); surrogates
#: cannot be stored at all (MLMD's protobufs refuse them).
_UNSAFE = re.compile("['\"\\\\`\x00-\x1f\x7f\ud800-\udfff]")
#: What may never appear in a whole filter query handed to ml-metadata: with none of these,
#: no ZetaSQL string literal or quoted identifier can hold a quote or backslash.
_UNSAFE_QUERY = re.compile("[\"\\\\`]|'''")
#: Values per ``IN (...)`` list: ingest and merge look up this many names per query.
CHUNK = 200


def filter_safe(text: str) -> bool:
    """Whether ``text`` can go into an MLMD filter query as a plain ``'...'`` literal."""
    return _UNSAFE.search(text) is None


def filter_literal(text: str) -> Optional[str]:
    """``text`` as a filter-query string literal, or ``None`` when it cannot be one safely
    (the caller then looks the value up with a parameterised per-item call)."""
    return f"'{text}'" if filter_safe(text) else None


def like_prefix(text: str) -> str:
    """A LIKE pattern literal matching every string that starts with ``text``, and more:
    the text is cut at its first unsafe character, and ``%``/``_`` in it are wildcards.
    Always safe; callers re-check what it finds exactly."""
    cut = _UNSAFE.search(text)
    return "'" + (text[: cut.start()] if cut else text) + "%'"


def in_filters(field: str, values: Iterable[str], chunk: int = CHUNK) -> Tuple[List[str], List[str]]:
    """``(queries, others)``: ``field IN (...)`` filter queries for the safe values, ``chunk``
    values each, and the values that must be looked up one by one (duplicates dropped)."""
    unique = list(dict.fromkeys(values))
    safe = [v for v in unique if filter_safe(v)]
    others = [v for v in unique if not filter_safe(v)]
    queries = [f"{field} IN ({','.join(safe_literal(v) for v in safe[i:i + chunk])})" for i in range(0, len(safe), chunk)]
    return queries, others


def safe_literal(text: str) -> str:
    """The literal of a value known to be :func:`filter_safe` (raises ``ValueError`` otherwise)."""
    lit = filter_literal(text)
    if lit is None:
        raise ValueError(f"{text!r} cannot go into a filter query")
    return lit


def check_filter_query(text: str) -> None:
    """Refuse a whole filter query that could smuggle a quote into ml-metadata's SQL: one
    holding a double quote, a backslash, a backtick or a triple quote (cmfrun builds its
    queries with :func:`filter_literal`, which never writes those)."""
    if _UNSAFE_QUERY.search(text):
        raise errors.UsageError(
            f"filter query {text[:80]!r} holds a double quote, backslash, backtick or triple quote, "
            "which ml-metadata cannot pass to SQL safely"
        )


def artifacts_named(store: "Store", names: Iterable[str], chunk: int = CHUNK) -> List["Artifact"]:
    """Artifacts (of any type) whose name is one of ``names``: the engine's bound-parameter
    lookup where it has one, else batched filter queries for ordinary names and one
    parameterised lookup per artifact type for the others."""
    names = list(names)
    bound = store.artifacts_by_names(names)
    if bound is not None:
        return bound
    queries, others = in_filters("name", names, chunk)
    found = [a for q in queries for a in store.artifacts(q)]
    types = store.type_names("artifact") if others else []
    for name in others:
        found += [a for a in (store.artifact_by_type_and_name(t, name) for t in types) if a is not None]
    return found


def executions_named(store: "Store", names: Iterable[str], chunk: int = CHUNK) -> List["Execution"]:
    """Executions (of any type) whose name is one of ``names`` (see :func:`artifacts_named`)."""
    names = list(names)
    bound = store.executions_by_names(names)
    if bound is not None:
        return bound
    queries, others = in_filters("name", names, chunk)
    found = [e for q in queries for e in store.executions(q)]
    types = store.type_names("execution") if others else []
    for name in others:
        if name:  # MLMD keeps unnamed executions as NULL: an empty name names none
            found += [e for e in (store.execution_by_type_and_name(t, name) for t in types) if e is not None]
    return found


__all__ = [
    "CHUNK",
    "filter_safe",
    "filter_literal",
    "like_prefix",
    "in_filters",
    "safe_literal",
    "check_filter_query",
    "artifacts_named",
    "executions_named",
]
