"""What the sandbox's controllers do, as a client sees it: nodes, garbage collection, namespaces, volumes."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client
from tests.integration.sandboxapi import Kube, configmap, eventually, gone, unique

from strongroom.sandbox.runtime import HOSTPATH_DRIVER, volume_dir

pytestmark = pytest.mark.integration


def owned_by(owner: client.V1ConfigMap, *, block: bool = False) -> list[dict[str, Any]]:
    ref: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": owner.metadata.name,
        "uid": owner.metadata.uid,
    }
    if block:
        ref["blockOwnerDeletion"] = True
    return [ref]


# --------------------------------------------------------------------- nodes


def test_sandbox_started_with_two_nodes_has_two_ready_nodes(kube: Kube) -> None:
    nodes = kube.core.list_node().items

    assert len(nodes) == 2
    for node in nodes:
        ready = [c for c in node.status.conditions if c.type == "Ready"]
        assert [c.status for c in ready] == ["True"]
        assert node.metadata.labels["kubernetes.io/hostname"] == node.metadata.name
        assert node.status.allocatable["cpu"]


# --------------------------------------------------------- garbage collection


def test_background_deletion_removes_dependents(kube: Kube, namespace: str) -> None:
    owner = kube.core.create_namespaced_config_map(namespace, configmap("owner"))
    for i in range(3):
        kube.core.create_namespaced_config_map(
            namespace, configmap(f"dep-{i}", ownerReferences=owned_by(owner), labels={"dep": "y"})
        )
    kube.core.create_namespaced_config_map(namespace, configmap("bystander", labels={"dep": "y"}))

    kube.core.delete_namespaced_config_map("owner", namespace, propagation_policy="Background")

    assert gone(lambda: kube.core.read_namespaced_config_map("owner", namespace))
    eventually(
        lambda: (
            [
                i.metadata.name
                for i in kube.core.list_namespaced_config_map(namespace, label_selector="dep").items
            ]
            == ["bystander"]
        )
    )


def test_default_deletion_of_a_configmap_owner_collects_dependents_in_background(
    kube: Kube, namespace: str
) -> None:
    owner = kube.core.create_namespaced_config_map(namespace, configmap("owner"))
    kube.core.create_namespaced_config_map(namespace, configmap("dep", ownerReferences=owned_by(owner)))

    kube.core.delete_namespaced_config_map("owner", namespace)

    eventually(lambda: gone(lambda: kube.core.read_namespaced_config_map("dep", namespace)))


def test_dependent_created_for_an_absent_owner_is_collected(kube: Kube, namespace: str) -> None:
    ghost = client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="ghost", uid="00000000-0000-0000-0000-0000000000aa")
    )
    kube.core.create_namespaced_config_map(namespace, configmap("orphaned", ownerReferences=owned_by(ghost)))

    eventually(lambda: gone(lambda: kube.core.read_namespaced_config_map("orphaned", namespace)))


def test_foreground_deletion_keeps_owner_until_dependents_are_gone(kube: Kube, namespace: str) -> None:
    owner = kube.core.create_namespaced_config_map(namespace, configmap("owner"))
    kube.core.create_namespaced_config_map(
        namespace, configmap("quick", ownerReferences=owned_by(owner, block=True))
    )
    kube.core.create_namespaced_config_map(
        namespace,
        configmap("held", ownerReferences=owned_by(owner, block=True), finalizers=["example.com/hold"]),
    )

    answer = kube.request(
        "DELETE",
        f"/api/v1/namespaces/{namespace}/configmaps/owner",
        {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Foreground"},
    )
    assert answer.status == 200
    assert answer.body["metadata"]["deletionTimestamp"]
    assert answer.body["metadata"]["finalizers"] == ["foregroundDeletion"]

    eventually(lambda: gone(lambda: kube.core.read_namespaced_config_map("quick", namespace)))
    held = eventually(
        lambda: (
            (c := kube.core.read_namespaced_config_map("held", namespace)).metadata.deletion_timestamp and c
        )
    )
    # A dependent without dependents of its own is deleted in the background.
    assert held.metadata.finalizers == ["example.com/hold"]
    waiting = kube.core.read_namespaced_config_map("owner", namespace)
    assert waiting.metadata.deletion_timestamp is not None
    assert waiting.metadata.finalizers == ["foregroundDeletion"]

    kube.request(
        "PATCH",
        f"/api/v1/namespaces/{namespace}/configmaps/held",
        {"metadata": {"finalizers": None}},
        content_type="application/merge-patch+json",
    )

    eventually(lambda: gone(lambda: kube.core.read_namespaced_config_map("held", namespace)))
    eventually(lambda: gone(lambda: kube.core.read_namespaced_config_map("owner", namespace)))


def test_foreground_deletion_does_not_wait_for_non_blocking_dependents(kube: Kube, namespace: str) -> None:
    owner = kube.core.create_namespaced_config_map(namespace, configmap("owner"))
    kube.core.create_namespaced_config_map(
        namespace, configmap("held", ownerReferences=owned_by(owner), finalizers=["example.com/hold"])
    )

    kube.core.delete_namespaced_config_map("owner", namespace, propagation_policy="Foreground")

    eventually(lambda: gone(lambda: kube.core.read_namespaced_config_map("owner", namespace)))
    held = kube.core.read_namespaced_config_map("held", namespace)
    assert held.metadata.deletion_timestamp is not None
    kube.core.patch_namespaced_config_map("held", namespace, {"metadata": {"finalizers": None}})
    eventually(lambda: gone(lambda: kube.core.read_namespaced_config_map("held", namespace)))


def test_delete_with_orphan_dependents_false_that_does_not_remove_the_object_is_accepted(
    kube: Kube, namespace: str
) -> None:
    kube.core.create_namespaced_config_map(namespace, configmap("held", finalizers=["example.com/hold"]))

    answer = kube.request(
        "DELETE",
        f"/api/v1/namespaces/{namespace}/configmaps/held",
        {"kind": "DeleteOptions", "apiVersion": "v1", "orphanDependents": False},
    )

    try:
        assert answer.status == 202
    finally:
        kube.core.patch_namespaced_config_map("held", namespace, {"metadata": {"finalizers": None}})


def test_orphan_deletion_keeps_dependents_and_drops_their_owner_reference(kube: Kube, namespace: str) -> None:
    owner = kube.core.create_namespaced_config_map(namespace, configmap("owner"))
    other = kube.core.create_namespaced_config_map(namespace, configmap("other-owner"))
    kube.core.create_namespaced_config_map(namespace, configmap("solo", ownerReferences=owned_by(owner)))
    kube.core.create_namespaced_config_map(
        namespace, configmap("shared", ownerReferences=owned_by(owner) + owned_by(other))
    )

    kube.core.delete_namespaced_config_map("owner", namespace, propagation_policy="Orphan")

    eventually(lambda: gone(lambda: kube.core.read_namespaced_config_map("owner", namespace)))
    solo = kube.core.read_namespaced_config_map("solo", namespace)
    shared = kube.core.read_namespaced_config_map("shared", namespace)
    assert not solo.metadata.owner_references
    assert [ref.uid for ref in shared.metadata.owner_references] == [other.metadata.uid]
    assert solo.metadata.deletion_timestamp is None


# ---------------------------------------------------------------- namespaces


def test_namespace_deletion_terminates_deletes_contents_and_disappears(kube: Kube) -> None:
    name = unique("doomed")
    kube.core.create_namespace({"metadata": {"name": name}})
    for i in range(3):
        kube.core.create_namespaced_config_map(name, configmap(f"cm-{i}"))
    kube.core.create_namespaced_secret(name, {"metadata": {"name": "s"}, "stringData": {"k": "v"}})

    answer = kube.request("DELETE", f"/api/v1/namespaces/{name}")

    assert answer.status == 200
    assert answer.body["kind"] == "Namespace"
    assert answer.body["status"]["phase"] == "Terminating"
    assert answer.body["metadata"]["deletionTimestamp"]
    eventually(lambda: gone(lambda: kube.core.read_namespace(name)))
    assert kube.core.list_namespaced_config_map(name).items == []
    assert kube.core.list_namespaced_secret(name).items == []


def test_terminating_namespace_waits_for_finalized_contents(kube: Kube) -> None:
    name = unique("slow")
    kube.core.create_namespace({"metadata": {"name": name}})
    kube.core.create_namespaced_config_map(name, configmap("held", finalizers=["example.com/hold"]))

    kube.core.delete_namespace(name)

    eventually(lambda: kube.core.read_namespaced_config_map("held", name).metadata.deletion_timestamp)
    terminating = kube.core.read_namespace(name)
    assert terminating.status.phase == "Terminating"
    assert terminating.spec.finalizers == ["kubernetes"]
    kube.core.patch_namespaced_config_map("held", name, {"metadata": {"finalizers": None}})
    eventually(lambda: gone(lambda: kube.core.read_namespace(name)))


# ------------------------------------------------------------------ volumes


def test_static_volume_binds_to_matching_claim_without_class(kube: Kube, namespace: str) -> None:
    pv_name = unique("static")
    kube.core.create_persistent_volume(
        {
            "metadata": {"name": pv_name, "labels": {"volume": pv_name}},
            "spec": {
                "capacity": {"storage": "2Gi"},
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": "",
                "persistentVolumeReclaimPolicy": "Retain",
                "hostPath": {"path": str(kube.directory / pv_name)},
            },
        }
    )
    try:
        kube.core.create_namespaced_persistent_volume_claim(
            namespace,
            {
                "metadata": {"name": "data"},
                "spec": {
                    "storageClassName": "",
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "1Gi"}},
                    "selector": {"matchLabels": {"volume": pv_name}},
                },
            },
        )

        claim = eventually(
            lambda: (
                (c := kube.core.read_namespaced_persistent_volume_claim("data", namespace)).status.phase
                == "Bound"
                and c
            )
        )
        assert claim.spec.volume_name == pv_name
        assert claim.spec.storage_class_name == ""
        assert claim.status.capacity == {"storage": "2Gi"}
        volume = eventually(
            lambda: (v := kube.core.read_persistent_volume(pv_name)).status.phase == "Bound" and v
        )
        assert volume.spec.claim_ref.name == "data"
        assert volume.spec.claim_ref.namespace == namespace
        assert volume.spec.claim_ref.uid == claim.metadata.uid

        kube.core.delete_namespaced_persistent_volume_claim("data", namespace)

        # A Retain volume outlives its claim, Released and still pointing at it.
        released = eventually(
            lambda: (v := kube.core.read_persistent_volume(pv_name)).status.phase == "Released" and v
        )
        assert released.spec.claim_ref.uid == claim.metadata.uid
        assert gone(lambda: kube.core.read_namespaced_persistent_volume_claim("data", namespace))
    finally:
        kube.core.delete_persistent_volume(pv_name)


def test_claim_without_class_gets_default_class_and_a_provisioned_volume(kube: Kube, namespace: str) -> None:
    classes = client.StorageV1Api(kube.api).list_storage_class().items
    default = [
        sc.metadata.name
        for sc in classes
        if (sc.metadata.annotations or {}).get("storageclass.kubernetes.io/is-default-class") == "true"
    ]
    assert len(default) == 1

    created = kube.core.create_namespaced_persistent_volume_claim(
        namespace,
        {
            "metadata": {"name": "data"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
        },
    )
    assert created.spec.storage_class_name == default[0]

    claim = eventually(
        lambda: (
            (c := kube.core.read_namespaced_persistent_volume_claim("data", namespace)).status.phase
            == "Bound"
            and c
        )
    )
    volume = kube.core.read_persistent_volume(claim.spec.volume_name)
    assert volume.spec.storage_class_name == default[0]
    assert volume.spec.claim_ref.uid == claim.metadata.uid
    assert volume.spec.persistent_volume_reclaim_policy == "Delete"
    # A CSI volume of the hostpath driver, as external-provisioner writes it.
    assert volume.metadata.annotations["pv.kubernetes.io/provisioned-by"] == HOSTPATH_DRIVER
    assert volume.spec.host_path is None
    assert volume.spec.csi.driver == HOSTPATH_DRIVER
    assert volume.spec.csi.volume_handle == volume.metadata.name == f"pvc-{claim.metadata.uid}"
    assert volume.spec.csi.fs_type == "ext4"
    identity = volume.spec.csi.volume_attributes["storage.kubernetes.io/csiProvisionerIdentity"]
    assert identity.endswith(f"-{HOSTPATH_DRIVER}")
    directory = volume_dir(kube.directory, volume.spec.csi.volume_handle)
    assert directory.is_dir()

    kube.core.delete_namespaced_persistent_volume_claim("data", namespace)

    eventually(lambda: gone(lambda: kube.core.read_namespaced_persistent_volume_claim("data", namespace)))
    eventually(lambda: gone(lambda: kube.core.read_persistent_volume(volume.metadata.name)))
    assert not directory.exists()


def test_claim_in_use_by_a_pod_is_kept_until_the_pod_is_gone(kube: Kube, namespace: str) -> None:
    kube.core.create_namespaced_persistent_volume_claim(
        namespace,
        {
            "metadata": {"name": "data"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
        },
    )
    eventually(
        lambda: kube.core.read_namespaced_persistent_volume_claim("data", namespace).status.phase == "Bound"
    )
    kube.core.create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": "user"},
            "spec": {
                "containers": [{"name": "app", "image": "busybox:1.36"}],
                "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
            },
        },
    )

    kube.core.delete_namespaced_persistent_volume_claim("data", namespace)

    claim = kube.core.read_namespaced_persistent_volume_claim("data", namespace)
    assert claim.metadata.deletion_timestamp is not None
    assert claim.metadata.finalizers == ["kubernetes.io/pvc-protection"]
    kube.core.delete_namespaced_pod("user", namespace)
    eventually(lambda: gone(lambda: kube.core.read_namespaced_persistent_volume_claim("data", namespace)))
    eventually(lambda: gone(lambda: kube.core.read_persistent_volume(claim.spec.volume_name)))


def test_claim_with_unknown_class_stays_pending(kube: Kube, namespace: str) -> None:
    kube.core.create_namespaced_persistent_volume_claim(
        namespace,
        {
            "metadata": {"name": "data"},
            "spec": {
                "storageClassName": "no-such-class",
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}},
            },
        },
    )

    # Once the controller has seen the claim (it adds its protection finalizer), nothing binds it.
    eventually(
        lambda: (
            "kubernetes.io/pvc-protection"
            in (
                kube.core.read_namespaced_persistent_volume_claim("data", namespace).metadata.finalizers or []
            )
        )
    )
    claim = kube.core.read_namespaced_persistent_volume_claim("data", namespace)
    assert claim.status.phase == "Pending"
    assert not claim.spec.volume_name
