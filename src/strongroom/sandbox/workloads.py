"""kube-controller-manager's workload controllers, running inside the sandbox.

The sandbox stores Deployments, ReplicaSets, DaemonSets, StatefulSets and Jobs;
these controllers turn them into Pods the way kube-controller-manager does, so
that what strongroom restores (a Deployment, its ReplicaSets and Pods) and what
``strongroom install`` applies (the server Deployment, the node-agent
DaemonSet) behave as in a real cluster: pods named and labelled as upstream
names and labels them, orphans adopted by their owners' selectors, rollouts
that ``kubectl rollout status`` can follow.

Each controller is a queue of ``namespace/name`` keys fed by watches of the
workload kinds, their pods and the nodes, plus a periodic resync that repairs
anything missed. A sync reads the current state from the API (the sandbox's
store is strongly consistent, so no expectations cache is needed) and writes
through the `Engine`, so the writes pass the same admission as a client's.

The pure parts (template hashing, surge/unavailable arithmetic, defaults,
pod ranking) are module functions so they can be tested without a server.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime as dt
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from strongroom.model.selectors import LabelSelector, SelectorError, label_selector_from_object
from strongroom.sandbox import apierrors
from strongroom.sandbox.engine import DeleteOptions, Engine, ListOptions, Target, WriteOptions, now_rfc3339
from strongroom.sandbox.resources import ResourceType
from strongroom.sandbox.scheduler import node_ready, pod_matches_node, untolerated_taint

log = logging.getLogger(__name__)

JsonObject = dict[str, Any]

POD_TEMPLATE_HASH = "pod-template-hash"
REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
DESIRED_REPLICAS_ANNOTATION = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS_ANNOTATION = "deployment.kubernetes.io/max-replicas"
CONTROLLER_REVISION_HASH = "controller-revision-hash"
POD_TEMPLATE_GENERATION = "pod-template-generation"
STATEFULSET_POD_NAME = "statefulset.kubernetes.io/pod-name"
POD_INDEX = "apps.kubernetes.io/pod-index"
JOB_NAME_LABELS = ("batch.kubernetes.io/job-name", "job-name")
JOB_UID_LABELS = ("batch.kubernetes.io/controller-uid", "controller-uid")

# kube's job controller waits 10 s after a pod failure, doubling up to 6 min; the
# sandbox shortens it as its kubelet shortens the crash-loop back-off.
JOB_BACKOFF_START = 1.0
JOB_BACKOFF_MAX = 10.0
_RESYNC_SECONDS = 5.0

ConditionValue = tuple[str, str, str, str]
"""A condition's type, status, reason and message."""
AVAILABLE: ConditionValue = (
    "Available",
    "True",
    "MinimumReplicasAvailable",
    "Deployment has minimum availability.",
)
UNAVAILABLE: ConditionValue = (
    "Available",
    "False",
    "MinimumReplicasUnavailable",
    "Deployment does not have minimum availability.",
)
JOB_COMPLETE: ConditionValue = (
    "Complete",
    "True",
    "CompletionsReached",
    "Reached expected number of succeeded pods",
)
_RETRY_SECONDS = 0.2
_MAX_BURST = 500
_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"

# Tolerations the DaemonSet controller gives its pods, so node conditions do not evict them.
_DAEMON_TOLERATIONS = (
    ("node.kubernetes.io/not-ready", "NoExecute"),
    ("node.kubernetes.io/unreachable", "NoExecute"),
    ("node.kubernetes.io/disk-pressure", "NoSchedule"),
    ("node.kubernetes.io/memory-pressure", "NoSchedule"),
    ("node.kubernetes.io/pid-pressure", "NoSchedule"),
    ("node.kubernetes.io/unschedulable", "NoSchedule"),
)


# --------------------------------------------------------------- hashing


def fnv32a(data: bytes) -> int:
    """The 32-bit FNV-1a hash, which kube's controllers hash pod templates with."""
    value = 0x811C9DC5
    for byte in data:
        value ^= byte
        value = (value * 0x01000193) & 0xFFFFFFFF
    return value


def safe_encode(text: str) -> str:
    """Map each character into an alphabet without vowels, so a hash never spells a word (kube's SafeEncodeString)."""
    return "".join(_SAFE_ALPHABET[ord(char) % len(_SAFE_ALPHABET)] for char in text)


def template_hash(template: Mapping[str, Any], collision_count: int | None = None) -> str:
    """The ``pod-template-hash`` of a pod template: FNV-1a over its canonical form, then the collision count.

    Equal templates hash equally whatever their key order; a collision count
    (raised when a ReplicaSet of that name already exists with another
    template) changes the hash, as upstream.
    """
    data = json.dumps(template, sort_keys=True, separators=(",", ":")).encode()
    if collision_count is not None:
        data += (collision_count & 0xFFFFFFFF).to_bytes(4, "little") + bytes(4)
    return safe_encode(str(fnv32a(data)))


# ------------------------------------------------------ int-or-percent


def scaled_value(value: Any, total: int, *, round_up: bool) -> int:
    """An IntOrString field (``2`` or ``"25%"``) as a count out of ``total``; ValueError when malformed."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip()
        if text.endswith("%"):
            try:
                percent = int(text[:-1])
            except ValueError:
                raise ValueError(f"invalid value for IntOrString: invalid value {value!r}") from None
            scaled, remainder = divmod(percent * total, 100)
            return scaled + 1 if round_up and remainder else scaled
        if text.isdigit():
            return int(text)
    raise ValueError(f"invalid value for IntOrString: invalid value {value!r}")


def resolve_fenceposts(max_surge: Any, max_unavailable: Any, desired: int) -> tuple[int, int]:
    """(surge, unavailable) of a rolling update: surge rounds up, unavailable down; never both zero."""
    surge = scaled_value("25%" if max_surge is None else max_surge, desired, round_up=True)
    unavailable = scaled_value("25%" if max_unavailable is None else max_unavailable, desired, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def new_replicas_rolling(desired: int, surge: int, new_spec: int, all_spec: int) -> int:
    """How many replicas the new ReplicaSet of a rolling update may have now.

    ``all_spec`` is the sum of every ReplicaSet's ``spec.replicas`` (the new one
    included): the total may exceed ``desired`` by at most ``surge``.
    """
    if new_spec >= desired:
        return desired
    max_total = desired + surge
    if all_spec >= max_total:
        return new_spec
    return new_spec + min(max_total - all_spec, desired - new_spec)


@dataclass(frozen=True)
class ReplicaCounts:
    """What the rollout arithmetic needs of one ReplicaSet."""

    spec: int
    available: int


def old_replicas_rolling(
    desired: int, unavailable: int, new: ReplicaCounts | None, olds: list[ReplicaCounts]
) -> list[int]:
    """The ``spec.replicas`` of each old ReplicaSet (oldest first) after one rolling-update step.

    Never lets the available pods fall below ``desired - unavailable``: old
    ReplicaSets' unavailable pods go first, then available ones as far as the
    new ReplicaSet's available pods make up for them.
    """
    result = [old.spec for old in olds]
    min_available = desired - unavailable
    all_spec = sum(result) + (new.spec if new else 0)
    new_unavailable = max((new.spec - new.available) if new else 0, 0)
    budget = all_spec - min_available - new_unavailable
    if budget <= 0:
        return result
    for index, old in enumerate(olds):
        if budget <= 0:
            break
        unhealthy = max(result[index] - old.available, 0)
        cut = min(unhealthy, budget)
        result[index] -= cut
        budget -= cut
    available = sum(min(old.available, spec) for old, spec in zip(olds, result, strict=True))
    available += new.available if new else 0
    budget = available - min_available
    for index in range(len(olds)):
        if budget <= 0:
            break
        cut = min(result[index], budget)
        result[index] -= cut
        budget -= cut
    return result


# -------------------------------------------------------------- defaults


def apply_defaults(obj: JsonObject, *, creating: bool) -> None:
    """The API server's defaults for DaemonSets, StatefulSets and Jobs (the fields kubectl and controllers read)."""
    kind = obj.get("kind")
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    if kind == "DaemonSet":
        strategy = spec.setdefault("updateStrategy", {})
        if isinstance(strategy, dict):
            strategy.setdefault("type", "RollingUpdate")
            if strategy["type"] == "RollingUpdate":
                rolling = strategy.setdefault("rollingUpdate", {})
                if isinstance(rolling, dict):
                    rolling.setdefault("maxUnavailable", 1)
                    rolling.setdefault("maxSurge", 0)
        spec.setdefault("revisionHistoryLimit", 10)
    elif kind == "StatefulSet":
        spec.setdefault("podManagementPolicy", "OrderedReady")
        strategy = spec.setdefault("updateStrategy", {})
        if isinstance(strategy, dict):
            strategy.setdefault("type", "RollingUpdate")
            if strategy["type"] == "RollingUpdate":
                rolling = strategy.setdefault("rollingUpdate", {})
                if isinstance(rolling, dict):
                    rolling.setdefault("partition", 0)
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault(
            "persistentVolumeClaimRetentionPolicy", {"whenDeleted": "Retain", "whenScaled": "Retain"}
        )
        for claim in spec.get("volumeClaimTemplates") or []:
            if isinstance(claim, dict) and isinstance(claim.get("spec"), dict):
                claim["spec"].setdefault("volumeMode", "Filesystem")
    elif kind == "Job":
        _default_job(obj, spec, creating=creating)


