"""A bundle in the shape cmflib's `cmf metadata push` sends merges: cmflib 0.1.0's own
``CmfQuery.dumptojson`` (in its virtualenv, as a subprocess) writes the payload."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from test_query_store import H, build

from cmfrun import schema
from cmfrun.store import connect
from cmfrun.sync.bundle import execution_uuids
from cmfrun.sync.merge import merge_bundle

CMFLIB_PYTHON = os.environ.get("CMFRUN_CMFLIB_PYTHON", "")
DUMP = "import sys; from cmflib.cmfquery import CmfQuery; print(CmfQuery(sys.argv[1]).dumptojson(sys.argv[2]))"


@pytest.fixture
def cmflib_python() -> str:
    if CMFLIB_PYTHON and Path(CMFLIB_PYTHON).exists():
        return CMFLIB_PYTHON
    if os.environ.get("CMFRUN_REQUIRE_SERVICES") == "1":
        pytest.fail("CMFRUN_CMFLIB_PYTHON is not set: CI must run the cmflib compatibility tests")
    pytest.skip("no cmflib virtualenv (set CMFRUN_CMFLIB_PYTHON; `make test` builds one)")


def test_cmflib_dumptojson_payload_merges(tmp_path: Path, cmflib_python: str) -> None:
    source = tmp_path / "site.mlmd"
    build(str(source))
    proc = subprocess.run([cmflib_python, "-c", DUMP, str(source), "demo"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    payload = proc.stdout.strip().splitlines()[-1]  # the JSON text cmflib posts as json_payload
    assert "last_known_state" not in payload  # cmflib's shape, not ours

    hub = connect(str(tmp_path / "hub.mlmd"))
    rep = merge_bundle(hub, payload, site="cmflib-site")
    assert rep.executions_added == 7 and rep.events_added == 17 and not rep.conflicts
    assert not merge_bundle(hub, payload, site="cmflib-site").changed

    src = {execution_uuids(e)[0]: e for e in connect(str(source)).executions() if e.properties.get("Pipeline_Type") == "demo"}
    got = {execution_uuids(e)[0]: e for e in hub.executions()}
    assert set(got) == set(src)
    for u, ex in got.items():
        assert ex.properties["Execution"] == src[u].properties["Execution"]
        assert ex.custom == src[u].custom
        assert ex.properties["Host"] == "cmflib-site"  # the source recorded no Host: the pushing site is kept
    # the lineage survived: model.pkl's producer read fa.csv and fb.csv
    [model] = hub.artifacts_by_uri([H["model"]])
    [out] = [e for e in hub.events_by_artifact([int(model.id or 0)]) if e.kind == "OUTPUT"]
    ins = [e.artifact_id for e in hub.events_by_execution([out.execution_id]) if e.kind == "INPUT"]
    assert sorted(a.uri for a in hub.artifacts_by_id(ins)) == sorted([H["fa"], H["fb"]])
    assert model.type == schema.MODEL

    # What the server's merge made, cmflib's own reader reads back (and dumps again the same way).
    proc = subprocess.run([cmflib_python, "-c", DUMP, str(tmp_path / "hub.mlmd"), "demo"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    again = json.loads(proc.stdout.strip().splitlines()[-1])
    n = sum(len(s["executions"]) for s in again["Pipeline"][0]["stages"])
    assert n == 7
