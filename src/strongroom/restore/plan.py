"""Decide, without touching a cluster, what a restore creates and in which order.

Restoring is mostly deciding: which items the restore spec selects, which
namespace each goes to, which fields must not be sent back, which objects
must come first, and which are better left to their controllers. Kept pure,
all of that is testable without a cluster and identical for a dry run and a
real one; the apply engine only performs the calls. The rules are Velero's
(``pkg/restore/restore.go`` and its built-in actions), so a backup restores
to the same objects with strongroom as with Velero.

Two ways to use it:

* `prepare_item` is the streaming primitive: one backed-up object in, a
  `Prepared` object to create (or a `Skipped`/`Failed` verdict) out. A
  `RestoreState` carries what Velero remembers across items (PVs left to
  dynamic provisioning, items already handled, service accounts restored).
  Items an item depends on (a pod's claims, a claim's volume) are reported to
  an ``on_additional`` callback at the moment Velero restores them, before
  the dependent item's volume-name decision, so a caller holding its own
  index of the backup can prepare them in the right order.
* `plan_restore` does all of it for a backup held as a list of items, and
  groups the results into phases whose items may be created concurrently.

What the apply engine still does (each needs the cluster): ensure namespaces
(create them only if missing, never compare), create items and, on conflict,
ask `strongroom.restore.compare`; write back ``status`` when `Prepared.restore_status`
is set and ``metadata.managedFields`` with a patch after the create (Velero
does both); wait for restored CRDs to be established; for snapshot-backed PVs
create the volume, rename the PV when `PVRestore.rename_if_exists` and it
exists (`actions.rename_pv`, recording the rename in `RestoreState.renamed_pvs`
so later claims follow it with `actions.apply_pv_renames`).

CRDs follow the cluster-scoped rule like any cluster-scoped item: Velero's
"a CRD comes with its custom resources" rule exists only at backup time, so a
backup of a few namespaces already holds the CRDs its custom resources need,
and a restore of specific namespaces without include-cluster-resources does
not create them (as with Velero).

Deliberate difference from Velero: a Namespace object in the backup is
checked against the namespace include/exclude lists by its own name (Velero
does not check it and would create an excluded, empty namespace when cluster
resources are included).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Collection, Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final, Protocol

from strongroom.model.filters import validate_includes_excludes
from strongroom.restore._match import GlobFilter
from strongroom.restore.actions import (
    PVCS,
    PVS,
    ActionContext,
    ActionError,
    ItemRef,
    apply_pv_renames,
    is_completed,
    is_mirror_pod,
    remap_claim_ref_namespace,
    reset_volume_binding_info,
    run_actions,
)
from strongroom.restore.metadata import MetadataError, add_restore_labels, reset_metadata_and_status
from strongroom.restore.priorities import (
    DEFAULT_RESTORE_PRIORITIES,
    NEVER_RESTORE,
    Priorities,
    Resolver,
    non_restorable_errors,
    order_resources,
    resolve_priority_entry,
)

__all__ = [
    "MUST_HAVE_RESOURCES",
    "RESTORE_STATUS_ANNOTATION",
    "Failed",
    "ItemLike",
    "PVRestore",
    "Phase",
    "PhaseKind",
    "Plan",
    "PlanWarning",
    "Prepared",
    "RestoreOptions",
    "RestoreState",
    "SkipCode",
    "Skipped",
    "VolumeBackupMethod",
    "namespace_object",
    "plan_restore",
    "prepare_item",
    "validate_options",
]

NAMESPACES: Final = "namespaces"
CRD_PRIORITY_ENTRY: Final = "customresourcedefinitions"
RESTORE_STATUS_ANNOTATION: Final = "velero.io/restore-status"

# Restored whatever the filters say: the data mover and CSI restores read
# them, and without them the volumes cannot be restored (restore.go resourceMustHave).
MUST_HAVE_RESOURCES: Final = frozenset(
    {"datauploads.velero.io", "volumesnapshotcontents.snapshot.storage.k8s.io"}
)

if TYPE_CHECKING:
    from strongroom.model.filters import LabelFilter, RestoreFilter


class VolumeBackupMethod(StrEnum):
    """How a PV's data was backed up (``backupMethod`` in the backup's volume info)."""

    NATIVE_SNAPSHOT = "NativeSnapshot"
    POD_VOLUME_BACKUP = "PodVolumeBackup"
    CSI_SNAPSHOT = "CSISnapshot"


class SkipCode(StrEnum):
    NON_RESTORABLE = "non-restorable"
    RESOURCE_EXCLUDED = "resource-excluded"
    NAMESPACE_EXCLUDED = "namespace-excluded"
    CLUSTER_SCOPED_EXCLUDED = "cluster-scoped-excluded"
    LABELS_NOT_SELECTED = "labels-not-selected"
    COMPLETED = "completed"
    ALREADY_PROCESSED = "already-processed"
    MIRROR_POD = "mirror-pod"
    DYNAMIC_PROVISIONING = "dynamic-provisioning"
    DISCARDED_BY_ACTION = "discarded-by-action"


@dataclass(frozen=True)
class RestoreOptions:
    """The parts of a Velero Restore spec that decide what is created and how.

    Namespace and resource filters are include/exclude glob lists (``*`` and
    empty mean everything); a caller with richer filters passes predicates
    instead, and the lists then only answer "are all namespaces included?"
    (or set `all_namespaces_included`).
    """

    backup_name: str
    restore_name: str
    namespace_mapping: Mapping[str, str] = field(default_factory=dict)
    included_namespaces: tuple[str, ...] = ()
    excluded_namespaces: tuple[str, ...] = ()
    included_resources: tuple[str, ...] = ()
    excluded_resources: tuple[str, ...] = ()
    namespace_included: Callable[[str], bool] | None = None
    """Overrides the namespace lists: is an item of this (backed-up) namespace restored?"""
    resource_included: Callable[[str, bool], bool] | None = None
    """Overrides the resource lists: is this group-resource (namespaced or not) restored?"""
    all_namespaces_included: bool | None = None
    """Overrides what the namespace lists say about including every namespace."""
    label_selector: Callable[[Mapping[str, str]], bool] | None = None
    """Items whose labels it rejects are not restored (combine OR-selectors before passing)."""
    include_cluster_resources: bool | None = None
    restore_status_resources: frozenset[str] | None = None
    """Resources whose status is written back after create (globs; None: none, the default)."""
    restore_status_excluded: frozenset[str] = frozenset()
    status_included: Callable[[str], bool] | None = None
    """Overrides the status lists: is the status of this group-resource restored?"""
    preserve_node_ports: bool = False
    restore_volumes: bool | None = None
    """Velero's restorePVs: False keeps snapshot-backed PVs from being restored from their snapshot."""
    existing_resource_policy: str | None = None
    """None (not set), "none" or "update" (`strongroom.model.velero.ExistingResourcePolicy`)."""

    @classmethod
    def from_filter(
        cls,
        *,
        backup_name: str,
        restore_name: str,
        restore_filter: RestoreFilter,
        labels: LabelFilter | None = None,
        **settings: Any,
    ) -> RestoreOptions:
        """Options that decide with the shared filters (discovery-resolved resources, expanded namespaces).

        `settings` are the remaining fields (namespace_mapping, preserve_node_ports, ...).
        """
        namespaces = restore_filter.namespaces
        return cls(
            backup_name=backup_name,
            restore_name=restore_name,
            namespace_included=namespaces.should_include,
            resource_included=lambda group_resource, _namespaced: restore_filter.resources.should_include(
                group_resource
            ),
            all_namespaces_included=namespaces.include_everything(),
            label_selector=None if labels is None else labels.matches,
            include_cluster_resources=restore_filter.include_cluster_resources,
            status_included=restore_filter.restores_status_of,
            **settings,
        )

    def target_namespace(self, namespace: str) -> str:
        return self.namespace_mapping.get(namespace, namespace)

    def namespace_selected(self, namespace: str) -> bool:
        if self.namespace_included is not None:
            return self.namespace_included(namespace)
        return GlobFilter(self.included_namespaces, self.excluded_namespaces).matches(namespace)

    def resource_selected(self, group_resource: str, namespaced: bool) -> bool:
        if self.resource_included is not None:
            return self.resource_included(group_resource, namespaced)
        return GlobFilter(self.included_resources, self.excluded_resources, resources=True).matches(
            group_resource
        )

    @property
    def every_namespace(self) -> bool:
        if self.all_namespaces_included is not None:
            return self.all_namespaces_included
        return GlobFilter(self.included_namespaces, self.excluded_namespaces).includes_everything

    def labels_selected(self, labels: Mapping[str, str]) -> bool:
        return self.label_selector is None or self.label_selector(labels)

    def status_restored(self, group_resource: str) -> bool:
        if self.status_included is not None:
            return self.status_included(group_resource)
        if self.restore_status_resources is None:
            return False
        status_filter = GlobFilter(
            tuple(sorted(self.restore_status_resources)),
            tuple(sorted(self.restore_status_excluded)),
            resources=True,
        )
        return status_filter.matches(group_resource)


