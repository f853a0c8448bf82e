"""OpenAPI v3 documents: what kubectl reads to decide on validation, patch type and explain."""

from __future__ import annotations

from typing import Any

import pytest

from strongroom.sandbox import openapi
from strongroom.sandbox.resources import BUILTIN_TYPES, ResourceRegistry, ResourceType

WIDGET_SCHEMA: dict[str, object] = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "description": "What the widget should be.",
            "properties": {
                "replicas": {"type": "integer"},
                "color": {"type": "string", "enum": ["red", "blue"]},
            },
            "required": ["color"],
        },
        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    },
}


def widget(namespaced: bool = True) -> ResourceType:
    return ResourceType(
        group="example.com",
        version="v1",
        resource="widgets",
        kind="Widget",
        namespaced=namespaced,
        subresources=("status", "scale"),
        builtin=False,
        storage_version="v1",
        schema=WIDGET_SCHEMA,
    )


@pytest.fixture
def registry() -> ResourceRegistry:
    return ResourceRegistry()


def document(registry: ResourceRegistry, group: str, version: str) -> dict[str, Any]:
    doc = openapi.v3_group_version(registry, group, version)
    assert doc is not None
    return doc


def patch_operations(doc: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [
        path["patch"]
        for path in doc["paths"].values()
        if "patch" in path and path["patch"]["x-kubernetes-group-version-kind"]["kind"] == kind
    ]


def test_root_points_at_every_group_version_with_a_content_hash(registry: ResourceRegistry) -> None:
    root = openapi.v3_root(registry)
    assert set(root["paths"]) == {
        f"apis/{g}/{v}" if g else f"api/{v}" for g, versions in registry.groups().items() for v in versions
    }
    core = root["paths"]["api/v1"]["serverRelativeURL"]
    assert core.startswith("/openapi/v3/api/v1?hash=")
    digest = core.split("hash=")[1]
    assert digest == openapi.document_hash(document(registry, "", "v1"))
    assert digest == digest.upper()
    assert int(digest, 16) >= 0
    assert root["paths"]["apis/apps/v1"]["serverRelativeURL"].startswith("/openapi/v3/apis/apps/v1?hash=")


def test_root_hash_changes_when_a_group_version_changes(registry: ResourceRegistry) -> None:
    before = openapi.v3_root(registry)
    assert before == openapi.v3_root(registry)
    registry.set_custom("widgets.example.com", [widget()])
    after = openapi.v3_root(registry)
    assert after["paths"]["api/v1"] == before["paths"]["api/v1"]
    assert "apis/example.com/v1" in after["paths"]


def test_group_version_document_is_openapi_3(registry: ResourceRegistry) -> None:
    doc = document(registry, "apps", "v1")
    assert doc["openapi"] == "3.0.0"
    assert doc["info"]["title"] == "Kubernetes"
    assert openapi.v3_group_version(registry, "apps", "v2") is None
    assert openapi.v3_group_version(registry, "example.com", "v1") is None


def test_paths_have_kube_apiserver_shapes_for_both_scopes(registry: ResourceRegistry) -> None:
    core = document(registry, "", "v1")["paths"]
    assert {"get", "post", "delete", "parameters"} <= set(core["/api/v1/namespaces/{namespace}/pods"])
    assert {"get", "put", "patch", "delete", "parameters"} <= set(
        core["/api/v1/namespaces/{namespace}/pods/{name}"]
    )
    assert set(core["/api/v1/pods"]) == {"get", "parameters"}
    assert {"get", "put", "patch"} <= set(core["/api/v1/namespaces/{namespace}/pods/{name}/status"])
    assert {"get", "post"} <= set(core["/api/v1/nodes"])
    assert {"get", "put", "patch", "delete"} <= set(core["/api/v1/nodes/{name}"])
    assert "/api/v1/namespaces/{namespace}/nodes" not in core
    assert set(core["/api/v1/namespaces/{name}/finalize"]) == {"put", "parameters"}

    certificates = document(registry, "certificates.k8s.io", "v1")["paths"]
    approval = certificates["/apis/certificates.k8s.io/v1/certificatesigningrequests/{name}/approval"]
    assert {"get", "put", "patch"} <= set(approval)


def test_operations_are_tagged_with_kind_and_kube_action(registry: ResourceRegistry) -> None:
    paths = document(registry, "apps", "v1")["paths"]
    collection = paths["/apis/apps/v1/namespaces/{namespace}/deployments"]
    item = paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]
    actions = {
        "list": collection["get"],
        "post": collection["post"],
        "deletecollection": collection["delete"],
        "get": item["get"],
        "put": item["put"],
        "patch": item["patch"],
        "delete": item["delete"],
    }
    for action, operation in actions.items():
        assert operation["x-kubernetes-action"] == action
        assert operation["x-kubernetes-group-version-kind"] == {
            "group": "apps",
            "version": "v1",
            "kind": "Deployment",
        }
    assert item["patch"]["operationId"] == "patchAppsV1NamespacedDeployment"
    watch = paths["/apis/apps/v1/watch/namespaces/{namespace}/deployments"]["get"]
    assert watch["x-kubernetes-action"] == "watchlist"


