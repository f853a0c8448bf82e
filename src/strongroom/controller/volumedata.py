"""The server's side of volume data: file-system backup repositories, volume snapshot locations, internal images."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from strongroom.backup.volumes import LocationRepositories
from strongroom.controller.context import ServerContext
from strongroom.controller.locations import Locations
from strongroom.errors import NotFoundError, StrongroomError
from strongroom.images.settings import ImagesSettings
from strongroom.model.oadp import DefaultPlugin
from strongroom.snapshots.native import (
    NativeLocation,
    UnsupportedProvider,
    VolumeSnapshotter,
    choose_locations,
    snapshotter_for,
)
from strongroom.volumes.location import RepositoryLocation
from strongroom.volumes.repository import Repositories, RepositoryResources

__all__ = ["SnapshotChoice", "SnapshotLocations", "VolumeData"]

OPENSHIFT_PLUGIN = DefaultPlugin.OPENSHIFT.value


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
        self.snapshot_locations = SnapshotLocations(ctx, locations)

    async def location(self, location: Mapping[str, Any]) -> RepositoryLocation:
        """The location as the repositories address it, with its credentials."""
        return RepositoryLocation.from_location(location, await self._locations.credentials(location))

    async def for_backup(self, location: Mapping[str, Any]) -> LocationRepositories:
        return LocationRepositories(self.repositories, await self.location(location))

    async def images(self, location: Mapping[str, Any]) -> ImagesSettings | None:
        """Where a backup's or restore's internal images go, when the openshift plugin is enabled."""
        if not await self.openshift_plugin():
            return None
        return await self.image_storage(location)

    async def image_storage(self, location: Mapping[str, Any]) -> ImagesSettings:
        """The location's image registry settings, whether or not the plugin is enabled (deletion)."""
        return ImagesSettings(
            location=location,
            credentials=await self._locations.credentials(location),
            internal_registry=await self._internal_registry(),
            scratch_dir=(self._ctx.config.workdir or Path(tempfile.gettempdir())) / "images",
        )

    async def registry_idle(self) -> bool:
        """No Backup or Restore of this namespace is running: nothing writes to a location's registry."""
        ctx = self._ctx
        for res in (ctx.resources.backups, ctx.resources.restores):
            for item in await ctx.list(res):
                if (item.get("status") or {}).get("phase") == "InProgress":
                    return False
        return True

    async def openshift_plugin(self) -> bool:
        """The server's flag, or a DataProtectionApplication of its namespace listing the openshift plugin."""
        if self._ctx.config.openshift_plugin:
            return True
        for dpa in await self._ctx.list(self._ctx.resources.dpas):
            velero = ((dpa.get("spec") or {}).get("configuration") or {}).get("velero") or {}
            if OPENSHIFT_PLUGIN in (velero.get("defaultPlugins") or []):
                return True
        return False

    async def _internal_registry(self) -> str | None:
        """The internal registry's host as OpenShift publishes it (images.config.openshift.io/cluster)."""
        kube = self._ctx.kube
        images = (await kube.discover()).find("config.openshift.io", "images")
        if images is None:
            return None
        config = await kube.get(images, "cluster")
        host = ((config or {}).get("status") or {}).get("internalRegistryHostname")
        return str(host) if host else None


@dataclass
class SnapshotChoice:
    """The volume snapshot locations of one backup: their names, snapshotters, and what is wrong."""

    names: list[str] = field(default_factory=list)
    """What the Backup records in ``spec.volumeSnapshotLocations``."""
    locations: list[NativeLocation] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    """Validation errors: the backup fails validation."""


class SnapshotLocations:
    """The VolumeSnapshotLocations of the server's namespace and their snapshotters."""

    def __init__(self, ctx: ServerContext, locations: Locations) -> None:
        self._ctx = ctx
        self._locations = locations

    async def choose(self, named: Sequence[str]) -> SnapshotChoice:
        """The backup's locations by Velero's rules, each with its snapshotter (built with its credentials)."""
        ctx = self._ctx
        available = await ctx.list(ctx.resources.snapshot_locations)
        chosen, errors = choose_locations(named, available, dict(ctx.config.default_snapshot_locations))
        choice = SnapshotChoice(errors=errors)
        for location in chosen:
            name = str(location["metadata"]["name"])
            choice.names.append(name)
            try:
                snapshotter = await self._snapshotter_of(location)
            except UnsupportedProvider as exc:
                choice.warnings.append(str(exc))
                continue
            except StrongroomError as exc:
                choice.errors.append(f"volume snapshot location {name}: {exc}")
                continue
            provider = str((location.get("spec") or {}).get("provider") or "")
            choice.locations.append(NativeLocation(name, provider, snapshotter))
        return choice

    async def snapshotter(self, location: str) -> VolumeSnapshotter:
        """The snapshotter of a location by name (restore, deletion); NotFoundError when it is gone."""
        found = await self._ctx.get(self._ctx.resources.snapshot_locations, location)
        if found is None:
            raise NotFoundError(
                f"volume snapshot location {location} does not exist in namespace {self._ctx.namespace}",
                hint="recreate the VolumeSnapshotLocation (in a DataProtectionApplication: "
                "spec.snapshotLocations) with the name the backup recorded",
            )
        return await self._snapshotter_of(found)

    async def _snapshotter_of(self, location: Mapping[str, Any]) -> VolumeSnapshotter:
        return snapshotter_for(location, await self._locations.credentials(location))
