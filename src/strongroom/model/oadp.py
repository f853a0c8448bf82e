"""OADP's ``oadp.openshift.io/v1alpha1`` DataProtectionApplication as a typed model, and its checks.

An OpenShift administrator configures backups by applying a
DataProtectionApplication (DPA): which plugins to run, where backups and
snapshots go, which Secret holds the cloud credentials. strongroom serves the
same resource so that OADP manifests (and the examples of the OpenShift
"Backup and restore" guide) work unchanged, and reconciles it into the
BackupStorageLocations and VolumeSnapshotLocations it owns.

The model follows OADP's Go types (``api/v1alpha1``) with their JSON names and
keeps fields it does not know. It is deliberately lenient where OADP's CRD is
strict (plugin names, log level, a location's provider and bucket are plain
optional strings here): a mistake there must reach the DPA's ``Reconciled``
condition as a message naming the field, which an API server refusing the
object cannot give. :func:`dpa_problems` is that check; it is pure, and the
Secrets the locations name are checked by the controller (it reads them).

Rules follow OADP's validator (``internal/controller/{validator,bsl,vsl}.go``)
with its wording where it has one, plus a few it leaves to Velero's pods
(quantities, log level, durations), reported up front instead. Deliberate
differences, each for the seed's examples to work verbatim:

* ``spec.configuration.restic`` (OADP 1.0-1.4) is accepted as a synonym of
  ``nodeAgent`` with ``uploaderType: restic``; current OADP refuses it;
* a snapshot location's ``velero.default`` and ``velero.name`` (in the
  guide's GCP and Azure examples, not in Velero's type) are accepted and
  ignored, as OADP's pruning CRD ignores them.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Final

from pydantic import BeforeValidator, ConfigDict, Field, ValidationError, WithJsonSchema, field_validator

from strongroom.model.duration import DurationError, parse_duration_ns
from strongroom.model.velero import (
    ModelError,
    SecretKeySelector,
    Timestamp,
    _error_message,
    _error_path,
    _go_json_name,
    _VeleroModel,
    _VeleroResource,
)

__all__ = [
    "API_GROUP",
    "API_VERSION",
    "CONDITION_RECONCILED",
    "CREDENTIALS_KEY",
    "DEFAULT_CREDENTIALS_SECRETS",
    "LOG_LEVELS",
    "OADP_LABEL",
    "PROVIDERS",
    "REASON_COMPLETE",
    "REASON_ERROR",
    "RECONCILE_COMPLETE_MESSAGE",
    "ApplicationConfig",
    "BackupLocation",
    "CloudStorageLocation",
    "Condition",
    "CredentialUse",
    "CustomPlugin",
    "DataProtectionApplication",
    "DataProtectionApplicationSpec",
    "DataProtectionApplicationStatus",
    "DefaultPlugin",
    "DpaBackupStorageLocationSpec",
    "DpaObjectStorage",
    "DpaVolumeSnapshotLocationSpec",
    "EnvVar",
    "NodeAgentConfig",
    "PodConfig",
    "PodDnsConfig",
    "PodDnsConfigOption",
    "ResourceRequirements",
    "SnapshotLocation",
    "Toleration",
    "VeleroConfig",
    "backup_location_name",
    "credential_uses",
    "dpa_problems",
    "effective_feature_flags",
    "effective_log_level",
    "parse_quantity",
    "provider_name",
    "restic_enabled",
    "snapshot_location_name",
    "validate_dpa",
]

API_GROUP: Final = "oadp.openshift.io"
API_VERSION: Final = "oadp.openshift.io/v1alpha1"

# The condition OADP sets on every DPA, with its reasons and message.
CONDITION_RECONCILED: Final = "Reconciled"
REASON_COMPLETE: Final = "Complete"
REASON_ERROR: Final = "Error"
RECONCILE_COMPLETE_MESSAGE: Final = "Reconcile complete"
# The label OADP puts on what it manages (locations, credentials Secrets).
OADP_LABEL: Final = "openshift.io/oadp"

# logrus's levels, which Velero's --log-level takes (lower case, "warn" too).
LOG_LEVELS: Final = ("trace", "debug", "info", "warning", "error", "fatal", "panic")
_LOG_LEVEL_ALIASES: Final = {"warn": "warning"}

# The object-storage providers a location may name, and the Secret OADP
# mounts for each when a location names none (key "cloud").
PROVIDERS: Final = ("aws", "azure", "gcp")
DEFAULT_CREDENTIALS_SECRETS: Final = {
    "aws": "cloud-credentials",
    "azure": "cloud-credentials-azure",
    "gcp": "cloud-credentials-gcp",
}
CREDENTIALS_KEY: Final = "cloud"
# The feature flag that turns off every credentials check (OADP's).
_NO_SECRET_FLAG: Final = "no-secret"


class DefaultPlugin(StrEnum):
    """The plugins OADP can install by name (``spec.configuration.velero.defaultPlugins``)."""

    AWS = "aws"
    LEGACY_AWS = "legacy-aws"
    GCP = "gcp"
    AZURE = "azure"
    CSI = "csi"
    # OADP <= 1.2's VolSync data mover: still in OADP's enum, refused by its validator.
    VSM = "vsm"
    OPENSHIFT = "openshift"
    KUBEVIRT = "kubevirt"
    HYPERSHIFT = "hypershift"


# The plugin that serves each provider (legacy-aws serves aws too).
_PLUGIN_PROVIDER: Final = {"aws": "aws", "legacy-aws": "aws", "gcp": "gcp", "azure": "azure"}
_USABLE_PLUGINS: Final = tuple(plugin.value for plugin in DefaultPlugin if plugin is not DefaultPlugin.VSM)


# ---------------------------------------------------------------------------
# Scalar types
# ---------------------------------------------------------------------------


def _quantity_from_number(value: object) -> object:
    # A resource.Quantity is int-or-string in JSON; YAML's `cpu: 1` is an int.
    if isinstance(value, bool):
        return value  # let pydantic report it: true is no quantity
    if isinstance(value, int | float):
        return str(value)
    return value


Quantity = Annotated[
    str,
    BeforeValidator(_quantity_from_number),
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "x-kubernetes-int-or-string": True,
            "description": "A Kubernetes resource quantity: 500m, 1, 256Mi, 1.5Gi, 1e3.",
        }
    ),
]
"""A ``resource.Quantity`` as written (``500m``, ``256Mi``); :func:`parse_quantity` reads it."""


def _strict_group_id(value: object) -> object:
    # Go's int64 takes neither "1000" nor 1000.5 nor true; pydantic's lax int would.
    if isinstance(value, bool) or not isinstance(value, int):
        # pydantic reports only ValueError (not TypeError) as a validation error.
        raise ValueError(f"must be an integer group ID, not {value!r}")  # noqa: TRY004
    return value


GroupId = Annotated[
    int, BeforeValidator(_strict_group_id), WithJsonSchema({"type": "integer", "format": "int64"})
]


# ---------------------------------------------------------------------------
# Base model
# ---------------------------------------------------------------------------

# Go JSON names in OADP's types that are not the camelCase of the Python name.
_OADP_NAME_EXCEPTIONS: Final = {
    "default_volumes_to_fs_backup": "defaultVolumesToFSBackup",
    "client_burst": "client-burst",
    "client_qps": "client-qps",
    "load_affinity": "loadAffinity",
    "ca_cert": "caCert",
}


def _oadp_json_name(name: str) -> str:
    return _OADP_NAME_EXCEPTIONS.get(name) or _go_json_name(name)


class _OadpModel(_VeleroModel):
    """OADP's JSON names; unknown fields kept, as for Velero's types."""

    model_config = ConfigDict(alias_generator=_oadp_json_name)


# ---------------------------------------------------------------------------
# Kubernetes types OADP embeds
# ---------------------------------------------------------------------------


class Toleration(_OadpModel):
    """``corev1.Toleration``: lets the pods run on nodes with a matching taint."""

    key: str | None = None
    operator: str | None = Field(default=None, description="Exists or Equal (the default).")
    value: str | None = None
    effect: str | None = Field(default=None, description="NoSchedule, PreferNoSchedule or NoExecute.")
    toleration_seconds: int | None = None


class EnvVar(_OadpModel):
    """``corev1.EnvVar``; ``valueFrom`` (a Secret, ConfigMap or field reference) is kept as written."""

    name: str
    value: str | None = None
    value_from: dict[str, Any] | None = None


class ResourceRequirements(_OadpModel):
    """``corev1.ResourceRequirements``: CPU, memory and ephemeral-storage limits and requests."""

    limits: dict[str, Quantity] | None = Field(
        default=None, description="The most the container may use, per resource (cpu: '1', memory: 512Mi)."
    )
    requests: dict[str, Quantity] | None = Field(
        default=None, description="What the scheduler reserves, per resource (cpu: 500m, memory: 256Mi)."
    )


class PodConfig(_OadpModel):
    """Scheduling, resources, labels and environment of the pods a DPA runs."""

    labels: dict[str, str] | None = Field(default=None, description="Labels added to the pods.")
    node_selector: dict[str, str] | None = Field(default=None, description="The nodeSelector of the pods.")
    tolerations: list[Toleration] | None = Field(default=None, description="Tolerations of the pods.")
    resource_allocations: ResourceRequirements | None = Field(
        default=None, description="CPU, memory and ephemeral-storage limits and requests of the pods."
    )
    env: list[EnvVar] | None = Field(default=None, description="Environment variables of the pods.")


class PodDnsConfigOption(_OadpModel):
    """One resolver option (``ndots``, ``edns0`` ...)."""

    name: str | None = None
    value: str | None = None


class PodDnsConfig(_OadpModel):
    """``corev1.PodDNSConfig``: DNS settings added to those of ``podDnsPolicy``."""

    nameservers: list[str] | None = None
    searches: list[str] | None = None
    options: list[PodDnsConfigOption] | None = None


class Condition(_OadpModel):
    """``metav1.Condition``: one aspect of the DPA's state (OADP sets ``Reconciled``)."""

    type: str
    status: str = Field(description="True, False or Unknown.")
    observed_generation: int | None = Field(
        default=None, description="The metadata.generation the condition was computed from."
    )
    last_transition_time: Timestamp | None = Field(
        default=None, description="When the status last changed (not the reason or message)."
    )
    reason: str | None = Field(default=None, description="A CamelCase word: Complete or Error.")
    message: str | None = Field(default=None, description="What a person needs to know, and to do.")


