"""`cmf artifact push/pull` against real servers on 127.0.0.1: an HTTP object server with a
bearer token (the OSDF path), moto's S3 server through dvc-s3, OpenSSH's sshd through dvc-ssh.

Each round trip runs a real `dvc repro` pipeline through `cmfrun --` (plus a Makefile-style
run and a CMF-API script), pushes, deletes the workspace files and the DVC cache, pulls, and
compares every artifact's DVC hash with the store. Bad input (unreachable server, wrong
credentials, missing bucket) must give one line naming the remote, never its secret, exit 3.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterator, List, Tuple

import pytest

from cmfrun.cli import cmf
from tests.artifact_servers import SSHD, S3, HttpStore, Sshd, ThrowawayUser, free_port
from tests.conftest import REQUIRE_SERVICES, cli_env, cli_runner, git

PY = sys.executable
TOKEN = "tok-3f9a-SECRET-bearer"
S3_SECRET = "moto-SECRET-key-77"


def _env(xdg: Path) -> dict:
    return cli_env(CMFRUN_SYNC="1", XDG_CACHE_HOME=str(xdg), PATH=f"{Path(PY).parent}:{os.environ['PATH']}")


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project after a real `dvc repro` (stage through `cmfrun --`), a Makefile-style
    `cmfrun --in/--model` run and a CMF-API script; no remote yet."""
    root = tmp_path_factory.mktemp("template") / "site"
    root.mkdir()
    env = _env(tmp_path_factory.mktemp("xdg"))

    def sh(*argv: str) -> None:
        proc = subprocess.run(list(argv), cwd=root, env=env, capture_output=True, text=True, timeout=180)
        assert proc.returncode == 0, f"{argv}: {proc.stdout}\n{proc.stderr}"

    git(root, "init", "-q", "-b", "main")
    sh("dvc", "init", "-q")
    (root / "data").mkdir()
    (root / "data" / "raw.csv").write_text("a,b\n" + "".join(f"{i},{i * i}\n" for i in range(200)))
    sh("dvc", "add", "-q", "data/raw.csv")
    (root / "prep.py").write_text(
        "import os\nos.makedirs('data/prep/sub', exist_ok=True)\nt = open('data/raw.csv').read()\n"
        "open('data/prep/a.csv','w').write(t * 2)\nopen('data/prep/sub/b.csv','w').write(t[::-1])\n"
    )
    (root / "train.py").write_text("open('model.pkl','wb').write(bytes(range(256)) * 64)\n")
    (root / "dvc.yaml").write_text(
        "stages:\n  prep:\n    cmd: cmfrun -- python prep.py\n    deps: [prep.py, data/raw.csv]\n    outs: [data/prep]\n"
    )
    git(root, "add", "-A")
    git(root, "commit", "-qm", "pipeline")
    sh("dvc", "repro", "-q")
    sh(PY, "-m", "cmfrun", "--in", "data/prep", "train.py", "--model", "model.pkl", "--", PY, "train.py")
    (root / "notes.txt").write_text("logged by the API\n")
    sh(PY, "-c", "import cmfrun; c = cmfrun.Cmf(filepath='mlmd', pipeline_name='site'); c.create_context('report'); "
       "c.create_execution('Report'); c.log_dataset('notes.txt', 'output'); c.finalize()")
    return root


@pytest.fixture
def site(template: Path, tmp_path: Path) -> Path:
    root = tmp_path / "site"
    shutil.copytree(template, root, symlinks=True)
    return root


