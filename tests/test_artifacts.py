"""`cmf init` and `cmf artifact push/pull/list` on a local DVC remote: real git repositories,
real `dvc repro`, real `cmfrun --` runs, the real DVC cache and remote layout."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pytest

import cmfrun
from cmfrun.cli import cmf
from cmfrun.commands import open_store
from cmfrun.recorder import FileRef, RunRecord, new_uuid, record_run
from cmfrun.remotes import cache as rcache
from cmfrun.store import connect
from tests.conftest import Project, cli_env, cli_runner, git

PY = sys.executable
SECRET = "s3cr3t-VALUE-do-not-leak"


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def run_cmf(cwd: Path, *args: str, monkeypatch: pytest.MonkeyPatch) -> Tuple[int, str, str]:
    monkeypatch.chdir(cwd)
    result = cli_runner().invoke(cmf, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def wrap(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """`cmfrun ARGS` as a real process, merged synchronously (the merger caches the bytes)."""
    proc = subprocess.run([PY, "-m", "cmfrun", *args], cwd=cwd, env=cli_env(CMFRUN_SYNC="1"), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc


def store_files(store_path: Path, pipeline: str) -> Dict[str, str]:
    """path -> md5 of every file the pipeline's artifacts name (directories expanded from the cache listing)."""
    from cmfrun.commands.artifacts import select_artifacts

    out: Dict[str, str] = {}
    for art in select_artifacts(open_store(store_path), pipeline=pipeline):
        out[art.path] = art.uri
    return out


