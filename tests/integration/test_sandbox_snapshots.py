"""CSI volumes and CSI snapshots in the sandbox, as a backup tool sees them.

The hostpath driver's volumes are directories under the sandbox directory
(`volume_dir`), its snapshots copies of them (`snapshot_dir`); the objects are
external-snapshotter's VolumeSnapshotClass, VolumeSnapshot and
VolumeSnapshotContent, with their finalizers, status and events.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from tests.conftest import Sandbox
from tests.integration.sandboxapi import Kube, eventually, gone, unique

from strongroom.sandbox.runtime import HOSTPATH_DRIVER, snapshot_dir, volume_dir

pytestmark = pytest.mark.integration

GROUP = "snapshot.storage.k8s.io"
OTHER_DRIVER = "other.example.com/csi"
GI = 2**30

JsonObject = dict[str, Any]


# ------------------------------------------------------------------ helpers


class Classes:
    """VolumeSnapshotClasses made by one test, deleted after it (they are cluster-scoped)."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self.names: list[str] = []

    def make(self, *, driver: str = HOSTPATH_DRIVER, policy: str = "Delete", default: bool = False) -> str:
        name = unique("vsclass")
        metadata: JsonObject = {"name": name}
        if default:
            metadata["annotations"] = {"snapshot.storage.kubernetes.io/is-default-class": "true"}
        body = {
            "apiVersion": f"{GROUP}/v1",
            "kind": "VolumeSnapshotClass",
            "metadata": metadata,
            "driver": driver,
            "deletionPolicy": policy,
        }
        self.kube.custom.create_cluster_custom_object(GROUP, "v1", "volumesnapshotclasses", body)
        self.names.append(name)
        return name


@pytest.fixture
def classes(kube: Kube) -> Iterator[Classes]:
    made = Classes(kube)
    yield made
    for name in made.names:
        kube.custom.delete_cluster_custom_object(GROUP, "v1", "volumesnapshotclasses", name)


@pytest.fixture
def contents(kube: Kube) -> Iterator[list[str]]:
    """Names of VolumeSnapshotContents a test leaves behind (Retain), deleted after it."""
    names: list[str] = []
    yield names
    for name in names:
        try:
            kube.custom.delete_cluster_custom_object(GROUP, "v1", "volumesnapshotcontents", name)
        except ApiException as exc:
            if exc.status != 404:
                raise


def make_claim(
    kube: Kube,
    namespace: str,
    name: str,
    *,
    size: str = "1Gi",
    source: str | None = None,
    clone: str | None = None,
) -> None:
    spec: JsonObject = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}
    if source:
        spec["dataSource"] = {"apiGroup": GROUP, "kind": "VolumeSnapshot", "name": source}
    if clone:
        spec["dataSource"] = {"kind": "PersistentVolumeClaim", "name": clone}
    kube.core.create_namespaced_persistent_volume_claim(namespace, {"metadata": {"name": name}, "spec": spec})


def bound_claim(kube: Kube, namespace: str, name: str) -> client.V1PersistentVolumeClaim:
    return eventually(
        lambda: (
            (c := kube.core.read_namespaced_persistent_volume_claim(name, namespace)).status.phase == "Bound"
            and c
        )
    )


def data_of(kube: Kube, namespace: str, claim: str) -> Path:
    """The claim's data directory, found as the kubelet finds it: the PV's CSI volume handle."""
    volume = kube.core.read_persistent_volume(bound_claim(kube, namespace, claim).spec.volume_name)
    assert volume.spec.csi.driver == HOSTPATH_DRIVER
    return volume_dir(kube.directory, volume.spec.csi.volume_handle)


def make_snapshot(
    kube: Kube,
    namespace: str,
    name: str,
    *,
    claim: str | None = None,
    klass: str | None = None,
    content: str = "",
) -> JsonObject:
    spec: JsonObject = {
        "source": {"volumeSnapshotContentName": content} if content else {"persistentVolumeClaimName": claim}
    }
    if klass:
        spec["volumeSnapshotClassName"] = klass
    body = {"apiVersion": f"{GROUP}/v1", "kind": "VolumeSnapshot", "metadata": {"name": name}, "spec": spec}
    created: JsonObject = kube.custom.create_namespaced_custom_object(
        GROUP, "v1", namespace, "volumesnapshots", body
    )
    return created


def read_snapshot(kube: Kube, namespace: str, name: str) -> JsonObject:
    found: JsonObject = kube.custom.get_namespaced_custom_object(
        GROUP, "v1", namespace, "volumesnapshots", name
    )
    return found