# ---------------------------------------------------------------------------
# spec.configuration
# ---------------------------------------------------------------------------


class CustomPlugin(_OadpModel):
    """A Velero plugin OADP does not know, run from its image."""

    name: str | None = Field(default=None, description="The plugin's name, unique among the plugins.")
    image: str | None = Field(default=None, description="The plugin's container image.")


class VeleroConfig(_OadpModel):
    """``spec.configuration.velero``: the server's plugins, feature flags, pod and logging."""

    feature_flags: list[str] | None = Field(
        default=None, description="Velero feature flags (EnableCSI, EnableAPIGroupVersions, no-secret ...)."
    )
    default_plugins: list[str] | None = Field(
        default=None,
        description="Plugins OADP knows by name: openshift, aws, legacy-aws, azure, gcp, csi, kubevirt, hypershift.",
    )
    custom_plugins: list[CustomPlugin] | None = Field(
        default=None, description="Other plugins, each with a name and an image."
    )
    restore_resources_version_priority: str | None = Field(
        default=None,
        description="A ConfigMap of API versions to prefer on restore; enables EnableAPIGroupVersions.",
    )
    no_default_backup_location: bool | None = Field(
        default=None, description="Confirms that the server runs without any backup location."
    )
    pod_config: PodConfig | None = Field(default=None, description="The server pod's configuration.")
    log_level: str | None = Field(
        default=None,
        description="The server's log level: trace, debug, info, warning, error, fatal or panic.",
    )
    item_operation_sync_frequency: str | None = Field(
        default=None, description="How often asynchronous operations are checked (a Go duration, default 2m)."
    )
    default_item_operation_timeout: str | None = Field(
        default=None, description="How long asynchronous operations may take (a Go duration, default 1h)."
    )
    default_volumes_to_fs_backup: bool | None = Field(
        default=None, description="Back up every pod volume with the file-system uploader by default."
    )
    disable_fs_backup: bool | None = Field(
        default=None, description="Run the node agent without file-system backup."
    )
    default_snapshot_move_data: bool | None = Field(
        default=None, description="Move CSI snapshot data to the backup location by default."
    )
    disable_informer_cache: bool | None = None
    item_block_worker_count: int | None = None
    resource_timeout: str | None = Field(default=None, description="A Go duration (default 10m).")
    client_burst: int | None = None
    client_qps: int | None = None
    args: dict[str, Any] | None = Field(
        default=None, description="Velero server flags; override the fields above."
    )
    load_affinity: list[dict[str, Any]] | None = None


