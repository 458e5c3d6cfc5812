"""How the server holds its store: one open connection per worker thread.

FastAPI runs plain (``def``) endpoints in a thread pool. MLMD's store object is
not safe to share between threads, and opening a store per request costs a
connection plus a schema check each time (several ms on PostgreSQL), so each
worker thread opens the store once and keeps it. Writers still take the
store's own write lock (the SQLite flock, which also serialises this process's
threads against each other and against ``cmfrun --`` writers of the same
file); PostgreSQL serialises concurrent writers itself.
"""
from __future__ import annotations

import logging
import threading
from typing import Optional

from cmfrun.store import Store, connect

log = logging.getLogger(__name__)


class StoreProvider:
    """Opens ``location`` once per thread; :meth:`open` is the ``open_store`` routers get."""

    def __init__(self, location: str) -> None:
        self.location = location
        self._local = threading.local()

    def create(self) -> None:
        """Open (creating a missing SQLite file) once at startup, so a bad location fails fast."""
        store = connect(self.location, create=True)
        store.close()

    def open(self) -> Store:
        """This thread's store, opened on first use. Shared by the thread's requests: never close it."""
        store: Optional[Store] = getattr(self._local, "store", None)
        if store is None:
            store = connect(self.location, create=False)
            self._local.store = store
        return store

    def open_fresh(self) -> Store:
        """A new connection the caller owns and closes (the sync router closes its store after each request)."""
        return connect(self.location, create=False)

    def discard(self) -> None:
        """Forget this thread's store (after a connection error), so the next request reconnects."""
        store: Optional[Store] = getattr(self._local, "store", None)
        self._local.store = None
        if store is not None:
            try:
                store.close()
            except Exception:  # pragma: no cover - closing a broken connection
                log.debug("closing a discarded store failed", exc_info=True)


__all__ = ["StoreProvider"]
