"""``strongroom cluster``: the cluster itself, starting with its control-plane certificates.

``cluster certs`` answers the question the graceful shutdown chapter asks
before a long shutdown: when do the control-plane certificates expire, and by
which date must the cluster run again. The command reads, judges (in
``strongroom.cluster.certs``) and renders; warnings go to stderr and an
expired certificate makes the exit code 1.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from strongroom.cli.common import (
    ContextOption,
    KubeconfigOption,
    Output,
    OutputOption,
    emit,
    kube_client,
    kubeconfig_path,
    print_table,
    run,
)
from strongroom.errors import EXIT_FAILURE, UsageError

cluster_app = typer.Typer(
    help="The cluster itself: certificates, shutdown, the checks after a restart, control-plane rollouts.",
    no_args_is_help=True,
)

if TYPE_CHECKING:  # the library (and cryptography) load only when the command runs
    from strongroom.cluster.certs import CertsReport


def _say(text: str) -> None:
    typer.echo(text, err=True)


@cluster_app.command("certs")
def certs(
    kubeconfig: KubeconfigOption = None,
    context: ContextOption = None,
    warn_days: Annotated[
        int, typer.Option("--warn-days", help="Warn about certificates that expire within this many days.")
    ] = 30,
    output: OutputOption = Output.table,
) -> None:
    """Control-plane certificate expiry and the last safe restart date (before a long shutdown)."""
    if warn_days < 0:
        raise UsageError("--warn-days cannot be negative", hint="give a number of days, e.g. --warn-days 30")
    report = run(_certs(kubeconfig, context, warn_days))
    emit(report.to_json(), output, lambda: _print_report(report))
    for line in report.warnings():
        _say(f"warning: expires within {warn_days} days: {line}")
    expired = report.expired()
    if expired:
        _say(f"error: {len(expired)} certificate(s) EXPIRED:")
        for line in expired:
            _say(f"  {line}")
        raise typer.Exit(EXIT_FAILURE)


async def _certs(kubeconfig: str | None, context: str | None, warn_days: int) -> CertsReport:
    from strongroom.cluster import certs as lib

    location = kubeconfig_path(kubeconfig) or str(Path.home() / ".kube" / "config")
    async with kube_client(kubeconfig, context) as kube:
        findings = await lib.read_cluster(kube)
        chosen_context = kube.context or context
    local, notes = lib.kubeconfig_sources(lib.read_kubeconfig(location), chosen_context)
    return lib.build_report(
        findings, local, now=datetime.now(UTC), warn_days=warn_days, kubeconfig_notes=notes
    )


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%SZ") if moment else ""


def _print_report(report: CertsReport) -> None:
    deadline = report.deadline
    if deadline is not None:
        typer.echo(
            f"Last safe restart: {_when(deadline.not_after)} ({deadline.days_left} days from now)"
            if deadline.days_left >= 0
            else f"Last safe restart: {_when(deadline.not_after)} (PASSED {-deadline.days_left} days ago)"
        )
        typer.echo(f"  Have the cluster running again before then: {deadline.reason}.")
        typer.echo(f"  Based on: {', '.join(deadline.basis)}")
    else:
        typer.echo("Last safe restart: unknown (no signer or client CA certificate could be read)")
    signer = report.signer
    if signer.present:
        typer.echo(
            f"Signer: {signer.source}: annotation {_when(signer.annotation_not_after) or 'none'}, "
            f"certificate {_when(signer.certificate_not_after) or 'none'} ({signer.status or 'no expiry date found'})"
        )
    else:
        typer.echo(f"Signer: {signer.source} does not exist (not OpenShift, or not readable)")
    typer.echo("")
    print_table(
        ["STATUS", "DAYS LEFT", "NOT AFTER", "NOT BEFORE", "SUBJECT", "ISSUER", "SOURCE"],
        [
            (
                str(c.status),
                c.days_left,
                _when(c.facts.not_after),
                _when(c.facts.not_before),
                c.facts.subject_cn,
                c.facts.issuer_cn,
                c.source.describe() + (f" ({c.role})" if c.role else ""),
            )
            for c in report.certificates
        ],
    )
    for note in report.notes:
        typer.echo(f"note: {note}")


@cluster_app.command("restart-check")
def restart_check(
    wait: Annotated[
        str, typer.Option("--wait", help="How long to wait for everything to come back (e.g. 30m).")
    ] = "30m",
    interval: Annotated[float, typer.Option("--interval", help="Seconds between looks.")] = 5.0,
    approve: Annotated[
        bool,
        typer.Option(
            "--approve-csrs/--no-approve-csrs", help="Approve the pending CSRs that pass the kubelet's rules."
        ),
    ] = True,
    kubeconfig: KubeconfigOption = None,
    context: ContextOption = None,
) -> None:
    """After a restart: control-plane nodes Ready, valid CSRs approved, workers Ready, no ClusterOperator Degraded."""
    from strongroom.model.duration import parse_duration

    limit = parse_duration(wait).total_seconds()
    if limit <= 0:
        raise UsageError(f"--wait {wait!r} must be positive")
    problems = run(_restart_check(limit, interval, approve, kubeconfig, context))
    if problems:
        for problem in problems:
            _say(f"not ready: {problem}")
        raise typer.Exit(EXIT_FAILURE)
    typer.echo("the cluster is back: every node Ready, no ClusterOperator Degraded")


async def _restart_check(
    limit: float, interval: float, approve: bool, kubeconfig: str | None, context: str | None
) -> list[str]:
    import time

    from strongroom.cluster.restart import RestartCheck, Step

    def show(step: Step) -> None:
        typer.echo(f"== {step.title}: {'done' if step.done else 'NOT DONE'}")
        if step.rows:
            print_table(step.headers, step.rows)
        for note in step.notes:
            typer.echo(f"  {note}")

    async with kube_client(kubeconfig, context) as kube:
        check = RestartCheck(kube, await kube.discover(), interval=interval, approve=approve)
        steps = await check.run(time.monotonic() + limit, show)
    failed = [step for step in steps if not step.done]
    return [problem for step in failed for problem in step.problems]


@cluster_app.command("shutdown")
def shutdown(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check and print the plan; shut nothing down.")
    ] = False,
    skip_backup_check: Annotated[
        bool, typer.Option("--skip-backup-check", help="Go on without a recent verified etcd snapshot.")
    ] = False,
    snapshots_dir: Annotated[
        Path | None, typer.Option("--snapshots-dir", help="Where the etcd snapshots are (a directory).")
    ] = None,
    storage_location: Annotated[
        str | None, typer.Option("--storage-location", help="Or the backup location they are kept in.")
    ] = None,
    location_namespace: Annotated[
        str, typer.Option("--namespace", "-n", help="Namespace of that BackupStorageLocation.")
    ] = "openshift-adp",
    max_snapshot_age: Annotated[
        str, typer.Option("--max-snapshot-age", help="How recent the verified snapshot must be.")
    ] = "24h",
    delay: Annotated[
        int | None,
        typer.Option(
            "--delay", help="Minutes before the nodes power off (default 1, or 10 for 10 nodes or more)."
        ),
    ] = None,
    image: Annotated[
        str, typer.Option("--image", help="Image of the debug pods (it needs chroot).")
    ] = "registry.access.redhat.com/ubi9/ubi",
    debug_namespace: Annotated[
        str, typer.Option("--debug-namespace", help="Where the debug pods run.")
    ] = "default",
    force: Annotated[
        bool, typer.Option("--force", help="Shut down although a certificate has expired.")
    ] = False,
    node_timeout: Annotated[
        float, typer.Option("--node-timeout", help="Seconds to wait for each debug pod.")
    ] = 120.0,
    kubeconfig: KubeconfigOption = None,
    context: ContextOption = None,
) -> None:
    """Shut every node down gracefully (workers first), after checking the etcd backup and the certificates."""
    from strongroom.errors import ConflictError

    if delay is not None and delay < 0:
        raise UsageError("--delay cannot be negative")
    if not skip_backup_check:
        from strongroom.cli.etcd_common import snapshot_problem

        problem = run(
            snapshot_problem(
                snapshots_dir, storage_location, max_snapshot_age, location_namespace, kubeconfig, context
            )
        )
        if problem:
            raise ConflictError(
                f"refusing to shut down: {problem}",
                hint="save and verify one first (strongroom etcd snapshot save ... --verify), "
                "or pass --skip-backup-check",
            )
        _say("etcd backup: a verified snapshot is recent enough")
    report = run(_certs(kubeconfig, context, 30))
    if report.deadline is not None:
        _say(
            f"restart the cluster before {_when(report.deadline.not_after)} "
            f"({report.deadline.days_left} days): {report.deadline.reason}"
        )
    expired = report.expired()
    if expired and not force:
        raise ConflictError(
            "refusing to shut down: certificates have expired: " + "; ".join(expired),
            hint="renew them first, or pass --force",
        )
    run(_shutdown(dry_run, delay, image, debug_namespace, node_timeout, kubeconfig, context))


async def _shutdown(
    dry_run: bool,
    delay: int | None,
    image: str,
    namespace: str,
    node_timeout: float,
    kubeconfig: str | None,
    context: str | None,
) -> None:
    from strongroom.cluster.shutdown import DEPENDENCIES, plan_shutdown, run_shutdown

    async with kube_client(kubeconfig, context) as kube:
        discovery = await kube.discover()
        nodes_res = discovery.find("", "nodes")
        if nodes_res is None:
            raise UsageError("the API server serves no nodes")
        plan = plan_shutdown(await kube.list_all(nodes_res), delay)
        for index, step in enumerate(plan.steps(), 1):
            typer.echo(f"{index}. {step}")
        if dry_run:
            return
        outcome = await run_shutdown(
            kube, discovery, plan, namespace=namespace, image=image, timeout=node_timeout, say=_say
        )
    failed = {node: text for node, text in outcome.items() if not text.startswith("Succeeded")}
    typer.echo(
        f"shutdown scheduled on {len(outcome) - len(failed)} of {len(outcome)} nodes in {plan.delay_minutes} min"
    )
    typer.echo("then stop what the cluster depends on:")
    for dependency in DEPENDENCIES:
        typer.echo(f"  - {dependency}")
    if failed:
        for node, text in failed.items():
            _say(f"not scheduled on {node}: {text}")
        raise typer.Exit(EXIT_FAILURE)


@cluster_app.command("redeploy")
def redeploy(
    component: Annotated[
        list[str] | None,
        typer.Option(
            "--component",
            "-c",
            help="What to roll out: etcd, kube-apiserver, kube-controller-manager or kube-scheduler "
            "(repeatable; default all four, always in that order).",
        ),
    ] = None,
    wait: Annotated[
        str, typer.Option("--wait", help="How long to wait for each rollout to reach every node.")
    ] = "30m",
    interval: Annotated[float, typer.Option("--interval", help="Seconds between looks.")] = 5.0,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show each operator's revisions; force nothing.")
    ] = False,
    kubeconfig: KubeconfigOption = None,
    context: ContextOption = None,
    output: OutputOption = Output.table,
) -> None:
    """After an etcd restore on OpenShift: force new rollouts of etcd and the control plane, one at a time."""
    from strongroom.model.duration import parse_duration

    limit = parse_duration(wait).total_seconds()
    if limit <= 0:
        raise UsageError(f"--wait {wait!r} must be positive")
    if interval <= 0:
        raise UsageError("--interval must be positive")
    document, problems = run(
        _redeploy(list(component or ()), limit, interval, dry_run, kubeconfig, context, output)
    )
    emit(document, output, lambda: None)
    if problems:
        for problem in problems:
            _say(f"not done: {problem}")
        raise typer.Exit(EXIT_FAILURE)


async def _redeploy(
    components: list[str],
    limit: float,
    interval: float,
    dry_run: bool,
    kubeconfig: str | None,
    context: str | None,
    output: Output,
) -> tuple[dict[str, object], list[str]]:
    import time

    from strongroom.cluster.operators import Redeploy

    def show(line: str) -> None:
        if output is Output.table:
            typer.echo(line)
        else:
            _say(line)

    async with kube_client(kubeconfig, context) as kube:
        redeployer = Redeploy(kube, await kube.discover(), components, interval=interval)
        if dry_run:
            states = await redeployer.plan()
            rows = [[s.component, str(s.latest), s.describe()] for s in states]
            if output is Output.table:
                print_table(["COMPONENT", "LATEST REVISION", "NODES"], rows)
                typer.echo("dry run: nothing forced")
            return {
                "dryRun": True,
                "components": [
                    {"component": s.component, "latestRevision": s.latest, "nodes": s.nodes} for s in states
                ],
            }, []
        results = await redeployer.run(time.monotonic() + limit, show)
    skipped = [op.component for op in redeployer.operators][len(results) :]
    problems = [r.problem for r in results if not r.done]
    problems += [f"{name}: not started, it waits for the rollout before it" for name in skipped]
    if not problems and output is Output.table:
        typer.echo("every rollout reached every node")
    return {
        "components": [
            {
                "component": r.component,
                "forceRedeploymentReason": r.reason,
                "revisionBefore": r.before,
                "revision": r.after.latest if r.after else None,
                "nodes": r.after.nodes if r.after else {},
                "done": r.done,
                "progress": r.progress,
            }
            for r in results
        ],
        "notStarted": skipped,
    }, problems
