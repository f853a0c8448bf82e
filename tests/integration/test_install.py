"""`strongroom install` and `strongroom uninstall` on the sandbox, checked with the real kubectl.

Every test installs into a namespace of its own. The CRDs are cluster-wide
and other modules use them, so uninstalls here keep them (--keep-crds),
except in the one test that checks their removal, which installs them again
before it ends. The sandbox has no kubelet: the Deployment and DaemonSet
exist as objects, their pods never run.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import Sandbox
from tests.integration.backupkit import Cli, CliResult, unique
from tests.integration.openshiftkit import proxy_crd, served
from tests.integration.sandboxapi import Kube, eventually

from strongroom.deploy import InstallOptions, render
from strongroom.errors import EXIT_UNAVAILABLE

pytestmark = pytest.mark.integration


@pytest.fixture
def cli(sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    return Cli(sandbox, tmp_path / "config", monkeypatch)


class Strongroom:
    """The command line with the sandbox's kubeconfig."""

    def __init__(self, cli: Cli, sandbox: Sandbox) -> None:
        self._cli = cli
        self._kubeconfig = sandbox.kubeconfig

    def __call__(self, *args: str) -> CliResult:
        return self._cli(*args, "--kubeconfig", self._kubeconfig)

    def ok(self, *args: str) -> CliResult:
        result = self(*args)
        assert result.code == 0, (
            f"strongroom {' '.join(args)} exited {result.code}:\n{result.stdout}\n{result.stderr}"
        )
        return result


@pytest.fixture
def strongroom(cli: Cli, sandbox: Sandbox) -> Strongroom:
    return Strongroom(cli, sandbox)


@pytest.fixture
def target(strongroom: Strongroom) -> Iterator[str]:
    """A namespace name to install into; whatever the test left is uninstalled afterwards (CRDs kept)."""
    name = unique("sr")
    yield name
    strongroom("uninstall", "--namespace", name, "--yes", "--keep-crds")


def _type(obj: dict[str, Any]) -> str:
    group = obj["apiVersion"].rpartition("/")[0]
    plural = {
        "CustomResourceDefinition": "customresourcedefinitions",
        "Namespace": "namespaces",
        "ServiceAccount": "serviceaccounts",
        "ClusterRole": "clusterroles",
        "Role": "roles",
        "ClusterRoleBinding": "clusterrolebindings",
        "RoleBinding": "rolebindings",
        "Deployment": "deployments",
        "DaemonSet": "daemonsets",
    }[obj["kind"]]
    return f"{plural}.{group}" if group else plural


def _get(sandbox: Sandbox, obj: dict[str, Any], *, check: bool = True) -> Any:
    args = ["get", _type(obj), obj["metadata"]["name"], "-o", "json"]
    if "namespace" in obj["metadata"]:
        args += ["-n", obj["metadata"]["namespace"]]
    proc = sandbox.kubectl(*args, check=check)
    return json.loads(proc.stdout) if proc.returncode == 0 else None


def _absent(sandbox: Sandbox, obj: dict[str, Any]) -> bool:
    args = ["get", _type(obj), obj["metadata"]["name"], "--ignore-not-found", "-o", "name"]
    if "namespace" in obj["metadata"]:
        args += ["-n", obj["metadata"]["namespace"]]
    return sandbox.kubectl(*args).stdout.strip() == ""


def _lines(result: CliResult) -> dict[str, str]:
    """``Kind/name: action`` lines as {"Kind/name": "action"}."""
    found = {}
    for line in result.stdout.splitlines():
        key, sep, action = line.partition(": ")
        if sep and "/" in key and " " not in key:
            found[key] = action
    return found