class NodeAgentConfig(_OadpModel):
    """``spec.configuration.nodeAgent`` (and the older ``restic``): the file-system backup DaemonSet."""

    enable: bool | None = Field(default=None, description="Whether the node agent DaemonSet runs.")
    supplemental_groups: list[GroupId] | None = Field(
        default=None, description="Linux group IDs added to the node agent pods."
    )
    timeout: str | None = Field(
        default=None, description="How long a pod volume backup or restore may take (a Go duration)."
    )
    pod_config: PodConfig | None = Field(default=None, description="The node agent pods' configuration.")
    uploader_type: str | None = Field(
        default=None, description="restic or kopia (nodeAgent only; restic: implies restic)."
    )
    data_mover_prepare_timeout: str | None = None
    resource_timeout: str | None = None


class ApplicationConfig(_OadpModel):
    """``spec.configuration``: the Velero server and the node agent."""

    velero: VeleroConfig | None = None
    restic: NodeAgentConfig | None = Field(
        default=None, description="OADP 1.0-1.4's name for nodeAgent (uploader restic)."
    )
    node_agent: NodeAgentConfig | None = None
    repository_maintenance: dict[str, dict[str, Any]] | None = None


# ---------------------------------------------------------------------------
# Locations
# ---------------------------------------------------------------------------


class DpaObjectStorage(_OadpModel):
    """The bucket of a backup location (Velero's ``ObjectStorageLocation``)."""

    bucket: str | None = Field(default=None, description="The bucket (Azure: the blob container).")
    prefix: str | None = Field(default=None, description="The path inside the bucket.")
    ca_cert: Annotated[str, WithJsonSchema({"type": "string", "format": "byte"})] | None = Field(
        default=None, description="A PEM CA bundle, base64-encoded, to verify the storage's TLS certificate."
    )
    ca_cert_ref: SecretKeySelector | None = None


class DpaBackupStorageLocationSpec(_OadpModel):
    """A backup location's ``velero`` block: a Velero BackupStorageLocationSpec."""

    provider: str | None = Field(default=None, description="aws, azure or gcp.")
    config: dict[str, str] | None = Field(
        default=None, description="Provider settings (region, profile, s3Url ...)."
    )
    credential: SecretKeySelector | None = Field(
        default=None,
        description="The Secret and key holding the credentials (default cloud-credentials*, cloud).",
    )
    object_storage: DpaObjectStorage | None = None
    default: bool | None = Field(
        default=None, description="Whether backups go here unless they name a location."
    )
    access_mode: str | None = Field(default=None, description="ReadWrite (the default) or ReadOnly.")
    backup_sync_period: str | None = Field(default=None, description="A Go duration; 0 disables sync.")
    validation_frequency: str | None = Field(
        default=None, description="A Go duration; 0 disables validation."
    )


class CloudStorageLocation(_OadpModel):
    """A backup location's ``bucket`` block: a bucket managed by a CloudStorage resource."""

    cloud_storage_ref: dict[str, str] | None = Field(default=None, description="{name: <CloudStorage>}.")
    config: dict[str, str] | None = None
    credential: SecretKeySelector | None = None
    default: bool | None = None
    backup_sync_period: str | None = None
    prefix: str | None = None
    ca_cert: Annotated[str, WithJsonSchema({"type": "string", "format": "byte"})] | None = None


class BackupLocation(_OadpModel):
    """One entry of ``spec.backupLocations``: exactly one of ``velero`` and ``bucket``."""

    name: str | None = Field(
        default=None, description="The BackupStorageLocation's name (default <dpa>-<n>)."
    )
    velero: DpaBackupStorageLocationSpec | None = None
    bucket: CloudStorageLocation | None = None


class DpaVolumeSnapshotLocationSpec(_OadpModel):
    """A snapshot location's ``velero`` block: a Velero VolumeSnapshotLocationSpec."""

    provider: str | None = Field(default=None, description="aws, azure or gcp.")
    config: dict[str, str] | None = Field(
        default=None, description="Provider settings (region, profile ...)."
    )
    credential: SecretKeySelector | None = None
    default: bool | None = Field(
        default=None,
        description="Accepted for the OpenShift guide's examples; snapshot locations have no default.",
    )
    name: str | None = Field(
        default=None,
        description="Accepted for the OpenShift guide's Azure examples, which put the name here; ignored, "
        "as by OADP (the location's name is the entry's name).",
    )


class SnapshotLocation(_OadpModel):
    """One entry of ``spec.snapshotLocations``."""

    name: str | None = Field(
        default=None, description="The VolumeSnapshotLocation's name (default <dpa>-<n>)."
    )
    velero: DpaVolumeSnapshotLocationSpec | None = None


