"""Plain, frozen records passed between the layers.

The store module converts MLMD's protobuf objects to and from these; nothing
else sees protobufs. Property values are plain ``int``/``float``/``str``
(MLMD's int, double and string values).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Optional, Tuple, Union

Value = Union[int, float, str]
Props = Mapping[str, Value]

#: Event kinds CMF uses (MLMD enum names).
INPUT = "INPUT"
OUTPUT = "OUTPUT"
INTERNAL_OUTPUT = "INTERNAL_OUTPUT"

#: Execution states kept in MLMD's own ``last_known_state`` field.
RUNNING = "RUNNING"
COMPLETE = "COMPLETE"
FAILED = "FAILED"
CANCELED = "CANCELED"
UNKNOWN = "UNKNOWN"


@dataclass(frozen=True)
class Context:
    """A pipeline or stage context. ``id`` is ``None`` until stored."""

    type: str
    name: str
    properties: Props = field(default_factory=dict)
    custom: Props = field(default_factory=dict)
    id: Optional[int] = None
    create_ms: int = 0
    update_ms: int = 0

    @property
    def custom_properties(self) -> Props:
        """MLMD's name for ``custom`` (so API callers can write ``x.custom_properties`` as with CMF)."""
        return self.custom


@dataclass(frozen=True)
class Artifact:
    """An artifact: ``uri`` is its content hash, ``name`` follows the CMF naming rules."""

    type: str
    name: str
    uri: str
    properties: Props = field(default_factory=dict)
    custom: Props = field(default_factory=dict)
    id: Optional[int] = None
    create_ms: int = 0
    update_ms: int = 0

    @property
    def custom_properties(self) -> Props:
        """MLMD's name for ``custom`` (so API callers can write ``x.custom_properties`` as with CMF)."""
        return self.custom

    @property
    def path(self) -> str:
        """The file path part of the name (CMF: everything before the first ``:``)."""
        return self.name.split(":", 1)[0]


@dataclass(frozen=True)
class Execution:
    """An execution: one run of a stage."""

    type: str
    name: str = ""
    properties: Props = field(default_factory=dict)
    custom: Props = field(default_factory=dict)
    state: str = UNKNOWN
    id: Optional[int] = None
    create_ms: int = 0
    update_ms: int = 0

    @property
    def custom_properties(self) -> Props:
        """MLMD's name for ``custom`` (so API callers can write ``x.custom_properties`` as with CMF)."""
        return self.custom


@dataclass(frozen=True)
class Event:
    """An INPUT/OUTPUT edge between an execution and an artifact."""

    artifact_id: int
    execution_id: int
    kind: str
    path: Tuple[str, ...] = ()
    ms: int = 0


@dataclass(frozen=True)
class Link:
    """An artifact to attach to an execution in one write, with its event kind.

    ``artifact.id`` set means an existing artifact (only the event is added);
    ``path_key`` becomes the event's one path step (CMF sets it on relinks).
    """

    artifact: Artifact
    kind: str
    path_key: Optional[str] = None


__all__ = [
    "Value",
    "Props",
    "Context",
    "Artifact",
    "Execution",
    "Event",
    "Link",
    "INPUT",
    "OUTPUT",
    "INTERNAL_OUTPUT",
    "RUNNING",
    "COMPLETE",
    "FAILED",
    "CANCELED",
    "UNKNOWN",
]
