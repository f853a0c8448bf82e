"""How KubeClient turns answers into pages, objects and errors, with a scripted ApiClient in place of a server.

The integration suite (tests/integration/test_kube_client.py) drives the real
sandbox; these cases need answers a healthy server will not give on demand:
an expired continue token, a 429 with Retry-After, a body echoing a token,
a page that is still in flight when the caller stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ParamSpec, cast

import aiohttp
import pytest
from kubernetes_asyncio.client import ApiClient, Configuration
from tests.runasync import run_async

from strongroom.errors import (
    EXIT_CONFLICT,
    EXIT_NOT_FOUND,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    ConflictError,
    NotFoundError,
)
from strongroom.kube import (
    ApiResource,
    KubeAlreadyExists,
    KubeClient,
    KubeConfigError,
    KubeConflict,
    KubeError,
    KubeExpired,
    KubeForbidden,
    KubeInvalid,
    KubeNotFound,
    KubeUnavailable,
    collection_path,
    item_path,
)

P = ParamSpec("P")
TOKEN = "s3cr3t-token-value-0123456789"
CONFIGMAPS = ApiResource("", "v1", "configmaps", "ConfigMap", True, verbs=frozenset({"list", "create"}))
DEPLOYMENTS = ApiResource("apps", "v1", "deployments", "Deployment", True)
CLUSTERROLES = ApiResource("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False)


@dataclass
class Answer:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    async def read(self) -> bytes:
        return self.body

    def release(self) -> None:
        pass


def answer(status: int, doc: Any, **headers: str) -> Answer:
    return Answer(status, json.dumps(doc).encode(), headers)


def status_doc(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "code": code,
        "reason": reason,
        "message": message,
    }


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


class ScriptedApi:
    """Stands in for kubernetes-asyncio's ApiClient: records each call and answers from a script."""

    def __init__(self, script: Callable[[Call], Awaitable[Answer]]) -> None:
        self.configuration = Configuration(host="https://kube.example:6443")
        self.configuration.api_key["BearerToken"] = f"Bearer {TOKEN}"
        self.script = script
        self.calls: list[Call] = []
        self.closed = False

    async def call_api(self, path: str, method: str, **kwargs: Any) -> Answer:
        assert kwargs["_preload_content"] is False
        assert kwargs["auth_settings"] == ["BearerToken"]
        call = Call(method, path, dict(kwargs["query_params"]), kwargs["header_params"], kwargs["body"])
        self.calls.append(call)
        return await self.script(call)

    async def close(self) -> None:
        self.closed = True


def client(script: Callable[[Call], Awaitable[Answer]]) -> tuple[KubeClient, ScriptedApi]:
    api = ScriptedApi(script)
    return KubeClient(cast(ApiClient, api), context="test"), api


def configmap_page(names: list[str], token: str = "") -> dict[str, Any]:
    return {
        "kind": "ConfigMapList",
        "apiVersion": "v1",
        "metadata": {"resourceVersion": "7", **({"continue": token} if token else {})},
        "items": [{"metadata": {"name": name, "namespace": "ns"}, "data": {}} for name in names],
    }


def test_paths_follow_the_core_and_named_group_layouts() -> None:
    assert collection_path(CONFIGMAPS, "ns") == "/api/v1/namespaces/ns/configmaps"
    assert collection_path(CONFIGMAPS) == "/api/v1/configmaps"
    assert item_path(DEPLOYMENTS, "web", "ns") == "/apis/apps/v1/namespaces/ns/deployments/web"
    # A namespace passed for a cluster-scoped resource is ignored; colons stay readable.
    assert item_path(CLUSTERROLES, "system:controller:x", "ns") == (
        "/apis/rbac.authorization.k8s.io/v1/clusterroles/system:controller:x"
    )
    assert (
        item_path(DEPLOYMENTS, "web", "ns", "status") == "/apis/apps/v1/namespaces/ns/deployments/web/status"
    )
    with pytest.raises(ValueError, match="namespaced"):
        item_path(CONFIGMAPS, "cm")


