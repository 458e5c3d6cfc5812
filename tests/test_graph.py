"""The graph layer, run for real on FalkorDB (falkordblite's server, started here on 127.0.0.1):
`cmf graph sync` of recorded pipelines, lineage in Cypher, idempotency, hostile values,
`Cmf(graph=True)` mirroring, an unreachable or password-protected database, exports.
Neo4j: only where CMFRUN_TEST_NEO4J_URI names a reachable server (no Neo4j can be
installed on these machines)."""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Dict, FrozenSet, Iterator, List, Set, Tuple

import pytest

from cmfrun import Cmf, errors, schema
from cmfrun.cli import cmf as cmf_cli
from cmfrun.integrations import graph_model as gm
from cmfrun.integrations.graph import sync
from cmfrun.integrations.graph_export import split_statements
from cmfrun.integrations.graph_targets import GraphSettings, GraphTarget, open_target
from cmfrun.records import Artifact, Execution, Link
from cmfrun.recorder import ensure_contexts
from cmfrun.store import connect
from tests.conftest import Project, cli_env, cli_runner
from tests.falkordb_server import FalkorServer, free_port

PY = sys.executable
GRAPH_ENV = ("NEO4J_URI", "NEO4J_USER_NAME", "NEO4J_PASSWD", "CMFRUN_GRAPH")


@pytest.fixture(scope="module")
def falkor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FalkorServer]:
    server = FalkorServer(tmp_path_factory.mktemp("falkordb"))
    yield server
    server.stop()


@pytest.fixture
def graph_uri(falkor: FalkorServer) -> Iterator[str]:
    """A fresh, empty graph on the shared server (deleted afterwards)."""
    name = f"t{uuid.uuid4().hex[:10]}"
    yield falkor.uri(name)
    target = open_target(GraphSettings(falkor.uri(name)))
    target.run("MATCH (n) DETACH DELETE n", {})
    target.close()


@pytest.fixture(autouse=True)
def _no_graph_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in GRAPH_ENV:
        monkeypatch.delenv(var, raising=False)


def target_of(uri: str) -> GraphTarget:
    return open_target(GraphSettings(uri))


def dump(target: GraphTarget) -> Tuple[Set[Tuple[str, FrozenSet[Tuple[str, Any]]]], Set[Tuple[str, Any, Any, FrozenSet]]]:
    """The graph as comparable sets: nodes (label, properties), relationships (type, start key, end key, props)."""
    nodes = set()
    for labels, props in target.run(f"MATCH (n) WHERE NOT n:`{'CmfrunSync'}` RETURN labels(n), properties(n)", {}).rows:
        nodes.add((labels[0], frozenset(dict(props).items())))
    rels = set()
    rows = target.run("MATCH (a)-[r]->(b) RETURN type(r), labels(a), properties(a), labels(b), properties(b), properties(r)", {}).rows
    for rtype, la, pa, lb, pb, pr in rows:
        ka = tuple(dict(pa)[k] for k in gm.NODE_KEYS[la[0]])
        kb = tuple(dict(pb)[k] for k in gm.NODE_KEYS[lb[0]])
        rels.add((rtype, (la[0], ka), (lb[0], kb), frozenset(dict(pr).items())))
    return nodes, rels


def invoke(*args: str) -> Any:
    result = cli_runner().invoke(cmf_cli, list(args))
    return result


def record_api_pipeline(root: Path, store: str, *, graph: bool = False, odd: str = "plain") -> Dict[str, Any]:
    """prepare: raw.csv -> prep.csv; train: prep.csv -> model.pkl + metrics (CMF API calls)."""
    (root / "raw.csv").write_text("a,b\n1,2\n")
    cmf = Cmf(filepath=store, pipeline_name="demo", root=root, graph=graph)
    cmf.create_context("prepare")
    prep = cmf.create_execution("Prepare", {"split": 0.2, "note": odd})
    raw = cmf.log_dataset(root / "raw.csv", "input", custom_properties={"source": odd})
    (root / "prep.csv").write_text("1\n2\n")
    cmf.log_dataset(root / "prep.csv", "output")
    cmf.finalize()
    cmf.create_context("train")
    train = cmf.create_execution("Train", {"lr": 0.1})
    cmf.log_dataset(root / "prep.csv", "input")
    (root / "model.pkl").write_bytes(b"model")
    model = cmf.log_model(root / "model.pkl", "output", model_framework="sklearn")
    cmf.log_execution_metrics("metrics", {"auc": 0.91})
    cmf.finalize()
    cmf.close()
    return {"prep": prep, "train": train, "raw": raw, "model": model, "cmf": cmf}


