"""The UI's typed queries (cmfrun.commands.browse) on real SQLite stores: paging, sorting by
params and metrics, filters, the cache seeing new writes, lineage paths and caps."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Tuple

import pytest

from benchmarks.bench_ui import PIPELINE, build_store
from cmfrun import errors
from cmfrun.commands import browse
from cmfrun.records import Artifact, Execution
from cmfrun.recorder import ensure_contexts
from cmfrun.store import Store, connect

N = 90


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Tuple[Path, Dict[str, Any]]:
    path = tmp_path_factory.mktemp("browse") / "mlmd"
    return path, build_store(path, N)


@pytest.fixture
def store(small: Tuple[Path, Dict[str, Any]]) -> Store:
    return connect(small[0], create=False, read_only=True)


def q(**kw: Any) -> browse.ExecutionQuery:
    return browse.ExecutionQuery(pipeline=PIPELINE, **kw)


def test_pipelines_summary_counts_states_per_stage(store: Store, small: Tuple[Path, Dict[str, Any]]) -> None:
    facts = small[1]
    [p] = browse.pipelines(store, browse.BrowseCache())
    assert p.name == PIPELINE and p.executions == N
    assert p.states == {"COMPLETE": N - facts["failed"], "FAILED": facts["failed"]}
    assert {s.name: s.executions for s in p.stages} == facts["by_stage"]


def test_sort_by_metric_and_param_and_page(store: Store) -> None:
    cache = browse.BrowseCache()
    everything = browse.executions_page(store, cache, q(per_page=500, sort="metric:accuracy", desc=False)).rows
    accs = [r.metrics["accuracy"] for r in everything]
    assert len(accs) == N and accs == sorted(accs)
    first = browse.executions_page(store, cache, q(per_page=10, sort="metric:accuracy"))
    assert [r.metrics["accuracy"] for r in first.rows] == sorted(accs, reverse=True)[:10]
    assert first.total == N and first.pages == 9
    last = browse.executions_page(store, cache, q(per_page=10, page=9, sort="param:n_estimators", desc=False))
    assert [r.params["n_estimators"] for r in last.rows] == sorted(i % 50 for i in range(N))[80:]
    with pytest.raises(errors.UsageError):
        browse.executions_page(store, cache, q(per_page=10, page=10))
    with pytest.raises(errors.UsageError):
        browse.executions_page(store, cache, q(sort="bogus"))
    with pytest.raises(errors.UsageError):
        browse.executions_page(store, cache, q(state="sleepy"))
    with pytest.raises(errors.NotFoundError):
        browse.executions_page(store, cache, browse.ExecutionQuery(pipeline="nope"))


def test_missing_sort_values_go_last_both_ways(store: Store) -> None:
    cache = browse.BrowseCache()
    for desc in (True, False):
        rows = browse.executions_page(store, cache, q(per_page=500, sort="param:absent", desc=desc)).rows
        assert len(rows) == N  # nobody has it: all rows, by id
        ids = [r.id for r in rows]
        assert ids == sorted(ids, reverse=desc)


def test_filters_narrow_on_the_server(store: Store, small: Tuple[Path, Dict[str, Any]]) -> None:
    cache = browse.BrowseCache()
    facts = small[1]
    assert browse.executions_page(store, cache, q(state="failed")).total == facts["failed"]
    assert browse.executions_page(store, cache, q(stage="train")).total == facts["by_stage"]["train"]
    page = browse.executions_page(store, cache, q(params=(("n_estimators", "7"), ("seed", "1"))))
    assert page.total == sum(1 for i in range(N) if i % 50 == 7 and i % 3 == 1)
    rows = browse.executions_page(store, cache, q(per_page=500)).rows
    cut = sorted(r.start_ms for r in rows)[N // 2]
    since = browse.executions_page(store, cache, q(since_ms=cut, per_page=500))
    until = browse.executions_page(store, cache, q(until_ms=cut, per_page=500))
    assert since.total + until.total == N and all(r.start_ms >= cut for r in since.rows)
    with pytest.raises(errors.NotFoundError):
        browse.executions_page(store, cache, q(stage="nope"))


def test_cache_sees_a_new_execution(tmp_path: Path) -> None:
    path = tmp_path / "mlmd"
    build_store(path, 6)
    store = connect(path, create=False)
    cache = browse.BrowseCache()
    assert browse.executions_page(store, cache, q()).total == 6
    pipe, stage = ensure_contexts(store, PIPELINE, "train")
    ex = Execution("train", properties={"Pipeline_Type": PIPELINE, "Stage": "train", "Context_Type": stage.name}, custom={"lr": 9}, state="COMPLETE")
    metrics = Artifact("Metrics", "m-new:abc:x", "abc", {"metrics_name": "m-new"}, {"accuracy": 2.0})
    store.put_lineage([ex], [metrics], [(0, 0, "OUTPUT", None)], [int(stage.id or 0)])
    page = browse.executions_page(store, cache, q(sort="metric:accuracy"))
    assert page.total == 7 and page.rows[0].metrics["accuracy"] == 2.0 and page.rows[0].params["lr"] == 9
    assert (cache.rebuilds, cache.patches) == (1, 1)  # patched, not read again whole
    # Metrics logged later for an execution written earlier (a later transaction).
    [old] = [r for r in page.rows if r.id == 3]
    later = Artifact("Metrics", "m-late:def:y", "def", {"metrics_name": "m-late"}, {"accuracy": 3.0, "extra": 1})
    store.put_lineage([], [later], [], [int(stage.id or 0)])
    [later_id] = [a.id for a in store.artifacts_by_uri(["def"])]
    store.put_events([(3, int(later_id or 0), "OUTPUT", None)])
    page = browse.executions_page(store, cache, q(sort="metric:accuracy"))
    assert page.rows[0].id == 3 and page.rows[0].metrics["extra"] == 1 and old.metrics["accuracy"] != 3.0
    assert "extra" in page.metric_keys and cache.rebuilds == 1
    # A new pipeline shows on the overview.
    ensure_contexts(store, "second", "s")
    assert [p.name for p in browse.pipelines(store, cache)] == [PIPELINE, "second"]


@pytest.mark.parametrize("backend", [pytest.param("postgresql", marks=pytest.mark.postgres),
                                     pytest.param("mysql", marks=pytest.mark.mysql)])
def test_cache_on_a_server_store_sees_writes(tmp_path: Path, request: pytest.FixtureRequest, backend: str) -> None:
    """A server store has no file to stat: the cache asks for records updated since it was built."""
    from tests.conftest import make_store_uri

    uri = make_store_uri(backend, tmp_path, request)
    build_store(uri, 6)
    store = connect(uri, create=False)
    cache = browse.BrowseCache()
    assert browse.executions_page(store, cache, q()).total == 6
    assert browse.executions_page(store, cache, q()).total == 6  # unchanged: served from the cache
    _, stage = ensure_contexts(store, PIPELINE, "train")
    ex = Execution("train", properties={"Pipeline_Type": PIPELINE, "Stage": "train", "Context_Type": stage.name}, state="FAILED")
    store.put_lineage([ex], [], [], [int(stage.id or 0)])
    assert browse.executions_page(store, cache, q(state="failed")).total == 1 + sum(1 for i in range(6) if i % 17 == 0)


def test_execution_and_artifact_detail(store: Store) -> None:
    e = browse.execution_detail(store, 5)
    assert e.command.startswith("python src/") and e.git_dirty is not None and e.peak_rss_kib
    assert {o.type for o in e.outputs} == {"Model", "Metrics"} and "accuracy" in e.metrics
    [model] = [o for o in e.outputs if o.type == "Model"]
    a = browse.artifact_detail(store, model.id)
    assert a.model_card is not None and a.model_card.framework == "sklearn"
    assert a.model_card.metrics["accuracy"] == e.metrics["accuracy"]
    assert [d.path for d in a.model_card.training_data] == [e.inputs[0].path]
    assert [p.id for p in a.producers] == [5]
    rows = browse.executions_page(store, browse.BrowseCache(), q(per_page=500)).rows
    same_stage = sorted(r.id for r in rows if r.stage == e.stage and r.id < 50)
    assert len(same_stage) >= 2
    assert browse.execution_detail(store, same_stage[-1]).previous_id == same_stage[-2]
    assert browse.execution_detail(store, min(r.id for r in rows if r.stage == e.stage)).previous_id is None
    with pytest.raises(errors.NotFoundError):
        browse.execution_detail(store, 10**9)


def test_artifacts_search_by_type_name_and_hash(store: Store) -> None:
    cache = browse.BrowseCache()
    models = browse.artifacts_page(store, cache, type="model")
    assert models.type == "Model" and models.total == N
    assert browse.artifacts_page(store, cache, search="data/shard3").total == 1
    some = models.rows[0]
    assert [r.id for r in browse.artifacts_page(store, cache, search=some.hash).rows] == [some.id]
    assert browse.artifacts_page(store, cache, search=some.hash[:-1]).total >= 1
    with pytest.raises(errors.NotFoundError):
        browse.artifacts_page(store, cache, type="Nope")


def test_compare_marks_differences(store: Store) -> None:
    c = browse.compare(store, [4, 7])
    rows = {r.field: r for r in c.rows}
    assert rows["param n_estimators"].differs
    assert not rows["stage"].differs
    assert "metric accuracy" in rows
    with pytest.raises(errors.UsageError):
        browse.compare(store, [4])


def test_lineage_caps_nodes_and_finds_directed_paths(store: Store) -> None:
    shard = browse.artifacts_page(store, browse.BrowseCache(), search="data/shard0").rows[0]
    view = browse.lineage_view(store, f"artifact:{shard.id}", direction="down", depth=1)
    assert len(view.nodes) == 9 * 3 + 1 and not view.hidden  # 9 runs read shard 0, two outputs each
    assert browse.shortest_path([("a", "x"), ("b", "x"), ("b", "y")], "a", "y") == ("a", "x", "b", "y")
    assert browse.shortest_path([("a", "b"), ("b", "c"), ("d", "c")], "c", "a") == ("c", "b", "a")
    with pytest.raises(errors.UsageError):
        browse.parse_node("artifact:x")
    with pytest.raises(errors.UsageError):
        browse.lineage_view(store, f"artifact:{shard.id}", direction="sideways")


def test_lineage_hides_nodes_past_the_cap(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    shard = browse.artifacts_page(store, browse.BrowseCache(), search="data/shard0").rows[0]
    monkeypatch.setattr(browse, "MAX_NODES", 10)
    view = browse.lineage_view(store, f"artifact:{shard.id}", direction="down", depth=1)
    assert len(view.nodes) == 10 and view.hidden == 18
    assert view.nodes and any(n.key == f"artifact:{shard.id}" for n in view.nodes)
    keys = {n.key for n in view.nodes}
    assert all(s in keys and t in keys for s, t in view.edges)


def test_parse_time() -> None:
    assert browse.parse_time("2026-01-02") < browse.parse_time("2026-01-02T10:00")
    with pytest.raises(errors.UsageError):
        browse.parse_time("yesterday")
