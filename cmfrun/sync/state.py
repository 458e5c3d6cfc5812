"""Sync marks: when a store last pushed to, or pulled from, a peer (per pipeline).

A mark lets the next push consider only executions updated since (an indexed query)
instead of fingerprinting a whole pipeline. It lives in the store itself, as a
``cmfrun_Store`` context named after a hash of (direction, peer, pipeline), so it follows
the store wherever it goes and needs no file beside a server store. ``--full`` ignores it.
"""
from __future__ import annotations

import hashlib
import logging
from typing import Optional

from cmfrun import errors, schema
from cmfrun.records import Context
from cmfrun.store import Store

log = logging.getLogger(__name__)


def _name(direction: str, peer: str, pipeline: str) -> str:
    digest = hashlib.sha256(f"{direction}\n{peer}\n{pipeline}".encode()).hexdigest()[:32]
    return f"sync:{direction}:{digest}"


def load_mark(store: Store, direction: str, peer: str, pipeline: str) -> Optional[int]:
    """The epoch-ms mark of the last ``direction`` (``push``/``pull``) with ``peer``, or ``None``."""
    ctx = store.context(schema.META_CONTEXT, _name(direction, peer, pipeline))
    if ctx is None:
        return None
    try:
        return int(float(ctx.custom.get("mark_ms", "")))
    except ValueError:
        return None


def save_mark(store: Store, direction: str, peer: str, pipeline: str, mark_ms: int) -> None:
    """Remember a mark; a store that cannot be written just keeps none (the next transfer
    then compares every execution)."""
    name = _name(direction, peer, pipeline)
    existing = store.context(schema.META_CONTEXT, name)
    ctx = Context(
        schema.META_CONTEXT,
        name,
        custom={"mark_ms": float(mark_ms), "peer": peer, "pipeline": pipeline, "direction": direction},
        id=existing.id if existing is not None else None,
    )
    try:
        store.put_context(ctx)
    except errors.StoreError as exc:
        log.info("sync mark not saved: %s", exc)
    except Exception as exc:  # noqa: BLE001 - a lost creation race: the other writer's mark stands
        from cmfrun.store import is_already_exists

        if not is_already_exists(exc):
            raise


__all__ = ["load_mark", "save_mark"]
