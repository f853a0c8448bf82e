"""``must-gather``: one tarball with what support needs, gathered within a hard time limit.

The seed's OADP must-gather collects the Velero/OADP custom resources, the pod
logs of the namespace and (optionally) Prometheus metrics, limited to a time
window and to a timeout. A cluster with thousands of failed backups must not
make the run endless, so parts are gathered in priority order (location
status first, then resources, workloads and events, metrics, then logs of
the newest pods first), each log is capped, no new part starts once the
deadline nears, and everything left out is listed with its reason. The
tarball is written even when parts fail. Secrets are never listed.
"""

from __future__ import annotations

import asyncio
import functools
import io
import logging
import os
import tarfile
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import yaml

from strongroom.errors import StrongroomError, UsageError
from strongroom.kube import ApiResource, Discovery, JsonObject, KubeClient
from strongroom.model.proxy import redact_url

__all__ = [
    "BUNDLE_NAME",
    "GROUPS",
    "LOG_LIMIT_BYTES",
    "SINCE_CHOICES",
    "BundleWriter",
    "GatherOptions",
    "GatherReport",
    "gather",
    "parse_since",
]

_log = logging.getLogger(__name__)

BUNDLE_NAME = "must-gather.tar.gz"
GROUPS = ("velero.io", "oadp.openshift.io")
LOG_LIMIT_BYTES = 10 * 1024 * 1024
SINCE_CHOICES: dict[str, int | None] = {
    "1h": 3600,
    "6h": 6 * 3600,
    "24h": 24 * 3600,
    "72h": 72 * 3600,
    "all": None,
}
# Time kept back from --timeout to write the summary and close the tarball.
_RESERVE_FRACTION = 0.1
_RESERVE_MAX = 5.0


def parse_since(text: str) -> int | None:
    """The log window in seconds (None: everything the kubelet kept) for ``1h|6h|24h|72h|all``."""
    key = text.strip().lower()
    if key not in SINCE_CHOICES:
        raise UsageError(
            f"--since {text!r} is not a window must-gather knows",
            hint="use one of " + ", ".join(SINCE_CHOICES),
        )
    return SINCE_CHOICES[key]


@dataclass(frozen=True)
class GatherOptions:
    namespace: str = "openshift-adp"
    since: str = "24h"
    timeout: float = 300.0
    metrics: bool = False
    log_limit_bytes: int = LOG_LIMIT_BYTES

    @property
    def since_seconds(self) -> int | None:
        return parse_since(self.since)


@dataclass
class GatherReport:
    """What went into the bundle and what did not, with why: the body of ``summary.txt``."""

    options: GatherOptions
    started: datetime
    gathered: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    locations: list[str] = field(default_factory=list)
    metrics: list[str] = field(default_factory=list)
    left_out: list[tuple[str, str]] = field(default_factory=list)
    truncated: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.left_out

    def summary(self) -> str:
        since = self.options.since
        lines = [
            "strongroom must-gather",
            f"started: {self.started.isoformat()}",
            f"namespace: {self.options.namespace}",
            f"log window: --since {since}"
            + ("" if self.options.since_seconds is None else f" ({self.options.since_seconds}s)"),
            f"timeout: {self.options.timeout:g}s",
            "",
            "backup storage locations:",
            *(f"  {line}" for line in self.locations or ["(none found)"]),
            "",
            "counts:",
            *(f"  {name}: {count}" for name, count in self.counts.items()),
            "",
            "gathered:",
            *(f"  {name}" for name in self.gathered),
            "",
        ]
        if not self.options.metrics:
            lines.append("metrics: not requested (--metrics)")
        elif self.metrics:
            lines.extend(f"metrics: {line}" for line in self.metrics)
        if self.truncated:
            lines.extend(["", "truncated:", *(f"  {name}" for name in self.truncated)])
        lines.extend(["", "left out:"])
        lines.extend(f"  {part}: {why}" for part, why in self.left_out)
        if not self.left_out:
            lines.append("  nothing")
        return "\n".join(lines) + "\n"


