"""Text rendering for the query commands: tables, lineage trees, Graphviz dot, Mermaid, JSON.

Pure functions from result dataclasses to strings; the click commands print them.
"""
from __future__ import annotations

import dataclasses
import datetime
import json
from typing import Any, Dict, Iterable, List, Optional, Sequence, Set, Tuple

from cmfrun.commands.inspect import LineageResult
from cmfrun.lineage import LineageGraph
from cmfrun.records import INPUT, OUTPUT, Artifact, Execution

MAX_CELL = 60


def to_json(value: Any) -> str:
    """Dataclasses (nested), mappings and lists as indented JSON."""

    def default(obj: Any) -> Any:
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            return dataclasses.asdict(obj)
        if isinstance(obj, (set, frozenset, tuple)):
            return list(obj)
        return str(obj)

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    elif isinstance(value, list):
        value = [default(v) if dataclasses.is_dataclass(v) else v for v in value]
    return json.dumps(value, indent=2, default=default)


def when(ms: int) -> str:
    """Milliseconds since the epoch as local ``YYYY-MM-DD HH:MM:SS`` (empty for 0)."""
    if not ms:
        return ""
    return datetime.datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M:%S")


def text(value: Any) -> str:
    """A value as shown to people: whole doubles without ``.0`` (epoch ms, sizes > 2 GiB are
    stored as doubles where a backend's int column is 32-bit)."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return str(value)


def _cell(value: Any, limit: int = MAX_CELL) -> str:
    shown = text(value).replace("\n", " ")
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], *, limit: int = MAX_CELL) -> str:
    """A plain aligned text table (cells longer than ``limit`` are cut with ``...``)."""
    cells = [[_cell(c, limit) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, c in enumerate(row):
            widths[i] = max(widths[i], len(c))
    lines = ["  ".join(h.ljust(widths[i]) for i, h in enumerate(headers)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    for row in cells:
        lines.append("  ".join(c.ljust(widths[i]) for i, c in enumerate(row)).rstrip())
    return "\n".join(lines)


def key_values(pairs: Iterable[Tuple[str, Any]], indent: str = "  ") -> str:
    """``key: value`` lines, keys aligned."""
    pairs = list(pairs)
    width = max((len(k) for k, _ in pairs), default=0)
    return "\n".join(f"{indent}{k.ljust(width)}  {text(v)}" for k, v in pairs)


# -- lineage ---------------------------------------------------------------------------------
def _short(h: str) -> str:
    return h[:8] if len(h) > 8 else h


def artifact_label(a: Artifact) -> str:
    """``path (Type abcd1234)``."""
    return f"{a.path} ({a.type} {_short(a.uri)})"


def execution_label(e: Execution) -> str:
    """``stage #id STATE``."""
    from cmfrun.commands.inspect import execution_stage

    stage = execution_stage(e)[1] or e.type
    return f"{stage} #{e.id} {e.state}"


def _merged(result: LineageResult) -> Tuple[Dict[int, Artifact], Dict[int, Execution], Set[Tuple[int, int, str]]]:
    arts: Dict[int, Artifact] = {}
    execs: Dict[int, Execution] = {}
    edges: Set[Tuple[int, int, str]] = set()
    for g in (result.up, result.down):
        if g is None:
            continue
        arts.update(g.artifacts)
        execs.update(g.executions)
        edges.update(g.edges)
    return arts, execs, edges


def lineage_dict(result: LineageResult) -> Dict[str, Any]:
    """The lineage as plain JSON-able data: root, and per direction nodes with depths and edges."""

    def graph(g: Optional[LineageGraph]) -> Optional[Dict[str, Any]]:
        if g is None:
            return None
        from cmfrun.commands.inspect import execution_stage

        return {
            "artifacts": [
                {"id": a.id, "name": a.name, "path": a.path, "type": a.type, "hash": a.uri, "depth": g.artifact_depth[int(a.id or 0)]}
                for a in sorted(g.artifacts.values(), key=lambda a: (g.artifact_depth[int(a.id or 0)], a.id or 0))
            ],
            "executions": [
                {
                    "id": e.id,
                    "type": e.type,
                    "pipeline": execution_stage(e)[0],
                    "stage": execution_stage(e)[1],
                    "state": e.state,
                    "uuid": e.properties.get("Execution_uuid", ""),
                    "command": e.properties.get("Execution", ""),
                    "depth": g.execution_depth[int(e.id or 0)],
                }
                for e in sorted(g.executions.values(), key=lambda e: (g.execution_depth[int(e.id or 0)], e.id or 0))
            ],
            "edges": [{"execution": e, "artifact": a, "kind": k} for e, a, k in g.edges],
            "truncated": g.truncated,
        }

    return {
        "root": {"kind": result.root_kind, "id": result.root_id, "label": result.root_label},
        "up": graph(result.up),
        "down": graph(result.down),
    }


