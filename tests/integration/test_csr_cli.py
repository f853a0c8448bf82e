"""`strongroom csr` on the sandbox: only the kubelet CSRs that pass the rules are approved, the rest are
listed with their reasons; forged ones (wrong requester, unknown node, another node's SANs) stay pending."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from tests.conftest import Sandbox
from tests.integration.backupkit import Cli, KubeCli
from tests.integration.csrkit import create_csr, csr_manifest, csr_request
from tests.integration.openshiftkit import machine_crd, served

pytestmark = pytest.mark.integration

BOOTSTRAPPER = "system:serviceaccount:openshift-machine-config-operator:node-bootstrapper"
CLIENT = "kubernetes.io/kube-apiserver-client-kubelet"
SERVING = "kubernetes.io/kubelet-serving"
CLIENT_USAGES = ["digital signature", "key encipherment", "client auth"]
SERVING_USAGES = ["digital signature", "key encipherment", "server auth"]


def test_only_valid_kubelet_csrs_are_approved(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli = KubeCli(Cli(sandbox, tmp_path / "config", monkeypatch), sandbox)
    nodes = sandbox.kubectl_json("get", "nodes")["items"]
    node, other = nodes[0]["metadata"]["name"], nodes[1]["metadata"]["name"]
    ip = next(a["address"] for a in nodes[0]["status"]["addresses"] if a["type"] == "InternalIP")
    tag = uuid.uuid4().hex[:6]
    names = {kind: f"csr-{kind}-{tag}" for kind in ("client", "serving", "intruder", "ghost", "stolen")}
    node_user = f"system:node:{node}"
    try:
        create_csr(
            sandbox,
            csr_manifest(names["client"], csr_request(node_user), CLIENT, CLIENT_USAGES),
            BOOTSTRAPPER,
        )
        create_csr(
            sandbox,
            csr_manifest(
                names["serving"], csr_request(node_user, dns=[node], ips=[ip]), SERVING, SERVING_USAGES
            ),
            node_user,
            "system:nodes",
        )
        create_csr(
            sandbox, csr_manifest(names["intruder"], csr_request(node_user), CLIENT, CLIENT_USAGES), "mallory"
        )
        create_csr(
            sandbox,
            csr_manifest(names["ghost"], csr_request("system:node:ghost-node"), CLIENT, CLIENT_USAGES),
            BOOTSTRAPPER,
        )
        create_csr(
            sandbox,
            csr_manifest(names["stolen"], csr_request(node_user, dns=[other]), SERVING, SERVING_USAGES),
            node_user,
            "system:nodes",
        )
        listed = {c["name"]: c for c in cli.ok("csr", "list", "--pending", "-o", "json").json()}
        assert listed[names["client"]]["valid"] and listed[names["serving"]]["valid"]
        assert "requested by mallory" in listed[names["intruder"]]["reasons"][0]
        assert listed[names["ghost"]]["reasons"] == ["no Node or Machine named ghost-node in the cluster"]
        assert listed[names["stolen"]]["reasons"] == [f"DNS name {other} is not an address of node {node}"]

        refused = cli.cli("csr", "approve", names["intruder"], "--kubeconfig", sandbox.kubeconfig, kube=False)
        assert refused.code == 4 and "fail the kubelet's rules" in refused.stderr

        approved = cli.ok("csr", "approve", "--all-valid")
        assert f"certificatesigningrequest/{names['client']} approved" in approved.stdout
        assert f"certificatesigningrequest/{names['serving']} approved" in approved.stdout
        for bad in ("intruder", "ghost", "stolen"):
            assert f"left pending {names[bad]}" in approved.stderr
            assert names[bad] not in approved.stdout
        states = {
            c["metadata"]["name"]: [cond["type"] for cond in (c.get("status") or {}).get("conditions") or []]
            for c in sandbox.kubectl_json("get", "csr")["items"]
        }
        assert states[names["client"]] == ["Approved"] and states[names["serving"]] == ["Approved"]
        assert all(states[names[bad]] == [] for bad in ("intruder", "ghost", "stolen"))

        cli.ok("csr", "deny", names["intruder"], "--reason", "not one of ours")
        denied = sandbox.kubectl_json("get", "csr", names["intruder"])["status"]["conditions"][0]
        assert denied["type"] == "Denied" and denied["message"] == "not one of ours"
    finally:
        sandbox.kubectl("delete", "csr", *names.values(), "--ignore-not-found", check=False)


def test_a_joining_node_known_only_by_its_machine_is_approved(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new worker's first CSR comes before its Node exists: its Machine vouches for the name."""
    cli = KubeCli(Cli(sandbox, tmp_path / "config", monkeypatch), sandbox)
    tag = uuid.uuid4().hex[:6]
    joining, stranger = f"worker-{tag}.example.internal", f"stranger-{tag}.example.internal"
    names = {"joining": f"csr-joining-{tag}", "stranger": f"csr-stranger-{tag}"}
    machine = {
        "apiVersion": "machine.openshift.io/v1beta1",
        "kind": "Machine",
        "metadata": {"name": f"demo-worker-{tag}", "namespace": "openshift-machine-api"},
        "spec": {},
    }
    addresses = [{"type": "InternalIP", "address": "10.0.7.9"}, {"type": "InternalDNS", "address": joining}]
    with served(sandbox, machine_crd()):
        sandbox.kubectl("create", "namespace", "openshift-machine-api", check=False)
        sandbox.kubectl("apply", "-f", "-", input=json.dumps(machine))
        sandbox.kubectl(
            "patch", "machine.machine.openshift.io", machine["metadata"]["name"], "-n", "openshift-machine-api",
            "--subresource=status", "--type=merge", "-p",
            json.dumps({"status": {"phase": "Provisioned", "addresses": addresses}}),
        )  # fmt: skip
        try:
            for key, node in (("joining", joining), ("stranger", stranger)):
                request = csr_request(f"system:node:{node}")
                create_csr(sandbox, csr_manifest(names[key], request, CLIENT, CLIENT_USAGES), BOOTSTRAPPER)
            approved = cli.ok("csr", "approve", "--all-valid")
            assert f"certificatesigningrequest/{names['joining']} approved" in approved.stdout
            assert f"left pending {names['stranger']}" in approved.stderr
            assert f"no Node or Machine named {stranger}" in approved.stderr
        finally:
            sandbox.kubectl("delete", "csr", *names.values(), "--ignore-not-found", check=False)
            sandbox.kubectl("delete", "namespace", "openshift-machine-api", "--wait=false", check=False)
