"""CertificateSigningRequests through the real kubectl: impersonated identity, approval, signing, validation."""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import ssl
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from tests.conftest import Sandbox
from tests.integration.csrkit import create_csr, csr_manifest, csr_request

pytestmark = pytest.mark.integration

BOOTSTRAPPER = "system:serviceaccount:openshift-machine-config-operator:node-bootstrapper"


def _name() -> str:
    return f"csr-{uuid.uuid4().hex[:8]}"


def _wait_certificate(sandbox: Sandbox, name: str, timeout: float = 10) -> x509.Certificate:
    deadline = time.monotonic() + timeout
    while True:
        status = sandbox.kubectl_json("get", "csr", name).get("status") or {}
        if status.get("certificate"):
            return x509.load_pem_x509_certificate(base64.b64decode(status["certificate"]))
        assert time.monotonic() < deadline, f"no certificate issued for {name}: {status}"
        time.sleep(0.1)


def _ca(sandbox: Sandbox) -> x509.Certificate:
    return x509.load_pem_x509_certificate((Path(sandbox.dir) / "pki" / "ca.crt").read_bytes())


def test_kubelet_serving_csr_takes_the_impersonated_identity_and_is_signed(sandbox: Sandbox) -> None:
    name = _name()
    manifest = json.loads(
        csr_manifest(
            name,
            csr_request("system:node:n1", dns=["n1"], ips=["127.0.0.1"]),
            "kubernetes.io/kubelet-serving",
            ["digital signature", "server auth"],
        )
    )
    # A forged identity in the body is replaced by the requester's.
    manifest["spec"].update(username="mallory", groups=["system:masters"], uid="forged")
    create_csr(sandbox, json.dumps(manifest), "system:node:n1", "system:nodes")
    try:
        spec = sandbox.kubectl_json("get", "csr", name)["spec"]
        assert spec["username"] == "system:node:n1"
        assert spec["groups"] == ["system:nodes", "system:authenticated"]
        assert "uid" not in spec
        assert "Pending" in sandbox.kubectl("get", "csr", name).stdout

        assert "approved" in sandbox.kubectl("certificate", "approve", name).stdout

        cert = _wait_certificate(sandbox, name)
        csr = sandbox.kubectl_json("get", "csr", name)
        (condition,) = csr["status"]["conditions"]
        assert (condition["type"], condition["status"]) == ("Approved", "True")
        assert condition["lastUpdateTime"]
        assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "system:node:n1"
        assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "system:nodes"
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert sans.get_values_for_type(x509.DNSName) == ["n1"]
        assert sans.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert list(usages) == [ExtendedKeyUsageOID.SERVER_AUTH]
        assert cert.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
        cert.verify_directly_issued_by(_ca(sandbox))
        assert "Approved,Issued" in sandbox.kubectl("get", "csr", name).stdout
    finally:
        sandbox.kubectl("delete", "csr", name, "--ignore-not-found")


def test_client_kubelet_csr_from_the_bootstrapper_service_account(sandbox: Sandbox) -> None:
    name = _name()
    create_csr(
        sandbox,
        csr_manifest(
            name,
            csr_request("system:node:n2"),
            "kubernetes.io/kube-apiserver-client-kubelet",
            ["digital signature", "client auth"],
            expirationSeconds=600,
        ),
        BOOTSTRAPPER,
    )
    try:
        spec = sandbox.kubectl_json("get", "csr", name)["spec"]
        assert spec["username"] == BOOTSTRAPPER
        assert spec["groups"] == [
            "system:serviceaccounts",
            "system:serviceaccounts:openshift-machine-config-operator",
            "system:authenticated",
        ]
        sandbox.kubectl("certificate", "approve", name)

        cert = _wait_certificate(sandbox, name)
        assert cert.not_valid_after_utc - cert.not_valid_before_utc == dt.timedelta(seconds=600)
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert list(usages) == [ExtendedKeyUsageOID.CLIENT_AUTH]
        cert.verify_directly_issued_by(_ca(sandbox))
    finally:
        sandbox.kubectl("delete", "csr", name, "--ignore-not-found")


