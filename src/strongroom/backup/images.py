"""A backup's internal images: the ImageStreams' images copied into the backup location (the openshift plugin).

When the openshift plugin is enabled, every ImageStream the backup stores
has its internal images copied, before the ImageStream is written, into a
Distribution registry whose storage is the backup location
(``<prefix>/plugins/images``; see :mod:`strongroom.images`). The registry
starts with the first ImageStream that has such images and stops when the
backup ends. An image that cannot be copied or verified is an error of the
ImageStream's namespace (the backup is PartiallyFailed); the ImageStream is
stored all the same, so its other images and every other item are restored.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any, Final

from strongroom.archive import Results
from strongroom.archive.runlog import RunLog
from strongroom.errors import StrongroomError
from strongroom.images import (
    ImageBackup,
    backup_repository,
    internal_hosts,
    internal_images,
)
from strongroom.images.settings import ImagesSettings, registry_endpoint, start_registry

__all__ = ["IMAGESTREAMS", "ImageStreamCopies"]

IMAGESTREAMS: Final = "imagestreams.image.openshift.io"


class ImageStreamCopies:
    """One backup's image copies; :meth:`process` per page of ImageStreams, :meth:`close` at the end."""

    def __init__(self, settings: ImagesSettings, results: Results, log: RunLog) -> None:
        self._settings = settings
        self._results = results
        self._log = log
        self._stack = contextlib.AsyncExitStack()
        self._backup: ImageBackup | None = None
        self._failed_start: str | None = None
        self.copied = 0
        self.present = 0
        self.failed = 0
        self.stored: list[dict[str, str]] = []
        """The images the backup keeps: ``{"repository": "<ns>/<name>", "digest": ...}``, once each."""

    async def process(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for item in items:
            await self._one(item)
        return items

    async def _one(self, imagestream: Mapping[str, Any]) -> None:
        metadata = imagestream.get("metadata") or {}
        namespace, name = str(metadata.get("namespace") or ""), str(metadata.get("name") or "")
        hosts = internal_hosts(imagestream, [self._settings.internal_registry or ""])
        try:
            if not internal_images(imagestream, hosts).images:
                return  # nothing in the internal registry: no registry to start
            backup = await self._copies(hosts)
            if backup is None:
                return
            outcome = await backup.backup(imagestream)
        except StrongroomError as exc:
            self._error(
                namespace, f"the internal images of imagestream {namespace}/{name} were not copied: {exc}"
            )
            return
        self.copied += len(outcome.copied)
        self.present += len(outcome.present)
        self.failed += len(outcome.failed)
        for warning in outcome.warnings:
            self._results.warnings.add(namespace, f"imagestream {namespace}/{name}: {warning}")
            self._log.warning(f"imagestream {namespace}/{name}: {warning}", namespace=namespace, name=name)
        for error in outcome.errors:
            self._error(namespace, error)
        for result in (*outcome.copied, *outcome.present):
            kept = {"repository": backup_repository(outcome.namespace, outcome.name), "digest": result.digest}
            if kept not in self.stored:
                self.stored.append(kept)
        if outcome.images:
            self._log.info(
                f"internal images of imagestream {namespace}/{name}: {len(outcome.copied)} copied, "
                f"{len(outcome.present)} already in the location, {len(outcome.failed)} failed",
                namespace=namespace,
                name=name,
            )

    async def _copies(self, hosts: frozenset[str]) -> ImageBackup | None:
        """The location's registry and the copier, started once; None when the ImageStream names no registry."""
        if self._backup is not None:
            return self._backup
        if self._failed_start is not None:
            raise StrongroomError(self._failed_start)
        host = self._settings.internal_registry or next(iter(sorted(hosts)), None)
        if host is None:
            return None
        settings = self._settings
        try:
            registry, copier = await start_registry(settings, self._stack)
        except StrongroomError as exc:
            self._failed_start = exc.message
            raise
        self._backup = ImageBackup(
            copier,
            source=registry_endpoint(host, settings.service_account_dir),
            destination=registry.endpoint,
            internal_hosts=[host],
        )
        return self._backup

    def _error(self, namespace: str, message: str) -> None:
        self._results.errors.add(namespace, message)
        self._log.error(message, namespace=namespace)

    async def close(self) -> None:
        """Stop the registry and the copier (idempotent)."""
        await self._stack.aclose()
