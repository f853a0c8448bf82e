"""Discovery documents: what kubectl and client-go read before any object request."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from strongroom.sandbox import discovery
from strongroom.sandbox.resources import BUILTIN_TYPES, ResourceRegistry, ResourceType

V2_ACCEPT = (
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"
)


def widget_versions() -> list[ResourceType]:
    common: dict[str, Any] = {
        "group": "example.com",
        "resource": "widgets",
        "kind": "Widget",
        "namespaced": True,
        "short_names": ("wd",),
        "categories": ("all", "toys"),
        "subresources": ("status", "scale"),
        "builtin": False,
        "storage_version": "v1",
    }
    return [ResourceType(version="v1", **common), ResourceType(version="v1beta1", **common)]


@pytest.fixture
def registry() -> ResourceRegistry:
    return ResourceRegistry()


def by_name(resources: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in resources}


def test_version_reports_kube_1_32_with_the_fields_clients_read() -> None:
    info = discovery.version_info()
    assert (info["major"], info["minor"]) == ("1", "32")
    assert info["gitVersion"].startswith("v1.32.")
    assert info["compiler"] == "gc"
    assert info["platform"] == "linux/amd64"
    for key in ("gitCommit", "gitTreeState", "buildDate", "goVersion"):
        assert info[key]


def test_core_versions_names_v1_and_the_given_server_address() -> None:
    assert discovery.core_versions("127.0.0.1:6443") == {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}],
    }


def test_group_list_has_every_non_core_group_in_registry_order(registry: ResourceRegistry) -> None:
    doc = discovery.group_list(registry)
    assert doc["kind"] == "APIGroupList"
    assert doc["apiVersion"] == "v1"
    names = [g["name"] for g in doc["groups"]]
    assert names == [g for g in registry.groups() if g]
    apps = doc["groups"][names.index("apps")]
    assert apps["versions"] == [{"groupVersion": "apps/v1", "version": "v1"}]
    assert apps["preferredVersion"] == {"groupVersion": "apps/v1", "version": "v1"}


def test_group_document_exists_only_for_served_groups(registry: ResourceRegistry) -> None:
    batch = discovery.group(registry, "batch")
    assert batch is not None
    assert batch["kind"] == "APIGroup"
    assert batch["name"] == "batch"
    assert discovery.group(registry, "example.com") is None
    assert discovery.group(registry, "") is None


def test_core_resource_list_names_every_builtin_core_kind(registry: ResourceRegistry) -> None:
    doc = discovery.resource_list(registry, "", "v1")
    assert doc is not None
    assert doc["kind"] == "APIResourceList"
    assert doc["groupVersion"] == "v1"
    resources = by_name(doc["resources"])
    for rt in BUILTIN_TYPES:
        if rt.group == "":
            entry = resources[rt.resource]
            assert entry["kind"] == rt.kind
            assert entry["namespaced"] == rt.namespaced
            assert entry["singularName"] == rt.kind.lower()
            assert entry["verbs"] == list(rt.verbs)
            assert entry.get("shortNames", []) == list(rt.short_names)


def test_resource_entries_carry_short_names_categories_and_a_storage_hash(registry: ResourceRegistry) -> None:
    doc = discovery.resource_list(registry, "", "v1")
    assert doc is not None
    pods = by_name(doc["resources"])["pods"]
    assert pods == {
        "name": "pods",
        "singularName": "pod",
        "namespaced": True,
        "kind": "Pod",
        "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
        "shortNames": ["po"],
        "categories": ["all"],
        "storageVersionHash": pods["storageVersionHash"],
    }
    assert len(base64.b64decode(pods["storageVersionHash"])) == 8
    secrets = by_name(doc["resources"])["secrets"]
    assert "shortNames" not in secrets
    assert "categories" not in secrets


def test_the_all_category_covers_the_workload_kinds(registry: ResourceRegistry) -> None:
    in_all = set()
    for group_name, versions in registry.groups().items():
        doc = discovery.resource_list(registry, group_name, versions[0])
        assert doc is not None
        in_all |= {r["name"] for r in doc["resources"] if "all" in r.get("categories", [])}
    assert {"pods", "services", "deployments", "statefulsets", "daemonsets", "replicasets", "jobs"} <= in_all
    assert {"cronjobs", "replicationcontrollers"} <= in_all
    assert "secrets" not in in_all


def test_subresources_follow_their_parent_with_its_kind_and_scope(registry: ResourceRegistry) -> None:
    core = discovery.resource_list(registry, "", "v1")
    assert core is not None
    names = [r["name"] for r in core["resources"]]
    assert names == sorted(names)
    resources = by_name(core["resources"])
    assert resources["pods/status"] == {
        "name": "pods/status",
        "singularName": "",
        "namespaced": True,
        "kind": "Pod",
        "verbs": ["get", "patch", "update"],
    }
    assert resources["namespaces/finalize"]["verbs"] == ["update"]
    assert resources["namespaces/finalize"]["kind"] == "Namespace"
    assert resources["namespaces/finalize"]["namespaced"] is False

    certificates = discovery.resource_list(registry, "certificates.k8s.io", "v1")
    assert certificates is not None
    approval = by_name(certificates["resources"])["certificatesigningrequests/approval"]
    assert approval["verbs"] == ["get", "patch", "update"]
    assert approval["kind"] == "CertificateSigningRequest"
    assert approval["namespaced"] is False


def test_group_resource_lists_carry_api_version_but_the_core_list_does_not(
    registry: ResourceRegistry,
) -> None:
    apps = discovery.resource_list(registry, "apps", "v1")
    core = discovery.resource_list(registry, "", "v1")
    assert apps is not None
    assert core is not None
    assert apps["apiVersion"] == "v1"
    assert apps["groupVersion"] == "apps/v1"
    assert "apiVersion" not in core
    assert discovery.resource_list(registry, "apps", "v1beta1") is None


def test_custom_kinds_appear_once_the_registry_learns_them(registry: ResourceRegistry) -> None:
    assert "example.com" not in [g["name"] for g in discovery.group_list(registry)["groups"]]
    registry.set_custom("widgets.example.com", widget_versions())

    group = discovery.group(registry, "example.com")
    assert group is not None
    assert [v["version"] for v in group["versions"]] == ["v1", "v1beta1"]
    assert group["preferredVersion"]["version"] == "v1"

    doc = discovery.resource_list(registry, "example.com", "v1")
    assert doc is not None
    resources = by_name(doc["resources"])
    assert resources["widgets"]["shortNames"] == ["wd"]
    assert resources["widgets"]["categories"] == ["all", "toys"]
    assert resources["widgets/scale"] == {
        "name": "widgets/scale",
        "singularName": "",
        "namespaced": True,
        "group": "autoscaling",
        "version": "v1",
        "kind": "Scale",
        "verbs": ["get", "patch", "update"],
    }

    registry.remove_custom("widgets.example.com")
    assert discovery.resource_list(registry, "example.com", "v1") is None


def test_aggregated_core_discovery_is_one_unnamed_group(registry: ResourceRegistry) -> None:
    doc = discovery.aggregated(registry, core=True)
    assert doc["kind"] == "APIGroupDiscoveryList"
    assert doc["apiVersion"] == "apidiscovery.k8s.io/v2"
    [core] = doc["items"]
    assert core["metadata"].get("name", "") == ""
    [v1] = core["versions"]
    assert v1["version"] == "v1"
    assert v1["freshness"] == "Current"
    pods = next(r for r in v1["resources"] if r["resource"] == "pods")
    assert pods == {
        "resource": "pods",
        "responseKind": {"group": "", "version": "v1", "kind": "Pod"},
        "scope": "Namespaced",
        "singularResource": "pod",
        "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
        "shortNames": ["po"],
        "categories": ["all"],
        "subresources": [
            {
                "subresource": "proxy",
                "responseKind": {"group": "", "version": "v1", "kind": "PodProxyOptions"},
                "verbs": ["create", "delete", "get", "patch", "update"],
            },
            {
                "subresource": "status",
                "responseKind": {"group": "", "version": "v1", "kind": "Pod"},
                "verbs": ["get", "patch", "update"],
            },
        ],
    }
    nodes = next(r for r in v1["resources"] if r["resource"] == "nodes")
    assert nodes["scope"] == "Cluster"


def test_aggregated_group_discovery_lists_the_other_groups_preferred_version_first(
    registry: ResourceRegistry,
) -> None:
    registry.set_custom("widgets.example.com", widget_versions())
    doc = discovery.aggregated(registry, core=False)
    names = [item["metadata"]["name"] for item in doc["items"]]
    assert names == [g for g in registry.groups() if g]
    widgets = doc["items"][names.index("example.com")]
    assert [v["version"] for v in widgets["versions"]] == ["v1", "v1beta1"]
    assert all(v["freshness"] == "Current" for v in widgets["versions"])
    resource = widgets["versions"][0]["resources"][0]
    assert resource["responseKind"] == {"group": "example.com", "version": "v1", "kind": "Widget"}
    assert [s["subresource"] for s in resource["subresources"]] == ["scale", "status"]
    assert resource["subresources"][0]["responseKind"] == {
        "group": "autoscaling",
        "version": "v1",
        "kind": "Scale",
    }
    storage_classes = doc["items"][names.index("storage.k8s.io")]["versions"][0]["resources"][0]
    assert "subresources" not in storage_classes


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (V2_ACCEPT, True),
        (discovery.AGGREGATED_CONTENT_TYPE, True),
        ("application/json;as=APIGroupDiscoveryList;v=v2;g=apidiscovery.k8s.io", True),
        ("application/json, application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList", True),
        ("application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList", False),
        ("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList;q=0", False),
        ("application/json", False),
        ("", False),
    ],
)
def test_aggregated_discovery_is_answered_only_when_v2_is_accepted(accept: str, expected: bool) -> None:
    assert discovery.wants_aggregated(accept) is expected
