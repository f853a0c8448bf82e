"""After a graceful shutdown: is the cluster back? The seed's restart checklist, done with checks.

The seed's "restart the cluster gracefully" chapter has the administrator
watch the control-plane nodes become Ready, approve the kubelets' pending
CSRs, watch the workers, then make sure no ClusterOperator is Degraded. Each
step here polls until it holds or the time runs out, approves only the CSRs
that pass the kubelet's rules (``strongroom.cluster.csr``), and reports every
step as a table of what it saw.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from strongroom.cluster.csr import CsrReview
from strongroom.errors import UnavailableError
from strongroom.kube import Discovery, KubeClient

__all__ = ["CONTROL_PLANE_LABELS", "RestartCheck", "Step"]

CONTROL_PLANE_LABELS: Final = ("node-role.kubernetes.io/master", "node-role.kubernetes.io/control-plane")

JsonObject = Mapping[str, Any]
Show = Callable[["Step"], None]


@dataclass
class Step:
    """One step's outcome: done or not, the rows it saw, and why it is not done."""

    title: str
    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)
    done: bool = False
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _ready(node: JsonObject) -> tuple[bool, str]:
    for condition in (node.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return condition.get("status") == "True", str(condition.get("reason") or condition.get("status"))
    return False, "no Ready condition"


def _control_plane(node: JsonObject) -> bool:
    labels = (node.get("metadata") or {}).get("labels") or {}
    return any(label in labels for label in CONTROL_PLANE_LABELS)


class RestartCheck:
    """Control-plane nodes Ready -> valid CSRs approved -> workers Ready -> no ClusterOperator Degraded."""

    def __init__(
        self, kube: KubeClient, discovery: Discovery, *, interval: float = 2.0, approve: bool = True
    ) -> None:
        self._kube = kube
        self._discovery = discovery
        self._interval = interval
        self._approve = approve
        self._csrs = CsrReview(kube, discovery)
        self.approved: list[str] = []

    async def run(self, deadline: float, show: Show) -> list[Step]:
        steps: list[Step] = []
        for check in (self._control_plane_ready, self._workers_ready, self._operators):
            step = await self._until(check, deadline)
            show(step)
            steps.append(step)
            if not step.done:
                break
        return steps

    async def _until(self, check: Callable[[], Awaitable[Step]], deadline: float) -> Step:
        while True:
            step = await check()
            if step.done or time.monotonic() >= deadline:
                return step
            await asyncio.sleep(self._interval)

    async def _nodes(self) -> list[dict[str, Any]]:
        res = self._discovery.find("", "nodes")
        if res is None:
            raise UnavailableError("the API server serves no nodes")
        return await self._kube.list_all(res)

    async def _node_step(self, title: str, nodes: Sequence[JsonObject]) -> Step:
        step = Step(title, ["NODE", "READY", "REASON"])
        for node in nodes:
            ready, reason = _ready(node)
            step.rows.append([str(node["metadata"]["name"]), "True" if ready else "False", reason])
            if not ready:
                step.problems.append(f"node {node['metadata']['name']} is not Ready ({reason})")
        step.done = not step.problems
        return step

    async def _control_plane_ready(self) -> Step:
        nodes = await self._nodes()
        control = [n for n in nodes if _control_plane(n)]
        if not control:
            step = await self._node_step("control-plane nodes Ready", [])
            step.notes.append("no node carries a control-plane label: this step has nothing to wait for")
        else:
            step = await self._node_step("control-plane nodes Ready", control)
        # Control-plane kubelets may need their own CSRs approved before they turn Ready.
        step.notes += await self._approve_valid()
        return step

    async def _workers_ready(self) -> Step:
        notes = await self._approve_valid()
        workers = [n for n in await self._nodes() if not _control_plane(n)]
        step = await self._node_step("worker nodes Ready (pending valid CSRs approved)", workers)
        step.notes += notes
        return step

    async def _approve_valid(self) -> list[str]:
        if not self._approve:
            return []
        notes: list[str] = []
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        for item in await self._csrs.review():
            if item.state != "Pending":
                continue
            if item.judgement.valid:
                await self._csrs.decide(
                    item, approve=True, message="approved by strongroom restart-check", now=now
                )
                self.approved.append(item.name)
                notes.append(f"approved CSR {item.name} ({item.judgement.signer}, {item.judgement.node})")
            else:
                notes.append(f"left CSR {item.name} pending: {'; '.join(item.judgement.reasons)}")
        return sorted(set(notes))

    async def _operators(self) -> Step:
        step = Step(
            "no ClusterOperator Degraded", ["OPERATOR", "AVAILABLE", "PROGRESSING", "DEGRADED", "MESSAGE"]
        )
        res = self._discovery.served("config.openshift.io", "v1", "clusteroperators")
        if res is None:
            step.done = True
            step.notes.append("the cluster serves no ClusterOperators (plain Kubernetes): nothing to check")
            return step
        for operator in await self._kube.list_all(res):
            conditions = {
                c.get("type"): c
                for c in (operator.get("status") or {}).get("conditions") or []
                if isinstance(c, dict)
            }

            def value(kind: str, conditions: dict[Any, Any] = conditions) -> str:
                return str((conditions.get(kind) or {}).get("status", "Unknown"))

            name = str(operator["metadata"]["name"])
            degraded = conditions.get("Degraded") or {}
            message = str(degraded.get("message") or "") if value("Degraded") == "True" else ""
            step.rows.append([name, value("Available"), value("Progressing"), value("Degraded"), message])
            if value("Degraded") == "True":
                step.problems.append(
                    f"ClusterOperator {name} is Degraded: {message or degraded.get('reason', '')}"
                )
        step.done = not step.problems
        return step
