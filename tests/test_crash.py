"""A crash (SIGKILL) in the middle of writing leaves the store as before the interrupted write.

A child process writes in a loop through one of three paths (the CMF API, ``cmf dvc ingest`` of a
lock, the sync merge of a bundle) and is killed with SIGKILL at random moments, several times in a
row on the same store. After each kill the database itself is checked, with plain SQL on MLMD's
tables (the same on both engines): SQLite's ``PRAGMA integrity_check``; no row pointing at a
missing record (event -> artifact/execution, event path -> event, property -> record,
association/attribution/parent -> record and context); every record whole (all the properties its
writer gives every record of its type, an event for every artifact, the stage association of
every execution and the attribution of every artifact); everything the child reported as written is
there, and everything that was there before the child started is unchanged.

The CMF API writes one transaction per record, so its store is whole right after a kill. Ingest
and merge write a whole batch with ``Store.put_lineage_linked``: one transaction on the SQL
engine (whole right after a kill too), two calls through ml-metadata's API (records, then their
context links; see ``cmfrun/ingest/merge.py`` and ``cmfrun/sync/merge.py``), where a kill between
them leaves new runs not yet linked to their stage and running the same ingest/merge again
repairs that. So on ml-metadata the links are checked after that repair; everything else, and
on the SQL engine everything, right after the kill.

The engine is the pass's (``CMFRUN_ENGINE``; CI runs the suite on both).
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path
from typing import Any, Dict, List, Sequence, Set, Tuple

import pytest

from test_query_store import H, build

from cmfrun.store import choose_engine, connect, parse_location
from tests.conftest import make_store_uri

ROUNDS = int(os.environ.get("CMFRUN_TEST_CRASH_ROUNDS", "3"))  # more to hunt rare windows
#: How long after the child's first complete write the kill may come (seconds).
KILL_WINDOW = (0.0, 0.6)

_CHILD = textwrap.dedent(
    r"""
    import json, os, sys, uuid
    from pathlib import Path
    kind, store_uri, work, tag = sys.argv[1:5]
    work = Path(work)
    progress = open(work / "progress", "a", buffering=1)
    ready = work / "ready"

    def put(path, text):  # whole or not at all: the test reads it after the kill
        (work / "tmp").write_text(text)
        os.replace(work / "tmp", path)

    def done(line):
        # Written only after the call returned: what the store must hold after the kill.
        progress.write(line + "\n")
        progress.flush()
        if not ready.exists():
            ready.touch()

    if kind == "api":
        from cmfrun.api import Cmf
        cmf = Cmf(filepath=store_uri, pipeline_name="crash", root=str(work / "files"))
        cmf.create_context("loop")
        r = 0
        while True:
            ex = cmf.create_execution("Loop", {"tag": tag, "round": r})
            done(f"E {ex.id}")
            for i in range(4):
                f = work / "files" / f"d_{tag}_{r}_{i}.txt"
                f.write_text(f"{tag} {r} {i} {os.urandom(8).hex()}")
                a = cmf.log_dataset(str(f), "input" if i % 2 else "output", {"i": i})
                done(f"A {a.id}")
            m = work / "files" / f"m_{tag}_{r}.bin"
            m.write_bytes(os.urandom(64))
            done(f"A {cmf.log_model(str(m), 'output', model_framework='none').id}")
            done(f"A {cmf.log_execution_metrics('score', {'acc': r / 10}).id}")
            r += 1
    elif kind == "ingest":
        from cmfrun.ingest import ingest_locks
        from cmfrun.store import connect
        store = connect(store_uri)
        root = work / "files"
        k = 0
        while True:
            stages = []
            for j in range(3):
                dep = "22a1a2931c8370d3aeedd7183606fd7f" if j == 0 else uuid.uuid4().hex
                stages.append(
                    f"  s_{tag}_{k}_{j}:\n    cmd: python s.py {j}\n"
                    f"    deps:\n    - path: data/in{j}.csv\n      hash: md5\n      md5: {dep}\n      size: 10\n"
                    f"    outs:\n    - path: data/out_{tag}_{k}_{j}.csv\n      hash: md5\n      md5: {uuid.uuid4().hex}\n      size: 10\n"
                )
            # The lock being ingested stays in place: the test ingests it again to repair.
            put(root / "dvc.lock", "schema: '2.0'\nstages:\n" + "".join(stages))
            ingest_locks(store, [root / "dvc.lock"], pipeline="crash", root=root)
            done(f"S s_{tag}_{k}_0")
            k += 1
    elif kind == "merge":
        from cmfrun.store import connect
        from cmfrun.sync.merge import merge_bundle
        store = connect(store_uri)
        template = (work / "bundle.json").read_text()
        olds = json.loads((work / "replace.json").read_text())
        k = 0
        while True:
            text, runs = template, []
            for old in olds:  # fresh run uuids and output hashes: new runs and artifacts each time
                new = uuid.uuid4().hex if len(old) == 32 else str(uuid.uuid1())
                runs += [] if len(old) == 32 else [new]
                text = text.replace(old, new)
            put(work / "pending.json", text)
            merge_bundle(store, json.loads(text), site=f"site-{tag}")
            for run in runs:
                done(f"U {run}")
            k += 1
    """
)

# -- plain SQL on MLMD's tables (unquoted names: SQLite and PostgreSQL ignore case, MySQL needs it as is)
_ORPHANS = {
    "event without its artifact": "SELECT e.id FROM Event e LEFT JOIN Artifact a ON a.id = e.artifact_id WHERE a.id IS NULL",
    "event without its execution": "SELECT e.id FROM Event e LEFT JOIN Execution x ON x.id = e.execution_id WHERE x.id IS NULL",
    "event path without its event": "SELECT p.event_id FROM EventPath p LEFT JOIN Event e ON e.id = p.event_id WHERE e.id IS NULL",
    "artifact property without its artifact":
        "SELECT p.artifact_id FROM ArtifactProperty p LEFT JOIN Artifact a ON a.id = p.artifact_id WHERE a.id IS NULL",
    "execution property without its execution":
        "SELECT p.execution_id FROM ExecutionProperty p LEFT JOIN Execution x ON x.id = p.execution_id WHERE x.id IS NULL",
    "context property without its context":
        "SELECT p.context_id FROM ContextProperty p LEFT JOIN Context c ON c.id = p.context_id WHERE c.id IS NULL",
    "association without its execution or context":
        "SELECT s.id FROM Association s LEFT JOIN Execution x ON x.id = s.execution_id LEFT JOIN Context c ON c.id = s.context_id"
        " WHERE x.id IS NULL OR c.id IS NULL",
    "attribution without its artifact or context":
        "SELECT s.id FROM Attribution s LEFT JOIN Artifact a ON a.id = s.artifact_id LEFT JOIN Context c ON c.id = s.context_id"
        " WHERE a.id IS NULL OR c.id IS NULL",
    "parent link without its contexts":
        "SELECT p.context_id FROM ParentContext p LEFT JOIN Context c ON c.id = p.context_id"
        " LEFT JOIN Context q ON q.id = p.parent_context_id WHERE c.id IS NULL OR q.id IS NULL",
    "record of an unknown type":
        "SELECT a.id FROM Artifact a LEFT JOIN Type t ON t.id = a.type_id WHERE t.id IS NULL"
        " UNION SELECT x.id FROM Execution x LEFT JOIN Type t ON t.id = x.type_id WHERE t.id IS NULL",
    "artifact without an event":
        "SELECT a.id FROM Artifact a WHERE NOT EXISTS (SELECT 1 FROM Event e WHERE e.artifact_id = a.id)",
}
_UNLINKED = {
    "stage context without its pipeline":
        "SELECT c.id FROM Context c JOIN Type t ON t.id = c.type_id WHERE t.name = 'Pipeline_Stage'"
        " AND NOT EXISTS (SELECT 1 FROM ParentContext p WHERE p.context_id = c.id)",
    "execution without its stage association":
        "SELECT x.id FROM Execution x WHERE (SELECT COUNT(*) FROM Association s WHERE s.execution_id = x.id) <> 1",
    "artifact without its attribution":
        "SELECT a.id FROM Artifact a WHERE NOT EXISTS (SELECT 1 FROM Attribution s WHERE s.artifact_id = a.id)",
}
#: The properties every record carries (../shared/cmf-mlmd-contract.md, sections 3 and 4).
CONTRACT_EXECUTION_PROPERTIES = ("Context_Type", "Execution_type_name", "Context_ID", "Pipeline_Type", "Pipeline_id", "Execution",
                                 "Execution_uuid", "Git_Repo", "Git_Start_Commit", "Git_End_Commit")
CONTRACT_ARTIFACT_PROPERTIES = {
    "Dataset": ("git_repo", "Commit", "url"),
    "Model": ("model_framework", "model_type", "model_name", "Commit", "url"),
    "Environment": ("git_repo", "Commit", "url"),
    "Metrics": ("metrics_name",),
}
#: Rows compared before and after a kill (update times left out: re-linking an artifact may touch them).
_SNAPSHOT = {
    "Artifact": "SELECT id, type_id, uri, name FROM Artifact",
    "Execution": "SELECT id, type_id, name, last_known_state FROM Execution",
    "Context": "SELECT id, type_id, name FROM Context",
    "ArtifactProperty": "SELECT artifact_id, name, is_custom_property, int_value, double_value, string_value FROM ArtifactProperty",
    "ExecutionProperty": "SELECT execution_id, name, is_custom_property, int_value, double_value, string_value FROM ExecutionProperty",
    "ContextProperty": "SELECT context_id, name, is_custom_property, int_value, double_value, string_value FROM ContextProperty",
    "Event": "SELECT id, artifact_id, execution_id, type FROM Event",
    "EventPath": "SELECT event_id, is_index_step, step_index, step_key FROM EventPath",
    "Association": "SELECT context_id, execution_id FROM Association",
    "Attribution": "SELECT context_id, artifact_id FROM Attribution",
    "ParentContext": "SELECT context_id, parent_context_id FROM ParentContext",
}


class Raw:
    """A plain DB-API connection to the store's database, beside the store."""

    def __init__(self, uri: str):
        loc = parse_location(uri)
        self.backend = loc.backend
        if loc.backend == "sqlite":
            import sqlite3

            # Read-write, like any next opener: it rolls back the journal the killed writer left.
            self.conn: Any = sqlite3.connect(str(loc.path))
        elif loc.backend == "postgresql":
            import psycopg

            self.conn = psycopg.connect(host=loc.host, port=loc.port, user=loc.user, dbname=loc.database, autocommit=True)
        else:
            import pymysql

            self.conn = pymysql.connect(host=loc.host, port=loc.port, user=loc.user or "root", database=loc.database, autocommit=True)

    def rows(self, sql: str) -> List[Tuple[Any, ...]]:
        cur = self.conn.cursor()
        try:
            cur.execute(sql)
            return [tuple(r) for r in cur.fetchall()]
        finally:
            cur.close()

    def close(self) -> None:
        self.conn.close()


