"""``pods/proxy`` on the sandbox: requests relayed to a pod's HTTP server as kube-apiserver relays them.

One pod, shared by the module, runs a small HTTP server on a free port it declares
as its ``metrics`` container port: ``/metrics`` answers Prometheus text, every other
path echoes the request it received (method, path with query, headers, body) as JSON.
"""

from __future__ import annotations

import http.client
import json
import socket
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import yaml
from kubernetes import client
from tests.conftest import Sandbox
from tests.integration.sandboxapi import Kube, eventually, unique

pytestmark = pytest.mark.integration

JsonObject = dict[str, Any]

SERVER = r"""
import http.server, json, sys

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def answer(self, status, body, content_type, extra=()):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Access-Control-Allow-Origin", "*")
        for key, value in extra:
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        if self.path == "/metrics":
            self.answer(200, b"# TYPE up gauge\nup 1\n", "text/plain; version=0.0.4")
        elif self.path == "/redirect":
            self.answer(302, b"", "text/plain", [("Location", "/metrics")])
        elif self.path == "/big":
            self.answer(200, b"x" * (4 * 1024 * 1024), "application/octet-stream")
        else:
            echo = {"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body}
            status = 201 if self.command == "POST" else 200
            self.answer(status, json.dumps(echo).encode(), "application/json", [("X-Echo", "yes")])

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = handle_any

    def log_message(self, *args):
        pass

http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""


@dataclass(frozen=True)
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Backend:
    namespace: str
    pod: str
    port: int

    @property
    def base(self) -> str:
        return f"/api/v1/namespaces/{self.namespace}/pods/{self.pod}"

    def proxy(self, target: str, path: str = "") -> str:
        return f"/api/v1/namespaces/{self.namespace}/pods/{target}/proxy{path}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def call(
    kube: Kube,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    *,
    token: str | None = "",
) -> Answer:
    """One request over a fresh connection, redirects not followed; `token=None` sends no credentials."""
    parts = urllib.parse.urlsplit(kube.server)
    conn = http.client.HTTPSConnection(parts.hostname or "127.0.0.1", parts.port, context=kube.ssl_context())
    sent = dict(headers or {})
    if token is not None:
        sent["Authorization"] = f"Bearer {token or kube.token}"
    try:
        conn.request(method, path, body=body, headers=sent)
        resp = conn.getresponse()
        return Answer(resp.status, resp.headers, resp.read())
    finally:
        conn.close()


@pytest.fixture(scope="module")
def backend(sandbox: Sandbox, kube: Kube) -> Iterator[Backend]:
    """A running pod whose HTTP server listens on its declared ``metrics`` port."""
    namespace = unique("proxy")
    kube.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    port = free_port()
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web"},
        "spec": {
            "containers": [
                {"name": "sidecar", "image": "busybox"},
                {
                    "name": "server",
                    "image": "python",
                    "command": ["python3", "-c", SERVER, str(port)],
                    "ports": [{"name": "metrics", "containerPort": port}],
                },
            ]
        },
    }
    sandbox.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(pod))
    found = Backend(namespace, "web", port)
    eventually(lambda: call(kube, "GET", found.proxy(f"web:{port}", "/metrics")).status == 200, timeout=20)
    try:
        yield found
    finally:
        kube.core.delete_namespace(namespace)


def test_kubectl_reads_the_metrics_through_the_proxy(sandbox: Sandbox, backend: Backend) -> None:
    out = sandbox.kubectl("get", "--raw", backend.proxy(f"{backend.pod}:{backend.port}", "/metrics"))
    assert out.stdout == "# TYPE up gauge\nup 1\n"
    with_scheme = sandbox.kubectl(
        "get", "--raw", backend.proxy(f"http:{backend.pod}:{backend.port}", "/metrics")
    )
    assert with_scheme.stdout == out.stdout


def test_get_forwards_path_query_and_headers_but_not_credentials(kube: Kube, backend: Backend) -> None:
    path = backend.proxy(f"{backend.pod}:{backend.port}", "/echo/a?x=1&y=two%20words")
    answer = call(kube, "GET", path, headers={"X-Custom": "kept", "Impersonate-User": "admin"})
    assert answer.status == 200
    assert answer.headers["X-Echo"] == "yes"
    assert answer.headers["Content-Type"] == "application/json"
    assert "Access-Control-Allow-Origin" not in answer.headers  # kube drops the backend's CORS headers
    echo = answer.json()
    assert (echo["method"], echo["path"]) == ("GET", "/echo/a?x=1&y=two%20words")
    seen = {k.lower(): v for k, v in echo["headers"].items()}
    assert seen["x-custom"] == "kept"
    assert "authorization" not in seen and "impersonate-user" not in seen
    assert seen["x-forwarded-uri"] == backend.proxy(f"{backend.pod}:{backend.port}", "/echo/a")
    assert seen["x-forwarded-for"]


def test_post_put_patch_delete_options_head_carry_method_and_body(kube: Kube, backend: Backend) -> None:
    path = backend.proxy(f"{backend.pod}:{backend.port}", "/submit?dry=1")
    posted = call(kube, "POST", path, b'{"hello": "pod"}', {"Content-Type": "application/json"})
    assert posted.status == 201
    echo = posted.json()
    assert (echo["method"], echo["path"], echo["body"]) == ("POST", "/submit?dry=1", '{"hello": "pod"}')
    assert echo["headers"]["Content-Type"] == "application/json"
    for method in ("PUT", "PATCH", "DELETE", "OPTIONS"):
        answer = call(kube, method, path, f"body of {method}".encode())
        assert answer.status == 200, (method, answer.body)
        assert (answer.json()["method"], answer.json()["body"]) == (method, f"body of {method}")
    head = call(kube, "HEAD", path)
    assert head.status == 200 and head.body == b"" and head.headers["X-Echo"] == "yes"


def test_without_a_port_the_first_declared_container_port_is_used(kube: Kube, backend: Backend) -> None:
    answer = call(kube, "GET", backend.proxy(backend.pod, "/metrics"))
    assert (answer.status, answer.body) == (200, b"# TYPE up gauge\nup 1\n")


def test_a_port_name_is_not_resolved_from_the_container_ports(kube: Kube, backend: Backend) -> None:
    # kube-apiserver hands the name to the dialer, which knows service names only.
    answer = call(kube, "GET", backend.proxy(f"{backend.pod}:metrics", "/metrics"))
    assert answer.status == 503
    status = answer.json()
    assert status["reason"] == "ServiceUnavailable"
    assert status["message"] == "error trying to reach service: dial tcp: lookup tcp/metrics: unknown port"


def test_a_large_answer_is_relayed_whole(kube: Kube, backend: Backend) -> None:
    answer = call(kube, "GET", backend.proxy(backend.pod, "/big"))
    assert answer.status == 200
    assert len(answer.body) == 4 * 1024 * 1024 and set(answer.body) == {ord("x")}


def test_a_backend_redirect_is_rewritten_through_the_proxy(kube: Kube, backend: Backend) -> None:
    target = f"{backend.pod}:{backend.port}"
    answer = call(kube, "GET", backend.proxy(target, "/redirect"))
    assert answer.status == 302
    assert answer.headers["Location"] == backend.proxy(target, "/metrics")


def test_no_path_redirects_get_to_the_trailing_slash(kube: Kube, backend: Backend) -> None:
    path = backend.proxy(backend.pod)
    answer = call(kube, "GET", f"{path}?a=b")
    assert answer.status == 301
    assert answer.headers["Location"] == f"{path}/?a=b"
    root = call(kube, "GET", f"{path}/")
    assert root.status == 200 and root.json()["path"] == "/"
    posted = call(kube, "POST", path, b"x")
    assert posted.status == 201 and posted.json()["path"] == "/"


def test_errors_are_kube_apiserver_statuses(kube: Kube, backend: Backend) -> None:
    missing = call(kube, "GET", backend.proxy("nope:80", "/metrics"))
    assert missing.status == 404
    assert missing.json()["reason"] == "NotFound" and missing.json()["message"] == 'pods "nope" not found'

    malformed = call(kube, "GET", backend.proxy(f"ftp:{backend.pod}:80", "/"))
    assert malformed.status == 400
    assert malformed.json()["message"] == f'invalid pod request "ftp:{backend.pod}:80"'

    closed = free_port()
    refused = call(kube, "GET", backend.proxy(f"{backend.pod}:{closed}", "/metrics"))
    assert refused.status == 503
    assert refused.json()["reason"] == "ServiceUnavailable"
    assert refused.json()["message"] == (
        f"error trying to reach service: dial tcp 127.0.0.1:{closed}: connect: connection refused"
    )

    traced = call(kube, "TRACE", backend.proxy(backend.pod, "/metrics"))
    assert traced.status == 405

    anonymous = call(kube, "GET", backend.proxy(backend.pod, "/metrics"), token=None)
    assert anonymous.status == 401


def test_a_pod_without_an_address_is_not_proxied(sandbox: Sandbox, kube: Kube, backend: Backend) -> None:
    pending = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "nowhere"},
        "spec": {"nodeSelector": {"no-such-label": "x"}, "containers": [{"name": "c", "image": "busybox"}]},
    }
    sandbox.kubectl("apply", "-n", backend.namespace, "-f", "-", input=yaml.safe_dump(pending))
    answer = call(kube, "GET", backend.proxy("nowhere:80", "/"))
    assert answer.status == 400
    assert answer.json()["message"] == "address not allowed"


def test_discovery_lists_the_proxy_subresource(kube: Kube) -> None:
    answer = call(kube, "GET", "/api/v1")
    entry = next(r for r in answer.json()["resources"] if r["name"] == "pods/proxy")
    assert entry["kind"] == "PodProxyOptions"
    assert entry["verbs"] == ["create", "delete", "get", "patch", "update"]
