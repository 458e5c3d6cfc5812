"""The one module that starts processes.

Capture mode (git, dvc): :func:`capture` runs a helper and turns any failure,
a missing executable included, into one :class:`ProcessError` that shows argv,
exit code and output. Passthrough mode (the user's command, for ``cmfrun --``)
lives here too: inherited stdio, argv list, never ``shell=True``.
"""
from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Mapping, Optional, Sequence, Union

from cmfrun.errors import ProcessError

PathLike = Union[str, Path]


def capture(
    argv: Sequence[str],
    *,
    cwd: Optional[PathLike] = None,
    env: Optional[Mapping[str, str]] = None,
    check: bool = True,
    timeout: Optional[float] = 120,
) -> "subprocess.CompletedProcess[str]":
    """Run a helper program and return its completed process (text stdout/stderr).

    >>> capture(["git", "--version"]).stdout.startswith("git version")
    True
    """
    try:
        proc = subprocess.run(
            list(argv),
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            timeout=timeout,
        )
    except FileNotFoundError:
        raise ProcessError(f"{argv[0]}: program not found (ran {list(argv)!r})") from None
    except subprocess.TimeoutExpired:
        raise ProcessError(f"{list(argv)!r} did not finish within {timeout} s") from None
    if check and proc.returncode != 0:
        raise ProcessError(
            f"{list(argv)!r} exited with {proc.returncode}: "
            + " ".join((proc.stderr or proc.stdout or "").split())[:500]
        )
    return proc


def which(program: str) -> Optional[str]:
    """Full path of ``program`` on PATH (or as given when it contains a ``/``), else ``None``."""
    import shutil

    if os.sep in program:
        return program if os.access(program, os.X_OK) and not os.path.isdir(program) else None
    return shutil.which(program)


@dataclass(frozen=True)
class ChildResult:
    """How a passthrough child ended.

    ``exit_status`` is what a shell would report (a signal death as 128+N);
    ``signal`` is the signal that killed the child (0 if it exited);
    ``interrupted`` is the signal cmfrun itself received and forwarded (0 if none).
    """

    exit_status: int
    signal: int = 0
    interrupted: int = 0
    start_ms: int = 0
    end_ms: int = 0
    peak_rss_kib: int = 0
    cpu_s: float = 0.0
    not_found: bool = False

    @property
    def duration_s(self) -> float:
        return max(0, self.end_ms - self.start_ms) / 1000.0


#: Signals cmfrun forwards to the child; SIGINT is only ignored (the terminal already
#: sends it to the whole foreground process group, child included, as DVC relies on).
_FORWARDED = ("SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2")


def passthrough(
    argv: Sequence[str],
    *,
    cwd: Optional[PathLike] = None,
    env: Optional[Mapping[str, str]] = None,
    log_file: Optional[PathLike] = None,
) -> ChildResult:
    """Run the user's command exactly as a shell would and wait for it.

    Inherited stdin/stdout/stderr (with ``log_file``, stdout and stderr go
    through pipes and are copied to the terminal and to the file), argv list,
    no shell. While the child runs, SIGINT is ignored by this process and
    SIGTERM/SIGHUP/SIGQUIT/SIGUSR1/SIGUSR2 are forwarded to it. Peak RSS and
    CPU time come from ``wait4``. A program that cannot be found or executed
    gives exit status 127 (126 when it exists but is not executable) with
    ``not_found`` set; nothing is raised.

    >>> passthrough(["sh", "-c", "exit 3"]).exit_status
    3
    """
    import signal
    import time

    argv = list(argv)
    start_ms = int(time.time() * 1000)
    received = {"sig": 0}
    child: Dict[str, int] = {}

    def _ignore(signum: int, frame: object) -> None:
        received["sig"] = received["sig"] or signum

    def _forward(signum: int, frame: object) -> None:
        received["sig"] = received["sig"] or signum
        pid = child.get("pid")
        if pid:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    # Python-level handlers (not SIG_IGN) so the child starts with default dispositions.
    saved = {}
    for name, handler in [("SIGINT", _ignore)] + [(n, _forward) for n in _FORWARDED]:
        signum = getattr(signal, name, None)
        if signum is not None:
            try:
                saved[signum] = signal.signal(signum, handler)
            except (ValueError, OSError):  # not the main thread
                pass
    tee: Optional[_Tee] = None
    try:
        if log_file is not None:
            tee = _Tee(log_file)
        try:
            popen = subprocess.Popen(
                argv,
                cwd=cwd,
                env=dict(env) if env is not None else None,
                stdout=tee.out_w if tee else None,
                stderr=tee.err_w if tee else None,
            )
        except (FileNotFoundError, NotADirectoryError):
            return ChildResult(127, start_ms=start_ms, end_ms=int(time.time() * 1000), not_found=True)
        except PermissionError:
            return ChildResult(126, start_ms=start_ms, end_ms=int(time.time() * 1000), not_found=True)
        child["pid"] = popen.pid
        if tee:
            tee.start()
        if received["sig"] and received["sig"] != signal.SIGINT:
            _forward(received["sig"], None)  # arrived before the child existed
        _, status, usage = os.wait4(popen.pid, 0)
        end_ms = int(time.time() * 1000)
        popen.returncode = os.waitstatus_to_exitcode(status)  # the child is reaped: tell Popen
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            code = 128 + sig
        else:
            sig = 0
            code = os.WEXITSTATUS(status)
        return ChildResult(
            exit_status=code,
            signal=sig,
            interrupted=received["sig"],
            start_ms=start_ms,
            end_ms=end_ms,
            peak_rss_kib=int(usage.ru_maxrss),
            cpu_s=round(float(usage.ru_utime + usage.ru_stime), 6),
        )
    finally:
        if tee:
            tee.close()
        for signum, old in saved.items():
            signal.signal(signum, old)


class _Tee:
    """Copies the child's stdout and stderr to ours and to one log file (``--log``)."""

    def __init__(self, path: PathLike):
        import threading

        self._fh = open(path, "ab")
        self._lock = threading.Lock()
        self._out_r, self.out_w = os.pipe()
        self._err_r, self.err_w = os.pipe()
        self._threads = [
            threading.Thread(target=self._pump, args=(self._out_r, 1), daemon=True),
            threading.Thread(target=self._pump, args=(self._err_r, 2), daemon=True),
        ]

    def _pump(self, src: int, dest: int) -> None:
        while True:
            try:
                chunk = os.read(src, 65536)
            except OSError:
                break
            if not chunk:
                break
            try:
                os.write(dest, chunk)
            except OSError:
                pass  # our own stdout closed: the log still gets everything
            with self._lock:
                self._fh.write(chunk)
                self._fh.flush()
        os.close(src)

    def start(self) -> None:
        # Our copies of the write ends must go, or the readers never see EOF.
        os.close(self.out_w)
        os.close(self.err_w)
        self.out_w = self.err_w = -1
        for t in self._threads:
            t.start()

    def close(self) -> None:
        for fd in (self.out_w, self.err_w):
            if fd >= 0:
                os.close(fd)
        self.out_w = self.err_w = -1
        for t in self._threads:
            if t.is_alive():
                t.join()
            elif t.ident is None:  # never started: the child did not start either
                try:
                    os.close(self._out_r if t is self._threads[0] else self._err_r)
                except OSError:
                    pass
        self._fh.close()


__all__ = ["capture", "which", "passthrough", "ChildResult"]