# ---------------------------------------------------------------------------
# The resource
# ---------------------------------------------------------------------------


class DataProtectionApplicationSpec(_OadpModel):
    """What OADP should run, and where backups and snapshots go."""

    backup_locations: list[BackupLocation] | None = None
    snapshot_locations: list[SnapshotLocation] | None = None
    unsupported_overrides: dict[str, str] | None = Field(
        default=None, description="Image overrides and operator-type (only mtc)."
    )
    pod_annotations: dict[str, str] | None = None
    pod_dns_policy: str | None = Field(
        default=None, description="ClusterFirst, ClusterFirstWithHostNet, Default or None."
    )
    pod_dns_config: PodDnsConfig | None = None
    backup_images: bool | None = Field(
        default=None, description="Back up internal images (default true: locations then need a prefix)."
    )
    configuration: ApplicationConfig | None = None
    features: dict[str, Any] | None = None
    image_pull_policy: str | None = None
    non_admin: dict[str, Any] | None = None
    log_format: str | None = Field(default=None, description="text or json.")


class DataProtectionApplicationStatus(_OadpModel):
    """The DPA's conditions (``Reconciled``)."""

    conditions: list[Condition] | None = None


class DataProtectionApplication(_VeleroResource):
    """An ``oadp.openshift.io/v1alpha1`` DataProtectionApplication."""

    model_config = ConfigDict(alias_generator=_oadp_json_name)

    KIND: ClassVar[str] = "DataProtectionApplication"

    kind: str = "DataProtectionApplication"
    api_version: str = API_VERSION
    spec: DataProtectionApplicationSpec = Field(default_factory=DataProtectionApplicationSpec)
    status: DataProtectionApplicationStatus = Field(default_factory=DataProtectionApplicationStatus)

    @field_validator("api_version")
    @classmethod
    def _api_version_matches(cls, value: str) -> str:
        if value != API_VERSION:
            raise ValueError(f"expected apiVersion {API_VERSION!r}, got {value!r}")
        return value

    @property
    def velero(self) -> VeleroConfig:
        """``spec.configuration.velero``, empty when absent."""
        configuration = self.spec.configuration
        return (configuration.velero if configuration else None) or VeleroConfig()

    @property
    def backs_up_images(self) -> bool:
        """``spec.backupImages``, true unless set to false (OADP's default)."""
        return self.spec.backup_images is not False


# ---------------------------------------------------------------------------
# Quantities
# ---------------------------------------------------------------------------

_QUANTITY: Final = re.compile(
    r"(?P<number>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(?P<suffix>[A-Za-z]*[-+]?[0-9]*)"
)
_BINARY_SUFFIXES: Final = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL_SUFFIXES: Final = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}
_EXPONENT: Final = re.compile(r"[eE][-+]?[0-9]+")
_QUANTITY_HELP: Final = (
    "a number with an optional suffix: binary Ki Mi Gi Ti Pi Ei, decimal n u m k M G T P E, or an exponent e3"
)


def parse_quantity(text: str) -> Decimal:
    """The value of a Kubernetes quantity (``500m`` -> 0.5, ``1Gi`` -> 1073741824); ValueError if malformed."""
    match = _QUANTITY.fullmatch(text.strip()) if text.strip() == text else None
    if match is None:
        raise ValueError(f"invalid quantity {text!r}: expected {_QUANTITY_HELP}")
    number, suffix = Decimal(match["number"]), match["suffix"]
    if suffix in _BINARY_SUFFIXES:
        return number * _BINARY_SUFFIXES[suffix]
    if suffix in _DECIMAL_SUFFIXES:
        return number * _DECIMAL_SUFFIXES[suffix]
    if _EXPONENT.fullmatch(suffix):
        try:
            return number.scaleb(int(suffix[1:]))
        except (InvalidOperation, OverflowError) as exc:
            raise ValueError(f"invalid quantity {text!r}: exponent out of range") from exc
    raise ValueError(f"invalid quantity {text!r}: unknown suffix {suffix!r}; expected {_QUANTITY_HELP}")


# ---------------------------------------------------------------------------
# Derived values
# ---------------------------------------------------------------------------


def provider_name(provider: str | None) -> str:
    """``aws`` for ``aws`` and ``velero.io/aws``: Velero accepts both spellings."""
    return (provider or "").strip().removeprefix("velero.io/")


def backup_location_name(dpa_name: str, index: int, location: BackupLocation) -> str:
    """The BackupStorageLocation's name: the one given, else ``<dpa>-<index+1>`` (as OADP names them)."""
    return location.name or f"{dpa_name}-{index + 1}"


def snapshot_location_name(dpa_name: str, index: int, location: SnapshotLocation) -> str:
    """The VolumeSnapshotLocation's name: the one given, else ``<dpa>-<index+1>`` (as OADP names them)."""
    return location.name or f"{dpa_name}-{index + 1}"


def effective_log_level(dpa: DataProtectionApplication) -> str:
    """The server's log level: ``logLevel`` normalised (``WARN`` -> ``warning``), ``info`` when unset or invalid."""
    level = (dpa.velero.log_level or "").strip().lower()
    level = _LOG_LEVEL_ALIASES.get(level, level)
    return level if level in LOG_LEVELS else "info"


def effective_feature_flags(dpa: DataProtectionApplication) -> list[str]:
    """The feature flags, with those OADP adds itself (EnableCSI for csi, EnableAPIGroupVersions), once each."""
    velero = dpa.velero
    flags = list(velero.feature_flags or ())
    if DefaultPlugin.CSI.value in (velero.default_plugins or ()):
        flags.append("EnableCSI")
    if velero.restore_resources_version_priority:
        flags.append("EnableAPIGroupVersions")
    return list(dict.fromkeys(flags))


