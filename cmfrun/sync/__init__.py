"""Sharing metadata between sites: bundles, merge rules, the sync HTTP API and its client.

- :mod:`cmfrun.sync.bundle`: the bundle (CMF's ``dumptojson`` shape), its validation,
  :func:`~cmfrun.sync.bundle.export_bundle` and execution digests.
- :mod:`cmfrun.sync.merge`: :func:`~cmfrun.sync.merge.merge_bundle`, the one set of merge
  rules used by push, pull, import and the server.
- :mod:`cmfrun.sync.api`: the FastAPI router of the sync endpoints (``/api/v1/sync/...``).
- :mod:`cmfrun.sync.client`: the HTTP client of those endpoints.
"""
from __future__ import annotations

from typing import List

__all__: List[str] = []
