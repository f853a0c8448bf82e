"""Velero's ``velero.io/v1`` Backup, Restore and BackupStorageLocation as typed models.

strongroom reads and writes these resources in two places: as custom
resources in the cluster (the API is Velero's, so ``velero`` and OADP
manifests work unchanged) and as ``velero-backup.json`` in the bucket, which
Velero and strongroom must both be able to read. These models are the single
description of both, and the CRD schemas are generated from them, so:

* every field of Velero's Go types is here, with the Go JSON name as its
  alias and the Go type made precise (ints, bools, enums, nested models);
  Python code uses snake_case names and may pass either spelling;
* fields this version does not know are kept (``extra="allow"``) and written
  back, so metadata written by a newer Velero is never rejected nor stripped;
* an enum value this version does not know (a phase added by a newer Velero)
  is carried through rather than rejected, while the generated schemas still
  list only the known values, as Velero's CRDs do;
* timestamps are written as ``metav1.Time`` writes them (RFC 3339, UTC, whole
  seconds, ``Z``) and durations are Go duration strings, validated by
  :mod:`strongroom.model.duration` and kept as written.

Field order follows the Go structs, so a manifest written here lists its keys
in the order Velero's own ``velero-backup.json`` does.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Final, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    WithJsonSchema,
    field_validator,
)
from pydantic.alias_generators import to_camel

from strongroom.errors import UsageError
from strongroom.model.duration import format_duration, parse_duration_ns
from strongroom.model.selectors import LabelSelector, label_selector_from_object

__all__ = [
    "API_GROUP",
    "API_VERSION",
    "BACKUP_FORMAT_VERSION",
    "BACKUP_VERSION",
    "Backup",
    "BackupHooks",
    "BackupPhase",
    "BackupProgress",
    "BackupResourceHook",
    "BackupResourceHookSpec",
    "BackupSpec",
    "BackupSpecMetadata",
    "BackupStatus",
    "BackupStorageLocation",
    "BackupStorageLocationAccessMode",
    "BackupStorageLocationPhase",
    "BackupStorageLocationSpec",
    "BackupStorageLocationStatus",
    "ExecHook",
    "ExecRestoreHook",
    "ExistingResourcePolicy",
    "GoDuration",
    "HookErrorMode",
    "HookStatus",
    "InitRestoreHook",
    "LabelSelectorRequirementSpec",
    "LabelSelectorSpec",
    "ModelError",
    "ObjectMeta",
    "ObjectStorageLocation",
    "OpenStrEnum",
    "OwnerReference",
    "Restore",
    "RestoreHooks",
    "RestorePhase",
    "RestoreProgress",
    "RestoreResourceHook",
    "RestoreResourceHookSpec",
    "RestoreSpec",
    "RestoreStatus",
    "RestoreStatusSpec",
    "SecretKeySelector",
    "Timestamp",
    "TypedLocalObjectReference",
    "UploaderConfigForBackup",
    "UploaderConfigForRestore",
    "format_timestamp",
    "parse_timestamp",
]

API_GROUP: Final = "velero.io"
API_VERSION: Final = "velero.io/v1"
# What Velero records in status.version (deprecated) and status.formatVersion
# of every backup it writes; the tarball layout of that format is in archive/.
BACKUP_VERSION: Final = 1
BACKUP_FORMAT_VERSION: Final = "1.1.0"


class ModelError(UsageError, ValueError):
    """A manifest does not fit its model; the message names every offending field.

    ``fields`` holds the dotted paths (``spec.ttl``, ``spec.orLabelSelectors[0]``)
    in the order they were reported.
    """

    def __init__(self, message: str, *, fields: tuple[str, ...] = (), hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.fields = fields


# ---------------------------------------------------------------------------
# Scalar types shared by the models
# ---------------------------------------------------------------------------

_RFC3339: Final = re.compile(
    r"(?P<year>[0-9]{4})-(?P<month>[0-9]{2})-(?P<day>[0-9]{2})[Tt]"
    r"(?P<hour>[0-9]{2}):(?P<minute>[0-9]{2}):(?P<second>[0-9]{2})(?:\.(?P<fraction>[0-9]+))?"
    r"(?P<zone>[Zz]|[+-][0-9]{2}:[0-9]{2})"
)


def _parse_timestamp(value: object) -> object:
    if isinstance(value, datetime):
        if value.utcoffset() is None:
            # A naive datetime has no defined instant; metav1.Time always has one.
            raise ValueError("timestamp must carry a time zone")
        return value
    if not isinstance(value, str):
        return value  # let pydantic report the type error
    match = _RFC3339.fullmatch(value)
    if match is None:
        raise ValueError(f"invalid RFC 3339 timestamp {value!r}")
    zone_text = match["zone"]
    if zone_text in ("Z", "z"):
        offset = timedelta(0)
    else:
        sign = -1 if zone_text[0] == "-" else 1
        offset = sign * timedelta(hours=int(zone_text[1:3]), minutes=int(zone_text[4:6]))
    # datetime holds microseconds; further digits are truncated, never rounded up
    # into the next second.
    microseconds = int((match["fraction"] or "").ljust(6, "0")[:6])
    try:
        return datetime(
            int(match["year"]),
            int(match["month"]),
            int(match["day"]),
            int(match["hour"]),
            int(match["minute"]),
            int(match["second"]),
            microseconds,
            tzinfo=timezone(offset),
        )
    except ValueError as exc:
        raise ValueError(f"invalid RFC 3339 timestamp {value!r}: {exc}") from exc


def parse_timestamp(value: object) -> datetime | None:
    """A resource's RFC 3339 timestamp (``status.expiration``), None when absent or malformed."""
    if not value:
        return None
    try:
        parsed = _parse_timestamp(value)
    except ValueError:
        return None
    return parsed if isinstance(parsed, datetime) else None


