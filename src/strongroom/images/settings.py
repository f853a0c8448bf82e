"""What a backup or restore needs to move internal images: the location, and how to reach the cluster's registry.

The cluster's internal registry is reached as a pod of the cluster reaches it:

* its host is the one OpenShift publishes (``images.config.openshift.io/cluster``
  ``status.internalRegistryHostname``), else the host each ImageStream names
  in ``status.dockerImageRepository``;
* TLS is verified with the CAs of the service account directory
  (``ca.crt`` and OpenShift's ``service-ca.crt``, which signs the registry's
  service certificate), and the service account's token is the password, as
  OpenShift's registry accepts it;
* a registry on a loopback address is reached over plain HTTP: TLS there
  protects nothing, and a registry bound to 127.0.0.1 is one started on this
  machine (a test's, or a port-forward).
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from strongroom.errors import StrongroomError
from strongroom.images.copy import ImageCopier, RegistryCredentials, RegistryEndpoint
from strongroom.images.registry import LocationRegistry
from strongroom.storage.factory import StoreCredentials

__all__ = ["SERVICE_ACCOUNT_DIR", "ImagesSettings", "registry_endpoint", "start_registry"]

SERVICE_ACCOUNT_DIR: Final = Path("/var/run/secrets/kubernetes.io/serviceaccount")


@dataclass(frozen=True)
class ImagesSettings:
    """The openshift plugin's settings for one backup or restore."""

    location: Mapping[str, Any]
    """The BackupStorageLocation the images go to (or come from): its registry's storage."""
    credentials: StoreCredentials | None = field(default=None, repr=False)
    internal_registry: str | None = None
    """The cluster's internal registry host, when the cluster publishes it."""
    scratch_dir: Path | None = None
    service_account_dir: Path = SERVICE_ACCOUNT_DIR


async def start_registry(
    settings: ImagesSettings, stack: contextlib.AsyncExitStack
) -> tuple[LocationRegistry, ImageCopier]:
    """The location's registry and a copier, stopped when ``stack`` closes; a StrongroomError says why not."""
    try:
        registry = await stack.enter_async_context(
            LocationRegistry.from_location(
                settings.location, settings.credentials, scratch_dir=settings.scratch_dir
            )
        )
        copier = await stack.enter_async_context(ImageCopier(scratch_dir=settings.scratch_dir))
    except StrongroomError as exc:
        raise StrongroomError(f"the backup location's image registry did not start: {exc}") from None
    return registry, copier


def registry_endpoint(host: str, service_account_dir: Path = SERVICE_ACCOUNT_DIR) -> RegistryEndpoint:
    """How to reach the cluster's registry at ``host`` from here (see the module's description)."""
    if _loopback(host):
        return RegistryEndpoint.plain_http(host)
    token_file = service_account_dir / "token"
    credentials = None
    if token_file.is_file():
        credentials = RegistryCredentials.token(token_file.read_text(encoding="utf-8").strip())
    cert_dir = service_account_dir if any(service_account_dir.glob("*.crt")) else None
    return RegistryEndpoint(host, tls_verify=True, cert_dir=cert_dir, credentials=credentials)


def _loopback(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    name = name.strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False
