"""Run by cmflib's own Python (a separate venv with cmflib 0.1.0): read a store with
CMF's CmfQuery and print what it saw as JSON. Not imported by the test suite."""
import json
import sys

from cmflib.cmfquery import CmfQuery


def main() -> None:
    path, pipeline = sys.argv[1], sys.argv[2]
    q = CmfQuery(path)
    out = {"pipelines": q.get_pipeline_names(), "stages": q.get_pipeline_stages(pipeline), "executions": {},
           "artifacts_by_execution": {}, "artifacts": sorted(q.get_all_artifacts())}
    for stage in out["stages"]:
        df = q.get_all_executions_in_stage(stage)
        out["executions"][stage] = df.to_dict(orient="records") if not df.empty else []
        for row in out["executions"][stage]:
            arts = q.get_all_artifacts_for_execution(int(row["id"]))
            out["artifacts_by_execution"][str(row["id"])] = arts[["name", "event", "type"]].to_dict(orient="records")
    out["executions_for_artifact"] = {}
    out["parents"] = {}
    out["children"] = {}
    for name in out["artifacts"]:
        df = q.get_all_executions_for_artifact(name)
        out["executions_for_artifact"][name] = df.astype(str).to_dict(orient="records") if not df.empty else []
        parents = q.get_all_parent_artifacts(name)
        out["parents"][name] = sorted(parents["name"]) if parents is not None and not parents.empty else []
        children = q.get_one_hop_child_artifacts(name)
        out["children"][name] = sorted(children["name"]) if children is not None and not children.empty else []
    out["dump"] = json.loads(q.dumptojson(pipeline))
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