def _tree(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def test_install_creates_every_resource_and_the_crds_serve(
    strongroom: Strongroom, sandbox: Sandbox, target: str
) -> None:
    result = strongroom.ok("install", "--namespace", target)
    manifests = render(InstallOptions(namespace=target))
    lines = _lines(result)
    for obj in manifests:
        key = f"{obj['kind']}/{obj['metadata']['name']}"
        assert key in lines, f"no line for {key}:\n{result.stdout}"
        # CRDs may exist already (other tests install them); everything else is new.
        expected = (
            {"created", "configured", "unchanged"}
            if obj["kind"] == "CustomResourceDefinition"
            else {"created"}
        )
        assert lines[key] in expected, f"{key}: {lines[key]}"
        live = _get(sandbox, obj)
        assert live["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "strongroom"
        if obj["kind"] == "CustomResourceDefinition":
            conditions = {c["type"]: c["status"] for c in live["status"]["conditions"]}
            assert conditions["Established"] == "True"
    explained = eventually(lambda: sandbox.kubectl("explain", "backups").stdout)
    assert "Backup" in explained
    deployment = _get(
        sandbox,
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "strongroom", "namespace": target},
        },
    )
    assert deployment["spec"]["template"]["spec"]["containers"][0]["args"][1] == f"--namespace={target}"
    assert sandbox.kubectl("auth", "can-i", "--list", "-n", target, check=False).returncode in (0, 1)


def test_install_exports_the_cluster_wide_proxy_without_printing_its_password(
    strongroom: Strongroom, sandbox: Sandbox, kube: Kube, target: str
) -> None:
    proxy = {
        "apiVersion": "config.openshift.io/v1",
        "kind": "Proxy",
        "metadata": {"name": "cluster"},
        "spec": {"httpsProxy": "http://backup:s3cret@proxy.example.com:3128"},
    }
    status = {
        "httpProxy": "http://backup:s3cret@proxy.example.com:3128",
        "httpsProxy": "http://backup:s3cret@proxy.example.com:3128",
        "noProxy": ".cluster.local,.svc,10.0.0.0/16,172.30.0.0/16,localhost",
    }
    with served(sandbox, proxy_crd()):
        kube.custom.create_cluster_custom_object("config.openshift.io", "v1", "proxies", proxy)
        try:
            kube.custom.patch_cluster_custom_object_status(
                "config.openshift.io", "v1", "proxies", "cluster", {"status": status}
            )
            result = strongroom.ok("install", "--namespace", target, "--etcd-backup-schedule", "@daily")
            assert (
                "Using the cluster-wide proxy: httpProxy http://***@proxy.example.com:3128" in result.stdout
            )
            assert "s3cret" not in result.stdout + result.stderr
            deployment = sandbox.kubectl_json("get", "deployment", "strongroom", "-n", target)
            cronjob = sandbox.kubectl_json("get", "cronjob", "-n", target)["items"][0]
            for container in (
                deployment["spec"]["template"]["spec"]["containers"][0],
                cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0],
            ):
                env = {e["name"]: e.get("value") for e in container["env"]}
                assert env["HTTPS_PROXY"] == status["httpsProxy"], env  # the effective (status) values
                assert env["NO_PROXY"] == status["noProxy"], env
            # Flags win over the cluster's Proxy.
            strongroom.ok("install", "--namespace", target, "--https-proxy", "http://other.example.com:8080")
            deployment = sandbox.kubectl_json("get", "deployment", "strongroom", "-n", target)
            env = {
                e["name"]: e.get("value")
                for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
            }
            assert env["HTTPS_PROXY"] == "http://other.example.com:8080"
            assert "HTTP_PROXY" not in env and "NO_PROXY" not in env  # nothing stale is left behind
        finally:
            kube.custom.delete_cluster_custom_object("config.openshift.io", "v1", "proxies", "cluster")


def test_installing_twice_changes_nothing(strongroom: Strongroom, target: str) -> None:
    strongroom.ok("install", "--namespace", target)
    again = _lines(strongroom.ok("install", "--namespace", target))
    assert again
    assert set(again.values()) == {"unchanged"}, again


