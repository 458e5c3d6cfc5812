"""``cmf server`` settings: where the store and the data folder are, who may write, how big a body may be."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from cmfrun import errors

#: Default body limit: 256 MiB (a pipeline of 10,000 executions exports to well under that).
DEFAULT_MAX_BODY = 256 * 1024 * 1024
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
DEFAULT_DATA_DIR = "cmf-server-data"

_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 1000**2, "mb": 1000**2, "mib": 1024**2,
          "g": 1000**3, "gb": 1000**3, "gib": 1024**3}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(text: str) -> int:
    """``"256MiB"``, ``"10MB"``, ``"1048576"`` -> bytes; anything else is a :class:`UsageError`."""
    m = _SIZE.match(str(text))
    unit = m.group(2).lower() if m else ""
    if not m or unit not in _UNITS:
        raise errors.UsageError(f"bad size {text!r}: give bytes or a number with KB/MB/GB/KiB/MiB/GiB")
    size = int(float(m.group(1)) * _UNITS[unit])
    if size <= 0:
        raise errors.UsageError(f"bad size {text!r}: must be more than 0 bytes")
    return size


@dataclass(frozen=True)
class ServerSettings:
    """Everything :func:`cmfrun.server.create_app` needs.

    ``store``: a store location (path or URI) the server opens, created if it
    is a missing SQLite file. ``data_dir``: uploaded files (python env, labels,
    tensorboard logs), content-addressed; nothing is ever written outside it.
    ``token``: when set, every write needs ``Authorization: Bearer <token>``,
    and reads too unless ``public_read``. ``token`` is kept out of ``repr``.
    """

    store: str
    data_dir: Path
    token: Optional[str] = field(default=None, repr=False)
    public_read: bool = False
    max_body: int = DEFAULT_MAX_BODY
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT

    def __post_init__(self) -> None:
        if self.token is not None and not self.token.strip():
            raise errors.UsageError("the server token is empty: give a non-empty --token or unset it")
        if self.max_body <= 0:
            raise errors.UsageError("--max-body must be more than 0 bytes")
        if not 0 <= self.port <= 65535:
            raise errors.UsageError(f"bad port {self.port}: use 0-65535")

    @classmethod
    def build(
        cls,
        *,
        store: Optional[str] = None,
        data_dir: Optional[str] = None,
        token: Optional[str] = None,
        public_read: bool = False,
        max_body: Optional[str] = None,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
    ) -> "ServerSettings":
        """Settings from CLI-style strings: the store defaults to ``<data_dir>/mlmd``."""
        data = Path(data_dir or DEFAULT_DATA_DIR).expanduser().absolute()
        return cls(
            store=store or str(data / "mlmd"),
            data_dir=data,
            token=token,
            public_read=public_read,
            max_body=parse_size(max_body) if max_body else DEFAULT_MAX_BODY,
            host=host,
            port=port,
        )


__all__ = ["ServerSettings", "parse_size", "DEFAULT_MAX_BODY", "DEFAULT_HOST", "DEFAULT_PORT", "DEFAULT_DATA_DIR"]
