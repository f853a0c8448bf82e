"""`strongroom etcd members|restore|recover`: membership changes and disaster recovery, checked first.

Every destructive command takes ``--dry-run`` and prints each step it would
take; without it, the checks run before the first change and a failed check
changes nothing.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from strongroom.cli.common import Output, OutputOption, emit, print_table, run
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
    has_cluster,
    resolve_target,
    say,
    snapshot_problem,
)
from strongroom.errors import StrongroomError, UsageError
from strongroom.etcd.connection import EtcdTarget, parse_endpoints
from strongroom.etcd.members import (
    ClusterSurvey,
    add_learner,
    plan_replace,
    promote_when_ready,
    remove_member,
    survey,
)
from strongroom.etcd.recover import HostPaths, Recovery, grow
from strongroom.etcd.restore import plan_restore, restore_data_dir
from strongroom.etcd.snapshot import resources_name
from strongroom.etcd.verify import verify_file

__all__ = ["register"]

members_app = typer.Typer(help="etcd members: list, health, replace.", no_args_is_help=True)

ETCD_SECRETS = ("etcd-peer-{}", "etcd-serving-{}", "etcd-serving-metrics-{}")


def register(app: typer.Typer) -> None:
    app.add_typer(members_app, name="members")
    app.command("restore")(restore)
    app.command("recover")(recover)


async def _survey(target_args: dict[str, Any], *, explain: bool) -> ClusterSurvey:
    target = await resolve_target(**target_args)
    result = await survey(target)
    unhealthy = [h for h in result.members if not h.healthy and h.member.name]
    if explain and unhealthy:
        from strongroom.etcd.discovery import explain_members

        reasons: dict[str, list[str]] = {}
        try:
            async with cluster_client(target_args["kubeconfig"], target_args["context"]) as kube:
                if kube is not None:
                    names = [h.member.name for h in unhealthy]
                    reasons = await explain_members(kube, await kube.discover(), names)
        except StrongroomError as exc:
            say(f"note: the cluster could not be asked why: {exc.message}")
        for health in unhealthy:
            health.explanation += reasons.get(health.member.name, [])
    return result


def _print_members(result: ClusterSurvey, *, health: bool) -> None:
    leader = result.leader_id
    rows = []
    for h in result.members:
        status = h.status
        row: list[object] = [
            h.member.hex_id,
            h.member.name or "(not started)",
            ",".join(h.member.peer_urls),
            ",".join(h.member.client_urls),
            "learner" if h.member.is_learner else ("leader" if leader == h.member.id else "follower"),
        ]
        if health:
            row += [
                "healthy" if h.healthy else "UNHEALTHY",
                f"{h.latency_ms:.1f}ms" if h.latency_ms is not None else "",
                f"{h.hash_kv:x}" if h.hash_kv is not None else "",
                h.error or "",
            ]
        else:
            row += [
                status.raft_index if status else "",
                status.raft_term if status else "",
                status.db_size if status else "",
                status.version if status else "",
            ]
        rows.append(row)
    headers = ["ID", "NAME", "PEER URLS", "CLIENT URLS", "ROLE"]
    headers += (
        ["HEALTH", "LATENCY", "HASHKV", "ERROR"]
        if health
        else ["RAFT INDEX", "RAFT TERM", "DB SIZE", "VERSION"]
    )
    print_table(headers, rows)
    if health:
        agree = result.hashes_agree
        if agree is not None:
            typer.echo(
                f"hashkv at revision {result.hash_revision}: "
                + ("all members agree" if agree else "MEMBERS DISAGREE (data inconsistency)")
            )
        for h in result.members:
            for line in h.explanation:
                typer.echo(f"{h.member.name or h.member.hex_id}: {line}")


@members_app.command("list")
def members_list(
    endpoints: EndpointsOption = None,
    cacert: CacertOption = None,
    cert: CertOption = None,
    key: KeyOption = None,
    dial_timeout: DialTimeoutOption = 5.0,
    host_root: HostRootOption = Path("/"),
    kubeconfig: KubeconfigOption = None,
    context: ContextOption = None,
    output: OutputOption = Output.table,
) -> None:
    """Members with their URLs, role, raft index and term, database size and version."""
    args = connection_args(locals())
    result = run(_survey(args, explain=False))
    emit(result.to_json(), output, lambda: _print_members(result, health=False))


@members_app.command("health")
def members_health(
    endpoints: EndpointsOption = None,
    cacert: CacertOption = None,
    cert: CertOption = None,
    key: KeyOption = None,
    dial_timeout: DialTimeoutOption = 5.0,
    host_root: HostRootOption = Path("/"),
    kubeconfig: KubeconfigOption = None,
    context: ContextOption = None,
    output: OutputOption = Output.table,
) -> None:
    """Per-member health and latency, hashkv agreement, and why an unhealthy member is (exit 1 if any is)."""
    args = connection_args(locals())
    result = run(_survey(args, explain=True))
    emit(result.to_json(), output, lambda: _print_members(result, health=True))
    if any(not h.healthy for h in result.members) or result.hashes_agree is False:
        raise typer.Exit(1)


@members_app.command("replace")
def members_replace(
    name: Annotated[str, typer.Argument(help="The member to replace (name or hex ID).")],
    peer_urls: Annotated[str, typer.Option("--peer-urls", help="Peer URLs of the replacement.")],
    new_name: Annotated[
        str | None, typer.Option("--new-name", help="Name of the replacement (default: the same).")
    ] = None,
    snapshots_dir: Annotated[
        Path | None, typer.Option("--snapshots-dir", help="Where to look for a recent verified snapshot.")
    ] = None,
    storage_location: StorageLocationOption = None,
    max_snapshot_age: Annotated[
        str, typer.Option("--max-snapshot-age", help="How recent that snapshot must be.")
    ] = "24h",
    force: Annotated[bool, typer.Option("--force", help="Go on without a recent verified snapshot.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the steps and change nothing.")] = False,
    wait: Annotated[
        float, typer.Option("--wait", help="Seconds to wait for the replacement to catch up.")
    ] = 300.0,
    etcd_namespace: Annotated[
        str, typer.Option("--etcd-namespace", help="Namespace of etcd's secrets.")
    ] = "openshift-etcd",
    namespace: LocationNamespaceOption = "openshift-adp",
    endpoints: EndpointsOption = None,
    cacert: CacertOption = None,
    cert: CertOption = None,
    key: KeyOption = None,
    dial_timeout: DialTimeoutOption = 5.0,
    host_root: HostRootOption = Path("/"),
    kubeconfig: KubeconfigOption = None,
    context: ContextOption = None,
) -> None:
    """Remove a member and add its replacement as a learner, promoted once caught up; refuses to lose quorum."""
    args = connection_args(locals())
    urls = [u.strip() for u in peer_urls.split(",") if u.strip()]
    run(
        _replace(
            args,
            name,
            urls,
            new_name=new_name,
            snapshots_dir=snapshots_dir,
            storage_location=storage_location,
            max_age=max_snapshot_age,
            force=force,
            dry_run=dry_run,
            wait=wait,
            etcd_namespace=etcd_namespace,
            namespace=namespace,
        )
    )


async def _replace(
    args: dict[str, Any],
    name: str,
    urls: list[str],
    *,
    new_name: str | None,
    snapshots_dir: Path | None,
    storage_location: str | None,
    max_age: str,
    force: bool,
    dry_run: bool,
    wait: float,
    etcd_namespace: str,
    namespace: str,
) -> None:
    target = await resolve_target(**args)
    problem = await snapshot_problem(
        snapshots_dir, storage_location, max_age, namespace, args["kubeconfig"], args["context"]
    )
    cluster = await survey(target, hashkv=False)
    plan = plan_replace(
        cluster, name, new_name=new_name, peer_urls=urls, force=force, snapshot_problem=problem
    )
    if problem:
        say(f"warning: {problem} (going on: --force)")
    cluster_access = has_cluster(args["kubeconfig"])
    steps = list(plan.steps)
    if cluster_access and plan.member.id:
        steps.insert(
            1,
            f"delete the secrets {', '.join(s.format(plan.member.name) for s in ETCD_SECRETS)} in {etcd_namespace}",
        )
    if dry_run:
        for index, step in enumerate(steps, 1):
            typer.echo(f"{index}. {step}")
        return
    healthy = [
        h.member.client_urls[0]
        for h in cluster.members
        if h.healthy and h.member.client_urls and h.member.id != plan.member.id
    ]
    survivors = target.with_endpoints(healthy or list(target.endpoints))
    learner = plan.resume
    if learner is None:
        if plan.member.id:
            await remove_member(survivors, plan.member)
            say(f"removed member {plan.member.name} ({plan.member.hex_id})")
            if cluster_access:
                await _delete_secrets(args, plan.member.name, etcd_namespace)
        learner = await add_learner(survivors, plan.peer_urls)
        say(f"added {plan.new_name} as learner {learner.hex_id}")
    else:
        say(f"resuming: {learner.hex_id} ({','.join(learner.peer_urls)}) is still a learner")
    members = [h.member for h in cluster.members if h.member.id != plan.member.id and not h.member.is_learner]
    initial = ",".join(
        [f"{m.name}={u}" for m in members for u in m.peer_urls]
        + [f"{plan.new_name}={u}" for u in plan.peer_urls]
    )
    typer.echo("start the replacement with an empty data directory and:")
    typer.echo(f"  --name={plan.new_name} --initial-advertise-peer-urls={','.join(plan.peer_urls)}")
    typer.echo(f"  --initial-cluster={initial} --initial-cluster-state=existing")
    await promote_when_ready(survivors, learner.id, timeout=wait, say=say)
    say(f"promoted {plan.new_name}")
    after = await survey(survivors, hashkv=False)
    voting = [h for h in after.members if not h.member.is_learner]
    expected = len([h for h in cluster.members if not h.member.is_learner]) + (0 if plan.member.id else 1)
    if len(voting) != expected or not all(h.healthy for h in voting):
        bad = ", ".join(
            f"{h.member.name or h.member.hex_id}: {h.error or 'unhealthy'}" for h in voting if not h.healthy
        )
        raise StrongroomError(
            f"after the replacement: {len(voting)} voting members (expected {expected}); {bad}"
        )
    typer.echo(f"member {plan.new_name} replaced {name}: {len(voting)} healthy voting members")


async def _delete_secrets(args: dict[str, Any], member: str, namespace: str) -> None:
    from strongroom.kube import KubeNotFound

    try:
        async with cluster_client(args["kubeconfig"], args["context"]) as kube:
            secrets = (await kube.discover()).find("", "secrets") if kube is not None else None
            if kube is None or secrets is None:
                return
            for pattern in ETCD_SECRETS:
                secret = pattern.format(member)
                try:
                    await kube.delete(secrets, secret, namespace)
                    say(f"deleted secret {namespace}/{secret}")
                except KubeNotFound:
                    pass
    except StrongroomError as exc:
        say(f"warning: etcd's secrets for {member} could not be deleted: {exc.message}")


def restore(
    snapshot: Annotated[
        str, typer.Option("--snapshot", help="A snapshot file, or a name with --dir/--storage-location.")
    ],
    data_dir: Annotated[
        Path, typer.Option("--data-dir", help="The member's new data directory (must be empty).")
    ],
    name: Annotated[str, typer.Option("--name", help="This member's name.")],
    initial_advertise_peer_urls: Annotated[
        str, typer.Option("--initial-advertise-peer-urls", help="This member's peer URLs.")
    ],
    initial_cluster: Annotated[
        str | None,
        typer.Option(
            "--initial-cluster", help="NAME=PEER_URL,... of every member (default: this one alone)."
        ),
    ] = None,
    initial_cluster_token: Annotated[
        str | None,
        typer.Option(
            "--initial-cluster-token",
            help="Cluster token (default: a new random one; give every member the same).",
        ),
    ] = None,
    no_bump_revision: Annotated[
        bool, typer.Option("--no-bump-revision", help="Keep the snapshot's revision.")
    ] = False,
    skip_hash_check: Annotated[
        bool, typer.Option("--skip-hash-check", help="Accept a db copied from a data directory.")
    ] = False,
    directory: DirOption = None,
    storage_location: StorageLocationOption = None,
    etcdutl_path: EtcdutlOption = None,
    namespace: LocationNamespaceOption = "openshift-adp",
    kubeconfig: KubeconfigOption = None,
    context: ContextOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the steps and change nothing.")] = False,
) -> None:
    """Restore one member's data directory from a verified snapshot, with a new cluster token."""
    tool = etcdutl(etcdutl_path)
    run(
        _restore(
            SnapshotSource(
                snapshot,
                directory,
                storage_location,
                namespace=namespace,
                kubeconfig=kubeconfig,
                context=context,
            ),
            tool,
            data_dir=data_dir,
            name=name,
            peer_urls=initial_advertise_peer_urls,
            initial_cluster=initial_cluster,
            token=initial_cluster_token,
            bump=not no_bump_revision,
            skip_hash_check=skip_hash_check,
            dry_run=dry_run,
        )
    )


