"""kubectl commands that send protobuf bodies (typed clients) against the sandbox.

The oracle is kubectl itself: `--dry-run=client -o json` prints the object it
would send, and what the sandbox stores must contain all of it.
"""

from __future__ import annotations

import base64
import json
import ssl
import subprocess
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.conftest import Sandbox

pytestmark = pytest.mark.integration


@pytest.fixture
def ns(sandbox: Sandbox) -> Iterator[str]:
    name = f"pb-{uuid.uuid4().hex[:8]}"
    sandbox.kubectl("create", "namespace", name)
    yield name
    sandbox.kubectl("delete", "namespace", name, "--wait=false", check=False)


def empty(value: Any) -> bool:
    """Go's zero values, e.g. `metadata: {creationTimestamp: null}`, carry nothing to compare."""
    if isinstance(value, dict):
        return all(empty(v) for v in value.values())
    return value is None or value == []


def contained(expected: Any, actual: Any, path: str = "") -> list[str]:
    """Where `actual` lacks or differs from what `expected` sets (empty values aside)."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{path}: expected an object, got {actual!r}"]
        problems = []
        for key, value in expected.items():
            if empty(value):
                continue
            problems += contained(value, actual.get(key), f"{path}.{key}")
        return problems
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return [f"{path}: expected {expected!r}, got {actual!r}"]
        return [
            p
            for i, (e, a) in enumerate(zip(expected, actual, strict=True))
            for p in contained(e, a, f"{path}[{i}]")
        ]
    return [] if expected == actual else [f"{path}: expected {expected!r}, got {actual!r}"]


GENERATORS = [
    ("configmap", "cm1", ["create", "configmap", "cm1", "--from-literal=a=b", "--from-literal=empty="]),
    ("secret", "s1", ["create", "secret", "generic", "s1", "--from-literal=user=app", "--from-literal=pw=x y"]),
    ("secret", "d1", ["create", "secret", "docker-registry", "d1", "--docker-server=r.io", "--docker-username=u",
                      "--docker-password=p"]),
    ("serviceaccount", "sa1", ["create", "serviceaccount", "sa1"]),
    ("deployment", "dep1", ["create", "deployment", "dep1", "--image=nginx:1.27", "--replicas=0", "--port=80"]),
    ("job", "job1", ["create", "job", "job1", "--image=busybox", "--", "echo", "hi"]),
    ("cronjob", "cj1", ["create", "cronjob", "cj1", "--image=busybox", "--schedule=*/5 * * * *", "--", "date"]),
    ("service", "svc1", ["create", "service", "clusterip", "svc1", "--tcp=80:8080"]),
    ("role", "r1", ["create", "role", "r1", "--verb=get,list", "--resource=pods,configmaps"]),
    ("rolebinding", "rb1", ["create", "rolebinding", "rb1", "--role=r1", "--user=bob", "--group=devs"]),
    ("resourcequota", "q1", ["create", "quota", "q1", "--hard=pods=5,requests.cpu=2"]),
    ("poddisruptionbudget", "pdb1", ["create", "pdb", "pdb1", "--selector=app=x", "--min-available=50%"]),
    ("ingress", "ing1", ["create", "ingress", "ing1", "--rule=foo.com/bar*=svc1:80"]),
]  # fmt: skip


@pytest.mark.parametrize(("resource", "name", "command"), GENERATORS, ids=[g[1] for g in GENERATORS])
def test_generator_commands_store_what_kubectl_sends(
    sandbox: Sandbox, ns: str, resource: str, name: str, command: list[str]
) -> None:
    # Flags go before a "--" that starts the container's command.
    split = command.index("--") if "--" in command else len(command)
    dry_run = [*command[:split], "-n", ns, "--dry-run=client", "-o", "json", *command[split:]]
    expected = json.loads(sandbox.kubectl(*dry_run).stdout)
    created = sandbox.kubectl(*command[:split], "-n", ns, *command[split:], check=False)
    assert created.returncode == 0, created.stderr
    stored = sandbox.kubectl_json("get", resource, name, "-n", ns)
    expected["metadata"]["namespace"] = ns
    assert contained(expected, stored) == []


def test_cluster_scoped_generators(sandbox: Sandbox) -> None:
    suffix = uuid.uuid4().hex[:6]
    for resource, command in (
        ("namespace", ["create", "namespace", f"gen-{suffix}"]),
        ("clusterrole", ["create", "clusterrole", f"cr-{suffix}", "--verb=get", "--resource=nodes"]),
        ("clusterrolebinding", ["create", "clusterrolebinding", f"crb-{suffix}", f"--clusterrole=cr-{suffix}",
                                "--group=g1"]),
        ("priorityclass", ["create", "priorityclass", f"pc-{suffix}", "--value=0", "--description=zero"]),
    ):  # fmt: skip
        expected = json.loads(sandbox.kubectl(*command, "--dry-run=client", "-o", "json").stdout)
        sandbox.kubectl(*command)
        stored = sandbox.kubectl_json("get", resource, command[2])
        assert contained(expected, stored) == [], resource
    # A zero that Go would omit but the field keeps (PriorityClass.value has no omitempty).
    assert sandbox.kubectl_json("get", "priorityclass", f"pc-{suffix}")["value"] == 0
    sandbox.kubectl("delete", "namespace", f"gen-{suffix}", "--wait=false")


def test_secret_bytes_survive_the_protobuf_path(sandbox: Sandbox, ns: str, tmp_path: Path) -> None:
    blob = bytes(range(256)) * 4
    (tmp_path / "blob.bin").write_bytes(blob)
    sandbox.kubectl(
        "create", "secret", "generic", "binary", "-n", ns, f"--from-file=blob={tmp_path / 'blob.bin'}"
    )
    stored = sandbox.kubectl_json("get", "secret", "binary", "-n", ns)
    assert base64.b64decode(stored["data"]["blob"]) == blob


def test_deployment_with_zero_replicas_keeps_zero(sandbox: Sandbox, ns: str) -> None:
    sandbox.kubectl("create", "deployment", "idle", "-n", ns, "--image=nginx", "--replicas=0")
    assert sandbox.kubectl_json("get", "deployment", "idle", "-n", ns)["spec"]["replicas"] == 0


def test_auth_can_i_and_whoami(sandbox: Sandbox) -> None:
    assert sandbox.kubectl("auth", "can-i", "create", "pods").stdout.strip() == "yes"
    assert sandbox.kubectl("auth", "can-i", "delete", "nodes", "-A").stdout.strip() == "yes"
    whoami = sandbox.kubectl("auth", "whoami", "-o", "json").stdout
    assert json.loads(whoami)["status"]["userInfo"]["username"] == "strongroom-admin"
    rules = sandbox.kubectl("auth", "can-i", "--list").stdout
    assert "*.*" in rules


def test_certificate_approve_and_deny(sandbox: Sandbox, tmp_path: Path) -> None:
    key = tmp_path / "k.pem"
    request = tmp_path / "r.csr"
    subprocess.run(
        ["openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-subj",
         "/CN=system:node:n1/O=system:nodes", "-out", str(request)],
        check=True, capture_output=True,
    )  # fmt: skip
    names = [f"csr-{uuid.uuid4().hex[:6]}" for _ in range(2)]
    for name in names:
        manifest = {
            "apiVersion": "certificates.k8s.io/v1",
            "kind": "CertificateSigningRequest",
            "metadata": {"name": name},
            "spec": {
                "request": base64.b64encode(request.read_bytes()).decode(),
                "signerName": "kubernetes.io/kube-apiserver-client",
                "usages": ["client auth"],
            },
        }
        sandbox.kubectl("create", "-f", "-", input=json.dumps(manifest))
    assert "approved" in sandbox.kubectl("certificate", "approve", names[0]).stdout
    assert "denied" in sandbox.kubectl("certificate", "deny", names[1]).stdout
    approved = sandbox.kubectl_json("get", "csr", names[0])
    denied = sandbox.kubectl_json("get", "csr", names[1])
    assert [c["type"] for c in approved["status"]["conditions"]] == ["Approved"]
    assert [c["type"] for c in denied["status"]["conditions"]] == ["Denied"]
    assert approved["spec"]["request"] == base64.b64encode(request.read_bytes()).decode()
    assert approved["spec"]["usages"] == ["client auth"]


def test_a_typed_body_the_sandbox_cannot_decode_is_refused_not_truncated(sandbox: Sandbox, ns: str) -> None:
    # A protobuf envelope (magic, TypeMeta, raw) of a kind the sandbox has no message for.
    type_meta = b"\x0a\x02v1\x12\x0bFrobnicator"
    body = b"k8s\x00" + b"\x0a" + bytes([len(type_meta)]) + type_meta + b"\x12\x02\x0a\x00"
    kubeconfig = yaml.safe_load(Path(sandbox.kubeconfig).read_text())
    token = kubeconfig["users"][0]["user"]["token"]
    ca = base64.b64decode(kubeconfig["clusters"][0]["cluster"]["certificate-authority-data"]).decode()
    request = urllib.request.Request(
        f"{sandbox.server}/api/v1/namespaces/{ns}/configmaps",
        data=body,
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/vnd.kubernetes.protobuf"},
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, context=ssl.create_default_context(cadata=ca), timeout=10)
    assert caught.value.code == 415
    status = json.loads(caught.value.read())
    assert "protobuf bodies of kind Frobnicator are not known to the sandbox" in status["message"]
