"""What the command line asks of the in-cluster server, through Velero's resources only.

In server mode the CLI never touches the bucket or the server process: it
creates and reads ``velero.io/v1`` objects in the server's namespace, as
``velero`` does, so the two CLIs work against either server. Files (logs,
results, the tarball) come through Velero's DownloadRequest protocol: create
a request, wait for the server to put a URL in its status, fetch the URL,
delete the request. The URL is a pre-signed ``https://`` object-store URL, or
``file:///...`` for a local-provider location whose directory this host
shares with the server.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import shutil
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import typer

from strongroom.cli.common import ProgressReporter, kube_client
from strongroom.errors import NotFoundError, StrongroomError, UnavailableError
from strongroom.model.resources import ApiResource
from strongroom.model.velero import parse_timestamp

if TYPE_CHECKING:
    from strongroom.cli.server_mode import Target
    from strongroom.kube import KubeClient

__all__ = [
    "BACKUPS",
    "BACKUP_STORAGE_LOCATIONS",
    "DELETE_BACKUP_REQUESTS",
    "DOWNLOAD_REQUESTS",
    "RESTORES",
    "SCHEDULES",
    "TERMINAL_PHASES",
    "ServerApi",
    "follow_with_progress",
    "server_api",
]


def _velero(resource: str, kind: str) -> ApiResource:
    return ApiResource(group="velero.io", version="v1", resource=resource, kind=kind, namespaced=True)


BACKUPS = _velero("backups", "Backup")
RESTORES = _velero("restores", "Restore")
SCHEDULES = _velero("schedules", "Schedule")
BACKUP_STORAGE_LOCATIONS = _velero("backupstoragelocations", "BackupStorageLocation")
DELETE_BACKUP_REQUESTS = _velero("deletebackuprequests", "DeleteBackupRequest")
DOWNLOAD_REQUESTS = _velero("downloadrequests", "DownloadRequest")

# Phases after which a Backup or Restore never changes again (Velero's CLI waits for these).
TERMINAL_PHASES = frozenset({"Completed", "PartiallyFailed", "Failed", "FailedValidation"})
_WHAT = {
    "Backup": "backup",
    "Restore": "restore",
    "Schedule": "schedule",
    "BackupStorageLocation": "backup storage location",
}
# A DownloadRequest is answered within milliseconds by a healthy server: ask often at first.
_FIRST_POLL = 0.05
_MAX_POLL = 0.5
FOLLOW_POLL = 0.5


@dataclass
class ServerApi:
    """Velero's resources in the server's namespace, with errors a person can act on."""

    kube: KubeClient
    namespace: str
    poll: float = FOLLOW_POLL

    def _what(self, res: ApiResource) -> str:
        return _WHAT.get(res.kind, res.kind)

    async def get(self, res: ApiResource, name: str) -> dict[str, Any]:
        found = await self.kube.get(res, name, self.namespace)
        if found is None:
            raise NotFoundError(f"{self._what(res)} {name!r} not found in namespace {self.namespace}")
        return {"apiVersion": res.group_version, "kind": res.kind, **found}

    async def find(self, res: ApiResource, name: str) -> dict[str, Any] | None:
        return await self.kube.get(res, name, self.namespace)

    async def list_all(self, res: ApiResource, selector: str | None = None) -> list[dict[str, Any]]:
        return await self.kube.list_all(res, namespace=self.namespace, label_selector=selector or None)

    async def select(
        self, res: ApiResource, names: list[str] | None, selector: str | None
    ) -> list[dict[str, Any]]:
        """The named objects (each must exist), else those matching ``selector`` (else all)."""
        if names:
            return [await self.get(res, name) for name in names]
        return await self.list_all(res, selector)

    async def create(self, res: ApiResource, body: dict[str, Any]) -> dict[str, Any]:
        body = {**body, "metadata": {**body.get("metadata", {}), "namespace": self.namespace}}
        return await self.kube.create(res, body, self.namespace)

    async def replace(self, res: ApiResource, body: dict[str, Any]) -> dict[str, Any]:
        return await self.kube.replace(res, body, self.namespace)

    async def delete(self, res: ApiResource, name: str) -> None:
        await self.kube.delete(res, name, self.namespace)

    # -- following a run -------------------------------------------------------

    async def follow(
        self,
        res: ApiResource,
        name: str,
        on_change: Callable[[dict[str, Any]], None],
    ) -> dict[str, Any]:
        """Poll a Backup or Restore until its phase is terminal; ``on_change`` sees each new status."""
        last: Any = None
        while True:
            current = await self.find(res, name)
            if current is None:
                raise NotFoundError(
                    f"{self._what(res)} {name!r} was deleted from namespace {self.namespace} while waiting for it"
                )
            status = current.get("status") or {}
            seen = (status.get("phase"), status.get("progress"))
            if seen != last:
                last = seen
                on_change(status)
            if status.get("phase") in TERMINAL_PHASES:
                return current
            await asyncio.sleep(self.poll)

    # -- DeleteBackupRequest ------------------------------------------------------

    async def request_deletion(self, backup: dict[str, Any]) -> dict[str, Any]:
        """A DeleteBackupRequest for ``backup``, labelled as Velero's CLI labels it."""
        from strongroom.model.labels import BACKUP_NAME_LABEL, BACKUP_UID_LABEL, valid_label_value

        metadata = backup.get("metadata") or {}
        name = metadata["name"]
        labels = {BACKUP_NAME_LABEL: valid_label_value(name)}
        if metadata.get("uid"):
            labels[BACKUP_UID_LABEL] = metadata["uid"]
        body = {
            "apiVersion": DELETE_BACKUP_REQUESTS.group_version,
            "kind": DELETE_BACKUP_REQUESTS.kind,
            "metadata": {"generateName": f"{name[:200]}-", "labels": labels},
            "spec": {"backupName": name},
        }
        return await self.create(DELETE_BACKUP_REQUESTS, body)

    async def wait_deleted(self, backup: str, request: str) -> None:
        """Until the Backup is gone; an error when the server reports the deletion failed."""
        while True:
            if await self.find(BACKUPS, backup) is None:
                return
            current = await self.find(DELETE_BACKUP_REQUESTS, request)
            status = (current or {}).get("status") or {}
            if status.get("errors"):
                raise StrongroomError(
                    f"deleting backup {backup!r} failed: " + "; ".join(str(e) for e in status["errors"]),
                    hint=f"kubectl -n {self.namespace} get deletebackuprequest {request} -o yaml shows the request",
                )
            await asyncio.sleep(self.poll)

    # -- DownloadRequest ---------------------------------------------------------

    async def download_url(self, kind: str, name: str, *, timeout: float) -> str:
        """Create a DownloadRequest for one file, wait for its URL, delete the request."""
        request = f"{name[:200]}-{uuid.uuid4()}"
        body = {
            "apiVersion": DOWNLOAD_REQUESTS.group_version,
            "kind": DOWNLOAD_REQUESTS.kind,
            "metadata": {"name": request},
            "spec": {"target": {"kind": kind, "name": name}},
        }
        await self.create(DOWNLOAD_REQUESTS, body)
        try:
            return await self._await_url(request, kind, name, timeout)
        finally:
            from strongroom.kube import KubeError

            with contextlib.suppress(KubeError):
                await self.delete(DOWNLOAD_REQUESTS, request)

    async def _await_url(self, request: str, kind: str, name: str, timeout: float) -> str:
        delay = _FIRST_POLL
        deadline = time.monotonic() + timeout
        while True:
            current = await self.find(DOWNLOAD_REQUESTS, request)
            status = (current or {}).get("status") or {}
            url = status.get("downloadURL")
            if _expired(status.get("expiration")):
                raise UnavailableError(
                    f"the download URL for {kind} of {name!r} expired before it could be used",
                    hint="run the command again",
                )
            if url:
                return str(url)
            if status.get("phase") == "Processed":
                raise NotFoundError(
                    f"the server processed download request {request} for {kind} of {name!r} without a URL: "
                    "the file is not available",
                    hint=f"check the server's log (kubectl -n {self.namespace} logs deploy/strongroom)",
                )
            if time.monotonic() >= deadline:
                raise UnavailableError(
                    f"timed out after {timeout:g}s waiting for the server to answer download request {request}",
                    hint=f"check that the strongroom server runs (kubectl -n {self.namespace} get pods), "
                    "or raise --timeout",
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, _MAX_POLL)

    async def location_ca(self, location: str | None) -> bytes | None:
        """The PEM bundle of a BackupStorageLocation's ``objectStorage.caCert``, for its signed URLs."""
        if not location:
            return None
        from strongroom.kube import KubeError

        try:
            found = await self.find(BACKUP_STORAGE_LOCATIONS, location)
        except KubeError:
            return None
        encoded = (((found or {}).get("spec") or {}).get("objectStorage") or {}).get("caCert")
        if not encoded:
            return None
        try:
            return base64.b64decode(encoded)
        except ValueError:
            return None

    async def fetch(
        self,
        kind: str,
        name: str,
        *,
        timeout: float,
        into: IO[bytes],
        ca_pem: bytes | None = None,
        insecure: bool = False,
    ) -> int:
        """Download one file of a backup or restore into ``into`` (as stored: gzip stays gzip); its size."""
        url = await self.download_url(kind, name, timeout=timeout)
        return await asyncio.to_thread(copy_url, url, into, ca_pem=ca_pem, insecure=insecure, timeout=timeout)

    async def fetch_bytes(
        self, kind: str, name: str, *, timeout: float, ca_pem: bytes | None = None
    ) -> bytes:
        import io

        buffer = io.BytesIO()
        await self.fetch(kind, name, timeout=timeout, into=buffer, ca_pem=ca_pem)
        return buffer.getvalue()


