"""Run journals: atomic files merged into the store, never lost, never twice."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

from cmfrun import journal
from cmfrun.store import connect


def _entry(store: str, *, state: str = "COMPLETE", pid: int = 0, stage: str = "s") -> dict:
    u = str(uuid.uuid1())
    run = {
        "pipeline": "p", "stage": stage, "command": "true", "uuid": u, "execution_type": stage,
        "execution_name": u, "state": state, "properties": {"Exit_Code": 0}, "custom": {"train.lr": 0.1},
        "inputs": [{"path": "a.txt", "md5": "0" * 32, "type": "Dataset"}], "outputs": [],
    }
    e = journal.new_entry(store, run, state=state)
    if pid:
        e["pid"] = pid
    return e


def _write(store_path: Path, entry: dict) -> Path:
    path = journal.journal_dir(str(store_path), store_path.parent) / f"{entry['run']['uuid']}.json"
    journal.write(path, entry)
    return path


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_merge_and_idempotent(tmp_path: Path) -> None:
    db = tmp_path / "mlmd"
    store = connect(db)
    e = _entry(str(db))
    path = _write(db, e)
    assert journal.merge_pending(store) == 1
    assert not path.exists()
    # The same journal again (e.g. a merger crashed after recording): no duplicate.
    _write(db, e)
    journal.merge_pending(store)
    (ex,) = store.executions()
    assert ex.name == e["run"]["uuid"] and ex.custom["train.lr"] == 0.1


def test_running_journal_of_live_process_is_left(tmp_path: Path) -> None:
    db = tmp_path / "mlmd"
    store = connect(db)
    path = _write(db, _entry(str(db), state="RUNNING", pid=os.getpid()))
    assert journal.merge_pending(store) == 0
    assert path.exists() and store.executions() == []


def test_running_journal_of_dead_process_merged_as_failed(tmp_path: Path) -> None:
    db = tmp_path / "mlmd"
    store = connect(db)
    _write(db, _entry(str(db), state="RUNNING", pid=_dead_pid()))
    assert journal.merge_pending(store) == 1
    (ex,) = store.executions()
    assert ex.state == "FAILED"


def test_stale_claim_taken_over_and_bad_journal_set_aside(tmp_path: Path) -> None:
    db = tmp_path / "mlmd"
    store = connect(db)
    path = _write(db, _entry(str(db)))
    claimed = path.with_name(path.name + journal.CLAIM + str(_dead_pid()))
    os.replace(path, claimed)
    bad = path.with_name("broken.json")
    bad.write_text("{not json")
    assert journal.merge_pending(store) == 1
    assert not claimed.exists()
    assert bad.with_name("broken.json" + journal.BAD).exists()
    assert len(store.executions()) == 1


def test_other_store_journals_ignored(tmp_path: Path) -> None:
    db = tmp_path / "mlmd"
    other = tmp_path / "other"
    store = connect(db)
    path = _write(db, _entry(str(other)))  # same folder, different store file
    assert journal.merge_pending(store) == 0
    assert path.exists()


def test_locked_store_not_waited_for(tmp_path: Path) -> None:
    db = tmp_path / "mlmd"
    store = connect(db)
    _write(db, _entry(str(db)))
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from cmfrun.store import connect; s = connect(sys.argv[1]);\n"
         "with s.write_lock():\n    print('locked', flush=True); time.sleep(30)", str(db)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        assert journal.merge_pending(store, wait=False) == 0
    finally:
        holder.kill()
        holder.wait()
    assert journal.merge_pending(store, wait=False) == 1


def test_atomic_write_leaves_no_temp(tmp_path: Path) -> None:
    path = tmp_path / "j" / "x.json"
    journal.write(path, {"a": 1})
    assert json.loads(path.read_text()) == {"a": 1}
    assert sorted(p.name for p in path.parent.iterdir()) == [".gitignore", "x.json"]


def test_store_key_normalises() -> None:
    assert journal.store_key("postgres://u@h/db") == journal.store_key("postgresql://h:5432/db")
    assert journal.store_key("sqlite:///tmp/x") == journal.store_key("/tmp/x")
