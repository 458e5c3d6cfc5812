"""Find the execution a lock stage belongs to.

Order (first hit wins):

1. an execution of the pipeline already carrying this stage's lock fingerprint
   (``Lock_Fingerprint``): the lock was ingested before, only missing events are added;
2. the latest execution of the pipeline for the same stage (property ``Stage``, which the
   wrapper sets from ``DVC_STAGE``, else the stage context), if no lock was merged into it
   yet;
3. the latest such execution whose normalised command equals the stage's.

An execution that already holds another fingerprint is a different run of the stage:
the lock stage then becomes a new execution. One execution serves one lock stage per
ingest.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Set, Tuple

from cmfrun import schema
from cmfrun.cmdline import normalize_command
from cmfrun.records import Execution
from cmfrun.store import Store
from cmfrun.store.literals import in_filters

#: Execution custom property holding the fingerprint of the lock stage merged into it.
FINGERPRINT = "Lock_Fingerprint"


def stage_of(execution: Execution, pipeline: str) -> str:
    """The DVC stage an execution ran for: ``Stage`` property, else its stage context name."""
    stage = str(execution.properties.get("Stage", "") or "")
    if stage:
        return stage
    ctx = str(execution.properties.get("Context_Type", "") or "")
    prefix = pipeline + "/"
    return ctx[len(prefix):] if ctx.startswith(prefix) else ""


def _order(e: Execution) -> Tuple[int, int]:
    return (e.create_ms, e.id or 0)


@dataclass
class ExecutionIndex:
    """The pipeline's executions, indexed for matching (one store query)."""

    pipeline: str
    by_fingerprint: Dict[str, Execution] = field(default_factory=dict)
    by_stage: Dict[str, List[Execution]] = field(default_factory=dict)
    claimed: Set[int] = field(default_factory=set)
    ordered: List[Execution] = field(default_factory=list)
    _by_command: Optional[Dict[str, List[Execution]]] = None

    @property
    def by_command(self) -> Dict[str, List[Execution]]:
        """Executions by normalised command, built on first use (most stages match earlier)."""
        if self._by_command is None:
            self._by_command = {}
            for e in self.ordered:
                cmd = str(e.properties.get("Execution", "") or "")
                if cmd:
                    self._by_command.setdefault(normalize_command(cmd), []).append(e)
        return self._by_command

    @classmethod
    def load(cls, store: Store, pipeline: str) -> "ExecutionIndex":
        # MLMD 1.17's filter on execution properties finds nothing here, so go through the
        # pipeline's stage contexts (batched IN queries on the association).
        index = cls(pipeline)
        pipe = store.context(schema.PIPELINE_CONTEXT, pipeline)
        if pipe is None:
            return index
        stages = store.child_contexts(int(pipe.id or 0))
        execs: Dict[int, Execution] = {}
        queries, others = in_filters("contexts_a.name", sorted(c.name for c in stages))
        for query in queries:
            for e in store.executions(query):
                execs[int(e.id or 0)] = e
        for stage in stages:  # names no filter query may hold: by the context's id instead
            if stage.name in others:
                execs.update((int(e.id or 0), e) for e in store.executions_by_context(int(stage.id or 0)))
        execs_list = list(execs.values())
        index.ordered = sorted(execs_list, key=_order)
        for e in index.ordered:
            fp = e.properties.get(FINGERPRINT)
            if fp:
                index.by_fingerprint[str(fp)] = e
            index.by_stage.setdefault(stage_of(e, pipeline), []).append(e)
        return index

    def match(self, stage: str, command: str, fingerprint: str, lock_stages: Set[str]) -> Tuple[Optional[Execution], str]:
        """The execution for a lock stage and how it was found (``fingerprint``, ``stage``,
        ``command``), or ``(None, "")``."""
        found = self.by_fingerprint.get(fingerprint)
        if found is not None and found.id not in self.claimed:
            self.claimed.add(int(found.id or 0))
            return found, "fingerprint"
        latest = [e for e in self.by_stage.get(stage, []) if e.id not in self.claimed]
        if latest:
            last = latest[-1]
            if not last.properties.get(FINGERPRINT):
                self.claimed.add(int(last.id or 0))
                return last, "stage"
            return None, ""  # the stage's latest run already holds another lock state
        for e in reversed(self.by_command.get(command, [])):
            if e.id in self.claimed or e.properties.get(FINGERPRINT):
                continue
            if stage_of(e, self.pipeline) in lock_stages:
                continue  # recorded for another stage of this lock
            self.claimed.add(int(e.id or 0))
            return e, "command"
        return None, ""


__all__ = ["FINGERPRINT", "ExecutionIndex", "stage_of"]
