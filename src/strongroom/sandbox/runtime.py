"""What the API server asks of the sandbox's nodes: running a command in a container, reading its logs.

The kubelet emulation (:mod:`strongroom.sandbox.kubelet`) implements
:class:`PodRuntime`; the API server serves ``pods/exec`` and ``pods/log``
through it, as kube-apiserver proxies them to the kubelet of the pod's node.
The layout helpers here are shared by the kubelet, the hostpath CSI driver
and the snapshot controller, so that all three agree where data lives.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

__all__ = [
    "HOSTPATH_DRIVER",
    "LogOptions",
    "PodRuntime",
    "node_root",
    "snapshot_dir",
    "volume_dir",
]

HOSTPATH_DRIVER = "strongroom.io/hostpath"
"""The CSI driver name of the sandbox's hostpath provisioner (also the StorageClass provisioner)."""


def node_root(sandbox_dir: Path, node: str) -> Path:
    """The directory a sandbox node sees as ``/``: kubelet's files live under ``var/lib/kubelet`` in it."""
    return sandbox_dir / "nodes" / node


def volume_dir(sandbox_dir: Path, handle: str) -> Path:
    """Where the hostpath CSI driver keeps the data of the volume with this ``volumeHandle``."""
    return sandbox_dir / "volumes" / handle


def snapshot_dir(sandbox_dir: Path, handle: str) -> Path:
    """Where the hostpath CSI driver keeps the data of the snapshot with this ``snapshotHandle``."""
    return sandbox_dir / "snapshots" / handle


@dataclass(frozen=True)
class LogOptions:
    """The query parameters of ``GET pods/{name}/log``."""

    container: str | None = None
    follow: bool = False
    previous: bool = False
    timestamps: bool = False
    tail_lines: int | None = None
    since_seconds: int | None = None
    limit_bytes: int | None = None


class PodRuntime(Protocol):
    """The node side of ``pods/exec`` and ``pods/log``.

    Both raise :class:`strongroom.sandbox.apierrors.ApiError` with kube-apiserver's
    code and message when the pod does not exist (404), is not bound to a node or
    not running (400), or the container is not one of the pod's (400).
    """

    async def exec(
        self, namespace: str, pod: str, container: str | None, command: list[str], *, tty: bool
    ) -> asyncio.subprocess.Process:
        """Start ``command`` in the container's root, with stdin, stdout and stderr as pipes.

        ``container`` None means the pod's only container (400 when it has several).
        The caller owns the process: it writes stdin, reads the outputs and waits for it;
        killing it ends the exec.
        """
        ...

    def logs(self, namespace: str, pod: str, options: LogOptions) -> AsyncIterator[bytes]:
        """The container's output as kubectl logs shows it; with ``follow``, until the container ends."""
        ...