async def _restore(
    source: SnapshotSource,
    tool: Any,
    *,
    data_dir: Path,
    name: str,
    peer_urls: str,
    initial_cluster: str | None,
    token: str | None,
    bump: bool,
    skip_hash_check: bool,
    dry_run: bool,
) -> None:
    async with source.local_file() as path:
        plan = plan_restore(
            tool,
            data_dir=data_dir,
            name=name,
            initial_cluster=initial_cluster,
            peer_urls=peer_urls,
            token=token,
            bump_revision=bump,
        )
        if dry_run:
            steps = [f"verify {source.reference} (hash, database, etcd version)", *plan.describe()]
            for index, step in enumerate(steps, 1):
                typer.echo(f"{index}. {step}")
            for warning in plan.warnings:
                say(f"warning: {warning}")
            return
        report = verify_file(
            path,
            tool,
            record=source.stored.record if source.stored else None,
            trial_restore=False,
            skip_hash_check=skip_hash_check,
        )
        say(
            f"verified {source.reference}: revision {report.file.status.revision}, {report.file.status.total_key} keys"
        )
        plan.warnings = [
            w.replace("revision,", f"revision {report.file.status.revision},") for w in plan.warnings
        ]
        restore_data_dir(plan, path, tool, skip_hash_check=not report.file.has_hash)
    typer.echo(f"restored member {name} into {data_dir} (cluster token {plan.token})")
    for warning in plan.warnings:
        say(f"warning: {warning}")