def format_timestamp(value: datetime) -> str:
    """Write an instant as ``metav1.Time`` does: UTC, whole seconds, ``Z`` (``2024-07-01T10:00:00Z``)."""
    utc = value.astimezone(UTC)
    # strftime would not zero-pad years below 1000 on every platform.
    return f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}Z"


Timestamp = Annotated[
    datetime,
    BeforeValidator(_parse_timestamp),
    PlainSerializer(format_timestamp, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
"""A ``metav1.Time``: an aware datetime in Python, RFC 3339 UTC seconds in JSON."""


def _duration_from_python(value: object) -> object:
    if isinstance(value, timedelta):
        return format_duration(value)
    return value


def _check_duration(value: str) -> str:
    parse_duration_ns(value)  # raises DurationError (a ValueError) with Go's message
    return value


GoDuration = Annotated[
    str,
    BeforeValidator(_duration_from_python),
    AfterValidator(_check_duration),
    WithJsonSchema({"type": "string"}),
]
"""A ``metav1.Duration``: a Go duration string, kept as written; a timedelta is accepted and formatted."""


def _decode_base64(value: object) -> object:
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if not isinstance(value, str):
        return value
    # Go's base64.StdEncoding skips CR and LF but nothing else.
    try:
        return base64.b64decode(value.replace("\r", "").replace("\n", ""), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"invalid base64 data: {exc}") from exc


def _encode_base64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


Base64Bytes = Annotated[
    bytes,
    BeforeValidator(_decode_base64),
    PlainSerializer(_encode_base64, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "byte"}),
]
"""A Go ``[]byte``: bytes in Python, standard base64 in JSON."""


class OpenStrEnum(StrEnum):
    """A string enum that carries values it does not know instead of rejecting them.

    Velero adds phases over time. A Backup written by a newer Velero must
    still load, and be written back with its phase intact; the unknown value
    becomes an ad-hoc member that compares equal to its string. Iteration and
    generated schemas list only the declared members.
    """

    @classmethod
    def _missing_(cls, value: object) -> Any:
        if not isinstance(value, str):
            return None
        member = str.__new__(cls, value)
        member._name_ = value
        member._value_ = value
        return member

    @property
    def is_known(self) -> bool:
        """Whether this value is one of the declared members (not carried from a newer version)."""
        return any(self is member for member in type(self))


class BackupPhase(OpenStrEnum):
    """``status.phase`` of a Backup, in the order Velero's CRD lists them."""

    NEW = "New"
    QUEUED = "Queued"
    READY_TO_START = "ReadyToStart"
    FAILED_VALIDATION = "FailedValidation"
    IN_PROGRESS = "InProgress"
    WAITING_FOR_PLUGIN_OPERATIONS = "WaitingForPluginOperations"
    WAITING_FOR_PLUGIN_OPERATIONS_PARTIALLY_FAILED = "WaitingForPluginOperationsPartiallyFailed"
    FINALIZING = "Finalizing"
    FINALIZING_PARTIALLY_FAILED = "FinalizingPartiallyFailed"
    COMPLETED = "Completed"
    PARTIALLY_FAILED = "PartiallyFailed"
    FAILED = "Failed"
    DELETING = "Deleting"


class RestorePhase(OpenStrEnum):
    """``status.phase`` of a Restore, in the order Velero's CRD lists them."""

    NEW = "New"
    FAILED_VALIDATION = "FailedValidation"
    IN_PROGRESS = "InProgress"
    WAITING_FOR_PLUGIN_OPERATIONS = "WaitingForPluginOperations"
    WAITING_FOR_PLUGIN_OPERATIONS_PARTIALLY_FAILED = "WaitingForPluginOperationsPartiallyFailed"
    COMPLETED = "Completed"
    PARTIALLY_FAILED = "PartiallyFailed"
    FAILED = "Failed"
    FINALIZING = "Finalizing"
    FINALIZING_PARTIALLY_FAILED = "FinalizingPartiallyFailed"


class BackupStorageLocationPhase(OpenStrEnum):
    """``status.phase`` of a BackupStorageLocation."""

    AVAILABLE = "Available"
    UNAVAILABLE = "Unavailable"


class BackupStorageLocationAccessMode(OpenStrEnum):
    """``spec.accessMode`` of a BackupStorageLocation; ReadOnly refuses new backups."""

    READ_ONLY = "ReadOnly"
    READ_WRITE = "ReadWrite"


class HookErrorMode(OpenStrEnum):
    """``onError`` of a hook: carry on with the remaining hooks, or stop."""

    CONTINUE = "Continue"
    FAIL = "Fail"


class ExistingResourcePolicy(StrEnum):
    """The values Velero accepts in a Restore's ``spec.existingResourcePolicy``.

    The field itself is a plain string, as in Velero's CRD: an unknown value is
    admitted by the API server and reported by restore validation
    (``Invalid ExistingResourcePolicy: <value>``), not refused at creation.
    """

    NONE = "none"
    UPDATE = "update"


# ---------------------------------------------------------------------------
# Base model
# ---------------------------------------------------------------------------


# Go JSON names that are not the camelCase of the Python name.
_GO_NAME_EXCEPTIONS: Final = {
    "data_mover": "datamover",
    "restore_pvs": "restorePVs",
    # Go initialisms, in the request and pod-volume resources.
    "download_url": "downloadURL",
    "snapshot_id": "snapshotID",
}


def _go_json_name(name: str) -> str:
    # Aliases come from this generator rather than Field(alias=...) so that type
    # checkers see the Python names in constructors.
    return _GO_NAME_EXCEPTIONS.get(name) or to_camel(name)


class _VeleroModel(BaseModel):
    """Go JSON names as aliases, Python names accepted too, unknown fields kept."""

    model_config = ConfigDict(
        alias_generator=_go_json_name,
        populate_by_name=True,
        extra="allow",
        validate_assignment=True,
        # A docstring under a field is its description in the generated CRD
        # schema, which is what `kubectl explain` prints.
        use_attribute_docstrings=True,
    )


# ---------------------------------------------------------------------------
# Kubernetes types Velero embeds
# ---------------------------------------------------------------------------


class OwnerReference(_VeleroModel):
    """``metav1.OwnerReference``."""

    api_version: str
    kind: str
    name: str
    uid: str
    controller: bool | None = None
    block_owner_deletion: bool | None = None


class ObjectMeta(_VeleroModel):
    """The parts of ``metav1.ObjectMeta`` strongroom reads; everything else (managedFields ...) is kept as is."""

    name: str | None = None
    generate_name: str | None = None
    namespace: str | None = None
    self_link: str | None = None
    uid: str | None = None
    resource_version: str | None = None
    generation: int | None = None
    creation_timestamp: Timestamp | None = None
    deletion_timestamp: Timestamp | None = None
    deletion_grace_period_seconds: int | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    owner_references: list[OwnerReference] | None = None
    finalizers: list[str] | None = None


class LabelSelectorRequirementSpec(_VeleroModel):
    """``metav1.LabelSelectorRequirement`` (one ``matchExpressions`` entry)."""

    key: str
    """The label key the requirement applies to."""
    # A plain string in kube's schema too; label_selector_from_object reports bad operators.
    operator: str
    """In, NotIn, Exists or DoesNotExist."""
    values: list[str] | None = None
    """The values for In and NotIn; empty for Exists and DoesNotExist."""


class LabelSelectorSpec(_VeleroModel):
    """``metav1.LabelSelector`` as it appears in a spec (``matchLabels`` + ``matchExpressions``)."""

    match_labels: dict[str, str] | None = None
    """Labels an object must all have, with these values."""
    match_expressions: list[LabelSelectorRequirementSpec] | None = None
    """Requirements an object's labels must all meet."""

    def to_selector(self) -> LabelSelector:
        """The matcher for this selector; raises SelectorError with kube's wording when it is invalid."""
        return label_selector_from_object(self.model_dump(by_alias=True, exclude_none=True))


class TypedLocalObjectReference(_VeleroModel):
    """``corev1.TypedLocalObjectReference`` (a resource policy or resource modifier ConfigMap)."""

    api_group: str | None = None
    """The group of the referenced kind; empty for the core group."""
    kind: str
    """The kind of the referenced object, for example configmap."""
    name: str
    """The name of the referenced object, in the same namespace."""


class SecretKeySelector(_VeleroModel):
    """``corev1.SecretKeySelector``: one key of a Secret in the location's namespace."""

    name: str | None = None
    """The name of the Secret, in the server's namespace."""
    key: str
    """The key of the Secret's data that holds the value."""
    optional: bool | None = None
    """Whether the Secret or its key may be missing."""


# ---------------------------------------------------------------------------
# Hooks
# ---------------------------------------------------------------------------


class ExecHook(_VeleroModel):
    """A command run in a container of the pod being backed up."""

    container: str | None = None
    """The container to run the command in; the pod's first container when empty."""
    command: list[str] = Field(min_length=1)
    """The command and its arguments, run without a shell (name one, such as /bin/sh -c, to get one)."""
    on_error: HookErrorMode | None = None
    """What a failing command does: Fail stops the hooks and fails the item; Continue goes on."""
    timeout: GoDuration | None = None
    """How long to wait for the command, as a duration such as 30s; the default is 30s."""


class BackupResourceHook(_VeleroModel):
    """One backup hook; ``exec`` is its only kind."""

    exec: ExecHook
    """A command run in a container of the pod."""


def _backup_hook_spec_json_name(name: str) -> str:
    # Only here are the hook lists called "pre" and "post" in JSON.
    return {"pre_hooks": "pre", "post_hooks": "post"}.get(name) or _go_json_name(name)


class BackupResourceHookSpec(_VeleroModel):
    """Backup hooks and the namespaces, resources and labels they apply to."""

    model_config = ConfigDict(alias_generator=_backup_hook_spec_json_name)

    name: str
    """The name of this hook spec, used in logs."""
    included_namespaces: list[str] | None = None
    """The namespaces whose pods the hooks run in; all when empty."""
    excluded_namespaces: list[str] | None = None
    """Namespaces whose pods the hooks do not run in."""
    included_resources: list[str] | None = None
    """The resources the hooks apply to, such as pods; all when empty."""
    excluded_resources: list[str] | None = None
    """Resources the hooks do not apply to."""
    label_selector: LabelSelectorSpec | None = None
    """Only pods with matching labels run the hooks."""
    pre_hooks: list[BackupResourceHook] | None = None
    """Hooks run in each pod before it is backed up."""
    post_hooks: list[BackupResourceHook] | None = None
    """Hooks run in each pod after it is backed up."""


class BackupHooks(_VeleroModel):
    """``spec.hooks`` of a Backup."""

    resources: list[BackupResourceHookSpec] | None = None
    """Hook specs, each with its own selection of pods."""


class ExecRestoreHook(_VeleroModel):
    """A command run in a restored pod's container once it is running (or ready)."""

    container: str | None = None
    """The container to run the command in; the pod's first container when empty."""
    command: list[str] = Field(min_length=1)
    """The command and its arguments, run without a shell (name one, such as /bin/sh -c, to get one)."""
    on_error: HookErrorMode | None = None
    """What a failing command does: Fail fails the restore of the pod; Continue goes on."""
    exec_timeout: GoDuration | None = None
    """How long to wait for the command once it started, as a duration such as 1m."""
    wait_timeout: GoDuration | None = None
    """How long to wait for the container to be running (or ready) before the command starts."""
    wait_for_ready: bool | None = None
    """Whether to wait for the container to be ready rather than only running."""


class InitRestoreHook(_VeleroModel):
    """Init containers added to a restored pod; the containers are opaque ``corev1.Container`` objects."""

    init_containers: list[dict[str, Any]] | None = None
    """Containers (Kubernetes Container objects) added before the pod's own init containers."""
    timeout: GoDuration | None = None
    """How long to wait for the init containers, as a duration."""


class RestoreResourceHook(_VeleroModel):
    """One restore hook: an exec hook or an init hook."""

    exec: ExecRestoreHook | None = None
    """A command run in a container of the restored pod."""
    init: InitRestoreHook | None = None
    """Init containers added to the restored pod."""


class RestoreResourceHookSpec(_VeleroModel):
    """Restore hooks and the namespaces, resources and labels they apply to."""

    name: str
    """The name of this hook spec, used in logs."""
    included_namespaces: list[str] | None = None
    """The namespaces whose pods the hooks run in; all when empty."""
    excluded_namespaces: list[str] | None = None
    """Namespaces whose pods the hooks do not run in."""
    included_resources: list[str] | None = None
    """The resources the hooks apply to, such as pods; all when empty."""
    excluded_resources: list[str] | None = None
    """Resources the hooks do not apply to."""
    label_selector: LabelSelectorSpec | None = None
    """Only pods with matching labels run the hooks."""
    post_hooks: list[RestoreResourceHook] | None = None
    """Hooks run for each restored pod."""


class RestoreHooks(_VeleroModel):
    """``spec.hooks`` of a Restore."""

    resources: list[RestoreResourceHookSpec] | None = None
    """Hook specs, each with its own selection of pods."""


class HookStatus(_VeleroModel):
    """How many hooks ran and how many failed."""

    hooks_attempted: int | None = None
    """How many hooks were run."""
    hooks_failed: int | None = None
    """How many hooks failed."""


# ---------------------------------------------------------------------------
# Resources with apiVersion/kind
# ---------------------------------------------------------------------------


def _error_path(location: tuple[int | str, ...]) -> str:
    path = ""
    for part in location:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else part
    return path or "(root)"


def _error_message(error: Mapping[str, Any]) -> str:
    context = error.get("ctx") or {}
    cause = context.get("error")
    # For errors raised by our validators, the exception text is the message
    # (Go's wording for durations); pydantic would prefix "Value error, ".
    if error.get("type") == "value_error" and cause is not None:
        return str(cause)
    return str(error.get("msg", "invalid value"))


class _VeleroResource(_VeleroModel):
    """A top-level ``velero.io/v1`` object: type meta, object meta, and (in subclasses) spec and status."""

    KIND: ClassVar[str]

    kind: str
    api_version: str = API_VERSION
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)

    @field_validator("kind")
    @classmethod
    def _kind_matches(cls, value: str) -> str:
        if value != cls.KIND:
            raise ValueError(f"expected kind {cls.KIND!r}, got {value!r}")
        return value

    @field_validator("api_version")
    @classmethod
    def _api_version_matches(cls, value: str) -> str:
        if value != API_VERSION:
            raise ValueError(f"expected apiVersion {API_VERSION!r}, got {value!r}")
        return value

    def to_manifest(self) -> dict[str, Any]:
        """The JSON object Velero would write: Go field names, no nulls, unknown fields kept."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any]) -> Self:
        """Read a manifest (a decoded ``velero-backup.json`` or custom resource).

        Missing ``kind``/``apiVersion`` default to this type; a different one is
        an error. Raises :class:`ModelError` naming each offending field.
        """
        if not isinstance(manifest, Mapping):
            raise ModelError(f"a {cls.KIND} manifest must be a JSON object, not {type(manifest).__name__}")
        try:
            return cls.model_validate(dict(manifest))
        except ValidationError as exc:
            problems = [(_error_path(error["loc"]), _error_message(error)) for error in exc.errors()]
            details = "; ".join(f"{path}: {message}" for path, message in problems)
            name = (
                manifest.get("metadata", {}).get("name")
                if isinstance(manifest.get("metadata"), Mapping)
                else None
            )
            subject = f"{cls.KIND} {name!r}" if isinstance(name, str) else cls.KIND
            raise ModelError(
                f"invalid {subject}: {details}", fields=tuple(path for path, _ in problems)
            ) from exc


# ---------------------------------------------------------------------------
# Backup
# ---------------------------------------------------------------------------


class BackupSpecMetadata(_VeleroModel):
    """``spec.metadata``: labels Velero copies onto the Backup it creates from a Schedule."""

    labels: dict[str, str] | None = None
    """Labels given to the Backup (used by Schedules for the Backups they create)."""


class UploaderConfigForBackup(_VeleroModel):
    """Tuning for the file-system uploader during backup."""

    parallel_files_upload: int | None = None
    """How many files the uploader copies at once."""


class BackupSpec(_VeleroModel):
    """What to back up, where to, and for how long (``velero.io/v1`` BackupSpec)."""

    metadata: BackupSpecMetadata | None = None
    """Metadata given to the Backup a Schedule creates from this spec."""
    included_namespaces: list[str] | None = None
    """The namespaces to back up; all when empty or '*'. Glob patterns are allowed."""
    excluded_namespaces: list[str] | None = None
    """Namespaces not to back up. Glob patterns are allowed."""
    # The "old" resource filters; they cannot be combined with the scoped ones below.
    included_resources: list[str] | None = None
    """The resources to back up (such as deployments or configmaps.v1); all when empty or '*'."""
    excluded_resources: list[str] | None = None
    """Resources not to back up."""
    included_cluster_scoped_resources: list[str] | None = None
    """Cluster-scoped resources to back up; cannot be combined with includedResources."""
    excluded_cluster_scoped_resources: list[str] | None = None
    """Cluster-scoped resources not to back up; cannot be combined with excludedResources."""
    included_namespace_scoped_resources: list[str] | None = None
    """Namespace-scoped resources to back up; cannot be combined with includedResources."""
    excluded_namespace_scoped_resources: list[str] | None = None
    """Namespace-scoped resources not to back up; cannot be combined with excludedResources."""
    label_selector: LabelSelectorSpec | None = None
    """Only objects with matching labels are backed up."""
    or_label_selectors: list[LabelSelectorSpec] | None = None
    """Objects matching any of these selectors are backed up; cannot be combined with labelSelector."""
    snapshot_volumes: bool | None = None
    """Whether to take snapshots of persistent volumes; the server decides when empty."""
    ttl: GoDuration | None = None
    """How long the backup is kept before it is deleted, as a duration such as 720h0m0s (30 days, the default)."""
    volume_group_snapshot_label_key: str | None = None
    """The label whose value groups volumes into one volume group snapshot."""
    # Tri-state: None lets Velero decide (see strongroom.model.filters).
    include_cluster_resources: bool | None = None
    """Whether cluster-scoped resources are backed up; when empty, only those the namespaced items need."""
    hooks: BackupHooks | None = None
    """Commands run in pods before and after they are backed up."""
    storage_location: str | None = None
    """The BackupStorageLocation to store the backup in; the default location when empty."""
    volume_snapshot_locations: list[str] | None = None
    """The VolumeSnapshotLocations to take volume snapshots with."""
    # Deprecated by Velero; still honoured when true, as Velero does.
    default_volumes_to_restic: bool | None = None
    """Deprecated (use defaultVolumesToFsBackup): back up every pod volume with restic."""
    default_volumes_to_fs_backup: bool | None = None
    """Whether every pod volume is backed up with file-system backup unless opted out."""
    # kind (resource name) -> "ns/name,ns/name" (cluster-scoped: "name,name")
    ordered_resources: dict[str, str] | None = None
    """Resource name to a comma-separated list of namespace/name: those items are backed up first, in that order."""
    csi_snapshot_timeout: GoDuration | None = None
    """How long to wait for a CSI VolumeSnapshot to be ready, as a duration; 10m by default."""
    item_operation_timeout: GoDuration | None = None
    """How long to wait for asynchronous plugin operations, as a duration; 4h by default."""
    resource_policy: TypedLocalObjectReference | None = None
    """A ConfigMap of resource policies (for example which volumes to skip)."""
    snapshot_move_data: bool | None = None
    """Whether the data of CSI snapshots is moved to the backup storage."""
    data_mover: str | None = None
    """The data mover that moves snapshot data; Velero's built-in one when empty."""
    uploader_config: UploaderConfigForBackup | None = None
    """Settings of the file-system backup uploader."""


