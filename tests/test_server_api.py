"""`cmf server` as a real process on a free 127.0.0.1 port, over SQLite and PostgreSQL:
the read API, CMF's pull and upload endpoints, the token, the size limit and bad payloads
(each refused request leaves the store and the data folder exactly as they were)."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest
import requests

from cmfrun import schema
from cmfrun.recorder import FileRef, RunRecord, new_uuid, record_run
from cmfrun.store import connect
from tests.conftest import ALL_BACKENDS, make_store_uri
from tests.server_helpers import ServerProcess, store_dump, tree

RAW, TRAIN, MODEL = "a" * 32, "b" * 32, "c" * 32


def seed(uri: str) -> Dict[str, Any]:
    """Two stages of pipeline `p` and one of `q` (raw -> train.csv -> model.pkl)."""
    store = connect(uri)
    u1, u2, u3 = new_uuid(), new_uuid(), new_uuid()
    r1 = record_run(store, RunRecord("p", "prepare", "python prep.py", u1, execution_name=u1,
                                     inputs=[FileRef("raw.csv", RAW)], outputs=[FileRef("data/train.csv", TRAIN)]))
    r2 = record_run(store, RunRecord("p", "train", "python train.py --lr 0.1", u2, execution_name=u2,
                                     inputs=[FileRef("data/train.csv", TRAIN)],
                                     outputs=[FileRef("model.pkl", MODEL, type=schema.MODEL)], custom={"lr": 0.1}))
    r3 = record_run(store, RunRecord("q", "eval", "python eval.py", u3, execution_name=u3, state="FAILED",
                                     inputs=[FileRef("model.pkl", MODEL, type=schema.MODEL)]))
    store.close()
    return {"uuids": (u1, u2, u3), "ids": (r1.execution_id, r2.execution_id, r3.execution_id)}


@pytest.fixture(params=ALL_BACKENDS, scope="module")
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tuple[ServerProcess, Dict[str, Any]]]:
    """One seeded store per backend, served for the whole module (starting a server costs ~2 s)."""
    tmp = tmp_path_factory.mktemp(f"server-{request.param}")
    uri = make_store_uri(request.param, tmp, request)
    seeded = seed(uri)
    with ServerProcess(uri, tmp / "data") as server:
        yield server, seeded


def test_read_api_lists_pages_sorts_and_filters(served: Tuple[ServerProcess, Dict[str, Any]]) -> None:
    server, seeded = served
    pipes = requests.get(server.url + "/api/v1/pipelines").json()
    assert {p["name"]: p["executions"] for p in pipes} == {"p": 2, "q": 1}
    assert requests.get(server.url + "/api/v1/pipelines/q").json()["failed"] == 1
    page = requests.get(server.url + "/api/v1/executions", params={"sort": "id", "limit": 2}).json()
    assert page["total"] == 3 and [e["uuid"] for e in page["items"]] == list(seeded["uuids"][:2])
    page2 = requests.get(server.url + "/api/v1/executions", params={"sort": "id", "limit": 2, "offset": 2}).json()
    assert [e["uuid"] for e in page2["items"]] == [seeded["uuids"][2]]
    newest = requests.get(server.url + "/api/v1/executions", params={"sort": "-id", "limit": 1}).json()
    assert newest["items"][0]["uuid"] == seeded["uuids"][2]
    failed = requests.get(server.url + "/api/v1/executions", params={"state": "failed"}).json()
    assert [e["stage"] for e in failed["items"]] == ["eval"]
    train = requests.get(server.url + "/api/v1/executions", params={"pipeline": "p", "stage": "train"}).json()
    assert [e["params"] for e in train["items"]] == [{"lr": 0.1}]
    arts = requests.get(server.url + "/api/v1/artifacts", params={"pipeline": "p", "sort": "path"}).json()
    assert [a["path"] for a in arts["items"]] == ["data/train.csv", "model.pkl", "raw.csv"]
    models = requests.get(server.url + "/api/v1/artifacts", params={"type": "model"}).json()
    assert [a["hash"] for a in models["items"]] == [MODEL]


def test_read_api_one_record_and_lineage(served: Tuple[ServerProcess, Dict[str, Any]]) -> None:
    server, seeded = served
    uuid2 = seeded["uuids"][1]
    # 13 characters: an 8-character prefix is all digits now and then, and digits name an id.
    r = requests.get(server.url + f"/api/v1/executions/{uuid2[:13]}")
    assert r.status_code == 200, (r.status_code, r.text, seeded["uuids"])
    ex = r.json()
    assert ex["kind"] == "execution" and ex["record"]["properties"]["Execution_uuid"] == uuid2
    assert [i["artifact"]["path"] for i in ex["inputs"]] == ["data/train.csv"]
    art = requests.get(server.url + "/api/v1/artifacts/data/train.csv").json()
    assert art["kind"] == "artifact" and art["record"]["uri"] == TRAIN
    assert sorted(link["kind"] for link in art["executions"]) == ["INPUT", "OUTPUT"]
    up = requests.get(server.url + "/api/v1/lineage/model.pkl", params={"direction": "up"}).json()
    assert up["down"] is None
    names = {n["label"].split(":")[0] for n in up["up"]["nodes"] if n["kind"] == "artifact"}
    assert names == {"model.pkl", "data/train.csv", "raw.csv"}
    one = requests.get(server.url + "/api/v1/lineage/model.pkl", params={"direction": "up", "depth": 1}).json()
    assert {n["label"].split(":")[0] for n in one["up"]["nodes"] if n["kind"] == "artifact"} == {"model.pkl", "data/train.csv"}
    assert one["up"]["truncated"] is True
    down = requests.get(server.url + "/api/v1/lineage/raw.csv", params={"direction": "down"}).json()
    assert {n["label"] for n in down["down"]["nodes"] if n["kind"] == "execution"} == {"prepare", "train", "eval"}


@pytest.mark.parametrize(
    "path, params, status",
    [
        ("/api/v1/pipelines/nope", {}, 404),
        ("/api/v1/executions/ffffffff-0000", {}, 404),
        ("/api/v1/artifacts/no/such/file.csv", {}, 404),
        ("/api/v1/lineage/nothing-here", {}, 404),
        ("/api/v1/executions", {"sort": "password"}, 400),
        ("/api/v1/executions", {"limit": 0}, 422),
        ("/api/v1/executions", {"state": "sleeping"}, 400),
        ("/api/v1/executions", {"pipeline": "nope"}, 404),
        ("/api/v1/lineage/model.pkl", {"direction": "sideways"}, 422),
        # Quotes, backslashes and control characters are looked up like any name (cmfrun.store.literals).
        ("/api/v1/artifacts/it's", {}, 404),
        ("/api/v1/artifacts/\u00b2", {}, 404),  # a digit to str.isdigit(), not to int()
        ("/api/v1/executions/\u00b2", {}, 404),
        ("/api/v1/lineage/0\r0", {}, 404),
        ("/api/v1/executions", {"pipeline": "p' OR 1=1 --"}, 404),
    ],
)
def test_read_api_errors_are_one_line(served: Tuple[ServerProcess, Dict[str, Any]], path: str, params: Dict[str, Any], status: int) -> None:
    server, _ = served
    r = requests.get(server.url + path, params=params)
    assert r.status_code == status, r.text
    body = r.json()
    assert isinstance(body["detail"], str) and "\n" not in body["detail"] and "Traceback" not in r.text


def test_cmf_pull_answers_as_cmflib_expects(served: Tuple[ServerProcess, Dict[str, Any]]) -> None:
    server, seeded = served
    r = requests.post(server.url + "/api/mlmd_pull", json={"pipeline_name": "p", "exec_uuid": None})
    assert r.status_code == 200
    data = json.loads(r.content)
    [pipe] = data["Pipeline"]
    assert pipe["name"] == "p" and sorted(s["name"] for s in pipe["stages"]) == ["p/prepare", "p/train"]
    one = json.loads(requests.post(server.url + "/api/mlmd_pull", json={"pipeline_name": "p", "exec_uuid": seeded["uuids"][1]}).content)
    execs = [e for s in one["Pipeline"][0]["stages"] for e in s["executions"]]
    assert [e["properties"]["Execution_uuid"] for e in execs] == [seeded["uuids"][1]]
    # cmflib tests the body for this word, and a 404 for a missing pipeline.
    missing = requests.post(server.url + "/api/mlmd_pull", json={"pipeline_name": "p", "exec_uuid": seeded["uuids"][2]})
    assert missing.status_code == 200 and missing.content.decode() == "no_exec_uuid"
    assert requests.post(server.url + "/api/mlmd_pull", json={"pipeline_name": "zzz", "exec_uuid": None}).status_code == 404
    everything = json.loads(requests.post(server.url + "/api/mlmd_pull", json={}).content)
    assert sorted(p["name"] for p in everything["Pipeline"]) == ["p", "q"]


def test_uploads_are_content_addressed_and_stay_in_the_data_folder(tmp_path: Path, sqlite_uri: str) -> None:
    data = tmp_path / "data"
    outside = tmp_path / "evil.txt"
    with ServerProcess(sqlite_uri, data) as server:
        files = {"file": ("Python_Env_1.txt", b"numpy==1.26\n")}
        r = requests.post(server.url + "/api/python-env", files=files)
        assert r.status_code == 200 and r.json()["status"] == "success"
        sha = r.json()["sha256"]
        assert (data / "blobs" / "sha256" / sha[:2] / sha).read_bytes() == b"numpy==1.26\n"
        assert requests.get(server.url + "/api/python-env", params={"file_name": "Python_Env_1.txt"}).text == "numpy==1.26\n"
        # The same bytes under another name: one blob.
        requests.post(server.url + "/api/python-env", files={"file": ("copy.txt", b"numpy==1.26\n")})
        assert len(list((data / "blobs").rglob("*"))) == 3  # sha256/, ab/, the blob
        first = requests.post(server.url + "/api/label", files={"file": ("labels.csv", b"a,b\n")}).json()
        again = requests.post(server.url + "/api/label", files={"file": ("labels.csv", b"a,b\n")}).json()
        assert (first["status"], again["status"]) == ("success", "exists")
        tb = requests.post(server.url + "/api/tensorboard", params={"pipeline_name": "p"},
                           files={"file": ("run1/events.out", b"\x00\x01tb")})
        assert tb.status_code == 200, tb.text
        before = tree(data)
        for name in ("../evil.txt", "../../" + str(outside), "a/../../evil.txt", "..", "x\x00y"):
            r = requests.post(server.url + "/api/python-env", files={"file": (name, b"pwned")})
            assert r.status_code == 400 and "\n" not in r.json()["detail"], (name, r.text)
        r = requests.post(server.url + "/api/tensorboard", params={"pipeline_name": "../../p"},
                          files={"file": ("/etc/passwd", b"pwned")})
        # An absolute name is taken relative, a pipeline name is only data: both stay in index entries.
        assert r.status_code == 200
        assert not outside.exists() and not (tmp_path / "p").exists()
        assert all(not p.is_symlink() for p in data.rglob("*"))
        new = set(tree(data)) - set(before)
        assert all(n.startswith(("blobs/", "index/")) for n in new), new


def _post_json(url: str, body: Any, **kw: Any) -> requests.Response:
    return requests.post(url, data=json.dumps(body), headers={"Content-Type": "application/json", **kw.pop("headers", {})}, **kw)


def test_token_guards_writes_and_reads(tmp_path: Path, sqlite_uri: str) -> None:
    seed(sqlite_uri)
    before = store_dump(sqlite_uri)
    env = {**os.environ, "CMFRUN_SERVER_TOKEN": "s3cret-token"}
    with ServerProcess(sqlite_uri, tmp_path / "data", env=env) as server:
        files_before = tree(tmp_path / "data")
        for method, path in (("get", "/api/v1/pipelines"), ("post", "/api/mlmd_pull"), ("get", "/openapi.json")):
            r = getattr(requests, method)(server.url + path, json={"pipeline_name": "p"})
            assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "Bearer", (path, r.text)
        bad = {"Authorization": "Bearer s3cret-tokeX"}
        r = requests.post(server.url + "/api/python-env", files={"file": ("e.txt", b"x")}, headers=bad)
        assert r.status_code == 401
        r = _post_json(server.url + "/api/mlmd_push", {"pipeline_name": "p", "json_payload": "{}"}, headers={"Authorization": "Basic s3cret-token"})
        assert r.status_code == 401
        good = {"Authorization": "Bearer s3cret-token"}
        assert requests.get(server.url + "/api/v1/pipelines", headers=good).status_code == 200
        assert tree(tmp_path / "data") == files_before
        assert "s3cret-token" not in server.read_log()
        r = requests.post(server.url + "/api/python-env", files={"file": ("e.txt", b"x")}, headers=good)
        assert r.status_code == 200
    assert store_dump(sqlite_uri) == before


def test_public_read_opens_reads_only(tmp_path: Path, sqlite_uri: str) -> None:
    seed(sqlite_uri)
    with ServerProcess(sqlite_uri, tmp_path / "data", "--token", "tok", "--public-read") as server:
        assert requests.get(server.url + "/api/v1/executions").status_code == 200
        assert requests.post(server.url + "/api/mlmd_pull", json={"pipeline_name": "p"}).status_code == 200
        assert requests.post(server.url + "/api/label", files={"file": ("l.csv", b"x")}).status_code == 401
        assert _post_json(server.url + "/api/mlmd_push", {"pipeline_name": "p", "json_payload": "{}"}).status_code == 401
        assert not (tmp_path / "data" / "index").exists()


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_bad_and_oversized_requests_change_nothing(tmp_path: Path, request: pytest.FixtureRequest, backend: str) -> None:
    uri = make_store_uri(backend, tmp_path, request)
    seeded = seed(uri)
    before = store_dump(uri)
    with ServerProcess(uri, tmp_path / "data", "--max-body", "64KiB") as server:
        files_before = tree(tmp_path / "data")
        push = server.url + "/api/mlmd_push"
        good_pull = json.loads(requests.post(server.url + "/api/mlmd_pull", json={"pipeline_name": "p"}).content)
        broken_event = json.loads(json.dumps(good_pull))
        broken_event["Pipeline"][0]["stages"][0]["executions"][0]["events"][0]["artifact"] = "not an object"
        no_uuid = json.loads(json.dumps(good_pull))
        ex0 = no_uuid["Pipeline"][0]["stages"][0]["executions"][0]
        ex0["name"] = ""
        del ex0["properties"]["Execution_uuid"]
        cases = [
            (b"{not json", 422),
            (json.dumps({"pipeline_name": "p"}).encode(), 422),
            (json.dumps({"pipeline_name": "p", "json_payload": "{broken"}).encode(), 400),
            (json.dumps({"pipeline_name": "p", "json_payload": "[1, 2]"}).encode(), 400),
            (json.dumps({"pipeline_name": "p", "json_payload": {"Pipeline": []}}).encode(), 400),
            (json.dumps({"pipeline_name": "other", "json_payload": good_pull}).encode(), 400),
            (json.dumps({"pipeline_name": "p", "json_payload": broken_event}).encode(), 400),
            (json.dumps({"pipeline_name": "p", "json_payload": good_pull, "exec_uuid": "nope"}).encode(), 404),
            (json.dumps({"pipeline_name": 5, "json_payload": 7}).encode(), 422),
        ]
        for body, status in cases:
            r = requests.post(push, data=body, headers={"Content-Type": "application/json"})
            assert r.status_code == status, (body[:80], r.status_code, r.text)
            assert "\n" not in r.json()["detail"] and "Traceback" not in r.text
        r = requests.post(push, data=json.dumps({"pipeline_name": "p", "json_payload": no_uuid}), headers={"Content-Type": "application/json"})
        assert r.status_code == 422 and r.json()["status"] == "version_update"
        # Too large: declared, and streamed without a length (chunked).
        big = json.dumps({"pipeline_name": "p", "json_payload": "x" * 70_000}).encode()
        r = requests.post(push, data=big, headers={"Content-Type": "application/json"})
        assert r.status_code == 413 and "limit" in r.json()["detail"]
        r = requests.post(push, data=iter([big[i : i + 8192] for i in range(0, len(big), 8192)]), headers={"Content-Type": "application/json"})
        assert r.status_code == 413, r.text
        r = requests.post(server.url + "/api/python-env", files={"file": ("env.txt", b"y" * 70_000)})
        assert r.status_code == 413
        assert tree(tmp_path / "data") == files_before or all(p.startswith("tmp") for p in set(tree(tmp_path / "data")) - set(files_before))
        assert requests.get(server.url + "/api/v1/executions").json()["total"] == len(seeded["uuids"])
    assert store_dump(uri) == before


def test_server_refuses_bad_settings(tmp_path: Path) -> None:
    import subprocess

    from tests.server_helpers import CMF

    for args, word in ((["--max-body", "lots"], "bad size"), (["--mlmd", "ftp://x/y"], "unknown store URI scheme"),
                       (["--mlmd", str(tmp_path)], "is a directory")):
        proc = subprocess.run([CMF, "server", "--data", str(tmp_path / "d"), *args], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2 and word in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_concurrent_cmf_pushes_all_land_once(tmp_path: Path, request: pytest.FixtureRequest, backend: str) -> None:
    """Eight sites push at once with CMF's protocol: four pipelines of their own and four times the
    same pipeline, where every site also holds the same two runs. Every run lands exactly once.
    The runs are unnamed, as cmflib records them, so no unique name guards against a double."""
    import threading

    from cmfrun.commands import inspect

    uri = make_store_uri(backend, tmp_path, request)
    common = [new_uuid(), new_uuid()]
    bodies, expected = [], set()
    for k in range(8):
        site = connect(str(tmp_path / f"site{k}.mlmd"))
        pipe = f"own-{k}" if k < 4 else "shared"
        if pipe == "shared":
            for u in common:
                record_run(site, RunRecord(pipe, "prepare", "python prep.py", u, execution_name="",
                                           inputs=[FileRef("raw.csv", RAW)], outputs=[FileRef("data/train.csv", TRAIN)]))
                expected.add(u)
        for i in range(3):
            u = new_uuid()
            record_run(site, RunRecord(pipe, "train", f"python train.py --site {k} --i {i}", u, execution_name="",
                                       inputs=[FileRef("data/train.csv", TRAIN)],
                                       outputs=[FileRef(f"model-{k}-{i}.pkl", f"{k:02x}{i:02x}".ljust(32, "d"), type=schema.MODEL)]))
            expected.add(u)
        payload = json.dumps(dict(inspect.export_metadata(site, pipe).data))
        site.close()
        bodies.append({"exec_uuid": None, "json_payload": payload, "pipeline_name": pipe})
    with ServerProcess(uri, tmp_path / "data") as server:
        answers: List[Any] = [None] * len(bodies)
        start = threading.Barrier(len(bodies))

        def push(i: int) -> None:
            start.wait()
            answers[i] = requests.post(server.url + "/api/mlmd_push", json=bodies[i], timeout=300)

        threads = [threading.Thread(target=push, args=(i,)) for i in range(len(bodies))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert [a.status_code for a in answers] == [200] * len(bodies), [a.text for a in answers if a.status_code != 200]
    dump = store_dump(uri)
    uuids = [json.loads(e[4]).get("Execution_uuid") for e in dump["executions"]]
    assert sorted(uuids) == sorted(expected)  # every run once: none lost, none doubled
    names = [a[2] for a in dump["artifacts"]]
    assert len(names) == len(set(names))
