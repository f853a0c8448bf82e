"""kube-scheduler's part of the sandbox: pending pods are bound to a fitting, least-loaded node.

Only the filters clients meet are modelled: node readiness, ``nodeSelector``,
required node affinity, taints against tolerations and the node affinity of a
claim's volume. A pod that fits nowhere gets kube-scheduler's PodScheduled
condition and FailedScheduling event, with its wording. Binding goes through
the ``pods/binding`` subresource's logic (:func:`bind_pod`), as kube-scheduler's does.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from strongroom.sandbox import apierrors
from strongroom.sandbox.engine import Engine, ListOptions, Target, WriteOptions, get_core, now_rfc3339
from strongroom.sandbox.store import Stored

log = logging.getLogger(__name__)

JsonObject = dict[str, Any]
DEFAULT_SCHEDULER = "default-scheduler"
_RESYNC_SECONDS = 1.0

# kube-scheduler's failure reasons (the text after "N node(s) ").
REASON_SELECTOR = "didn't match Pod's node affinity/selector"
REASON_VOLUME_AFFINITY = "had volume node affinity conflict"


# ---------------------------------------------------------------- predicates


def node_ready(node: JsonObject) -> bool:
    conditions = (node.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def requirement_matches(requirement: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """One matchExpressions entry of a node selector term against node labels."""
    key = str(requirement.get("key", ""))
    operator = requirement.get("operator")
    values = [str(v) for v in requirement.get("values") or []]
    if operator == "In":
        return key in labels and labels[key] in values
    if operator == "NotIn":
        return key not in labels or labels[key] not in values
    if operator == "Exists":
        return key in labels
    if operator == "DoesNotExist":
        return key not in labels
    if operator in ("Gt", "Lt"):
        try:
            have, want = int(labels[key]), int(values[0])
        except (KeyError, IndexError, ValueError):
            return False
        return have > want if operator == "Gt" else have < want
    return False


def term_matches(term: Mapping[str, Any], labels: Mapping[str, str], node_name: str) -> bool:
    """A node selector term: all its expressions and fields hold (an empty term matches nothing)."""
    expressions = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not expressions and not fields:
        return False
    if not all(requirement_matches(r, labels) for r in expressions):
        return False
    return all(requirement_matches(r, {"metadata.name": node_name}) for r in fields)


def node_selector_matches(selector: Mapping[str, Any] | None, node: JsonObject) -> bool:
    """A NodeSelector (terms ORed); None means no constraint."""
    if selector is None:
        return True
    meta = node.get("metadata") or {}
    labels = meta.get("labels") or {}
    terms = selector.get("nodeSelectorTerms") or []
    return any(term_matches(t, labels, str(meta.get("name", ""))) for t in terms)


def pod_matches_node(pod: JsonObject, node: JsonObject) -> bool:
    """``nodeSelector`` and required node affinity of the pod."""
    spec = pod.get("spec") or {}
    labels = (node.get("metadata") or {}).get("labels") or {}
    for key, value in (spec.get("nodeSelector") or {}).items():
        if labels.get(key) != value:
            return False
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    )
    return node_selector_matches(required, node)


def toleration_matches(toleration: Mapping[str, Any], taint: Mapping[str, Any]) -> bool:
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    operator = toleration.get("operator") or "Equal"
    key = toleration.get("key") or ""
    if not key:
        return operator == "Exists"
    if key != taint.get("key"):
        return False
    if operator == "Exists":
        return True
    return (toleration.get("value") or "") == (taint.get("value") or "")


def untolerated_taint(pod: JsonObject, node: JsonObject) -> JsonObject | None:
    """The first NoSchedule/NoExecute taint of the node the pod does not tolerate."""
    tolerations = (pod.get("spec") or {}).get("tolerations") or []
    for taint in (node.get("spec") or {}).get("taints") or []:
        if taint.get("effect") not in ("NoSchedule", "NoExecute"):
            continue
        if not any(toleration_matches(t, taint) for t in tolerations):
            return dict(taint)
    return None


def taint_reason(taint: Mapping[str, Any]) -> str:
    return f"had untolerated taint {{{taint.get('key', '')}: {taint.get('value', '')}}}"


def node_failure(pod: JsonObject, node: JsonObject, volume_affinities: Iterable[JsonObject]) -> str | None:
    """Why the pod cannot go to this node (kube-scheduler's reason text), or None when it fits."""
    if not node_ready(node):
        return taint_reason({"key": "node.kubernetes.io/not-ready", "value": ""})
    if (node.get("spec") or {}).get("unschedulable"):
        return taint_reason({"key": "node.kubernetes.io/unschedulable", "value": ""})
    if not pod_matches_node(pod, node):
        return REASON_SELECTOR
    taint = untolerated_taint(pod, node)
    if taint is not None:
        return taint_reason(taint)
    for affinity in volume_affinities:
        if not node_selector_matches(affinity.get("required"), node):
            return REASON_VOLUME_AFFINITY
    return None


def unschedulable_message(total: int, reasons: Mapping[str, int], detail: str = "") -> str:
    """kube-scheduler's FitError text: counts per reason (or one pod-level reason), then preemption's verdict."""
    if not detail:
        detail = ", ".join(sorted(f"{count} node(s) {reason}" for reason, count in reasons.items()))
    return (
        f"0/{total} nodes are available{': ' if detail else ''}{detail}. preemption: 0/{total} nodes are "
        f"available: {total} Preemption is not helpful for scheduling."
    )


def choose_node(
    pod: JsonObject,
    nodes: list[JsonObject],
    load: Mapping[str, int],
    volume_affinities: list[JsonObject],
) -> tuple[str | None, Counter[str]]:
    """The fitting node with the fewest pods (name breaks ties), or None and the reasons."""
    reasons: Counter[str] = Counter()
    fitting: list[str] = []
    for node in nodes:
        failure = node_failure(pod, node, volume_affinities)
        name = str((node.get("metadata") or {}).get("name", ""))
        if failure is None:
            fitting.append(name)
        else:
            reasons[failure] += 1
    if not fitting:
        return None, reasons
    return min(fitting, key=lambda n: (load.get(n, 0), n)), reasons


# ------------------------------------------------------------------- binding


async def bind_pod(engine: Engine, namespace: str, name: str, binding: JsonObject) -> None:
    """The ``pods/binding`` subresource: set ``spec.nodeName`` once and mark the pod scheduled."""
    target = binding.get("target") if isinstance(binding, dict) else None
    if not isinstance(target, dict) or not target.get("name"):
        raise apierrors.invalid(
            "", "Binding", name, [("target.name", "FieldValueRequired", "Required value")]
        )
    if target.get("kind") not in (None, "", "Node"):
        raise apierrors.invalid(
            "", "Binding", name, [("target.kind", "FieldValueNotSupported", 'must be empty or "Node"')]
        )
    node = str(target["name"])
    rt = engine.registry.lookup("", "v1", "pods")
    assert rt is not None
    key = engine.key(rt, namespace, name)
    annotations = ((binding.get("metadata") or {}).get("annotations")) or {}
    now = now_rfc3339(engine.clock)

    async def mutate(current: Stored) -> JsonObject | None:
        pod = copy.deepcopy(current.obj)
        meta = pod.setdefault("metadata", {})
        if meta.get("deletionTimestamp"):
            raise apierrors.conflict(
                "", "pods", name, f"pod {name} is being deleted, cannot be assigned to a host"
            )
        spec = pod.setdefault("spec", {})
        if spec.get("nodeName"):
            raise apierrors.conflict(
                "", "pods", name, f'pod {name} is already assigned to node "{spec["nodeName"]}"'
            )
        spec["nodeName"] = node
        if annotations:
            meta.setdefault("annotations", {}).update(annotations)
        set_condition(pod, "PodScheduled", "True", now)
        return pod

    await engine.store.guaranteed_update(key, mutate, not_found=lambda: apierrors.not_found("", "pods", name))


def set_condition(
    pod: JsonObject, kind: str, status: str, now: str, reason: str = "", message: str = ""
) -> bool:
    """Set a pod condition, keeping its transition time when its status stays; True when it changed."""
    conditions: list[JsonObject] = pod.setdefault("status", {}).setdefault("conditions", [])
    for condition in conditions:
        if condition.get("type") != kind:
            continue
        if (condition.get("status"), condition.get("reason", ""), condition.get("message", "")) == (
            status,
            reason,
            message,
        ):
            return False
        if condition.get("status") != status:
            condition["lastTransitionTime"] = now
        condition["status"] = status
        _reason_message(condition, reason, message)
        return True
    condition = {"type": kind, "status": status, "lastProbeTime": None, "lastTransitionTime": now}
    _reason_message(condition, reason, message)
    conditions.append(condition)
    return True


def _reason_message(condition: JsonObject, reason: str, message: str) -> None:
    for field_name, value in (("reason", reason), ("message", message)):
        if value:
            condition[field_name] = value
        else:
            condition.pop(field_name, None)


# ----------------------------------------------------------------- the loop


async def watch_changes(
    engine: Engine, resources: Iterable[tuple[str, str]], poke: Callable[[], None]
) -> None:
    """Call ``poke`` on every change of these core/v1 resources, re-watching after errors."""

    async def one(resource: str) -> None:
        rt = engine.registry.lookup("", "v1", resource)
        assert rt is not None
        while True:
            try:
                async for _ in engine.watch(Target(rt), ListOptions()):
                    poke()
            except asyncio.CancelledError:
                raise
            except Exception:  # a compacted or broken watch: start again
                log.debug("watch of %s ended", resource, exc_info=True)
            poke()
            await asyncio.sleep(0.5)

    await asyncio.gather(*(one(resource) for _group, resource in resources))


async def sync_on_changes(
    engine: Engine,
    resources: Iterable[tuple[str, str]],
    wake: asyncio.Event,
    sync_once: Callable[[], Awaitable[None]],
    what: str,
) -> None:
    """Run ``sync_once`` whenever these resources change (``wake`` set) and at least every few seconds."""
    watcher = asyncio.create_task(watch_changes(engine, resources, wake.set))
    try:
        while True:
            wake.clear()
            try:
                await sync_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s failed", what)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), _RESYNC_SECONDS)
    finally:
        watcher.cancel()
        with contextlib.suppress(BaseException):
            await watcher


class Scheduler:
    """Binds the pods of the default scheduler; one loop woken by pod, node and claim changes."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._wake = asyncio.Event()
        self._reported: dict[str, str] = {}

    def poke(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        await sync_on_changes(
            self.engine,
            [("", "pods"), ("", "nodes"), ("", "persistentvolumeclaims")],
            self._wake,
            self.sync_once,
            "scheduling pass",
        )

    async def _list(self, resource: str, namespace: str | None = None) -> list[JsonObject]:
        rt = self.engine.registry.lookup("", "v1", resource)
        assert rt is not None
        listing = await self.engine.list(Target(rt, namespace), ListOptions())
        items: list[JsonObject] = listing["items"]
        return items

    async def sync_once(self) -> None:
        pods = await self._list("pods")
        pending = [p for p in pods if _wants_scheduling(p)]
        if not pending:
            return
        nodes = await self._list("nodes")
        load: Counter[str] = Counter(
            (p.get("spec") or {}).get("nodeName", "")
            for p in pods
            if (p.get("spec") or {}).get("nodeName")
            and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
        )
        for pod in pending:
            await self._schedule_isolated(pod, nodes, load)

    async def _schedule_isolated(self, pod: JsonObject, nodes: list[JsonObject], load: Counter[str]) -> None:
        """Schedule one pod; a pod the scheduler cannot make sense of never holds up the others."""
        try:
            await self._schedule(pod, nodes, load)
        except Exception as exc:
            meta = pod.get("metadata") or {}
            log.exception("scheduling pod %s/%s failed", meta.get("namespace"), meta.get("name"))
            with contextlib.suppress(Exception):
                await self._report(pod, unschedulable_message(len(nodes), {}, f"scheduling failed: {exc}"))

    async def _schedule(self, pod: JsonObject, nodes: list[JsonObject], load: Counter[str]) -> None:
        meta = pod["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        try:
            affinities = await self._volume_affinities(pod)
        except _Unschedulable as exc:
            await self._report(pod, unschedulable_message(len(nodes), {}, str(exc)))
            return
        node, reasons = choose_node(pod, nodes, load, affinities)
        if node is None:
            await self._report(pod, unschedulable_message(len(nodes), reasons))
            return
        try:
            await self._bind(namespace, name, node)
        except apierrors.ApiError as exc:
            log.debug("binding %s/%s failed: %s", namespace, name, exc.message)
            return
        load[node] += 1
        self._reported.pop(meta.get("uid", ""), None)
        await self._event(pod, "Normal", "Scheduled", f"Successfully assigned {namespace}/{name} to {node}")

    async def _bind(self, namespace: str, name: str, node: str) -> None:
        binding = {"metadata": {"name": name}, "target": {"kind": "Node", "name": node}}
        await bind_pod(self.engine, namespace, name, binding)

    async def _volume_affinities(self, pod: JsonObject) -> list[JsonObject]:
        """The node affinities of the pod's claims' volumes; raises while a claim is missing or unbound."""
        namespace = pod["metadata"]["namespace"]
        affinities = []
        for volume in (pod.get("spec") or {}).get("volumes") or []:
            claim_ref = volume.get("persistentVolumeClaim")
            if not claim_ref:
                continue
            claim_name = str(claim_ref.get("claimName", ""))
            claim = await self._get("persistentvolumeclaims", namespace, claim_name)
            if claim is None:
                raise _Unschedulable(f'persistentvolumeclaim "{claim_name}" not found')
            volume_name = (claim.get("spec") or {}).get("volumeName")
            if not volume_name or (claim.get("status") or {}).get("phase") != "Bound":
                raise _Unschedulable("pod has unbound immediate PersistentVolumeClaims")
            pv = await self._get("persistentvolumes", None, str(volume_name))
            affinity = ((pv or {}).get("spec") or {}).get("nodeAffinity")
            if affinity:
                affinities.append(affinity)
        return affinities

    async def _get(self, resource: str, namespace: str | None, name: str) -> JsonObject | None:
        return await get_core(self.engine, resource, namespace, name)

    async def _report(self, pod: JsonObject, message: str) -> None:
        """PodScheduled False with the reasons, and one FailedScheduling event per new message."""
        meta = pod["metadata"]
        rt = self.engine.registry.lookup("", "v1", "pods")
        assert rt is not None
        updated = copy.deepcopy(pod)
        now = now_rfc3339(self.engine.clock)
        if set_condition(updated, "PodScheduled", "False", now, "Unschedulable", message):
            with contextlib.suppress(apierrors.ApiError):
                await self.engine.update(
                    Target(rt, meta["namespace"], meta["name"], "status"), updated, WriteOptions()
                )
        if self._reported.get(meta.get("uid", "")) != message:
            self._reported[meta.get("uid", "")] = message
            await self._event(pod, "Warning", "FailedScheduling", message)

    async def _event(self, pod: JsonObject, kind: str, reason: str, message: str) -> None:
        await record_event(self.engine, pod, kind, reason, message, DEFAULT_SCHEDULER)


class _Unschedulable(Exception):
    pass


def _wants_scheduling(pod: JsonObject) -> bool:
    spec = pod.get("spec") or {}
    meta = pod.get("metadata") or {}
    return (
        not spec.get("nodeName")
        and not meta.get("deletionTimestamp")
        and (spec.get("schedulerName") or DEFAULT_SCHEDULER) == DEFAULT_SCHEDULER
        and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
    )


async def record_event(
    engine: Engine,
    obj: JsonObject,
    kind: str,
    reason: str,
    message: str,
    component: str,
    host: str = "",
) -> None:
    """A core/v1 Event about a pod, as a component records it; failures only get logged."""
    meta = obj.get("metadata") or {}
    rt = engine.registry.lookup("", "v1", "events")
    assert rt is not None
    now = now_rfc3339(engine.clock)
    source: JsonObject = {"component": component}
    if host:
        source["host"] = host
    event = {
        "metadata": {"generateName": f"{meta.get('name', 'pod')}."},
        "involvedObject": {
            "kind": "Pod",
            "namespace": meta.get("namespace"),
            "name": meta.get("name"),
            "uid": meta.get("uid"),
            "apiVersion": "v1",
            "resourceVersion": meta.get("resourceVersion"),
        },
        "reason": reason,
        "message": message,
        "source": source,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
        "type": kind,
        "reportingComponent": component,
        "reportingInstance": host,
    }
    try:
        await engine.create(Target(rt, meta.get("namespace")), event, WriteOptions())
    except apierrors.ApiError as exc:
        log.debug("event %s for %s not recorded: %s", reason, meta.get("name"), exc.message)
