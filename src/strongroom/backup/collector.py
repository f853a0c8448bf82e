"""Collect a backup's items from the cluster and stream them into the tarball.

One paginated LIST per resource type (per included namespace when the
backup names its namespaces), never a GET per item, and never the whole
cluster in memory: pages flow through a short queue into the one thread
that compresses them into ``<B>.tar.gz``. A few types are listed at once so
that the many small types of a cluster cost one round trip each in
parallel, not in sequence.

Velero's rules decide what is kept: the namespace, resource and label
filters; cluster-scoped types wholesale only when the backup covers the
whole cluster (or ``includeClusterResources`` says so); otherwise only the
cluster-scoped items the namespaced ones need (their namespaces, the
persistent volumes bound to their claims, the definitions of their custom
resources); and never an item labelled ``velero.io/exclude-from-backup=true``.
One type that cannot be listed, or one item that cannot be written, is an
error in the results and the run goes on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from strongroom.archive import ArchiveError, BackupWriter, Results
from strongroom.archive.runlog import RunLog
from strongroom.errors import StrongroomError
from strongroom.kube import KubeClient
from strongroom.model.resources import ApiResource

if TYPE_CHECKING:
    from strongroom.backup.volumes import VolumeBackups

__all__ = ["BackupScope", "CollectResult", "Collector"]

_log = logging.getLogger(__name__)

EXCLUDE_LABEL: Final = "velero.io/exclude-from-backup"
NAMESPACES: Final = "namespaces"
PERSISTENT_VOLUMES: Final = "persistentvolumes"
PERSISTENT_VOLUME_CLAIMS: Final = "persistentvolumeclaims"
CRDS: Final = "customresourcedefinitions.apiextensions.k8s.io"
# Types whose items are pulled in by the namespaced items that need them.
_PULLED_IN: Final = frozenset({NAMESPACES, PERSISTENT_VOLUMES, CRDS})
_QUEUE_PAGES: Final = 4
_PARALLEL_TYPES: Final = 12
_PAGE_SIZE: Final = 500


@dataclass(frozen=True)
class BackupScope:
    """What a backup selects, resolved against the cluster's resource types."""

    namespace_included: Callable[[str], bool]
    # Whether a type's items are collected directly (the tri-state cluster rule included).
    resource_included: Callable[[ApiResource], bool]
    # Whether a type's items may come in because included items need them.
    additional_allowed: Callable[[ApiResource], bool]
    label_matches: Callable[[Mapping[str, str]], bool]
    # Namespaces named one by one: namespaced types are listed one namespace at a time, as Velero does.
    explicit_namespaces: tuple[str, ...] | None = None
    # A single label selector the API server can apply itself.
    server_selector: str | None = None
    # Whether a label selector (or or-selectors) narrows the backup at all.
    label_filtered: bool = False
    # group-resource -> "ns/name" (or "name") in the order to write them first.
    ordered_resources: Mapping[str, Sequence[str]] = field(default_factory=dict)


@dataclass
class CollectResult:
    items: int = 0
    listed: int = 0
    resources: dict[str, int] = field(default_factory=dict)
    namespaces: set[str] = field(default_factory=set)


@dataclass
class _Page:
    resource: ApiResource
    items: list[dict[str, Any]]


