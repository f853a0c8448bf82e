"""``strongroom must-gather``: the support bundle, as the seed's OADP must-gather image gathers it.

The command translates its options and delegates to ``strongroom.cluster.gather``;
it prints the tarball's path and, on stderr, every part left out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from strongroom.cli.common import ContextOption, KubeconfigOption, kube_client, run
from strongroom.cluster.gather import GatherOptions, GatherReport, gather, parse_since
from strongroom.errors import UsageError

__all__ = ["must_gather"]


async def _gather(
    options: GatherOptions, dest: Path, kubeconfig: str | None, context: str | None
) -> tuple[Path, GatherReport]:
    async with kube_client(kubeconfig, context) as kube:
        return await gather(kube, options, dest)


def must_gather(
    namespace: Annotated[
        str, typer.Option("--namespace", "-n", help="The namespace of the server and node agents.")
    ] = "openshift-adp",
    since: Annotated[str, typer.Option("--since", help="Log window: 1h, 6h, 24h, 72h or all.")] = "24h",
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout", help="Seconds the whole run may take; parts not done by then are left out."
        ),
    ] = 300.0,
    metrics: Annotated[
        bool,
        typer.Option("--metrics", help="Also fetch the server's Prometheus metrics through the pod proxy."),
    ] = False,
    dest: Annotated[Path, typer.Option("--dest", help="Directory to write must-gather.tar.gz into.")] = Path(
        "."
    ),
    kubeconfig: KubeconfigOption = None,
    context: ContextOption = None,
) -> None:
    """Gather resources, workloads, events, logs and location status into must-gather.tar.gz."""
    parse_since(since)
    if timeout <= 0:
        raise UsageError("--timeout must be a positive number of seconds")
    if not dest.is_dir():
        raise UsageError(f"--dest {dest} is not a directory")
    options = GatherOptions(namespace=namespace, since=since, timeout=timeout, metrics=metrics)
    path, report = run(_gather(options, dest, kubeconfig, context))
    typer.echo(str(path))
    if report.left_out:
        typer.echo(f"warning: {len(report.left_out)} part(s) left out (see summary.txt):", err=True)
        for part, why in report.left_out:
            typer.echo(f"  {part}: {why}", err=True)