def validate_options(options: RestoreOptions) -> list[str]:
    """Velero's restore validation errors for these options (empty when valid), in Velero's wording."""
    errors = non_restorable_errors(options.included_resources)
    errors += [
        f"Invalid included/excluded resource lists: {error}"
        for error in validate_includes_excludes(options.included_resources, options.excluded_resources)
    ]
    errors += [
        f"Invalid included/excluded namespace lists: {error}"
        for error in validate_includes_excludes(options.included_namespaces, options.excluded_namespaces)
    ]
    policy = options.existing_resource_policy
    if policy is not None and policy not in ("none", "update"):
        errors.append(f"Invalid ExistingResourcePolicy: {policy}")
    return errors


class RestoreState:
    """What a restore remembers from one item to the next (Velero's restoreContext fields).

    `volume_methods` maps PV names to how their data was backed up, from the
    backup's volume info; a PV missing from it is treated as having no
    snapshot (for backups older than Velero 1.13 the caller derives the map
    from the volume snapshots and pod volume backups). `existing_service_accounts`
    lists the service accounts the target cluster has in a namespace.
    """

    def __init__(
        self,
        *,
        volume_methods: Mapping[str, str] | None = None,
        existing_service_accounts: Callable[[str], Collection[str]] | None = None,
    ) -> None:
        self.volume_methods: Mapping[str, str] = dict(volume_methods or {})
        self._existing_service_accounts = existing_service_accounts
        self.pvs_to_provision: set[str] = set()
        self.renamed_pvs: dict[str, str] = {}
        self.processed: set[tuple[str, str | None, str]] = set()
        self.restored_service_accounts: dict[str, set[str]] = {}

    def service_accounts(self, namespace: str) -> set[str]:
        names = set(self.restored_service_accounts.get(namespace, ()))
        if self._existing_service_accounts is not None:
            names.update(self._existing_service_accounts(namespace))
        return names


