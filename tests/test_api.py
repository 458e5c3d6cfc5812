"""The CMF-compatible ``Cmf`` API against real SQLite, PostgreSQL and MariaDB stores.

Everything is real: MLMD stores, git repositories, a DVC repository and its cache,
a child process killed with SIGKILL. Records are read back with plain ``Store``
queries the way CMF's readers look at them (contract section 7).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Dict, List

import pyarrow.parquet as pq
import pytest

from cmfrun import errors, schema
from cmfrun.api import Cmf, cmf_init
from cmfrun.hashing import Hasher
from cmfrun.records import COMPLETE, FAILED, INPUT, OUTPUT, RUNNING
from cmfrun.store import Store, connect
from tests.conftest import Project, git


@pytest.fixture
def repo(project: Project, monkeypatch: pytest.MonkeyPatch) -> Project:
    """A git repository with one commit and a remote, as the current directory."""
    project.git_init(remote="https://example.com/me/proj.git")
    project.write("data/train.csv", "a,b\n1,2\n")
    project.write("data/test.csv", "a,b\n3,4\n")
    project.write("labels.csv", "file,label\n1,cat\n")
    project.write("model.pkl", "weights")
    project.write("raw/1.xml", "<x>1</x>")
    project.write("raw/2.xml", "<x>2</x>")
    project.commit()
    monkeypatch.chdir(project.root)
    return project


def _events(store: Store, execution_id: int) -> Dict[int, List[str]]:
    out: Dict[int, List[str]] = {}
    for ev in store.events_by_execution([execution_id]):
        out.setdefault(ev.artifact_id, []).append(ev.kind)
    return out


def test_contexts_execution_and_finalize(store_uri: str, repo: Project) -> None:
    cmf = Cmf(filepath=store_uri, pipeline_name="p", custom_properties={"owner": "a"})
    ctx = cmf.create_context("train", {"user-metadata1": "v"})
    assert (ctx.type, ctx.name, ctx.properties["Pipeline_Stage"]) == (schema.STAGE_CONTEXT, "p/train", "p/train")
    ex = cmf.create_execution("Train", {"lr": 0.01, "epochs": 3}, cmd="python train.py --lr 0.01")
    head = git(repo.root, "rev-parse", "HEAD")
    assert ex.state == RUNNING and ex.type == "Train" and ex.name == ""
    props = ex.properties
    for key in schema.CMF_EXECUTION_PROPERTIES:
        assert key in props, key
    assert props["Context_Type"] == props["Execution_type_name"] == "p/train"
    assert props["Pipeline_Type"] == "p" and props["Context_ID"] == ctx.id
    assert props["Execution"] == "python train.py --lr 0.01"
    assert props["Git_Repo"] == "https://example.com/me/proj.git" and props["Git_Start_Commit"] == head
    assert props["Git_End_Commit"] == "" and props["Git_Dirty"] == 0
    assert ex.custom_properties["lr"] == 0.01 and ex.custom_properties["epochs"] == 3  # Q4 fixed: float stays float

    # A new commit between start and end: finalize records it, never commits itself.
    repo.write("code.py", "print(1)")
    end = repo.commit("more")
    done = cmf.finalize()
    assert done.state == COMPLETE and done.properties["Git_End_Commit"] == end
    assert git(repo.root, "rev-parse", "HEAD") == end and git(repo.root, "branch", "--show-current") == "main"

    store = connect(store_uri)
    [pipe] = store.contexts_by_type(schema.PIPELINE_CONTEXT)
    assert pipe.name == "p" and pipe.custom == {"owner": "a"}
    assert [c.name for c in store.child_contexts(pipe.id)] == ["p/train"]
    assert [c.name for c in store.contexts_by_execution(ex.id)] == ["p/train"]
    [stored] = store.executions_by_id([ex.id])
    assert stored.state == COMPLETE and stored.properties["Git_End_Commit"] == end
    # The Python environment: one INPUT artifact, the same one for the next execution.
    [(env_id, kinds)] = _events(store, ex.id).items()
    [env] = store.artifacts_by_id([env_id])
    assert kinds == [INPUT] and env.type == schema.ENVIRONMENT
    assert env.name.startswith("cmf_artifacts/python_env_") and "packages" in env.custom
    assert (repo.root / env.path).read_text() == env.custom["packages"]
    ex2 = cmf.create_execution("Train")
    assert list(_events(store, ex2.id)) == [env_id]
    assert ex2.custom["Python_Env"] == env.path


def test_reused_execution(store_uri: str, repo: Project) -> None:
    cmf = Cmf(filepath=store_uri, pipeline_name="p")
    cmf.create_context("train")
    first = cmf.create_execution("fit", {"a": 1}, cmd="first", create_new_execution=False)
    cmf.log_dataset("data/train.csv", "input")
    second = cmf.create_execution("fit", {"b": 2}, cmd="second", create_new_execution=False)
    assert second.id == first.id and (second.type, second.name) == ("p/train", "fit")  # Q1 kept
    assert second.properties["Execution"] == "first"
    uuids = str(second.properties["Execution_uuid"]).split(",")
    assert len(uuids) == 2 and uuids[0] == first.properties["Execution_uuid"]
    assert second.custom["a"] == 1 and second.custom["b"] == 2
    cmf.log_dataset("data/train.csv", "input")  # already linked: no second event
    store = connect(store_uri)
    assert sorted(len(k) for k in _events(store, first.id).values()) == [1, 1]
    assert len(store.executions_by_type("p/train")) == 1
    [stored] = store.executions_by_id([first.id])
    assert stored.properties["Execution_uuid"] == second.properties["Execution_uuid"] and stored.custom["b"] == 2
    assert stored.state == RUNNING


def test_datasets_labels_and_identity(store_uri: str, repo: Project) -> None:
    cmf = Cmf(filepath=store_uri, pipeline_name="p")
    cmf.create_context("prepare")
    ex = cmf.create_execution("Prepare")
    raw = cmf.log_dataset(
        str(repo.root / "data/train.csv"), "input", {"source": "kaggle", "rows": 1, "ratio": 0.5},
        label="labels.csv", label_properties={"user": "Ron"},
    )
    assert raw.type == "Dataset" and raw.path == "data/train.csv"  # absolute path recorded root-relative
    assert raw.name == f"data/train.csv:{raw.uri}" and raw.properties["Commit"] == raw.uri
    assert raw.properties["url"] == f"p:{raw.uri}" and raw.properties["git_repo"] == "https://example.com/me/proj.git"
    assert raw.custom["source"] == "kaggle" and raw.custom["ratio"] == 0.5
    assert raw.custom["labels"] == "labels.csv" and str(raw.custom["labels_uri"]).startswith("labels.csv:")
    folder = cmf.log_dataset("raw", "output")
    assert folder.uri.endswith(".dir") and folder.name == f"raw:{folder.uri}"
    again = cmf.log_dataset("data/train.csv", "input")
    assert again.id == raw.id

    store = connect(store_uri)
    [label] = store.artifacts_by_type(schema.LABEL)
    assert label.custom["user"] == "Ron" and label.custom["dataset_uri"] == raw.uri
    kinds = _events(store, ex.id)
    assert kinds[raw.id] == [INPUT] and kinds[label.id] == [INPUT] and kinds[folder.id] == [OUTPUT]

    # The same bytes under another name, in another stage and pipeline: one artifact, relinked.
    (repo.root / "copy.csv").write_bytes((repo.root / "data/train.csv").read_bytes())
    other = Cmf(filepath=store_uri, pipeline_name="q")
    other.create_context("train")
    ex2 = other.create_execution("Train")
    linked = other.log_dataset("copy.csv", "input", {"note": "reused"})
    assert linked.id == raw.id and linked.name == raw.name  # identity is the hash, name unchanged
    [stored] = store.artifacts_by_id([raw.id])
    assert stored.properties["url"] == f"p:{raw.uri},q:{raw.uri}"
    assert stored.custom["note"] == "reused" and stored.custom["source"] == "kaggle"  # Q6: merged
    [ev] = [e for e in store.events_by_artifact([raw.id]) if e.execution_id == ex2.id]
    assert ev.path == (f"copy.csv:{raw.uri}",)  # relink: one path step, as CMF
    assert sorted(c.name for c in store.contexts_by_artifact(raw.id)) == ["p/prepare", "q/train"]
    assert len(store.artifacts_by_uri([raw.uri])) == 1


def test_models_and_metrics(store_uri: str, repo: Project) -> None:
    cmf = Cmf(filepath=store_uri, pipeline_name="p")
    cmf.create_context("train")
    ex = cmf.create_execution("Train")
    model = cmf.log_model("model.pkl", "output", model_framework="SKlearn", model_type="RF", custom_properties={"depth": 3})
    assert model.type == "Model" and model.name == f"model.pkl:{model.uri}:{ex.id}"
    assert model.properties["model_framework"] == "SKlearn" and model.properties["model_name"] == "Default"
    assert model.properties["url"] == f"p:{model.uri}" and model.custom["depth"] == 3

    metrics = cmf.log_execution_metrics("eval", {"auc": 0.91, "n": 10})
    name, uuid1, eid = metrics.name.split(":")
    assert (name, eid, metrics.uri) == ("eval", str(ex.id), uuid1)
    assert metrics.type == "Metrics" and metrics.properties["metrics_name"] == "eval"
    assert metrics.custom == {"auc": 0.91, "n": 10}

    for step in range(5):
        cmf.log_metric("training", {"loss": 1.0 / (step + 1), **({"acc": 0.5} if step % 2 else {})})
    step = cmf.commit_metrics("training")
    path, md5, step_eid, uuid2 = step.name.split(":")
    uuid_now = ex.properties["Execution_uuid"]
    assert path == f"cmf_artifacts/{uuid_now}/metrics/training" and step_eid == str(ex.id) and md5 == step.uri
    assert step.type == "Step_Metrics" and "Name" not in step.custom  # Q15: never write Name
    table = pq.read_table(repo.root / path)
    rows = table.to_pylist()
    assert [r["SequenceNumber"] for r in rows] == [1, 2, 3, 4, 5]
    assert rows[0]["loss"] == 1.0 and rows[0]["acc"] is None and rows[1]["acc"] == 0.5
    pd = pytest.importorskip("pandas")
    frame = pd.read_parquet(repo.root / path)  # pandas metadata: the index comes back as in CMF's files
    assert frame.index.name == "SequenceNumber" and list(frame.index) == [1, 2, 3, 4, 5]
    with pytest.raises(errors.UsageError, match="no step metrics"):
        cmf.commit_metrics("training")  # the buffer was emptied

    store = connect(store_uri)
    kinds = _events(store, ex.id)
    assert kinds[model.id] == kinds[metrics.id] == kinds[step.id] == [OUTPUT]
    # A consumer links the model by hash; its properties are left alone.
    cmf.create_context("evaluate")
    ex2 = cmf.create_execution("Evaluate")
    used = cmf.log_model("model.pkl", "input", model_framework="other")
    assert used.id == model.id and used.properties["model_framework"] == "SKlearn"
    assert _events(store, ex2.id)[model.id] == [INPUT]


def test_dataslices(store_uri: str, repo: Project) -> None:
    cmf = Cmf(filepath=store_uri, pipeline_name="p")
    cmf.create_context("slice")
    ex = cmf.create_execution("Slice")
    ds = cmf.create_dataslice("slice-a")
    ds.add_data("raw/1.xml", {"key1": "v1"})  # Q12 fixed: a path with one '/' works
    ds.add_data(repo.root / "raw/2.xml")
    art = ds.commit({"purpose": "test"})
    rel = f"cmf_artifacts/{ex.properties['Execution_uuid']}/dataslice/slice-a"
    assert art.type == "Dataslice" and art.name == f"{rel}:{art.uri}" and art.custom["purpose"] == "test"
    rows = pq.read_table(repo.root / rel).to_pylist()
    assert [r["Path"] for r in rows] == ["raw/1.xml", "raw/2.xml"]
    assert rows[0]["key1"] == "v1" and len(rows[0]["hash"]) == 32

    new = cmf.update_dataslice("slice-a", "raw/2.xml", {"key1": "changed"})
    rows = pq.read_table(repo.root / rel).to_pylist()
    assert rows[1]["key1"] == "changed"
    assert new.uri != art.uri and new.path == rel  # Q11 fixed: a new version, hash stays true
    store = connect(store_uri)
    kinds = _events(store, ex.id)
    assert kinds[art.id] == kinds[new.id] == [OUTPUT]
    with pytest.raises(errors.NotFoundError, match="no record"):
        cmf.update_dataslice("slice-a", "raw/none.xml", {"k": 1})
    with pytest.raises(errors.NotFoundError, match="no dataslice"):
        cmf.update_dataslice("slice-b", "raw/1.xml", {"k": 1})
    with pytest.raises(errors.InputFileError):
        cmf.create_dataslice("s").add_data("raw/missing.xml")


def test_with_version(store_uri: str, repo: Project) -> None:
    cmf = Cmf(filepath=store_uri, pipeline_name="p")
    cmf.create_context("server")
    ex = cmf.create_execution("Server")
    h = "0123456789abcdef0123456789abcdef"
    ds = cmf.log_dataset_with_version("remote/data.csv", h, "input", props={"url": "p:/store/01/23", "git_repo": "g"}, custom_properties={"k": 1})
    assert (ds.name, ds.uri, ds.properties["url"], ds.properties["git_repo"]) == (f"remote/data.csv:{h}", h, "p:/store/01/23", "g")
    m = "fedcba9876543210fedcba9876543210"
    model = cmf.log_model_with_version("remote/model.pkl", "output", props={"uri": m, "model_framework": "torch"})
    assert model.name == f"remote/model.pkl:{m}:{ex.id}" and model.properties["model_framework"] == "torch"
    with pytest.raises(errors.UsageError, match="uri"):
        cmf.log_model_with_version("x", "output", props={})
    with pytest.raises(errors.UsageError, match="version"):
        cmf.log_dataset_with_version("x", "", "input")
    assert set(_events(connect(store_uri), ex.id)) >= {ds.id, model.id}


def test_bad_input_records_nothing(store_uri: str, repo: Project) -> None:
    cmf = Cmf(filepath=store_uri, pipeline_name="p")
    with pytest.raises(errors.UsageError, match="create_execution"):
        cmf.log_dataset("data/train.csv", "input")
    cmf.create_context("s")
    ex = cmf.create_execution("S")
    store = connect(store_uri)
    before = len(store.artifacts())
    with pytest.raises(errors.InputFileError, match="no such file"):
        cmf.log_dataset("data/missing.csv", "input")
    with pytest.raises(errors.InputFileError, match="label"):
        cmf.log_dataset("data/train.csv", "input", label="missing-labels.csv")
    with pytest.raises(errors.UsageError, match="'input' or 'output'"):
        cmf.log_dataset("data/train.csv", "sideways")
    with pytest.raises(errors.UsageError):
        cmf.log_execution_metrics("bad:name", {})
    with pytest.raises(errors.NotFoundError):
        cmf.update_execution(999999, {"a": 1})
    assert len(store.artifacts()) == before and len(store.events_by_execution([ex.id])) == 1
    assert isinstance(errors.InputFileError("x"), errors.CmfrunError)


def test_update_execution_merges(store_uri: str, repo: Project) -> None:
    cmf = Cmf(filepath=store_uri, pipeline_name="p")
    cmf.create_context("s")
    ex = cmf.create_execution("S", {"a": 1, "b": "x"})
    updated = cmf.update_execution(ex.id, {"b": "y", "c": 2.5})
    assert updated.custom["a"] == 1 and updated.custom["b"] == "y" and updated.custom["c"] == 2.5
    [stored] = connect(store_uri).executions_by_id([ex.id])
    assert stored.custom == updated.custom and stored.state == RUNNING
    assert cmf.execution is not None and cmf.execution.custom["c"] == 2.5


def test_graph_true_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("NEO4J_URI", "NEO4J_USER_NAME", "NEO4J_PASSWD"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)  # no .cmfconfig with neo4j_uri around
    with pytest.raises(errors.GraphNotConfiguredError, match="NEO4J_URI"):
        Cmf(filepath=str(tmp_path / "mlmd"), pipeline_name="p", graph=True)
    assert not (tmp_path / "mlmd").exists()  # refused before anything was created
    # A configured graph database is mirrored into: tests/test_graph.py.


def test_outside_git_and_without_remote(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "d.txt").write_text("d")
    monkeypatch.chdir(plain)
    cmf = Cmf(filepath="mlmd", pipeline_name="p")
    cmf.create_context("s")
    ex = cmf.create_execution("S")
    art = cmf.log_dataset("d.txt", "output")
    done = cmf.finalize()
    assert ex.properties["Git_Repo"] == "" and ex.properties["Git_Start_Commit"] == "" and "Git_Dirty" not in ex.properties
    assert done.properties["Git_End_Commit"] == "" and art.properties["git_repo"] == "" and art.path == "d.txt"
    assert (plain / "mlmd").exists()
    assert art.uri == Hasher().hash(plain / "d.txt").md5  # the small-file shortcut is DVC's md5

    no_remote = tmp_path / "noremote"
    no_remote.mkdir()
    git(no_remote, "init", "-q")
    (no_remote / "d.txt").write_text("d")
    monkeypatch.chdir(no_remote)
    cmf = Cmf(filepath=str(tmp_path / "mlmd2"), pipeline_name="p")
    cmf.create_context("s")
    ex = cmf.create_execution("S")
    assert ex.properties["Git_Repo"] == "" and ex.properties["Git_Start_Commit"] == ""  # no commit yet
    assert cmf.log_dataset("d.txt", "input").path == "d.txt"


def test_dvc_repository_cache_no_dvc_files(sqlite_uri: str, project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    project.git_init().dvc_init()
    project.write("data/big.csv", "x\n" * 1000)
    project.write("images/a.png", "a")
    project.write("images/b.png", "b")
    head = project.commit("init")
    monkeypatch.chdir(project.root / "data")  # paths are still recorded relative to the project root
    cmf = Cmf(filepath=sqlite_uri, pipeline_name="p")
    cmf.create_context("s")
    cmf.create_execution("S")
    art = cmf.log_dataset("big.csv", "input")
    folder = cmf.log_dataset("../images", "output")
    assert art.path == "data/big.csv" and folder.path == "images"
    cache = project.root / ".dvc" / "cache" / "files" / "md5"
    assert (cache / art.uri[:2] / art.uri[2:]).read_text() == "x\n" * 1000
    bare = folder.uri[: -len(".dir")]
    assert (cache / bare[:2] / (bare[2:] + ".dir")).is_file()
    assert not [p for p in project.root.rglob("*.dvc") if p.is_file()]
    cmf.finalize()
    assert git(project.root, "rev-parse", "HEAD") == head  # no git commit per artifact (or at all)
    assert git(project.root, "branch", "--show-current") == "main"
    # The same content hash as DVC itself computes (a file git does not track, so DVC may add it).
    project.write("new.bin", binary=bytes(range(256)) * 64)
    cmf.create_execution("S2")
    new = cmf.log_dataset("../new.bin", "output")
    project.dvc("add", "new.bin")
    assert f"md5: {new.uri}" in (project.root / "new.bin.dvc").read_text()


_CHILD = textwrap.dedent(
    """
    import sys
    from cmfrun.api import Cmf
    store, root, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    cmf = Cmf(filepath=store, pipeline_name="crash", root=root)
    cmf.create_context("loop")
    for round in range(1000):
        cmf.create_execution("Loop")
        for i in range(n):
            cmf.log_dataset(f"{root}/f{i}.txt", "input" if i % 2 else "output", {"i": i})
            if round == 0 and i == 5:
                open(f"{root}/ready", "w").close()
    """
)


def test_sigkill_mid_loop_leaves_complete_writes(store_uri: str, tmp_path: Path) -> None:
    root = tmp_path / "files"
    root.mkdir()
    n = 40
    for i in range(n):
        (root / f"f{i}.txt").write_text(f"content {i} {os.urandom(4).hex()}")
    child = subprocess.Popen([sys.executable, "-c", _CHILD, store_uri, str(root), str(n)], cwd=tmp_path)
    deadline = time.monotonic() + 60
    while not (root / "ready").exists():
        assert child.poll() is None, "child died before logging"
        assert time.monotonic() < deadline, "child never became ready"
        time.sleep(0.01)
    time.sleep(0.3)  # somewhere in the middle of a later log_dataset
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL

    store = connect(store_uri)
    arts = {a.id: a for a in store.artifacts()}
    execs = {e.id: e for e in store.executions()}
    events = store.events_by_execution(list(execs))
    assert len(arts) > 6  # it got somewhere
    with_event = {e.artifact_id for e in events}
    assert set(arts) == with_event, "an artifact without its event"
    assert with_event <= set(arts), "an event without its artifact"
    for aid in arts:
        assert [c.name for c in store.contexts_by_artifact(aid)] == ["crash/loop"], "an artifact without attribution"
    for eid in execs:
        assert [c.name for c in store.contexts_by_execution(eid)] == ["crash/loop"]
    # Each file appears once per execution that logged it: no duplicate, no half-written event.
    seen = set()
    for ev in events:
        assert (ev.execution_id, ev.artifact_id) not in seen
        seen.add((ev.execution_id, ev.artifact_id))


def test_cmf_readers_see_the_api_records(store_uri: str, repo: Project) -> None:
    from cmfrun.query import CmfQuery

    cmf = Cmf(filepath=store_uri, pipeline_name="p")
    cmf.create_context("prepare")
    cmf.create_execution("Prepare")
    raw = cmf.log_dataset("data/train.csv", "input")
    out = cmf.log_dataset("data/test.csv", "output")
    cmf.finalize()
    cmf.create_context("train")
    train = cmf.create_execution("Train")
    cmf.log_dataset("data/test.csv", "input")
    model = cmf.log_model("model.pkl", "output")
    cmf.finalize()

    q = CmfQuery(store_uri)
    assert q.get_pipeline_names() == ["p"]
    assert sorted(q.get_pipeline_stages("p")) == ["p/prepare", "p/train"]
    [exe] = q.get_all_exe_in_stage("p/train")
    assert exe.id == train.id and exe.state == COMPLETE
    frame = q.get_all_executions_for_artifact(out.name)
    assert sorted(frame["Type"]) == ["INPUT", "OUTPUT"] and set(frame["pipeline"]) == {"p"}
    assert set(frame["execution_type_name"]) == {"p/prepare", "p/train"}
    parents = q.get_all_parent_artifacts(model.name)
    assert {raw.name, out.name} <= set(parents["name"])
    producer = q.find_producer_execution(model.name)
    assert producer is not None and producer.id == train.id
    # Names are unique across types (readers take the first exact match).
    names = [a.name for a in connect(store_uri).artifacts()]
    assert len(names) == len(set(names))


def test_context_manager_marks_failure(sqlite_uri: str, repo: Project) -> None:
    with pytest.raises(RuntimeError):
        with Cmf(filepath=sqlite_uri, pipeline_name="p") as cmf:
            cmf.create_context("s")
            ex = cmf.create_execution("S")
            raise RuntimeError("boom")
    [stored] = connect(sqlite_uri).executions_by_id([ex.id])
    assert stored.state == FAILED


def test_cmf_init_local_remote_names_urls(sqlite_uri: str, project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project.git_init().dvc_init()
    project.write("d.csv", "1,2\n")
    project.commit()
    monkeypatch.chdir(project.root)
    with pytest.raises(errors.UsageError, match="all three"):
        cmf_init(type="local", path=str(tmp_path / "store"), neo4j_uri="bolt://x")
    with pytest.raises(errors.UsageError, match="needs --url"):
        cmf_init(type="amazonS3", path="s3://b")
    res = cmf_init(type="local", path=str(tmp_path / "store"), git_remote_url="https://example.com/r.git")
    assert res.remote_url == str(tmp_path / "store") and git(project.root, "remote", "get-url", "origin") == "https://example.com/r.git"
    cmf = Cmf(filepath=sqlite_uri, pipeline_name="p")
    cmf.create_context("s")
    ex = cmf.create_execution("S")
    art = cmf.log_dataset("d.csv", "output")
    assert art.properties["url"] == f"p:{tmp_path / 'store'}/files/md5/{art.uri[:2]}/{art.uri[2:]}"
    assert ex.properties["Git_Repo"] == "https://example.com/r.git"


_WRITER = textwrap.dedent(
    """
    import sys
    from cmfrun.api import Cmf
    store, root, n, who = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    cmf = Cmf(filepath=store, pipeline_name="pipe-" + who, root=root)
    cmf.create_context("s")
    cmf.create_execution("Writer")
    for i in range(n):
        cmf.log_dataset(f"{root}/f{i}.txt", "output")
    cmf.finalize()
    """
)


def test_concurrent_writers_share_artifacts(store_uri: str, tmp_path: Path) -> None:
    root = tmp_path / "files"
    root.mkdir()
    n = 25
    for i in range(n):
        (root / f"f{i}.txt").write_text(f"shared {i}")
    connect(store_uri)  # create the schema once, as a first run would
    kids = [
        subprocess.Popen([sys.executable, "-c", _WRITER, store_uri, str(root), str(n), who], cwd=tmp_path, stderr=subprocess.PIPE)
        for who in ("a", "b")
    ]
    for kid in kids:
        _, err = kid.communicate(timeout=120)
        assert kid.returncode == 0, err.decode()
    store = connect(store_uri)
    datasets = store.artifacts_by_type(schema.DATASET)
    assert len(datasets) == n and len({a.uri for a in datasets}) == n  # one artifact per content
    execs = store.executions_by_type("Writer")
    assert len(execs) == 2 and all(e.state == COMPLETE for e in execs)
    for ex in execs:
        assert len(store.events_by_execution([ex.id])) == n + 1  # + the environment
    for art in datasets:
        assert sorted(str(art.properties["url"]).split(",")[i].split(":")[0] for i in range(2)) == ["pipe-a", "pipe-b"]
