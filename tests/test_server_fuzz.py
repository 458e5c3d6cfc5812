"""The server's API fuzzed from its own OpenAPI spec (schemathesis), against a real `cmf server`
process on a seeded SQLite store: no 5xx answer, no traceback in any body, every error a one-line
`detail`, and the store and data folder unchanged by every refused request.

Valid (positive) and schema-violating (negative) requests for every operation, a bounded number
of each so the test takes well under a minute. schemathesis' own pytest plugin does not run
under pytest 9, so the cases are drawn with hypothesis from each operation's strategy.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest
import requests

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402

from tests.server_helpers import ServerProcess, store_dump, tree  # noqa: E402
from tests.test_server_api import seed  # noqa: E402

EXAMPLES = 15


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tuple[ServerProcess, str, Path]]:
    tmp = tmp_path_factory.mktemp("fuzz")
    uri = str(tmp / "mlmd")
    seed(uri)
    with ServerProcess(uri, tmp / "data", "--max-body", "1MiB") as server:
        yield server, uri, tmp / "data"


def _operations(url: str) -> List[Any]:
    schema = schemathesis.openapi.from_url(url + "/openapi.json")
    return [result.ok() for result in schema.get_all_operations()]


def test_openapi_spec_lists_every_route(fuzz_server: Tuple[ServerProcess, str, Path]) -> None:
    server, _, _ = fuzz_server
    spec = requests.get(server.url + "/openapi.json").json()
    for path in ("/api/mlmd_push", "/api/mlmd_pull", "/api/python-env", "/api/label", "/api/tensorboard",
                 "/api/v1/pipelines", "/api/v1/executions", "/api/v1/artifacts", "/api/v1/lineage/{ref}"):
        assert path in spec["paths"], path


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_fuzzed_requests_never_break_the_server(fuzz_server: Tuple[ServerProcess, str, Path], mode: str) -> None:
    server, uri, data = fuzz_server
    baseline: Dict[str, Any] = {"store": store_dump(uri), "files": tree(data)}
    session = requests.Session()
    seen: Dict[int, int] = {}

    def check(case: Any) -> None:
        response = case.call(base_url=server.url, session=session, timeout=30)
        seen[response.status_code] = seen.get(response.status_code, 0) + 1
        text = response.text
        where = f"{case.method} {case.formatted_path} {case.query or ''}"
        assert response.status_code < 500, f"{where} -> {response.status_code}: {text[:300]}"
        assert "Traceback" not in text and 'File "/' not in text, where
        now: Dict[str, List[Any]]
        if response.status_code >= 400:
            if "json" in str(response.headers.get("content-type") or response.headers.get("Content-Type") or ""):
                body = response.json()
                # Our API and the sync router answer {"detail"}; the UI's JSON twins {"error"}.
                detail = body.get("detail", body.get("error"))
                assert isinstance(detail, str) and "\n" not in detail, f"{where}: {text[:300]}"
            else:
                assert case.formatted_path.startswith("/ui"), f"{where}: non-JSON error {text[:200]}"
            now = store_dump(uri)
            assert now == baseline["store"], f"refused {where} changed the store"
            assert tree(data) == baseline["files"], f"refused {where} wrote files"
        elif case.method.upper() == "POST":
            baseline["store"] = store_dump(uri)
            baseline["files"] = tree(data)

    generation = schemathesis.GenerationMode(mode)
    operations = _operations(server.url)
    no_negative: List[str] = []
    assert len(operations) >= 12
    for op in operations:

        @given(case=op.as_strategy(generation_mode=generation))
        @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def run(case: Any) -> None:
            check(case)

        try:
            run()
        except Unsatisfiable:
            # Some operations (no parameters, no body) have no schema-violating request.
            assert mode == "negative", op.label
            no_negative.append(op.label)
    assert sum(seen.values()) >= len(operations) - len(no_negative), seen
    assert "POST /api/mlmd_push" not in no_negative
