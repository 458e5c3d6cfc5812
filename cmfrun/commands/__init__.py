"""Commands: typed functions between the CLI and the core. They return frozen
dataclasses and never print."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional, Union

if TYPE_CHECKING:  # the cmfrun wrapper imports cmfrun.commands.run: keep ml_metadata off its hot path
    from cmfrun.store import Store


def open_store(uri: Union[str, Path], *, create: bool = False, merge: bool = True) -> "Store":
    """Open the store for a ``cmf`` command, first merging pending ``cmfrun --`` journals
    so every finished run is visible. Readers pass ``create=False``: a wrong path is an
    error, not a new empty store."""
    from cmfrun import journal
    from cmfrun.store import connect

    # A SQLite store that does not exist yet but has runs waiting in its journal folder
    # is made now, so those runs show instead of "store does not exist".
    store = connect(uri, create=create or (merge and journal.waiting_for(str(uri))))
    if merge:
        journal.merge_pending(store)
    return store


__all__ = ["open_store"]