@run_async
async def test_pages_carry_api_version_and_kind_and_follow_continue_tokens() -> None:
    async def script(call: Call) -> Answer:
        if "continue" not in call.query:
            return answer(200, configmap_page(["a", "b"], token="t1"))
        return answer(200, configmap_page(["c"]))

    kube, api = client(script)
    pages = [
        page async for page in kube.list_pages(CONFIGMAPS, namespace="ns", label_selector="app=x", limit=2)
    ]

    assert [[item["metadata"]["name"] for item in page] for page in pages] == [["a", "b"], ["c"]]
    assert all(item["apiVersion"] == "v1" and item["kind"] == "ConfigMap" for page in pages for item in page)
    assert [call.query for call in api.calls] == [
        {"limit": "2", "labelSelector": "app=x"},
        {"limit": "2", "labelSelector": "app=x", "continue": "t1"},
    ]
    assert api.calls[0].headers["Accept"] == "application/json"


@run_async
async def test_next_page_is_requested_while_the_caller_works_on_the_current_one() -> None:
    async def script(call: Call) -> Answer:
        token = call.query.get("continue", "")
        if token == "":
            return answer(200, configmap_page(["a"], token="t1"))
        if token == "t1":
            return answer(200, configmap_page(["b"], token="t2"))
        return answer(200, configmap_page(["c"]))

    kube, api = client(script)
    requested_while_processing = []
    async for _page in kube.list_pages(CONFIGMAPS, namespace="ns"):
        for _ in range(5):  # the caller's own awaits, e.g. writing the page to the archive
            await asyncio.sleep(0)
        requested_while_processing.append(len(api.calls))

    # While page 1 was being processed page 2 was already requested, and so on.
    assert requested_while_processing == [2, 3, 3]


@run_async
async def test_stopping_early_cancels_the_page_in_flight() -> None:
    in_flight = asyncio.Event()
    cancelled = asyncio.Event()

    async def script(call: Call) -> Answer:
        if "continue" not in call.query:
            return answer(200, configmap_page(["a"], token="t1"))
        in_flight.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        raise AssertionError("unreachable")

    kube, _ = client(script)
    async with contextlib.aclosing(kube.list_pages(CONFIGMAPS, namespace="ns")) as pages:
        async for _page in pages:
            await in_flight.wait()
            break

    assert cancelled.is_set()


@run_async
async def test_expired_continue_token_is_a_clear_error_not_a_silent_restart() -> None:
    async def script(call: Call) -> Answer:
        if "continue" not in call.query:
            return answer(200, configmap_page([f"cm-{i}" for i in range(500)], token="old"))
        message = "The provided continue parameter is too old to display a consistent list result."
        return answer(410, status_doc(410, "Expired", message))

    kube, api = client(script)
    received = []
    with pytest.raises(KubeExpired) as raised:
        async for page in kube.list_pages(CONFIGMAPS, namespace="ns"):
            received.append(len(page))

    assert received == [500]
    assert len(api.calls) == 2
    error = raised.value
    assert (error.status, error.reason) == (410, "Expired")
    assert "listing configmaps failed after 500 items" in error.message
    assert "too old" in error.message
    assert error.hint is not None
    assert "start it again" in error.hint


@run_async
async def test_too_many_requests_with_retry_after_is_retried() -> None:
    async def script(call: Call) -> Answer:
        if len(api.calls) == 1:
            return answer(429, status_doc(429, "TooManyRequests", "slow down"), **{"Retry-After": "0"})
        return answer(200, {"kind": "ConfigMap", "metadata": {"name": "cm"}})

    kube, api = client(script)
    created = await kube.create(CONFIGMAPS, {"metadata": {"name": "cm"}}, "ns")

    assert created["metadata"]["name"] == "cm"
    assert len(api.calls) == 2