def _default_job(obj: JsonObject, spec: JsonObject, *, creating: bool) -> None:
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
    spec.setdefault("parallelism", 1)
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    if spec.get("podFailurePolicy") is None:
        spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
    if not creating or spec.get("manualSelector"):
        return
    # The API server, not the controller, ties a Job to its pods: a selector on the Job's
    # uid and the same labels on the template.
    meta = obj.get("metadata") or {}
    uid, name = str(meta.get("uid", "")), str(meta.get("name", ""))
    template = spec.setdefault("template", {})
    if not isinstance(template, dict):
        return
    labels = template.setdefault("metadata", {}).setdefault("labels", {})
    if isinstance(labels, dict):
        for key in JOB_UID_LABELS:
            labels[key] = uid
        for key in JOB_NAME_LABELS:
            labels[key] = name
    spec["selector"] = {"matchLabels": {JOB_UID_LABELS[0]: uid}}


# ------------------------------------------------------------ pod helpers


def parse_time(text: str | None) -> float | None:
    """An RFC 3339 timestamp as seconds since the epoch (None when absent or malformed)."""
    if not text:
        return None
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _condition(obj: JsonObject, kind: str) -> JsonObject | None:
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind:
            return dict(condition)
    return None


def pod_ready(pod: JsonObject) -> bool:
    condition = _condition(pod, "Ready")
    return condition is not None and condition.get("status") == "True"


def pod_available(pod: JsonObject, min_ready_seconds: int, now: float) -> bool:
    """Ready for at least ``min_ready_seconds`` (as ``availableReplicas`` counts)."""
    if not pod_ready(pod):
        return False
    if min_ready_seconds <= 0:
        return True
    since = parse_time((_condition(pod, "Ready") or {}).get("lastTransitionTime"))
    return since is not None and since + min_ready_seconds <= now


def available_in(pods: Iterable[JsonObject], min_ready_seconds: int, now: float) -> float | None:
    """Seconds until the next ready-but-not-yet-available pod becomes available, if any."""
    waits = []
    for pod in pods:
        if pod_ready(pod) and not pod_available(pod, min_ready_seconds, now):
            since = parse_time((_condition(pod, "Ready") or {}).get("lastTransitionTime")) or now
            waits.append(max(since + min_ready_seconds - now, 0.1))
    return min(waits) if waits else None


def pod_finished(pod: JsonObject) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def pod_active(pod: JsonObject) -> bool:
    """Counts toward replicas: neither finished nor being deleted."""
    return not (pod.get("metadata") or {}).get("deletionTimestamp") and not pod_finished(pod)


def controller_ref(obj: JsonObject) -> JsonObject | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return dict(ref)
    return None


