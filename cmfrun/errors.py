"""The one exception family for user-facing errors.

Every error a user can cause (bad input, a missing file, a bad store URI, a
read-only store) is a :class:`CmfrunError`. The CLI turns it into one line on
stderr and the exit code of its class; library code only raises.

Exit codes (documented in the README):

==== =====================================================
0    success
1    an unexpected failure (a bug): traceback on stderr
2    bad input: options, files, lock files, store URIs
3    the store cannot be used (unreachable, read-only, corrupt, locked)
127  ``cmfrun --``: the program to run was not found
==== =====================================================

A wrapped command's own exit status always wins over these.
"""
from __future__ import annotations


class CmfrunError(Exception):
    """Base class of every user-facing error; ``exit_code`` is what the CLI returns."""

    exit_code = 2


class UsageError(CmfrunError):
    """Bad arguments to an API call or a command."""


class InputFileError(CmfrunError):
    """A file the user named is missing, unreadable or malformed."""


class LockFileError(InputFileError):
    """A ``dvc.lock`` (or ``dvc.yaml``) that DVC itself would refuse."""


class StoreError(CmfrunError):
    """The metadata store cannot be opened or written."""

    exit_code = 3


class StoreURIError(StoreError):
    """A store location that names no usable store (unknown scheme, a directory, ...)."""

    exit_code = 2


class StoreUnavailableError(StoreError):
    """A server store that cannot be reached, or a store locked for too long."""


class ReadOnlyStoreError(StoreError):
    """A write was attempted on a store opened, or only openable, read-only."""


class CorruptStoreError(StoreError):
    """The store file exists but is not an MLMD SQLite database."""


class NotFoundError(CmfrunError):
    """A pipeline, stage, execution or artifact that the store does not hold."""


class GraphNotConfiguredError(UsageError):
    """``graph=True`` without a configured graph database."""


class GraphError(CmfrunError):
    """The graph database (Neo4j, FalkorDB) cannot be used: unreachable, refused, failing."""

    exit_code = 3


class GraphUnavailableError(GraphError):
    """The graph database cannot be reached."""


class GraphAuthError(GraphError):
    """The graph database refused the credentials (the message never holds the secret)."""


class ProcessError(CmfrunError):
    """A helper process (git, dvc) failed; the message shows argv, code and output."""

    exit_code = 1


class CommandNotFoundError(CmfrunError):
    """The program ``cmfrun --`` was asked to run does not exist."""

    exit_code = 127


__all__ = [
    "CmfrunError",
    "UsageError",
    "InputFileError",
    "LockFileError",
    "StoreError",
    "StoreURIError",
    "StoreUnavailableError",
    "ReadOnlyStoreError",
    "CorruptStoreError",
    "NotFoundError",
    "GraphNotConfiguredError",
    "GraphError",
    "GraphUnavailableError",
    "GraphAuthError",
    "ProcessError",
    "CommandNotFoundError",
]