@dataclass(frozen=True)
class PVRestore:
    """What the engine must do for a PV that is created from the backup."""

    method: str
    """The volume's backup method ("" when its data was not backed up)."""
    from_snapshot: bool
    """Create the volume from its native snapshot and point the PV at it first."""
    rename_if_exists: bool
    """If a PV of this name exists, give this one a new name (its claim's namespace is remapped)."""


@dataclass(frozen=True)
class Prepared:
    """One object ready to create."""

    source: ItemRef
    """The item in the backup."""
    namespace: str | None
    """Where it goes (after namespace mapping); None for cluster-scoped objects."""
    object: dict[str, Any]
    """The object to create: server-set metadata removed, actions applied, restore labels added.

    ``status`` is removed unless `restore_status` is set; then it is kept for the
    engine to write through the status subresource after the create (create ignores it).
    ``metadata.managedFields`` is kept: Velero patches it back after the create.
    """
    restore_status: bool = False
    additional_items: tuple[ItemRef, ...] = ()
    """Items restored before this one because it needs them."""
    ensure_only: bool = False
    """A namespace: create it if missing, leave an existing one alone (Velero never compares them)."""
    volume: PVRestore | None = None

    @property
    def group_resource(self) -> str:
        return self.source.group_resource

    @property
    def name(self) -> str:
        metadata = self.object.get("metadata")
        name = metadata.get("name") if isinstance(metadata, Mapping) else None
        return name if isinstance(name, str) else self.source.name


