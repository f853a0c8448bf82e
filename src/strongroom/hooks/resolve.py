"""Which hooks apply to a pod, from the Backup or Restore spec and from the pod's own annotations.

A Velero user declares hooks in two places and expects the same choice
Velero makes:

* pod annotations (``pre.hook.backup.velero.io/command``,
  ``post.hook.restore.velero.io/command``, ``init.hook.restore.velero.io/
  container-image`` ...): when a pod carries the command annotation of a
  phase, that single hook replaces every spec hook of that phase for the pod;
  for the pre-backup phase the older unphased keys
  (``hook.backup.velero.io/command``) still count;
* ``spec.hooks.resources[]``: each entry selects pods by namespace
  (include/exclude glob lists), resource (names resolved as Velero resolves
  them: ``pods``, ``pod``, ``po``, ``Pod``) and labels, and lists its hooks.

Defaults are Velero's documented ones: the pod's first container, a 30s
command timeout, ``onError`` Fail for backup hooks and Continue for restore
exec hooks, no wait timeout and no readiness wait for restore exec hooks.
An annotation value that cannot be parsed (a bad duration or boolean, an
unknown on-error mode) is reported as a warning and replaced by the default,
as Velero does; a command annotation is a JSON array of strings, or else the
whole value is the command.

Resolution is pure: it reads the pod dict and returns value objects; running
them is :mod:`strongroom.hooks.backup` and :mod:`strongroom.hooks.restore`.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from strongroom.hooks.execution import PODS, HookError, HookLog
from strongroom.model.duration import DurationError, format_duration_ns, parse_duration_ns
from strongroom.model.filters import IncludesExcludes, ResourceCatalog
from strongroom.model.selectors import LabelSelector, SelectorError
from strongroom.model.velero import (
    BackupHooks,
    BackupResourceHookSpec,
    HookErrorMode,
    RestoreHooks,
    RestoreResourceHookSpec,
)

__all__ = [
    "ANNOTATION_HOOK_NAME",
    "DEFAULT_EXEC_TIMEOUT",
    "BackupExecHook",
    "BackupHookSet",
    "HookPhase",
    "HookSelector",
    "HookSource",
    "HookSpecError",
    "RestoreExecHook",
    "RestoreHookSet",
    "container_names",
    "default_catalog",
    "format_seconds",
    "parse_command",
    "pod_labels",
    "pod_name",
    "pod_namespace",
    "validate_init_container",
]

ANNOTATION_HOOK_NAME: Final = "<from-annotation>"
"""The hook name Velero gives a hook declared in pod annotations (in logs and results)."""

DEFAULT_EXEC_TIMEOUT: Final = 30.0
"""Seconds a hook command may run when no timeout is given (Velero's default)."""

_NS_PER_SECOND: Final = 1_000_000_000

# Backup hook annotation keys, without the phase prefix ("pre." / "post.").
_BACKUP_CONTAINER: Final = "hook.backup.velero.io/container"
_BACKUP_COMMAND: Final = "hook.backup.velero.io/command"
_BACKUP_ON_ERROR: Final = "hook.backup.velero.io/on-error"
_BACKUP_TIMEOUT: Final = "hook.backup.velero.io/timeout"

_RESTORE_CONTAINER: Final = "post.hook.restore.velero.io/container"
_RESTORE_COMMAND: Final = "post.hook.restore.velero.io/command"
_RESTORE_ON_ERROR: Final = "post.hook.restore.velero.io/on-error"
_RESTORE_EXEC_TIMEOUT: Final = "post.hook.restore.velero.io/exec-timeout"
_RESTORE_WAIT_TIMEOUT: Final = "post.hook.restore.velero.io/wait-timeout"
_RESTORE_WAIT_FOR_READY: Final = "post.hook.restore.velero.io/wait-for-ready"

_INIT_IMAGE: Final = "init.hook.restore.velero.io/container-image"
_INIT_NAME: Final = "init.hook.restore.velero.io/container-name"
_INIT_COMMAND: Final = "init.hook.restore.velero.io/command"

# Go's strconv.ParseBool, which Velero uses for wait-for-ready.
_TRUE: Final = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE: Final = frozenset({"0", "f", "F", "FALSE", "false", "False"})


class HookSpecError(HookError):
    """A hook spec cannot be applied: a bad label selector, or an init container missing a field."""


class HookPhase(StrEnum):
    """When a backup hook runs: before the pod is backed up, or after."""

    PRE = "pre"
    POST = "post"


class HookSource(StrEnum):
    """Where a hook was declared."""

    ANNOTATION = "annotation"
    SPEC = "spec"


# ---------------------------------------------------------------------------
# Reading pods
# ---------------------------------------------------------------------------


def _metadata(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    metadata = pod.get("metadata")
    return metadata if isinstance(metadata, Mapping) else {}


def _spec(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    spec = pod.get("spec")
    return spec if isinstance(spec, Mapping) else {}


def pod_namespace(pod: Mapping[str, Any]) -> str:
    """The pod's namespace ("" when it has none)."""
    return str(_metadata(pod).get("namespace") or "")


def pod_name(pod: Mapping[str, Any]) -> str:
    """The pod's name ("" when it has none)."""
    return str(_metadata(pod).get("name") or "")


def pod_labels(pod: Mapping[str, Any]) -> dict[str, str]:
    """The pod's labels."""
    labels = _metadata(pod).get("labels")
    return {str(key): str(value) for key, value in labels.items()} if isinstance(labels, Mapping) else {}


def _annotations(pod: Mapping[str, Any]) -> dict[str, str]:
    annotations = _metadata(pod).get("annotations")
    if not isinstance(annotations, Mapping):
        return {}
    return {str(key): str(value) for key, value in annotations.items()}


def _containers(pod: Mapping[str, Any], field: str) -> list[Mapping[str, Any]]:
    containers = _spec(pod).get(field)
    if not isinstance(containers, list):
        return []
    return [container for container in containers if isinstance(container, Mapping)]


def container_names(pod: Mapping[str, Any]) -> list[str]:
    """The containers a hook can run in: the pod's containers, then its sidecars.

    Sidecars are init containers with ``restartPolicy: Always``; they run
    beside the main containers for the pod's whole life, so Velero accepts them.
    """
    names = [str(container.get("name") or "") for container in _containers(pod, "containers")]
    names.extend(
        str(container.get("name") or "")
        for container in _containers(pod, "initContainers")
        if container.get("restartPolicy") == "Always"
    )
    return [name for name in names if name]


def _first_container(pod: Mapping[str, Any]) -> str:
    containers = _containers(pod, "containers")
    return str(containers[0].get("name") or "") if containers else ""


# ---------------------------------------------------------------------------
# Parsing values
# ---------------------------------------------------------------------------


def parse_command(value: str) -> list[str]:
    """A command annotation's value: a JSON array of strings, or else the whole value as one argument.

    ``'["/bin/sh", "-c", "echo hi"]'`` is three arguments; ``/sbin/fsfreeze``
    is one; a value that starts with ``[`` but is not an array of strings is
    taken whole, as Velero does.
    """
    if value.startswith("["):
        try:
            parsed = json.loads(value)
        except ValueError:
            return [value]
        if isinstance(parsed, list) and all(isinstance(item, str) for item in parsed):
            return list(parsed)
    return [value]


def format_seconds(seconds: float) -> str:
    """Seconds as a Go duration (``30s``, ``1m30s``, ``500ms``), the way hook timeouts are written."""
    return format_duration_ns(round(seconds * _NS_PER_SECOND))


def _spec_seconds(value: str | None) -> float | None:
    """A spec duration in seconds; None when unset or not positive (the caller's default applies)."""
    if not value:
        return None
    nanoseconds = parse_duration_ns(value)  # validated by the model already
    return nanoseconds / _NS_PER_SECOND if nanoseconds > 0 else None


def _annotation_seconds(annotations: Mapping[str, str], key: str, log: HookLog) -> float | None:
    value = annotations.get(key, "")
    if not value:
        return None
    try:
        nanoseconds = parse_duration_ns(value)
    except DurationError as exc:
        log.log("warning", f"Unable to parse annotation {key}, using the default: {exc}", annotation=key)
        return None
    return nanoseconds / _NS_PER_SECOND if nanoseconds > 0 else None


def _annotation_on_error(annotations: Mapping[str, str], key: str, log: HookLog) -> HookErrorMode | None:
    value = annotations.get(key, "")
    if value in (HookErrorMode.CONTINUE, HookErrorMode.FAIL):
        return HookErrorMode(value)
    if value:
        log.log("warning", f"Invalid value {value!r} of annotation {key}, using the default", annotation=key)
    return None


def _annotation_bool(annotations: Mapping[str, str], key: str, log: HookLog) -> bool:
    value = annotations.get(key, "")
    if value in _TRUE:
        return True
    if value and value not in _FALSE:
        log.log(
            "warning", f"Unable to parse annotation {key} {value!r} as a boolean, using false", annotation=key
        )
    return False


def _on_error(value: HookErrorMode | None, default: HookErrorMode) -> HookErrorMode:
    # A value Velero does not know (carried by the open enum) is treated as unset.
    if value in (HookErrorMode.CONTINUE, HookErrorMode.FAIL):
        return HookErrorMode(value)
    return default


# ---------------------------------------------------------------------------
# Selecting pods
# ---------------------------------------------------------------------------


def default_catalog() -> ResourceCatalog:
    """The resource names hooks understand without discovery: the core pods (``pods``, ``pod``, ``po``, ``Pod``).

    Any other name stays unresolved and so never matches a pod, which is what
    discovery would give too, since hooks only ever run in pods.
    """
    return ResourceCatalog([PODS])


@dataclass(frozen=True)
class HookSelector:
    """The pods one hook spec applies to: namespaces, resources and labels, all of which must match."""

    namespaces: IncludesExcludes
    resources: IncludesExcludes
    labels: LabelSelector | None = None

    @classmethod
    def from_spec(
        cls, spec: BackupResourceHookSpec | RestoreResourceHookSpec, catalog: ResourceCatalog
    ) -> HookSelector:
        """Build from a hook spec; raises :class:`HookSpecError` for an invalid label selector."""
        labels: LabelSelector | None = None
        if spec.label_selector is not None:
            try:
                labels = spec.label_selector.to_selector()
            except SelectorError as exc:
                raise HookSpecError(f"hook spec {spec.name!r}: invalid labelSelector: {exc}") from exc
        includes = catalog.resolve(spec.included_resources or ()).names
        # A '*' among the excludes is ignored rather than excluding everything, as in Velero.
        excludes = catalog.resolve(item for item in spec.excluded_resources or () if item != "*").names
        return cls(
            IncludesExcludes(tuple(spec.included_namespaces or ()), tuple(spec.excluded_namespaces or ())),
            IncludesExcludes(includes, excludes),
            labels,
        )

    def applies_to(self, namespace: str, labels: Mapping[str, str] | None) -> bool:
        """Whether a pod in `namespace` with `labels` is selected."""
        return (
            self.namespaces.should_include(namespace)
            and self.resources.should_include(PODS.group_resource)
            and (self.labels is None or self.labels.matches(labels or {}))
        )


# ---------------------------------------------------------------------------
# Backup hooks
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class BackupExecHook:
    """One backup exec hook as it applies to one pod, defaults filled in.

    `index` is the hook's position in its spec's list (0 for an annotation);
    `container` is "" only when the pod has no container at all.
    """

    name: str
    source: HookSource
    phase: HookPhase
    index: int
    container: str
    command: tuple[str, ...]
    on_error: HookErrorMode
    timeout: float

    @property
    def fatal(self) -> bool:
        """Whether a failure stops the pod's remaining hooks of this phase (``onError: Fail``)."""
        return self.on_error == HookErrorMode.FAIL


def _backup_annotation_hook(
    annotations: Mapping[str, str], phase: HookPhase, prefix: str, first_container: str, log: HookLog
) -> BackupExecHook | None:
    command = annotations.get(prefix + _BACKUP_COMMAND, "")
    if not command:
        return None
    return BackupExecHook(
        name=ANNOTATION_HOOK_NAME,
        source=HookSource.ANNOTATION,
        phase=phase,
        index=0,
        container=annotations.get(prefix + _BACKUP_CONTAINER) or first_container,
        command=tuple(parse_command(command)),
        on_error=_annotation_on_error(annotations, prefix + _BACKUP_ON_ERROR, log) or HookErrorMode.FAIL,
        timeout=_annotation_seconds(annotations, prefix + _BACKUP_TIMEOUT, log) or DEFAULT_EXEC_TIMEOUT,
    )


class BackupHookSet:
    """A Backup's ``spec.hooks``, compiled once, answering "which hooks run in this pod, in this phase?"."""

    def __init__(self, hooks: BackupHooks | None, catalog: ResourceCatalog | None = None) -> None:
        catalog = catalog or default_catalog()
        specs = hooks.resources if hooks is not None and hooks.resources else []
        self._specs: tuple[tuple[HookSelector, BackupResourceHookSpec], ...] = tuple(
            (HookSelector.from_spec(spec, catalog), spec) for spec in specs
        )

    def for_pod(self, pod: Mapping[str, Any], phase: HookPhase, log: HookLog) -> list[BackupExecHook]:
        """The hooks to run in `pod` for `phase`, in order: its annotation hook, else the matching spec hooks."""
        annotations = _annotations(pod)
        first = _first_container(pod)
        hook = _backup_annotation_hook(annotations, phase, f"{phase.value}.", first, log)
        if hook is None and phase == HookPhase.PRE:
            # Annotations from before hooks had phases are pre hooks.
            hook = _backup_annotation_hook(annotations, phase, "", first, log)
        if hook is not None:
            return [hook]
        namespace, labels = pod_namespace(pod), pod_labels(pod)
        hooks: list[BackupExecHook] = []
        for selector, spec in self._specs:
            if not selector.applies_to(namespace, labels):
                continue
            entries = spec.pre_hooks if phase == HookPhase.PRE else spec.post_hooks
            for index, entry in enumerate(entries or ()):
                execution = entry.exec
                hooks.append(
                    BackupExecHook(
                        name=spec.name,
                        source=HookSource.SPEC,
                        phase=phase,
                        index=index,
                        container=execution.container or first,
                        command=tuple(execution.command),
                        on_error=_on_error(execution.on_error, HookErrorMode.FAIL),
                        timeout=_spec_seconds(execution.timeout) or DEFAULT_EXEC_TIMEOUT,
                    )
                )
        return hooks


# ---------------------------------------------------------------------------
# Restore hooks
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RestoreExecHook:
    """One post-restore exec hook as it applies to one restored pod, defaults filled in.

    `wait_timeout` None means wait for the container for as long as it takes.
    """

    name: str
    source: HookSource
    index: int
    container: str
    command: tuple[str, ...]
    on_error: HookErrorMode
    exec_timeout: float
    wait_timeout: float | None
    wait_for_ready: bool

    @property
    def fatal(self) -> bool:
        """Whether a failure stops the pod's remaining hooks (``onError: Fail``)."""
        return self.on_error == HookErrorMode.FAIL


_REQUIRED_INIT_FIELDS: Final = ("name", "image", "command")


def validate_init_container(container: Mapping[str, Any]) -> str | None:
    """Why an init hook's container cannot be used (Velero's wording), or None when it can."""
    if any(not container.get(field) for field in _REQUIRED_INIT_FIELDS):
        return "invalid InitContainer in restore hook, it doesn't have Command, Name or Image field"
    return None


def _restore_annotation_hook(
    annotations: Mapping[str, str], first_container: str, log: HookLog
) -> RestoreExecHook | None:
    command = annotations.get(_RESTORE_COMMAND, "")
    if not command:
        return None
    return RestoreExecHook(
        name=ANNOTATION_HOOK_NAME,
        source=HookSource.ANNOTATION,
        index=0,
        container=annotations.get(_RESTORE_CONTAINER) or first_container,
        command=tuple(parse_command(command)),
        on_error=_annotation_on_error(annotations, _RESTORE_ON_ERROR, log) or HookErrorMode.CONTINUE,
        exec_timeout=_annotation_seconds(annotations, _RESTORE_EXEC_TIMEOUT, log) or DEFAULT_EXEC_TIMEOUT,
        wait_timeout=_annotation_seconds(annotations, _RESTORE_WAIT_TIMEOUT, log),
        wait_for_ready=_annotation_bool(annotations, _RESTORE_WAIT_FOR_READY, log),
    )


def _random_suffix() -> str:
    return uuid.uuid4().hex[:8]


class RestoreHookSet:
    """A Restore's ``spec.hooks``, compiled once: the init containers and exec hooks of each restored pod."""

    def __init__(self, hooks: RestoreHooks | None, catalog: ResourceCatalog | None = None) -> None:
        catalog = catalog or default_catalog()
        specs = hooks.resources if hooks is not None and hooks.resources else []
        self._specs: tuple[tuple[HookSelector, RestoreResourceHookSpec], ...] = tuple(
            (HookSelector.from_spec(spec, catalog), spec) for spec in specs
        )

    def validation_errors(self) -> list[str]:
        """Problems Velero's restore controller reports before starting: init containers missing a field."""
        errors: list[str] = []
        for _, spec in self._specs:
            for entry in spec.post_hooks or ():
                if entry.init is None:
                    continue
                for container in entry.init.init_containers or ():
                    problem = validate_init_container(container)
                    if problem is not None:
                        errors.append(problem)
        return errors

    def _matching(self, namespace: str, labels: Mapping[str, str]) -> Iterable[RestoreResourceHookSpec]:
        return (spec for selector, spec in self._specs if selector.applies_to(namespace, labels))

    def exec_hooks_for(self, pod: Mapping[str, Any], log: HookLog) -> list[RestoreExecHook]:
        """The exec hooks to run in a restored `pod` (in its target namespace): its annotation hook, else the spec's."""
        first = _first_container(pod)
        hook = _restore_annotation_hook(_annotations(pod), first, log)
        if hook is not None:
            return [hook]
        hooks: list[RestoreExecHook] = []
        for spec in self._matching(pod_namespace(pod), pod_labels(pod)):
            for index, entry in enumerate(spec.post_hooks or ()):
                execution = entry.exec
                if execution is None:
                    continue
                hooks.append(
                    RestoreExecHook(
                        name=spec.name,
                        source=HookSource.SPEC,
                        index=index,
                        container=execution.container or first,
                        command=tuple(execution.command),
                        on_error=_on_error(execution.on_error, HookErrorMode.CONTINUE),
                        exec_timeout=_spec_seconds(execution.exec_timeout) or DEFAULT_EXEC_TIMEOUT,
                        wait_timeout=_spec_seconds(execution.wait_timeout),
                        wait_for_ready=bool(execution.wait_for_ready),
                    )
                )
        return hooks

    def init_containers_for(
        self,
        pod: Mapping[str, Any],
        log: HookLog,
        *,
        namespace: str | None = None,
        name_suffix: Callable[[], str] = _random_suffix,
    ) -> list[dict[str, Any]]:
        """The init-hook containers for `pod`: from its annotations, else from every matching spec hook.

        `namespace` is where the pod is restored to (after namespace
        mapping); spec hooks select on it. Raises :class:`HookSpecError` when
        a spec container lacks its name, image or command.
        """
        from_annotation = _annotation_init_container(_annotations(pod), log, name_suffix)
        if from_annotation is not None:
            return [from_annotation]
        target = namespace if namespace is not None else pod_namespace(pod)
        containers: list[dict[str, Any]] = []
        for spec in self._matching(target, pod_labels(pod)):
            for entry in spec.post_hooks or ():
                if entry.init is None:
                    continue
                for container in entry.init.init_containers or ():
                    problem = validate_init_container(container)
                    if problem is not None:
                        raise HookSpecError(f"restore hook {spec.name!r}: {problem}")
                    containers.append(copy.deepcopy(container))
        return containers


def _annotation_init_container(
    annotations: Mapping[str, str], log: HookLog, name_suffix: Callable[[], str]
) -> dict[str, Any] | None:
    image = annotations.get(_INIT_IMAGE, "")
    if not image:
        return None
    name = annotations.get(_INIT_NAME) or f"velero-restore-init-{name_suffix()}"
    container: dict[str, Any] = {"name": name, "image": image}
    command = annotations.get(_INIT_COMMAND, "")
    if command:
        container["command"] = parse_command(command)
    else:
        log.log("info", "The init-hook container runs its image's default entrypoint", container=name)
    return container