def recover(
    snapshot: Annotated[
        str, typer.Option("--snapshot", help="A snapshot file, or a name with --dir/--storage-location.")
    ],
    name: Annotated[str, typer.Option("--name", help="This (recovery) member's name.")],
    initial_advertise_peer_urls: Annotated[
        str, typer.Option("--initial-advertise-peer-urls", help="This member's peer URLs.")
    ],
    client_url: Annotated[
        str, typer.Option("--client-url", help="This member's client URL, to see it stop and start.")
    ] = "https://127.0.0.1:2379",
    initial_cluster: Annotated[
        str | None,
        typer.Option(
            "--initial-cluster", help="For a multi-member restore: every member, the same on every host."
        ),
    ] = None,
    initial_cluster_token: Annotated[
        str | None,
        typer.Option(
            "--initial-cluster-token",
            help="Cluster token (the same on every host of a multi-member restore).",
        ),
    ] = None,
    static_resources: Annotated[
        Path | None,
        typer.Option(
            "--static-resources",
            help="static_kuberesources_<ts>.tar.gz to put back (default: the snapshot's, when kept beside it).",
        ),
    ] = None,
    grow_members: Annotated[
        list[str] | None,
        typer.Option(
            "--grow", help="NAME=PEER_URL of a member to add back afterwards, one at a time (repeat)."
        ),
    ] = None,
    host_root: HostRootOption = Path("/"),
    data_dir: Annotated[
        str, typer.Option("--data-dir", help="etcd's data directory on the host.")
    ] = "/var/lib/etcd",
    no_bump_revision: Annotated[
        bool, typer.Option("--no-bump-revision", help="Keep the snapshot's revision.")
    ] = False,
    skip_hash_check: Annotated[
        bool,
        typer.Option("--skip-hash-check", help="Accept a db copied from a data directory (no etcd hash)."),
    ] = False,
    stop_timeout: Annotated[
        float, typer.Option("--stop-timeout", help="Seconds to wait for the static pods to stop.")
    ] = 300.0,
    start_timeout: Annotated[
        float, typer.Option("--start-timeout", help="Seconds to wait for etcd to serve again.")
    ] = 300.0,
    grow_timeout: Annotated[
        float, typer.Option("--grow-timeout", help="Seconds to wait for each member added back.")
    ] = 600.0,
    directory: DirOption = None,
    storage_location: StorageLocationOption = None,
    cacert: CacertOption = None,
    cert: CertOption = None,
    key: KeyOption = None,
    etcdutl_path: EtcdutlOption = None,
    namespace: LocationNamespaceOption = "openshift-adp",
    kubeconfig: KubeconfigOption = None,
    context: ContextOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the steps and change nothing.")] = False,
) -> None:
    """Disaster recovery on this host, as cluster-restore.sh: stop, move aside, restore, start, grow back."""
    from strongroom.etcd.connection import TlsFiles

    tls = TlsFiles(
        ca=Path(cacert) if cacert else None, cert=Path(cert) if cert else None, key=Path(key) if key else None
    )
    target = EtcdTarget(parse_endpoints(client_url, secure=tls.enabled), tls)
    joiners = []
    for item in grow_members or []:
        joiner, sep, url = item.partition("=")
        if not sep or "://" not in url:
            raise UsageError(f"malformed --grow {item!r}", hint="use NAME=PEER_URL")
        joiners.append((joiner, url))
    if joiners and initial_cluster:
        raise UsageError(
            "--grow adds members to a single-member restore; a multi-member restore (--initial-cluster) needs none"
        )
    run(
        _recover(
            SnapshotSource(
                snapshot,
                directory,
                storage_location,
                namespace=namespace,
                kubeconfig=kubeconfig,
                context=context,
            ),
            etcdutl(etcdutl_path),
            target,
            paths=HostPaths.under(host_root, data_dir=data_dir),
            name=name,
            peer_urls=initial_advertise_peer_urls,
            initial_cluster=initial_cluster,
            token=initial_cluster_token,
            bump=not no_bump_revision,
            static_resources=static_resources,
            skip_hash_check=skip_hash_check,
            joiners=joiners,
            stop_timeout=stop_timeout,
            start_timeout=start_timeout,
            grow_timeout=grow_timeout,
            dry_run=dry_run,
        )
    )


