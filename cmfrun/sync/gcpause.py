"""Python's cyclic garbage collector paused around the bulk steps of a transfer.

Parsing, checking and writing a bundle of 10,000 executions builds ~10^6 small objects
(dicts, tuples, records) that form no reference cycles; meanwhile the cyclic collector
rescans the whole growing heap again and again, about a third of those steps' time.
Reference counting still frees everything; the collector runs again afterwards.
"""
from __future__ import annotations

import contextlib
import gc
import threading
from typing import Iterator

_lock = threading.Lock()
_depth = 0
_resume = False


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic collector for the block (reentrant, and shared by threads: it
    resumes when the last block ends, and only if it was running when the first began)."""
    global _depth, _resume
    with _lock:
        if _depth == 0:
            _resume = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _resume:
                gc.enable()


__all__ = ["gc_paused"]
