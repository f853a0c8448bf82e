"""`strongroom doctor` on the sandbox: planted troubleshooting cases are found with their fixes.

The velero.io CRDs are applied (as an administrator would, left installed) and
the problems are planted in a namespace of their own; no server runs, so
nothing reconciles the planted objects.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from tests.conftest import Sandbox
from tests.integration.backupkit import unique
from tests.integration.etcdkit import start_cluster
from tests.integration.openshiftkit import crd, served
from tests.integration.sandboxapi import Kube, eventually
from typer.testing import CliRunner

from strongroom.archive import Results, encode_results
from strongroom.cli.doctor import doctor
from strongroom.model.crds import crd_manifests
from strongroom.storage import Layout

pytestmark = pytest.mark.integration

GROUP, VERSION = "velero.io", "v1"


def _established(sandbox: Sandbox, name: str) -> bool:
    crd = sandbox.kubectl_json("get", "crd", name)
    conditions = {c["type"]: c["status"] for c in crd.get("status", {}).get("conditions", [])}
    return conditions.get("Established") == "True"


@pytest.fixture
def namespace(sandbox: Sandbox) -> Iterator[str]:
    manifests = crd_manifests()
    sandbox.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(manifests))
    for manifest in manifests:
        eventually(lambda name=manifest["metadata"]["name"]: _established(sandbox, name))
    name = unique("doctor")
    sandbox.kubectl("create", "namespace", name)
    yield name
    sandbox.kubectl("delete", "namespace", name, "--wait=false", check=False)


def _run(sandbox: Sandbox, namespace: str) -> tuple[int, dict[str, Any], str]:
    app = typer.Typer()
    app.command(name="doctor")(doctor)
    app.command(name="unused")(lambda: None)  # two commands, so "doctor" is a subcommand
    args = ["doctor", "--namespace", namespace, "--kubeconfig", sandbox.kubeconfig]
    as_json = CliRunner().invoke(app, [*args, "-o", "json"])
    as_table = CliRunner().invoke(app, args)
    assert as_table.exit_code == as_json.exit_code, as_table.output
    return as_json.exit_code, json.loads(as_json.stdout), as_table.stdout


def _location(kube: Kube, namespace: str, name: str, spec: dict[str, Any]) -> None:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "BackupStorageLocation",
        "metadata": {"name": name},
        "spec": spec,
    }
    _create(kube, namespace, "backupstoragelocations", body)


def _default_location(kube: Kube, namespace: str, bucket: Path) -> None:
    """The namespace's default BackupStorageLocation: a local directory."""
    spec = {"provider": "local", "default": True, "objectStorage": {"bucket": str(bucket)}}
    _location(kube, namespace, "default", spec)


def _create(kube: Kube, namespace: str, plural: str, body: dict[str, Any]) -> None:
    kube.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, plural, body)


def _set_status(kube: Kube, namespace: str, plural: str, name: str, status: dict[str, Any]) -> None:
    kube.custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, plural, name, {"status": status}
    )


def _by_check(document: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for finding in document["findings"]:
        found.setdefault(finding["check"], []).append(finding)
    return found


def test_doctor_finds_the_planted_problems_and_is_quiet_once_they_are_gone(
    sandbox: Sandbox, kube: Kube, namespace: str, tmp_path: Path
) -> None:
    bucket = tmp_path / "bucket"
    (bucket / "junk").mkdir(parents=True)
    (bucket / "junk" / "file.txt").write_text("not a backup")
    (bucket / "backups").mkdir()
    _default_location(kube, namespace, bucket)
    _create(
        kube,
        namespace,
        "backups",
        {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Backup", "metadata": {"name": "stuck"}, "spec": {}},
    )
    started = (datetime.now(UTC) - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    _set_status(kube, namespace, "backups", "stuck", {"phase": "InProgress", "startTimestamp": started})
    _create(
        kube,
        namespace,
        "podvolumebackups",
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "PodVolumeBackup",
            "metadata": {"name": "nfs-data"},
            "spec": {
                "node": "node-1",
                "pod": {"kind": "Pod", "namespace": "app", "name": "web-0"},
                "volume": "data",
                "backupStorageLocation": "default",
                "repoIdentifier": "",
            },
        },
    )
    _set_status(
        kube,
        namespace,
        "podvolumebackups",
        "nfs-data",
        {
            "phase": "Failed",
            "message": 'controller=pod-volume-backup error="fork/exec/usr/bin/restic: permission denied"',
        },
    )

    started_at = time.monotonic()
    code, document, table = _run(sandbox, namespace)
    assert code == 1, table
    checks = _by_check(document)
    top = checks["invalid-top-level-directories"][0]
    assert top["status"] == "PROBLEM", top
    assert "junk" in top["found"]
    assert "objectStorage.prefix" in top["fix"]
    stuck = checks["stuck-in-progress"][0]
    assert stuck["status"] == "PROBLEM", stuck
    assert stuck["subject"] == "Backup/stuck"
    assert "InProgress for 2h" in stuck["found"]
    assert "create a new Backup" in stuck["fix"]
    denied = checks["restic-permission-denied"][0]
    assert denied["status"] == "PROBLEM", denied
    assert "supplementalGroups" in denied["fix"]
    assert checks["etcd-members"][0]["status"] == "SKIPPED"
    assert "PROBLEM" in table
    assert "fix: " in table
    assert document["problems"] == 3, table

    (bucket / "junk" / "file.txt").unlink()
    (bucket / "junk").rmdir()
    kube.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, "backups", "stuck")
    kube.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, "podvolumebackups", "nfs-data")

    code, document, table = _run(sandbox, namespace)
    assert code == 0, table
    assert document["problems"] == 0
    assert "no problem found" in table
    assert time.monotonic() - started_at < 20


