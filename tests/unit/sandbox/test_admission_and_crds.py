"""Validation and CRD rules of the sandbox, without a server."""

from __future__ import annotations

from typing import Any

import pytest

from strongroom.sandbox import admission, apierrors
from strongroom.sandbox.crds import crd_errors, names_conflict, prune_and_validate, served_types
from strongroom.sandbox.resources import BUILTIN_TYPES, ResourceRegistry
from strongroom.sandbox.store import decode_continue, encode_continue


def builtin(group: str, resource: str) -> Any:
    return next(rt for rt in BUILTIN_TYPES if rt.group == group and rt.resource == resource)


def crd(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "required": ["size"],
                                    "properties": {
                                        "size": {"type": "integer", "minimum": 1},
                                        "color": {"type": "string", "enum": ["red", "blue"]},
                                        "extra": {
                                            "type": "object",
                                            "x-kubernetes-preserve-unknown-fields": True,
                                        },
                                    },
                                },
                                "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                            },
                        }
                    },
                },
                {
                    "name": "v1beta1",
                    "served": True,
                    "storage": False,
                    "schema": {"openAPIV3Schema": {"type": "object"}},
                },
            ],
        },
    }
    body["spec"].update(overrides)
    return body


def test_registry_keys_follow_kube_apiserver_layout() -> None:
    assert builtin("", "services").key("default", "web") == "/registry/services/specs/default/web"
    assert builtin("", "endpoints").key("default", "web") == "/registry/services/endpoints/default/web"
    assert builtin("", "nodes").key(None, "n1") == "/registry/minions/n1"
    assert builtin("", "replicationcontrollers").key("a", "b") == "/registry/controllers/a/b"
    assert builtin("networking.k8s.io", "ingresses").key("a", "b") == "/registry/ingress/a/b"
    assert builtin("apps", "deployments").key("a", "b") == "/registry/deployments/a/b"
    crd_type = builtin("apiextensions.k8s.io", "customresourcedefinitions")
    assert crd_type.key(None, "widgets.example.com") == (
        "/registry/apiextensions.k8s.io/customresourcedefinitions/widgets.example.com"
    )
    widget = served_types(crd())[0]
    assert widget.key("ns", "w1") == "/registry/example.com/widgets/ns/w1"


def test_events_v1_share_core_event_storage() -> None:
    registry = ResourceRegistry()
    events_v1 = registry.lookup("events.k8s.io", "v1", "events")
    assert events_v1 is not None
    assert registry.storage_type(events_v1).key("ns", "e") == "/registry/events/ns/e"


def test_registry_serves_crd_versions_preferred_first() -> None:
    registry = ResourceRegistry()
    registry.set_custom("widgets.example.com", served_types(crd()))
    assert registry.groups()["example.com"] == ["v1", "v1beta1"]
    assert registry.lookup("example.com", "v1beta1", "widgets") is not None
    registry.remove_custom("widgets.example.com")
    assert registry.lookup("example.com", "v1", "widgets") is None


@pytest.mark.parametrize(
    ("group", "resource", "name", "ok"),
    [
        ("", "configmaps", "my.config-1", True),
        ("", "configmaps", "My_Config", False),
        ("", "namespaces", "team.a", False),  # namespaces are DNS labels, no dots
        ("", "namespaces", "team-a", True),
        ("", "services", "1web", False),  # services are DNS-1035 labels
        ("rbac.authorization.k8s.io", "clusterroles", "system:node", True),
        ("rbac.authorization.k8s.io", "clusterroles", "a/b", False),
        ("", "configmaps", "x" * 254, False),
    ],
)
def test_names_are_validated_per_kind(group: str, resource: str, name: str, ok: bool) -> None:
    assert (admission.name_errors(builtin(group, resource), name) == []) is ok