def test_install_repairs_what_differs_and_keeps_what_others_added(
    strongroom: Strongroom, sandbox: Sandbox, target: str
) -> None:
    strongroom.ok("install", "--namespace", target, "--no-use-node-agent")
    sandbox.kubectl("-n", target, "label", "deployment", "strongroom", "team=backup")
    sandbox.kubectl("-n", target, "scale", "deployment", "strongroom", "--replicas=3")
    lines = _lines(strongroom.ok("install", "--namespace", target, "--no-use-node-agent"))
    assert lines["Deployment/strongroom"] == "configured"
    deployment = sandbox.kubectl_json("-n", target, "get", "deployment", "strongroom")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["metadata"]["labels"]["team"] == "backup"
    upgraded = _lines(
        strongroom.ok(
            "install", "--namespace", target, "--no-use-node-agent", "--image", "example.com/sr:2.0"
        )
    )
    assert upgraded["Deployment/strongroom"] == "configured"
    assert upgraded["ServiceAccount/strongroom"] == "unchanged"
    image = sandbox.kubectl_json("-n", target, "get", "deployment", "strongroom")["spec"]["template"]["spec"][
        "containers"
    ][0]["image"]
    assert image == "example.com/sr:2.0"


@pytest.mark.parametrize("output", ["yaml", "json"])
def test_dry_run_output_is_accepted_by_the_api_server(
    strongroom: Strongroom, sandbox: Sandbox, target: str, output: str
) -> None:
    # A server-side dry run creates nothing, so the objects in the namespace need it to exist.
    sandbox.kubectl("create", "namespace", target)
    try:
        rendered = strongroom.ok("install", "--dry-run", "-o", output, "--namespace", target).stdout
        # kubectl validates a v1 List against /openapi/v2, which the sandbox does not
        # serve (it serves v3); a real kube-apiserver validates it. The server's own
        # checks still run.
        validate = ["--validate=false"] if output == "json" else []
        applied = sandbox.kubectl("apply", "--dry-run=server", *validate, "-f", "-", input=rendered)
        assert "deployment.apps/strongroom" in applied.stdout
        assert "(server dry run)" in applied.stdout
        assert (
            sandbox.kubectl("-n", target, "get", "deployment", "--ignore-not-found", "-o", "name").stdout
            == ""
        )
    finally:
        sandbox.kubectl("delete", "namespace", target, "--wait=false")


def test_uninstall_removes_the_installation_and_never_touches_stored_backups(
    strongroom: Strongroom, sandbox: Sandbox, target: str, tmp_path: Path
) -> None:
    strongroom.ok("install", "--namespace", target)
    # A bucket as a local location stores it, with one complete backup in it.
    bucket = tmp_path / "bucket"
    backup_dir = bucket / "backups" / "nightly"
    backup_dir.mkdir(parents=True)
    (backup_dir / "velero-backup.json").write_text(
        json.dumps({"kind": "Backup", "metadata": {"name": "nightly"}})
    )
    (backup_dir / "nightly.tar.gz").write_bytes(b"\x1f\x8b not really a tarball")
    (backup_dir / "nightly-logs.gz").write_bytes(b"logs")
    before = _tree(bucket)
    # Its resources, as a server would have made them; the server's finalizer
    # must not keep the namespace from going once the server is gone.
    for doc in (
        {
            "apiVersion": "velero.io/v1",
            "kind": "BackupStorageLocation",
            "metadata": {"name": "default", "namespace": target},
            "spec": {"provider": "local", "objectStorage": {"bucket": str(bucket)}, "default": True},
        },
        {
            "apiVersion": "velero.io/v1",
            "kind": "Backup",
            "metadata": {
                "name": "nightly",
                "namespace": target,
                "finalizers": ["strongroom.io/test-finalizer"],
            },
            "spec": {"storageLocation": "default"},
        },
    ):
        sandbox.kubectl("apply", "-f", "-", input=json.dumps(doc))

    result = strongroom.ok(
        "uninstall", "--namespace", target, "--yes", "--keep-crds", "--wait", "--timeout", "30s"
    )
    lines = _lines(result)
    assert lines["Deployment/strongroom"] == "deleted"
    assert lines[f"Namespace/{target}"] == "deleted"
    assert not any(key.startswith("CustomResourceDefinition/") for key in lines)
    assert "backups in object storage were not touched" in result.stdout
    for obj in render(InstallOptions(namespace=target)):
        if obj["kind"] == "CustomResourceDefinition":
            assert not _absent(sandbox, obj), "--keep-crds removed a CRD"
        else:
            assert _absent(sandbox, obj), f"{obj['kind']}/{obj['metadata']['name']} survived"
    assert _tree(bucket) == before
    requests = sandbox.kubectl_json("get", "deletebackuprequests.velero.io", "-A")
    assert [item for item in requests["items"] if item["metadata"]["namespace"] == target] == []


