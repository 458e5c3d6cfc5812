"""``CmfQuery``: CMF's query class over a cmfrun (or CMF) store, without its slow paths.

Method names, arguments and return shapes follow cmflib's ``CmfQuery`` so
notebooks written for CMF keep working; DataFrames need pandas (the
``cmfrun[query]`` extra). Differences, all deliberate:

- Opening a path that does not exist raises :class:`~cmfrun.errors.NotFoundError`
  (CMF silently creates an empty store, contract Q17). Server URIs work too.
- Lineage is walked level by level with batched calls (:mod:`cmfrun.lineage`),
  not one store call per path.
- ``execution_type_name`` is a plain string (CMF returns a protobuf Value, Q14).
- ``get_metrics`` reads the step-metrics parquet (CMF's always returns None, Q15).
- Methods returning MLMD protobufs in CMF (``get_all_exe_in_stage``,
  ``find_producer_execution``) return :class:`cmfrun.records.Execution`
  records: ``.id``, ``.name``, ``.type``, ``.properties`` (plain values).

Example::

    from cmfrun import CmfQuery
    q = CmfQuery("mlmd")
    for stage in q.get_pipeline_stages("demo"):
        print(q.get_all_executions_in_stage(stage)[["id", "Execution"]])
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

from cmfrun import errors, lineage, schema
from cmfrun.records import INPUT, OUTPUT, Artifact, Context, Event, Execution
from cmfrun.sync.bundle import dumptojson_node

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from cmfrun.store import Store

log = logging.getLogger(__name__)

__all__ = ["CmfQuery", "require_pandas", "execution_row", "artifact_row", "dump_pipeline"]

#: MLMD's numeric event types, as CMF's JSON export writes them.
EVENT_TYPE_NUMBER = {
    "UNKNOWN": 0,
    "DECLARED_OUTPUT": 1,
    "DECLARED_INPUT": 2,
    "INPUT": 3,
    "OUTPUT": 4,
    "INTERNAL_INPUT": 5,
    "INTERNAL_OUTPUT": 6,
    "PENDING_OUTPUT": 7,
}


def require_pandas() -> Any:
    """Import pandas or raise a one-line :class:`~cmfrun.errors.UsageError` naming the extra."""
    try:
        import pandas
    except ImportError:
        raise errors.UsageError(
            "CmfQuery's DataFrame methods need pandas: pip install 'cmfrun[query]'"
        ) from None
    return pandas


def _frame(rows: Sequence[Dict[str, Any]]) -> "pd.DataFrame":
    """Rows -> DataFrame with CMF's shape: sorted columns, index 0..n-1 (CMF concats with sort=True)."""
    pd = require_pandas()
    if not rows:
        return pd.DataFrame()
    df = pd.DataFrame(list(rows))
    return df.reindex(sorted(df.columns), axis=1)


def _custom_columns(target: Dict[str, Any], custom: Dict[str, Any]) -> Dict[str, Any]:
    # CMF prefixes custom properties and resolves collisions with _1, _2...
    for key, value in custom.items():
        col = base = f"custom_properties_{key}"
        i = 0
        while col in target:
            i += 1
            col = f"{base}_{i}"
        target[col] = value
    return target


def execution_row(ex: Execution) -> Dict[str, Any]:
    """One execution as CMF's frame row: id, name, properties, ``custom_properties_<key>``."""
    row: Dict[str, Any] = {"id": ex.id, "name": ex.name}
    row.update(ex.properties)
    return _custom_columns(row, dict(ex.custom))


