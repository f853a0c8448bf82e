"""The metadata a restore clears from every object, and the labels it adds.

An object read from a backup still carries what the source API server
assigned it: its uid, resource version, creation time, generation and owner
references. Sent back as they are, a create would be rejected or would point
at owners that no longer exist, so they are cleared exactly as Velero's
``resetMetadata``/``resetStatus`` do (``pkg/restore/restore.go``). The same
reset is applied to an object found in the cluster before it is compared with
the backed-up one, so the comparison sees only what either side chose.

What Velero keeps, and so what is kept here: name, namespace, labels,
annotations, finalizers and ``managedFields`` (Velero writes the backed-up
managed fields back with a patch after the create).
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any, Final

from strongroom.model.labels import BACKUP_NAME_LABEL, RESTORE_NAME_LABEL, valid_label_value

__all__ = [
    "RESET_METADATA_FIELDS",
    "MetadataError",
    "add_restore_labels",
    "blank_restore_labels",
    "reset_metadata",
    "reset_metadata_and_status",
    "reset_status",
]

# The fields resetMetadata deletes: all set by the source API server.
# ownerReferences go too: the owners' uids are gone, and the garbage collector
# would delete an object whose owner uid does not exist; controllers re-adopt
# restored objects by their selectors instead.
RESET_METADATA_FIELDS: Final = (
    "generateName",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "ownerReferences",
)


class MetadataError(ValueError):
    """The object has no usable ``metadata`` (Velero fails the item the same way)."""


def _metadata(obj: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    if "metadata" not in obj:
        raise MetadataError("metadata not found")
    metadata = obj["metadata"]
    if not isinstance(metadata, MutableMapping):
        raise MetadataError(f"metadata was of type {type(metadata).__name__}, expected an object")
    return metadata


def reset_metadata(obj: MutableMapping[str, Any]) -> None:
    """Delete the server-assigned metadata fields, in place."""
    metadata = _metadata(obj)
    for key in RESET_METADATA_FIELDS:
        metadata.pop(key, None)


def reset_status(obj: MutableMapping[str, Any]) -> None:
    """Delete ``status``, in place: controllers recompute it, and create ignores it anyway."""
    obj.pop("status", None)


def reset_metadata_and_status(obj: MutableMapping[str, Any]) -> None:
    reset_metadata(obj)
    reset_status(obj)


def add_restore_labels(obj: MutableMapping[str, Any], *, restore_name: str, backup_name: str) -> None:
    """Label the object with the restore and the backup it came from, in place.

    Label values are limited to 63 characters; longer names are shortened by
    Velero's rule, so selectors built by Velero find the same objects.
    """
    metadata = _metadata(obj)
    labels = metadata.get("labels")
    if not isinstance(labels, dict):
        labels = {}
        metadata["labels"] = labels
    labels[BACKUP_NAME_LABEL] = valid_label_value(backup_name)
    labels[RESTORE_NAME_LABEL] = valid_label_value(restore_name)


def blank_restore_labels(obj: MutableMapping[str, Any]) -> None:
    """Set both restore labels to the empty string, in place.

    Velero does this to the in-cluster copy before computing an update patch,
    so that the patch always (re)writes the labels of this restore.
    """
    metadata = _metadata(obj)
    labels = metadata.get("labels")
    if not isinstance(labels, dict):
        labels = {}
        metadata["labels"] = labels
    labels[BACKUP_NAME_LABEL] = ""
    labels[RESTORE_NAME_LABEL] = ""