def _snapshot(raw: Raw) -> Dict[str, Counter]:
    # Booleans come back as 0/1 from SQLite/MySQL and True/False from PostgreSQL: compare as ints.
    return {t: Counter(tuple(int(v) if isinstance(v, bool) else v for v in r) for r in raw.rows(q)) for t, q in _SNAPSHOT.items()}


def _missing_properties(raw: Raw) -> List[Tuple[str, int, str]]:
    """Records lacking a property CMF's contract says every record of its kind carries."""
    have: Dict[Tuple[str, int], Set[str]] = {}
    for kind, table, key in (("artifact", "ArtifactProperty", "artifact_id"), ("execution", "ExecutionProperty", "execution_id")):
        for rid, name in raw.rows(f"SELECT {key}, name FROM {table} WHERE is_custom_property = {_false(raw)}"):
            have.setdefault((kind, rid), set()).add(name)
    out = []
    for rid, type_name in raw.rows("SELECT a.id, t.name FROM Artifact a JOIN Type t ON t.id = a.type_id"):
        out += [("artifact", rid, p) for p in CONTRACT_ARTIFACT_PROPERTIES.get(type_name, ()) if p not in have.get(("artifact", rid), ())]
    for (rid,) in raw.rows("SELECT id FROM Execution"):
        out += [("execution", rid, p) for p in CONTRACT_EXECUTION_PROPERTIES if p not in have.get(("execution", rid), ())]
    return out


