"""Restore hooks: init containers added to restored pods, and exec hooks run once the pods are up.

Two kinds, as in Velero:

* **init hooks** change the pod before it is created:
  :func:`add_init_containers` returns the pod with its init containers in
  Velero's order -- the ``restore-wait`` container first (when the engine
  restores volumes from a file-system backup, the data must be in place
  before anything else runs), then the hook's containers (which may prepare
  the restored data), then the pod's own init containers. ``restore-wait``
  and the older ``restic-wait`` containers that came back from the backup
  are dropped: without a volume restore behind them they would wait forever.
* **exec hooks** run in the created pod: :class:`RestoreExecHooks` starts one
  background task per pod (:meth:`~RestoreExecHooks.start`), which polls the
  pod until each hook's container is running (ready, with
  ``waitForReady``), then runs that container's hooks in order with their
  ``execTimeout``. The engine awaits :meth:`~RestoreExecHooks.wait` before it
  finishes the restore and copies the counts and messages into the status
  and results.

Failures (all reported per pod namespace): a command that fails or times
out, a container the pod does not have, a container not up within the
hook's ``waitTimeout``, a pod deleted or finished (Succeeded/Failed) before
its hooks ran. With ``onError: Fail`` the failure is an error and the pod's
remaining hooks are not run (each counted as failed, as Velero counts
them); with Continue (the default) it is a warning. Unlike Velero, a
failure in one pod never cancels the hooks of other pods.
"""

from __future__ import annotations

import asyncio
import copy
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from strongroom.errors import StrongroomError
from strongroom.hooks.execution import HookLog, LoggingHookLog, PodExecutor, PodReader
from strongroom.hooks.outcome import HookFailure, HookRun, fail_hook, messages_by_namespace, run_hook_command
from strongroom.hooks.resolve import (
    RestoreExecHook,
    RestoreHookSet,
    container_names,
    format_seconds,
    pod_name,
    pod_namespace,
)
from strongroom.hooks.tracker import HookKey, HookTracker
from strongroom.model.filters import ResourceCatalog
from strongroom.model.velero import HookStatus, RestoreHooks

__all__ = [
    "RESTORE_WAIT_CONTAINER",
    "HookResults",
    "RestoreExecHooks",
    "add_init_containers",
]

RESTORE_WAIT_CONTAINER: Final = "restore-wait"
"""The init container that holds a pod until its file-system-backed volumes are restored."""

# The name Velero releases before 1.10 gave the same container.
_LEGACY_WAIT_CONTAINER: Final = "restic-wait"

DEFAULT_POLL_INTERVAL: Final = 0.5
_FINISHED_PHASES: Final = frozenset({"Succeeded", "Failed"})


# ---------------------------------------------------------------------------
# Init hooks
# ---------------------------------------------------------------------------


def add_init_containers(
    pod: Mapping[str, Any],
    hooks: RestoreHooks | RestoreHookSet | None,
    *,
    restore_wait: Mapping[str, Any] | None = None,
    namespace_mapping: Mapping[str, str] | None = None,
    log: HookLog | None = None,
    name_suffix: Callable[[], str] | None = None,
) -> dict[str, Any]:
    """The pod to create: a copy of `pod` with ``restore-wait``, then the init hooks, then its own init containers.

    `restore_wait` is the container the engine adds when it restores the
    pod's volumes from a file-system backup. Spec hooks select on the
    namespace the pod is restored to (`namespace_mapping` applied), as
    Velero does. `name_suffix` makes the generated name of an annotation
    init container (``velero-restore-init-<suffix>``) predictable in tests.
    Raises :class:`~strongroom.hooks.resolve.HookSpecError` when a spec init
    container lacks its name, image or command.
    """
    hook_set = hooks if isinstance(hooks, RestoreHookSet) else RestoreHookSet(hooks)
    result = copy.deepcopy(dict(pod))
    spec = result.get("spec")
    if not isinstance(spec, dict):
        spec = result["spec"] = {}
    source_namespace = pod_namespace(pod)
    target = (namespace_mapping or {}).get(source_namespace, source_namespace)
    extra = {"name_suffix": name_suffix} if name_suffix is not None else {}
    hook_containers = hook_set.init_containers_for(pod, log or LoggingHookLog(), namespace=target, **extra)
    own = [
        container
        for container in spec.get("initContainers") or []
        if not (
            isinstance(container, Mapping)
            and container.get("name") in (RESTORE_WAIT_CONTAINER, _LEGACY_WAIT_CONTAINER)
        )
    ]
    ordered: list[Any] = []
    if restore_wait is not None:
        ordered.append(copy.deepcopy(dict(restore_wait)))
    ordered.extend(hook_containers)
    ordered.extend(own)
    if ordered:
        spec["initContainers"] = ordered
    else:
        spec.pop("initContainers", None)
    return result


# ---------------------------------------------------------------------------
# Exec hooks
# ---------------------------------------------------------------------------


