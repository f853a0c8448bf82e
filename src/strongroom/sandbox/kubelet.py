"""kubelet for every sandbox node: pods bound to a node run as local processes.

A :class:`PodWorker` per pod does what kubelet does for it: mounts its volumes
where kubelet puts them under the node's root (``var/lib/kubelet/pods/<uid>/
volumes/kubernetes.io~<plugin>/<name>``), runs the init containers one by
one, then the containers (:mod:`strongroom.sandbox.containers`), restarts them
with back-off as the restart policy says, runs exec readiness probes, writes
the pod status kubelet writes, and on graceful deletion stops the processes
(SIGTERM, SIGKILL after the grace period) and removes the pod.
:class:`Kubelets` owns the workers and is the :class:`~strongroom.sandbox.runtime.PodRuntime`
the API server serves ``pods/log`` and ``pods/exec`` through.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import dataclasses
import logging
import os
import shutil
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from strongroom.sandbox import apierrors
from strongroom.sandbox.containers import (
    ContainerProcess,
    LogLine,
    Mount,
    SandboxSpec,
    bwrap_argv,
    container_argv,
    expand_references,
    is_strongroom_image,
    kill_group,
    parse_log_line,
    prepare_rootfs,
    python_paths,
    render_log,
    select_log_lines,
    signal_main,
    spawn,
)
from strongroom.sandbox.engine import (
    DeleteOptions,
    Engine,
    ListOptions,
    Target,
    WriteOptions,
    get_core,
    now_rfc3339,
)
from strongroom.sandbox.runtime import HOSTPATH_DRIVER, LogOptions, node_root, volume_dir
from strongroom.sandbox.scheduler import record_event, set_condition, sync_on_changes
from strongroom.sandbox.snapshots import valid_handle
from strongroom.sandbox.tokens import ISSUER, TokenIssuer, pod_token_lifetime

log = logging.getLogger(__name__)

JsonObject = dict[str, Any]
BACKOFF_START = 1.0
BACKOFF_MAX = 10.0
POD_IP = "127.0.0.1"
_RESYNC_SECONDS = 2.0
_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
_NODE_ALLOCATABLE = {"cpu": "2", "memory": str(8 * 1024**3), "ephemeral-storage": str(50 * 1024**3)}


class VolumeNotReady(Exception):
    """A volume cannot be set up yet (claim unbound, ConfigMap missing): kubelet retries."""


class ConfigError(Exception):
    """A container's configuration refers to something missing (CreateContainerConfigError)."""


class PathEscape(ValueError):
    """A name or path from a pod spec would reach outside the directory it belongs in."""


TOKEN_REFRESH_FRACTION = 0.8
"""kubelet renews a projected token once this share of its requested lifetime has passed."""


def token_refresh_delay(expiration_seconds: Iterable[int]) -> float | None:
    """Seconds until the pod's first projected token is due for renewal; None without tokens."""
    lifetimes = list(expiration_seconds)
    if not lifetimes:
        return None
    return TOKEN_REFRESH_FRACTION * min(lifetimes)


def path_segment(name: str, what: str) -> str:
    """A name used as one directory name: anything else could climb out of its parent."""
    if not name or name in (".", "..") or "/" in name or "\0" in name:
        raise PathEscape(f"invalid {what} {name!r}: must be a single path segment")
    return name


def contained(base: Path, relative: str, what: str, also: Iterable[Path] = ()) -> Path:
    """``base / relative``, refused when it (symlinks followed) lies outside ``base`` or ``also``.

    kube-apiserver refuses absolute paths and ``..`` already; this is the kubelet's own check,
    so that no object in the API can make the sandbox write outside a pod's directories.
    """
    if relative.startswith("/") or ".." in relative.split("/") or "\0" in relative:
        raise PathEscape(f"{what} {relative!r} must be a relative path without '..'")
    path = base / relative
    resolved = path.resolve()
    for allowed in (base, *also):
        root = allowed.resolve()
        if resolved == root or root in resolved.parents:
            return path
    raise PathEscape(f"{what} {relative!r} leads outside its volume")


# ------------------------------------------------------------------ layout


def pod_dir(root: Path, uid: str) -> Path:
    return root / "var" / "lib" / "kubelet" / "pods" / uid


def pod_log_dir(root: Path, namespace: str, name: str, uid: str) -> Path:
    return root / "var" / "log" / "pods" / f"{namespace}_{name}_{uid}"


def container_log(root: Path, pod: JsonObject, container: str, restart: int) -> Path:
    meta = pod["metadata"]
    return pod_log_dir(root, meta["namespace"], meta["name"], meta["uid"]) / container / f"{restart}.log"


def container_rootfs(root: Path, uid: str, container: str) -> Path:
    base = root / "var" / "lib" / "containers"
    return base / path_segment(uid, "pod uid") / path_segment(container, "container name") / "rootfs"


# --------------------------------------------------------------- containers


@dataclass
class ContainerRun:
    """What kubelet knows of one container of a pod; becomes its entry in the pod status."""

    spec: JsonObject
    init: bool
    restart_count: int = 0
    state: JsonObject = field(default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}})
    last_state: JsonObject = field(default_factory=dict)
    ready: bool = False
    started: bool = False
    container_id: str = ""
    process: ContainerProcess | None = None
    helpers: set[asyncio.subprocess.Process] = field(default_factory=set)
    """Exec sessions and probes running in the container: they end with it."""
    done: bool = False
    """No further run will happen (terminated for good)."""

    @property
    def name(self) -> str:
        return str(self.spec.get("name", ""))

    def kill_helpers(self) -> None:
        """Kill every exec and probe process group still running in this container."""
        for process in list(self.helpers):
            if process.returncode is None:
                kill_group(process.pid)
            self.helpers.discard(process)

    def status(self) -> JsonObject:
        image = str(self.spec.get("image", ""))
        out: JsonObject = {
            "name": self.name,
            "image": image,
            "imageID": f"sandbox://{image}" if self.container_id else "",
            "ready": self.ready,
            "restartCount": self.restart_count,
            "started": self.started,
            "state": self.state,
            "lastState": self.last_state,
        }
        if self.container_id:
            out["containerID"] = self.container_id
        return out


