"""The one client of the Kubernetes API: discovery, paginated lists, and object writes.

Backup and restore treat cluster objects as opaque JSON, so this client speaks
raw JSON through kubernetes-asyncio's ``ApiClient`` (kubeconfig loading, TLS,
every authentication method, a pooled aiohttp session) and never builds its
generated model classes, which are slow and drop fields they do not know.
Everything above this package sees plain dicts, ``ApiResource`` values and
``KubeError``; nothing above it imports kubernetes-asyncio.

Throughput decides the shape: the connection pool admits 64 parallel requests
(a restore keeps ~32 in flight), and ``list_pages`` fetches the next page
while the caller works on the current one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self
from urllib.parse import quote

import aiohttp
import orjson
import yaml
from kubernetes_asyncio.client import ApiClient, Configuration
from kubernetes_asyncio.config import ConfigException, incluster_config, kube_config

from strongroom import __version__
from strongroom.kube.discovery import Discovery, resources_from_list
from strongroom.kube.errors import (
    KubeConfigError,
    KubeError,
    KubeExpired,
    KubeNotFound,
    KubeUnavailable,
    error_from_response,
    redact,
)
from strongroom.model.resources import ApiResource

__all__ = [
    "CONNECT_TIMEOUT",
    "POOL_SIZE",
    "REQUEST_TIMEOUT",
    "ConnectionSettings",
    "JsonObject",
    "KubeClient",
    "PatchType",
    "UpgradeTransport",
    "collection_path",
    "item_path",
]

_log = logging.getLogger(__name__)

JsonObject = dict[str, Any]
PatchType = Literal["merge", "json", "strategic"]

# A restore keeps ~32 requests in flight; leave room for discovery and lists beside them.
POOL_SIZE = 64
CONNECT_TIMEOUT = 10.0
REQUEST_TIMEOUT = 60.0
# How often a request answered 429 (or 5xx with Retry-After) is repeated, as client-go does.
_RETRIES = 5
_MAX_RETRY_AFTER = 10.0

_JSON = "application/json"
_PATCH_CONTENT_TYPES: dict[str, str] = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
    "strategic": "application/strategic-merge-patch+json",
}
# Characters RFC 3986 allows in a path segment that object names use (system:controller:...).
_SEGMENT_SAFE = ":@"


def _group_version_path(group: str, version: str) -> str:
    return f"/api/{version}" if not group else f"/apis/{group}/{version}"


def collection_path(res: ApiResource, namespace: str | None = None) -> str:
    """``/api/v1/namespaces/ns/pods``, ``/apis/apps/v1/deployments`` (all namespaces), ...

    A namespace given for a cluster-scoped resource is ignored, so callers may
    pass an item's namespace (empty for cluster-scoped items) unconditionally.
    """
    base = _group_version_path(res.group, res.version)
    if res.namespaced and namespace:
        return f"{base}/namespaces/{quote(namespace, safe='')}/{res.resource}"
    return f"{base}/{res.resource}"


def item_path(
    res: ApiResource, name: str, namespace: str | None = None, subresource: str | None = None
) -> str:
    """The path of one object (or of its ``status``, ``scale``, ... subresource).

    A namespaced resource needs its namespace.
    """
    if not name:
        raise ValueError(f"an object of {res.group_resource} needs a name")
    if res.namespaced and not namespace:
        raise ValueError(f"{res.group_resource} is namespaced: name the namespace of {name!r}")
    path = f"{collection_path(res, namespace)}/{quote(name, safe=_SEGMENT_SAFE)}"
    return f"{path}/{quote(subresource, safe='')}" if subresource else path


def _body_namespace(body: JsonObject) -> str | None:
    metadata = body.get("metadata")
    namespace = metadata.get("namespace") if isinstance(metadata, dict) else None
    return namespace if isinstance(namespace, str) and namespace else None


def _body_name(res: ApiResource, body: JsonObject) -> str:
    metadata = body.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    if not isinstance(name, str) or not name:
        raise ValueError(f"replacing an object of {res.group_resource} needs metadata.name in the body")
    return name


def _retry_after(headers: Any) -> float | None:
    value = headers.get("Retry-After") if headers is not None else None
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return min(max(seconds, 0.0), _MAX_RETRY_AFTER)


def _kubeconfig_files(location: str) -> list[Path]:
    """The files of a kubeconfig location (``KUBECONFIG`` may list several, ':'-separated)."""
    return [
        Path(part).expanduser() for part in location.split(kube_config.ENV_KUBECONFIG_PATH_SEPARATOR) if part
    ]


@dataclass(frozen=True)
class ConnectionSettings:
    """How this client reaches its API server, for a library that opens its own connections.

    The operator runtime watches with a client of its own; it is handed these
    rather than reading the kubeconfig a second time (and possibly another way).
    """

    server: str
    ca_file: str | None = None
    insecure: bool = False
    token: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    default_namespace: str | None = None

    def __repr__(self) -> str:
        return f"ConnectionSettings(server={self.server!r}, token={'<set>' if self.token else None})"


@dataclass(frozen=True)
class UpgradeTransport:
    """What a request this client does not make itself needs to reach the API server the same way.

    The exec client upgrades a request to a websocket, which kubernetes-asyncio's
    ``ApiClient`` cannot do: it borrows the pooled session (so the same TLS trust
    and client certificate), the credentials and the proxy from here.
    """

    session: aiohttp.ClientSession
    server: str
    headers: dict[str, str]
    proxy: str | None = None
    proxy_headers: dict[str, str] | None = None
    server_hostname: str | None = None
    secrets: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return f"UpgradeTransport(server={self.server!r}, proxy={self.proxy!r})"


class KubeClient:
    """An open connection to one cluster's API server.

    Build it with ``from_kubeconfig`` (or around an ``ApiClient`` of your own)
    and close it (``async with`` does). Objects are plain dicts; failures are
    ``KubeError``. Safe to share between tasks.
    """

    def __init__(
        self,
        api: ApiClient,
        *,
        context: str | None = None,
        namespace: str | None = None,
        timeout: aiohttp.ClientTimeout | None = None,
    ) -> None:
        self._api = api
        self._context = context
        self._namespace = namespace
        self._timeout = timeout or aiohttp.ClientTimeout(
            total=REQUEST_TIMEOUT, connect=CONNECT_TIMEOUT, sock_connect=CONNECT_TIMEOUT
        )

    @classmethod
    async def from_kubeconfig(
        cls,
        path: str | None = None,
        context: str | None = None,
        *,
        timeout: aiohttp.ClientTimeout | None = None,
    ) -> KubeClient:
        """A client for ``context`` (default: the current context) of a kubeconfig.

        ``path`` None means what kubectl uses: the files ``KUBECONFIG`` lists,
        else ``~/.kube/config`` (kubernetes-asyncio's default, read when it is
        imported). The kubeconfig is never written back.
        """
        location = path if path is not None else kube_config.KUBE_CONFIG_DEFAULT_LOCATION
        hint = "pass the kubeconfig explicitly (--kubeconfig) or set KUBECONFIG"
        if not any(file.is_file() for file in _kubeconfig_files(location)):
            raise KubeConfigError(f"no kubeconfig file at {location}", reason="NoKubeconfig", hint=hint)
        configuration = Configuration()
        try:
            loader = await kube_config.load_kube_config(
                config_file=location,
                context=context,
                client_configuration=configuration,
                persist_config=False,
            )
        except (
            ConfigException,
            yaml.YAMLError,
            OSError,
            ValueError,
            KeyError,
            TypeError,
            AssertionError,
        ) as exc:
            raise KubeConfigError(
                f"cannot use the kubeconfig {location}" + (f" (context {context})" if context else "") + f": "
                f"{redact(str(exc) or type(exc).__name__)}",
                reason="InvalidKubeconfig",
                hint="check the file and the context name (kubectl config get-contexts)",
            ) from exc
        current = loader.current_context or {}
        context_name = current.get("name") if isinstance(current, dict) else None
        settings = current.get("context") if isinstance(current, dict) else None
        namespace = settings.get("namespace") if isinstance(settings, dict) else None
        if hasattr(loader, "exec_plugin_expiry"):
            # An exec plugin's token expires; fetch a new one before a request needs it,
            # once for all the requests in flight.
            renewal = asyncio.Lock()

            async def refresh(config: Configuration) -> None:
                async with renewal:
                    await loader.load_from_exec_plugin()
                    config.api_key["BearerToken"] = loader.token

            configuration.refresh_api_key_hook = refresh
        return cls(
            _api_client(configuration),
            context=context_name if isinstance(context_name, str) else context,
            namespace=namespace if isinstance(namespace, str) else None,
            timeout=timeout,
        )

    @classmethod
    async def in_cluster(cls, *, timeout: aiohttp.ClientTimeout | None = None) -> KubeClient:
        """A client with the pod's service account, as a server running in the cluster uses."""
        configuration = Configuration()
        try:
            incluster_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        except ConfigException as exc:
            raise KubeConfigError(
                f"not running in a cluster: {exc}",
                reason="NotInCluster",
                hint="pass --kubeconfig to run outside the cluster",
            ) from exc
        namespace_file = Path(incluster_config.SERVICE_TOKEN_FILENAME).with_name("namespace")
        namespace = namespace_file.read_text().strip() if namespace_file.is_file() else None
        return cls(_api_client(configuration), namespace=namespace or None, timeout=timeout)

    @classmethod
    async def connect(
        cls,
        kubeconfig: str | None = None,
        context: str | None = None,
        *,
        timeout: aiohttp.ClientTimeout | None = None,
    ) -> KubeClient:
        """The kubeconfig's client when one is named or present, else the pod's service account."""
        location = kubeconfig if kubeconfig is not None else kube_config.KUBE_CONFIG_DEFAULT_LOCATION
        in_pod = Path(incluster_config.SERVICE_TOKEN_FILENAME).is_file()
        if kubeconfig is None and in_pod and not any(f.is_file() for f in _kubeconfig_files(location)):
            return await cls.in_cluster(timeout=timeout)
        return await cls.from_kubeconfig(kubeconfig, context, timeout=timeout)

    async def connection_settings(self) -> ConnectionSettings:
        """The server, trust and credentials this client uses now (a fresh token if it expires)."""
        config = self._api.configuration
        refresh: Any = config.refresh_api_key_hook
        if refresh is not None:
            hook = refresh(config)
            if asyncio.iscoroutine(hook):
                await hook
        bearer = (config.api_key or {}).get("BearerToken") or (config.api_key or {}).get("authorization")
        token = str(bearer).removeprefix("Bearer ").strip() if bearer else None
        return ConnectionSettings(
            server=config.host or "",
            ca_file=config.ssl_ca_cert or None,
            insecure=not config.verify_ssl,
            token=token or None,
            cert_file=config.cert_file or None,
            key_file=config.key_file or None,
            default_namespace=self._namespace,
        )

    async def upgrade_transport(self) -> UpgradeTransport:
        """The session, headers and proxy for an upgraded request (a websocket), with a fresh token."""
        settings = await self.connection_settings()
        config = self._api.configuration
        headers = {"User-Agent": str(self._api.user_agent)}
        if settings.token:
            headers["Authorization"] = f"Bearer {settings.token}"
        proxy_headers: Any = config.proxy_headers
        return UpgradeTransport(
            session=self._api.rest_client.pool_manager,
            server=settings.server,
            headers=headers,
            proxy=config.proxy or None,
            proxy_headers=dict(proxy_headers) if proxy_headers else None,
            server_hostname=config.tls_server_name or None,
            secrets=tuple(self._secrets()),
        )

    @property
    def server(self) -> str:
        """The API server's URL."""
        return self._api.configuration.host or ""

    @property
    def context(self) -> str | None:
        """The kubeconfig context in use."""
        return self._context

    @property
    def namespace(self) -> str | None:
        """The context's default namespace, if it names one."""
        return self._namespace

    @property
    def pool_size(self) -> int:
        """How many requests may be in flight to the API server at once."""
        return int(self._api.configuration.connection_pool_maxsize or 0)

    async def close(self) -> None:
        await self._api.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # -- requests -----------------------------------------------------------

    def _secrets(self) -> list[str]:
        """What must never appear in a message: the credentials the configuration holds."""
        configuration = self._api.configuration
        found: list[str] = []
        for value in (configuration.api_key or {}).values():
            if isinstance(value, str) and value:
                found.append(value)
                found.extend(part for part in value.split()[1:] if len(part) >= 8)
        for value in (getattr(configuration, "password", None),):
            if isinstance(value, str) and value:
                found.append(value)
        return found

    def _unreachable(self, method: str, path: str, exc: BaseException) -> KubeUnavailable:
        detail = str(exc) or (
            f"no answer within {self._timeout.total:g}s"
            if isinstance(exc, TimeoutError)
            else type(exc).__name__
        )
        return KubeUnavailable(
            f"cannot reach the Kubernetes API server at {self.server}: {redact(detail, self._secrets())}",
            hint="check the kubeconfig and its context"
            + (f" ({self._context})" if self._context else "")
            + " and that the API server is reachable from here",
            method=method,
            path=path,
        )

    async def _request(
        self,
        method: str,
        path: str,
        *,
        query: Sequence[tuple[str, str]] = (),
        body: Any = None,
        content_type: str = _JSON,
    ) -> bytes:
        """One call; the raw body of a 2xx answer, else the matching KubeError."""
        attempt = 0
        while True:
            started = time.monotonic()
            try:
                response = await self._api.call_api(
                    path,
                    method,
                    query_params=list(query),
                    header_params={"Accept": _JSON, "Content-Type": content_type},
                    body=body,
                    auth_settings=["BearerToken"],
                    _preload_content=False,
                    _request_timeout=self._timeout,
                )
                try:
                    data: bytes = await response.read()
                finally:
                    response.release()
            except ConfigException as exc:  # an exec plugin failed to renew the credentials
                raise KubeConfigError(
                    f"cannot obtain credentials for {self.server}: {redact(str(exc), self._secrets())}",
                    reason="InvalidKubeconfig",
                    method=method,
                    path=path,
                ) from exc
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                raise self._unreachable(method, path, exc) from exc
            status: int = response.status
            _log.debug("%s %s -> %d (%.0f ms)", method, path, status, (time.monotonic() - started) * 1000)
            if 200 <= status < 300:
                return data
            wait = _retry_after(response.headers)
            if wait is not None and (status == 429 or status >= 500) and attempt < _RETRIES:
                attempt += 1
                _log.debug("%s %s: HTTP %d, retrying in %.1fs", method, path, status, wait)
                await asyncio.sleep(wait)
                continue
            raise error_from_response(status, data, method=method, path=path, secrets=self._secrets())

    async def _json(
        self,
        method: str,
        path: str,
        *,
        query: Sequence[tuple[str, str]] = (),
        body: Any = None,
        content_type: str = _JSON,
    ) -> Any:
        data = await self._request(method, path, query=query, body=body, content_type=content_type)
        try:
            # orjson: a list page of 500 objects decodes several times faster than with json.
            return orjson.loads(data) if data else None
        except ValueError as exc:
            raise KubeError(
                f"{method} {path}: the API server answered with a body that is not JSON",
                reason="InvalidResponse",
                method=method,
                path=path,
            ) from exc

    async def _object(
        self,
        method: str,
        path: str,
        *,
        query: Sequence[tuple[str, str]] = (),
        body: Any = None,
        content_type: str = _JSON,
    ) -> JsonObject:
        doc = await self._json(method, path, query=query, body=body, content_type=content_type)
        if not isinstance(doc, dict):
            raise KubeError(
                f"{method} {path}: the API server answered with JSON that is not an object",
                reason="InvalidResponse",
                method=method,
                path=path,
            )
        return doc

    # -- discovery ------------------------------------------------------------

    async def server_version(self) -> JsonObject:
        """``/version``: gitVersion, major, minor, platform, ..."""
        return await self._object("GET", "/version")

    async def discover(self) -> Discovery:
        """Every resource at every served version; a group version that fails is recorded, not fatal."""
        core, groups = await asyncio.gather(self._object("GET", "/api"), self._object("GET", "/apis"))
        targets: list[tuple[str, str, bool]] = []
        for index, version in enumerate(core.get("versions") or ()):
            targets.append(("", version, index == 0))
        for entry in groups.get("groups") or ():
            preferred = (entry.get("preferredVersion") or {}).get("version")
            for served in entry.get("versions") or ():
                targets.append((entry["name"], served["version"], served["version"] == preferred))
        answers = await asyncio.gather(*(self._discover_group_version(*target) for target in targets))
        resources: list[ApiResource] = []
        failed: dict[str, str] = {}
        for (group, version, _), answer in zip(targets, answers, strict=True):
            if isinstance(answer, str):
                failed[f"{group}/{version}" if group else version] = answer
            else:
                resources.extend(answer)
        if failed:
            _log.warning("discovery failed for %s", ", ".join(f"{gv} ({why})" for gv, why in failed.items()))
        return Discovery(tuple(resources), failed)

    async def _discover_group_version(
        self, group: str, version: str, preferred: bool
    ) -> list[ApiResource] | str:
        try:
            doc = await self._object("GET", _group_version_path(group, version))
        except KubeError as exc:
            if exc.status is None:  # no answer at all: the server itself is gone
                raise
            return str(exc.message)
        return resources_from_list(doc, group, version, preferred=preferred)

    async def _preferred_version(self, group: str) -> str | None:
        if not group:
            versions = (await self._object("GET", "/api")).get("versions") or [None]
            first = versions[0]
            return first if isinstance(first, str) else None
        preferred = (await self._object("GET", f"/apis/{group}")).get("preferredVersion") or {}
        version = preferred.get("version")
        return version if isinstance(version, str) else None

    async def wait_served(
        self, group: str, version: str, resource: str, *, timeout: float = 60.0
    ) -> ApiResource:
        """Poll discovery of one group version until it serves ``resource`` (a CRD just created)."""
        path = _group_version_path(group, version)
        name = f"{resource}.{group}/{version}" if group else f"{resource}/{version}"
        delay = 0.05
        try:
            async with asyncio.timeout(timeout):
                while True:
                    try:
                        doc = await self._object("GET", path)
                    except KubeNotFound:
                        doc = {}
                    for res in resources_from_list(doc, group, version, preferred=True):
                        if res.resource == resource:
                            return replace(res, preferred=await self._preferred_version(group) == version)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 0.5)
        except TimeoutError as exc:
            raise KubeError(
                f"the API server does not serve {name} after {timeout:g}s",
                reason="Timeout",
                hint="check that its CustomResourceDefinition exists and is Established "
                "(kubectl get crd -o yaml shows its conditions)",
                path=path,
            ) from exc

    # -- reads ----------------------------------------------------------------

    async def get(
        self, res: ApiResource, name: str, namespace: str | None = None, *, subresource: str | None = None
    ) -> JsonObject | None:
        """The object (or its subresource), or None when it does not exist."""
        try:
            return await self._object("GET", item_path(res, name, namespace, subresource))
        except KubeNotFound:
            return None

    async def get_raw(self, path: str, query: Sequence[tuple[str, str]] = ()) -> bytes:
        """GET a path whose answer is not a JSON object (logs, a pod proxy's metrics), as bytes."""
        return await self._request("GET", path, query=query)

    async def pod_log(
        self,
        pods: ApiResource,
        name: str,
        namespace: str,
        *,
        container: str | None = None,
        since_seconds: int | None = None,
        previous: bool = False,
        limit_bytes: int | None = None,
    ) -> str:
        """A container's log (the pods/log subresource), as ``kubectl logs`` reads it."""
        query: list[tuple[str, str]] = []
        if container:
            query.append(("container", container))
        if since_seconds is not None:
            query.append(("sinceSeconds", str(since_seconds)))
        if previous:
            query.append(("previous", "true"))
        if limit_bytes is not None:
            query.append(("limitBytes", str(limit_bytes)))
        data = await self._request("GET", item_path(pods, name, namespace, "log"), query=query)
        return data.decode("utf-8", errors="replace")

    async def list_pages(
        self,
        res: ApiResource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int = 500,
    ) -> AsyncIterator[list[JsonObject]]:
        """LIST in pages of up to ``limit`` items, each item with ``apiVersion`` and ``kind``.

        The next page is requested as soon as the current one is handed out,
        so the caller's work on a page overlaps the transfer of the next.
        Stop early with ``contextlib.aclosing`` to cancel that prefetch at once.
        A continue token that expires meanwhile (410) raises ``KubeExpired``.
        """
        path = collection_path(res, namespace)
        query: list[tuple[str, str]] = [("limit", str(limit))]
        if label_selector:
            query.append(("labelSelector", label_selector))
        if field_selector:
            query.append(("fieldSelector", field_selector))
        pending: asyncio.Task[tuple[list[JsonObject], str]] | None = asyncio.ensure_future(
            self._list_page(res, path, query, "", 0)
        )
        seen = 0
        try:
            while pending is not None:
                items, token = await pending
                seen += len(items)
                pending = (
                    asyncio.ensure_future(self._list_page(res, path, query, token, seen)) if token else None
                )
                yield items
        finally:
            if pending is not None:
                pending.cancel()
                await asyncio.wait([pending])
                if not pending.cancelled():
                    pending.exception()  # retrieved, so asyncio does not report it as lost

    async def _list_page(
        self, res: ApiResource, path: str, query: list[tuple[str, str]], token: str, seen: int
    ) -> tuple[list[JsonObject], str]:
        try:
            doc = await self._object("GET", path, query=[*query, ("continue", token)] if token else query)
        except KubeExpired as exc:
            raise KubeExpired(
                f"listing {res.group_resource} failed after {seen} items: the API server no longer "
                f"accepts the list's continue token ({exc.message})",
                status=exc.status,
                reason=exc.reason,
                hint="a paginated list must finish within the server's compaction window "
                "(about 5 minutes); start it again, with larger pages or faster processing",
                method=exc.method,
                path=exc.path,
            ) from exc
        api_version, kind = res.group_version, res.kind
        items = [{"apiVersion": api_version, "kind": kind, **item} for item in doc.get("items") or ()]
        metadata = doc.get("metadata") or {}
        token = metadata.get("continue") or ""
        return items, token if isinstance(token, str) else ""

    async def list_all(
        self,
        res: ApiResource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int = 500,
    ) -> list[JsonObject]:
        """Every item of a (small) list, all pages read."""
        items: list[JsonObject] = []
        async for page in self.list_pages(
            res,
            namespace=namespace,
            label_selector=label_selector,
            field_selector=field_selector,
            limit=limit,
        ):
            items.extend(page)
        return items

    # -- writes ---------------------------------------------------------------

    @staticmethod
    def _dry_run(dry_run: bool) -> list[tuple[str, str]]:
        return [("dryRun", "All")] if dry_run else []

    async def create(
        self, res: ApiResource, body: JsonObject, namespace: str | None = None, *, dry_run: bool = False
    ) -> JsonObject:
        """POST a new object; the namespace defaults to the body's ``metadata.namespace``."""
        namespace = namespace or _body_namespace(body)
        if res.namespaced and not namespace:
            raise ValueError(f"{res.group_resource} is namespaced: name the namespace to create in")
        return await self._object(
            "POST", collection_path(res, namespace), query=self._dry_run(dry_run), body=body
        )

    async def replace(
        self,
        res: ApiResource,
        body: JsonObject,
        namespace: str | None = None,
        *,
        dry_run: bool = False,
        subresource: str | None = None,
    ) -> JsonObject:
        """PUT the whole object (``metadata.resourceVersion`` in the body guards against lost updates).

        ``subresource="status"`` writes the status, which create and a plain
        replace ignore for kinds with a status subresource.
        """
        namespace = namespace or _body_namespace(body)
        return await self._object(
            "PUT",
            item_path(res, _body_name(res, body), namespace, subresource),
            query=self._dry_run(dry_run),
            body=body,
        )

    async def patch(
        self,
        res: ApiResource,
        name: str,
        patch: JsonObject | list[Any],
        namespace: str | None = None,
        *,
        patch_type: str = "merge",
        dry_run: bool = False,
        subresource: str | None = None,
    ) -> JsonObject:
        """PATCH with a JSON merge patch ("merge"), a JSON patch ("json") or a strategic merge patch."""
        content_type = _PATCH_CONTENT_TYPES.get(patch_type)
        if content_type is None:
            raise ValueError(
                f"unknown patch type {patch_type!r}: use one of {', '.join(_PATCH_CONTENT_TYPES)}"
            )
        return await self._object(
            "PATCH",
            item_path(res, name, namespace, subresource),
            query=self._dry_run(dry_run),
            body=patch,
            content_type=content_type,
        )

    async def delete(
        self,
        res: ApiResource,
        name: str,
        namespace: str | None = None,
        *,
        propagation: str | None = "Background",
        dry_run: bool = False,
    ) -> None:
        """DELETE one object; ``KubeNotFound`` when it does not exist."""
        body = (
            {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation}
            if propagation
            else None
        )
        await self._request(
            "DELETE", item_path(res, name, namespace), query=self._dry_run(dry_run), body=body
        )


def _api_client(configuration: Configuration) -> ApiClient:
    """The API client for a loaded configuration, however it was loaded (kubeconfig or pod)."""
    configuration.connection_pool_maxsize = max(POOL_SIZE, configuration.connection_pool_maxsize or 0)
    if not configuration.proxy:
        # HTTPS_PROXY/HTTP_PROXY unless NO_PROXY exempts the server, CIDRs included, as for Go clients:
        # OpenShift exempts its service network, where the in-cluster API is.
        from strongroom.model.proxy import environment_proxy

        configuration.proxy = environment_proxy(configuration.host or "")
    api = ApiClient(configuration)
    api.user_agent = f"strongroom/{__version__}"
    # The proxy from the environment is settled above, once: left to aiohttp
    # (trust_env), every request would look it up again and read ~/.netrc,
    # about half of a restore's client CPU.
    session = getattr(api.rest_client, "pool_manager", None)
    if isinstance(session, aiohttp.ClientSession) and hasattr(session, "_trust_env"):
        session._trust_env = False
    return api
