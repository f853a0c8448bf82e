"""strongroom's Kubernetes client against the sandbox: discovery, paginated lists, writes and errors."""

from __future__ import annotations

import asyncio
import copy
import logging
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec

import pytest
import yaml
from tests.conftest import Sandbox
from tests.integration.sandboxapi import Kube, configmap, unique
from tests.runasync import run_async

from strongroom.errors import EXIT_UNAVAILABLE, ConflictError, NotFoundError
from strongroom.kube import (
    ApiResource,
    KubeAlreadyExists,
    KubeClient,
    KubeConflict,
    KubeError,
    KubeForbidden,
    KubeInvalid,
    KubeNotFound,
    KubeUnavailable,
)

pytestmark = pytest.mark.integration

P = ParamSpec("P")
CONFIGMAPS = ApiResource("", "v1", "configmaps", "ConfigMap", True)
DEPLOYMENTS = ApiResource("apps", "v1", "deployments", "Deployment", True)
CRDS = ApiResource(
    "apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", False
)


def kubeconfig_doc(sandbox: Sandbox) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(Path(sandbox.kubeconfig).read_text())
    return doc


def write_variant(sandbox: Sandbox, path: Path, change: Callable[[dict[str, Any]], None]) -> str:
    """A copy of the sandbox's kubeconfig with one thing changed."""
    doc = copy.deepcopy(kubeconfig_doc(sandbox))
    change(doc)
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def token_only(doc: dict[str, Any], token: str) -> None:
    user = doc["users"][0]["user"]
    user.pop("client-certificate-data", None)
    user.pop("client-key-data", None)
    user["token"] = token


def deployment(name: str, containers: list[dict[str, Any]]) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": containers}},
        },
    }


def gizmo_crd(group: str) -> dict[str, Any]:
    schema = {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"gizmos.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "gizmos", "singular": "gizmo", "kind": "Gizmo", "shortNames": ["gz"]},
            "versions": [
                {"name": "v1beta1", "served": True, "storage": False, "schema": schema},
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": schema,
                    "subresources": {"status": {}},
                },
                {"name": "v1alpha1", "served": False, "storage": False, "schema": schema},
            ],
        },
    }


@run_async
async def test_discovery_lists_builtins_with_scope_verbs_and_short_names(sandbox: Sandbox) -> None:
    async with await KubeClient.from_kubeconfig(sandbox.kubeconfig) as kube:
        discovery = await kube.discover()
        version = await kube.server_version()

    assert kube.server == sandbox.server
    assert version["major"] == "1"
    assert discovery.failed == {}
    assert all("/" not in r.resource for r in discovery.resources)
    configmaps = discovery.find("", "configmaps")
    assert configmaps is not None
    assert (configmaps.version, configmaps.kind, configmaps.namespaced, configmaps.preferred) == (
        "v1",
        "ConfigMap",
        True,
        True,
    )
    assert configmaps.short_names == ("cm",)
    assert {"create", "get", "list", "patch", "update", "delete", "watch"} <= configmaps.verbs
    namespaces = discovery.by_kind("", "Namespace")
    assert namespaces is not None
    assert (namespaces.resource, namespaces.namespaced, namespaces.short_names) == (
        "namespaces",
        False,
        ("ns",),
    )
    pods = discovery.find("", "pods")
    assert pods is not None
    assert "all" in pods.categories
    deployments = discovery.find("apps", "deployments")
    assert deployments is not None
    assert (deployments.group_version, deployments.kind, deployments.short_names) == (
        "apps/v1",
        "Deployment",
        ("deploy",),
    )
    assert deployments.group_resource in {r.group_resource for r in discovery.preferred()}
    # One entry per group-resource in the preferred list.
    preferred = [r.group_resource for r in discovery.preferred()]
    assert len(preferred) == len(set(preferred))