class Collector:
    """One backup's walk through the cluster; writes into ``writer`` and records into ``results``."""

    def __init__(
        self,
        kube: KubeClient,
        writer: BackupWriter,
        scope: BackupScope,
        results: Results,
        log: RunLog,
        *,
        progress: Callable[[int, int], None] | None = None,
        page_size: int = _PAGE_SIZE,
        volumes: VolumeBackups | None = None,
    ) -> None:
        self._kube = kube
        self._volumes = volumes
        self._writer = writer
        self._scope = scope
        self._results = results
        self._log = log
        self._progress = progress
        self._page_size = page_size
        self._outcome = CollectResult()
        self._needed: dict[str, set[str]] = {kind: set() for kind in _PULLED_IN}
        self._queue: asyncio.Queue[_Page | None] = asyncio.Queue(_QUEUE_PAGES)
        self._namespace_decisions: dict[str, bool] = {}

    async def run(self, resources: Sequence[ApiResource]) -> CollectResult:
        """Back up every listable type of ``resources`` (one entry per type, at its chosen version)."""
        types = [resource for resource in resources if resource.listable]
        namespaced = [
            resource for resource in types if resource.namespaced and self._scope.resource_included(resource)
        ]
        cluster = [resource for resource in types if not resource.namespaced]

        async def produce() -> None:
            await self._produce_all(namespaced)
            if self._volumes is not None:
                # The CSI snapshot objects of the claims just seen, stored as Velero stores them.
                for extra in await self._volumes.extra_items():
                    self._note_needs(_Page(extra.resource, [extra.object]))
                    await self._queue.put(_Page(extra.resource, [extra.object]))
            # Cluster-scoped types come last: only now is it known which of
            # their items the namespaced ones need.
            await self._produce_all([resource for resource in cluster if self._cluster_type_wanted(resource)])
            await self._queue.put(None)

        # If either side fails (the tarball cannot be written, a bug), the
        # other is cancelled rather than left waiting on the queue.
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._consume())
                group.create_task(produce())
        except ExceptionGroup as failed:
            raise failed.exceptions[0] from None
        return self._outcome

    def _cluster_type_wanted(self, resource: ApiResource) -> bool:
        if self._scope.resource_included(resource):
            return True
        return (
            resource.group_resource in _PULLED_IN
            and self._scope.additional_allowed(resource)
            and bool(self._needed[resource.group_resource])
        )

    async def _produce_all(self, resources: Sequence[ApiResource]) -> None:
        limit = asyncio.Semaphore(_PARALLEL_TYPES)

        async def one(resource: ApiResource) -> None:
            async with limit:
                await self._produce(resource)

        await asyncio.gather(*(one(resource) for resource in resources))

    async def _produce(self, resource: ApiResource) -> None:
        name = resource.group_resource
        self._log.info("Listing items", resource=name)
        ordered = name in self._scope.ordered_resources
        held: list[dict[str, Any]] = []
        try:
            for namespace in self._list_namespaces(resource):
                async for page in self._kube.list_pages(
                    resource,
                    namespace=namespace,
                    label_selector=self._server_selector(resource),
                    limit=self._page_size,
                ):
                    self._outcome.listed += len(page)
                    kept = _Page(resource, [item for item in page if self._keep(resource, item)])
                    if self._volumes is not None and kept.items:
                        # Hooks, pod volume backups and CSI snapshots happen before the items are written.
                        kept.items = await self._volumes.process(resource, kept.items)
                    # Noted as soon as the items are kept: the cluster-scoped types
                    # are listed once every namespaced page has passed here.
                    self._note_needs(kept)
                    if ordered:
                        held.extend(kept.items)
                    elif kept.items:
                        await self._queue.put(kept)
        except StrongroomError as exc:
            message = f"error listing items of {name}: {exc.message}"
            self._results.errors.add_velero(message)
            self._log.error(message, resource=name)
            return
        if ordered and held:
            await self._queue.put(_Page(resource, _in_order(held, self._scope.ordered_resources[name])))

    def _list_namespaces(self, resource: ApiResource) -> Sequence[str | None]:
        if resource.namespaced and self._scope.explicit_namespaces is not None:
            return self._scope.explicit_namespaces
        return [None]

    def _server_selector(self, resource: ApiResource) -> str | None:
        # Items pulled in by others are taken whatever their labels, as Velero's
        # additional items are, so their types are filtered here, not by the server.
        if resource.group_resource in _PULLED_IN:
            return None
        return self._scope.server_selector

    def _keep(self, resource: ApiResource, item: dict[str, Any]) -> bool:
        metadata = item.get("metadata") or {}
        labels = metadata.get("labels") or {}
        if labels.get(EXCLUDE_LABEL) == "true":
            return False
        name = resource.group_resource
        if resource.namespaced:
            namespace = metadata.get("namespace") or ""
            included = self._namespace_decisions.get(namespace)
            if included is None:
                included = self._namespace_decisions[namespace] = self._scope.namespace_included(namespace)
            return included and self._scope.label_matches(labels)
        item_name = metadata.get("name") or ""
        if name == NAMESPACES:
            if not self._scope.namespace_included(item_name):
                return False
            if not self._scope.label_filtered:
                return True
            return item_name in self._needed[NAMESPACES] or self._scope.label_matches(labels)
        if self._scope.resource_included(resource):
            return self._scope.label_matches(labels) or item_name in self._needed.get(name, set())
        return item_name in self._needed.get(name, set())

    def _note_needs(self, page: _Page) -> None:
        """The cluster-scoped items a page's items need: their namespaces, volumes and definition."""
        resource = page.resource
        self._needed[NAMESPACES].update(
            namespace for item in page.items if (namespace := (item.get("metadata") or {}).get("namespace"))
        )
        if resource.group_resource == PERSISTENT_VOLUME_CLAIMS:
            self._needed[PERSISTENT_VOLUMES].update(
                volume for item in page.items if (volume := (item.get("spec") or {}).get("volumeName"))
            )
        elif resource.group:
            # A custom resource's definition is named <plural>.<group>; names
            # that match no definition (built-in types) simply find nothing.
            self._needed[CRDS].add(f"{resource.resource}.{resource.group}")

    async def _consume(self) -> None:
        while (page := await self._queue.get()) is not None:
            written = await asyncio.to_thread(self._write_page, page)
            self._outcome.items += written
            if written:
                name = page.resource.group_resource
                self._outcome.resources[name] = self._outcome.resources.get(name, 0) + written
            if self._progress is not None:
                self._progress(self._outcome.items, self._outcome.listed)

    def _write_page(self, page: _Page) -> int:
        resource = page.resource
        written = 0
        logged: list[tuple[str | None, str]] = []
        for item in page.items:
            metadata = item.get("metadata") or {}
            namespace = metadata.get("namespace")
            try:
                self._writer.add(
                    item,
                    group=resource.group,
                    version=resource.version,
                    resource=resource.resource,
                    preferred=resource.preferred,
                )
            except ArchiveError as exc:
                message = f"error backing up item {resource.group_resource} {namespace + '/' if namespace else ''}{metadata.get('name')}: {exc.message}"
                self._results.errors.add(namespace, message)
                self._log.error(
                    message, resource=resource.group_resource, namespace=namespace, name=metadata.get("name")
                )
                if self._writer.aborted:
                    # The tarball itself failed, not this item: the backup cannot go on.
                    raise
                continue
            if namespace:
                self._outcome.namespaces.add(namespace)
            written += 1
            logged.append((namespace, str(metadata.get("name"))))
        self._log.items("Backed up item", resource.group_resource, logged)
        return written


def _in_order(items: list[dict[str, Any]], order: Sequence[str]) -> list[dict[str, Any]]:
    """Velero's ordered resources: the named items first, in the given order, then the rest as listed."""
    position = {entry: index for index, entry in enumerate(order)}

    def key(item: dict[str, Any]) -> int:
        metadata = item.get("metadata") or {}
        namespace = metadata.get("namespace")
        entry = f"{namespace}/{metadata.get('name')}" if namespace else str(metadata.get("name"))
        return position.get(entry, len(position))

    return sorted(items, key=key)
