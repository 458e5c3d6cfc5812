"""Real remote servers for the artifact tests, each on 127.0.0.1 and a free port.

- :class:`HttpStore`: a small HTTP object server (GET/HEAD/PUT, bearer token), the
  shape of an OSDF origin as CMF's ``osdfremote`` uses it through DVC's HTTP remote.
- :func:`s3_server`: moto's S3 server (``ThreadedMotoServer``), used through dvc-s3.
- :class:`Sshd`: Debian's OpenSSH server with a host key and an authorized key made for
  the test run, used through dvc-ssh; or, with ``password_login``, password logins only.
- :class:`ThrowawayUser`: a system user with a random password, made for one test run
  (``useradd`` + ``chpasswd``, root only) and removed after, for sshd's password login.
"""
from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator, Optional

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


# -- HTTP ---------------------------------------------------------------------------------------
class HttpStore:
    """Objects under ``root``; every request must carry ``Authorization: Bearer <token>``."""

    def __init__(self, root: Path, token: str):
        self.root = root
        self.token = token
        self.puts = 0
        store = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep the test output clean
                pass

            def _path(self) -> Optional[Path]:
                rel = self.path.split("?", 1)[0].lstrip("/")
                target = (store.root / rel).resolve()
                return target if str(target).startswith(str(store.root.resolve())) else None

            def _authorized(self) -> bool:
                if self.headers.get("Authorization") == f"Bearer {store.token}":
                    return True
                self._reply(401)
                return False

            def _reply(self, code: int, body: bytes = b"", head: bool = False) -> None:
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if body and not head:
                    self.wfile.write(body)

            def do_HEAD(self) -> None:
                self._get(head=True)

            def do_GET(self) -> None:
                self._get(head=False)

            def _get(self, head: bool) -> None:
                if not self._authorized():
                    return
                target = self._path()
                if target is None or not target.is_file():
                    self._reply(404)
                    return
                self._reply(200, target.read_bytes(), head=head)

            def do_PUT(self) -> None:
                body = self._body()
                if not self._authorized():
                    return
                target = self._path()
                if target is None:
                    self._reply(403)
                    return
                target.parent.mkdir(parents=True, exist_ok=True)
                tmp = target.with_name(target.name + ".part")
                tmp.write_bytes(body)
                os.replace(tmp, target)
                store.puts += 1
                self._reply(201)

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    out = b""
                    while True:
                        size = int(self.rfile.readline().strip().split(b";")[0], 16)
                        if size == 0:
                            self.rfile.readline()
                            return out
                        out += self.rfile.read(size)
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length", "0")))

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# -- S3 -----------------------------------------------------------------------------------------
class S3:
    """moto's S3 server in a thread of this process."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.server.start()
        host, port = self.server.get_host_and_port()
        self.url = f"http://{host}:{port}"

    def make_bucket(self, name: str) -> None:
        import boto3

        client = boto3.client(
            "s3", endpoint_url=self.url, aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
        )
        client.create_bucket(Bucket=name)

    def stop(self) -> None:
        self.server.stop()


# -- SSH ----------------------------------------------------------------------------------------
class Sshd:
    """``sshd -D`` on a free port: host key and client key made here, key login only
    (``password_login``: password login only, checked against /etc/shadow by sshd itself)."""

    def __init__(self, workdir: Path, *, password_login: bool = False) -> None:
        self.dir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        os.chmod(workdir, 0o700)
        for name in ("host_key", "client_key", "other_key"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(workdir / name)], check=True)
        auth = workdir / "authorized_keys"
        auth.write_text((workdir / "client_key.pub").read_text())
        os.chmod(auth, 0o600)
        self.port = free_port()
        self.user = os.environ.get("USER") or __import__("getpass").getuser()
        config = workdir / "sshd_config"
        config.write_text(
            "\n".join(
                [
                    f"Port {self.port}",
                    "ListenAddress 127.0.0.1",
                    f"HostKey {workdir / 'host_key'}",
                    f"AuthorizedKeysFile {'none' if password_login else auth}",
                    f"PidFile {workdir / 'sshd.pid'}",
                    f"PasswordAuthentication {'yes' if password_login else 'no'}",
                    "KbdInteractiveAuthentication no",
                    f"PubkeyAuthentication {'no' if password_login else 'yes'}",
                    "PermitEmptyPasswords no",
                    "PermitRootLogin prohibit-password",
                    "UsePAM no",
                    "StrictModes no",
                    "Subsystem sftp internal-sftp",
                    "",
                ]
            )
        )
        Path("/run/sshd").mkdir(exist_ok=True)  # privilege separation folder (tmpfs: gone after a reboot)
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=subprocess.DEVNULL, stderr=open(workdir / "sshd.log", "wb"))
        wait_port(self.port)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class ThrowawayUser:
    """A system user for one test run: random name and password (``chpasswd`` reads it from
    stdin, so it is never on a command line), a home under a fresh folder in /tmp (pytest's
    are root-only), removed with its home by :meth:`stop`. Root only."""

    def __init__(self) -> None:
        self.name = "cmfpw" + secrets.token_hex(4)
        self.password = "pw-" + secrets.token_urlsafe(18)
        self.base = Path(tempfile.mkdtemp(prefix="cmfrun-sshpw-"))
        os.chmod(self.base, 0o755)  # the user must reach its home and store below
        self.home = self.base / "home"
        subprocess.run(
            ["useradd", "--create-home", "--home-dir", str(self.home), "--shell", "/bin/sh", "--user-group", self.name],
            check=True, capture_output=True,
        )
        try:
            subprocess.run(["chpasswd"], input=f"{self.name}:{self.password}\n", text=True, check=True, capture_output=True)
        except BaseException:
            self.stop()
            raise
        self.uid = pwd.getpwnam(self.name).pw_uid

    def stop(self) -> None:
        # --force: an sshd session of this test process may still be open (the SSH client's
        # connection closes when it is garbage-collected); the user goes regardless.
        proc = subprocess.run(["userdel", "--force", "--remove", self.name], capture_output=True, text=True)
        shutil.rmtree(self.base, ignore_errors=True)
        if proc.returncode not in (0, 12):  # 12: the home was already gone
            raise RuntimeError(f"userdel {self.name} failed ({proc.returncode}): {proc.stderr.strip()}")


def servers_iter(obj: Any) -> Iterator[Any]:  # pragma: no cover - helper for fixtures
    try:
        yield obj
    finally:
        obj.stop()
