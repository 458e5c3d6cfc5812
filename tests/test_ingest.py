"""cmf dvc ingest against real stores: every lock shape, matching, idempotence, re-runs, bad input."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

from tests.conftest import cli_runner

from cmfrun.cli import cmf
from cmfrun.ingest import dvc_ingest, ingest_locks
from cmfrun.ingest.lockfile import read_lock
from cmfrun.ingest.match import FINGERPRINT
from cmfrun.recorder import FileRef, RunRecord, new_uuid, record_run
from cmfrun.store import Store, connect

FIXTURES = Path(__file__).parent / "fixtures" / "locks"
GOOD = ["dvc3.lock", "dvc2.lock", "mixed.lock", "dvc1.lock", "foreach.lock", "paths.lock"]


def place(root: Path, fixture: str, rel: str = "dvc.lock") -> Path:
    dest = root / rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(FIXTURES / fixture, dest)
    return dest


def counts(store: Store) -> Tuple[int, int, int]:
    execs = store.executions()
    return len(execs), len(store.artifacts()), len(store.events_by_execution([e.id for e in execs]))


def by_stage(store: Store) -> Dict[str, object]:
    return {str(e.properties.get("Stage")): e for e in store.executions()}


def artifacts_of(store: Store, execution_id: int) -> Dict[Tuple[str, str], str]:
    """{(path, INPUT|OUTPUT): md5} of one execution."""
    events = store.events_by_execution([execution_id])
    arts = {a.id: a for a in store.artifacts_by_id([e.artifact_id for e in events])}
    return {(arts[e.artifact_id].path, e.kind): arts[e.artifact_id].uri for e in events}


@pytest.mark.parametrize("fixture", GOOD)
def test_every_lock_shape_ingests_and_reingest_changes_nothing(tmp_path: Path, fixture: str) -> None:
    lock_path = place(tmp_path, fixture)
    lock = read_lock(lock_path, tmp_path)
    store = connect(tmp_path / "mlmd")
    summary = ingest_locks(store, [lock_path], pipeline="p", root=tmp_path)
    hashed = [e for s in lock.stages for e in (*s.deps, *s.outs) if e.md5]
    assert summary.stages_read == len(lock.stages) == summary.executions_created
    assert summary.artifacts_created == len({e.md5 for e in hashed})
    n_exec, n_art, n_ev = counts(store)
    assert (n_exec, n_art, n_ev) == (len(lock.stages), len({e.md5 for e in hashed}), len(hashed))
    for st in lock.stages:
        ex = by_stage(store)[st.name]
        expected = {(e.path, "INPUT"): e.md5 for e in st.deps if e.md5}
        expected.update({(e.path, "OUTPUT"): e.md5 for e in st.outs if e.md5})
        assert artifacts_of(store, ex.id) == expected  # type: ignore[attr-defined]
        assert [c.name for c in store.contexts_by_execution(ex.id)] == [f"p/{st.name}"]  # type: ignore[attr-defined]
    again = ingest_locks(store, [lock_path], pipeline="p", root=tmp_path)
    assert counts(store) == (n_exec, n_art, n_ev)
    assert (again.executions_created, again.executions_merged, again.executions_unchanged) == (0, 0, len(lock.stages))
    assert again.artifacts_created == 0


def test_records_follow_the_contract_on_every_backend(store_uri: str, tmp_path: Path) -> None:
    lock_path = place(tmp_path, "dvc3.lock")
    store = connect(store_uri)
    summary = ingest_locks(store, [lock_path], pipeline="demo", root=tmp_path)
    assert (summary.executions_created, summary.artifacts_created) == (3, 6)
    execs = by_stage(store)
    train = execs["train"]
    assert train.type == "train" and train.state == "COMPLETE"  # type: ignore[attr-defined]
    props = train.properties  # type: ignore[attr-defined]
    assert props["Execution"] == "python src/train.py data/features model.pkl"
    assert props["Context_Type"] == "demo/train" and props["Pipeline_Type"] == "demo"
    assert props["Recorded_By"] == "cmf dvc ingest" and props["Execution_uuid"]
    custom = train.custom  # type: ignore[attr-defined]
    assert custom["train.lr"] == 1e-05 and custom["config/model.json:arch.blocks"] == 4
    assert custom["train.opts.layers"] == "[64, 32]" and FINGERPRINT not in custom
    assert len(str(props[FINGERPRINT])) == 32  # bookkeeping is a property, not a param
    # prepare's out, used by train and evaluate, is one artifact with three events.
    [prepared] = store.artifacts_by_uri(["153aad06d376b6595932470e459ef42a.dir"])
    assert prepared.name == "data/prepared:153aad06d376b6595932470e459ef42a.dir"
    assert prepared.custom == {"size": 8437363, "nfiles": 2}
    assert sorted(e.kind for e in store.events_by_artifact([prepared.id])) == ["INPUT", "INPUT", "OUTPUT"]
    assert [c.name for c in store.contexts_by_artifact(prepared.id)] == ["demo/prepare"]
    [model] = store.artifacts_by_uri(["8d3d3ca6c0e0cb45bd1e8c4c0b0c0f7e"])
    assert model.type == "Model" and model.custom["size"] == 6000000000.0  # a double: servers hold 32-bit ints
    assert model.name == f"model.pkl:8d3d3ca6c0e0cb45bd1e8c4c0b0c0f7e:{props['Execution_uuid']}"
    assert {c.name for c in store.child_contexts(store.context("Parent_Context", "demo").id)} == {  # type: ignore[union-attr]
        "demo/prepare", "demo/train", "demo/evaluate"}
    before = counts(store)
    ingest_locks(store, [lock_path], pipeline="demo", root=tmp_path)
    assert counts(store) == before


def wrapper_run(store: Store, stage: str, command: str, inputs=(), outputs=(), pipeline: str = "p") -> int:  # type: ignore[no-untyped-def]
    """Record a run the way `cmfrun --` does under DVC (Stage = DVC_STAGE, name = uuid)."""
    uid = new_uuid()
    run = RunRecord(pipeline=pipeline, stage=stage, command=command, uuid=uid, execution_name=uid,
                    properties={"Recorded_By": "cmfrun"}, inputs=list(inputs), outputs=list(outputs))
    return record_run(store, run).execution_id


def test_merges_into_the_wrapper_execution_of_the_stage(tmp_path: Path) -> None:
    lock_path = place(tmp_path, "dvc2.lock")
    store = connect(tmp_path / "mlmd")
    eid = wrapper_run(store, "train", "python train.py", inputs=[FileRef("clean.csv", "b" * 32)])
    summary = ingest_locks(store, [lock_path], pipeline="p", root=tmp_path)
    assert (summary.executions_merged, summary.executions_created) == (1, 1)
    [train_plan] = [s for s in summary.plan if s.stage == "train"]
    assert (train_plan.execution_id, train_plan.matched_by) == (eid, "stage")
    assert artifacts_of(store, eid) == {("clean.csv", "INPUT"): "b" * 32, ("model.pt", "OUTPUT"): "c" * 32}
    # clean.csv: one artifact shared by the wrapper's input and prepare's output.
    assert len(store.artifacts_by_uri(["b" * 32])) == 1
    assert len(store.executions()) == 2
    before = counts(store)
    again = ingest_locks(store, [lock_path], pipeline="p", root=tmp_path)
    assert counts(store) == before and again.executions_unchanged == 2


def test_merges_by_normalised_command_when_no_stage_matches(tmp_path: Path) -> None:
    lock_path = place(tmp_path, "foreach.lock")
    store = connect(tmp_path / "mlmd")
    eid = wrapper_run(store, "fe", "python fe.py --name a --out 'feat a.csv'")
    summary = ingest_locks(store, [lock_path], pipeline="p", root=tmp_path)
    [plan] = [s for s in summary.plan if s.stage == "fe@a"]
    assert (plan.action, plan.matched_by, plan.execution_id) == ("merge", "command", eid)
    [plan_b] = [s for s in summary.plan if s.stage == "fe@b"]
    assert plan_b.action == "create"


def test_hash_disagreement_is_a_warning_not_an_overwrite(tmp_path: Path) -> None:
    lock_path = place(tmp_path, "dvc2.lock")
    store = connect(tmp_path / "mlmd")
    eid = wrapper_run(store, "train", "python train.py", outputs=[FileRef("model.pt", "9" * 32)])
    summary = ingest_locks(store, [lock_path], pipeline="p", root=tmp_path)
    assert any("model.pt" in w and "kept the recorded hash" in w for w in summary.warnings)
    assert artifacts_of(store, eid)[("model.pt", "OUTPUT")] == "9" * 32
    assert not store.artifacts_by_uri(["c" * 32])


def test_rerun_of_one_stage_adds_exactly_its_execution(tmp_path: Path) -> None:
    lock_path = place(tmp_path, "dvc2.lock")
    store = connect(tmp_path / "mlmd")
    ingest_locks(store, [lock_path], pipeline="p", root=tmp_path)
    n_exec, n_art, n_ev = counts(store)
    lock_path.write_text(lock_path.read_text().replace("c" * 32, "d" * 32))
    summary = ingest_locks(store, [lock_path], pipeline="p", root=tmp_path)
    assert (summary.executions_created, summary.executions_unchanged, summary.artifacts_created) == (1, 1, 1)
    assert counts(store) == (n_exec + 1, n_art + 1, n_ev + 2)
    assert not summary.warnings
    trains = [e for e in store.executions() if e.properties.get("Stage") == "train"]
    assert len(trains) == 2
    # Going back to the first lock state is recognised: nothing new.
    lock_path.write_text(lock_path.read_text().replace("d" * 32, "c" * 32))
    back = ingest_locks(store, [lock_path], pipeline="p", root=tmp_path)
    assert back.executions_created == 0 and counts(store) == (n_exec + 1, n_art + 1, n_ev + 2)


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    lock_path = place(tmp_path, "dvc3.lock")
    store = connect(tmp_path / "mlmd")
    wrapper_run(store, "train", "python src/train.py data/features model.pkl")
    before = counts(store)
    summary = ingest_locks(store, [lock_path], pipeline="p", root=tmp_path, dry_run=True)
    assert summary.dry_run and (summary.executions_created, summary.executions_merged) == (2, 1)
    assert counts(store) == before
    assert store.context("Pipeline_Stage", "p/prepare") is None


def test_wdir_comes_from_dvc_yaml(tmp_path: Path) -> None:
    (tmp_path / "dvc.yaml").write_text(
        "stages:\n  prepare:\n    wdir: work\n    cmd: python prepare.py\n    deps: [raw.csv]\n    outs: [clean.csv]\n"
    )
    lock_path = place(tmp_path, "dvc2.lock")  # 'train' is no longer in dvc.yaml
    store = connect(tmp_path / "mlmd")
    summary = ingest_locks(store, [lock_path], pipeline="p", root=tmp_path)
    names = {a.name.split(":")[0] for a in store.artifacts()}
    # train reads clean.csv from the root: same content as work/clean.csv, so the same artifact.
    assert names == {"work/raw.csv", "work/clean.csv", "model.pt"}
    assert any("'train' is not defined in dvc.yaml" in w for w in summary.warnings)


def test_uri_entries_are_skipped_with_a_warning(tmp_path: Path) -> None:
    lock_path = place(tmp_path, "paths.lock")
    store = connect(tmp_path / "mlmd")
    summary = ingest_locks(store, [lock_path], pipeline="p", root=tmp_path)
    skipped = [w for w in summary.warnings if "has no md5" in w]
    assert len(skipped) == 2 and "s3://bucket/remote.csv" in skipped[0]
    assert not [a for a in store.artifacts() if "://" in a.name]


# -- the command line ---------------------------------------------------------------------------
def run_cli(args: List[str]):  # type: ignore[no-untyped-def]
    return cli_runner().invoke(cmf, args, catch_exceptions=False)


@pytest.mark.parametrize(
    "fixture, message",
    [
        ("bad_duplicate.lock", "bad.lock:7: duplicate key 'a'"),
        ("bad_conflict.lock", "bad.lock:3: merge-conflict marker"),
        ("bad_notyaml.lock", "bad.lock:5: not valid YAML"),
        ("bad_schema.lock", "bad.lock: unsupported dvc.lock schema"),
    ],
)
def test_cli_refused_lock_exits_2_and_leaves_the_store_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fixture: str, message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    place(tmp_path, "dvc2.lock")
    store_path = str(tmp_path / "mlmd")
    ok = run_cli(["dvc", "ingest", "-f", store_path, "-p", "p"])
    assert ok.exit_code == 0, ok.stderr
    assert "2 created" in ok.stdout
    before = counts(connect(store_path))
    place(tmp_path, fixture, "bad.lock")
    bad = run_cli(["dvc", "ingest", "-f", store_path, "--lock", "bad.lock"])
    assert bad.exit_code == 2
    assert message in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    assert counts(connect(store_path)) == before


def test_refused_lock_creates_no_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before any store exists, a lock DVC would refuse must not leave a new, empty one behind."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dvc.lock").write_text('schema: "2.0"\nstages:\n  a:\n    cmd: x\n  a:\n    cmd: y\n')
    bad = run_cli(["dvc", "ingest", "-f", str(tmp_path / "mlmd")])
    assert bad.exit_code == 2 and "dvc.lock:5: duplicate key 'a'" in bad.stderr
    assert not (tmp_path / "mlmd").exists()


def test_cli_missing_lock_and_exclusive_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    res = run_cli(["dvc", "ingest", "-f", str(tmp_path / "mlmd")])
    assert res.exit_code == 2 and "no dvc.lock in" in res.stderr
    assert not (tmp_path / "mlmd").exists()
    res = run_cli(["dvc", "ingest", "--all", "--lock", "x"])
    assert res.exit_code == 2


def test_cli_all_dry_run_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".git").mkdir()  # marks the project root for config.resolve
    place(tmp_path, "dvc2.lock")
    place(tmp_path, "mixed.lock", "sub/dvc.lock")
    store_path = str(tmp_path / "mlmd")
    dry = run_cli(["dvc", "ingest", "--all", "--dry-run", "-f", store_path])
    assert dry.exit_code == 0, dry.stderr
    assert "would ingest 4 stage(s) from 2 lock file(s)" in dry.stdout and "sub/dvc.yaml:old" in dry.stdout
    assert not Path(store_path).exists()
    res = run_cli(["dvc", "ingest", "--all", "-f", store_path, "--json"])
    data = json.loads(res.stdout)
    assert data["locks"] == ["dvc.lock", "sub/dvc.lock"] and data["executions_created"] == 4
    assert {p["stage"] for p in data["plan"]} == {"prepare", "train", "sub/dvc.yaml:old", "sub/dvc.yaml:new"}
    pipeline = tmp_path.name
    store = connect(store_path)
    assert store.context("Pipeline_Stage", f"{pipeline}/sub/dvc.yaml:new") is not None
    # bbbb... is clean.csv (root) and sub/mid.txt: same content, one artifact.
    assert len(store.artifacts_by_uri(["b" * 32])) == 1
    again = json.loads(run_cli(["dvc", "ingest", "--all", "-f", store_path, "--json"]).stdout)
    assert again["executions_unchanged"] == 4


def test_api_dvc_ingest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import cmfrun

    monkeypatch.chdir(tmp_path)
    place(tmp_path, "dvc1.lock")
    summary = cmfrun.dvc_ingest(str(tmp_path / "mlmd"), pipeline="api")
    assert summary.executions_created == 2
    assert connect(tmp_path / "mlmd").context("Parent_Context", "api") is not None
    with pytest.raises(cmfrun.CmfrunError):
        dvc_ingest(str(tmp_path / "mlmd"), mlmd=str(tmp_path / "other"))


def test_interrupted_ingest_is_repaired_by_running_it_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Through ml-metadata's API the links are a second write after the records; a failure
    between the two (simulated here, on either engine; tests/test_crash.py kills real ingests)
    leaves executions without their stage context and artifacts without their attribution
    until the next ingest, which links them to the stages that would have had them."""
    lock_path = place(tmp_path, "dvc2.lock")
    store = connect(tmp_path / "mlmd")
    whole = connect(tmp_path / "whole")
    ingest_locks(whole, [lock_path], pipeline="p", root=tmp_path)

    def records_only(executions, artifacts, edges, associations, attributions):  # type: ignore[no-untyped-def]
        type(store).put_lineage_linked(store, executions, artifacts, edges, [], [])  # the records, no links
        raise RuntimeError("interrupted")

    monkeypatch.setattr(store, "put_lineage_linked", records_only)
    with pytest.raises(RuntimeError):
        ingest_locks(store, [lock_path], pipeline="p", root=tmp_path)
    monkeypatch.undo()
    before = counts(store)
    stage_ctxs = [store.context("Pipeline_Stage", n) for n in ("p/prepare", "p/train")]
    assert before[0] == 2 and all(not store.executions_by_context(c.id) for c in stage_ctxs)  # type: ignore[union-attr]
    assert not any(store.contexts_by_artifact(int(a.id or 0)) for a in store.artifacts())
    summary = ingest_locks(store, [lock_path], pipeline="p", root=tmp_path)
    assert summary.executions_created == 0 and summary.executions_merged == 2
    assert counts(store) == before
    assert sorted(store.contexts_by_execution(e.id)[0].name for e in store.executions()) == ["p/prepare", "p/train"]

    def attributed(s: Store) -> Dict[Tuple[str, str], List[str]]:
        return {(a.type, a.uri): [c.name for c in s.contexts_by_artifact(int(a.id or 0))] for a in s.artifacts()}

    assert attributed(store) == attributed(whole)  # each artifact to its first stage, once


