"""Pre- and post-backup exec hooks: commands run in a pod before and after it is backed up.

The backup engine calls :meth:`BackupHookRunner.run` with ``pre`` for each
pod before backing it up and with ``post`` afterwards (once its volume
backups are done), and turns the returned failures into results:

* a failed hook with ``onError: Fail`` stops the pod's remaining hooks of
  that phase; it is an error of the pod (Velero then leaves the pod out of
  the backup after a failed pre hook) and the backup ends PartiallyFailed;
* a failed hook with ``onError: Continue`` is a warning and the next hook runs.

A pod that is not Running gets no hooks: its containers cannot take an
``exec``, and failing the hook would drop the pod from the backup. Its
hooks are logged as skipped and counted as attempted but not failed (Velero
counts hooks of pods that already finished the same way).

The counts for ``status.hookStatus`` follow Velero's backup tracker: every
hook chosen for a pod is attempted, and hooks left unrun after a Fail are
attempted but not failed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from strongroom.hooks.execution import HookError, HookLog, LoggingHookLog, PodExecutor
from strongroom.hooks.outcome import HookFailure, HookRun, run_hook_command
from strongroom.hooks.resolve import BackupExecHook, BackupHookSet, HookPhase, pod_name, pod_namespace
from strongroom.hooks.tracker import HookKey, HookTracker
from strongroom.model.filters import ResourceCatalog
from strongroom.model.velero import BackupHooks, HookStatus

__all__ = ["BackupHookRunner"]


def _phase(value: HookPhase | str) -> HookPhase:
    try:
        return HookPhase(value)
    except ValueError:
        raise HookError(f"unknown backup hook phase {value!r}: expected 'pre' or 'post'") from None


def _pod_phase(pod: Mapping[str, Any]) -> str:
    status = pod.get("status")
    return str(status.get("phase") or "") if isinstance(status, Mapping) else ""


class BackupHookRunner:
    """Runs a backup's hooks in its pods, and counts them for ``status.hookStatus``.

    `hooks` is the Backup's ``spec.hooks``; `catalog` resolves the resource
    names of its hook specs (the cluster's discovery; without it only the
    names of pods are known, which is all hooks act on). Raises
    :class:`~strongroom.hooks.resolve.HookSpecError` for an invalid label
    selector in a hook spec.
    """

    def __init__(
        self,
        hooks: BackupHooks | None,
        executor: PodExecutor,
        log: HookLog | None = None,
        *,
        catalog: ResourceCatalog | None = None,
        tracker: HookTracker | None = None,
    ) -> None:
        self._hooks = BackupHookSet(hooks, catalog)
        self._executor = executor
        self._log: HookLog = log or LoggingHookLog()
        self.tracker = tracker or HookTracker()

    def hooks_for(self, phase: HookPhase | str, pod: Mapping[str, Any]) -> list[BackupExecHook]:
        """The hooks that apply to `pod` in `phase`, without running them."""
        return self._hooks.for_pod(pod, _phase(phase), self._log)

    async def run(self, phase: HookPhase | str, pod: Mapping[str, Any]) -> list[HookFailure]:
        """Run `pod`'s hooks of `phase` in order; the failures, empty when all succeeded or none applied."""
        hooks = self.hooks_for(phase, pod)
        if not hooks:
            return []
        namespace, name = pod_namespace(pod), pod_name(pod)
        keys = [self._key(namespace, name, hook) for hook in hooks]
        for key in keys:
            self.tracker.add(key)
        status = _pod_phase(pod)
        if status != "Running":
            self._log.log(
                "info",
                f"Skipping {hooks[0].phase.value} hooks: pod is {status or 'without a phase'}, not Running",
                namespace=namespace,
                name=name,
            )
            for key in keys:
                self.tracker.record(key, failed=False)
            return []
        failures: list[HookFailure] = []
        for hook, key in zip(hooks, keys, strict=True):
            failure = await run_hook_command(
                self._run_of(namespace, name, hook), pod, self._executor, self._log
            )
            self.tracker.record(key, failed=failure is not None)
            if failure is None:
                continue
            failures.append(failure)
            if failure.fatal:
                break
        return failures

    def hook_status(self) -> HookStatus:
        """``status.hookStatus`` for the backup so far."""
        return self.tracker.hook_status()

    @staticmethod
    def _key(namespace: str, name: str, hook: BackupExecHook) -> HookKey:
        return HookKey(
            namespace, name, hook.phase.value, hook.source.value, hook.name, hook.container, hook.index
        )

    @staticmethod
    def _run_of(namespace: str, name: str, hook: BackupExecHook) -> HookRun:
        return HookRun(
            namespace=namespace,
            pod=name,
            phase=hook.phase.value,
            name=hook.name,
            source=hook.source,
            container=hook.container,
            command=hook.command,
            on_error=hook.on_error,
            timeout=hook.timeout,
        )
