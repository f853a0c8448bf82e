"""Velero-compatible backup and restore hooks, as a library the backup and restore engines call.

* Backup: :class:`BackupHookRunner` runs a pod's ``pre`` hooks before it is
  backed up and its ``post`` hooks after, and counts them for
  ``status.hookStatus``.
* Restore: :func:`add_init_containers` gives the pod to create (init hooks
  and ``restore-wait`` in Velero's order); :class:`RestoreExecHooks` runs
  exec hooks in restored pods once their containers are up.

Hooks come from the Backup/Restore ``spec.hooks`` and from pod annotations
(which win for their pod); see :mod:`strongroom.hooks.resolve`. Commands run
through an injected :class:`PodExecutor` (:class:`KubeExecutor` for a
cluster) and restored pods are read through a :class:`PodReader`
(:class:`KubePodReader`), so the rules are testable without a cluster.
"""

from __future__ import annotations

from strongroom.hooks.backup import BackupHookRunner
from strongroom.hooks.execution import (
    ExecOutcome,
    HookError,
    HookLog,
    HookTimeout,
    KubeExecutor,
    KubePodReader,
    LoggingHookLog,
    PodExecutor,
    PodReader,
)
from strongroom.hooks.outcome import HookFailure
from strongroom.hooks.resolve import (
    ANNOTATION_HOOK_NAME,
    BackupExecHook,
    BackupHookSet,
    HookPhase,
    HookSource,
    HookSpecError,
    RestoreExecHook,
    RestoreHookSet,
    parse_command,
)
from strongroom.hooks.restore import (
    RESTORE_WAIT_CONTAINER,
    HookResults,
    RestoreExecHooks,
    add_init_containers,
)
from strongroom.hooks.tracker import HookKey, HookTracker

__all__ = [
    "ANNOTATION_HOOK_NAME",
    "RESTORE_WAIT_CONTAINER",
    "BackupExecHook",
    "BackupHookRunner",
    "BackupHookSet",
    "ExecOutcome",
    "HookError",
    "HookFailure",
    "HookKey",
    "HookLog",
    "HookPhase",
    "HookResults",
    "HookSource",
    "HookSpecError",
    "HookTimeout",
    "HookTracker",
    "KubeExecutor",
    "KubePodReader",
    "LoggingHookLog",
    "PodExecutor",
    "PodReader",
    "RestoreExecHook",
    "RestoreExecHooks",
    "RestoreHookSet",
    "add_init_containers",
    "parse_command",
]
