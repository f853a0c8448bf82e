"""`strongroom cluster restart-check` on the sandbox: it waits for nodes that turn Ready in stages, approves
only the valid kubelet CSR, and fails with the reason while a ClusterOperator is Degraded."""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path

import pytest
from tests.conftest import Sandbox
from tests.integration.backupkit import Cli, KubeCli
from tests.integration.csrkit import create_csr, csr_manifest, csr_request
from tests.integration.openshiftkit import CRD_NAME, cluster_operator_crd

pytestmark = pytest.mark.integration

CONTROL_PLANE = "node-role.kubernetes.io/control-plane"


def ready(status: str) -> str:
    condition = {"type": "Ready", "status": status, "reason": "Test" if status != "True" else "KubeletReady"}
    return json.dumps({"status": {"conditions": [condition]}})


def operator(name: str) -> dict[str, object]:
    return {
        "apiVersion": "config.openshift.io/v1",
        "kind": "ClusterOperator",
        "metadata": {"name": name},
    }


def set_degraded(sandbox: Sandbox, name: str, degraded: bool) -> None:
    status = {
        "status": {
            "conditions": [
                {"type": "Available", "status": "True"},
                {"type": "Progressing", "status": "False"},
                {
                    "type": "Degraded",
                    "status": "True" if degraded else "False",
                    "message": "etcd members down",
                },
            ]
        }
    }
    sandbox.kubectl(
        "patch", "clusteroperator", name, "--subresource=status", "--type=merge", "-p", json.dumps(status)
    )


def test_restart_check_waits_approves_valid_csrs_and_reports_degraded_operators(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli = KubeCli(Cli(sandbox, tmp_path / "config", monkeypatch), sandbox)
    nodes = [n["metadata"]["name"] for n in sandbox.kubectl_json("get", "nodes")["items"]]
    control, worker = nodes[0], nodes[1]
    tag = uuid.uuid4().hex[:6]
    valid, forged = f"csr-valid-{tag}", f"csr-forged-{tag}"
    had_crd = bool(sandbox.kubectl("get", "crd", CRD_NAME, "--ignore-not-found", "-o", "name").stdout.strip())
    try:
        sandbox.kubectl("label", "node", control, f"{CONTROL_PLANE}=", "--overwrite")
        sandbox.kubectl(
            "patch", "node", worker, "--subresource=status", "--type=strategic", "-p", ready("False")
        )
        user = f"system:node:{worker}"
        serving = ["digital signature", "key encipherment", "server auth"]
        client = ["digital signature", "key encipherment", "client auth"]
        request = csr_manifest(
            valid, csr_request(user, dns=[worker]), "kubernetes.io/kubelet-serving", serving
        )
        create_csr(sandbox, request, user, "system:nodes")
        forgery = csr_manifest(
            forged, csr_request(user), "kubernetes.io/kube-apiserver-client-kubelet", client
        )
        create_csr(sandbox, forgery, "mallory")
        if not had_crd:
            sandbox.kubectl("apply", "-f", "-", input=json.dumps(cluster_operator_crd()))
            sandbox.kubectl("wait", "--for=condition=Established", f"crd/{CRD_NAME}", "--timeout=30s")
        name = f"etcd-{tag}"
        sandbox.kubectl("apply", "-f", "-", input=json.dumps(operator(name)))
        set_degraded(sandbox, name, True)

        # The worker turns Ready a second into the check; the operator stays Degraded.
        threading.Timer(
            1.0,
            lambda: sandbox.kubectl(
                "patch", "node", worker, "--subresource=status", "--type=strategic", "-p", ready("True")
            ),
        ).start()
        started = time.monotonic()
        result = cli.cli(
            "cluster", "restart-check", "--wait", "4s", "--interval", "0.5", "--kubeconfig", sandbox.kubeconfig,
            kube=False,
        )  # fmt: skip
        assert result.code == 1, result.stdout + result.stderr
        assert time.monotonic() - started >= 1
        assert "== control-plane nodes Ready: done" in result.stdout
        assert "== worker nodes Ready (pending valid CSRs approved): done" in result.stdout
        assert f"approved CSR {valid}" in result.stdout
        assert f"left CSR {forged} pending: requested by mallory" in result.stdout
        assert f"not ready: ClusterOperator {name} is Degraded: etcd members down" in result.stderr
        conditions = {
            c["metadata"]["name"]: [x["type"] for x in (c.get("status") or {}).get("conditions") or []]
            for c in sandbox.kubectl_json("get", "csr")["items"]
        }
        assert conditions[valid][0] == "Approved" and conditions[forged] == []

        set_degraded(sandbox, name, False)
        ok = cli.ok("cluster", "restart-check", "--wait", "10s", "--interval", "0.5")
        assert "the cluster is back" in ok.stdout
    finally:
        sandbox.kubectl("label", "node", control, f"{CONTROL_PLANE}-", check=False)
        sandbox.kubectl(
            "patch",
            "node",
            worker,
            "--subresource=status",
            "--type=strategic",
            "-p",
            ready("True"),
            check=False,
        )
        sandbox.kubectl("delete", "csr", valid, forged, "--ignore-not-found", check=False)
        sandbox.kubectl("delete", "clusteroperator", f"etcd-{tag}", "--ignore-not-found", check=False)
        if not had_crd:
            sandbox.kubectl("delete", "crd", CRD_NAME, "--ignore-not-found", check=False)
