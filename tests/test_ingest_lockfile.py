"""dvc.lock parsing: every layout DVC writes, paths, params, YAML 1.2 values, refused locks."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cmfrun.errors import LockFileError
from cmfrun.ingest.lockfile import flatten_params, parse_yaml, read_lock, to_root_relative

FIXTURES = Path(__file__).parent / "fixtures" / "locks"


def place(tmp_path: Path, fixture: str, rel: str = "dvc.lock") -> Path:
    dest = tmp_path / rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(FIXTURES / fixture, dest)
    return dest


def stages(lock):  # type: ignore[no-untyped-def]
    return {s.name: s for s in lock.stages}


def test_dvc3_schema_dirs_sizes_params(tmp_path: Path) -> None:
    lock = read_lock(place(tmp_path, "dvc3.lock"), tmp_path)
    assert lock.schema == "2.0" and lock.path == "dvc.lock"
    st = stages(lock)
    assert list(st) == ["prepare", "train", "evaluate"]
    prep = st["prepare"].outs[0]
    assert (prep.path, prep.md5, prep.size, prep.nfiles, prep.is_dir) == (
        "data/prepared", "153aad06d376b6595932470e459ef42a.dir", 8437363, 2, True)
    assert st["train"].outs[0].size == 6000000000  # above 2**32
    params = {(p.file, p.key): p.value for p in st["train"].params}
    assert params[("params.yaml", "train.lr")] == 1e-05 and isinstance(params[("params.yaml", "train.lr")], float)
    assert params[("config/model.json", "arch.name")] == "resnet"
    assert params[("pyproject.toml", "tool.train.batch")] == 32
    assert params[("settings.py", "EPOCHS")] == 10
    flat = flatten_params(st["train"].params)
    assert flat["train.lr"] == 1e-05
    assert flat["train.opts.depth"] == 3 and flat["train.opts.layers"] == "[64, 32]" and flat["train.opts.early_stop"] == 1
    assert flat["config/model.json:arch.name"] == "resnet"
    assert flat["settings.py:EPOCHS"] == 10
    assert st["prepare"].line == 4


@pytest.mark.parametrize("fixture", ["dvc2.lock", "mixed.lock"])
def test_dvc2_without_hash_key_and_mixed(tmp_path: Path, fixture: str) -> None:
    lock = read_lock(place(tmp_path, fixture), tmp_path)
    md5s = [e.md5 for s in lock.stages for e in (*s.deps, *s.outs)]
    assert all(m and len(m) == 32 for m in md5s)
    if fixture == "dvc2.lock":
        assert stages(lock)["train"].outs[0].size == 4294967296


def test_dvc1_top_level_layout(tmp_path: Path) -> None:
    lock = read_lock(place(tmp_path, "dvc1.lock"), tmp_path)
    assert lock.schema == "1"
    st = stages(lock)
    assert set(st) == {"prepare", "train"}
    assert st["prepare"].outs[0].md5 == "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee.dir"
    assert st["prepare"].outs[0].size is None
    assert [(p.key, p.value) for p in st["prepare"].params] == [("seed", 1)]
    assert st["train"].line == 13


def test_foreach_names_folded_and_list_cmd(tmp_path: Path) -> None:
    st = stages(read_lock(place(tmp_path, "foreach.lock"), tmp_path))
    assert set(st) == {"fe@a", "fe@b", "train@lr-0.1-d-3"}
    assert st["fe@a"].cmd == 'python fe.py\n  --name a\n  --out "feat a.csv"'
    assert st["fe@b"].cmd.strip() == 'python fe.py --name b --out "feat b.csv"'
    assert st["train@lr-0.1-d-3"].cmd == ("python train.py --lr 0.1 --depth 3", "python report.py")
    assert st["fe@a"].outs[0].path == "feat a.csv"


def test_odd_paths(tmp_path: Path) -> None:
    root = tmp_path
    lock = read_lock(place(root, "paths.lock", "sub/dvc.lock"), root)
    assert lock.path == "sub/dvc.lock"
    deps = {e.raw_path: e for e in stages(lock)["odd"].deps}
    assert deps["./data/raw.csv"].path == "sub/data/raw.csv"
    assert deps["../shared/common.csv"].path == "shared/common.csv"
    assert deps["data\\windows\\file.csv"].path == "sub/data/windows/file.csv"
    assert deps["/opt/abs/ref.csv"].path == "/opt/abs/ref.csv"
    assert deps["data/dir with space/"].path == "sub/data/dir with space"
    assert deps["données/é.csv"].path == "sub/données/é.csv"
    assert deps["s3://bucket/remote.csv"].md5 is None and deps["s3://bucket/remote.csv"].is_url
    assert deps["https://example.com/data.csv"].md5 is None
    assert stages(lock)["odd"].outs[0].path == "sub/out"


def test_absolute_path_inside_root_becomes_relative(tmp_path: Path) -> None:
    assert to_root_relative(tmp_path, "", str(tmp_path / "data" / "x.csv")) == "data/x.csv"
    assert to_root_relative(tmp_path, "", "C:\\data\\x.csv") == "C:/data/x.csv"


def test_wdir_from_dvc_yaml_and_stage_gone_from_dvc_yaml(tmp_path: Path) -> None:
    path = place(tmp_path, "dvc2.lock")
    lock = read_lock(path, tmp_path, stage_wdirs={"prepare": "work"})
    st = stages(lock)
    assert st["prepare"].deps[0].path == "work/raw.csv"
    assert st["train"].deps[0].path == "clean.csv" and not st["train"].in_dvc_yaml
    assert any("'train' is not defined in dvc.yaml" in w for w in lock.warnings)


def test_yaml_1_2_scalars() -> None:
    data = parse_yaml("a: 1e-05\nb: 010\nc: yes\nd: 2020-01-01\ne: 0x1F\nf: 1.5\ng: ~\nh: true\ni: on\n", "x")
    assert data == {"a": 1e-05, "b": 10, "c": "yes", "d": "2020-01-01", "e": 31, "f": 1.5, "g": None, "h": True,
                    "i": "on"}


@pytest.mark.parametrize(
    "fixture, message",
    [
        ("bad_duplicate.lock", "dvc.lock:7: duplicate key 'a' (first at line 3)"),
        ("bad_conflict.lock", "dvc.lock:3: merge-conflict marker"),
        ("bad_notyaml.lock", "dvc.lock:5: not valid YAML"),
        ("bad_schema.lock", "unsupported dvc.lock schema '3.0'"),
        ("bad_shape.lock", "dvc.lock:1: expected a mapping of stages"),
    ],
)
def test_refused_locks(tmp_path: Path, fixture: str, message: str) -> None:
    with pytest.raises(LockFileError) as err:
        read_lock(place(tmp_path, fixture), tmp_path)
    assert message in str(err.value)
    assert "\n" not in str(err.value)
