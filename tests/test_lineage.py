"""The typed lineage API on a real store: diamond, depth limits, execution roots, cross-pipeline,
and level-by-level batching (store calls counted, not mocked)."""
from __future__ import annotations

from typing import Dict, List

import pytest

from cmfrun import lineage
from cmfrun.store import Store, connect
from test_query_store import H, build


@pytest.fixture
def demo(sqlite_uri: str) -> "tuple[Store, Dict[str, int]]":
    ids = build(sqlite_uri)
    return connect(sqlite_uri), ids


def art_id(store: Store, key: str) -> int:
    [a] = store.artifacts_by_uri([H[key]])
    return int(a.id or 0)


def paths(store: Store, ids: List[int]) -> List[str]:
    return sorted(a.path for a in store.artifacts_by_id(ids))


def test_diamond_ancestors_reach_the_shared_root_once(demo) -> None:
    store, ids = demo
    g = lineage.ancestors(store, artifact_ids=[art_id(store, "model")])
    assert sorted(a.path for a in g.related_artifacts()) == [
        "data/a.csv", "data/b.csv", "data/raw.csv", "feat/fa.csv", "feat/fb.csv"]
    assert set(g.executions) == {ids["split"], ids["feat_a"], ids["feat_b"], ids["train"]}
    assert g.artifact_depth[art_id(store, "raw")] == 3
    assert g.execution_depth[ids["split"]] == 3
    assert not g.truncated
    # Every edge joins reached records and points the right way.
    for e, a, kind in g.edges:
        assert e in g.executions and a in g.artifacts and kind in ("INPUT", "OUTPUT")


def test_depth_limit_and_truncation(demo) -> None:
    store, ids = demo
    g = lineage.ancestors(store, artifact_ids=[art_id(store, "model")], depth=1)
    assert paths(store, [a.id for a in g.related_artifacts()]) == ["feat/fa.csv", "feat/fb.csv"]
    assert set(g.executions) == {ids["train"]}
    assert g.truncated
    g0 = lineage.ancestors(store, artifact_ids=[art_id(store, "model")], depth=0)
    assert list(g0.artifacts) == [art_id(store, "model")] and not g0.executions and g0.truncated
    assert lineage.one_hop_parents(store, [art_id(store, "model")]) == sorted(
        [art_id(store, "fa"), art_id(store, "fb")])


def test_descendants_cross_pipelines_and_include_failed_consumers(demo) -> None:
    store, ids = demo
    g = lineage.descendants(store, artifact_ids=[art_id(store, "raw")])
    assert "report.txt" in [a.path for a in g.related_artifacts()]  # pipeline "other"
    assert ids["report"] in g.executions and ids["failed"] in g.executions
    assert paths(store, [a.id for a in g.related_artifacts()]) == [
        "data/a.csv", "data/b.csv", "feat/fa.csv", "feat/fb.csv", "metrics.json", "model.pkl", "model.pkl",
        "report.txt"]
    assert lineage.one_hop_children(store, [art_id(store, "model")]) == [art_id(store, "metrics")]


def test_execution_roots(demo) -> None:
    store, ids = demo
    up = lineage.ancestors(store, execution_ids=[ids["train"]], depth=1)
    assert paths(store, list(up.artifacts)) == ["feat/fa.csv", "feat/fb.csv"]
    assert set(up.executions) == {ids["train"]}
    down = lineage.descendants(store, execution_ids=[ids["train"]])
    assert paths(store, list(down.artifacts)) == ["metrics.json", "model.pkl"]
    assert ids["evaluate"] in down.executions
    with pytest.raises(ValueError):
        lineage.ancestors(store, artifact_ids=[1], depth=-1)


def test_calls_are_batched_per_level_not_per_path(demo, monkeypatch) -> None:
    store, _ = demo
    calls = {"artifact": 0, "execution": 0}
    real_a, real_e = store.events_by_artifact, store.events_by_execution

    def by_artifact(ids):
        calls["artifact"] += 1
        return real_a(ids)

    def by_execution(ids):
        calls["execution"] += 1
        return real_e(ids)

    monkeypatch.setattr(store, "events_by_artifact", by_artifact)
    monkeypatch.setattr(store, "events_by_execution", by_execution)
    g = lineage.ancestors(store, artifact_ids=[art_id(store, "model")])
    assert max(g.execution_depth.values()) == 3
    if store.engine == "sql":
        # One recursive query finds every record and two plain reads the edges: no per-level calls.
        assert calls == {"artifact": 0, "execution": 0}
    else:
        # 3 levels (train; feat_a+feat_b; split) + the final empty frontier: one call per level each.
        assert calls == {"artifact": 4, "execution": 3}


def test_unknown_ids_give_an_empty_graph(demo) -> None:
    store, _ = demo
    g = lineage.ancestors(store, artifact_ids=[999999])
    assert not g.artifacts and not g.executions and not g.edges
