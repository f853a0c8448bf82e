"""What every `strongroom etcd` command shares: reaching etcd, and finding where snapshots are kept.

Endpoints and TLS files come from the flags (etcdctl's names), else from
etcdctl's ``ETCDCTL_*`` environment, else from the cluster the kubeconfig
points at (the kube-apiserver's or etcd pod's own settings, files read under
``--host-root``). Snapshots are kept in a directory (``--dir``, or ``--to`` for
``save``) or in a backup storage location (``--storage-location``); a command
that takes ``FILE|NAME`` reads a path when one exists, else a name there.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from strongroom.cli.common import (
    DEFAULT_NAMESPACE,
    ContextOption,
    KubeconfigOption,
    NamespaceOption,
    kube_client,
    kubeconfig_path,
    registry,
)
from strongroom.errors import NotFoundError, StrongroomError, UsageError
from strongroom.etcd.connection import EtcdTarget, TlsFiles, parse_endpoints, target_from_env
from strongroom.etcd.snapshot import SnapshotArchive, StoredSnapshot
from strongroom.etcd.tools import EtcdTool, find_tool
from strongroom.kube import KubeClient, KubeError
from strongroom.locations import open_location
from strongroom.model.duration import parse_duration
from strongroom.storage import Layout, ObjectStore
from strongroom.storage.local import LocalObjectStore

__all__ = [
    "CacertOption",
    "CertOption",
    "ContextOption",
    "DialTimeoutOption",
    "DirOption",
    "EndpointsOption",
    "EtcdutlOption",
    "HostRootOption",
    "KeyOption",
    "KubeconfigOption",
    "LocationNamespaceOption",
    "NamespaceOption",
    "SnapshotSource",
    "StorageLocationOption",
    "cluster_client",
    "connection_args",
    "etcdutl",
    "has_cluster",
    "open_archive",
    "resolve_target",
    "say",
    "snapshot_problem",
]

EndpointsOption = Annotated[
    str | None,
    typer.Option(
        "--endpoints",
        help="etcd client URLs, comma separated (default: $ETCDCTL_ENDPOINTS, or the cluster's).",
    ),
]
CacertOption = Annotated[
    str | None, typer.Option("--cacert", help="CA bundle that signed the members' certificates.")
]
CertOption = Annotated[str | None, typer.Option("--cert", help="Client certificate for etcd.")]
KeyOption = Annotated[str | None, typer.Option("--key", help="Client certificate's private key.")]
DialTimeoutOption = Annotated[
    float, typer.Option("--dial-timeout", help="Seconds to wait for a member to answer.")
]
HostRootOption = Annotated[
    Path,
    typer.Option("--host-root", help="Where the host's file system is mounted (/ on the host itself)."),
]
DirOption = Annotated[Path | None, typer.Option("--dir", help="Directory the snapshots are kept in.")]
StorageLocationOption = Annotated[
    str | None, typer.Option("--storage-location", help="Backup storage location the snapshots are kept in.")
]
LocationNamespaceOption = Annotated[
    str,
    typer.Option(
        "--namespace",
        "-n",
        help="Namespace of the BackupStorageLocation, when the location is the cluster's.",
    ),
]
EtcdutlOption = Annotated[
    str | None, typer.Option("--etcdutl", help="etcdutl binary to use (default: PATH, then the bundled one).")
]


def has_cluster(kubeconfig: str | None) -> bool:
    """Whether a cluster can be asked: a kubeconfig, or this process runs in a pod."""
    return (
        bool(kubeconfig_path(kubeconfig))
        or Path.home().joinpath(".kube", "config").exists()
        or bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
    )


@asynccontextmanager
async def cluster_client(kubeconfig: str | None, context: str | None) -> AsyncIterator[KubeClient | None]:
    """The cluster from the kubeconfig, else the pod's own service account, else None (no cluster here)."""
    from strongroom.kube import KubeClient

    if kubeconfig_path(kubeconfig) or Path.home().joinpath(".kube", "config").exists():
        async with kube_client(kubeconfig, context) as kube:
            yield kube
        return
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        client = await KubeClient.in_cluster()
        try:
            yield client
        finally:
            await client.close()
        return
    yield None


