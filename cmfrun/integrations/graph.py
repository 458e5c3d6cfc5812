"""Mirror the store into a graph database (Neo4j or FalkorDB) and keep it in step.

:func:`sync` writes the graph of a store (:mod:`.graph_model`) with batched, parameterised
``UNWIND ... MERGE`` statements: a node or relationship already there is matched, not
created again, and a node's properties are rewritten only when they differ, so a second
sync writes nothing. The graph remembers how far it has seen each store (a
``CmfrunSync`` node with a watermark), so a later sync reads only what changed since.

:class:`GraphMirror` is what ``Cmf(graph=True)`` uses: after each call it mirrors the
current execution. An unreachable database costs one warning and is not tried again by
that writer; nothing is lost, since the store holds everything and ``cmf graph sync``
catches up.

Settings (:func:`resolve_settings`): explicit values, else CMF's ``NEO4J_URI``,
``NEO4J_USER_NAME``, ``NEO4J_PASSWD``, else ``neo4j_uri``/``neo4j_user`` in ``.cmfconfig``
and ``neo4j_password`` in the git-ignored ``.cmfconfig.local`` (what ``cmf init
--neo4j-*`` writes).

Example::

    target = open_target(resolve_settings(uri="falkor://127.0.0.1:6379/cmf"))
    report = sync(store, target, pipeline="demo")
    print(report.nodes_created, report.nodes_existing)
"""
from __future__ import annotations

import configparser
import logging
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from cmfrun import config, errors
from cmfrun.integrations import graph_model as gm
from cmfrun.integrations.graph_targets import GraphSettings, GraphTarget, batches, open_target
from cmfrun.records import Artifact
from cmfrun.store import Store

log = logging.getLogger(__name__)

#: CMF's environment variables for its Neo4j database.
ENV_URI, ENV_USER, ENV_PASSWORD = "NEO4J_URI", "NEO4J_USER_NAME", "NEO4J_PASSWD"
#: The git-ignored file ``cmf init --neo4j-password`` writes the password to.
LOCAL_CONFIG = ".cmfconfig.local"
#: Label of the node that holds a sync watermark (never a store record).
SYNC_LABEL = "CmfrunSync"
#: Rows per UNWIND statement: FalkorDB parses the parameters as text, and fewer, larger
#: statements cost less (10,000 rows: about 1.5 MB).
BATCH = 10_000
#: How far before the start of a sync the next one looks again, for writers whose
#: transaction began before the sync started. SQLite writers hold the store's write lock for
#: their whole transaction, so taking that lock once bounds them; servers get a wider margin
#: (and any clock skew between writer machines must stay under it).
MARGIN_MS_LOCKED = 1_000
MARGIN_MS_SERVER = 120_000


def _read_local_password(root: Path) -> str:
    path = root / LOCAL_CONFIG
    if not path.is_file():
        return ""
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except configparser.Error:
        raise errors.InputFileError(f"{path}: not a valid config file") from None
    return parser.get(config.SECTION, "neo4j_password", fallback="")


def resolve_settings(
    uri: Optional[str] = None,
    user: Optional[str] = None,
    password: Optional[str] = None,
    *,
    root: Optional[Path] = None,
    env: Optional[Mapping[str, str]] = None,
) -> Optional[GraphSettings]:
    """The graph database to use, or ``None`` when none is configured anywhere."""
    env = os.environ if env is None else env
    base = root if root is not None else config.find_root(".")
    from_file = config.read_file(base)
    chosen_uri = uri or env.get(ENV_URI) or from_file.get("neo4j_uri") or ""
    if not chosen_uri:
        return None
    chosen_user = user if user is not None else (env.get(ENV_USER) or from_file.get("neo4j_user") or "")
    chosen_pw = password if password is not None else (env.get(ENV_PASSWORD) or _read_local_password(base))
    settings = GraphSettings(chosen_uri.strip(), chosen_user, chosen_pw)
    settings.kind  # an unknown scheme is bad input now, not at first use
    return settings


# -- writing -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class WriteStats:
    """What one write of a graph did."""

    nodes_created: int = 0
    nodes_updated: int = 0
    nodes_existing: int = 0
    rels_created: int = 0
    rels_existing: int = 0

    def __add__(self, other: "WriteStats") -> "WriteStats":
        return WriteStats(
            self.nodes_created + other.nodes_created,
            self.nodes_updated + other.nodes_updated,
            self.nodes_existing + other.nodes_existing,
            self.rels_created + other.rels_created,
            self.rels_existing + other.rels_existing,
        )