class PodWorker:
    """Runs one pod on its node until it ends or is deleted."""

    def __init__(self, kubelets: Kubelets, pod: JsonObject) -> None:
        self.kubelets = kubelets
        self.pod = pod
        meta = pod["metadata"]
        self.namespace: str = meta["namespace"]
        self.name: str = meta["name"]
        self.uid: str = meta["uid"]
        self.node: str = pod["spec"]["nodeName"]
        self.root = node_root(kubelets.sandbox_dir, self.node)
        spec = pod.get("spec") or {}
        self.restart_policy = str(spec.get("restartPolicy") or "Always")
        self.inits = [ContainerRun(c, True) for c in spec.get("initContainers") or []]
        self.mains = [ContainerRun(c, False) for c in spec.get("containers") or []]
        self.volumes: dict[str, Path] = {}
        self.volumes_ready = False
        self.initialized = False
        self.init_failed = False
        self.stopping = False
        self.finished = False
        """The pod's deletion is done on this node; only finalizers may keep its object."""
        self._stop_wake = asyncio.Event()
        self._publish_lock = asyncio.Lock()
        self.start_time = (pod.get("status") or {}).get("startTime") or now_rfc3339(kubelets.engine.clock)
        self.task: asyncio.Task[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._refresher: asyncio.Task[None] | None = None
        self._restore(pod.get("status") or {})

    # ------------------------------------------------------------ restart

    def _restore(self, status: JsonObject) -> None:
        """Pick up after a sandbox restart: a started pod's containers come back as after a reboot."""
        conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
        previous = {c.get("name"): c for c in status.get("containerStatuses") or []}
        if conditions.get("Initialized") == "True" and self.inits:
            self.initialized = True
            for run in self.inits:
                before: JsonObject = next(
                    (c for c in status.get("initContainerStatuses") or [] if c.get("name") == run.name), {}
                )
                run.state = before.get("state") or {"terminated": {"exitCode": 0, "reason": "Completed"}}
                run.restart_count = int(before.get("restartCount") or 0)
                run.container_id = str(before.get("containerID") or "")
                run.ready, run.done = True, True
        for run in self.mains:
            prior = previous.get(run.name)
            if not prior or not prior.get("containerID"):
                continue
            run.container_id = str(prior.get("containerID") or "")
            run.restart_count = int(prior.get("restartCount") or 0)
            state = prior.get("state") or {}
            if "running" in state:
                run.last_state = {
                    "terminated": {
                        "exitCode": 255,
                        "reason": "Unknown",
                        "startedAt": state["running"].get("startedAt"),
                        "finishedAt": now_rfc3339(self.kubelets.engine.clock),
                        "containerID": run.container_id,
                    }
                }
                run.restart_count += 1
            elif "terminated" in state:
                run.last_state = {"terminated": state["terminated"]}
                run.restart_count += 1

    # ------------------------------------------------------------- lifecycle

    def update(self, pod: JsonObject) -> None:
        self.pod = pod
        if pod["metadata"].get("deletionTimestamp") and not self.stopping:
            self.stopping = True
            self._stop_wake.set()

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=f"pod {self.namespace}/{self.name}")

    async def _run(self) -> None:
        try:
            if not self.stopping:
                await self._prepare_volumes()
                self._refresher = asyncio.create_task(self._refresh_tokens())
            if not self.stopping and not self.initialized:
                await self._run_inits()
            if not self.stopping and self.initialized:
                for run in self.mains:
                    task = asyncio.create_task(self._run_container(run))
                    task.add_done_callback(self._report_failure)
                    self._tasks.append(task)
                await self._publish()
                await self._until_stopping_or_done()
            if self.stopping:
                await self._terminate()
                await self._finish_deletion()
        except asyncio.CancelledError:
            raise
        except _PodGone:
            await self._kill_all()
            self.cleanup()
        except Exception:
            log.exception("pod %s/%s failed in the kubelet", self.namespace, self.name)

    def _report_failure(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        error = task.exception()
        if isinstance(error, Exception) and not isinstance(error, _PodGone):
            log.error(
                "a container of pod %s/%s failed in the kubelet", self.namespace, self.name, exc_info=error
            )

    async def _until_stopping_or_done(self) -> None:
        while not self.stopping:
            if self._tasks and all(t.done() for t in self._tasks):
                await self._publish()
                break
            self._stop_wake.clear()
            waiters = [t for t in self._tasks if not t.done()]
            stop = asyncio.create_task(self._stop_wake.wait())
            try:
                await asyncio.wait([stop, *waiters], return_when=asyncio.FIRST_COMPLETED)
            finally:
                stop.cancel()
        # Deletion may come after the pod ended, too.
        while not self.stopping:
            self._stop_wake.clear()
            await self._stop_wake.wait()

    async def _sleep_unless_stopping(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wait_stopping(), seconds)

    async def _wait_stopping(self) -> None:
        while not self.stopping:
            self._stop_wake.clear()
            await self._stop_wake.wait()

    # --------------------------------------------------------------- volumes

    async def _prepare_volumes(self) -> None:
        """Set up the volumes, retrying with back-off on any failure (reported as FailedMount)."""
        delay = 0.3
        while not self.stopping:
            try:
                self.volumes = await self.kubelets.volumes.prepare(self.pod, self.root)
                self.volumes_ready = True
                return
            except VolumeNotReady as exc:
                await self._event_once("Warning", "FailedMount", str(exc))
                await self._publish()
            except Exception as exc:
                log.warning("volumes of pod %s/%s: %s", self.namespace, self.name, exc)
                await self._event_once("Warning", "FailedMount", f"MountVolume.SetUp failed: {exc}")
                await self._publish()
            await self._sleep_unless_stopping(delay)
            delay = min(delay * 2, 10.0)

    async def _refresh_tokens(self) -> None:
        """kubelet's token manager: projected service-account tokens are renewed at 80% of their lifetime."""
        while not self.stopping:
            delay = token_refresh_delay(projected_token_lifetimes(self.pod))
            if delay is None:
                return
            await self._sleep_unless_stopping(delay)
            while not self.stopping:
                try:
                    await self.kubelets.volumes.refresh_tokens(self.pod, self.root)
                    break
                except Exception as exc:
                    log.warning("renewing the tokens of pod %s/%s: %s", self.namespace, self.name, exc)
                    await self._sleep_unless_stopping(10.0)

    # ----------------------------------------------------------- containers

    async def _run_inits(self) -> None:
        for run in self.inits:
            if run.done:
                continue
            backoff = BACKOFF_START
            while not self.stopping:
                code = await self._run_once(run)
                if code is None or self.stopping:
                    return
                if code == 0:
                    run.ready, run.done = True, True
                    break
                if self.restart_policy == "Never":
                    run.done = True
                    self.init_failed = True
                    await self._publish()
                    await self._wait_stopping()
                    return
                await self._back_off(run, backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
        if not self.stopping:
            self.initialized = True
            for run in self.mains:
                run.state = {"waiting": {"reason": "ContainerCreating"}}

    async def _run_container(self, run: ContainerRun) -> None:
        backoff = BACKOFF_START
        while not self.stopping:
            code = await self._run_once(run)
            if code is None or self.stopping:
                return
            restart = self.restart_policy == "Always" or (self.restart_policy == "OnFailure" and code != 0)
            if not restart:
                run.done = True
                await self._publish()
                return
            await self._back_off(run, backoff)
            backoff = min(backoff * 2, BACKOFF_MAX)

    async def _back_off(self, run: ContainerRun, delay: float) -> None:
        run.last_state = {"terminated": run.state.get("terminated", {})}
        run.state = {
            "waiting": {
                "reason": "CrashLoopBackOff",
                "message": f"back-off {int(delay)}s restarting failed container={run.name} "
                f"pod={self.name}_{self.namespace}({self.uid})",
            }
        }
        await self._publish()
        await self._sleep_unless_stopping(delay)
        if not self.stopping:
            run.restart_count += 1

    async def _run_once(self, run: ContainerRun) -> int | None:
        """Start the container and wait for it; its exit code, or None when stopped before it ran."""
        spec = await self._container_spec(run)
        if spec is None:
            return None
        log_path = container_log(self.root, self.pod, run.name, run.restart_count)
        started_at = now_rfc3339(self.kubelets.engine.clock)
        run.container_id = f"sandbox://{uuid.uuid4().hex}"
        try:
            process = await spawn(spec, log_path)
        except Exception as exc:
            run.state = {
                "terminated": {
                    "exitCode": 128,
                    "reason": "StartError",
                    "message": str(exc),
                    "startedAt": started_at,
                    "finishedAt": started_at,
                    "containerID": run.container_id,
                }
            }
            await self._publish()
            return 128
        run.process = process
        run.state = {"running": {"startedAt": started_at}}
        run.started = not run.init
        probe = (run.spec.get("readinessProbe") or {}) if not run.init else {}
        run.ready = not run.init and not probe
        await self._event_once("Normal", "Started", f"Started container {run.name}", key=run.container_id)
        await self._publish()
        prober = asyncio.create_task(self._probe(run, probe, spec)) if probe else None
        try:
            code = await process.wait()
        finally:
            if prober is not None:
                prober.cancel()
                await asyncio.gather(prober, return_exceptions=True)
            run.kill_helpers()  # exec sessions and probes end with their container
        run.process = None
        run.ready = run.init and code == 0
        run.started = False
        run.state = {
            "terminated": {
                "exitCode": code,
                "reason": "Completed" if code == 0 else "Error",
                "startedAt": started_at,
                "finishedAt": now_rfc3339(self.kubelets.engine.clock),
                "containerID": run.container_id,
            }
        }
        await self._publish()
        return code

    async def _container_spec(self, run: ContainerRun) -> SandboxSpec | None:
        """How to start the container, retried with back-off while that fails (the container waits).

        As in kubelet, a configuration error is not a run: the restart count stays and the
        container waits with the reason until the missing piece appears or the pod is deleted.
        """
        delay = BACKOFF_START
        while not self.stopping:
            try:
                return await self.kubelets.container_spec(self, run)
            except Exception as exc:
                config = isinstance(exc, ConfigError | PathEscape)
                if not config:
                    log.warning("container %s of pod %s/%s: %s", run.name, self.namespace, self.name, exc)
                reason = "CreateContainerConfigError" if config else "CreateContainerError"
                run.state = {"waiting": {"reason": reason, "message": str(exc)}}
                await self._publish()
                await self._event_once("Warning", "Failed", f"Error: {exc}")
            await self._sleep_unless_stopping(delay)
            delay = min(delay * 2, BACKOFF_MAX)
        return None

    async def _probe(self, run: ContainerRun, probe: JsonObject, spec: SandboxSpec) -> None:
        """Readiness: exec probes run in the container; other kinds pass once the process runs."""
        command = (probe.get("exec") or {}).get("command")
        if not command:
            run.ready = True
            await self._publish()
            return
        period = max(1, int(probe.get("periodSeconds") or 10))
        threshold = max(1, int(probe.get("failureThreshold") or 3))
        timeout = max(1, int(probe.get("timeoutSeconds") or 1))
        await asyncio.sleep(max(0, int(probe.get("initialDelaySeconds") or 0)))
        failures = 0
        while True:
            ok = await _run_probe(
                dataclasses.replace(spec, argv=[str(c) for c in command]), timeout, run.helpers
            )
            failures = 0 if ok else failures + 1
            ready = ok or (run.ready and failures < threshold)
            if ready != run.ready:
                run.ready = ready
                await self._publish()
            await asyncio.sleep(period)

    # ------------------------------------------------------------ stopping

    async def _terminate(self) -> None:
        """SIGTERM every container, SIGKILL what remains after the grace period."""
        running = [r for r in [*self.inits, *self.mains] if r.process is not None]
        for run in running:
            assert run.process is not None
            signal_main(run.process.pid, signal.SIGTERM)
            await self._event_once(
                "Normal", "Killing", f"Stopping container {run.name}", key=run.container_id
            )
        started = time.monotonic()
        while any(r.process is not None for r in running):
            grace = int(self.pod["metadata"].get("deletionGracePeriodSeconds") or 0)
            if time.monotonic() - started >= grace:
                break
            await asyncio.sleep(0.05)
        await self._kill_all()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _kill_all(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
        for run in [*self.inits, *self.mains]:
            run.kill_helpers()
            process = run.process
            if process is not None:
                kill_group(process.pid)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(process.wait(), 5)
        for task in self._tasks:
            task.cancel()

    async def _finish_deletion(self) -> None:
        """Report the containers terminated, then delete the pod for good (grace period 0)."""
        now = now_rfc3339(self.kubelets.engine.clock)
        for run in [*self.inits, *self.mains]:
            if "terminated" not in run.state:
                started = (run.state.get("running") or {}).get("startedAt")
                if started is None and not run.container_id:
                    continue
                run.state = {
                    "terminated": {
                        "exitCode": 137,
                        "reason": "Error",
                        "startedAt": started,
                        "finishedAt": now,
                        "containerID": run.container_id,
                    }
                }
            run.ready = False
        with contextlib.suppress(_PodGone):
            await self._publish()
        rt = self.kubelets.pods_rt
        with contextlib.suppress(apierrors.ApiError):
            await self.kubelets.engine.delete(
                Target(rt, self.namespace, self.name),
                DeleteOptions(grace_period_seconds=0, precondition_uid=self.uid),
            )
        self.finished = True
        self.cleanup()

    def cleanup(self) -> None:
        """What kubelet removes once a pod is gone: its volumes' mount points, containers and logs."""
        shutil.rmtree(pod_dir(self.root, self.uid), ignore_errors=True)
        shutil.rmtree(self.root / "var" / "lib" / "containers" / self.uid, ignore_errors=True)
        shutil.rmtree(pod_log_dir(self.root, self.namespace, self.name, self.uid), ignore_errors=True)

    async def kill(self) -> None:
        """The pod was removed without a graceful period: stop at once."""
        self.stopping = True
        self._stop_wake.set()
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(BaseException):
                await self.task
        await self._kill_all()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -------------------------------------------------------------- status

    def phase(self) -> str:
        if self.init_failed:
            return "Failed"
        if not self.initialized:
            return "Pending"
        states = [r.state for r in self.mains]
        if any(
            "waiting" in s and not r.restart_count and not r.last_state
            for s, r in zip(states, self.mains, strict=True)
        ):
            return "Pending"
        if any("running" in s or "waiting" in s for s in states):
            return "Running"
        codes = [int(s["terminated"].get("exitCode", 0)) for s in states if "terminated" in s]
        if self.restart_policy == "Always" and not self.stopping:
            return "Running"
        if all(code == 0 for code in codes):
            return "Succeeded"
        if self.restart_policy == "OnFailure" and not self.stopping:
            return "Running"
        return "Failed"

    def status(self, current: JsonObject) -> JsonObject:
        """The pod status kubelet reports, over what the API server holds (PodScheduled stays)."""
        now = now_rfc3339(self.kubelets.engine.clock)
        status = copy.deepcopy(current.get("status") or {})
        phase = self.phase()
        holder = {"status": status}
        set_condition(holder, "PodReadyToStartContainers", "True" if self.volumes_ready else "False", now)
        incomplete = [r.name for r in self.inits if not r.done or self.init_failed]
        if self.initialized or not self.inits:
            set_condition(holder, "Initialized", "True", now)
        else:
            set_condition(
                holder,
                "Initialized",
                "False",
                now,
                "ContainersNotInitialized",
                f"containers with incomplete status: [{' '.join(incomplete)}]",
            )
        unready = [r.name for r in self.mains if not r.ready]
        for kind in ("ContainersReady", "Ready"):
            if phase == "Succeeded":
                set_condition(holder, kind, "False", now, "PodCompleted")
            elif unready:
                set_condition(
                    holder,
                    kind,
                    "False",
                    now,
                    "ContainersNotReady",
                    f"containers with unready status: [{' '.join(unready)}]",
                )
            else:
                set_condition(holder, kind, "True", now)
        order = ["PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"]
        status["conditions"] = sorted(
            status.get("conditions") or [],
            key=lambda c: order.index(c.get("type")) if c.get("type") in order else len(order),
        )
        status["phase"] = phase
        status["hostIP"] = POD_IP
        status["hostIPs"] = [{"ip": POD_IP}]
        status["podIP"] = POD_IP
        status["podIPs"] = [{"ip": POD_IP}]
        status["startTime"] = self.start_time
        if self.inits:
            inits = []
            for run in self.inits:
                entry = run.status()
                entry["started"] = "running" in run.state
                if not self.initialized and "terminated" not in run.state and "running" not in run.state:
                    entry["state"] = {"waiting": {"reason": "PodInitializing"}}
                inits.append(entry)
            status["initContainerStatuses"] = inits
        mains = []
        for run in self.mains:
            entry = run.status()
            if not self.initialized and self.volumes_ready and self.inits:
                entry["state"] = {"waiting": {"reason": "PodInitializing"}}
            mains.append(entry)
        status["containerStatuses"] = mains
        status.setdefault("qosClass", "BestEffort")
        return status

    async def _publish(self) -> None:
        """Write the status when it changed; raises _PodGone when the pod no longer exists."""
        async with self._publish_lock:
            engine = self.kubelets.engine
            rt = self.kubelets.pods_rt
            for _ in range(10):
                try:
                    current = await engine.get(Target(rt, self.namespace, self.name))
                except apierrors.ApiError as exc:
                    if exc.code == 404:
                        raise _PodGone from None
                    raise
                if current["metadata"].get("uid") != self.uid:
                    raise _PodGone
                status = self.status(current)
                if status == current.get("status"):
                    return
                body = {**current, "status": status}
                try:
                    await engine.update(Target(rt, self.namespace, self.name, "status"), body, WriteOptions())
                    return
                except apierrors.ApiError as exc:
                    if exc.code == 404:
                        raise _PodGone from None
                    if exc.code != 409:
                        raise
            log.warning("status of pod %s/%s not written: too many conflicts", self.namespace, self.name)

    async def _event_once(self, kind: str, reason: str, message: str, key: str = "") -> None:
        marker = (reason, message, key)
        if marker in self.kubelets.reported.setdefault(self.uid, set()):
            return
        self.kubelets.reported[self.uid].add(marker)
        await record_event(self.kubelets.engine, self.pod, kind, reason, message, "kubelet", self.node)


class _PodGone(Exception):
    pass


async def _run_probe(spec: SandboxSpec, timeout: int, running: set[asyncio.subprocess.Process]) -> bool:
    """Run an exec probe; its process group is killed on timeout or when the probe is cancelled."""
    try:
        process = await asyncio.create_subprocess_exec(
            *bwrap_argv(spec),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError:
        return False
    running.add(process)
    try:
        return await asyncio.wait_for(process.wait(), timeout) == 0
    except TimeoutError:
        return False
    finally:
        running.discard(process)
        if process.returncode is None:
            kill_group(process.pid)
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(process.wait())


# ------------------------------------------------------------------ volumes


class Volumes:
    """Sets up a pod's volumes under its node's kubelet directory."""

    def __init__(self, kubelets: Kubelets) -> None:
        self.kubelets = kubelets

    async def prepare(self, pod: JsonObject, root: Path) -> dict[str, Path]:
        """Every volume's directory (created or linked); raises VolumeNotReady to retry later."""
        base = pod_dir(root, pod["metadata"]["uid"]) / "volumes"
        paths: dict[str, Path] = {}
        for volume in (pod.get("spec") or {}).get("volumes") or []:
            name = str(volume.get("name", ""))
            try:
                path_segment(name, "volume name")
                paths[name] = await self._one(pod, root, base, name, volume)
            except PathEscape as exc:
                raise VolumeNotReady(f'MountVolume.SetUp failed for volume "{name}" : {exc}') from None
        return paths

    async def refresh_tokens(self, pod: JsonObject, root: Path) -> None:
        """Write fresh tokens into the pod's projected volumes that carry one (kubelet's rotation)."""
        base = pod_dir(root, pod["metadata"]["uid"]) / "volumes"
        for volume in (pod.get("spec") or {}).get("volumes") or []:
            source = volume.get("projected") or {}
            sources = source.get("sources") or []
            if not any("serviceAccountToken" in s for s in sources):
                continue
            name = path_segment(str(volume.get("name", "")), "volume name")
            files = await self._projected(pod, sources, name)
            _write_files(base / "kubernetes.io~projected" / name, files, source.get("defaultMode"))

    async def _one(self, pod: JsonObject, root: Path, base: Path, name: str, volume: JsonObject) -> Path:
        namespace = pod["metadata"]["namespace"]
        if "persistentVolumeClaim" in volume:
            return await self._claim(namespace, base, name, volume["persistentVolumeClaim"] or {})
        if "emptyDir" in volume:
            path = base / "kubernetes.io~empty-dir" / name
            path.mkdir(parents=True, exist_ok=True)
            return path
        if "hostPath" in volume:
            return _host_path(root, volume["hostPath"] or {}, name, self.kubelets.sandbox_dir / "volumes")
        if "configMap" in volume:
            source = volume["configMap"] or {}
            files = await self._config_files("configmaps", namespace, source, name)
            return _write_files(base / "kubernetes.io~configmap" / name, files, source.get("defaultMode"))
        if "secret" in volume:
            source = volume["secret"] or {}
            files = await self._config_files(
                "secrets", namespace, {**source, "name": source.get("secretName")}, name
            )
            return _write_files(base / "kubernetes.io~secret" / name, files, source.get("defaultMode"))
        if "downwardAPI" in volume:
            source = volume["downwardAPI"] or {}
            files = _downward_files(pod, source.get("items") or [])
            return _write_files(base / "kubernetes.io~downward-api" / name, files, source.get("defaultMode"))
        if "projected" in volume:
            source = volume["projected"] or {}
            files = await self._projected(pod, source.get("sources") or [], name)
            return _write_files(base / "kubernetes.io~projected" / name, files, source.get("defaultMode"))
        # A kind of volume the sandbox does not model: an empty directory keeps the mounts working.
        path = base / "kubernetes.io~empty-dir" / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    async def _claim(self, namespace: str, base: Path, name: str, ref: JsonObject) -> Path:
        claim_name = str(ref.get("claimName", ""))
        claim = await self.kubelets.get("persistentvolumeclaims", namespace, claim_name)
        if claim is None:
            raise VolumeNotReady(f'persistentvolumeclaim "{claim_name}" not found')
        volume_name = (claim.get("spec") or {}).get("volumeName")
        if not volume_name or (claim.get("status") or {}).get("phase") != "Bound":
            raise VolumeNotReady(f'persistentvolumeclaim "{claim_name}" is not bound')
        pv = await self.kubelets.get("persistentvolumes", None, str(volume_name))
        if pv is None:
            raise VolumeNotReady(f'persistentvolume "{volume_name}" not found')
        spec = pv.get("spec") or {}
        csi = spec.get("csi")
        if csi:
            if csi.get("driver") != HOSTPATH_DRIVER:
                raise VolumeNotReady(
                    f"driver name {csi.get('driver')} not found in the list of registered CSI drivers"
                )
            handle = str(csi.get("volumeHandle", ""))
            if not valid_handle(handle):
                raise VolumeNotReady(
                    f'MountVolume.SetUp failed for volume "{volume_name}" : invalid volume handle {handle!r}'
                )
            target = volume_dir(self.kubelets.sandbox_dir, handle)
            link = base / "kubernetes.io~csi" / path_segment(str(volume_name), "volume name") / "mount"
        elif spec.get("hostPath"):
            # A hostPath PV names a directory of the host (the sandbox's nodes share it).
            path = str(spec["hostPath"].get("path", ""))
            if not path.startswith("/") or ".." in path.split("/"):
                raise VolumeNotReady(
                    f'MountVolume.SetUp failed for volume "{volume_name}" : '
                    f"hostPath {path!r} must be an absolute path without '..'"
                )
            target = Path(path)
            link = base / "kubernetes.io~host-path" / name
        else:
            raise VolumeNotReady(
                f'persistentvolume "{volume_name}" has no volume source the sandbox can mount'
            )
        if not target.is_dir():
            # The driver or the administrator creates a volume's directory; the kubelet never does.
            raise VolumeNotReady(
                f'MountVolume.SetUp failed for volume "{volume_name}" : the volume\'s directory {target} does not exist'
            )
        _symlink(link, target)
        return link

    async def _config_files(
        self, resource: str, namespace: str, source: JsonObject, volume: str
    ) -> dict[str, bytes]:
        name = str(source.get("name") or "")
        obj = await self.kubelets.get(resource, namespace, name)
        if obj is None and resource == "configmaps" and name == "kube-root-ca.crt" and self.kubelets.ca_pem:
            obj = {"data": {"ca.crt": self.kubelets.ca_pem}}
        if obj is None:
            if source.get("optional"):
                return {}
            kind = "configmap" if resource == "configmaps" else "secret"
            raise VolumeNotReady(
                f'MountVolume.SetUp failed for volume "{volume}" : {kind} "{name}" not found'
            )
        data = _object_data(obj)
        items = source.get("items")
        if not items:
            return data
        files: dict[str, bytes] = {}
        for item in items:
            key = str(item.get("key", ""))
            if key not in data:
                if source.get("optional"):
                    continue
                raise VolumeNotReady(
                    f'MountVolume.SetUp failed for volume "{volume}" : configmap references non-existent config key: {key}'
                )
            files[str(item.get("path") or key)] = data[key]
        return files

    async def _projected(self, pod: JsonObject, sources: list[JsonObject], volume: str) -> dict[str, bytes]:
        namespace = pod["metadata"]["namespace"]
        files: dict[str, bytes] = {}
        for source in sources:
            if "serviceAccountToken" in source:
                token_source = source["serviceAccountToken"] or {}
                token = await self.kubelets.pod_token(pod, token_source)
                files[str(token_source.get("path") or "token")] = token.encode()
            elif "configMap" in source:
                files.update(
                    await self._config_files("configmaps", namespace, source["configMap"] or {}, volume)
                )
            elif "secret" in source:
                files.update(await self._config_files("secrets", namespace, source["secret"] or {}, volume))
            elif "downwardAPI" in source:
                files.update(_downward_files(pod, (source["downwardAPI"] or {}).get("items") or []))
        return files


def _entries(directory: Path) -> list[Path]:
    try:
        return list(directory.iterdir())
    except OSError:
        return []


def _symlink(link: Path, target: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink():
        if Path(link.readlink()) == target:
            return
        link.unlink()
    elif link.exists():
        shutil.rmtree(link)
    link.symlink_to(target)


def _sub_path(volume: Path, relative: str, also: list[Path]) -> Path:
    """A mount's subPath inside its volume: a directory is made when missing; a file is bound as a file."""
    try:
        path = contained(volume, relative, "subPath", also=also)
    except PathEscape as exc:
        raise ConfigError(f"failed to prepare subPath for volumeMount: {exc}") from None
    if not path.exists() and not path.is_symlink():
        path.mkdir(parents=True, exist_ok=True)
    return path


def _host_path(root: Path, source: JsonObject, volume: str, driver_data: Path) -> Path:
    """A pod's hostPath volume: a path of the node, that is, under the node's root.

    Symlinks under the node's root may lead into the CSI driver's data (a volume's mount
    under ``var/lib/kubelet``), which a node-level pod reads; nothing else outside the root.
    """
    path = contained(root, str(source.get("path", "/")).lstrip("/"), "hostPath", also=[driver_data])
    kind = source.get("type") or ""
    if kind in ("Directory", "File", "Socket", "CharDevice", "BlockDevice") and not path.exists():
        raise VolumeNotReady(
            f'MountVolume.SetUp failed for volume "{volume}" : hostPath type check failed: '
            f"{source.get('path')} is not a {kind.lower()}"
        )
    if kind == "FileOrCreate":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(exist_ok=True)
    elif not path.exists():
        path.mkdir(parents=True, exist_ok=True)
    return path


def _object_data(obj: JsonObject) -> dict[str, bytes]:
    data: dict[str, bytes] = {}
    if obj.get("kind") == "Secret" or "type" in obj:
        for key, value in (obj.get("data") or {}).items():
            data[key] = base64.b64decode(str(value))
        return data
    for key, value in (obj.get("data") or {}).items():
        data[key] = str(value).encode()
    for key, value in (obj.get("binaryData") or {}).items():
        data[key] = base64.b64decode(str(value))
    return data


def _write_files(directory: Path, files: Mapping[str, bytes], mode: Any) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    file_mode = int(mode) if isinstance(mode, int) else 0o644
    for relative, content in files.items():
        try:
            target = contained(directory, relative, "file path")
        except PathEscape:
            continue  # kube refuses such paths; never write outside the volume
        if target == directory:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        # Replaced, not rewritten: a reader in the container never sees half a file (a renewed token).
        temporary = target.with_name(f".{target.name}.tmp")
        temporary.write_bytes(content)
        temporary.chmod(file_mode)
        os.replace(temporary, target)
    return directory


def _token_seconds(source: JsonObject) -> int:
    """The lifetime a projected token asks for (kube's default one hour, at least ten minutes)."""
    try:
        seconds = int(source.get("expirationSeconds") or 3600)
    except (TypeError, ValueError):
        seconds = 3600
    return max(seconds, 600)


def projected_token_lifetimes(pod: JsonObject) -> list[int]:
    """The requested lifetime of every service-account token projected into the pod."""
    lifetimes = []
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        for source in (volume.get("projected") or {}).get("sources") or []:
            token = source.get("serviceAccountToken")
            if isinstance(token, dict):
                lifetimes.append(_token_seconds(token))
    return lifetimes


def field_value(pod: JsonObject, path: str) -> str | None:
    """A downward API ``fieldPath`` of the pod."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.podIP": POD_IP,
        "status.podIPs": POD_IP,
        "status.hostIP": POD_IP,
        "status.hostIPs": POD_IP,
    }
    if path in simple:
        value = simple[path]
        return None if value is None else str(value)
    for prefix, source in (("metadata.labels", "labels"), ("metadata.annotations", "annotations")):
        mapping = meta.get(source) or {}
        if path == prefix:
            return "\n".join(f'{k}="{v}"' for k, v in sorted(mapping.items()))
        if path.startswith(prefix + "['") and path.endswith("']"):
            value = mapping.get(path[len(prefix) + 2 : -2])
            return None if value is None else str(value)
    return None


def resource_value(pod: JsonObject, container_name: str | None, ref: JsonObject) -> str:
    """A ``resourceFieldRef``: the container's limit or request, the node's allocatable when unset."""
    resource = str(ref.get("resource", ""))
    containers = (pod.get("spec") or {}).get("containers") or []
    name = ref.get("containerName") or container_name
    container: JsonObject = next((c for c in containers if c.get("name") == name), {})
    kind, _, what = resource.partition(".")
    value = ((container.get("resources") or {}).get(kind) or {}).get(what)
    if value is None:
        value = _NODE_ALLOCATABLE.get(what, "0")
    return str(value)


def _downward_files(pod: JsonObject, items: list[JsonObject]) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for item in items:
        if "fieldRef" in item:
            value = field_value(pod, str((item["fieldRef"] or {}).get("fieldPath", "")))
        elif "resourceFieldRef" in item:
            value = resource_value(pod, None, item["resourceFieldRef"] or {})
        else:
            value = None
        if value is not None:
            files[str(item.get("path", ""))] = value.encode()
    return files


# ------------------------------------------------------------------ kubelets


class Kubelets:
    """The kubelets of the sandbox's nodes: pod workers, plus ``pods/log`` and ``pods/exec``."""

    def __init__(
        self,
        engine: Engine,
        *,
        sandbox_dir: Path,
        nodes: list[str],
        api_port: int,
        ca_pem: str,
        issuer: TokenIssuer,
    ) -> None:
        self.engine = engine
        self.sandbox_dir = sandbox_dir
        self.nodes = set(nodes)
        self.api_port = api_port
        self.ca_pem = ca_pem
        self.issuer = issuer
        self.volumes = Volumes(self)
        self.workers: dict[str, PodWorker] = {}
        self.reported: dict[str, set[tuple[str, str, str]]] = {}
        rt = engine.registry.lookup("", "v1", "pods")
        assert rt is not None
        self.pods_rt = rt
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        for node in nodes:
            node_root(sandbox_dir, node).mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------- the loop

    def poke(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="kubelets")

    async def stop(self) -> None:
        """Stop every container at once (a node going down); pods keep their status for the next start."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        workers = list(self.workers.values())
        self.workers.clear()
        await asyncio.gather(*(w.kill() for w in workers), return_exceptions=True)

    async def _run(self) -> None:
        resources = [
            ("", "pods"),
            ("", "persistentvolumeclaims"),
            ("", "persistentvolumes"),
            ("", "configmaps"),
            ("", "secrets"),
        ]
        await sync_on_changes(self.engine, resources, self._wake, self.sync_once, "kubelet sync")

    async def sync_once(self) -> None:
        listing = await self.engine.list(Target(self.pods_rt), ListOptions())
        seen: set[str] = set()
        for pod in listing["items"]:
            meta = pod["metadata"]
            node = (pod.get("spec") or {}).get("nodeName")
            if node not in self.nodes:
                continue
            uid = meta["uid"]
            seen.add(uid)
            worker = self.workers.get(uid)
            if worker is not None:
                worker.update(pod)
                finished = worker.task is not None and worker.task.done()
                if finished and meta.get("deletionTimestamp") and not worker.finished:
                    worker.task = None  # a finished pod being deleted: let a new pass delete it
                    worker.start()
                continue
            phase = (pod.get("status") or {}).get("phase")
            if phase in ("Succeeded", "Failed") and not meta.get("deletionTimestamp"):
                continue
            worker = PodWorker(self, pod)
            worker.update(pod)
            self.workers[uid] = worker
            worker.start()
        for uid in [u for u in self.workers if u not in seen]:
            worker = self.workers.pop(uid)
            self.reported.pop(uid, None)
            await worker.kill()
            worker.cleanup()
        self._remove_orphans(seen)

    def _remove_orphans(self, known: set[str]) -> None:
        """kubelet's housekeeping: the directories and logs of pods that no longer exist go."""
        for node in self.nodes:
            root = node_root(self.sandbox_dir, node)
            for base in (pod_dir(root, "x").parent, root / "var" / "lib" / "containers"):
                for entry in _entries(base):
                    if entry.name not in known and entry.name not in self.workers:
                        shutil.rmtree(entry, ignore_errors=True)
            for entry in _entries(root / "var" / "log" / "pods"):
                uid = entry.name.rsplit("_", 1)[-1]
                if uid not in known and uid not in self.workers:
                    shutil.rmtree(entry, ignore_errors=True)

    # ------------------------------------------------------------- helpers

    async def get(self, resource: str, namespace: str | None, name: str) -> JsonObject | None:
        return await get_core(self.engine, resource, namespace, name)

    async def pod_token(self, pod: JsonObject, source: JsonObject) -> str:
        """A projected service-account token bound to the pod, as kubelet requests it."""
        meta = pod["metadata"]
        name = (pod.get("spec") or {}).get("serviceAccountName") or "default"
        account = await self.get("serviceaccounts", meta["namespace"], name)
        if account is None:
            raise VolumeNotReady(f'failed to fetch token: serviceaccounts "{name}" not found')
        audience = str(source.get("audience") or "")
        audiences = [audience] if audience else [ISSUER]
        token, _ = self.issuer.issue(
            namespace=meta["namespace"],
            name=name,
            uid=account["metadata"]["uid"],
            audiences=audiences,
            expiration_seconds=pod_token_lifetime(_token_seconds(source), audiences),
            pod=pod,
        )
        return token

    async def container_spec(self, worker: PodWorker, run: ContainerRun) -> SandboxSpec:
        """How to start a container: its root, mounts, environment and command."""
        pod = worker.pod
        env = await self._environment(pod, run.spec)
        rootfs = container_rootfs(worker.root, worker.uid, run.name)
        prepare_rootfs(rootfs)
        driver_data = self.sandbox_dir / "volumes"
        mounts = []
        node_access = False
        for mount in run.spec.get("volumeMounts") or []:
            volume_name = str(mount.get("name", ""))
            source = worker.volumes.get(volume_name)
            if source is None:
                raise ConfigError(f'unable to find volume "{volume_name}" for mount {mount.get("mountPath")}')
            volume = next(v for v in pod["spec"].get("volumes") or [] if v.get("name") == volume_name)
            node_access = node_access or "hostPath" in volume
            # $(VAR) expands in subPathExpr only; a subPath is taken literally, as kube does.
            sub_path = str(mount.get("subPath") or "")
            if mount.get("subPathExpr"):
                sub_path = expand_references(str(mount["subPathExpr"]), env)
            if sub_path:
                source = _sub_path(source, sub_path, [driver_data] if "hostPath" in volume else [])
            read_only = bool(mount.get("readOnly")) or any(
                k in volume for k in ("configMap", "secret", "projected", "downwardAPI")
            )
            mounts.append(Mount(source, str(mount.get("mountPath", "")), read_only))
        if node_access:
            # The node's volume symlinks point into the driver's data: a node-level pod follows them.
            driver_data.mkdir(parents=True, exist_ok=True)
            mounts.append(Mount(driver_data, str(driver_data), False))
        argv = container_argv(run.spec, env)
        read_only_paths = python_paths() if argv[:1] == [sys.executable] else []
        return SandboxSpec(
            rootfs=rootfs,
            argv=argv,
            env=env,
            working_dir=str(run.spec.get("workingDir") or "/"),
            mounts=mounts,
            read_only_paths=read_only_paths,
            host_view=is_strongroom_image(str(run.spec.get("image", ""))),
        )

    async def _environment(self, pod: JsonObject, container: JsonObject) -> dict[str, str]:
        meta = pod["metadata"]
        port = str(self.api_port)
        env: dict[str, str] = {
            "PATH": _PATH,
            "HOSTNAME": meta["name"],
            "KUBERNETES_SERVICE_HOST": POD_IP,
            "KUBERNETES_SERVICE_PORT": port,
            "KUBERNETES_SERVICE_PORT_HTTPS": port,
            "KUBERNETES_PORT": f"tcp://{POD_IP}:{port}",
            "KUBERNETES_PORT_443_TCP": f"tcp://{POD_IP}:{port}",
            "KUBERNETES_PORT_443_TCP_PROTO": "tcp",
            "KUBERNETES_PORT_443_TCP_PORT": port,
            "KUBERNETES_PORT_443_TCP_ADDR": POD_IP,
        }
        namespace = meta["namespace"]
        for source in container.get("envFrom") or []:
            prefix = str(source.get("prefix") or "")
            for kind, resource in (("configMapRef", "configmaps"), ("secretRef", "secrets")):
                ref = source.get(kind)
                if not ref:
                    continue
                obj = await self.get(resource, namespace, str(ref.get("name", "")))
                if obj is None:
                    if ref.get("optional"):
                        continue
                    raise ConfigError(f'{resource[:-1]} "{ref.get("name")}" not found')
                for key, data in _object_data(obj).items():
                    env[prefix + key] = data.decode(errors="replace")
        for item in container.get("env") or []:
            name = str(item.get("name", ""))
            if "valueFrom" not in item:
                env[name] = expand_references(str(item.get("value") or ""), env)
                continue
            resolved = await self._value_from(pod, container, item.get("valueFrom") or {})
            if resolved is not None:
                env[name] = resolved
        # The runtime's HOME unless the pod sets one. strongroom's pods see the host's
        # directories, so the host's /root (and its kubeconfig) must not be their home.
        env.setdefault("HOME", "/tmp" if is_strongroom_image(str(container.get("image", ""))) else "/root")
        return env

    async def _value_from(self, pod: JsonObject, container: JsonObject, source: JsonObject) -> str | None:
        namespace = pod["metadata"]["namespace"]
        if "fieldRef" in source:
            path = str((source["fieldRef"] or {}).get("fieldPath", ""))
            value = field_value(pod, path)
            if value is None and not path.startswith("metadata."):
                raise ConfigError(f"unsupported fieldPath: {path}")
            return value or ""
        if "resourceFieldRef" in source:
            return resource_value(pod, str(container.get("name", "")), source["resourceFieldRef"] or {})
        for kind, resource in (("configMapKeyRef", "configmaps"), ("secretKeyRef", "secrets")):
            ref = source.get(kind)
            if not ref:
                continue
            obj = await self.get(resource, namespace, str(ref.get("name", "")))
            singular = "configmap" if resource == "configmaps" else "secret"
            if obj is None:
                if ref.get("optional"):
                    return None
                raise ConfigError(f'{singular} "{ref.get("name")}" not found')
            data = _object_data(obj)
            key = str(ref.get("key", ""))
            if key not in data:
                if ref.get("optional"):
                    return None
                raise ConfigError(
                    f"couldn't find key {key} in {singular.capitalize()} {namespace}/{ref.get('name')}"
                )
            return data[key].decode(errors="replace")
        return None

    # ------------------------------------------------------------ PodRuntime

    async def _pod(self, namespace: str, name: str) -> JsonObject:
        pod = await self.get("pods", namespace, name)
        if pod is None:
            raise apierrors.not_found("", "pods", name)
        return pod

    @staticmethod
    def _container(pod: JsonObject, container: str | None) -> tuple[str, bool]:
        """The named (or only) container and whether it is an init container; 400 as kube words it."""
        name = pod["metadata"]["name"]
        spec = pod.get("spec") or {}
        mains = [str(c.get("name")) for c in spec.get("containers") or []]
        inits = [str(c.get("name")) for c in spec.get("initContainers") or []]
        if not container:
            if len(mains) == 1:
                return mains[0], False
            message = f"a container name must be specified for pod {name}, choose one of: [{' '.join(mains)}]"
            if inits:
                message += f" or one of the init containers: [{' '.join(inits)}]"
            raise apierrors.bad_request(message)
        if container in mains:
            return container, False
        if container in inits:
            return container, True
        raise apierrors.bad_request(f"container {container} is not valid for pod {name}")

    def _run_of(self, pod: JsonObject, container: str) -> ContainerRun | None:
        worker = self.workers.get(pod["metadata"]["uid"])
        if worker is None:
            return None
        return next((r for r in [*worker.inits, *worker.mains] if r.name == container), None)

    async def exec(
        self, namespace: str, pod: str, container: str | None, command: list[str], *, tty: bool
    ) -> asyncio.subprocess.Process:
        obj = await self._pod(namespace, pod)
        if not (obj.get("spec") or {}).get("nodeName"):
            raise apierrors.bad_request(f"pod {pod} does not have a host assigned")
        phase = (obj.get("status") or {}).get("phase")
        if phase in ("Succeeded", "Failed"):
            raise apierrors.bad_request(
                f"cannot exec into a container in a completed pod; current phase is {phase}"
            )
        name, _ = self._container(obj, container)
        worker = self.workers.get(obj["metadata"]["uid"])
        run = self._run_of(obj, name)
        if worker is None or run is None or run.process is None:
            raise apierrors.bad_request(f'unable to upgrade connection: container not found ("{name}")')
        try:
            spec = await self.container_spec(worker, run)
        except ConfigError as exc:
            raise apierrors.internal(f"error preparing the container for exec: {exc}") from exc
        exec_spec = dataclasses.replace(spec, argv=list(command))
        try:
            process = await asyncio.create_subprocess_exec(
                *bwrap_argv(exec_spec),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT if tty else asyncio.subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            raise apierrors.internal(f"error executing command in container: {exc}") from exc
        # Tracked with the container: the session ends when the container or its pod does.
        for ended in [p for p in run.helpers if p.returncode is not None]:
            run.helpers.discard(ended)
        run.helpers.add(process)
        return process

    async def logs(self, namespace: str, pod: str, options: LogOptions) -> AsyncIterator[bytes]:
        """The container's log; an empty chunk comes first once the request is known to be valid."""
        stream = await self._open_log(namespace, pod, options)
        yield b""
        async for chunk in stream:
            yield chunk

    async def _open_log(self, namespace: str, pod: str, options: LogOptions) -> AsyncIterator[bytes]:
        obj = await self._pod(namespace, pod)
        node = (obj.get("spec") or {}).get("nodeName")
        if not node or node not in self.nodes:
            raise apierrors.bad_request(f"pod {pod} does not have a host assigned")
        name, init = self._container(obj, options.container)
        status = obj.get("status") or {}
        statuses = status.get("initContainerStatuses" if init else "containerStatuses") or []
        entry = next((s for s in statuses if s.get("name") == name), None)
        run = self._run_of(obj, name)
        restart = run.restart_count if run is not None else int((entry or {}).get("restartCount") or 0)
        root = node_root(self.sandbox_dir, node)
        path = container_log(root, obj, name, restart)
        if options.previous:
            path = container_log(root, obj, name, restart - 1)
            if restart < 1 or not path.exists():
                raise apierrors.bad_request(
                    f'previous terminated container "{name}" in pod "{pod}" not found'
                )
        elif not path.exists():
            # Before the first start, or restarted and not yet running: kubelet's wording.
            previous = container_log(root, obj, name, restart - 1)
            if restart >= 1 and previous.exists():
                path = previous
            else:
                waiting = ((entry or {}).get("state") or {}).get("waiting") or {}
                reason = waiting.get("reason") or "ContainerCreating"
                raise apierrors.bad_request(
                    f'container "{name}" in pod "{pod}" is waiting to start: {reason}'
                )
        live = (
            options.follow
            and not options.previous
            and run is not None
            and run.process is not None
            and run.process.log_path == path
        )
        return self._stream(path, options, run if live else None)

    async def _stream(
        self, path: Path, options: LogOptions, run: ContainerRun | None
    ) -> AsyncIterator[bytes]:
        budget = options.limit_bytes
        raw = path.read_bytes()
        complete, _, rest = raw.rpartition(b"\n")
        lines = (
            [line for line in (parse_log_line(part) for part in complete.split(b"\n")) if line]
            if complete
            else []
        )
        chosen = select_log_lines(lines, options, time.time_ns())
        chunk = render_log(chosen, timestamps=options.timestamps)
        offset = len(raw) - len(rest)
        while True:
            if chunk:
                if budget is not None:
                    chunk = chunk[:budget]
                    budget -= len(chunk)
                yield chunk
                if budget is not None and budget <= 0:
                    return
            if run is None:
                return
            process = run.process
            if process is None or process.log_path != path:
                run = None  # the container ended: send what is left, then stop
                await asyncio.sleep(0.05)
            else:
                await asyncio.sleep(0.1)
            try:
                with path.open("rb") as handle:
                    handle.seek(offset)
                    more = handle.read()
            except OSError:
                return  # the pod is gone and kubelet removed its logs
            end = more.rfind(b"\n") + 1
            offset += end
            fresh = [line for line in (parse_log_line(p) for p in more[:end].split(b"\n")) if line]
            fresh_lines: list[LogLine] = fresh
            if options.since_seconds is not None:
                fresh_lines = select_log_lines(
                    fresh_lines, LogOptions(since_seconds=options.since_seconds), time.time_ns()
                )
            chunk = render_log(fresh_lines, timestamps=options.timestamps)