def read_content(kube: Kube, name: str) -> JsonObject:
    found: JsonObject = kube.custom.get_cluster_custom_object(GROUP, "v1", "volumesnapshotcontents", name)
    return found


def ready_snapshot(kube: Kube, namespace: str, name: str) -> JsonObject:
    return eventually(
        lambda: (s := read_snapshot(kube, namespace, name)).get("status", {}).get("readyToUse") is True and s
    )


def snapshot_error(kube: Kube, namespace: str, name: str) -> str:
    return eventually(
        lambda: str(
            read_snapshot(kube, namespace, name).get("status", {}).get("error", {}).get("message", "")
        )
    )


def reasons(kube: Kube, namespace: str, name: str) -> dict[str, str]:
    """Event reason -> message for the object named `name` in `namespace`."""
    events = kube.core.list_namespaced_event(namespace).items
    return {e.reason: e.message for e in events if e.involved_object.name == name}


def write_tree(root: Path) -> None:
    (root / "a.txt").write_text("first")
    (root / "sub").mkdir()
    secret = root / "sub" / "b.bin"
    secret.write_bytes(b"\x00\x01binary")
    secret.chmod(0o640)
    os.utime(secret, (1_600_000_000, 1_600_000_000))
    (root / "link").symlink_to("a.txt")
    os.mkfifo(root / "pipe", 0o600)


def assert_first_tree(root: Path) -> None:
    assert (root / "a.txt").read_text() == "first"
    secret = root / "sub" / "b.bin"
    assert secret.read_bytes() == b"\x00\x01binary"
    assert secret.stat().st_mode & 0o777 == 0o640
    assert secret.stat().st_mtime == 1_600_000_000
    assert (root / "link").is_symlink()
    assert os.readlink(root / "link") == "a.txt"
    assert stat.S_ISFIFO((root / "pipe").lstat().st_mode)
    assert not (root / "later.txt").exists()


def snapshot_of_claim(kube: Kube, namespace: str, classes: Classes, *, policy: str = "Delete") -> JsonObject:
    """A ready snapshot `snap` of a claim `data` holding the first tree."""
    make_claim(kube, namespace, "data")
    write_tree(data_of(kube, namespace, "data"))
    make_snapshot(kube, namespace, "snap", claim="data", klass=classes.make(policy=policy))
    return ready_snapshot(kube, namespace, "snap")


# ------------------------------------------------------------- CSI volumes


def test_snapshot_crds_are_installed_with_short_names_and_columns(sandbox: Sandbox, namespace: str) -> None:
    names = sandbox.kubectl("get", "crd", "-o", "name").stdout.split()
    for plural in ("volumesnapshotclasses", "volumesnapshots", "volumesnapshotcontents"):
        assert f"customresourcedefinition.apiextensions.k8s.io/{plural}.{GROUP}" in names
    resources = sandbox.kubectl("api-resources", f"--api-group={GROUP}", "--no-headers").stdout
    rows = {line.split()[0]: line.split() for line in resources.splitlines()}
    assert rows["volumesnapshots"][1] == "vs"
    assert rows["volumesnapshotcontents"][1] == "vsc,vscs"
    assert rows["volumesnapshotclasses"][1] == "vsclass,vsclasses"
    assert "No resources found" in sandbox.kubectl("get", "vs", "-n", namespace).stderr
    crd = sandbox.kubectl_json("get", "crd", f"volumesnapshotcontents.{GROUP}")
    version = crd["spec"]["versions"][0]
    assert [c["name"] for c in version["additionalPrinterColumns"]] == [
        "ReadyToUse",
        "RestoreSize",
        "DeletionPolicy",
        "Driver",
        "VolumeSnapshotClass",
        "VolumeSnapshot",
        "VolumeSnapshotNamespace",
        "Age",
    ]
    assert version["subresources"] == {"status": {}}
    assert crd["spec"]["scope"] == "Cluster"


def test_retain_storage_class_keeps_the_volume_data(kube: Kube, namespace: str) -> None:
    storage = client.StorageV1Api(kube.api)
    class_name = unique("retain")
    storage.create_storage_class(
        {"metadata": {"name": class_name}, "provisioner": HOSTPATH_DRIVER, "reclaimPolicy": "Retain"}
    )
    try:
        kube.core.create_namespaced_persistent_volume_claim(
            namespace,
            {
                "metadata": {"name": "kept"},
                "spec": {
                    "storageClassName": class_name,
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "1Gi"}},
                },
            },
        )
        directory = data_of(kube, namespace, "kept")
        (directory / "keep.txt").write_text("kept")
        volume_name = bound_claim(kube, namespace, "kept").spec.volume_name

        kube.core.delete_namespaced_persistent_volume_claim("kept", namespace)

        eventually(lambda: kube.core.read_persistent_volume(volume_name).status.phase == "Released")
        assert (directory / "keep.txt").read_text() == "kept"
    finally:
        storage.delete_storage_class(class_name)
    kube.core.delete_persistent_volume(volume_name)
    eventually(lambda: gone(lambda: kube.core.read_persistent_volume(volume_name)))
    assert directory.is_dir()


