"""``cmfrun -- CMD`` as a real subprocess: passthrough, exit codes, signals, records, failing stores."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

import pytest

from cmfrun.store import connect
from tests.conftest import Project, cli_env, git

PY = sys.executable


def cmfrun(cwd: Path, *args: str, env: Optional[Dict[str, str]] = None, **kw) -> subprocess.CompletedProcess:
    """Run the wrapper as a real process (sync merge unless the env says otherwise)."""
    e = cli_env(CMFRUN_SYNC="1")
    e.update(env or {})
    return subprocess.run([PY, "-m", "cmfrun", *args], cwd=cwd, env=e, capture_output=True, text=True, timeout=120, **kw)


def executions(store_path: Path) -> List:
    from cmfrun.commands import open_store

    store = open_store(store_path)
    return sorted(store.executions(), key=lambda e: e.id or 0)


def artifacts_of(store_path: Path, execution_id: int) -> Dict[str, List]:
    store = connect(store_path, create=False)
    events = store.events_by_execution([execution_id])
    arts = {a.id: a for a in store.artifacts_by_id([e.artifact_id for e in events])}
    out: Dict[str, List] = {"INPUT": [], "OUTPUT": []}
    for ev in events:
        out[ev.kind].append(arts[ev.artifact_id])
    return out


@pytest.fixture
def repo(project: Project) -> Project:
    project.git_init(remote="https://example.com/demo.git")
    project.write("data/raw.csv", "a,b\n1,2\n")
    project.commit("init")
    return project


def test_exit_status_and_record(repo: Project) -> None:
    proc = cmfrun(repo.root, "--", PY, "-c", "import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)")
    assert proc.returncode == 3
    assert proc.stdout == "out\n"
    assert proc.stderr == "err\n"  # nothing from cmfrun itself
    (e,) = executions(repo.root / "mlmd")
    assert e.state == "FAILED"
    p = e.properties
    assert p["Exit_Code"] == 3
    assert p["Recorded_By"] == "cmfrun"
    assert p["Execution"].startswith(PY) and p["Execution"].endswith("sys.exit(3)'")
    assert p["Pipeline_Type"] == "proj" and p["Stage"] == Path(PY).name
    assert p["Git_Start_Commit"] == git(repo.root, "rev-parse", "HEAD") == p["Git_End_Commit"]
    assert p["Git_Dirty"] == 0
    assert p["Git_Repo"] == "https://example.com/demo.git"
    assert p["Working_Dir"] == "."
    assert p["End_Time_ms"] >= p["Start_Time_ms"] > 0
    assert p["Peak_RSS_KiB"] > 0 and p["CPU_Time_s"] >= 0
    assert p["Host"] and "User" in p
    arts = artifacts_of(repo.root / "mlmd", int(e.id or 0))
    (env,) = [a for a in arts["INPUT"] if a.type == "Environment"]
    assert env.name == f"cmf_artifacts/python_env_{env.uri}.txt:{env.uri}"
    assert "click==" in str(env.custom["packages"])


def test_success_is_complete_and_env_artifact_shared(repo: Project) -> None:
    assert cmfrun(repo.root, "--", "true").returncode == 0
    assert cmfrun(repo.root, "-s", "again", "--", "true").returncode == 0
    es = executions(repo.root / "mlmd")
    assert [e.state for e in es] == ["COMPLETE", "COMPLETE"]
    assert [e.properties["Stage"] for e in es] == ["true", "again"]
    store = connect(repo.root / "mlmd")
    assert len(store.artifacts_by_type("Environment")) == 1


def test_signal_death_is_128_plus_n(repo: Project) -> None:
    proc = cmfrun(repo.root, "--", PY, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
    assert proc.returncode == 128 + signal.SIGKILL
    (e,) = executions(repo.root / "mlmd")
    assert e.properties["Exit_Code"] == 137 and e.state == "FAILED"


def test_missing_program_is_127(repo: Project) -> None:
    proc = cmfrun(repo.root, "--", "no-such-program-xyz", "--flag")
    assert proc.returncode == 127
    assert proc.stderr.strip() == "cmfrun: no-such-program-xyz: command not found"
    (e,) = executions(repo.root / "mlmd")
    assert e.properties["Exit_Code"] == 127 and e.state == "FAILED"


def test_no_command_is_usage_error(repo: Project) -> None:
    proc = cmfrun(repo.root, "--")
    assert proc.returncode == 2 and "no command given" in proc.stderr
    proc = cmfrun(repo.root, "--bogus", "--", "true")
    assert proc.returncode == 2 and "--bogus" in proc.stderr
    assert not (repo.root / "mlmd").exists()


def test_without_double_dash_first_word_starts_command(repo: Project) -> None:
    proc = cmfrun(repo.root, "-s", "st", PY, "-c", "import sys; print(sys.argv[1:])", "-s", "--in", "x")
    assert proc.returncode == 0 and proc.stdout.strip() == "['-s', '--in', 'x']"
    (e,) = executions(repo.root / "mlmd")
    assert e.properties["Stage"] == "st"


def test_options_after_double_dash_pass_through(repo: Project) -> None:
    proc = cmfrun(repo.root, "-p", "pipe", "--", PY, "-c", "import sys; print(sys.argv[1:])", "--help", "-s", "x")
    assert proc.returncode == 0
    assert proc.stdout.strip() == "['--help', '-s', 'x']"
    (e,) = executions(repo.root / "mlmd")
    assert e.properties["Pipeline_Type"] == "pipe"
    assert e.properties["Execution"].endswith("--help -s x")


SLEEPER = (
    "import signal, sys, time\n"
    "def h(s, f):\n"
    "    print('child got', s, flush=True); sys.exit(100 + s)\n"
    "signal.signal(signal.SIGTERM, h)\n"
    "signal.signal(signal.SIGINT, h)\n"
    "print('ready', flush=True)\n"
    "time.sleep(30)\n"
)


def _start(repo: Project, **kw) -> subprocess.Popen:
    proc = subprocess.Popen(
        [PY, "-m", "cmfrun", "--", PY, "-c", SLEEPER],
        cwd=repo.root,
        env=cli_env(CMFRUN_SYNC="1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


def test_sigterm_is_forwarded_to_child(repo: Project) -> None:
    proc = _start(repo)
    proc.send_signal(signal.SIGTERM)  # to cmfrun only
    out, err = proc.communicate(timeout=60)
    assert "child got 15" in out
    assert proc.returncode == 115
    (e,) = executions(repo.root / "mlmd")
    assert e.state == "CANCELED" and e.properties["Exit_Code"] == 115


def test_sigint_to_process_group_reaches_child_parent_waits(repo: Project) -> None:
    proc = _start(repo, start_new_session=True)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
    out, err = proc.communicate(timeout=60)
    assert "child got 2" in out
    assert proc.returncode == 102  # the child's status, not a KeyboardInterrupt in cmfrun
    assert "Traceback" not in err
    (e,) = executions(repo.root / "mlmd")
    assert e.state == "CANCELED"


def test_in_out_metrics_model_and_lineage(repo: Project) -> None:
    repo.write("prep.py", "import os\nos.makedirs('data/prep', exist_ok=True)\n"
               "open('data/prep/a.csv','w').write(open('data/raw.csv').read() * 2)\n")
    repo.write("train.py", "import json\nopen('model.pkl','w').write(open('data/prep/a.csv').read())\n"
               "json.dump({'acc': 0.5, 'nested': {'f1': 0.25}}, open('metrics.json','w'))\n")
    repo.write("eval.py", "open('report.txt','w').write(open('model.pkl').read()[:3])\n")
    # Makefile style: several words after one --in
    assert cmfrun(repo.root, "--in", "data/raw.csv", "prep.py", "--out", "data/prep", "--", PY, "prep.py").returncode == 0
    assert cmfrun(repo.root, "--in", "data/prep", "--model", "model.pkl", "--metrics", "metrics.json",
                  "--", PY, "train.py").returncode == 0
    assert cmfrun(repo.root, "--in", "model.pkl", "--out", "report.txt", "--", PY, "eval.py").returncode == 0
    prep, train, ev = executions(repo.root / "mlmd")
    assert [e.properties["Stage"] for e in (prep, train, ev)] == ["prep", "train", "eval"]
    a_prep = artifacts_of(repo.root / "mlmd", int(prep.id or 0))
    a_train = artifacts_of(repo.root / "mlmd", int(train.id or 0))
    a_eval = artifacts_of(repo.root / "mlmd", int(ev.id or 0))
    assert {a.path for a in a_prep["INPUT"] if a.type == "Dataset"} == {"data/raw.csv", "prep.py"}
    (prep_out,) = a_prep["OUTPUT"]
    assert prep_out.uri.endswith(".dir") and prep_out.path == "data/prep"
    # lineage: the same artifact (same id, same hash) links producer and consumer
    assert prep_out.id in {a.id for a in a_train["INPUT"]}
    model = [a for a in a_train["OUTPUT"] if a.type == "Model"][0]
    metrics = [a for a in a_train["OUTPUT"] if a.type == "Metrics"][0]
    assert metrics.custom["acc"] == 0.5 and metrics.custom["nested.f1"] == 0.25
    assert model.id in {a.id for a in a_eval["INPUT"]}
    from cmfrun.hashing import Hasher

    assert model.uri == Hasher().hash(repo.root / "model.pkl").md5


def test_glob_inputs_and_missing_input_error(repo: Project) -> None:
    repo.write("data/b.csv", "x\n")
    assert cmfrun(repo.root, "--in", "data/*.csv", "--", "true").returncode == 0
    (e,) = executions(repo.root / "mlmd")
    ins = artifacts_of(repo.root / "mlmd", int(e.id or 0))["INPUT"]
    assert {a.path for a in ins if a.type == "Dataset"} == {"data/raw.csv", "data/b.csv"}
    proc = cmfrun(repo.root, "--in", "nope.csv", "--", "true")
    assert proc.returncode == 0  # the command still runs
    assert "nope.csv" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_log_file_copies_output(repo: Project, tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    proc = cmfrun(repo.root, "--log", str(log), "--", PY, "-c", "import sys; print('o'); print('e', file=sys.stderr)")
    assert proc.returncode == 0 and proc.stdout == "o\n" and proc.stderr == "e\n"
    # stdout and stderr are two pipes: their bytes may interleave in the log, but all arrive
    assert sorted(log.read_text()) == ["\n", "\n", "e", "o"]


def test_config_from_env_and_file(repo: Project, tmp_path: Path) -> None:
    repo.write(".cmfconfig", "[cmfrun]\npipeline = from-file\nmlmd = meta/store\n")
    (repo.root / "meta").mkdir()
    assert cmfrun(repo.root, "--", "true").returncode == 0
    (e,) = executions(repo.root / "meta" / "store")
    assert e.properties["Pipeline_Type"] == "from-file"
    other = tmp_path / "other.mlmd"
    assert cmfrun(repo.root, "--", "true", env={"CMFRUN_MLMD": str(other), "CMFRUN_STAGE": "st"}).returncode == 0
    (e,) = executions(other)
    assert e.properties["Stage"] == "st" and e.properties["Pipeline_Type"] == "from-file"


def test_background_merge_reaches_store(repo: Project) -> None:
    proc = cmfrun(repo.root, "--", "true", env={"CMFRUN_SYNC": "0"})
    assert proc.returncode == 0 and proc.stderr == ""
    deadline = time.time() + 60
    store = None
    while time.time() < deadline:
        if (repo.root / "mlmd").exists():
            store = connect(repo.root / "mlmd", create=False)
            if store.executions():
                break
        time.sleep(0.2)
    assert store is not None and len(store.executions()) == 1
    assert not list((repo.root / ".cmfrun-journal").glob("*.json"))


# -- a failing store never breaks the run -------------------------------------------------------
def _read_only(paths: List[Path], request: pytest.FixtureRequest) -> None:
    """Make ``paths`` unwritable, for root too (the immutable attribute) when chattr works."""
    import shutil

    if os.geteuid() != 0:
        for p in paths:
            p.chmod(0o555 if p.is_dir() else 0o444)
        return
    if shutil.which("chattr") is None:
        pytest.skip("root ignores permissions and chattr is missing")
    for p in paths:
        if subprocess.run(["chattr", "+i", str(p)], capture_output=True).returncode != 0:
            pytest.skip("root ignores permissions and chattr +i is not supported here")
        request.addfinalizer(lambda p=p: subprocess.run(["chattr", "-i", str(p)], capture_output=True))


def _bad_stores(tmp_path: Path, request: pytest.FixtureRequest) -> Dict[str, str]:
    ro_dir = tmp_path / "ro"
    ro_dir.mkdir()
    ro = ro_dir / "mlmd"
    connect(ro).close()
    _read_only([ro, ro_dir], request)
    corrupt = tmp_path / "corrupt"
    corrupt.write_text("this is not sqlite" * 10)
    return {
        "read-only": str(ro),
        "corrupt": str(corrupt),
        "unreachable": "postgresql://postgres@127.0.0.1:1/nodb",
    }


@pytest.mark.parametrize("kind", ["read-only", "corrupt", "unreachable"])
@pytest.mark.parametrize("sync", ["0", "1"])
def test_failing_store_command_still_runs(repo: Project, tmp_path: Path, kind: str, sync: str,
                                         request: pytest.FixtureRequest) -> None:
    store = _bad_stores(tmp_path, request)[kind]
    marker = repo.root / "ran.txt"
    proc = cmfrun(repo.root, "-f", store, "--", PY, "-c", f"open({str(marker)!r}, 'w'); raise SystemExit(4)",
                  env={"CMFRUN_SYNC": sync})
    assert marker.exists()
    assert proc.returncode == 4
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cmfrun: warning:") and "not in the store" in lines[0]
    # nothing lost: the journal is kept for a later merge
    assert list((repo.root / ".cmfrun-journal").glob("*.json")) or list(Path(store).parent.glob(".cmfrun-journal/*.json"))


@pytest.mark.parametrize("kind", ["read-only", "corrupt", "unreachable"])
def test_strict_turns_record_failure_into_error(repo: Project, tmp_path: Path, kind: str,
                                                request: pytest.FixtureRequest) -> None:
    store = _bad_stores(tmp_path, request)[kind]
    proc = cmfrun(repo.root, "--strict", "-f", store, "--", "true")
    assert proc.returncode == 3
    assert proc.stderr.startswith("cmfrun: error:")
    proc = cmfrun(repo.root, "--strict", "-f", store, "--", "false")
    assert proc.returncode == 1  # the child's failure wins


def test_locked_store_run_merged_later(repo: Project) -> None:
    """A writer holding the store lock does not block the run; the journal is merged later."""
    store = connect(repo.root / "mlmd")
    with store.write_lock():
        proc = cmfrun(repo.root, "--", "true", env={"CMFRUN_SYNC": "0"})
        assert proc.returncode == 0 and proc.stderr == ""
        time.sleep(0.5)
        assert store.executions() == []
    assert len(executions(repo.root / "mlmd")) == 1  # open_store merges what is left


def test_journal_cannot_be_written_command_still_runs(repo: Project) -> None:
    """Like a full disk: no journal can be written anywhere; the run goes on, one line says so."""
    (repo.root / ".cmfrun-journal").write_text("a file where the journal folder should be")
    proc = cmfrun(repo.root, "--", PY, "-c", "print('ran'); raise SystemExit(5)")
    assert proc.returncode == 5 and proc.stdout == "ran\n"
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cmfrun: warning: run not recorded")
    proc = cmfrun(repo.root, "--strict", "--", "true")
    assert proc.returncode == 3 and proc.stderr.startswith("cmfrun: error: run not recorded")


def test_strict_missing_input_still_runs_then_errors(repo: Project) -> None:
    marker = repo.root / "ran.txt"
    proc = cmfrun(repo.root, "--strict", "--in", "missing.csv", "--", PY, "-c", f"open({str(marker)!r}, 'w')")
    assert marker.exists()
    assert proc.returncode == 3 and "missing.csv" in proc.stderr


def test_every_backend(project: Project, store_uri: str) -> None:
    """SQLite, PostgreSQL and MariaDB stores; server stores keep journals at the project root."""
    project.git_init()
    project.commit()
    proc = cmfrun(project.root, "-f", store_uri, "--", "true")
    assert proc.returncode == 0 and proc.stderr == ""
    from cmfrun.commands import open_store

    store = open_store(store_uri)
    (e,) = store.executions()
    assert e.state == "COMPLETE" and e.properties["Recorded_By"] == "cmfrun"
    # epoch ms do not fit PostgreSQL/MySQL's 32-bit int_value: custom doubles there
    start = e.properties.get("Start_Time_ms", e.custom.get("Start_Time_ms"))
    assert isinstance(start, (int, float)) and start > 1.6e12


PARSE_CASES = [
    ["--", "true"],
    ["-f", "x.db", "-p", "pipe", "-s", "st", "--", "python", "t.py", "--in", "z"],
    ["--in", "a", "b", "c", "--out", "o", "--", "make", "-j2"],
    ["--in=a", "--out", "o1", "o2", "--metrics", "m.json", "--model", "model.pkl", "--sync", "--", "x"],
    ["-i", "a", "-i", "b", "-o", "c", "-m", "m.yaml", "--log", "run.log", "--strict", "--", "sh", "-c", "exit 3"],
    ["python", "train.py", "--in", "x"],
    ["-s", "st", "python", "-c", "pass", "-s"],
]


@pytest.mark.parametrize("args", PARSE_CASES, ids=lambda a: " ".join(a))
def test_fast_parser_agrees_with_click(args: List[str]) -> None:
    """`python -m cmfrun` parses without click; both parsers must read options alike."""
    from cmfrun.cli.run import run_command, split_multi
    from cmfrun.commands.run import parse_fast

    fast = parse_fast(args)
    assert fast is not None
    options, command = fast
    ctx = run_command.make_context("cmfrun", split_multi(list(args)))
    p = ctx.params
    argv = list(p["argv"])
    if argv and argv[0] == "--":
        argv = argv[1:]
    assert command == argv
    assert (options.mlmd, options.pipeline, options.stage) == (p["mlmd"], p["pipeline"], p["stage"])
    assert (options.inputs, options.outputs, options.metrics, options.models) == (
        p["inputs"], p["outputs"], p["metrics"], p["model"])
    assert (options.log_file, options.strict, options.sync) == (p["log_file"], p["strict"], p["sync"])


@pytest.mark.parametrize("args", [["--help"], ["--bogus", "--", "x"], ["--in"], ["--"], [], ["--sync"]])
def test_fast_parser_defers_to_click(args: List[str]) -> None:
    from cmfrun.commands.run import parse_fast

    assert parse_fast(args) is None


def test_console_script_click_path(repo: Project, tmp_path: Path) -> None:
    """The `cmfrun` console script (click) behaves as `python -m cmfrun` (fast parser)."""
    script = Path(PY).parent / "cmfrun"
    if not script.exists():
        pytest.skip("console script not installed")
    env = cli_env(CMFRUN_SYNC="1")
    proc = subprocess.run([str(script), "-s", "cs", "--", PY, "-c", "raise SystemExit(3)"], cwd=repo.root, env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 3 and proc.stderr == ""
    corrupt = tmp_path / "corrupt"
    corrupt.write_text("not sqlite" * 10)
    proc = subprocess.run([str(script), "--strict", "-f", str(corrupt), "--", "true"], cwd=repo.root, env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 3 and proc.stderr.startswith("cmfrun: error:")
    (e,) = executions(repo.root / "mlmd")
    assert e.properties["Stage"] == "cs" and e.properties["Exit_Code"] == 3


def test_unresolvable_dvc_stage_still_records_the_run(repo: Project) -> None:
    """A broken dvc.yaml costs the run its inputs/outputs (one warning), not its record."""
    repo.write("dvc.yaml", "stages:\n  a: [\n")
    env = {"DVC_STAGE": "a", "DVC_ROOT": str(repo.root)}
    proc = cmfrun(repo.root, "--", "sh", "-c", "exit 4", env=env)
    assert proc.returncode == 4
    [line] = proc.stderr.strip().splitlines()
    assert "stage a not resolved" in line and "dvc.yaml" in line
    [ex] = executions(repo.root / "mlmd")
    assert ex.state == "FAILED" and ex.properties["Exit_Code"] == 4


def test_reader_creates_a_store_that_only_has_journals(tmp_path: Path) -> None:
    """A run whose journal was written but never merged (its merger died before creating
    the store file) still shows up: the first reader creates the store and merges it."""
    import uuid as _uuid

    from cmfrun import journal

    store = str(tmp_path / "mlmd")
    run_id = str(_uuid.uuid1())
    run = {"pipeline": "p", "stage": "s", "command": "true", "uuid": run_id, "execution_name": run_id,
           "state": "COMPLETE"}
    jdir = journal.journal_dir(store, tmp_path)
    journal.write(jdir / f"{run_id}.json", journal.new_entry(store, run, state="COMPLETE"))
    assert not (tmp_path / "mlmd").exists() and journal.waiting_for(store)
    [ex] = executions(tmp_path / "mlmd")
    assert ex.name == run_id and ex.state == "COMPLETE"
    assert not journal.waiting_for(store)