@dataclass(frozen=True)
class Skipped:
    source: ItemRef
    code: SkipCode
    reason: str


@dataclass(frozen=True)
class Failed:
    """An item that cannot be restored; Velero reports it as an error in its namespace."""

    source: ItemRef
    namespace: str | None
    message: str


class PhaseKind(StrEnum):
    CREATE = "create"
    WAIT_FOR_CRDS = "wait-for-crds"
    """Wait until the CRDs just created are established and served, then refresh discovery."""
    ENSURE_NAMESPACES = "ensure-namespaces"


@dataclass(frozen=True)
class Phase:
    """A step of the plan; the items of one phase may be created concurrently."""

    kind: PhaseKind
    group_resource: str | None = None
    items: tuple[Prepared, ...] = ()
    crd_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class PlanWarning:
    namespace: str | None
    message: str


@dataclass(frozen=True)
class Plan:
    phases: tuple[Phase, ...]
    skipped: tuple[Skipped, ...] = ()
    failed: tuple[Failed, ...] = ()
    warnings: tuple[PlanWarning, ...] = ()

    def prepared(self) -> list[Prepared]:
        return [item for phase in self.phases for item in phase.items]


class ItemLike(Protocol):
    """An item as the archive reader yields it (``strongroom.archive.reader.BackupItem`` fits)."""

    @property
    def group_resource(self) -> object: ...
    @property
    def namespace(self) -> str | None: ...
    @property
    def name(self) -> str: ...
    @property
    def object(self) -> dict[str, Any]: ...


# --- one item ------------------------------------------------------------------------


def namespace_object(backup_namespace: Mapping[str, Any] | None, name: str) -> dict[str, Any]:
    """The Namespace to ensure: the backed-up one's labels, annotations and spec under its new name.

    Without a backed-up Namespace it is a bare one. Velero's ``getNamespace``
    builds it the same way and adds no restore labels.
    """
    source = backup_namespace or {}
    metadata = source.get("metadata") if isinstance(source.get("metadata"), Mapping) else {}
    new_metadata: dict[str, Any] = {"name": name}
    for key in ("labels", "annotations"):
        value = metadata.get(key) if isinstance(metadata, Mapping) else None
        if isinstance(value, Mapping) and value:
            new_metadata[key] = copy.deepcopy(dict(value))
    namespace: dict[str, Any] = {
        "apiVersion": source.get("apiVersion") or "v1",
        "kind": source.get("kind") or "Namespace",
        "metadata": new_metadata,
    }
    if isinstance(source.get("spec"), Mapping):
        namespace["spec"] = copy.deepcopy(dict(source["spec"]))
    return namespace


def _labels_of(obj: Mapping[str, Any]) -> dict[str, str]:
    metadata = obj.get("metadata")
    labels = metadata.get("labels") if isinstance(metadata, Mapping) else None
    if not isinstance(labels, Mapping):
        return {}
    return {str(key): str(value) for key, value in labels.items()}


