"""`strongroom cluster certs` against the sandbox: the OpenShift signer, TLS Secrets, CA bundles, the kubeconfig."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import typer
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from tests.conftest import Sandbox
from tests.integration.sandboxapi import unique
from typer.testing import CliRunner, Result

from strongroom.cli.cluster import cluster_app

pytestmark = pytest.mark.integration

_KEY = ec.generate_private_key(ec.SECP256R1())
KEY_PEM = _KEY.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
).decode()
SIGNER_NS = "openshift-kube-apiserver-operator"


def pem(cn: str, not_after: datetime) -> str:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(_KEY.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_after - timedelta(days=400))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(_KEY, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def at(days: float) -> datetime:
    return (datetime.now(UTC) + timedelta(days=days)).replace(microsecond=0)


def rfc3339(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def certs(sandbox: Sandbox, *args: str) -> Result:
    app = typer.Typer()
    app.add_typer(cluster_app, name="cluster")
    return CliRunner().invoke(app, ["cluster", "certs", "--kubeconfig", sandbox.kubeconfig, *args])


def certs_json(sandbox: Sandbox) -> tuple[Result, dict[str, Any]]:
    result = certs(sandbox, "-o", "json")
    return result, json.loads(result.stdout)


def apply(sandbox: Sandbox, *documents: dict[str, Any]) -> None:
    sandbox.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(documents))


def signer_secret(not_after: datetime) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {
            "name": "kube-apiserver-to-kubelet-signer",
            "namespace": SIGNER_NS,
            "annotations": {"auth.openshift.io/certificate-not-after": rfc3339(not_after)},
        },
        "data": {
            "tls.crt": b64(pem("kube-apiserver-to-kubelet-signer", not_after)),
            "tls.key": b64(KEY_PEM),
        },
    }


def test_without_openshift_the_kubeconfig_ca_is_reported_and_the_signer_is_absent(sandbox: Sandbox) -> None:
    result, document = certs_json(sandbox)
    assert result.exit_code == 0, result.output
    assert document["signer"]["present"] is False
    assert any("does not exist" in note for note in document["notes"])
    sources = {c["source"] for c in document["certificates"]}
    assert any(s.startswith("Kubeconfig/cluster/") for s in sources), sources
    assert "ConfigMap/kube-system/kube-root-ca.crt/ca.crt" in sources
    assert document["lastSafeRestart"] is not None  # from the cluster CA on plain Kubernetes

    table = certs(sandbox)
    assert table.exit_code == 0
    assert "Last safe restart:" in table.stdout
    assert "does not exist" in table.stdout


def test_tls_secret_and_ca_bundle_in_kube_system_are_reported_without_the_key(sandbox: Sandbox) -> None:
    secret, bundle = unique("tls"), unique("bundle")
    try:
        apply(
            sandbox,
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "type": "kubernetes.io/tls",
                "metadata": {"name": secret, "namespace": "kube-system"},
                "data": {"tls.crt": b64(pem("serving", at(300))), "tls.key": b64(KEY_PEM)},
            },
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": bundle, "namespace": "kube-system"},
                "data": {"ca-bundle.crt": pem("first", at(200)) + "junk\n" + pem("second", at(5))},
            },
        )
        result, document = certs_json(sandbox)
        assert result.exit_code == 0, result.output
        found = {c["source"]: c for c in document["certificates"]}
        assert found[f"Secret/kube-system/{secret}/tls.crt"]["subject"] == "serving"
        assert found[f"ConfigMap/kube-system/{bundle}/ca-bundle.crt[0]"]["status"] == "ok"
        assert found[f"ConfigMap/kube-system/{bundle}/ca-bundle.crt[1]"]["status"] == "WARNING"
        assert "second" in result.stderr
        key_body = KEY_PEM.splitlines()[1]
        assert key_body not in result.output
        assert b64(KEY_PEM) not in result.output
    finally:
        sandbox.kubectl(
            "delete", "-n", "kube-system", f"secret/{secret}", f"configmap/{bundle}", "--ignore-not-found"
        )


def test_signer_expiring_in_ten_days_warns_and_sets_the_last_safe_restart_then_expired_fails(
    sandbox: Sandbox,
) -> None:
    namespaces = [SIGNER_NS, "openshift-config"]
    try:
        for name in namespaces:
            sandbox.kubectl("create", "namespace", name)
        soon = at(10)
        apply(sandbox, signer_secret(soon))
        result, document = certs_json(sandbox)
        assert result.exit_code == 0, result.output
        assert document["signer"]["present"] is True
        assert document["signer"]["status"] == "WARNING"
        assert document["lastSafeRestart"]["notAfter"] == rfc3339(soon)
        assert "kube-apiserver-to-kubelet-signer" in result.stderr

        table = certs(sandbox)
        assert table.exit_code == 0
        assert f"Last safe restart: {soon:%Y-%m-%d %H:%M:%S}Z" in table.stdout

        apply(sandbox, signer_secret(at(-2)))
        expired = certs(sandbox)
        assert expired.exit_code == 1
        assert "EXPIRED" in expired.stderr
        assert "kube-apiserver-to-kubelet-signer" in expired.stderr
        assert KEY_PEM.splitlines()[1] not in expired.output
    finally:
        for name in namespaces:
            sandbox.kubectl("delete", "namespace", name, "--ignore-not-found", "--wait=false")
