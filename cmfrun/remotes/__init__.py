"""Moving artifact bytes between the DVC cache and a DVC remote.

cmfrun names every artifact by its DVC content hash; this package configures
a project's default DVC remote (:mod:`cmfrun.remotes.setup`, ``cmf init``),
puts recorded files into DVC's cache (:mod:`cmfrun.remotes.cache`) and pushes
and pulls exactly the objects a set of artifacts references
(:mod:`cmfrun.remotes.transfer`), all through DVC's own config, cache and
transfer code (dvc, dvc-data), so every remote DVC supports works and the
layout is the one ``dvc push``/``dvc pull`` use.
"""
from __future__ import annotations

from cmfrun.errors import CmfrunError


class RemoteError(CmfrunError):
    """A remote that cannot be used (unreachable, wrong credentials, missing bucket, full disk).

    The message names the remote (name and URL without credentials), never a secret.
    """

    exit_code = 3


class UnsafePathError(CmfrunError):
    """A recorded path that would write outside the target folder (absolute, ``..``, symlink)."""


class PullConflictError(CmfrunError):
    """A file exists at a pull target with other content (``--force`` replaces it)."""


__all__ = ["RemoteError", "UnsafePathError", "PullConflictError"]