CONNECTION_OPTIONS = (
    "endpoints",
    "cacert",
    "cert",
    "key",
    "dial_timeout",
    "host_root",
    "kubeconfig",
    "context",
)


def connection_args(options: Mapping[str, Any]) -> dict[str, Any]:
    """The connection options of a command (its ``locals()``), as ``resolve_target`` takes them."""
    return {name: options[name] for name in CONNECTION_OPTIONS}


def say(message: str) -> None:
    typer.echo(message, err=True)


def etcdutl(explicit: str | None) -> EtcdTool:
    return EtcdTool(find_tool("etcdutl", explicit))


async def resolve_target(
    *,
    endpoints: str | None,
    cacert: str | None,
    cert: str | None,
    key: str | None,
    dial_timeout: float,
    host_root: Path,
    kubeconfig: str | None,
    context: str | None,
) -> EtcdTarget:
    """Flags, else ``ETCDCTL_*``, else the cluster's own settings."""
    tls = TlsFiles(ca=_path(cacert), cert=_path(cert), key=_path(key))
    if endpoints:
        return EtcdTarget(parse_endpoints(endpoints, secure=tls.enabled), tls, dial_timeout)
    from_env = target_from_env(os.environ)
    if from_env is not None:
        if tls.enabled:
            from_env = EtcdTarget(from_env.endpoints, tls, dial_timeout, from_env.source)
        return EtcdTarget(from_env.endpoints, from_env.tls, dial_timeout, from_env.source)
    from strongroom.etcd.discovery import target_from_cluster

    try:
        async with cluster_client(kubeconfig, context) as kube:
            found = await target_from_cluster(kube, await kube.discover(), host_root) if kube else None
    except StrongroomError as exc:
        raise UsageError(
            f"no etcd endpoints given and the cluster could not be asked for them: {exc.message}",
            hint="pass --endpoints (and --cacert/--cert/--key) as for etcdctl",
        ) from exc
    if found is not None:
        if tls.enabled:
            found = EtcdTarget(found.endpoints, tls, dial_timeout, found.source)
        say(f"etcd endpoints from the {found.source}: {','.join(found.endpoints)}")
        return EtcdTarget(found.endpoints, found.tls, dial_timeout, found.source)
    raise UsageError(
        "no etcd endpoints: none given, no ETCDCTL_ENDPOINTS, and the cluster shows no kube-apiserver or etcd pod",
        hint="pass --endpoints https://HOST:2379 --cacert CA --cert CERT --key KEY",
    )


async def open_archive(
    directory: Path | None,
    location: str | None,
    *,
    create: bool = False,
    namespace: str = DEFAULT_NAMESPACE,
    kubeconfig: str | None = None,
    context: str | None = None,
) -> SnapshotArchive:
    """The snapshots of a directory or of a backup location (under plugins/strongroom/etcd/).

    A location is one of ``backup-location create`` first; else the cluster's
    BackupStorageLocation of that name in ``namespace`` (how the scheduled
    backup finds it in its pod); else the built-in default directory.
    """
    if directory is not None and location is not None:
        raise UsageError("give a directory or --storage-location, not both")
    if directory is not None:
        if create:
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not directory.is_dir():
            raise NotFoundError(f"no directory {directory}")
        root = directory.resolve()
        return SnapshotArchive(LocalObjectStore(root), "", f"directory {directory}", root)
    if location is None:
        raise UsageError("say where the snapshots are: --dir DIR or --storage-location NAME")
    local = {item.name: item for item in registry().locations()}
    chosen = local.get(location)
    if chosen is not None and not chosen.builtin:
        store, _ = open_location(chosen)
        return SnapshotArchive(store, Layout().etcd_snapshots_dir, f"location {location!r}")
    cluster = await _cluster_store(location, namespace, kubeconfig, context)
    if cluster is not None:
        return SnapshotArchive(cluster, Layout().etcd_snapshots_dir, f"location {location!r} ({namespace})")
    if chosen is not None:
        store, _ = open_location(chosen)
        return SnapshotArchive(store, Layout().etcd_snapshots_dir, f"location {location!r}")
    raise NotFoundError(
        f"no backup storage location {location!r} here nor in namespace {namespace} of the cluster",
        hint="strongroom backup-location get lists them",
    )