@dataclass
class HookResults:
    """What the restore's exec hooks came to: the counts for ``status.hookStatus`` and the messages for results."""

    attempted: int = 0
    failed: int = 0
    errors: dict[str, list[str]] = field(default_factory=dict)
    warnings: dict[str, list[str]] = field(default_factory=dict)
    failures: list[HookFailure] = field(default_factory=list)

    @property
    def hook_status(self) -> HookStatus:
        """The counts as ``status.hookStatus`` (zeros omitted)."""
        return HookStatus(hooks_attempted=self.attempted or None, hooks_failed=self.failed or None)


def _container_status(pod: Mapping[str, Any], container: str) -> Mapping[str, Any] | None:
    status = pod.get("status")
    if not isinstance(status, Mapping):
        return None
    # Sidecars report in initContainerStatuses.
    for key in ("containerStatuses", "initContainerStatuses"):
        for entry in status.get(key) or ():
            if isinstance(entry, Mapping) and entry.get("name") == container:
                return entry
    return None


def _container_up(pod: Mapping[str, Any], container: str, *, ready: bool) -> bool:
    status = _container_status(pod, container)
    if status is None:
        return False
    if ready:
        return status.get("ready") is True
    state = status.get("state")
    return isinstance(state, Mapping) and isinstance(state.get("running"), Mapping)


def _pod_phase(pod: Mapping[str, Any]) -> str:
    status = pod.get("status")
    return str(status.get("phase") or "") if isinstance(status, Mapping) else ""


class _PodHooks:
    """The exec hooks of one restored pod, and the state of running them."""

    def __init__(
        self,
        namespace: str,
        name: str,
        hooks: list[RestoreExecHook],
        owner: RestoreExecHooks,
    ) -> None:
        self.namespace = namespace
        self.name = name
        self.owner = owner
        # Hooks grouped by container, containers in the order their first hook appears.
        self.groups: dict[str, list[RestoreExecHook]] = {}
        for hook in hooks:
            self.groups.setdefault(hook.container, []).append(hook)

    def key(self, hook: RestoreExecHook) -> HookKey:
        return HookKey(
            self.namespace, self.name, "", hook.source.value, hook.name, hook.container, hook.index
        )

    def run_of(self, hook: RestoreExecHook) -> HookRun:
        return HookRun(
            namespace=self.namespace,
            pod=self.name,
            phase="",
            name=hook.name,
            source=hook.source,
            container=hook.container,
            command=hook.command,
            on_error=hook.on_error,
            timeout=hook.exec_timeout,
        )

    def fail(self, hook: RestoreExecHook, error: str) -> bool:
        """Record `hook` as failed with `error`; True when that stops the pod's hooks."""
        failure = fail_hook(self.run_of(hook), self.owner.log, error)
        self.owner.record(self.key(hook), failure)
        return failure.fatal

    def fail_remaining(self, error: str | Callable[[RestoreExecHook], str]) -> None:
        """Record every hook not run yet as failed with `error` (or the message it gives for the hook)."""
        for hooks in self.groups.values():
            for hook in hooks:
                self.fail(hook, error if isinstance(error, str) else error(hook))
        self.groups.clear()


def _wait_message(hook: RestoreExecHook, last_error: str | None) -> str:
    state = "ready" if hook.wait_for_ready else "running"
    wait = format_seconds(hook.wait_timeout) if hook.wait_timeout is not None else "waiting"
    message = f"container {hook.container} was not {state} within the wait timeout of {wait}"
    if last_error:
        message += f" (last error reading the pod: {last_error})"
    return message


