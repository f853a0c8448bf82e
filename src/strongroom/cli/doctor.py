"""``strongroom doctor``: runs the troubleshooting chapter's checks against a cluster and says what to fix.

The judging lives in ``strongroom.cluster.doctor`` (pure functions); this
module gathers what they judge: the velero.io resources of the server's
namespace, PersistentVolumes, the locations' stores and credentials (through
the server's own ``Locations``), stored restore results and, when asked,
the etcd members. A check that cannot gather its data is SKIPPED with the
reason; any PROBLEM makes the exit code 1.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from strongroom.cli.common import (
    ContextOption,
    KubeconfigOption,
    Output,
    OutputOption,
    emit,
    kube_client,
    run,
)
from strongroom.cluster import doctor as lib
from strongroom.cluster.doctor import Finding, Status
from strongroom.errors import EXIT_FAILURE, ObjectNotFound, StorageConfigError, StrongroomError, UsageError
from strongroom.model.duration import parse_duration

if TYPE_CHECKING:
    from strongroom.controller.context import ServerContext
    from strongroom.controller.locations import Locations
    from strongroom.kube import Discovery, KubeClient
    from strongroom.storage import StoreCredentials

__all__ = ["doctor"]

SERVER_POD_SELECTOR = "deploy=velero"
SERVER_DEPLOYMENTS = ("strongroom", "velero")  # strongroom's own, or Velero's / OADP's


def doctor(
    namespace: Annotated[
        str,
        typer.Option("--namespace", "-n", help="The namespace of the server and its resources."),
    ] = "openshift-adp",
    stuck_after: Annotated[
        str,
        typer.Option("--stuck-after", help="A Backup or Restore InProgress for longer than this is stuck."),
    ] = "1h",
    etcd_endpoints: Annotated[
        str | None,
        typer.Option(
            "--etcd-endpoints",
            help="Check the health of these etcd members (URLs, comma separated); without it, OpenShift's "
            "Etcd resource is read.",
        ),
    ] = None,
    etcd_cacert: Annotated[
        str | None,
        typer.Option("--etcd-cacert", help="CA bundle that signed the etcd members' certificates."),
    ] = None,
    etcd_cert: Annotated[str | None, typer.Option("--etcd-cert", help="Client certificate for etcd.")] = None,
    etcd_key: Annotated[
        str | None, typer.Option("--etcd-key", help="That certificate's private key.")
    ] = None,
    kubeconfig: KubeconfigOption = None,
    context: ContextOption = None,
    output: OutputOption = Output.table,
) -> None:
    """Look for the known problems of the troubleshooting guide and print the fix of each one found."""
    try:
        threshold = parse_duration(stuck_after)
    except ValueError as exc:
        raise UsageError(f"--stuck-after: {exc}", hint="give a duration such as 30m, 1h or 2h30m") from exc
    etcd = EtcdOptions(etcd_endpoints, etcd_cacert, etcd_cert, etcd_key)
    findings = run(_diagnose(namespace, threshold, etcd, kubeconfig, context))
    problems = [f for f in findings if f.status is Status.problem]
    document = {"problems": len(problems), "findings": [f.to_json() for f in findings]}
    emit(document, output, lambda: _print(findings))
    if problems:
        raise typer.Exit(EXIT_FAILURE)


def _print(findings: list[Finding]) -> None:
    width = max(len(f.check) for f in findings) if findings else 0
    for f in findings:
        head = f"{f.status!s:<8} {f.check:<{width}}"
        text = f"{f.subject}: {f.found}" if f.subject else f.found
        typer.echo(f"{head}   {text}".rstrip())
        if f.fix:
            typer.echo(f"{'':<8} {'':<{width}}   fix: {f.fix}")
    problems = sum(1 for f in findings if f.status is Status.problem)
    typer.echo(f"\n{problems} problem(s) found" if problems else "\nno problem found")


async def _guarded(check: str, gather: Callable[[], Awaitable[list[Finding]]]) -> list[Finding]:
    try:
        return await gather()
    except StrongroomError as exc:
        return lib.skipped(check, f"could not be checked: {exc.message}")


async def _diagnose(
    namespace: str,
    stuck_after: timedelta,
    etcd: EtcdOptions,
    kubeconfig: str | None,
    context: str | None,
) -> list[Finding]:
    findings: list[Finding] = []
    async with kube_client(kubeconfig, context) as kube:
        # Read once: every check looks up what it needs in the same answer.
        discovery = await kube.discover()
        ctx = _server_context(kube, discovery, namespace)
        if ctx is None:
            why = "the velero.io resources are not served (strongroom or Velero is not installed)"
            for check in (
                lib.INVALID_DIRECTORIES,
                lib.MALFORMED_CREDENTIALS,
                lib.RESTIC_UNREACHABLE,
                lib.REGION_MISMATCH,
                lib.STUCK,
                lib.MISSING_REPOSITORY,
                lib.NFS_PERMISSION,
                lib.DEPLOYMENTCONFIG_RESTORE,
            ):
                findings += lib.skipped(check, why)
        else:
            findings += await _location_checks(ctx)
            findings += await _guarded(lib.REGION_MISMATCH, lambda: _regions(ctx, discovery))
            findings += await _guarded(lib.STUCK, lambda: _stuck(ctx, discovery, stuck_after))
            findings += await _guarded(lib.MISSING_REPOSITORY, lambda: _repositories(ctx))
            findings += await _guarded(lib.NFS_PERMISSION, lambda: _pod_volumes(ctx))
            findings += await _guarded(lib.DEPLOYMENTCONFIG_RESTORE, lambda: _restores(ctx))
        findings += await _guarded(lib.CLUSTER_PROXY, lambda: _proxy(kube, discovery, namespace, ctx))
        if etcd.endpoints:
            findings += await _guarded(lib.ETCD_MEMBERS, lambda: _etcd(kube, discovery, etcd))
        else:
            findings += await _guarded(lib.ETCD_MEMBERS, lambda: _etcd_operator(kube, discovery))
    return findings


def _server_context(kube: KubeClient, discovery: Discovery, namespace: str) -> ServerContext | None:
    from strongroom.controller.context import ServerConfig, ServerContext, ServerResources

    try:
        resources = ServerResources.from_discovery(discovery)
    except UsageError:
        return None
    return ServerContext(
        kube, resources, ServerConfig(namespace=namespace, workdir=Path(tempfile.gettempdir()))
    )


def _locations(ctx: ServerContext) -> Locations:
    from strongroom.controller.locations import Locations

    return Locations(ctx)


async def _location_checks(ctx: ServerContext) -> list[Finding]:
    from strongroom.storage import Layout, validate_top_level

    locations = _locations(ctx)
    try:
        all_locations = await locations.all()
    except StrongroomError as exc:
        why = f"could not list BackupStorageLocations: {exc.message}"
        return [
            *lib.skipped(lib.INVALID_DIRECTORIES, why),
            *lib.skipped(lib.MALFORMED_CREDENTIALS, why),
            *lib.skipped(lib.RESTIC_UNREACHABLE, why),
        ]
    credentials: dict[str, str | None] = {}
    reach: dict[str, tuple[str, str] | None] = {}
    providers: dict[str, str] = {}
    directories: dict[str, str | None] = {}
    unreadable: list[str] = []
    for location in all_locations:
        name = str(location["metadata"]["name"])
        provider = str((location.get("spec") or {}).get("provider") or "")
        if provider not in ("local", ""):
            providers[name] = provider.removeprefix("velero.io/")
            try:
                parsed = await locations.credentials(location)
                credentials[name] = None
            except StrongroomError as exc:
                credentials[name] = exc.message
                continue
            if providers[name] in ("azure", "gcp"):
                reach[name] = _restic_reach(location, parsed)
        try:
            store = await locations.store(location)
        except StrongroomError as exc:
            unreadable.append(f"{name}: {exc.message}")
            continue
        try:
            await validate_top_level(store, Layout())
            directories[name] = None
        except StorageConfigError as exc:
            directories[name] = exc.message
        except StrongroomError as exc:
            unreadable.append(f"{name}: {exc.message}")
    found = lib.invalid_directories(directories)
    if unreadable and not directories:
        found = lib.skipped(lib.INVALID_DIRECTORIES, "no store could be read: " + "; ".join(unreadable))
    elif not all_locations:
        found = lib.skipped(lib.INVALID_DIRECTORIES, f"no BackupStorageLocation in {ctx.namespace}")
    return found + lib.malformed_credentials(credentials, providers) + lib.restic_unreachable(reach)


def _restic_reach(
    location: Mapping[str, Any], credentials: StoreCredentials | None
) -> tuple[str, str] | None:
    """Why the node agents' restic cannot reach the location, and what to change; None when it can."""
    from strongroom.volumes import RepositoryLocation

    try:
        RepositoryLocation.from_location(location, credentials).check_restic_reachable()
    except StrongroomError as exc:
        return exc.message, exc.hint or ""
    return None


