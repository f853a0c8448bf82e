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
    help="The cluster itself: control-plane certificates and the checks after a restart.",
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