@run_async
async def test_created_crd_becomes_discoverable_at_its_served_versions(sandbox: Sandbox) -> None:
    group = f"{unique('g')}.example.com"
    async with await KubeClient.from_kubeconfig(sandbox.kubeconfig) as kube:
        await kube.create(CRDS, gizmo_crd(group))
        try:
            v1 = await kube.wait_served(group, "v1", "gizmos", timeout=10)
            v1beta1 = await kube.wait_served(group, "v1beta1", "gizmos", timeout=10)
            discovery = await kube.discover()
        finally:
            await kube.delete(CRDS, f"gizmos.{group}")

    assert (v1.kind, v1.namespaced, v1.short_names, v1.singular, v1.preferred) == (
        "Gizmo",
        True,
        ("gz",),
        "gizmo",
        True,
    )
    assert v1.creatable
    assert v1.listable
    assert (v1beta1.version, v1beta1.preferred) == ("v1beta1", False)
    # v1alpha1 is not served; v1 is the group's preferred version.
    assert [(r.version, r.preferred) for r in discovery.versions_of(f"gizmos.{group}")] == [
        ("v1", True),
        ("v1beta1", False),
    ]
    assert discovery.find(group, "gizmos") == v1
    assert discovery.by_kind(group, "Gizmo") == v1


@run_async
async def test_status_is_written_through_the_status_subresource(sandbox: Sandbox, namespace: str) -> None:
    group = f"{unique('g')}.example.com"
    gizmo = {
        "apiVersion": f"{group}/v1",
        "kind": "Gizmo",
        "metadata": {"name": "g1"},
        "spec": {"size": 1},
        "status": {"phase": "Ready"},
    }
    async with await KubeClient.from_kubeconfig(sandbox.kubeconfig) as kube:
        await kube.create(CRDS, gizmo_crd(group))
        try:
            gizmos = await kube.wait_served(group, "v1", "gizmos", timeout=10)
            created = await kube.create(gizmos, gizmo, namespace)
            with_status = {**created, "status": {"phase": "Ready"}}
            written = await kube.replace(gizmos, with_status, namespace, subresource="status")
            patched = await kube.patch(
                gizmos, "g1", {"status": {"phase": "Done"}}, namespace, subresource="status"
            )
            read = await kube.get(gizmos, "g1", namespace, subresource="status")
        finally:
            await kube.delete(CRDS, f"gizmos.{group}")

    # Create ignores the status of a kind with a status subresource; the subresource writes it.
    assert "status" not in created
    assert written["status"] == {"phase": "Ready"}
    assert patched["status"] == {"phase": "Done"}
    assert read is not None
    assert read["status"] == {"phase": "Done"}


@run_async
async def test_waiting_for_a_resource_that_never_appears_times_out(sandbox: Sandbox) -> None:
    async with await KubeClient.from_kubeconfig(sandbox.kubeconfig) as kube:
        started = time.monotonic()
        with pytest.raises(KubeError) as raised:
            await kube.wait_served("nothing.example.com", "v1", "nothings", timeout=0.5)

    assert time.monotonic() - started < 3
    assert raised.value.reason == "Timeout"
    assert "nothings.nothing.example.com/v1" in raised.value.message


@run_async
async def test_list_pages_reads_1234_configmaps_in_pages_of_500(sandbox: Sandbox, namespace: str) -> None:
    async with await KubeClient.from_kubeconfig(sandbox.kubeconfig) as kube:
        limit = asyncio.Semaphore(32)

        async def make(index: int) -> None:
            labels = {"batch": "odd" if index % 2 else "even"}
            async with limit:
                await kube.create(
                    CONFIGMAPS, configmap(f"cm-{index:04d}", {"i": str(index)}, labels=labels), namespace
                )

        await asyncio.gather(*(make(index) for index in range(1234)))

        pages = [page async for page in kube.list_pages(CONFIGMAPS, namespace=namespace, limit=500)]
        odd = await kube.list_all(CONFIGMAPS, namespace=namespace, label_selector="batch=odd", limit=500)
        one = await kube.list_all(CONFIGMAPS, namespace=namespace, field_selector="metadata.name=cm-0007")

    # 1,234 of ours plus the namespace's kube-root-ca.crt.
    assert [len(page) for page in pages] == [500, 500, 235]
    items = [item for page in pages for item in page]
    assert all(item["apiVersion"] == "v1" and item["kind"] == "ConfigMap" for item in items)
    names = {item["metadata"]["name"] for item in items}
    assert names == {f"cm-{index:04d}" for index in range(1234)} | {"kube-root-ca.crt"}
    assert len(odd) == 617
    assert all(item["metadata"]["labels"]["batch"] == "odd" and item["kind"] == "ConfigMap" for item in odd)
    assert [item["data"] for item in one] == [{"i": "7"}]


