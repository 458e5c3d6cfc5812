"""OpenLineage export: events validated against the OpenLineage JSON schema, written to a
file and posted to a real HTTP receiver on 127.0.0.1; live emission from `cmfrun --`."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest

from tests.conftest import cli_runner

pytest.importorskip("openlineage.client", reason="openlineage-python not installed (pip install cmfrun[openlineage])")
jsonschema = pytest.importorskip("jsonschema", reason="jsonschema not installed (pip install cmfrun[test])")

from cmfrun.cli import cmf  # noqa: E402
from cmfrun.recorder import FileRef, RunRecord, record_run  # noqa: E402
from cmfrun.store import connect  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures" / "openlineage"
PY = sys.executable
SECRET_REPO = "https://alice:s3cret-token@git.example.com/org/repo.git"


# -- schema -----------------------------------------------------------------------------------
def _validators() -> Tuple[Any, Dict[str, Any]]:
    from referencing import Registry, Resource

    core = json.loads((FIXTURES / "OpenLineage.json").read_text())
    facets = json.loads((FIXTURES / "facets.json").read_text())
    registry = Registry().with_resources(
        [(core["$id"], Resource.from_contents(core)), (facets["$id"], Resource.from_contents(facets))]
    )
    checker = jsonschema.FormatChecker()
    event = jsonschema.Draft202012Validator(core, registry=registry, format_checker=checker)
    per_facet = {
        key: jsonschema.Draft202012Validator({"$ref": f"{facets['$id']}#/$defs/{key}"}, registry=registry, format_checker=checker)
        for key in facets["$defs"]
    }
    return event, per_facet


EVENT_SCHEMA, FACET_SCHEMAS = _validators()


def validate(event: Dict[str, Any]) -> None:
    """The whole event against the RunEvent schema, each standard facet against its own."""
    EVENT_SCHEMA.validate(event)
    uuid.UUID(event["run"]["runId"])  # format "uuid" as the spec means it, checked for sure
    facets: List[Tuple[str, Any]] = list(event["run"].get("facets", {}).items())
    facets += list(event["job"].get("facets", {}).items())
    for ds in event.get("inputs", []) + event.get("outputs", []):
        facets += list(ds.get("facets", {}).items())
    for key, facet in facets:
        if key in FACET_SCHEMAS:
            FACET_SCHEMAS[key].validate(facet)


def test_schema_rejects_a_broken_event() -> None:
    good = {
        "eventType": "START",
        "eventTime": "2026-12-03T05:00:00.000+00:00",
        "producer": "urn:cmfrun:0.1.0",
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        "run": {"runId": str(uuid.uuid1()), "facets": {}},
        "job": {"namespace": "p", "name": "s"},
    }
    validate(good)
    for broken in (
        {**good, "eventType": "DONE"},
        {**good, "run": {"facets": {}}},
        {**good, "job": {"name": "s"}},
        {**good, "run": {"runId": good["run"]["runId"], "facets": {"x": {"_producer": "urn:a"}}}},
    ):
        with pytest.raises(jsonschema.ValidationError):
            validate(broken)
    with pytest.raises(jsonschema.ValidationError):
        FACET_SCHEMAS["version"].validate({"_producer": "urn:a", "_schemaURL": "urn:b"})


# -- a store with runs of every outcome -------------------------------------------------------
def _record(store: Any, stage: str, state: str, *, inputs=(), outputs=(), custom=None, exit_code=0) -> str:  # type: ignore[no-untyped-def]
    run_uuid = str(uuid.uuid1())
    now = time.time() * 1000.0
    record_run(
        store,
        RunRecord(
            pipeline="demo",
            stage=stage,
            command=f"python src/{stage}.py",
            uuid=run_uuid,
            execution_type=stage,
            execution_name=run_uuid,
            state=state,
            git_repo=SECRET_REPO,
            git_start_commit="a" * 40,
            git_end_commit="b" * 40,
            properties={"Exit_Code": exit_code, "Start_Time_ms": now - 1500.0, "End_Time_ms": now, "Git_Dirty": 0},
            custom=custom or {},
            inputs=inputs,
            outputs=outputs,
        ),
    )
    return run_uuid


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    path = tmp_path / "mlmd"
    store = connect(str(path))
    raw = FileRef("data/raw.csv", "1" * 32)
    prep = FileRef("data/prepared", "2" * 32 + ".dir")
    model = FileRef("model.pkl", "3" * 32, type="Model")
    store.uuids = {  # type: ignore[attr-defined]
        "prepare": _record(store, "prepare", "COMPLETE", inputs=[raw], outputs=[prep], custom={"prepare.split": 0.25}),
        "train": _record(store, "train", "FAILED", inputs=[prep], outputs=[model], custom={"train.lr": 0.01}, exit_code=2),
        "serve": _record(store, "serve", "RUNNING", inputs=[model]),
        "stopped": _record(store, "stopped", "CANCELED", inputs=[model], exit_code=130),
    }
    (tmp_path / "uuids.json").write_text(json.dumps(store.uuids))  # type: ignore[attr-defined]
    store.close()
    return path


def _uuids(store_path: Path) -> Dict[str, str]:
    return dict(json.loads((store_path.parent / "uuids.json").read_text()))


def _export(*args: str) -> Any:
    return cli_runner().invoke(cmf, ["openlineage", "export", *args], catch_exceptions=False)


def _read_jsonl(path: Path) -> List[Dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _check_demo_events(events: List[Dict[str, Any]], uuids: Dict[str, str]) -> None:
    for ev in events:
        validate(ev)
    by_run: Dict[str, List[Dict[str, Any]]] = {}
    for ev in events:
        by_run.setdefault(ev["run"]["runId"], []).append(ev)
    assert set(by_run) == set(uuids.values())
    types = {stage: [e["eventType"] for e in by_run[u]] for stage, u in uuids.items()}
    assert types == {"prepare": ["START", "COMPLETE"], "train": ["START", "FAIL"], "serve": ["START"], "stopped": ["START", "ABORT"]}
    prep_end = by_run[uuids["prepare"]][1]
    assert prep_end["job"] == {
        "namespace": "demo",
        "name": "prepare",
        "facets": prep_end["job"]["facets"],
    } and prep_end["job"]["facets"]["jobType"]["integration"] == "CMFRUN"
    # Datasets: namespace = the repository without its credentials, name = path, version = DVC md5.
    [inp] = prep_end["inputs"]
    [out] = prep_end["outputs"]
    assert inp["namespace"] == "https://git.example.com/org/repo.git"
    assert (inp["name"], inp["facets"]["version"]["datasetVersion"]) == ("data/raw.csv", "1" * 32)
    assert (out["name"], out["facets"]["version"]["datasetVersion"]) == ("data/prepared", "2" * 32 + ".dir")
    start = by_run[uuids["prepare"]][0]
    assert start["eventTime"] < prep_end["eventTime"] and start["outputs"] == [] and start["inputs"] == [inp]
    facets = start["run"]["facets"]  # the run's inputs: params and git
    assert facets["executionParameters"]["parameters"] == [{"key": "prepare.split", "value": "0.25"}]
    assert facets["cmfrun_git"]["startCommit"] == "a" * 40 and facets["cmfrun_git"]["endCommit"] == "b" * 40
    assert facets["cmfrun_git"]["dirty"] is False
    assert facets["processing_engine"]["name"] == "cmfrun"
    end = prep_end["run"]["facets"]  # the outcome
    assert end["cmfrun_execution"]["command"] == "python src/prepare.py" and end["cmfrun_execution"]["exitCode"] == 0
    assert end["cmfrun_execution"]["state"] == "COMPLETE" and "errorMessage" not in end
    running = by_run[uuids["serve"]][0]["run"]["facets"]["cmfrun_execution"]
    assert running["state"] == "RUNNING" and "exitCode" in running
    fail = by_run[uuids["train"]][1]
    assert fail["run"]["facets"]["errorMessage"]["message"] == "exited with code 2"
    assert fail["outputs"][0]["name"] == "model.pkl"
    for ev in events:  # standard facets carry the spec's schema URLs (from the client's classes)
        assert ev["schemaURL"].startswith("https://openlineage.io/spec/") and ev["schemaURL"].endswith("/RunEvent")
        for key, value in ev["run"]["facets"].items():
            assert value["_schemaURL"].startswith("https://openlineage.io/spec/" if key in FACET_SCHEMAS else "urn:cmfrun:")
    assert "s3cret" not in json.dumps(events)


def test_export_to_file_validates(store_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "events.jsonl"
    out.write_text("stale line from an earlier export\n")
    res = _export("-p", "demo", "-f", str(store_path), "-o", str(out))
    assert res.exit_code == 0, res.output
    assert "sent 7 OpenLineage events for 4 executions" in res.output
    _check_demo_events(_read_jsonl(out), _uuids(store_path))


def test_since_keeps_only_newer_executions(store_path: Path, tmp_path: Path) -> None:
    time.sleep(0.05)
    cut = int(time.time() * 1000)
    time.sleep(0.05)
    store = connect(str(store_path))
    late = _record(store, "late", "COMPLETE", inputs=[FileRef("data/raw.csv", "1" * 32)])
    store.close()
    out = tmp_path / "late.jsonl"
    res = _export("-p", "demo", "-f", str(store_path), "-o", str(out), "--since", str(cut))
    assert res.exit_code == 0, res.output
    events = _read_jsonl(out)
    assert {e["run"]["runId"] for e in events} == {late} and len(events) == 2
    iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(cut / 1000 + 3600))
    res = _export("-p", "demo", "-f", str(store_path), "-o", str(out), "--since", iso + "Z")
    assert res.exit_code == 0 and "sent 0 OpenLineage events" in res.output


def test_bad_input_is_one_line(store_path: Path, tmp_path: Path) -> None:
    for args, code, text in (
        (["-p", "nope", "-o", str(tmp_path / "x")], 2, "no pipeline 'nope'"),
        (["-p", "demo"], 2, "exactly one target"),
        (["-p", "demo", "-o", str(tmp_path / "x"), "--since", "yesterday"], 2, "--since"),
        (["-p", "demo", "--url", "ftp://127.0.0.1/x"], 2, "http:// or https://"),
        (["-p", "demo", "-o", str(tmp_path / "no" / "dir" / "x")], 2, "cannot write"),
    ):
        res = _export(*args, "-f", str(store_path))
        assert res.exit_code == code, (args, res.output)
        assert text in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr


# -- HTTP --------------------------------------------------------------------------------------
class Receiver:
    """A real OpenLineage-style endpoint on 127.0.0.1: records each POST, answers 401
    when an expected key is not presented."""

    def __init__(self, api_key: Optional[str] = None) -> None:
        self.api_key = api_key
        self.received: List[Dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                auth = self.headers.get("Authorization")
                ok = outer.api_key is None or auth == f"Bearer {outer.api_key}"
                outer.received.append({"path": self.path, "auth": auth, "ok": ok, "event": json.loads(body)})
                self.send_response(201 if ok else 401)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def accepted(self) -> List[Dict[str, Any]]:
        return [r["event"] for r in self.received if r["ok"]]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(api_key="k-123")
    yield r
    r.close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_http_export_with_api_key(store_path: Path, receiver: Receiver) -> None:
    res = _export("-p", "demo", "-f", str(store_path), "--url", receiver.url, "--api-key", "k-123")
    assert res.exit_code == 0, res.output
    assert len(receiver.received) == 7
    assert all(r["path"] == "/api/v1/lineage" and r["auth"] == "Bearer k-123" for r in receiver.received)
    _check_demo_events(receiver.accepted(), _uuids(store_path))


def test_api_key_from_environment_and_custom_endpoint(store_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENLINEAGE_API_KEY", "k-123")
    res = _export("-p", "demo", "-f", str(store_path), "--url", receiver.url + "/lineage/v2")
    assert res.exit_code == 0, res.output
    assert {r["path"] for r in receiver.received} == {"/lineage/v2"}
    assert len(receiver.accepted()) == 7


def test_wrong_key_is_one_line_exit_3_no_secret(store_path: Path, receiver: Receiver) -> None:
    res = _export("-p", "demo", "-f", str(store_path), "--url", receiver.url, "--api-key", "wrong-key-xyz")
    assert res.exit_code == 3
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "refused the credentials (HTTP 401)" in lines[0], res.stderr
    assert "wrong-key-xyz" not in res.output + res.stderr
    assert len(receiver.received) == 1  # stopped at the first refusal


def test_unreachable_endpoint_is_one_line_exit_3(store_path: Path) -> None:
    url = f"http://user:pw-secret@127.0.0.1:{_closed_port()}"
    res = _export("-p", "demo", "-f", str(store_path), "--url", url, "--api-key", "k-secret")
    assert res.exit_code == 3
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot reach OpenLineage endpoint http://127.0.0.1:" in lines[0], res.stderr
    assert "pw-secret" not in res.stderr and "k-secret" not in res.stderr


# -- live emission from `cmfrun --` ------------------------------------------------------------
def _wrapped(cwd: Path, env_extra: Dict[str, str], *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **env_extra, "CMFRUN_PIPELINE": "live"}
    env.pop("CMFRUN_SYNC", None)
    return subprocess.run([PY, "-m", "cmfrun", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def _wait(pred: Any, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.2)
    return False


def test_live_emission_from_wrapper(tmp_path: Path, receiver: Receiver) -> None:
    (tmp_path / "in.txt").write_text("hello\n")
    env = {"CMFRUN_OPENLINEAGE_URL": receiver.url, "OPENLINEAGE_API_KEY": "k-123"}
    proc = _wrapped(tmp_path, env, "--in", "in.txt", "--out", "out.txt", "--", PY, "-c",
                    "open('out.txt','w').write(open('in.txt').read().upper())")
    assert proc.returncode == 0, proc.stderr
    assert _wait(lambda: len(receiver.accepted()) >= 2), (receiver.received, _merge_log(tmp_path))
    events = receiver.accepted()
    for ev in events:
        validate(ev)
    assert [e["eventType"] for e in events] == ["START", "COMPLETE"]
    assert events[1]["job"]["namespace"] == "live"
    assert [d["name"] for d in events[1]["outputs"]] == ["out.txt"]
    store = connect(str(tmp_path / "mlmd"), create=False)
    [ex] = store.executions_by_type(events[1]["job"]["name"])
    assert ex.properties["Execution_uuid"] == events[1]["run"]["runId"]


def _merge_log(root: Path) -> str:
    log = root / ".cmfrun-journal" / "merge.log"
    return log.read_text() if log.exists() else ""


def test_live_emission_unreachable_never_breaks_the_run(tmp_path: Path, receiver: Receiver) -> None:
    env = {"CMFRUN_OPENLINEAGE_URL": f"http://127.0.0.1:{_closed_port()}", "OPENLINEAGE_API_KEY": "k-secret"}
    proc = _wrapped(tmp_path, env, "--", PY, "-c", "raise SystemExit(4)")
    assert proc.returncode == 4 and proc.stderr == ""
    assert _wait(lambda: "not sent to OpenLineage" in _merge_log(tmp_path)), _merge_log(tmp_path)
    log = _merge_log(tmp_path)
    assert len([line for line in log.splitlines() if "OpenLineage" in line]) == 1
    assert "k-secret" not in log
    # The run is in the store all the same, and an export catches up later.
    store = connect(str(tmp_path / "mlmd"), create=False)
    assert _wait(lambda: len(store.executions()) == 1)
    res = _export("-p", "live", "-f", str(tmp_path / "mlmd"), "--url", receiver.url, "--api-key", "k-123")
    assert res.exit_code == 0, res.output
    assert [e["eventType"] for e in receiver.accepted()] == ["START", "FAIL"]


def test_sync_run_sends_after_the_command_and_warns_once(tmp_path: Path, receiver: Receiver) -> None:
    env = {"CMFRUN_OPENLINEAGE_URL": receiver.url, "OPENLINEAGE_API_KEY": "k-123"}
    proc = _wrapped(tmp_path, env, "--sync", "-s", "step", "--", PY, "-c", "print('hi')")
    assert proc.returncode == 0 and proc.stdout == "hi\n" and proc.stderr == "", proc.stderr
    # --sync merged inline, and sent inline: the events are there without waiting.
    assert [(e["eventType"], e["job"]["name"]) for e in receiver.accepted()] == [("START", "step"), ("COMPLETE", "step")]
    env = {"CMFRUN_OPENLINEAGE_URL": f"http://127.0.0.1:{_closed_port()}", "OPENLINEAGE_API_KEY": "k-secret"}
    proc = _wrapped(tmp_path, env, "--sync", "-s", "step", "--", PY, "-c", "raise SystemExit(5)")
    assert proc.returncode == 5
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cmfrun: warning: 1 run(s) not sent to OpenLineage: cannot reach"), proc.stderr
    assert "k-secret" not in proc.stderr
    store = connect(str(tmp_path / "mlmd"), create=False)
    assert sorted(e.state for e in store.executions()) == ["COMPLETE", "FAILED"]
