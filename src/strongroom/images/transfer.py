"""Backing up an ImageStream's internal images into the location's registry, and restoring them.

``ImageBackup`` copies every internal image of an ImageStream (see
``imagestreams``) from the cluster's internal registry into the backup
location's registry (a running ``LocationRegistry``), under
``<namespace>/<imagestream>@<digest>``. Work is saved three ways:

* across runs: an image whose manifest the backup registry already holds in
  that repository (``ImageCopier.exists``) is not copied again, and is
  reported as already present; a registry stores a manifest only once all of
  its blobs are in, so a manifest that is there means an image that is whole;
* within a run: an image already copied into another repository of the
  backup registry (the same base image under two ImageStreams) is copied from
  there, so its layers are mounted across repositories instead of being read
  from the cluster again;
* always: the registry uploads no blob it already has.

``ImageRestore`` copies them back into the target cluster's internal registry
under the target namespace (by digest, then, as OADP does, each tag's history
oldest first so that OpenShift's registry records the tags and their newest
image), and returns the ImageStream rewritten to point at them by digest.

Partial failure is data: an image that cannot be copied or verified becomes a
failed result with its message, the others go on. Copies run as asyncio
subprocesses, at most ``concurrency`` at once per ``ImageBackup`` or
``ImageRestore``, however many ImageStreams are handed to it at the same time.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Awaitable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from strongroom.errors import StrongroomError
from strongroom.images.copy import ImageCopier, RegistryEndpoint
from strongroom.images.imagestreams import (
    ImageReference,
    ImageStreamImages,
    InternalImage,
    backup_reference,
    backup_repository,
    internal_images,
    rewrite_for_restore,
)

__all__ = [
    "ImageBackup",
    "ImageRestore",
    "ImageResult",
    "ImageStreamResult",
    "Outcome",
    "RestoredImageStream",
]

_log = logging.getLogger(__name__)

DEFAULT_CONCURRENCY = 4

T = TypeVar("T")


class Outcome(enum.StrEnum):
    """What happened to one image."""

    COPIED = "copied"
    PRESENT = "already present"
    FAILED = "failed"


@dataclass(frozen=True)
class ImageResult:
    """One copy: the image (by digest), where from and where to, and how it went."""

    digest: str
    source: str
    destination: str
    outcome: Outcome
    tags: tuple[str, ...] = ()
    error: str | None = None


@dataclass(frozen=True)
class ImageStreamResult:
    """The images of one ImageStream: one result per image, and what could not be considered at all."""

    namespace: str
    name: str
    images: tuple[ImageResult, ...] = ()
    warnings: tuple[str, ...] = ()

    def _with(self, outcome: Outcome) -> tuple[ImageResult, ...]:
        return tuple(result for result in self.images if result.outcome is outcome)

    @property
    def copied(self) -> tuple[ImageResult, ...]:
        return self._with(Outcome.COPIED)

    @property
    def present(self) -> tuple[ImageResult, ...]:
        return self._with(Outcome.PRESENT)

    @property
    def failed(self) -> tuple[ImageResult, ...]:
        return self._with(Outcome.FAILED)

    @property
    def errors(self) -> list[str]:
        """One message per failed copy, naming the image (the results' messages)."""
        return [result.error or f"{result.source}: failed" for result in self.failed]


@dataclass(frozen=True)
class RestoredImageStream(ImageStreamResult):
    """A restore's results, the tag pushes after the images, and the ImageStream to create."""

    tag_results: tuple[ImageResult, ...] = ()
    imagestream: dict[str, Any] = field(default_factory=dict)

    @property
    def errors(self) -> list[str]:
        tag_errors = [
            r.error or f"{r.destination}: failed" for r in self.tag_results if r.outcome is Outcome.FAILED
        ]
        return [*super().errors, *tag_errors]


class _Transfer:
    """What backup and restore share: the copier, both endpoints and the bound on parallel copies."""

    def __init__(
        self,
        copier: ImageCopier,
        *,
        source: RegistryEndpoint,
        destination: RegistryEndpoint,
        internal_hosts: Iterable[str],
        concurrency: int,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._copier = copier
        self._source = source
        self._destination = destination
        self._hosts = frozenset(host.lower() for host in internal_hosts)
        self._slots = asyncio.Semaphore(concurrency)
        copier.register(source)
        copier.register(destination)

    async def _bounded(self, work: Awaitable[T]) -> T:
        """``work`` once a slot is free (the coroutine starts only then)."""
        async with self._slots:
            return await work

    async def _copy_unless_present(
        self,
        image: InternalImage,
        source: ImageReference,
        destination: ImageReference,
        what: str,
        *,
        display_source: ImageReference | None = None,
    ) -> ImageResult:
        shown = str(display_source or source)

        def result(outcome: Outcome, error: str | None = None) -> ImageResult:
            return ImageResult(image.digest, shown, str(destination), outcome, image.tags, error)

        try:
            if await self._copier.exists(destination):
                return result(Outcome.PRESENT)
        except StrongroomError as exc:
            # Not knowing is no reason to give up: the copy says what is wrong, or repairs it.
            _log.debug("%s: could not tell whether %s is there: %s", what, destination, exc)
        try:
            await self._copier.copy(source, destination, expected_digest=image.digest)
        except StrongroomError as exc:
            _log.warning("%s: image %s: %s", what, shown, exc)
            return result(Outcome.FAILED, f"image {shown} of {what}: {exc}")
        return result(Outcome.COPIED)


class ImageBackup(_Transfer):
    """Copies ImageStreams' internal images from ``source`` (the internal registry, as reachable from
    here) into ``destination`` (the location's registry: ``LocationRegistry.endpoint``).

    ``internal_hosts`` adds hosts that count as the internal registry; each
    ImageStream's own repository hosts always do. One instance serves a whole
    backup run: its bound on parallel copies and its memory of what is
    already stored span every ImageStream handed to it.
    """

    def __init__(
        self,
        copier: ImageCopier,
        *,
        source: RegistryEndpoint,
        destination: RegistryEndpoint,
        internal_hosts: Iterable[str] = (),
        concurrency: int = DEFAULT_CONCURRENCY,
    ) -> None:
        super().__init__(
            copier,
            source=source,
            destination=destination,
            internal_hosts=internal_hosts,
            concurrency=concurrency,
        )
        # Backup-registry references of this run, by digest: a later repository copies from there.
        self._stored: dict[str, ImageReference] = {}
        # One task per backup-registry reference, so an image is never copied twice at once.
        self._tasks: dict[str, asyncio.Task[ImageResult]] = {}

    async def backup(self, imagestream: Mapping[str, Any]) -> ImageStreamResult:
        """Copy every internal image of ``imagestream``; a result per image, never an exception for one."""
        found = internal_images(imagestream, self._hosts)
        results = await asyncio.gather(*(self._image(found, image) for image in found.images))
        outcome = ImageStreamResult(found.namespace, found.name, tuple(results), found.warnings)
        _log.info(
            "internal images of imagestream %s/%s: %d copied, %d already present, %d failed",
            found.namespace,
            found.name,
            len(outcome.copied),
            len(outcome.present),
            len(outcome.failed),
        )
        return outcome

    async def _image(self, found: ImageStreamImages, image: InternalImage) -> ImageResult:
        destination = backup_reference(self._destination.host, found.namespace, found.name, image.digest)
        key = str(destination)
        task = self._tasks.get(key)
        if task is None:
            task = asyncio.ensure_future(self._bounded(self._store(found, image, destination)))
            self._tasks[key] = task
        return await task

    async def _store(
        self, found: ImageStreamImages, image: InternalImage, destination: ImageReference
    ) -> ImageResult:
        internal = image.source.at(self._source.host)
        stored = self._stored.get(image.digest)
        source = stored if stored is not None and stored != destination else internal
        what = f"imagestream {found.namespace}/{found.name}"
        result = await self._copy_unless_present(
            image, source, destination, what, display_source=image.source
        )
        if result.outcome is Outcome.FAILED and source is not internal:
            # The earlier copy went missing meanwhile: read the cluster's registry after all.
            result = await self._copy_unless_present(
                image, internal, destination, what, display_source=image.source
            )
        if result.outcome is not Outcome.FAILED:
            self._stored.setdefault(image.digest, destination)
        return result


class ImageRestore(_Transfer):
    """Copies ImageStreams' images from ``source`` (the location's registry) into ``destination`` (the
    target cluster's internal registry, as reachable from here) and rewrites the ImageStreams.

    ``target_registry`` is the internal registry's host as the target cluster's
    pods name it (default: ``destination.host``), ``public_registry`` its route
    host if any; ``internal_hosts`` adds hosts of the source cluster's internal
    registry. With ``push_tags`` every tag is pushed too, its history oldest
    first, so OpenShift's registry records the tags as they were.
    """

    def __init__(
        self,
        copier: ImageCopier,
        *,
        source: RegistryEndpoint,
        destination: RegistryEndpoint,
        target_registry: str | None = None,
        public_registry: str | None = None,
        internal_hosts: Iterable[str] = (),
        concurrency: int = DEFAULT_CONCURRENCY,
        push_tags: bool = True,
    ) -> None:
        super().__init__(
            copier,
            source=source,
            destination=destination,
            internal_hosts=internal_hosts,
            concurrency=concurrency,
        )
        self._target_registry = target_registry or destination.host
        self._public_registry = public_registry
        self._push_tags = push_tags

    async def restore(
        self,
        imagestream: Mapping[str, Any],
        target_namespace: str | None = None,
        *,
        namespace_mapping: Mapping[str, str] | None = None,
    ) -> RestoredImageStream:
        """Copy the ImageStream's images into ``target_namespace`` (default: its own) and rewrite it."""
        found = internal_images(imagestream, self._hosts)
        namespace = target_namespace or found.namespace
        repository = ImageReference(self._destination.host, backup_repository(namespace, found.name))
        what = f"imagestream {found.namespace}/{found.name} (restored into {namespace})"

        async def one(image: InternalImage) -> ImageResult:
            source = backup_reference(self._source.host, found.namespace, found.name, image.digest)
            return await self._copy_unless_present(image, source, repository.by_digest(image.digest), what)

        results = await asyncio.gather(*(self._bounded(one(image)) for image in found.images))
        restored = {result.digest for result in results if result.outcome is not Outcome.FAILED}
        tag_results: list[ImageResult] = []
        if self._push_tags:
            pushes = [
                self._bounded(self._push_tag(repository, tag, history, restored, what))
                for tag, history in found.tag_history.items()
            ]
            for pushed in await asyncio.gather(*pushes):
                tag_results.extend(pushed)
        rewritten = rewrite_for_restore(
            imagestream,
            target_registry=self._target_registry,
            target_namespace=namespace,
            public_registry=self._public_registry,
            hosts=self._hosts,
            namespace_mapping=namespace_mapping,
        )
        outcome = RestoredImageStream(
            namespace,
            found.name,
            tuple(results),
            found.warnings,
            tag_results=tuple(tag_results),
            imagestream=rewritten,
        )
        _log.info(
            "internal images of imagestream %s/%s restored into %s: %d copied, %d already present, %d failed",
            found.namespace,
            found.name,
            namespace,
            len(outcome.copied),
            len(outcome.present),
            len(outcome.failed),
        )
        return outcome

    async def _push_tag(
        self,
        repository: ImageReference,
        tag: str,
        history: tuple[str, ...],
        restored: set[str],
        what: str,
    ) -> list[ImageResult]:
        """Point ``tag`` at each image of its history in turn, oldest first: the newest ends up current."""
        results = []
        destination = ImageReference(repository.registry, repository.repository, tag=tag)
        for digest in reversed(history):
            source = repository.by_digest(digest)
            if digest not in restored:
                continue
            try:
                await self._copier.copy(source, destination, expected_digest=digest)
            except StrongroomError as exc:
                _log.warning("%s: tag %s: %s", what, tag, exc)
                error = f"tag {tag} of {what} (image {digest}): {exc}"
                results.append(
                    ImageResult(digest, str(source), str(destination), Outcome.FAILED, (tag,), error)
                )
                break
            results.append(ImageResult(digest, str(source), str(destination), Outcome.COPIED, (tag,)))
        return results
