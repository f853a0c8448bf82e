"""`strongroom etcd`: snapshots of the control plane, membership, restore and disaster recovery.

The commands of the seed's etcd chapter (cluster-backup.sh, etcdctl member
list/remove/add, cluster-restore.sh) as checked steps. This module holds the
``snapshot`` commands and assembles the group; membership, restore and
recovery live in ``etcd_recovery``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from strongroom.cli.common import Output, OutputOption, ProgressReporter, emit, print_table, run
from strongroom.cli.etcd_common import (
    CacertOption,
    CertOption,
    ContextOption,
    DialTimeoutOption,
    DirOption,
    EndpointsOption,
    EtcdutlOption,
    HostRootOption,
    KeyOption,
    KubeconfigOption,
    LocationNamespaceOption,
    SnapshotSource,
    StorageLocationOption,
    cluster_client,
    connection_args,
    etcdutl,
    open_archive,
    resolve_target,
    say,
)
from strongroom.errors import ConflictError, UsageError
from strongroom.etcd.retention import Retention, select
from strongroom.etcd.snapshot import (
    SnapshotArchive,
    SnapshotRecord,
    StoredSnapshot,
    Verification,
    save_snapshot,
)
from strongroom.etcd.verify import check_file, verify_file

__all__ = ["etcd_app"]

etcd_app = typer.Typer(help="Back up, verify and restore etcd, and manage its members.", no_args_is_help=True)
snapshot_app = typer.Typer(help="etcd snapshots: save, status, verify, list, prune.", no_args_is_help=True)
etcd_app.add_typer(snapshot_app, name="snapshot")

COMPONENT_OPERATORS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd")


@contextmanager
def private_files() -> Iterator[None]:
    """Snapshots hold every Secret of the cluster: whatever these commands write is the owner's alone."""
    previous = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(previous)