def test_all_with_one_refused_lock_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".git").mkdir()
    place(tmp_path, "dvc2.lock")
    place(tmp_path, "bad_conflict.lock", "z/dvc.lock")
    store_path = tmp_path / "mlmd"
    connect(store_path)
    before = counts(connect(store_path))
    res = run_cli(["dvc", "ingest", "--all", "-f", str(store_path)])
    assert res.exit_code == 2 and "z/dvc.lock:3: merge-conflict marker" in res.stderr
    assert counts(connect(store_path)) == before == (0, 0, 0)


def test_command_match_ignores_the_cmfrun_prefix_and_quoting(tmp_path: Path) -> None:
    lock_path = tmp_path / "dvc.lock"
    lock_path.write_text(
        "schema: '2.0'\nstages:\n  train:\n    cmd: cmfrun -s x --  python   \"train.py\" --out 'a b.pkl'\n"
        "    outs:\n    - path: a b.pkl\n      md5: " + "e" * 32 + "\n"
    )
    store = connect(tmp_path / "mlmd")
    eid = wrapper_run(store, "adhoc", "python train.py --out 'a b.pkl'")
    other = wrapper_run(store, "unrelated", "python other.py")
    summary = ingest_locks(store, [lock_path], pipeline="p", root=tmp_path)
    [plan] = summary.plan
    assert (plan.action, plan.matched_by, plan.execution_id) == ("merge", "command", eid)
    assert artifacts_of(store, eid) == {("a b.pkl", "OUTPUT"): "e" * 32}
    assert artifacts_of(store, other) == {}