def test_doctor_finds_credentials_regions_repositories_and_deploymentconfig_restores(
    sandbox: Sandbox, kube: Kube, namespace: str, tmp_path: Path
) -> None:
    secret_value = "wJalrXUtnFEMI-K7MDENG-SECRET"
    kube.core.create_namespaced_secret(
        namespace,
        {
            "metadata": {"name": "cloud-credentials"},
            "stringData": {"cloud": f"[default]\naws_secret_access_key={secret_value}\n"},
        },
    )
    _location(
        kube,
        namespace,
        "aws",
        {
            "provider": "aws",
            "objectStorage": {"bucket": "velero-bucket"},
            "config": {"region": "us-east-1"},
            "credential": {"name": "cloud-credentials", "key": "cloud"},
        },
    )
    bucket = tmp_path / "bucket"
    bucket.mkdir()
    _default_location(kube, namespace, bucket)
    _create(
        kube,
        namespace,
        "volumesnapshotlocations",
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "VolumeSnapshotLocation",
            "metadata": {"name": "snapshots"},
            "spec": {"provider": "aws", "config": {"region": "us-west-2"}},
        },
    )
    pv_name = unique("pv")
    kube.core.create_persistent_volume(
        {
            "metadata": {"name": pv_name, "labels": {"topology.kubernetes.io/region": "us-east-1"}},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteOnce"],
                "hostPath": {"path": "/tmp/doctor"},
            },
        }
    )
    _create(
        kube,
        namespace,
        "backuprepositories",
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "BackupRepository",
            "metadata": {"name": "app-default-restic"},
            "spec": {
                "volumeNamespace": "app",
                "backupStorageLocation": "default",
                "repositoryType": "restic",
                "resticIdentifier": f"local:{bucket}/restic/app",
                "maintenanceFrequency": "168h",
            },
        },
    )
    _set_status(kube, namespace, "backuprepositories", "app-default-restic", {"phase": "Ready"})
    _create(
        kube,
        namespace,
        "backups",
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Backup",
            "metadata": {"name": "b1"},
            "spec": {"storageLocation": "default", "includedNamespaces": ["app"]},
        },
    )
    _create(
        kube,
        namespace,
        "restores",
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Restore",
            "metadata": {"name": "r1"},
            "spec": {"backupName": "b1", "includedNamespaces": ["app"]},
        },
    )
    _set_status(kube, namespace, "restores", "r1", {"phase": "PartiallyFailed", "errors": 1})
    results = Results()
    results.errors.add("app", "error restoring deploymentconfigs.apps.openshift.io/app/web: pods redeployed")
    key = bucket / Layout().restore_results("r1")
    key.parent.mkdir(parents=True)
    key.write_bytes(encode_results(results))

    try:
        code, document, table = _run(sandbox, namespace)
    finally:
        kube.core.delete_persistent_volume(pv_name)
    assert code == 1, table
    assert secret_value not in table
    assert secret_value not in json.dumps(document)
    checks = _by_check(document)
    credentials = checks["malformed-credentials"][0]
    assert credentials["status"] == "PROBLEM", credentials
    assert credentials["subject"] == "BackupStorageLocation/aws"
    assert "aws_access_key_id" in credentials["found"]
    region = checks["snapshot-location-region"][0]
    assert region["status"] == "PROBLEM", region
    assert "us-west-2" in region["found"]
    assert "us-east-1" in region["found"]
    repository = checks["restic-repository-missing"][0]
    assert repository["status"] == "PROBLEM", repository
    assert "restic/app/config" in repository["found"]
    restore = checks["restore-deploymentconfigs"][0]
    assert restore["status"] == "PROBLEM", restore
    assert "--exclude-resources replicationcontroller,deploymentconfig" in restore["fix"]
    assert checks["invalid-top-level-directories"][0]["status"] == "OK"


