"""The sandbox's REST semantics, driven through the official client and raw HTTP as kube-apiserver's are.

Each test works in its own namespace; every expectation is kube-apiserver's
behaviour, so a failure here is a difference between the sandbox and a real
cluster.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from tests.integration.sandboxapi import Kube, api_error, configmap, eventually, gone, unique

pytestmark = pytest.mark.integration

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"


def deployment(name: str, containers: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": containers or [{"name": "web", "image": "nginx:1.27"}]},
            },
        },
    }


def cm_path(namespace: str, name: str = "") -> str:
    return f"/api/v1/namespaces/{namespace}/configmaps" + (f"/{name}" if name else "")


def deploy_path(namespace: str, name: str = "") -> str:
    return f"/apis/apps/v1/namespaces/{namespace}/deployments" + (f"/{name}" if name else "")


# ------------------------------------------------------------------ create


def test_create_sets_uid_creation_timestamp_and_resource_version(kube: Kube, namespace: str) -> None:
    created = kube.core.create_namespaced_config_map(namespace, configmap("settings", {"a": "1"}))

    meta = created.metadata
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", meta.uid)
    assert abs(meta.creation_timestamp - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=1)
    assert int(meta.resource_version) > 0
    assert meta.namespace == namespace
    fetched = kube.core.read_namespaced_config_map("settings", namespace)
    assert fetched.metadata.uid == meta.uid
    assert fetched.metadata.resource_version == meta.resource_version
    assert fetched.data == {"a": "1"}


def test_configmap_has_no_generation(kube: Kube, namespace: str) -> None:
    created = kube.request("POST", cm_path(namespace), configmap("plain"))

    assert created.status == 201
    assert "generation" not in created.body["metadata"]


def test_deployment_generation_starts_at_one_and_bumps_only_on_spec_change(
    kube: Kube, namespace: str
) -> None:
    created = kube.apps.create_namespaced_deployment(namespace, deployment("web"))
    assert created.metadata.generation == 1

    labelled = kube.apps.patch_namespaced_deployment(
        "web", namespace, {"metadata": {"labels": {"tier": "front"}}}
    )
    assert labelled.metadata.generation == 1

    status = kube.request(
        "PATCH",
        deploy_path(namespace, "web") + "/status",
        {"status": {"observedGeneration": 1, "replicas": 1}},
        content_type=MERGE_PATCH,
    )
    assert status.status == 200
    assert status.body["metadata"]["generation"] == 1

    scaled = kube.apps.patch_namespaced_deployment("web", namespace, {"spec": {"replicas": 3}})
    assert scaled.metadata.generation == 2
    assert scaled.status.observed_generation == 1


def test_create_drops_status_of_a_kind_with_a_status_subresource(kube: Kube, namespace: str) -> None:
    body = deployment("web")
    body["status"] = {"replicas": 5, "readyReplicas": 5}

    created = kube.request("POST", deploy_path(namespace), body)

    assert created.status == 201
    assert "readyReplicas" not in (created.body.get("status") or {})
    stored = kube.apps.read_namespaced_deployment("web", namespace)
    assert not stored.status.ready_replicas
    assert not stored.status.replicas


def test_generate_name_appends_a_random_suffix(kube: Kube, namespace: str) -> None:
    body = {"metadata": {"generateName": "job-"}, "data": {}}

    first = kube.core.create_namespaced_config_map(namespace, body)
    second = kube.core.create_namespaced_config_map(namespace, body)

    assert re.fullmatch(r"job-[a-z0-9]{5}", first.metadata.name)
    assert first.metadata.name != second.metadata.name
    assert first.metadata.generate_name == "job-"
    kube.core.read_namespaced_config_map(first.metadata.name, namespace)


def test_create_in_missing_namespace_is_not_found(kube: Kube) -> None:
    missing = unique("missing")

    with pytest.raises(ApiException) as exc_info:
        kube.core.create_namespaced_config_map(missing, configmap("settings"))

    status = api_error(exc_info)
    assert exc_info.value.status == 404
    assert status["reason"] == "NotFound"
    assert status["details"]["kind"] == "namespaces"
    assert status["details"]["name"] == missing


def test_create_in_terminating_namespace_is_forbidden(kube: Kube) -> None:
    name = unique("term")
    kube.core.create_namespace({"metadata": {"name": name}})
    kube.core.create_namespaced_config_map(name, configmap("held", finalizers=["example.com/hold"]))
    kube.core.delete_namespace(name)

    with pytest.raises(ApiException) as exc_info:
        kube.core.create_namespaced_config_map(name, configmap("late"))

    assert exc_info.value.status == 403
    status = api_error(exc_info)
    assert status["reason"] == "Forbidden"
    assert "being terminated" in status["message"]
    # Release the namespace.
    eventually(lambda: kube.core.read_namespaced_config_map("held", name).metadata.deletion_timestamp)
    kube.core.patch_namespaced_config_map("held", name, {"metadata": {"finalizers": None}})
    eventually(lambda: gone(lambda: kube.core.read_namespace(name)))


def test_create_with_a_resource_version_is_refused(kube: Kube, namespace: str) -> None:
    copied = kube.request("POST", cm_path(namespace), configmap("original")).body
    copied["metadata"] = {"name": "copy", "resourceVersion": copied["metadata"]["resourceVersion"]}

    answered = kube.request("POST", cm_path(namespace), copied)

    assert answered.status == 500
    assert answered.body["message"] == "resourceVersion should not be set on objects to be created"
    assert kube.request("GET", cm_path(namespace, "copy")).status == 404


def test_create_existing_name_is_already_exists(kube: Kube, namespace: str) -> None:
    kube.core.create_namespaced_config_map(namespace, configmap("settings"))

    with pytest.raises(ApiException) as exc_info:
        kube.core.create_namespaced_config_map(namespace, configmap("settings"))

    assert exc_info.value.status == 409
    status = api_error(exc_info)
    assert status["reason"] == "AlreadyExists"
    assert status["details"] == {"name": "settings", "kind": "configmaps"}


# -------------------------------------------------------------- get / list


def test_get_missing_object_is_not_found(kube: Kube, namespace: str) -> None:
    with pytest.raises(ApiException) as exc_info:
        kube.core.read_namespaced_config_map("nothing", namespace)

    assert exc_info.value.status == 404
    status = api_error(exc_info)
    assert status["reason"] == "NotFound"
    assert status["message"] == 'configmaps "nothing" not found'


@pytest.fixture
def labelled(kube: Kube, namespace: str) -> str:
    for name, labels in (
        ("a", {"app": "web", "tier": "front"}),
        ("b", {"app": "web", "tier": "back"}),
        ("c", {"app": "db", "tier": "back"}),
        ("d", {"app": "cache"}),
        ("e", {}),
    ):
        kube.core.create_namespaced_config_map(namespace, configmap(name, labels=labels))
    return namespace


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("app=web", {"a", "b"}),
        ("app==web", {"a", "b"}),
        ("app!=web", {"c", "d", "e"}),
        ("app in (web,db)", {"a", "b", "c"}),
        ("app notin (web,db)", {"d", "e"}),
        ("tier", {"a", "b", "c"}),
        ("!tier", {"d", "e"}),
        ("app=web,tier=back", {"b"}),
        ("tier=back,app!=web", {"c"}),
    ],
)
def test_list_with_label_selector(kube: Kube, labelled: str, selector: str, expected: set[str]) -> None:
    listing = kube.core.list_namespaced_config_map(labelled, label_selector=selector)

    assert {item.metadata.name for item in listing.items} - {"kube-root-ca.crt"} == expected


def test_list_with_field_selector_on_name_and_namespace(kube: Kube, labelled: str) -> None:
    by_name = kube.core.list_namespaced_config_map(labelled, field_selector="metadata.name=c")
    assert [item.metadata.name for item in by_name.items] == ["c"]

    not_name = kube.core.list_namespaced_config_map(
        labelled, field_selector="metadata.name!=c", label_selector="app"
    )
    assert {item.metadata.name for item in not_name.items} == {"a", "b", "d"}

    everywhere = kube.core.list_config_map_for_all_namespaces(
        field_selector=f"metadata.namespace={labelled}", label_selector="app"
    )
    assert {item.metadata.name for item in everywhere.items} == {"a", "b", "c", "d"}


def test_list_with_unsupported_field_selector_is_bad_request(kube: Kube, namespace: str) -> None:
    with pytest.raises(ApiException) as exc_info:
        kube.core.list_namespaced_config_map(namespace, field_selector="data.key=value")

    assert exc_info.value.status == 400
    status = api_error(exc_info)
    assert status["reason"] == "BadRequest"
    assert "data.key" in status["message"]


def test_list_with_malformed_label_selector_is_bad_request(kube: Kube, namespace: str) -> None:
    with pytest.raises(ApiException) as exc_info:
        kube.core.list_namespaced_config_map(namespace, label_selector="app in (web")

    assert exc_info.value.status == 400
    assert api_error(exc_info)["reason"] == "BadRequest"


def test_list_pages_return_every_item_exactly_once(kube: Kube, namespace: str) -> None:
    names = {f"item-{i:02d}" for i in range(10)}
    for name in names:
        kube.core.create_namespaced_config_map(namespace, configmap(name, labels={"paged": "yes"}))
    total = len(kube.core.list_namespaced_config_map(namespace).items)

    first = kube.core.list_namespaced_config_map(namespace, limit=3)
    assert len(first.items) == 3
    assert first.metadata.remaining_item_count == total - 3
    assert first.metadata._continue
    # Pages are a consistent snapshot: a later write does not show up in them.
    kube.core.create_namespaced_config_map(namespace, configmap("zz-late"))
    seen = [item.metadata.name for item in first.items]
    token = first.metadata._continue
    while token:
        page = kube.core.list_namespaced_config_map(namespace, limit=3, _continue=token)
        assert page.metadata.resource_version == first.metadata.resource_version
        seen += [item.metadata.name for item in page.items]
        token = page.metadata._continue
        if token:
            assert page.metadata.remaining_item_count == total - len(seen)
        else:
            assert page.metadata.remaining_item_count is None

    assert len(seen) == len(set(seen)) == total
    assert names <= set(seen)
    assert "zz-late" not in seen


def test_paged_list_with_label_selector_returns_only_matches(kube: Kube, namespace: str) -> None:
    for i in range(7):
        kube.core.create_namespaced_config_map(
            namespace, configmap(f"item-{i}", labels={"parity": "even" if i % 2 == 0 else "odd"})
        )

    seen: list[str] = []
    token = None
    while True:
        page = kube.core.list_namespaced_config_map(
            namespace, label_selector="parity=even", limit=2, _continue=token
        )
        assert len(page.items) <= 2
        seen += [item.metadata.name for item in page.items]
        token = page.metadata._continue
        if not token:
            break

    assert seen == ["item-0", "item-2", "item-4", "item-6"]


def test_list_across_all_namespaces(kube: Kube) -> None:
    marker = unique("mark")
    namespaces = [unique("t"), unique("t")]
    for ns in namespaces:
        kube.core.create_namespace({"metadata": {"name": ns}})
        kube.core.create_namespaced_config_map(ns, configmap("shared", labels={"marker": marker}))
    try:
        listing = kube.core.list_config_map_for_all_namespaces(label_selector=f"marker={marker}")
        assert sorted((item.metadata.namespace, item.metadata.name) for item in listing.items) == sorted(
            (ns, "shared") for ns in namespaces
        )
    finally:
        for ns in namespaces:
            kube.core.delete_namespace(ns)


def test_list_resource_version_is_a_revision_that_grows_with_writes(kube: Kube, namespace: str) -> None:
    created = kube.core.create_namespaced_config_map(namespace, configmap("a"))
    before = kube.core.list_namespaced_config_map(namespace)
    assert int(before.metadata.resource_version) >= int(created.metadata.resource_version)
    assert all(
        int(item.metadata.resource_version) <= int(before.metadata.resource_version) for item in before.items
    )

    updated = kube.core.patch_namespaced_config_map("a", namespace, {"data": {"k": "v"}})
    after = kube.core.list_namespaced_config_map(namespace)

    assert int(updated.metadata.resource_version) > int(before.metadata.resource_version)
    assert int(after.metadata.resource_version) >= int(updated.metadata.resource_version)


def test_list_at_an_exact_resource_version_sees_the_past(kube: Kube, namespace: str) -> None:
    kube.core.create_namespaced_config_map(namespace, configmap("a", {"v": "1"}))
    then = kube.core.list_namespaced_config_map(namespace).metadata.resource_version
    kube.core.patch_namespaced_config_map("a", namespace, {"data": {"v": "2"}})
    kube.core.create_namespaced_config_map(namespace, configmap("b"))

    past = kube.core.list_namespaced_config_map(
        namespace, resource_version=then, resource_version_match="Exact"
    )

    assert past.metadata.resource_version == then
    items = {item.metadata.name: item for item in past.items}
    assert "b" not in items
    assert items["a"].data == {"v": "1"}


# ------------------------------------------------------ update / concurrency


def test_update_with_stale_resource_version_is_conflict(kube: Kube, namespace: str) -> None:
    created = kube.core.create_namespaced_config_map(namespace, configmap("settings", {"v": "1"}))
    kube.core.patch_namespaced_config_map("settings", namespace, {"data": {"v": "2"}})

    stale = configmap("settings", {"v": "3"}, resourceVersion=created.metadata.resource_version)
    with pytest.raises(ApiException) as exc_info:
        kube.core.replace_namespaced_config_map("settings", namespace, stale)

    assert exc_info.value.status == 409
    status = api_error(exc_info)
    assert status["reason"] == "Conflict"
    assert "the object has been modified" in status["message"]
    assert kube.core.read_namespaced_config_map("settings", namespace).data == {"v": "2"}


def test_update_without_resource_version_overwrites_unconditionally(kube: Kube, namespace: str) -> None:
    kube.core.create_namespaced_config_map(namespace, configmap("settings", {"v": "1"}))
    kube.core.patch_namespaced_config_map("settings", namespace, {"data": {"v": "2"}})

    replaced = kube.core.replace_namespaced_config_map(
        "settings", namespace, configmap("settings", {"v": "3"})
    )

    assert replaced.data == {"v": "3"}


def test_update_carrying_the_uid_of_a_replaced_object_is_conflict(kube: Kube, namespace: str) -> None:
    first = kube.core.create_namespaced_config_map(namespace, configmap("settings", {"v": "1"}))
    kube.core.delete_namespaced_config_map("settings", namespace)
    kube.core.create_namespaced_config_map(namespace, configmap("settings", {"v": "2"}))

    stale = configmap("settings", {"v": "3"}, uid=first.metadata.uid)
    with pytest.raises(ApiException) as exc_info:
        kube.core.replace_namespaced_config_map("settings", namespace, stale)

    assert exc_info.value.status == 409
    status = api_error(exc_info)
    assert status["reason"] == "Conflict"
    assert f"UID in precondition: {first.metadata.uid}" in status["message"]
    assert kube.core.read_namespaced_config_map("settings", namespace).data == {"v": "2"}


def test_update_of_missing_object_is_not_found(kube: Kube, namespace: str) -> None:
    with pytest.raises(ApiException) as exc_info:
        kube.core.replace_namespaced_config_map("nothing", namespace, configmap("nothing"))

    assert exc_info.value.status == 404


def test_concurrent_read_modify_write_loses_no_update(kube: Kube, namespace: str) -> None:
    kube.core.create_namespaced_config_map(namespace, configmap("counter", {"n": "0"}))
    path = cm_path(namespace, "counter")
    writers, increments = 16, 10
    successes: list[int] = []
    conflicts: list[int] = []
    failures: list[str] = []
    lock = threading.Lock()

    def writer() -> None:
        done = retried = 0
        session = kube.session()
        try:
            while done < increments:
                current = session.request("GET", path)
                if current.status != 200:
                    failures.append(f"GET {current.status}: {current.body}")
                    return
                obj = current.body
                obj["data"]["n"] = str(int(obj["data"]["n"]) + 1)
                written = session.request("PUT", path, obj)
                if written.status == 200:
                    done += 1
                elif written.status == 409 and written.reason == "Conflict":
                    retried += 1
                else:
                    failures.append(f"PUT {written.status}: {written.body}")
                    return
        finally:
            session.close()
        with lock:
            successes.append(done)
            conflicts.append(retried)

    threads = [threading.Thread(target=writer) for _ in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert not failures
    assert sum(successes) == writers * increments
    final = kube.core.read_namespaced_config_map("counter", namespace)
    assert final.data == {"n": str(writers * increments)}
    assert sum(conflicts) > 0  # the writers really raced


def test_unknown_fields_of_a_builtin_kind_are_dropped(kube: Kube, namespace: str) -> None:
    body = configmap("settings", {"a": "1"})
    body["datta"] = {"b": "2"}
    body["metadata"]["lables"] = {"x": "y"}

    created = kube.request("POST", cm_path(namespace), body)
    patched = kube.request(
        "PATCH", cm_path(namespace, "settings"), {"extra": "no", "data": {"c": "3"}}, content_type=MERGE_PATCH
    )

    assert created.status == 201
    assert "datta" not in created.body
    assert "lables" not in created.body["metadata"]
    assert patched.status == 200
    assert "extra" not in patched.body
    stored = kube.request("GET", cm_path(namespace, "settings")).body
    assert set(stored) == {"apiVersion", "kind", "metadata", "data"}
    assert stored["data"] == {"a": "1", "c": "3"}


def test_unknown_fields_with_strict_validation_are_bad_request(kube: Kube, namespace: str) -> None:
    body = configmap("settings")
    body["datta"] = {}

    answered = kube.request("POST", cm_path(namespace), body, query={"fieldValidation": "Strict"})

    assert answered.status == 400
    assert answered.reason == "BadRequest"
    assert 'unknown field "datta"' in answered.body["message"]
    assert kube.request("GET", cm_path(namespace, "settings")).status == 404


# ------------------------------------------------------------------- patch


def test_json_merge_patch_sets_and_removes_keys(kube: Kube, namespace: str) -> None:
    kube.core.create_namespaced_config_map(namespace, configmap("settings", {"keep": "1", "drop": "2"}))

    patched = kube.request(
        "PATCH",
        cm_path(namespace, "settings"),
        {"data": {"drop": None, "new": "3"}, "metadata": {"labels": {"a": "b"}}},
        content_type=MERGE_PATCH,
    )

    assert patched.status == 200
    assert patched.body["data"] == {"keep": "1", "new": "3"}
    assert patched.body["metadata"]["labels"] == {"a": "b"}


def test_json_patch_applies_operations_in_order(kube: Kube, namespace: str) -> None:
    kube.core.create_namespaced_config_map(namespace, configmap("settings", {"a": "1"}))

    patched = kube.request(
        "PATCH",
        cm_path(namespace, "settings"),
        [
            {"op": "test", "path": "/data/a", "value": "1"},
            {"op": "add", "path": "/data/b", "value": "2"},
            {"op": "replace", "path": "/data/a", "value": "10"},
            {"op": "add", "path": "/metadata/labels", "value": {"x": "y"}},
        ],
        content_type=JSON_PATCH,
    )

    assert patched.status == 200
    assert patched.body["data"] == {"a": "10", "b": "2"}
    assert patched.body["metadata"]["labels"] == {"x": "y"}


def test_json_patch_with_failing_test_operation_is_invalid_and_changes_nothing(
    kube: Kube, namespace: str
) -> None:
    created = kube.core.create_namespaced_config_map(namespace, configmap("settings", {"a": "1"}))

    patched = kube.request(
        "PATCH",
        cm_path(namespace, "settings"),
        [
            {"op": "replace", "path": "/data/a", "value": "2"},
            {"op": "test", "path": "/data/a", "value": "1"},
        ],
        content_type=JSON_PATCH,
    )

    assert patched.status == 422
    assert patched.body["kind"] == "Status"
    assert patched.body["reason"] == "Invalid"
    current = kube.core.read_namespaced_config_map("settings", namespace)
    assert current.data == {"a": "1"}
    assert current.metadata.resource_version == created.metadata.resource_version


def test_strategic_merge_patch_merges_containers_and_env_by_name(kube: Kube, namespace: str) -> None:
    kube.apps.create_namespaced_deployment(
        namespace,
        deployment(
            "web",
            [
                {
                    "name": "app",
                    "image": "app:1",
                    "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                },
                {"name": "sidecar", "image": "proxy:1"},
            ],
        ),
    )

    patched = kube.request(
        "PATCH",
        deploy_path(namespace, "web"),
        {
            "spec": {
                "template": {
                    "spec": {
                        "containers": [
                            {
                                "name": "app",
                                "image": "app:2",
                                "env": [{"name": "B", "value": "20"}, {"name": "C", "value": "3"}],
                            }
                        ]
                    }
                }
            }
        },
        content_type=STRATEGIC_PATCH,
    )

    assert patched.status == 200
    containers = {c["name"]: c for c in patched.body["spec"]["template"]["spec"]["containers"]}
    assert set(containers) == {"app", "sidecar"}
    assert containers["app"]["image"] == "app:2"
    assert containers["sidecar"]["image"] == "proxy:1"
    env = {e["name"]: e["value"] for e in containers["app"]["env"]}
    assert env == {"A": "1", "B": "20", "C": "3"}
    assert patched.body["metadata"]["generation"] == 2


def test_strategic_merge_patch_delete_directive_removes_a_container(kube: Kube, namespace: str) -> None:
    kube.apps.create_namespaced_deployment(
        namespace,
        deployment("web", [{"name": "app", "image": "app:1"}, {"name": "sidecar", "image": "proxy:1"}]),
    )

    patched = kube.apps.patch_namespaced_deployment(
        "web",
        namespace,
        {"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "$patch": "delete"}]}}}},
    )

    assert [c.name for c in patched.spec.template.spec.containers] == ["app"]


def test_patch_with_unknown_content_type_is_unsupported_media_type(kube: Kube, namespace: str) -> None:
    kube.core.create_namespaced_config_map(namespace, configmap("settings"))

    patched = kube.request(
        "PATCH", cm_path(namespace, "settings"), {"data": {"a": "1"}}, content_type="application/json"
    )

    assert patched.status == 415
    assert patched.reason == "UnsupportedMediaType"


def test_patch_of_missing_object_is_not_found(kube: Kube, namespace: str) -> None:
    patched = kube.request(
        "PATCH", cm_path(namespace, "nothing"), {"data": {"a": "1"}}, content_type=MERGE_PATCH
    )

    assert patched.status == 404
    assert patched.reason == "NotFound"


# -------------------------------------------------------- status subresource


def cronjob(name: str) -> dict[str, Any]:
    """A kind with a status subresource that no sandbox controller writes (Deployments have one now)."""
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": name},
        "spec": {
            "schedule": "0 7 * * *",
            "jobTemplate": {
                "spec": {
                    "template": {
                        "spec": {
                            "restartPolicy": "Never",
                            "containers": [{"name": "tick", "image": "busybox", "command": ["true"]}],
                        }
                    }
                }
            },
        },
    }


def cronjob_path(namespace: str, name: str = "") -> str:
    return f"/apis/batch/v1/namespaces/{namespace}/cronjobs" + (f"/{name}" if name else "")


def test_update_of_main_resource_ignores_status(kube: Kube, namespace: str) -> None:
    assert kube.request("POST", cronjob_path(namespace), cronjob("tick")).status == 201
    current = kube.request("GET", cronjob_path(namespace, "tick")).body
    current["status"] = {"lastScheduleTime": "2024-01-01T07:00:00Z"}
    current["metadata"]["labels"] = {"changed": "yes"}

    replaced = kube.request("PUT", cronjob_path(namespace, "tick"), current)
    patched = kube.request(
        "PATCH",
        cronjob_path(namespace, "tick"),
        {"status": {"lastSuccessfulTime": "2024-01-01T07:01:00Z"}},
        content_type=MERGE_PATCH,
    )

    assert replaced.status == 200
    assert replaced.body["metadata"]["labels"] == {"changed": "yes"}
    assert patched.status == 200
    for body in (replaced.body, patched.body, kube.request("GET", cronjob_path(namespace, "tick")).body):
        assert "lastScheduleTime" not in (body.get("status") or {})
        assert "lastSuccessfulTime" not in (body.get("status") or {})


def test_status_subresource_ignores_spec_changes(kube: Kube, namespace: str) -> None:
    assert kube.request("POST", cronjob_path(namespace), cronjob("tick")).status == 201
    current = kube.request("GET", cronjob_path(namespace, "tick")).body
    current["spec"]["schedule"] = "0 8 * * *"
    current["status"] = {"lastScheduleTime": "2024-01-01T07:00:00Z"}

    updated = kube.request("PUT", cronjob_path(namespace, "tick") + "/status", current)
    patched = kube.request(
        "PATCH",
        cronjob_path(namespace, "tick") + "/status",
        {"spec": {"suspend": True}, "status": {"lastSuccessfulTime": "2024-01-01T07:01:00Z"}},
        content_type=MERGE_PATCH,
    )

    assert updated.status == 200
    assert patched.status == 200
    stored = kube.request("GET", cronjob_path(namespace, "tick")).body
    assert stored["spec"]["schedule"] == "0 7 * * *"
    assert not stored["spec"].get("suspend")
    assert stored["metadata"]["generation"] == 1
    assert stored["status"] == {
        "lastScheduleTime": "2024-01-01T07:00:00Z",
        "lastSuccessfulTime": "2024-01-01T07:01:00Z",
    }


# -------------------------------------------------------------------- delete


def test_delete_returns_success_status_and_object_is_gone(kube: Kube, namespace: str) -> None:
    created = kube.core.create_namespaced_config_map(namespace, configmap("settings"))

    deleted = kube.request("DELETE", cm_path(namespace, "settings"))

    assert deleted.status == 200
    assert deleted.body["kind"] == "Status"
    assert deleted.body["status"] == "Success"
    assert deleted.body["details"]["uid"] == created.metadata.uid
    assert kube.request("GET", cm_path(namespace, "settings")).status == 404
    assert kube.request("DELETE", cm_path(namespace, "settings")).status == 404


def test_delete_of_a_service_account_answers_with_the_object(kube: Kube, namespace: str) -> None:
    created = kube.core.create_namespaced_service_account(namespace, {"metadata": {"name": "robot"}})

    answer = kube.request("DELETE", f"/api/v1/namespaces/{namespace}/serviceaccounts/robot")

    assert answer.status == 200
    assert answer.body["kind"] == "ServiceAccount"
    assert answer.body["metadata"]["uid"] == created.metadata.uid


def test_delete_with_stale_precondition_is_conflict(kube: Kube, namespace: str) -> None:
    created = kube.core.create_namespaced_config_map(namespace, configmap("settings"))
    kube.core.patch_namespaced_config_map("settings", namespace, {"data": {"a": "1"}})

    with pytest.raises(ApiException) as exc_info:
        kube.core.delete_namespaced_config_map(
            "settings",
            namespace,
            body=client.V1DeleteOptions(
                preconditions=client.V1Preconditions(resource_version=created.metadata.resource_version)
            ),
        )

    assert exc_info.value.status == 409
    assert api_error(exc_info)["reason"] == "Conflict"
    kube.core.read_namespaced_config_map("settings", namespace)


def test_delete_with_finalizer_waits_until_the_finalizer_is_removed(kube: Kube, namespace: str) -> None:
    kube.core.create_namespaced_config_map(
        namespace, configmap("held", finalizers=["example.com/hold", "example.com/other"])
    )

    deleting = kube.request("DELETE", cm_path(namespace, "held"))

    assert deleting.status == 200
    assert deleting.body["kind"] == "ConfigMap"
    assert deleting.body["metadata"]["deletionTimestamp"]
    stored = kube.core.read_namespaced_config_map("held", namespace)
    assert stored.metadata.deletion_timestamp is not None
    assert stored.metadata.finalizers == ["example.com/hold", "example.com/other"]

    # Deleting again keeps the first deletionTimestamp.
    again = kube.request("DELETE", cm_path(namespace, "held"))
    assert again.status == 200
    assert again.body["metadata"]["deletionTimestamp"] == deleting.body["metadata"]["deletionTimestamp"]

    one_left = kube.request(
        "PATCH",
        cm_path(namespace, "held"),
        {"metadata": {"finalizers": ["example.com/hold"]}},
        content_type=MERGE_PATCH,
    )
    assert one_left.status == 200
    assert kube.core.read_namespaced_config_map("held", namespace).metadata.finalizers == ["example.com/hold"]

    kube.core.patch_namespaced_config_map("held", namespace, {"metadata": {"finalizers": None}})
    assert gone(lambda: kube.core.read_namespaced_config_map("held", namespace))


def test_no_finalizer_can_be_added_to_an_object_being_deleted(kube: Kube, namespace: str) -> None:
    kube.core.create_namespaced_config_map(namespace, configmap("held", finalizers=["example.com/hold"]))
    kube.core.delete_namespaced_config_map("held", namespace)

    answered = kube.request(
        "PATCH",
        cm_path(namespace, "held"),
        {"metadata": {"finalizers": ["example.com/hold", "example.com/late"]}},
        content_type=MERGE_PATCH,
    )

    assert answered.status == 422
    assert answered.reason == "Invalid"
    (cause,) = answered.body["details"]["causes"]
    assert (cause["field"], cause["reason"]) == ("metadata.finalizers", "FieldValueForbidden")
    assert kube.core.read_namespaced_config_map("held", namespace).metadata.finalizers == ["example.com/hold"]
    kube.core.patch_namespaced_config_map("held", namespace, {"metadata": {"finalizers": None}})


def test_delete_collection_removes_only_selected_objects(kube: Kube, namespace: str) -> None:
    for name, labels in (("a", {"drop": "yes"}), ("b", {"drop": "yes"}), ("c", {"drop": "no"})):
        kube.core.create_namespaced_config_map(namespace, configmap(name, labels=labels))

    kube.core.delete_collection_namespaced_config_map(namespace, label_selector="drop=yes")

    remaining = kube.core.list_namespaced_config_map(namespace, label_selector="drop")
    assert [item.metadata.name for item in remaining.items] == ["c"]


# ------------------------------------------------------------------ dry run


def test_dry_run_create_answers_but_stores_nothing(kube: Kube, namespace: str) -> None:
    answered = kube.request(
        "POST", cm_path(namespace), configmap("ghost", {"a": "1"}), query={"dryRun": "All"}
    )

    assert answered.status == 201
    assert answered.body["metadata"]["name"] == "ghost"
    assert answered.body["metadata"]["uid"]
    assert answered.body["metadata"]["creationTimestamp"]
    assert answered.body["data"] == {"a": "1"}
    assert kube.request("GET", cm_path(namespace, "ghost")).status == 404


def test_dry_run_create_still_validates(kube: Kube, namespace: str) -> None:
    answered = kube.request("POST", cm_path(namespace), configmap("Bad_Name"), query={"dryRun": "All"})

    assert answered.status == 422
    assert answered.reason == "Invalid"


def test_dry_run_update_patch_and_delete_change_nothing(kube: Kube, namespace: str) -> None:
    created = kube.core.create_namespaced_config_map(namespace, configmap("settings", {"a": "1"}))
    rv = created.metadata.resource_version
    path = cm_path(namespace, "settings")

    updated = kube.request("PUT", path, configmap("settings", {"a": "2"}), query={"dryRun": "All"})
    patched = kube.request(
        "PATCH", path, {"data": {"a": "3"}}, content_type=MERGE_PATCH, query={"dryRun": "All"}
    )
    deleted = kube.request("DELETE", path, query={"dryRun": "All"})

    assert updated.status == 200
    assert updated.body["data"] == {"a": "2"}
    assert patched.status == 200
    assert patched.body["data"] == {"a": "3"}
    assert deleted.status == 200
    stored = kube.core.read_namespaced_config_map("settings", namespace)
    assert stored.data == {"a": "1"}
    assert stored.metadata.resource_version == rv


def test_dry_run_with_unsupported_value_is_bad_request(kube: Kube, namespace: str) -> None:
    answered = kube.request("POST", cm_path(namespace), configmap("x"), query={"dryRun": "Some"})

    assert answered.status == 400
    assert kube.request("GET", cm_path(namespace, "x")).status == 404


# -------------------------------------------------------------------- errors


def test_malformed_json_body_is_bad_request(kube: Kube, namespace: str) -> None:
    answered = kube.request("POST", cm_path(namespace), raw=b'{"metadata": {"name": ')

    assert answered.status == 400
    assert answered.body["kind"] == "Status"
    assert answered.body["status"] == "Failure"
    assert answered.body["reason"] == "BadRequest"
    assert answered.body["code"] == 400


def test_malformed_yaml_body_is_bad_request(kube: Kube, namespace: str) -> None:
    answered = kube.request(
        "POST", cm_path(namespace), raw=b"metadata:\n  name: [unclosed\n", content_type="application/yaml"
    )
    assert answered.status == 400
    assert answered.reason == "BadRequest"
    assert "YAML" in answered.body["message"]


def test_yaml_body_creates_like_json(kube: Kube, namespace: str) -> None:
    body = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-yaml\ndata:\n  k: v\n"
    answered = kube.request("POST", cm_path(namespace), raw=body, content_type="application/yaml")
    assert answered.status == 201
    assert kube.core.read_namespaced_config_map("from-yaml", namespace).data == {"k": "v"}


def test_bad_writes_leave_the_stored_object_untouched(kube: Kube, namespace: str) -> None:
    kube.core.create_namespaced_config_map(namespace, {"metadata": {"name": "kept"}, "data": {"a": "1"}})
    before = kube.core.read_namespaced_config_map("kept", namespace)
    path = cm_path(namespace, "kept")
    attempts = [
        kube.request("PUT", path, raw=b"{not json"),
        kube.request("PUT", path, raw=b"[1, 2]"),
        kube.request("PUT", path, {"metadata": {"name": "other"}, "data": {"a": "2"}}),
        kube.request("PATCH", path, raw=b"{broken", content_type="application/merge-patch+json"),
        kube.request(
            "PATCH", path, [{"op": "remove", "path": "/nope"}], content_type="application/json-patch+json"
        ),
        kube.request(
            "PATCH",
            path,
            {"metadata": {"labels": {"-bad": "x"}}},
            content_type="application/merge-patch+json",
        ),
        kube.request("PUT", path, raw=b"\x00\xff\xfe", content_type="application/vnd.kubernetes.protobuf"),
    ]
    assert [a.status for a in attempts] == [400, 400, 400, 400, 422, 422, 415]
    after = kube.core.read_namespaced_config_map("kept", namespace)
    assert after.metadata.resource_version == before.metadata.resource_version
    assert after.data == {"a": "1"}


def test_unknown_resource_is_not_found(kube: Kube, namespace: str) -> None:
    for path in (
        f"/api/v1/namespaces/{namespace}/widgets",
        "/apis/nothing.example.com/v1/things",
        "/apis/apps/v9/deployments",
    ):
        answered = kube.request("GET", path)
        assert answered.status == 404, path
        assert answered.body["kind"] == "Status"
        assert answered.reason == "NotFound"


def test_invalid_name_is_invalid_with_causes(kube: Kube, namespace: str) -> None:
    with pytest.raises(ApiException) as exc_info:
        kube.core.create_namespaced_config_map(namespace, configmap("Not_A_DNS_Name"))

    assert exc_info.value.status == 422
    status = api_error(exc_info)
    assert status["reason"] == "Invalid"
    assert status["details"]["name"] == "Not_A_DNS_Name"
    assert status["details"]["kind"] == "ConfigMap"
    causes = status["details"]["causes"]
    assert [(c["field"], c["reason"]) for c in causes] == [("metadata.name", "FieldValueInvalid")]
    assert "RFC 1123" in causes[0]["message"]
    assert status["message"].startswith('ConfigMap "Not_A_DNS_Name" is invalid: metadata.name: Invalid value')


def test_missing_namespace_on_read_is_not_found(kube: Kube) -> None:
    answered = kube.request("GET", f"/api/v1/namespaces/{unique('missing')}")

    assert answered.status == 404
    assert answered.reason == "NotFound"
    assert answered.body["details"]["kind"] == "namespaces"


def test_post_to_an_item_path_is_method_not_allowed(kube: Kube, namespace: str) -> None:
    kube.core.create_namespaced_config_map(namespace, configmap("settings"))

    answered = kube.request("POST", cm_path(namespace, "settings"), configmap("settings"))

    assert answered.status == 405
    assert answered.body["kind"] == "Status"
    assert answered.reason == "MethodNotAllowed"


def test_request_without_credentials_is_unauthorized(kube: Kube, namespace: str) -> None:
    answered = kube.request("GET", cm_path(namespace), token=None)

    assert answered.status == 401
    assert answered.body["kind"] == "Status"
    assert answered.reason == "Unauthorized"


def test_request_with_wrong_token_is_unauthorized(kube: Kube, namespace: str) -> None:
    answered = kube.request("GET", cm_path(namespace), token="not-the-token")

    assert answered.status == 401
    assert answered.reason == "Unauthorized"


def test_body_namespace_that_differs_from_the_url_is_bad_request(kube: Kube, namespace: str) -> None:
    answered = kube.request("POST", cm_path(namespace), configmap("x", namespace="elsewhere"))

    assert answered.status == 400
    assert answered.reason == "BadRequest"
