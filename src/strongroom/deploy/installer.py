"""Applying strongroom's resources to a cluster, and removing them again.

Install is idempotent the way `kubectl apply` is for a user: an object that
is missing is created, one that differs from the rendering is patched (a
JSON merge patch of the rendered fields, so labels, annotations and fields
others add are kept), one that already matches is left alone and reported
``unchanged``. CRDs are applied first and waited for (Established) before
anything else. A namespace that existed before and is not strongroom's is
used but never relabelled, so uninstall will not delete it.

Uninstall follows `velero uninstall`: it removes the workloads, the
permissions and the accounts, then the namespace, then the CRDs. Deleting a
CRD deletes its custom resources (Backup, Restore, ...), but never a file in
object storage: only a DeleteBackupRequest handled by a running server
deletes a backup's files, and this module neither creates one nor imports
anything that can reach storage. Finalizers on strongroom's custom
resources are removed as they are deleted, because the server that would
have processed them is already gone and would otherwise block the deletion
forever.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from strongroom.deploy.manifests import (
    INSTANCE_LABEL,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    NAME_LABEL,
    parse_quantity,
)
from strongroom.errors import StrongroomError, UnavailableError
from strongroom.kube import (
    ApiResource,
    Discovery,
    JsonObject,
    KubeAlreadyExists,
    KubeClient,
    KubeConflict,
    KubeNotFound,
)

__all__ = ["Change", "Installer", "covers"]

_log = logging.getLogger(__name__)

CRD_KIND = "CustomResourceDefinition"
CRD_GROUP = "apiextensions.k8s.io"
# A Deployment's pods get this long to stop before uninstall strips finalizers anyway.
_POD_GRACE = 30.0


@dataclass(frozen=True)
class Change:
    """What install or uninstall did to one object: created, configured, unchanged, deleted or kept."""

    kind: str
    name: str
    namespace: str | None
    action: str
    note: str = ""

    def __str__(self) -> str:
        line = f"{self.kind}/{self.name}: {self.action}"
        return f"{line} ({self.note})" if self.note else line

    def to_json(self) -> JsonObject:
        document: JsonObject = {"kind": self.kind, "name": self.name, "action": self.action}
        if self.namespace:
            document["namespace"] = self.namespace
        if self.note:
            document["note"] = self.note
        return document


def _is_empty(value: Any) -> bool:
    return value is None or value in ({}, [])


def covers(desired: Any, live: Any, path: tuple[str, ...] = ()) -> bool:
    """Whether ``live`` already holds every field of ``desired`` with the same value.

    Fields the server adds (defaults, status, metadata) do not count; list
    items are compared position by position, because the server defaults
    fields inside them (a container's ``terminationMessagePath``). Resource
    quantities compare by value: the API server rewrites ``1000m`` as ``1``.
    """
    if isinstance(desired, dict):
        if not isinstance(live, dict):
            return _is_empty(desired) and live is None
        return all(
            covers(value, live[key], (*path, key)) if key in live else _is_empty(value)
            for key, value in desired.items()
        )
    if isinstance(desired, list):
        return (
            isinstance(live, list)
            and len(desired) == len(live)
            and all(covers(d, item, path) for d, item in zip(desired, live, strict=True))
        )
    if desired == live:
        return True
    if isinstance(desired, str) and isinstance(live, str) and ("requests" in path or "limits" in path):
        try:
            return parse_quantity(desired) == parse_quantity(live)
        except ValueError:
            return False
    return False


def _metadata(obj: JsonObject) -> JsonObject:
    metadata = obj.get("metadata")
    return metadata if isinstance(metadata, dict) else {}


def _managed(obj: JsonObject) -> bool:
    return (_metadata(obj).get("labels") or {}).get(MANAGED_BY_LABEL) == MANAGED_BY


def _terminating(obj: JsonObject) -> bool:
    return bool(_metadata(obj).get("deletionTimestamp"))


def _condition(obj: JsonObject, kind: str) -> str | None:
    for condition in (obj.get("status") or {}).get("conditions") or ():
        if isinstance(condition, dict) and condition.get("type") == kind:
            status = condition.get("status")
            return status if isinstance(status, str) else None
    return None


class Installer:
    """Applies and removes the rendered resources through one ``KubeClient``.

    ``report`` is called with each ``Change`` as it happens, so a command can
    print progress line by line; the methods also return them all.
    """

    def __init__(
        self,
        kube: KubeClient,
        *,
        report: Callable[[Change], None] | None = None,
        poll_interval: float = 0.25,
    ) -> None:
        self._kube = kube
        self._report = report or (lambda change: None)
        self._poll = poll_interval
        self._discovery: Discovery | None = None

    # -- install --------------------------------------------------------------

    async def install(self, manifests: Sequence[JsonObject], *, timeout: float = 300.0) -> list[Change]:
        """Apply ``manifests`` in order; CRDs are waited for (Established) before what follows them.

        ``timeout`` bounds each wait (a CRD becoming Established, an object
        still terminating from an earlier uninstall).
        """
        discovery = await self._discover()
        changes: list[Change] = []
        pending_crds: list[str] = []
        for obj in manifests:
            if obj.get("kind") != CRD_KIND and pending_crds:
                await self._wait_established(pending_crds, timeout)
                pending_crds = []
            change = await self._apply(self._resource(discovery, obj), obj, timeout)
            changes.append(change)
            self._report(change)
            if obj.get("kind") == CRD_KIND:
                pending_crds.append(_metadata(obj)["name"])
        if pending_crds:
            await self._wait_established(pending_crds, timeout)
        return changes

    async def _discover(self) -> Discovery:
        if self._discovery is None:
            self._discovery = await self._kube.discover()
        return self._discovery

    @staticmethod
    def _resource(discovery: Discovery, obj: JsonObject) -> ApiResource:
        api_version, kind = str(obj.get("apiVersion", "")), str(obj.get("kind", ""))
        group, _, version = api_version.rpartition("/")
        for res in discovery.resources:
            if res.group == group and res.version == version and res.kind == kind:
                return res
        raise StrongroomError(
            f"the cluster does not serve {kind} ({api_version}), which strongroom needs",
            hint="strongroom needs Kubernetes 1.22 or later (OpenShift 4.9 or later)",
        )

    async def _apply(self, res: ApiResource, obj: JsonObject, timeout: float) -> Change:
        name = _metadata(obj)["name"]
        namespace = _metadata(obj).get("namespace")
        kind = res.kind
        live = await self._kube.get(res, name, namespace)
        if live is not None and _terminating(live):
            # Left by an uninstall that did not wait: creating in a terminating
            # namespace is refused, and a terminating CRD cannot be updated.
            _log.info("waiting for %s/%s to finish terminating", kind, name)
            await self._wait_gone(res, name, namespace, timeout)
            live = None
        if live is None:
            try:
                await self._kube.create(res, obj, namespace)
                return Change(kind, name, namespace, "created")
            except KubeAlreadyExists:
                live = await self._kube.get(res, name, namespace)
                if live is None:
                    raise
        if kind == "Namespace" and not _managed(live):
            return Change(
                kind, name, namespace, "unchanged", "exists, not managed by strongroom: left as it is"
            )
        if covers(obj, live):
            return Change(kind, name, namespace, "unchanged")
        try:
            await self._kube.patch(res, name, obj, namespace, patch_type="merge")
        except KubeConflict:
            await self._kube.patch(res, name, obj, namespace, patch_type="merge")
        return Change(kind, name, namespace, "configured")

    async def _wait_established(self, names: Sequence[str], timeout: float) -> None:
        res = self._resource(await self._discover(), {"apiVersion": f"{CRD_GROUP}/v1", "kind": CRD_KIND})
        waiting = list(names)
        deadline = time.monotonic() + timeout
        while waiting:
            crd = await self._kube.get(res, waiting[0])
            if crd is not None and _condition(crd, "Established") == "True":
                waiting.pop(0)
                continue
            if time.monotonic() >= deadline:
                raise UnavailableError(
                    f"CustomResourceDefinition {waiting[0]} is not Established after {timeout:g}s",
                    hint=f"kubectl get crd {waiting[0]} -o yaml shows its conditions",
                )
            await asyncio.sleep(self._poll)

    async def wait_available(self, namespace: str, name: str, *, timeout: float) -> None:
        """Wait until the Deployment's pods of the current generation are all available."""
        res = self._resource(await self._discover(), {"apiVersion": "apps/v1", "kind": "Deployment"})
        deadline = time.monotonic() + timeout
        seen = "it does not exist"
        while True:
            deployment = await self._kube.get(res, name, namespace)
            if deployment is not None:
                spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
                wanted = int(spec.get("replicas", 1))
                available = int(status.get("availableReplicas") or 0)
                updated = int(status.get("updatedReplicas") or 0)
                current = int(status.get("observedGeneration") or 0) >= int(
                    _metadata(deployment).get("generation") or 0
                )
                if current and available >= wanted and updated >= wanted:
                    return
                seen = f"{available}/{wanted} replicas available"
            if time.monotonic() >= deadline:
                raise UnavailableError(
                    f"Deployment {namespace}/{name} is not available after {timeout:g}s: {seen}",
                    hint=f"kubectl -n {namespace} describe deployment {name} and kubectl -n {namespace} "
                    "get pods show why (an image that cannot be pulled, no node that fits, a crashing "
                    "server); a cluster without nodes, like the sandbox, never runs the pods",
                )
            await asyncio.sleep(self._poll)

    # -- uninstall ------------------------------------------------------------

    async def uninstall(
        self,
        manifests: Sequence[JsonObject],
        *,
        keep_crds: bool = False,
        wait: bool = False,
        timeout: float = 300.0,
    ) -> list[Change]:
        """Remove what ``manifests`` (a rendering of the installation) names; nothing else.

        Workloads, RBAC and accounts first (the server stops before its
        resources go), then the namespace with everything in it, then the
        CRDs unless ``keep_crds``. Objects not labelled as strongroom's are
        kept and reported. ``wait`` waits for the namespace and the CRDs to
        be gone. Returns the changes; none means nothing was installed.
        """
        discovery = await self._discover()
        crds = [obj for obj in manifests if obj.get("kind") == CRD_KIND]
        namespaces = [obj for obj in manifests if obj.get("kind") == "Namespace"]
        others = [obj for obj in manifests if obj.get("kind") not in (CRD_KIND, "Namespace")]
        changes: list[Change] = []

        def note(change: Change | None) -> None:
            if change is not None:
                changes.append(change)
                self._report(change)

        for obj in reversed(others):
            note(await self._delete(self._resource(discovery, obj), obj))
        if wait and changes:
            for namespace in namespaces:
                await self._wait_pods_gone(discovery, _metadata(namespace)["name"])
        for namespace_obj in namespaces:
            namespace = _metadata(namespace_obj)["name"]
            res = self._resource(discovery, namespace_obj)
            live = await self._kube.get(res, namespace)
            if live is None or _terminating(live):
                continue
            if not _managed(live):
                if changes:
                    note(Change("Namespace", namespace, None, "kept", "not created by strongroom"))
                continue
            note(await self._delete(res, namespace_obj))
            await self._release(discovery, crds, namespace)
            if wait:
                await self._wait_gone(res, namespace, None, timeout, release=(discovery, crds, namespace))
        if not keep_crds:
            deleted: list[JsonObject] = []
            for crd in crds:
                change = await self._delete(self._resource(discovery, crd), crd)
                note(change)
                if change is not None and change.action == "deleted":
                    deleted.append(crd)
            # Every custom resource of a deleted CRD goes, in any namespace.
            await self._release(discovery, deleted, None)
            if wait:
                for crd in deleted:
                    res = self._resource(discovery, crd)
                    await self._wait_gone(
                        res, _metadata(crd)["name"], None, timeout, release=(discovery, [crd], None)
                    )
        return changes

    async def _delete(self, res: ApiResource, obj: JsonObject) -> Change | None:
        name = _metadata(obj)["name"]
        namespace = _metadata(obj).get("namespace") if res.namespaced else None
        live = await self._kube.get(res, name, namespace)
        if live is None or _terminating(live):
            return None
        if not _managed(live):
            return Change(res.kind, name, namespace, "kept", "not managed by strongroom")
        try:
            await self._kube.delete(res, name, namespace)
        except KubeNotFound:
            return None
        return Change(res.kind, name, namespace, "deleted")

    async def _release(self, discovery: Discovery, crds: Sequence[JsonObject], namespace: str | None) -> None:
        """Remove the finalizers of strongroom's custom resources, which no server will process now."""
        for crd in crds:
            spec = crd.get("spec") or {}
            res = discovery.find(str(spec.get("group", "")), str((spec.get("names") or {}).get("plural", "")))
            if res is None:
                continue
            try:
                items = await self._kube.list_all(res, namespace=namespace)
            except KubeNotFound:
                continue
            for item in items:
                meta = _metadata(item)
                if not meta.get("finalizers"):
                    continue
                try:
                    await self._kube.patch(
                        res, meta["name"], {"metadata": {"finalizers": None}}, meta.get("namespace")
                    )
                except KubeNotFound:
                    continue

    async def _wait_pods_gone(self, discovery: Discovery, namespace: str) -> None:
        """Give the server's and node agent's pods time to stop before their finalizers are removed."""
        pods = discovery.find("", "pods")
        if pods is None:
            return
        selector = f"{NAME_LABEL}=strongroom,{INSTANCE_LABEL}={namespace}"
        deadline = time.monotonic() + _POD_GRACE
        while time.monotonic() < deadline:
            try:
                if not await self._kube.list_all(pods, namespace=namespace, label_selector=selector):
                    return
            except KubeNotFound:
                return
            await asyncio.sleep(self._poll)
        _log.warning("strongroom's pods in %s are still stopping; removing the namespace anyway", namespace)

    async def _wait_gone(
        self,
        res: ApiResource,
        name: str,
        namespace: str | None,
        timeout: float,
        *,
        release: tuple[Discovery, Sequence[JsonObject], str | None] | None = None,
    ) -> None:
        deadline = time.monotonic() + timeout
        while await self._kube.get(res, name, namespace) is not None:
            if time.monotonic() >= deadline:
                where = f"{namespace}/" if namespace else ""
                raise UnavailableError(
                    f"{res.kind} {where}{name} is still terminating after {timeout:g}s",
                    hint=f"kubectl get {res.group_resource} {name} -o yaml shows its finalizers and "
                    "conditions; a finalizer of another controller may hold it",
                )
            if release is not None:
                # Custom resources created meanwhile (a controller of another
                # installation) must not hold the deletion either.
                await self._release(*release)
            await asyncio.sleep(self._poll)