class BundleWriter:
    """A gzipped tarball created 0600 from the start: support bundles hold cluster details."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self._clock = clock
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # an existing file keeps its mode through O_CREAT
        self._file = os.fdopen(fd, "wb")
        self._tar = tarfile.open(fileobj=self._file, mode="w:gz")  # noqa: SIM115 - closed by close()
        self.names: list[str] = []

    def add_bytes(self, name: str, data: bytes) -> None:
        self.add_file(name, io.BytesIO(data), len(data))

    def add_file(self, name: str, fileobj: IO[bytes], size: int) -> None:
        info = tarfile.TarInfo(f"must-gather/{name}")
        info.size = size
        info.mode = 0o600
        info.mtime = int(self._clock())
        self._tar.addfile(info, fileobj)
        self.names.append(name)

    def close(self) -> None:
        try:
            self._tar.close()
        finally:
            self._file.close()


class _Deadline:
    def __init__(self, timeout: float, clock: Callable[[], float]) -> None:
        self._clock = clock
        reserve = min(_RESERVE_MAX, max(timeout, 0.0) * _RESERVE_FRACTION)
        self._end = clock() + max(timeout, 0.0) - reserve

    def remaining(self) -> float:
        return self._end - self._clock()


def _plain(item: JsonObject) -> JsonObject:
    metadata = dict(item.get("metadata") or {})
    metadata.pop("managedFields", None)
    annotations = metadata.get("annotations")
    if isinstance(annotations, dict) and LAST_APPLIED in annotations:
        # A copy of the object as applied: it would carry whatever is masked below, unmasked.
        metadata["annotations"] = {k: v for k, v in annotations.items() if k != LAST_APPLIED}
    plain = {**item, "metadata": metadata}
    # A proxy URL may carry a user and password (OpenShift's Proxy, spec and status alike).
    for part in ("spec", "status"):
        section = plain.get(part)
        if isinstance(section, dict) and any(k in section for k in _PROXY_KEYS):
            plain[part] = {
                k: redact_url(v) if k in _PROXY_KEYS and isinstance(v, str) else v for k, v in section.items()
            }
    return plain


_PROXY_KEYS = ("httpProxy", "httpsProxy")
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"

# The cluster around the installation: what the lifecycle commands read (nodes, kubelet CSRs,
# and on OpenShift the ClusterOperators, the Proxy, etcd's operator and the control-plane Machines).
CLUSTER_KINDS: tuple[tuple[str, str], ...] = (
    ("", "nodes"),
    ("certificates.k8s.io", "certificatesigningrequests"),
    ("config.openshift.io", "clusteroperators"),
    ("config.openshift.io", "proxies"),
    ("operator.openshift.io", "etcds"),
    ("machine.openshift.io", "machines"),
)


class _Gatherer:
    def __init__(
        self,
        kube: KubeClient,
        options: GatherOptions,
        bundle: BundleWriter,
        report: GatherReport,
        deadline: _Deadline,
    ) -> None:
        self.kube = kube
        self.options = options
        self.bundle = bundle
        self.report = report
        self.deadline = deadline

    async def part(self, name: str, work: Callable[[], Awaitable[None]]) -> bool:
        """Run one part within the time left; a failure or the deadline becomes a left-out entry."""
        remaining = self.deadline.remaining()
        if remaining <= 0:
            self.report.left_out.append((name, "not started: timeout reached"))
            return False
        try:
            await asyncio.wait_for(work(), remaining)
        except TimeoutError:
            self.report.left_out.append((name, "timeout reached"))
            return False
        except StrongroomError as exc:
            self.report.left_out.append((name, f"error: {exc}"))
            return False
        return True

    async def write_list(
        self, name: str, res: ApiResource, namespace: str | None, keep: list[JsonObject] | None = None
    ) -> None:
        """One ``kind: List`` YAML document, written page by page so a huge list is never held whole."""
        count = 0
        with tempfile.TemporaryFile() as spool:
            spool.write(b"apiVersion: v1\nkind: List\nitems:\n")
            async for page in self.kube.list_pages(res, namespace=namespace):
                for item in page:
                    if item.get("kind") == "Secret":
                        continue
                    spool.write(yaml.safe_dump([_plain(item)], sort_keys=False).encode())
                    count += 1
                    if keep is not None:
                        keep.append(item)
            if count == 0:
                spool.seek(0)
                spool.truncate()
                spool.write(b"apiVersion: v1\nkind: List\nitems: []\n")
            size = spool.tell()
            spool.seek(0)
            self.bundle.add_file(name, spool, size)
        self.report.gathered.append(name)
        self.report.counts[name] = count


def _custom_resources(discovery: Discovery) -> list[ApiResource]:
    return [
        res
        for res in discovery.preferred()
        if res.group in GROUPS and "list" in res.verbs and res.kind != "Secret"
    ]


def _location_line(item: JsonObject) -> str:
    status = item.get("status") or {}
    name = (item.get("metadata") or {}).get("name", "?")
    parts = [
        f"phase={status.get('phase') or 'Unknown'}",
        f"lastValidationTime={status.get('lastValidationTime') or '-'}",
    ]
    if status.get("message"):
        parts.append(f"message={status['message']}")
    return f"{name}: " + " ".join(parts)


def _created(pod: JsonObject) -> str:
    return str((pod.get("metadata") or {}).get("creationTimestamp") or "")


def _containers(pod: JsonObject) -> list[tuple[str, int]]:
    """(container, restart count) of every init and regular container."""
    status = pod.get("status") or {}
    restarts = {
        entry.get("name"): int(entry.get("restartCount") or 0)
        for entry in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]
    }
    spec = pod.get("spec") or {}
    names = [c.get("name") for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]]
    return [(name, restarts.get(name, 0)) for name in names if isinstance(name, str)]


def _metrics_ports(pod: JsonObject) -> list[int]:
    ports: list[int] = []
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == "metrics" and isinstance(port.get("containerPort"), int):
                ports.append(port["containerPort"])
    return ports


async def _raw_get(kube: KubeClient, path: str, query: list[tuple[str, str]]) -> bytes:
    return await kube.get_raw(path, query)


async def gather(
    kube: KubeClient,
    options: GatherOptions,
    dest: Path,
    *,
    clock: Callable[[], float] = time.monotonic,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> tuple[Path, GatherReport]:
    """Gather into ``dest/must-gather.tar.gz``; the tarball is written whatever fails."""
    since_seconds = options.since_seconds  # a bad window is refused before anything is written
    deadline = _Deadline(options.timeout, clock)
    report = GatherReport(options, now())
    bundle = BundleWriter(dest / BUNDLE_NAME)
    try:
        await _gather(_Gatherer(kube, options, bundle, report, deadline), since_seconds)
    finally:
        try:
            bundle.add_bytes("summary.txt", report.summary().encode())
        finally:
            bundle.close()
    return bundle.path, report


async def _gather(g: _Gatherer, since_seconds: int | None) -> None:
    ns = g.options.namespace
    found: dict[str, Discovery] = {}

    async def discover() -> None:
        found["d"] = await g.kube.discover()

    if not await g.part("discovery", discover):
        g.report.left_out.append(
            ("everything else", "needs the API server's discovery, which did not finish")
        )
        return
    discovery = found["d"]
    for gv, why in discovery.failed.items():
        if gv.split("/")[0] in GROUPS:
            g.report.left_out.append((f"resources of {gv}", f"not served: {why}"))

    locations = discovery.find("velero.io", "backupstoragelocations")

    async def location_status() -> None:
        assert locations is not None
        items = await g.kube.list_all(locations, namespace=ns)
        g.report.locations = [_location_line(item) for item in items]

    if locations is None:
        g.report.left_out.append(("location status", "not served: backupstoragelocations.velero.io"))
    else:
        await g.part("location status", location_status)

    for res in _custom_resources(discovery):
        name = f"resources/{res.group}/{res.resource}.yaml"
        scope = ns if res.namespaced else None
        await g.part(name, functools.partial(g.write_list, name, res, scope))

    pods: list[JsonObject] = []
    for group, resource in (("", "pods"), ("apps", "deployments"), ("apps", "daemonsets"), ("", "events")):
        found_res = discovery.find(group, resource)
        name = f"namespace/{resource}.yaml"
        if found_res is None:
            g.report.left_out.append((name, f"not served: {resource}"))
            continue
        listed = await g.part(
            name, functools.partial(g.write_list, name, found_res, ns, pods if resource == "pods" else None)
        )
        if resource == "pods" and not listed:
            pods.clear()
            g.report.left_out.append(("logs and metrics", "they need the pod list, which did not finish"))

    not_served = []
    for group, resource in CLUSTER_KINDS:
        found_res = discovery.find(group, resource)
        if found_res is None:
            not_served.append(f"{resource}.{group}" if group else resource)
            continue
        name = f"cluster/{group or 'core'}/{resource}.yaml"
        await g.part(name, functools.partial(g.write_list, name, found_res, None))
    if not_served:
        g.report.left_out.append(("cluster/", f"not served here: {', '.join(not_served)}"))

    pods.sort(key=_created, reverse=True)
    if g.options.metrics:
        await _metrics(g, pods)
    for pod in pods:
        await _pod_logs(g, pod, since_seconds)


async def _metrics(g: _Gatherer, pods: list[JsonObject]) -> None:
    targets = [(pod, port) for pod in pods for port in _metrics_ports(pod)]
    if not targets:
        g.report.metrics.append("not gathered (no pod in the namespace exposes a port named metrics)")
        return
    for pod, port in targets:
        pod_name = (pod.get("metadata") or {}).get("name", "")
        name = f"metrics/{pod_name}.prom"
        path = f"/api/v1/namespaces/{g.options.namespace}/pods/{pod_name}:{port}/proxy/metrics"

        async def fetch(path: str = path, name: str = name) -> None:
            g.bundle.add_bytes(name, await _raw_get(g.kube, path, []))
            g.report.gathered.append(name)

        if await g.part(name, fetch):
            g.report.metrics.append(f"gathered {name} through the pod proxy")
        else:
            g.report.metrics.append(f"not gathered from {pod_name}:{port} ({g.report.left_out[-1][1]})")


async def _pod_logs(g: _Gatherer, pod: JsonObject, since_seconds: int | None) -> None:
    pod_name = (pod.get("metadata") or {}).get("name", "")
    path = f"/api/v1/namespaces/{g.options.namespace}/pods/{pod_name}/log"
    limit = g.options.log_limit_bytes
    for container, restarts in _containers(pod):
        runs = [False, True] if restarts > 0 else [False]
        for previous in runs:
            name = f"logs/{pod_name}/{container}{'.previous' if previous else ''}.log"
            query = [("container", container), ("limitBytes", str(limit))]
            if since_seconds is not None:
                query.append(("sinceSeconds", str(since_seconds)))
            if previous:
                query.append(("previous", "true"))

            async def fetch(query: list[tuple[str, str]] = query, name: str = name) -> None:
                data = await _raw_get(g.kube, path, query)
                if len(data) >= limit:
                    data = data[:limit]
                    g.report.truncated.append(f"{name} (at {limit} bytes)")
                g.bundle.add_bytes(name, data)
                g.report.gathered.append(name)
                g.report.counts["logs"] = g.report.counts.get("logs", 0) + 1

            await g.part(name, fetch)
