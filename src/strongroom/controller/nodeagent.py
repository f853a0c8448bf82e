"""`strongroom node-agent`: the per-node reconciler of PodVolumeBackups and PodVolumeRestores.

One agent runs on every node (a DaemonSet, like Velero's node-agent) with
the kubelet's pod directory mounted; it handles the PodVolumeBackups of its
namespace whose ``spec.node`` is its node, and the PodVolumeRestores whose
pod runs on its node (a PodVolumeRestore names no node: the pod is looked
up). Each request is claimed with a status write conditional on the
resourceVersion read, so two agents never copy the same volume, and ends
Completed or Failed with a message; a request a dead agent left InProgress
is marked Failed when the agent starts again (Velero's rule), never left
hanging.

A PodVolumeRestore waits until its pod is scheduled here and the pod's
``restore-wait`` init container runs (the volume is mounted, the
application not started yet): kopf delivers the PodVolumeRestore's own
changes, and a short periodic pass notices pods that became ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import kopf

from strongroom import __version__
from strongroom.controller.context import ServerConfig, ServerContext, ServerResources, phase_of
from strongroom.controller.locations import Locations
from strongroom.controller.operator import on_velero_event, operator_registry
from strongroom.controller.runs import ProgressWriter
from strongroom.errors import NotFoundError, StrongroomError, UsageError
from strongroom.kube import ApiResource, KubeClient, KubeConflict
from strongroom.model.podvolume import PodVolumeBackup, PodVolumeRestore
from strongroom.model.velero import format_timestamp
from strongroom.volumes import (
    Repositories,
    RepositoryLocation,
    RepositoryResources,
    back_up_volume,
    find_volume_path,
    pod_volume,
    restore_volume,
    volume_directory_name,
    write_done_marker,
)

__all__ = ["RESTORE_WAIT_CONTAINER", "NodeAgent", "NodeAgentOptions", "run_node_agent"]

_log = logging.getLogger(__name__)

_FINISH_ATTEMPTS: Final = 8

PENDING: Final = ("", "New")
# The init container the restore adds to a pod whose volumes are restored (Velero's name).
RESTORE_WAIT_CONTAINER: Final = "restore-wait"
RESTORE_UID_LABEL: Final = "velero.io/restore-uid"
_EMPTY_VOLUME: Final = "volume was empty so no snapshot was taken"


@dataclass(frozen=True)
class NodeAgentOptions:
    """The agent's settings (command-line flags)."""

    namespace: str
    node: str
    host_pods_root: Path
    scratch_dir: Path
    restic_binary: str = "restic"
    # restic's base environment; None: the agent's own.
    environment: Mapping[str, str] | None = field(default=None, repr=False)
    # How many volumes this node copies at once (Velero's default is one).
    concurrency: int = 1
    # How often pending restores are checked against their pods.
    restore_poll: float = 1.0
    progress_interval: float = 1.0


@dataclass(frozen=True)
class _PodResources:
    pods: ApiResource
    claims: ApiResource
    volumes: ApiResource