@run_async
async def test_too_many_requests_without_retry_after_fails_at_once() -> None:
    async def script(call: Call) -> Answer:
        return answer(429, status_doc(429, "TooManyRequests", "slow down"))

    kube, api = client(script)
    with pytest.raises(KubeError) as raised:
        await kube.get(CONFIGMAPS, "cm", "ns")

    assert (raised.value.status, raised.value.reason, raised.value.message) == (
        429,
        "TooManyRequests",
        "slow down",
    )
    assert len(api.calls) == 1


@pytest.mark.parametrize(
    ("status", "reason", "expected", "exit_code"),
    [
        (404, "NotFound", KubeNotFound, EXIT_NOT_FOUND),
        (409, "AlreadyExists", KubeAlreadyExists, EXIT_CONFLICT),
        (409, "Conflict", KubeConflict, EXIT_CONFLICT),
        (422, "Invalid", KubeInvalid, 1),
        (403, "Forbidden", KubeForbidden, 1),
        (503, "ServiceUnavailable", KubeUnavailable, EXIT_UNAVAILABLE),
        (500, "InternalError", KubeError, 1),
    ],
)
def test_status_answers_become_errors_by_reason(
    status: int, reason: str, expected: type[KubeError], exit_code: int
) -> None:
    async def script(call: Call) -> Answer:
        return answer(status, status_doc(status, reason, f"the server says {reason}"))

    async def delete() -> None:
        kube, _ = client(script)
        await kube.delete(CONFIGMAPS, "cm", "ns")

    with pytest.raises(KubeError) as raised:
        asyncio.run(delete())

    error = raised.value
    assert type(error) is expected
    assert (error.status, error.reason, error.message) == (status, reason, f"the server says {reason}")
    assert (error.method, error.path) == ("DELETE", "/api/v1/namespaces/ns/configmaps/cm")
    assert error.exit_code == exit_code
    assert isinstance(error, NotFoundError) == (status == 404)
    assert isinstance(error, ConflictError) == (status == 409)


@run_async
async def test_a_body_that_is_not_a_status_still_gives_a_short_message() -> None:
    async def script(call: Call) -> Answer:
        return Answer(502, b"<html>" + b"x" * 5000 + b"</html>")

    kube, _ = client(script)
    with pytest.raises(KubeError) as raised:
        await kube.server_version()

    assert raised.value.status == 502
    assert raised.value.message.startswith("GET /version: HTTP 502: <html>")
    assert len(raised.value.message) < 400


@run_async
async def test_credentials_echoed_by_a_server_or_proxy_are_redacted() -> None:
    async def script(call: Call) -> Answer:
        message = f"token {TOKEN} rejected; header was Authorization: Bearer {TOKEN}; Basic dXNlcjpwYXNz"
        return answer(401, status_doc(401, "Unauthorized", message))

    kube, _ = client(script)
    with pytest.raises(KubeForbidden) as raised:
        await kube.get(CONFIGMAPS, "cm", "ns")

    text = f"{raised.value} {raised.value!r} {raised.value.message} {raised.value.hint}"
    assert TOKEN not in text
    assert "dXNlcjpwYXNz" not in text
    assert "<redacted>" in raised.value.message


@pytest.mark.parametrize(
    "failure",
    [aiohttp.ServerDisconnectedError(), TimeoutError(), ConnectionRefusedError(111, "Connection refused")],
)
def test_no_answer_is_unavailable_with_a_hint(failure: BaseException) -> None:
    async def script(call: Call) -> Answer:
        raise failure

    async def get() -> None:
        kube, _ = client(script)
        await kube.get(CONFIGMAPS, "cm", "ns")

    with pytest.raises(KubeUnavailable) as raised:
        asyncio.run(get())

    error = raised.value
    assert error.status is None
    assert error.exit_code == EXIT_UNAVAILABLE
    assert error.message.startswith("cannot reach the Kubernetes API server at https://kube.example:6443")
    assert error.hint is not None
    assert "kubeconfig" in error.hint
    assert "(test)" in error.hint