class BackupProgress(_VeleroModel):
    """Best-effort item counts while a backup runs."""

    total_items: int | None = None
    """How many items the backup is expected to hold (an estimate while it runs)."""
    items_backed_up: int | None = None
    """How many items have been backed up so far."""


class BackupStatus(_VeleroModel):
    """What happened to a backup (``velero.io/v1`` BackupStatus)."""

    version: int | None = None
    """Deprecated: the backup format's major version (1)."""
    format_version: str | None = None
    """The backup format's version, for example 1.1.0."""
    expiration: Timestamp | None = None
    """When the backup expires and is deleted."""
    phase: BackupPhase | None = None
    """Where the backup is in its lifecycle: New, InProgress, Completed, PartiallyFailed, Failed ..."""
    queue_position: int | None = None
    """The backup's place in the queue while it waits to start."""
    validation_errors: list[str] | None = None
    """Why the backup failed validation."""
    start_timestamp: Timestamp | None = None
    """When the backup started."""
    completion_timestamp: Timestamp | None = None
    """When the backup ended, whether it succeeded or not."""
    volume_snapshots_attempted: int | None = None
    """How many native volume snapshots were attempted."""
    volume_snapshots_completed: int | None = None
    """How many native volume snapshots succeeded."""
    failure_reason: str | None = None
    """Why the backup failed, when it failed as a whole."""
    warnings: int | None = None
    """How many warnings the backup produced (details in its log and results)."""
    errors: int | None = None
    """How many errors the backup produced (details in its log and results)."""
    progress: BackupProgress | None = None
    """Item counts while the backup runs."""
    csi_volume_snapshots_attempted: int | None = None
    """How many CSI volume snapshots were attempted."""
    csi_volume_snapshots_completed: int | None = None
    """How many CSI volume snapshots succeeded."""
    backup_item_operations_attempted: int | None = None
    """How many asynchronous plugin operations were started."""
    backup_item_operations_completed: int | None = None
    """How many asynchronous plugin operations succeeded."""
    backup_item_operations_failed: int | None = None
    """How many asynchronous plugin operations failed."""
    hook_status: HookStatus | None = None
    """How many hooks ran and failed."""