class NodeAgent:
    """The reconcilers of one node."""

    def __init__(self, ctx: ServerContext, options: NodeAgentOptions, pod_resources: _PodResources) -> None:
        self.ctx = ctx
        self.options = options
        self._pods = pod_resources
        self.locations = Locations(ctx)
        self.repositories = Repositories(
            ctx.kube,
            RepositoryResources(repositories=ctx.resources.repositories, secrets=ctx.resources.secrets),
            ctx.namespace,
            scratch_dir=options.scratch_dir,
            restic_binary=options.restic_binary,
            environment=options.environment,
            clock=ctx.clock,
        )
        self._slots = asyncio.Semaphore(max(1, options.concurrency))
        self._restoring: set[str] = set()
        # Why each pending restore waits, so that the reason is logged once, not every pass.
        self._waiting: dict[str, str] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    # -- start-up ---------------------------------------------------------------

    async def recover(self) -> None:
        """Fail what a dead agent of this node left InProgress: its restic process is gone."""
        res = self.ctx.resources
        for pvb in await self.ctx.list(res.pod_volume_backups):
            if phase_of(pvb) == "InProgress" and (pvb.get("spec") or {}).get("node") == self.options.node:
                await self._fail_left_over(res.pod_volume_backups, pvb, "podvolumebackup")
        for pvr in await self.ctx.list(res.pod_volume_restores):
            if phase_of(pvr) == "InProgress" and await self._restore_is_ours(pvr):
                await self._fail_left_over(res.pod_volume_restores, pvr, "podvolumerestore")

    async def _restore_is_ours(self, pvr: Mapping[str, Any]) -> bool:
        node = (pvr.get("status") or {}).get("node")
        if node:
            return bool(node == self.options.node)
        pod = await self._pod_of(pvr)
        return pod is not None and (pod.get("spec") or {}).get("nodeName") == self.options.node

    async def _fail_left_over(self, res: ApiResource, obj: Mapping[str, Any], noun: str) -> None:
        name = str(obj["metadata"]["name"])
        message = (
            f'found a {noun} with status "InProgress" during the node agent starting, mark it as "Failed"'
        )
        await self.ctx.patch_status(
            res,
            name,
            {"phase": "Failed", "message": message, "completionTimestamp": self._now()},
        )
        _log.warning("%s %s: %s", noun, name, message)

    # -- PodVolumeBackup --------------------------------------------------------

    async def reconcile_backup(self, body: Mapping[str, Any]) -> None:
        """Back up one pod volume if the PodVolumeBackup is new and for this node."""
        if phase_of(body) not in PENDING:
            return
        res = self.ctx.resources.pod_volume_backups
        name = str(body["metadata"]["name"])
        node = (body.get("spec") or {}).get("node")
        if node != self.options.node:
            _log.debug("podvolumebackup %s is for node %s, not this one", name, node)
            return
        async with self._slots:
            current = await self.ctx.get(res, name)
            if current is None or phase_of(current) not in PENDING:
                return
            if not await self._claim(res, current, {}):
                return
            progress = ProgressWriter(
                self.ctx, res, name, ("bytesDone", "totalBytes"), interval=self.options.progress_interval
            )
            try:
                final = await self._back_up(current, progress)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                final = self._failed(name, "podvolumebackup", exc)
            await progress.settle()
            await self._finish(res, name, "podvolumebackup", final)

    async def _back_up(self, body: Mapping[str, Any], progress: ProgressWriter) -> dict[str, Any]:
        pvb = PodVolumeBackup.model_validate(body)
        spec = pvb.spec
        pod = await self._pod(spec.pod.namespace, spec.pod.name)
        path = await self._volume_path(pod, spec.volume)
        location = await self._location(spec.backup_storage_location)
        namespace = str(spec.pod.namespace)
        tags = {
            "ns": namespace,
            "pod": str(spec.pod.name),
            "pod-uid": str(pod["metadata"].get("uid") or spec.pod.uid or ""),
            "volume": spec.volume,
            **(spec.tags or {}),
        }
        tags = {key: value for key, value in tags.items() if value}
        _log.info("backing up volume %s of pod %s/%s from %s", spec.volume, namespace, spec.pod.name, path)
        result = await back_up_volume(self.repositories, location, namespace, path, tags, progress=progress)
        status: dict[str, Any] = {
            "phase": "Completed",
            "path": result.path,
            "snapshotID": result.snapshot_id or "",
            "completionTimestamp": self._now(),
            "progress": {"totalBytes": result.total_bytes, "bytesDone": result.total_bytes},
            "incrementalBytes": result.incremental_bytes,
        }
        if result.snapshot_id is None:
            status["message"] = _EMPTY_VOLUME
        return status

    # -- PodVolumeRestore -------------------------------------------------------

    async def reconcile_restore(self, body: Mapping[str, Any]) -> None:
        """Restore one pod volume once its pod waits in ``restore-wait`` on this node."""
        if phase_of(body) not in PENDING:
            return
        name = str(body["metadata"]["name"])
        if name in self._restoring:
            return
        self._restoring.add(name)
        try:
            await self._restore_if_ready(name)
        finally:
            self._restoring.discard(name)

    async def _restore_if_ready(self, name: str) -> None:
        res = self.ctx.resources.pod_volume_restores
        current = await self.ctx.get(res, name)
        if current is None or phase_of(current) not in PENDING:
            self._waiting.pop(name, None)
            return
        pod = await self._pod_of(current)
        node = ((pod or {}).get("spec") or {}).get("nodeName")
        if node and node != self.options.node:
            # A pod never changes node: this restore is another agent's, not worth asking about again.
            self._waiting.pop(name, None)
            return
        reason = self._not_ready(pod)
        if reason:
            if self._waiting.get(name) != reason:
                _log.debug("podvolumerestore %s waits: %s", name, reason)
                self._waiting[name] = reason
            return
        self._waiting.pop(name, None)
        assert pod is not None
        async with self._slots:
            current = await self.ctx.get(res, name)
            if current is None or phase_of(current) not in PENDING:
                return
            if not await self._claim(res, current, {"node": self.options.node}):
                return
            progress = ProgressWriter(
                self.ctx, res, name, ("bytesDone", "totalBytes"), interval=self.options.progress_interval
            )
            try:
                final = await self._restore(current, pod, progress)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                final = self._failed(name, "podvolumerestore", exc)
            await progress.settle()
            await self._finish(res, name, "podvolumerestore", final)

    def _not_ready(self, pod: Mapping[str, Any] | None) -> str:
        """Why the restore cannot start yet ("" when the pod waits in restore-wait on this node)."""
        if pod is None:
            return "its pod does not exist (yet)"
        spec = pod.get("spec") or {}
        if spec.get("nodeName") != self.options.node:
            return f"its pod is not running on this node (node {spec.get('nodeName') or 'none yet'})"
        names = [str(c.get("name")) for c in spec.get("initContainers") or ()]
        if RESTORE_WAIT_CONTAINER not in names:
            return f"its pod has no {RESTORE_WAIT_CONTAINER} init container"
        for status in (pod.get("status") or {}).get("initContainerStatuses") or ():
            if status.get("name") == RESTORE_WAIT_CONTAINER and (status.get("state") or {}).get("running"):
                return ""
        return f"the {RESTORE_WAIT_CONTAINER} init container of its pod is not running"

    async def _restore(
        self, body: Mapping[str, Any], pod: Mapping[str, Any], progress: ProgressWriter
    ) -> dict[str, Any]:
        pvr = PodVolumeRestore.model_validate(body)
        spec = pvr.spec
        restore_uid = _restore_uid(body)
        path = await self._volume_path(pod, spec.volume)
        location = await self._location(spec.backup_storage_location)
        _log.info(
            "restoring snapshot %s into volume %s of pod %s/%s at %s",
            spec.snapshot_id,
            spec.volume,
            spec.pod.namespace,
            spec.pod.name,
            path,
        )
        size = await restore_volume(
            self.repositories, location, spec.source_namespace, spec.snapshot_id, path, progress=progress
        )
        await asyncio.to_thread(write_done_marker, path, restore_uid)
        return {
            "phase": "Completed",
            "completionTimestamp": self._now(),
            "progress": {"totalBytes": size, "bytesDone": size},
        }

    async def sweep_restores(self) -> None:
        """Look again at the restores that wait for their pods (a pod's change is not a PVR's event).

        Every pending PodVolumeRestore passes through ``reconcile_restore``
        (kopf lists them all at start and after each reconnect), which notes
        the ones that must wait; only those are read again here.
        """
        for name in list(self._waiting):
            if name not in self._restoring:
                body = {"metadata": {"name": name}, "status": {"phase": "New"}}
                task = asyncio.create_task(self.reconcile_restore(body), name=f"restore {name}")
                self._tasks.add(task)
                task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            message = exc.message if isinstance(exc, StrongroomError) else repr(exc)
            _log.warning("%s failed: %s", task.get_name(), message)

    async def cancel_tasks(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- shared steps -----------------------------------------------------------

    async def _claim(self, res: ApiResource, obj: Mapping[str, Any], extra: dict[str, Any]) -> bool:
        """InProgress, conditional on the version read; False when another agent moved first."""
        name = str(obj["metadata"]["name"])
        status = {"phase": "InProgress", "startTimestamp": self._now(), **extra}
        try:
            claimed = await self.ctx.patch_status(
                res, name, status, resource_version=str(obj["metadata"]["resourceVersion"])
            )
        except KubeConflict:
            _log.debug("%s %s was claimed by someone else", res.kind, name)
            return False
        return claimed is not None

    def _failed(self, name: str, noun: str, exc: Exception) -> dict[str, Any]:
        if isinstance(exc, StrongroomError):
            message = str(exc)
        else:
            _log.error("%s %s failed unexpectedly", noun, name, exc_info=exc)
            message = f"unexpected error: {type(exc).__name__}: {exc}"
        return {"phase": "Failed", "message": message, "completionTimestamp": self._now()}

    async def _finish(self, res: ApiResource, name: str, noun: str, final: dict[str, Any]) -> None:
        # The copy is done: its result must land, or the server waits for it until its timeout.
        delay = 0.5
        for attempt in range(_FINISH_ATTEMPTS):
            try:
                await self.ctx.patch_status(res, name, final)
                break
            except NotFoundError:
                return
            except StrongroomError as exc:
                if attempt == _FINISH_ATTEMPTS - 1:
                    raise
                _log.warning("writing the result of %s %s failed, retrying: %s", noun, name, exc.message)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
        if final["phase"] == "Completed":
            _log.info("%s %s completed", noun, name, extra={noun: name})
        else:
            _log.warning("%s %s failed: %s", noun, name, final.get("message"), extra={noun: name})

    async def _pod(self, namespace: str | None, name: str | None) -> dict[str, Any]:
        if not namespace or not name:
            raise UsageError("spec.pod must name the pod (namespace and name)")
        pod = await self.ctx.kube.get(self._pods.pods, name, namespace)
        if pod is None:
            raise NotFoundError(f"pod {namespace}/{name} not found")
        return pod

    async def _pod_of(self, pvr: Mapping[str, Any]) -> dict[str, Any] | None:
        ref = (pvr.get("spec") or {}).get("pod") or {}
        if not ref.get("namespace") or not ref.get("name"):
            return None
        pod = await self.ctx.kube.get(self._pods.pods, str(ref["name"]), str(ref["namespace"]))
        if pod is None or (ref.get("uid") and pod["metadata"].get("uid") != ref["uid"]):
            return None
        return pod

    async def _volume_path(self, pod: Mapping[str, Any], volume_name: str) -> Path:
        volume = pod_volume(pod, volume_name)
        pv = None
        claim = volume.get("persistentVolumeClaim")
        namespace = str(pod["metadata"]["namespace"])
        if claim:
            claim_name = str(claim.get("claimName") or "")
            pvc = await self.ctx.kube.get(self._pods.claims, claim_name, namespace)
            if pvc is None:
                raise NotFoundError(f"persistentvolumeclaim {namespace}/{claim_name} not found")
            pv_name = str((pvc.get("spec") or {}).get("volumeName") or "")
            if not pv_name:
                raise NotFoundError(f"persistentvolumeclaim {namespace}/{claim_name} is not bound")
            pv = await self.ctx.kube.get(self._pods.volumes, pv_name)
            if pv is None:
                raise NotFoundError(f"persistentvolume {pv_name} not found")
        directory = volume_directory_name(volume, pv)
        uid = str(pod["metadata"].get("uid") or "")
        return await asyncio.to_thread(find_volume_path, self.options.host_pods_root, uid, directory)

    async def _location(self, name: str) -> RepositoryLocation:
        location = await self.locations.get(name)
        if location is None:
            raise NotFoundError(f"backup storage location {name} not found in namespace {self.ctx.namespace}")
        credentials = await self.locations.credentials(location)
        return RepositoryLocation.from_location(location, credentials)

    def _now(self) -> str:
        return format_timestamp(self.ctx.clock())

    # -- kopf -------------------------------------------------------------------

    def registry(self) -> kopf.OperatorRegistry:
        registry = operator_registry(self.ctx.kube)
        on_velero_event(registry, "podvolumebackups", self.reconcile_backup)
        on_velero_event(registry, "podvolumerestores", self.reconcile_restore)
        return registry


def _restore_uid(pvr: Mapping[str, Any]) -> str:
    """The UID of the Restore that owns the PodVolumeRestore: its controller owner, else its label."""
    metadata = pvr.get("metadata") or {}
    for owner in metadata.get("ownerReferences") or ():
        if owner.get("controller") and owner.get("uid"):
            return str(owner["uid"])
    uid = (metadata.get("labels") or {}).get(RESTORE_UID_LABEL)
    if uid:
        return str(uid)
    raise UsageError(
        f"podvolumerestore {metadata.get('name')} names no restore: it needs a controller owner reference "
        f"to its Restore or the label {RESTORE_UID_LABEL}"
    )


async def _pod_resources(kube: KubeClient) -> _PodResources:
    discovery = await kube.discover()
    pods = discovery.find("", "pods")
    claims = discovery.find("", "persistentvolumeclaims")
    volumes = discovery.find("", "persistentvolumes")
    if pods is None or claims is None or volumes is None:
        raise UsageError("the cluster does not serve pods, persistentvolumeclaims and persistentvolumes")
    return _PodResources(pods=pods, claims=claims, volumes=volumes)


async def run_node_agent(
    kube: KubeClient, options: NodeAgentOptions, *, stop: asyncio.Event | None = None
) -> int:
    """Serve until ``stop`` is set (or kopf stops on SIGTERM)."""
    stop = stop or asyncio.Event()
    if not options.host_pods_root.is_dir():
        raise UsageError(
            f"the pod volumes directory {options.host_pods_root} does not exist",
            hint="mount the kubelet's pods directory (/var/lib/kubelet/pods) and pass it as --host-pods-root",
        )
    options.scratch_dir.mkdir(parents=True, exist_ok=True)
    _log.info(
        "strongroom node agent %s starting",
        __version__,
        extra={
            "namespace": options.namespace,
            "node": options.node,
            "hostPodsRoot": str(options.host_pods_root),
        },
    )
    resources = ServerResources.from_discovery(await kube.discover())
    config = ServerConfig(namespace=options.namespace, workdir=options.scratch_dir)
    ctx = ServerContext(kube, resources, config)
    agent = NodeAgent(ctx, options, await _pod_resources(kube))
    await agent.recover()

    async def sweeping() -> None:
        while True:
            try:
                await agent.sweep_restores()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                message = exc.message if isinstance(exc, StrongroomError) else repr(exc)
                _log.warning("checking pending restores failed: %s", message)
            await asyncio.sleep(options.restore_poll)

    sweeper = asyncio.create_task(sweeping(), name="restores")
    operator = asyncio.create_task(
        kopf.operator(registry=agent.registry(), namespaces=[options.namespace], standalone=True), name="kopf"
    )
    stopping = asyncio.create_task(stop.wait())
    _log.info("node agent ready", extra={"node": options.node})
    done, _ = await asyncio.wait({operator, stopping, sweeper}, return_when=asyncio.FIRST_COMPLETED)
    code = 0
    for ended in (operator, sweeper):
        if ended in done and not ended.cancelled() and ended.exception() is not None:
            _log.error("%s stopped: %r", ended.get_name(), ended.exception())
            code = 1
    for running in (sweeper, stopping, operator):
        running.cancel()
    await agent.cancel_tasks()
    await asyncio.gather(sweeper, return_exceptions=True)
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await asyncio.wait_for(operator, timeout=10)
    return code
