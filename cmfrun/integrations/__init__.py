"""Integrations with other metadata systems: graph databases (:mod:`.graph`), ArangoML-style
entities, OpenLineage. Each module reads the store through :class:`~cmfrun.store.Store`'s
public methods and never prints."""
from __future__ import annotations

from typing import List

__all__: List[str] = []
