"""The real kubectl against the sandbox: every command the issue names works as on a cluster."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator

import pytest
import yaml
from tests.conftest import Sandbox, kubectl_binary

pytestmark = pytest.mark.integration


@pytest.fixture
def ns(sandbox: Sandbox) -> Iterator[str]:
    name = f"kc-{uuid.uuid4().hex[:8]}"
    sandbox.kubectl(
        "create", "-f", "-", input=f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n"
    )
    yield name
    sandbox.kubectl("delete", "namespace", name, "--wait=false", check=False)


APP = """
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  labels: {app: shop, tier: web}
data:
  color: blue
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: shop
  labels: {app: shop}
spec:
  replicas: 2
  selector:
    matchLabels: {app: shop}
  template:
    metadata:
      labels: {app: shop}
    spec:
      containers:
        - name: web
          image: nginx:1.27
          env:
            - {name: MODE, value: prod}
          ports:
            - containerPort: 80
        - name: sidecar
          image: busybox:1.36
---
apiVersion: v1
kind: Service
metadata:
  name: shop
spec:
  selector: {app: shop}
  ports:
    - port: 80
"""


def test_apply_creates_then_reports_unchanged(sandbox: Sandbox, ns: str) -> None:
    first = sandbox.kubectl("apply", "-n", ns, "-f", "-", input=APP).stdout
    assert "configmap/settings created" in first
    assert "deployment.apps/shop created" in first
    assert "service/shop created" in first
    second = sandbox.kubectl("apply", "-n", ns, "-f", "-", input=APP).stdout
    assert "configmap/settings unchanged" in second
    assert "deployment.apps/shop unchanged" in second
    assert "service/shop unchanged" in second


def test_apply_changes_a_container_and_keeps_the_other(sandbox: Sandbox, ns: str) -> None:
    sandbox.kubectl("apply", "-n", ns, "-f", "-", input=APP)
    changed = APP.replace("nginx:1.27", "nginx:1.28").replace("value: prod", "value: staging")
    out = sandbox.kubectl("apply", "-n", ns, "-f", "-", input=changed).stdout
    assert "deployment.apps/shop configured" in out
    deployment = sandbox.kubectl_json("get", "deployment", "shop", "-n", ns)
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["web", "sidecar"]
    assert containers[0]["image"] == "nginx:1.28"
    assert containers[0]["env"] == [{"name": "MODE", "value": "staging"}]
    assert deployment["metadata"]["generation"] == 2


def test_apply_refuses_unknown_fields_through_server_side_validation(sandbox: Sandbox, ns: str) -> None:
    bad = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: typo\ndatta:\n  a: b\n"
    proc = sandbox.kubectl("apply", "-n", ns, "-f", "-", input=bad, check=False)
    assert proc.returncode != 0
    assert 'unknown field "datta"' in proc.stderr
    assert sandbox.kubectl("get", "configmap", "typo", "-n", ns, check=False).returncode != 0


def test_create_from_file_and_already_exists(sandbox: Sandbox, ns: str) -> None:
    manifest = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: once\ndata:\n  a: b\n"
    assert "configmap/once created" in sandbox.kubectl("create", "-n", ns, "-f", "-", input=manifest).stdout
    again = sandbox.kubectl("create", "-n", ns, "-f", "-", input=manifest, check=False)
    assert again.returncode != 0
    assert "AlreadyExists" in again.stderr


def test_get_output_formats_and_selectors(sandbox: Sandbox, ns: str) -> None:
    sandbox.kubectl("apply", "-n", ns, "-f", "-", input=APP)
    as_json = sandbox.kubectl_json("get", "configmap", "settings", "-n", ns)
    assert as_json["data"] == {"color": "blue"}
    as_yaml = yaml.safe_load(sandbox.kubectl("get", "configmap", "settings", "-n", ns, "-o", "yaml").stdout)
    assert as_yaml["metadata"]["uid"] == as_json["metadata"]["uid"]
    names = sandbox.kubectl("get", "configmaps", "-n", ns, "-o", "name").stdout.split()
    assert "configmap/settings" in names
    assert "configmap/kube-root-ca.crt" in names
    labelled = sandbox.kubectl("get", "configmaps", "-n", ns, "-l", "tier=web", "-o", "name").stdout.split()
    assert labelled == ["configmap/settings"]
    excluded = sandbox.kubectl("get", "configmaps", "-n", ns, "-l", "tier!=web", "-o", "name").stdout.split()
    assert "configmap/settings" not in excluded
    assert "configmap/kube-root-ca.crt" in excluded


def test_get_all_namespaces_with_small_chunks_returns_every_item(sandbox: Sandbox, ns: str) -> None:
    for index in range(7):
        sandbox.kubectl(
            "create",
            "-n",
            ns,
            "-f",
            "-",
            input=f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c{index}\n",
        )
    columns = "custom-columns=NS:.metadata.namespace,NAME:.metadata.name,RV:.metadata.resourceVersion"
    # Namespaces left by earlier tests may finish terminating between the two
    # lists, so compare the rows of namespaces nothing else touches.
    stable = {ns, "default", "kube-system", "kube-public", "kube-node-lease"}

    def rows(*flags: str) -> list[str]:
        lines = sandbox.kubectl("get", "configmaps", "-A", *flags, "-o", columns).stdout.splitlines()
        assert len(set(lines)) == len(lines)
        return sorted(line for line in lines[1:] if line.split()[0] in stable)

    whole = rows()
    assert len(whole) == 8 + 4  # this namespace's 8, one kube-root-ca.crt per built-in namespace
    assert rows("--chunk-size=2") == whole
    table = sandbox.kubectl("get", "configmaps", "-A", "--chunk-size=3").stdout.splitlines()
    assert table[0].split()[:3] == ["NAMESPACE", "NAME", "DATA"]
    assert sum(1 for line in table if line.startswith(ns)) == 8  # 7 plus kube-root-ca.crt


def test_get_all_lists_workloads_by_category(sandbox: Sandbox, ns: str) -> None:
    sandbox.kubectl("apply", "-n", ns, "-f", "-", input=APP)
    out = sandbox.kubectl("get", "all", "-n", ns).stdout
    assert "deployment.apps/shop" in out
    assert "service/shop" in out
    assert "configmap" not in out


def test_patch_with_all_three_types(sandbox: Sandbox, ns: str) -> None:
    sandbox.kubectl("apply", "-n", ns, "-f", "-", input=APP)
    sandbox.kubectl(
        "patch",
        "deployment",
        "shop",
        "-n",
        ns,
        "-p",
        json.dumps(
            {"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "image": "busybox:1.37"}]}}}}
        ),
    )
    sandbox.kubectl("patch", "deployment", "shop", "-n", ns, "--type=merge", "-p", '{"spec":{"replicas":5}}')
    sandbox.kubectl(
        "patch",
        "deployment",
        "shop",
        "-n",
        ns,
        "--type=json",
        "-p",
        '[{"op":"add","path":"/metadata/labels/patched","value":"yes"}]',
    )
    deployment = sandbox.kubectl_json("get", "deployment", "shop", "-n", ns)
    containers = {c["name"]: c["image"] for c in deployment["spec"]["template"]["spec"]["containers"]}
    assert containers == {"web": "nginx:1.27", "sidecar": "busybox:1.37"}
    assert deployment["spec"]["replicas"] == 5
    assert deployment["metadata"]["labels"]["patched"] == "yes"


def test_label_and_annotate(sandbox: Sandbox, ns: str) -> None:
    sandbox.kubectl("apply", "-n", ns, "-f", "-", input=APP)
    sandbox.kubectl("label", "configmap", "settings", "-n", ns, "owner=team-a")
    sandbox.kubectl("annotate", "configmap", "settings", "-n", ns, "note=hello")
    sandbox.kubectl("label", "configmap", "settings", "-n", ns, "tier-")
    meta = sandbox.kubectl_json("get", "configmap", "settings", "-n", ns)["metadata"]
    assert meta["labels"] == {"app": "shop", "owner": "team-a"}
    assert meta["annotations"]["note"] == "hello"
    clash = sandbox.kubectl("label", "configmap", "settings", "-n", ns, "owner=team-b", check=False)
    assert clash.returncode != 0
    assert "already has a value" in clash.stderr


def test_server_side_dry_run_stores_nothing(sandbox: Sandbox, ns: str) -> None:
    out = sandbox.kubectl("apply", "-n", ns, "--dry-run=server", "-f", "-", input=APP).stdout
    assert "configmap/settings created (server dry run)" in out
    assert sandbox.kubectl("get", "configmap", "settings", "-n", ns, check=False).returncode != 0
    sandbox.kubectl("apply", "-n", ns, "-f", "-", input=APP)
    deleted = sandbox.kubectl("delete", "configmap", "settings", "-n", ns, "--dry-run=server").stdout
    assert "(server dry run)" in deleted
    assert sandbox.kubectl_json("get", "configmap", "settings", "-n", ns)["data"] == {"color": "blue"}


def test_watch_prints_changes(sandbox: Sandbox, ns: str) -> None:
    sandbox.kubectl(
        "create", "-n", ns, "-f", "-", input="apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: watched\n"
    )
    env = {**os.environ, "KUBECONFIG": sandbox.kubeconfig}
    command = [
        kubectl_binary(),
        "get",
        "configmap",
        "watched",
        "-n",
        ns,
        "-w",
        "--output-watch-events",
        "--request-timeout=20s",
    ]
    lines: list[str] = []
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env
    ) as watcher:
        try:
            assert watcher.stdout is not None
            assert watcher.stdout.readline().split()[:2] == ["EVENT", "NAME"]
            lines.append(watcher.stdout.readline().strip())
            sandbox.kubectl("label", "configmap", "watched", "-n", ns, "step=one")
            sandbox.kubectl("delete", "configmap", "watched", "-n", ns)
            while not any(line.startswith("DELETED") for line in lines):
                line = watcher.stdout.readline()
                if not line:
                    break
                lines.append(line.strip())
        finally:
            watcher.kill()
    events = [line.split()[:2] for line in lines]
    assert events[0] == ["ADDED", "watched"]
    assert ["MODIFIED", "watched"] in events
    assert events[-1] == ["DELETED", "watched"]


def test_wait_for_jsonpath(sandbox: Sandbox, ns: str) -> None:
    claim = (
        "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: data\n"
        "spec:\n  accessModes: [ReadWriteOnce]\n  resources:\n    requests:\n      storage: 1Gi\n"
    )
    sandbox.kubectl("apply", "-n", ns, "-f", "-", input=claim)
    out = sandbox.kubectl(
        "wait", "--for=jsonpath={.status.phase}=Bound", "pvc/data", "-n", ns, "--timeout=20s"
    ).stdout
    assert "condition met" in out


def test_delete_namespace_removes_its_content(sandbox: Sandbox) -> None:
    name = f"gone-{uuid.uuid4().hex[:8]}"
    sandbox.kubectl(
        "create", "-f", "-", input=f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n"
    )
    sandbox.kubectl("apply", "-n", name, "-f", "-", input=APP)
    out = sandbox.kubectl("delete", "namespace", name, "--timeout=30s").stdout
    assert f'namespace "{name}" deleted' in out
    assert sandbox.kubectl("get", "namespace", name, check=False).returncode != 0
    leftovers = sandbox.kubectl("get", "all,configmaps", "-n", name, "-o", "name", check=False).stdout.split()
    assert leftovers == []


def test_api_resources_lists_short_names_and_groups(sandbox: Sandbox) -> None:
    out = sandbox.kubectl("api-resources", "--no-headers").stdout
    rows = {tuple(line.split()[:2]) for line in out.splitlines()}
    assert ("deployments", "deploy") in rows
    assert ("persistentvolumeclaims", "pvc") in rows
    assert ("customresourcedefinitions", "crd,crds") in rows
    names = sandbox.kubectl("api-resources", "-o", "name").stdout.split()
    for expected in (
        "pods",
        "services",
        "deployments.apps",
        "cronjobs.batch",
        "roles.rbac.authorization.k8s.io",
        "storageclasses.storage.k8s.io",
        "ingresses.networking.k8s.io",
        "certificatesigningrequests.certificates.k8s.io",
        "leases.coordination.k8s.io",
        "events.events.k8s.io",
        "poddisruptionbudgets.policy",
        "priorityclasses.scheduling.k8s.io",
    ):
        assert expected in names


def test_explain_a_builtin_kind(sandbox: Sandbox) -> None:
    out = sandbox.kubectl("explain", "deployments").stdout
    assert "KIND:       Deployment" in out
    assert "GROUP:      apps" in out


def test_nodes_are_ready(sandbox: Sandbox) -> None:
    nodes = sandbox.kubectl_json("get", "nodes")["items"]
    assert len(nodes) == 2
    for node in nodes:
        ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
        assert ready[0]["status"] == "True"


def test_scale_a_deployment(sandbox: Sandbox, ns: str) -> None:
    sandbox.kubectl("apply", "-n", ns, "-f", "-", input=APP)
    assert "scaled" in sandbox.kubectl("scale", "deployment", "shop", "-n", ns, "--replicas=4").stdout
    deployment = sandbox.kubectl_json("get", "deployment", "shop", "-n", ns)
    assert deployment["spec"]["replicas"] == 4
    assert deployment["metadata"]["generation"] == 2
    # With a precondition kubectl reads the Scale and writes it back with PUT.
    sandbox.kubectl("scale", "deployment", "shop", "-n", ns, "--replicas=1", "--current-replicas=4")
    refused = sandbox.kubectl(
        "scale", "deployment", "shop", "-n", ns, "--replicas=2", "--current-replicas=4", check=False
    )
    assert refused.returncode != 0
    assert "Expected replicas to be 4, was 1" in refused.stderr
    scale = json.loads(
        sandbox.kubectl("get", "--raw", f"/apis/apps/v1/namespaces/{ns}/deployments/shop/scale").stdout
    )
    assert scale["kind"] == "Scale"
    assert scale["spec"] == {"replicas": 1}
    assert scale["status"]["selector"] == "app=shop"