def _annotation(obj: Mapping[str, Any], key: str) -> str | None:
    metadata = obj.get("metadata")
    annotations = metadata.get("annotations") if isinstance(metadata, Mapping) else None
    value = annotations.get(key) if isinstance(annotations, Mapping) else None
    return value if isinstance(value, str) else None


def _should_restore_status(obj: Mapping[str, Any], group_resource: str, options: RestoreOptions) -> bool:
    # The object's own annotation wins over the restore spec (Velero 1.16 determineRestoreStatus).
    decision = options.status_restored(group_resource)
    annotation = _annotation(obj, RESTORE_STATUS_ANNOTATION)
    if annotation is not None:
        normalized = annotation.strip().lower()
        if normalized == "true":
            return True
        if normalized == "false":
            return False
    return decision


def _filter(
    ref: ItemRef, obj: Mapping[str, Any], options: RestoreOptions, *, additional: bool
) -> Skipped | None:
    group_resource = ref.group_resource
    must_have = group_resource in MUST_HAVE_RESOURCES
    namespaced = ref.namespace is not None
    if group_resource in NEVER_RESTORE:
        return Skipped(ref, SkipCode.NON_RESTORABLE, f"{group_resource} are non-restorable resources")
    if not must_have and not options.resource_selected(group_resource, namespaced):
        return Skipped(ref, SkipCode.RESOURCE_EXCLUDED, "resource is excluded")
    if ref.namespace is not None:
        if not must_have and not options.namespace_selected(ref.namespace):
            return Skipped(ref, SkipCode.NAMESPACE_EXCLUDED, "namespace is excluded")
    else:
        if options.include_cluster_resources is False:
            return Skipped(ref, SkipCode.CLUSTER_SCOPED_EXCLUDED, "cluster-scoped resources are excluded")
        # Items pulled in by another item skip this rule: a namespace-scoped
        # restore still brings the PVs its claims are bound to.
        if not additional and options.include_cluster_resources is None and not options.every_namespace:
            return Skipped(
                ref,
                SkipCode.CLUSTER_SCOPED_EXCLUDED,
                "cluster-scoped and only specific namespaces are included in the restore",
            )
        if group_resource == NAMESPACES and not options.namespace_selected(ref.name):
            return Skipped(ref, SkipCode.NAMESPACE_EXCLUDED, "namespace is excluded")
    # Selectors choose the items of the normal pass only; dependencies come regardless.
    if not additional and not must_have and not options.labels_selected(_labels_of(obj)):
        return Skipped(ref, SkipCode.LABELS_NOT_SELECTED, "labels do not match the selector")
    return None


def _prepare_pv(
    ref: ItemRef, obj: MutableMapping[str, Any], options: RestoreOptions, state: RestoreState
) -> PVRestore | Skipped:
    # restore.go: how the data was backed up decides whether the PV is created
    # at all. Volumes restored by file-system backup or CSI get a new PV from
    # dynamic provisioning, so the claim is left unbound.
    method = state.volume_methods.get(ref.name, "")
    if method in (VolumeBackupMethod.POD_VOLUME_BACKUP, VolumeBackupMethod.CSI_SNAPSHOT):
        state.pvs_to_provision.add(ref.name)
        return Skipped(
            ref,
            SkipCode.DYNAMIC_PROVISIONING,
            f"volume data is restored by {method}; the PV is re-provisioned",
        )
    if method == VolumeBackupMethod.NATIVE_SNAPSHOT:
        spec = obj.get("spec") if isinstance(obj.get("spec"), Mapping) else {}
        claim_ref = spec.get("claimRef") if isinstance(spec, Mapping) else None
        claim_namespace = claim_ref.get("namespace") if isinstance(claim_ref, Mapping) else None
        rename = bool(options.namespace_mapping) and claim_namespace in options.namespace_mapping
        remap_claim_ref_namespace(obj, options.namespace_mapping)
        reset_volume_binding_info(obj)
        return PVRestore(
            method=method, from_snapshot=options.restore_volumes is not False, rename_if_exists=rename
        )
    spec = obj.get("spec")
    if isinstance(spec, Mapping) and spec.get("persistentVolumeReclaimPolicy") == "Delete":
        # Nothing would hold the data, and Delete would remove the volume with its claim: provision anew.
        state.pvs_to_provision.add(ref.name)
        return Skipped(
            ref,
            SkipCode.DYNAMIC_PROVISIONING,
            "no snapshot and reclaim policy Delete; the PV is re-provisioned",
        )
    # A retained volume without a snapshot still exists: restore the PV as it was, free to bind again.
    remap_claim_ref_namespace(obj, options.namespace_mapping)
    reset_volume_binding_info(obj)
    return PVRestore(method=method, from_snapshot=False, rename_if_exists=False)