# ---------------------------------------------------------- dynamic snapshots


def test_snapshot_is_a_point_in_time_copy_that_a_new_claim_restores(
    kube: Kube, namespace: str, classes: Classes
) -> None:
    snapshot = snapshot_of_claim(kube, namespace, classes)

    uid = snapshot["metadata"]["uid"]
    status = snapshot["status"]
    assert status["boundVolumeSnapshotContentName"] == f"snapcontent-{uid}"
    assert status["restoreSize"] == "1Gi"
    assert status["creationTime"].endswith("Z")
    assert "error" not in status
    assert set(snapshot["metadata"]["finalizers"]) == {
        "snapshot.storage.kubernetes.io/volumesnapshot-as-source-protection",
        "snapshot.storage.kubernetes.io/volumesnapshot-bound-protection",
    }
    content = read_content(kube, f"snapcontent-{uid}")
    volume = kube.core.read_persistent_volume(bound_claim(kube, namespace, "data").spec.volume_name)
    assert content["spec"]["source"] == {"volumeHandle": volume.spec.csi.volume_handle}
    assert content["spec"]["driver"] == HOSTPATH_DRIVER
    assert content["spec"]["deletionPolicy"] == "Delete"
    assert content["spec"]["volumeSnapshotClassName"] == snapshot["spec"]["volumeSnapshotClassName"]
    assert content["spec"]["volumeSnapshotRef"]["uid"] == uid
    assert content["metadata"]["finalizers"] == [
        "snapshot.storage.kubernetes.io/volumesnapshotcontent-bound-protection"
    ]
    assert content["status"]["readyToUse"] is True
    assert content["status"]["restoreSize"] == GI
    assert isinstance(content["status"]["creationTime"], int)
    assert_first_tree(snapshot_dir(kube.directory, content["status"]["snapshotHandle"]))
    assert {"CreatingSnapshot", "SnapshotCreated", "SnapshotReady"} <= set(reasons(kube, namespace, "snap"))
    source = kube.core.read_namespaced_persistent_volume_claim("data", namespace)
    assert "snapshot.storage.kubernetes.io/pvc-as-source-protection" not in source.metadata.finalizers

    original = data_of(kube, namespace, "data")
    (original / "a.txt").write_text("second")
    (original / "later.txt").write_text("after the snapshot")
    make_claim(kube, namespace, "restored", source="snap")

    restored = data_of(kube, namespace, "restored")
    assert restored != original
    assert_first_tree(restored)
    assert (original / "a.txt").read_text() == "second"
    assert "ProvisioningSucceeded" in reasons(kube, namespace, "restored")


def test_snapshot_without_class_gets_the_default_class_of_its_driver(
    kube: Kube, namespace: str, classes: Classes
) -> None:
    classes.make(driver=OTHER_DRIVER, default=True)
    classes.make()
    default = classes.make(default=True)
    make_claim(kube, namespace, "data")
    bound_claim(kube, namespace, "data")

    make_snapshot(kube, namespace, "snap", claim="data")

    snapshot = ready_snapshot(kube, namespace, "snap")
    assert snapshot["spec"]["volumeSnapshotClassName"] == default


def test_snapshot_of_a_missing_claim_fails_until_the_claim_exists(
    kube: Kube, namespace: str, classes: Classes
) -> None:
    make_snapshot(kube, namespace, "snap", claim="late", klass=classes.make())

    message = snapshot_error(kube, namespace, "snap")
    assert "failed to retrieve PVC late" in message
    assert "not found" in message
    assert read_snapshot(kube, namespace, "snap")["status"]["readyToUse"] is False
    assert eventually(lambda: "SnapshotContentCreationFailed" in reasons(kube, namespace, "snap"))

    make_claim(kube, namespace, "late")

    snapshot = ready_snapshot(kube, namespace, "snap")
    assert "error" not in snapshot["status"]