def _expired(value: object) -> bool:
    when = parse_timestamp(value)
    return when is not None and when < datetime.now(UTC)


def copy_url(
    url: str, into: IO[bytes], *, ca_pem: bytes | None = None, insecure: bool = False, timeout: float = 60.0
) -> int:
    """Copy what a DownloadRequest's URL points at into ``into``; the number of bytes."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise UnavailableError(f"cannot read {url}: a file URL on another host")
        path = Path(urllib.parse.unquote(parts.path))
        try:
            with path.open("rb") as source:
                shutil.copyfileobj(source, into)
                return source.tell()
        except FileNotFoundError as exc:
            raise NotFoundError(
                f"the server's file {path} does not exist on this host",
                hint="a location of provider local must be a directory this host shares with the server "
                "(the same path on both); otherwise use an object store",
            ) from exc
        except OSError as exc:
            raise UnavailableError(f"cannot read the server's file {path}: {exc.strerror or exc}") from exc
    if parts.scheme not in ("http", "https"):
        raise UnavailableError(f"the server gave a download URL of unsupported scheme {parts.scheme!r}")
    context: ssl.SSLContext | None = None
    if parts.scheme == "https":
        context = ssl.create_default_context()
        if ca_pem:
            context.load_verify_locations(cadata=ca_pem.decode("ascii", "replace"))
        if insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
    # The query string of a pre-signed URL is a credential: messages name the host and path only.
    shown = f"{parts.scheme}://{parts.netloc}{parts.path}"
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as response:
            size = 0
            while chunk := response.read(1 << 20):
                into.write(chunk)
                size += len(chunk)
            return size
    except urllib.error.HTTPError as exc:
        exc.close()  # an HTTPError holds the connection open until closed
        if exc.code == 404:
            raise NotFoundError(
                f"the file is not in the backup storage location ({shown} answered 404)"
            ) from exc
        raise UnavailableError(f"downloading {shown} failed: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        hint = (
            "the object store's certificate is not trusted: give the location a caCert"
            if isinstance(reason, ssl.SSLCertVerificationError)
            else None
        )
        raise UnavailableError(f"downloading {shown} failed: {reason}", hint=hint) from exc


@asynccontextmanager
async def server_api(target: Target) -> AsyncIterator[ServerApi]:
    async with kube_client(target.kubeconfig, target.context) as kube:
        yield ServerApi(kube, target.namespace)


def follow_with_progress(
    what: str, done_key: str, verb: str
) -> tuple[ProgressReporter, Callable[[dict[str, Any]], None]]:
    """How ``--wait`` shows a run: a bar on a terminal, else one line on stderr per change.

    ``what`` is e.g. ``Backup "b1"``; ``done_key`` the progress counter
    (``itemsBackedUp``/``itemsRestored``); ``verb`` the past participle for
    the line (``backed up``).
    """
    reporter = ProgressReporter(what)

    def on_change(status: dict[str, Any]) -> None:
        progress = status.get("progress") or {}
        done, total = int(progress.get(done_key) or 0), int(progress.get("totalItems") or 0)
        phase = status.get("phase") or "New"
        if reporter.enabled:
            reporter.update(done, total)
        else:
            items = f", {done} of {total} items {verb}" if progress else ""
            typer.echo(f"{what}: {phase}{items}", err=True)

    return reporter, on_change
