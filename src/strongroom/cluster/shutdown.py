"""Shutting a cluster down gracefully: the seed's loop of ``oc debug node/... -- chroot /host shutdown -h N``,
planned and checked first.

The seed schedules ``shutdown -h 1`` on every node through a debug pod, and
10 minutes or more on clusters of 10 nodes or more, so that every worker is
down before the control plane. This module plans that (workers first, one
delay for all), renders the privileged debug pod ``oc debug node`` would
create, and runs it node by node, reporting each node's outcome. The checks
before (a recent verified etcd snapshot, the certificates' restart deadline)
are the command line's, which can reach etcd snapshots.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from strongroom.cluster.restart import CONTROL_PLANE_LABELS
from strongroom.errors import UnavailableError
from strongroom.kube import Discovery, KubeClient

__all__ = ["DEPENDENCIES", "NodeShutdown", "ShutdownPlan", "debug_pod", "plan_shutdown", "run_shutdown"]

LARGE_CLUSTER: Final = 10
DEPENDENCIES: Final = (
    "external storage the cluster uses (NFS servers, storage arrays, object stores it depends on)",
    "LDAP or other identity providers",
    "load balancers and DNS that only serve this cluster",
    "the bastion or jump hosts, once you no longer need them",
)

JsonObject = Mapping[str, Any]


@dataclass(frozen=True)
class NodeShutdown:
    node: str
    control_plane: bool


@dataclass(frozen=True)
class ShutdownPlan:
    delay_minutes: int
    nodes: tuple[NodeShutdown, ...]

    def steps(self) -> list[str]:
        return [
            f"schedule 'shutdown -h {self.delay_minutes}' on {n.node} "
            f"({'control plane' if n.control_plane else 'worker'}) through a privileged debug pod"
            for n in self.nodes
        ]


def plan_shutdown(nodes: Sequence[JsonObject], delay_minutes: int | None = None) -> ShutdownPlan:
    """Workers first, then the control plane; 1 minute, or 10 for clusters of 10 nodes or more (the seed's rule)."""
    entries = [
        NodeShutdown(
            str(n["metadata"]["name"]),
            any(label in ((n.get("metadata") or {}).get("labels") or {}) for label in CONTROL_PLANE_LABELS),
        )
        for n in nodes
    ]
    entries.sort(key=lambda e: (e.control_plane, e.node))
    delay = delay_minutes if delay_minutes is not None else (10 if len(entries) >= LARGE_CLUSTER else 1)
    return ShutdownPlan(delay, tuple(entries))


def shutdown_command(delay_minutes: int) -> list[str]:
    """The seed's: from the debug pod, the host's own ``shutdown`` in the host's root."""
    return ["chroot", "/host", "shutdown", "-h", str(delay_minutes)]


def debug_pod(
    node: str, namespace: str, image: str, delay_minutes: int, command: Sequence[str] | None = None
) -> dict[str, Any]:
    """The pod ``oc debug node/<node>`` creates: the host's root at /host, privileged, on that node."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": f"{node[:40]}-shutdown-",
            "namespace": namespace,
            "labels": {
                "app.kubernetes.io/name": "strongroom",
                "app.kubernetes.io/component": "node-shutdown",
            },
            "annotations": {"debug.openshift.io/source-resource": f"/v1, Resource=nodes/{node}"},
        },
        "spec": {
            "nodeName": node,
            "hostNetwork": True,
            "hostPID": True,
            "restartPolicy": "Never",
            "tolerations": [{"operator": "Exists"}],
            "containers": [
                {
                    "name": "shutdown",
                    "image": image,
                    "command": list(command) if command is not None else shutdown_command(delay_minutes),
                    "securityContext": {"privileged": True, "runAsUser": 0},
                    "volumeMounts": [{"name": "host", "mountPath": "/host"}],
                }
            ],
            "volumes": [{"name": "host", "hostPath": {"path": "/", "type": "Directory"}}],
        },
    }


async def run_shutdown(
    kube: KubeClient,
    discovery: Discovery,
    plan: ShutdownPlan,
    *,
    namespace: str,
    image: str,
    timeout: float,
    say: Callable[[str], None],
    command: Sequence[str] | None = None,
) -> dict[str, str]:
    """Create each node's debug pod in turn, wait for it to finish, keep its log, delete it.

    ``command`` replaces the seed's ``chroot /host shutdown -h N`` (tests run the
    orchestration with a harmless one)."""
    pods = discovery.find("", "pods")
    if pods is None:
        raise UnavailableError("the API server serves no pods")
    outcome: dict[str, str] = {}
    for entry in plan.nodes:
        created = await kube.create(
            pods, debug_pod(entry.node, namespace, image, plan.delay_minutes, command), namespace
        )
        name = str(created["metadata"]["name"])
        try:
            phase = await _wait_done(kube, pods, name, namespace, timeout)
            log = await kube.pod_log(pods, name, namespace, limit_bytes=4096)
            outcome[entry.node] = f"{phase}: {log.strip()[-300:]}"
        finally:
            await kube.delete(pods, name, namespace)
        say(f"{entry.node}: {outcome[entry.node]}")
    return outcome


async def _wait_done(kube: KubeClient, pods: Any, name: str, namespace: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while True:
        pod = await kube.get(pods, name, namespace)
        phase = str(((pod or {}).get("status") or {}).get("phase") or "Pending")
        if phase in ("Succeeded", "Failed"):
            return phase
        if time.monotonic() > deadline:
            return f"not finished after {timeout:.0f}s (phase {phase})"
        await asyncio.sleep(0.5)
