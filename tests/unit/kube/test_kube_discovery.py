"""Which version of each resource a backup reads: Discovery's choice, on hand-built discovery answers."""

from __future__ import annotations

from typing import Any

import pytest

from strongroom.kube import Discovery, resources_from_list, version_priority
from strongroom.model.resources import ApiResource

VERBS = frozenset({"create", "delete", "get", "list", "patch", "update", "watch"})


def res(
    group: str, version: str, resource: str, kind: str, *, preferred: bool, namespaced: bool = True
) -> ApiResource:
    return ApiResource(group, version, resource, kind, namespaced, verbs=VERBS, preferred=preferred)


def test_kube_version_priority_orders_ga_then_beta_then_alpha_then_others() -> None:
    shuffled = [
        "foo10",
        "v1",
        "v11alpha2",
        "v10beta3",
        "v2",
        "foo1",
        "v12alpha1",
        "v3beta1",
        "v10",
        "v11beta2",
    ]

    ordered = sorted(shuffled, key=version_priority)

    # apimachinery's CompareKubeAwareVersionStrings documents exactly this order.
    assert ordered == [
        "v10",
        "v2",
        "v1",
        "v11beta2",
        "v10beta3",
        "v3beta1",
        "v12alpha1",
        "v11alpha2",
        "foo1",
        "foo10",
    ]


def test_resource_is_read_at_its_groups_preferred_version() -> None:
    discovery = Discovery(
        (
            res("apps", "v1beta2", "deployments", "Deployment", preferred=False),
            res("apps", "v1", "deployments", "Deployment", preferred=True),
            res("apps", "v2beta1", "deployments", "Deployment", preferred=False),
        )
    )

    (chosen,) = discovery.preferred()

    # Preferred wins even over a version of higher priority that the server does not prefer.
    assert (chosen.version, chosen.preferred) == ("v1", True)
    assert discovery.find("apps", "deployments") == chosen
    assert discovery.by_kind("apps", "Deployment") == chosen


def test_resource_missing_from_the_preferred_version_comes_from_the_highest_other_version() -> None:
    discovery = Discovery(
        (
            res("batch", "v1", "jobs", "Job", preferred=True),
            res("batch", "v1beta1", "jobs", "Job", preferred=False),
            res("batch", "v2alpha1", "cronjobs", "CronJob", preferred=False),
            res("batch", "v1beta1", "cronjobs", "CronJob", preferred=False),
            res("batch", "v1alpha1", "cronjobs", "CronJob", preferred=False),
        )
    )

    chosen = {r.resource: (r.version, r.preferred) for r in discovery.preferred()}

    assert chosen == {"jobs": ("v1", True), "cronjobs": ("v1beta1", False)}
    cronjobs = discovery.find("batch", "cronjobs")
    assert cronjobs is not None
    assert cronjobs.version == "v1beta1"


def test_highest_priority_other_version_is_by_kube_version_order_not_by_listing_order() -> None:
    discovery = Discovery(
        (
            res("example.com", "v1", "gadgets", "Gadget", preferred=True),
            res("example.com", "v1beta1", "widgets", "Widget", preferred=False),
            res("example.com", "v2beta1", "widgets", "Widget", preferred=False),
            res("example.com", "v1beta2", "widgets", "Widget", preferred=False),
            res("example.com", "v3alpha1", "widgets", "Widget", preferred=False),
        )
    )

    widgets = discovery.find("example.com", "widgets")

    assert widgets is not None
    assert widgets.version == "v2beta1"
    assert [r.version for r in discovery.versions_of("widgets.example.com")] == [
        "v2beta1",
        "v1beta2",
        "v1beta1",
        "v3alpha1",
    ]


def test_versions_of_lists_the_preferred_version_first() -> None:
    discovery = Discovery(
        (
            res("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler", preferred=False),
            res("autoscaling", "v1", "horizontalpodautoscalers", "HorizontalPodAutoscaler", preferred=True),
        )
    )

    versions = discovery.versions_of("horizontalpodautoscalers.autoscaling")

    assert [(r.version, r.preferred) for r in versions] == [("v1", True), ("v2", False)]
    assert discovery.versions_of("nothing.example.com") == []


