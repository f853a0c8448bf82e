"""BackupStorageLocations in the server: opening their stores, and keeping their phase true.

A location's credentials live in a Secret of the server's namespace (its
``spec.credential``, else OADP's ``cloud-credentials``/``cloud``); a
location is Available only after the server reached its bucket and found
nothing there that Velero would refuse (invalid top-level directories).
Backups are validated against that phase, so it must be checked when a
location appears or changes, and periodically after.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from strongroom.controller.context import ServerContext, phase_of
from strongroom.controller.logs import register_secret
from strongroom.errors import StorageConfigError, StrongroomError, UsageError
from strongroom.model.duration import parse_duration
from strongroom.model.oadp import DEFAULT_CREDENTIALS_SECRETS
from strongroom.model.velero import format_timestamp, parse_timestamp
from strongroom.storage import (
    Layout,
    ObjectStore,
    StoreCredentials,
    open_store,
    parse_location_credentials,
    provider_kind,
    validate_top_level,
)
from strongroom.storage.catalog import BackupCatalog
from strongroom.volumes.location import RepositoryLocation

__all__ = ["LocationController", "Locations", "is_read_only"]

_log = logging.getLogger(__name__)


def is_read_only(location: Mapping[str, Any]) -> bool:
    return (location.get("spec") or {}).get("accessMode") == "ReadOnly"


class Locations:
    """Reads BackupStorageLocations and opens the store each names."""

    def __init__(self, ctx: ServerContext) -> None:
        self._ctx = ctx

    async def get(self, name: str) -> dict[str, Any] | None:
        return await self._ctx.get(self._ctx.resources.locations, name)

    async def all(self) -> list[dict[str, Any]]:
        return await self._ctx.list(self._ctx.resources.locations)

    async def default_name(self) -> str:
        """The location marked ``default: true``, else the server's default name (Velero's rule)."""
        for location in await self.all():
            if (location.get("spec") or {}).get("default"):
                return str(location["metadata"]["name"])
        return self._ctx.config.default_location

    async def store(self, location: Mapping[str, Any]) -> ObjectStore:
        """The location's object store; StorageConfigError/UsageError when it cannot be opened."""
        # Checked before its Secret is read: a location without provider or bucket says so first.
        parsed = RepositoryLocation.from_location(location)
        credentials = await self.credentials(location)
        return await asyncio.to_thread(
            open_store, parsed.provider, parsed.bucket, parsed.prefix, dict(parsed.config), credentials
        )

    async def credentials(self, location: Mapping[str, Any]) -> StoreCredentials | None:
        """The location's parsed credentials (None for a local store or the provider's own chain)."""
        spec = location.get("spec") or {}
        provider = str(spec.get("provider") or "")
        if provider in ("local", ""):
            return None
        name = location.get("metadata", {}).get("name", "?")
        content, source = await self._credentials(name, spec)
        if content is None:
            return None
        config = {str(k): str(v) for k, v in (spec.get("config") or {}).items()}
        return parse_location_credentials(provider, content, config, source=source)

    async def catalog(self, location: Mapping[str, Any]) -> BackupCatalog:
        return BackupCatalog(await self.store(location), Layout())

    async def _credentials(self, name: str, spec: Mapping[str, Any]) -> tuple[bytes | None, str]:
        credential = spec.get("credential") or {}
        explicit = bool(credential.get("name"))
        secret_name = str(credential.get("name") or self._ctx.config.default_credentials_secret)
        key = str(credential.get("key") or self._ctx.config.default_credentials_key)
        secret = await self._ctx.get(self._ctx.resources.secrets, secret_name)
        if secret is None and not explicit:
            # OADP keeps each provider's credentials in a Secret of its own (cloud-credentials-azure, ...).
            oadp_default = DEFAULT_CREDENTIALS_SECRETS.get(provider_kind(str(spec.get("provider") or "")))
            if oadp_default and oadp_default != secret_name:
                found = await self._ctx.get(self._ctx.resources.secrets, oadp_default)
                if found is not None:
                    secret_name, secret = oadp_default, found
        source = f"key {key!r} of Secret {secret_name!r}"
        if secret is None:
            if explicit:
                raise UsageError(
                    f"location {name}: spec.credential names Secret {secret_name!r}, which does not exist "
                    f"in namespace {self._ctx.namespace}"
                )
            # No credentials at all: the provider's own chain (environment, instance role) applies.
            return None, source
        data = (secret.get("data") or {}).get(key)
        if data is None:
            raise UsageError(f"location {name}: Secret {secret_name!r} has no key {key!r}")
        try:
            content = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise UsageError(f"location {name}: {source} is not valid base64") from exc
        # Whatever happens next, no log line may show what the file holds.
        register_secret(content)
        return content, source


class LocationController:
    """Validates locations: on change, and again once their validation frequency has passed."""

    def __init__(self, ctx: ServerContext, locations: Locations) -> None:
        self._ctx = ctx
        self._locations = locations
        self._lock = asyncio.Lock()

    def _frequency(self, location: Mapping[str, Any]) -> float:
        text = (location.get("spec") or {}).get("validationFrequency")
        if text:
            try:
                return parse_duration(str(text)).total_seconds()
            except ValueError:
                _log.warning(
                    "location %s: invalid validationFrequency %r", location["metadata"]["name"], text
                )
        return self._ctx.config.store_validation_frequency.total_seconds()

    def due(self, location: Mapping[str, Any], now: datetime) -> bool:
        status = location.get("status") or {}
        last = status.get("lastValidationTime")
        if not last or not status.get("phase"):
            return True
        frequency = self._frequency(location)
        if frequency <= 0:  # Velero: a zero frequency turns periodic validation off
            return False
        then = parse_timestamp(last)
        if then is None:
            return True
        return (now - then).total_seconds() >= frequency

    async def reconcile(self, location: Mapping[str, Any], *, force: bool = False) -> None:
        """Check one location if it is due (or ``force``) and record the outcome in its status."""
        if not force and not self.due(location, self._ctx.clock()):
            return
        async with self._lock:
            name = str(location["metadata"]["name"])
            available, message = await self.check(location)
            status: dict[str, Any] = {
                "phase": "Available" if available else "Unavailable",
                "lastValidationTime": format_timestamp(self._ctx.clock()),
                "message": message,
            }
            before = phase_of(location)
            if await self._ctx.patch_status(self._ctx.resources.locations, name, status) is None:
                return
            if self._ctx.metrics is not None:
                self._ctx.metrics.location_checked(name, available)
            if before != status["phase"]:
                level = logging.INFO if available else logging.WARNING
                _log.log(
                    level, "location %s is %s%s", name, status["phase"], f": {message}" if message else ""
                )
                self._ctx.event(
                    location,
                    "Normal" if available else "Warning",
                    "Available" if available else "Unavailable",
                    message or f"BackupStorageLocation {name} is available",
                )

    async def check(self, location: Mapping[str, Any]) -> tuple[bool, str]:
        """Whether the location's store can be reached and holds only what Velero allows."""
        try:
            store = await self._locations.store(location)
            await validate_top_level(store, Layout())
        except StorageConfigError as exc:
            return False, exc.message
        except StrongroomError as exc:
            return False, exc.message
        return True, ""

    async def sweep(self) -> None:
        """One pass over every location, checking the ones that are due."""
        for location in await self._locations.all():
            try:
                await self.reconcile(location)
            except StrongroomError as exc:
                _log.warning("validating location %s failed: %s", location["metadata"]["name"], exc.message)
