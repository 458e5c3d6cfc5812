#!/usr/bin/env python3
"""The cmfrun demo (`make demo`): a real ML pipeline recorded with no code changes.

    python example-get-started/demo.py [FOLDER]

Copies this example to FOLDER (default: ``demo-run/`` at the repository root,
wiped first), makes it a git repository and a DVC project, runs the four-stage
pipeline with ``dvc repro`` (every stage command starts with ``cmfrun --``),
merges ``dvc.lock`` with ``cmf dvc ingest``, runs the explicit-API flavour
(``src/train_explicit.py``), and shows the executions and the model's lineage
back to the raw data. Then it changes one parameter, runs the pipeline again
and shows ``cmf diff`` of the two ``train`` executions.

Every step is a child process (``git``, ``dvc``, ``cmf``, ``python``) found on
PATH with this interpreter's folder first, so the demo uses the ``cmfrun`` of
the virtualenv it runs in. A failing step stops the demo with a non-zero exit
code and a message naming the step.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_DEST = REPO / "demo-run"
#: What is copied from this folder into the demo project.
PROJECT_FILES = ("src", "dvc.yaml", "params.yaml", "requirements.txt", ".gitignore", ".cmfconfig")
#: Marks a folder the demo made, so a re-run may wipe it (and no other folder).
MARKER = ".cmfrun-demo"
PIPELINE = "get-started"
PARAM_SECTION, PARAM_KEY, PARAM_NEW = "train", "n_estimators", 120
BIN = Path(sys.executable).parent  # not resolved: a venv's bin folder, not the base interpreter's


class DemoError(Exception):
    """A step failed; the message says which and why."""


class Demo:
    def __init__(self, dest: Path) -> None:
        self.dest = dest
        self.step_no = 0
        self.env = self._env()

    @staticmethod
    def _env() -> Dict[str, str]:
        env = dict(os.environ)
        env["PATH"] = str(BIN) + os.pathsep + env.get("PATH", "")
        # The demo's settings come from its own .cmfconfig, not from the caller's shell.
        for var in ("CMFRUN_MLMD", "CMFRUN_PIPELINE", "CMFRUN_STAGE", "DVC_STAGE", "DVC_ROOT", "GIT_DIR", "GIT_WORK_TREE"):
            env.pop(var, None)
        env.setdefault("DVC_NO_ANALYTICS", "1")
        # A fixed identity: commits must work on a machine where git has none configured.
        for role in ("AUTHOR", "COMMITTER"):
            env[f"GIT_{role}_NAME"] = "cmfrun demo"
            env[f"GIT_{role}_EMAIL"] = "demo@example.com"
        env["PYTHONUNBUFFERED"] = "1"
        return env

    # -- output ------------------------------------------------------------
    def step(self, title: str) -> None:
        self.step_no += 1
        print(f"\n\033[1m==> {self.step_no}. {title}\033[0m" if sys.stdout.isatty() else f"\n==> {self.step_no}. {title}",
              flush=True)

    def run(self, *argv: str, capture: bool = False, what: Optional[str] = None) -> str:
        """Run one child in the demo folder; its output streams through unless ``capture``."""
        shown = " ".join(shlex.quote(a) for a in argv)
        if not capture:
            print(f"$ {shown}", flush=True)
        try:
            proc = subprocess.run(
                list(argv), cwd=self.dest, env=self.env, text=True,
                stdout=subprocess.PIPE if capture else None, stderr=subprocess.PIPE if capture else None,
            )
        except FileNotFoundError:
            raise DemoError(f"{what or shown}: `{argv[0]}` not found on PATH (looked in {BIN} first)") from None
        if proc.returncode != 0:
            detail = ""
            if capture:
                detail = "\n" + "\n".join(s.strip() for s in (proc.stdout, proc.stderr) if s and s.strip())
            raise DemoError(f"{what or shown}: `{shown}` exited with code {proc.returncode}{detail}")
        return proc.stdout or ""

    # -- steps -------------------------------------------------------------
    def prepare_folder(self) -> None:
        dest = self.dest
        if dest.exists() and not dest.is_dir():
            raise DemoError(f"{dest} is a file; give a folder")
        if dest.exists() and any(dest.iterdir()):
            if not (dest / MARKER).exists():
                raise DemoError(f"{dest} exists and was not made by the demo; give an empty or new folder")
            shutil.rmtree(dest)
        dest.mkdir(parents=True, exist_ok=True)
        (dest / MARKER).write_text("made by example-get-started/demo.py; safe to delete\n")
        for name in PROJECT_FILES:
            src = HERE / name
            if src.is_dir():
                shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(src, dest / name)

    def commit(self, message: str) -> None:
        self.run("git", "add", "-A", capture=True, what="git add")
        self.run("git", "commit", "-q", "-m", message, capture=True, what="git commit")
        print(f"$ git commit -m {shlex.quote(message)}", flush=True)

    def latest_train_execution(self) -> str:
        """The id of the newest `train` execution, read through `cmf execution list --json`."""
        out = self.run("cmf", "execution", "list", "-p", PIPELINE, "-s", "train", "--json", capture=True,
                       what="cmf execution list --json")
        rows = _rows(json.loads(out))
        if not rows:
            raise DemoError("cmf execution list: no `train` execution recorded")
        ids = [_execution_id(r) for r in rows]
        return str(max(ids, key=lambda i: int(i) if str(i).isdigit() else -1))

    def show_unchanged_inputs(self, a: str, b: str) -> None:
        """`cmf diff` shows only what differs; name the inputs that did not (the data)."""
        out = self.run("cmf", "diff", a, b, "--all", "--json", capture=True, what="cmf diff --all --json")
        same = [r for r in _rows(json.loads(out)) if str(r.get("field", "")).startswith("input ") and r.get("same")]
        if same:
            print("Same inputs in both (not shown above):", flush=True)
            for r in same:
                name = str(r["field"])[len("input "):]
                if name.startswith("environment:"):
                    name = "Python environment"
                print(f"  {name:<28} {str(r.get('a', ''))[:12]}", flush=True)

    def change_param(self) -> str:
        params = self.dest / "params.yaml"
        text = params.read_text()
        section = re.search(rf"^{PARAM_SECTION}:\n((?:[ \t]+.*\n|\n)*)", text, re.M)
        if not section:
            raise DemoError(f"params.yaml: no `{PARAM_SECTION}:` section")
        body = section.group(1)
        match = re.search(rf"^(\s+{PARAM_KEY}:\s*)(\S+)", body, re.M)
        if not match:
            raise DemoError(f"params.yaml: no `{PARAM_SECTION}.{PARAM_KEY}`")
        old = match.group(2)
        body = body[: match.start(2)] + str(PARAM_NEW) + body[match.end(2):]
        params.write_text(text[: section.start(1)] + body + text[section.end(1):])
        return old

    def main(self) -> None:
        started = time.monotonic()
        self.step(f"Copy the example to {self.dest}")
        self.prepare_folder()

        self.step("Create the git repository and the DVC project")
        self.run("git", "init", "-q", "-b", "main")
        self.run("dvc", "init", "-q")

        self.step("Get the raw data (scikit-learn's bundled breast cancer set) and track it with DVC")
        self.run("python", "src/get_data.py", "data/raw.csv")
        self.run("dvc", "add", "-q", "data/raw.csv")
        self.commit("Example pipeline and its raw data")

        self.step("Run the pipeline: dvc repro (each stage is `cmfrun -- python src/<stage>.py ...`)")
        self.run("dvc", "repro")

        self.step("Merge dvc.lock into the store")
        self.run("cmf", "dvc", "ingest")

        self.step("The explicit-API flavour: a CMF-style script (src/train_explicit.py), run as is")
        self.run("python", "src/train_explicit.py", "data/features", "models/explicit.pkl")
        self.commit("First run")

        self.step("What ran: the pipeline's executions")
        self.run("cmf", "execution", "list", "-p", PIPELINE)

        self.step("Where the model came from: its lineage back to the raw data")
        self.run("cmf", "lineage", "model.pkl", "--up")
        first_train = self.latest_train_execution()

        self.step(f"Change one parameter: {PARAM_SECTION}.{PARAM_KEY}")
        old = self.change_param()
        print(f"params.yaml: {PARAM_SECTION}.{PARAM_KEY}: {old} -> {PARAM_NEW}", flush=True)

        self.step("Run again: DVC reruns only `train` and `evaluate`")
        self.run("dvc", "repro")
        self.run("cmf", "dvc", "ingest")
        self.commit(f"{PARAM_SECTION}.{PARAM_KEY}={PARAM_NEW}")
        second_train = self.latest_train_execution()
        if second_train == first_train:
            raise DemoError("the second run recorded no new `train` execution")

        self.step(f"What changed between the two `train` executions ({first_train} and {second_train})")
        self.run("cmf", "diff", first_train, second_train)
        self.show_unchanged_inputs(first_train, second_train)

        elapsed = time.monotonic() - started
        store = self.dest / "mlmd"
        activate = BIN / "activate"
        print(f"\nDone in {elapsed:.0f} s.")
        print(f"The metadata store is {store} (ML Metadata SQLite; CMF's own tools read it too).")
        print("Three commands to try next"
              + (f" (after `source {_rel(activate)}`)" if activate.exists() else "") + ":")
        print(f"  cd {_rel(self.dest)}")
        print("  cmf lineage data/raw.csv --down             # everything the raw data fed")
        print("  cmf show model.pkl                          # everything recorded about the model")
        print("  cmf lineage model.pkl --up --format mermaid # the same lineage as a Markdown diagram")


def _rows(data: Any) -> List[Dict[str, Any]]:
    """The list of records in a `--json` answer (a list, or a dict holding one)."""
    if isinstance(data, list):
        return [r for r in data if isinstance(r, dict)]
    if isinstance(data, dict):
        for value in data.values():
            if isinstance(value, list) and all(isinstance(r, dict) for r in value):
                return list(value)
    return []


def _execution_id(row: Dict[str, Any]) -> str:
    for key in ("id", "execution_id", "Execution_id"):
        if key in row:
            return str(row[key])
    raise DemoError(f"cmf execution list --json: no id in {row}")


def _rel(path: Path) -> str:
    """``path`` relative to the current folder when it lies below it, else absolute."""
    try:
        rel = os.path.relpath(path)
    except ValueError:  # another drive (Windows)
        return str(path)
    return str(path) if rel.startswith("..") else rel


def main(argv: Sequence[str]) -> int:
    if len(argv) > 1 or (argv and argv[0] in ("-h", "--help")):
        print(__doc__)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    dest = Path(argv[0]).absolute() if argv else DEFAULT_DEST
    try:
        Demo(dest).main()
    except DemoError as exc:
        print(f"\ndemo: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ndemo: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