def test_core_group_resources_are_named_without_a_suffix() -> None:
    pods = res("", "v1", "pods", "Pod", preferred=True)
    discovery = Discovery((pods, res("", "v1", "namespaces", "Namespace", preferred=True, namespaced=False)))

    assert discovery.versions_of("pods") == [pods]
    assert discovery.find("", "pods") == pods
    assert discovery.by_kind("", "Pod") == pods
    assert discovery.find("", "widgets") is None
    assert discovery.by_kind("apps", "Pod") is None


def test_preferred_keeps_the_servers_order_of_first_appearance() -> None:
    discovery = Discovery(
        (
            res("", "v1", "pods", "Pod", preferred=True),
            res("", "v1", "configmaps", "ConfigMap", preferred=True),
            res("apps", "v1beta1", "deployments", "Deployment", preferred=False),
            res("apps", "v1", "deployments", "Deployment", preferred=True),
            res("apps", "v1", "replicasets", "ReplicaSet", preferred=True),
        )
    )

    assert [r.group_resource for r in discovery.preferred()] == [
        "pods",
        "configmaps",
        "deployments.apps",
        "replicasets.apps",
    ]
    assert discovery.groups() == ["", "apps"]


def test_served_finds_an_exact_group_version() -> None:
    v1beta1 = res("apps", "v1beta1", "deployments", "Deployment", preferred=False)
    discovery = Discovery((v1beta1, res("apps", "v1", "deployments", "Deployment", preferred=True)))

    assert discovery.served("apps", "v1beta1", "deployments") == v1beta1
    assert discovery.served("apps", "v1beta2", "deployments") is None


def test_failed_group_versions_are_recorded_beside_the_resources() -> None:
    discovery = Discovery((), {"metrics.k8s.io/v1beta1": "service unavailable"})

    assert discovery.preferred() == []
    assert discovery.failed == {"metrics.k8s.io/v1beta1": "service unavailable"}
    assert Discovery(()).failed == {}


@pytest.fixture
def core_list() -> dict[str, Any]:
    return {
        "kind": "APIResourceList",
        "groupVersion": "v1",
        "resources": [
            {
                "name": "pods",
                "singularName": "pod",
                "namespaced": True,
                "kind": "Pod",
                "verbs": ["create", "delete", "get", "list"],
                "shortNames": ["po"],
                "categories": ["all"],
            },
            {"name": "pods/log", "singularName": "", "namespaced": True, "kind": "Pod", "verbs": ["get"]},
            {
                "name": "pods/status",
                "singularName": "",
                "namespaced": True,
                "kind": "Pod",
                "verbs": ["get", "patch"],
            },
            {
                "name": "namespaces",
                "singularName": "namespace",
                "namespaced": False,
                "kind": "Namespace",
                "verbs": [],
            },
        ],
    }


def test_resource_list_entries_become_resources_noting_their_subresources(core_list: dict[str, Any]) -> None:
    found = resources_from_list(core_list, "", "v1", preferred=True)

    assert found == [
        ApiResource(
            group="",
            version="v1",
            resource="pods",
            kind="Pod",
            namespaced=True,
            singular="pod",
            short_names=("po",),
            verbs=frozenset({"create", "delete", "get", "list"}),
            categories=("all",),
            preferred=True,
            subresources=frozenset({"log", "status"}),
        ),
        ApiResource(
            group="",
            version="v1",
            resource="namespaces",
            kind="Namespace",
            namespaced=False,
            singular="namespace",
        ),
    ]
    assert not found[1].listable


def test_an_empty_resource_list_has_no_resources() -> None:
    assert (
        resources_from_list({"kind": "APIResourceList", "groupVersion": "x/v1"}, "x", "v1", preferred=True)
        == []
    )


def test_discovery_is_a_frozen_value() -> None:
    discovery = Discovery((res("", "v1", "pods", "Pod", preferred=True),))

    with pytest.raises(AttributeError):
        discovery.resources = ()  # type: ignore[misc]
    assert discovery == Discovery((res("", "v1", "pods", "Pod", preferred=True),))
