"""What the server and the node agent share of kopf: logging in, its settings, event handlers with retries."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

import kopf

from strongroom.errors import StrongroomError
from strongroom.kube import KubeClient

__all__ = ["on_velero_event", "operator_registry", "retrying"]

_log = logging.getLogger(__name__)

_ATTEMPTS: Final = 5


def operator_registry(kube: KubeClient) -> kopf.OperatorRegistry:
    """A registry that logs in as ``kube`` does, runs standalone, and posts only kopf's own failures."""
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    async def login(**_: Any) -> kopf.ConnectionInfo:
        settings = await kube.connection_settings()
        return kopf.ConnectionInfo(
            server=settings.server,
            ca_path=settings.ca_file,
            insecure=settings.insecure,
            token=settings.token,
            certificate_path=settings.cert_file,
            private_key_path=settings.key_file,
            default_namespace=settings.default_namespace,
        )

    @kopf.on.startup(registry=registry)
    async def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.peering.standalone = True
        # Our controllers post their own events; kopf only reports its failures.
        settings.posting.level = logging.ERROR
        settings.watching.server_timeout = 300
        settings.networking.request_timeout = 60

    return registry


def on_velero_event(
    registry: kopf.OperatorRegistry,
    resource: str,
    handler: Callable[[dict[str, Any]], Awaitable[None]],
    *,
    deleted: Callable[[str], None] | None = None,
) -> None:
    """Call ``handler`` with every velero.io/v1 ``resource`` that is added or changed (``deleted`` gets the names gone)."""

    @kopf.on.event("velero.io", "v1", resource, registry=registry)
    async def event(event: Mapping[str, Any], body: Mapping[str, Any], **_: Any) -> None:
        if event.get("type") == "DELETED":
            if deleted is not None:
                deleted(str(body["metadata"]["name"]))
            return
        obj = dict(body)
        await retrying(f"{resource} {obj['metadata']['name']}", lambda: handler(obj))


async def retrying(what: str, call: Callable[[], Awaitable[None]]) -> None:
    """Run one reconcile; an unexpected failure (the API server restarting) is retried with backoff, then logged."""
    delay = 1.0
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            await call()
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            message = exc.message if isinstance(exc, StrongroomError) else f"{type(exc).__name__}: {exc}"
            if attempt == _ATTEMPTS:
                _log.error("%s failed %d times, giving up: %s", what, attempt, message)
                return
            _log.warning("%s failed (attempt %d), retrying in %.0fs: %s", what, attempt, delay, message)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)