PATCHABLE = [rt for rt in BUILTIN_TYPES if "patch" in rt.verbs]


def test_create_only_review_kinds_offer_no_patch(registry: ResourceRegistry) -> None:
    reviews = [rt for rt in BUILTIN_TYPES if rt.verbs == ("create",)]
    assert {rt.kind for rt in reviews} >= {"SelfSubjectAccessReview", "SelfSubjectReview"}
    for rt in reviews:
        assert patch_operations(document(registry, rt.group, rt.version), rt.kind) == []


@pytest.mark.parametrize("rt", PATCHABLE, ids=lambda rt: f"{rt.group or 'core'}/{rt.kind}")
def test_every_builtin_kind_has_a_patch_that_takes_field_validation(
    registry: ResourceRegistry, rt: ResourceType
) -> None:
    # kubectl stops at the first PATCH tagged with the kind it meets, in map order, so all must agree.
    doc = document(registry, rt.group, rt.version)
    operations = patch_operations(doc, rt.kind)
    assert operations
    for operation in operations:
        assert operation["x-kubernetes-group-version-kind"] == {
            "group": rt.group,
            "version": rt.version,
            "kind": rt.kind,
        }
        query = {p["name"] for p in operation["parameters"] if p["in"] == "query"}
        assert {"dryRun", "fieldManager", "fieldValidation", "force"} <= query


@pytest.mark.parametrize("rt", BUILTIN_TYPES, ids=lambda rt: f"{rt.group or 'core'}/{rt.kind}")
def test_builtin_patches_never_offer_strategic_merge_patch(
    registry: ResourceRegistry, rt: ResourceType
) -> None:
    for operation in patch_operations(document(registry, rt.group, rt.version), rt.kind):
        assert list(operation["requestBody"]["content"]) == [
            "application/json-patch+json",
            "application/merge-patch+json",
            "application/apply-patch+yaml",
        ]


