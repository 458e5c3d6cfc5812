"""A file path whose bytes were recorded under another path still finds its artifact."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import cli_runner

from cmfrun.cli import cmf
from cmfrun.hashing import plain_md5
from cmfrun.recorder import FileRef, RunRecord, new_uuid, record_run
from cmfrun.store import connect


def test_same_bytes_under_another_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model.pkl").write_bytes(b"weights")
    (tmp_path / "model2.pkl").write_bytes(b"weights")
    md5 = plain_md5(tmp_path / "model.pkl")
    store = connect(tmp_path / "mlmd")
    record_run(store, RunRecord("p", "train", "python train.py", new_uuid(), outputs=[FileRef("model.pkl", md5)]))
    result = cli_runner().invoke(cmf, ["show", "model2.pkl", "--json", "-f", str(tmp_path / "mlmd")])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["record"]["uri"] == md5
    missing = cli_runner().invoke(cmf, ["show", "model3.pkl", "-f", str(tmp_path / "mlmd")])
    assert missing.exit_code == 2 and "no execution or artifact" in missing.stderr


def test_whole_doubles_show_without_fraction() -> None:
    from cmfrun.cli.render import key_values, text

    assert text(1795429030523.0) == "1795429030523" and text(0.5) == "0.5" and text(None) == ""
    assert key_values([("End_Time_ms", 1795429030523.0)]).split() == ["End_Time_ms", "1795429030523"]
