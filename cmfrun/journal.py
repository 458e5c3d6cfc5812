"""Per-run journal files merged into the store (filled in by the wrapper issue)."""
from __future__ import annotations

from cmfrun.store import Store


def merge_pending(store: Store, *, wait: bool = True) -> int:
    """Merge every finished run journal waiting beside ``store``; returns how many were merged."""
    return 0


__all__ = ["merge_pending"]