def _tree(g: LineageGraph, root_kind: str, root_id: int) -> List[str]:
    up = g.direction == "up"
    # Neighbours in the walk's direction, from the edge list.
    art_to_exec: Dict[int, List[int]] = {}
    exec_to_art: Dict[int, List[int]] = {}
    for e, a, k in g.edges:
        if (k == OUTPUT) == up:
            art_to_exec.setdefault(a, []).append(e)
        else:
            exec_to_art.setdefault(e, []).append(a)
    seen: Set[Tuple[str, int]] = set()
    lines: List[str] = []

    def label(kind: str, rid: int) -> str:
        if kind == "artifact":
            a = g.artifacts.get(rid)
            return artifact_label(a) if a else f"artifact #{rid}"
        e = g.executions.get(rid)
        text = execution_label(e) if e else f"execution #{rid}"
        cmd = str(e.properties.get("Execution", "")) if e else ""
        return f"[{text}] {_cell(cmd, 50)}".rstrip()

    def walk(kind: str, rid: int, prefix: str, last: bool, top: bool) -> None:
        connector = "" if top else ("`-- " if last else "|-- ")
        repeat = (kind, rid) in seen
        lines.append(f"{prefix}{connector}{label(kind, rid)}{' (see above)' if repeat else ''}")
        if repeat:
            return
        seen.add((kind, rid))
        kids = art_to_exec.get(rid, []) if kind == "artifact" else exec_to_art.get(rid, [])
        child_kind = "execution" if kind == "artifact" else "artifact"
        child_prefix = prefix if top else prefix + ("    " if last else "|   ")
        for i, kid in enumerate(sorted(set(kids))):
            walk(child_kind, kid, child_prefix, i == len(set(kids)) - 1, False)

    walk(root_kind, root_id, "", True, True)
    if g.truncated:
        lines.append("... (more beyond --depth)")
    return lines


def tree(result: LineageResult) -> str:
    """The lineage as indented trees: ancestors (up), then descendants (down)."""
    out: List[str] = []
    for title, g in (("ancestors (up)", result.up), ("descendants (down)", result.down)):
        if g is None:
            continue
        out.append(f"{title}:")
        out.extend("  " + line for line in _tree(g, result.root_kind, result.root_id))
    return "\n".join(out)


def _dot_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def dot(result: LineageResult) -> str:
    """Graphviz ``digraph``: boxes for artifacts, ellipses for executions, edges in data-flow direction."""
    arts, execs, edges = _merged(result)
    lines = ["digraph lineage {", "  rankdir=LR;", '  node [fontname="Helvetica", fontsize=10];']
    for aid in sorted(arts):
        a = arts[aid]
        bold = ", style=bold" if result.root_kind == "artifact" and aid == result.root_id else ""
        lines.append(f'  "a{aid}" [shape=box, label="{_dot_escape(a.path)}\\n{_dot_escape(a.type)} {_short(a.uri)}"{bold}];')
    for eid in sorted(execs):
        e = execs[eid]
        style = ["filled"] if e.state == "FAILED" else []
        if result.root_kind == "execution" and eid == result.root_id:
            style.append("bold")
        extra = f', style="{",".join(style)}"' if style else ""
        extra += ", fillcolor=mistyrose" if e.state == "FAILED" else ""
        lines.append(f'  "e{eid}" [shape=ellipse, label="{_dot_escape(execution_label(e))}"{extra}];')
    for eid, aid, k in sorted(edges):
        if eid not in execs or aid not in arts:
            continue
        lines.append(f'  "a{aid}" -> "e{eid}";' if k == INPUT else f'  "e{eid}" -> "a{aid}";')
    lines.append("}")
    return "\n".join(lines)


def _mermaid_escape(text: str) -> str:
    return text.replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")


def mermaid(result: LineageResult) -> str:
    """A Mermaid ``flowchart LR`` (paste into Markdown inside a ```mermaid fence)."""
    arts, execs, edges = _merged(result)
    lines = ["flowchart LR"]
    for aid in sorted(arts):
        a = arts[aid]
        lines.append(f'  a{aid}["{_mermaid_escape(a.path)}<br/>{_mermaid_escape(a.type)} {_short(a.uri)}"]')
    failed = []
    for eid in sorted(execs):
        e = execs[eid]
        lines.append(f'  e{eid}(["{_mermaid_escape(execution_label(e))}"])')
        if e.state == "FAILED":
            failed.append(f"e{eid}")
    for eid, aid, k in sorted(edges):
        if eid not in execs or aid not in arts:
            continue
        lines.append(f"  a{aid} --> e{eid}" if k == INPUT else f"  e{eid} --> a{aid}")
    root = f"{'a' if result.root_kind == 'artifact' else 'e'}{result.root_id}"
    lines.append("  classDef root stroke-width:3px")
    lines.append(f"  class {root} root")
    if failed:
        lines.append("  classDef failed fill:#fdd,stroke:#c00")
        lines.append(f"  class {','.join(failed)} failed")
    return "\n".join(lines)


__all__ = [
    "to_json",
    "when",
    "table",
    "key_values",
    "artifact_label",
    "execution_label",
    "lineage_dict",
    "tree",
    "dot",
    "mermaid",
]
