"""The shutdown plan follows the seed: workers first, 1 minute, 10 for clusters of 10 nodes or more."""

from __future__ import annotations

from typing import Any

from strongroom.cluster.shutdown import debug_pod, plan_shutdown


def node(name: str, control_plane: bool = False) -> dict[str, Any]:
    labels = (
        {"node-role.kubernetes.io/master": ""} if control_plane else {"node-role.kubernetes.io/worker": ""}
    )
    return {"metadata": {"name": name, "labels": labels}}


def test_workers_go_first_and_the_delay_follows_the_cluster_size() -> None:
    plan = plan_shutdown([node("m0", True), node("w1"), node("w0"), node("m1", True)])
    assert [n.node for n in plan.nodes] == ["w0", "w1", "m0", "m1"]
    assert plan.delay_minutes == 1
    assert "shutdown -h 1" in plan.steps()[0] and "worker" in plan.steps()[0]
    big = plan_shutdown([node(f"w{i}") for i in range(9)] + [node("m0", True)])
    assert big.delay_minutes == 10
    assert plan_shutdown([node("w0")], delay_minutes=15).delay_minutes == 15


def test_the_debug_pod_is_what_oc_debug_node_runs() -> None:
    pod = debug_pod("worker-0", "default", "example/tools", 1)
    spec = pod["spec"]
    assert spec["nodeName"] == "worker-0" and spec["hostPID"] and spec["restartPolicy"] == "Never"
    container = spec["containers"][0]
    assert container["command"] == ["chroot", "/host", "shutdown", "-h", "1"]
    assert container["securityContext"]["privileged"] is True
    assert spec["volumes"][0]["hostPath"]["path"] == "/"
    assert container["volumeMounts"][0]["mountPath"] == "/host"