@run_async
async def test_writes_send_their_content_type_and_dry_run() -> None:
    async def script(call: Call) -> Answer:
        return answer(200, {"kind": "ConfigMap", "metadata": {"name": "cm"}})

    kube, api = client(script)
    body = {"metadata": {"name": "cm", "namespace": "ns"}}
    await kube.create(CONFIGMAPS, body, dry_run=True)
    await kube.replace(CONFIGMAPS, body)
    await kube.patch(CONFIGMAPS, "cm", {"data": {"a": "1"}}, "ns")
    await kube.patch(CONFIGMAPS, "cm", [{"op": "remove", "path": "/data/a"}], "ns", patch_type="json")
    await kube.patch(
        DEPLOYMENTS, "web", {"spec": {"replicas": 2}}, "ns", patch_type="strategic", dry_run=True
    )
    await kube.delete(CONFIGMAPS, "cm", "ns", propagation="Foreground")
    await kube.delete(CONFIGMAPS, "cm", "ns", propagation=None)
    await kube.replace(DEPLOYMENTS, {"metadata": {"name": "web"}, "status": {}}, "ns", subresource="status")
    await kube.patch(DEPLOYMENTS, "web", {"spec": {"replicas": 3}}, "ns", subresource="scale")

    seen = [(c.method, c.path, c.headers["Content-Type"], c.query) for c in api.calls]
    assert seen == [
        ("POST", "/api/v1/namespaces/ns/configmaps", "application/json", {"dryRun": "All"}),
        ("PUT", "/api/v1/namespaces/ns/configmaps/cm", "application/json", {}),
        ("PATCH", "/api/v1/namespaces/ns/configmaps/cm", "application/merge-patch+json", {}),
        ("PATCH", "/api/v1/namespaces/ns/configmaps/cm", "application/json-patch+json", {}),
        (
            "PATCH",
            "/apis/apps/v1/namespaces/ns/deployments/web",
            "application/strategic-merge-patch+json",
            {"dryRun": "All"},
        ),
        ("DELETE", "/api/v1/namespaces/ns/configmaps/cm", "application/json", {}),
        ("DELETE", "/api/v1/namespaces/ns/configmaps/cm", "application/json", {}),
        ("PUT", "/apis/apps/v1/namespaces/ns/deployments/web/status", "application/json", {}),
        ("PATCH", "/apis/apps/v1/namespaces/ns/deployments/web/scale", "application/merge-patch+json", {}),
    ]
    assert api.calls[5].body == {
        "kind": "DeleteOptions",
        "apiVersion": "v1",
        "propagationPolicy": "Foreground",
    }
    assert api.calls[6].body is None
    with pytest.raises(ValueError, match="unknown patch type"):
        await kube.patch(CONFIGMAPS, "cm", {}, "ns", patch_type="apply")
    with pytest.raises(ValueError, match="namespaced"):
        await kube.create(CONFIGMAPS, {"metadata": {"name": "cm"}})