async def _regions(ctx: ServerContext, discovery: Discovery) -> list[Finding]:
    snapshot_locations = await ctx.list(ctx.resources.snapshot_locations)
    if not snapshot_locations:
        return lib.skipped(lib.REGION_MISMATCH, f"no VolumeSnapshotLocation in {ctx.namespace}")
    pv_type = discovery.find("", "persistentvolumes")
    if pv_type is None:
        return lib.skipped(lib.REGION_MISMATCH, "the cluster serves no persistentvolumes")
    pvs = await ctx.kube.list_all(pv_type)
    return lib.region_mismatch(snapshot_locations, pvs)


async def _stuck(ctx: ServerContext, discovery: Discovery, stuck_after: timedelta) -> list[Finding]:
    runs = [("Backup", b) for b in await ctx.list(ctx.resources.backups)]
    runs += [("Restore", r) for r in await ctx.list(ctx.resources.restores)]
    pod_type = discovery.find("", "pods")
    server_running = True
    if pod_type is not None:
        pods = await ctx.kube.list_all(pod_type, namespace=ctx.namespace, label_selector=SERVER_POD_SELECTOR)
        server_running = any((p.get("status") or {}).get("phase") == "Running" for p in pods)
    return lib.stuck_runs(
        runs,
        now=datetime.now(UTC),
        stuck_after=stuck_after,
        server_running=server_running,
        namespace=ctx.namespace,
    )


