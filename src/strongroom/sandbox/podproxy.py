"""``pods/proxy``: HTTP requests relayed to a pod's port, as kube-apiserver relays them.

``/api/v1/namespaces/{ns}/pods/{id}/proxy[/{path}]`` forwards the request (method,
query string, headers, body) to ``{scheme}://{podIP}:{port}/{path}`` and answers with
what the pod answered, streamed. ``{id}`` is ``name``, ``name:port`` or
``scheme:name:port`` with scheme ``http`` or ``https``. This is how tools read a
pod's ``/metrics`` without a Service or a port-forward.

kube-apiserver 1.32's rules (``pod.ResourceLocation`` and the upgrade-aware proxy
handler), which this module follows:

- a malformed id is ``400 invalid pod request "<id>"``; a missing pod is the usual
  ``404 pods "<name>" not found``;
- without a port, the first port of the first container that declares ports; with
  none, the scheme's default port;
- a port *name* is not looked up among the container ports: it goes to the dialer
  as is, which knows only service names (``http`` is 80) and otherwise fails;
- the pod's address is ``status.podIPs[0]``; a pod without one is refused with
  ``400 address not allowed``;
- GET or HEAD of ``.../proxy`` with no path is redirected (301) to ``.../proxy/``;
- a backend that cannot be reached is ``503 ServiceUnavailable``, "error trying to
  reach service: ...";
- hop-by-hop headers, the caller's credentials and impersonation headers are not
  forwarded; CORS headers of the backend are dropped; a backend redirect to its own
  host is rewritten to go through the proxy; https backends are not verified.

Deviations: the sandbox's pod IPs are loopback addresses, which kube-apiserver
refuses to proxy to ("address not allowed"); the sandbox allows them, since its
pods have no other address. Links inside HTML pages are not rewritten, and
protocol upgrades (websockets) are not relayed.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import posixpath
import re
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from strongroom.sandbox import apierrors
from strongroom.sandbox.engine import Engine, Target

__all__ = ["METHODS", "ProxyLocation", "resolve_location", "serve_pod_proxy", "split_id"]

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
"""The methods kube-apiserver relays through ``pods/proxy``; others are 405."""

# RFC 7230 hop-by-hop headers, as Go's reverse proxy removes them both ways.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "proxy-connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
# The API server consumes these; the backend must never see the caller's credentials.
_CONSUMED = frozenset({"authorization", "host", "content-length"})
_CORS = frozenset(
    {
        "access-control-allow-credentials",
        "access-control-allow-headers",
        "access-control-allow-methods",
        "access-control-allow-origin",
    }
)
_PROXY_PATH = re.compile(r"^/api/v1/namespaces/[^/]+/pods/[^/]+/proxy(?P<tail>/.*)?$")
_DIAL_TIMEOUT = 30.0  # a dial gives up after 30 s, as with Go's default transport
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class ProxyLocation:
    """Where a proxied request goes: scheme, pod IP and port (the port as given, maybe a name)."""

    scheme: str
    ip: str
    port: str

    @property
    def host(self) -> str:
        """``ip:port`` as a URL authority; IPv6 addresses in brackets; no port when none was found."""
        ip = f"[{self.ip}]" if ":" in self.ip else self.ip
        return f"{ip}:{self.port}" if self.port else ip


def split_id(pod_id: str) -> tuple[str, str, str]:
    """``name``, ``name:port`` or ``scheme:name:port`` as (scheme, name, port); 400 when malformed."""
    parts = pod_id.split(":")
    scheme, name, port = "", "", ""
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        name, port = parts
    elif len(parts) == 3:
        scheme, name, port = parts
    if not name or scheme not in ("", "http", "https") or len(parts) > 3:
        raise apierrors.bad_request(f'invalid pod request "{pod_id}"')
    return scheme, name, port


def _default_port(pod: dict[str, Any]) -> str:
    """The first port of the first container that declares any, or "" (the scheme's default)."""
    for container in (pod.get("spec") or {}).get("containers") or []:
        ports = container.get("ports") or []
        if ports:
            return str(ports[0].get("containerPort", ""))
    return ""


def _proxyable_ip(pod: dict[str, Any]) -> str:
    """The pod's primary IP, if the proxy may dial it; 400 "address not allowed" otherwise.

    kube-apiserver accepts only global unicast addresses. Loopback is accepted here too:
    every sandbox pod's IP is 127.0.0.1.
    """
    pod_ips = (pod.get("status") or {}).get("podIPs") or []
    raw = str(pod_ips[0].get("ip") or "") if pod_ips and isinstance(pod_ips[0], dict) else ""
    try:
        ip = ipaddress.ip_address(raw)
    except ValueError:
        raise apierrors.bad_request("address not allowed") from None
    broadcast = ip == ipaddress.ip_address("255.255.255.255")
    if ip.is_unspecified or ip.is_multicast or ip.is_link_local or broadcast:
        raise apierrors.bad_request("address not allowed")
    return str(ip)


async def resolve_location(engine: Engine, namespace: str, pod_id: str) -> ProxyLocation:
    """The backend of ``pods/{pod_id}/proxy``; raises kube-apiserver's errors (400, 404)."""
    scheme, name, port = split_id(pod_id)
    rt = engine.registry.lookup("", "v1", "pods")
    if rt is None:  # the core kinds are always registered; guard for the type checker
        raise apierrors.internal("pods are not served")
    pod = await engine.get(Target(rt, namespace, name))  # 404 pods "x" not found
    if not port:
        port = _default_port(pod)
    return ProxyLocation(scheme or "http", _proxyable_ip(pod), port)


def _subpath(request_path: str) -> tuple[str, str]:
    """(the API server's prefix up to ``/proxy``, the backend path), cleaned as kube cleans it.

    An empty backend path means "no path": GET and HEAD are then redirected.
    """
    match = _PROXY_PATH.match(request_path)
    tail = (match.group("tail") if match else None) or ""
    prefix = request_path[: len(request_path) - len(tail)]
    if not tail.strip("/"):
        return prefix, "/" if tail else ""
    cleaned = posixpath.normpath("/" + tail.lstrip("/"))
    if tail.endswith("/") and not cleaned.endswith("/"):
        cleaned += "/"
    return prefix, cleaned


def _dial_port(location: ProxyLocation) -> int:
    """The TCP port to dial; a name is a service name (``/etc/services``), as Go's dialer reads it."""
    if not location.port:
        return 443 if location.scheme == "https" else 80
    if location.port.isdigit():
        number = int(location.port)
        if 0 < number < 65536:
            return number
        raise _unreachable(f"dial tcp: address {location.port}: invalid port")
    try:
        return socket.getservbyname(location.port, "tcp")
    except OSError:
        raise _unreachable(f"dial tcp: lookup tcp/{location.port}: unknown port") from None


def _unreachable(reason: str) -> apierrors.ApiError:
    return apierrors.ApiError(503, "ServiceUnavailable", f"error trying to reach service: {reason}")


def _dial_error(address: str, exc: BaseException) -> apierrors.ApiError:
    """The 503 for a backend that could not be reached, worded as Go's dialer words it."""
    if isinstance(exc, TimeoutError):
        return _unreachable(f"dial tcp {address}: i/o timeout")
    os_error = exc.os_error if isinstance(exc, aiohttp.ClientConnectorError) else exc
    code = getattr(os_error, "errno", None)
    if isinstance(code, int) and code:
        text = "connection refused" if code == errno.ECONNREFUSED else os.strerror(code).lower()
        return _unreachable(f"dial tcp {address}: connect: {text}")
    return _unreachable(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)


def _request_headers(request: web.Request, forwarded_uri: str) -> CIMultiDict[str]:
    """The caller's headers minus hop-by-hop, credentials and impersonation; plus X-Forwarded-*."""
    named_by_connection = {
        token.strip().lower()
        for value in request.headers.getall("Connection", [])
        for token in value.split(",")
    }
    headers: CIMultiDict[str] = CIMultiDict()
    for key, value in request.headers.items():
        lower = key.lower()
        if (
            lower in _HOP_BY_HOP
            or lower in _CONSUMED
            or lower in named_by_connection
            or lower.startswith("impersonate-")
        ):
            continue
        headers.add(key, value)
    if request.content_length is not None:
        headers["Content-Length"] = str(request.content_length)
    peer = request.remote or ""
    if peer:
        earlier = request.headers.getall("X-Forwarded-For", [])
        headers.popall("X-Forwarded-For", None)
        headers["X-Forwarded-For"] = ", ".join([*earlier, peer])
    headers["X-Forwarded-Uri"] = forwarded_uri
    if "Host" in request.headers:
        # Go's reverse proxy keeps the caller's Host when it relays a pod proxy request.
        headers["Host"] = request.headers["Host"]
    return headers


def _response_headers(
    upstream: aiohttp.ClientResponse, location: ProxyLocation, prefix: str, request_host: str
) -> CIMultiDict[str]:
    named_by_connection = {
        token.strip().lower()
        for value in upstream.headers.getall("Connection", [])
        for token in value.split(",")
    }
    headers: CIMultiDict[str] = CIMultiDict()
    for key, value in upstream.headers.items():
        lower = key.lower()
        if lower in _HOP_BY_HOP or lower in _CORS or lower in named_by_connection:
            continue
        if lower == "location":
            headers.add(key, _rewrite_redirect(value, location.host, prefix, request_host))
        else:
            headers.add(key, value)
    return headers


def _rewrite_redirect(target: str, backend_host: str, prefix: str, request_host: str) -> str:
    """A backend redirect to its own host, or to an absolute path, made to go through the proxy."""
    parts = urlsplit(target)
    if parts.netloc and parts.netloc not in (backend_host, request_host):
        return target
    if not parts.path.startswith("/"):
        return target
    netloc = parts.netloc if parts.netloc == request_host else ""
    scheme = parts.scheme if netloc else ""
    if parts.path.startswith(prefix):
        return urlunsplit((scheme, netloc, parts.path, parts.query, parts.fragment))
    joined = posixpath.normpath(prefix + parts.path)
    if parts.path.endswith("/") and not joined.endswith("/"):
        joined += "/"
    return urlunsplit((scheme, netloc, joined, parts.query, parts.fragment))


async def serve_pod_proxy(
    request: web.Request, engine: Engine, namespace: str, pod_id: str
) -> web.StreamResponse:
    """Relay one request to the pod and stream its answer back."""
    if request.method not in METHODS:
        raise apierrors.method_not_allowed()
    location = await resolve_location(engine, namespace, pod_id)
    prefix, path = _subpath(request.path)
    raw_query = request.raw_path.partition("?")[2]  # aiohttp's query_string is decoded
    if not path and request.method in ("GET", "HEAD"):
        query = f"?{raw_query}" if raw_query else ""
        return web.Response(status=301, headers={"Location": f"{request.path}/{query}"})
    port = _dial_port(location)
    ip = f"[{location.ip}]" if ":" in location.ip else location.ip
    # The query string goes as the caller wrote it (``encoded=True``): no re-encoding on the way.
    url = f"{location.scheme}://{ip}:{port}{quote(path or '/', safe='/:@!$&()*+,;=~')}"
    if raw_query:
        url += f"?{raw_query}"
    headers = _request_headers(request, request.path)
    body = request.content if request.body_exists else None
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=_DIAL_TIMEOUT)
    connector = aiohttp.TCPConnector(force_close=True, ssl=False)  # kube's proxy does not verify pods
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False) as session:
        try:
            upstream = await session.request(
                request.method,
                URL(url, encoded=True),
                headers=headers,
                data=body,
                allow_redirects=False,
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
            )
        except (aiohttp.ClientConnectorError, aiohttp.ClientOSError, TimeoutError, OSError) as exc:
            raise _dial_error(f"{ip}:{port}", exc) from exc
        except aiohttp.ClientError as exc:
            raise _unreachable(str(exc) or type(exc).__name__) from exc
        async with upstream:
            return await _relay(request, upstream, location, prefix)


async def _relay(
    request: web.Request, upstream: aiohttp.ClientResponse, location: ProxyLocation, prefix: str
) -> web.StreamResponse:
    """Copy the backend's status, headers and body to the caller as they arrive."""
    headers = _response_headers(upstream, location, prefix, request.host)
    # Without a Content-Length from the backend, aiohttp answers HTTP/1.1 callers chunked.
    response = web.StreamResponse(status=upstream.status, reason=upstream.reason, headers=headers)
    await response.prepare(request)
    try:
        async for chunk in upstream.content.iter_chunked(_CHUNK):
            await response.write(chunk)
    except (aiohttp.ClientError, ConnectionResetError, TimeoutError):
        # The backend or the caller went away mid-body: nothing more can be said over HTTP.
        return response
    with contextlib.suppress(ConnectionResetError, RuntimeError):
        await response.write_eof()
    return response
