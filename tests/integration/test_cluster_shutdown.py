"""`strongroom cluster shutdown` checks before it acts: no recent verified etcd snapshot, no shutdown; the
dry run prints the seed's plan (workers first) and creates nothing. The run itself (a privileged debug pod
per node, in turn, its outcome kept, the pod deleted) is exercised with a harmless command in place of the
seed's `chroot /host shutdown -h N`, which would power the machine off."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from tests.conftest import Sandbox
from tests.integration.backupkit import Cli, KubeCli

from strongroom.cluster.shutdown import debug_pod, plan_shutdown, run_shutdown, shutdown_command
from strongroom.kube import KubeClient

pytestmark = pytest.mark.integration

CONTROL_PLANE = "node-role.kubernetes.io/control-plane"


def test_shutdown_refuses_without_a_recent_snapshot_and_the_dry_run_plans_workers_first(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli = KubeCli(Cli(sandbox, tmp_path / "config", monkeypatch), sandbox)
    nodes = [n["metadata"]["name"] for n in sandbox.kubectl_json("get", "nodes")["items"]]
    (tmp_path / "snapshots").mkdir()
    refused = cli.cli(
        "cluster", "shutdown", "--snapshots-dir", str(tmp_path / "snapshots"), "--dry-run",
        "--kubeconfig", sandbox.kubeconfig, kube=False,
    )  # fmt: skip
    assert refused.code == 4 and "no verified snapshot found" in refused.stderr
    try:
        sandbox.kubectl("label", "node", nodes[0], f"{CONTROL_PLANE}=", "--overwrite")
        planned = cli.ok("cluster", "shutdown", "--skip-backup-check", "--dry-run")
        lines = [line for line in planned.stdout.splitlines() if "shutdown -h" in line]
        assert len(lines) == len(nodes)
        assert lines[-1].startswith(f"{len(nodes)}. schedule 'shutdown -h 1' on {nodes[0]} (control plane)")
        assert all("(worker)" in line for line in lines[:-1])
        assert "restart the cluster before" in planned.stderr
    finally:
        sandbox.kubectl("label", "node", nodes[0], f"{CONTROL_PLANE}-", check=False)
    debug = sandbox.kubectl(
        "get", "pods", "-A", "-l", "app.kubernetes.io/component=node-shutdown", "-o", "name"
    )
    assert debug.stdout.strip() == ""


def test_the_run_creates_one_privileged_debug_pod_per_node_workers_first_and_cleans_up(
    sandbox: Sandbox,
) -> None:
    names = [n["metadata"]["name"] for n in sandbox.kubectl_json("get", "nodes")["items"]]
    pod = debug_pod(names[0], "default", "ubi", 1)
    container = pod["spec"]["containers"][0]
    assert container["command"] == shutdown_command(1) == ["chroot", "/host", "shutdown", "-h", "1"]
    assert container["securityContext"]["privileged"] and pod["spec"]["hostPID"]
    assert pod["spec"]["volumes"][0]["hostPath"]["path"] == "/" and pod["spec"]["nodeName"] == names[0]

    said: list[str] = []

    async def go(command: list[str], only: str | None = None) -> dict[str, str]:
        async with await KubeClient.from_kubeconfig(sandbox.kubeconfig) as kube:
            nodes = sandbox.kubectl_json("get", "nodes")["items"]
            plan = plan_shutdown([n for n in nodes if only in (None, n["metadata"]["name"])])
            return await run_shutdown(
                kube, await kube.discover(), plan, namespace="default", image="ubi",
                timeout=60, say=said.append, command=command,
            )  # fmt: skip

    try:
        sandbox.kubectl("label", "node", names[0], f"{CONTROL_PLANE}=", "--overwrite")
        outcome = asyncio.run(go(["sh", "-c", "echo Shutdown scheduled"]))
        assert set(outcome) == set(names)
        assert all(text == "Succeeded: Shutdown scheduled" for text in outcome.values()), outcome
        # One pod at a time, the control-plane node last.
        assert [line.split(":")[0] for line in said][-1] == names[0] and len(said) == len(names)
        failed = asyncio.run(go(["sh", "-c", "echo refused >&2; exit 1"], only=names[1]))
        assert failed == {names[1]: "Failed: refused"}
    finally:
        sandbox.kubectl("label", "node", names[0], f"{CONTROL_PLANE}-", check=False)
    debug = sandbox.kubectl(
        "get", "pods", "-A", "-l", "app.kubernetes.io/component=node-shutdown", "-o", "name"
    )
    assert debug.stdout.strip() == ""  # every debug pod deleted
