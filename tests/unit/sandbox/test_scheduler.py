"""Scheduling predicates and kube-scheduler's wording, without a cluster."""

from __future__ import annotations

from typing import Any

from strongroom.sandbox.scheduler import (
    REASON_SELECTOR,
    REASON_VOLUME_AFFINITY,
    choose_node,
    node_failure,
    pod_matches_node,
    requirement_matches,
    set_condition,
    toleration_matches,
    unschedulable_message,
    untolerated_taint,
)

JsonObject = dict[str, Any]


def node(
    name: str, labels: dict[str, str] | None = None, *, ready: bool = True, taints: Any = None
) -> JsonObject:
    return {
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
        "spec": {"taints": taints} if taints else {},
        "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


def pod(**spec: Any) -> JsonObject:
    return {"metadata": {"name": "p", "namespace": "ns"}, "spec": {"containers": [{"name": "c"}], **spec}}


def affinity(*expressions: JsonObject) -> JsonObject:
    terms = [{"matchExpressions": list(expressions)}]
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}


def test_match_expression_operators() -> None:
    labels = {"zone": "a", "size": "5"}
    assert requirement_matches({"key": "zone", "operator": "In", "values": ["a", "b"]}, labels)
    assert not requirement_matches({"key": "zone", "operator": "In", "values": ["b"]}, labels)
    assert requirement_matches({"key": "zone", "operator": "NotIn", "values": ["b"]}, labels)
    assert requirement_matches({"key": "other", "operator": "NotIn", "values": ["b"]}, labels)
    assert requirement_matches({"key": "zone", "operator": "Exists"}, labels)
    assert requirement_matches({"key": "other", "operator": "DoesNotExist"}, labels)
    assert not requirement_matches({"key": "zone", "operator": "DoesNotExist"}, labels)
    assert requirement_matches({"key": "size", "operator": "Gt", "values": ["4"]}, labels)
    assert not requirement_matches({"key": "zone", "operator": "Bogus", "values": ["a"]}, labels)


def test_node_selector_and_required_affinity_must_both_hold() -> None:
    ssd = node("n1", {"disk": "ssd", "zone": "a"})
    assert pod_matches_node(pod(nodeSelector={"disk": "ssd"}), ssd)
    assert not pod_matches_node(pod(nodeSelector={"disk": "hdd"}), ssd)
    zone_b = affinity({"key": "zone", "operator": "In", "values": ["b"]})
    assert not pod_matches_node(pod(nodeSelector={"disk": "ssd"}, affinity=zone_b), ssd)
    assert pod_matches_node(pod(affinity=affinity({"key": "zone", "operator": "Exists"})), ssd)


def test_taints_need_tolerations() -> None:
    tainted = node("n1", taints=[{"key": "dedicated", "value": "db", "effect": "NoSchedule"}])
    assert untolerated_taint(pod(), tainted) == {"key": "dedicated", "value": "db", "effect": "NoSchedule"}
    exact = {"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}
    assert untolerated_taint(pod(tolerations=[exact]), tainted) is None
    assert untolerated_taint(pod(tolerations=[{"operator": "Exists"}]), tainted) is None
    assert not toleration_matches({"key": "dedicated", "value": "web"}, tainted["spec"]["taints"][0])
    soft = node("n2", taints=[{"key": "k", "effect": "PreferNoSchedule"}])
    assert untolerated_taint(pod(), soft) is None


def test_node_failures_use_kube_schedulers_reasons() -> None:
    assert node_failure(pod(), node("n1", ready=False), []) == (
        "had untolerated taint {node.kubernetes.io/not-ready: }"
    )
    assert node_failure(pod(nodeSelector={"x": "y"}), node("n1"), []) == REASON_SELECTOR
    volume = {
        "required": {
            "nodeSelectorTerms": [
                {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": ["n2"]}]}
            ]
        }
    }
    assert node_failure(pod(), node("n1"), [volume]) == REASON_VOLUME_AFFINITY
    assert node_failure(pod(), node("n2"), [volume]) is None


def test_the_least_loaded_fitting_node_wins() -> None:
    nodes = [node("n1"), node("n2"), node("n3", {"disk": "ssd"})]
    assert choose_node(pod(), nodes, {"n1": 3, "n2": 1, "n3": 2}, [])[0] == "n2"
    assert choose_node(pod(), nodes, {}, [])[0] == "n1"
    chosen, reasons = choose_node(pod(nodeSelector={"disk": "ssd"}), nodes, {"n3": 9}, [])
    assert chosen == "n3"
    assert reasons == {REASON_SELECTOR: 2}


def test_unschedulable_message_matches_kube_scheduler() -> None:
    _, reasons = choose_node(pod(nodeSelector={"disk": "none"}), [node("n1"), node("n2")], {}, [])
    assert unschedulable_message(2, reasons) == (
        "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector. "
        "preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling."
    )
    mixed = unschedulable_message(3, {REASON_SELECTOR: 1, "had untolerated taint {a: b}": 2})
    assert mixed.startswith(
        "0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, "
        "2 node(s) had untolerated taint {a: b}."
    )
    assert unschedulable_message(2, {}, "pod has unbound immediate PersistentVolumeClaims").startswith(
        "0/2 nodes are available: pod has unbound immediate PersistentVolumeClaims. preemption:"
    )


def test_conditions_keep_their_transition_time_while_the_status_stays() -> None:
    obj: JsonObject = {}
    assert set_condition(obj, "PodScheduled", "False", "t1", "Unschedulable", "m1")
    assert set_condition(obj, "PodScheduled", "False", "t2", "Unschedulable", "m2")
    assert obj["status"]["conditions"][0]["lastTransitionTime"] == "t1"
    assert not set_condition(obj, "PodScheduled", "False", "t3", "Unschedulable", "m2")
    assert set_condition(obj, "PodScheduled", "True", "t4")
    assert obj["status"]["conditions"] == [
        {"type": "PodScheduled", "status": "True", "lastProbeTime": None, "lastTransitionTime": "t4"}
    ]
