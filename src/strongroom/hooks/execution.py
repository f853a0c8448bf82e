"""How hooks reach pods: a small executor and pod-reader interface, and their Kubernetes adapters.

Hooks run commands in containers and, on restore, watch restored pods come
up. Both go through protocols injected into the runners, so that the rules
(which hook runs where, what a failure does, what gets counted) are tested
without a cluster, and the engine plugs in the real client:
:class:`KubeExecutor` (the pod ``exec`` subresource, through
``strongroom.kube.exec``) and :class:`KubePodReader` (``GET`` of the pod).

Hook output is for the run's log, never for metadata; :func:`bounded_text`
keeps a chatty command (a database dump printing to stdout) from flooding it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from strongroom.errors import StrongroomError
from strongroom.kube import KubeClient
from strongroom.kube.exec import exec_command
from strongroom.model.resources import ApiResource

__all__ = [
    "OUTPUT_LIMIT",
    "PODS",
    "ExecOutcome",
    "HookError",
    "HookLog",
    "HookTimeout",
    "KubeExecutor",
    "KubePodReader",
    "LoggingHookLog",
    "PodExecutor",
    "PodReader",
    "bounded_text",
]

# The most characters of one output stream a hook writes to the log.
OUTPUT_LIMIT: Final = 4096

# Hooks only ever act on core pods; the resource is fixed, so no discovery is needed to read one.
PODS: Final = ApiResource(
    group="",
    version="v1",
    resource="pods",
    kind="Pod",
    namespaced=True,
    singular="pod",
    short_names=("po",),
    verbs=frozenset({"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}),
    categories=("all",),
)


class HookError(StrongroomError):
    """A hook spec cannot be used, or a hook command could not be run."""


class HookTimeout(HookError):
    """A hook command did not finish within its timeout (it may still be running in the container)."""


@dataclass(frozen=True)
class ExecOutcome:
    """What a command run in a container returned."""

    exit_code: int
    stdout: bytes = b""
    stderr: bytes = b""


class PodExecutor(Protocol):
    """Runs a command in a container of a pod (the ``exec`` subresource, or a fake in tests).

    Raises :class:`HookTimeout` when the command outlives `timeout` (seconds;
    None waits forever) and a ``StrongroomError`` (a ``KubeError``) when the
    command could not be run at all.
    """

    async def exec(
        self, namespace: str, pod: str, container: str, command: list[str], timeout: float | None
    ) -> ExecOutcome: ...


class PodReader(Protocol):
    """Reads a pod as it is now; None when it does not exist (any more)."""

    async def get_pod(self, namespace: str, name: str) -> Mapping[str, Any] | None: ...


class HookLog(Protocol):
    """Where hook runs are told: a run's log (``RunLog`` fits) or the process log.

    `level` is one of the seed's levels (``debug``, ``info``, ``warning``,
    ``error``); `fields` become logrus-style ``key=value`` pairs.
    """

    def log(self, level: str, message: str, **fields: object) -> None: ...


_LEVELS: Final = {
    "trace": logging.DEBUG,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "fatal": logging.CRITICAL,
    "panic": logging.CRITICAL,
}


class LoggingHookLog:
    """A :class:`HookLog` on the standard logging module, for callers without a run log."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._logger = logger or logging.getLogger("strongroom.hooks")

    def log(self, level: str, message: str, **fields: object) -> None:
        detail = " ".join(
            f"{key}={value}" for key, value in sorted(fields.items()) if value not in (None, "")
        )
        self._logger.log(_LEVELS.get(level, logging.INFO), "%s%s", message, f" {detail}" if detail else "")


def bounded_text(data: bytes, limit: int = OUTPUT_LIMIT) -> str:
    """`data` as text for a log line: decoded leniently and cut to `limit` characters, saying how much was cut."""
    text = data.decode("utf-8", errors="replace")
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


class KubeExecutor:
    """A :class:`PodExecutor` over the pod ``exec`` subresource of a cluster.

    Commands run through :func:`strongroom.kube.exec.exec_command` (the
    websocket remote-command protocol).
    """

    def __init__(self, client: KubeClient) -> None:
        self._client = client

    async def exec(
        self, namespace: str, pod: str, container: str, command: list[str], timeout: float | None
    ) -> ExecOutcome:
        """Run `command` in `container` of `namespace`/`pod`; see :class:`PodExecutor`."""
        try:
            result = await exec_command(
                self._client, namespace, pod, container, list(command), timeout=timeout
            )
        except TimeoutError as exc:
            raise HookTimeout(f"timed out after {_seconds(timeout)}") from exc
        exit_code = result.exit_code
        if exit_code is None:
            raise HookError("the command ended without reporting an exit status")
        return ExecOutcome(int(exit_code), bytes(result.stdout or b""), bytes(result.stderr or b""))


class KubePodReader:
    """A :class:`PodReader` over a cluster's API."""

    def __init__(self, client: KubeClient) -> None:
        self._client = client

    async def get_pod(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        """The pod, or None when it does not exist."""
        return await self._client.get(PODS, name, namespace)


def _seconds(timeout: float | None) -> str:
    if timeout is None:
        return "no timeout"
    return f"{timeout:g}s"


def command_text(command: Sequence[str]) -> str:
    """A command as one string for logs (its arguments joined by spaces, as Velero's log shows them)."""
    return " ".join(command)