def prepare_item(
    obj: Mapping[str, Any],
    group_resource: str,
    options: RestoreOptions,
    state: RestoreState | None = None,
    *,
    additional: bool = False,
    on_additional: Callable[[ItemRef], None] | None = None,
) -> Prepared | Skipped | Failed:
    """Decide what restoring one backed-up object means.

    The namespace and name come from the object's metadata (no namespace:
    cluster-scoped). `additional` marks an item restored because another item
    needs it: label selectors and the "only specific namespaces" rule for
    cluster-scoped items do not apply to it, as in Velero. `on_additional` is
    called with each item this one needs, before its volume-name decision;
    without it they are only listed in `Prepared.additional_items`.
    The input object is never modified.
    """
    state = state if state is not None else RestoreState()
    metadata = obj.get("metadata")
    raw_name = metadata.get("name") if isinstance(metadata, Mapping) else None
    raw_namespace = metadata.get("namespace") if isinstance(metadata, Mapping) else None
    name = raw_name if isinstance(raw_name, str) else ""
    source_namespace = raw_namespace if isinstance(raw_namespace, str) and raw_namespace else None
    ref = ItemRef(group_resource, source_namespace, name)
    target_namespace = None if source_namespace is None else options.target_namespace(source_namespace)
    if not isinstance(metadata, Mapping):
        return Failed(ref, target_namespace, "metadata not found")

    skipped = _filter(ref, obj, options, additional=additional)
    if skipped is not None:
        return skipped

    if group_resource == NAMESPACES:
        # Namespaces are ensured, not restored like other objects.
        target = options.target_namespace(name)
        return Prepared(ref, None, namespace_object(obj, target), ensure_only=True)

    if is_completed(obj, group_resource):
        return Skipped(ref, SkipCode.COMPLETED, f"{group_resource} has completed; it would only run again")

    key = (group_resource, target_namespace, name)
    if key in state.processed:
        return Skipped(ref, SkipCode.ALREADY_PROCESSED, "already restored by this restore")
    state.processed.add(key)

    if group_resource == "pods" and is_mirror_pod(obj):
        return Skipped(ref, SkipCode.MIRROR_POD, "mirror pod; the kubelet recreates it")

    desired: dict[str, Any] = copy.deepcopy(dict(obj))
    volume: PVRestore | None = None
    if group_resource == PVS:
        verdict = _prepare_pv(ref, desired, options, state)
        if isinstance(verdict, Skipped):
            return verdict
        volume = verdict

    saved_status = desired.get("status")
    has_status = "status" in desired
    try:
        reset_metadata_and_status(desired)
        outcome = run_actions(
            group_resource,
            desired,
            obj,
            ActionContext(
                namespace_mapping=options.namespace_mapping,
                preserve_node_ports=options.preserve_node_ports,
                service_accounts=state.service_accounts,
            ),
        )
    except (MetadataError, ActionError) as exc:
        return Failed(ref, target_namespace, f"error preparing {_resource_id(ref)}: {exc}")
    if outcome.skip_reason is not None:
        return Skipped(ref, SkipCode.DISCARDED_BY_ACTION, outcome.skip_reason)

    if on_additional is not None:
        for dependency in outcome.additional_items:
            on_additional(dependency)

    if group_resource == PVCS:
        spec = desired.get("spec")
        volume_name = spec.get("volumeName") if isinstance(spec, MutableMapping) else None
        if isinstance(spec, MutableMapping) and volume_name:
            reset_volume_binding_info(desired)
            if volume_name in state.pvs_to_provision:
                # Its PV is not restored: let the claim be provisioned dynamically.
                del spec["volumeName"]
        apply_pv_renames(desired, state.renamed_pvs)

    if target_namespace is not None:
        desired["metadata"]["namespace"] = target_namespace
    add_restore_labels(desired, restore_name=options.restore_name, backup_name=options.backup_name)

    restore_status = has_status and _should_restore_status(desired, group_resource, options)
    if restore_status:
        if not isinstance(saved_status, dict):
            return Failed(
                ref,
                target_namespace,
                f"could not get status to be restored {_namespace_and_name(ref)}: status is not an object",
            )
        desired["status"] = saved_status

    if group_resource == "serviceaccounts" and target_namespace is not None:
        state.restored_service_accounts.setdefault(target_namespace, set()).add(name)

    return Prepared(
        ref,
        target_namespace,
        desired,
        restore_status=restore_status,
        additional_items=outcome.additional_items,
        volume=volume,
    )


