"""Preparing backed-up objects for restore, and planning a whole backup in Velero's order."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from tests.unit.restore.builders import configmap, crd, item, namespace, obj, options, pod, pv, pvc

from strongroom.model.selectors import parse_label_selector
from strongroom.restore.actions import ItemRef
from strongroom.restore.plan import (
    Failed,
    PhaseKind,
    Prepared,
    RestoreOptions,
    RestoreState,
    SkipCode,
    Skipped,
    VolumeBackupMethod,
    namespace_object,
    plan_restore,
    prepare_item,
    validate_options,
)

BACKUP_LABEL = "velero.io/backup-name"
RESTORE_LABEL = "velero.io/restore-name"


def _prepared(result: Prepared | Skipped | Failed) -> Prepared:
    assert isinstance(result, Prepared), result
    return result


def _skipped(result: Prepared | Skipped | Failed) -> Skipped:
    assert isinstance(result, Skipped), result
    return result


# --- metadata, labels, status, mapping ------------------------------------------------


def test_server_set_metadata_is_removed_and_the_rest_kept() -> None:
    backed_up = configmap(labels={"app": "shop"}, annotations={"note": "x"})
    backed_up["metadata"].update(
        {
            "generateName": "settings-",
            "deletionTimestamp": "2024-05-01T11:00:00Z",
            "deletionGracePeriodSeconds": 30,
            "ownerReferences": [{"apiVersion": "v1", "kind": "Thing", "name": "o", "uid": "u"}],
            "finalizers": ["example.com/keep"],
            "managedFields": [{"manager": "kubectl", "operation": "Apply"}],
        }
    )
    result = _prepared(prepare_item(backed_up, "configmaps", options()))
    assert result.object["metadata"] == {
        "name": "settings",
        "namespace": "shop",
        "labels": {"app": "shop", BACKUP_LABEL: "nightly", RESTORE_LABEL: "nightly-20240502"},
        "annotations": {"note": "x"},
        "finalizers": ["example.com/keep"],
        "managedFields": [{"manager": "kubectl", "operation": "Apply"}],
    }
    assert result.object["data"] == {"mode": "fast"}


def test_the_backed_up_object_is_not_modified() -> None:
    backed_up = pod(nodeName="node-1")
    before = copy.deepcopy(backed_up)
    prepare_item(backed_up, "pods", options(namespace_mapping={"shop": "shop-copy"}))
    assert backed_up == before


def test_status_is_dropped_by_default() -> None:
    result = _prepared(prepare_item(configmap(status={"ready": True}), "configmaps", options()))
    assert "status" not in result.object
    assert result.restore_status is False


def test_status_is_kept_for_status_restore_resources() -> None:
    backed_up = obj(
        "stable.example.com/v1", "CronTab", "nightly", "shop", spec={}, status={"lastRun": "yesterday"}
    )
    opts = options(restore_status_resources=frozenset({"crontabs.stable.example.com"}))
    result = _prepared(prepare_item(backed_up, "crontabs.stable.example.com", opts))
    assert result.restore_status is True
    assert result.object["status"] == {"lastRun": "yesterday"}
    other = _prepared(prepare_item(configmap(status={"x": 1}), "configmaps", opts))
    assert other.restore_status is False


@pytest.mark.parametrize(
    ("annotation", "included", "expected"),
    [
        ("true", False, True),
        (" TRUE ", False, True),
        ("false", True, False),
        ("maybe", True, True),
        ("maybe", False, False),
    ],
)
def test_object_annotation_overrides_status_restore_of_the_spec(
    annotation: str, included: bool, expected: bool
) -> None:
    backed_up = configmap(annotations={"velero.io/restore-status": annotation}, status={"x": 1})
    opts = options(restore_status_resources=frozenset({"configmaps"}) if included else None)
    assert _prepared(prepare_item(backed_up, "configmaps", opts)).restore_status is expected


def test_status_that_is_not_an_object_fails_a_status_restore() -> None:
    backed_up = configmap(status="broken")
    result = prepare_item(backed_up, "configmaps", options(restore_status_resources=frozenset({"*"})))
    assert isinstance(result, Failed)
    assert result.message == "could not get status to be restored shop/settings: status is not an object"


def test_long_backup_and_restore_names_are_shortened_in_labels() -> None:
    long_name = "this_is_a_very_long_label_value_that_will_be_rejected_by_Kubernetes"
    result = _prepared(
        prepare_item(
            configmap(), "configmaps", options(backup_name=long_name, restore_name="short label value")
        )
    )
    labels = result.object["metadata"]["labels"]
    assert labels[BACKUP_LABEL] == "this_is_a_very_long_label_value_that_will_be_rejected_by_8d0722"
    assert labels[RESTORE_LABEL] == "short label value"


def test_namespace_mapping_moves_items_to_the_new_namespace() -> None:
    result = _prepared(
        prepare_item(configmap(), "configmaps", options(namespace_mapping={"shop": "shop-copy"}))
    )
    assert result.namespace == "shop-copy"
    assert result.object["metadata"]["namespace"] == "shop-copy"
    assert result.source == ItemRef("configmaps", "shop", "settings")


def test_cluster_scoped_items_get_no_namespace() -> None:
    role = obj("rbac.authorization.k8s.io/v1", "ClusterRole", "reader", rules=[])
    result = _prepared(prepare_item(role, "clusterroles.rbac.authorization.k8s.io", options()))
    assert result.namespace is None
    assert "namespace" not in result.object["metadata"]


def test_item_without_metadata_fails() -> None:
    result = prepare_item({"apiVersion": "v1", "kind": "ConfigMap"}, "configmaps", options())
    assert isinstance(result, Failed)
    assert result.message == "metadata not found"


# --- filters ---------------------------------------------------------------------------


def test_non_restorable_resources_are_never_restored() -> None:
    node = obj("v1", "Node", "worker-1", spec={})
    result = _skipped(
        prepare_item(node, "nodes", options(included_resources=("*",), include_cluster_resources=True))
    )
    assert result.code is SkipCode.NON_RESTORABLE
    assert result.reason == "nodes are non-restorable resources"
    event = obj("v1", "Event", "e1", "shop")
    assert _skipped(prepare_item(event, "events", options())).code is SkipCode.NON_RESTORABLE


def test_excluded_resources_are_skipped() -> None:
    assert _skipped(
        prepare_item(configmap(), "configmaps", options(excluded_resources=("configmaps",)))
    ).code is (SkipCode.RESOURCE_EXCLUDED)
    assert _skipped(
        prepare_item(configmap(), "configmaps", options(included_resources=("secrets",)))
    ).code is (SkipCode.RESOURCE_EXCLUDED)
    deployment = obj("apps/v1", "Deployment", "web", "shop", spec={})
    assert isinstance(
        prepare_item(deployment, "deployments.apps", options(included_resources=("deployments",))), Prepared
    )
    assert isinstance(
        prepare_item(deployment, "deployments.apps", options(included_resources=("*.apps",))), Prepared
    )


def test_excluded_namespaces_are_skipped_by_their_backed_up_name() -> None:
    opts = options(excluded_namespaces=("shop",), namespace_mapping={"shop": "elsewhere"})
    assert _skipped(prepare_item(configmap(), "configmaps", opts)).code is SkipCode.NAMESPACE_EXCLUDED
    assert isinstance(
        prepare_item(configmap(namespace="shop-2"), "configmaps", options(included_namespaces=("shop-*",))),
        Prepared,
    )


def test_predicates_from_the_caller_replace_the_glob_lists() -> None:
    opts = options(
        namespace_included=lambda ns: ns.startswith("s"),
        resource_included=lambda gr, namespaced: gr != "secrets",
    )
    assert isinstance(prepare_item(configmap(), "configmaps", opts), Prepared)
    assert (
        _skipped(prepare_item(configmap(namespace="other"), "configmaps", opts)).code
        is SkipCode.NAMESPACE_EXCLUDED
    )
    secret = obj("v1", "Secret", "s", "shop", type="Opaque")
    assert _skipped(prepare_item(secret, "secrets", opts)).code is SkipCode.RESOURCE_EXCLUDED


def test_label_selector_skips_items_it_does_not_select() -> None:
    opts = options(label_selector=parse_label_selector("app=shop").matches)
    assert isinstance(prepare_item(configmap(labels={"app": "shop"}), "configmaps", opts), Prepared)
    assert (
        _skipped(prepare_item(configmap(labels={"app": "blog"}), "configmaps", opts)).code
        is SkipCode.LABELS_NOT_SELECTED
    )


CLUSTER_ROLE = "clusterroles.rbac.authorization.k8s.io"


@pytest.mark.parametrize(
    ("include_cluster_resources", "included_namespaces", "restored"),
    [
        (None, (), True),
        (None, ("*",), True),
        (None, ("shop",), False),
        (True, ("shop",), True),
        (True, (), True),
        (False, (), False),
        (False, ("shop",), False),
    ],
)
def test_cluster_scoped_items_follow_the_include_cluster_resources_rule(
    include_cluster_resources: bool | None, included_namespaces: tuple[str, ...], restored: bool
) -> None:
    role = obj("rbac.authorization.k8s.io/v1", "ClusterRole", "reader", rules=[])
    opts = options(
        include_cluster_resources=include_cluster_resources, included_namespaces=included_namespaces
    )
    result = prepare_item(role, CLUSTER_ROLE, opts)
    if restored:
        assert isinstance(result, Prepared)
    else:
        assert _skipped(result).code is SkipCode.CLUSTER_SCOPED_EXCLUDED


def test_an_excluded_namespace_also_counts_as_not_all_namespaces() -> None:
    role = obj("rbac.authorization.k8s.io/v1", "ClusterRole", "reader", rules=[])
    assert _skipped(prepare_item(role, CLUSTER_ROLE, options(excluded_namespaces=("kube-system",)))).code is (
        SkipCode.CLUSTER_SCOPED_EXCLUDED
    )


def test_items_needed_by_other_items_ignore_selectors_and_the_specific_namespaces_rule() -> None:
    volume = pv()
    opts = options(included_namespaces=("shop",), label_selector=parse_label_selector("app=shop").matches)
    assert _skipped(prepare_item(volume, "persistentvolumes", opts)).code is SkipCode.CLUSTER_SCOPED_EXCLUDED
    assert isinstance(prepare_item(volume, "persistentvolumes", opts, additional=True), Prepared)
    no_cluster = options(included_namespaces=("shop",), include_cluster_resources=False)
    assert _skipped(prepare_item(volume, "persistentvolumes", no_cluster, additional=True)).code is (
        SkipCode.CLUSTER_SCOPED_EXCLUDED
    )
    assert _skipped(
        prepare_item(configmap(), "configmaps", options(excluded_namespaces=("shop",)), additional=True)
    ).code is (SkipCode.NAMESPACE_EXCLUDED)


def test_data_uploads_and_snapshot_contents_are_restored_whatever_the_filters() -> None:
    upload = obj("velero.io/v2alpha1", "DataUpload", "du-1", "velero", spec={})
    opts = options(
        included_namespaces=("shop",),
        included_resources=("configmaps",),
        label_selector=parse_label_selector("app=shop").matches,
    )
    assert isinstance(prepare_item(upload, "datauploads.velero.io", opts), Prepared)
    content = obj("snapshot.storage.k8s.io/v1", "VolumeSnapshotContent", "vsc-1", spec={})
    everything = options(
        included_resources=("configmaps",), label_selector=parse_label_selector("app=shop").matches
    )
    assert isinstance(
        prepare_item(content, "volumesnapshotcontents.snapshot.storage.k8s.io", everything), Prepared
    )


# --- per-item rules of restore.go -------------------------------------------------------


@pytest.mark.parametrize("phase", ["Succeeded", "Failed"])
def test_completed_pods_are_not_restored(phase: str) -> None:
    assert _skipped(prepare_item(pod(phase=phase), "pods", options())).code is SkipCode.COMPLETED


def test_completed_jobs_are_not_restored_but_running_ones_are() -> None:
    done = obj(
        "batch/v1", "Job", "report", "shop", spec={}, status={"completionTime": "2024-05-01T10:00:00Z"}
    )
    assert _skipped(prepare_item(done, "jobs.batch", options())).code is SkipCode.COMPLETED
    running = obj("batch/v1", "Job", "report", "shop", spec={}, status={"active": 1})
    assert isinstance(prepare_item(running, "jobs.batch", options()), Prepared)


def test_running_pod_is_restored_without_node_and_owner() -> None:
    backed_up = pod(nodeName="node-1")
    backed_up["metadata"]["ownerReferences"] = [
        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "uid": "u"}
    ]
    result = _prepared(prepare_item(backed_up, "pods", options()))
    assert "nodeName" not in result.object["spec"]
    assert "ownerReferences" not in result.object["metadata"]
    assert "status" not in result.object


def test_mirror_pods_are_not_restored() -> None:
    static = pod(annotations={"kubernetes.io/config.mirror": "abc"})
    assert _skipped(prepare_item(static, "pods", options())).code is SkipCode.MIRROR_POD


def test_an_item_is_restored_once_per_restore() -> None:
    state = RestoreState()
    assert isinstance(prepare_item(configmap(), "configmaps", options(), state), Prepared)
    assert (
        _skipped(prepare_item(configmap(), "configmaps", options(), state)).code is SkipCode.ALREADY_PROCESSED
    )


def test_namespace_items_are_ensured_with_their_labels_under_the_mapped_name() -> None:
    backed_up = namespace("shop", labels={"team": "a"}, annotations={"owner": "ops"})
    result = _prepared(
        prepare_item(backed_up, "namespaces", options(namespace_mapping={"shop": "shop-copy"}))
    )
    assert result.ensure_only is True
    assert result.object == {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "shop-copy", "labels": {"team": "a"}, "annotations": {"owner": "ops"}},
        "spec": {"finalizers": ["kubernetes"]},
    }


def test_a_namespace_object_without_a_backup_is_bare() -> None:
    assert namespace_object(None, "new") == {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "new"},
    }


def test_an_excluded_namespace_is_not_ensured_even_with_cluster_resources() -> None:
    opts = options(excluded_namespaces=("shop",), include_cluster_resources=True)
    assert _skipped(prepare_item(namespace("shop"), "namespaces", opts)).code is SkipCode.NAMESPACE_EXCLUDED


# --- persistent volumes and claims ------------------------------------------------------


@pytest.mark.parametrize("method", [VolumeBackupMethod.POD_VOLUME_BACKUP, VolumeBackupMethod.CSI_SNAPSHOT])
def test_volume_restored_by_file_system_backup_or_csi_is_reprovisioned(method: VolumeBackupMethod) -> None:
    state = RestoreState(volume_methods={"pv-data": method})
    assert (
        _skipped(prepare_item(pv(), "persistentvolumes", options(), state)).code
        is SkipCode.DYNAMIC_PROVISIONING
    )
    claim = _prepared(prepare_item(pvc(), "persistentvolumeclaims", options(), state))
    assert "volumeName" not in claim.object["spec"]


def test_volume_without_snapshot_and_delete_policy_is_reprovisioned() -> None:
    state = RestoreState()
    result = prepare_item(pv(reclaim="Delete"), "persistentvolumes", options(), state)
    assert _skipped(result).code is SkipCode.DYNAMIC_PROVISIONING
    assert state.pvs_to_provision == {"pv-data"}


def test_retained_volume_without_snapshot_is_restored_as_is_free_to_rebind() -> None:
    backed_up = pv(
        annotations={"pv.kubernetes.io/bound-by-controller": "yes", "pv.kubernetes.io/provisioned-by": "x"}
    )
    opts = options(namespace_mapping={"shop": "shop-copy"})
    result = _prepared(prepare_item(backed_up, "persistentvolumes", opts))
    assert result.object["spec"]["claimRef"] == {
        "kind": "PersistentVolumeClaim",
        "namespace": "shop-copy",
        "name": "data",
    }
    assert result.object["metadata"]["annotations"] == {"pv.kubernetes.io/provisioned-by": "x"}
    assert result.volume is not None
    assert result.volume.from_snapshot is False
    assert result.volume.rename_if_exists is False


def test_snapshot_backed_volume_is_created_from_its_snapshot() -> None:
    state = RestoreState(volume_methods={"pv-data": "NativeSnapshot"})
    result = _prepared(prepare_item(pv(reclaim="Delete"), "persistentvolumes", options(), state))
    assert result.volume is not None
    assert result.volume.from_snapshot is True
    assert result.volume.rename_if_exists is False
    assert "uid" not in result.object["spec"]["claimRef"]


def test_snapshot_backed_volume_is_not_restored_from_snapshot_when_volumes_are_off() -> None:
    state = RestoreState(volume_methods={"pv-data": "NativeSnapshot"})
    result = _prepared(prepare_item(pv(), "persistentvolumes", options(restore_volumes=False), state))
    assert result.volume is not None
    assert result.volume.from_snapshot is False


def test_snapshot_backed_volume_of_a_remapped_claim_is_renamed_if_it_exists() -> None:
    state = RestoreState(volume_methods={"pv-data": "NativeSnapshot"})
    result = _prepared(
        prepare_item(pv(), "persistentvolumes", options(namespace_mapping={"shop": "shop-copy"}), state)
    )
    assert result.volume is not None
    assert result.volume.rename_if_exists is True
    assert result.object["spec"]["claimRef"]["namespace"] == "shop-copy"


def test_claim_loses_binding_and_node_annotations_but_keeps_its_volume() -> None:
    annotations = {
        "pv.kubernetes.io/bind-completed": "yes",
        "pv.kubernetes.io/bound-by-controller": "yes",
        "volume.kubernetes.io/storage-provisioner": "csi",
        "volume.beta.kubernetes.io/storage-provisioner": "csi",
        "volume.kubernetes.io/selected-node": "node-1",
        "velero.io/volume-snapshot-name": "snap",
        "velero.io/data-upload-name": "du",
        "keep": "me",
    }
    result = _prepared(prepare_item(pvc(annotations=annotations), "persistentvolumeclaims", options()))
    assert result.object["metadata"]["annotations"] == {"keep": "me"}
    assert result.object["spec"]["volumeName"] == "pv-data"
    assert result.additional_items == (ItemRef("persistentvolumes", None, "pv-data"),)


def test_unbound_claim_needs_no_volume() -> None:
    result = _prepared(
        prepare_item(pvc(volume_name=None, phase="Pending"), "persistentvolumeclaims", options())
    )
    assert result.additional_items == ()


def test_claim_follows_a_renamed_volume() -> None:
    state = RestoreState()
    state.renamed_pvs["pv-data"] = "velero-clone-1"
    result = _prepared(prepare_item(pvc(), "persistentvolumeclaims", options(), state))
    assert result.object["spec"]["volumeName"] == "velero-clone-1"


def test_claim_volume_decision_waits_for_its_volume_reported_as_additional_item() -> None:
    state = RestoreState(volume_methods={"pv-data": "PodVolumeBackup"})
    index = {ItemRef("persistentvolumes", None, "pv-data"): pv()}
    seen: list[ItemRef] = []

    def restore_dependency(ref: ItemRef) -> None:
        seen.append(ref)
        prepare_item(index[ref], ref.group_resource, options(), state, additional=True)

    claim = _prepared(
        prepare_item(pvc(), "persistentvolumeclaims", options(), state, on_additional=restore_dependency)
    )
    assert seen == [ItemRef("persistentvolumes", None, "pv-data")]
    assert "volumeName" not in claim.object["spec"]


# --- validation ---------------------------------------------------------------------------


def test_validation_reports_velero_messages() -> None:
    opts = options(
        included_resources=("nodes", "*"),
        excluded_resources=("nodes",),
        excluded_namespaces=("*",),
        existing_resource_policy="replace",
    )
    assert validate_options(opts) == [
        "nodes are non-restorable resources",
        "Invalid included/excluded resource lists: includes list must either contain '*' only, or a non-empty list of items",
        "Invalid included/excluded resource lists: excludes list cannot contain an item in the includes list: nodes",
        "Invalid included/excluded namespace lists: excludes list cannot contain '*'",
        "Invalid ExistingResourcePolicy: replace",
    ]
    assert validate_options(options(existing_resource_policy="update", included_namespaces=("shop",))) == []


# --- planning a backup -----------------------------------------------------------------


def _phase_summary(plan: Any) -> list[tuple[str, str | None, list[str]]]:
    summary = []
    for phase in plan.phases:
        names = (
            list(phase.crd_names) if phase.kind is PhaseKind.WAIT_FOR_CRDS else [i.name for i in phase.items]
        )
        summary.append((phase.kind.value, phase.group_resource, names))
    return summary


def test_plan_creates_crds_then_waits_then_namespaces_then_resources_in_priority_order() -> None:
    items = [
        item("configmaps", configmap()),
        item(
            "crontabs.stable.example.com", obj("stable.example.com/v1", "CronTab", "nightly", "shop", spec={})
        ),
        item("deployments.apps", obj("apps/v1", "Deployment", "web", "shop", spec={})),
        item("customresourcedefinitions.apiextensions.k8s.io", crd()),
        item("namespaces", namespace("shop", labels={"team": "a"})),
        item("services", obj("v1", "Service", "web", "shop", spec={"clusterIP": "10.0.0.1"})),
        item("secrets", obj("v1", "Secret", "creds", "shop", type="Opaque")),
    ]
    plan = plan_restore(items, options())
    assert _phase_summary(plan) == [
        ("create", "customresourcedefinitions.apiextensions.k8s.io", ["crontabs.stable.example.com"]),
        ("wait-for-crds", "customresourcedefinitions.apiextensions.k8s.io", ["crontabs.stable.example.com"]),
        ("ensure-namespaces", "namespaces", ["shop"]),
        ("create", "secrets", ["creds"]),
        ("create", "configmaps", ["settings"]),
        ("create", "services", ["web"]),
        ("create", "crontabs.stable.example.com", ["nightly"]),
        ("create", "deployments.apps", ["web"]),
    ]
    ensured = plan.phases[2].items[0]
    assert ensured.object["metadata"]["labels"] == {"team": "a"}
    assert plan.skipped == ()
    assert plan.failed == ()


def test_plan_with_custom_priorities_still_starts_with_crds() -> None:
    from strongroom.restore.priorities import parse_priorities

    items = [item("configmaps", configmap()), item("customresourcedefinitions.apiextensions.k8s.io", crd())]
    plan = plan_restore(items, options(), priorities=parse_priorities("configmaps"))
    assert [phase.kind for phase in plan.phases[:2]] == [PhaseKind.CREATE, PhaseKind.WAIT_FOR_CRDS]
    assert plan.phases[0].group_resource == "customresourcedefinitions.apiextensions.k8s.io"


def test_plan_ensures_mapped_namespaces_from_the_backed_up_namespace() -> None:
    items = [item("configmaps", configmap()), item("namespaces", namespace("shop", labels={"team": "a"}))]
    plan = plan_restore(
        items, options(namespace_mapping={"shop": "shop-copy"}, included_namespaces=("shop",))
    )
    ensure = plan.phases[0]
    assert ensure.kind is PhaseKind.ENSURE_NAMESPACES
    assert [(p.name, p.object["metadata"].get("labels")) for p in ensure.items] == [
        ("shop-copy", {"team": "a"})
    ]
    # The Namespace item itself was cluster-scoped and out of the "specific namespaces" rule, yet it is
    # created because items go into it, so it is not reported as skipped.
    assert plan.skipped == ()


def test_plan_ensures_a_bare_namespace_when_the_backup_has_none() -> None:
    plan = plan_restore([item("configmaps", configmap(namespace="orphan"))], options())
    assert plan.phases[0].items[0].object == {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "orphan"},
    }


def test_namespace_scoped_restore_brings_the_volumes_of_its_claims() -> None:
    items = [
        item("persistentvolumes", pv()),
        item("persistentvolumes", pv("pv-other", claim_namespace="blog")),
        item("persistentvolumeclaims", pvc()),
        item("pods", pod(volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}])),
    ]
    plan = plan_restore(items, options(included_namespaces=("shop",)))
    assert _phase_summary(plan) == [
        ("ensure-namespaces", "namespaces", ["shop"]),
        ("create", "persistentvolumes", ["pv-data"]),
        ("create", "persistentvolumeclaims", ["data"]),
        ("create", "pods", ["web-0"]),
    ]
    assert [s.source for s in plan.skipped] == [ItemRef("persistentvolumes", None, "pv-other")]


def test_namespace_scoped_restore_of_file_system_backup_leaves_claims_to_provisioning() -> None:
    items = [item("persistentvolumes", pv()), item("persistentvolumeclaims", pvc())]
    state = RestoreState(volume_methods={"pv-data": "PodVolumeBackup"})
    plan = plan_restore(items, options(included_namespaces=("shop",)), state=state)
    claims = [p for p in plan.prepared() if p.group_resource == "persistentvolumeclaims"]
    assert len(claims) == 1
    assert "volumeName" not in claims[0].object["spec"]
    assert all(p.group_resource != "persistentvolumes" for p in plan.prepared())


def test_pod_selected_by_labels_brings_its_unlabelled_claim_first() -> None:
    items = [
        item("persistentvolumeclaims", pvc(volume_name=None, phase="Pending")),
        item(
            "pods",
            pod(
                labels={"app": "shop"},
                volumes=[{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}],
            ),
        ),
    ]
    plan = plan_restore(items, options(label_selector=parse_label_selector("app=shop").matches))
    assert _phase_summary(plan) == [
        ("ensure-namespaces", "namespaces", ["shop"]),
        ("create", "persistentvolumeclaims", ["data"]),
        ("create", "pods", ["web-0"]),
    ]
    assert plan.skipped == ()


def test_a_missing_dependency_is_a_warning() -> None:
    items = [item("pods", pod(volumes=[{"name": "d", "persistentVolumeClaim": {"claimName": "gone"}}]))]
    plan = plan_restore(items, options())
    assert [(w.namespace, w.message) for w in plan.warnings] == [
        ("shop", "unable to restore additional item persistentvolumeclaims/shop/gone: not in the backup")
    ]
    assert [p.name for p in plan.prepared() if p.group_resource == "pods"] == ["web-0"]


def test_plan_uses_only_the_classic_copy_of_each_item() -> None:
    preferred = configmap()
    preferred["data"] = {"mode": "preferred-copy"}
    items = [item("configmaps", preferred, version="v1"), item("configmaps", configmap())]
    prepared = [p for p in plan_restore(items, options()).prepared() if p.group_resource == "configmaps"]
    assert [p.object["data"] for p in prepared] == [{"mode": "fast"}]


def test_plan_reports_skipped_and_failed_items() -> None:
    items = [
        item("configmaps", configmap()),
        item("events", obj("v1", "Event", "e1", "shop")),
        item("pods", pod("done", phase="Succeeded")),
        item(
            "secrets",
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "shop"}, "type": 3},
        ),
        item(
            "services",
            obj(
                "v1",
                "Service",
                "bad",
                "shop",
                annotations={"kubectl.kubernetes.io/last-applied-configuration": "{"},
                spec={},
            ),
        ),
    ]
    plan = plan_restore(items, options())
    assert sorted((s.source.group_resource, s.code.value) for s in plan.skipped) == [
        ("events", "non-restorable"),
        ("pods", "completed"),
    ]
    assert [(f.source, f.namespace) for f in plan.failed] == [(ItemRef("services", "shop", "bad"), "shop")]


# --- the shared filters ------------------------------------------------------------------


def _catalog() -> Any:
    from strongroom.model.filters import ResourceCatalog
    from strongroom.model.resources import ApiResource

    verbs = frozenset({"list", "get", "create", "delete"})
    return ResourceCatalog(
        [
            ApiResource(
                "",
                "v1",
                "configmaps",
                "ConfigMap",
                True,
                singular="configmap",
                short_names=("cm",),
                verbs=verbs,
            ),
            ApiResource("", "v1", "secrets", "Secret", True, singular="secret", verbs=verbs),
            ApiResource("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False, verbs=verbs),
        ]
    )


def test_options_from_the_shared_restore_filter_decide_like_it() -> None:
    from strongroom.model.filters import LabelFilter, restore_filter
    from strongroom.model.velero import RestoreSpec, RestoreStatusSpec

    spec = RestoreSpec(
        backup_name="nightly",
        included_namespaces=["sh*"],
        included_resources=["cm", "clusterroles"],
        restore_status=RestoreStatusSpec(included_resources=["cm"]),
    )
    shared = restore_filter(spec, _catalog(), backup_namespaces=["shop", "blog"])
    opts = RestoreOptions.from_filter(
        backup_name="nightly",
        restore_name="r1",
        restore_filter=shared,
        labels=LabelFilter(parse_label_selector("app=shop")),
        namespace_mapping={"shop": "shop-copy"},
    )
    selected = _prepared(prepare_item(configmap(labels={"app": "shop"}, status={"x": 1}), "configmaps", opts))
    assert selected.namespace == "shop-copy"
    assert selected.restore_status is True
    assert _skipped(
        prepare_item(configmap(namespace="blog", labels={"app": "shop"}), "configmaps", opts)
    ).code is (SkipCode.NAMESPACE_EXCLUDED)
    secret = obj("v1", "Secret", "s", "shop", labels={"app": "shop"}, type="Opaque")
    assert _skipped(prepare_item(secret, "secrets", opts)).code is SkipCode.RESOURCE_EXCLUDED
    role = obj("rbac.authorization.k8s.io/v1", "ClusterRole", "reader", labels={"app": "shop"}, rules=[])
    assert _skipped(prepare_item(role, CLUSTER_ROLE, opts)).code is SkipCode.CLUSTER_SCOPED_EXCLUDED
    assert _skipped(prepare_item(configmap(labels={"app": "blog"}), "configmaps", opts)).code is (
        SkipCode.LABELS_NOT_SELECTED
    )


def test_namespace_lists_use_velero_glob_syntax() -> None:
    opts = options(included_namespaces=("{shop,blog}-prod",))
    assert isinstance(prepare_item(configmap(namespace="shop-prod"), "configmaps", opts), Prepared)
    assert (
        _skipped(prepare_item(configmap(namespace="shop-dev"), "configmaps", opts)).code
        is SkipCode.NAMESPACE_EXCLUDED
    )
