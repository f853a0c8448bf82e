"""Volume data end to end: the in-cluster server and node agents protect what is inside the volumes.

Everything runs as it would in a cluster: `strongroom install --use-node-agent`
in a sandbox of its own brings up the server Deployment and one node agent
per node (real processes run by the sandbox's kubelet), backups and restores
are Backup and Restore resources, pods really run and hooks really execute
in them. The data is checked byte for byte, and a SQLite database must pass
its integrity check after the restore.

The cluster has a cluster-wide proxy (`install --https-proxy`) that inspects
TLS: through it, Azure's and Google's public storage hosts lead to the
emulators (tests/integration/tlsproxy.py), so volumes also go to Azure and
GCS locations as restic 0.14 reaches them; everything local bypasses it.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import Sandbox
from tests.integration.cloudkit import (
    AZURE_PUBLIC_HOST,
    GCS_PUBLIC_HOST,
    PROVIDERS,
    CloudLocation,
    PublicClouds,
    public_clouds,
)
from tests.integration.etcdcli import Result
from tests.integration.etcdcli import strongroom as in_process
from tests.integration.sandboxapi import eventually
from tests.integration.serverkit import apply_yaml, backup, get, local_location, velero, wait_phase

from strongroom.sandbox import runner
from strongroom.sandbox.runtime import volume_dir

__all__ = ["public_clouds"]  # fixture

pytestmark = pytest.mark.integration

NS = "openshift-adp"
BACKUP_TIMEOUT = 120.0


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, public_clouds: PublicClouds
) -> Iterator[tuple[Sandbox, Path]]:
    """A sandbox with strongroom installed (server and node agents running in it) and a location."""
    directory = tmp_path_factory.mktemp("volume-sandbox")
    state = runner.start_detached(directory, port=None, nodes=2, insecure=False)
    sandbox = Sandbox(directory, state.kubeconfig, state.server)
    storage = tmp_path_factory.mktemp("volume-storage")
    proxy = public_clouds.environment
    try:
        strongroom(
            sandbox,
            "install",
            "--namespace",
            NS,
            "--use-node-agent",
            "--https-proxy",
            proxy["HTTPS_PROXY"],
            "--no-proxy",
            proxy["NO_PROXY"],
            "--wait",
            "--timeout",
            "120",
        )
        apply_yaml(sandbox, local_location("default", NS, storage, default=True))
        wait_phase(sandbox, "backupstoragelocation", "default", NS, ("Available",), timeout=60)
        sandbox.kubectl(
            "apply",
            "-f",
            "-",
            input=json.dumps(
                {
                    "apiVersion": "snapshot.storage.k8s.io/v1",
                    "kind": "VolumeSnapshotClass",
                    "metadata": {
                        "name": "hostpath-snapclass",
                        "labels": {"velero.io/csi-volumesnapshot-class": "true"},
                    },
                    "driver": "strongroom.io/hostpath",
                    "deletionPolicy": "Delete",
                }
            ),
        )
        yield sandbox, storage
    finally:
        runner.stop(directory)


def strongroom(sandbox: Sandbox, *args: str, check: bool = True) -> Result:
    """The command line as a user's shell runs it against ``sandbox`` (in this process: a new
    interpreter would take over a second to start)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KUBECONFIG", sandbox.kubeconfig)
        patch.delenv("STRONGROOM_MODE", raising=False)
        result = in_process(*args)
    if check and result.code != 0:
        raise AssertionError(
            f"strongroom {' '.join(args)} failed ({result.code}):\n{result.stdout}\n{result.stderr}"
        )
    return result


def app(namespace: str, *, annotations: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """A namespace, a claim, and a Deployment whose pod mounts it at /data."""
    labels = {"app": "db"}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data", "namespace": namespace},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "db", "namespace": namespace},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels, "annotations": annotations or {}},
                    "spec": {
                        "containers": [
                            {
                                "name": "db",
                                "image": "registry.example.com/db:1",
                                "command": ["sh", "-c", "while true; do sleep 1; done"],
                                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                            }
                        ],
                        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
                    },
                },
            },
        },
    ]


