"""Behaviour of the sandbox's PATCH implementations, checked against kube-apiserver's semantics."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from strongroom.sandbox.patch import (
    OBJECT_META,
    POD_SPEC,
    PatchError,
    apply_json_merge_patch,
    apply_json_patch,
    apply_strategic_merge_patch,
    schema_for,
)

DEPLOYMENT = schema_for("apps", "Deployment")
POD = schema_for("", "Pod")


def pod(*containers: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"containers": list(containers), **spec},
    }


def deployment(*containers: dict[str, Any], **pod_spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {
            "replicas": 2,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": list(containers), **pod_spec},
            },
        },
    }


def containers_of(obj: dict[str, Any]) -> list[dict[str, Any]]:
    spec = obj["spec"]["template"]["spec"] if obj["kind"] == "Deployment" else obj["spec"]
    containers: list[dict[str, Any]] = spec["containers"]
    return containers


def names(items: list[dict[str, Any]], key: str = "name") -> list[Any]:
    return [item[key] for item in items]


def directives_in(value: object) -> list[str]:
    """Every $-key left anywhere in a value."""
    if isinstance(value, dict):
        found = [key for key in value if key.startswith("$")]
        for item in value.values():
            found += directives_in(item)
        return found
    if isinstance(value, list):
        return [key for item in value for key in directives_in(item)]
    return []


# --------------------------------------------------------------------------- JSON merge patch


def test_merge_patch_merges_objects_recursively_and_null_deletes_keys() -> None:
    target = {"metadata": {"labels": {"app": "web", "tier": "front"}, "name": "web"}}
    patch = {"metadata": {"labels": {"tier": None, "team": "shop"}}}

    assert apply_json_merge_patch(target, patch) == {
        "metadata": {"labels": {"app": "web", "team": "shop"}, "name": "web"}
    }


def test_merge_patch_replaces_arrays_wholesale() -> None:
    target = {"spec": {"containers": [{"name": "web", "image": "nginx"}, {"name": "side"}]}}
    patch = {"spec": {"containers": [{"name": "web", "image": "nginx:2"}]}}

    assert apply_json_merge_patch(target, patch) == patch


def test_merge_patch_over_a_non_object_starts_from_an_empty_object_without_nulls() -> None:
    assert apply_json_merge_patch({"a": "text"}, {"a": {"b": 1, "c": None}}) == {"a": {"b": 1}}
    assert apply_json_merge_patch(["not", "an", "object"], {"a": 1}) == {"a": 1}


@pytest.mark.parametrize("patch", [["a"], "text", 3, None])
def test_merge_patch_that_is_not_an_object_replaces_the_target(patch: object) -> None:
    assert apply_json_merge_patch({"a": 1}, patch) == patch


def test_merge_patch_leaves_inputs_untouched_and_shares_nothing_with_them() -> None:
    target = {"a": {"b": [1, 2]}, "keep": {"x": 1}}
    patch = {"a": {"c": {"d": 1}}, "e": [{"f": 1}]}
    target_before, patch_before = copy.deepcopy(target), copy.deepcopy(patch)

    result = apply_json_merge_patch(target, patch)
    assert isinstance(result, dict)
    result["keep"]["x"] = 2
    result["a"]["c"]["d"] = 2
    result["e"][0]["f"] = 2

    assert (target, patch) == (target_before, patch_before)


# --------------------------------------------------------------------------- JSON patch


def test_json_patch_applies_operations_in_order() -> None:
    target = {"metadata": {"labels": {"app": "web"}}, "spec": {"replicas": 1, "ports": [80]}}
    operations = [
        {"op": "test", "path": "/spec/replicas", "value": 1},
        {"op": "replace", "path": "/spec/replicas", "value": 3},
        {"op": "add", "path": "/spec/ports/-", "value": 443},
        {"op": "remove", "path": "/metadata/labels/app"},
        {"op": "copy", "from": "/spec/replicas", "path": "/metadata/labels/replicas"},
        {"op": "move", "from": "/spec/ports", "path": "/ports"},
    ]

    assert apply_json_patch(target, operations) == {
        "metadata": {"labels": {"replicas": 3}},
        "spec": {"replicas": 3},
        "ports": [80, 443],
    }


def test_json_patch_failed_test_operation_raises_patch_error_naming_the_operation() -> None:
    operations = [
        {"op": "replace", "path": "/spec/replicas", "value": 3},
        {"op": "test", "path": "/metadata/resourceVersion", "value": "41"},
    ]

    with pytest.raises(PatchError, match=r'operation 1 \("test" at "/metadata/resourceVersion"\)'):
        apply_json_patch({"metadata": {"resourceVersion": "42"}, "spec": {"replicas": 1}}, operations)


@pytest.mark.parametrize(
    ("operation", "message"),
    [
        ({"op": "remove", "path": "/spec/missing"}, "non-existent"),
        ({"op": "add", "path": "/status/phase", "value": "Running"}, "status"),
        ({"op": "replace", "path": "spec", "value": 1}, "must start with /"),
        ({"op": "add", "path": "/spec/list/7", "value": 1}, "operation 0"),
    ],
)
def test_json_patch_bad_paths_raise_patch_error(operation: dict[str, Any], message: str) -> None:
    with pytest.raises(PatchError, match=message):
        apply_json_patch({"spec": {"list": []}}, [operation])


@pytest.mark.parametrize(
    ("operations", "message"),
    [
        ({"op": "add", "path": "/a", "value": 1}, "must be an array of operations, not object"),
        ("[]", "must be an array of operations, not string"),
        ([["add", "/a", 1]], "operation 0 must be an object, not array"),
        ([{"op": "upsert", "path": "/a", "value": 1}], "Unknown operation"),
        ([{"path": "/a", "value": 1}], r"operation 0 \(malformed\)"),
        ([{"op": "add", "path": "/a"}], "'value'"),
    ],
)
def test_json_patch_rejects_malformed_operations(operations: object, message: str) -> None:
    with pytest.raises(PatchError, match=message):
        apply_json_patch({}, operations)


def test_json_patch_leaves_inputs_untouched_even_when_later_operations_edit_added_values() -> None:
    target = {"spec": {"selector": {"app": "web"}}}
    operations = [
        {"op": "add", "path": "/spec/template", "value": {"metadata": {}}},
        {"op": "add", "path": "/spec/template/metadata/labels", "value": {"app": "web"}},
        {"op": "replace", "path": "/spec/selector/app", "value": "api"},
    ]
    target_before, operations_before = copy.deepcopy(target), copy.deepcopy(operations)

    result = apply_json_patch(target, operations)

    assert result == {
        "spec": {"selector": {"app": "api"}, "template": {"metadata": {"labels": {"app": "web"}}}}
    }
    assert (target, operations) == (target_before, operations_before)


# --------------------------------------------------------------------------- strategic merge patch: maps


def test_maps_merge_recursively_and_null_deletes_keys() -> None:
    target = pod({"name": "web", "image": "nginx"}, nodeSelector={"disk": "ssd", "zone": "a"})
    patch = {"metadata": {"labels": {"app": "web"}}, "spec": {"nodeSelector": {"zone": None, "gpu": "yes"}}}

    result = apply_strategic_merge_patch(target, patch, POD)

    assert result["metadata"] == {"name": "web", "namespace": "shop", "labels": {"app": "web"}}
    assert result["spec"]["nodeSelector"] == {"disk": "ssd", "gpu": "yes"}


def test_null_for_a_missing_key_and_nulls_inside_new_values_are_not_stored() -> None:
    target = pod({"name": "web", "image": "nginx"})
    patch = {"spec": {"hostname": None, "securityContext": {"runAsUser": 1000, "fsGroup": None}}}

    result = apply_strategic_merge_patch(target, patch, POD)

    assert "hostname" not in result["spec"]
    assert result["spec"]["securityContext"] == {"runAsUser": 1000}


def test_a_value_of_another_type_replaces_the_stored_one() -> None:
    result = apply_strategic_merge_patch({"spec": {"x": [1]}}, {"spec": {"x": {"a": 1, "b": None}}}, None)

    assert result == {"spec": {"x": {"a": 1}}}


def test_map_with_replace_strategy_is_replaced_not_merged() -> None:
    pdb = {
        "kind": "PodDisruptionBudget",
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web", "tier": "front"}}},
    }
    patch = {"spec": {"selector": {"matchLabels": {"app": "api"}}}}

    result = apply_strategic_merge_patch(pdb, patch, schema_for("policy", "PodDisruptionBudget"))

    assert result["spec"] == {"minAvailable": 1, "selector": {"matchLabels": {"app": "api"}}}


# --------------------------------------------------------------------------- strategic merge patch: lists


def test_containers_merge_by_name_keeping_unpatched_fields() -> None:
    target = pod(
        {"name": "web", "image": "nginx:1", "args": ["--port", "80"]},
        {"name": "log", "image": "fluentd"},
    )
    patch = {"spec": {"containers": [{"name": "web", "image": "nginx:2"}]}}

    result = apply_strategic_merge_patch(target, patch, POD)

    assert containers_of(result) == [
        {"name": "web", "image": "nginx:2", "args": ["--port", "80"]},
        {"name": "log", "image": "fluentd"},
    ]


def test_new_element_goes_first_unless_the_patch_names_its_neighbours() -> None:
    # kube-apiserver puts elements named by the patch in the patch's order and
    # weaves the others in by their stored position: a lone new element leads.
    target = pod({"name": "web", "image": "nginx"}, {"name": "log", "image": "fluentd"})

    alone = apply_strategic_merge_patch(target, {"spec": {"containers": [{"name": "proxy"}]}}, POD)
    after = apply_strategic_merge_patch(
        target, {"spec": {"containers": [{"name": "web"}, {"name": "log"}, {"name": "proxy"}]}}, POD
    )

    assert names(containers_of(alone)) == ["proxy", "web", "log"]
    assert names(containers_of(after)) == ["web", "log", "proxy"]


def test_elements_named_by_the_patch_follow_its_order_and_others_keep_their_place() -> None:
    target = pod({"name": "web", "env": [{"name": "A"}, {"name": "B", "value": "b"}, {"name": "C"}]})
    patch = {"spec": {"containers": [{"name": "web", "env": [{"name": "C", "value": "c"}, {"name": "A"}]}]}}

    result = apply_strategic_merge_patch(target, patch, POD)

    assert containers_of(result)[0]["env"] == [
        {"name": "B", "value": "b"},
        {"name": "C", "value": "c"},
        {"name": "A"},
    ]


def test_container_fields_merge_by_their_own_keys() -> None:
    target = pod(
        {
            "name": "web",
            "env": [{"name": "MODE", "value": "prod"}],
            "ports": [{"containerPort": 80, "name": "http"}],
            "volumeMounts": [{"mountPath": "/data", "name": "data"}],
            "volumeDevices": [{"devicePath": "/dev/xvda", "name": "raw"}],
        }
    )
    patch = {
        "spec": {
            "containers": [
                {
                    "name": "web",
                    "env": [{"name": "MODE", "value": "debug"}],
                    "ports": [{"containerPort": 80, "protocol": "TCP"}],
                    "volumeMounts": [{"mountPath": "/data", "readOnly": True}],
                    "volumeDevices": [{"devicePath": "/dev/xvda", "name": "raw2"}],
                }
            ]
        }
    }

    web = containers_of(apply_strategic_merge_patch(target, patch, POD))[0]

    assert web["env"] == [{"name": "MODE", "value": "debug"}]
    assert web["ports"] == [{"containerPort": 80, "name": "http", "protocol": "TCP"}]
    assert web["volumeMounts"] == [{"mountPath": "/data", "name": "data", "readOnly": True}]
    assert web["volumeDevices"] == [{"devicePath": "/dev/xvda", "name": "raw2"}]


def test_merge_keys_match_only_values_of_the_same_json_type() -> None:
    target = pod({"name": "web", "ports": [{"containerPort": 80}]})
    patch = {"spec": {"containers": [{"name": "web", "ports": [{"containerPort": "80"}]}]}}

    web = containers_of(apply_strategic_merge_patch(target, patch, POD))[0]

    assert web["ports"] == [{"containerPort": "80"}, {"containerPort": 80}]


@pytest.mark.parametrize(
    ("field", "key", "stored", "patched", "expected"),
    [
        ("initContainers", "name", [{"name": "init", "image": "a"}], [{"name": "init", "image": "b"}], None),
        (
            "ephemeralContainers",
            "name",
            [{"name": "dbg", "tty": True}],
            [{"name": "dbg", "stdin": True}],
            None,
        ),
        ("imagePullSecrets", "name", [{"name": "reg"}], [{"name": "reg2"}], ["reg2", "reg"]),
        ("hostAliases", "ip", [{"ip": "10.0.0.1", "hostnames": ["a"]}], [{"ip": "10.0.0.1"}], None),
        ("topologySpreadConstraints", "topologyKey", [{"topologyKey": "zone", "maxSkew": 1}], [], None),
        ("schedulingGates", "name", [{"name": "a"}], [{"name": "b"}], ["b", "a"]),
    ],
)
def test_pod_spec_lists_merge_by_their_keys(
    field: str, key: str, stored: list[Any], patched: list[Any], expected: list[Any] | None
) -> None:
    result = apply_strategic_merge_patch(pod(**{field: stored}), {"spec": {field: patched}}, POD)

    merged = result["spec"][field]
    if expected is None:
        assert len(merged) == 1
        assert merged[0] == {**stored[0], **(patched[0] if patched else {})}
    else:
        assert names(merged, key) == expected


def test_lists_without_a_patch_strategy_are_replaced_wholesale() -> None:
    target = pod(
        {"name": "web", "args": ["a", "b"], "resizePolicy": [{"resourceName": "cpu", "restartPolicy": "x"}]},
        tolerations=[{"key": "gpu", "operator": "Exists"}],
    )
    patch = {
        "spec": {
            "tolerations": [{"key": "spot", "operator": "Exists"}],
            "containers": [
                {
                    "name": "web",
                    "args": ["c"],
                    "resizePolicy": [{"resourceName": "memory", "restartPolicy": "y"}],
                }
            ],
        }
    }

    result = apply_strategic_merge_patch(target, patch, POD)

    assert result["spec"]["tolerations"] == [{"key": "spot", "operator": "Exists"}]
    assert containers_of(result)[0]["args"] == ["c"]
    assert containers_of(result)[0]["resizePolicy"] == [{"resourceName": "memory", "restartPolicy": "y"}]


def test_without_schema_every_list_is_replaced() -> None:
    target = pod({"name": "web"}, {"name": "log"})

    result = apply_strategic_merge_patch(target, {"spec": {"containers": [{"name": "api"}]}}, None)

    assert containers_of(result) == [{"name": "api"}]


def test_finalizers_take_the_union_keeping_order_without_duplicates() -> None:
    target = {"metadata": {"name": "x", "finalizers": ["a/one", "b/two"]}}
    patch = {"metadata": {"finalizers": ["b/two", "c/three", "c/three"]}}

    result = apply_strategic_merge_patch(target, patch, schema_for("", "ConfigMap"))

    assert result["metadata"]["finalizers"] == ["a/one", "b/two", "c/three"]


def test_an_empty_list_does_not_clear_a_merged_list_but_null_does() -> None:
    target = {"metadata": {"finalizers": ["a"], "ownerReferences": [{"uid": "1", "name": "rs"}]}}

    kept = apply_strategic_merge_patch(target, {"metadata": {"finalizers": [], "ownerReferences": []}}, POD)
    cleared = apply_strategic_merge_patch(target, {"metadata": {"finalizers": None}}, POD)

    assert kept == target
    assert cleared == {"metadata": {"ownerReferences": [{"uid": "1", "name": "rs"}]}}


def test_owner_references_merge_by_uid() -> None:
    target = {"metadata": {"ownerReferences": [{"uid": "1", "name": "rs-a", "controller": True}]}}
    patch = {
        "metadata": {"ownerReferences": [{"uid": "1", "controller": False}, {"uid": "2", "name": "rs-b"}]}
    }

    result = apply_strategic_merge_patch(target, patch, POD)

    assert result["metadata"]["ownerReferences"] == [
        {"uid": "1", "name": "rs-a", "controller": False},
        {"uid": "2", "name": "rs-b"},
    ]


def test_status_conditions_merge_by_type() -> None:
    target = {
        "status": {
            "phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "False"}],
        }
    }
    patch = {"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}

    for group, kind in [("", "Pod"), ("apps", "Deployment"), ("batch", "Job"), ("", "PersistentVolumeClaim")]:
        result = apply_strategic_merge_patch(target, patch, schema_for(group, kind))
        assert result["status"]["conditions"] == [
            {"type": "PodScheduled", "status": "True"},
            {"type": "Ready", "status": "True"},
        ], kind


def test_conditions_without_a_patch_strategy_are_replaced() -> None:
    # CSR and CRD conditions are +listType=map for server-side apply only.
    target = {"status": {"conditions": [{"type": "Approved"}, {"type": "Failed"}]}}
    patch = {"status": {"conditions": [{"type": "Approved", "reason": "ok"}]}}

    for group, kind in [
        ("certificates.k8s.io", "CertificateSigningRequest"),
        ("apiextensions.k8s.io", "CustomResourceDefinition"),
    ]:
        result = apply_strategic_merge_patch(target, patch, schema_for(group, kind))
        assert result["status"]["conditions"] == [{"type": "Approved", "reason": "ok"}], kind


def test_node_addresses_conditions_and_pod_cidrs_merge() -> None:
    node = {
        "spec": {"podCIDRs": ["10.0.0.0/24"]},
        "status": {
            "addresses": [{"type": "InternalIP", "address": "10.1.1.1"}],
            "conditions": [{"type": "Ready", "status": "False"}],
        },
    }
    patch = {
        "spec": {"podCIDRs": ["fd00::/64"]},
        "status": {
            "addresses": [{"type": "Hostname", "address": "node-1"}],
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }

    result = apply_strategic_merge_patch(node, patch, schema_for("", "Node"))

    assert result["spec"]["podCIDRs"] == ["fd00::/64", "10.0.0.0/24"]
    assert names(result["status"]["addresses"], "type") == ["Hostname", "InternalIP"]
    assert result["status"]["conditions"] == [{"type": "Ready", "status": "True"}]


def test_service_ports_merge_by_port() -> None:
    service = {
        "spec": {"ports": [{"port": 80, "targetPort": 8080, "name": "http"}, {"port": 443, "name": "https"}]}
    }
    patch = {"spec": {"ports": [{"port": 80, "targetPort": 9090}]}}

    result = apply_strategic_merge_patch(service, patch, schema_for("", "Service"))

    assert result["spec"]["ports"] == [
        {"port": 80, "targetPort": 9090, "name": "http"},
        {"port": 443, "name": "https"},
    ]


def test_service_account_secrets_merge_but_image_pull_secrets_are_replaced() -> None:
    account = {"secrets": [{"name": "token"}], "imagePullSecrets": [{"name": "registry"}]}
    patch = {"secrets": [{"name": "extra"}], "imagePullSecrets": [{"name": "mirror"}]}

    result = apply_strategic_merge_patch(account, patch, schema_for("", "ServiceAccount"))

    assert result["secrets"] == [{"name": "extra"}, {"name": "token"}]
    assert result["imagePullSecrets"] == [{"name": "mirror"}]


def test_rbac_rules_and_endpoints_subsets_are_replaced() -> None:
    role = {"rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}
    rules = [{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["list"]}]
    endpoints = {"subsets": [{"addresses": [{"ip": "10.0.0.1"}]}]}
    subsets = [{"addresses": [{"ip": "10.0.0.2"}]}]

    assert apply_strategic_merge_patch(
        role, {"rules": rules}, schema_for("rbac.authorization.k8s.io", "Role")
    ) == {"rules": rules}
    assert apply_strategic_merge_patch(endpoints, {"subsets": subsets}, schema_for("", "Endpoints")) == {
        "subsets": subsets
    }


# --------------------------------------------------------------------------- strategic merge patch: $patch


def test_patch_replace_in_a_map_replaces_the_whole_map() -> None:
    target = pod({"name": "web"}, nodeSelector={"disk": "ssd", "zone": "a"})
    patch = {"spec": {"nodeSelector": {"$patch": "replace", "gpu": "yes"}}}

    result = apply_strategic_merge_patch(target, patch, POD)

    assert result["spec"]["nodeSelector"] == {"gpu": "yes"}


def test_patch_replace_for_a_field_the_object_lacks_stores_nothing_as_in_kube_apiserver() -> None:
    target = pod({"name": "web"}, hostname="web-0")
    patch = {
        "spec": {
            "nodeSelector": {"$patch": "replace", "a": "b"},
            "hostname": {"$patch": "replace", "x": "y"},
            "affinity": {"nodeAffinity": {"$patch": "replace", "a": "b"}, "podAffinity": {}},
        }
    }

    result = apply_strategic_merge_patch(target, patch, POD)

    assert "nodeSelector" not in result["spec"]
    assert "hostname" not in result["spec"]
    assert result["spec"]["affinity"] == {"podAffinity": {}}


def test_patch_replace_element_replaces_the_whole_list() -> None:
    target = pod({"name": "web", "image": "nginx"}, {"name": "log"})
    patch = {"spec": {"containers": [{"name": "api", "image": "api:1"}, {"$patch": "replace"}]}}

    result = apply_strategic_merge_patch(target, patch, POD)

    assert containers_of(result) == [{"name": "api", "image": "api:1"}]


def test_patch_delete_in_a_map_empties_it_as_kube_apiserver_does() -> None:
    target = pod({"name": "web"}, nodeSelector={"disk": "ssd"})

    result = apply_strategic_merge_patch(target, {"spec": {"nodeSelector": {"$patch": "delete"}}}, POD)

    assert result["spec"]["nodeSelector"] == {}


def test_patch_delete_for_a_field_the_object_lacks_stores_nothing() -> None:
    result = apply_strategic_merge_patch(
        pod({"name": "web"}), {"spec": {"affinity": {"$patch": "delete"}}}, POD
    )

    assert "affinity" not in result["spec"]


def test_patch_delete_element_removes_the_element_with_that_merge_key() -> None:
    target = pod({"name": "web"}, {"name": "log"}, {"name": "proxy"})
    patch = {"spec": {"containers": [{"name": "log", "$patch": "delete"}]}}

    result = apply_strategic_merge_patch(target, patch, POD)

    assert names(containers_of(result)) == ["web", "proxy"]


def test_patch_delete_element_without_the_merge_key_is_rejected() -> None:
    patch = {"spec": {"containers": [{"image": "nginx", "$patch": "delete"}]}}

    with pytest.raises(PatchError, match=r'spec\.containers\[0\]: .*merge key "name"'):
        apply_strategic_merge_patch(pod({"name": "web"}), patch, POD)


@pytest.mark.parametrize(
    "patch",
    [
        {"spec": {"nodeSelector": {"$patch": "merge", "a": "b"}}},
        {"spec": {"containers": [{"$patch": "merge"}]}},
    ],
)
def test_patch_merge_is_rejected_as_kube_apiserver_does(patch: dict[str, Any]) -> None:
    with pytest.raises(PatchError, match=r'"\$patch": "merge" is not supported'):
        apply_strategic_merge_patch(pod({"name": "web"}, nodeSelector={"x": "y"}), patch, POD)


def test_unknown_patch_value_is_rejected() -> None:
    with pytest.raises(PatchError, match=r'spec\.nodeSelector: unknown "\$patch" directive \'drop\''):
        apply_strategic_merge_patch(
            pod({"name": "web"}, nodeSelector={}), {"spec": {"nodeSelector": {"$patch": "drop"}}}, POD
        )


# --------------------------------------------------------------- strategic merge patch: parallel lists


def test_retain_keys_clears_fields_not_listed() -> None:
    patch = {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": None}}}

    result = apply_strategic_merge_patch(deployment({"name": "web"}), patch, DEPLOYMENT)

    assert result["spec"]["strategy"] == {"type": "Recreate"}


def test_retain_keys_switches_a_volume_to_another_source() -> None:
    target = pod(
        {"name": "web"},
        volumes=[{"name": "data", "emptyDir": {}}, {"name": "conf", "configMap": {"name": "c"}}],
    )
    patch = {
        "spec": {
            "volumes": [{"$retainKeys": ["hostPath", "name"], "name": "data", "hostPath": {"path": "/srv"}}]
        }
    }

    result = apply_strategic_merge_patch(target, patch, POD)

    assert result["spec"]["volumes"] == [
        {"name": "data", "hostPath": {"path": "/srv"}},
        {"name": "conf", "configMap": {"name": "c"}},
    ]


def test_retain_keys_rejects_a_patched_field_it_does_not_list() -> None:
    patch = {
        "spec": {
            "strategy": {"$retainKeys": ["type"], "type": "RollingUpdate", "rollingUpdate": {"maxSurge": 2}}
        }
    }

    with pytest.raises(
        PatchError, match=r'spec\.strategy: field "rollingUpdate" is set by the patch but missing'
    ):
        apply_strategic_merge_patch(deployment({"name": "web"}), patch, DEPLOYMENT)


@pytest.mark.parametrize("retained", ["type", [1], None])
def test_retain_keys_must_be_a_list_of_field_names(retained: object) -> None:
    patch = {"spec": {"strategy": {"$retainKeys": retained, "type": "Recreate"}}}

    with pytest.raises(PatchError, match=r'"\$retainKeys" must be a list of field names'):
        apply_strategic_merge_patch(deployment({"name": "web"}), patch, DEPLOYMENT)


def test_delete_from_primitive_list_removes_those_values() -> None:
    target = {"metadata": {"finalizers": ["a", "b", "c", "b"]}}
    patch = {"metadata": {"$deleteFromPrimitiveList/finalizers": ["b", "zzz"]}}

    result = apply_strategic_merge_patch(target, patch, POD)

    assert result == {"metadata": {"finalizers": ["a", "c"]}}


def test_delete_from_primitive_list_applies_to_replaced_lists_too_and_ignores_absent_ones() -> None:
    target = pod({"name": "web", "args": ["--a", "--b"]})
    patch = {
        "spec": {"containers": [{"name": "web", "$deleteFromPrimitiveList/args": ["--a"]}]},
        "metadata": {"$deleteFromPrimitiveList/finalizers": ["gone"]},
    }

    result = apply_strategic_merge_patch(target, patch, POD)

    assert containers_of(result)[0]["args"] == ["--b"]
    assert "finalizers" not in result["metadata"]


@pytest.mark.parametrize(
    ("field", "values", "message"),
    [
        ("finalizers", "b", "must be a list, not string"),
        ("ownerReferences", [{"uid": "1"}], "lists of primitives only"),
    ],
)
def test_delete_from_primitive_list_rejects_bad_values(field: str, values: object, message: str) -> None:
    target = {"metadata": {"finalizers": ["b"], "ownerReferences": [{"uid": "1"}]}}

    with pytest.raises(PatchError, match=message):
        apply_strategic_merge_patch(target, {"metadata": {f"$deleteFromPrimitiveList/{field}": values}}, POD)


def test_set_element_order_puts_the_merged_list_in_that_order() -> None:
    target = pod({"name": "web"}, {"name": "log"}, {"name": "proxy"})
    patch = {
        "spec": {
            "$setElementOrder/containers": [{"name": "proxy"}, {"name": "web"}, {"name": "log"}],
            "containers": [{"name": "web", "image": "nginx:2"}],
        }
    }

    result = apply_strategic_merge_patch(target, patch, POD)

    assert containers_of(result) == [{"name": "proxy"}, {"name": "web", "image": "nginx:2"}, {"name": "log"}]


def test_set_element_order_alone_reorders_a_primitive_list() -> None:
    target = {"metadata": {"finalizers": ["a", "b", "c"]}}

    result = apply_strategic_merge_patch(
        target, {"metadata": {"$setElementOrder/finalizers": ["c", "a", "b"]}}, POD
    )

    assert result == {"metadata": {"finalizers": ["c", "a", "b"]}}


def test_set_element_order_keeps_elements_it_does_not_name_at_their_stored_place() -> None:
    # A sidecar injected by a webhook is unknown to the applier.
    target = pod({"name": "istio-proxy"}, {"name": "web"})
    patch = {
        "spec": {
            "$setElementOrder/containers": [{"name": "web"}, {"name": "metrics"}],
            "containers": [{"name": "metrics", "image": "exporter"}],
        }
    }

    result = apply_strategic_merge_patch(target, patch, POD)

    assert names(containers_of(result)) == ["istio-proxy", "web", "metrics"]


def test_set_element_order_for_a_list_the_object_lacks_stores_the_patch_list() -> None:
    patch = {
        "spec": {
            "$setElementOrder/initContainers": [{"name": "a"}, {"name": "b"}],
            "initContainers": [{"name": "a"}, {"name": "b", "$patch": "delete"}],
        }
    }

    result = apply_strategic_merge_patch(pod({"name": "web"}), patch, POD)

    assert result["spec"]["initContainers"] == [{"name": "a"}]


def test_set_element_order_rejects_a_patch_list_in_another_order() -> None:
    patch = {
        "spec": {
            "$setElementOrder/containers": [{"name": "web"}, {"name": "log"}],
            "containers": [{"name": "log"}, {"name": "web"}],
        }
    }

    with pytest.raises(PatchError, match=r"spec\.containers: the patch lists 'web' out of the order"):
        apply_strategic_merge_patch(pod({"name": "web"}, {"name": "log"}), patch, POD)


def test_set_element_order_entries_need_the_merge_key() -> None:
    patch = {"spec": {"$setElementOrder/containers": [{"image": "nginx"}]}}

    with pytest.raises(PatchError, match=r'spec\.\$setElementOrder/containers: .* has no merge key "name"'):
        apply_strategic_merge_patch(pod({"name": "web"}), patch, POD)


@pytest.mark.parametrize(
    "key",
    ["$setElementOrder", "$setElementOrder/", "$deleteFromPrimitiveList", "$deleteFromPrimitiveListX/args"],
)
def test_malformed_parallel_list_keys_are_rejected(key: str) -> None:
    with pytest.raises(PatchError, match="malformed directive"):
        apply_strategic_merge_patch(pod({"name": "web"}), {"spec": {key: []}}, POD)


@pytest.mark.parametrize(
    "patch",
    [
        {"spec": {"$merge": {"a": 1}}},
        {"spec": {"containers": [{"name": "web", "$unset": ["image"]}]}},
        {"spec": {"affinity": {"nodeAffinity": {"$retainKey": []}}}},
    ],
)
def test_unknown_dollar_directives_are_rejected_even_in_new_values(patch: dict[str, Any]) -> None:
    with pytest.raises(PatchError, match=r"unknown patch directive \"\$"):
        apply_strategic_merge_patch(pod({"name": "web"}), patch, POD)


def test_json_schema_ref_fields_of_a_crd_are_data_not_directives() -> None:
    crd = {"spec": {"versions": [{"name": "v1", "schema": {"openAPIV3Schema": {"type": "object"}}}]}}
    versions = [{"name": "v1", "schema": {"openAPIV3Schema": {"$ref": "#/defs/x", "$schema": "draft-04"}}}]

    result = apply_strategic_merge_patch(
        crd, {"spec": {"versions": versions}}, schema_for("apiextensions.k8s.io", "CustomResourceDefinition")
    )

    assert result["spec"]["versions"] == versions


# --------------------------------------------------------------------------- kubectl apply


def test_kubectl_apply_patch_updates_a_deployment_and_stores_no_directive() -> None:
    live = deployment(
        {
            "name": "web",
            "image": "nginx:1",
            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
            "ports": [{"containerPort": 80}],
        },
        {"name": "old-sidecar", "image": "busybox"},
        volumes=[{"name": "cache", "emptyDir": {}}],
    )
    live["metadata"]["finalizers"] = ["example.com/a", "example.com/b"]
    # What kubectl apply sends after the manifest changed: env B dropped and C
    # added, a sidecar renamed, the strategy switched, a finalizer removed.
    patch = {
        "metadata": {
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}\n"},
            "$setElementOrder/finalizers": ["example.com/a"],
            "$deleteFromPrimitiveList/finalizers": ["example.com/b"],
        },
        "spec": {
            "strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": None},
            "template": {
                "spec": {
                    "$setElementOrder/containers": [{"name": "web"}, {"name": "sidecar"}],
                    "$setElementOrder/volumes": [{"name": "cache"}],
                    "containers": [
                        {
                            "$setElementOrder/env": [{"name": "A"}, {"name": "C"}],
                            "env": [{"name": "C", "value": "3"}, {"$patch": "delete", "name": "B"}],
                            "image": "nginx:2",
                            "name": "web",
                        },
                        {"image": "busybox:2", "name": "sidecar"},
                        {"$patch": "delete", "name": "old-sidecar"},
                    ],
                    "volumes": [
                        {"$retainKeys": ["name", "hostPath"], "name": "cache", "hostPath": {"path": "/c"}}
                    ],
                }
            },
        },
    }

    result = apply_strategic_merge_patch(live, patch, DEPLOYMENT)

    assert directives_in(result) == []
    assert result["metadata"]["finalizers"] == ["example.com/a"]
    assert result["metadata"]["annotations"] == {"kubectl.kubernetes.io/last-applied-configuration": "{}\n"}
    assert result["spec"]["strategy"] == {"type": "Recreate"}
    assert result["spec"]["replicas"] == 2
    template = result["spec"]["template"]
    assert template["metadata"] == {"labels": {"app": "web"}}
    assert template["spec"]["containers"] == [
        {
            "name": "web",
            "image": "nginx:2",
            "env": [{"name": "A", "value": "1"}, {"name": "C", "value": "3"}],
            "ports": [{"containerPort": 80}],
        },
        {"name": "sidecar", "image": "busybox:2"},
    ]
    assert template["spec"]["volumes"] == [{"name": "cache", "hostPath": {"path": "/c"}}]


def test_kubectl_apply_replacing_a_container_keeps_an_injected_sidecar_first() -> None:
    # kube-apiserver orders against its stored slice after the deleted
    # container's slot was reused by the added one: the sidecar stays ahead.
    live = deployment({"name": "app"}, {"name": "istio-proxy"})
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "$setElementOrder/containers": [{"name": "app2"}],
                    "containers": [{"name": "app2", "image": "app:2"}, {"$patch": "delete", "name": "app"}],
                }
            }
        }
    }

    result = apply_strategic_merge_patch(live, patch, DEPLOYMENT)

    assert names(containers_of(result)) == ["istio-proxy", "app2"]


def test_kubectl_apply_patch_for_a_new_nested_list_leaves_no_directive() -> None:
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "initContainers": [
                        {
                            "name": "migrate",
                            "$setElementOrder/env": [{"name": "X"}],
                            "env": [{"name": "X", "value": "1"}],
                            "$retainKeys": ["name", "env"],
                        }
                    ]
                }
            }
        }
    }

    result = apply_strategic_merge_patch(deployment({"name": "web"}), patch, DEPLOYMENT)

    assert result["spec"]["template"]["spec"]["initContainers"] == [
        {"name": "migrate", "env": [{"name": "X", "value": "1"}]}
    ]


# --------------------------------------------------------------------------- errors and inputs


@pytest.mark.parametrize(
    ("patch", "shown"), [([{"a": 1}], "array"), ("x", "string"), (None, "null"), (1, "integer")]
)
def test_a_strategic_patch_that_is_not_an_object_is_rejected(patch: object, shown: str) -> None:
    with pytest.raises(PatchError, match=f"must be a JSON object, not {shown}"):
        apply_strategic_merge_patch(pod({"name": "web"}), patch, POD)


def test_an_element_without_the_merge_key_is_rejected_with_its_path() -> None:
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "web", "env": [{"value": "1"}]}]}}}}

    with pytest.raises(
        PatchError, match=r"^spec\.template\.spec\.containers\[name='web'\]\.env\[0\]: .*\"name\""
    ):
        apply_strategic_merge_patch(deployment({"name": "web", "env": []}), patch, DEPLOYMENT)


def test_a_stored_element_without_the_merge_key_fails_the_patch_as_in_kube_apiserver() -> None:
    target = pod({"name": "web"}, imagePullSecrets=[{}])

    with pytest.raises(PatchError, match=r"spec\.imagePullSecrets: list element \{\} has no merge key"):
        apply_strategic_merge_patch(target, {"spec": {"imagePullSecrets": [{"name": "reg"}]}}, POD)


@pytest.mark.parametrize(
    ("stored", "patched", "message"),
    [
        (["a"], ["b", 1], "mixing string and integer"),
        ([1], [1.5], "mixing integer and number"),
        ([1], [True], "mixing integer and boolean"),
        (["a"], [["b"]], "lists of lists"),
        (["a"], [None], "null elements"),
    ],
)
def test_merging_lists_with_mismatched_elements_is_rejected(
    stored: list[Any], patched: list[Any], message: str
) -> None:
    target = {"spec": {"podCIDRs": stored}}

    with pytest.raises(PatchError, match=message):
        apply_strategic_merge_patch(target, {"spec": {"podCIDRs": patched}}, schema_for("", "Node"))


def test_strategic_patch_leaves_inputs_untouched_and_shares_nothing_with_them() -> None:
    target = deployment({"name": "web", "env": [{"name": "A"}]}, {"name": "log"})
    target["metadata"]["finalizers"] = ["a", "b"]
    patch = {
        "metadata": {"$deleteFromPrimitiveList/finalizers": ["b"], "labels": {"x": "y"}},
        "spec": {
            "strategy": {"$retainKeys": ["type"], "type": "Recreate"},
            "template": {
                "spec": {
                    "$setElementOrder/containers": [{"name": "log"}, {"name": "web"}],
                    "containers": [{"name": "web", "env": [{"name": "B"}]}],
                    "volumes": [{"name": "v", "emptyDir": {"medium": "Memory"}}],
                }
            },
        },
    }
    target_before, patch_before = copy.deepcopy(target), copy.deepcopy(patch)

    result = apply_strategic_merge_patch(target, patch, DEPLOYMENT)
    result["metadata"]["labels"]["x"] = "changed"
    result["spec"]["template"]["spec"]["volumes"][0]["emptyDir"]["medium"] = "changed"
    web = next(container for container in containers_of(result) if container["name"] == "web")
    web["env"].append({"name": "C"})

    assert target == target_before
    assert patch == patch_before


# --------------------------------------------------------------------------- schema table

BUILT_IN_KINDS = [
    ("", "Pod"),
    ("apps", "Deployment"),
    ("apps", "StatefulSet"),
    ("apps", "DaemonSet"),
    ("apps", "ReplicaSet"),
    ("", "ReplicationController"),
    ("batch", "Job"),
    ("batch", "CronJob"),
    ("", "Service"),
    ("", "Node"),
    ("", "Namespace"),
    ("", "ConfigMap"),
    ("", "Secret"),
    ("", "ServiceAccount"),
    ("", "PersistentVolume"),
    ("", "PersistentVolumeClaim"),
    ("", "Endpoints"),
    ("", "Event"),
    ("", "LimitRange"),
    ("", "ResourceQuota"),
    ("rbac.authorization.k8s.io", "Role"),
    ("rbac.authorization.k8s.io", "RoleBinding"),
    ("rbac.authorization.k8s.io", "ClusterRole"),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
    ("storage.k8s.io", "StorageClass"),
    ("networking.k8s.io", "Ingress"),
    ("networking.k8s.io", "NetworkPolicy"),
    ("certificates.k8s.io", "CertificateSigningRequest"),
    ("coordination.k8s.io", "Lease"),
    ("policy", "PodDisruptionBudget"),
    ("scheduling.k8s.io", "PriorityClass"),
    ("apiextensions.k8s.io", "CustomResourceDefinition"),
    ("events.k8s.io", "Event"),
]


@pytest.mark.parametrize(("group", "kind"), BUILT_IN_KINDS)
def test_every_listed_built_in_kind_has_a_schema_with_object_meta(group: str, kind: str) -> None:
    schema = schema_for(group, kind)

    assert schema is not None
    assert schema.lookup("metadata").schema is OBJECT_META


@pytest.mark.parametrize(
    ("group", "kind"),
    [("example.com", "Widget"), ("", "Deployment"), ("apps", "Pod"), ("velero.io", "Backup"), ("", "pod")],
)
def test_unknown_kinds_have_no_schema(group: str, kind: str) -> None:
    assert schema_for(group, kind) is None


def test_pod_spec_schema_is_shared_by_every_workload() -> None:
    def at(group: str, kind: str, *path: str) -> object:
        schema = schema_for(group, kind)
        for field in path:
            assert schema is not None
            schema = schema.lookup(field).schema
        return schema

    template = ("spec", "template", "spec")
    assert at("", "Pod", "spec") is POD_SPEC
    for group, kind in [
        ("apps", "Deployment"),
        ("apps", "StatefulSet"),
        ("apps", "DaemonSet"),
        ("apps", "ReplicaSet"),
        ("", "ReplicationController"),
        ("batch", "Job"),
    ]:
        assert at(group, kind, *template) is POD_SPEC, kind
    assert at("batch", "CronJob", "spec", "jobTemplate", "spec", "template", "spec") is POD_SPEC


def test_cron_job_patch_merges_containers_deep_in_its_job_template() -> None:
    cron = {
        "spec": {
            "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "job", "image": "a"}]}}}}
        }
    }
    patch = {
        "spec": {
            "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "job", "args": ["x"]}]}}}}
        }
    }

    result = apply_strategic_merge_patch(cron, patch, schema_for("batch", "CronJob"))

    assert result["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"] == [
        {"name": "job", "image": "a", "args": ["x"]}
    ]