class Backup(_VeleroResource):
    """A ``velero.io/v1`` Backup; also the content of ``backups/<name>/velero-backup.json``."""

    KIND: ClassVar[str] = "Backup"

    kind: str = "Backup"
    spec: BackupSpec = Field(default_factory=BackupSpec)
    status: BackupStatus = Field(default_factory=BackupStatus)


# ---------------------------------------------------------------------------
# Restore
# ---------------------------------------------------------------------------


class RestoreStatusSpec(_VeleroModel):
    """``spec.restoreStatus``: the resources whose ``status`` is restored too (none when absent)."""

    included_resources: list[str] | None = None
    """Resources whose status is restored too; all when '*'."""
    excluded_resources: list[str] | None = None
    """Resources whose status is not restored."""


class UploaderConfigForRestore(_VeleroModel):
    """Tuning for the file-system uploader during restore."""

    write_sparse_files: bool | None = None
    """Whether files are written sparse (holes are not written)."""
    parallel_files_download: int | None = None
    """How many files the uploader restores at once."""


class RestoreSpec(_VeleroModel):
    """What to restore, from which backup, and how (``velero.io/v1`` RestoreSpec)."""

    backup_name: str | None = None
    """The Backup to restore from; required unless scheduleName is set."""
    schedule_name: str | None = None
    """Restore from the newest completed Backup of this Schedule (instead of backupName)."""
    included_namespaces: list[str] | None = None
    """The namespaces to restore; all in the backup when empty or '*'."""
    excluded_namespaces: list[str] | None = None
    """Namespaces not to restore."""
    included_resources: list[str] | None = None
    """The resources to restore; all when empty or '*'."""
    excluded_resources: list[str] | None = None
    """Resources not to restore (nodes, events and Velero's own resources are never restored)."""
    namespace_mapping: dict[str, str] | None = None
    """Source namespace to target namespace: items are restored into the target."""
    label_selector: LabelSelectorSpec | None = None
    """Only items with matching labels are restored."""
    or_label_selectors: list[LabelSelectorSpec] | None = None
    """Items matching any of these selectors are restored; cannot be combined with labelSelector."""
    restore_pvs: bool | None = None
    """Whether persistent volumes are restored from their snapshots."""
    restore_status: RestoreStatusSpec | None = None
    """Resources whose status is restored as well."""
    preserve_node_ports: bool | None = None
    """Whether Services keep the node ports they had."""
    include_cluster_resources: bool | None = None
    """Whether cluster-scoped resources are restored; when empty, only those restored items need."""
    hooks: RestoreHooks | None = None
    """Init containers and commands run in restored pods."""
    # "none" or "update" (see ExistingResourcePolicy); a plain string as in Velero's CRD.
    existing_resource_policy: str | None = None
    """What to do with an object that already exists: none (keep it, the default) or update."""
    item_operation_timeout: GoDuration | None = None
    """How long to wait for asynchronous plugin operations, as a duration; 4h by default."""
    resource_modifier: TypedLocalObjectReference | None = None
    """A ConfigMap of rules that change items as they are restored."""
    uploader_config: UploaderConfigForRestore | None = None
    """Settings of the file-system restore uploader."""