def deploy(sandbox: Sandbox, namespace: str, **kwargs: Any) -> Path:
    """Deploy the application and wait for its pod; the directory that holds the claim's data."""
    apply_yaml(sandbox, *app(namespace, **kwargs))
    sandbox.kubectl("rollout", "status", "deployment/db", "-n", namespace, "--timeout=60s")
    return data_dir(sandbox, namespace)


def data_dir(sandbox: Sandbox, namespace: str) -> Path:
    def bound() -> str | None:
        claim = get(sandbox, "pvc", "data", namespace)
        return (
            (claim or {}).get("spec", {}).get("volumeName")
            if (claim or {}).get("status", {}).get("phase") == "Bound"
            else None
        )

    volume = eventually(bound, timeout=30)
    pv = sandbox.kubectl_json("get", "pv", volume)
    return volume_dir(sandbox.dir.resolve(), pv["spec"]["csi"]["volumeHandle"])


def fill(directory: Path) -> dict[str, str]:
    """Files with known content (small, nested, a few MiB, a symlink) and a SQLite database."""
    (directory / "nested" / "deeper").mkdir(parents=True, exist_ok=True)
    (directory / "small.txt").write_text("hello volume\n")
    (directory / "nested" / "deeper" / "notes.md").write_text("# notes\n" * 200)
    (directory / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    (directory / "link").symlink_to("small.txt")
    (directory / "nested" / "script.sh").write_text("#!/bin/sh\necho hi\n")
    (directory / "nested" / "script.sh").chmod(0o750)
    with sqlite3.connect(directory / "app.db") as db:
        db.execute("create table items (id integer primary key, name text)")
        db.executemany("insert into items (name) values (?)", [(f"item-{i}",) for i in range(500)])
    return checksums(directory)


def checksums(directory: Path) -> dict[str, str]:
    """Every file's digest and mode, and every symlink's target, relative to ``directory``."""
    found: dict[str, str] = {}
    for path in sorted(directory.rglob("*")):
        relative = str(path.relative_to(directory))
        if relative.startswith(".velero"):
            continue
        if path.is_symlink():
            found[relative] = f"-> {os.readlink(path)}"
        elif path.is_file():
            found[relative] = (
                f"{hashlib.sha256(path.read_bytes()).hexdigest()} {oct(path.stat().st_mode & 0o777)}"
            )
    return found


def run_backup(sandbox: Sandbox, name: str, **spec: Any) -> dict[str, Any]:
    apply_yaml(sandbox, backup(name, NS, **spec))
    return wait_phase(
        sandbox, "backup", name, NS, ("Completed", "PartiallyFailed", "Failed"), timeout=BACKUP_TIMEOUT
    )


def run_restore(sandbox: Sandbox, name: str, backup_name: str, **spec: Any) -> dict[str, Any]:
    apply_yaml(sandbox, velero("Restore", name, NS, backupName=backup_name, **spec))
    return wait_phase(
        sandbox, "restore", name, NS, ("Completed", "PartiallyFailed", "Failed"), timeout=BACKUP_TIMEOUT
    )


def delete_namespace(sandbox: Sandbox, namespace: str) -> None:
    sandbox.kubectl("delete", "namespace", namespace, "--wait=true", "--timeout=60s")


def pod_volume_backups(sandbox: Sandbox, backup_name: str) -> list[dict[str, Any]]:
    listed = sandbox.kubectl_json(
        "get", "podvolumebackups", "-n", NS, "-l", f"velero.io/backup-name={backup_name}"
    )
    items: list[dict[str, Any]] = listed["items"]
    return items


def test_file_system_backup_with_hooks_restores_every_byte(cluster: tuple[Sandbox, Path]) -> None:
    sandbox, _ = cluster
    namespace = "fs-app"
    freeze = '["/bin/sh", "-c", "echo frozen > /data/frozen.marker"]'
    thaw = '["/bin/sh", "-c", "rm -f /data/frozen.marker && echo thawed > /data/thawed.marker"]'
    data = deploy(
        sandbox,
        namespace,
        annotations={
            "backup.velero.io/backup-volumes": "data",
            "pre.hook.backup.velero.io/command": freeze,
            "post.hook.backup.velero.io/command": thaw,
        },
    )
    expected = fill(data)

    done = run_backup(sandbox, "fs-1", includedNamespaces=[namespace])
    assert done["status"]["phase"] == "Completed", done["status"]
    assert done["status"]["hookStatus"] == {"hooksAttempted": 2}
    (pvb,) = pod_volume_backups(sandbox, "fs-1")
    assert pvb["status"]["phase"] == "Completed"
    assert pvb["status"]["snapshotID"]
    assert pvb["spec"]["volume"] == "data"
    assert pvb["status"]["progress"]["bytesDone"] == pvb["status"]["progress"]["totalBytes"] > 3 * 1024 * 1024
    # The post hook ran after the copy: the live volume is thawed, the copy was taken frozen.
    assert not (data / "frozen.marker").exists()
    assert (data / "thawed.marker").read_text() == "thawed\n"

    delete_namespace(sandbox, namespace)
    restored = run_restore(
        sandbox,
        "fs-1-restore",
        "fs-1",
        hooks={
            "resources": [
                {
                    "name": "list-after-restore",
                    "includedNamespaces": [namespace],
                    "postHooks": [
                        {
                            "init": {
                                "initContainers": [
                                    {
                                        "name": "restore-init",
                                        "image": "registry.example.com/tools:1",
                                        "command": ["/bin/sh", "-c", "ls /data > /data/init-hook.out"],
                                        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                                    }
                                ]
                            }
                        },
                        {
                            "exec": {
                                "container": "db",
                                "command": ["/bin/sh", "-c", "ls /data > /data/restore-hook.out"],
                                "waitTimeout": "2m",
                                "execTimeout": "30s",
                            }
                        },
                    ],
                }
            ]
        },
    )
    assert restored["status"]["phase"] == "Completed", restored["status"]
    assert restored["status"]["hookStatus"] == {"hooksAttempted": 1}
    sandbox.kubectl("rollout", "status", "deployment/db", "-n", namespace, "--timeout=60s")
    (pod,) = sandbox.kubectl_json("get", "pods", "-n", namespace, "-l", "app=db")["items"]
    # restore-wait first, then the init hook: it sees the restored data.
    assert [c["name"] for c in pod["spec"]["initContainers"]] == ["restore-wait", "restore-init"]
    assert pod["status"]["phase"] == "Running"
    back = data_dir(sandbox, namespace)
    assert back != data
    got = checksums(back)
    assert got.pop("frozen.marker").startswith(hashlib.sha256(b"frozen\n").hexdigest())
    assert "restore-hook.out" in got and "app.db" in (back / "restore-hook.out").read_text().split()
    got.pop("restore-hook.out")
    assert "app.db" in (back / "init-hook.out").read_text().split()
    got.pop("init-hook.out")
    assert got == expected
    with sqlite3.connect(back / "app.db") as db:
        assert db.execute("pragma integrity_check").fetchone() == ("ok",)
        assert db.execute("select count(*) from items").fetchone() == (500,)
    # The restore-wait helper cleaned up after itself.
    assert not (back / ".velero").exists()


def test_a_second_backup_uploads_only_what_changed_and_deleting_a_backup_forgets_its_snapshot(
    cluster: tuple[Sandbox, Path],
) -> None:
    sandbox, storage = cluster
    namespace = "incr-app"
    data = deploy(sandbox, namespace, annotations={"backup.velero.io/backup-volumes": "data"})
    fill(data)
    first = run_backup(sandbox, "incr-1", includedNamespaces=[namespace])
    assert first["status"]["phase"] == "Completed", first["status"]
    (data / "small.txt").write_text("changed\n")
    second = run_backup(sandbox, "incr-2", includedNamespaces=[namespace])
    assert second["status"]["phase"] == "Completed", second["status"]
    (one,) = pod_volume_backups(sandbox, "incr-1")
    (two,) = pod_volume_backups(sandbox, "incr-2")
    assert one["status"]["incrementalBytes"] > 3 * 1024 * 1024
    # Only the changed file and the snapshot's metadata are new.
    assert two["status"]["incrementalBytes"] < 64 * 1024
    assert two["status"]["snapshotID"] != one["status"]["snapshotID"]

    apply_yaml(sandbox, velero("DeleteBackupRequest", "delete-incr-1", NS, backupName="incr-1"))
    request = wait_phase(sandbox, "deletebackuprequest", "delete-incr-1", NS, ("Processed",), timeout=60)
    assert not request["status"].get("errors"), request["status"]
    eventually(lambda: get(sandbox, "backup", "incr-1", NS) is None, timeout=30)
    snapshots = restic_snapshots(sandbox, storage, namespace)
    assert one["status"]["snapshotID"] not in snapshots
    assert two["status"]["snapshotID"] in snapshots


def restic_snapshots(sandbox: Sandbox, storage: Path, namespace: str) -> set[str]:
    """The snapshot ids in the namespace's repository, read with restic itself."""
    secret = sandbox.kubectl_json("get", "secret", "strongroom-repo-credentials", "-n", NS)
    password = base64.b64decode(secret["data"]["default"]).decode()
    proc = subprocess.run(
        ["restic", "-r", str(storage / "velero" / "restic" / namespace), "snapshots", "--json", "--no-cache"],
        capture_output=True,
        text=True,
        env={**os.environ, "RESTIC_PASSWORD": password},
        check=True,
        timeout=60,
    )
    return {snapshot["id"] for snapshot in json.loads(proc.stdout)} | {
        snapshot["short_id"] for snapshot in json.loads(proc.stdout)
    }


def test_csi_snapshot_backup_restores_the_claim_from_its_snapshot(cluster: tuple[Sandbox, Path]) -> None:
    sandbox, _ = cluster
    namespace = "csi-app"
    data = deploy(sandbox, namespace)
    expected = fill(data)
    done = run_backup(sandbox, "csi-1", includedNamespaces=[namespace], csiSnapshotTimeout="2m")
    assert done["status"]["phase"] == "Completed", done["status"]
    assert done["status"]["csiVolumeSnapshotsAttempted"] == 1
    assert done["status"]["csiVolumeSnapshotsCompleted"] == 1
    assert pod_volume_backups(sandbox, "csi-1") == []
    # The snapshot objects are released from the cluster; the snapshot itself is kept for the backup.
    assert sandbox.kubectl_json("get", "volumesnapshots", "-n", namespace)["items"] == []
    (data / "small.txt").write_text("changed after the backup\n")

    delete_namespace(sandbox, namespace)
    restored = run_restore(sandbox, "csi-1-restore", "csi-1")
    assert restored["status"]["phase"] == "Completed", restored["status"]
    claim = sandbox.kubectl_json("get", "pvc", "data", "-n", namespace)
    assert claim["spec"]["dataSource"]["kind"] == "VolumeSnapshot"
    sandbox.kubectl("rollout", "status", "deployment/db", "-n", namespace, "--timeout=60s")
    back = data_dir(sandbox, namespace)
    assert checksums(back) == expected
    with sqlite3.connect(back / "app.db") as db:
        assert db.execute("pragma integrity_check").fetchone() == ("ok",)


def test_restore_pvs_false_restores_the_claim_empty(cluster: tuple[Sandbox, Path]) -> None:
    sandbox, _ = cluster
    namespace = "csi-empty"
    data = deploy(sandbox, namespace)
    fill(data)
    assert run_backup(sandbox, "csi-2", includedNamespaces=[namespace])["status"]["phase"] == "Completed"
    delete_namespace(sandbox, namespace)
    restored = run_restore(sandbox, "csi-2-restore", "csi-2", restorePVs=False)
    assert restored["status"]["phase"] == "Completed", restored["status"]
    claim = sandbox.kubectl_json("get", "pvc", "data", "-n", namespace)
    assert "dataSource" not in claim["spec"]
    assert checksums(data_dir(sandbox, namespace)) == {}


def test_failing_hooks_follow_their_on_error(cluster: tuple[Sandbox, Path]) -> None:
    sandbox, _ = cluster
    namespace = "hook-app"
    deploy(sandbox, namespace)

    def hooks(on_error: str) -> dict[str, Any]:
        return {
            "resources": [
                {
                    "name": "quiesce",
                    "includedNamespaces": [namespace],
                    "labelSelector": {"matchLabels": {"app": "db"}},
                    "pre": [
                        {"exec": {"command": ["/bin/sh", "-c", "echo no >&2; exit 3"], "onError": on_error}},
                        {"exec": {"command": ["/bin/sh", "-c", "touch /data/second-hook-ran"]}},
                    ],
                }
            ]
        }

    tolerated = run_backup(sandbox, "hooks-continue", includedNamespaces=[namespace], hooks=hooks("Continue"))
    assert tolerated["status"]["phase"] == "Completed", tolerated["status"]
    assert tolerated["status"]["hookStatus"] == {"hooksAttempted": 2, "hooksFailed": 1}
    assert tolerated["status"]["warnings"] >= 1
    assert (data_dir(sandbox, namespace) / "second-hook-ran").exists()
    (data_dir(sandbox, namespace) / "second-hook-ran").unlink()

    failed = run_backup(sandbox, "hooks-fail", includedNamespaces=[namespace], hooks=hooks("Fail"))
    assert failed["status"]["phase"] == "PartiallyFailed", failed["status"]
    assert failed["status"]["hookStatus"]["hooksFailed"] == 1
    # A failed Fail hook stops that pod's remaining hooks.
    assert not (data_dir(sandbox, namespace) / "second-hook-ran").exists()
    logs = strongroom(sandbox, "backup", "describe", "hooks-fail", "--details", "-n", NS, check=False)
    assert "exit" in (logs.stdout + logs.stderr).lower()


def cloud_location(sandbox: Sandbox, clouds: PublicClouds, cloud: CloudLocation, **config: str) -> str:
    """A BackupStorageLocation and its credentials Secret for ``cloud``, as on a cluster whose proxy inspects
    TLS: no endpoint (unless ``config`` sets one), the proxy's CA as caCert."""
    name = f"{cloud.provider}-{cloud.bucket}"
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": f"{name}-credentials", "namespace": NS},
        "data": {"cloud": base64.b64encode(cloud.credentials.encode()).decode()},
    }
    location = velero(
        "BackupStorageLocation",
        name,
        NS,
        provider=cloud.provider,
        objectStorage={"bucket": cloud.bucket, "prefix": "velero", "caCert": clouds.ca_cert},
        config={**cloud.config, **config},
        credential={"name": f"{name}-credentials", "key": "cloud"},
    )
    apply_yaml(sandbox, secret, location)
    wait_phase(sandbox, "backupstoragelocation", name, NS, ("Available",), timeout=60)
    return name


