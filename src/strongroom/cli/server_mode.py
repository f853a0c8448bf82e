"""Which mode a command runs in: through the in-cluster server, or here ("local mode").

The same commands serve a workstation without a server (the engine runs in
this process against the cluster and the backup storage locations) and a
cluster where ``strongroom server`` is installed (the command creates and
reads Velero's resources, and the server does the work, as ``velero`` does).
An administrator should not have to say which: in ``auto`` mode the command
looks for the server's Deployment once, with a short timeout, and falls back
to local mode when there is no cluster, no answer or no server, so that
commands which never needed the cluster (``backup get`` on a laptop) stay
fast and keep working offline. Either way one line on stderr says which mode
was used, so stdout stays clean for ``-o json|yaml``.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from strongroom.cli.common import DEFAULT_NAMESPACE, config_dir, kubeconfig_path
from strongroom.errors import NotFoundError, UsageError

__all__ = [
    "DETECT_TIMEOUT",
    "SERVER_SELECTOR",
    "Mode",
    "ModeOption",
    "ServerNamespaceOption",
    "Target",
    "choose",
    "detect",
    "require_server",
]

MODE_ENV = "STRONGROOM_MODE"
NAMESPACE_ENV = "STRONGROOM_NAMESPACE"
TIMEOUT_ENV = "STRONGROOM_DETECT_TIMEOUT"
# The labels `strongroom install` puts on the server's Deployment: what "installed" means.
SERVER_SELECTOR = "app.kubernetes.io/name=strongroom,app.kubernetes.io/component=server"
# Long enough for a cluster across a VPN, short enough that an offline `backup get` barely notices.
DETECT_TIMEOUT = 2.0


class Mode(StrEnum):
    auto = "auto"
    local = "local"
    server = "server"


ModeOption = Annotated[
    Mode | None,
    typer.Option(
        "--mode",
        envvar=MODE_ENV,
        help="auto (default: the in-cluster server when one is installed and reachable, else local), "
        "local (run here against the backup storage locations) or server (through the in-cluster server).",
    ),
]
ServerNamespaceOption = Annotated[
    str | None,
    typer.Option(
        "--namespace",
        "-n",
        envvar=NAMESPACE_ENV,
        help="The namespace of strongroom's resources and server (Velero's: velero, OADP's: openshift-adp). "
        "Default: where the server is installed; in local mode velero.",
    ),
]


@dataclass(frozen=True)
class Target:
    """Where a command runs: the server's namespace, or local mode (and why)."""

    server: bool
    namespace: str
    kubeconfig: str | None
    context: str | None
    reason: str = ""

    def announce(self) -> None:
        """The one line on stderr that says which mode was used."""
        if self.server:
            typer.echo(f"Using the strongroom server in namespace {self.namespace}.", err=True)
        else:
            typer.echo(f"Local mode: {self.reason}", err=True)


def _kubeconfig_exists(kubeconfig: str | None) -> bool:
    # Checked here, before the Kubernetes client is imported: without a kubeconfig
    # there is no cluster to ask, and an offline command should not pay for the import.
    location = kubeconfig or os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")
    return any(Path(part).expanduser().is_file() for part in location.split(os.pathsep) if part)


def _timeout() -> float:
    raw = os.environ.get(TIMEOUT_ENV)
    if not raw:
        return DETECT_TIMEOUT
    try:
        return max(float(raw), 0.1)
    except ValueError as exc:
        raise UsageError(f"invalid {TIMEOUT_ENV} {raw!r}", hint="give seconds, e.g. 2 or 0.5") from exc


async def detect(
    kubeconfig: str | None, context: str | None, namespace: str | None, *, timeout: float | None
) -> tuple[str | None, str]:
    """The namespace the server is installed in (None if none), and why not when None.

    One LIST of Deployments by label: in ``namespace`` when given, else in
    every namespace. Errors (no kubeconfig, no answer within ``timeout``, no
    permission) propagate; the caller decides whether they mean local mode.
    """
    from strongroom.kube import ApiResource, KubeClient

    deployments = ApiResource(
        group="apps", version="v1", resource="deployments", kind="Deployment", namespaced=True
    )
    kube = await KubeClient.from_kubeconfig(kubeconfig_path(kubeconfig), context)
    try:
        async with asyncio.timeout(timeout):
            found = await kube.list_all(deployments, namespace=namespace, label_selector=SERVER_SELECTOR)
    except TimeoutError as exc:
        from strongroom.errors import UnavailableError

        raise UnavailableError(f"the cluster at {kube.server} did not answer within {timeout:g}s") from exc
    finally:
        await kube.close()
    namespaces = sorted({item.get("metadata", {}).get("namespace", "") for item in found} - {""})
    if len(namespaces) > 1:
        raise UsageError(
            f"strongroom servers are installed in several namespaces: {', '.join(namespaces)}",
            hint="name the one to use with -n/--namespace (or $STRONGROOM_NAMESPACE)",
        )
    if namespaces:
        return namespaces[0], ""
    where = f"in namespace {namespace}" if namespace else "in the cluster"
    return None, f"no strongroom server is installed {where}"


def choose(
    mode: Mode | None,
    namespace: str | None,
    kubeconfig: str | None,
    context: str | None,
    *,
    announce: bool = True,
) -> Target:
    """Decide the mode of one command (and say it on stderr unless ``announce`` is false)."""
    from strongroom.cli.common import run
    from strongroom.errors import StrongroomError

    mode = mode or Mode.auto
    local_namespace = namespace or DEFAULT_NAMESPACE
    here = f"running here against the backup storage locations of {config_dir()}."

    def local(why: str) -> Target:
        return Target(False, local_namespace, kubeconfig, context, f"{why}; {here}")

    if mode is Mode.local:
        target = local("requested (--mode local)")
    elif mode is Mode.server:
        found, why = run(detect(kubeconfig, context, namespace, timeout=None))
        if found is None:
            raise NotFoundError(
                f"{why}",
                hint="install it with `strongroom install`, pass -n NAMESPACE, or use --mode local",
            )
        target = Target(True, found, kubeconfig, context)
    elif not _kubeconfig_exists(kubeconfig):
        target = local("no kubeconfig, so no cluster to look for a server in")
    else:
        try:
            found, why = run(detect(kubeconfig, context, namespace, timeout=_timeout()))
        except UsageError as exc:
            # Several servers: guessing would act on the wrong one. A broken
            # kubeconfig, though, only means there is no server to use.
            from strongroom.kube import KubeConfigError

            if not isinstance(exc, KubeConfigError):
                raise
            found, why = None, f"the kubeconfig cannot be used ({exc.message})"
        except StrongroomError as exc:
            found, why = None, f"could not look for a server ({exc.message})"
        target = Target(True, found, kubeconfig, context) if found else local(why)
    if announce:
        target.announce()
    return target


def require_server(target: Target, command: str) -> None:
    """Refuse a command that only the server can carry out (schedules) in local mode."""
    if not target.server:
        raise UsageError(
            f"`strongroom {command}` needs the strongroom server: in local mode nothing runs in the "
            f"cluster that could act on it ({target.reason.split(';')[0]})",
            hint="install the server with `strongroom install`, or point -n/--kubeconfig at the cluster where it runs",
        )
