"""Which control-plane ClusterOperators are rolling out, read from a cluster that serves them (and one that does not)."""

from __future__ import annotations

import asyncio
import json

import pytest
import yaml
from tests.conftest import Sandbox
from tests.integration.openshiftkit import CRD_NAME, cluster_operator_crd
from tests.runasync import run_async

from strongroom.etcd.staticpods import progressing_operators
from strongroom.kube import KubeClient

pytestmark = pytest.mark.integration


def conditions(progressing: bool, message: str) -> list[dict[str, str]]:
    now = "2021-06-25T19:00:35Z"
    return [
        {"type": "Available", "status": "True", "lastTransitionTime": now},
        {
            "type": "Progressing",
            "status": "True" if progressing else "False",
            "reason": "NodeInstaller" if progressing else "AsExpected",
            "message": message,
            "lastTransitionTime": now,
        },
        {"type": "Degraded", "status": "False", "lastTransitionTime": now},
    ]


async def served(kube: KubeClient, present: bool) -> None:
    """Wait until discovery does (or no longer does) list ClusterOperators."""
    async with asyncio.timeout(30):
        while (
            (await kube.discover()).find("config.openshift.io", "clusteroperators") is not None
        ) != present:
            await asyncio.sleep(0.1)


@run_async
async def test_progressing_control_plane_operators_are_reported(sandbox: Sandbox) -> None:
    existing = sandbox.kubectl("get", "crd", CRD_NAME, "--ignore-not-found", "-o", "name").stdout.strip()
    async with await KubeClient.from_kubeconfig(sandbox.kubeconfig) as kube:
        if not existing:
            assert await progressing_operators(kube, await kube.discover()) is None
        sandbox.kubectl("apply", "-f", "-", input=yaml.safe_dump(cluster_operator_crd()))
        try:
            sandbox.kubectl("wait", "--for=condition=Established", f"crd/{CRD_NAME}", "--timeout=30s")
            await served(kube, present=True)
            busy = {
                "kube-apiserver": "NodeInstallerProgressing: 1 nodes are at revision 7; 2 nodes are at revision 8",
                "kube-scheduler": "",
            }
            # etcd is idle; kube-controller-manager is absent; an unrelated operator progressing is not ours.
            names = ["kube-apiserver", "kube-scheduler", "etcd", "authentication"]
            objects = [
                {"apiVersion": "config.openshift.io/v1", "kind": "ClusterOperator", "metadata": {"name": n}}
                for n in names
            ]
            sandbox.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(objects))
            for name in names:
                status = {
                    "conditions": conditions(name in busy or name == "authentication", busy.get(name, "x"))
                }
                sandbox.kubectl(
                    "patch",
                    "clusteroperator",
                    name,
                    "--subresource=status",
                    "--type=merge",
                    "-p",
                    json.dumps({"status": status}),
                )

            found = await progressing_operators(kube, await kube.discover())

            assert found == [
                ("kube-apiserver", busy["kube-apiserver"]),
                ("kube-scheduler", "NodeInstaller"),  # no message: the reason stands in
            ]
        finally:
            sandbox.kubectl("delete", "clusteroperators", "--all", "--ignore-not-found", check=False)
            sandbox.kubectl("delete", "crd", CRD_NAME, "--ignore-not-found")
        await served(kube, present=False)
        assert await progressing_operators(kube, await kube.discover()) is None
