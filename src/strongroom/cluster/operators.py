"""OpenShift's static pod operators: the forced rollouts after a restore, and etcd's member condition.

On OpenShift the control plane's static pods (etcd, kube-apiserver,
kube-controller-manager, kube-scheduler) are written by operators whose
resource of the same name (``operator.openshift.io/v1``, named ``cluster``)
records the latest revision (``status.latestAvailableRevision``) and the
revision each node runs (``status.nodeStatuses``). After restoring etcd the
seed forces a new rollout of each, in that order, by setting a unique
``spec.forceRedeploymentReason``, and waits for every node to run the new
revision (the ``NodeInstallerProgressing`` condition says
``AllNodesAtLatestRevision``) before the next one.

The seed finds an unhealthy etcd member from the Etcd resource's
``EtcdMembersAvailable`` condition ("2 of 3 members are available, NAME is
unhealthy"); ``etcd_members_condition`` reads it.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from strongroom.errors import UnavailableError, UsageError
from strongroom.kube import ApiResource, Discovery, KubeClient

__all__ = [
    "GROUP",
    "STATIC_POD_OPERATORS",
    "EtcdMembersCondition",
    "Redeploy",
    "Rollout",
    "StaticPodOperator",
    "etcd_members_condition",
    "rollout",
]

GROUP: Final = "operator.openshift.io"
VERSION: Final = "v1"
NAME: Final = "cluster"
ALL_AT_LATEST: Final = "AllNodesAtLatestRevision"

JsonObject = Mapping[str, Any]


@dataclass(frozen=True)
class StaticPodOperator:
    component: str
    resource: str
    kind: str


STATIC_POD_OPERATORS: Final = (
    StaticPodOperator("etcd", "etcds", "Etcd"),
    StaticPodOperator("kube-apiserver", "kubeapiservers", "KubeAPIServer"),
    StaticPodOperator("kube-controller-manager", "kubecontrollermanagers", "KubeControllerManager"),
    StaticPodOperator("kube-scheduler", "kubeschedulers", "KubeScheduler"),
)


def _conditions(obj: JsonObject) -> dict[str, JsonObject]:
    return {
        str(c.get("type")): c
        for c in (obj.get("status") or {}).get("conditions") or []
        if isinstance(c, Mapping)
    }


def _revision(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass
class Rollout:
    """Where one operator's rollout stands: its latest revision and the revision each node runs."""

    component: str
    latest: int | None
    nodes: dict[str, int | None]
    installer_reason: str = ""
    installer_message: str = ""

    def at_latest(self) -> bool:
        if self.latest is None:
            return False
        if self.nodes:
            return all(revision == self.latest for revision in self.nodes.values())
        return self.installer_reason == ALL_AT_LATEST

    def describe(self) -> str:
        """The installer's own words ("3 nodes are at revision 7"), from the node statuses when it has none."""
        if self.nodes:
            counts = Counter(self.nodes.values())
            parts = [
                f"{count} node{'s' if count != 1 else ''} {'are' if count != 1 else 'is'} at revision "
                + (str(revision) if revision is not None else "(none)")
                for revision, count in sorted(counts.items(), key=lambda kv: (kv[0] is None, kv[0] or 0))
            ]
            return "; ".join(parts)
        return self.installer_message or "no node status reported yet"


def rollout(component: str, obj: JsonObject) -> Rollout:
    status = obj.get("status") or {}
    nodes: dict[str, int | None] = {}
    for entry in status.get("nodeStatuses") or []:
        if isinstance(entry, Mapping) and entry.get("nodeName"):
            nodes[str(entry["nodeName"])] = _revision(entry.get("currentRevision"))
    installer = _conditions(obj).get("NodeInstallerProgressing") or {}
    return Rollout(
        component,
        _revision(status.get("latestAvailableRevision")),
        nodes,
        str(installer.get("reason") or ""),
        str(installer.get("message") or ""),
    )


@dataclass(frozen=True)
class EtcdMembersCondition:
    available: bool | None  # None: the operator reports no EtcdMembersAvailable condition
    message: str
    unhealthy: tuple[str, ...]


_UNHEALTHY = re.compile(r"([A-Za-z0-9][A-Za-z0-9.\-]*) (?:is unhealthy|has not started|is unknown)")


