"""The package type-checks under `mypy --strict` (pyproject's [tool.mypy])."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(importlib.util.find_spec("mypy") is None, reason="mypy not installed (pip install cmfrun[test])")
def test_mypy_strict_clean() -> None:
    proc = subprocess.run([sys.executable, "-m", "mypy", "cmfrun"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
