"""`strongroom sandbox up|down|status`: the embedded cluster for the demo and the tests."""

from __future__ import annotations

import asyncio
import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
import yaml

from strongroom.errors import EXIT_UNAVAILABLE, UsageError
from strongroom.sandbox import runner

sandbox_app = typer.Typer(
    help="Run the sandbox cluster: a Kubernetes API server on a real etcd.", no_args_is_help=True
)

DirOption = Annotated[Path, typer.Option("--dir", help="Directory that holds the sandbox's state.")]


class Output(StrEnum):
    table = "table"
    json = "json"
    yaml = "yaml"


@sandbox_app.command()
def up(
    directory: DirOption,
    port: Annotated[
        int | None, typer.Option("--port", help="API server port on 127.0.0.1 (default: free port).")
    ] = None,
    nodes: Annotated[int, typer.Option("--nodes", help="Number of Ready nodes to register.")] = 1,
    detach: Annotated[
        bool, typer.Option("--detach", help="Run in the background and return once ready.")
    ] = False,
    insecure: Annotated[
        bool, typer.Option("--insecure", help="Serve plain HTTP without authentication.")
    ] = False,
    etcd_endpoints: Annotated[
        str | None,
        typer.Option(
            "--etcd-endpoints",
            help="Store objects in this etcd (URL[,URL...]) instead of starting one; "
            "the sandbox never stops it. Like kube-apiserver's --etcd-servers.",
        ),
    ] = None,
    etcd_cacert: Annotated[
        Path | None,
        typer.Option("--etcd-cacert", help="CA bundle that signed the etcd members' certificates."),
    ] = None,
    etcd_cert: Annotated[
        Path | None, typer.Option("--etcd-cert", help="Client certificate presented to etcd.")
    ] = None,
    etcd_key: Annotated[Path | None, typer.Option("--etcd-key", help="Key of --etcd-cert.")] = None,
) -> None:
    """Start etcd (unless --etcd-endpoints names one) and the API server; write DIR/kubeconfig."""
    if nodes < 0 or nodes > 1000:
        raise UsageError(f"--nodes must be between 0 and 1000, got {nodes}")
    if port is not None and not 1 <= port <= 65535:
        raise UsageError(f"--port must be between 1 and 65535, got {port}")
    external: runner.ExternalEtcd | None = None
    if etcd_endpoints is not None:
        external = runner.ExternalEtcd.parse(etcd_endpoints, ca=etcd_cacert, cert=etcd_cert, key=etcd_key)
    elif etcd_cacert or etcd_cert or etcd_key:
        raise UsageError("--etcd-cacert, --etcd-cert and --etcd-key need --etcd-endpoints")
    state, ready = runner.status(directory)
    if ready and state is not None:
        typer.echo(f"sandbox already running at {state.server}")
        typer.echo(f"kubeconfig: {state.kubeconfig}")
        return
    if detach:
        state = runner.start_detached(directory, port=port, nodes=nodes, insecure=insecure, etcd=external)
        typer.echo(f"sandbox ready at {state.server}")
        typer.echo(f"kubeconfig: {state.kubeconfig}")
        typer.echo(f"stop it with: strongroom sandbox down --dir {directory}")
        return
    asyncio.run(runner.serve(directory, port=port, nodes=nodes, insecure=insecure, etcd=external))


@sandbox_app.command()
def down(directory: DirOption) -> None:
    """Stop everything the sandbox in DIR started (an external etcd runs on); its data stays for the next `up`."""
    if runner.stop(directory):
        typer.echo("sandbox stopped")
    else:
        typer.echo("sandbox was not running")


@sandbox_app.command()
def status(
    directory: DirOption,
    output: Annotated[Output, typer.Option("--output", "-o", help="Output format.")] = Output.table,
) -> None:
    """Report whether the sandbox runs, where, and with which kubeconfig."""
    state, ready = runner.status(directory)
    report = {
        "running": ready,
        "dir": str(directory.resolve()),
        "server": state.server if state else None,
        "etcdEndpoints": state.etcdEndpoints if state else [],
        "etcdExternal": state.etcdExternal if state else False,
        "kubeconfig": state.kubeconfig if state else None,
        "pid": state.pid if state and ready else None,
        "nodes": state.nodes if state else [],
    }
    if output is Output.json:
        typer.echo(json.dumps(report, indent=2))
    elif output is Output.yaml:
        typer.echo(yaml.safe_dump(report, sort_keys=False).rstrip())
    else:
        width = max(len(k) for k in report)
        for key, value in report.items():
            shown: object
            if key == "nodes" and isinstance(value, list):
                shown = ",".join(f"{node['name']}={node['root']}" for node in value)
            else:
                shown = ",".join(value) if isinstance(value, list) else ("" if value is None else value)
            typer.echo(f"{key.upper():<{width}}  {shown}")
    if not ready:
        raise typer.Exit(EXIT_UNAVAILABLE)
