"""The server's side of volume data: the file-system backup repositories of its locations."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from strongroom.backup.volumes import LocationRepositories
from strongroom.controller.context import ServerContext
from strongroom.controller.locations import Locations
from strongroom.volumes.location import RepositoryLocation
from strongroom.volumes.repository import Repositories, RepositoryResources

__all__ = ["VolumeData"]


class VolumeData:
    """Opens the repositories of the server's locations (one Repositories, so its locks are shared)."""

    def __init__(self, ctx: ServerContext, locations: Locations) -> None:
        self._ctx = ctx
        self._locations = locations
        self.locations = locations
        scratch = ctx.config.workdir or Path(tempfile.gettempdir())
        self.repositories = Repositories(
            ctx.kube,
            RepositoryResources(ctx.resources.repositories, ctx.resources.secrets),
            ctx.namespace,
            scratch_dir=scratch / "restic",
            clock=ctx.clock,
        )

    async def location(self, location: Mapping[str, Any]) -> RepositoryLocation:
        """The location as the repositories address it, with its credentials."""
        return RepositoryLocation.from_location(location, await self._locations.credentials(location))

    async def for_backup(self, location: Mapping[str, Any]) -> LocationRepositories:
        return LocationRepositories(self.repositories, await self.location(location))
