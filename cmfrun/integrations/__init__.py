"""Integrations with other metadata systems: graph databases, ArangoML-style entities, OpenLineage."""
from typing import List

__all__: List[str] = []