def artifact_row(art: Artifact, extra: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """One artifact as CMF's frame row (see ``get_artifact_df``)."""
    row: Dict[str, Any] = dict(extra or {})
    row.update(
        {
            "id": art.id,
            "type": art.type,
            "uri": art.uri,
            "name": art.name,
            "create_time_since_epoch": art.create_ms,
            "last_update_time_since_epoch": art.update_ms,
        }
    )
    row.update(art.properties)
    return _custom_columns(row, dict(art.custom))


def dump_pipeline(store: "Store", pipeline_name: str, exec_id: Optional[int] = None) -> Dict[str, Any]:
    """CMF's ``dumptojson`` structure as a dict: ``{"Pipeline": [pipeline > stages > executions > events]}``.

    Events carry MLMD's numeric ``type`` (3 INPUT, 4 OUTPUT) and the full
    ``artifact``. Batched: one events call and one artifacts call per stage.
    """
    cache: Dict[Tuple[str, str], int] = {}

    def tid(kind: str, name: str) -> int:
        # Every record's type exists, so ensure_type only reads (and caches) the id.
        if (kind, name) not in cache:
            cache[(kind, name)] = store.ensure_type(kind, name, {})
        return cache[(kind, name)]

    pipelines: List[Dict[str, Any]] = []
    for pipe in store.contexts_by_type(schema.PIPELINE_CONTEXT):
        if pipe.name != pipeline_name:
            continue
        p = dumptojson_node(pipe, tid("context", pipe.type))
        p["type"] = pipe.type
        p["stages"] = []
        for stage in store.child_contexts(int(pipe.id or 0)):
            s = dumptojson_node(stage, tid("context", stage.type))
            s["type"] = stage.type
            s["executions"] = []
            execs = sorted(store.executions_by_context(int(stage.id or 0)), key=lambda e: e.id or 0)
            if exec_id is not None:
                execs = [e for e in execs if e.id == int(exec_id)]
            events = store.events_by_execution([int(e.id or 0) for e in execs])
            arts = {a.id: a for a in store.artifacts_by_id(sorted({ev.artifact_id for ev in events}))}
            by_exec: Dict[int, List[Event]] = {}
            for ev in events:
                by_exec.setdefault(ev.execution_id, []).append(ev)
            for ex in execs:
                e = dumptojson_node(ex, tid("execution", ex.type))
                e["type"] = ex.type
                e["name"] = ex.name
                e["events"] = []
                for ev in by_exec.get(int(ex.id or 0), []):
                    art = arts.get(ev.artifact_id)
                    if art is None:
                        continue
                    a = dumptojson_node(art, tid("artifact", art.type))
                    a["type"] = art.type
                    e["events"].append({"type": EVENT_TYPE_NUMBER.get(ev.kind, 0), "artifact": a})
                s["executions"].append(e)
            p["stages"].append(s)
        pipelines.append(p)
    return {"Pipeline": pipelines}


class CmfQuery:
    """Read a CMF/cmfrun metadata store the way cmflib's ``CmfQuery`` does.

    ``filepath`` is an MLMD SQLite path or a server URI. Pending ``cmfrun --``
    journals are merged first, so finished runs are visible.

    Example::

        q = CmfQuery("mlmd")
        q.get_all_parent_artifacts("model.pkl:3f2a...:e1c2...")
    """

    def __init__(self, filepath: str = "mlmd") -> None:
        from cmfrun import journal
        from cmfrun.store import connect

        self.filepath = str(filepath)
        # Same as cmfrun.commands.open_store (this layer may not import commands):
        # refuse a missing path, then merge pending `cmfrun --` journals.
        self.store: "Store" = connect(self.filepath, create=False)
        journal.merge_pending(self.store)

    # -- pipelines and stages -----------------------------------------------------------------
    def _pipelines(self, name: Optional[str] = None) -> List[Context]:
        pipes = self.store.contexts_by_type(schema.PIPELINE_CONTEXT)
        return [p for p in pipes if name is None or p.name == name]

    def _stage(self, stage_name: str) -> Optional[Context]:
        stage = self.store.context(schema.STAGE_CONTEXT, stage_name)
        if stage is None or not self.store.parent_contexts(int(stage.id or 0)):
            return None  # CMF only finds stages below a pipeline
        return stage

    def get_pipeline_names(self) -> List[str]:
        """Names of all pipelines."""
        return [p.name for p in self._pipelines()]

    def get_pipeline_id(self, pipeline_name: str) -> int:
        """Id of the pipeline context, or -1 when there is none."""
        pipes = self._pipelines(pipeline_name)
        return int(pipes[0].id or 0) if pipes else -1

    def get_pipeline_stages(self, pipeline_name: str) -> List[str]:
        """Full stage names (``<pipeline>/<stage>``) of a pipeline, in creation order
        (server backends return children unordered)."""
        return [
            s.name
            for p in self._pipelines(pipeline_name)
            for s in sorted(self.store.child_contexts(int(p.id or 0)), key=lambda c: c.id or 0)
        ]

    # -- executions -------------------------------------------------------------------------
    def get_all_exe_in_stage(self, stage_name: str) -> List[Execution]:
        """Execution records of a stage (CMF returns MLMD protobufs here)."""
        stage = self._stage(stage_name)
        if stage is None:
            return []
        return sorted(self.store.executions_by_context(int(stage.id or 0)), key=lambda e: e.id or 0)

    def get_all_executions_in_stage(self, stage_name: str) -> "pd.DataFrame":
        """Executions of a stage as a DataFrame: id, name, properties, ``custom_properties_*``."""
        return _frame([execution_row(e) for e in self.get_all_exe_in_stage(stage_name)])

    def get_all_executions_by_ids_list(self, exe_ids: List[int]) -> "pd.DataFrame":
        """Executions with these ids as a DataFrame."""
        return _frame([execution_row(e) for e in self.store.executions_by_id(exe_ids)])

    def get_all_executions_for_artifact(self, artifact_name: str) -> "pd.DataFrame":
        """Executions that consumed or produced an artifact.

        Columns: ``Type`` (INPUT/OUTPUT), ``execution_id``, ``execution_name``,
        ``execution_type_name`` (a string), ``stage``, ``pipeline``.
        """
        art = self._artifact(artifact_name)
        if art is None:
            return _frame([])
        events = [ev for ev in self.store.events_by_artifact([int(art.id or 0)])]
        execs = {e.id: e for e in self.store.executions_by_id(sorted({ev.execution_id for ev in events}))}
        rows = []
        for ev in events:
            ex = execs.get(ev.execution_id)
            if ex is None:
                continue
            stage, pipeline = self._stage_and_pipeline(ex)
            rows.append(
                {
                    "Type": "INPUT" if ev.kind == INPUT else "OUTPUT",
                    "execution_id": ev.execution_id,
                    "execution_name": ex.name,
                    "execution_type_name": str(ex.properties.get("Execution_type_name", ex.type)),
                    "stage": stage,
                    "pipeline": pipeline,
                }
            )
        return _frame(rows)

    def _stage_and_pipeline(self, ex: Execution) -> "tuple[str, str]":
        stage = str(ex.properties.get("Context_Type", ""))
        pipeline = str(ex.properties.get("Pipeline_Type", ""))
        if not stage or not pipeline:
            ctxs = self.store.contexts_by_execution(int(ex.id or 0))
            if ctxs:
                stage = stage or ctxs[0].name
                parents = self.store.parent_contexts(int(ctxs[0].id or 0))
                pipeline = pipeline or (parents[0].name if parents else "")
        return stage, pipeline

    # -- artifacts --------------------------------------------------------------------------
    def _artifact(self, name: str) -> Optional[Artifact]:
        """The artifact with exactly this name (first by id when names repeat across types)."""
        from cmfrun.store.literals import artifacts_named

        found = artifacts_named(self.store, [name.strip()])
        return min(found, key=lambda a: a.id or 0) if found else None

    def get_all_artifacts(self) -> List[str]:
        """Names of all artifacts."""
        return [a.name for a in self.store.artifacts()]

    get_artifact_names = get_all_artifacts

    def get_artifact(self, name: str) -> Optional["pd.DataFrame"]:
        """One artifact as a one-row DataFrame, or ``None``."""
        art = self._artifact(name)
        return _frame([artifact_row(art)]) if art else None

    def get_all_artifacts_by_ids_list(self, artifact_ids: List[int]) -> "pd.DataFrame":
        """Artifacts with these ids as a DataFrame."""
        return _frame([artifact_row(a) for a in self.store.artifacts_by_id(artifact_ids)])

    def get_all_artifacts_by_context(self, pipeline_name: str) -> "pd.DataFrame":
        """Artifacts attributed to the stages of a pipeline (CMF's rule) as a DataFrame."""
        rows: List[Dict[str, Any]] = []
        for pipe in self._pipelines(pipeline_name):
            for stage in self.store.child_contexts(int(pipe.id or 0)):
                rows.extend(artifact_row(a) for a in self.store.artifacts_by_context(int(stage.id or 0)))
        return _frame(rows)

    def get_all_artifact_types(self) -> List[str]:
        """Names of all artifact types."""
        return self.store.type_names("artifact")

    def get_all_artifacts_for_execution(self, execution_id: int) -> "pd.DataFrame":
        """Input and output artifacts of an execution, one per row, with an ``event`` column."""
        events = self.store.events_by_execution([int(execution_id)])
        arts = {a.id: a for a in self.store.artifacts_by_id(sorted({ev.artifact_id for ev in events}))}
        rows = [
            artifact_row(arts[ev.artifact_id], {"event": "INPUT" if ev.kind == INPUT else "OUTPUT"})
            for ev in events
            if ev.artifact_id in arts
        ]
        return _frame(rows)

    # -- lineage ----------------------------------------------------------------------------
    def _artifact_frame(self, ids: Iterable[int]) -> "pd.DataFrame":
        return _frame([artifact_row(a) for a in self.store.artifacts_by_id(sorted(set(ids)))])

    def get_one_hop_child_artifacts(self, artifact_name: str, pipeline_id: Optional[int] = None) -> "pd.DataFrame":
        """Outputs of the executions that consumed the artifact (optionally only executions of ``pipeline_id``)."""
        art = self._artifact(artifact_name)
        if art is None:
            return _frame([])
        execs = lineage.consumers(self.store, [int(art.id or 0)])
        if pipeline_id is not None:
            execs = [
                int(e.id or 0)
                for e in self.store.executions_by_id(execs)
                if str(e.properties.get("Pipeline_id", "")) == str(pipeline_id)
            ]
        out = {ev.artifact_id for ev in lineage.io_events(self.store, execs) if ev.kind == OUTPUT} if execs else set()
        return self._artifact_frame(out)

    def get_one_hop_parent_artifacts(self, artifact_name: str) -> "pd.DataFrame":
        """Inputs of the executions that produced the artifact."""
        art = self._artifact(artifact_name)
        if art is None:
            return _frame([])
        return self._artifact_frame(lineage.one_hop_parents(self.store, [int(art.id or 0)]))

    def get_all_child_artifacts(self, artifact_name: str) -> "pd.DataFrame":
        """Every artifact downstream of the given one."""
        art = self._artifact(artifact_name)
        if art is None:
            return _frame([])
        g = lineage.descendants(self.store, artifact_ids=[int(art.id or 0)])
        return _frame([artifact_row(a) for a in g.related_artifacts()])

    def get_all_parent_artifacts(self, artifact_name: str) -> "pd.DataFrame":
        """Every artifact upstream of the given one."""
        art = self._artifact(artifact_name)
        if art is None:
            return _frame([])
        g = lineage.ancestors(self.store, artifact_ids=[int(art.id or 0)])
        return _frame([artifact_row(a) for a in g.related_artifacts()])

    def get_all_parent_executions(self, artifact_name: str) -> "pd.DataFrame":
        """Executions that produced the artifact's upstream artifacts (CMF's definition)."""
        art = self._artifact(artifact_name)
        if art is None:
            return _frame([])
        g = lineage.ancestors(self.store, artifact_ids=[int(art.id or 0)], fetch=False)
        parents = [a for a in g.artifact_depth if a != art.id]
        if not parents:
            return _frame([])
        execs = lineage.producers(self.store, parents)
        return _frame([execution_row(e) for e in self.store.executions_by_id(execs)])

    def find_producer_execution(self, artifact_name: str) -> Optional[Execution]:
        """The (first) execution with an OUTPUT event on the artifact, or ``None``."""
        art = self._artifact(artifact_name)
        if art is None:
            return None
        ids = lineage.producers(self.store, [int(art.id or 0)])
        execs = self.store.executions_by_id(ids[:1])
        return execs[0] if execs else None

    get_producer_execution = find_producer_execution

    # -- files ------------------------------------------------------------------------------
    def _locate(self, path: str, md5: str) -> Path:
        """A file recorded as ``path`` with ``md5``: as given, beside the store, or in a DVC cache."""
        candidates = [Path(path)]
        if self.store.location.path is not None:
            root = self.store.location.path.parent
            candidates.append(root / path)
            bare = md5[:-4] if md5.endswith(".dir") else md5
            if len(bare) == 32:
                for base in (Path.cwd(), root):
                    candidates.append(base / ".dvc" / "cache" / "files" / "md5" / bare[:2] / bare[2:])
        for c in candidates:
            if c.is_file():
                return c
        raise errors.NotFoundError(f"file {path} (md5 {md5}) is neither on disk nor in a DVC cache near the store")

    def get_metrics(self, metrics_name: str) -> Optional["pd.DataFrame"]:
        """The step metrics logged under ``metrics_name`` as a DataFrame (index ``SequenceNumber``).

        ``metrics_name`` is the Step_Metrics artifact's full name, its path
        (``cmf_artifacts/<uuid>/metrics/<name>``) or the metric's own name
        (latest run). ``None`` when no such metrics were recorded.
        """
        pd = require_pandas()
        metrics = self.store.artifacts_by_type(schema.STEP_METRICS)
        exact = [m for m in metrics if m.name == metrics_name or m.path == metrics_name]
        if not exact:
            exact = [m for m in metrics if m.path.rsplit("/", 1)[-1] == metrics_name]
        if not exact:
            return None
        metric = max(exact, key=lambda m: (m.create_ms, m.id or 0))
        return pd.read_parquet(self._locate(metric.path, metric.uri))

    @staticmethod
    def read_dataslice(name: str) -> "pd.DataFrame":
        """Read a dataslice parquet file (index ``Path``)."""
        pd = require_pandas()
        if not Path(name).is_file():
            raise errors.NotFoundError(f"dataslice file {name} does not exist")
        return pd.read_parquet(name)

    # -- export -----------------------------------------------------------------------------
    def dumptojson(self, pipeline_name: str, exec_id: Optional[int] = None) -> Optional[str]:
        """The pipeline as CMF's JSON string (``{"Pipeline": [...]}``), as ``cmf metadata push`` reads it."""
        return json.dumps(dump_pipeline(self.store, pipeline_name, exec_id))