def restic_snapshot_files(cloud: CloudLocation, namespace: str) -> list[str]:
    """restic's snapshot files in the namespace's repository, read from the bucket past strongroom."""
    return sorted(key for key in cloud.listing() if key.startswith(f"velero/restic/{namespace}/snapshots/"))


@pytest.mark.parametrize("provider", PROVIDERS)
def test_file_system_backup_into_azure_and_gcs_through_the_clusters_proxy(
    cluster: tuple[Sandbox, Path], public_clouds: PublicClouds, provider: str
) -> None:
    sandbox, _ = cluster
    cloud = public_clouds.location(provider)
    location = cloud_location(sandbox, public_clouds, cloud)
    namespace = f"fs-{provider}"
    data = deploy(sandbox, namespace, annotations={"backup.velero.io/backup-volumes": "data"})
    expected = fill(data)

    done = run_backup(sandbox, f"{provider}-fs", includedNamespaces=[namespace], storageLocation=location)
    assert done["status"]["phase"] == "Completed", done["status"]
    (pvb,) = pod_volume_backups(sandbox, f"{provider}-fs")
    assert pvb["status"]["phase"] == "Completed", pvb["status"]
    # The repository is where Velero keeps it, addressed as Velero addresses it.
    scheme = "azure" if provider == "azure" else "gs"
    identifier = f"{scheme}:{cloud.bucket}:/velero/restic/{namespace}"
    assert pvb["spec"]["repoIdentifier"] == identifier
    (repository,) = [
        r
        for r in sandbox.kubectl_json("get", "backuprepositories", "-n", NS)["items"]
        if r["spec"]["backupStorageLocation"] == location
    ]
    assert repository["spec"]["resticIdentifier"] == identifier
    assert f"velero/restic/{namespace}/config" in cloud.listing()
    assert len(restic_snapshot_files(cloud, namespace)) == 1

    delete_namespace(sandbox, namespace)
    restored = run_restore(sandbox, f"{provider}-fs-restore", f"{provider}-fs")
    assert restored["status"]["phase"] == "Completed", restored["status"]
    sandbox.kubectl("rollout", "status", "deployment/db", "-n", namespace, "--timeout=60s")
    assert checksums(data_dir(sandbox, namespace)) == expected

    # Deleting the backup forgets its snapshot in the cloud's repository.
    apply_yaml(
        sandbox, velero("DeleteBackupRequest", f"delete-{provider}-fs", NS, backupName=f"{provider}-fs")
    )
    request = wait_phase(
        sandbox, "deletebackuprequest", f"delete-{provider}-fs", NS, ("Processed",), timeout=60
    )
    assert not request["status"].get("errors"), request["status"]
    assert restic_snapshot_files(cloud, namespace) == []

    # Everything reached the cloud by its public name through the proxy, and nothing else was asked for.
    assert {AZURE_PUBLIC_HOST if provider == "azure" else GCS_PUBLIC_HOST} <= set(public_clouds.proxy.tunnels)
    assert public_clouds.proxy.refused == []
    shown = json.dumps([pvb, repository, get(sandbox, "backupstoragelocation", location, NS)])
    assert not any(secret in shown for secret in cloud.secrets)