def restic_enabled(dpa: DataProtectionApplication) -> bool:
    """Whether the node agent (file-system backup) runs: ``nodeAgent.enable`` or the older ``restic.enable``."""
    configuration = dpa.spec.configuration
    if configuration is None:
        return False
    return any(
        agent is not None and agent.enable is True
        for agent in (configuration.node_agent, configuration.restic)
    )


@dataclass(frozen=True)
class CredentialUse:
    """A Secret key a location reads its credentials from, and how its content must look."""

    path: str  # spec.backupLocations[0] (the first location that uses it)
    provider: str  # aws, azure, gcp
    secret: str
    key: str
    profile: str | None = None  # aws: config.profile
    # azure: config.storageAccountKeyEnvVar, the variable that must hold the storage key
    storage_account_key_env: str | None = None


def _location_secret(
    provider: str, config: Mapping[str, str] | None, credential: SecretKeySelector | None
) -> tuple[str, str] | None:
    # OADP's order: config.credentialsFile "<secret>/<key>", then credential, then the provider's default.
    credentials_file = (config or {}).get("credentialsFile", "").strip()
    if credentials_file:
        parts = credentials_file.split("/")
        if len(parts) == 2 and all(parts):
            return parts[0], parts[1]
    if credential is not None:
        if not credential.name or not credential.key:
            return None
        return credential.name, credential.key
    default = DEFAULT_CREDENTIALS_SECRETS.get(provider)
    return (default, CREDENTIALS_KEY) if default else None


def credential_uses(dpa: DataProtectionApplication) -> list[CredentialUse]:
    """Each distinct Secret key (and profile) the locations need, in spec order; none with ``no-secret``."""
    if _NO_SECRET_FLAG in (dpa.velero.feature_flags or ()):
        return []
    uses: dict[tuple[str, str, str, str | None, str | None], CredentialUse] = {}
    entries: list[tuple[str, str | None, Mapping[str, str] | None, SecretKeySelector | None]] = []
    for index, location in enumerate(dpa.spec.backup_locations or ()):
        if location.velero is not None and location.bucket is None:
            velero = location.velero
            entries.append(
                (f"spec.backupLocations[{index}]", velero.provider, velero.config, velero.credential)
            )
        elif location.bucket is not None and location.velero is None:
            bucket = location.bucket
            # A CloudStorage bucket is AWS's (the only provider OADP supports there).
            entries.append((f"spec.backupLocations[{index}]", "aws", bucket.config, bucket.credential))
    for index, snapshot in enumerate(dpa.spec.snapshot_locations or ()):
        if snapshot.velero is not None:
            velero_vsl = snapshot.velero
            entries.append(
                (
                    f"spec.snapshotLocations[{index}]",
                    velero_vsl.provider,
                    velero_vsl.config,
                    velero_vsl.credential,
                )
            )
    for path, raw_provider, config, credential in entries:
        provider = provider_name(raw_provider)
        if provider not in PROVIDERS:
            continue
        found = _location_secret(provider, config, credential)
        if found is None:
            continue
        secret, key = found
        profile = (config or {}).get("profile") or "default" if provider == "aws" else None
        env = (config or {}).get("storageAccountKeyEnvVar") or None if provider == "azure" else None
        identity = (provider, secret, key, profile, env)
        uses.setdefault(identity, CredentialUse(path, provider, secret, key, profile, env))
    return list(uses.values())


# ---------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------

_GO_BOOLS: Final = frozenset(
    {"1", "t", "T", "TRUE", "true", "True", "0", "f", "F", "FALSE", "false", "False"}
)
_DNS_POLICIES: Final = ("ClusterFirstWithHostNet", "ClusterFirst", "Default", "None")
_ACCESS_MODES: Final = ("ReadWrite", "ReadOnly")
_UPLOADER_TYPES: Final = ("restic", "kopia")
# The config keys OADP allows in a snapshot location, per provider.
_VSL_CONFIG_KEYS: Final = {
    "aws": ("profile", "region", "credentialsFile", "enableSharedConfig"),
    "gcp": ("project", "snapshotLocation"),
    "azure": ("apiTimeout", "incremental", "subscriptionId", "resourceGroup"),
}
_PROVIDER_TITLES: Final = {"aws": "AWS", "azure": "Azure", "gcp": "GCP"}
_PEM_CERTIFICATE: Final = b"-----BEGIN CERTIFICATE-----"


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _duration_problem(path: str, value: str | None) -> list[str]:
    if value is None or value == "":
        return []
    try:
        parse_duration_ns(value)
    except DurationError as exc:
        return [f"{path}: {exc.message}"]
    return []


def _ca_cert_problems(path: str, value: str | None) -> list[str]:
    if not value:
        return []
    try:
        decoded = base64.b64decode(value.replace("\r", "").replace("\n", ""), validate=True)
    except (binascii.Error, ValueError):
        return [f"{path}: not valid base64; encode the PEM CA bundle with `base64 -w0 ca.crt`"]
    if _PEM_CERTIFICATE not in decoded:
        return [
            f"{path}: the base64 data decodes to no PEM certificate "
            "(expected a bundle with -----BEGIN CERTIFICATE-----)"
        ]
    return []


def _secret_ref_problems(path: str, credential: SecretKeySelector | None) -> list[str]:
    if credential is None:
        return []
    problems = []
    if not credential.name:
        problems.append(f"{path}.name: secret name specified for location cannot be empty")
    if not credential.key:
        problems.append(f"{path}.key: secret key specified for location cannot be empty")
    return problems