async def _repositories(ctx: ServerContext) -> list[Finding]:
    from strongroom.storage import Layout

    repositories = await ctx.list(ctx.resources.repositories)
    locations = _locations(ctx)
    present: dict[str, bool | None] = {}
    stores: dict[str, Any] = {}
    for repo in repositories:
        if (repo.get("status") or {}).get("phase") != "Ready":
            continue
        spec = repo.get("spec") or {}
        name = str(repo["metadata"]["name"])
        location_name = str(spec.get("backupStorageLocation") or "")
        volume_namespace = str(spec.get("volumeNamespace") or "")
        if not location_name or not volume_namespace:
            present[name] = None
            continue
        try:
            if location_name not in stores:
                location = await locations.get(location_name)
                stores[location_name] = None if location is None else await locations.store(location)
            store = stores[location_name]
            present[name] = (
                None
                if store is None
                else await store.exists(Layout().restic_repo(volume_namespace) + "/config")
            )
        except StrongroomError:
            present[name] = None
    return lib.missing_repositories(repositories, present)


async def _pod_volumes(ctx: ServerContext) -> list[Finding]:
    items = [("PodVolumeBackup", p) for p in await ctx.list(ctx.resources.pod_volume_backups)]
    items += [("PodVolumeRestore", p) for p in await ctx.list(ctx.resources.pod_volume_restores)]
    return lib.nfs_permission_denied(items)


async def _restores(ctx: ServerContext) -> list[Finding]:
    from strongroom.archive import decode_results
    from strongroom.storage import Layout

    restores = await ctx.list(ctx.resources.restores)
    locations = _locations(ctx)
    messages: dict[str, list[str] | None] = {}
    for restore in restores:
        status = restore.get("status") or {}
        if status.get("phase") not in ("PartiallyFailed", "Failed"):
            continue
        name = str(restore["metadata"]["name"])
        messages[name] = None
        backup_name = str((restore.get("spec") or {}).get("backupName") or "")
        with contextlib.suppress(StrongroomError, ObjectNotFound):
            backup = await ctx.get(ctx.resources.backups, backup_name) if backup_name else None
            location_name = str(((backup or {}).get("spec") or {}).get("storageLocation") or "")
            location_name = location_name or await locations.default_name()
            location = await locations.get(location_name)
            if location is None:
                continue
            catalog = await locations.catalog(location)
            results = decode_results(await catalog.read_file(Layout().restore_results(name)))
            lines: list[str] = []
            for result in (results.errors, results.warnings):
                lines += result.velero + result.cluster
                for items in result.namespaces.values():
                    lines += items
            messages[name] = lines
    return lib.deploymentconfig_restores(restores, messages, namespace=ctx.namespace)


