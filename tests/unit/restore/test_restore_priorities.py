"""Velero's restore order, the priority flag, and the resources a restore never creates."""

from __future__ import annotations

import pytest

from strongroom.errors import UsageError
from strongroom.model.resources import ApiResource
from strongroom.restore.priorities import (
    DEFAULT_RESTORE_PRIORITIES,
    NEVER_RESTORE,
    Priorities,
    non_restorable_errors,
    order_resources,
    parse_priorities,
    resolver_from_api_resources,
)


def test_default_priorities_are_velero_server_defaults() -> None:
    assert DEFAULT_RESTORE_PRIORITIES.high == (
        "customresourcedefinitions",
        "namespaces",
        "storageclasses",
        "volumesnapshotclass.snapshot.storage.k8s.io",
        "volumesnapshotcontents.snapshot.storage.k8s.io",
        "volumesnapshots.snapshot.storage.k8s.io",
        "datauploads.velero.io",
        "persistentvolumes",
        "persistentvolumeclaims",
        "clusterroles",
        "roles",
        "serviceaccounts",
        "clusterrolebindings",
        "rolebindings",
        "secrets",
        "configmaps",
        "limitranges",
        "priorityclasses",
        "pods",
        "replicasets.apps",
        "clusterclasses.cluster.x-k8s.io",
        "endpoints",
        "services",
    )
    assert DEFAULT_RESTORE_PRIORITIES.low == (
        "clusterbootstraps.run.tanzu.vmware.com",
        "clusters.cluster.x-k8s.io",
        "clusterresourcesets.addons.cluster.x-k8s.io",
        "apps.kappctrl.k14s.io",
        "packageinstalls.packaging.carvel.dev",
    )


def test_resources_without_priority_are_restored_alphabetically() -> None:
    backup = ["backup-resource-3", "backup-resource-2", "backup-resource-1"]
    assert order_resources(backup, Priorities()) == [
        "backup-resource-1",
        "backup-resource-2",
        "backup-resource-3",
    ]


def test_high_priorities_come_first_in_list_order_and_low_priorities_last() -> None:
    priorities = Priorities(high=("prio-3", "prio-2", "prio-1"), low=("prio-0",))
    backup = ["prio-0", "backup-resource-3", "prio-1", "backup-resource-2", "prio-3", "backup-resource-1"]
    assert order_resources(backup, priorities) == [
        "prio-3",
        "prio-1",
        "backup-resource-1",
        "backup-resource-2",
        "backup-resource-3",
        "prio-0",
    ]


def test_priorities_absent_from_the_backup_are_ignored_and_each_resource_appears_once() -> None:
    priorities = Priorities(high=("pods", "missing", "pods"), low=("pods", "late"))
    assert order_resources(["configmaps", "pods", "pods"], priorities) == ["pods", "configmaps"]


def test_default_order_for_a_typical_backup() -> None:
    backup = [
        "deployments.apps",
        "services",
        "endpoints",
        "pods",
        "replicasets.apps",
        "configmaps",
        "secrets",
        "serviceaccounts",
        "persistentvolumeclaims",
        "persistentvolumes",
        "namespaces",
        "customresourcedefinitions.apiextensions.k8s.io",
        "crontabs.stable.example.com",
        "storageclasses.storage.k8s.io",
        "rolebindings.rbac.authorization.k8s.io",
        "priorityclasses.scheduling.k8s.io",
        "volumesnapshotclasses.snapshot.storage.k8s.io",
        "clusters.cluster.x-k8s.io",
        "endpointslices.discovery.k8s.io",
    ]
    assert order_resources(backup) == [
        "customresourcedefinitions.apiextensions.k8s.io",
        "namespaces",
        "storageclasses.storage.k8s.io",
        "volumesnapshotclasses.snapshot.storage.k8s.io",
        "persistentvolumes",
        "persistentvolumeclaims",
        "serviceaccounts",
        "rolebindings.rbac.authorization.k8s.io",
        "secrets",
        "configmaps",
        "priorityclasses.scheduling.k8s.io",
        "pods",
        "replicasets.apps",
        "endpoints",
        "services",
        "crontabs.stable.example.com",
        "deployments.apps",
        "endpointslices.discovery.k8s.io",
        "clusters.cluster.x-k8s.io",
    ]