@run_async
async def test_create_get_patch_replace_and_delete_a_configmap(sandbox: Sandbox, namespace: str) -> None:
    async with await KubeClient.from_kubeconfig(sandbox.kubeconfig) as kube:
        dry = await kube.create(CONFIGMAPS, configmap("cfg", {"a": "1"}), namespace, dry_run=True)
        assert dry["metadata"]["name"] == "cfg"
        assert await kube.get(CONFIGMAPS, "cfg", namespace) is None

        created = await kube.create(CONFIGMAPS, configmap("cfg", {"a": "1"}), namespace)
        fetched = await kube.get(CONFIGMAPS, "cfg", namespace)
        assert fetched is not None
        assert fetched["metadata"]["uid"] == created["metadata"]["uid"]
        assert fetched["data"] == {"a": "1"}

        merged = await kube.patch(
            CONFIGMAPS, "cfg", {"data": {"b": "2"}, "metadata": {"labels": {"x": "y"}}}, namespace
        )
        assert merged["data"] == {"a": "1", "b": "2"}
        assert merged["metadata"]["labels"] == {"x": "y"}
        patched = await kube.patch(
            CONFIGMAPS, "cfg", [{"op": "remove", "path": "/data/a"}], namespace, patch_type="json"
        )
        assert patched["data"] == {"b": "2"}

        stale = copy.deepcopy(fetched)
        current = copy.deepcopy(patched)
        current["data"] = {"c": "3"}
        replaced = await kube.replace(CONFIGMAPS, current, namespace)
        assert replaced["data"] == {"c": "3"}
        assert replaced["metadata"]["resourceVersion"] != patched["metadata"]["resourceVersion"]
        with pytest.raises(KubeConflict) as conflict:
            await kube.replace(CONFIGMAPS, stale, namespace)
        assert conflict.value.status == 409
        assert isinstance(conflict.value, ConflictError)

        await kube.delete(CONFIGMAPS, "cfg", namespace, dry_run=True)
        assert await kube.get(CONFIGMAPS, "cfg", namespace) is not None
        await kube.delete(CONFIGMAPS, "cfg", namespace)
        assert await kube.get(CONFIGMAPS, "cfg", namespace) is None


