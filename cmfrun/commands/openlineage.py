"""``cmf openlineage export``: a pipeline's executions as OpenLineage RunEvents, to a file
or an HTTP endpoint. Typed result, no printing.

``openlineage-python`` is an optional extra; without it this raises a
:class:`~cmfrun.errors.UsageError` saying how to install it.

Example::

    res = export_openlineage(open_store("mlmd"), "demo", file="lineage.jsonl")
    res = export_openlineage(store, "demo", url="http://127.0.0.1:5000", api_key=key, since_ms=t)
"""
from __future__ import annotations

import datetime
import re
from typing import Any, Optional

from cmfrun.errors import UsageError
from cmfrun.store import Store

_EPOCH = re.compile(r"^\d{9,16}$")


def _module() -> Any:
    try:
        from cmfrun.integrations import openlineage
    except ImportError as exc:
        raise UsageError(
            f"OpenLineage export needs the openlineage-python client ({exc.name or exc}): "
            "pip install 'cmfrun[openlineage]'"
        ) from None
    return openlineage


def parse_since(text: str) -> int:
    """``--since`` as epoch milliseconds: an ISO 8601 date or time (UTC unless it says
    otherwise), or epoch seconds (10 digits) or milliseconds (13 digits).

    >>> parse_since("1970-01-02")
    86400000
    >>> parse_since("1700000000")
    1700000000000
    """
    value = text.strip()
    if _EPOCH.match(value):
        number = int(value)
        return number * 1000 if number < 10**11 else number
    try:
        moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"--since {text!r}: give an ISO date/time (2026-12-03T05:00:00Z) or epoch seconds/ms") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return int(moment.timestamp() * 1000)


def export_openlineage(
    store: Store,
    pipeline: str,
    *,
    file: Optional[str] = None,
    url: Optional[str] = None,
    api_key: Optional[str] = None,
    since_ms: Optional[int] = None,
    namespace: Optional[str] = None,
) -> Any:
    """Send START and COMPLETE/FAIL events for the pipeline's executions (written at or
    after ``since_ms``) to ``file`` or ``url``; returns the integration's ``SendResult``
    (events, executions, target). Exactly one of ``file`` and ``url``."""
    if bool(file) == bool(url):
        raise UsageError("give exactly one target: -o FILE or --url URL")
    ol = _module()
    items = ol.build_events(store, pipeline, since_ms=since_ms, namespace=namespace)
    if file:
        return ol.send(items, ol.file_transport(file), target=file)
    assert url is not None
    key = ol.api_key_from_env(api_key)
    return ol.send(items, ol.http_transport(url, key), target=ol.safe_url(url))


__all__ = ["parse_since", "export_openlineage"]