def test_doctor_reports_an_unhealthy_etcd_member(sandbox: Sandbox, namespace: str, tmp_path: Path) -> None:
    app = typer.Typer()
    app.command(name="doctor")(doctor)
    app.command(name="unused")(lambda: None)
    with start_cluster(tmp_path / "etcd", 3, tls=True) as cluster:
        assert cluster.tls is not None
        stopped = cluster.members[2].name
        cluster.stop(stopped)
        cluster.wait_healthy(*(m.name for m in cluster.members[:2]))  # it may have been the leader
        args = ["doctor", "-n", namespace, "--kubeconfig", sandbox.kubeconfig, "-o", "json"]
        args += ["--etcd-endpoints", ",".join(cluster.endpoints), "--etcd-cacert", str(cluster.tls.ca)]
        args += ["--etcd-cert", str(cluster.tls.client_cert), "--etcd-key", str(cluster.tls.client_key)]
        result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output
    etcd = _by_check(json.loads(result.stdout))["etcd-members"]
    assert [f["status"] for f in etcd] == ["PROBLEM"], etcd
    assert stopped in etcd[0]["subject"]
    assert f"no node named {stopped}" in etcd[0]["found"]  # the seed's classification, from the cluster


def test_doctor_reads_openshifts_etcd_resource_without_endpoints(
    sandbox: Sandbox, namespace: str, kube: Kube
) -> None:
    group, plural = "operator.openshift.io", "etcds"
    node = sandbox.kubectl_json("get", "nodes")["items"][0]["metadata"]["name"]

    def members_available(status: str, message: str) -> None:
        condition = {"type": "EtcdMembersAvailable", "status": status, "reason": "X", "message": message}
        kube.custom.patch_cluster_custom_object_status(
            group, "v1", plural, "cluster", {"status": {"conditions": [condition]}}
        )

    with served(sandbox, crd(group, plural, "Etcd")):
        kube.custom.create_cluster_custom_object(
            group,
            "v1",
            plural,
            {"apiVersion": f"{group}/v1", "kind": "Etcd", "metadata": {"name": "cluster"}},
        )
        try:
            members_available(
                "False", "2 of 3 members are available, ip-10-0-131-183.ec2.internal is unhealthy"
            )
            code, document, table = _run(sandbox, namespace)
            assert code == 1, table
            etcd = _by_check(document)["etcd-members"]
            assert [f["status"] for f in etcd] == ["PROBLEM"], etcd
            assert etcd[0]["subject"] == "etcd member ip-10-0-131-183.ec2.internal"
            assert "2 of 3 members are available" in etcd[0]["found"]
            assert "no node named ip-10-0-131-183.ec2.internal" in etcd[0]["found"]
            assert "strongroom etcd members replace" in etcd[0]["fix"]

            members_available("True", f"3 members are available, {node} is healthy")
            code, document, table = _run(sandbox, namespace)
            etcd = _by_check(document)["etcd-members"]
            assert [f["status"] for f in etcd] == ["OK"], etcd
            assert "3 members are available" in etcd[0]["found"]
        finally:
            kube.custom.delete_cluster_custom_object(group, "v1", plural, "cluster")


def test_doctor_checks_the_cluster_wide_proxy(sandbox: Sandbox, namespace: str, kube: Kube) -> None:
    config = {"s3Url": f"http://minio.{namespace}.svc:9000", "region": "minio"}
    _location(
        kube, namespace, "minio", {"provider": "aws", "objectStorage": {"bucket": "b"}, "config": config}
    )
    # The server as Velero/OADP name it, scaled to zero: only its pod template is read.
    kube.apps.create_namespaced_deployment(
        namespace,
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "velero"},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"deploy": "velero"}},
                "template": {
                    "metadata": {"labels": {"deploy": "velero"}},
                    "spec": {"containers": [{"name": "velero", "image": "velero/velero:v1.14.0"}]},
                },
            },
        },
    )
    proxy = {
        "apiVersion": "config.openshift.io/v1",
        "kind": "Proxy",
        "metadata": {"name": "cluster"},
        "spec": {"httpProxy": "http://ops:s3cret@proxy.example.com:3128"},
    }
    with served(sandbox, crd("config.openshift.io", "proxies", "Proxy")):
        kube.custom.create_cluster_custom_object("config.openshift.io", "v1", "proxies", proxy)
        try:
            code, document, table = _run(sandbox, namespace)
            assert code == 1, table
            found = {f["subject"]: f for f in _by_check(document)["cluster-proxy"]}
            assert set(found) == {"Deployment/velero"}, found  # the server's own (empty) settings count
            assert found["Deployment/velero"]["status"] == "PROBLEM"
            assert "runs without one" in found["Deployment/velero"]["found"]
            assert "http://***@proxy.example.com:3128" in found["Deployment/velero"]["found"]
            assert "s3cret" not in json.dumps(document) + table

            # Now the server has the cluster's proxy, but nothing exempts the in-cluster MinIO.
            env = [{"name": "HTTP_PROXY", "value": proxy["spec"]["httpProxy"]}]
            patch = {"spec": {"template": {"spec": {"containers": [{"name": "velero", "env": env}]}}}}
            kube.apps.patch_namespaced_deployment("velero", namespace, patch)
            code, document, table = _run(sandbox, namespace)
            found = {f["subject"]: f for f in _by_check(document)["cluster-proxy"]}
            assert set(found) == {"BackupStorageLocation/minio"}, found
            assert f"add minio.{namespace}.svc" in found["BackupStorageLocation/minio"]["fix"]
        finally:
            kube.custom.delete_cluster_custom_object("config.openshift.io", "v1", "proxies", "cluster")
