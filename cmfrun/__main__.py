"""``python -m cmfrun -- CMD`` runs the wrapper, like the ``cmfrun`` script."""
import os
import sys

# `python -m` puts the current folder first on sys.path: a user's copy.py or json.py
# there would shadow the standard library inside the wrapper. Drop it before importing more.
if sys.path and sys.path[0] in ("", os.getcwd()):
    del sys.path[0]

from cmfrun.cli import run_main  # noqa: E402

sys.exit(run_main())