def test_unqualified_priority_prefers_the_core_group() -> None:
    priorities = Priorities(high=("events2", "pods"))
    assert order_resources(["pods.metrics.k8s.io", "pods", "a"], priorities) == [
        "pods",
        "a",
        "pods.metrics.k8s.io",
    ]


def test_unqualified_priority_matches_a_resource_of_another_group() -> None:
    assert order_resources(["a.example.com", "widgets.example.com"], Priorities(high=("widget",))) == [
        "widgets.example.com",
        "a.example.com",
    ]


def test_a_resolver_from_discovery_knows_singular_and_short_names() -> None:
    discovered = [
        ApiResource("", "v1", "pods", "Pod", True, singular="pod", short_names=("po",)),
        ApiResource(
            "apps", "v1", "deployments", "Deployment", True, singular="deployment", short_names=("deploy",)
        ),
        ApiResource(
            "snapshot.storage.k8s.io",
            "v1",
            "volumesnapshotclasses",
            "VolumeSnapshotClass",
            False,
            singular="volumesnapshotclass",
        ),
    ]
    resolve = resolver_from_api_resources(discovered)
    assert resolve("po") == "pods"
    assert resolve("deploy") == "deployments.apps"
    assert (
        resolve("volumesnapshotclass.snapshot.storage.k8s.io")
        == "volumesnapshotclasses.snapshot.storage.k8s.io"
    )
    assert resolve("deployment.batch") is None
    order = order_resources(
        ["deployments.apps", "pods", "volumesnapshotclasses.snapshot.storage.k8s.io"],
        Priorities(high=("deploy", "po")),
        resolve=resolve,
    )
    assert order == ["deployments.apps", "pods", "volumesnapshotclasses.snapshot.storage.k8s.io"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", Priorities()),
        ("p0", Priorities(high=("p0",))),
        ("-,p9", Priorities(low=("p9",))),
        ("-", Priorities()),
        ("p0,p1,p2,-,p9", Priorities(high=("p0", "p1", "p2"), low=("p9",))),
        ("p0,-", Priorities(high=("p0",))),
        (" pods , secrets ,, - , nodes ", Priorities(high=("pods", "secrets"), low=("nodes",))),
    ],
)
def test_priority_flag_is_parsed_like_velero(text: str, expected: Priorities) -> None:
    assert parse_priorities(text) == expected


def test_priority_flag_with_two_separators_is_rejected() -> None:
    with pytest.raises(UsageError, match='multiple priority separator "-" found'):
        parse_priorities("-,-")


def test_priorities_render_in_flag_syntax() -> None:
    assert str(Priorities(high=("high",))) == "high"
    assert str(Priorities(high=("high",), low=("low",))) == "high,-,low"
    assert parse_priorities(str(DEFAULT_RESTORE_PRIORITIES)) == DEFAULT_RESTORE_PRIORITIES


def test_never_restore_is_velero_non_restorable_list() -> None:
    assert (
        frozenset(
            {
                "nodes",
                "events",
                "events.events.k8s.io",
                "backups.velero.io",
                "restores.velero.io",
                "resticrepositories.velero.io",
                "csinodes.storage.k8s.io",
                "volumeattachments.storage.k8s.io",
                "backuprepositories.velero.io",
            }
        )
        == NEVER_RESTORE
    )


def test_including_a_non_restorable_resource_is_a_validation_error() -> None:
    assert non_restorable_errors(["pods", "nodes", "backups.velero.io"]) == [
        "nodes are non-restorable resources",
        "backups.velero.io are non-restorable resources",
    ]
    assert non_restorable_errors(["pods", "*"]) == []