def test_uninstalling_twice_or_where_nothing_is_installed_is_fine(
    strongroom: Strongroom, target: str
) -> None:
    never = strongroom.ok("uninstall", "--namespace", target, "--yes", "--keep-crds")
    assert "nothing to remove" in never.stdout
    strongroom.ok("install", "--namespace", target, "--no-use-node-agent")
    first = strongroom.ok("uninstall", "--namespace", target, "--yes", "--keep-crds", "--wait")
    assert "deleted" in first.stdout
    second = strongroom.ok("uninstall", "--namespace", target, "--yes", "--keep-crds")
    assert "nothing to remove" in second.stdout


def test_a_namespace_strongroom_did_not_create_survives_uninstall(
    strongroom: Strongroom, sandbox: Sandbox, target: str
) -> None:
    sandbox.kubectl("create", "namespace", target)
    sandbox.kubectl("-n", target, "create", "configmap", "unrelated", "--from-literal=a=b")
    try:
        lines = _lines(strongroom.ok("install", "--namespace", target, "--no-use-node-agent"))
        assert lines[f"Namespace/{target}"].startswith("unchanged")
        strongroom.ok("uninstall", "--namespace", target, "--yes", "--keep-crds", "--wait")
        assert sandbox.kubectl_json("get", "namespace", target)["status"]["phase"] == "Active"
        assert sandbox.kubectl_json("-n", target, "get", "configmap", "unrelated")["data"] == {"a": "b"}
        assert (
            sandbox.kubectl("-n", target, "get", "deployment", "--ignore-not-found", "-o", "name").stdout
            == ""
        )
    finally:
        sandbox.kubectl("delete", "namespace", target, "--wait=false")


def test_uninstall_removes_the_crds_unless_kept(
    strongroom: Strongroom, sandbox: Sandbox, target: str
) -> None:
    strongroom.ok("install", "--namespace", target, "--no-use-node-agent")
    crds = [
        obj for obj in render(InstallOptions(namespace=target)) if obj["kind"] == "CustomResourceDefinition"
    ]
    try:
        result = strongroom.ok("uninstall", "--namespace", target, "--yes", "--wait")
        lines = _lines(result)
        for crd in crds:
            assert lines[f"CustomResourceDefinition/{crd['metadata']['name']}"] == "deleted"
            assert _absent(sandbox, crd)
        assert sandbox.kubectl("get", "backups", check=False).returncode != 0
    finally:
        # Other modules rely on the CRDs: install them again.
        strongroom.ok("install", "--namespace", target, "--no-use-node-agent")
    for crd in crds:
        assert not _absent(sandbox, crd)


def test_wait_on_a_cluster_without_nodes_times_out_with_a_clear_message(
    strongroom: Strongroom, sandbox: Sandbox, target: str
) -> None:
    # No node takes new pods while both are cordoned, so the server pod stays Pending.
    nodes = ("sandbox-node-1", "sandbox-node-2")
    sandbox.kubectl("cordon", *nodes)
    try:
        result = strongroom(
            "install", "--namespace", target, "--no-use-node-agent", "--wait", "--timeout", "2s"
        )
    finally:
        sandbox.kubectl("uncordon", *nodes)
    assert result.code == EXIT_UNAVAILABLE
    assert f"Deployment {target}/strongroom is not available after 2s" in result.stderr
    assert "describe deployment" in result.stderr
