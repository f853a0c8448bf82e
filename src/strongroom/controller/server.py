"""`strongroom server`: the controllers, run by kopf, behind leader election, with metrics and probes.

kopf watches the custom resources of the server's namespace and hands each
change to a controller; the controllers are level-based (they look at the
phase, as Velero's do), so kopf's event handlers are all they need and no
bookkeeping annotations or finalizers are added to the users' resources.
Periodic work (location validation, backup sync, schedules, garbage
collection, expiry of answered requests) runs beside kopf in the same loop.

Only the replica holding the Lease runs controllers: two replicas never run
the same backup. A leader that loses its lease stops at once (the pod
restarts and stands by), as client-go's leader election does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import kopf

from strongroom import __version__
from strongroom.controller.backups import BackupController
from strongroom.controller.context import ServerConfig, ServerContext, ServerResources
from strongroom.controller.deletion import DeletionController, GarbageCollector
from strongroom.controller.downloads import DownloadController, StatusRequestController
from strongroom.controller.dpa import DpaReconciler
from strongroom.controller.http import HealthServer
from strongroom.controller.leader import LeaderElector
from strongroom.controller.locations import LocationController, Locations
from strongroom.controller.logs import set_level
from strongroom.controller.metrics import ServerMetrics
from strongroom.controller.operator import on_velero_event, operator_registry, retrying
from strongroom.controller.restores import RestoreController
from strongroom.controller.schedules import ScheduleController
from strongroom.controller.sync import BackupSync
from strongroom.controller.volumedata import VolumeData
from strongroom.errors import StrongroomError
from strongroom.kube import KubeClient
from strongroom.model.velero import format_timestamp

__all__ = ["ServerOptions", "run_server"]

_log = logging.getLogger(__name__)

LEASE_NAME = "strongroom-server"
# Retries of a reconcile that failed for an unexpected reason (the API server restarting).


@dataclass(frozen=True)
class ServerOptions:
    config: ServerConfig
    metrics_address: str = ":8085"
    leader_elect: bool = True
    identity: str = ""
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0


def default_identity() -> str:
    """The pod's name when it runs in a pod, else the host's; unique per process either way."""
    return f"{os.environ.get('POD_NAME') or socket.gethostname()}_{uuid.uuid4().hex[:8]}"


class _Events:
    """Posts core/v1 Events about the server's resources, without blocking the controllers."""

    def __init__(self, kube: KubeClient, identity: str) -> None:
        self._kube = kube
        self._identity = identity
        self._tasks: set[asyncio.Task[None]] = set()
        self._events_type: Any = None

    async def start(self) -> None:
        self._events_type = (await self._kube.discover()).find("", "events")

    def post(self, body: Mapping[str, Any], kind: str, reason: str, message: str) -> None:
        if self._events_type is None:
            return
        task = asyncio.get_running_loop().create_task(self._post(dict(body), kind, reason, message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _post(self, body: dict[str, Any], kind: str, reason: str, message: str) -> None:
        metadata = body.get("metadata") or {}
        now = format_timestamp(datetime.now(UTC))
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "generateName": f"{metadata.get('name', 'strongroom')}.",
                "namespace": metadata.get("namespace"),
            },
            "involvedObject": {
                "apiVersion": body.get("apiVersion"),
                "kind": body.get("kind"),
                "name": metadata.get("name"),
                "namespace": metadata.get("namespace"),
                "uid": metadata.get("uid"),
                "resourceVersion": metadata.get("resourceVersion"),
            },
            "type": kind,
            "reason": reason,
            "message": message[:1024],
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "source": {"component": "strongroom-server"},
            "reportingComponent": "strongroom",
            "reportingInstance": self._identity,
        }
        try:
            await self._kube.create(self._events_type, event, metadata.get("namespace"))
        except StrongroomError as exc:
            _log.debug("event %s not posted: %s", reason, exc.message)

    async def drain(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


class Server:
    """The controllers of one namespace, wired to kopf and to the periodic loops."""

    def __init__(self, ctx: ServerContext, health: HealthServer | None = None) -> None:
        self.ctx = ctx
        self.health = health
        self.locations = Locations(ctx)
        self.location_controller = LocationController(ctx, self.locations)
        self.volume_data = VolumeData(ctx, self.locations)
        self.backups = BackupController(ctx, self.locations, self.volume_data)
        self.restores = RestoreController(ctx, self.locations, volume_data=self.volume_data)
        self.schedules = ScheduleController(ctx)
        self.deletions = DeletionController(ctx, self.locations, self.volume_data)
        self.gc = GarbageCollector(ctx, self.locations)
        self.sync = BackupSync(ctx, self.locations)
        self.downloads = DownloadController(ctx, self.locations)
        self.status_requests = StatusRequestController(ctx)
        self.dpa = DpaReconciler(ctx.kube, ctx.namespace, clock=ctx.clock)
        self._validated: dict[str, int] = {}
        # The watch and the periodic resync must not reconcile a DPA at the same time.
        self._dpa_lock = asyncio.Lock()

    async def recover(self) -> None:
        await self.backups.recover_in_progress()
        await self.restores.recover_in_progress()

    def registry(self) -> kopf.OperatorRegistry:
        registry = operator_registry(self.ctx.kube)
        for resource, handler in (
            ("backups", self.backups.reconcile),
            ("restores", self.restores.reconcile),
            ("deletebackuprequests", self.deletions.reconcile),
            ("downloadrequests", self.downloads.reconcile),
            ("serverstatusrequests", self.status_requests.reconcile),
        ):
            on_velero_event(registry, resource, handler)
        # Kinds whose deletion the server must notice (their metrics, their in-memory state).
        on_velero_event(registry, "schedules", self.schedules.reconcile, deleted=self.schedules.forget)
        on_velero_event(
            registry, "backupstoragelocations", self._location_changed, deleted=self._location_deleted
        )

        @kopf.on.event("oadp.openshift.io", "v1alpha1", "dataprotectionapplications", registry=registry)
        async def dpa_event(event: Mapping[str, Any], body: Mapping[str, Any], **_: Any) -> None:
            if event.get("type") == "DELETED":
                return
            await retrying(
                f"dataprotectionapplication {body['metadata']['name']}", lambda: self._dpa(dict(body))
            )

        return registry

    async def _location_changed(self, location: dict[str, Any]) -> None:
        name = str(location["metadata"]["name"])
        generation = int(location["metadata"].get("generation") or 0)
        # A new or edited location is checked at once; otherwise when it is due.
        force = self._validated.get(name) != generation
        self._validated[name] = generation
        await self.location_controller.reconcile(location, force=force)

    def _location_deleted(self, name: str) -> None:
        self._validated.pop(name, None)
        if self.ctx.metrics is not None:
            self.ctx.metrics.remove_location(name)

    async def _dpa(self, dpa: dict[str, Any]) -> None:
        async with self._dpa_lock:
            current = await self.ctx.get(self.ctx.resources.dpas, str(dpa["metadata"]["name"]))
            if current is None:
                return
            outcome = await self.dpa.reconcile(current)
        if outcome.ok and outcome.log_level:
            set_level(outcome.log_level)
        if outcome.transient:
            raise StrongroomError("; ".join(outcome.errors) or "transient failure")

    def start_loops(self) -> list[asyncio.Task[None]]:
        """Start the periodic work; the tasks run until cancelled.

        Started before kopf: kopf treats every task created after its own start
        as its handlers', and on shutdown waits for them (then cancels them).
        """
        config = self.ctx.config

        async def every(seconds: float, what: str, call: Callable[[], Awaitable[None]]) -> None:
            while True:
                try:
                    await call()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    message = exc.message if isinstance(exc, StrongroomError) else repr(exc)
                    _log.warning("%s failed: %s", what, message)
                await asyncio.sleep(seconds)

        short = 5.0 if config.store_validation_frequency.total_seconds() >= 10 else 1.0
        sync_tick = min(5.0, max(0.5, config.backup_sync_period.total_seconds() / 2))
        loops: list[tuple[float, str, Callable[[], Awaitable[None]]]] = [
            (short, "validating locations", self.location_controller.sweep),
            (sync_tick, "backup sync", self.sync.sweep),
            (config.schedule_check_period.total_seconds(), "schedules", self.schedules.tick),
            (config.gc_frequency.total_seconds(), "garbage collection", self.gc.sweep),
            (60.0, "expiring requests", self._expire_requests),
            (30.0, "counting", self._count),
            # A DPA waits on Secrets it does not own: a fixed Secret shows at the next pass.
            (config.store_validation_frequency.total_seconds() or 60.0, "DPA resync", self._resync_dpas),
        ]
        return [asyncio.create_task(every(*loop), name=loop[1]) for loop in loops]

    async def _count(self) -> None:
        metrics = self.ctx.metrics
        if metrics is not None:
            metrics.backups_counted(len(await self.ctx.list(self.ctx.resources.backups)))
            metrics.restores_counted(len(await self.ctx.list(self.ctx.resources.restores)))

    async def _resync_dpas(self) -> None:
        for dpa in await self.ctx.list(self.ctx.resources.dpas):
            await self._dpa(dpa)

    async def _expire_requests(self) -> None:
        ctx = self.ctx
        for res, controller in (
            (ctx.resources.download_requests, self.downloads.reconcile),
            (ctx.resources.status_requests, self.status_requests.reconcile),
            (ctx.resources.delete_requests, self.deletions.reconcile),
        ):
            for item in await ctx.list(res):
                if (item.get("status") or {}).get("phase") == "Processed":
                    await controller(item)


async def run_server(kube: KubeClient, options: ServerOptions, *, stop: asyncio.Event | None = None) -> int:
    """Serve until ``stop`` is set (or the lease is lost: exit code 1)."""
    config = options.config
    identity = options.identity or default_identity()
    metrics = ServerMetrics()
    health = HealthServer(metrics, options.metrics_address)
    stop = stop or asyncio.Event()
    await health.start()
    _log.info(
        "strongroom server %s starting",
        __version__,
        extra={"namespace": config.namespace, "identity": identity, "metrics": health.url},
    )
    events = _Events(kube, identity)
    try:
        discovery = await kube.discover()
        resources = ServerResources.from_discovery(discovery)
        await events.start()
        ctx = ServerContext(kube, resources, config, metrics=metrics, events=events.post)
        server = Server(ctx, health)
        health.set_ready(True)
        elector: LeaderElector | None = None
        if options.leader_elect:
            elector = LeaderElector(
                kube,
                config.namespace,
                LEASE_NAME,
                identity,
                lease_duration=options.lease_duration,
                renew_deadline=options.renew_deadline,
                retry_period=options.retry_period,
                lease_resource=resources.leases,
            )
        async with contextlib.AsyncExitStack() as stack:
            lost: asyncio.Event = asyncio.Event()
            if elector is not None:
                _log.info("waiting to become the leader", extra={"lease": f"{config.namespace}/{LEASE_NAME}"})
                acquiring = asyncio.create_task(stack.enter_async_context(elector.leading()))
                stopping = asyncio.create_task(stop.wait())
                await asyncio.wait({acquiring, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if not acquiring.done():
                    acquiring.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await acquiring
                    stopping.cancel()
                    return 0
                stopping.cancel()
                lost = acquiring.result()
                _log.info("became the leader")
            health.set_leader(True)
            await server.recover()
            periodic = server.start_loops()
            # No stop flag: kopf would wait for its idle waiter on a SIGTERM it handles itself.
            operator = asyncio.create_task(
                kopf.operator(registry=server.registry(), namespaces=[config.namespace], standalone=True),
                name="kopf",
            )
            stopping = asyncio.create_task(stop.wait())
            losing = asyncio.create_task(lost.wait())
            done, _ = await asyncio.wait(
                {operator, stopping, losing, *periodic}, return_when=asyncio.FIRST_COMPLETED
            )
            code = 0
            if losing in done:
                _log.error("lost the leader lease: stopping")
                health.report_fatal("lost the leader lease")
                code = 1
            for ended in (operator, *periodic):
                if ended in done and not ended.cancelled() and ended.exception() is not None:
                    _log.error("%s stopped: %r", ended.get_name(), ended.exception())
                    code = 1
            # kopf takes SIGTERM and SIGINT over and stops by itself; otherwise it is cancelled here.
            for running in (*periodic, stopping, losing, operator):
                running.cancel()
            await asyncio.gather(*periodic, return_exceptions=True)
            await events.drain()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(operator, timeout=10)
            return code
    finally:
        await health.stop()
