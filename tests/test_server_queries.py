"""`cmfrun.commands.serve_queries`: the server's executions pages answered from the browse
cache give exactly what the plain listing gives, and see writes made after the cache filled."""
from __future__ import annotations

from pathlib import Path

import pytest

from cmfrun import errors, schema
from cmfrun.commands import browse, serve_queries
from cmfrun.recorder import FileRef, RunRecord, new_uuid, record_run
from cmfrun.store import connect


def _record(store, pipeline: str, stage: str, i: int, state: str = "COMPLETE") -> str:  # type: ignore[no-untyped-def]
    u = new_uuid()
    record_run(store, RunRecord(pipeline, stage, f"python {stage}.py {i}", u, execution_name=u, state=state,
                                properties={"Duration_s": float(i % 4)} if i % 3 else {},
                                outputs=[FileRef(f"{stage}-{i}.out", f"{i:04x}".ljust(32, "a"), type=schema.MODEL)]))
    return u


def test_cached_pages_match_the_plain_listing(tmp_path: Path) -> None:
    store = connect(str(tmp_path / "mlmd"))
    for i in range(24):
        _record(store, "p" if i % 3 else "q", ("prepare", "train", "eval")[i % 3], i, "FAILED" if i % 5 == 0 else "COMPLETE")
    cache = browse.BrowseCache()
    queries = [
        {}, {"pipeline": "p"}, {"pipeline": "p", "stage": "train"}, {"pipeline": "p", "stage": "p/train"},
        {"stage": "eval"}, {"state": "failed"}, {"pipeline": "q", "state": "complete"},
    ]
    for q in queries:
        for sort in ("-create_ms", "create_ms", "id", "-id", "stage", "-state", "duration_s", "-duration_s", "uuid", "-pipeline"):
            for limit, offset in ((5, 0), (5, 5), (100, 0), (3, 22)):
                plain = serve_queries.page_executions(store, sort=sort, limit=limit, offset=offset, **q)  # type: ignore[arg-type]
                cached = serve_queries.page_executions(store, sort=sort, limit=limit, offset=offset, cache=cache, **q)  # type: ignore[arg-type]
                assert cached == plain, (q, sort, limit, offset)
    uuid = serve_queries.page_executions(store, limit=1).items[0].uuid
    assert serve_queries.page_executions(store, uuid=uuid[:13], cache=cache).total == 1
    with pytest.raises(errors.NotFoundError):
        serve_queries.page_executions(store, pipeline="p", stage="nope", cache=cache)
    with pytest.raises(errors.NotFoundError):
        serve_queries.page_executions(store, pipeline="nope", cache=cache)
    with pytest.raises(errors.UsageError):
        serve_queries.page_executions(store, state="sleeping", cache=cache)


def test_cached_pages_see_later_writes(tmp_path: Path) -> None:
    store = connect(str(tmp_path / "mlmd"))
    for i in range(4):
        _record(store, "p", "train", i)
    cache = browse.BrowseCache()
    assert serve_queries.page_executions(store, pipeline="p", cache=cache).total == 4
    writer = connect(str(tmp_path / "mlmd"))  # another connection, as another process would write
    new = _record(writer, "p", "train", 99)
    page = serve_queries.page_executions(store, pipeline="p", sort="-id", limit=1, cache=cache)
    assert page.total == 5 and page.items[0].uuid == new
