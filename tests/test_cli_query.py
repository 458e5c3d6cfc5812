"""The query commands of `cmf` through click's CliRunner (and one real process), on real stores."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import click
import pytest
from click.testing import CliRunner

from tests.conftest import cli_runner

from cmfrun.cli import cmf
from test_query_store import H, build


@pytest.fixture
def demo(sqlite_uri: str):
    return sqlite_uri, build(sqlite_uri)


def run(args: List[str], code: int = 0) -> "click.testing.Result":
    res = cli_runner().invoke(cmf, args, catch_exceptions=False)
    assert res.exit_code == code, (args, res.exit_code, res.output, res.stderr)
    return res


def test_every_cmf_command_has_help() -> None:
    def walk(group: click.Group, prefix: List[str]):
        for name, cmd in group.commands.items():
            yield prefix + [name], cmd
            if isinstance(cmd, click.Group):
                yield from walk(cmd, prefix + [name])

    seen = []
    for path, cmd in walk(cmf, []):
        res = run([*path, "--help"])
        assert "Usage:" in res.output and (cmd.help or "").strip(), path
        seen.append(" ".join(path))
    for needed in ("pipeline list", "execution list", "artifact list", "show", "lineage", "diff", "metadata export"):
        assert needed in seen


def test_pipeline_list(demo) -> None:
    uri, _ = demo
    out = run(["pipeline", "list", "-f", uri]).output
    assert re.search(r"demo\s+7\s+1\s", out) and "other" in out
    data = json.loads(run(["pipeline", "list", "-f", uri, "--json"]).output)
    demo_p = next(p for p in data if p["name"] == "demo")
    assert demo_p["executions"] == 7 and demo_p["failed"] == 1 and "train" in demo_p["stages"]


def test_execution_list_filters(demo) -> None:
    uri, ids = demo
    out = run(["execution", "list", "-f", uri]).output
    assert "python train.py --lr 9" in out and "report" in out
    data = json.loads(run(["execution", "list", "-f", uri, "--json"]).output)
    assert [e["id"] for e in data] == sorted(ids[k] for k in ids if not k.endswith("_uuid"))
    failed = json.loads(run(["execution", "list", "-f", uri, "--state", "failed", "--json"]).output)
    assert [e["id"] for e in failed] == [ids["failed"]] and failed[0]["exit_code"] == 1
    train = json.loads(run(["execution", "list", "-f", uri, "-p", "demo", "-s", "train", "--json"]).output)
    assert [e["id"] for e in train] == [ids["train"], ids["failed"], ids["train2"]]
    assert train[0]["params"] == {"train.lr": 0.1, "train.epochs": 3}
    other = json.loads(run(["execution", "list", "-f", uri, "-p", "other", "--json"]).output)
    assert [e["id"] for e in other] == [ids["report"]]
    by_uuid = json.loads(run(["execution", "list", "-f", uri, "-e", str(ids["report_uuid"]), "--json"]).output)
    assert [e["id"] for e in by_uuid] == [ids["report"]]
    last2 = json.loads(run(["execution", "list", "-f", uri, "-n", "2", "--json"]).output)
    assert [e["id"] for e in last2] == [ids["train2"], ids["report"]]
    assert json.loads(run(["execution", "list", "-f", uri, "-s", "train", "--json"]).output)[0]["stage"] == "train"


def test_artifact_list_filters(demo) -> None:
    uri, _ = demo
    out = run(["artifact", "list", "-f", uri]).output
    assert "data/raw.csv" in out and "demo,other" in out
    models = json.loads(run(["artifact", "list", "-f", uri, "--type", "model", "--json"]).output)
    assert [m["hash"] for m in models] == [H["model"], H["model2"]]
    other = json.loads(run(["artifact", "list", "-f", uri, "-p", "other", "--json"]).output)
    assert sorted(a["path"] for a in other) == ["data/raw.csv", "report.txt"]  # shared artifact included
    by_path = json.loads(run(["artifact", "list", "-f", uri, "-a", "model.pkl", "--json"]).output)
    assert len(by_path) == 2
    by_hash = json.loads(run(["artifact", "list", "-f", uri, "-a", H["raw"][:10], "--json"]).output)
    assert [a["path"] for a in by_hash] == ["data/raw.csv"]


def test_show_execution_and_artifact(demo) -> None:
    uri, ids = demo
    out = run(["show", str(ids["failed"]), "-f", uri]).output
    assert "FAILED" in out and "python train.py --lr 9" in out and "feat/fa.csv" in out
    data = json.loads(run(["show", str(ids["train"]), "-f", uri, "--json"]).output)
    assert data["kind"] == "execution" and data["record"]["custom_properties"]["train.lr"] == 0.1
    assert [i["artifact"]["path"] for i in data["inputs"]] == ["feat/fa.csv", "feat/fb.csv"]
    assert [o["artifact"]["path"] for o in data["outputs"]] == ["model.pkl"]
    by_uuid = json.loads(run(["show", str(ids["train_uuid"])[:13], "-f", uri, "--json"]).output)
    assert by_uuid["id"] == ids["train"]
    art = json.loads(run(["show", "model.pkl", "-f", uri, "--json"]).output)
    assert art["kind"] == "artifact" and art["record"]["uri"] == H["model2"]  # a path: the latest version
    assert [v["hash"] for v in art["versions"]] == [H["model"]]
    assert [(e["kind"], e["execution"]["id"]) for e in art["executions"]] == [("OUTPUT", ids["train2"])]
    raw = json.loads(run(["show", H["raw"], "-f", uri, "--json"]).output)
    assert sorted(e["execution"]["pipeline"] for e in raw["executions"]) == ["demo", "other"]
    assert "Dataset" in run(["show", "./data/raw.csv", "-f", uri]).output


def test_lineage_formats(demo) -> None:
    uri, ids = demo
    tree = run(["lineage", "model.pkl", "-f", uri, "--up"]).output
    assert "data/raw.csv" in tree and "(see above)" in tree  # the diamond meets at split
    assert "descendants" not in tree
    data = json.loads(run(["lineage", "model.pkl", "-f", uri, "--format", "json"]).output)
    assert data["root"]["kind"] == "artifact"
    assert sorted(a["path"] for a in data["up"]["artifacts"]) == [
        "data/a.csv", "data/b.csv", "data/raw.csv", "feat/fa.csv", "feat/fb.csv", "model.pkl"]
    assert data["down"]["artifacts"][0]["hash"] == H["model2"]
    down = json.loads(run(["lineage", "data/raw.csv", "-f", uri, "--down", "--depth", "1", "--json"]).output)
    assert data and down["up"] is None
    assert sorted(a["path"] for a in down["down"]["artifacts"]) == ["data/a.csv", "data/b.csv", "data/raw.csv", "report.txt"]
    assert down["down"]["truncated"] is True
    ex = json.loads(run(["lineage", str(ids["train"]), "-f", uri, "--down", "--json"]).output)
    assert ex["root"]["kind"] == "execution" and "metrics.json" in [a["path"] for a in ex["down"]["artifacts"]]


def parse_dot(text: str) -> "tuple[Dict[str, str], List[tuple]]":
    """A small structural parser for the dot subset we emit: nodes with attributes, edges."""
    lines = text.strip().splitlines()
    assert lines[0] == "digraph lineage {" and lines[-1] == "}"
    nodes: Dict[str, str] = {}
    edges = []
    for line in lines[1:-1]:
        line = line.strip()
        m = re.fullmatch(r'"(\w+)" -> "(\w+)";', line)
        if m:
            edges.append((m.group(1), m.group(2)))
            continue
        m = re.fullmatch(r'"(\w+)" \[(.*)\];', line)
        if m:
            attrs = m.group(2)
            # Quoted strings must be balanced (escaped quotes allowed).
            assert re.fullmatch(r'(\w+=("([^"\\]|\\.)*"|[\w.]+)(, )?)+', attrs), attrs
            nodes[m.group(1)] = attrs
            continue
        assert re.fullmatch(r'(rankdir=LR|node \[.*\]);', line), line
    for a, b in edges:
        assert a in nodes and b in nodes and a[0] != b[0]  # bipartite: artifact <-> execution
    return nodes, edges


def test_lineage_dot_and_mermaid_are_valid(demo) -> None:
    uri, ids = demo
    dot = run(["lineage", "data/raw.csv", "-f", uri, "--format", "dot"]).output
    nodes, edges = parse_dot(dot)
    assert f"e{ids['failed']}" in nodes and "fillcolor=mistyrose" in nodes[f"e{ids['failed']}"]
    assert (f"a{1}", f"e{ids['split']}") in edges
    mer = run(["lineage", "model.pkl", "-f", uri, "--format", "mermaid"]).output.strip().splitlines()
    assert mer[0] == "flowchart LR"
    node_ids = set()
    for line in mer[1:]:
        line = line.strip()
        if m := re.fullmatch(r'(a\d+)\["[^"]*"\]|(e\d+)\(\["[^"]*"\]\)', line):
            node_ids.add(m.group(1) or m.group(2))
        elif m := re.fullmatch(r"(\w+) --> (\w+)", line):
            assert m.group(1) in node_ids and m.group(2) in node_ids
        else:
            assert re.fullmatch(r"(classDef \w+ .+|class [\w,]+ \w+)", line), line


def test_diff_executions_and_artifact_versions(demo) -> None:
    uri, ids = demo
    out = run(["diff", str(ids["train"]), str(ids["failed"]), "-f", uri]).output
    assert "param train.lr" in out and "FAILED" in out and "exit code" in out
    assert "feat/fa.csv" not in out  # same inputs: not shown
    assert "param train.epochs" not in out
    full = json.loads(run(["diff", str(ids["train"]), str(ids["failed"]), "-f", uri, "--all", "--json"]).output)
    rows = {r["field"]: r for r in full["rows"]}
    assert rows["input feat/fa.csv"]["same"] and rows["param train.epochs"]["same"]
    assert rows["output model.pkl"] == {"field": "output model.pkl", "a": H["model"], "b": "", "same": False}
    arts = json.loads(run(["diff", H["model"], H["model2"], "-f", uri, "--json"]).output)
    fields = {r["field"]: (r["a"], r["b"]) for r in arts["rows"]}
    assert fields["hash"] == (H["model"], H["model2"])
    assert fields["producer param train.lr"] == ("0.1", "0.2")
    assert "no differences" in run(["diff", str(ids["train"]), str(ids["train"]), "-f", uri]).output
    res = run(["diff", str(ids["train"]), "data/raw.csv", "-f", uri], code=2)
    assert "cannot compare" in res.stderr


def test_metadata_export(demo, tmp_path: Path, monkeypatch) -> None:
    uri, _ = demo
    target = tmp_path / "out.json"
    run(["metadata", "export", "-p", "demo", "-j", str(target), "-f", uri])
    data = json.loads(target.read_text())
    [pipe] = data["Pipeline"]
    assert pipe["name"] == "demo" and len(pipe["stages"]) == 5
    for stage in pipe["stages"]:
        for ex in stage["executions"]:
            assert {"Context_Type", "Execution", "Execution_uuid"} <= set(ex["properties"])
            for ev in ex["events"]:
                assert ev["type"] in (3, 4) and ev["artifact"]["name"].split(":")[0]
    monkeypatch.chdir(tmp_path)
    run(["metadata", "export", "-p", "other", "-f", uri])
    assert json.loads((tmp_path / "other.json").read_text())["Pipeline"][0]["name"] == "other"
    assert json.loads(run(["metadata", "export", "-p", "other", "-j", "-", "-f", uri]).output)["Pipeline"]


def test_errors_are_one_line_exit_2(demo, tmp_path: Path) -> None:
    uri, _ = demo
    cases = [
        ["execution", "list", "-f", uri, "-p", "nope"],
        ["execution", "list", "-f", uri, "-p", "demo", "-s", "nope"],
        ["artifact", "list", "-f", uri, "-p", "nope"],
        ["artifact", "list", "-f", uri, "-a", "nope.csv"],
        ["show", "nope.csv", "-f", uri],
        ["lineage", "nope.csv", "-f", uri],
        ["metadata", "export", "-p", "nope", "-f", uri, "-j", str(tmp_path / "x.json")],
        ["pipeline", "list", "-f", str(tmp_path / "missing")],
    ]
    for args in cases:
        res = run(args, code=2)
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("cmfrun: error:"), (args, res.stderr)
    assert not (tmp_path / "missing").exists() and not (tmp_path / "x.json").exists()


def test_default_store_comes_from_config(demo, tmp_path: Path, monkeypatch) -> None:
    uri, _ = demo
    monkeypatch.setenv("CMFRUN_MLMD", uri)
    monkeypatch.chdir(tmp_path)
    assert "demo" in run(["pipeline", "list"]).output


def test_real_cmf_process(demo) -> None:
    uri, _ = demo
    exe = Path(sys.executable).parent / "cmf"
    out = subprocess.run([str(exe), "lineage", "model.pkl", "-f", uri, "--json"], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout)["root"]["kind"] == "artifact"
    bad = subprocess.run([str(exe), "show", "nope", "-f", uri], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1


def test_on_real_wrapped_runs(project, monkeypatch) -> None:
    """Stores written by `cmfrun --` (journals merged by the read commands), incl. a failure."""
    project.git_init()
    project.write("raw.csv", "x,y\n1,2\n")
    project.commit("data")
    cmfrun = str(Path(sys.executable).parent / "cmfrun")
    py = sys.executable
    steps = [
        (["-s", "prep", "--in", "raw.csv", "--out", "mid.csv"], "open('mid.csv','w').write(open('raw.csv').read()*2)", 0),
        (["-s", "train", "--in", "mid.csv", "--model", "model.bin"], "open('model.bin','w').write('m1')", 0),
        (["-s", "train", "--in", "mid.csv", "--model", "model.bin"], "import sys; sys.exit(3)", 3),
    ]
    for opts, code, rc in steps:
        proc = subprocess.run([cmfrun, "-p", "wrapped", *opts, "--", py, "-c", code], cwd=project.root,
                              capture_output=True, text=True)
        assert proc.returncode == rc, proc.stderr
    monkeypatch.chdir(project.root)
    execs = json.loads(run(["execution", "list", "-p", "wrapped", "--json"]).output)
    assert [e["stage"] for e in execs] == ["prep", "train", "train"]
    assert execs[2]["state"] == "FAILED" and execs[2]["exit_code"] == 3
    lin = json.loads(run(["lineage", "model.bin", "--up", "--json"]).output)
    assert sorted(a["path"] for a in lin["up"]["artifacts"] if a["type"] != "Environment") == [
        "mid.csv", "model.bin", "raw.csv"]
    shown = json.loads(run(["show", "raw.csv", "--json"]).output)
    assert shown["kind"] == "artifact" and len(shown["executions"]) == 1
    diff = json.loads(run(["diff", str(execs[1]["id"]), str(execs[2]["id"]), "--json"]).output)
    assert {"command", "state"} <= {r["field"] for r in diff["rows"]}
    exported = json.loads(run(["metadata", "export", "-p", "wrapped", "-j", "-"]).output)
    assert len(exported["Pipeline"][0]["stages"]) == 2