async def _proxy(
    kube: KubeClient, discovery: Discovery, namespace: str, ctx: ServerContext | None
) -> list[Finding]:
    from strongroom.model.proxy import ProxySettings

    proxies = discovery.served("config.openshift.io", "v1", "proxies")
    found = await kube.get(proxies, "cluster") if proxies is not None else None
    cluster = ProxySettings.from_openshift(found) if found is not None else None
    server: ProxySettings | None = None
    deployments = discovery.find("apps", "deployments")
    server_name = SERVER_DEPLOYMENTS[0]
    for name in SERVER_DEPLOYMENTS:
        deployment = await kube.get(deployments, name, namespace) if deployments is not None else None
        if deployment is not None:
            containers = deployment["spec"]["template"]["spec"].get("containers") or []
            env = {
                str(e.get("name")): str(e["value"])
                for e in (containers[0].get("env") or [] if containers else [])
                if "value" in e
            }
            server, server_name = ProxySettings.from_env(env), name
            break
    endpoints: dict[str, str] = {}
    if ctx is not None:
        for location in await _locations(ctx).all():
            url = ((location.get("spec") or {}).get("config") or {}).get("s3Url")
            if url:
                endpoints[str(location["metadata"]["name"])] = str(url)
    return lib.cluster_proxy(cluster, server, endpoints, deployment=server_name)


@dataclass(frozen=True)
class EtcdOptions:
    endpoints: str | None
    cacert: str | None
    cert: str | None
    key: str | None


async def _explain(kube: KubeClient, discovery: Discovery, names: list[str]) -> dict[str, list[str]]:
    """The seed's reasons for each member, from the cluster; none when it cannot be asked."""
    from strongroom.etcd.discovery import explain_members

    try:
        return await explain_members(kube, discovery, names)
    except StrongroomError:
        return {name: [] for name in names}


async def _etcd(kube: KubeClient, discovery: Discovery, options: EtcdOptions) -> list[Finding]:
    from strongroom.etcd.connection import EtcdTarget, TlsFiles, parse_endpoints
    from strongroom.etcd.members import survey

    assert options.endpoints
    tls = TlsFiles(
        ca=Path(options.cacert) if options.cacert else None,
        cert=Path(options.cert) if options.cert else None,
        key=Path(options.key) if options.key else None,
    )
    target = EtcdTarget(parse_endpoints(options.endpoints, secure=tls.enabled), tls)
    result = await survey(target, hashkv=False)
    unhealthy = [h.member.name for h in result.members if not h.healthy and h.member.name]
    explained = await _explain(kube, discovery, unhealthy) if unhealthy else {}
    return lib.etcd_members(
        [
            {
                "name": h.member.name,
                "healthy": h.healthy,
                "error": h.error,
                "explanation": list(h.explanation) or explained.get(h.member.name, []),
            }
            for h in result.members
        ]
    )


async def _etcd_operator(kube: KubeClient, discovery: Discovery) -> list[Finding]:
    from strongroom.cluster.operators import GROUP, etcd_members_condition

    res = discovery.served(GROUP, "v1", "etcds")
    if res is None:
        return lib.skipped(
            lib.ETCD_MEMBERS,
            "no --etcd-endpoints given, and the cluster has no Etcd resource (operator.openshift.io/v1) to read",
        )
    etcd = await kube.get(res, "cluster")
    if etcd is None:
        return lib.skipped(lib.ETCD_MEMBERS, "the Etcd resource 'cluster' does not exist")
    condition = etcd_members_condition(etcd)
    explained = await _explain(kube, discovery, list(condition.unhealthy)) if condition.unhealthy else {}
    return lib.etcd_operator(condition.available, condition.message, explained)