def owner_reference(owner: JsonObject) -> JsonObject:
    """The controller reference a workload puts on what it creates or adopts."""
    meta = owner["metadata"]
    return {
        "apiVersion": owner.get("apiVersion", ""),
        "kind": owner.get("kind", ""),
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def workload_selector(obj: JsonObject) -> LabelSelector | None:
    """The workload's selector; None (selects nothing) when missing, empty or invalid, as upstream."""
    raw = (obj.get("spec") or {}).get("selector")
    if not isinstance(raw, dict) or not (raw.get("matchLabels") or raw.get("matchExpressions")):
        return None
    try:
        return label_selector_from_object(raw)
    except SelectorError:
        return None


def _strip_hash(template: Mapping[str, Any]) -> JsonObject:
    result = copy.deepcopy(dict(template))
    meta = result.get("metadata")
    if isinstance(meta, dict) and isinstance(meta.get("labels"), dict):
        meta["labels"].pop(POD_TEMPLATE_HASH, None)
        if not meta["labels"]:
            meta.pop("labels")
        if not meta:
            result.pop("metadata")
    return result


def _semantic(value: Any, key: str = "") -> Any:
    """JSON as the API server's typed decoding sees it: nulls, empty lists and empty structs are absent.

    Clients send ``creationTimestamp: null`` and ``resources: {}`` (kubectl's
    rollback does); kube-apiserver decodes them into the same object as their
    absence. An empty ``emptyDir`` stays: there the presence is the meaning.
    """
    if isinstance(value, dict):
        result = {}
        for child_key, child in value.items():
            normal = _semantic(child, child_key)
            if normal is None or (normal in ({}, []) and child_key != "emptyDir"):
                continue
            result[child_key] = normal
        return result
    if isinstance(value, list):
        return [_semantic(item, key) for item in value]
    return value


def templates_equal(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Equal pod templates once the ``pod-template-hash`` label is set aside (how a Deployment finds its new ReplicaSet)."""
    return bool(_semantic(_strip_hash(a)) == _semantic(_strip_hash(b)))


def pod_from_template(
    template: Mapping[str, Any],
    owner: JsonObject,
    *,
    generate_name: str = "",
    name: str = "",
    labels: Mapping[str, str] | None = None,
) -> JsonObject:
    """A pod as a controller creates it: the template's labels, annotations, finalizers and spec, owned by ``owner``."""
    meta = template.get("metadata") or {}
    pod_meta: JsonObject = {
        "labels": {**(meta.get("labels") or {}), **(labels or {})},
        "ownerReferences": [owner_reference(owner)],
    }
    if name:
        pod_meta["name"] = name
    else:
        pod_meta["generateName"] = generate_name
    for field_name in ("annotations", "finalizers"):
        if meta.get(field_name):
            pod_meta[field_name] = copy.deepcopy(meta[field_name])
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": pod_meta,
        "spec": copy.deepcopy(template.get("spec") or {}),
    }


def deletion_rank(pod: JsonObject) -> tuple[Any, ...]:
    """Sort key of pods to remove when scaling down: the first is deleted first.

    Upstream's order: unscheduled before scheduled, Pending before Unknown
    before Running, not ready before ready, ready for less time first, more
    restarts first, newer first.
    """
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    phase_rank = {"Pending": 0, "Unknown": 1, "Running": 2}.get(str(status.get("phase")), 0)
    ready = pod_ready(pod)
    ready_since = parse_time((_condition(pod, "Ready") or {}).get("lastTransitionTime")) or 0.0
    restarts = sum(int(c.get("restartCount") or 0) for c in status.get("containerStatuses") or [])
    created = parse_time((pod.get("metadata") or {}).get("creationTimestamp")) or 0.0
    return (
        1 if spec.get("nodeName") else 0,
        phase_rank,
        1 if ready else 0,
        -ready_since if ready else 0.0,
        -restarts,
        -created,
    )


def pod_node(pod: JsonObject) -> str | None:
    """The node a daemon pod is for: where it is bound, or the node its affinity pins it to."""
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        return str(spec["nodeName"])
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    for term in required.get("nodeSelectorTerms") or []:
        for field in term.get("matchFields") or []:
            values = field.get("values") or []
            if field.get("key") == "metadata.name" and field.get("operator") == "In" and len(values) == 1:
                return str(values[0])
    return None


def pin_to_node(spec: JsonObject, node: str) -> None:
    """Pin a daemon pod to one node as upstream does: required node affinity on ``metadata.name``."""
    pin = {"key": "metadata.name", "operator": "In", "values": [node]}
    affinity = spec.setdefault("affinity", {})
    node_affinity = affinity.setdefault("nodeAffinity", {})
    required = node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution") or {}
    terms = required.get("nodeSelectorTerms") or []
    if terms:
        for term in terms:
            term["matchFields"] = [pin]
    else:
        terms = [{"matchFields": [pin]}]
    node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {"nodeSelectorTerms": terms}


def add_daemon_tolerations(spec: JsonObject) -> None:
    tolerations = spec.setdefault("tolerations", [])
    wanted = list(_DAEMON_TOLERATIONS)
    if spec.get("hostNetwork"):
        wanted.append(("node.kubernetes.io/network-unavailable", "NoSchedule"))
    for key, effect in wanted:
        if not any(t.get("key") == key and t.get("effect") == effect for t in tolerations):
            tolerations.append({"key": key, "operator": "Exists", "effect": effect})


def job_backoff(failures: int) -> float:
    """Seconds to wait before replacing a Job's pod after its ``failures``-th failure."""
    if failures <= 0:
        return 0.0
    return float(min(JOB_BACKOFF_START * 2 ** (failures - 1), JOB_BACKOFF_MAX))


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _set_condition(
    conditions: list[JsonObject], value: ConditionValue, now: str, *, update_time: bool
) -> None:
    """Set a workload condition (type, status, reason, message); its transition time moves only with its status."""
    kind, status, reason, message = value
    for condition in conditions:
        if condition.get("type") != kind:
            continue
        if (condition.get("status"), condition.get("reason"), condition.get("message")) == value[1:]:
            return
        if condition.get("status") != status:
            condition["lastTransitionTime"] = now
        condition.update(status=status, reason=reason, message=message)
        if update_time:
            condition["lastUpdateTime"] = now
        return
    condition = {"type": kind, "status": status}
    if update_time:
        condition["lastUpdateTime"] = now
    condition.update(lastTransitionTime=now, reason=reason, message=message)
    conditions.append(condition)


def _ordinal(name: str, set_name: str) -> int | None:
    prefix = f"{set_name}-"
    if not name.startswith(prefix):
        return None
    rest = name[len(prefix) :]
    return int(rest) if rest.isdigit() and (rest == "0" or not rest.startswith("0")) else None


# ------------------------------------------------------------ controllers

_KINDS = {
    "ReplicaSet": ("apps", "v1", "replicasets"),
    "Deployment": ("apps", "v1", "deployments"),
    "DaemonSet": ("apps", "v1", "daemonsets"),
    "StatefulSet": ("apps", "v1", "statefulsets"),
    "Job": ("batch", "v1", "jobs"),
}


class Workloads:
    """The Deployment, ReplicaSet, DaemonSet, StatefulSet and Job controllers of the sandbox."""

    def __init__(self, engine: Engine, *, resync_seconds: float = _RESYNC_SECONDS) -> None:
        self.engine = engine
        self.resync_seconds = resync_seconds
        self._queues: dict[str, asyncio.Queue[str]] = {}
        self._pending: dict[str, set[str]] = {}
        self._delayed: dict[tuple[str, str], float] = {}
        self._tasks: list[asyncio.Task[Any]] = []
        # What the watches last saw of each workload, to find the owners an orphan would match.
        self._seen: dict[str, dict[str, JsonObject]] = {kind: {} for kind in _KINDS}
        # Job uid -> (failures seen, monotonic time they were first seen): the replacement back-off.
        self._job_failures: dict[str, tuple[int, float]] = {}

    # ----------------------------------------------------------- plumbing

    def _rt(self, group: str, version: str, resource: str) -> ResourceType:
        rt = self.engine.registry.lookup(group, version, resource)
        assert rt is not None, (group, version, resource)
        return rt

    def _kind_rt(self, kind: str) -> ResourceType:
        return self._rt(*_KINDS[kind])

    @property
    def _pods(self) -> ResourceType:
        return self._rt("", "v1", "pods")

    async def start(self) -> None:
        handlers: dict[str, Callable[[str, str], Awaitable[None]]] = {
            "ReplicaSet": self.sync_replicaset,
            "Deployment": self.sync_deployment,
            "DaemonSet": self.sync_daemonset,
            "StatefulSet": self.sync_statefulset,
            "Job": self.sync_job,
        }
        for kind, handler in handlers.items():
            self._queues[kind] = asyncio.Queue()
            self._pending[kind] = set()
            self._tasks.append(asyncio.create_task(self._worker(kind, handler), name=f"workloads-{kind}"))
        for kind in _KINDS:
            self._tasks.append(asyncio.create_task(self._watch(self._kind_rt(kind), self._on_workload)))
        self._tasks.append(asyncio.create_task(self._watch(self._pods, self._on_pod)))
        self._tasks.append(asyncio.create_task(self._watch(self._rt("", "v1", "nodes"), self._on_node)))
        self._tasks.append(asyncio.create_task(self._resync_loop()))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    def enqueue(self, kind: str, namespace: str, name: str) -> None:
        item = f"{namespace}/{name}"
        if kind in self._queues and item not in self._pending[kind]:
            self._pending[kind].add(item)
            self._queues[kind].put_nowait(item)

    def _later(self, kind: str, namespace: str, name: str, delay: float) -> None:
        """Sync the item again after ``delay``; an earlier pending retry makes a later one redundant."""
        item = f"{namespace}/{name}"
        due = time.monotonic() + delay
        pending = self._delayed.get((kind, item))
        if pending is not None and pending <= due:
            return
        self._delayed[(kind, item)] = due

        async def requeue() -> None:
            try:
                await asyncio.sleep(delay)
            finally:
                if self._delayed.get((kind, item)) == due:
                    del self._delayed[(kind, item)]
            self.enqueue(kind, namespace, name)

        task = asyncio.create_task(requeue())
        self._tasks.append(task)
        task.add_done_callback(lambda t: self._tasks.remove(t) if t in self._tasks else None)

    async def _worker(self, kind: str, handler: Callable[[str, str], Awaitable[None]]) -> None:
        queue = self._queues[kind]
        while True:
            item = await queue.get()
            self._pending[kind].discard(item)
            namespace, _, name = item.partition("/")
            try:
                await handler(namespace, name)
            except apierrors.ApiError as exc:
                if exc.code == 409:  # raced with another writer: read again shortly
                    self._later(kind, namespace, name, _RETRY_SECONDS)
                elif exc.code != 404:
                    log.warning("%s controller: %s: %s", kind, item, exc.message)
                    self._later(kind, namespace, name, 1.0)
            except Exception:
                log.exception("%s controller failed on %s", kind, item)
                self._later(kind, namespace, name, 1.0)

    async def _watch(self, rt: ResourceType, handle: Callable[[str, JsonObject], None]) -> None:
        """Follow one kind from a full listing on; every restart lists again, which resyncs."""
        while True:
            try:
                async for event in self.engine.watch(Target(rt), ListOptions()):
                    if event.type in ("ADDED", "MODIFIED", "DELETED"):
                        handle(event.type, event.obj)
            except asyncio.CancelledError:
                raise
            except Exception:  # a compacted or broken watch: start again
                log.debug("watch of %s ended", rt.resource, exc_info=True)
            await asyncio.sleep(0.5)

    def _on_workload(self, kind: str, obj: JsonObject) -> None:
        meta = obj.get("metadata") or {}
        workload_kind = str(obj.get("kind", ""))
        key = f"{meta.get('namespace')}/{meta.get('name')}"
        if workload_kind not in self._seen:
            return
        if kind == "DELETED":
            self._seen[workload_kind].pop(key, None)
            self._job_failures.pop(str(meta.get("uid", "")), None)
        else:
            self._seen[workload_kind][key] = obj
        self.enqueue(workload_kind, meta.get("namespace", ""), meta.get("name", ""))
        if workload_kind == "ReplicaSet":
            self._notify_owner(obj, ("Deployment",))

    def _on_pod(self, kind: str, pod: JsonObject) -> None:
        self._notify_owner(pod, ("ReplicaSet", "DaemonSet", "StatefulSet", "Job"))

    def _notify_owner(self, obj: JsonObject, owner_kinds: tuple[str, ...]) -> None:
        """Queue the controller of ``obj``, or, for an orphan, every owner whose selector it matches."""
        meta = obj.get("metadata") or {}
        namespace = str(meta.get("namespace", ""))
        ref = controller_ref(obj)
        if ref is not None:
            if ref.get("kind") in owner_kinds:
                self.enqueue(str(ref["kind"]), namespace, str(ref.get("name", "")))
            return
        labels = meta.get("labels") or {}
        for owner_kind in owner_kinds:
            for owner in list(self._seen[owner_kind].values()):
                if (owner.get("metadata") or {}).get("namespace") != namespace:
                    continue
                selector = workload_selector(owner)
                if selector is not None and selector.matches(labels):
                    self.enqueue(owner_kind, namespace, owner["metadata"]["name"])

    def _on_node(self, kind: str, node: JsonObject) -> None:
        for key in list(self._seen["DaemonSet"]):
            namespace, _, name = key.partition("/")
            self.enqueue("DaemonSet", namespace, name)

    async def _resync_loop(self) -> None:
        while True:
            await asyncio.sleep(self.resync_seconds)
            for kind, seen in self._seen.items():
                for key in list(seen):
                    namespace, _, name = key.partition("/")
                    self.enqueue(kind, namespace, name)

    # ------------------------------------------------------------ API calls

    async def _get(self, rt: ResourceType, namespace: str, name: str) -> JsonObject | None:
        return await self.engine.get_if_exists(Target(rt, namespace, name))

    async def _list(self, rt: ResourceType, namespace: str) -> list[JsonObject]:
        items: list[JsonObject] = (await self.engine.list(Target(rt, namespace), ListOptions()))["items"]
        return items

    async def _create(self, rt: ResourceType, namespace: str, body: JsonObject) -> JsonObject | None:
        """Create; None when the namespace is going away or the object already exists."""
        try:
            return await self.engine.create(Target(rt, namespace), body, WriteOptions())
        except apierrors.ApiError as exc:
            if exc.code in (403, 404, 409):
                log.debug("creating %s in %s: %s", rt.kind, namespace, exc.message)
                return None
            raise

    async def _delete(self, rt: ResourceType, obj: JsonObject) -> None:
        meta = obj["metadata"]
        with contextlib.suppress(apierrors.ApiError):
            await self.engine.delete(
                Target(rt, meta.get("namespace"), meta["name"]),
                DeleteOptions(precondition_uid=meta.get("uid")),
            )

    async def _update(self, rt: ResourceType, obj: JsonObject) -> JsonObject:
        meta = obj["metadata"]
        return await self.engine.update(Target(rt, meta.get("namespace"), meta["name"]), obj, WriteOptions())

    async def _write_status(self, rt: ResourceType, obj: JsonObject, status: JsonObject) -> None:
        if obj.get("status") == status:
            return
        meta = obj["metadata"]
        await self.engine.update(
            Target(rt, meta.get("namespace"), meta["name"], "status"),
            {**obj, "status": status},
            WriteOptions(),
        )

    async def _claim(
        self, rt: ResourceType, owner: JsonObject, selector: LabelSelector | None, items: list[JsonObject]
    ) -> list[JsonObject]:
        """The objects the owner controls: its own that still match, plus matching orphans it adopts.

        Owned objects that no longer match are released; nothing is adopted by
        an owner being deleted, and objects being deleted are not adopted.
        """
        uid = owner["metadata"]["uid"]
        deleting = bool(owner["metadata"].get("deletionTimestamp"))
        owned = []
        for item in items:
            meta = item.get("metadata") or {}
            matches = selector is not None and selector.matches(meta.get("labels") or {})
            ref = controller_ref(item)
            if ref is not None:
                if ref.get("uid") != uid:
                    continue
                if matches or deleting:
                    owned.append(item)
                elif not meta.get("deletionTimestamp"):
                    await self._set_owner(rt, item, uid, None)
                continue
            if matches and not deleting and not meta.get("deletionTimestamp"):
                adopted = await self._set_owner(rt, item, uid, owner_reference(owner))
                if adopted is not None:
                    owned.append(adopted)
        return owned

    async def _set_owner(
        self, rt: ResourceType, item: JsonObject, uid: str, ref: JsonObject | None
    ) -> JsonObject | None:
        body = copy.deepcopy(item)
        refs = [r for r in body["metadata"].get("ownerReferences") or [] if r.get("uid") != uid]
        if ref is not None:
            refs.append(ref)
        if refs:
            body["metadata"]["ownerReferences"] = refs
        else:
            body["metadata"].pop("ownerReferences", None)
        try:
            return await self._update(rt, body)
        except apierrors.ApiError as exc:
            if exc.code == 404:
                return None
            raise

    # ---------------------------------------------------------- ReplicaSet

    async def sync_replicaset(self, namespace: str, name: str) -> None:
        rt = self._kind_rt("ReplicaSet")
        rs = await self._get(rt, namespace, name)
        if rs is None:
            return
        spec = rs.get("spec") or {}
        pods = await self._claim(
            self._pods, rs, workload_selector(rs), await self._list(self._pods, namespace)
        )
        active = [p for p in pods if pod_active(p)]
        if not rs["metadata"].get("deletionTimestamp"):
            diff = len(active) - _int(spec.get("replicas"), 1)
            template = spec.get("template") or {}
            for _ in range(min(-diff, _MAX_BURST)):
                body = pod_from_template(template, rs, generate_name=f"{name}-")
                await self._create(self._pods, namespace, body)
            for pod in sorted(active, key=deletion_rank)[: max(diff, 0)]:
                await self._delete(self._pods, pod)
        now = time.time()
        min_ready = _int(spec.get("minReadySeconds"), 0)
        template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        counts = {
            "replicas": len(active),
            "fullyLabeledReplicas": sum(
                1
                for p in active
                if all((p["metadata"].get("labels") or {}).get(k) == v for k, v in template_labels.items())
            ),
            "readyReplicas": sum(1 for p in active if pod_ready(p)),
            "availableReplicas": sum(1 for p in active if pod_available(p, min_ready, now)),
        }
        status: JsonObject = {"replicas": counts["replicas"]}
        status.update({k: v for k, v in counts.items() if k != "replicas" and v})
        status["observedGeneration"] = rs["metadata"].get("generation", 1)
        await self._write_status(rt, rs, status)
        wait = available_in(active, min_ready, now)
        if wait is not None:
            self._later("ReplicaSet", namespace, name, wait)

    # ---------------------------------------------------------- Deployment

    async def sync_deployment(self, namespace: str, name: str) -> None:
        rt = self._kind_rt("Deployment")
        rs_rt = self._kind_rt("ReplicaSet")
        deployment = await self._get(rt, namespace, name)
        if deployment is None or deployment["metadata"].get("deletionTimestamp"):
            return
        spec = deployment.get("spec") or {}
        desired = _int(spec.get("replicas"), 1)
        template = spec.get("template") or {}
        owned = await self._claim(
            rs_rt, deployment, workload_selector(deployment), await self._list(rs_rt, namespace)
        )
        owned.sort(
            key=lambda rs: (
                parse_time(rs["metadata"].get("creationTimestamp")) or 0.0,
                rs["metadata"]["name"],
            )
        )
        new = next(
            (rs for rs in owned if templates_equal((rs.get("spec") or {}).get("template") or {}, template)),
            None,
        )
        olds = [rs for rs in owned if rs is not new]
        created = False
        strategy = spec.get("strategy") or {}
        try:
            surge, unavailable = (0, 0)
            if strategy.get("type", "RollingUpdate") == "RollingUpdate":
                rolling = strategy.get("rollingUpdate") or {}
                surge, unavailable = resolve_fenceposts(
                    rolling.get("maxSurge"), rolling.get("maxUnavailable"), desired
                )
        except ValueError as exc:
            log.warning("deployment %s/%s: %s", namespace, name, exc)
            return
        if not spec.get("paused"):
            max_old = max((_revision(rs) for rs in olds), default=0)
            if strategy.get("type") == "Recreate":
                new, created = await self._recreate(deployment, new, olds, max_old, desired)
            else:
                new, created = await self._roll(deployment, new, olds, max_old, desired, surge, unavailable)
            if new is not None:
                await self._note_revision(rt, deployment, new)
        await self._deployment_status(deployment, new, olds, created, desired, unavailable)

    async def _new_replicaset(
        self, deployment: JsonObject, revision: int, replicas: int, surge: int
    ) -> JsonObject | None:
        """Create the ReplicaSet of the current template, raising the collision count when its name is taken."""
        rs_rt = self._kind_rt("ReplicaSet")
        meta = deployment["metadata"]
        spec = deployment.get("spec") or {}
        template = spec.get("template") or {}
        collisions = (deployment.get("status") or {}).get("collisionCount")
        pod_hash = template_hash(template, collisions)
        rs_template = copy.deepcopy(template)
        rs_template.setdefault("metadata", {}).setdefault("labels", {})[POD_TEMPLATE_HASH] = pod_hash
        selector = copy.deepcopy(spec.get("selector") or {})
        selector.setdefault("matchLabels", {})[POD_TEMPLATE_HASH] = pod_hash
        annotations = {
            k: v
            for k, v in (meta.get("annotations") or {}).items()
            if k not in ("kubectl.kubernetes.io/last-applied-configuration", REVISION_ANNOTATION)
        }
        annotations.update(
            {
                REVISION_ANNOTATION: str(revision),
                DESIRED_REPLICAS_ANNOTATION: str(_int(spec.get("replicas"), 1)),
                MAX_REPLICAS_ANNOTATION: str(_int(spec.get("replicas"), 1) + surge),
            }
        )
        body: JsonObject = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": f"{meta['name']}-{pod_hash}",
                "labels": dict((rs_template.get("metadata") or {}).get("labels") or {}),
                "annotations": annotations,
                "ownerReferences": [owner_reference(deployment)],
            },
            "spec": {"replicas": replicas, "selector": selector, "template": rs_template},
        }
        if spec.get("minReadySeconds"):
            body["spec"]["minReadySeconds"] = spec["minReadySeconds"]
        try:
            return await self.engine.create(Target(rs_rt, meta["namespace"]), body, WriteOptions())
        except apierrors.ApiError as exc:
            if exc.code != 409:
                raise
        existing = await self._get(rs_rt, meta["namespace"], body["metadata"]["name"])
        ref = controller_ref(existing) if existing else None
        if (
            existing is not None
            and ref is not None
            and ref.get("uid") == meta["uid"]
            and templates_equal((existing.get("spec") or {}).get("template") or {}, template)
        ):
            return existing
        # A different ReplicaSet holds the name: hash again with a higher collision count.
        status = copy.deepcopy(deployment.get("status") or {})
        status["collisionCount"] = _int(collisions, 0) + 1
        await self._write_status(self._kind_rt("Deployment"), deployment, status)
        return None

    async def _scale(self, rs: JsonObject, replicas: int, annotations: Mapping[str, str]) -> JsonObject:
        spec = rs.get("spec") or {}
        current = rs["metadata"].get("annotations") or {}
        if _int(spec.get("replicas"), 1) == replicas and all(
            current.get(k) == v for k, v in annotations.items()
        ):
            return rs
        body = copy.deepcopy(rs)
        body["spec"]["replicas"] = replicas
        body["metadata"]["annotations"] = {**current, **annotations}
        return await self._update(self._kind_rt("ReplicaSet"), body)

    def _scale_annotations(self, deployment: JsonObject, surge: int) -> dict[str, str]:
        desired = _int((deployment.get("spec") or {}).get("replicas"), 1)
        return {DESIRED_REPLICAS_ANNOTATION: str(desired), MAX_REPLICAS_ANNOTATION: str(desired + surge)}

    async def _roll(
        self,
        deployment: JsonObject,
        new: JsonObject | None,
        olds: list[JsonObject],
        max_old: int,
        desired: int,
        surge: int,
        unavailable: int,
    ) -> tuple[JsonObject | None, bool]:
        old_spec = sum(_int((rs.get("spec") or {}).get("replicas"), 1) for rs in olds)
        created = False
        annotations = self._scale_annotations(deployment, surge)
        if new is None:
            new = await self._new_replicaset(
                deployment, max_old + 1, new_replicas_rolling(desired, surge, 0, old_spec), surge
            )
            if new is None:
                return None, False
            created = True
        else:
            new_spec = _int((new.get("spec") or {}).get("replicas"), 1)
            target = new_replicas_rolling(desired, surge, new_spec, old_spec + new_spec)
            new = await self._scale(new, target, {**annotations, **_revision_fix(new, max_old)})
        new_counts = _counts(new)
        plan = old_replicas_rolling(desired, unavailable, new_counts, [_counts(rs) for rs in olds])
        for rs, replicas in zip(olds, plan, strict=True):
            if replicas != _int((rs.get("spec") or {}).get("replicas"), 1):
                await self._scale(rs, replicas, annotations)
        return new, created

    async def _recreate(
        self,
        deployment: JsonObject,
        new: JsonObject | None,
        olds: list[JsonObject],
        max_old: int,
        desired: int,
    ) -> tuple[JsonObject | None, bool]:
        """Recreate: every old pod goes before the new ReplicaSet is scaled up."""
        annotations = self._scale_annotations(deployment, 0)
        for rs in olds:
            if _int((rs.get("spec") or {}).get("replicas"), 1):
                await self._scale(rs, 0, annotations)
        if any(_int((rs.get("status") or {}).get("replicas"), 0) for rs in olds):
            return new, False
        if olds and any(_int((rs.get("spec") or {}).get("replicas"), 1) for rs in olds):
            return new, False
        namespace = deployment["metadata"]["namespace"]
        # An old ReplicaSet's status lags; its pods tell whether they are gone.
        old_uids = {rs["metadata"]["uid"] for rs in olds}
        pods = await self._list(self._pods, namespace) if olds else []
        if any((controller_ref(p) or {}).get("uid") in old_uids and not pod_finished(p) for p in pods):
            self._later("Deployment", namespace, deployment["metadata"]["name"], 0.5)
            return new, False
        if new is None:
            created = await self._new_replicaset(deployment, max_old + 1, desired, 0)
            return created, created is not None
        return await self._scale(new, desired, {**annotations, **_revision_fix(new, max_old)}), False

    async def _note_revision(self, rt: ResourceType, deployment: JsonObject, new: JsonObject) -> None:
        revision = (new["metadata"].get("annotations") or {}).get(REVISION_ANNOTATION)
        annotations = deployment["metadata"].get("annotations") or {}
        if revision and annotations.get(REVISION_ANNOTATION) != revision:
            body = copy.deepcopy(deployment)
            body["metadata"]["annotations"] = {**annotations, REVISION_ANNOTATION: revision}
            updated = await self._update(rt, body)
            deployment["metadata"] = updated["metadata"]

    async def _deployment_status(
        self,
        deployment: JsonObject,
        new: JsonObject | None,
        olds: list[JsonObject],
        created: bool,
        desired: int,
        unavailable: int,
    ) -> None:
        rt = self._kind_rt("Deployment")
        every = [*olds, *([new] if new is not None else [])]

        def total(field_name: str, items: list[JsonObject]) -> int:
            return sum(_int((rs.get("status") or {}).get(field_name), 0) for rs in items)

        replicas = total("replicas", every)
        updated = total("replicas", [new]) if new is not None else 0
        available = total("availableReplicas", every)
        counts = {
            "replicas": replicas,
            "updatedReplicas": updated,
            "readyReplicas": total("readyReplicas", every),
            "availableReplicas": available,
            "unavailableReplicas": max(desired - available, 0),
        }
        old_status = deployment.get("status") or {}
        status: JsonObject = {"observedGeneration": deployment["metadata"].get("generation", 1)}
        status.update({k: v for k, v in counts.items() if v})
        now = now_rfc3339(self.engine.clock)
        conditions = copy.deepcopy(old_status.get("conditions") or [])
        _set_condition(
            conditions,
            AVAILABLE if available >= desired - unavailable else UNAVAILABLE,
            now,
            update_time=True,
        )
        new_name = new["metadata"]["name"] if new is not None else ""
        complete = (
            new is not None
            and updated == desired
            and replicas == desired
            and available == desired
            and not any(_int((rs.get("spec") or {}).get("replicas"), 1) for rs in olds)
        )
        changed = counts != {k: old_status.get(k, 0) for k in counts}
        progressing = self._progressing(
            deployment, new_name, complete=complete, created=created, changed=changed
        )
        if progressing is not None:
            _set_condition(conditions, progressing, now, update_time=True)
            for condition in conditions:
                if changed and condition["type"] == "Progressing" and condition["status"] == "True":
                    condition["lastUpdateTime"] = now  # progress was made
        order = ["Available", "Progressing"]
        conditions.sort(key=lambda c: order.index(c["type"]) if c["type"] in order else len(order))
        status["conditions"] = conditions
        if old_status.get("collisionCount") is not None:
            status["collisionCount"] = old_status["collisionCount"]
        await self._write_status(rt, deployment, status)
        if complete:
            await self._prune_history(deployment, olds)
        elif not (deployment.get("spec") or {}).get("paused") and new is not None:
            deadline = _int((deployment.get("spec") or {}).get("progressDeadlineSeconds"), 600)
            self._later(
                "Deployment",
                deployment["metadata"]["namespace"],
                deployment["metadata"]["name"],
                deadline + 1,
            )

    def _progressing(
        self, deployment: JsonObject, new_name: str, *, complete: bool, created: bool, changed: bool
    ) -> ConditionValue | None:
        """The Progressing condition kube's deployment controller would report now."""
        if (deployment.get("spec") or {}).get("paused"):
            return ("Progressing", "Unknown", "DeploymentPaused", "Deployment is paused")
        if not new_name:
            return None
        if complete:
            return (
                "Progressing",
                "True",
                "NewReplicaSetAvailable",
                f'ReplicaSet "{new_name}" has successfully progressed.',
            )
        if created:
            return ("Progressing", "True", "NewReplicaSetCreated", f'Created new replica set "{new_name}"')
        current = _condition(deployment, "Progressing")
        timed_out = current is not None and current.get("reason") == "ProgressDeadlineExceeded"
        if (timed_out and not changed) or self._deadline_exceeded(deployment, current):
            return (
                "Progressing",
                "False",
                "ProgressDeadlineExceeded",
                f'ReplicaSet "{new_name}" has timed out progressing.',
            )
        return ("Progressing", "True", "ReplicaSetUpdated", f'ReplicaSet "{new_name}" is progressing.')

    def _deadline_exceeded(self, deployment: JsonObject, progressing: JsonObject | None) -> bool:
        deadline = (deployment.get("spec") or {}).get("progressDeadlineSeconds")
        if not isinstance(deadline, int) or progressing is None or progressing.get("status") != "True":
            return False
        if progressing.get("reason") == "NewReplicaSetAvailable":
            return False
        since = parse_time(progressing.get("lastUpdateTime"))
        return since is not None and since + deadline < time.time()

    async def _prune_history(self, deployment: JsonObject, olds: list[JsonObject]) -> None:
        """Keep at most ``revisionHistoryLimit`` scaled-down old ReplicaSets (the oldest revisions go)."""
        limit = (deployment.get("spec") or {}).get("revisionHistoryLimit")
        if not isinstance(limit, int):
            return
        idle = [
            rs
            for rs in olds
            if not _int((rs.get("spec") or {}).get("replicas"), 1)
            and not _int((rs.get("status") or {}).get("replicas"), 0)
            and not rs["metadata"].get("deletionTimestamp")
        ]
        idle.sort(key=_revision)
        for rs in idle[: max(len(idle) - limit, 0)]:
            await self._delete(self._kind_rt("ReplicaSet"), rs)

    # ----------------------------------------------------------- DaemonSet

    async def sync_daemonset(self, namespace: str, name: str) -> None:
        rt = self._kind_rt("DaemonSet")
        ds = await self._get(rt, namespace, name)
        if ds is None:
            return
        spec = ds.get("spec") or {}
        template = spec.get("template") or {}
        revision_hash = template_hash(template, (ds.get("status") or {}).get("collisionCount"))
        pods = await self._claim(
            self._pods, ds, workload_selector(ds), await self._list(self._pods, namespace)
        )
        nodes = [
            str(n["metadata"]["name"])
            for n in await self._list(self._rt("", "v1", "nodes"), "")
            if self._should_run(ds, n)
        ]
        by_node: dict[str, list[JsonObject]] = {}
        misscheduled = 0
        for pod in pods:
            if pod["metadata"].get("deletionTimestamp"):
                continue
            node = pod_node(pod)
            by_node.setdefault(node or "", []).append(pod)
        deleting = bool(ds["metadata"].get("deletionTimestamp"))
        for node, node_pods in by_node.items():
            if node not in nodes:
                misscheduled += sum(1 for p in node_pods if not pod_finished(p))
                if not deleting:
                    for pod in node_pods:
                        await self._delete(self._pods, pod)
        now = time.time()
        min_ready = _int(spec.get("minReadySeconds"), 0)
        current: dict[str, JsonObject] = {}
        for node in nodes:
            node_pods = sorted(
                by_node.get(node, []), key=lambda p: parse_time(p["metadata"].get("creationTimestamp")) or 0.0
            )
            live = [p for p in node_pods if not pod_finished(p)]
            if not deleting:
                for pod in node_pods:
                    if (pod.get("status") or {}).get("phase") == "Failed":
                        await self._delete(self._pods, pod)  # a failed daemon pod is replaced
                for extra in live[1:]:
                    await self._delete(self._pods, extra)
                if not live:
                    await self._create(self._pods, namespace, self._daemon_pod(ds, node, revision_hash))
            if live:
                current[node] = live[0]
        if not deleting:
            await self._daemon_rollout(ds, current, nodes, revision_hash, min_ready, now)
        status: JsonObject = {
            "currentNumberScheduled": len(current),
            "numberMisscheduled": misscheduled,
            "desiredNumberScheduled": len(nodes),
            "numberReady": sum(1 for p in current.values() if pod_ready(p)),
            "observedGeneration": ds["metadata"].get("generation", 1),
        }
        updated = sum(1 for p in current.values() if _pod_hash(p, CONTROLLER_REVISION_HASH) == revision_hash)
        available = sum(1 for p in current.values() if pod_available(p, min_ready, now))
        extras = {
            "updatedNumberScheduled": updated,
            "numberAvailable": available,
            "numberUnavailable": len(nodes) - available,
        }
        status.update({k: v for k, v in extras.items() if v})
        if (ds.get("status") or {}).get("collisionCount") is not None:
            status["collisionCount"] = ds["status"]["collisionCount"]
        await self._write_status(rt, ds, status)
        wait = available_in(current.values(), min_ready, now)
        if wait is not None:
            self._later("DaemonSet", namespace, name, wait)

    def _should_run(self, ds: JsonObject, node: JsonObject) -> bool:
        """Whether the node is Ready, matches the template's selector and affinity, and its taints are tolerated."""
        if not node_ready(node):
            return False
        probe = {"spec": copy.deepcopy(((ds.get("spec") or {}).get("template") or {}).get("spec") or {})}
        add_daemon_tolerations(probe["spec"])
        return pod_matches_node(probe, node) and untolerated_taint(probe, node) is None

    def _daemon_pod(self, ds: JsonObject, node: str, revision_hash: str) -> JsonObject:
        spec = ds.get("spec") or {}
        pod = pod_from_template(
            spec.get("template") or {},
            ds,
            generate_name=f"{ds['metadata']['name']}-",
            labels={
                CONTROLLER_REVISION_HASH: revision_hash,
                POD_TEMPLATE_GENERATION: str(ds["metadata"].get("generation", 1)),
            },
        )
        pin_to_node(pod["spec"], node)
        add_daemon_tolerations(pod["spec"])
        return pod

    async def _daemon_rollout(
        self,
        ds: JsonObject,
        current: dict[str, JsonObject],
        nodes: list[str],
        revision_hash: str,
        min_ready: int,
        now: float,
    ) -> None:
        """RollingUpdate: replace old pods, at most ``maxUnavailable`` nodes without an available pod at once."""
        strategy = (ds.get("spec") or {}).get("updateStrategy") or {}
        if strategy.get("type", "RollingUpdate") != "RollingUpdate":
            return
        rolling = strategy.get("rollingUpdate") or {}
        try:
            max_unavailable = scaled_value(rolling.get("maxUnavailable", 1), len(nodes), round_up=True)
        except ValueError as exc:
            log.warning("daemonset %s: %s", ds["metadata"]["name"], exc)
            return
        max_unavailable = max(max_unavailable, 1)
        unavailable = sum(
            1 for node in nodes if node not in current or not pod_available(current[node], min_ready, now)
        )
        for node in nodes:
            pod = current.get(node)
            if pod is None or _pod_hash(pod, CONTROLLER_REVISION_HASH) == revision_hash:
                continue
            if not pod_available(pod, min_ready, now):
                await self._delete(self._pods, pod)
            elif unavailable < max_unavailable:
                await self._delete(self._pods, pod)
                unavailable += 1

    # --------------------------------------------------------- StatefulSet

    async def sync_statefulset(self, namespace: str, name: str) -> None:
        rt = self._kind_rt("StatefulSet")
        sts = await self._get(rt, namespace, name)
        if sts is None:
            return
        spec = sts.get("spec") or {}
        replicas = _int(spec.get("replicas"), 1)
        collisions = _int((sts.get("status") or {}).get("collisionCount"), 0)
        update_revision = f"{name}-{template_hash(spec.get('template') or {}, collisions)}"
        current_revision = (sts.get("status") or {}).get("currentRevision") or update_revision
        candidates = [
            p
            for p in await self._list(self._pods, namespace)
            if _ordinal(p["metadata"]["name"], name) is not None
        ]
        pods = await self._claim(self._pods, sts, workload_selector(sts), candidates)
        by_ordinal = {int(_ordinal(p["metadata"]["name"], name) or 0): p for p in pods}
        if not sts["metadata"].get("deletionTimestamp"):
            await self._statefulset_pods(sts, by_ordinal, replicas, update_revision)
        now = time.time()
        min_ready = _int(spec.get("minReadySeconds"), 0)
        present = [p for p in by_ordinal.values() if not p["metadata"].get("deletionTimestamp")]
        updated = sum(1 for p in present if _pod_hash(p, CONTROLLER_REVISION_HASH) == update_revision)
        ready = sum(1 for p in present if pod_ready(p))
        if updated == replicas and ready == replicas and len(present) == replicas:
            current_revision = update_revision
        counts = {
            "readyReplicas": ready,
            "currentReplicas": sum(
                1 for p in present if _pod_hash(p, CONTROLLER_REVISION_HASH) == current_revision
            ),
            "updatedReplicas": updated,
        }
        status: JsonObject = {
            "observedGeneration": sts["metadata"].get("generation", 1),
            "replicas": len(present),
        }
        status.update({k: v for k, v in counts.items() if v})
        status.update(
            currentRevision=current_revision,
            updateRevision=update_revision,
            collisionCount=_int(collisions, 0),
            availableReplicas=sum(1 for p in present if pod_available(p, min_ready, now)),
        )
        await self._write_status(rt, sts, status)
        wait = available_in(present, min_ready, now)
        if wait is not None:
            self._later("StatefulSet", namespace, name, wait)

    async def _statefulset_pods(
        self, sts: JsonObject, by_ordinal: dict[int, JsonObject], replicas: int, revision: str
    ) -> None:
        """Create, replace, remove and update the set's pods; OrderedReady does one at a time, in order."""
        spec = sts.get("spec") or {}
        ordered = spec.get("podManagementPolicy", "OrderedReady") != "Parallel"
        for ordinal in range(replicas):
            pod = by_ordinal.get(ordinal)
            if pod is None:
                await self._create_stateful_pod(sts, ordinal, revision)
                if ordered:
                    return
                continue
            if pod["metadata"].get("deletionTimestamp"):
                if ordered:
                    return
                continue
            if pod_finished(pod):
                await self._delete(self._pods, pod)  # recreated under the same name once gone
                if ordered:
                    return
                continue
            if ordered and not ((pod.get("status") or {}).get("phase") == "Running" and pod_ready(pod)):
                return
        for ordinal in sorted((o for o in by_ordinal if o >= replicas), reverse=True):
            pod = by_ordinal[ordinal]
            if not pod["metadata"].get("deletionTimestamp"):
                await self._delete(self._pods, pod)
            if ordered:
                return
        strategy = spec.get("updateStrategy") or {}
        if strategy.get("type", "RollingUpdate") != "RollingUpdate":
            return
        partition = _int((strategy.get("rollingUpdate") or {}).get("partition"), 0)
        if any(not pod_ready(p) or p["metadata"].get("deletionTimestamp") for p in by_ordinal.values()):
            return
        for ordinal in range(replicas - 1, partition - 1, -1):
            pod = by_ordinal.get(ordinal)
            if pod is not None and _pod_hash(pod, CONTROLLER_REVISION_HASH) != revision:
                await self._delete(self._pods, pod)
                return

    async def _create_stateful_pod(self, sts: JsonObject, ordinal: int, revision: str) -> None:
        spec = sts.get("spec") or {}
        meta = sts["metadata"]
        namespace, set_name = meta["namespace"], meta["name"]
        pod_name = f"{set_name}-{ordinal}"
        pod = pod_from_template(
            spec.get("template") or {},
            sts,
            name=pod_name,
            labels={
                CONTROLLER_REVISION_HASH: revision,
                STATEFULSET_POD_NAME: pod_name,
                POD_INDEX: str(ordinal),
            },
        )
        pod["spec"]["hostname"] = pod_name
        if spec.get("serviceName"):
            pod["spec"]["subdomain"] = spec["serviceName"]
        claims_rt = self._rt("", "v1", "persistentvolumeclaims")
        match_labels = (spec.get("selector") or {}).get("matchLabels") or {}
        volumes = list(pod["spec"].get("volumes") or [])
        for claim_template in spec.get("volumeClaimTemplates") or []:
            template_meta = claim_template.get("metadata") or {}
            claim_name = f"{template_meta.get('name', '')}-{set_name}-{ordinal}"
            if await self._get(claims_rt, namespace, claim_name) is None:
                claim: JsonObject = {
                    "apiVersion": "v1",
                    "kind": "PersistentVolumeClaim",
                    "metadata": {
                        "name": claim_name,
                        "labels": {**(template_meta.get("labels") or {}), **match_labels},
                    },
                    "spec": copy.deepcopy(claim_template.get("spec") or {}),
                }
                if template_meta.get("annotations"):
                    claim["metadata"]["annotations"] = copy.deepcopy(template_meta["annotations"])
                await self._create(claims_rt, namespace, claim)
            volumes = [v for v in volumes if v.get("name") != template_meta.get("name")]
            volumes.append(
                {"name": template_meta.get("name"), "persistentVolumeClaim": {"claimName": claim_name}}
            )
        if volumes:
            pod["spec"]["volumes"] = volumes
        await self._create(self._pods, namespace, pod)

    # ----------------------------------------------------------------- Job

    async def sync_job(self, namespace: str, name: str) -> None:
        rt = self._kind_rt("Job")
        job = await self._get(rt, namespace, name)
        if job is None:
            return
        spec = job.get("spec") or {}
        meta = job["metadata"]
        old_status = job.get("status") or {}
        pods = await self._claim(
            self._pods, job, workload_selector(job), await self._list(self._pods, namespace)
        )
        active = [p for p in pods if pod_active(p)]
        succeeded = max(
            sum(1 for p in pods if (p.get("status") or {}).get("phase") == "Succeeded"),
            _int(old_status.get("succeeded"), 0),
        )
        failed_pods = sum(1 for p in pods if (p.get("status") or {}).get("phase") == "Failed")
        failed = max(failed_pods, _int(old_status.get("failed"), 0))
        restarts = 0
        if (spec.get("template") or {}).get("spec", {}).get("restartPolicy") == "OnFailure":
            restarts = sum(
                int(c.get("restartCount") or 0)
                for p in active
                for c in (p.get("status") or {}).get("containerStatuses") or []
            )
        now = now_rfc3339(self.engine.clock)
        status = copy.deepcopy(old_status)
        conditions: list[JsonObject] = status.get("conditions") or []
        finished = any(
            c.get("type") in ("Complete", "Failed") and c.get("status") == "True" for c in conditions
        )
        if not finished and not meta.get("deletionTimestamp"):
            status.setdefault("startTime", now)
            completions = spec.get("completions")
            parallelism = _int(spec.get("parallelism"), 1)
            backoff_limit = _int(spec.get("backoffLimit"), 6)
            deadline = spec.get("activeDeadlineSeconds")
            started = parse_time(status.get("startTime"))
            if failed + restarts > backoff_limit:
                self._fail_job(
                    conditions, "BackoffLimitExceeded", "Job has reached the specified backoff limit", now
                )
            elif isinstance(deadline, int) and started is not None and started + deadline <= time.time():
                self._fail_job(
                    conditions, "DeadlineExceeded", "Job was active longer than specified deadline", now
                )
            elif (completions is not None and succeeded >= completions) or (
                completions is None and succeeded > 0 and not active
            ):
                _set_condition(conditions, JOB_COMPLETE, now, update_time=False)
                for condition in conditions:
                    condition.setdefault("lastProbeTime", now)
                status["completionTime"] = now
            elif not spec.get("suspend"):
                want = parallelism if completions is None else min(parallelism, completions - succeeded)
                if completions is None and succeeded > 0:
                    want = 0
                await self._job_pods(job, active, want, failed)
                if isinstance(deadline, int) and started is not None:
                    self._later("Job", namespace, name, max(started + deadline - time.time(), 0.1))
            finished = any(
                c.get("type") in ("Complete", "Failed") and c.get("status") == "True" for c in conditions
            )
            if finished:
                for pod in active:
                    await self._delete(self._pods, pod)
                active = []
        if conditions:
            status["conditions"] = conditions
        status.pop("active", None)
        status.pop("succeeded", None)
        status.pop("failed", None)
        if active:
            status["active"] = len(active)
        if succeeded:
            status["succeeded"] = succeeded
        if failed:
            status["failed"] = failed
        status["ready"] = sum(1 for p in active if pod_ready(p))
        status.setdefault("uncountedTerminatedPods", {})
        if "startTime" in status or active:
            await self._write_status(rt, job, status)

    @staticmethod
    def _fail_job(conditions: list[JsonObject], reason: str, message: str, now: str) -> None:
        for kind in ("FailureTarget", "Failed"):
            _set_condition(conditions, (kind, "True", reason, message), now, update_time=False)
        for condition in conditions:
            condition.setdefault("lastProbeTime", now)

    async def _job_pods(self, job: JsonObject, active: list[JsonObject], want: int, failed: int) -> None:
        meta = job["metadata"]
        namespace, name, uid = meta["namespace"], meta["name"], meta["uid"]
        if len(active) > want:
            for pod in sorted(active, key=deletion_rank)[: len(active) - want]:
                await self._delete(self._pods, pod)
            return
        if len(active) == want:
            return
        seen_count, seen_at = self._job_failures.get(uid, (0, time.monotonic()))
        if failed != seen_count:
            seen_count, seen_at = failed, time.monotonic()
            self._job_failures[uid] = (seen_count, seen_at)
        wait = seen_at + job_backoff(failed) - time.monotonic()
        if wait > 0:
            self._later("Job", namespace, name, wait)
            return
        labels = {
            JOB_UID_LABELS[0]: uid,
            JOB_UID_LABELS[1]: uid,
            JOB_NAME_LABELS[0]: name,
            JOB_NAME_LABELS[1]: name,
        }
        template = (job.get("spec") or {}).get("template") or {}
        for _ in range(min(want - len(active), _MAX_BURST)):
            await self._create(
                self._pods,
                namespace,
                pod_from_template(template, job, generate_name=f"{name}-", labels=labels),
            )


def _revision(rs: JsonObject) -> int:
    text = ((rs.get("metadata") or {}).get("annotations") or {}).get(REVISION_ANNOTATION, "0")
    return int(text) if str(text).isdigit() else 0


def _revision_fix(new: JsonObject, max_old: int) -> dict[str, str]:
    """The new ReplicaSet's revision must exceed every old one's (a rollback makes an old template new again)."""
    return {REVISION_ANNOTATION: str(max_old + 1)} if _revision(new) <= max_old else {}


def _counts(rs: JsonObject) -> ReplicaCounts:
    return ReplicaCounts(
        spec=_int((rs.get("spec") or {}).get("replicas"), 1),
        available=_int((rs.get("status") or {}).get("availableReplicas"), 0),
    )


def _pod_hash(pod: JsonObject, label: str) -> str | None:
    value = ((pod.get("metadata") or {}).get("labels") or {}).get(label)
    return str(value) if value is not None else None
