"""The sandbox's workload controllers turn Deployments, ReplicaSets, DaemonSets, StatefulSets and Jobs into pods."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from tests.conftest import Sandbox
from tests.integration.sandboxapi import Kube, eventually, gone

pytestmark = pytest.mark.integration

JsonObject = dict[str, Any]
SLEEP = ["sh", "-c", "sleep 3600"]
HASH = re.compile(r"^[bcdfghjklmnpqrstvwxz2456789]+$")


def _template(labels: dict[str, str], command: list[str] = SLEEP, **spec: Any) -> JsonObject:
    return {
        "metadata": {"labels": labels},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "main", "image": "busybox", "command": command}],
            **spec,
        },
    }


def _apply(sandbox: Sandbox, namespace: str, *objects: JsonObject) -> None:
    for obj in objects:
        sandbox.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(obj))


def _deployment(name: str, replicas: int, **spec: Any) -> JsonObject:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": _template({"app": name}),
            **spec,
        },
    }


def _pods(sandbox: Sandbox, namespace: str, selector: str = "") -> list[JsonObject]:
    args = ["get", "pods", "-n", namespace]
    if selector:
        args += ["-l", selector]
    items: list[JsonObject] = sandbox.kubectl_json(*args)["items"]
    return items


def _live(pods: list[JsonObject]) -> list[JsonObject]:
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


def _ready(pod: JsonObject) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


def _ready_pods(sandbox: Sandbox, namespace: str, selector: str, count: int) -> list[JsonObject]:
    """Wait until exactly ``count`` live pods match and all are Running and Ready."""

    def check() -> list[JsonObject]:
        pods = _live(_pods(sandbox, namespace, selector))
        assert len(pods) == count, [p["metadata"]["name"] for p in pods]
        assert all(p["status"].get("phase") == "Running" and _ready(p) for p in pods)
        return pods or [{}]

    pods = eventually(check, timeout=20)
    return [p for p in pods if p]


def _replicasets(sandbox: Sandbox, namespace: str) -> list[JsonObject]:
    items: list[JsonObject] = sandbox.kubectl_json("get", "replicasets", "-n", namespace)["items"]
    return items


def _controller(obj: JsonObject) -> JsonObject:
    refs = [r for r in obj["metadata"].get("ownerReferences") or [] if r.get("controller")]
    assert len(refs) == 1, obj["metadata"]
    return refs[0]


# --------------------------------------------------------------- Deployment


def test_deployment_gets_a_hashed_replicaset_and_ready_pods(sandbox: Sandbox, namespace: str) -> None:
    _apply(sandbox, namespace, _deployment("web", 2))
    sandbox.kubectl("rollout", "status", "-n", namespace, "deployment/web", "--timeout=30s")
    pods = _ready_pods(sandbox, namespace, "app=web", 2)
    [rs] = _replicasets(sandbox, namespace)
    pod_hash = rs["metadata"]["labels"]["pod-template-hash"]
    assert HASH.match(pod_hash)
    assert rs["metadata"]["name"] == f"web-{pod_hash}"
    assert rs["spec"]["selector"]["matchLabels"] == {"app": "web", "pod-template-hash": pod_hash}
    assert rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
    deployment = sandbox.kubectl_json("get", "deployment", "web", "-n", namespace)
    assert _controller(rs)["uid"] == deployment["metadata"]["uid"]
    assert deployment["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
    status = deployment["status"]
    assert (
        status["replicas"],
        status["updatedReplicas"],
        status["readyReplicas"],
        status["availableReplicas"],
    ) == (
        2,
        2,
        2,
        2,
    )
    assert status["observedGeneration"] == deployment["metadata"]["generation"]
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Available"]["status"] == "True"
    assert conditions["Progressing"]["reason"] == "NewReplicaSetAvailable"
    for pod in pods:
        assert re.fullmatch(rf"web-{pod_hash}-[bcdfghjklmnpqrstvwxz2456789]{{5}}", pod["metadata"]["name"])
        assert pod["metadata"]["labels"]["pod-template-hash"] == pod_hash
        ref = _controller(pod)
        assert (ref["kind"], ref["name"], ref["uid"], ref["blockOwnerDeletion"]) == (
            "ReplicaSet",
            rs["metadata"]["name"],
            rs["metadata"]["uid"],
            True,
        )


def test_scaling_a_deployment_up_and_down(sandbox: Sandbox, namespace: str) -> None:
    _apply(sandbox, namespace, _deployment("web", 1))
    _ready_pods(sandbox, namespace, "app=web", 1)
    sandbox.kubectl("scale", "-n", namespace, "deployment/web", "--replicas=3")
    _ready_pods(sandbox, namespace, "app=web", 3)
    sandbox.kubectl("scale", "-n", namespace, "deployment/web", "--replicas=1")
    _ready_pods(sandbox, namespace, "app=web", 1)
    [rs] = _replicasets(sandbox, namespace)
    assert rs["spec"]["replicas"] == 1
    eventually(
        lambda: sandbox.kubectl_json("get", "deployment", "web", "-n", namespace)["status"]["replicas"] == 1
    )


def test_template_change_rolls_out_to_a_new_replicaset(sandbox: Sandbox, namespace: str) -> None:
    _apply(sandbox, namespace, _deployment("web", 2))
    sandbox.kubectl("rollout", "status", "-n", namespace, "deployment/web", "--timeout=30s")
    sandbox.kubectl("set", "env", "-n", namespace, "deployment/web", "COLOUR=blue")
    sandbox.kubectl("rollout", "status", "-n", namespace, "deployment/web", "--timeout=30s")
    by_revision = {
        rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]: rs
        for rs in _replicasets(sandbox, namespace)
    }
    assert sorted(by_revision) == ["1", "2"]
    assert by_revision["1"]["spec"]["replicas"] == 0
    assert by_revision["2"]["spec"]["replicas"] == 2
    new_hash = by_revision["2"]["metadata"]["labels"]["pod-template-hash"]
    pods = _ready_pods(sandbox, namespace, "app=web", 2)
    assert {p["metadata"]["labels"]["pod-template-hash"] for p in pods} == {new_hash}
    assert all(p["spec"]["containers"][0]["env"] == [{"name": "COLOUR", "value": "blue"}] for p in pods)
    # Rolling back makes the first template current again, under a new revision.
    sandbox.kubectl("rollout", "undo", "-n", namespace, "deployment/web")
    sandbox.kubectl("rollout", "status", "-n", namespace, "deployment/web", "--timeout=30s")
    revisions = {
        rs["metadata"]["name"]: rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
        for rs in _replicasets(sandbox, namespace)
    }
    assert revisions == {by_revision["1"]["metadata"]["name"]: "3", by_revision["2"]["metadata"]["name"]: "2"}


def test_recreate_strategy_replaces_all_pods(sandbox: Sandbox, namespace: str) -> None:
    _apply(sandbox, namespace, _deployment("web", 2, strategy={"type": "Recreate"}))
    before = {p["metadata"]["uid"] for p in _ready_pods(sandbox, namespace, "app=web", 2)}
    sandbox.kubectl("set", "env", "-n", namespace, "deployment/web", "COLOUR=red")
    sandbox.kubectl("rollout", "status", "-n", namespace, "deployment/web", "--timeout=30s")
    after = {p["metadata"]["uid"] for p in _ready_pods(sandbox, namespace, "app=web", 2)}
    assert not before & after


def test_revision_history_limit_prunes_old_replicasets(sandbox: Sandbox, namespace: str) -> None:
    _apply(sandbox, namespace, _deployment("web", 1, revisionHistoryLimit=1))
    for colour in ("red", "green"):
        sandbox.kubectl("set", "env", "-n", namespace, "deployment/web", f"COLOUR={colour}")
        sandbox.kubectl("rollout", "status", "-n", namespace, "deployment/web", "--timeout=30s")

    def pruned() -> bool:
        revisions = sorted(
            rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
            for rs in _replicasets(sandbox, namespace)
        )
        assert revisions == ["2", "3"]
        return True

    eventually(pruned)


def test_a_deleted_pod_is_replaced(sandbox: Sandbox, namespace: str) -> None:
    _apply(sandbox, namespace, _deployment("web", 2))
    [first, _second] = _ready_pods(sandbox, namespace, "app=web", 2)
    sandbox.kubectl("delete", "pod", "-n", namespace, first["metadata"]["name"], "--wait=false")
    pods = _ready_pods(sandbox, namespace, "app=web", 2)
    assert first["metadata"]["uid"] not in {p["metadata"]["uid"] for p in pods}


def test_replicaset_adopts_matching_orphans_and_releases_relabelled_pods(
    sandbox: Sandbox, namespace: str
) -> None:
    orphan = {"apiVersion": "v1", "kind": "Pod", **_template({"app": "db"})}
    orphan["metadata"]["name"] = "orphan"
    _apply(sandbox, namespace, orphan)
    replicaset = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": "db"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "db"}},
            "template": _template({"app": "db"}),
        },
    }
    _apply(sandbox, namespace, replicaset)
    pods = _ready_pods(sandbox, namespace, "app=db", 2)
    rs = sandbox.kubectl_json("get", "replicaset", "db", "-n", namespace)
    assert "orphan" in {p["metadata"]["name"] for p in pods}
    assert all(_controller(p)["uid"] == rs["metadata"]["uid"] for p in pods)
    # A pod relabelled out of the selector is released, and replaced.
    sandbox.kubectl("label", "pod", "-n", namespace, "orphan", "app=elsewhere", "--overwrite")
    _ready_pods(sandbox, namespace, "app=db", 2)
    eventually(
        lambda: (
            not sandbox.kubectl_json("get", "pod", "orphan", "-n", namespace)["metadata"].get(
                "ownerReferences"
            )
        )
    )
    eventually(
        lambda: (
            sandbox.kubectl_json("get", "replicaset", "db", "-n", namespace)["status"].get("readyReplicas")
            == 2
        )
    )


def test_restored_replicaset_is_adopted_by_its_deployment_without_a_duplicate(
    sandbox: Sandbox, namespace: str
) -> None:
    # What a restore applies: the ReplicaSet first (no owner), with the hash label the source cluster gave it.
    template = _template({"app": "web"})
    hashed = json.loads(json.dumps(template))
    hashed["metadata"]["labels"]["pod-template-hash"] = "5d8f7c9b6d"
    restored = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": "web-5d8f7c9b6d",
            "labels": {"app": "web", "pod-template-hash": "5d8f7c9b6d"},
            "annotations": {"deployment.kubernetes.io/revision": "4"},
        },
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web", "pod-template-hash": "5d8f7c9b6d"}},
            "template": hashed,
        },
    }
    _apply(sandbox, namespace, restored)
    _apply(sandbox, namespace, _deployment("web", 2))
    sandbox.kubectl("rollout", "status", "-n", namespace, "deployment/web", "--timeout=30s")
    [rs] = _replicasets(sandbox, namespace)
    deployment = sandbox.kubectl_json("get", "deployment", "web", "-n", namespace)
    assert rs["metadata"]["name"] == "web-5d8f7c9b6d"
    assert _controller(rs)["uid"] == deployment["metadata"]["uid"]
    assert deployment["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "4"
    pods = _ready_pods(sandbox, namespace, "app=web", 2)
    assert all(p["metadata"]["name"].startswith("web-5d8f7c9b6d-") for p in pods)


def test_deleting_a_deployment_removes_its_replicasets_and_pods(
    sandbox: Sandbox, kube: Kube, namespace: str
) -> None:
    _apply(sandbox, namespace, _deployment("web", 1))
    _ready_pods(sandbox, namespace, "app=web", 1)
    sandbox.kubectl("delete", "deployment", "web", "-n", namespace, "--cascade=foreground", "--timeout=30s")
    eventually(
        lambda: not _replicasets(sandbox, namespace) and not _pods(sandbox, namespace, "app=web"), timeout=20
    )
    assert gone(lambda: kube.apps.read_namespaced_deployment("web", namespace))


# ---------------------------------------------------------------- DaemonSet


def _daemonset(name: str, **pod_spec: Any) -> JsonObject:
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": _template({"app": name}, **pod_spec),
        },
    }


def test_daemonset_runs_one_pod_per_node(sandbox: Sandbox, namespace: str) -> None:
    _apply(sandbox, namespace, _daemonset("agent"))
    sandbox.kubectl("rollout", "status", "-n", namespace, "daemonset/agent", "--timeout=30s")
    pods = _ready_pods(sandbox, namespace, "app=agent", 2)
    assert sorted(p["spec"]["nodeName"] for p in pods) == ["sandbox-node-1", "sandbox-node-2"]
    for pod in pods:
        term = pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
            "nodeSelectorTerms"
        ][0]
        assert term["matchFields"] == [
            {"key": "metadata.name", "operator": "In", "values": [pod["spec"]["nodeName"]]}
        ]
        assert HASH.match(pod["metadata"]["labels"]["controller-revision-hash"])
        assert _controller(pod)["kind"] == "DaemonSet"
    status = sandbox.kubectl_json("get", "daemonset", "agent", "-n", namespace)["status"]
    assert {
        k: status.get(k) for k in ("desiredNumberScheduled", "currentNumberScheduled", "numberReady")
    } == {
        "desiredNumberScheduled": 2,
        "currentNumberScheduled": 2,
        "numberReady": 2,
    }
    # A template change replaces the pods, node by node.
    sandbox.kubectl("set", "env", "-n", namespace, "daemonset/agent", "COLOUR=blue")
    sandbox.kubectl("rollout", "status", "-n", namespace, "daemonset/agent", "--timeout=30s")
    pods = _ready_pods(sandbox, namespace, "app=agent", 2)
    assert all(p["spec"]["containers"][0]["env"] == [{"name": "COLOUR", "value": "blue"}] for p in pods)


def test_daemonset_respects_its_node_selector(sandbox: Sandbox, namespace: str) -> None:
    _apply(sandbox, namespace, _daemonset("picky", nodeSelector={"kubernetes.io/hostname": "sandbox-node-2"}))
    [pod] = _ready_pods(sandbox, namespace, "app=picky", 1)
    assert pod["spec"]["nodeName"] == "sandbox-node-2"
    status = eventually(
        lambda: (
            (s := sandbox.kubectl_json("get", "daemonset", "picky", "-n", namespace)["status"]).get(
                "numberReady"
            )
            == 1
            and s
        )
    )
    assert status["desiredNumberScheduled"] == 1


# -------------------------------------------------------------- StatefulSet


def test_statefulset_creates_ordered_pods_with_their_claims(sandbox: Sandbox, namespace: str) -> None:
    statefulset = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "db"},
        "spec": {
            "serviceName": "db",
            "replicas": 2,
            "selector": {"matchLabels": {"app": "db"}},
            "template": _template({"app": "db"}),
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data"},
                    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Mi"}}},
                }
            ],
        },
    }
    _apply(sandbox, namespace, statefulset)
    sandbox.kubectl("rollout", "status", "-n", namespace, "statefulset/db", "--timeout=30s")
    pods = {p["metadata"]["name"]: p for p in _ready_pods(sandbox, namespace, "app=db", 2)}
    assert sorted(pods) == ["db-0", "db-1"]
    for ordinal, name in enumerate(["db-0", "db-1"]):
        pod = pods[name]
        assert pod["spec"]["hostname"] == name and pod["spec"]["subdomain"] == "db"
        assert pod["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"] == name
        assert pod["metadata"]["labels"]["apps.kubernetes.io/pod-index"] == str(ordinal)
        claims = [
            v["persistentVolumeClaim"]["claimName"]
            for v in pod["spec"]["volumes"]
            if "persistentVolumeClaim" in v
        ]
        assert claims == [f"data-{name}"]
    # OrderedReady: db-1 was created only once db-0 was Ready.
    ready_0 = next(c for c in pods["db-0"]["status"]["conditions"] if c["type"] == "Ready")[
        "lastTransitionTime"
    ]
    assert pods["db-1"]["metadata"]["creationTimestamp"] >= ready_0
    claims = sandbox.kubectl_json("get", "pvc", "-n", namespace)["items"]
    assert {c["metadata"]["name"]: c["status"]["phase"] for c in claims} == {
        "data-db-0": "Bound",
        "data-db-1": "Bound",
    }
    assert all(c["metadata"]["labels"] == {"app": "db"} for c in claims)
    # Scaling down removes the highest ordinal but keeps its claim.
    sandbox.kubectl("scale", "-n", namespace, "statefulset/db", "--replicas=1")
    [remaining] = _ready_pods(sandbox, namespace, "app=db", 1)
    assert remaining["metadata"]["name"] == "db-0"
    assert {c["metadata"]["name"] for c in sandbox.kubectl_json("get", "pvc", "-n", namespace)["items"]} == {
        "data-db-0",
        "data-db-1",
    }


# ---------------------------------------------------------------------- Job


def _job(name: str, command: list[str], **spec: Any) -> JsonObject:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"template": _template({}, command, restartPolicy="Never"), **spec},
    }


def _job_condition(sandbox: Sandbox, namespace: str, name: str, kind: str) -> JsonObject:
    job: JsonObject = sandbox.kubectl_json("get", "job", name, "-n", namespace)
    conditions = {c["type"]: c for c in (job.get("status") or {}).get("conditions") or []}
    assert conditions.get(kind, {}).get("status") == "True", job.get("status")
    return job


def test_job_runs_to_completion(sandbox: Sandbox, namespace: str) -> None:
    _apply(sandbox, namespace, _job("once", ["sh", "-c", "exit 0"], completions=2))
    job = eventually(lambda: _job_condition(sandbox, namespace, "once", "Complete"), timeout=20)
    status = job["status"]
    assert status["succeeded"] == 2 and "failed" not in status and "active" not in status
    assert status["startTime"] <= status["completionTime"]
    pods = _pods(sandbox, namespace, "job-name=once")
    assert len(pods) == 2 and all(p["status"]["phase"] == "Succeeded" for p in pods)
    uid = job["metadata"]["uid"]
    for pod in pods:
        labels = pod["metadata"]["labels"]
        assert labels["batch.kubernetes.io/job-name"] == "once" and labels["controller-uid"] == uid
        assert _controller(pod)["uid"] == uid
    sandbox.kubectl("wait", "-n", namespace, "--for=condition=complete", "job/once", "--timeout=5s")


def test_failing_job_stops_at_its_backoff_limit(sandbox: Sandbox, namespace: str) -> None:
    _apply(sandbox, namespace, _job("doomed", ["sh", "-c", "exit 3"], backoffLimit=1))
    job = eventually(lambda: _job_condition(sandbox, namespace, "doomed", "Failed"), timeout=20)
    assert job["status"]["failed"] == 2
    failed = next(c for c in job["status"]["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "BackoffLimitExceeded"
    pods = _pods(sandbox, namespace, "job-name=doomed")
    assert len(pods) == 2 and all(p["status"]["phase"] == "Failed" for p in pods)
