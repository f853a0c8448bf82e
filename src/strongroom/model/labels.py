"""The labels and annotations Velero puts on objects, and its rule for long label values.

Velero finds a backup's pod volume backups, a restore's restored objects and
a schedule's backups by label (``velero.io/backup-name=<name>``). Object
names may be 253 characters long but label values only 63, so Velero shortens
long names with a fixed rule before using them as label values. strongroom
must write and select exactly the values Velero does, or Velero would not
find objects strongroom labelled (and the other way round), so the rule here
reproduces Velero's result byte for byte, and the keys are Velero's strings.
"""

from __future__ import annotations

import hashlib
from typing import Final

__all__ = [
    "ASYNC_OPERATION_ID_LABEL",
    "BACKUP_NAME_LABEL",
    "BACKUP_UID_LABEL",
    "DATA_DOWNLOAD_LABEL",
    "DATA_UPLOAD_LABEL",
    "DNS1035_LABEL_MAX_LENGTH",
    "EXCLUDE_FROM_BACKUP_LABEL",
    "MUST_INCLUDE_ADDITIONAL_ITEMS_ANNOTATION",
    "POD_UID_LABEL",
    "POD_VOLUME_BACKUP_LABEL",
    "POD_VOLUME_OPERATION_TIMEOUT_ANNOTATION",
    "POD_VOLUME_RESTORE_LABEL",
    "PVC_NAMESPACE_NAME_LABEL",
    "PVC_UID_LABEL",
    "REPOSITORY_TYPE_LABEL",
    "RESOURCE_TIMEOUT_ANNOTATION",
    "RESOURCE_USAGE_LABEL",
    "RESTORE_NAME_LABEL",
    "RESTORE_UID_LABEL",
    "SCHEDULE_NAME_LABEL",
    "SKIP_FROM_BACKUP_ANNOTATION",
    "SOURCE_CLUSTER_K8S_GIT_VERSION_ANNOTATION",
    "SOURCE_CLUSTER_K8S_MAJOR_VERSION_ANNOTATION",
    "SOURCE_CLUSTER_K8S_MINOR_VERSION_ANNOTATION",
    "STORAGE_LOCATION_LABEL",
    "VOLUMES_TO_BACKUP_ANNOTATION",
    "VOLUMES_TO_EXCLUDE_ANNOTATION",
    "VOLUME_NAMESPACE_LABEL",
    "backup_name_selector",
    "name_or_hash",
    "restore_name_selector",
    "valid_label_value",
]

# --- Label keys -----------------------------------------------------------------

BACKUP_NAME_LABEL: Final = "velero.io/backup-name"
BACKUP_UID_LABEL: Final = "velero.io/backup-uid"
RESTORE_NAME_LABEL: Final = "velero.io/restore-name"
RESTORE_UID_LABEL: Final = "velero.io/restore-uid"
SCHEDULE_NAME_LABEL: Final = "velero.io/schedule-name"
STORAGE_LOCATION_LABEL: Final = "velero.io/storage-location"
POD_UID_LABEL: Final = "velero.io/pod-uid"
PVC_UID_LABEL: Final = "velero.io/pvc-uid"
PVC_NAMESPACE_NAME_LABEL: Final = "velero.io/pvc-namespace-name"
VOLUME_NAMESPACE_LABEL: Final = "velero.io/volume-namespace"
REPOSITORY_TYPE_LABEL: Final = "velero.io/repository-type"
DATA_UPLOAD_LABEL: Final = "velero.io/data-upload"
DATA_DOWNLOAD_LABEL: Final = "velero.io/data-download"
ASYNC_OPERATION_ID_LABEL: Final = "velero.io/async-operation-id"
RESOURCE_USAGE_LABEL: Final = "velero.io/resource-usage"
POD_VOLUME_BACKUP_LABEL: Final = "velero.io/pod-volume-backup"
POD_VOLUME_RESTORE_LABEL: Final = "velero.io/pod-volume-restore"
# An object (or a namespace) labelled with this key and the value "true" is
# left out of backups even when a selector matches it; Velero compares the
# value with "true" exactly.
EXCLUDE_FROM_BACKUP_LABEL: Final = "velero.io/exclude-from-backup"

# --- Annotation keys ------------------------------------------------------------

POD_VOLUME_OPERATION_TIMEOUT_ANNOTATION: Final = "velero.io/pod-volume-timeout"
SOURCE_CLUSTER_K8S_GIT_VERSION_ANNOTATION: Final = "velero.io/source-cluster-k8s-gitversion"
SOURCE_CLUSTER_K8S_MAJOR_VERSION_ANNOTATION: Final = "velero.io/source-cluster-k8s-major-version"
SOURCE_CLUSTER_K8S_MINOR_VERSION_ANNOTATION: Final = "velero.io/source-cluster-k8s-minor-version"
RESOURCE_TIMEOUT_ANNOTATION: Final = "velero.io/resource-timeout"
VOLUMES_TO_BACKUP_ANNOTATION: Final = "backup.velero.io/backup-volumes"
VOLUMES_TO_EXCLUDE_ANNOTATION: Final = "backup.velero.io/backup-volumes-excludes"
SKIP_FROM_BACKUP_ANNOTATION: Final = "velero.io/skip-from-backup"
MUST_INCLUDE_ADDITIONAL_ITEMS_ANNOTATION: Final = "backup.velero.io/must-include-additional-items"

# --- Long values ----------------------------------------------------------------

DNS1035_LABEL_MAX_LENGTH: Final = 63
_HASH_SUFFIX_LENGTH: Final = 6


def _from_go_bytes(data: bytes) -> str:
    # Go slices strings by byte and may cut a multi-byte character in half;
    # surrogateescape keeps such bytes so that encoding the result with the same
    # handler gives back exactly the bytes Velero would have produced.
    return data.decode("utf-8", "surrogateescape")


def valid_label_value(value: str) -> str:
    """Shorten `value` to a label value the way Velero's ``label.GetValidName`` does.

    Values of at most 63 bytes are returned unchanged. Longer ones keep their
    first 57 bytes followed by the first 6 hex digits of the SHA-256 of the
    whole value, so distinct long names stay (very probably) distinct.
    Velero measures in UTF-8 bytes, and so does this function.
    """
    data = value.encode("utf-8", "surrogateescape")
    if len(data) <= DNS1035_LABEL_MAX_LENGTH:
        return value
    digest = hashlib.sha256(data).hexdigest()
    kept = DNS1035_LABEL_MAX_LENGTH - _HASH_SUFFIX_LENGTH
    return _from_go_bytes(data[:kept]) + digest[:_HASH_SUFFIX_LENGTH]


def name_or_hash(name: str) -> str:
    """`name` if it fits in 63 bytes, else its SHA3-224 in hex (Velero's ``label.ReturnNameOrHash``).

    Velero uses this where a derived name must be unique rather than readable.
    """
    data = name.encode("utf-8", "surrogateescape")
    if len(data) <= DNS1035_LABEL_MAX_LENGTH:
        return name
    return hashlib.sha3_224(data).hexdigest()


def backup_name_selector(backup_name: str) -> str:
    """The label selector string that finds the objects of a backup (``velero.io/backup-name=<value>``)."""
    return f"{BACKUP_NAME_LABEL}={valid_label_value(backup_name)}"


def restore_name_selector(restore_name: str) -> str:
    """The label selector string that finds the objects of a restore (``velero.io/restore-name=<value>``)."""
    return f"{RESTORE_NAME_LABEL}={valid_label_value(restore_name)}"
