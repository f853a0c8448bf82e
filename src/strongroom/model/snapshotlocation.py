"""Velero's ``velero.io/v1`` VolumeSnapshotLocation as a typed model.

A VolumeSnapshotLocation names a provider (and its settings) that takes
native volume snapshots; Backups list the ones to use in
``spec.volumeSnapshotLocations``, and the DataProtectionApplication creates
them from ``spec.snapshotLocations``. Modelled like the resources in
:mod:`strongroom.model.velero`.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from strongroom.model.velero import OpenStrEnum, SecretKeySelector, _VeleroModel, _VeleroResource

__all__ = [
    "VolumeSnapshotLocation",
    "VolumeSnapshotLocationPhase",
    "VolumeSnapshotLocationSpec",
    "VolumeSnapshotLocationStatus",
]


class VolumeSnapshotLocationPhase(OpenStrEnum):
    """``status.phase`` of a VolumeSnapshotLocation."""

    AVAILABLE = "Available"
    UNAVAILABLE = "Unavailable"


class VolumeSnapshotLocationSpec(_VeleroModel):
    """Which provider takes the snapshots, and how (``velero.io/v1`` VolumeSnapshotLocationSpec)."""

    provider: str
    """The volume snapshotter plugin, for example aws, azure or gcp."""
    config: dict[str, str] | None = None
    """Provider-specific settings, for example region."""
    credential: SecretKeySelector | None = None
    """The key of a Secret, in the server's namespace, holding the credentials for this location."""


class VolumeSnapshotLocationStatus(_VeleroModel):
    """Whether the location is usable."""

    phase: VolumeSnapshotLocationPhase | None = None
    """Available or Unavailable."""


class VolumeSnapshotLocation(_VeleroResource):
    """A ``velero.io/v1`` VolumeSnapshotLocation: where and how native volume snapshots are taken."""

    KIND: ClassVar[str] = "VolumeSnapshotLocation"

    kind: str = "VolumeSnapshotLocation"
    spec: VolumeSnapshotLocationSpec
    status: VolumeSnapshotLocationStatus = Field(default_factory=VolumeSnapshotLocationStatus)