def _key_match(var: str, label: str, prefix: str) -> str:
    """``(var:Label {k: row.<prefix>0, ...})`` for the label's key properties (``prefix``
    ``props.`` reads them from the row's properties)."""
    keys = gm.NODE_KEYS[label]  # KeyError for anything off the allow-list
    if prefix == "props.":
        inner = ", ".join(f"`{k}`: row.props.`{k}`" for k in keys)
    else:
        inner = ", ".join(f"`{k}`: row.{prefix}{i}" for i, k in enumerate(keys))
    return f"({var}:`{label}` {{{inner}}})"


def node_statement(label: str) -> str:
    """MERGE a batch of ``label`` nodes; rewrite properties only where they differ.

    Returns how many nodes were created or changed (``created`` comes from the stats).
    """
    return (
        f"UNWIND $rows AS row MERGE {_key_match('n', label, 'props.')} "
        "WITH n, row WHERE properties(n) <> row.props SET n = row.props RETURN count(n)"
    )


def rel_statement(rel_type: str, start: str, end: str, *, scan: bool = False) -> str:
    """MERGE a batch of ``rel_type`` relationships between existing nodes (``scan``: find
    the ends without the index, see :func:`~.graph_model.index_unsafe`)."""
    keys = gm.REL_KEYS[rel_type]
    inner = ", ".join(f"`{k}`: row.r{i}" for i, k in enumerate(keys))
    props = f" {{{inner}}}" if inner else ""
    extra = " ON CREATE SET r += row.props" if keys else ""
    if scan:
        match = f"MATCH (a:`{start}`) WHERE {_scan_where('a', start, 'row.s')} MATCH (b:`{end}`) WHERE {_scan_where('b', end, 'row.e')}"
    else:
        match = f"MATCH {_key_match('a', start, 's')} MATCH {_key_match('b', end, 'e')}"
    return f"UNWIND $rows AS row {match} MERGE (a)-[r:`{rel_type}`{props}]->(b){extra} RETURN count(r)"


def _scan_where(var: str, label: str, source: str) -> str:
    """``var.k + '' = <source>`` for each key: an expression, so no index is used."""
    keys = gm.NODE_KEYS[label]
    if source == "row.props":
        return " AND ".join(f"{var}.`{k}` + '' = row.props.`{k}`" for k in keys)
    return " AND ".join(f"{var}.`{k}` + '' = {source}{i}" for i, k in enumerate(keys))


def node_scan_statements(label: str) -> Tuple[str, str]:
    """For nodes whose keys the index cannot find: create the missing ones, then rewrite
    the properties of those that differ (each returns its count)."""
    where = _scan_where("n", label, "row.props")
    create = (
        f"UNWIND $rows AS row OPTIONAL MATCH (n:`{label}`) WHERE {where} "
        f"WITH row, count(n) AS found WHERE found = 0 CREATE (m:`{label}`) SET m = row.props RETURN count(m)"
    )
    update = (
        f"UNWIND $rows AS row MATCH (n:`{label}`) WHERE {where} AND properties(n) <> row.props "
        "SET n = row.props RETURN count(n)"
    )
    return create, update


def _node_row(node: gm.Node) -> Dict[str, Any]:
    # The key values are properties too (graph_model puts them there): no second copy.
    return {"props": dict(node.props)}


def _rel_row(rel: gm.Rel) -> Dict[str, Any]:
    row: Dict[str, Any] = {f"s{i}": v for i, v in enumerate(rel.start[1])}
    row.update({f"e{i}": v for i, v in enumerate(rel.end[1])})
    row.update({f"r{i}": rel.props.get(k, "") for i, k in enumerate(gm.REL_KEYS[rel.type])})
    if gm.REL_KEYS[rel.type]:
        row["props"] = dict(rel.props)
    return row


def ensure_indexes(target: GraphTarget, labels: Sequence[str]) -> None:
    """Index the key properties of ``labels`` so MERGE finds nodes without a scan."""
    for label in labels:
        for prop in gm.NODE_KEYS[label]:
            target.ensure_index(label, prop)


