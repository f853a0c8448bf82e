"""`strongroom node-agent` (the per-node DaemonSet) and `strongroom restore-wait` (the restored pod's init container).

The node agent copies pod volumes with restic for PodVolumeBackups and
PodVolumeRestores; ``restore-wait`` is what a restored pod runs first, so
that the application starts only when every restored volume holds its data
(Velero's ``velero-restore-helper``, run from the strongroom image with
``["restore-wait", "--restore-uid", UID]`` and each volume at
``/restores/<volume>``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from strongroom.cli.common import ContextOption, KubeconfigOption, run_until_signalled
from strongroom.errors import UsageError

__all__ = ["node_agent", "restore_wait"]

DEFAULT_NAMESPACE = "openshift-adp"
DEFAULT_RESTORES_DIR = "/restores"


def node_agent(
    node: Annotated[
        str | None,
        typer.Option("--node", envvar="NODE_NAME", help="The node this agent serves (default: $NODE_NAME)."),
    ] = None,
    host_pods_root: Annotated[
        Path,
        typer.Option(
            "--host-pods-root",
            help="Where the node's /var/lib/kubelet/pods is mounted in the agent.",
        ),
    ] = Path("/host_pods"),
    namespace: Annotated[
        str | None,
        typer.Option(
            "--namespace",
            "-n",
            help=f"The server's namespace (default: $POD_NAMESPACE, else {DEFAULT_NAMESPACE}).",
        ),
    ] = None,
    kubeconfig: KubeconfigOption = None,
    kubecontext: ContextOption = None,
    log_level: Annotated[
        str, typer.Option("--log-level", help="trace, debug, info, warning, error, fatal or panic.")
    ] = "info",
    log_format: Annotated[str, typer.Option("--log-format", help="json or text.")] = "json",
    scratch_dir: Annotated[
        Path | None,
        typer.Option(
            "--scratch-dir",
            envvar="STRONGROOM_SCRATCH_DIR",
            help="Where restic keeps its cache (default: a directory under the system's temporary directory).",
        ),
    ] = None,
) -> None:
    """Run the node agent: back up and restore the volumes of this node's pods with restic."""
    from strongroom.controller.logs import configure_logging, parse_level
    from strongroom.controller.nodeagent import NodeAgentOptions, run_node_agent

    parse_level(log_level)
    if log_format not in ("json", "text"):
        raise UsageError(f"invalid --log-format {log_format!r}", hint="use json or text")
    if not node:
        raise UsageError("the node is not known", hint="pass --node NAME (or set NODE_NAME)")
    if not host_pods_root.is_dir():
        raise UsageError(
            f"--host-pods-root {str(host_pods_root)!r} is not a directory",
            hint="mount the kubelet's /var/lib/kubelet/pods into the agent and name it here",
        )
    restic = shutil.which("restic")
    if restic is None:
        raise UsageError("the restic binary is not installed", hint="install restic or put it on PATH")
    scratch = scratch_dir or Path(tempfile.gettempdir()) / "strongroom-node-agent"
    try:
        scratch.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--scratch-dir {str(scratch)!r} cannot be created: {exc.strerror}") from None
    if not os.access(scratch, os.W_OK):
        raise UsageError(f"--scratch-dir {str(scratch)!r} is not writable")
    options = NodeAgentOptions(
        namespace=namespace or os.environ.get("POD_NAMESPACE") or DEFAULT_NAMESPACE,
        node=node,
        host_pods_root=host_pods_root,
        scratch_dir=scratch,
        restic_binary=restic,
    )
    configure_logging(log_level, "json" if log_format == "json" else "text")

    run_until_signalled(kubeconfig, kubecontext, lambda kube, stop: run_node_agent(kube, options, stop=stop))


def restore_wait(
    restore_uid: Annotated[
        str, typer.Option("--restore-uid", help="The UID of the Restore whose volumes are awaited.")
    ],
    restores_dir: Annotated[
        Path,
        typer.Option("--restores-dir", help="The directory holding one mounted volume per subdirectory."),
    ] = Path(DEFAULT_RESTORES_DIR),
    interval: Annotated[
        float, typer.Option("--interval", help="Seconds between two checks.", min=0.05)
    ] = 1.0,
) -> None:
    """Wait until every volume under --restores-dir is restored, then remove the done markers and exit 0."""
    from strongroom.volumes import wait_for_restores

    if not restore_uid.strip() or "/" in restore_uid:
        raise UsageError(f"invalid --restore-uid {restore_uid!r}")
    wait_for_restores(restores_dir, restore_uid, interval=interval, report=typer.echo)