@run_async
async def test_a_group_version_that_fails_discovery_is_recorded_and_skipped() -> None:
    groups = {
        "kind": "APIGroupList",
        "groups": [
            {
                "name": "apps",
                "versions": [{"groupVersion": "apps/v1", "version": "v1"}],
                "preferredVersion": {"groupVersion": "apps/v1", "version": "v1"},
            },
            {
                "name": "metrics.k8s.io",
                "versions": [{"groupVersion": "metrics.k8s.io/v1beta1", "version": "v1beta1"}],
                "preferredVersion": {"groupVersion": "metrics.k8s.io/v1beta1", "version": "v1beta1"},
            },
        ],
    }
    resources = {
        "/api/v1": [{"name": "pods", "kind": "Pod", "namespaced": True, "verbs": ["list"]}],
        "/apis/apps/v1": [
            {"name": "deployments", "kind": "Deployment", "namespaced": True, "verbs": ["list"]}
        ],
    }

    async def script(call: Call) -> Answer:
        if call.path == "/api":
            return answer(200, {"kind": "APIVersions", "versions": ["v1"]})
        if call.path == "/apis":
            return answer(200, groups)
        if call.path in resources:
            return answer(200, {"kind": "APIResourceList", "resources": resources[call.path]})
        return answer(
            503, status_doc(503, "ServiceUnavailable", "the server is currently unable to handle the request")
        )

    kube, _ = client(script)
    discovery = await kube.discover()

    assert [r.group_resource for r in discovery.preferred()] == ["pods", "deployments.apps"]
    assert discovery.failed == {
        "metrics.k8s.io/v1beta1": "the server is currently unable to handle the request"
    }


@run_async
async def test_close_closes_the_api_client() -> None:
    async def script(call: Call) -> Answer:
        raise AssertionError("no request expected")

    kube, api = client(script)
    async with kube:
        pass
    assert api.closed


def write_kubeconfig(path: Path, *, server: str, namespace: str | None = None) -> str:
    context: dict[str, str] = {"cluster": "c", "user": "u"}
    if namespace:
        context["namespace"] = namespace
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": server}}],
        "users": [{"name": "u", "user": {"token": TOKEN}}],
        "contexts": [
            {"name": "main", "context": context},
            {"name": "other", "context": {"cluster": "c", "user": "u"}},
        ],
        "current-context": "main",
    }
    path.write_text(json.dumps(doc))
    return str(path)


@run_async
async def test_kubeconfig_context_gives_server_namespace_and_a_pool_for_parallel_requests(
    tmp_path: Path,
) -> None:
    kubeconfig = write_kubeconfig(tmp_path / "config", server="http://127.0.0.1:1/", namespace="team-a")

    async with await KubeClient.from_kubeconfig(kubeconfig) as kube:
        assert (kube.server, kube.context, kube.namespace) == ("http://127.0.0.1:1", "main", "team-a")
        assert kube.pool_size >= 64
    async with await KubeClient.from_kubeconfig(kubeconfig, context="other") as kube:
        assert (kube.context, kube.namespace) == ("other", None)


@run_async
async def test_missing_kubeconfig_or_context_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(KubeConfigError, match="no kubeconfig file at") as missing:
        await KubeClient.from_kubeconfig(str(tmp_path / "absent"))
    assert missing.value.exit_code == EXIT_USAGE

    kubeconfig = write_kubeconfig(tmp_path / "config", server="http://127.0.0.1:1")
    with pytest.raises(KubeConfigError, match="context nope") as no_context:
        await KubeClient.from_kubeconfig(kubeconfig, context="nope")
    assert TOKEN not in str(no_context.value)

    broken = tmp_path / "broken"
    broken.write_text("clusters: [unclosed\n")
    with pytest.raises(KubeConfigError, match="cannot use the kubeconfig"):
        await KubeClient.from_kubeconfig(str(broken))


def test_the_environment_proxy_is_settled_once_and_no_proxy_is_honoured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from strongroom.model.proxy import environment_proxy

    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert environment_proxy("https://api.example.com:6443") is None
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    assert environment_proxy("https://api.example.com:6443") == "http://proxy.internal:3128"
    monkeypatch.setenv("NO_PROXY", ".example.com")
    assert environment_proxy("https://api.example.com:6443") is None
    # In a pod on OpenShift: the API is at the service network's first address, exempted as a CIDR.
    monkeypatch.setenv("NO_PROXY", ".cluster.local,.svc,172.30.0.0/16")
    assert environment_proxy("https://172.30.0.1:443") is None
    assert environment_proxy("https://api.example.com:6443") == "http://proxy.internal:3128"