def _false(raw: Raw) -> str:
    return "false" if raw.backend == "postgresql" else "0"


def _check(uri: str, *, linked: bool, before: Dict[str, Counter], progress: Sequence[str], why: str) -> Dict[str, Counter]:
    """Assert the store is whole (see the module docstring); returns its snapshot."""
    raw = Raw(uri)
    try:
        if raw.backend == "sqlite":
            assert raw.rows("PRAGMA integrity_check") == [("ok",)], why
        problems = {what: raw.rows(q) for what, q in {**_ORPHANS, **(_UNLINKED if linked else {})}.items()}
        assert not {k: v for k, v in problems.items() if v}, why
        # A record written in parts would lack some of its properties.
        assert not _missing_properties(raw)[:10], why
        after = _snapshot(raw)
        for table, rows in before.items():
            lost = rows - after[table]
            assert not lost, f"{table}: rows written before the crash changed or vanished: {sorted(lost)[:5]} ({why})"
        arts = {r[0] for r in raw.rows("SELECT id FROM Artifact")}
        execs = {r[0] for r in raw.rows("SELECT id FROM Execution")}
        stages = {r[0] for r in raw.rows("SELECT name FROM Execution")} | {r[0] for r in raw.rows("SELECT name FROM Type")}
        uuids = {u for r in raw.rows("SELECT string_value FROM ExecutionProperty WHERE name = 'Execution_uuid'") for u in str(r[0]).split(",")}
        for line in progress:
            what, ident = line.split(" ", 1)
            if what == "A":
                assert int(ident) in arts, f"artifact {ident} was written before the kill and is gone ({why})"
            elif what == "E":
                assert int(ident) in execs, f"execution {ident} was written before the kill and is gone ({why})"
            elif what == "S":
                assert ident in stages, f"ingested stage {ident} is gone ({why})"
            elif what == "U":
                assert ident in uuids, f"merged run {ident} is gone ({why})"
        return after
    finally:
        raw.close()