class RestoreProgress(_VeleroModel):
    """Best-effort item counts while a restore runs."""

    total_items: int | None = None
    """How many items the restore is expected to restore."""
    items_restored: int | None = None
    """How many items have been restored so far."""


class RestoreStatus(_VeleroModel):
    """What happened to a restore (``velero.io/v1`` RestoreStatus)."""

    phase: RestorePhase | None = None
    """Where the restore is in its lifecycle: New, InProgress, Completed, PartiallyFailed, Failed ..."""
    validation_errors: list[str] | None = None
    """Why the restore failed validation."""
    warnings: int | None = None
    """How many warnings the restore produced (details in its results)."""
    errors: int | None = None
    """How many errors the restore produced (details in its results)."""
    failure_reason: str | None = None
    """Why the restore failed, when it failed as a whole."""
    start_timestamp: Timestamp | None = None
    """When the restore started."""
    completion_timestamp: Timestamp | None = None
    """When the restore ended, whether it succeeded or not."""
    progress: RestoreProgress | None = None
    """Item counts while the restore runs."""
    restore_item_operations_attempted: int | None = None
    """How many asynchronous plugin operations were started."""
    restore_item_operations_completed: int | None = None
    """How many asynchronous plugin operations succeeded."""
    restore_item_operations_failed: int | None = None
    """How many asynchronous plugin operations failed."""
    hook_status: HookStatus | None = None
    """How many hooks ran and failed."""