def test_invalid_object_reports_every_cause_with_field_paths() -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "Bad_Name", "labels": {"ok": "fine", "-bad": "x"}},
        "spec": {"containers": [{"name": "a", "image": "x"}, {"name": "a"}]},
    }
    with pytest.raises(apierrors.ApiError) as caught:
        admission.validate(builtin("", "pods"), pod)
    error = caught.value
    assert error.code == 422
    assert error.reason == "Invalid"
    fields = [cause["field"] for cause in (error.details or {})["causes"]]
    assert fields == [
        "metadata.name",
        "metadata.labels",
        "spec.containers[1].name",
        "spec.containers[1].image",
    ]
    assert error.message.startswith('Pod "Bad_Name" is invalid: metadata.name: Invalid value')


def test_deployment_selector_must_match_template_labels() -> None:
    deployment = {
        "metadata": {"name": "d"},
        "spec": {
            "selector": {"matchLabels": {"app": "a"}},
            "template": {
                "metadata": {"labels": {"app": "b"}},
                "spec": {"containers": [{"name": "c", "image": "i"}]},
            },
        },
    }
    with pytest.raises(apierrors.ApiError) as caught:
        admission.validate(builtin("apps", "deployments"), deployment)
    assert "`selector` does not match template `labels`" in caught.value.message


def test_unknown_top_level_fields_are_found_for_builtins_only() -> None:
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "x", "lables": {}},
        "datta": {},
    }
    assert admission.unknown_fields(builtin("", "configmaps"), configmap) == [".datta", ".metadata.lables"]
    widget = served_types(crd())[0]
    assert admission.unknown_fields(widget, {"metadata": {"name": "w"}, "anything": 1}) == []


def test_crd_validation_names_each_problem() -> None:
    assert crd_errors(crd()) == []
    bad = crd(group="nodots", scope="Everywhere")
    bad["metadata"]["name"] = "wrong"
    fields = {field for field, _, _ in crd_errors(bad)}
    assert {"spec.group", "spec.scope"} <= fields
    two_storage = crd()
    two_storage["spec"]["versions"][1]["storage"] = True
    assert any("exactly one version marked as storage" in m for _, _, m in crd_errors(two_storage))
    no_schema = crd()
    del no_schema["spec"]["versions"][0]["schema"]
    assert any("schemas are required" in m for _, _, m in crd_errors(no_schema))


def test_crd_names_conflict_within_a_group() -> None:
    other = crd()
    other["metadata"]["name"] = "gadgets.example.com"
    other["spec"]["names"] = {
        "plural": "gadgets",
        "singular": "gadget",
        "kind": "Gadget",
        "shortNames": ["wd"],
    }
    assert names_conflict(crd(), [other]) == '"wd" is already in use'
    other["spec"]["group"] = "elsewhere.io"
    assert names_conflict(crd(), [other]) is None


def test_custom_objects_are_pruned_and_type_checked() -> None:
    schema = crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    obj = {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w"},
        "spec": {"size": 3, "unknown": True, "extra": {"kept": {"deep": 1}}},
        "stray": "dropped",
    }
    pruned, causes = prune_and_validate(schema, obj)
    assert causes == []
    assert pruned["spec"] == {"size": 3, "extra": {"kept": {"deep": 1}}}
    assert "stray" not in pruned
    assert pruned["metadata"] == {"name": "w"}
    _, causes = prune_and_validate(schema, {"spec": {"size": "big", "color": "green"}})
    assert [(field, reason) for field, reason, _ in causes] == [
        ("spec.size", "FieldValueTypeInvalid"),
        ("spec.color", "FieldValueNotSupported"),
    ]
    _, causes = prune_and_validate(schema, {"spec": {"size": 0}})
    assert causes[0][0] == "spec.size"
    _, causes = prune_and_validate(schema, {"spec": {}})
    assert causes == [("spec.size", "FieldValueRequired", "Required value")]


def test_continue_tokens_round_trip_and_reject_tampering() -> None:
    token = encode_continue("/registry/configmaps/ns/b\x00", 42)
    assert decode_continue(token, "/registry/configmaps/ns/") == ("/registry/configmaps/ns/b\x00", 42)
    with pytest.raises(apierrors.ApiError) as caught:
        decode_continue(token, "/registry/secrets/ns/")
    assert caught.value.code == 400
    with pytest.raises(apierrors.ApiError):
        decode_continue("not-a-token", "/registry/configmaps/")