async def _recover(
    source: SnapshotSource,
    tool: Any,
    target: EtcdTarget,
    *,
    paths: HostPaths,
    name: str,
    peer_urls: str,
    initial_cluster: str | None,
    token: str | None,
    bump: bool,
    static_resources: Path | None,
    skip_hash_check: bool,
    joiners: list[tuple[str, str]],
    stop_timeout: float,
    start_timeout: float,
    grow_timeout: float,
    dry_run: bool,
) -> None:
    async with source.local_file() as path, _resources_file(source, static_resources) as resources:
        plan = plan_restore(
            tool,
            data_dir=paths.data_dir,
            name=name,
            initial_cluster=initial_cluster,
            peer_urls=peer_urls,
            token=token,
            bump_revision=bump,
            require_empty=False,
        )
        recovery = Recovery(paths, tool, plan, path, resources, target, say, skip_hash_check=skip_hash_check)
        recovery.preflight()
        # The trial restore runs even for a real recovery: it proves the snapshot restorable
        # before anything on the host is moved.
        report = verify_file(
            path,
            tool,
            record=source.stored.record if source.stored else None,
            skip_hash_check=skip_hash_check,
        )
        say(
            f"verified {source.reference}: revision {report.file.status.revision}, {report.file.status.total_key} keys"
        )
        steps = recovery.steps()
        for joiner, url in joiners:
            steps.append(
                f"add {joiner} ({url}) back as a learner, wait for it to be started and catch up, promote it"
            )
        if dry_run:
            for index, step in enumerate(steps, 1):
                typer.echo(f"{index}. {step}")
            for warning in plan.warnings:
                say(f"warning: {warning}")
            return
        await recovery.run(stop_timeout=stop_timeout, start_timeout=start_timeout)
    for warning in plan.warnings:
        say(f"warning: {warning}")
    if joiners:
        await grow(target, joiners, timeout=grow_timeout, say=say)
    typer.echo(f"recovered etcd from {source.reference} on member {name}")
    say(
        "next, once the API server answers: on OpenShift run 'strongroom cluster redeploy' (new rollouts "
        "of etcd, kube-apiserver, kube-controller-manager and kube-scheduler, one at a time), then "
        "restart the pods that keep state read from the API"
    )


@asynccontextmanager
async def _resources_file(source: SnapshotSource, explicit: Path | None) -> AsyncIterator[Path | None]:
    """The static pod resources to put back: the given file, else the snapshot's own when it was kept."""
    if explicit is not None or source.archive is None or source.stored is None or not source.stored.resources:
        yield explicit
        return
    name = resources_name(source.stored.name)
    if source.directory is not None:
        yield source.directory / name
        return
    with tempfile.TemporaryDirectory(prefix="strongroom-resources-") as workdir:
        dest = Path(workdir) / name
        chunks = await source.archive.store.get_stream(source.archive.resources_key(source.stored.name))
        with open(dest, "xb") as out:
            dest.chmod(0o600)
            async for chunk in chunks:
                out.write(chunk)
        yield dest
