"""Test doubles for the hooks package: a scripted executor, a scripted pod reader, a recording log, pods."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from strongroom.hooks import ExecOutcome


def pod(
    name: str = "web-0",
    namespace: str = "shop",
    *,
    containers: Sequence[str] = ("app",),
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    phase: str | None = "Running",
    init_containers: Sequence[Mapping[str, Any]] = (),
    statuses: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """A pod dict as the API returns it; statuses default to every container running and ready."""
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if labels:
        metadata["labels"] = dict(labels)
    if annotations:
        metadata["annotations"] = dict(annotations)
    spec: dict[str, Any] = {"containers": [{"name": c, "image": f"{c}:1"} for c in containers]}
    if init_containers:
        spec["initContainers"] = [dict(c) for c in init_containers]
    status: dict[str, Any] = {}
    if phase is not None:
        status["phase"] = phase
    if statuses is None:
        statuses = [running(c, ready=True) for c in containers] if phase == "Running" else []
    status["containerStatuses"] = [dict(s) for s in statuses]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec, "status": status}


def running(container: str, *, ready: bool = False) -> dict[str, Any]:
    """A container status: running, ready or not."""
    return {"name": container, "ready": ready, "state": {"running": {"startedAt": "2024-01-01T00:00:00Z"}}}


def waiting(container: str) -> dict[str, Any]:
    """A container status: not started yet."""
    return {"name": container, "ready": False, "state": {"waiting": {"reason": "PodInitializing"}}}


@dataclass(frozen=True)
class Call:
    namespace: str
    pod: str
    container: str
    command: tuple[str, ...]
    timeout: float | None


Behaviour = ExecOutcome | BaseException | Callable[[], Any]


@dataclass
class FakeExecutor:
    """Answers each command from `script` (by command, first argument, or the default), recording calls.

    A behaviour is an outcome, an exception to raise, or "hang" (sleep until cancelled).
    """

    script: dict[str, Behaviour | str] = field(default_factory=dict)
    default: Behaviour | str = field(default_factory=lambda: ExecOutcome(0))
    calls: list[Call] = field(default_factory=list)

    async def exec(
        self, namespace: str, pod: str, container: str, command: list[str], timeout: float | None
    ) -> ExecOutcome:
        self.calls.append(Call(namespace, pod, container, tuple(command), timeout))
        behaviour = self.script.get(" ".join(command), self.default)
        if behaviour == "hang":
            await asyncio.Event().wait()
        if isinstance(behaviour, BaseException):
            raise behaviour
        assert isinstance(behaviour, ExecOutcome)
        return behaviour

    @property
    def commands(self) -> list[str]:
        return [" ".join(call.command) for call in self.calls]


class FakePodReader:
    """Returns the pod states of `states` one read at a time, then the last one for ever.

    A state may be an exception (raised once, as a failed read) or None (the pod is gone).
    """

    def __init__(self, states: Sequence[Mapping[str, Any] | BaseException | None]) -> None:
        self.states = list(states)
        self.reads = 0

    async def get_pod(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        index = min(self.reads, len(self.states) - 1)
        self.reads += 1
        state = self.states[index]
        if isinstance(state, BaseException):
            raise state
        return state


class PodsByName:
    """A pod reader over several pods, each with its own script."""

    def __init__(self, readers: Mapping[str, FakePodReader]) -> None:
        self.readers = dict(readers)

    async def get_pod(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        return await self.readers[name].get_pod(namespace, name)


@dataclass
class RecordingLog:
    """A HookLog that keeps every line."""

    lines: list[tuple[str, str, dict[str, object]]] = field(default_factory=list)

    def log(self, level: str, message: str, **fields: object) -> None:
        self.lines.append((level, message, fields))

    def at(self, level: str) -> list[str]:
        return [message for line_level, message, _ in self.lines if line_level == level]
