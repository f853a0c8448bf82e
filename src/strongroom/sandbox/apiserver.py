"""The sandbox's HTTP face: kube-apiserver's URL space, authentication and media types.

Routes requests the way kube-apiserver does (`/api/v1/namespaces/{ns}/pods/{name}/status`,
`/apis/{group}/{version}/...`, discovery, OpenAPI), authenticates with the
sandbox's bearer token or a client certificate signed by its CA, decodes JSON
or YAML, and answers JSON, Tables or watch streams. All semantics live in
`engine`; this module only translates.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

import yaml
from aiohttp import web

from strongroom.sandbox import (
    apierrors,
    discovery,
    identity,
    openapi,
    podproxy,
    protobuf,
    remotecommand,
    tables,
)
from strongroom.sandbox.engine import (
    PATCH_APPLY,
    PATCH_JSON,
    PATCH_MERGE,
    PATCH_STRATEGIC,
    DeleteOptions,
    Engine,
    ListOptions,
    Target,
    WriteOptions,
)
from strongroom.sandbox.pki import client_groups, client_identity
from strongroom.sandbox.resources import ResourceType
from strongroom.sandbox.runtime import LogOptions, PodRuntime
from strongroom.sandbox.scheduler import bind_pod
from strongroom.sandbox.tokens import TokenIssuer, authenticate, token_request

log = logging.getLogger(__name__)

JsonObject = dict[str, Any]
_NAMESPACE_SUBRESOURCES = {"status", "finalize"}
_PARTIAL_META = "as=PartialObjectMetadata"
_MAX_BODY = 3 * 1024 * 1024  # kube-apiserver's request body limit
USER_KEY = "user"  # the request's identity.UserInfo, after impersonation


class ApiServer:
    """Builds the aiohttp application around an `Engine`."""

    def __init__(
        self,
        engine: Engine,
        *,
        token: str | None,
        address: str,
        insecure: bool = False,
        ready: Callable[[], bool] = lambda: True,
    ) -> None:
        self.engine = engine
        self.token = token
        self.address = address
        self.insecure = insecure
        self.ready = ready
        self._openapi_cache: dict[tuple[int, str], JsonObject | None] = {}
        self.runtime: PodRuntime | None = None
        self.tokens: TokenIssuer | None = None

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._errors, self._authenticate], client_max_size=_MAX_BODY)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        return app

    # -------------------------------------------------------------- middleware

    @web.middleware
    async def _errors(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        try:
            return await handler(request)
        except apierrors.ApiError as exc:
            return _status_response(exc)
        except web.HTTPRequestEntityTooLarge:
            return _status_response(
                apierrors.ApiError(413, "RequestEntityTooLarge", "request entity too large")
            )
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception as exc:  # the server must answer, never crash, on any request
            log.exception("request %s %s failed", request.method, request.path)
            return _status_response(apierrors.internal(type(exc).__name__))

    @web.middleware
    async def _authenticate(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path in ("/healthz", "/livez", "/readyz", "/version"):
            return await handler(request)
        if self.insecure:
            # No authentication: kube's insecure port acted as a member of system:masters.
            request[USER_KEY] = identity.impersonate(identity.admin_user(), request.headers.items())
            return await handler(request)
        requester = await self._requester(request)
        if requester is None:
            raise apierrors.unauthorized()
        request[USER_KEY] = identity.impersonate(requester, request.headers.items())
        return await handler(request)

    async def _requester(self, request: web.Request) -> identity.UserInfo | None:
        """The authenticated user: the admin token, a service-account token, or a client certificate."""
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer ") and self.token is not None:
            if hmac.compare_digest(header[7:].strip().encode(), self.token.encode()):
                return identity.admin_user()
            if self.tokens is not None:
                claims = await authenticate(self.engine, self.tokens, header[7:].strip())
                if claims is not None:
                    return identity.service_account_user(claims.namespace, claims.name, claims.uid)
            return None
        transport = request.transport
        peer = transport.get_extra_info("peercert") if transport else None
        name = client_identity(peer)
        if not name:
            return None
        return identity.certificate_user(name, client_groups(peer))

    # ----------------------------------------------------------------- routing

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        parts = [p for p in path.split("/") if p]
        registry = self.engine.registry
        if path in ("/healthz", "/livez", "/readyz"):
            if path == "/readyz" and not self.ready():
                return web.Response(status=500, text="[-]sandbox-controllers not ready\nreadyz check failed")
            return web.Response(text="ok", content_type="text/plain")
        if path == "/version":
            return _json(discovery.version_info())
        if path == "/":
            return _json(
                {"paths": ["/api", "/api/v1", "/apis", "/healthz", "/openapi/v3", "/readyz", "/version"]}
            )
        if parts and parts[0] == "openapi":
            return self._openapi(request, parts)
        accept = request.headers.get("Accept", "")
        if path == "/api":
            if discovery.wants_aggregated(accept):
                return _json(discovery.aggregated(registry, core=True), discovery.AGGREGATED_CONTENT_TYPE)
            return _json(discovery.core_versions(self.address))
        if path == "/apis":
            if discovery.wants_aggregated(accept):
                return _json(discovery.aggregated(registry, core=False), discovery.AGGREGATED_CONTENT_TYPE)
            return _json(discovery.group_list(registry))
        if parts[0] == "api" and len(parts) >= 2:
            group, version, rest = "", parts[1], parts[2:]
        elif parts[0] == "apis" and len(parts) >= 2:
            if len(parts) == 2:
                doc = discovery.group(registry, parts[1])
                if doc is None:
                    raise _not_served()
                return _json(doc)
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise _not_served()
        if not rest:
            doc = discovery.resource_list(registry, group, version)
            if doc is None:
                raise _not_served()
            return _json(doc)
        if group == "" and len(rest) == 5 and rest[0] == "namespaces":
            handled = await self._node_subresource(request, rest[1], rest[2], rest[3], rest[4])
            if handled is not None:
                return handled
        if group == "" and len(rest) == 5 and (rest[0], rest[2], rest[4]) == ("namespaces", "pods", "exec"):
            return await remotecommand.serve_exec(request, self.engine, self.runtime, rest[1], rest[3])
        if group == "" and len(rest) >= 5 and (rest[0], rest[2], rest[4]) == ("namespaces", "pods", "proxy"):
            return await podproxy.serve_pod_proxy(request, self.engine, rest[1], rest[3])
        return await self._resource(request, group, version, rest)

    async def _node_subresource(
        self, request: web.Request, namespace: str, resource: str, name: str, sub: str
    ) -> web.StreamResponse | None:
        """``pods/log``, ``pods/binding`` and ``serviceaccounts/token``, which are not plain storage."""
        if (resource, sub) == ("pods", "log"):
            if request.method != "GET":
                raise apierrors.method_not_allowed()
            return await self._pod_log(request, namespace, name)
        if (resource, sub) == ("pods", "binding"):
            if request.method != "POST":
                raise apierrors.method_not_allowed()
            await bind_pod(self.engine, namespace, name, await _read_body(request))
            return _json(
                {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}, status=201
            )
        if (resource, sub) == ("serviceaccounts", "token") and self.tokens is not None:
            if request.method != "POST":
                raise apierrors.method_not_allowed()
            body = await token_request(self.engine, self.tokens, namespace, name, await _read_body(request))
            return _json(body, status=201)
        return None

    async def _pod_log(self, request: web.Request, namespace: str, name: str) -> web.StreamResponse:
        query = _query(request)

        def optional(key: str) -> int | None:
            if query.get(key) in (None, ""):
                return None
            value = _int(query, key)
            if value < 0 or (value == 0 and key != "tailLines"):
                raise apierrors.bad_request(f"{key}: Invalid value: {value}: must be greater than 0")
            return value

        options = LogOptions(
            container=query.get("container") or None,
            follow=_flag(query.get("follow")),
            previous=_flag(query.get("previous")),
            timestamps=_flag(query.get("timestamps")),
            tail_lines=optional("tailLines"),
            since_seconds=optional("sinceSeconds"),
            limit_bytes=optional("limitBytes"),
        )
        if self.runtime is None:
            raise apierrors.bad_request(f"pod {name} does not have a host assigned")
        chunks = self.runtime.logs(namespace, name, options)
        try:
            first = await anext(chunks)  # errors answer before the 200
        except StopAsyncIteration:
            first = b""
        response = web.StreamResponse(status=200, headers={"Content-Type": "text/plain"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            if first:
                await response.write(first)
            async for chunk in chunks:
                await response.write(chunk)
        except ConnectionResetError:
            return response
        finally:
            with contextlib.suppress(Exception):
                await chunks.aclose()  # type: ignore[attr-defined]
        with contextlib.suppress(ConnectionResetError, RuntimeError):
            await response.write_eof()
        return response

    def _openapi(self, request: web.Request, parts: list[str]) -> web.Response:
        registry = self.engine.registry
        rest = parts[2:]
        doc: JsonObject | None = None
        if len(parts) >= 2 and parts[1] == "v3":
            # Documents change only when CRDs come and go; build each once per registry generation.
            cache_key = (registry.generation, "/".join(rest))
            if cache_key not in self._openapi_cache:
                if len(self._openapi_cache) > 256:
                    self._openapi_cache.clear()
                if not rest:
                    self._openapi_cache[cache_key] = openapi.v3_root(registry)
                elif rest[0] == "api" and len(rest) == 2:
                    self._openapi_cache[cache_key] = openapi.v3_group_version(registry, "", rest[1])
                elif rest[0] == "apis" and len(rest) == 3:
                    self._openapi_cache[cache_key] = openapi.v3_group_version(registry, rest[1], rest[2])
                else:
                    self._openapi_cache[cache_key] = None
            doc = self._openapi_cache[cache_key]
        if doc is None:
            raise _not_served()
        return _json(doc)

    def _target(self, group: str, version: str, rest: list[str]) -> tuple[Target, bool]:
        """Parse the resource part of a path; the flag is the legacy /watch/ prefix."""
        registry = self.engine.registry
        legacy_watch = False
        if rest[0] == "watch":
            legacy_watch, rest = True, rest[1:]
            if not rest:
                raise _not_served()
        namespace: str | None = None
        if (
            rest[0] == "namespaces"
            and len(rest) >= 3
            and not (len(rest) == 3 and rest[2] in _NAMESPACE_SUBRESOURCES and group == "")
        ):
            namespace, rest = rest[1], rest[2:]
        resource = rest[0]
        rt = registry.lookup(group, version, resource)
        if rt is None or len(rest) > 3:
            raise _not_served()
        name = rest[1] if len(rest) >= 2 else None
        subresource = rest[2] if len(rest) == 3 else None
        if namespace is not None and not rt.namespaced:
            raise _not_served()
        if subresource and subresource not in rt.subresources:
            raise _not_served()
        if rt.namespaced and name is not None and namespace is None:
            raise _not_served()
        return Target(rt, namespace, name, subresource), legacy_watch

    async def _resource(
        self, request: web.Request, group: str, version: str, rest: list[str]
    ) -> web.StreamResponse:
        t, legacy_watch = self._target(group, version, rest)
        query = _query(request)
        method = request.method
        engine = self.engine
        if method == "GET":
            if legacy_watch or _flag(query.get("watch")):
                return await self._watch(request, t, _list_options(query))
            if t.name is None:
                listing = await engine.list(t, _list_options(query))
                return self._render_list(request, t.rt, listing)
            obj = await engine.get(t)
            return self._render_object(request, t.rt, obj)
        if method == "POST":
            if t.name is not None or (t.rt.namespaced and t.namespace is None):
                # kube serves create only on the namespaced collection path.
                raise apierrors.method_not_allowed()
            body = await _read_body(request)
            opts = _write_options(query, request.get(USER_KEY))
            created = await engine.create(t, body, opts)
            return _json(created, status=201, warnings=opts.warnings)
        if method == "PUT":
            if t.name is None:
                raise apierrors.method_not_allowed()
            body = await _read_body(request)
            opts = _write_options(query, request.get(USER_KEY))
            updated = await engine.update(t, body, opts)
            return _json(updated, warnings=opts.warnings)
        if method == "PATCH":
            if t.name is None:
                raise apierrors.method_not_allowed()
            content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
            if content_type not in (PATCH_JSON, PATCH_MERGE, PATCH_STRATEGIC, PATCH_APPLY):
                raise apierrors.ApiError(
                    415,
                    "UnsupportedMediaType",
                    f"the body of the request was in an unknown format - accepted media types include: "
                    f"{PATCH_JSON}, {PATCH_MERGE}, {PATCH_STRATEGIC}, {PATCH_APPLY}",
                )
            raw = await request.read()
            body = _decode(raw, "application/yaml" if content_type == PATCH_APPLY else "application/json")
            opts = _write_options(query, request.get(USER_KEY))
            patched = await engine.patch(t, content_type, body, opts, force=_flag(query.get("force")))
            return _json(patched, warnings=opts.warnings)
        if method == "DELETE":
            delete_opts = await _delete_options(request, query)
            if t.name is None:
                if t.rt.namespaced and t.namespace is None:
                    raise apierrors.method_not_allowed()
                result = await engine.delete_collection(t, _list_options(query), delete_opts)
                return _json(result)
            body, gone = await engine.delete(t, delete_opts)
            # kube answers 202 when the object stays and the client asked for cascading
            # deletion the old way (orphanDependents=false).
            accepted = not gone and delete_opts.orphan_dependents is False
            return _json(body, status=202 if accepted else 200)
        raise apierrors.method_not_allowed()

    # --------------------------------------------------------------- rendering

    def _render_object(self, request: web.Request, rt: ResourceType, obj: JsonObject) -> web.Response:
        accept = request.headers.get("Accept", "")
        if tables.wants_table(accept):
            table = tables.to_table(
                rt, [obj], include_object=_include_object(request), now=self.engine.clock()
            )
            return _json(table, tables.TABLE_CONTENT_TYPE)
        if _PARTIAL_META in accept:
            return _json(_partial(obj))
        return _json(obj)

    def _render_list(self, request: web.Request, rt: ResourceType, listing: JsonObject) -> web.Response:
        accept = request.headers.get("Accept", "")
        meta = listing["metadata"]
        if tables.wants_table(accept):
            table = tables.to_table(
                rt,
                listing["items"],
                include_object=_include_object(request),
                resource_version=meta.get("resourceVersion", ""),
                continue_token=meta.get("continue", ""),
                remaining=meta.get("remainingItemCount"),
                now=self.engine.clock(),
            )
            return _json(table, tables.TABLE_CONTENT_TYPE)
        if "as=PartialObjectMetadataList" in accept:
            return _json(
                {
                    "kind": "PartialObjectMetadataList",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": meta,
                    "items": [_partial(item) for item in listing["items"]],
                }
            )
        return _json(listing)

    async def _watch(self, request: web.Request, t: Target, opts: ListOptions) -> web.StreamResponse:
        accept = request.headers.get("Accept", "")
        as_table = tables.wants_table(accept)
        include = _include_object(request)
        response = web.StreamResponse(
            status=200,
            headers={"Content-Type": "application/json", "Cache-Control": "no-cache, private"},
        )
        response.enable_chunked_encoding()
        stream = self.engine.watch(t, opts)  # bad parameters raise here, before the 200
        await response.prepare(request)
        loop = asyncio.get_running_loop()
        timeout = opts.timeout_seconds
        deadline = loop.time() + timeout if timeout else None
        sent_headers = False

        async def send(event_type: str, obj: JsonObject) -> None:
            nonlocal sent_headers
            if as_table and event_type not in ("ERROR", "BOOKMARK"):
                # kube sends the column definitions with the first event only.
                obj = tables.watch_table(
                    t.rt, obj, include_object=include, now=self.engine.clock(), no_headers=sent_headers
                )
                sent_headers = True
            line = json.dumps({"type": event_type, "object": obj}, separators=(",", ":")) + "\n"
            await response.write(line.encode())

        try:
            while True:
                remaining = None if deadline is None else deadline - loop.time()
                if remaining is not None and remaining <= 0:
                    break
                try:
                    event = await asyncio.wait_for(anext(stream), timeout=remaining)
                except (StopAsyncIteration, TimeoutError):
                    break
                await send(event.type, event.obj)
        except ConnectionResetError:
            pass  # the client went away
        finally:
            with contextlib.suppress(Exception):
                await stream.aclose()
        with contextlib.suppress(ConnectionResetError, RuntimeError):
            await response.write_eof()
        return response


# ------------------------------------------------------------------- helpers


def _json(
    body: Any, content_type: str = "application/json", *, status: int = 200, warnings: list[str] | None = None
) -> web.Response:
    headers = {"Content-Type": content_type}
    response = web.Response(
        status=status,
        body=json.dumps(body, separators=(",", ":")).encode(),
        headers=headers,
    )
    for warning in warnings or []:
        # RFC 7234 warning text is a quoted string: inner quotes and backslashes are escaped.
        text = warning.replace("\\", "\\\\").replace('"', '\\"')
        response.headers.add("Warning", f'299 - "{text}"')
    return response


def _status_response(exc: apierrors.ApiError) -> web.Response:
    return _json(exc.status(), status=exc.code)


def _not_served() -> apierrors.ApiError:
    return apierrors.ApiError(404, "NotFound", "the server could not find the requested resource")


def _query(request: web.Request) -> dict[str, str]:
    parsed = parse_qs(request.query_string, keep_blank_values=True)
    return {k: v[-1] for k, v in parsed.items()}


def _flag(value: str | None) -> bool:
    return value is not None and value.lower() in ("1", "true")


def _int(query: dict[str, str], name: str) -> int:
    raw = query.get(name)
    if raw in (None, ""):
        return 0
    try:
        return int(raw)
    except ValueError as exc:
        raise apierrors.bad_request(f"invalid value for {name}: {raw!r}") from exc


def _list_options(query: dict[str, str]) -> ListOptions:
    timeout = query.get("timeoutSeconds")
    return ListOptions(
        label_selector=query.get("labelSelector", ""),
        field_selector=query.get("fieldSelector", ""),
        limit=_int(query, "limit"),
        continue_token=query.get("continue", ""),
        resource_version=query.get("resourceVersion", ""),
        resource_version_match=query.get("resourceVersionMatch", ""),
        allow_bookmarks=_flag(query.get("allowWatchBookmarks")),
        timeout_seconds=float(_int(query, "timeoutSeconds")) if timeout else None,
        send_initial_events=_flag(query.get("sendInitialEvents")),
    )


def _write_options(query: dict[str, str], user: identity.UserInfo | None = None) -> WriteOptions:
    dry_run = query.get("dryRun")
    if dry_run not in (None, "All"):
        raise apierrors.bad_request(f'Invalid value: "{dry_run}": supported values: "All"')
    validation = query.get("fieldValidation") or "Warn"
    if validation not in ("Ignore", "Warn", "Strict"):
        raise apierrors.bad_request(
            f'Invalid value: "{validation}": fieldValidation must be one of "Ignore", "Warn", or "Strict"'
        )
    return WriteOptions(
        dry_run=dry_run == "All",
        field_validation=validation,
        field_manager=query.get("fieldManager", ""),
        user=user,
    )


async def _delete_options(request: web.Request, query: dict[str, str]) -> DeleteOptions:
    body: JsonObject = {}
    if request.can_read_body:
        raw = await request.read()
        if raw.strip():
            decoded = _decode(raw, request.headers.get("Content-Type", "application/json"))
            if not isinstance(decoded, dict):
                raise apierrors.bad_request("DeleteOptions must be an object")
            body = decoded
    preconditions = body.get("preconditions") or {}
    dry_run = query.get("dryRun") or ("All" if "All" in (body.get("dryRun") or []) else None)
    if dry_run not in (None, "All"):
        raise apierrors.bad_request(f'Invalid value: "{dry_run}": supported values: "All"')
    orphan = body.get("orphanDependents")
    if "orphanDependents" in query:
        orphan = _flag(query["orphanDependents"])
    grace = body.get("gracePeriodSeconds")
    if "gracePeriodSeconds" in query:
        grace = _int(query, "gracePeriodSeconds")
    return DeleteOptions(
        propagation_policy=query.get("propagationPolicy") or body.get("propagationPolicy"),
        orphan_dependents=orphan,
        precondition_uid=preconditions.get("uid"),
        precondition_resource_version=preconditions.get("resourceVersion"),
        dry_run=dry_run == "All",
        grace_period_seconds=grace,
    )


def _include_object(request: web.Request) -> str:
    value = _query(request).get("includeObject") or "Metadata"
    if value not in ("None", "Metadata", "Object"):
        raise apierrors.bad_request(
            f'Invalid value: "{value}": includeObject must be one of "None", "Metadata", "Object"'
        )
    return value


async def _read_body(request: web.Request) -> Any:
    raw = await request.read()
    return _decode(raw, request.headers.get("Content-Type", "application/json"))


def _decode(raw: bytes, content_type: str) -> Any:
    media = content_type.split(";", maxsplit=1)[0].strip().lower()
    if not raw.strip():
        raise apierrors.bad_request("the body of the request is empty")
    if media in ("application/yaml", "application/apply-patch+yaml", "text/yaml"):
        try:
            return yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise apierrors.bad_request(f"error decoding YAML: {exc}") from exc
    if media == protobuf.CONTENT_TYPE:
        try:
            return protobuf.decode(raw)
        except protobuf.ProtobufError as exc:
            raise apierrors.unsupported_media_type(media, str(exc)) from exc
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise apierrors.bad_request(f"couldn't get version/kind; json parse error: {exc}") from exc


def _partial(obj: JsonObject) -> JsonObject:
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata", {}),
    }
