"""A restore's internal images: copied back into the cluster's registry, the ImageStreams pointed at them.

With the openshift plugin enabled, each ImageStream a restore creates has its
internal images copied from the backup location's registry (started on the
first such ImageStream, stopped when the restore ends) into the target
cluster's internal registry, under the ImageStream's target namespace, each
verified by digest; each tag's history is pushed too, oldest first, as OADP
does. The ImageStream is then created with every internal reference
pointing, by digest, at the copies (``<registry>/<namespace>/<name>@<digest>``),
so the restored application pulls exactly the images it had. An image that
cannot be copied is an error of the target namespace; the ImageStream is
still created.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any, Final

from strongroom.archive import Results
from strongroom.archive.runlog import RunLog
from strongroom.errors import StrongroomError
from strongroom.images import ImageCopier, ImageRestore, LocationRegistry, internal_hosts, internal_images
from strongroom.images.settings import ImagesSettings, registry_endpoint, start_registry

__all__ = ["IMAGESTREAMS", "ImageStreamRestores"]

IMAGESTREAMS: Final = "imagestreams.image.openshift.io"


class ImageStreamRestores:
    """One restore's image copies: :meth:`note` each backed-up ImageStream, :meth:`restore` before its create."""

    def __init__(
        self,
        settings: ImagesSettings,
        results: Results,
        log: RunLog,
        *,
        namespace_mapping: Mapping[str, str] | None = None,
    ) -> None:
        self._settings = settings
        self._results = results
        self._log = log
        self._mapping = dict(namespace_mapping or {})
        self._stack = contextlib.AsyncExitStack()
        self._copier: ImageCopier | None = None
        self._registry: LocationRegistry | None = None
        self._restorers: dict[str, ImageRestore] = {}
        self._failed_start: str | None = None
        # The ImageStreams as backed up: the prepared object has lost its status, which names the images.
        self._backed_up: dict[tuple[str, str], dict[str, Any]] = {}

    def note(self, imagestream: dict[str, Any]) -> None:
        metadata = imagestream.get("metadata") or {}
        self._backed_up[(str(metadata.get("namespace") or ""), str(metadata.get("name") or ""))] = imagestream

    async def restore(
        self, source_namespace: str, source_name: str, prepared: dict[str, Any]
    ) -> dict[str, Any]:
        """The ImageStream to create, its images copied into the target namespace first."""
        original = self._backed_up.get((source_namespace, source_name))
        if original is None:
            return prepared
        target_namespace = str((prepared.get("metadata") or {}).get("namespace") or source_namespace)
        hosts = internal_hosts(original)
        try:
            if not internal_images(original, hosts).images:
                return prepared
            restorer = await self._restorer(hosts)
            outcome = await restorer.restore(original, target_namespace, namespace_mapping=self._mapping)
        except StrongroomError as exc:
            self._error(
                target_namespace,
                f"the internal images of imagestream {source_namespace}/{source_name} were not restored: {exc}",
            )
            return prepared
        for warning in outcome.warnings:
            message = f"imagestream {source_namespace}/{source_name}: {warning}"
            self._results.warnings.add(target_namespace, message)
            self._log.warning(message, namespace=target_namespace, name=source_name)
        for error in outcome.errors:
            self._error(target_namespace, error)
        self._log.info(
            f"internal images of imagestream {source_namespace}/{source_name} restored into {target_namespace}: "
            f"{len(outcome.copied)} copied, {len(outcome.present)} already there, {len(outcome.failed)} failed",
            namespace=target_namespace,
            name=source_name,
        )
        rewritten = outcome.imagestream
        prepared["spec"] = rewritten.get("spec") or {}
        if "status" in prepared and "status" in rewritten:
            prepared["status"] = rewritten["status"]
        return prepared

    async def _restorer(self, hosts: frozenset[str]) -> ImageRestore:
        """The ImageRestore into the target registry: the cluster's published host, else the backed-up one."""
        target = self._settings.internal_registry or next(iter(sorted(hosts)), "")
        if not target:
            raise StrongroomError(
                "the cluster's internal registry is not known (no internalRegistryHostname)"
            )
        found = self._restorers.get(target)
        if found is not None:
            return found
        registry, copier = await self._started()
        restorer = ImageRestore(
            copier,
            source=registry.endpoint,
            destination=registry_endpoint(target, self._settings.service_account_dir),
            target_registry=target,
            internal_hosts=hosts,
        )
        self._restorers[target] = restorer
        return restorer

    async def _started(self) -> tuple[LocationRegistry, ImageCopier]:
        if self._failed_start is not None:
            raise StrongroomError(self._failed_start)
        if self._registry is None or self._copier is None:
            try:
                self._registry, self._copier = await start_registry(self._settings, self._stack)
            except StrongroomError as exc:
                self._failed_start = exc.message
                raise
        return self._registry, self._copier

    def _error(self, namespace: str, message: str) -> None:
        self._results.errors.add(namespace, message)
        self._log.error(message, namespace=namespace)

    async def close(self) -> None:
        await self._stack.aclose()