def _plugin_problems(velero: VeleroConfig) -> list[str]:
    base = "spec.configuration.velero"
    problems: list[str] = []
    seen: dict[str, str] = {}
    for index, plugin in enumerate(velero.default_plugins or ()):
        path = f"{base}.defaultPlugins[{index}]"
        if plugin == DefaultPlugin.VSM:
            problems.append(
                f"{path}: Delete vsm from spec.configuration.velero.defaultPlugins and dataMover object "
                "from spec.features. Use Velero Built-in Data Mover instead"
            )
        elif plugin not in _USABLE_PLUGINS:
            problems.append(f"{path}: unknown plugin {_quote(plugin)}; valid: {', '.join(_USABLE_PLUGINS)}")
        if plugin in seen:
            problems.append(f"{path}: plugin {_quote(plugin)} is listed twice (also {seen[plugin]})")
        else:
            seen[plugin] = path
    plugins = velero.default_plugins or ()
    if DefaultPlugin.AWS in plugins and DefaultPlugin.LEGACY_AWS in plugins:
        problems.append(
            f"{base}.defaultPlugins: aws and legacy-aws can not be both specified in "
            "DPA spec.configuration.velero.defaultPlugins"
        )
    for index, custom in enumerate(velero.custom_plugins or ()):
        path = f"{base}.customPlugins[{index}]"
        if not custom.name:
            problems.append(f"{path}.name: required: the plugin's name")
        elif custom.name in seen:
            problems.append(
                f"{path}.name: plugin {_quote(custom.name)} is listed twice (also {seen[custom.name]})"
            )
        else:
            seen[custom.name] = f"{path}.name"
        if not custom.image:
            problems.append(f"{path}.image: required: the plugin's container image")
        elif any(character.isspace() for character in custom.image):
            problems.append(
                f"{path}.image: {_quote(custom.image)} is not an image reference (it contains spaces)"
            )
    return problems


def _resource_problems(path: str, pod: PodConfig | None) -> list[str]:
    if pod is None or pod.resource_allocations is None:
        return []
    problems: list[str] = []
    parsed: dict[str, dict[str, Decimal]] = {}
    allocations = pod.resource_allocations
    for kind, values in (("limits", allocations.limits), ("requests", allocations.requests)):
        for resource, text in (values or {}).items():
            where = f"{path}.resourceAllocations.{kind}.{resource}"
            try:
                quantity = parse_quantity(text)
            except ValueError as exc:
                problems.append(f"{where}: {exc}")
                continue
            if quantity < 0:
                problems.append(f"{where}: must not be negative, not {_quote(text)}")
                continue
            parsed.setdefault(kind, {})[resource] = quantity
    for resource, request in parsed.get("requests", {}).items():
        limit = parsed.get("limits", {}).get(resource)
        if limit is not None and request > limit:
            problems.append(
                f"{path}.resourceAllocations.requests.{resource}: "
                f"{_quote((allocations.requests or {})[resource])} is more than the limit "
                f"{_quote((allocations.limits or {})[resource])}; a request must not exceed its limit"
            )
    return problems


def _pod_problems(path: str, pod: PodConfig | None) -> list[str]:
    problems = _resource_problems(path, pod)
    for index, toleration in enumerate((pod.tolerations if pod else None) or ()):
        if toleration.operator not in (None, "", "Exists", "Equal"):
            problems.append(
                f"{path}.tolerations[{index}].operator: {_quote(toleration.operator)} is not Exists or Equal"
            )
        if toleration.effect not in (None, "", "NoSchedule", "PreferNoSchedule", "NoExecute"):
            problems.append(
                f"{path}.tolerations[{index}].effect: {_quote(toleration.effect)} is not "
                "NoSchedule, PreferNoSchedule or NoExecute"
            )
    return problems


def _node_agent_problems(path: str, agent: NodeAgentConfig | None, *, uploader_required: bool) -> list[str]:
    if agent is None:
        return []
    problems: list[str] = []
    for index, group in enumerate(agent.supplemental_groups or ()):
        if group < 0:
            problems.append(f"{path}.supplementalGroups[{index}]: group IDs are not negative, not {group}")
    problems += _duration_problem(f"{path}.timeout", agent.timeout)
    problems += _duration_problem(f"{path}.dataMoverPrepareTimeout", agent.data_mover_prepare_timeout)
    problems += _duration_problem(f"{path}.resourceTimeout", agent.resource_timeout)
    if agent.uploader_type is None:
        if uploader_required:
            problems.append(f"{path}.uploaderType: required; valid: {', '.join(_UPLOADER_TYPES)}")
    elif agent.uploader_type not in _UPLOADER_TYPES:
        problems.append(
            f"{path}.uploaderType: unknown uploader {_quote(agent.uploader_type)}; valid: {', '.join(_UPLOADER_TYPES)}"
        )
    problems += _pod_problems(f"{path}.podConfig", agent.pod_config)
    return problems


def _config_problems(path: str, provider: str, config: Mapping[str, str] | None) -> list[str]:
    config = config or {}
    problems: list[str] = []
    insecure = config.get("insecureSkipTLSVerify")
    if insecure is not None and insecure not in _GO_BOOLS:
        problems.append(f'{path}.insecureSkipTLSVerify: must be "true" or "false", not {_quote(insecure)}')
    force_path = config.get("s3ForcePathStyle")
    if force_path is not None and force_path not in _GO_BOOLS:
        problems.append(f'{path}.s3ForcePathStyle: must be "true" or "false", not {_quote(force_path)}')
    credentials_file = config.get("credentialsFile", "").strip()
    if credentials_file and (len(credentials_file.split("/")) != 2 or not all(credentials_file.split("/"))):
        problems.append(
            f"{path}.credentialsFile: expected <secret name>/<key>, not {_quote(credentials_file)}"
        )
    if (
        provider == "aws"
        and not config.get("region")
        and force_path in ("1", "t", "T", "TRUE", "true", "True")
    ):
        problems.append(
            f"{path}.region: region for AWS backupstoragelocation not automatically discoverable. "
            "Please set the region in the backupstoragelocation config"
        )
    if provider == "azure":
        for key in ("resourceGroup", "storageAccount"):
            if not config.get(key):
                problems.append(f"{path}.{key}: {key} for Azure backupstoragelocation config cannot be empty")
    return problems


