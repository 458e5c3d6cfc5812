"""Write the graph of a store (:mod:`.graph_model`) as Cypher, GraphML or JSON, with no
graph database involved.

- ``cypher``: one statement per line, ending in ``;`` (``cypher-shell -f FILE`` runs it;
  so does any client fed line by line): ``MERGE`` of every node, then ``MATCH ... MERGE``
  of every relationship, so replaying it twice changes nothing. Every value is a Cypher
  literal with ``\\``, ``"``, newline, carriage return, tab, backspace and form feed escaped
  (other characters are written as they are, inside the quotes); names are backtick-quoted.
  Statements are separated by ``\n`` only.
- ``graphml``: GraphML 1.0 with a ``labels`` key on nodes (``:Dataset``) and a ``label``
  key on edges (the relationship type), like Neo4j's own GraphML export. XML 1.0 cannot
  hold control characters other than tab, newline and carriage return: they are written
  as U+FFFD.
- ``json``: ``{"nodes": [{"id", "labels", "properties"}], "relationships": [{"id", "type",
  "start", "end", "properties"}]}``.

Example::

    text = render(read_store(store).model, "cypher")
"""
from __future__ import annotations

import io
import json
import re
import xml.etree.ElementTree as ET
from typing import Dict, List, Mapping

from cmfrun import errors
from cmfrun.integrations import graph_model as gm
from cmfrun.records import Value

FORMATS = ("cypher", "graphml", "json")
#: Escaped in string literals; other characters go in as they are (FalkorDB has no ``\\uXXXX``
#: escape, and Neo4j and FalkorDB both take any raw character inside quotes).
_CONTROL = re.compile("[\n\r\t\b\f]")
_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_SIMPLE_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}


def cypher_string(text: str) -> str:
    """``text`` as a double-quoted Cypher string literal."""
    body = text.replace("\\", "\\\\").replace('"', '\\"')
    body = _CONTROL.sub(lambda m: _SIMPLE_ESCAPES[m.group()], body)
    return f'"{body}"'


def cypher_ident(name: str) -> str:
    """A label, type or property name as a backtick-quoted Cypher identifier."""
    return "`" + name.replace("`", "``") + "`"