def test_whoami_reports_the_impersonated_user(sandbox: Sandbox) -> None:
    out = sandbox.kubectl_json("auth", "whoami", "--as", BOOTSTRAPPER)
    assert out["status"]["userInfo"]["username"] == BOOTSTRAPPER
    assert "system:serviceaccounts" in out["status"]["userInfo"]["groups"]
    mine = sandbox.kubectl_json("auth", "whoami")["status"]["userInfo"]
    assert mine["username"] == "strongroom-admin"


def test_denied_csr_is_never_signed_and_cannot_also_be_approved(sandbox: Sandbox) -> None:
    name = _name()
    create_csr(
        sandbox,
        csr_manifest(
            name, csr_request("alice", org="dev"), "kubernetes.io/kube-apiserver-client", ["client auth"]
        ),
    )
    try:
        assert "denied" in sandbox.kubectl("certificate", "deny", name).stdout
        time.sleep(0.5)  # the signer has had its chance
        csr = sandbox.kubectl_json("get", "csr", name)
        assert [c["type"] for c in csr["status"]["conditions"]] == ["Denied"]
        assert "certificate" not in csr["status"]
        # kubectl refuses to approve a denied request itself; the server refuses the raw write.
        csr["status"]["conditions"].append({"type": "Approved", "status": "True", "reason": "Sneaky"})
        path = f"/apis/certificates.k8s.io/v1/certificatesigningrequests/{name}/approval"
        refused = sandbox.kubectl("replace", "--raw", path, "-f", "-", input=json.dumps(csr), check=False)
        assert refused.returncode != 0
        assert "Approved and Denied conditions are mutually exclusive" in refused.stderr
    finally:
        sandbox.kubectl("delete", "csr", name, "--ignore-not-found")


def test_signer_rules_fail_a_mismatched_kubeletcsr_request(sandbox: Sandbox) -> None:
    name = _name()
    # A serving request without any DNS or IP name.
    create_csr(
        sandbox,
        csr_manifest(
            name,
            csr_request("system:node:n1"),
            "kubernetes.io/kubelet-serving",
            ["digital signature", "server auth"],
        ),
    )
    try:
        sandbox.kubectl("certificate", "approve", name)
        deadline = time.monotonic() + 10
        while True:
            csr = sandbox.kubectl_json("get", "csr", name)
            failed = [c for c in csr["status"].get("conditions", []) if c["type"] == "Failed"]
            if failed:
                break
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert failed[0]["reason"] == "SignerValidationFailure"
        assert failed[0]["message"] == "DNS or IP subjectAltName is required"
        assert "certificate" not in csr["status"]
    finally:
        sandbox.kubectl("delete", "csr", name, "--ignore-not-found")


def test_invalid_csr_bodies_are_refused_with_422(sandbox: Sandbox) -> None:
    cases = [
        (csr_manifest(_name(), base64.b64encode(b"not a pem").decode(), "example.com/s", ["client auth"]),
         "spec.request: Invalid value: []byte{0x6e, 0x6f, 0x74"),
        (csr_manifest(_name(), csr_request("a"), "", ["client auth"]), "spec.signerName: Required value"),
        (csr_manifest(_name(), csr_request("a"), "nodomain", ["client auth"]),
         "spec.signerName: Invalid value: \"nodomain\": must be a fully qualified domain and path"),
        (csr_manifest(_name(), csr_request("a"), "example.com/s", []), "spec.usages: Required value"),
        (csr_manifest(_name(), csr_request("a"), "example.com/s", ["flying"]),
         'spec.usages[0]: Unsupported value: "flying"'),
        (csr_manifest(_name(), csr_request("a"), "example.com/s", ["client auth"], expirationSeconds=60),
         "spec.expirationSeconds: Invalid value: 60: may not specify a duration less than 600 seconds"),
    ]  # fmt: skip
    for body, message in cases:
        proc = sandbox.kubectl("create", "-f", "-", input=body, check=False)
        assert proc.returncode != 0
        assert "is invalid" in proc.stderr, proc.stderr
        assert message in proc.stderr, proc.stderr


def test_a_request_that_is_not_base64_is_a_badcsr_request(sandbox: Sandbox) -> None:
    proc = sandbox.kubectl(
        "create", "-f", "-", input=csr_manifest(_name(), "no!", "example.com/s", ["client auth"]), check=False
    )
    assert proc.returncode != 0
    assert "illegal base64 data at input byte 2" in proc.stderr, proc.stderr