def test_snapshot_with_a_class_of_another_driver_is_refused(
    kube: Kube, namespace: str, classes: Classes
) -> None:
    make_claim(kube, namespace, "data")
    bound_claim(kube, namespace, "data")

    created = make_snapshot(kube, namespace, "snap", claim="data", klass=classes.make(driver=OTHER_DRIVER))

    message = snapshot_error(kube, namespace, "snap")
    assert OTHER_DRIVER in message
    assert HOSTPATH_DRIVER in message
    assert gone(lambda: read_content(kube, f"snapcontent-{created['metadata']['uid']}"))


def test_snapshot_without_any_default_class_reports_it(kube: Kube, namespace: str) -> None:
    make_claim(kube, namespace, "data")
    bound_claim(kube, namespace, "data")

    make_snapshot(kube, namespace, "snap", claim="data")

    assert snapshot_error(kube, namespace, "snap") == (
        "Failed to set default snapshot class with error cannot find default snapshot class"
    )
    assert eventually(lambda: "SetDefaultSnapshotClassFailed" in reasons(kube, namespace, "snap"))


# ------------------------------------------------------------- deletion


def test_deleting_a_snapshot_with_policy_delete_removes_its_content_and_data(
    kube: Kube, namespace: str, classes: Classes
) -> None:
    snapshot = snapshot_of_claim(kube, namespace, classes, policy="Delete")
    content_name = snapshot["status"]["boundVolumeSnapshotContentName"]
    data = snapshot_dir(kube.directory, read_content(kube, content_name)["status"]["snapshotHandle"])
    assert data.is_dir()

    kube.custom.delete_namespaced_custom_object(GROUP, "v1", namespace, "volumesnapshots", "snap")

    eventually(lambda: gone(lambda: read_snapshot(kube, namespace, "snap")))
    eventually(lambda: gone(lambda: read_content(kube, content_name)))
    assert not data.exists()


def test_deleting_a_snapshot_with_policy_retain_keeps_its_content_and_data(
    kube: Kube, namespace: str, classes: Classes, contents: list[str]
) -> None:
    snapshot = snapshot_of_claim(kube, namespace, classes, policy="Retain")
    content_name = snapshot["status"]["boundVolumeSnapshotContentName"]
    contents.append(content_name)
    data = snapshot_dir(kube.directory, read_content(kube, content_name)["status"]["snapshotHandle"])

    kube.custom.delete_namespaced_custom_object(GROUP, "v1", namespace, "volumesnapshots", "snap")

    eventually(lambda: gone(lambda: read_snapshot(kube, namespace, "snap")))
    content = read_content(kube, content_name)
    assert content["spec"]["volumeSnapshotRef"]["uid"] == snapshot["metadata"]["uid"]
    assert "deletionTimestamp" not in content["metadata"]
    assert_first_tree(data)

    # Deleting the retained content itself keeps the data too: its policy is Retain.
    kube.custom.delete_cluster_custom_object(GROUP, "v1", "volumesnapshotcontents", content_name)
    eventually(lambda: gone(lambda: read_content(kube, content_name)))
    assert_first_tree(data)


def test_deleting_a_bound_content_waits_for_its_snapshot(
    kube: Kube, namespace: str, classes: Classes
) -> None:
    snapshot = snapshot_of_claim(kube, namespace, classes, policy="Delete")
    content_name = snapshot["status"]["boundVolumeSnapshotContentName"]
    data = snapshot_dir(kube.directory, read_content(kube, content_name)["status"]["snapshotHandle"])

    kube.custom.delete_cluster_custom_object(GROUP, "v1", "volumesnapshotcontents", content_name)

    assert read_content(kube, content_name)["metadata"]["deletionTimestamp"]
    assert data.is_dir()
    kube.custom.delete_namespaced_custom_object(GROUP, "v1", namespace, "volumesnapshots", "snap")
    eventually(lambda: gone(lambda: read_content(kube, content_name)))
    assert not data.exists()


# ------------------------------------------------------ pre-provisioned


def preprovisioned_content(
    kube: Kube, namespace: str, snapshot: str, handle: str, contents: list[str]
) -> str:
    """A content for an existing snapshot handle, reserved for `snapshot`, as Velero restores one."""
    name = unique("restorecontent")
    body = {
        "apiVersion": f"{GROUP}/v1",
        "kind": "VolumeSnapshotContent",
        "metadata": {"name": name},
        "spec": {
            "deletionPolicy": "Delete",
            "driver": HOSTPATH_DRIVER,
            "source": {"snapshotHandle": handle},
            "volumeSnapshotRef": {"name": snapshot, "namespace": namespace},
        },
    }
    kube.custom.create_cluster_custom_object(GROUP, "v1", "volumesnapshotcontents", body)
    contents.append(name)
    return name


