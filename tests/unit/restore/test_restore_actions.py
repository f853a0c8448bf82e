"""Velero's per-kind restore rules, one behaviour per test (expected values from Velero's action tests)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from tests.unit.restore.builders import obj, options, pod, service

from strongroom.restore.actions import (
    ItemRef,
    admission_webhook_action,
    crd_preserve_unknown_fields_action,
    job_action,
    pod_action,
    pod_additional_items,
    rename_pv,
    reset_volume_binding_info,
    role_binding_action,
    secret_action,
    service_account_action,
    service_action,
)
from strongroom.restore.plan import Failed, Prepared, SkipCode, Skipped, prepare_item

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def _ports(svc: dict[str, Any]) -> list[dict[str, Any]]:
    return list(svc["spec"]["ports"])


# --- services --------------------------------------------------------------------


def test_service_cluster_ip_is_reset_unless_headless() -> None:
    normal = service(clusterIP="10.0.0.7", clusterIPs=["10.0.0.7"], loadBalancerIP="1.2.3.4")
    service_action(normal, preserve_node_ports=False)
    assert normal["spec"] == {"loadBalancerIP": "1.2.3.4"}

    headless = service(clusterIP="None", clusterIPs=["None"])
    service_action(headless, preserve_node_ports=False)
    assert headless["spec"] == {"clusterIP": "None", "clusterIPs": ["None"]}


def test_service_node_ports_are_removed_by_default() -> None:
    svc = service(
        type="NodePort", ports=[{"port": 32000, "nodePort": 32000}, {"port": 32001, "nodePort": 32001}]
    )
    service_action(svc, preserve_node_ports=False)
    assert _ports(svc) == [{"port": 32000}, {"port": 32001}]


def test_service_node_ports_are_kept_when_preserving_node_ports() -> None:
    ports = [{"name": "http", "port": 80, "nodePort": 8080}, {"name": "hepsiburada", "nodePort": 9025}]
    svc = service(type="NodePort", ports=[dict(p) for p in ports])
    service_action(svc, preserve_node_ports=True)
    assert _ports(svc) == ports


def test_service_unnamed_node_port_missing_from_last_applied_is_removed() -> None:
    svc = service(
        annotations={LAST_APPLIED: json.dumps({"spec": {"healthCheckNodePort": 8080, "ports": []}})},
        ports=[{"nodePort": 8080}],
    )
    service_action(svc, preserve_node_ports=False)
    assert _ports(svc) == [{}]


def test_service_unnamed_node_port_from_last_applied_is_kept() -> None:
    applied = {"spec": {"ports": [{"port": 0, "targetPort": 0, "nodePort": 8080}]}}
    svc = service(
        annotations={LAST_APPLIED: json.dumps(applied)}, ports=[{"nodePort": 8080}, {"nodePort": 9090}]
    )
    service_action(svc, preserve_node_ports=False)
    assert _ports(svc) == [{"nodePort": 8080}, {}]


@pytest.mark.parametrize("node_port", [8080, "8080"])
def test_service_unnamed_node_port_is_removed_when_only_a_named_one_was_applied(node_port: object) -> None:
    applied = {"spec": {"ports": [{"name": "http", "nodePort": node_port}]}}
    svc = service(annotations={LAST_APPLIED: json.dumps(applied)}, ports=[{"nodePort": 8080}])
    service_action(svc, preserve_node_ports=False)
    assert _ports(svc) == [{}]


def test_service_named_node_port_from_last_applied_is_kept() -> None:
    applied = {"spec": {"ports": [{"name": "http", "nodePort": 8080}]}}
    svc = service(
        annotations={LAST_APPLIED: json.dumps(applied)},
        ports=[{"name": "http", "nodePort": 8080}, {"name": "admin", "nodePort": 9090}],
    )
    service_action(svc, preserve_node_ports=False)
    assert _ports(svc) == [{"name": "http", "nodePort": 8080}, {"name": "admin"}]


def _managed(fields: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"manager": "kubectl", "operation": "Apply", "fieldsType": "FieldsV1", "fieldsV1": fields}]


def test_service_node_port_not_in_managed_fields_is_removed() -> None:
    fields: dict[str, Any] = {
        "f:spec": {
            "f:ports": {
                'k:{"port":443,"protocol":"TCP"}': {".": {}, "f:name": {}, "f:port": {}},
                'k:{"port":80,"protocol":"TCP"}': {".": {}, "f:name": {}, "f:port": {}},
            }
        }
    }
    svc = service(
        managedFields=_managed(fields),
        ports=[
            {"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30000},
            {"name": "https", "port": 443, "protocol": "TCP", "nodePort": 30002},
        ],
    )
    service_action(svc, preserve_node_ports=False)
    assert _ports(svc) == [
        {"name": "http", "port": 80, "protocol": "TCP"},
        {"name": "https", "port": 443, "protocol": "TCP"},
    ]


def test_service_node_port_in_managed_fields_is_kept() -> None:
    fields: dict[str, Any] = {
        "f:spec": {
            "f:ports": {
                'k:{"port":443,"protocol":"TCP"}': {".": {}, "f:name": {}, "f:nodePort": {}, "f:port": {}},
                'k:{"port":80,"protocol":"TCP"}': {".": {}, "f:name": {}, "f:nodePort": {}, "f:port": {}},
            }
        }
    }
    ports = [
        {"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30000},
        {"name": "https", "port": 443, "protocol": "TCP", "nodePort": 30002},
    ]
    svc = service(managedFields=_managed(fields), ports=[dict(p) for p in ports])
    service_action(svc, preserve_node_ports=False)
    assert _ports(svc) == ports


def _lb(**extra: Any) -> dict[str, Any]:
    return service(type="LoadBalancer", externalTrafficPolicy="Local", healthCheckNodePort=8080, **extra)


def test_service_auto_assigned_health_check_node_port_is_removed() -> None:
    svc = _lb()
    service_action(svc, preserve_node_ports=False)
    assert "healthCheckNodePort" not in svc["spec"]


def test_service_health_check_node_port_is_kept_when_preserving_node_ports() -> None:
    svc = _lb()
    service_action(svc, preserve_node_ports=True)
    assert svc["spec"]["healthCheckNodePort"] == 8080


def test_service_health_check_node_port_is_kept_without_local_traffic_policy() -> None:
    svc = service(type="LoadBalancer", externalTrafficPolicy="Cluster", healthCheckNodePort=8080)
    service_action(svc, preserve_node_ports=False)
    assert svc["spec"]["healthCheckNodePort"] == 8080


def test_service_health_check_node_port_from_last_applied_is_kept() -> None:
    svc = _lb(annotations={LAST_APPLIED: json.dumps({"spec": {"healthCheckNodePort": 8080}})})
    service_action(svc, preserve_node_ports=False)
    assert svc["spec"]["healthCheckNodePort"] == 8080


def test_service_health_check_node_port_from_managed_fields_is_kept() -> None:
    svc = _lb(managedFields=_managed({"f:spec": {"f:healthCheckNodePort": {}}}))
    service_action(svc, preserve_node_ports=False)
    assert svc["spec"]["healthCheckNodePort"] == 8080


def test_service_health_check_node_port_null_in_last_applied_is_removed() -> None:
    svc = _lb(annotations={LAST_APPLIED: '{"spec":{"healthCheckNodePort":null}}'})
    service_action(svc, preserve_node_ports=False)
    assert "healthCheckNodePort" not in svc["spec"]


def test_service_external_name_keeps_its_ports() -> None:
    svc = service(
        type="ExternalName", externalName="db.example.com", ports=[{"port": 5432, "nodePort": 30432}]
    )
    service_action(svc, preserve_node_ports=False)
    assert _ports(svc) == [{"port": 5432, "nodePort": 30432}]


def test_service_with_unreadable_last_applied_annotation_fails_the_item() -> None:
    svc = service(annotations={LAST_APPLIED: "{not json"}, ports=[{"port": 80, "nodePort": 30080}])
    result = prepare_item(svc, "services", options())
    assert isinstance(result, Failed)
    assert result.message.startswith("error preparing services/shop/web: invalid JSON in annotation")


# --- pods --------------------------------------------------------------------------


def test_pod_node_name_and_priority_are_removed() -> None:
    item = pod(nodeName="node-1", priority=1000, priorityClassName="high")
    pod_action(item)
    assert "nodeName" not in item["spec"]
    assert "priority" not in item["spec"]
    assert item["spec"]["priorityClassName"] == "high"


def test_pod_service_account_token_volumes_and_mounts_are_removed() -> None:
    item = pod(
        serviceAccountName="foo",
        volumes=[{"name": "foo"}, {"name": "foo-token-foo"}, {"name": "data"}],
        containers=[
            {
                "name": "a",
                "volumeMounts": [
                    {"name": "foo-token-foo", "mountPath": "/t"},
                    {"name": "data", "mountPath": "/d"},
                ],
            },
            {"name": "b", "volumeMounts": [{"name": "foo-token-foo", "mountPath": "/t"}]},
            {"name": "c"},
        ],
        initContainers=[{"name": "init", "volumeMounts": [{"name": "foo-token-bar", "mountPath": "/t"}]}],
    )
    pod_action(item)
    assert item["spec"]["volumes"] == [{"name": "foo"}, {"name": "data"}]
    assert item["spec"]["containers"] == [
        {"name": "a", "volumeMounts": [{"name": "data", "mountPath": "/d"}]},
        {"name": "b"},
        {"name": "c"},
    ]
    assert item["spec"]["initContainers"] == [{"name": "init"}]


def test_pod_needs_its_priority_class_and_claims_restored_first() -> None:
    item = pod(
        priorityClassName="high",
        volumes=[
            {"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
            {"name": "cfg", "configMap": {"name": "c"}},
        ],
    )
    assert pod_additional_items(item, "shop") == (
        ItemRef("priorityclasses.scheduling.k8s.io", None, "high"),
        ItemRef("persistentvolumeclaims", "shop", "data"),
    )


# --- jobs ------------------------------------------------------------------------------


def test_job_controller_uid_selector_and_labels_are_removed() -> None:
    uid_labels = {"controller-uid": "abc", "batch.kubernetes.io/controller-uid": "abc", "job-name": "report"}
    job = obj(
        "batch/v1",
        "Job",
        "report",
        "shop",
        spec={
            "selector": {"matchLabels": dict(uid_labels)},
            "template": {"metadata": {"labels": dict(uid_labels)}, "spec": {"containers": []}},
        },
    )
    job_action(job)
    assert job["spec"]["selector"]["matchLabels"] == {"job-name": "report"}
    assert job["spec"]["template"]["metadata"]["labels"] == {"job-name": "report"}


# --- service accounts and secrets ----------------------------------------------------


@pytest.mark.parametrize(
    ("secrets", "expected"),
    [
        ([], []),
        (["a", "bar-TOKN-nomatch", "baz"], ["a", "bar-TOKN-nomatch", "baz"]),
        (["bar-token-a1b2c", "a", "baz"], ["a", "baz"]),
        (["a", "bar-token-a1b2c", "baz"], ["a", "baz"]),
        (["a", "baz", "bar-token-a1b2c"], ["a", "baz"]),
    ],
)
def test_service_account_token_secret_reference_is_removed(secrets: list[str], expected: list[str]) -> None:
    account = obj("v1", "ServiceAccount", "bar", "foo", secrets=[{"name": name} for name in secrets])
    service_account_action(account)
    assert [entry["name"] for entry in account.get("secrets", [])] == expected


def test_service_account_only_one_token_reference_is_removed_like_velero() -> None:
    account = obj(
        "v1", "ServiceAccount", "bar", "foo", secrets=[{"name": "bar-token-1"}, {"name": "bar-token-2"}]
    )
    service_account_action(account)
    assert account["secrets"] == [{"name": "bar-token-1"}]


def _token_secret(name: str) -> dict[str, Any]:
    return obj(
        "v1",
        "Secret",
        name,
        "foo",
        annotations={"kubernetes.io/service-account.uid": "uid", "key": "value"},
        type="kubernetes.io/service-account-token",
        data={"token": "dG9rZW4=", "ca.crt": "Y2E=", "key": "dmFsdWU="},
    )


def test_secret_that_is_not_a_token_is_restored_unchanged() -> None:
    secret = obj("v1", "Secret", "default-token-sfafa", "foo", type="Opaque", data={"a": "Yg=="})
    before = json.loads(json.dumps(secret))
    assert secret_action(secret, {"default"}) is None
    assert secret == before


def test_auto_created_service_account_token_secret_is_skipped() -> None:
    assert secret_action(_token_secret("default-token-sfafa"), {"default"}) is not None
    result = prepare_item(
        _token_secret("default-token-sfafa"), "secrets", options(), _state_with_accounts({"foo": {"default"}})
    )
    assert isinstance(result, Skipped)
    assert result.code is SkipCode.DISCARDED_BY_ACTION


def test_other_token_secret_loses_uid_annotation_token_and_ca() -> None:
    secret = _token_secret("my-token")
    assert secret_action(secret, {"default"}) is None
    assert secret["metadata"]["annotations"] == {"key": "value"}
    assert secret["data"] == {"key": "dmFsdWU="}


def _state_with_accounts(accounts: dict[str, set[str]]) -> Any:
    from strongroom.restore.plan import RestoreState

    return RestoreState(existing_service_accounts=lambda namespace: accounts.get(namespace, set()))


def test_token_secret_is_skipped_when_its_account_is_restored_earlier_in_the_same_restore() -> None:
    from strongroom.restore.plan import RestoreState

    state = RestoreState()
    account = prepare_item(obj("v1", "ServiceAccount", "builder", "foo"), "serviceaccounts", options(), state)
    assert isinstance(account, Prepared)
    result = prepare_item(_token_secret("builder-token-x1"), "secrets", options(), state)
    assert isinstance(result, Skipped)


# --- volumes -------------------------------------------------------------------------


def test_volume_binding_info_is_reset_on_persistent_volumes() -> None:
    volume = obj(
        "v1",
        "PersistentVolume",
        "pv-1",
        annotations={
            "pv.kubernetes.io/bind-completed": "yes",
            "pv.kubernetes.io/bound-by-controller": "yes",
            "pv.kubernetes.io/provisioned-by": "csi",
        },
        spec={"claimRef": {"namespace": "ns-1", "name": "pvc-1", "uid": "abc", "resourceVersion": "1"}},
    )
    reset_volume_binding_info(volume)
    assert volume["metadata"]["annotations"] == {"pv.kubernetes.io/provisioned-by": "csi"}
    assert volume["spec"]["claimRef"] == {"namespace": "ns-1", "name": "pvc-1"}


def test_renamed_persistent_volume_remembers_its_original_name() -> None:
    volume = obj("v1", "PersistentVolume", "pv-1", spec={})
    rename_pv(volume, "velero-clone-1234")
    assert volume["metadata"]["name"] == "velero-clone-1234"
    assert volume["metadata"]["annotations"] == {"velero.io/original-pv-name": "pv-1"}


# --- RBAC, CRDs, webhooks, API services ------------------------------------------------


@pytest.mark.parametrize("kind", ["RoleBinding", "ClusterRoleBinding"])
def test_role_binding_subjects_follow_namespace_mapping(kind: str) -> None:
    binding = obj(
        "rbac.authorization.k8s.io/v1",
        kind,
        "admins",
        subjects=[
            {"kind": "ServiceAccount", "name": "a", "namespace": "shop"},
            {"kind": "ServiceAccount", "name": "b", "namespace": "other"},
            {"kind": "User", "name": "alice"},
        ],
    )
    role_binding_action(binding, {"shop": "shop-copy"})
    assert [subject.get("namespace") for subject in binding["subjects"]] == ["shop-copy", "other", None]


def test_role_binding_in_remapped_namespace_is_prepared_with_remapped_subjects() -> None:
    binding = obj(
        "rbac.authorization.k8s.io/v1",
        "RoleBinding",
        "admins",
        "shop",
        subjects=[{"kind": "ServiceAccount", "name": "a", "namespace": "shop"}],
        roleRef={"kind": "Role", "name": "admin", "apiGroup": "rbac.authorization.k8s.io"},
    )
    result = prepare_item(
        binding, "rolebindings.rbac.authorization.k8s.io", options(namespace_mapping={"shop": "shop-copy"})
    )
    assert isinstance(result, Prepared)
    assert result.object["subjects"][0]["namespace"] == "shop-copy"
    assert result.object["metadata"]["namespace"] == "shop-copy"


def test_v1_crd_preserve_unknown_fields_moves_into_the_schemas() -> None:
    definition = obj(
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        "crontabs.stable.example.com",
        spec={
            "preserveUnknownFields": True,
            "versions": [
                {"name": "v1", "schema": {"openAPIV3Schema": {"type": "object"}}},
                {"name": "v2"},
            ],
        },
    )
    crd_preserve_unknown_fields_action(definition)
    assert definition["spec"]["preserveUnknownFields"] is False
    assert definition["spec"]["versions"] == [
        {
            "name": "v1",
            "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
        },
        {"name": "v2"},
    ]


def test_v1beta1_crd_is_left_alone() -> None:
    definition = obj(
        "apiextensions.k8s.io/v1beta1",
        "CustomResourceDefinition",
        "x.y",
        spec={"preserveUnknownFields": True},
    )
    crd_preserve_unknown_fields_action(definition)
    assert definition["spec"] == {"preserveUnknownFields": True}


def test_webhook_side_effects_invalid_in_v1_become_none() -> None:
    config = obj(
        "admissionregistration.k8s.io/v1",
        "ValidatingWebhookConfiguration",
        "hooks",
        webhooks=[
            {"name": "a", "sideEffects": "Unknown"},
            {"name": "b", "sideEffects": "NoneOnDryRun"},
            {"name": "c"},
        ],
    )
    admission_webhook_action(config)
    assert [hook["sideEffects"] for hook in config["webhooks"]] == ["None", "NoneOnDryRun", "None"]


def test_managed_api_service_is_not_restored() -> None:
    managed = obj(
        "apiregistration.k8s.io/v1",
        "APIService",
        "v1.apps",
        labels={"kube-aggregator.kubernetes.io/automanaged": "onstart"},
        spec={"group": "apps", "version": "v1"},
    )
    result = prepare_item(managed, "apiservices.apiregistration.k8s.io", options())
    assert isinstance(result, Skipped)
    assert result.code is SkipCode.DISCARDED_BY_ACTION
    own = obj(
        "apiregistration.k8s.io/v1", "APIService", "v1beta1.metrics.k8s.io", spec={"group": "metrics.k8s.io"}
    )
    assert isinstance(prepare_item(own, "apiservices.apiregistration.k8s.io", options()), Prepared)