class Restore(_VeleroResource):
    """A ``velero.io/v1`` Restore."""

    KIND: ClassVar[str] = "Restore"

    kind: str = "Restore"
    spec: RestoreSpec = Field(default_factory=RestoreSpec)
    status: RestoreStatus = Field(default_factory=RestoreStatus)


# ---------------------------------------------------------------------------
# BackupStorageLocation
# ---------------------------------------------------------------------------


class ObjectStorageLocation(_VeleroModel):
    """The bucket (and prefix within it) a location stores backups in."""

    bucket: str
    """The bucket backups are stored in."""
    prefix: str | None = None
    """The directory within the bucket that holds the backups; the bucket's top when empty."""
    # Deprecated by Velero in favour of caCertRef; both at once is invalid.
    ca_cert: Base64Bytes | None = None
    """Deprecated (use caCertRef): a PEM bundle, base64-encoded, to verify the storage's TLS certificate."""
    ca_cert_ref: SecretKeySelector | None = None
    """A key of a Secret holding a PEM bundle to verify the storage's TLS certificate."""


class BackupStorageLocationSpec(_VeleroModel):
    """Where and how backups are stored (``velero.io/v1`` BackupStorageLocationSpec)."""

    provider: str
    """The object store plugin, for example aws, azure or gcp."""
    config: dict[str, str] | None = None
    """Provider-specific settings, for example region, s3Url, s3ForcePathStyle or insecureSkipTLSVerify."""
    credential: SecretKeySelector | None = None
    """The key of a Secret, in the server's namespace, holding the credentials for this location."""
    object_storage: ObjectStorageLocation
    """The bucket and prefix."""
    default: bool | None = None
    """Whether this is the location backups use when they name none."""
    access_mode: BackupStorageLocationAccessMode | None = None
    """ReadWrite (the default) or ReadOnly: a ReadOnly location accepts no new backups."""
    # 0 disables sync/validation; absent means the server default.
    backup_sync_period: GoDuration | None = None
    """How often backups in storage are synced into the cluster, as a duration; 0 disables sync."""
    validation_frequency: GoDuration | None = None
    """How often the location is checked, as a duration; 0 disables validation."""


