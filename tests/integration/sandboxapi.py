"""Raw HTTP, watch streams and polling for tests that drive the sandbox's API server.

The official `kubernetes` client covers most calls; `Kube.request` and
`Kube.watch` speak raw HTTP for what the client cannot express (media types,
malformed bodies, missing credentials, reading a watch stream line by line).
"""

from __future__ import annotations

import http.client
import json
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

T = TypeVar("T")
JsonObject = dict[str, Any]


@dataclass
class Response:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def reason(self) -> str | None:
        return self.body.get("reason") if isinstance(self.body, dict) else None


@dataclass
class Kube:
    """The sandbox as seen by a client: typed APIs, raw HTTP and watch streams."""

    server: str
    token: str
    ca_file: str
    api: client.ApiClient
    directory: Path

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api)

    @property
    def apps(self) -> client.AppsV1Api:
        return client.AppsV1Api(self.api)

    @property
    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.api)

    @property
    def apiext(self) -> client.ApiextensionsV1Api:
        return client.ApiextensionsV1Api(self.api)

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca_file)

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: dict[str, str] | None = None,
        content_type: str = "application/json",
        token: str | None = "",
        raw: bytes | None = None,
        accept: str = "application/json",
        timeout: float = 30,
    ) -> Response:
        """One HTTP request; `token=None` sends no credentials, "" the sandbox's own token."""
        url = self.server + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        headers = {"Accept": accept}
        if data is not None:
            headers["Content-Type"] = content_type
        if token is not None:
            headers["Authorization"] = f"Bearer {token or self.token}"
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, context=self.ssl_context(), timeout=timeout) as resp:
                return Response(resp.status, _json_or_text(resp.read()), dict(resp.headers))
        except urllib.error.HTTPError as exc:
            with exc:
                return Response(exc.code, _json_or_text(exc.read()), dict(exc.headers))

    def session(self) -> Session:
        """A keep-alive connection of its own, for one thread of many issuing requests."""
        parts = urllib.parse.urlsplit(self.server)
        conn = http.client.HTTPSConnection(
            parts.hostname or "127.0.0.1", parts.port, context=self.ssl_context(), timeout=30
        )
        return Session(conn, self.token)

    def watch(
        self,
        path: str,
        query: dict[str, str],
        *,
        until: Callable[[list[JsonObject]], bool] = lambda events: False,
        timeout: float = 15,
    ) -> list[JsonObject]:
        """Read a watch stream's events until `until(events)` holds or the server ends it."""
        url = f"{self.server}{path}?" + urllib.parse.urlencode({**query, "watch": "true"})
        req = urllib.request.Request(url, headers={"Authorization": f"Bearer {self.token}"})
        events: list[JsonObject] = []
        with urllib.request.urlopen(req, context=self.ssl_context(), timeout=timeout) as resp:
            assert resp.status == 200
            for line in resp:
                if not line.strip():
                    continue
                events.append(json.loads(line))
                if until(events):
                    break
        return events


class Session:
    """Requests over one persistent connection: no TLS handshake per request."""

    def __init__(self, conn: http.client.HTTPSConnection, token: str) -> None:
        self._conn = conn
        self._token = token

    def request(
        self, method: str, path: str, body: Any = None, *, content_type: str = "application/json"
    ) -> Response:
        headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}
        data = None if body is None else json.dumps(body).encode()
        if data is not None:
            headers["Content-Type"] = content_type
        self._conn.request(method, path, body=data, headers=headers)
        resp = self._conn.getresponse()
        return Response(resp.status, _json_or_text(resp.read()), dict(resp.getheaders()))

    def close(self) -> None:
        self._conn.close()


def _json_or_text(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return data.decode(errors="replace")


def eventually(check: Callable[[], T], *, timeout: float = 10.0, interval: float = 0.05) -> T:
    """Poll `check` until it returns a truthy value without failing an assertion; return that value."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            value = check()
            if value:
                return value
            last = None
        except (AssertionError, ApiException) as exc:
            last = exc
        if time.monotonic() >= deadline:
            raise AssertionError(f"not true within {timeout}s: {last!r}") from last
        time.sleep(interval)


def api_error(exc_info: pytest.ExceptionInfo[ApiException]) -> JsonObject:
    """The metav1.Status the server answered with."""
    body: JsonObject = json.loads(exc_info.value.body)
    return body


def gone(read: Callable[[], Any]) -> bool:
    """True when `read` answers 404."""
    try:
        read()
    except ApiException as exc:
        if exc.status == 404:
            return True
        raise
    return False


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def configmap(name: str, data: dict[str, str] | None = None, **meta: Any) -> JsonObject:
    """A ConfigMap body; `meta` goes into its metadata (labels, finalizers, ownerReferences...)."""
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, **meta}, "data": data or {}}
