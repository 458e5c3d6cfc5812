"""Lay out a lineage graph for SVG with grandalf's Sugiyama layout (what ``dvc dag`` uses).

Data flows top to bottom: inputs above the executions that read them, outputs
below. Each connected component is laid out alone and the components are
placed side by side. Coordinates are in SVG user units.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Sequence, Tuple

from cmfrun.commands.browse import GraphNode, LineageView

CHAR_W = 7.0
NODE_H = 34.0
PAD_X = 16.0
MAX_LABEL = 40
GAP = 40.0
MARGIN = 20.0


@dataclass(frozen=True)
class PlacedNode:
    """A node with its box: centre ``x``, ``y`` and size."""

    node: GraphNode
    x: float
    y: float
    w: float
    h: float
    label: str


@dataclass(frozen=True)
class PlacedEdge:
    """An edge as a polyline from source box to target box."""

    source: str
    target: str
    points: Tuple[Tuple[float, float], ...]


@dataclass(frozen=True)
class Drawing:
    """A laid-out graph and the size of its canvas."""

    nodes: Tuple[PlacedNode, ...]
    edges: Tuple[PlacedEdge, ...]
    width: float
    height: float


class _View:
    """What grandalf needs of a vertex: its box size; it sets ``xy``."""

    def __init__(self, w: float, h: float) -> None:
        self.w, self.h = w, h
        self.xy = (0.0, 0.0)


class _EdgeView:
    def __init__(self) -> None:
        self.pts: List[Tuple[float, float]] = []

    def setpath(self, pts: Sequence[Any]) -> None:
        self.pts = [(float(p[0]), float(p[1])) for p in pts]


def short_label(text: str) -> str:
    """A label cut to :data:`MAX_LABEL` characters (the full text is in the tooltip)."""
    return text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 1] + "\u2026"


def layout(view: LineageView) -> Drawing:
    """Positions for every node and a polyline for every edge of ``view``."""
    from grandalf.graphs import Edge, Graph, Vertex
    from grandalf.layouts import SugiyamaLayout

    vertices: Dict[str, Any] = {}
    for n in view.nodes:
        v = Vertex(n.key)
        label = short_label(n.label)
        v.view = _View(max(len(label), len(n.detail[:MAX_LABEL])) * CHAR_W + 2 * PAD_X, NODE_H)
        vertices[n.key] = v
    edges = []
    for s, t in view.edges:
        if s in vertices and t in vertices and s != t:
            e = Edge(vertices[s], vertices[t])
            e.view = _EdgeView()
            edges.append(e)
    graph = Graph(list(vertices.values()), edges)
    placed: Dict[str, Tuple[float, float]] = {}
    paths: Dict[Tuple[str, str], List[Tuple[float, float]]] = {}
    offset_x = MARGIN
    height = 0.0
    for comp in graph.C:
        sug = SugiyamaLayout(comp)
        roots = [v for v in comp.sV if not v.e_in()]
        sug.init_all(roots=roots or None, optimize=True)
        sug.xspace = 30
        sug.yspace = 50
        sug.draw()
        xs = [v.view.xy[0] - v.view.w / 2 for v in comp.sV] + [v.view.xy[0] + v.view.w / 2 for v in comp.sV]
        ys = [v.view.xy[1] - v.view.h / 2 for v in comp.sV] + [v.view.xy[1] + v.view.h / 2 for v in comp.sV]
        min_x, max_x, min_y, max_y = min(xs), max(xs), min(ys), max(ys)
        dx, dy = offset_x - min_x, MARGIN - min_y
        for v in comp.sV:
            placed[v.data] = (v.view.xy[0] + dx, v.view.xy[1] + dy)
        for e in comp.sE:
            pts = getattr(e.view, "pts", []) or [e.v[0].view.xy, e.v[1].view.xy]
            paths[(e.v[0].data, e.v[1].data)] = [(p[0] + dx, p[1] + dy) for p in pts]
        offset_x += max_x - min_x + GAP
        height = max(height, max_y - min_y)
    nodes = tuple(
        PlacedNode(n, placed[n.key][0], placed[n.key][1], vertices[n.key].view.w, NODE_H, short_label(n.label)) for n in view.nodes
    )
    out_edges = []
    for s, t in view.edges:
        if (s, t) in paths:
            out_edges.append(PlacedEdge(s, t, tuple(_clip(paths[(s, t)], placed[s], placed[t]))))
    return Drawing(nodes, tuple(out_edges), offset_x - GAP + MARGIN, height + 2 * MARGIN)


def _clip(pts: List[Tuple[float, float]], src: Tuple[float, float], dst: Tuple[float, float]) -> List[Tuple[float, float]]:
    """Start the line at the bottom of the source box and end it at the top of the target box."""
    half = NODE_H / 2
    middle = pts[1:-1] if len(pts) > 2 else []
    start = (src[0], src[1] + half) if dst[1] >= src[1] else (src[0], src[1] - half)
    end = (dst[0], dst[1] - half) if dst[1] >= src[1] else (dst[0], dst[1] + half)
    return [start, *middle, end]


__all__ = ["PlacedNode", "PlacedEdge", "Drawing", "layout", "short_label"]
