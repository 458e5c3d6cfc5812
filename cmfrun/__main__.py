"""``python -m cmfrun -- CMD`` runs the wrapper, like the ``cmfrun`` script."""
import sys

from cmfrun.cli import run_main

sys.exit(run_main())