def _backup_location_problems(
    dpa: DataProtectionApplication, index: int, location: BackupLocation
) -> list[str]:
    path = f"spec.backupLocations[{index}]"
    if location.velero is None and location.bucket is None:
        return [f"{path}: BackupLocation must have velero or bucket configuration"]
    if location.velero is not None and location.bucket is not None:
        return [f"{path}: cannot have both velero and bucket provided for a single backup location; keep one"]
    problems: list[str] = []
    if location.bucket is not None:
        bucket = location.bucket
        if not (bucket.cloud_storage_ref or {}).get("name"):
            problems.append(f"{path}.bucket.cloudStorageRef.name: required: the CloudStorage to use")
        if bucket.credential is None:
            problems.append(f"{path}.bucket.credential: must provide a valid credential secret")
        else:
            problems += _secret_ref_problems(f"{path}.bucket.credential", bucket.credential)
        if not bucket.prefix and dpa.backs_up_images:
            problems.append(
                f"{path}.bucket.prefix: BackupLocation must have cloud storage prefix "
                "when backupImages is not set to false"
            )
        problems += _ca_cert_problems(f"{path}.bucket.caCert", bucket.ca_cert)
        problems += _duration_problem(f"{path}.bucket.backupSyncPeriod", bucket.backup_sync_period)
        problems += _config_problems(f"{path}.bucket.config", "aws", bucket.config)
        if bucket.default is not True and location.name == "default":
            problems.append(f"{path}.bucket.default: Storage location named 'default' must be set as default")
        return problems
    velero = location.velero
    assert velero is not None
    here = f"{path}.velero"
    provider = provider_name(velero.provider)
    if not provider:
        problems.append(f"{here}.provider: no provider specified; valid: {', '.join(PROVIDERS)}")
    elif provider not in PROVIDERS:
        problems.append(
            f"{here}.provider: invalid provider {_quote(velero.provider or '')}; valid: {', '.join(PROVIDERS)}"
        )
    title = _PROVIDER_TITLES.get(provider, provider or "the")
    storage = velero.object_storage
    if storage is None:
        problems.append(
            f"{here}.objectStorage: object storage configuration for {title} backupstoragelocation cannot be nil"
        )
    else:
        if not storage.bucket:
            problems.append(
                f"{here}.objectStorage.bucket: bucket name for {title} backupstoragelocation cannot be empty"
            )
        if not storage.prefix and dpa.backs_up_images:
            problems.append(
                f"{here}.objectStorage.prefix: BackupLocation must have velero prefix when backupImages "
                "is not set to false (set a prefix, or spec.backupImages: false)"
            )
        problems += _ca_cert_problems(f"{here}.objectStorage.caCert", storage.ca_cert)
        if storage.ca_cert and storage.ca_cert_ref is not None:
            problems.append(
                f"{here}.objectStorage: cannot specify both caCert and caCertRef in objectStorage"
            )
    problems += _config_problems(f"{here}.config", provider, velero.config)
    problems += _secret_ref_problems(f"{here}.credential", velero.credential)
    if velero.access_mode is not None and velero.access_mode not in _ACCESS_MODES:
        problems.append(
            f"{here}.accessMode: invalid access mode {_quote(velero.access_mode)}; valid: {', '.join(_ACCESS_MODES)}"
        )
    problems += _duration_problem(f"{here}.backupSyncPeriod", velero.backup_sync_period)
    problems += _duration_problem(f"{here}.validationFrequency", velero.validation_frequency)
    if velero.default is not True and location.name == "default":
        problems.append(f"{here}.default: Storage location named 'default' must be set as default")
    return problems


def _snapshot_location_problems(
    dpa: DataProtectionApplication, index: int, location: SnapshotLocation
) -> list[str]:
    path = f"spec.snapshotLocations[{index}]"
    velero = location.velero
    if velero is None:
        return [f"{path}.velero: snapshotLocation velero configuration cannot be nil"]
    here = f"{path}.velero"
    provider = velero.provider or ""
    if not provider:
        return [f"{here}.provider: no provider specified; valid: {', '.join(PROVIDERS)}"]
    if provider not in PROVIDERS:
        return [
            f"{here}.provider: DPA {here}.provider {provider} is invalid: only aws, gcp and azure are supported"
        ]
    problems: list[str] = []
    config = velero.config or {}
    if provider == "aws" and not config.get("region"):
        problems.append(
            f"{here}.config.region: region for aws VSL in DPA {here}.config is not configured, "
            "please ensure a region is configured"
        )
    for key in config:
        if key not in _VSL_CONFIG_KEYS[provider]:
            problems.append(
                f"{here}.config.{key}: DPA {here}.config key {key} is not a valid {provider} config key; "
                f"valid: {', '.join(_VSL_CONFIG_KEYS[provider])}"
            )
    plugins = dpa.velero.default_plugins or ()
    if not any(_PLUGIN_PROVIDER.get(plugin) == provider for plugin in plugins):
        problems.append(
            f"{here}.provider: to use VSL for {provider} specified in DPA {path}, {provider} plugin must be "
            "present in spec.configuration.velero.defaultPlugins"
        )
    if velero.credential is not None:
        if not velero.credential.key:
            problems.append(
                f"{here}.credential.key: Secret key specified in SnapshotLocation cannot be empty"
            )
        if not velero.credential.name:
            problems.append(
                f"{here}.credential.name: Secret name specified in SnapshotLocation cannot be empty"
            )
    credentials_file = config.get("credentialsFile", "").strip()
    if credentials_file and (len(credentials_file.split("/")) != 2 or not all(credentials_file.split("/"))):
        problems.append(
            f"{here}.config.credentialsFile: expected <secret name>/<key>, not {_quote(credentials_file)}"
        )
    return problems


def _duplicate_names(kind: str, names: Iterable[tuple[str, str]]) -> list[str]:
    problems = []
    first: dict[str, str] = {}
    for path, name in names:
        if name in first:
            problems.append(f"{path}: {kind} name {_quote(name)} is used twice (also by {first[name]})")
        else:
            first[name] = path
    return problems