def _resource_id(ref: ItemRef) -> str:
    if ref.namespace is None:
        return f"{ref.group_resource}/{ref.name}"
    return f"{ref.group_resource}/{ref.namespace}/{ref.name}"


def _namespace_and_name(ref: ItemRef) -> str:
    return ref.name if ref.namespace is None else f"{ref.namespace}/{ref.name}"


# --- a whole backup -------------------------------------------------------------------


class _Planner:
    def __init__(
        self,
        index: Mapping[ItemRef, Mapping[str, Any]],
        options: RestoreOptions,
        state: RestoreState,
        order: list[str],
    ) -> None:
        self.index = index
        self.options = options
        self.state = state
        self.rank = {group_resource: position for position, group_resource in enumerate(order)}
        self.skipped: list[Skipped] = []
        self.failed: list[Failed] = []
        self.warnings: list[PlanWarning] = []
        self.ensured: dict[str, Prepared] = {}
        self.needed_namespaces: dict[str, str] = {}
        self.current: list[Prepared] = []
        self.dependencies: dict[int, list[Prepared]] = {}
        self.prepared_refs: set[ItemRef] = set()

    def prepare(self, ref: ItemRef, *, depth: int) -> None:
        obj = self.index.get(ref)
        if obj is None:
            # Only dependencies can be missing: Velero warns and goes on.
            self.warnings.append(
                PlanWarning(
                    ref.namespace, f"unable to restore additional item {_resource_id(ref)}: not in the backup"
                )
            )
            return
        result = prepare_item(
            obj,
            ref.group_resource,
            self.options,
            self.state,
            additional=depth > 0,
            on_additional=lambda dependency: self.prepare(dependency, depth=depth + 1),
        )
        if isinstance(result, Skipped):
            if result.code is not SkipCode.ALREADY_PROCESSED:
                self.skipped.append(result)
        elif isinstance(result, Failed):
            self.failed.append(result)
        elif result.ensure_only:
            self.ensured.setdefault(result.name, result)
        else:
            self.prepared_refs.add(ref)
            if result.namespace is not None and result.source.namespace is not None:
                self.needed_namespaces.setdefault(result.namespace, result.source.namespace)
            if depth == 0:
                self.current.append(result)
            else:
                self.dependencies.setdefault(depth, []).append(result)

    def flush(self, group_resource: str) -> list[Phase]:
        phases: list[Phase] = []
        for depth in sorted(self.dependencies, reverse=True):
            by_resource: dict[str, list[Prepared]] = {}
            for item in self.dependencies[depth]:
                by_resource.setdefault(item.group_resource, []).append(item)
            for resource in sorted(by_resource, key=lambda r: (self.rank.get(r, len(self.rank)), r)):
                phases.append(Phase(PhaseKind.CREATE, resource, tuple(by_resource[resource])))
        if self.current:
            phases.append(Phase(PhaseKind.CREATE, group_resource, tuple(self.current)))
        self.current = []
        self.dependencies = {}
        return phases

    def namespace_phase(self) -> Phase | None:
        for target, source in self.needed_namespaces.items():
            if target not in self.ensured:
                backed_up = self.index.get(ItemRef(NAMESPACES, None, source))
                self.ensured[target] = Prepared(
                    ItemRef(NAMESPACES, None, source),
                    None,
                    namespace_object(backed_up, target),
                    ensure_only=True,
                )
        if not self.ensured:
            return None
        return Phase(
            PhaseKind.ENSURE_NAMESPACES,
            NAMESPACES,
            tuple(self.ensured[name] for name in sorted(self.ensured)),
        )