def _node_batch(target: GraphTarget, label: str, chunk: Sequence[gm.Node]) -> WriteStats:
    rows = {"rows": [_node_row(n) for n in chunk]}
    if gm.index_unsafe(chunk[0].key):  # a batch is all safe or all unsafe (write_model)
        create, update = node_scan_statements(label)
        created = target.run(create, rows).nodes_created
        res = target.run(update, rows)
        updated = int(res.rows[0][0]) if res.rows else 0
        return WriteStats(created, updated, len(chunk) - created - updated)
    res = target.run(node_statement(label), rows)
    changed = int(res.rows[0][0]) if res.rows else 0
    updated = max(0, changed - res.nodes_created)
    return WriteStats(res.nodes_created, updated, len(chunk) - res.nodes_created - updated)


def _rel_batch(target: GraphTarget, statement: str, chunk: Sequence[gm.Rel]) -> WriteStats:
    res = target.run(statement, {"rows": [_rel_row(r) for r in chunk]})
    matched = int(res.rows[0][0]) if res.rows else 0
    return WriteStats(rels_created=res.relationships_created, rels_existing=max(0, matched - res.relationships_created))


#: Statements in flight at once: while the database runs one batch, the client encodes the
#: next (the two overlap on two cores; more buys nothing, the database writes one at a time).
WRITERS = 2


def write_model(target: GraphTarget, model: gm.GraphModel, *, batch: int = BATCH) -> WriteStats:
    """Write ``model`` into ``target``: all nodes, then the relationships between them.

    Batches of one phase are independent (each node or relationship is in one batch), so
    up to :data:`WRITERS` run at once; the relationships start only when every node is in.
    Nodes whose keys an index cannot find (:func:`~.graph_model.index_unsafe`) and their
    relationships go in batches of their own that match by scanning.
    """
    by_label = model.nodes_by_label()
    ensure_indexes(target, sorted(by_label))
    node_jobs: List[Tuple[str, Sequence[gm.Node]]] = []
    for label in sorted(by_label):
        safe = [n for n in by_label[label] if not gm.index_unsafe(n.key)]
        unsafe = [n for n in by_label[label] if gm.index_unsafe(n.key)]
        node_jobs += [(label, chunk) for part in (safe, unsafe) for _, chunk in batches(part, batch)]
    rel_jobs: List[Tuple[str, Sequence[gm.Rel]]] = []
    for (rel_type, start, end), rels in sorted(model.rels_by_shape().items()):
        unsafe_rels = [r for r in rels if gm.index_unsafe(r.start[1]) or gm.index_unsafe(r.end[1])]
        safe_rels = [r for r in rels if not (gm.index_unsafe(r.start[1]) or gm.index_unsafe(r.end[1]))]
        for scan, part in ((False, safe_rels), (True, unsafe_rels)):
            statement = rel_statement(rel_type, start, end, scan=scan)
            rel_jobs += [(statement, chunk) for _, chunk in batches(part, batch)]
    stats = WriteStats()
    if len(model.nodes) + len(model.rels) <= batch:  # e.g. the API's per-call mirror: no threads for a few rows
        for label, node_chunk in node_jobs:
            stats += _node_batch(target, label, node_chunk)
        for statement, rel_chunk in rel_jobs:
            stats += _rel_batch(target, statement, rel_chunk)
        return stats
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=WRITERS) as pool:
        for done in pool.map(lambda job: _node_batch(target, *job), node_jobs):
            stats += done
        for done in pool.map(lambda job: _rel_batch(target, *job), rel_jobs):
            stats += done
    return stats


# -- sync --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SyncReport:
    """What :func:`sync` did: counts, where, how long, and whether it read the whole store."""

    target: str
    pipeline: Optional[str]
    full: bool
    executions: int
    artifacts: int
    nodes_created: int
    nodes_updated: int
    nodes_existing: int
    rels_created: int
    rels_existing: int
    seconds: float


def store_identity(store: Store) -> str:
    """How the graph names a store in its sync watermark (no password)."""
    return str(store.location)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _sync_start_ms(store: Store) -> int:
    """A time such that every write not yet visible to a read starting now is stamped later."""
    if store.location.backend == "sqlite" and not store.read_only:
        # Writers stamp and commit while holding this lock: once we hold it, every write
        # stamped before now is committed, and every later one is stamped after now.
        with store.write_lock():
            return _now_ms() - MARGIN_MS_LOCKED
    return _now_ms() - MARGIN_MS_SERVER