@snapshot_app.command("save")
def save(
    to: Annotated[Path | None, typer.Option("--to", help="Directory to write the snapshot to.")] = None,
    storage_location: StorageLocationOption = None,
    endpoints: EndpointsOption = None,
    cacert: CacertOption = None,
    cert: CertOption = None,
    key: KeyOption = None,
    dial_timeout: DialTimeoutOption = 5.0,
    host_root: HostRootOption = Path("/"),
    static_pod_resources: Annotated[
        Path | None,
        typer.Option(
            "--static-pod-resources",
            help="Static pod resources directory to archive (default: /etc/kubernetes/static-pod-resources "
            "under --host-root, when it exists).",
        ),
    ] = None,
    no_static_pod_resources: Annotated[
        bool, typer.Option("--no-static-pod-resources", help="Save the snapshot only.")
    ] = False,
    resources_to: Annotated[
        Path | None,
        typer.Option(
            "--static-resources-to", help="Keep the static pod resources in this directory instead."
        ),
    ] = None,
    resources_location: Annotated[
        str | None,
        typer.Option(
            "--static-resources-location", help="Keep the static pod resources in this location instead."
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Save even while a control-plane operator is Progressing.")
    ] = False,
    keep_last: Annotated[int, typer.Option("--keep-last", help="Then prune: keep the N newest.")] = 0,
    keep_daily: Annotated[
        int, typer.Option("--keep-daily", help="Then prune: keep one a day for N days.")
    ] = 0,
    keep_weekly: Annotated[
        int, typer.Option("--keep-weekly", help="Then prune: keep one a week for N weeks.")
    ] = 0,
    verify: Annotated[bool, typer.Option("--verify", help="Verify the snapshot once saved.")] = False,
    scratch_dir: Annotated[
        Path | None,
        typer.Option(
            "--scratch-dir",
            envvar="STRONGROOM_SCRATCH_DIR",
            help="Where --verify downloads and trial-restores the snapshot.",
        ),
    ] = None,
    kubeconfig: KubeconfigOption = None,
    context: ContextOption = None,
    namespace: LocationNamespaceOption = "openshift-adp",
    output: OutputOption = Output.table,
) -> None:
    """Stream a snapshot of etcd to a directory or a backup location, as cluster-backup.sh does."""
    if (to is None) == (storage_location is None):
        raise UsageError("say where to save the snapshot: --to DIR or --storage-location NAME (one of them)")
    if resources_to is not None and resources_location is not None:
        raise UsageError("give --static-resources-to or --static-resources-location, not both")
    retention = Retention(keep_last, keep_daily, keep_weekly)
    with private_files():
        record = _run_save(
            to=to,
            storage_location=storage_location,
            target_args=connection_args(locals()),
            host_root=host_root,
            resources_dir=None if no_static_pod_resources else static_pod_resources,
            resources_default=not no_static_pod_resources and static_pod_resources is None,
            resources_to=resources_to,
            resources_location=resources_location,
            force=force,
            retention=retention,
            verify=verify,
            scratch=scratch_dir,
            namespace=namespace,
        )
    emit(record.to_json(), output, lambda: _print_record(record))


def _run_save(**kwargs: Any) -> SnapshotRecord:
    return run(_save(**kwargs))


async def _save(
    *,
    to: Path | None,
    storage_location: str | None,
    target_args: dict[str, Any],
    host_root: Path,
    resources_dir: Path | None,
    resources_default: bool,
    resources_to: Path | None,
    resources_location: str | None,
    force: bool,
    retention: Retention,
    verify: bool,
    scratch: Path | None,
    namespace: str,
) -> SnapshotRecord:
    from strongroom.etcd import staticpods

    target = await resolve_target(**target_args)
    where = {
        "namespace": namespace,
        "kubeconfig": target_args["kubeconfig"],
        "context": target_args["context"],
    }
    archive = await open_archive(to, storage_location, create=True, **where)
    resources_archive = (
        await open_archive(resources_to, resources_location, create=True, **where)
        if resources_to is not None or resources_location is not None
        else None
    )
    default_dir = host_root / staticpods.RESOURCES_DIR
    chosen = resources_dir if resources_dir is not None else (default_dir if resources_default else None)
    stream = None
    info: dict[str, Any] | None = None
    if chosen is not None and (resources_dir is not None or default_dir.is_dir()):
        found = staticpods.find_latest_resources(host_root, resources_dir)
        for item in found:
            say(f"found latest {item.component}: {item.path}")
            if item.note:
                say(f"warning: {item.note}")
        await _refuse_progressing(target_args, force)
        stream = staticpods.archive_stream(found, host_root / "etc/kubernetes")
        info = {"revisions": {item.component: item.revision for item in found}}
        say(
            "warning: the static pod resources archive holds the keys etcd encrypts Secrets with; "
            "keep it as safe as the snapshot"
            + (
                ""
                if resources_archive is not None
                else ", or store it apart (--static-resources-to/--static-resources-location)"
            )
        )
    elif resources_default:
        say(f"no static pod resources at {default_dir}: saving the snapshot only")
    started = datetime.now(UTC)
    with ProgressReporter("streaming the snapshot (MB)") as bar:
        record = await save_snapshot(
            target,
            archive,
            now=started,
            resources=stream,
            resources_archive=resources_archive,
            resources_info=info,
            progress=lambda done, total: bar.update(done // 1_000_000, total // 1_000_000),
        )
    seconds = (datetime.now(UTC) - started).total_seconds()
    say(f"snapshot saved to {archive.description} as {record.name} ({record.size} bytes in {seconds:.1f}s)")
    if verify:
        source = SnapshotSource(
            record.name,
            to,
            storage_location,
            namespace=namespace,
            kubeconfig=target_args["kubeconfig"],
            context=target_args["context"],
        )
        verification = await _verify(
            source, etcdutl(None), skip_hash_check=False, trial_restore=True, scratch=scratch
        )
        say(f"{record.name}: verified ({', '.join(verification.checks)})")
    if not retention.empty:
        await _prune(archive, retention, dry_run=False)
    return record


async def _refuse_progressing(target_args: dict[str, Any], force: bool) -> None:
    from strongroom.errors import StrongroomError
    from strongroom.etcd.staticpods import progressing_operators

    try:
        async with cluster_client(target_args["kubeconfig"], target_args["context"]) as kube:
            if kube is None:
                say("note: no cluster access, so ClusterOperators were not checked for a rollout in progress")
                return
            progressing = await progressing_operators(kube, await kube.discover())
    except StrongroomError as exc:
        say(f"note: ClusterOperators could not be checked: {exc.message}")
        return
    if not progressing:
        return
    names = "; ".join(f"{name}: {message}" for name, message in progressing)
    if not force:
        raise ConflictError(
            f"a control-plane operator is Progressing ({names}); the static pod resources may be mid-rollout",
            hint="wait until it settles, or pass --force",
        )
    say(f"warning: saving although {names}")


@snapshot_app.command("status")
def status(
    snapshot: Annotated[
        str, typer.Argument(help="A snapshot file, or a name (or 'latest') with --dir/--storage-location.")
    ],
    directory: DirOption = None,
    storage_location: StorageLocationOption = None,
    skip_hash_check: Annotated[
        bool, typer.Option("--skip-hash-check", help="Read a db copied from a data directory.")
    ] = False,
    namespace: LocationNamespaceOption = "openshift-adp",
    kubeconfig: KubeconfigOption = None,
    context: ContextOption = None,
    output: OutputOption = Output.table,
) -> None:
    """Size, hash, revision and key count of a snapshot, as etcdutl snapshot status reports them."""
    document = run(
        _status(
            SnapshotSource(
                snapshot,
                directory,
                storage_location,
                namespace=namespace,
                kubeconfig=kubeconfig,
                context=context,
            ),
            skip_hash_check,
        )
    )

    def table() -> None:
        print_table(
            ["HASH", "REVISION", "TOTAL KEYS", "TOTAL SIZE", "FILE SIZE", "SHA256"],
            [
                (
                    f"{document['hash']:x}",
                    document["revision"],
                    document["totalKey"],
                    document["totalSize"],
                    document["size"],
                    (document["sha256"] or "none")[:16],
                )
            ],
        )

    emit(document, output, table)


async def _status(source: SnapshotSource, skip_hash_check: bool) -> dict[str, Any]:
    async with source.local_file() as path:
        checked = check_file(path, skip_hash_check=skip_hash_check)
    return {
        **checked.status.to_json(),
        "size": checked.size,
        "sha256": checked.sha256,
        "file": str(source.reference),
    }


@snapshot_app.command("verify")
def verify_command(
    snapshot: Annotated[
        str, typer.Argument(help="A snapshot file, or a name (or 'latest') with --dir/--storage-location.")
    ],
    directory: DirOption = None,
    storage_location: StorageLocationOption = None,
    etcdutl_path: EtcdutlOption = None,
    skip_hash_check: Annotated[
        bool, typer.Option("--skip-hash-check", help="Accept a db without etcd's hash.")
    ] = False,
    no_trial_restore: Annotated[
        bool, typer.Option("--no-trial-restore", help="Skip the trial restore.")
    ] = False,
    scratch_dir: Annotated[
        Path | None,
        typer.Option("--scratch-dir", envvar="STRONGROOM_SCRATCH_DIR", help="Where the trial restore goes."),
    ] = None,
    namespace: LocationNamespaceOption = "openshift-adp",
    kubeconfig: KubeconfigOption = None,
    context: ContextOption = None,
    output: OutputOption = Output.table,
) -> None:
    """Check the hash, the database (etcdutl) and a trial restore; record the result beside a stored snapshot."""
    with private_files():
        verification = run(
            _verify(
                SnapshotSource(
                    snapshot,
                    directory,
                    storage_location,
                    namespace=namespace,
                    kubeconfig=kubeconfig,
                    context=context,
                ),
                etcdutl(etcdutl_path),
                skip_hash_check=skip_hash_check,
                trial_restore=not no_trial_restore,
                scratch=scratch_dir,
            )
        )

    def table() -> None:
        for check, text in verification.checks.items():
            typer.echo(f"{check:8} ok   {text}")
        typer.echo(f"{verification.name}: verified")

    emit(verification.to_json(), output, table)


async def _verify(
    source: SnapshotSource, tool: Any, *, skip_hash_check: bool, trial_restore: bool, scratch: Path | None
) -> Verification:
    async with source.local_file(scratch) as path:
        record = source.stored.record if source.stored else None
        report = verify_file(
            path,
            tool,
            record=record,
            scratch=scratch,
            trial_restore=trial_restore,
            skip_hash_check=skip_hash_check,
        )
    verification = Verification(
        name=source.stored.name if source.stored else path.name,
        verified_at=datetime.now(UTC),
        ok=True,
        checks=report.checks,
        etcdutl_version=tool.version_text,
    )
    if source.archive is not None and source.stored is not None and trial_restore:
        await source.archive.put_verification(verification)
    return verification


@snapshot_app.command("list")
def list_command(
    directory: DirOption = None,
    storage_location: StorageLocationOption = None,
    namespace: LocationNamespaceOption = "openshift-adp",
    kubeconfig: KubeconfigOption = None,
    context: ContextOption = None,
    output: OutputOption = Output.table,
) -> None:
    """The snapshots kept in a directory or a backup location, newest first."""
    snapshots = run(_list(directory, storage_location, namespace, kubeconfig, context))
    emit([_snapshot_json(s) for s in snapshots], output, lambda: _print_snapshots(snapshots))


async def _list(
    directory: Path | None, location: str | None, namespace: str, kubeconfig: str | None, context: str | None
) -> list[StoredSnapshot]:
    archive = await open_archive(
        directory, location, namespace=namespace, kubeconfig=kubeconfig, context=context
    )
    return await archive.list()


def _snapshot_json(snap: StoredSnapshot) -> dict[str, Any]:
    return {
        "name": snap.name,
        "created": snap.created.isoformat().replace("+00:00", "Z"),
        "size": snap.size,
        "complete": snap.record is not None,
        "record": snap.record.to_json() if snap.record else None,
        "verification": snap.verification.to_json() if snap.verification else None,
        "staticResources": snap.resources,
    }


def _print_snapshots(snapshots: list[StoredSnapshot]) -> None:
    print_table(
        ["NAME", "CREATED", "SIZE", "REVISION", "KEYS", "VERIFIED", "RESOURCES", "CLUSTER"],
        [
            (
                s.name,
                s.created.strftime("%Y-%m-%d %H:%M:%S"),
                s.size,
                s.record.status.revision if s.record and s.record.status else "",
                s.record.status.total_key if s.record and s.record.status else "",
                ("yes" if s.verified else "FAILED") if s.verification else "no",
                "yes" if s.resources else "no",
                s.record.cluster_id if s.record else "(no record)",
            )
            for s in snapshots
        ],
    )


def _print_record(record: SnapshotRecord) -> None:
    status = record.status
    typer.echo(f"Snapshot:      {record.name}")
    typer.echo(
        f"From:          {record.endpoint} (member {record.member_id}, cluster {record.cluster_id}, etcd {record.etcd_version})"
    )
    typer.echo(f"Size:          {record.size} bytes, sha256 {record.sha256}")
    if status is not None:
        typer.echo(f"Hash:          {status.hash:x}")
        typer.echo(f"Revision:      {status.revision}")
        typer.echo(f"Total keys:    {status.total_key}")
        typer.echo(f"Total size:    {status.total_size}")
    if record.static_resources:
        typer.echo(
            f"Static pods:   {record.static_resources['name']} ({record.static_resources['size']} bytes)"
        )


@snapshot_app.command("prune")
def prune(
    directory: DirOption = None,
    storage_location: StorageLocationOption = None,
    keep_last: Annotated[int, typer.Option("--keep-last", help="Keep the N newest.")] = 0,
    keep_daily: Annotated[
        int, typer.Option("--keep-daily", help="Keep the newest of each of the last N days.")
    ] = 0,
    keep_weekly: Annotated[
        int, typer.Option("--keep-weekly", help="Keep the newest of each of the last N weeks.")
    ] = 0,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print what would be deleted.")] = False,
    namespace: LocationNamespaceOption = "openshift-adp",
    kubeconfig: KubeconfigOption = None,
    context: ContextOption = None,
) -> None:
    """Delete snapshots the retention policy does not keep (never the newest verified one)."""
    run(
        _prune_in(
            directory,
            storage_location,
            Retention(keep_last, keep_daily, keep_weekly),
            dry_run,
            namespace=namespace,
            kubeconfig=kubeconfig,
            context=context,
        )
    )


async def _prune_in(
    directory: Path | None,
    location: str | None,
    policy: Retention,
    dry_run: bool,
    *,
    namespace: str,
    kubeconfig: str | None,
    context: str | None,
) -> None:
    if policy.empty:  # refused before the archive is opened
        raise UsageError(
            "a retention policy must keep something", hint="give --keep-last, --keep-daily or --keep-weekly"
        )
    archive = await open_archive(
        directory, location, namespace=namespace, kubeconfig=kubeconfig, context=context
    )
    await _prune(archive, policy, dry_run=dry_run)


async def _prune(archive: SnapshotArchive, policy: Retention, *, dry_run: bool) -> None:
    result = select(await archive.list(), policy)
    for name, reasons in sorted(result.keep.items(), reverse=True):
        typer.echo(f"keep    {name} ({', '.join(reasons)})")
    for snap in result.remove:
        if dry_run:
            typer.echo(f"would delete {snap.name}")
            continue
        await archive.delete(snap.name)
        typer.echo(f"deleted {snap.name}")
    say(
        f"{policy.describe()}: {len(result.keep)} kept, {len(result.remove)} {'to delete' if dry_run else 'deleted'}"
    )


from strongroom.cli import etcd_recovery as _recovery  # noqa: E402 - registers members, restore, recover

_recovery.register(etcd_app)