def cmf_cli(cwd: Path, monkeypatch: pytest.MonkeyPatch, *args: str) -> Tuple[int, str, str]:
    monkeypatch.chdir(cwd)
    result = cli_runner().invoke(cmf, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def artifacts(root: Path) -> List[Tuple[str, str]]:
    from cmfrun.commands import open_store
    from cmfrun.commands.artifacts import select_artifacts

    return sorted({(a.path, a.uri) for a in select_artifacts(open_store(root / "mlmd"), pipeline="site")})


def round_trip(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """push, push again, delete the workspace data and the cache, pull, compare with the store."""
    from cmfrun.hashing import Hasher

    recorded = artifacts(site)
    assert {p for p, _ in recorded} >= {"data/raw.csv", "data/prep", "model.pkl", "prep.py", "train.py", "notes.txt"}
    code, out, err = cmf_cli(site, monkeypatch, "artifact", "push", "-p", "site", "-j", "4")
    assert code == 0, err
    assert out.startswith(f"{len(recorded)} pushed") and "0 missing" in out
    code, out, err = cmf_cli(site, monkeypatch, "artifact", "push", "-p", "site")
    assert code == 0 and out.startswith(f"0 pushed (0 objects), {len(recorded)} already on the remote"), out + err
    for path, _ in recorded:
        target = site / path
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    shutil.rmtree(site / ".dvc" / "cache")
    code, out, err = cmf_cli(site, monkeypatch, "artifact", "pull", "-p", "site")
    assert code == 0, err
    assert "0 artifact(s) missing" in out
    hasher = Hasher.for_path(site)
    try:
        for path, md5 in recorded:
            assert hasher.hash(site / path).md5 == md5, path
    finally:
        hasher.close()
    assert not list(site.rglob("*.tmp"))


def bad(site: Path, monkeypatch: pytest.MonkeyPatch, remote_name: str, secret: str, *args: str, **env: str) -> str:
    """Run a command (the real console script: DVC's own log handlers write to the real
    stderr) that must fail on the remote: one line, names the remote, no secret, exit 3."""
    proc = subprocess.run([str(Path(PY).parent / "cmf"), *args], cwd=site, env=cli_env(**env), stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=120)
    code, out, err = proc.returncode, proc.stdout, proc.stderr
    assert code == 3, (code, out, err)
    assert err.count("\n") == 1 and err.startswith("cmfrun: error: ") and remote_name in err, err
    assert secret not in out + err
    return err


# -- HTTP (OSDF-style) ---------------------------------------------------------------------------
@pytest.fixture
def http(tmp_path: Path) -> Iterator[HttpStore]:
    srv = HttpStore(tmp_path / "http-objects", TOKEN)
    yield srv
    srv.stop()


def test_http_bearer_round_trip(site: Path, http: HttpStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    token_file = tmp_path / "osdf_token"
    token_file.write_text(TOKEN + "\n")
    code, out, err = cmf_cli(site, monkeypatch, "init", "osdfremote", "--path", f"{http.url}/ns/store", "--access-token", str(token_file))
    assert code == 0 and TOKEN not in out + err + (site / ".dvc" / "config").read_text()
    assert TOKEN in (site / ".dvc" / "config.local").read_text()
    round_trip(site, monkeypatch)
    assert http.puts > 0


def test_http_wrong_token(site: Path, http: HttpStore, monkeypatch: pytest.MonkeyPatch) -> None:
    cmf_cli(site, monkeypatch, "init", "osdfremote", "--path", f"{http.url}/ns/store", "--access-token", "wrong-" + TOKEN)
    bad(site, monkeypatch, "osdf", TOKEN, "artifact", "push", "-p", "site")
    assert http.puts == 0
    shutil.rmtree(site / ".dvc" / "cache")
    bad(site, monkeypatch, "osdf", TOKEN, "artifact", "pull", "-p", "site", "-a", "model.pkl", "-o", str(site / "restore"))
    assert not (site / "restore").exists()


# -- S3 (moto) ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def s3() -> Iterator[S3]:
    srv = S3()
    srv.make_bucket("cmf-artifacts")
    yield srv
    srv.stop()


def test_s3_round_trip(site: Path, s3: S3, monkeypatch: pytest.MonkeyPatch) -> None:
    # Objects from 2 KiB up go alone (parallel parts), as 64 MiB ones do: model.pkl and a file
    # of the data/prep folder are sent before the rest, the folder's listing after its files.
    monkeypatch.setattr("cmfrun.remotes.transfer.LARGE_OBJECT", 2048)
    from cmfrun.remotes import transfer

    pushes: List[List[int]] = []
    real = transfer._push_batches

    def spy(*args: object) -> list:
        batches = real(*args)
        pushes.append([len(b) for b in batches])
        return batches

    monkeypatch.setattr(transfer, "_push_batches", spy)
    code, _, err = cmf_cli(
        site, monkeypatch, "init", "minioS3", "--url", f"s3://cmf-artifacts/{site.parent.name}", "--endpoint-url", s3.url,
        "--access-key-id", "testing", "--secret-key", S3_SECRET,
    )
    assert code == 0, err
    round_trip(site, monkeypatch)
    first = pushes[0]  # model.pkl and data/prep/a.csv at least went alone, then one batch of the rest
    assert len(first) >= 3 and set(first[:-1]) == {1} and first[-1] > 1, pushes


def test_s3_missing_bucket_and_unreachable(site: Path, s3: S3, monkeypatch: pytest.MonkeyPatch) -> None:
    cmf_cli(site, monkeypatch, "init", "minioS3", "--url", "s3://no-such-bucket/x", "--endpoint-url", s3.url,
            "--access-key-id", "testing", "--secret-key", S3_SECRET)
    bad(site, monkeypatch, "minio", S3_SECRET, "artifact", "push", "-p", "site")
    cmf_cli(site, monkeypatch, "init", "minioS3", "--url", "s3://cmf-artifacts/x", "--endpoint-url", f"http://127.0.0.1:{free_port()}",
            "--access-key-id", "testing", "--secret-key", S3_SECRET)
    # botocore retries a refused connection (4 more times by default): once is enough here.
    bad(site, monkeypatch, "minio", S3_SECRET, "artifact", "push", "-p", "site", AWS_MAX_ATTEMPTS="1")


# -- SSH (OpenSSH) --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    if not os.path.exists(SSHD):
        if REQUIRE_SERVICES:
            pytest.fail("sshd is not installed (CI installs openssh-server in .ci/run)")
        pytest.skip("sshd is not installed: apt-get install openssh-server")
    srv = Sshd(tmp_path_factory.mktemp("sshd"))
    yield srv
    srv.stop()


def test_ssh_key_round_trip(site: Path, sshd: Sshd, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = tmp_path / "ssh-store"
    code, _, err = cmf_cli(
        site, monkeypatch, "init", "sshremote", "--path", f"ssh://127.0.0.1{store}", "--user", sshd.user,
        "--port", str(sshd.port), "--keyfile", str(sshd.dir / "client_key"),
    )
    assert code == 0, err
    round_trip(site, monkeypatch)
    assert list((store / "files" / "md5").rglob("*"))  # the objects are on the server's disk


def test_ssh_wrong_key_and_unreachable(site: Path, sshd: Sshd, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cmf_cli(site, monkeypatch, "init", "sshremote", "--path", f"ssh://127.0.0.1{tmp_path}/s", "--user", sshd.user,
            "--port", str(sshd.port), "--keyfile", str(sshd.dir / "other_key"))
    bad(site, monkeypatch, "ssh-storage", "PRIVATE KEY", "artifact", "push", "-p", "site")
    cmf_cli(site, monkeypatch, "init", "sshremote", "--path", f"ssh://127.0.0.1{tmp_path}/s", "--user", sshd.user,
            "--port", str(free_port()), "--keyfile", str(sshd.dir / "client_key"), "--password", "pw-SECRET-1")
    bad(site, monkeypatch, "ssh-storage", "pw-SECRET-1", "artifact", "push", "-p", "site")


@pytest.fixture(scope="module")
def ssh_password_user(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tuple[Sshd, ThrowawayUser]]:
    """sshd taking password logins only, and a throwaway system user with a random password.

    Making a system user needs root and changes the machine's /etc/passwd: done only in CI
    (``CMFRUN_REQUIRE_SERVICES=1``, a throwaway machine, running as root), removed after.
    """
    if not os.path.exists(SSHD):
        if REQUIRE_SERVICES:
            pytest.fail("sshd is not installed (CI installs openssh-server in .ci/run)")
        pytest.skip("sshd is not installed: apt-get install openssh-server")
    if not REQUIRE_SERVICES or os.geteuid() != 0:
        if REQUIRE_SERVICES:
            pytest.fail("the SSH password test needs root in CI (useradd/chpasswd for a throwaway user)")
        pytest.skip("SSH password login needs a throwaway system user (useradd + chpasswd as root): only in CI, "
                    "with CMFRUN_REQUIRE_SERVICES=1 as root")
    user = ThrowawayUser()
    try:
        srv = Sshd(tmp_path_factory.mktemp("sshd-pw"), password_login=True)
    except BaseException:
        user.stop()
        raise
    try:
        yield srv, user
    finally:
        srv.stop()
        user.stop()


def test_ssh_password_round_trip(site: Path, ssh_password_user: Tuple[Sshd, ThrowawayUser], monkeypatch: pytest.MonkeyPatch) -> None:
    """`cmf init sshremote --password` against a real sshd that accepts passwords only: the round
    trip works, and the password is nowhere but .dvc/config.local."""
    srv, user = ssh_password_user
    store = user.home / "store"
    outputs = []
    code, out, err = cmf_cli(
        site, monkeypatch, "init", "sshremote", "--path", f"ssh://127.0.0.1{store}", "--user", user.name,
        "--port", str(srv.port), "--password", user.password,
    )
    assert code == 0, err
    outputs.append(out + err)
    assert user.password in (site / ".dvc" / "config.local").read_text()
    outputs.append("".join(cmf_cli(site, monkeypatch, "init", "show")[1:]))
    round_trip(site, monkeypatch)
    objects = [p for p in (store / "files" / "md5").rglob("*") if p.is_file()]
    assert objects and all(p.stat().st_uid == user.uid for p in objects)  # written by the throwaway user
    log = (srv.dir / "sshd.log").read_text(errors="replace")
    assert f"Accepted password for {user.name}" in log
    # The password: not in anything printed, not in sshd's log, not in any file of the project
    # but the git-ignored .dvc/config.local (the store, .cmfconfig, DVC's config and tmp files
    # included), not in anything git tracks.
    assert user.password not in "".join(outputs) + log
    secret = user.password.encode()
    leaks = [p for p in site.rglob("*") if p.is_file() and not p.is_symlink() and p != site / ".dvc" / "config.local"
             and secret in p.read_bytes()]
    assert leaks == []
    assert git(site, "check-ignore", ".dvc/config.local") == ".dvc/config.local"
    assert subprocess.run(["git", "grep", "-q", "-F", user.password], cwd=site).returncode == 1
    # A wrong password: one line naming the remote, never either password, exit 3.
    cmf_cli(site, monkeypatch, "init", "sshremote", "--path", f"ssh://127.0.0.1{store}", "--user", user.name,
            "--port", str(srv.port), "--password", "wrong-" + user.password)
    err = bad(site, monkeypatch, "ssh-storage", user.password, "artifact", "push", "-p", "site")
    assert "wrong-" not in err


# -- corrupt bytes on the remote --------------------------------------------------------------------
def test_corrupt_remote_object_is_never_written(site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    remote = tmp_path / "remote"
    cmf_cli(site, monkeypatch, "init", "local", "--path", str(remote))
    assert cmf_cli(site, monkeypatch, "artifact", "push", "-p", "site")[0] == 0
    model = dict(artifacts(site))["model.pkl"]
    obj = remote / "files" / "md5" / model[:2] / model[2:]
    os.chmod(obj, 0o644)
    obj.write_bytes(b"tampered")
    (site / "model.pkl").unlink()
    shutil.rmtree(site / ".dvc" / "cache")
    code, _, err = cmf_cli(site, monkeypatch, "artifact", "pull", "-p", "site", "-a", "model.pkl")
    assert code == 3 and "model.pkl" in err and model in err
    assert not (site / "model.pkl").exists() and not list(site.rglob("*.tmp"))