def read_watermark(target: GraphTarget, store: Store, pipeline: Optional[str]) -> Optional[int]:
    """The time up to which ``target`` has seen ``store`` (``None``: never synced)."""
    res = target.run(
        f"MATCH (s:`{SYNC_LABEL}` {{store: $store, pipeline: $pipeline}}) RETURN s.watermark_ms",
        {"store": store_identity(store), "pipeline": pipeline or "*"},
    )
    if not res.rows or res.rows[0][0] is None:
        return None
    return int(res.rows[0][0])


def _write_watermark(target: GraphTarget, store: Store, pipeline: Optional[str], watermark: int) -> None:
    target.run(
        f"MERGE (s:`{SYNC_LABEL}` {{store: $store, pipeline: $pipeline}}) SET s.watermark_ms = $w",
        {"store": store_identity(store), "pipeline": pipeline or "*", "w": watermark},
    )


def sync(store: Store, target: GraphTarget, *, pipeline: Optional[str] = None, full: bool = False) -> SyncReport:
    """Mirror ``store`` (or one pipeline of it) into ``target``.

    The first sync (or ``full=True``) sends everything; later ones send what changed
    since the last (executions and artifacts updated, events added). Re-sending is
    harmless: every write is a MERGE.
    """
    t0 = time.perf_counter()
    start_ms = _sync_start_ms(store)
    since = None if full else read_watermark(target, store, pipeline)
    read = gm.read_store(store, pipeline=pipeline, since_ms=since)
    stats = write_model(target, read.model) if read.model.nodes or read.model.rels else WriteStats()
    if since is None or stats.nodes_created or stats.nodes_updated or stats.rels_created or read.executions:
        _write_watermark(target, store, pipeline, start_ms)
    return SyncReport(
        target=target.shown,
        pipeline=pipeline,
        full=since is None,
        executions=read.executions,
        artifacts=read.artifacts,
        nodes_created=stats.nodes_created,
        nodes_updated=stats.nodes_updated,
        nodes_existing=stats.nodes_existing,
        rels_created=stats.rels_created,
        rels_existing=stats.rels_existing,
        seconds=time.perf_counter() - t0,
    )


# -- the API's live mirror ------------------------------------------------------------------------
class GraphMirror:
    """Mirror what a :class:`~cmfrun.api.Cmf` writer records, call by call.

    Made by :meth:`connect`. Wrong credentials raise :class:`~cmfrun.errors.GraphAuthError`
    there (a configuration error, before anything is recorded); an unreachable database,
    then or later, logs one warning and turns the mirror off for this writer.
    """

    def __init__(self, settings: GraphSettings, target: Optional[GraphTarget]):
        self.settings = settings
        self._target = target
        self._warned = False

    @classmethod
    def connect(cls, settings: GraphSettings) -> "GraphMirror":
        """Open the mirror's database (see the class docstring for failures)."""
        mirror = cls(settings, None)
        try:
            mirror._target = open_target(settings)
        except errors.GraphAuthError:
            raise
        except errors.GraphError as exc:
            mirror._give_up(exc)
        return mirror

    @property
    def active(self) -> bool:
        """Whether calls still reach the database."""
        return self._target is not None

    def _give_up(self, exc: BaseException) -> None:
        if not self._warned:
            log.warning("graph database not updated (%s); the store has everything: run `cmf graph sync` later", exc)
            self._warned = True
        if self._target is not None:
            self._target.close()
        self._target = None

    def _write(self, model: gm.GraphModel) -> None:
        if self._target is None:
            return
        try:
            write_model(self._target, model)
        except Exception as exc:  # noqa: BLE001 - a mirror failure must never break the caller's log call
            self._give_up(exc)

    def execution(self, store: Store, execution_id: int) -> None:
        """Mirror one execution with its stage, pipeline, artifacts and links."""
        if self._target is None:
            return
        try:
            model = gm.read_execution(store, execution_id)
        except Exception as exc:  # noqa: BLE001 - as in _write: the store keeps the record
            self._give_up(exc)
            return
        self._write(model)

    def contexts(self, pipeline: Any, stage: Any = None) -> None:
        """Mirror a pipeline context (and a stage context under it)."""
        if self._target is None:
            return
        model = gm.GraphModel()
        model.add_node(gm.pipeline_node(pipeline))
        if stage is not None:
            model.add_node(gm.stage_node(stage, pipeline))
            model.add_rel(gm.Rel(gm.CONTAINS, (gm.PIPELINE, (pipeline.name,)), (gm.STAGE, (stage.name,))))
        self._write(model)

    def artifacts(self, arts: Sequence[Artifact]) -> None:
        """Mirror artifacts and their own relationships (``derived``, ``has_label``)."""
        if self._target is None:
            return
        model = gm.GraphModel()
        for art in arts:
            model.add_node(gm.artifact_node(art))
            for source in gm.derived_sources(art):
                model.add_rel(gm.Rel(gm.DERIVED, source, gm.artifact_ref(art.type, art.uri)))
        self._write(model)

    def close(self) -> None:
        """Close the connection."""
        if self._target is not None:
            self._target.close()
            self._target = None