def etcd_members_condition(etcd: JsonObject) -> EtcdMembersCondition:
    """The Etcd resource's ``EtcdMembersAvailable``; the members its message names as unhealthy."""
    condition = _conditions(etcd).get("EtcdMembersAvailable")
    if condition is None:
        return EtcdMembersCondition(None, "the Etcd resource reports no EtcdMembersAvailable condition", ())
    message = str(condition.get("message") or condition.get("reason") or "")
    unhealthy = tuple(dict.fromkeys(_UNHEALTHY.findall(message)))
    available = condition.get("status") == "True" and not unhealthy
    return EtcdMembersCondition(available, message, unhealthy)


def unique_reason(prefix: str, now: datetime) -> str:
    """``<prefix>-<RFC 3339 with sub-seconds>``, unique as the seed's ``$( date --rfc-3339=ns )`` is."""
    return f"{prefix}-{now.isoformat(sep=' ', timespec='microseconds')}"


@dataclass
class RolloutResult:
    component: str
    reason: str
    before: int | None
    after: Rollout | None = None
    done: bool = False
    problem: str = ""
    progress: list[str] = field(default_factory=list)


Show = Callable[[str], None]


class Redeploy:
    """Force a new revision of each operator in turn and wait until every node runs it."""

    def __init__(
        self,
        kube: KubeClient,
        discovery: Discovery,
        components: Sequence[str] = (),
        *,
        interval: float = 2.0,
        reason_prefix: str = "recovery",
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        known = {op.component: op for op in STATIC_POD_OPERATORS}
        unknown = [c for c in components if c not in known]
        if unknown:
            raise UsageError(
                f"unknown component(s): {', '.join(unknown)}",
                hint=f"choose among {', '.join(known)}",
            )
        # The seed's order, whatever order they were asked in: etcd before the API server, and so on.
        # None asked for: all of them.
        self.operators = [op for op in STATIC_POD_OPERATORS if not components or op.component in components]
        missing = [op for op in self.operators if discovery.served(GROUP, VERSION, op.resource) is None]
        if missing:
            names = ", ".join(f"{op.resource}.{GROUP}" for op in missing)
            raise UnavailableError(
                f"the cluster serves no {names}: forced redeployment is how OpenShift's static pod "
                "operators roll out the control plane",
                hint="on plain Kubernetes the kubelet restarts a static pod when its manifest in "
                "/etc/kubernetes/manifests changes",
            )
        self._kube = kube
        self._discovery = discovery
        self._interval = interval
        self._prefix = reason_prefix
        self._now = now

    def _res(self, op: StaticPodOperator) -> ApiResource:
        res = self._discovery.served(GROUP, VERSION, op.resource)
        assert res is not None  # checked in __init__
        return res

    async def state(self, op: StaticPodOperator) -> Rollout:
        obj = await self._kube.get(self._res(op), NAME)
        if obj is None:
            raise UnavailableError(
                f"{op.kind} {NAME!r} ({op.resource}.{GROUP}) does not exist",
                hint="the operator creates it; is this cluster's control plane managed by OpenShift?",
            )
        return rollout(op.component, obj)

    async def plan(self) -> list[Rollout]:
        return [await self.state(op) for op in self.operators]

    async def run(self, deadline: float, show: Show) -> list[RolloutResult]:
        results: list[RolloutResult] = []
        for op in self.operators:
            result = await self._one(op, deadline, show)
            results.append(result)
            if not result.done:
                break  # the next rollout waits for this one, as in the seed
        return results

    async def _one(self, op: StaticPodOperator, deadline: float, show: Show) -> RolloutResult:
        before = await self.state(op)
        reason = unique_reason(self._prefix, self._now())
        await self._kube.patch(self._res(op), NAME, {"spec": {"forceRedeploymentReason": reason}})
        result = RolloutResult(op.component, reason, before.latest)
        show(
            f"{op.component}: forced a new rollout (forceRedeploymentReason {reason!r}); "
            f"latest revision was {before.latest if before.latest is not None else '(none)'}"
        )
        last = ""
        while True:
            current = await self.state(op)
            result.after = current
            advanced = current.latest is not None and (
                before.latest is None or current.latest > before.latest
            )
            line = current.describe()
            if line != last:
                show(f"{op.component}: {line}")
                result.progress.append(line)
                last = line
            if advanced and current.at_latest():
                result.done = True
                show(f"{op.component}: every node runs revision {current.latest}")
                return result
            if time.monotonic() >= deadline:
                result.problem = (
                    f"{op.component}: no new revision yet (still {current.latest})"
                    if not advanced
                    else f"{op.component}: not every node runs revision {current.latest}: {line}"
                )
                return result
            await asyncio.sleep(self._interval)