def plan_restore(
    items: Iterable[ItemLike],
    options: RestoreOptions,
    *,
    priorities: Priorities = DEFAULT_RESTORE_PRIORITIES,
    resolve: Resolver | None = None,
    state: RestoreState | None = None,
) -> Plan:
    """Prepare every item of a backup and arrange them in phases, in Velero's order.

    CRDs come first and are followed by a wait-for-CRDs marker (Velero restores
    them in a pass of their own and refreshes discovery); then one phase ensures
    every target namespace; then one phase per resource in priority order. Items
    another item depends on get phases of their own just before it. Only the
    classic (version-less) copy of each item is used, as Velero does. The raw
    items are held in memory for dependency lookups; callers that cannot
    afford that use `prepare_item` directly.
    """
    state = state if state is not None else RestoreState()
    index: dict[ItemRef, Mapping[str, Any]] = {}
    by_resource: dict[str, list[ItemRef]] = {}
    for item in items:
        if getattr(item, "version", None) is not None:
            continue
        ref = ItemRef(str(item.group_resource), item.namespace, item.name)
        if ref not in index:
            by_resource.setdefault(ref.group_resource, []).append(ref)
        index[ref] = item.object

    order = order_resources(by_resource, priorities, resolve=resolve)
    crd_resource = resolve(CRD_PRIORITY_ENTRY) if resolve is not None else None
    crd_resource = crd_resource or resolve_priority_entry(CRD_PRIORITY_ENTRY, set(by_resource))
    if crd_resource in by_resource:
        order = [crd_resource, *(gr for gr in order if gr != crd_resource)]

    planner = _Planner(index, options, state, order)
    head: list[Phase] = []
    body: list[Phase] = []
    for group_resource in order:
        for ref in sorted(by_resource[group_resource], key=lambda r: (r.namespace or "", r.name)):
            planner.prepare(ref, depth=0)
        phases = planner.flush(group_resource)
        if group_resource == crd_resource:
            head.extend(phases)
            names = tuple(
                item.name for phase in phases for item in phase.items if item.group_resource == crd_resource
            )
            if names:
                head.append(Phase(PhaseKind.WAIT_FOR_CRDS, crd_resource, crd_names=names))
        else:
            body.extend(phases)

    namespace_phase = planner.namespace_phase()
    if namespace_phase is not None:
        head.append(namespace_phase)
    # An item skipped in its own phase but brought in by another item (a PV
    # bound to a restored claim, a namespace holding restored items) is
    # restored after all: do not also report it skipped.
    skipped = [
        entry
        for entry in planner.skipped
        if entry.source not in planner.prepared_refs
        and not (
            entry.source.group_resource == NAMESPACES
            and options.target_namespace(entry.source.name) in planner.ensured
        )
    ]
    return Plan(tuple(head + body), tuple(skipped), tuple(planner.failed), tuple(planner.warnings))
