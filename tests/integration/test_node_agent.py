"""`strongroom node-agent` as a real process against the session's sandbox, with real restic.

The agent's node is not one of the sandbox's: its pods are objects only, and
their volumes are a kubelet-like tree the test builds (a CSI volume whose
``mount`` is a symlink to the data, an emptyDir), handed to the agent as
``--host-pods-root``. PodVolumeBackups and PodVolumeRestores are created as
the server would create them, and their status is what is checked.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import Sandbox
from tests.integration.sandboxapi import eventually, unique
from tests.integration.serverkit import apply_yaml, get, install_crds, local_location, velero, wait_phase
from tests.integration.test_restic import fingerprint, make_tree

from strongroom.sandbox.runtime import node_root
from strongroom.volumes import PASSWORD_SECRET

pytestmark = pytest.mark.integration

CSI_DRIVER = "hostpath.csi.k8s.io"


@pytest.fixture(scope="module")
def crds(sandbox: Sandbox) -> None:
    install_crds(sandbox)


@pytest.fixture
def app_namespace(sandbox: Sandbox) -> Iterator[str]:
    name = unique("app")
    sandbox.kubectl("create", "namespace", name)
    yield name
    sandbox.kubectl("delete", "namespace", name, "--wait=false")


@dataclass
class Agent:
    """One `strongroom node-agent` process; its JSON log is kept for failure messages."""

    sandbox: Sandbox
    namespace: str
    node: str
    pods_root: Path
    scratch: Path
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    _log: Any = field(default=None, repr=False)

    def start(self) -> Agent:
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "strongroom",
                "node-agent",
                "--node",
                self.node,
                "--host-pods-root",
                str(self.pods_root),
                "--namespace",
                self.namespace,
                "--kubeconfig",
                self.sandbox.kubeconfig,
                "--scratch-dir",
                str(self.scratch),
                "--log-format",
                "json",
                "--log-level",
                "debug",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        return self

    def records(self) -> list[dict[str, Any]]:
        found = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                found.append(json.loads(line))
            except ValueError:
                continue
        return found

    def wait_ready(self) -> None:
        def ready() -> bool:
            assert self.process is not None
            assert self.process.poll() is None, self.log_path.read_text()
            return any("node agent ready" in str(r.get("msg")) for r in self.records())

        eventually(ready, timeout=30, interval=0.1)

    def wait_logged(self, message: str) -> None:
        eventually(lambda: any(r.get("msg") == message for r in self.records()), timeout=20, interval=0.1)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None


@pytest.fixture
def agent_factory(sandbox: Sandbox, tmp_path: Path) -> Iterator[Any]:
    started: list[Agent] = []

    def start(namespace: str, node: str, pods_root: Path | None = None) -> Agent:
        if pods_root is None:
            pods_root = tmp_path / "pods"
            pods_root.mkdir(exist_ok=True)
        agent = Agent(
            sandbox, namespace, node, pods_root, tmp_path / "scratch", tmp_path / f"agent-{node}.log"
        )
        started.append(agent.start())
        agent.wait_ready()
        return agent

    yield start
    for agent in started:
        agent.stop()


def create(sandbox: Sandbox, manifest: dict[str, Any]) -> dict[str, Any]:
    created: dict[str, Any] = json.loads(
        sandbox.kubectl("create", "-f", "-", "-o", "json", input=json.dumps(manifest)).stdout
    )
    return created


def set_status(sandbox: Sandbox, kind: str, name: str, namespace: str, status: dict[str, Any]) -> None:
    sandbox.kubectl(
        "patch",
        kind,
        name,
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": status}),
    )


def claim_with_csi_volume(sandbox: Sandbox, namespace: str, claim: str) -> tuple[str, str]:
    """A PVC bound to a CSI PV (both written as bound); returns the PV's name and the PVC's UID."""
    pv_name = unique("pv")
    create(
        sandbox,
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": pv_name},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Retain",
                "storageClassName": "",
                "csi": {"driver": CSI_DRIVER, "volumeHandle": pv_name},
                "claimRef": {"namespace": namespace, "name": claim},
            },
        },
    )
    pvc = create(
        sandbox,
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": claim, "namespace": namespace},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}},
                "storageClassName": "",
                "volumeName": pv_name,
            },
        },
    )
    return pv_name, str(pvc["metadata"]["uid"])


def pod(name: str, namespace: str, node: str, *, claim: str, restore_wait: bool = False) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "nodeName": node,
        "containers": [{"name": "app", "image": "registry.example.com/app:1"}],
        "volumes": [
            {"name": "data", "persistentVolumeClaim": {"claimName": claim}},
            {"name": "cache", "emptyDir": {}},
        ],
    }
    if restore_wait:
        spec["initContainers"] = [
            {
                "name": "restore-wait",
                "image": "strongroom:latest",
                "args": ["restore-wait", "--restore-uid", "x"],
            }
        ]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def kubelet_tree(pods_root: Path, pod_uid: str, pv_name: str, data: Path) -> tuple[Path, Path]:
    """The volumes of one pod as kubelet lays them out: the CSI mount is a symlink to the data."""
    volumes = pods_root / pod_uid / "volumes"
    csi = volumes / "kubernetes.io~csi" / pv_name
    csi.mkdir(parents=True)
    data.mkdir(parents=True, exist_ok=True)
    os.symlink(data, csi / "mount")
    cache = volumes / "kubernetes.io~empty-dir" / "cache"
    cache.mkdir(parents=True)
    return data, cache


def pvb(
    name: str, namespace: str, node: str, pod_obj: dict[str, Any], volume: str, **tags: str
) -> dict[str, Any]:
    meta = pod_obj["metadata"]
    return velero(
        "PodVolumeBackup",
        name,
        namespace,
        node=node,
        pod={"kind": "Pod", "name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"]},
        volume=volume,
        backupStorageLocation="default",
        repoIdentifier="",
        uploaderType="restic",
        tags={"backup": "b1", "ns": meta["namespace"], "pod": meta["name"], "volume": volume, **tags},
    )


def phase(sandbox: Sandbox, kind: str, name: str, namespace: str) -> str:
    obj = get(sandbox, kind, name, namespace)
    assert obj is not None, f"{kind} {name} is gone"
    return str((obj.get("status") or {}).get("phase") or "")


def restic_snapshots(sandbox: Sandbox, namespace: str, repository: Path) -> list[dict[str, Any]]:
    secret = sandbox.kubectl_json("get", "secret", PASSWORD_SECRET, "-n", namespace)
    password = base64.b64decode(secret["data"]["default"]).decode()
    listing = subprocess.run(
        ["restic", "snapshots", "--json", "--repo", str(repository), "--no-cache"],
        env={"PATH": os.environ["PATH"], "RESTIC_PASSWORD": password, "HOME": str(repository.parent)},
        capture_output=True,
        check=True,
    )
    found: list[dict[str, Any]] = json.loads(listing.stdout)
    return found


def test_agent_backs_up_its_nodes_volumes_and_restores_into_a_waiting_pod(
    sandbox: Sandbox, crds: None, namespace: str, app_namespace: str, agent_factory: Any, tmp_path: Path
) -> None:
    node = unique("agent-node")
    apply_yaml(sandbox, local_location("default", namespace, tmp_path / "bucket"))
    pv_name, pvc_uid = claim_with_csi_volume(sandbox, app_namespace, "data")
    source = create(sandbox, pod("web-0", app_namespace, node, claim="data"))
    data, _ = kubelet_tree(tmp_path / "pods", source["metadata"]["uid"], pv_name, tmp_path / "csi" / pv_name)
    make_tree(data)
    # Another node's request, created first: this agent must leave it alone.
    create(sandbox, pvb("pvb-foreign", namespace, "other-node", source, "data", **{"pvc-uid": pvc_uid}))

    agent = agent_factory(namespace, node)
    create(sandbox, pvb("pvb-data", namespace, node, source, "data", **{"pvc-uid": pvc_uid}))
    create(sandbox, pvb("pvb-cache", namespace, node, source, "cache"))
    done = wait_phase(sandbox, "podvolumebackups", "pvb-data", namespace, ("Completed", "Failed"))
    assert done["status"]["phase"] == "Completed", (done["status"], agent.log_path.read_text()[-3000:])
    status = done["status"]
    assert status["path"] == str(data.resolve())
    assert status["progress"]["totalBytes"] == status["progress"]["bytesDone"] > 256 * 1024
    assert status["incrementalBytes"] > 0
    assert status["startTimestamp"] and status["completionTimestamp"]
    repository = tmp_path / "bucket" / "velero" / "restic" / app_namespace
    (snapshot,) = restic_snapshots(sandbox, namespace, repository)
    assert snapshot["short_id"] == status["snapshotID"]
    assert f"pvc-uid={pvc_uid}" in snapshot["tags"]
    assert f"pod-uid={source['metadata']['uid']}" in snapshot["tags"]

    empty = wait_phase(sandbox, "podvolumebackups", "pvb-cache", namespace, ("Completed", "Failed"))
    assert empty["status"]["phase"] == "Completed"
    assert empty["status"]["snapshotID"] == ""
    assert empty["status"]["message"] == "volume was empty so no snapshot was taken"
    agent.wait_logged("podvolumebackup pvb-foreign is for node other-node, not this one")
    assert phase(sandbox, "podvolumebackups", "pvb-foreign", namespace) == ""

    # The restore: a pod waiting in restore-wait on this node, owned by a Restore.
    restore = create(sandbox, velero("Restore", "r1", namespace, backupName="b1"))
    target_pv, _ = claim_with_csi_volume(sandbox, app_namespace, "data-restored")
    target_pod = create(
        sandbox, pod("web-restored", app_namespace, node, claim="data-restored", restore_wait=True)
    )
    target, _ = kubelet_tree(
        tmp_path / "pods", target_pod["metadata"]["uid"], target_pv, tmp_path / "csi" / target_pv
    )
    pvr = velero(
        "PodVolumeRestore",
        "pvr-data",
        namespace,
        pod={
            "kind": "Pod",
            "name": "web-restored",
            "namespace": app_namespace,
            "uid": target_pod["metadata"]["uid"],
        },
        volume="data",
        backupStorageLocation="default",
        repoIdentifier="",
        uploaderType="restic",
        snapshotID=status["snapshotID"],
        sourceNamespace=app_namespace,
    )
    pvr["metadata"]["ownerReferences"] = [
        {
            "apiVersion": "velero.io/v1",
            "kind": "Restore",
            "name": "r1",
            "uid": restore["metadata"]["uid"],
            "controller": True,
        }
    ]
    create(sandbox, pvr)
    # Not before the pod's restore-wait container runs.
    set_status(
        sandbox,
        "pod",
        "web-restored",
        app_namespace,
        {
            "initContainerStatuses": [
                {"name": "restore-wait", "state": {"waiting": {"reason": "PodInitializing"}}}
            ]
        },
    )
    agent.wait_logged(
        "podvolumerestore pvr-data waits: the restore-wait init container of its pod is not running"
    )
    assert phase(sandbox, "podvolumerestores", "pvr-data", namespace) == ""
    set_status(
        sandbox,
        "pod",
        "web-restored",
        app_namespace,
        {
            "initContainerStatuses": [
                {"name": "restore-wait", "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}
            ]
        },
    )
    restored = wait_phase(sandbox, "podvolumerestores", "pvr-data", namespace, ("Completed", "Failed"))
    assert restored["status"]["phase"] == "Completed", (
        restored["status"],
        agent.log_path.read_text()[-3000:],
    )
    assert restored["status"]["node"] == node
    assert restored["status"]["progress"]["bytesDone"] == status["progress"]["totalBytes"]
    marker = target / ".velero" / restore["metadata"]["uid"]
    assert marker.is_file()
    restored_files = fingerprint(target)
    del restored_files[".velero"]
    del restored_files[f".velero/{restore['metadata']['uid']}"]
    assert restored_files == fingerprint(data)


def test_requests_a_dead_agent_left_in_progress_are_failed_when_it_starts_again(
    sandbox: Sandbox, crds: None, namespace: str, app_namespace: str, agent_factory: Any, tmp_path: Path
) -> None:
    node = unique("agent-node")
    apply_yaml(sandbox, local_location("default", namespace, tmp_path / "bucket"))
    _, pvc_uid = claim_with_csi_volume(sandbox, app_namespace, "data")
    source = create(sandbox, pod("web-0", app_namespace, node, claim="data"))
    create(sandbox, pvb("pvb-mine", namespace, node, source, "data", **{"pvc-uid": pvc_uid}))
    create(sandbox, pvb("pvb-other", namespace, "other-node", source, "data"))
    in_progress = {"phase": "InProgress", "startTimestamp": "2026-01-01T00:00:00Z"}
    set_status(sandbox, "podvolumebackups", "pvb-mine", namespace, in_progress)
    set_status(sandbox, "podvolumebackups", "pvb-other", namespace, in_progress)
    pvr = velero(
        "PodVolumeRestore",
        "pvr-mine",
        namespace,
        pod={"kind": "Pod", "name": "web-0", "namespace": app_namespace, "uid": source["metadata"]["uid"]},
        volume="data",
        backupStorageLocation="default",
        repoIdentifier="",
        snapshotID="abcdef12",
        sourceNamespace=app_namespace,
    )
    create(sandbox, pvr)
    set_status(sandbox, "podvolumerestores", "pvr-mine", namespace, {**in_progress, "node": node})

    agent_factory(namespace, node)
    failed = wait_phase(sandbox, "podvolumebackups", "pvb-mine", namespace, ("Failed",))
    assert "during the node agent starting" in failed["status"]["message"]
    assert failed["status"]["completionTimestamp"]
    failed_restore = wait_phase(sandbox, "podvolumerestores", "pvr-mine", namespace, ("Failed",))
    assert "during the node agent starting" in failed_restore["status"]["message"]
    other = get(sandbox, "podvolumebackups", "pvb-other", namespace)
    assert other is not None and other["status"]["phase"] == "InProgress"


def test_backup_of_a_pod_whose_volume_is_not_on_this_node_fails_with_the_reason(
    sandbox: Sandbox, crds: None, namespace: str, app_namespace: str, agent_factory: Any, tmp_path: Path
) -> None:
    node = unique("agent-node")
    apply_yaml(sandbox, local_location("default", namespace, tmp_path / "bucket"))
    claim_with_csi_volume(sandbox, app_namespace, "data")
    source = create(sandbox, pod("web-0", app_namespace, node, claim="data"))
    agent_factory(namespace, node)
    create(sandbox, pvb("pvb-missing", namespace, node, source, "cache"))
    create(sandbox, pvb("pvb-novolume", namespace, node, source, "nosuchvolume"))
    missing = wait_phase(sandbox, "podvolumebackups", "pvb-missing", namespace, ("Completed", "Failed"))
    assert missing["status"]["phase"] == "Failed"
    assert "no volume directory matches" in missing["status"]["message"]
    novolume = wait_phase(sandbox, "podvolumebackups", "pvb-novolume", namespace, ("Completed", "Failed"))
    assert novolume["status"]["phase"] == "Failed"
    assert "volume 'nosuchvolume' not found in pod" in novolume["status"]["message"]


def running_pod(sandbox: Sandbox, namespace: str, name: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        current = get(sandbox, "pod", name, namespace)
        return current if current and (current.get("status") or {}).get("phase") == "Running" else None

    found: dict[str, Any] = eventually(check, timeout=30, interval=0.2)
    return found


def claim(name: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }


def test_agent_on_a_sandbox_node_copies_a_running_pods_volume_into_a_restored_pod(
    sandbox: Sandbox, crds: None, namespace: str, app_namespace: str, agent_factory: Any, tmp_path: Path
) -> None:
    """The whole protocol with the sandbox's kubelet: the restored pod's restore-wait runs strongroom."""
    node = "sandbox-node-1"
    apply_yaml(sandbox, local_location("default", namespace, tmp_path / "bucket"))
    create(sandbox, claim("data", app_namespace))
    write = "mkdir -p /data/sub && printf 'hello from the source pod' > /data/sub/hello.txt && sleep 3600"
    create(
        sandbox,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "writer", "namespace": app_namespace},
            "spec": {
                "nodeName": node,
                "containers": [
                    {
                        "name": "app",
                        "image": "busybox",
                        "command": ["sh", "-c", write],
                        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                    }
                ],
                "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
            },
        },
    )
    writer = running_pod(sandbox, app_namespace, "writer")
    pods_root = node_root(sandbox.dir.resolve(), node) / "var" / "lib" / "kubelet" / "pods"
    agent = agent_factory(namespace, node, pods_root)
    pvc_uid = sandbox.kubectl_json("get", "pvc", "data", "-n", app_namespace)["metadata"]["uid"]
    eventually(lambda: any(pods_root.glob(f"{writer['metadata']['uid']}/volumes/*/*/mount/sub/hello.txt")))
    create(sandbox, pvb("pvb-writer", namespace, node, writer, "data", **{"pvc-uid": pvc_uid}))
    done = wait_phase(sandbox, "podvolumebackups", "pvb-writer", namespace, ("Completed", "Failed"))
    assert done["status"]["phase"] == "Completed", (done["status"], agent.log_path.read_text()[-3000:])
    source = Path(done["status"]["path"])
    assert (source / "sub" / "hello.txt").read_text() == "hello from the source pod"

    restore = create(sandbox, velero("Restore", "r1", namespace, backupName="b1"))
    restore_uid = restore["metadata"]["uid"]
    create(sandbox, claim("data-restored", app_namespace))
    check = "cat /data/sub/hello.txt > /data/seen-by-app.txt; ls -a /data > /data/listing.txt; sleep 3600"
    create(
        sandbox,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "reader", "namespace": app_namespace},
            "spec": {
                "nodeName": node,
                "initContainers": [
                    {
                        "name": "restore-wait",
                        "image": "quay.io/example/strongroom:latest",
                        "args": ["restore-wait", "--restore-uid", restore_uid, "--interval", "0.2"],
                        "volumeMounts": [{"name": "data", "mountPath": "/restores/data"}],
                    }
                ],
                "containers": [
                    {
                        "name": "app",
                        "image": "busybox",
                        "command": ["sh", "-c", check],
                        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                    }
                ],
                "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data-restored"}}],
            },
        },
    )
    reader = sandbox.kubectl_json("get", "pod", "reader", "-n", app_namespace)
    pvr = velero(
        "PodVolumeRestore",
        "pvr-reader",
        namespace,
        pod={"kind": "Pod", "name": "reader", "namespace": app_namespace, "uid": reader["metadata"]["uid"]},
        volume="data",
        backupStorageLocation="default",
        repoIdentifier="",
        uploaderType="restic",
        snapshotID=done["status"]["snapshotID"],
        sourceNamespace=app_namespace,
    )
    pvr["metadata"]["ownerReferences"] = [
        {
            "apiVersion": "velero.io/v1",
            "kind": "Restore",
            "name": "r1",
            "uid": restore_uid,
            "controller": True,
        }
    ]
    create(sandbox, pvr)
    restored = wait_phase(sandbox, "podvolumerestores", "pvr-reader", namespace, ("Completed", "Failed"))
    assert restored["status"]["phase"] == "Completed", (
        restored["status"],
        agent.log_path.read_text()[-3000:],
    )
    running_pod(sandbox, app_namespace, "reader")
    (target,) = pods_root.glob(f"{reader['metadata']['uid']}/volumes/kubernetes.io~csi/*/mount")
    seen = eventually(
        lambda: (target / "seen-by-app.txt").exists() and (target / "seen-by-app.txt").read_text()
    )
    assert seen == "hello from the source pod"
    # restore-wait removed the done markers before the application started.
    assert ".velero" not in (target / "listing.txt").read_text().split()
    logs = sandbox.kubectl("logs", "-n", app_namespace, "reader", "-c", "restore-wait").stdout
    assert "all pod volume restores are done" in logs