class BackupStorageLocationStatus(_VeleroModel):
    """Whether a location is usable and when it was last synced and validated."""

    phase: BackupStorageLocationPhase | None = None
    """Available or Unavailable."""
    last_synced_time: Timestamp | None = None
    """When backups were last synced from this location."""
    last_validation_time: Timestamp | None = None
    """When the location was last checked."""
    message: str | None = None
    """Why the location is unavailable."""
    # Both deprecated by Velero and unused; kept so they survive a round trip.
    last_synced_revision: str | None = None
    """Deprecated and unused."""
    access_mode: BackupStorageLocationAccessMode | None = None
    """Deprecated (see spec.accessMode)."""


class BackupStorageLocation(_VeleroResource):
    """A ``velero.io/v1`` BackupStorageLocation."""

    KIND: ClassVar[str] = "BackupStorageLocation"

    kind: str = "BackupStorageLocation"
    spec: BackupStorageLocationSpec
    status: BackupStorageLocationStatus = Field(default_factory=BackupStorageLocationStatus)

    def validation_errors(self) -> list[str]:
        """Velero's own check of a location beyond its schema; empty when the location is valid."""
        storage = self.spec.object_storage
        if storage.ca_cert is not None and storage.ca_cert_ref is not None:
            return ["cannot specify both caCert and caCertRef in objectStorage"]
        return []