def _merge_inputs(work: Path) -> None:
    """The merge child's bundle: the demo pipeline, with what it must renew per merge listed."""
    from cmfrun.sync.merge import export_bundle

    site = str(work / "site.mlmd")
    ids = build(site)
    (work / "bundle.json").write_text(json.dumps(export_bundle(connect(site), "demo")))
    renew = [str(v) for k, v in ids.items() if k.endswith("_uuid") and k != "report_uuid"]
    renew += [h for k, h in H.items() if k not in ("raw", "report")]
    (work / "replace.json").write_text(json.dumps(renew))


def _repair(kind: str, uri: str, work: Path) -> None:
    """Run the interrupted ingest/merge again, to completion."""
    if kind == "ingest":
        from cmfrun.ingest import ingest_locks

        store = connect(uri)
        ingest_locks(store, [work / "files" / "dvc.lock"], pipeline="crash", root=work / "files")
        store.close()
    elif kind == "merge" and (work / "pending.json").exists():
        from cmfrun.sync.merge import merge_bundle

        store = connect(uri)
        merge_bundle(store, json.loads((work / "pending.json").read_text()), site="repair")
        store.close()


def _kill_rounds(kind: str, uri: str, work: Path) -> int:
    seed = int.from_bytes(os.urandom(4), "big")
    rnd = random.Random(seed)
    (work / "files").mkdir()
    if kind == "merge":
        _merge_inputs(work)
    connect(uri).close()  # the schema exists before the first child, as after a first run
    raw = Raw(uri)
    before = _snapshot(raw)
    raw.close()
    progress: List[str] = []
    for r in range(ROUNDS):
        (work / "ready").unlink(missing_ok=True)
        (work / "progress").write_text("")
        child = subprocess.Popen([sys.executable, "-c", _CHILD, kind, uri, str(work), f"{r}"], cwd=work, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while not (work / "ready").exists():
            if child.poll() is not None:
                pytest.fail(f"{kind} writer died before its first write: {child.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the writer never wrote"
            time.sleep(0.005)
        delay = rnd.uniform(*KILL_WINDOW)
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stderr.close()  # type: ignore[union-attr]
        assert child.returncode == -signal.SIGKILL, f"the {kind} writer ended by itself ({child.returncode})"
        progress += (work / "progress").read_text().splitlines()
        why = f"{kind} writer, round {r}, killed {delay:.3f} s after its first write, seed {seed}"
        # Through ml-metadata's API a kill between an ingest's or a merge's two writes may leave
        # new runs unlinked (see above); the SQL engine writes each in one transaction.
        before = _check(uri, linked=kind == "api" or choose_engine() == "sql", before=before, progress=progress, why=why)
        if kind != "api":
            _repair(kind, uri, work)
            before = _check(uri, linked=True, before=before, progress=progress, why=why + ", after running it again")
    return len(progress)


@pytest.mark.parametrize("kind", ["api", "ingest", "merge"])
@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_sigkill_mid_write_leaves_every_record_whole(kind: str, backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    uri = make_store_uri(backend, tmp_path, request)
    work = tmp_path / "work"
    work.mkdir()
    written = _kill_rounds(kind, uri, work)
    assert written >= ROUNDS  # every child got somewhere before its kill