def validate_dpa(dpa: DataProtectionApplication) -> list[str]:
    """Every problem of a DPA's spec, each naming its field (``spec.backupLocations[0].velero.provider: ...``).

    Empty when the DPA is valid. Pure: the credentials Secrets are checked by
    the controller, which reads them.
    """
    spec = dpa.spec
    configuration = spec.configuration
    if configuration is None or configuration.velero is None:
        return ["spec.configuration.velero: DPA CR Velero configuration cannot be nil"]
    velero = configuration.velero
    problems = _plugin_problems(velero)
    base = "spec.configuration.velero"
    if velero.log_level is not None:
        level = velero.log_level.strip().lower()
        if _LOG_LEVEL_ALIASES.get(level, level) not in LOG_LEVELS:
            problems.append(
                f"{base}.logLevel: invalid log level {_quote(velero.log_level)}, use: "
                "trace, debug, info, warning, error, fatal, or panic"
            )
    problems += _pod_problems(f"{base}.podConfig", velero.pod_config)
    problems += _duration_problem(f"{base}.itemOperationSyncFrequency", velero.item_operation_sync_frequency)
    problems += _duration_problem(
        f"{base}.defaultItemOperationTimeout", velero.default_item_operation_timeout
    )
    problems += _duration_problem(f"{base}.resourceTimeout", velero.resource_timeout)

    if configuration.restic is not None and configuration.node_agent is not None:
        problems.append(
            "spec.configuration.restic: restic and nodeAgent cannot both be set; "
            "move the restic settings to spec.configuration.nodeAgent"
        )
    problems += _node_agent_problems(
        "spec.configuration.restic", configuration.restic, uploader_required=False
    )
    if configuration.restic is not None and configuration.restic.uploader_type not in (None, "restic"):
        problems.append("spec.configuration.restic.uploaderType: the restic block always uses restic")
    problems += _node_agent_problems(
        "spec.configuration.nodeAgent", configuration.node_agent, uploader_required=True
    )

    locations = spec.backup_locations or []
    if velero.no_default_backup_location:
        if locations:
            problems.append(
                "spec.backupLocations: DPA CR Velero configuration cannot have backup locations "
                "if noDefaultBackupLocation is set"
            )
        if dpa.backs_up_images:
            problems.append(
                "spec.backupImages: backupImages needs to be set to false when noDefaultBackupLocation is set"
            )
    elif not locations:
        problems.append(
            "spec.backupLocations: no backupstoragelocations configured, ensure a backupstoragelocation "
            "has been configured or use the noDefaultBackupLocation flag (spec.configuration.velero.noDefaultBackupLocation: true)"
        )
    defaults: list[str] = []
    for index, location in enumerate(locations):
        problems += _backup_location_problems(dpa, index, location)
        entry = location.velero or location.bucket
        if entry is not None and entry.default is True and not (location.velero and location.bucket):
            defaults.append(f"spec.backupLocations[{index}]")
    if len(defaults) > 1:
        problems.append(
            f"spec.backupLocations: Only one Storage Location be set as default; these are: {', '.join(defaults)}"
        )
    if locations and not defaults and not velero.no_default_backup_location:
        problems.append(
            "spec.backupLocations: no default backupstoragelocations configured, ensure that one "
            "backupstoragelocation has been configured as the default location (velero.default: true)"
        )
    name = dpa.metadata.name or ""
    problems += _duplicate_names(
        "BackupStorageLocation",
        (
            (f"spec.backupLocations[{i}]", backup_location_name(name, i, loc))
            for i, loc in enumerate(locations)
        ),
    )
    snapshots = spec.snapshot_locations or []
    for index, snapshot in enumerate(snapshots):
        problems += _snapshot_location_problems(dpa, index, snapshot)
    problems += _duplicate_names(
        "VolumeSnapshotLocation",
        (
            (f"spec.snapshotLocations[{i}]", snapshot_location_name(name, i, loc))
            for i, loc in enumerate(snapshots)
        ),
    )

    operator_type = (spec.unsupported_overrides or {}).get("operator-type")
    if operator_type is not None and operator_type != "mtc":
        problems.append(
            "spec.unsupportedOverrides.operator-type: only mtc operator type override is supported"
        )
    if (spec.features or {}).get("dataMover") is not None:
        problems.append(
            "spec.features.dataMover: Delete vsm from spec.configuration.velero.defaultPlugins and dataMover "
            "object from spec.features. Use Velero Built-in Data Mover instead"
        )
    if spec.pod_dns_policy is not None and spec.pod_dns_policy not in _DNS_POLICIES:
        problems.append(
            f"spec.podDnsPolicy: invalid DNS policy {_quote(spec.pod_dns_policy)}; valid: {', '.join(_DNS_POLICIES)}"
        )
    if spec.pod_dns_policy == "None" and not (spec.pod_dns_config and spec.pod_dns_config.nameservers):
        problems.append("spec.podDnsConfig.nameservers: required when podDnsPolicy is None")
    if spec.log_format is not None and spec.log_format not in ("text", "json"):
        problems.append(f"spec.logFormat: invalid log format {_quote(spec.log_format)}; valid: text, json")
    return problems


def dpa_problems(manifest: Mapping[str, Any]) -> tuple[DataProtectionApplication | None, list[str]]:
    """Read a DPA manifest and check it: the model (None if it does not fit) and every problem found.

    A manifest whose fields have the wrong types (``supplementalGroups: [abc]``)
    gives one problem per field, with its path, and no model.
    """
    try:
        dpa = DataProtectionApplication.model_validate(dict(manifest))
    except ValidationError as exc:
        return None, [f"{_error_path(error['loc'])}: {_error_message(error)}" for error in exc.errors()]
    except (TypeError, ValueError) as exc:  # not a mapping at all
        raise ModelError(f"a DataProtectionApplication manifest must be a JSON object: {exc}") from exc
    return dpa, validate_dpa(dpa)