def test_builtin_schemas_are_named_like_kube_and_accept_any_spec(registry: ResourceRegistry) -> None:
    schemas = document(registry, "", "v1")["components"]["schemas"]
    pod = schemas["io.k8s.api.core.v1.Pod"]
    assert pod["x-kubernetes-group-version-kind"] == [{"group": "", "version": "v1", "kind": "Pod"}]
    assert pod["description"]
    assert pod["properties"]["metadata"]["allOf"] == [
        {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}
    ]
    for part in ("spec", "status"):
        assert pod["properties"][part]["type"] == "object"
        assert pod["properties"][part]["x-kubernetes-preserve-unknown-fields"] is True
    object_meta = schemas["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]
    for field in ("name", "namespace", "labels", "annotations", "uid", "resourceVersion", "ownerReferences"):
        assert object_meta["properties"][field]["description"]
    assert "io.k8s.api.core.v1.PodList" in schemas

    assert "io.k8s.api.apps.v1.Deployment" in document(registry, "apps", "v1")["components"]["schemas"]
    rbac = document(registry, "rbac.authorization.k8s.io", "v1")["components"]["schemas"]
    assert "io.k8s.api.rbac.v1.ClusterRoleBinding" in rbac
    crd = document(registry, "apiextensions.k8s.io", "v1")["components"]["schemas"]
    assert "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinition" in crd


def test_kinds_without_spec_describe_their_real_top_level_fields(registry: ResourceRegistry) -> None:
    schemas = document(registry, "", "v1")["components"]["schemas"]
    config_map = schemas["io.k8s.api.core.v1.ConfigMap"]["properties"]
    assert {"data", "binaryData", "immutable"} <= set(config_map)
    assert "spec" not in config_map
    secret = schemas["io.k8s.api.core.v1.Secret"]["properties"]
    assert {"data", "stringData", "type"} <= set(secret)
    binding = document(registry, "rbac.authorization.k8s.io", "v1")["components"]["schemas"]
    assert {"roleRef", "subjects"} <= set(binding["io.k8s.api.rbac.v1.RoleBinding"]["properties"])


def test_every_reference_resolves_within_its_document(registry: ResourceRegistry) -> None:
    registry.set_custom("widgets.example.com", [widget()])
    for group, versions in registry.groups().items():
        for version in versions:
            doc = document(registry, group, version)
            refs: list[str] = []

            def collect(node: object, refs: list[str] = refs) -> None:
                if isinstance(node, dict):
                    if isinstance(node.get("$ref"), str):
                        refs.append(node["$ref"])
                    for value in node.values():
                        collect(value)
                elif isinstance(node, list):
                    for value in node:
                        collect(value)

            collect(doc)
            names = {ref.removeprefix("#/components/schemas/") for ref in refs}
            assert names <= set(doc["components"]["schemas"]), (group, version)


def test_custom_resources_use_their_crd_schema_verbatim(registry: ResourceRegistry) -> None:
    registry.set_custom("widgets.example.com", [widget()])
    doc = document(registry, "example.com", "v1")
    schema = doc["components"]["schemas"]["com.example.v1.Widget"]
    assert schema["properties"]["spec"] == WIDGET_SCHEMA["properties"]["spec"]  # type: ignore[index]
    assert schema["properties"]["status"] == {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    assert schema["x-kubernetes-group-version-kind"] == [
        {"group": "example.com", "version": "v1", "kind": "Widget"}
    ]
    assert "$ref" in schema["properties"]["metadata"]["allOf"][0]
    assert "metadata" not in WIDGET_SCHEMA["properties"]  # type: ignore[operator]
    assert "com.example.v1.WidgetList" in doc["components"]["schemas"]


def test_custom_resources_patch_with_field_validation_and_without_strategic_merge(
    registry: ResourceRegistry,
) -> None:
    registry.set_custom("widgets.example.com", [widget()])
    doc = document(registry, "example.com", "v1")
    item = doc["paths"]["/apis/example.com/v1/namespaces/{namespace}/widgets/{name}"]
    query = {p["name"] for p in item["patch"]["parameters"]}
    assert "fieldValidation" in query
    assert "application/strategic-merge-patch+json" not in item["patch"]["requestBody"]["content"]
    assert "application/merge-patch+json" in item["patch"]["requestBody"]["content"]
    scale = doc["paths"]["/apis/example.com/v1/namespaces/{namespace}/widgets/{name}/scale"]
    assert scale["patch"]["x-kubernetes-group-version-kind"] == {
        "group": "autoscaling",
        "version": "v1",
        "kind": "Scale",
    }
    assert "io.k8s.api.autoscaling.v1.Scale" in doc["components"]["schemas"]


def test_cluster_scoped_custom_resources_have_no_namespace_paths(registry: ResourceRegistry) -> None:
    registry.set_custom("widgets.example.com", [widget(namespaced=False)])
    paths = document(registry, "example.com", "v1")["paths"]
    assert "/apis/example.com/v1/widgets/{name}" in paths
    assert not any("{namespace}" in path for path in paths)


@pytest.mark.parametrize(
    ("group", "version", "kind", "builtin", "expected"),
    [
        ("", "v1", "Pod", True, "io.k8s.api.core.v1.Pod"),
        ("apps", "v1", "Deployment", True, "io.k8s.api.apps.v1.Deployment"),
        ("rbac.authorization.k8s.io", "v1", "Role", True, "io.k8s.api.rbac.v1.Role"),
        ("storage.k8s.io", "v1", "StorageClass", True, "io.k8s.api.storage.v1.StorageClass"),
        (
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            True,
            "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinition",
        ),
        ("example.com", "v1", "Widget", False, "com.example.v1.Widget"),
        ("stable.example.com", "v1beta1", "CronTab", False, "com.example.stable.v1beta1.CronTab"),
    ],
)
def test_schema_names_follow_kube_conventions(
    group: str, version: str, kind: str, builtin: bool, expected: str
) -> None:
    assert openapi.schema_name(group, version, kind, builtin) == expected