#: Set to 1 (or ``graph = true`` in ``.cmfconfig``): the merger mirrors each `cmfrun --` run
#: it merges into the configured graph database, as ``Cmf(graph=True)`` does for API calls.
ENV_GRAPH = "CMFRUN_GRAPH"
_TRUE = ("1", "true", "yes", "on")


def live_mirror_wanted(root: Path, env: Optional[Mapping[str, str]] = None) -> bool:
    """Whether merged `cmfrun --` runs go to the graph database (``CMFRUN_GRAPH``, else
    ``graph`` in ``.cmfconfig``; off by default, as ``graph=False`` is in the API)."""
    env = os.environ if env is None else env
    flag = env.get(ENV_GRAPH, "").strip().lower()
    if flag:
        return flag in _TRUE
    return config.read_file(root).get("graph", "").strip().lower() in _TRUE


def mirror_runs(store: Store, runs: Sequence[Tuple[str, str]], *, root: Optional[Path] = None) -> Optional[str]:
    """Mirror just-merged runs (``(execution type, execution name)`` pairs, as the merger
    reports them) when :func:`live_mirror_wanted`. Returns the one warning for a failure
    (the runs are in the store; ``cmf graph sync`` sends them later), else ``None``."""
    runs = [r for r in runs if r[1]]
    if not runs:
        return None
    try:
        base = root if root is not None else config.find_root(".")
        if not live_mirror_wanted(base):
            return None
        settings = resolve_settings(root=base)
        if settings is None:
            return f"{ENV_GRAPH} is on but no graph database is configured (NEO4J_URI or `cmf init --neo4j-uri`)"
        target = open_target(settings)
        try:
            model = gm.GraphModel()
            for type_name, name in runs:
                ex = store.execution_by_type_and_name(type_name, name)
                if ex is not None and ex.id is not None:
                    part = gm.read_execution(store, int(ex.id))
                    model.nodes.update(part.nodes)
                    model.rels.update(part.rels)
            write_model(target, model)
        finally:
            target.close()
        return None
    except Exception as exc:  # noqa: BLE001 - the runs are recorded; the graph catches up later
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return f"{len(runs)} run(s) not mirrored to the graph database: {first} (later: cmf graph sync)"


def link_artifacts(store: Store, source: Artifact, target: Artifact) -> Artifact:
    """Record that ``target`` derives from ``source`` (CMF's ``link_artifacts``).

    Kept in the store as the target's ``derived_from`` custom property (``<type>:<uri>``
    entries), so every sync and export shows it as ``(source)-[:derived]->(target)``.
    Returns the updated target.
    """
    if source.id is None or target.id is None:
        raise errors.UsageError("link_artifacts needs two stored artifacts (with ids)")
    found = {int(a.id or 0): a for a in store.artifacts_by_id([int(source.id), int(target.id)])}
    src, dst = found.get(int(source.id)), found.get(int(target.id))
    if src is None or dst is None:
        raise errors.NotFoundError(f"no artifact with id {source.id if src is None else target.id}")
    entry = f"{src.type}:{src.uri}"
    entries = [e for e in str(dst.custom.get(gm.DERIVED_FROM, "") or "").split(",") if e]
    if entry in entries:
        return dst
    updated = replace(dst, custom={**dst.custom, gm.DERIVED_FROM: ",".join(entries + [entry])})
    store.update_artifact(updated)
    return updated


__all__ = [
    "ENV_URI",
    "ENV_USER",
    "ENV_PASSWORD",
    "LOCAL_CONFIG",
    "SYNC_LABEL",
    "ENV_GRAPH",
    "live_mirror_wanted",
    "mirror_runs",
    "GraphSettings",
    "WriteStats",
    "SyncReport",
    "GraphMirror",
    "resolve_settings",
    "node_statement",
    "node_scan_statements",
    "rel_statement",
    "ensure_indexes",
    "write_model",
    "read_watermark",
    "store_identity",
    "sync",
    "link_artifacts",
    "open_target",
]