def _raw_get(sandbox: Sandbox, path: str, headers: dict[str, str]) -> tuple[int, Any]:
    kubeconfig = yaml.safe_load(Path(sandbox.kubeconfig).read_text())
    token = kubeconfig["users"][0]["user"]["token"]
    ca = base64.b64decode(kubeconfig["clusters"][0]["cluster"]["certificate-authority-data"]).decode()
    request = urllib.request.Request(
        f"{sandbox.server}{path}", headers={"Authorization": f"Bearer {token}", **headers}
    )
    context = ssl.create_default_context(cadata=ca)
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_impersonation_headers_reach_the_server(sandbox: Sandbox) -> None:
    # kubectl itself refuses --as-group without --as; the server refuses it too, as kube-apiserver does.
    code, status = _raw_get(
        sandbox,
        "/apis/certificates.k8s.io/v1/certificatesigningrequests",
        {"Impersonate-Group": "system:nodes"},
    )
    assert code == 500
    assert "without impersonating a user" in status["message"]
    review = json.dumps({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
    out = sandbox.kubectl(
        "create", "--raw", "/apis/authentication.k8s.io/v1/selfsubjectreviews", "-f", "-",
        "--as", "bob", "--as-uid", "u-1", "--as-group", "g1", input=review,
    )  # fmt: skip
    assert json.loads(out.stdout)["status"]["userInfo"] == {
        "username": "bob",
        "uid": "u-1",
        "groups": ["g1", "system:authenticated"],
    }


def _ready_patch(status: str, reason: str) -> str:
    condition = {
        "type": "Ready",
        "status": status,
        "reason": reason,
        "message": f"set by the test ({reason})",
    }
    return json.dumps({"status": {"conditions": [condition]}})


def _lifecycle_taints(sandbox: Sandbox, node: str) -> list[tuple[str, str]]:
    taints = sandbox.kubectl_json("get", "node", node)["spec"].get("taints") or []
    return sorted((t["key"], t["effect"]) for t in taints if t["key"].startswith("node.kubernetes.io/"))


def _wait_taints(sandbox: Sandbox, node: str, expected: list[tuple[str, str]]) -> None:
    deadline = time.monotonic() + 10
    while (found := _lifecycle_taints(sandbox, node)) != expected:
        assert time.monotonic() < deadline, found
        time.sleep(0.1)


def test_nodes_have_addresses_and_condition_taints_follow_ready(sandbox: Sandbox) -> None:
    node = sandbox.kubectl_json("get", "nodes")["items"][-1]
    name = node["metadata"]["name"]
    assert {"type": "InternalIP", "address": "127.0.0.1"} in node["status"]["addresses"]
    assert {"type": "Hostname", "address": name} in node["status"]["addresses"]
    unreachable = "node.kubernetes.io/unreachable"
    not_ready = "node.kubernetes.io/not-ready"
    try:
        # What the node lifecycle controller writes when a kubelet stops posting status.
        sandbox.kubectl(
            "patch", "node", name, "--subresource=status", "--type=strategic",
            "-p", _ready_patch("Unknown", "NodeStatusUnknown"),
        )  # fmt: skip
        _wait_taints(sandbox, name, [(unreachable, "NoExecute"), (unreachable, "NoSchedule")])
        assert "NotReady" in sandbox.kubectl("get", "node", name).stdout
        taint = next(
            t
            for t in sandbox.kubectl_json("get", "node", name)["spec"]["taints"]
            if t["effect"] == "NoExecute"
        )
        assert taint["timeAdded"]

        sandbox.kubectl(
            "patch", "node", name, "--subresource=status", "--type=strategic",
            "-p", _ready_patch("False", "KubeletNotReady"),
        )  # fmt: skip
        _wait_taints(sandbox, name, [(not_ready, "NoExecute"), (not_ready, "NoSchedule")])
    finally:
        sandbox.kubectl(
            "patch", "node", name, "--subresource=status", "--type=strategic",
            "-p", _ready_patch("True", "KubeletReady"),
        )  # fmt: skip
        _wait_taints(sandbox, name, [])
