"""Running one hook command and describing its failure; shared by backup and restore hooks.

Both sides run a command the same way (check the container, exec with a
timeout, log the output within bounds, treat a non-zero exit code as a
failure) and report a failure the same way, so the engine can record it on
the pod and an administrator reads one wording in backup and restore logs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from strongroom.errors import StrongroomError
from strongroom.hooks.execution import HookLog, HookTimeout, PodExecutor, bounded_text, command_text
from strongroom.hooks.resolve import HookSource, container_names, format_seconds
from strongroom.model.velero import HookErrorMode

__all__ = ["HookFailure", "HookRun", "fail_hook", "messages_by_namespace", "run_hook_command"]

_PHASE_LABELS = {"pre": "pre-backup", "post": "post-backup", "": "post-restore"}


@dataclass(frozen=True)
class HookFailure:
    """A hook that failed (or could not run) in a pod.

    `fatal` failures (``onError: Fail``) stopped the pod's remaining hooks of
    the phase and are errors of the pod; the others are warnings.
    `exit_code` is set when the command ran and exited non-zero; `error` says
    what went wrong in words.
    """

    namespace: str
    pod: str
    phase: str
    hook_name: str
    source: HookSource
    container: str
    command: tuple[str, ...]
    on_error: HookErrorMode
    error: str
    exit_code: int | None = None

    @property
    def fatal(self) -> bool:
        """Whether the hook's ``onError`` is Fail."""
        return self.on_error == HookErrorMode.FAIL

    @property
    def message(self) -> str:
        """One line for the run's results (no command line, no output)."""
        label = _PHASE_LABELS.get(self.phase, self.phase)
        return (
            f"{label} hook {self.hook_name} in container {self.container or '<none>'} "
            f"of pod {self.namespace}/{self.pod} failed: {self.error}"
        )


@dataclass(frozen=True)
class HookRun:
    """What to run where: the parts of a backup or restore exec hook the runner needs."""

    namespace: str
    pod: str
    phase: str
    name: str
    source: HookSource
    container: str
    command: tuple[str, ...]
    on_error: HookErrorMode
    timeout: float

    def failure(self, error: str, exit_code: int | None = None) -> HookFailure:
        """This hook's failure with `error`."""
        return HookFailure(
            namespace=self.namespace,
            pod=self.pod,
            phase=self.phase,
            hook_name=self.name,
            source=self.source,
            container=self.container,
            command=self.command,
            on_error=self.on_error,
            error=error,
            exit_code=exit_code,
        )

    def log_fields(self) -> dict[str, object]:
        """The fields Velero puts on a hook's log lines (so the same greps work)."""
        return {
            "namespace": self.namespace,
            "name": self.pod,
            "hookSource": self.source.value,
            "hookType": "exec",
            "hookPhase": self.phase or "post",
            "hookName": self.name,
            "hookContainer": self.container,
            "hookCommand": command_text(self.command),
            "hookOnError": self.on_error.value,
            "hookTimeout": format_seconds(self.timeout),
        }


def _precheck(run: HookRun, pod: Mapping[str, Any]) -> str | None:
    if not run.container:
        return "the pod has no container to run the hook in"
    if run.container not in container_names(pod):
        return f'no such container: "{run.container}"'
    if not run.command or not run.command[0]:
        return "command is required (its first element names the program)"
    return None


def _log_output(log: HookLog, stream: str, data: bytes, fields: dict[str, object]) -> None:
    if data:
        log.log("info", f"{stream}: {bounded_text(data)}", **fields)


async def run_hook_command(
    run: HookRun, pod: Mapping[str, Any], executor: PodExecutor, log: HookLog
) -> HookFailure | None:
    """Run one hook command in `pod`; None when it succeeded, else its failure (already logged).

    The timeout is enforced here too, so an executor that hangs cannot hold
    a backup beyond the hook's timeout.
    """
    fields = run.log_fields()
    problem = _precheck(run, pod)
    if problem is not None:
        return fail_hook(run, log, problem)
    log.log("info", "running exec hook", **fields)
    try:
        async with asyncio.timeout(run.timeout):
            outcome = await executor.exec(
                run.namespace, run.pod, run.container, list(run.command), run.timeout
            )
    except (TimeoutError, HookTimeout):
        return fail_hook(run, log, f"timed out after {format_seconds(run.timeout)}")
    except (StrongroomError, ValueError) as exc:
        return fail_hook(run, log, str(exc))
    _log_output(log, "stdout", outcome.stdout, fields)
    _log_output(log, "stderr", outcome.stderr, fields)
    if outcome.exit_code != 0:
        return fail_hook(
            run, log, f"command terminated with exit code {outcome.exit_code}", outcome.exit_code
        )
    return None


def fail_hook(run: HookRun, log: HookLog, error: str, exit_code: int | None = None) -> HookFailure:
    """`run`'s failure with `error`, logged as an error (onError Fail) or a warning (Continue)."""
    failure = run.failure(error, exit_code)
    log.log("error" if failure.fatal else "warning", f"Error executing hook: {error}", **run.log_fields())
    return failure


def messages_by_namespace(failures: Sequence[HookFailure]) -> dict[str, list[str]]:
    """Failure messages grouped by the pod's namespace, as a run's results hold them."""
    grouped: dict[str, list[str]] = {}
    for failure in failures:
        grouped.setdefault(failure.namespace, []).append(failure.message)
    return grouped