@run_async
async def test_strategic_patch_merges_containers_by_name_where_merge_patch_replaces(
    sandbox: Sandbox, namespace: str
) -> None:
    containers = [{"name": "app", "image": "nginx:1"}, {"name": "sidecar", "image": "busybox:1"}]
    async with await KubeClient.from_kubeconfig(sandbox.kubeconfig) as kube:
        await kube.create(DEPLOYMENTS, deployment("web", containers), namespace)
        change = {"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "image": "busybox:2"}]}}}}

        strategic = await kube.patch(DEPLOYMENTS, "web", change, namespace, patch_type="strategic")
        merged = await kube.patch(DEPLOYMENTS, "web", change, namespace, patch_type="merge")

    images = [(c["name"], c["image"]) for c in strategic["spec"]["template"]["spec"]["containers"]]
    assert images == [("app", "nginx:1"), ("sidecar", "busybox:2")]
    images = [(c["name"], c["image"]) for c in merged["spec"]["template"]["spec"]["containers"]]
    assert images == [("sidecar", "busybox:2")]


@run_async
async def test_api_errors_carry_reason_status_and_the_servers_message(
    sandbox: Sandbox, kube: Kube, namespace: str
) -> None:
    async with await KubeClient.from_kubeconfig(sandbox.kubeconfig) as client:
        with pytest.raises(KubeNotFound) as missing:
            await client.delete(CONFIGMAPS, "absent", namespace)
        with pytest.raises(KubeNotFound) as no_namespace:
            await client.create(CONFIGMAPS, configmap("x"), unique("nons"))
        await client.create(CONFIGMAPS, configmap("twice"), namespace)
        with pytest.raises(KubeAlreadyExists) as twice:
            await client.create(CONFIGMAPS, configmap("twice"), namespace)
        with pytest.raises(KubeInvalid) as invalid:
            await client.create(CONFIGMAPS, configmap("Not_A_Valid_Name"), namespace)

    assert (missing.value.status, missing.value.reason) == (404, "NotFound")
    assert isinstance(missing.value, NotFoundError)
    assert missing.value.message == 'configmaps "absent" not found'
    assert no_namespace.value.reason == "NotFound"
    assert (twice.value.status, twice.value.reason) == (409, "AlreadyExists")
    assert isinstance(twice.value, ConflictError)
    assert '"twice" already exists' in twice.value.message
    raw = kube.request("POST", f"/api/v1/namespaces/{namespace}/configmaps", configmap("Not_A_Valid_Name"))
    assert (invalid.value.status, invalid.value.reason) == (422, "Invalid")
    assert invalid.value.message == raw.body["message"]
    assert "metadata.name: Invalid value" in invalid.value.message


@run_async
async def test_unreachable_server_is_unavailable_quickly_and_hides_the_token(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    secret = "tok-" + unique("secret") * 3
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]

    def point_nowhere(doc: dict[str, Any]) -> None:
        token_only(doc, secret)
        doc["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{closed_port}"

    kubeconfig = write_variant(sandbox, tmp_path / "nowhere.yaml", point_nowhere)
    async with await KubeClient.from_kubeconfig(kubeconfig) as kube:
        started = time.monotonic()
        with pytest.raises(KubeUnavailable) as raised:
            await kube.discover()

    assert time.monotonic() - started < 2
    error = raised.value
    assert error.exit_code == EXIT_UNAVAILABLE
    assert f"127.0.0.1:{closed_port}" in error.message
    assert error.hint is not None
    assert "kubeconfig" in error.hint
    assert secret not in f"{error} {error!r} {error.__cause__!r}"


@run_async
async def test_untrusted_server_certificate_is_unavailable(sandbox: Sandbox, tmp_path: Path) -> None:
    def no_ca(doc: dict[str, Any]) -> None:
        doc["clusters"][0]["cluster"].pop("certificate-authority-data")

    async with await KubeClient.from_kubeconfig(
        write_variant(sandbox, tmp_path / "noca.yaml", no_ca)
    ) as kube:
        with pytest.raises(KubeUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
            await kube.server_version()


@run_async
async def test_refused_token_never_appears_in_errors_or_logs(
    sandbox: Sandbox, kube: Kube, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-" + unique("token") * 3
    kubeconfig = write_variant(sandbox, tmp_path / "wrong.yaml", lambda doc: token_only(doc, wrong))

    async with await KubeClient.from_kubeconfig(kubeconfig) as client:
        with pytest.raises(KubeForbidden) as refused:
            await client.get(CONFIGMAPS, "x", "default")
    async with await KubeClient.from_kubeconfig(sandbox.kubeconfig) as client:
        with pytest.raises(KubeNotFound) as missing:
            await client.delete(CONFIGMAPS, "absent", "default")

    assert (refused.value.status, refused.value.reason) == (401, "Unauthorized")
    for error in (refused.value, missing.value):
        text = f"{error} {error!r} {error.hint}"
        assert wrong not in text
        assert kube.token not in text
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "GET /api/v1/namespaces/default/configmaps/x -> 401" in logged
    assert wrong not in logged
    assert kube.token not in logged


EXEC_PLUGIN = """
import datetime, json, os, pathlib
counter = pathlib.Path(os.environ["COUNTER"])
counter.write_text(str(int(counter.read_text() or "0") + 1) if counter.exists() else "1")
# Within client-go's five-minute skew, so every request finds it about to expire.
expiry = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=60)
print(json.dumps({
    "apiVersion": "client.authentication.k8s.io/v1",
    "kind": "ExecCredential",
    "status": {"token": os.environ["TOKEN"], "expirationTimestamp": expiry.strftime("%Y-%m-%dT%H:%M:%SZ")},
}))
"""


@run_async
async def test_an_expiring_exec_plugin_token_is_renewed_before_requests(
    sandbox: Sandbox, kube: Kube, tmp_path: Path
) -> None:
    plugin = tmp_path / "plugin.py"
    plugin.write_text(EXEC_PLUGIN)
    counter = tmp_path / "runs"

    def use_plugin(doc: dict[str, Any]) -> None:
        doc["users"][0]["user"] = {
            "exec": {
                "apiVersion": "client.authentication.k8s.io/v1",
                "command": sys.executable,
                "args": [str(plugin)],
                "env": [{"name": "TOKEN", "value": kube.token}, {"name": "COUNTER", "value": str(counter)}],
            }
        }

    kubeconfig = write_variant(sandbox, tmp_path / "exec.yaml", use_plugin)
    async with await KubeClient.from_kubeconfig(kubeconfig) as client:
        assert counter.read_text() == "1"
        await client.server_version()
        await asyncio.gather(*(client.get(CONFIGMAPS, "kube-root-ca.crt", "default") for _ in range(4)))

    # Once when the kubeconfig was loaded, then once per request (the token was always about to expire).
    assert counter.read_text() == "6"