async def _cluster_store(
    name: str, namespace: str, kubeconfig: str | None, context: str | None
) -> ObjectStore | None:
    from strongroom.controller.context import ServerConfig, ServerContext, ServerResources
    from strongroom.controller.locations import Locations

    try:
        async with cluster_client(kubeconfig, context) as kube:
            if kube is None:
                return None
            try:
                resources = ServerResources.from_discovery(await kube.discover())
            except UsageError:
                return None  # strongroom's resources are not installed there
            ctx = ServerContext(
                kube, resources, ServerConfig(namespace=namespace, workdir=Path(tempfile.gettempdir()))
            )
            locations = Locations(ctx)
            found = await locations.get(name)
            return await locations.store(found) if found is not None else None
    except KubeError:
        return None


class SnapshotSource:
    """A ``FILE|NAME`` argument as a local file, fetched to a private temporary file when it is stored."""

    def __init__(
        self,
        reference: str,
        directory: Path | None,
        location: str | None,
        *,
        namespace: str = "",
        kubeconfig: str | None = None,
        context: str | None = None,
    ) -> None:
        self.namespace = namespace or DEFAULT_NAMESPACE
        self.kubeconfig = kubeconfig
        self.context = context
        self.reference = reference
        self.directory = directory
        self.location = location
        self.stored: StoredSnapshot | None = None
        self.archive: SnapshotArchive | None = None

    @asynccontextmanager
    async def local_file(self, scratch: Path | None = None) -> AsyncIterator[Path]:
        path = Path(self.reference)
        if path.is_file() and self.directory is None and self.location is None:
            yield path
            return
        if self.directory is None and self.location is None:
            raise NotFoundError(
                f"no snapshot file {self.reference}",
                hint="give a path, or a name with --dir DIR or --storage-location NAME",
            )
        self.archive = await open_archive(
            self.directory,
            self.location,
            namespace=self.namespace,
            kubeconfig=self.kubeconfig,
            context=self.context,
        )
        self.stored = await self.archive.find(self.reference)
        if self.directory is not None:
            yield self.directory / self.stored.name
            return
        workdir = Path(tempfile.mkdtemp(prefix="strongroom-snapshot-", dir=scratch))
        try:
            yield await self.archive.download(self.stored.name, workdir / self.stored.name)
        finally:
            with contextlib.suppress(OSError):
                (workdir / self.stored.name).unlink()
            with contextlib.suppress(OSError):
                workdir.rmdir()


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


async def snapshot_problem(
    directory: Path | None,
    location: str | None,
    max_age: str,
    namespace: str,
    kubeconfig: str | None,
    context: str | None,
) -> str | None:
    """Why there is no verified snapshot newer than ``max_age`` there, or None when there is one."""
    if directory is None and location is None:
        return "no --snapshots-dir or --storage-location to look for a recent verified snapshot in"
    limit = parse_duration(max_age)
    archive = await open_archive(
        directory, location, namespace=namespace, kubeconfig=kubeconfig, context=context
    )
    snapshots = await archive.list()
    now = datetime.now(UTC)
    verified = [s for s in snapshots if s.verified]
    if not verified:
        return "no verified snapshot found"
    newest = verified[0]
    if now - newest.created > limit:
        return f"the newest verified snapshot, {newest.name}, is older than {max_age}"
    return None
