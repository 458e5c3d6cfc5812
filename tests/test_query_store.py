"""A shared test store for the query, lineage and CLI tests, and tests of the store it makes.

``build(uri)`` records, with :func:`cmfrun.recorder.record_run` (the path the
wrapper, ingest and the API share):

- pipeline ``demo``: ``split`` raw.csv -> a.csv, b.csv; ``feat_a`` a.csv -> fa.csv;
  ``feat_b`` b.csv -> fb.csv; ``train`` fa.csv + fb.csv -> model.pkl (a diamond);
  ``evaluate`` model.pkl -> metrics.json; a second ``train`` that FAILED (exit 1);
  then a retrain with another lr producing a second version of model.pkl;
- pipeline ``other``: ``report`` raw.csv (shared with ``demo``) -> report.txt.
"""
from __future__ import annotations

from typing import Dict

from cmfrun import schema
from cmfrun.records import FAILED
from cmfrun.recorder import FileRef, RunRecord, new_uuid, record_run
from cmfrun.store import connect

H = {name: (f"{i:02d}" * 16) for i, name in enumerate(
    ["raw", "a", "b", "fa", "fb", "model", "metrics", "report", "model2"], start=10)}


def build(uri: str) -> Dict[str, int]:
    """Record the demo runs into ``uri``; returns execution ids by label."""
    store = connect(uri)
    ids: Dict[str, int] = {}

    def run(label: str, pipeline: str, stage: str, cmd: str, ins, outs, **kw) -> None:
        u = new_uuid()
        res = record_run(
            store,
            RunRecord(
                pipeline, stage, cmd, u, execution_name=u, inputs=ins, outputs=outs,
                git_start_commit="c0ffee" + label, **kw,
            ),
        )
        ids[label] = res.execution_id
        ids[label + "_uuid"] = u  # type: ignore[assignment]

    f = FileRef
    run("split", "demo", "split", "python split.py", [f("data/raw.csv", H["raw"], size=100)],
        [f("data/a.csv", H["a"]), f("data/b.csv", H["b"])])
    run("feat_a", "demo", "feat_a", "python feat.py a", [f("data/a.csv", H["a"])], [f("feat/fa.csv", H["fa"])])
    run("feat_b", "demo", "feat_b", "python feat.py b", [f("data/b.csv", H["b"])], [f("feat/fb.csv", H["fb"])])
    run("train", "demo", "train", "python train.py --lr 0.1", [f("feat/fa.csv", H["fa"]), f("feat/fb.csv", H["fb"])],
        [f("model.pkl", H["model"], type=schema.MODEL)], custom={"train.lr": 0.1, "train.epochs": 3},
        properties={"Exit_Code": 0, "Duration_s": 1.5})
    run("evaluate", "demo", "evaluate", "python eval.py", [f("model.pkl", H["model"], type=schema.MODEL)],
        [f("metrics.json", H["metrics"])])
    run("failed", "demo", "train", "python train.py --lr 9", [f("feat/fa.csv", H["fa"]), f("feat/fb.csv", H["fb"])], [],
        state=FAILED, custom={"train.lr": 9.0, "train.epochs": 3}, properties={"Exit_Code": 1})
    run("train2", "demo", "train", "python train.py --lr 0.2", [f("feat/fa.csv", H["fa"]), f("feat/fb.csv", H["fb"])],
        [f("model.pkl", H["model2"], type=schema.MODEL)], custom={"train.lr": 0.2, "train.epochs": 3},
        properties={"Exit_Code": 0})
    run("report", "other", "report", "python report.py", [f("data/raw.csv", H["raw"])], [f("report.txt", H["report"])])
    return ids


def test_builder_shares_raw_across_pipelines(sqlite_uri: str) -> None:
    build(sqlite_uri)
    store = connect(sqlite_uri)
    [raw] = store.artifacts_by_uri([H["raw"]])
    assert raw.properties["url"] == f"demo:{H['raw']},other:{H['raw']}"
    assert len(store.events_by_artifact([int(raw.id or 0)])) == 2