class RestoreExecHooks:
    """Runs the post-restore exec hooks of restored pods in the background, and collects their results.

    `hooks` is the Restore's ``spec.hooks``; `pods` reads the restored pods
    while they start; `poll_interval` is how often (seconds). Raises
    :class:`~strongroom.hooks.resolve.HookSpecError` for an invalid label
    selector in a hook spec.
    """

    def __init__(
        self,
        hooks: RestoreHooks | RestoreHookSet | None,
        executor: PodExecutor,
        pods: PodReader,
        log: HookLog | None = None,
        *,
        catalog: ResourceCatalog | None = None,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        tracker: HookTracker | None = None,
    ) -> None:
        self._hooks = hooks if isinstance(hooks, RestoreHookSet) else RestoreHookSet(hooks, catalog)
        self._executor = executor
        self._pods = pods
        self.log: HookLog = log or LoggingHookLog()
        self._poll_interval = poll_interval
        self.tracker = tracker or HookTracker()
        self._tasks: list[asyncio.Task[None]] = []
        self._states: list[_PodHooks] = []
        self._failures: list[HookFailure] = []

    def hooks_for(self, pod: Mapping[str, Any]) -> list[RestoreExecHook]:
        """The exec hooks that apply to a restored `pod`, without running them."""
        return self._hooks.exec_hooks_for(pod, self.log)

    def start(self, pod: Mapping[str, Any]) -> int:
        """Start running the exec hooks of the just-created `pod` in the background; how many apply.

        Call it from the event loop that will later await :meth:`wait`.
        """
        hooks = self.hooks_for(pod)
        if not hooks:
            return 0
        state = _PodHooks(pod_namespace(pod), pod_name(pod), hooks, self)
        for hook in hooks:
            self.tracker.add(state.key(hook))
        self._states.append(state)
        self._tasks.append(asyncio.get_running_loop().create_task(self._wait_and_run(state, pod)))
        return len(hooks)

    async def wait(self) -> HookResults:
        """Wait for every started pod's hooks to finish (or give up), then the results."""
        if self._tasks:
            outcomes = await asyncio.gather(*self._tasks, return_exceptions=True)
            for outcome in outcomes:
                if isinstance(outcome, BaseException) and not isinstance(outcome, asyncio.CancelledError):
                    raise outcome
        # Pods whose task was cancelled (even before it started) still owe an outcome for each hook.
        for state in self._states:
            state.fail_remaining("not run: the restore stopped waiting for hooks")
        attempted, failed = self.tracker.stat()
        return HookResults(
            attempted=attempted,
            failed=failed,
            errors=messages_by_namespace([failure for failure in self._failures if failure.fatal]),
            warnings=messages_by_namespace([failure for failure in self._failures if not failure.fatal]),
            failures=list(self._failures),
        )

    def cancel(self) -> None:
        """Stop waiting for pods: their unrun hooks fail with "restore stopped waiting"; :meth:`wait` still reports."""
        for task in self._tasks:
            task.cancel()

    def record(self, key: HookKey, failure: HookFailure | None) -> None:
        """Record one hook's outcome (for the per-pod tasks)."""
        self.tracker.record(key, failed=failure is not None)
        if failure is not None:
            self._failures.append(failure)

    def _discard_missing_containers(self, state: _PodHooks, pod: Mapping[str, Any]) -> bool:
        """Fail the hooks of containers `pod` does not have; True when that stops the pod's hooks."""
        present = set(container_names(pod))
        for container in [name for name in state.groups if name not in present]:
            problem = f'no such container: "{container}"' if container else "the pod has no container"
            hooks = state.groups[container]
            while hooks:
                stop = state.fail(hooks.pop(0), problem)
                if stop:
                    return True
            del state.groups[container]
        return False

    async def _wait_and_run(self, state: _PodHooks, pod: Mapping[str, Any]) -> None:
        if self._discard_missing_containers(state, pod):
            state.fail_remaining("not run: an earlier hook with onError Fail failed")
            return
        loop = asyncio.get_running_loop()
        started = loop.time()
        timeouts = [hook.wait_timeout for hooks in state.groups.values() for hook in hooks]
        deadline = None if None in timeouts else started + max((t or 0.0 for t in timeouts), default=0.0)
        last_error: str | None = None
        while state.groups:
            try:
                current = await self._pods.get_pod(state.namespace, state.name)
            except StrongroomError as exc:
                last_error, current = str(exc), None
                self.log.log("debug", f"Reading the pod failed, retrying: {exc}", namespace=state.namespace)
            else:
                last_error = None
                if current is None:
                    state.fail_remaining("the pod was deleted before its post-restore hooks ran")
                    return
                phase = _pod_phase(current)
                if phase in _FINISHED_PHASES:
                    state.fail_remaining(f"the pod entered phase {phase} before its post-restore hooks ran")
                    return
                if await self._run_up_containers(state, current, started):
                    state.fail_remaining("not run: an earlier hook with onError Fail failed")
                    return
            if not state.groups:
                return
            now = loop.time()
            if deadline is not None and now >= deadline:
                state.fail_remaining(functools.partial(_wait_message, last_error=last_error))
                return
            pause = self._poll_interval if deadline is None else min(self._poll_interval, deadline - now)
            await asyncio.sleep(pause)

    async def _run_up_containers(self, state: _PodHooks, pod: Mapping[str, Any], started: float) -> bool:
        """Run the hooks of every container that is up; True when a Fail hook failed.

        A hook leaves its group only once its outcome is recorded, so a
        cancellation in the middle still accounts for it.
        """
        loop = asyncio.get_running_loop()
        for container in list(state.groups):
            hooks = state.groups[container]
            if not _container_up(pod, container, ready=any(hook.wait_for_ready for hook in hooks)):
                continue
            while hooks:
                hook = hooks[0]
                if hook.wait_timeout is not None and loop.time() - started > hook.wait_timeout:
                    stop = state.fail(hook, _wait_message(hook, None))
                else:
                    failure = await run_hook_command(state.run_of(hook), pod, self._executor, self.log)
                    self.record(state.key(hook), failure)
                    stop = failure is not None and failure.fatal
                hooks.pop(0)
                if stop:
                    return True
            del state.groups[container]
        return False