def cypher_value(value: Value) -> str:
    """A property value as a Cypher literal."""
    value = gm.clean(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    return cypher_string(str(value))


def cypher_map(props: Mapping[str, Value]) -> str:
    """A property map as a Cypher map literal."""
    return "{" + ", ".join(f"{cypher_ident(k)}: {cypher_value(v)}" for k, v in props.items()) + "}"


def _match(var: str, ref: gm.NodeRef) -> str:
    label, key = ref
    keys = dict(zip(gm.NODE_KEYS[label], key))
    return f"({var}:{cypher_ident(label)} {cypher_map(keys)})"


def to_cypher(model: gm.GraphModel) -> str:
    """The graph as Cypher statements (see the module docstring)."""
    out = io.StringIO()
    out.write(f"// cmfrun graph export: {len(model.nodes)} nodes, {len(model.rels)} relationships; one statement per line\n")
    for node in model.nodes.values():
        out.write(f"MERGE {_match('n', node.ref)} SET n = {cypher_map(node.props)};\n")
    for rel in model.rels.values():
        keys = {k: rel.props.get(k, "") for k in gm.REL_KEYS[rel.type]}
        props = f" {cypher_map(keys)}" if keys else ""
        extra = f" ON CREATE SET r += {cypher_map(rel.props)}" if keys else ""
        out.write(
            f"MATCH {_match('a', rel.start)} MATCH {_match('b', rel.end)} "
            f"MERGE (a)-[r:{cypher_ident(rel.type)}{props}]->(b){extra};\n"
        )
    return out.getvalue()


def _ids(model: gm.GraphModel) -> Dict[gm.NodeRef, str]:
    return {ref: f"n{i}" for i, ref in enumerate(model.nodes)}


def to_json(model: gm.GraphModel) -> str:
    """The graph as JSON (see the module docstring)."""
    ids = _ids(model)
    nodes = [{"id": ids[n.ref], "labels": [n.label], "properties": dict(n.props)} for n in model.nodes.values()]
    rels = [
        {"id": f"r{i}", "type": r.type, "start": ids[r.start], "end": ids[r.end], "properties": dict(r.props)}
        for i, r in enumerate(model.rels.values())
        if r.start in ids and r.end in ids
    ]
    return json.dumps({"nodes": nodes, "relationships": rels}, indent=1, ensure_ascii=False, allow_nan=False) + "\n"


def _graphml_type(values: List[Value]) -> str:
    if all(isinstance(v, int) for v in values):
        return "long"
    if all(isinstance(v, (int, float)) for v in values):
        return "double"
    return "string"


def _xml_text(value: Value) -> str:
    return _XML_BAD.sub("\ufffd", str(value))


def to_graphml(model: gm.GraphModel) -> str:
    """The graph as GraphML (see the module docstring)."""
    ns = "http://graphml.graphdrawing.org/xmlns"
    root = ET.Element("graphml", {"xmlns": ns})
    node_vals: Dict[str, List[Value]] = {}
    for n in model.nodes.values():
        for k, v in n.props.items():
            node_vals.setdefault(k, []).append(v)
    edge_vals: Dict[str, List[Value]] = {}
    for r in model.rels.values():
        for k, v in r.props.items():
            edge_vals.setdefault(k, []).append(v)
    node_keys: Dict[str, str] = {}
    edge_keys: Dict[str, str] = {}
    ET.SubElement(root, "key", {"id": "labels", "for": "node", "attr.name": "labels", "attr.type": "string"})
    ET.SubElement(root, "key", {"id": "label", "for": "edge", "attr.name": "label", "attr.type": "string"})
    for i, (k, vals) in enumerate(sorted(node_vals.items())):
        node_keys[k] = f"n_{i}"
        ET.SubElement(root, "key", {"id": node_keys[k], "for": "node", "attr.name": _xml_text(k), "attr.type": _graphml_type(vals)})
    for i, (k, vals) in enumerate(sorted(edge_vals.items())):
        edge_keys[k] = f"e_{i}"
        ET.SubElement(root, "key", {"id": edge_keys[k], "for": "edge", "attr.name": _xml_text(k), "attr.type": _graphml_type(vals)})
    graph = ET.SubElement(root, "graph", {"id": "cmf", "edgedefault": "directed"})
    ids = _ids(model)
    for n in model.nodes.values():
        el = ET.SubElement(graph, "node", {"id": ids[n.ref]})
        ET.SubElement(el, "data", {"key": "labels"}).text = f":{n.label}"
        for k, v in n.props.items():
            ET.SubElement(el, "data", {"key": node_keys[k]}).text = _xml_text(v)
    for i, r in enumerate(model.rels.values()):
        if r.start not in ids or r.end not in ids:
            continue
        el = ET.SubElement(graph, "edge", {"id": f"e{i}", "source": ids[r.start], "target": ids[r.end]})
        ET.SubElement(el, "data", {"key": "label"}).text = r.type
        for k, v in r.props.items():
            ET.SubElement(el, "data", {"key": edge_keys[k]}).text = _xml_text(v)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def render(model: gm.GraphModel, fmt: str) -> str:
    """The graph in ``fmt`` (one of :data:`FORMATS`)."""
    if fmt == "cypher":
        return to_cypher(model)
    if fmt == "graphml":
        return to_graphml(model)
    if fmt == "json":
        return to_json(model)
    raise errors.UsageError(f"unknown graph export format {fmt!r}: use one of {', '.join(FORMATS)}")


def split_statements(text: str) -> List[str]:
    """The statements of a :func:`to_cypher` file (for clients that run one at a time)."""
    # Split on "\n" only: str.splitlines() would also split on characters such as U+2028
    # that may sit, unescaped, inside a string literal.
    return [line.rstrip(";") for line in text.split("\n") if line.strip() and not line.startswith("//")]


__all__ = [
    "FORMATS",
    "cypher_string",
    "cypher_ident",
    "cypher_value",
    "cypher_map",
    "to_cypher",
    "to_json",
    "to_graphml",
    "render",
    "split_statements",
]
