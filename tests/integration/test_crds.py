"""CustomResourceDefinitions in the sandbox: establishment, discovery, versions, schemas, removal."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient
from tests.integration.sandboxapi import Kube, api_error, eventually, gone, unique

pytestmark = pytest.mark.integration

MERGE_PATCH = "application/merge-patch+json"


def widget_schema() -> dict[str, Any]:
    return {
        "openAPIV3Schema": {
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "properties": {
                        "size": {"type": "integer"},
                        "color": {"type": "string", "enum": ["red", "blue"]},
                    },
                },
                "status": {"type": "object", "properties": {"phase": {"type": "string"}}},
            },
        }
    }


def widget_crd(group: str) -> dict[str, Any]:
    columns = [{"name": "Size", "type": "integer", "jsonPath": ".spec.size"}]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wdg"]},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": widget_schema(),
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                },
                {
                    "name": "v1beta1",
                    "served": True,
                    "storage": False,
                    "schema": widget_schema(),
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                },
            ],
        },
    }


def established(kube: Kube, name: str) -> dict[str, str]:
    crd = kube.apiext.read_custom_resource_definition(name)
    conditions = {c.type: c.status for c in (crd.status.conditions or [])}
    assert conditions.get("NamesAccepted") == "True"
    assert conditions.get("Established") == "True"
    return conditions


@pytest.fixture
def group(kube: Kube) -> Iterator[str]:
    """A CRD of its own group, established; deleted afterwards."""
    name = f"{unique('g')}.example.com"
    kube.apiext.create_custom_resource_definition(widget_crd(name))
    eventually(lambda: established(kube, f"widgets.{name}"), timeout=5)
    yield name
    try:
        kube.apiext.delete_custom_resource_definition(f"widgets.{name}")
    except ApiException as exc:
        if exc.status != 404:
            raise


def widget(name: str, version: str, group: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": f"{group}/{version}", "kind": "Widget", "metadata": {"name": name}, "spec": spec}


def widgets(group: str, version: str, namespace: str, name: str = "") -> str:
    return f"/apis/{group}/{version}/namespaces/{namespace}/widgets" + (f"/{name}" if name else "")


def test_created_crd_becomes_established_and_is_discoverable(kube: Kube, group: str) -> None:
    crd = kube.apiext.read_custom_resource_definition(f"widgets.{group}")
    assert crd.status.accepted_names.kind == "Widget"
    assert crd.status.accepted_names.short_names == ["wdg"]
    assert crd.status.stored_versions == ["v1"]

    def discovered(version: str) -> dict[str, Any]:
        doc = kube.request("GET", f"/apis/{group}/{version}")
        assert doc.status == 200
        return {r["name"]: r for r in doc.body["resources"]}

    for version in ("v1", "v1beta1"):
        resources = eventually(lambda v=version: discovered(v), timeout=5)
        assert resources["widgets"]["kind"] == "Widget"
        assert resources["widgets"]["namespaced"] is True
        assert resources["widgets"]["shortNames"] == ["wdg"]
        assert resources["widgets"]["singularName"] == "widget"
        assert "widgets/status" in resources
    groups = kube.request("GET", "/apis").body["groups"]
    (entry,) = [g for g in groups if g["name"] == group]
    assert entry["preferredVersion"]["version"] == "v1"
    assert {v["version"] for v in entry["versions"]} == {"v1", "v1beta1"}


def test_dynamic_client_finds_the_custom_kind(kube: Kube, group: str, namespace: str, tmp_path: Any) -> None:
    dynamic = DynamicClient(kube.api, cache_file=str(tmp_path / "discovery.json"))

    resource = eventually(lambda: dynamic.resources.get(api_version=f"{group}/v1", kind="Widget"), timeout=5)
    created = resource.create(body=widget("w1", "v1", group, size=3), namespace=namespace)
    fetched = resource.get(name="w1", namespace=namespace)

    assert resource.namespaced
    assert created.metadata.uid == fetched.metadata.uid
    assert fetched.spec.size == 3


def test_custom_resource_crud_in_both_versions(kube: Kube, group: str, namespace: str) -> None:
    created = kube.custom.create_namespaced_custom_object(
        group, "v1", namespace, "widgets", widget("a", "v1", group, size=1)
    )
    assert created["metadata"]["generation"] == 1
    kube.custom.create_namespaced_custom_object(
        group, "v1beta1", namespace, "widgets", widget("b", "v1beta1", group, size=2)
    )

    as_beta = kube.custom.get_namespaced_custom_object(group, "v1beta1", namespace, "widgets", "a")
    assert as_beta["apiVersion"] == f"{group}/v1beta1"
    assert as_beta["metadata"]["uid"] == created["metadata"]["uid"]
    listing = kube.custom.list_namespaced_custom_object(group, "v1", namespace, "widgets")
    assert listing["kind"] == "WidgetList"
    assert {(i["metadata"]["name"], i["apiVersion"]) for i in listing["items"]} == {
        ("a", f"{group}/v1"),
        ("b", f"{group}/v1"),
    }

    as_beta["spec"]["size"] = 5
    replaced = kube.custom.replace_namespaced_custom_object(
        group, "v1beta1", namespace, "widgets", "a", as_beta
    )
    assert replaced["spec"]["size"] == 5
    assert replaced["metadata"]["generation"] == 2
    patched = kube.request(
        "PATCH", widgets(group, "v1", namespace, "b"), {"spec": {"color": "red"}}, content_type=MERGE_PATCH
    )
    assert patched.status == 200
    assert patched.body["spec"] == {"size": 2, "color": "red"}

    kube.custom.delete_namespaced_custom_object(group, "v1beta1", namespace, "widgets", "a")
    kube.custom.delete_namespaced_custom_object(group, "v1", namespace, "widgets", "b")
    assert kube.custom.list_namespaced_custom_object(group, "v1beta1", namespace, "widgets")["items"] == []


def test_custom_resource_update_without_resource_version_is_invalid(
    kube: Kube, group: str, namespace: str
) -> None:
    kube.custom.create_namespaced_custom_object(
        group, "v1", namespace, "widgets", widget("a", "v1", group, size=1)
    )

    answered = kube.request("PUT", widgets(group, "v1", namespace, "a"), widget("a", "v1", group, size=2))

    assert answered.status == 422
    assert answered.reason == "Invalid"
    assert answered.body["message"] == (
        f'widgets.{group} "a" is invalid: metadata.resourceVersion: Invalid value: 0x0: '
        "must be specified for an update"
    )
    assert [c["field"] for c in answered.body["details"]["causes"]] == ["metadata.resourceVersion"]
    stored = kube.custom.get_namespaced_custom_object(group, "v1", namespace, "widgets", "a")
    assert stored["spec"] == {"size": 1}


def test_custom_resource_delete_answers_with_a_status(kube: Kube, group: str, namespace: str) -> None:
    created = kube.custom.create_namespaced_custom_object(
        group, "v1", namespace, "widgets", widget("a", "v1", group, size=1)
    )

    answered = kube.request("DELETE", widgets(group, "v1", namespace, "a"))

    assert answered.status == 200
    assert answered.body["kind"] == "Status"
    assert answered.body["status"] == "Success"
    assert answered.body["details"] == {
        "name": "a",
        "group": group,
        "kind": "widgets",
        "uid": created["metadata"]["uid"],
    }


def test_custom_resource_table_has_the_additional_printer_columns(
    kube: Kube, group: str, namespace: str
) -> None:
    kube.custom.create_namespaced_custom_object(
        group, "v1", namespace, "widgets", widget("a", "v1", group, size=7)
    )

    table = kube.request(
        "GET", widgets(group, "v1", namespace), accept="application/json;as=Table;v=v1;g=meta.k8s.io"
    )

    assert table.status == 200
    assert table.body["kind"] == "Table"
    assert [c["name"] for c in table.body["columnDefinitions"]] == ["Name", "Size"]
    assert [row["cells"] for row in table.body["rows"]] == [["a", 7]]


def test_custom_resource_status_subresource_separates_spec_and_status(
    kube: Kube, group: str, namespace: str
) -> None:
    kube.custom.create_namespaced_custom_object(
        group, "v1", namespace, "widgets", {**widget("a", "v1", group, size=1), "status": {"phase": "Set"}}
    )
    created = kube.custom.get_namespaced_custom_object(group, "v1", namespace, "widgets", "a")
    assert "status" not in created

    status = kube.request(
        "PATCH",
        widgets(group, "v1", namespace, "a") + "/status",
        {"status": {"phase": "Ready"}, "spec": {"size": 9}},
        content_type=MERGE_PATCH,
    )
    main = kube.request(
        "PATCH",
        widgets(group, "v1", namespace, "a"),
        {"status": {"phase": "Broken"}, "spec": {"size": 2}},
        content_type=MERGE_PATCH,
    )

    assert status.status == 200
    assert main.status == 200
    stored = kube.custom.get_namespaced_custom_object(group, "v1", namespace, "widgets", "a")
    assert stored["spec"] == {"size": 2}
    assert stored["status"] == {"phase": "Ready"}
    assert stored["metadata"]["generation"] == 2


def test_custom_resource_unknown_fields_are_pruned(kube: Kube, group: str, namespace: str) -> None:
    body = widget("a", "v1", group, size=1, extra="dropped")
    body["topLevel"] = "dropped"

    created = kube.request("POST", widgets(group, "v1", namespace), body)

    assert created.status == 201
    assert created.body["spec"] == {"size": 1}
    assert "topLevel" not in created.body
    stored = kube.custom.get_namespaced_custom_object(group, "v1", namespace, "widgets", "a")
    assert stored["spec"] == {"size": 1}


def test_custom_resource_unknown_fields_draw_a_warning(kube: Kube, group: str, namespace: str) -> None:
    created = kube.request(
        "POST", widgets(group, "v1", namespace), widget("a", "v1", group, size=1, extra="x")
    )

    assert created.status == 201
    assert created.headers.get("Warning") == '299 - "unknown field \\"spec.extra\\""'


def test_custom_resource_unknown_fields_are_refused_with_strict_validation(
    kube: Kube, group: str, namespace: str
) -> None:
    created = kube.request(
        "POST",
        widgets(group, "v1", namespace),
        widget("a", "v1", group, size=1, extra="no"),
        query={"fieldValidation": "Strict"},
    )

    assert created.status == 400
    assert created.reason == "BadRequest"
    assert 'unknown field "spec.extra"' in created.body["message"]


def test_custom_resource_type_violation_is_invalid(kube: Kube, group: str, namespace: str) -> None:
    with pytest.raises(ApiException) as exc_info:
        kube.custom.create_namespaced_custom_object(
            group, "v1", namespace, "widgets", widget("a", "v1", group, size="big", color="green")
        )

    assert exc_info.value.status == 422
    status = api_error(exc_info)
    assert status["reason"] == "Invalid"
    assert status["details"]["kind"] == "Widget"
    assert status["details"]["group"] == group
    fields = {(c["field"], c["reason"]) for c in status["details"]["causes"]}
    assert fields == {("spec.size", "FieldValueTypeInvalid"), ("spec.color", "FieldValueNotSupported")}


def test_strategic_merge_patch_on_custom_resource_is_unsupported_media_type(
    kube: Kube, group: str, namespace: str
) -> None:
    kube.custom.create_namespaced_custom_object(
        group, "v1", namespace, "widgets", widget("a", "v1", group, size=1)
    )

    patched = kube.request(
        "PATCH",
        widgets(group, "v1", namespace, "a"),
        {"spec": {"size": 2}},
        content_type="application/strategic-merge-patch+json",
    )

    assert patched.status == 415
    assert patched.reason == "UnsupportedMediaType"


def test_deleting_a_crd_removes_its_objects_and_endpoints(kube: Kube, namespace: str) -> None:
    group = f"{unique('g')}.example.com"
    name = f"widgets.{group}"
    kube.apiext.create_custom_resource_definition(widget_crd(group))
    eventually(lambda: established(kube, name), timeout=5)
    eventually(
        lambda: kube.custom.create_namespaced_custom_object(
            group, "v1", namespace, "widgets", widget("a", "v1", group, size=1)
        ),
        timeout=5,
    )
    kube.custom.create_namespaced_custom_object(
        group,
        "v1",
        namespace,
        "widgets",
        {**widget("held", "v1", group), "metadata": {"name": "held", "finalizers": ["example.com/hold"]}},
    )

    kube.apiext.delete_custom_resource_definition(name)

    eventually(
        lambda: gone(lambda: kube.custom.get_namespaced_custom_object(group, "v1", namespace, "widgets", "a"))
    )
    terminating = kube.apiext.read_custom_resource_definition(name)
    assert terminating.metadata.deletion_timestamp is not None
    assert {c.type: c.status for c in terminating.status.conditions}["Terminating"] == "True"
    kube.request(
        "PATCH",
        widgets(group, "v1", namespace, "held"),
        {"metadata": {"finalizers": None}},
        content_type=MERGE_PATCH,
    )
    eventually(lambda: gone(lambda: kube.apiext.read_custom_resource_definition(name)))
    for path in (widgets(group, "v1", namespace), widgets(group, "v1beta1", namespace), f"/apis/{group}/v1"):
        answered = eventually(lambda p=path: (r := kube.request("GET", p)).status == 404 and r, timeout=5)
        assert answered.body["kind"] == "Status"
    assert all(g["name"] != group for g in kube.request("GET", "/apis").body["groups"])


def test_custom_resource_scale_subresource_follows_the_crd_paths(kube: Kube, namespace: str) -> None:
    group = f"{unique('s')}.example.com"
    crd = widget_crd(group)
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]
    schema["spec"]["properties"]["count"] = {"type": "integer"}
    schema["status"]["properties"].update({"count": {"type": "integer"}, "selector": {"type": "string"}})
    for version in crd["spec"]["versions"]:
        version["subresources"]["scale"] = {
            "specReplicasPath": ".spec.count",
            "statusReplicasPath": ".status.count",
            "labelSelectorPath": ".status.selector",
        }
    kube.apiext.create_custom_resource_definition(crd)
    try:
        eventually(lambda: established(kube, f"widgets.{group}"), timeout=5)
        kube.custom.create_namespaced_custom_object(
            group, "v1", namespace, "widgets", widget("w", "v1", group, size=1, count=2)
        )
        scale = kube.custom.get_namespaced_custom_object_scale(group, "v1", namespace, "widgets", "w")
        assert scale["spec"] == {"replicas": 2}
        kube.custom.patch_namespaced_custom_object_scale(
            group, "v1", namespace, "widgets", "w", {"spec": {"replicas": 5}}
        )
        stored = kube.custom.get_namespaced_custom_object(group, "v1", namespace, "widgets", "w")
        assert stored["spec"] == {"size": 1, "count": 5}
        assert stored["metadata"]["generation"] == 2
        with pytest.raises(ApiException) as caught:
            kube.custom.patch_namespaced_custom_object_scale(
                group, "v1", namespace, "widgets", "w", {"spec": {"replicas": -1}}
            )
        assert caught.value.status == 422
    finally:
        kube.apiext.delete_custom_resource_definition(f"widgets.{group}")