def test_preprovisioned_content_binds_to_its_snapshot_and_restores(
    kube: Kube, namespace: str, classes: Classes, contents: list[str]
) -> None:
    original = snapshot_of_claim(kube, namespace, classes, policy="Retain")
    original_content = original["status"]["boundVolumeSnapshotContentName"]
    contents.append(original_content)
    handle = read_content(kube, original_content)["status"]["snapshotHandle"]
    kube.custom.delete_namespaced_custom_object(GROUP, "v1", namespace, "volumesnapshots", "snap")
    kube.custom.delete_cluster_custom_object(GROUP, "v1", "volumesnapshotcontents", original_content)
    eventually(lambda: gone(lambda: read_content(kube, original_content)))

    name = preprovisioned_content(kube, namespace, "restored", handle, contents)
    make_snapshot(kube, namespace, "restored", content=name)

    snapshot = ready_snapshot(kube, namespace, "restored")
    assert snapshot["status"]["boundVolumeSnapshotContentName"] == name
    assert snapshot["status"]["restoreSize"] == "1Gi"
    content = read_content(kube, name)
    assert content["spec"]["volumeSnapshotRef"]["uid"] == snapshot["metadata"]["uid"]
    assert content["status"]["snapshotHandle"] == handle
    assert content["status"]["restoreSize"] == GI

    make_claim(kube, namespace, "back", source="restored")
    assert_first_tree(data_of(kube, namespace, "back"))

    kube.custom.delete_namespaced_custom_object(GROUP, "v1", namespace, "volumesnapshots", "restored")
    eventually(lambda: gone(lambda: read_content(kube, name)))
    assert not snapshot_dir(kube.directory, handle).exists()


def test_preprovisioned_content_with_an_unknown_handle_reports_it(
    kube: Kube, namespace: str, contents: list[str]
) -> None:
    name = preprovisioned_content(kube, namespace, "restored", "snapshot-does-not-exist", contents)

    make_snapshot(kube, namespace, "restored", content=name)

    message = snapshot_error(kube, namespace, "restored")
    assert "snapshot-does-not-exist does not exist" in message
    content = read_content(kube, name)
    assert content["status"]["readyToUse"] is False
    assert content["status"]["error"]["message"] == message
    assert read_snapshot(kube, namespace, "restored")["status"]["readyToUse"] is False


# --------------------------------------------------------- restore rules


def test_claim_smaller_than_the_restore_size_stays_pending(
    kube: Kube, namespace: str, classes: Classes
) -> None:
    snapshot_of_claim(kube, namespace, classes)

    make_claim(kube, namespace, "small", size="512Mi", source="snap")

    message = eventually(lambda: reasons(kube, namespace, "small").get("ProvisioningFailed"))
    assert (
        f"requested volume size {512 * 2**20} is less than the size {GI} for the source snapshot snap"
        in message
    )
    assert kube.core.read_namespaced_persistent_volume_claim("small", namespace).status.phase == "Pending"


def test_claim_from_a_snapshot_waits_until_the_snapshot_is_ready(
    kube: Kube, namespace: str, classes: Classes
) -> None:
    make_claim(kube, namespace, "data")
    write_tree(data_of(kube, namespace, "data"))
    make_claim(kube, namespace, "restored", source="snap")

    message = eventually(lambda: reasons(kube, namespace, "restored").get("ProvisioningFailed"))
    assert 'volumesnapshots.snapshot.storage.k8s.io "snap" not found' in message
    assert kube.core.read_namespaced_persistent_volume_claim("restored", namespace).status.phase == "Pending"

    make_snapshot(kube, namespace, "snap", claim="data", klass=classes.make())

    assert_first_tree(data_of(kube, namespace, "restored"))


def test_claim_cloned_from_another_claim_copies_its_data(kube: Kube, namespace: str) -> None:
    make_claim(kube, namespace, "data")
    write_tree(data_of(kube, namespace, "data"))

    make_claim(kube, namespace, "copy", clone="data")

    copy = data_of(kube, namespace, "copy")
    assert copy != data_of(kube, namespace, "data")
    assert_first_tree(copy)


def test_preprovisioned_content_cannot_name_a_path_outside_the_snapshots(
    kube: Kube, namespace: str, contents: list[str]
) -> None:
    name = preprovisioned_content(kube, namespace, "restored", "../volumes", contents)

    make_snapshot(kube, namespace, "restored", content=name)

    assert "invalid snapshot handle '../volumes'" in snapshot_error(kube, namespace, "restored")
    assert (kube.directory / "volumes").is_dir()