def test_a_volume_for_an_azure_endpoint_restic_cannot_reach_fails_with_the_reason(
    cluster: tuple[Sandbox, Path], public_clouds: PublicClouds
) -> None:
    sandbox, _ = cluster
    cloud = public_clouds.location("azure")
    # Azurite's own address: the server stores objects there; restic 0.14 cannot reach it.
    location = cloud_location(sandbox, public_clouds, cloud, storageAccountURI=public_clouds.azure.endpoint)
    namespace = "fs-azure-stack"
    deploy(sandbox, namespace, annotations={"backup.velero.io/backup-volumes": "data"})

    done = run_backup(sandbox, "azure-stack-fs", includedNamespaces=[namespace], storageLocation=location)
    assert done["status"]["phase"] == "PartiallyFailed", done["status"]
    assert pod_volume_backups(sandbox, "azure-stack-fs") == []
    # The reason is the backup's error on the namespace, as `backup describe` shows it.
    results = json.loads(
        gzip.decompress(cloud.read("velero/backups/azure-stack-fs/azure-stack-fs-results.gz"))
    )
    (message,) = results["errors"]["namespaces"][namespace]
    assert message.startswith(f"volume data of pod {namespace}/db-")
    assert (
        f"is not backed up: the file-system backup repository for namespace {namespace} is not ready"
        in message
    )
    assert "file-system backup (restic) cannot reach the storage account's endpoint" in message
    assert public_clouds.azure.endpoint in message
    # The API objects are in the bucket; nothing of restic is.
    listing = cloud.listing()
    assert "velero/backups/azure-stack-fs/velero-backup.json" in listing
    assert not any(key.startswith("velero/restic/") for key in listing)