def tracked(root: Path, rel: str) -> bool:
    return subprocess.run(["git", "check-ignore", "-q", rel], cwd=root).returncode != 0


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A git + DVC project with one committed file, made once (`dvc init` costs seconds)."""
    proj = Project(tmp_path_factory.mktemp("template") / "proj")
    proj.root.mkdir()
    proj.git_init(remote="https://example.com/demo.git").dvc_init()
    proj.write("data/raw.csv", "a,b\n1,2\n3,4\n")
    proj.commit("init")
    return proj.root


@pytest.fixture
def repo(template: Path, project: Project) -> Project:
    shutil.rmtree(project.root)
    shutil.copytree(template, project.root, symlinks=True)
    return project


# -- cmf init -------------------------------------------------------------------------------------
def test_init_twice_updates_and_secrets_stay_local(repo: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = repo.root
    code, out, err = run_cmf(
        root, "init", "minioS3", "--url", "s3://bucket-a/x", "--endpoint-url", "http://127.0.0.1:9",
        "--access-key-id", "AKIDTEST", "--secret-key", SECRET, "--neo4j-uri", "bolt://127.0.0.1:7687",
        "--neo4j-user", "neo", "--neo4j-password", SECRET + "-neo", "--cmf-server-url", "http://127.0.0.1:8080",
        monkeypatch=monkeypatch,
    )
    assert code == 0, err
    assert SECRET not in out + err
    code, out, err = run_cmf(
        root, "init", "minioS3", "--url", "s3://bucket-b/y", "--endpoint-url", "http://127.0.0.1:9",
        "--access-key-id", "AKIDTEST", "--secret-key", SECRET, monkeypatch=monkeypatch,
    )
    assert code == 0, err
    repo_config = (root / ".dvc" / "config").read_text()
    assert repo_config.count('remote "minio"') == 1 and "s3://bucket-b/y" in repo_config and "bucket-a" not in repo_config
    assert SECRET not in repo_config and "AKIDTEST" not in repo_config
    local = (root / ".dvc" / "config.local").read_text()
    assert SECRET in local and local.count('remote "minio"') == 1
    assert (root / ".dvc" / "config.local").stat().st_mode & 0o077 == 0
    cmfconfig = (root / ".cmfconfig").read_text()
    assert SECRET not in cmfconfig and "neo4j_uri = bolt://127.0.0.1:7687" in cmfconfig
    assert "cmf_server_url = http://127.0.0.1:8080" in cmfconfig  # kept by the second run
    assert (root / ".cmfconfig.local").read_text().count(SECRET + "-neo") == 1
    # Every secret is in a git-ignored file; nothing git would commit holds one.
    assert not tracked(root, ".dvc/config.local") and not tracked(root, ".cmfconfig.local")
    git(root, "add", "-A")
    staged = git(root, "diff", "--cached", "--name-only").split()
    for name in staged:
        assert SECRET not in (root / name).read_text(errors="replace"), name
    code, out, _ = run_cmf(root, "init", "show", monkeypatch=monkeypatch)
    assert code == 0 and SECRET not in out and "secret_access_key" in out and "neo4j_password_set: True" in out
    cfg = cmfrun.cmf_init_show(root=root)
    assert cfg.remote_name == "minio" and cfg.remote_url == "s3://bucket-b/y" and cfg.neo4j_password == SECRET + "-neo"
    assert SECRET not in repr(cfg) and SECRET not in str(cfg.public())
    # The reader other parts use (server URL, Neo4j) sees the same.
    from cmfrun.remotes.setup import read_init_config

    assert read_init_config(root).cmf_server_url == "http://127.0.0.1:8080"


def test_init_python_api_and_bad_input(project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project.root)
    # A bare folder gets git and DVC, as `cmf init` does in CMF.
    res = cmfrun.cmf_init(type="local", path=str(tmp_path / "store"), git_remote_url="https://example.com/r.git")
    assert (project.root / ".git").is_dir() and (project.root / ".dvc").is_dir()
    assert res.remote_name == "local-storage" and res.remote_url == str(tmp_path / "store")
    assert git(project.root, "remote", "get-url", "origin") == "https://example.com/r.git"
    res = cmfrun.cmf_init(type="local", path=str(tmp_path / "store2"), git_remote_url="https://example.com/r2.git")
    assert res.remote_url == str(tmp_path / "store2") and git(project.root, "remote", "get-url", "origin") == "https://example.com/r2.git"
    ssh = cmfrun.cmf_init(type="sshremote", path="ssh://127.0.0.1/srv/store", user="me", port=2222, password=SECRET)
    assert ssh.remote_name == "ssh-storage" and ssh.remote_options == {"user": "me", "port": "2222"} and ssh.secrets_set == ("password",)
    assert SECRET not in (project.root / ".dvc" / "config").read_text()
    for kwargs, match in [
        ({"type": "nfs", "path": "/x"}, "unknown remote type"),
        ({"type": "local"}, "needs --path"),
        ({"type": "minioS3", "url": "http://x", "endpoint_url": "e", "access_key_id": "a", "secret_key": SECRET}, "s3://"),
        ({"type": "sshremote", "path": f"ssh://me:{SECRET}@host/x"}, "must not carry a password"),
        ({"type": "osdfremote", "osdf_path": "https://o/x", "key_id": "k", "key_path": "p", "key_issuer": "i"}, "not supported"),
    ]:
        with pytest.raises(cmfrun.CmfrunError, match=match) as info:
            cmfrun.cmf_init(**kwargs)
        assert SECRET not in str(info.value)
    code, _, err = run_cmf(project.root, "init", "minioS3", "--url", "s3://b", monkeypatch=monkeypatch)
    assert code == 2 and "Missing option" in err


# -- push / pull on a local remote -------------------------------------------------------------
def _pipeline(repo: Project, remote: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real `dvc repro` pipeline through `cmfrun --`, a Makefile-style run and a CMF-API script."""
    root = repo.root
    code, _, err = run_cmf(root, "init", "local", "--path", str(remote), monkeypatch=monkeypatch)
    assert code == 0, err
    git(root, "rm", "-q", "--cached", "data/raw.csv")
    repo.dvc("add", "data/raw.csv")
    repo.write("prep.py", "import os\nos.makedirs('data/prep/sub', exist_ok=True)\n"
               "t = open('data/raw.csv').read()\nopen('data/prep/a.csv','w').write(t * 2)\n"
               "open('data/prep/sub/b.csv','w').write(t * 3)\n")
    repo.write("train.py", "open('model.pkl','w').write(open('data/prep/a.csv').read()[::-1])\n")
    repo.write("dvc.yaml", "stages:\n  prep:\n    cmd: cmfrun -- python prep.py\n    deps: [prep.py, data/raw.csv]\n"
               "    outs: [data/prep]\n")
    repo.commit("pipeline")
    env = cli_env(CMFRUN_SYNC="1", PATH=f"{Path(PY).parent}:{os.environ['PATH']}")
    proc = subprocess.run(["dvc", "repro", "-q"], cwd=root, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # Makefile style: --in/--model, not a DVC stage: the merger puts the bytes into the cache.
    wrap(root, "--in", "data/prep", "train.py", "--model", "model.pkl", "--", PY, "train.py")
    repo.write("notes.txt", "logged by the API\n")
    monkeypatch.chdir(root)
    c = cmfrun.Cmf(filepath=str(root / "mlmd"), pipeline_name=root.name)
    c.create_context("report")
    c.create_execution("Report")
    c.log_dataset("notes.txt", "output")
    c.finalize()


def test_round_trip_local_remote(repo: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root, remote = repo.root, tmp_path / "remote"
    _pipeline(repo, remote, monkeypatch)
    pipeline = root.name
    files = store_files(root / "mlmd", pipeline)
    assert {"data/raw.csv", "data/prep", "model.pkl", "prep.py", "train.py", "notes.txt"} <= set(files)
    code, out, err = run_cmf(root, "artifact", "push", "-p", pipeline, monkeypatch=monkeypatch)
    assert code == 0, err
    assert "0 missing from the local cache" in out and f"  pushed   model.pkl  {files['model.pkl']}" in out
    # Exactly the objects of the pipeline's artifacts: one per file plus each directory listing.
    on_remote = {p.relative_to(remote / "files" / "md5").as_posix().replace("/", "", 1) for p in remote.rglob("*") if p.is_file()}
    listing = files["data/prep"]
    expected = {h for h in files.values()} | {md5(root / "data/prep/a.csv"), md5(root / "data/prep/sub/b.csv")}
    assert on_remote == expected and listing in on_remote
    code, out, _ = run_cmf(root, "artifact", "push", "-p", pipeline, monkeypatch=monkeypatch)
    assert code == 0 and out.startswith(f"0 pushed (0 objects), {len(set(files.values()))} already on the remote")
    # A second machine: a git clone (code and DVC config) plus the store; no data, no cache.
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(root), str(clone))
    shutil.copy(root / "mlmd", clone / "mlmd")
    (clone / ".dvc" / "config.local").unlink(missing_ok=True)
    assert not (clone / "model.pkl").exists() and not (clone / ".dvc" / "cache").exists()
    code, out, err = run_cmf(clone, "artifact", "pull", "-p", pipeline, monkeypatch=monkeypatch)
    assert code == 0, err
    for path, h in files.items():
        target = clone / path
        if h.endswith(".dir"):
            for f in (root / path).rglob("*"):
                if f.is_file():
                    assert md5(clone / f.relative_to(root)) == md5(f)
        else:
            assert md5(target) == h, path
    assert not [p for p in clone.rglob("*.tmp")]
    # Same content again: nothing written, mtimes untouched.
    before = (clone / "model.pkl").stat().st_mtime_ns
    code, out, _ = run_cmf(clone, "artifact", "pull", "-p", pipeline, monkeypatch=monkeypatch)
    assert code == 0 and out.startswith("0 file(s) written") and (clone / "model.pkl").stat().st_mtime_ns == before
    # Other content: refused (nothing written) unless --force.
    (clone / "model.pkl").write_text("local edit")
    (clone / "notes.txt").unlink()
    code, _, err = run_cmf(clone, "artifact", "pull", "-p", pipeline, monkeypatch=monkeypatch)
    assert code == 2 and "model.pkl" in err and "--force" in err
    assert (clone / "model.pkl").read_text() == "local edit" and not (clone / "notes.txt").exists()
    code, _, err = run_cmf(clone, "artifact", "pull", "-p", pipeline, "--force", monkeypatch=monkeypatch)
    assert code == 0 and md5(clone / "model.pkl") == files["model.pkl"] and (clone / "notes.txt").exists()
    # One artifact under another folder.
    code, out, err = run_cmf(clone, "artifact", "pull", "-p", pipeline, "-a", "data/prep", "-o", str(tmp_path / "restore"), monkeypatch=monkeypatch)
    assert code == 0, err
    assert md5(tmp_path / "restore/data/prep/sub/b.csv") == md5(root / "data/prep/sub/b.csv")
    assert not (tmp_path / "restore/model.pkl").exists()


def test_list_shows_where_bytes_are(repo: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = repo.root
    run_cmf(root, "init", "local", "--path", str(tmp_path / "remote"), monkeypatch=monkeypatch)
    repo.write("a.txt", "A\n")
    repo.write("b.txt", "B\n")
    c = cmfrun.Cmf(filepath=str(root / "mlmd"), pipeline_name="p")
    c.create_context("s")
    c.create_execution("S")
    a = c.log_dataset("a.txt", "input")
    b = c.log_dataset("b.txt", "output")
    c.finalize()
    code, plain, _ = run_cmf(root, "artifact", "list", "-p", "p", monkeypatch=monkeypatch)
    assert code == 0 and "remote" not in plain.splitlines()[0]  # unchanged without --where
    run_cmf(root, "artifact", "push", "-p", "p", monkeypatch=monkeypatch)
    os.chmod(rcache.object_path(root / ".dvc" / "cache", a.uri), 0o644)
    rcache.object_path(root / ".dvc" / "cache", a.uri).unlink()
    rcache.object_path(tmp_path / "remote", b.uri).unlink()
    code, out, err = run_cmf(root, "artifact", "list", "-p", "p", "--where", "--json", monkeypatch=monkeypatch)
    assert code == 0, err
    import json

    rows = {r["path"]: r for r in json.loads(out)}
    assert (rows["a.txt"]["in_cache"], rows["a.txt"]["on_remote"]) == (False, True)
    assert (rows["b.txt"]["in_cache"], rows["b.txt"]["on_remote"]) == (True, False)
    # Push reports the file logged but gone from the cache, without failing.
    code, out, _ = run_cmf(root, "artifact", "push", "-p", "p", monkeypatch=monkeypatch)
    assert code == 0 and "1 pushed" in out


def test_push_reports_missing_and_python_functions(repo: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = repo.root
    monkeypatch.chdir(root)
    cmfrun.cmf_init(type="local", path=str(tmp_path / "remote"))
    repo.write("kept.txt", "kept\n")
    repo.write("gone.txt", "gone\n")
    c = cmfrun.Cmf(filepath="mlmd", pipeline_name="p")
    c.create_context("s")
    c.create_execution("S")
    c.log_dataset("kept.txt", "input")
    gone = c.log_dataset("gone.txt", "output")
    c.finalize()
    obj = rcache.object_path(root / ".dvc" / "cache", gone.uri)
    obj.unlink()
    report = cmfrun.artifact_push("p", "./mlmd", 4)
    assert [r.path for r in report.missing] == ["gone.txt"] and "kept.txt" in [r.path for r in report.pushed]
    code, out, _ = run_cmf(root, "artifact", "push", "-p", "p", monkeypatch=monkeypatch)
    assert code == 0 and f"  missing  gone.txt  {gone.uri}" in out
    (root / "kept.txt").unlink()
    single = cmfrun.artifact_pull_single("p", "./mlmd", "kept.txt")
    assert [f.path for f in single.written] == ["kept.txt"] and (root / "kept.txt").read_text() == "kept\n"
    whole = cmfrun.artifact_pull("p", "./mlmd")
    assert [r.path for r in whole.missing] == ["gone.txt"]
    (root / "kept.txt").unlink()
    code, out, err = run_cmf(root, "artifact", "pull", "-p", "p", monkeypatch=monkeypatch)
    assert code == 3 and "gone.txt" in err and (root / "kept.txt").exists()  # the others are still written


# -- untrusted paths -----------------------------------------------------------------------------
def test_pull_refuses_paths_outside(repo: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = repo.root
    monkeypatch.chdir(root)
    cmfrun.cmf_init(type="local", path=str(tmp_path / "remote"))
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "link").symlink_to(outside)
    repo.write("ok.txt", "fine\n")
    h = md5(root / "ok.txt")
    c = cmfrun.Cmf(filepath="mlmd", pipeline_name="p")
    c.create_context("s")
    c.create_execution("S")
    c.log_dataset("ok.txt", "input")
    cmfrun.artifact_push("p", "./mlmd")
    (root / "ok.txt").unlink()
    store = connect(root / "mlmd")
    # Paths from a store made elsewhere: each one alone makes the whole pull refuse.
    for i, bad in enumerate(["../escape.txt", "/tmp/cmfrun-abs.txt", "link/inside.txt", "data/../../x.txt"]):
        record_run(store, RunRecord(pipeline=f"p{i}", stage="s", command="x", uuid=new_uuid(),
                                    outputs=[FileRef("ok.txt", h), FileRef(bad, hashlib.md5(bad.encode()).hexdigest())]))
        code, _, err = run_cmf(root, "artifact", "pull", "-p", f"p{i}", monkeypatch=monkeypatch)
        assert code == 2 and err.count("\n") == 1 and "refusing to write" in err and bad in err
        assert not (root / "ok.txt").exists()  # nothing written, not even the good one
    assert not list(outside.iterdir()) and not (tmp_path / "escape.txt").exists() and not Path("/tmp/cmfrun-abs.txt").exists()
    code, _, err = run_cmf(root, "artifact", "pull", "-p", "p", monkeypatch=monkeypatch)
    assert code == 0 and (root / "ok.txt").read_text() == "fine\n"


# -- the cache step ------------------------------------------------------------------------------
def test_cache_recorded_never_caches_changed_file_under_old_hash(repo: Project) -> None:
    root = repo.root
    repo.write("out/model.bin", "version 1\n")
    old = md5(root / "out/model.bin")
    repo.write("out/model.bin", "version 2\n")  # changed after the run recorded it
    repo.write("same.txt", "same\n")
    cache = rcache.cache_dir(root)
    done = rcache.cache_recorded(root, [("out/model.bin", old), ("same.txt", md5(root / "same.txt")), ("gone.txt", old)])
    assert done == ["same.txt"]
    assert not rcache.in_cache(cache, old)
    assert rcache.in_cache(cache, md5(root / "out/model.bin"))  # cached, but only under its own hash
    obj = rcache.object_path(cache, md5(root / "same.txt"))
    assert obj.read_text() == "same\n" and obj.stat().st_mode & 0o222 == 0  # read-only, as DVC keeps it
    # DVC itself reads what we wrote: `dvc status -c`-style check through DVC's own cache object.
    from dvc.repo import Repo

    with Repo(str(root)) as dvc_repo:
        assert dvc_repo.cache.local.exists(md5(root / "same.txt"))
        dvc_repo.cache.local.check(md5(root / "same.txt"))  # verifies the object's hash


def test_wrapper_outputs_reach_the_cache_through_the_merger(repo: Project) -> None:
    root = repo.root
    repo.write("make_model.py", "open('model.pkl','w').write('weights\\n')\n")
    proc = subprocess.run([PY, "-m", "cmfrun", "--model", "model.pkl", "--", PY, "make_model.py"], cwd=root,
                          env=cli_env(), capture_output=True, text=True, timeout=120)  # background merger
    assert proc.returncode == 0, proc.stderr
    store = open_store(root / "mlmd")  # merges what the background merger has not yet
    model = [a for a in store.artifacts() if a.type == "Model"][0]
    cache = rcache.cache_dir(root)
    import time

    deadline = time.monotonic() + 30
    while not rcache.in_cache(cache, model.uri) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert rcache.object_path(cache, model.uri).read_text() == "weights\n"


# -- progress on a terminal, a plain summary elsewhere ---------------------------------------------
def on_terminal(cwd: Path, argv: List[str], *, stdout_to: Optional[Path] = None, timeout: float = 120) -> Tuple[int, str]:
    """Run ``argv`` with stdin, stderr and (unless ``stdout_to``, a file) stdout on a new
    pseudo-terminal of 24x100; return the exit code and everything the terminal showed."""
    import fcntl
    import pty
    import select
    import struct
    import termios
    import time

    master, slave = pty.openpty()
    # A real terminal has a size; openpty's is 0x0, where tqdm draws nothing at all.
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    out = open(stdout_to, "wb") if stdout_to is not None else None
    try:
        proc = subprocess.Popen(argv, cwd=cwd, env=cli_env(), stdin=slave, stdout=out or slave, stderr=slave, close_fds=True)
    finally:
        os.close(slave)
        if out is not None:
            out.close()
    shown = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not select.select([master], [], [], 1.0)[0]:
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal (it exited)
                break
            if not chunk:
                break
            shown += chunk
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    return code, shown.decode("utf-8", "replace")


def test_progress_bar_on_a_terminal_then_summary(repo: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = repo.root
    monkeypatch.chdir(root)
    cmfrun.cmf_init(type="local", path=str(tmp_path / "remote"))
    c = cmfrun.Cmf(filepath="mlmd", pipeline_name="p")
    c.create_context("s")
    c.create_execution("S")
    for i in range(40):
        repo.write(f"d/f{i:02d}.bin", binary=os.urandom(2048))
        c.log_dataset(f"d/f{i:02d}.bin", "output")
    c.finalize()
    n = len(store_files(root / "mlmd", "p"))  # the files plus the Python environment artifact
    cmf_bin = str(Path(PY).parent / "cmf")

    # On a terminal: DVC's bar ("Pushing", counting up to n objects) is drawn, cleared, and then
    # the summary follows on a clean line.
    code, shown = on_terminal(root, [cmf_bin, "artifact", "push", "-p", "p"])
    assert code == 0, shown
    summary = shown.index(f"{n} pushed ({n} objects)")
    bar = shown.rfind("Pushing|")
    assert 0 <= bar < summary and f"/{n} [" in shown[bar:summary] and "\r" in shown[bar:summary], shown[:summary]
    assert "\r" not in shown[summary:].replace("\r\n", "\n")  # the summary itself: plain lines
    assert f"  pushed   d/f07.bin  {md5(root / 'd/f07.bin')}" in shown[summary:]

    # Neither stdout nor stderr a terminal: the summary only, no bar and no control characters.
    shutil.rmtree(tmp_path / "remote")
    proc = subprocess.run([cmf_bin, "artifact", "push", "-p", "p"], cwd=root, env=cli_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert proc.stdout.startswith(f"{n} pushed ({n} objects)") and "\r" not in proc.stdout and "\x1b" not in proc.stdout
    assert len(proc.stdout.splitlines()) == 1 + n

    # stdout into a file, stderr on the terminal: the bar goes to the terminal, the file holds
    # the summary alone (as with `dvc push > log`).
    shutil.rmtree(tmp_path / "remote")
    code, shown = on_terminal(root, [cmf_bin, "artifact", "push", "-p", "p"], stdout_to=tmp_path / "push.log")
    log_text = (tmp_path / "push.log").read_text()
    assert code == 0 and "Pushing|" in shown and "pushed" not in shown.replace("Pushing", "")
    assert log_text.startswith(f"{n} pushed ({n} objects)") and "\r" not in log_text and "\x1b" not in log_text

    # Pull: the "Fetching" bar, then the summary.
    shutil.rmtree(root / "d")
    shutil.rmtree(root / ".dvc" / "cache")
    code, shown = on_terminal(root, [cmf_bin, "artifact", "pull", "-p", "p"])
    assert code == 0, shown
    summary = shown.index("file(s) written")
    bar = shown.rfind("Fetching|")
    assert 0 <= bar < summary and f"/{n} [" in shown[bar:summary], shown[:summary]
    assert (root / "d" / "f07.bin").exists()
    shutil.rmtree(root / "d")
    proc = subprocess.run([cmf_bin, "artifact", "pull", "-p", "p"], cwd=root, env=cli_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stderr == "" and "\r" not in proc.stdout, proc.stderr
    assert proc.stdout.startswith("40 file(s) written")