LINEAGE = (
    "MATCH p = (d:Dataset {Path: $src})-[:input|output*]->(m:Model {Path: $dst}) "
    "RETURN [n IN nodes(p) | coalesce(n.Path, n.Name)] AS names, length(p) AS hops ORDER BY hops"
)


def test_sync_of_wrapped_runs_answers_lineage_in_cypher(project: Project, graph_uri: str) -> None:
    """Two real `cmfrun --` runs, synced with `cmf graph sync`; Cypher walks raw data -> model."""
    project.git_init()
    project.write("raw.csv", "x\n1\n")
    project.write("prep.py", "import sys; open(sys.argv[2], 'w').write(open(sys.argv[1]).read().upper())\n")
    project.write("train.py", "import sys; open(sys.argv[2], 'w').write(open(sys.argv[1]).read() * 2)\n")
    project.commit()
    env = cli_env(CMFRUN_SYNC="1", CMFRUN_PIPELINE="wrapped")
    for argv in (
        ["-s", "prepare", "--in", "raw.csv", "--out", "prep.csv", "--", PY, "prep.py", "raw.csv", "prep.csv"],
        ["-s", "train", "--in", "prep.csv", "--model", "model.pkl", "--", PY, "train.py", "prep.csv", "model.pkl"],
    ):
        proc = subprocess.run([PY, "-m", "cmfrun", *argv], cwd=project.root, env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
    proc = subprocess.run([str(Path(PY).parent / "cmf"), "graph", "sync", "--uri", graph_uri], cwd=project.root, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "2 execution(s)" in proc.stdout and "0 already there" in proc.stdout

    target = target_of(graph_uri)
    rows = target.run(LINEAGE, {"src": "raw.csv", "dst": "model.pkl"}).rows
    assert rows, "no path from raw.csv to model.pkl"
    path = rows[0][0]
    assert path[0] == "raw.csv" and path[2] == "prep.csv" and path[4] == "model.pkl"
    store = connect(project.root / "mlmd", create=False)
    by_stage = {str(e.properties["Stage"]): e for e in store.executions()}
    uuids = target.run(
        "MATCH (:Dataset {Path: 'raw.csv'})-[:input]->(p:Execution)-[:output]->(:Dataset)-[:input]->(t:Execution) "
        "RETURN p.uuid, t.uuid, p.pipeline_name", {}).rows
    assert uuids == [[by_stage["prepare"].properties["Execution_uuid"], by_stage["train"].properties["Execution_uuid"], "wrapped"]]
    # CMF's shape: Pipeline -contains-> Stage -runs-> Execution, and producer -linked-> consumer.
    assert target.run("MATCH (:Pipeline {Name: 'wrapped'})-[:contains]->(:Stage)-[:runs]->(e:Execution) RETURN count(e)", {}).rows == [[2]]
    assert target.run("MATCH (a:Execution)-[l:linked]->(b:Execution) RETURN a.Stage, b.Stage, l.Artifact_Name", {}).rows[0][:2] == ["prepare", "train"]


def test_graph_matches_the_store_and_second_sync_creates_nothing(project: Project, graph_uri: str) -> None:
    project.git_init()
    store_path = str(project.root / "mlmd")
    rec = record_api_pipeline(project.root, store_path)
    store = connect(store_path)
    target = target_of(graph_uri)
    first = sync(store, target)
    assert first.full and first.nodes_created > 0 and first.rels_created > 0 and first.nodes_existing == 0
    nodes, rels = dump(target)
    assert first.nodes_created == len(nodes) and first.rels_created == len(rels)

    # Every execution and artifact of the store is there, labelled by type, with its properties.
    arts = store.artifacts()
    for art in arts:
        label, key = gm.artifact_ref(art.type, art.uri)
        [[props]] = target.run(f"MATCH (n:`{label}` {{uri: $uri}}) RETURN properties(n)", {"uri": art.uri}).rows
        assert {**art.properties, **art.custom}.items() <= dict(props).items()
        assert dict(props)["Name"] == art.name
    train = store.executions_by_id([rec["train"].id])[0]
    [[props]] = target.run("MATCH (e:Execution {uuid: $u}) RETURN properties(e)", {"u": train.properties["Execution_uuid"]}).rows
    assert dict(props)["lr"] == 0.1 and dict(props)["state"] == "COMPLETE" and dict(props)["Command"] == train.properties["Execution"]
    assert target.run("MATCH (e:Execution) RETURN count(e)", {}).rows == [[len(store.executions())]]

    again = sync(store, target)
    assert (again.nodes_created, again.nodes_updated, again.rels_created) == (0, 0, 0)
    full = sync(store, target, full=True)
    assert (full.nodes_created, full.nodes_updated, full.rels_created) == (0, 0, 0)
    assert full.nodes_existing == len(nodes) and full.rels_existing == len(rels)
    assert dump(target) == (nodes, rels)

    # A new run: the next sync adds exactly it (its execution node and what is new around it).
    cmf = Cmf(filepath=store_path, pipeline_name="demo", root=project.root)
    cmf.create_context("evaluate")
    cmf.create_execution("Evaluate")
    cmf.log_model(project.root / "model.pkl", "input")
    cmf.log_execution_metrics("eval", {"f1": 0.5})
    cmf.finalize()
    third = sync(store, target)
    assert third.nodes_created == 3  # Stage evaluate, its Execution, the eval Metrics
    assert target.run("MATCH (:Model)-[:input]->(e:Execution {Name: 'Evaluate'})-[:output]->(:Metrics) RETURN count(e)", {}).rows == [[1]]


def test_cli_sync_reports_and_filters_by_pipeline(project: Project, graph_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    project.git_init()
    store_path = str(project.root / "mlmd")
    record_api_pipeline(project.root, store_path)
    other = Cmf(filepath=store_path, pipeline_name="other", root=project.root)
    other.create_context("only")
    other.create_execution("Only")
    other.finalize()
    monkeypatch.chdir(project.root)
    res = invoke("graph", "sync", "-p", "other", "--uri", graph_uri, "--json")
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    assert report["executions"] == 1 and report["pipeline"] == "other" and report["full"]
    target = target_of(graph_uri)
    assert target.run("MATCH (e:Execution) RETURN collect(e.pipeline_name)", {}).rows == [[["other"]]]
    res = invoke("graph", "sync", "--uri", graph_uri)
    assert res.exit_code == 0 and "3 execution(s)" in res.output, res.output
    res = invoke("graph", "sync", "-p", "nope", "--uri", graph_uri)
    assert res.exit_code == 2 and "no pipeline 'nope'" in res.output


HOSTILE = [
    'quote " and \' single',
    "new\nline\r\ttab",
    "back\\slash \\n not a newline",
    "}) MATCH (n) DETACH DELETE n //",
    '"}); CREATE (:Pwned); //',
    "`backtick` $param {map: 1}",
    "unicode é 漢 \u2028 sep",
]


def test_hostile_values_and_keys_round_trip(project: Project, graph_uri: str) -> None:
    project.git_init()
    store_path = str(project.root / "mlmd")
    store = connect(store_path)
    pipe, stage = ensure_contexts(store, 'pipe "x"\n}) DETACH', "st`age")
    custom: Dict[str, Any] = {f"k{i}": v for i, v in enumerate(HOSTILE)}
    custom.update({"key with space": 1, "dotted.key": 2.5, "colon:key": "c", 'quo"te': "q", "neg": -1.5e300})
    ex = Execution(
        "Evil`) DETACH DELETE n",
        # (Key values never start or end with whitespace here: FalkorDB's index does not find
        # such values, README "Graph databases". Content hashes and uuids have none.)
        properties={"Execution_uuid": 'u"1\n2', "Context_ID": int(stage.id or 0), "Execution": HOSTILE[3]},
        custom=custom,
        state="COMPLETE",
    )
    # An artifact type off the allow-list becomes an `Artifact` node, never a label of its own.
    art = Artifact("Weird`) DETACH DELETE n //", "p:" + HOSTILE[4], '"hash\n}', custom=custom)
    store.put_execution(ex, [Link(art, "OUTPUT")], [int(stage.id or 0)])
    target = target_of(graph_uri)
    report = sync(store, target)
    assert report.nodes_created == 4  # pipeline, stage, execution, artifact
    [[props]] = target.run("MATCH (e:Execution {uuid: $u}) RETURN properties(e)", {"u": 'u"1\n2'}).rows
    props = dict(props)
    for k, v in custom.items():
        assert props[k] == v, k
    assert props["Command"] == HOSTILE[3]
    [[labels, aprops]] = target.run("MATCH (:Execution)-[:output]->(a) RETURN labels(a), properties(a)", {}).rows
    assert labels == ["Artifact"] and dict(aprops)["type"] == art.type and dict(aprops)["uri"] == art.uri
    assert target.run("MATCH (n:Pwned) RETURN count(n)", {}).rows == [[0]]
    again = sync(store, target, full=True)
    assert (again.nodes_created, again.nodes_updated, again.rels_created) == (0, 0, 0)

    # The Cypher export of the same store, replayed into an empty graph, gives the same graph.
    out = project.root / "g.cypher"
    res = invoke("graph", "export", "-f", store_path, "--format", "cypher", "-o", str(out))
    assert res.exit_code == 0, res.output
    replay = target_of(graph_uri.rsplit("/", 1)[0] + "/replay" + uuid.uuid4().hex[:6])
    try:
        for statement in split_statements(out.read_text()):
            replay.run(statement, {})
        assert dump(replay) == dump(target)
        assert replay.run("MATCH (n:Pwned) RETURN count(n)", {}).rows == [[0]]
    finally:
        replay.run("MATCH (n) DETACH DELETE n", {})


def test_graph_true_mirrors_each_call_and_link_artifacts(project: Project, graph_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    project.git_init()
    monkeypatch.setenv("NEO4J_URI", graph_uri)
    store_path = str(project.root / "mlmd")
    target = target_of(graph_uri)
    (project.root / "raw.csv").write_text("r\n")
    cmf = Cmf(filepath=store_path, pipeline_name="live", root=project.root, graph=True)
    cmf.create_context("step")
    ex = cmf.create_execution("Step")
    uid = ex.properties["Execution_uuid"]
    assert target.run("MATCH (:Pipeline {Name: 'live'})-[:contains]->(:Stage)-[:runs]->(e:Execution {uuid: $u}) RETURN e.state",
                      {"u": uid}).rows == [["RUNNING"]]
    raw = cmf.log_dataset(project.root / "raw.csv", "input")
    assert target.run("MATCH (:Dataset {Path: 'raw.csv'})-[:input]->(e:Execution {uuid: $u}) RETURN count(e)", {"u": uid}).rows == [[1]]
    ds = cmf.create_dataslice("slice")
    ds.add_data(project.root / "raw.csv", {"k": "v"})
    part = ds.commit()
    linked = cmf.link_artifacts(raw, part)
    assert linked.custom[gm.DERIVED_FROM] == f"Dataset:{raw.uri}"
    assert target.run("MATCH (d:Dataset)-[:derived]->(s:Dataslice) RETURN d.uri, s.uri", {}).rows == [[raw.uri, part.uri]]
    cmf.finalize()
    assert target.run("MATCH (e:Execution {uuid: $u}) RETURN e.state", {"u": uid}).rows == [["COMPLETE"]]
    cmf.close()
    # The live mirror and a sync from the store agree: the sync finds everything already there.
    report = sync(connect(store_path), target, full=True)
    assert (report.nodes_created, report.nodes_updated, report.rels_created) == (0, 0, 0), report
    # ... and the export (no graph database) holds the derived link too.
    model = gm.read_store(connect(store_path)).model
    assert any(r.type == gm.DERIVED for r in model.rels.values())


def test_unreachable_graph_warns_once_and_loses_nothing(project: Project, graph_uri: str,
                                                         monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    project.git_init()
    dead = f"falkor://127.0.0.1:{free_port()}/g"
    monkeypatch.setenv("NEO4J_URI", dead)
    store_path = str(project.root / "mlmd")
    with caplog.at_level(logging.WARNING):
        rec = record_api_pipeline(project.root, store_path, graph=True)
    warnings = [r for r in caplog.records if "graph database not updated" in r.getMessage()]
    assert len(warnings) == 1 and "cmf graph sync" in warnings[0].getMessage()
    store = connect(store_path)
    assert {e.id for e in store.executions()} == {rec["prep"].id, rec["train"].id}
    assert all(e.state == "COMPLETE" for e in store.executions())
    # Later, `cmf graph sync` catches up.
    monkeypatch.setenv("NEO4J_URI", graph_uri)
    monkeypatch.chdir(project.root)
    res = invoke("graph", "sync", "-f", store_path)
    assert res.exit_code == 0, res.output
    assert target_of(graph_uri).run("MATCH (e:Execution) RETURN count(e)", {}).rows == [[2]]
    # The CLI against the dead database: one line, exit 3.
    res = invoke("graph", "sync", "-f", store_path, "--uri", dead)
    assert res.exit_code == 3 and "cannot reach FalkorDB" in res.output and len(res.output.strip().splitlines()) == 1


def test_graph_going_away_mid_run_is_one_warning(project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    server = FalkorServer(tmp_path / "brief")
    project.git_init()
    monkeypatch.setenv("NEO4J_URI", server.uri("g"))
    (project.root / "a.csv").write_text("a\n")
    (project.root / "b.csv").write_text("b\n")
    store_path = str(project.root / "mlmd")
    cmf = Cmf(filepath=store_path, pipeline_name="p", root=project.root, graph=True)
    cmf.create_context("s")
    ex = cmf.create_execution("S")
    server.stop()  # the database dies while the run goes on
    with caplog.at_level(logging.WARNING):
        cmf.log_dataset(project.root / "a.csv", "input")
        cmf.log_dataset(project.root / "b.csv", "output")
        cmf.finalize()
    assert len([r for r in caplog.records if "graph database not updated" in r.getMessage()]) == 1
    events = connect(store_path).events_by_execution([int(ex.id or 0)])
    assert sorted(e.kind for e in events) == ["INPUT", "INPUT", "OUTPUT"]  # environment, a.csv; b.csv
    assert connect(store_path).executions_by_id([int(ex.id or 0)])[0].state == "COMPLETE"


def test_wrong_credentials_exit_3_without_the_secret(project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server = FalkorServer(tmp_path / "locked", password="right-horse-battery")
    try:
        project.git_init()
        store_path = str(project.root / "mlmd")
        record_api_pipeline(project.root, store_path)
        monkeypatch.chdir(project.root)
        secret = "wr0ng-s3cret-pw"
        monkeypatch.setenv("NEO4J_PASSWD", secret)
        for uri in (server.uri("g"), f"redis://default:{secret}@127.0.0.1:{server.port}/g"):
            res = invoke("graph", "sync", "--uri", uri)
            assert res.exit_code == 3, res.output
            assert "refused the credentials" in res.output and secret not in res.output
            assert len(res.output.strip().splitlines()) == 1
        monkeypatch.setenv("NEO4J_URI", server.uri("g"))
        with pytest.raises(errors.GraphAuthError) as info:
            Cmf(filepath=store_path, pipeline_name="demo", root=project.root, graph=True)
        assert secret not in str(info.value)
        # The right password (from the git-ignored .cmfconfig.local that `cmf init` writes) works.
        monkeypatch.delenv("NEO4J_PASSWD")
        (project.root / ".cmfconfig.local").write_text("[cmfrun]\nneo4j_password = right-horse-battery\n")
        res = invoke("graph", "sync")
        assert res.exit_code == 0 and "0 already there" in res.output, res.output
    finally:
        server.stop()


def test_unknown_scheme_and_missing_config_are_bad_input(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    project.git_init()
    record_api_pipeline(project.root, str(project.root / "mlmd"))
    monkeypatch.chdir(project.root)
    res = invoke("graph", "sync")
    assert res.exit_code == 2 and "no graph database configured" in res.output
    res = invoke("graph", "sync", "--uri", "http://user:pw@host/x")
    assert res.exit_code == 2 and "unknown scheme 'http'" in res.output and "pw" not in res.output
    for bad in ("bolt://host:port", "falkor://host:99999999/g"):
        res = invoke("graph", "sync", "--uri", bad)
        assert res.exit_code == 2 and "bad port" in res.output, res.output
    # Neo4j over Bolt with nothing listening: the official driver's failure, one line, exit 3.
    res = invoke("graph", "sync", "--uri", f"bolt://127.0.0.1:{free_port()}", "--user", "neo4j")
    assert res.exit_code == 3 and "cannot reach Neo4j" in res.output, res.output
    (project.root / ".cmfconfig").write_text("[cmfrun]\nneo4j_uri = neo4j://127.0.0.1:1\nneo4j_user = neo4j\n")
    res = invoke("graph", "sync")
    assert res.exit_code == 3 and "neo4j://127.0.0.1:1" in res.output


def test_exports_parse(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    project.git_init()
    store_path = str(project.root / "mlmd")
    record_api_pipeline(project.root, store_path, odd=HOSTILE[1] + HOSTILE[4] + "\x01ctl")
    model = gm.read_store(connect(store_path)).model
    monkeypatch.chdir(project.root)
    for fmt in ("json", "graphml", "cypher"):
        res = invoke("graph", "export", "--format", fmt, "-o", f"g.{fmt}")
        assert res.exit_code == 0 and f"{len(model.nodes)} nodes" in res.output, res.output
    data = json.loads((project.root / "g.json").read_text())
    assert len(data["nodes"]) == len(model.nodes) and len(data["relationships"]) == len(model.rels)
    ids = {n["id"]: n for n in data["nodes"]}
    assert all(r["start"] in ids and r["end"] in ids for r in data["relationships"])
    raw = next(n for n in data["nodes"] if n["properties"].get("Path") == "raw.csv")
    assert raw["labels"] == ["Dataset"] and raw["properties"]["source"] == HOSTILE[1] + HOSTILE[4] + "\x01ctl"

    ns = {"g": "http://graphml.graphdrawing.org/xmlns"}
    root = ET.parse(project.root / "g.graphml").getroot()
    keys = {k.get("id"): k.get("attr.name") for k in root.findall("g:key", ns)}
    xnodes = root.findall("g:graph/g:node", ns)
    xedges = root.findall("g:graph/g:edge", ns)
    assert len(xnodes) == len(model.nodes) and len(xedges) == len(model.rels)
    labels = sorted(d.text or "" for n in xnodes for d in n.findall("g:data", ns) if d.get("key") == "labels")
    assert labels.count(":Execution") == 2 and ":Model" in labels
    source = [d.text for n in xnodes for d in n.findall("g:data", ns) if keys[d.get("key") or ""] == "source"]
    assert source == [HOSTILE[1].replace("\r", "\n") + HOSTILE[4] + "\ufffdctl"]  # XML normalises \r; no \x01 in XML 1.0
    assert {d.text for e in xedges for d in e.findall("g:data", ns) if d.get("key") == "label"} >= {"input", "output", "linked", "contains", "runs"}

    statements = split_statements((project.root / "g.cypher").read_text())
    assert len(statements) == len(model.nodes) + len(model.rels)
    res = invoke("graph", "export", "--format", "json", "-o", "-")
    assert res.exit_code == 0 and json.loads(res.output)["nodes"]
    res = invoke("graph", "export", "--format", "json", "-o", str(project.root / "no" / "dir" / "g.json"))
    assert res.exit_code == 2 and "does not exist" in res.output


def test_neo4j_over_bolt(project: Project) -> None:
    uri = os.environ.get("CMFRUN_TEST_NEO4J_URI")
    if not uri:
        pytest.skip("no Neo4j here (none can be installed on these machines): set CMFRUN_TEST_NEO4J_URI=bolt://user:pw@host:7687 to run")
    project.git_init()
    store_path = str(project.root / "mlmd")
    rec = record_api_pipeline(project.root, store_path)
    target = open_target(GraphSettings(uri))
    target.run("MATCH (n) DETACH DELETE n", {})
    store = connect(store_path)
    first = sync(store, target)
    assert first.nodes_created > 0
    rows = target.run(LINEAGE, {"src": "raw.csv", "dst": "model.pkl"}).rows
    assert rows and rows[0][0][0] == "raw.csv" and rows[0][0][-1] == "model.pkl"
    again = sync(store, target, full=True)
    assert (again.nodes_created, again.nodes_updated, again.rels_created) == (0, 0, 0)
    sl = Cmf(filepath=store_path, pipeline_name="demo", root=project.root)
    sl.create_context("slice")
    sl.create_execution("Slice")
    ds = sl.create_dataslice("s")
    ds.add_data(project.root / "raw.csv")
    part = ds.commit()
    sl.link_artifacts(rec["raw"], part)
    sync(store, target)
    assert target.run("MATCH (:Dataset)-[:derived]->(s:Dataslice) RETURN s.uri", {}).rows == [[part.uri]]


def test_model_uses_only_allow_listed_labels() -> None:
    assert set(gm.ARTIFACT_LABELS) >= {schema.DATASET, schema.MODEL, schema.METRICS, "Deployment"}
    assert gm.artifact_ref("x`) MATCH (n)", "h") == ("Artifact", ("h", "x`) MATCH (n)"))
    with pytest.raises(KeyError):
        from cmfrun.integrations.graph import node_statement

        node_statement("Evil`) DETACH DELETE n //")


def test_wrapped_runs_are_mirrored_by_the_merger_when_asked(project: Project, graph_uri: str) -> None:
    """CMFRUN_GRAPH=1: each `cmfrun --` run reaches the graph when it is merged (here inline,
    CMFRUN_SYNC=1); an unreachable database is one warning and the run is still recorded."""
    project.git_init()
    project.write("in.txt", "i\n")
    project.commit()
    env = cli_env(CMFRUN_SYNC="1", CMFRUN_PIPELINE="live", CMFRUN_GRAPH="1", NEO4J_URI=graph_uri)
    argv = [PY, "-m", "cmfrun", "-s", "copy", "--in", "in.txt", "--out", "out.txt", "--", PY, "-c",
            "open('out.txt', 'w').write(open('in.txt').read() * 3)"]
    proc = subprocess.run(argv, cwd=project.root, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "warning" not in proc.stderr, proc.stderr
    [ex] = connect(project.root / "mlmd", create=False).executions()
    rows = target_of(graph_uri).run(
        "MATCH (:Dataset {Path: 'in.txt'})-[:input]->(e:Execution)-[:output]->(:Dataset {Path: 'out.txt'}) RETURN e.uuid", {}).rows
    assert rows == [[ex.properties["Execution_uuid"]]]

    env["NEO4J_URI"] = f"falkor://127.0.0.1:{free_port()}/g"
    proc = subprocess.run(argv[:-1] + ["open('out.txt', 'w').write('x')"], cwd=project.root, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    assert proc.stderr.count("not mirrored to the graph database") == 1 and "cmf graph sync" in proc.stderr, proc.stderr
    assert len(connect(project.root / "mlmd", create=False).executions()) == 2


def test_background_merger_mirrors_too(project: Project, graph_uri: str) -> None:
    """Without --sync the detached merger merges the run, then mirrors it (.cmfconfig: graph = true)."""
    import time

    project.git_init()
    project.write("in.txt", "i\n")
    project.write(".cmfconfig", f"[cmfrun]\ngraph = true\nneo4j_uri = {graph_uri}\n")
    project.commit()
    env = cli_env(CMFRUN_PIPELINE="bg")
    env.pop("CMFRUN_SYNC", None)
    for var in GRAPH_ENV:
        env.pop(var, None)
    proc = subprocess.run([PY, "-m", "cmfrun", "-s", "touch", "--in", "in.txt", "--", PY, "-c", "pass"],
                          cwd=project.root, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    target = target_of(graph_uri)
    deadline = time.monotonic() + 60
    rows: List[Any] = []
    while time.monotonic() < deadline and not rows:
        rows = target.run("MATCH (:Pipeline {Name: 'bg'})-[:contains]->(:Stage)-[:runs]->(e:Execution) RETURN e.Stage", {}).rows
        time.sleep(0.2)
    assert rows == [["touch"]]


def test_small_batches_in_parallel_give_the_same_graph(project: Project, graph_uri: str, falkor: FalkorServer) -> None:
    """Batches run two at a time on big models; tiny batches force that path here."""
    from cmfrun.integrations.graph import write_model

    project.git_init()
    store_path = str(project.root / "mlmd")
    record_api_pipeline(project.root, store_path, odd=HOSTILE[4])
    model = gm.read_store(connect(store_path)).model
    whole = target_of(graph_uri)
    one = write_model(whole, model)
    split = target_of(falkor.uri(f"split{uuid.uuid4().hex[:6]}"))
    try:
        many = write_model(split, model, batch=2)
        assert (many.nodes_created, many.rels_created) == (one.nodes_created, one.rels_created) == (len(model.nodes), len(model.rels))
        assert dump(split) == dump(whole)
        again = write_model(split, model, batch=2)
        assert (again.nodes_created, again.nodes_updated, again.rels_created) == (0, 0, 0)
        assert (again.nodes_existing, again.rels_existing) == (len(model.nodes), len(model.rels))
    finally:
        split.run("MATCH (n) DETACH DELETE n", {})


def test_arangoml_entities_reach_the_graph(project: Project, graph_uri: str) -> None:
    """ArangoML-style records (issue 13b) sync like any other: Cypher finds the deployment
    serving a model trained on a dataset."""
    from cmfrun import ArangoPipe

    project.git_init()
    store = connect(str(project.root / "mlmd"))
    ml = ArangoPipe(store, root=project.root)
    ml.register_project("churn")
    ds = ml.register_dataset({"name": "raw"})
    fs = ml.register_featureset({"name": "features", "technique": "scaling"}, "raw")
    m = ml.register_model({"name": "rf", "technique": "random forest"})
    ml.log_run(ds, fs, m, {"n_estimators": 50}, {"accuracy": 0.95}, "rf-v1", deployment_tag="prod")
    ml.register_deployment("prod")
    target = target_of(graph_uri)
    sync(store, target)
    rows = target.run(
        "MATCH (d:Dataset {ArangoML_Name: 'raw'})-[:input|output*]->(m:Model)-[:input|output*]->(dep:Deployment) "
        "RETURN DISTINCT m.ArangoML_Name, dep.Name", {}).rows
    assert [r[0] for r in rows] == ["rf"] and "prod" in str(rows[0][1])


def test_keys_an_index_cannot_find_still_merge_once(project: Project, graph_uri: str) -> None:
    """Empty keys, keys with leading/trailing whitespace and very long keys (FalkorDB's index
    finds none of them) are matched by a scan: a second sync still creates nothing. NUL
    characters (FalkorDB cannot take them in a parameter) arrive as U+FFFD."""
    project.git_init()
    store = connect(str(project.root / "mlmd"))
    pipe, stage = ensure_contexts(store, " padded pipeline ", "stage\t")
    odd_keys = [" lead", "trail\n", "x" * 5000]
    for i, key in enumerate(odd_keys):
        ex = Execution("Odd", properties={"Execution_uuid": key, "Context_ID": int(stage.id or 0)},
                       custom={"nul": "a\x00b"}, state="COMPLETE")
        store.put_execution(ex, [Link(Artifact(schema.DATASET, f"d{i}", key + "h"), "INPUT")], [int(stage.id or 0)])
    target = target_of(graph_uri)
    first = sync(store, target)
    assert first.nodes_created == 2 + 2 * len(odd_keys) and first.rels_created == 1 + 2 * len(odd_keys), first
    again = sync(store, target, full=True)
    assert (again.nodes_created, again.nodes_updated, again.rels_created) == (0, 0, 0), again
    nodes, rels = dump(target)
    assert len(nodes) == first.nodes_created and len(rels) == first.rels_created
    stored = {str(e.custom["nul"]) for e in store.executions()}  # ml-metadata itself cuts at the NUL
    assert target.run("MATCH (e:Execution) RETURN collect(DISTINCT e.nul)", {}).rows == [[[v.replace("\x00", "\ufffd") for v in stored]]]
    assert target.run("MATCH (d:Dataset)-[:input]->(e:Execution) WHERE d.uri = e.uuid + 'h' RETURN count(e)", {}).rows == [[3]]
