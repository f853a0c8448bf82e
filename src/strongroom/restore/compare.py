"""What a restore does when the object it would create already exists.

Velero is non-destructive by default: an existing object is left alone,
silently when it equals the backed-up one and with a warning when it does
not, so the administrator learns that the restore did not bring back that
object's backed-up state. With ``existingResourcePolicy: update`` the
existing object is patched towards the backup instead. Service accounts are
the exception: the backed-up secrets, image pull secrets, labels and
annotations are merged into the existing account, because every namespace
already has a ``default`` one and the restored workloads need what the
backup adds to it. The rules and messages are Velero's (``pkg/restore/restore.go``
after "already exists", ``pkg/restore/merge_service_account.go``).

Both sides are compared after the same reset of server-set metadata and
status (`strongroom.restore.metadata`), with the live object given this
restore's labels, so an object restored before from the same backup compares
equal.

The update patch is a JSON merge patch (RFC 7386), as Velero sends. By
default it only sets the fields the backed-up object has (``prune=False``):
fields that exist only in the cluster, such as a service's allocated cluster
IP, which the restore deliberately left out, are not deleted. ``prune=True``
gives Velero's exact patch, which also deletes every field the backed-up
object lacks.
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

import yaml

from strongroom.model.labels import BACKUP_NAME_LABEL, RESTORE_NAME_LABEL
from strongroom.restore.metadata import add_restore_labels, blank_restore_labels, reset_metadata_and_status

__all__ = [
    "ExistingDecision",
    "Outcome",
    "compare_existing",
    "json_equal",
    "merge_patch",
    "merge_service_accounts",
    "normalize_for_compare",
    "render_diff",
]

SERVICE_ACCOUNTS: Final = "serviceaccounts"
_DIFFERENT: Final = "Warning: the in-cluster version is different than the backed-up version"


class Outcome(StrEnum):
    SKIP_IDENTICAL = "skip-identical"
    """Nothing to do (with policy update, `ExistingDecision.patch` still relabels it)."""
    SKIP_DIFFERENT = "skip-different"
    """Left alone although it differs; `ExistingDecision.message` is the restore warning."""
    UPDATE = "update"
    """Send `ExistingDecision.patch` as a JSON merge patch."""


@dataclass(frozen=True)
class ExistingDecision:
    """What to do with an object that already exists.

    * `patch`: the merge patch to send, if any. For UPDATE, a failure is a
      restore warning (Velero reports the API error); for SKIP_IDENTICAL it is
      the relabelling of policy update, and a failure is a restore error.
    * `fallback_patch`: with policy update, what to send when `patch` fails:
      only this restore's labels (a failure of it is a restore error).
    * `message`: the warning to record for SKIP_DIFFERENT.
    """

    outcome: Outcome
    patch: dict[str, Any] | None = None
    fallback_patch: dict[str, Any] | None = None
    message: str = ""


def _metadata(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    metadata = obj.get("metadata")
    return metadata if isinstance(metadata, Mapping) else {}


def _restore_labels(desired: Mapping[str, Any]) -> tuple[str, str]:
    labels = _metadata(desired).get("labels")
    labels = labels if isinstance(labels, Mapping) else {}
    return str(labels.get(RESTORE_NAME_LABEL, "")), str(labels.get(BACKUP_NAME_LABEL, ""))


def normalize_for_compare(
    live: Mapping[str, Any], desired: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Both objects as the comparison sees them (copies; the inputs are not modified).

    Server-set metadata and status are removed from both (a desired object
    that carries status for a status restore is compared without it, as
    Velero compares before writing status), and the live object gets the
    desired object's restore labels.
    """
    live_copy = copy.deepcopy(dict(live))
    desired_copy = copy.deepcopy(dict(desired))
    live_copy.setdefault("metadata", {})
    desired_copy.setdefault("metadata", {})
    reset_metadata_and_status(live_copy)
    reset_metadata_and_status(desired_copy)
    restore_name, backup_name = _restore_labels(desired)
    add_restore_labels(live_copy, restore_name=restore_name, backup_name=backup_name)
    return live_copy, desired_copy


def json_equal(left: object, right: object) -> bool:
    """Equality of JSON values: 1 equals 1.0 (one JSON number), but true is not 1."""
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    if isinstance(left, int | float) and isinstance(right, int | float):
        return left == right
    if isinstance(left, Mapping) and isinstance(right, Mapping):
        return left.keys() == right.keys() and all(json_equal(left[key], right[key]) for key in left)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(json_equal(a, b) for a, b in zip(left, right, strict=True))
    return type(left) is type(right) and left == right


def merge_patch(
    original: Mapping[str, Any], modified: Mapping[str, Any], *, prune: bool = True
) -> dict[str, Any] | None:
    """The RFC 7386 merge patch that turns `original` into `modified`; None when they are equal.

    With ``prune=False`` keys missing from `modified` are left alone instead
    of being deleted (set to null), so the patch only sets what `modified` has.
    Lists are replaced whole, as merge patches do.
    """
    patch: dict[str, Any] = {}
    for key, new_value in modified.items():
        if key not in original:
            if new_value is not None:
                patch[key] = copy.deepcopy(new_value)
            continue
        old_value = original[key]
        if isinstance(old_value, Mapping) and isinstance(new_value, Mapping):
            nested = merge_patch(old_value, new_value, prune=prune)
            if nested is not None:
                patch[key] = nested
        elif not json_equal(old_value, new_value):
            patch[key] = copy.deepcopy(new_value)
    if prune:
        for key in original:
            if key not in modified:
                patch[key] = None
    return patch or None


def _merge_named(live_list: object, backup_list: object) -> list[Any] | None:
    merged = list(live_list) if isinstance(live_list, list) else []
    names = {entry.get("name") for entry in merged if isinstance(entry, Mapping)}
    added = False
    for entry in backup_list if isinstance(backup_list, list) else []:
        name = entry.get("name") if isinstance(entry, Mapping) else None
        if name not in names:
            merged.append(copy.deepcopy(entry))
            names.add(name)
            added = True
    return merged if added else None


def merge_service_accounts(live: Mapping[str, Any], backup: Mapping[str, Any]) -> dict[str, Any]:
    """The live service account with the backed-up one merged in (Velero's ``mergeServiceAccounts``).

    Secrets and image pull secrets the live account lacks (by name) are
    appended; labels and annotations it lacks are added; where both have a
    key, the live value stays.
    """
    merged = copy.deepcopy(dict(live))
    for key in ("secrets", "imagePullSecrets"):
        combined = _merge_named(merged.get(key), backup.get(key))
        if combined is not None:
            merged[key] = combined
    metadata = merged.setdefault("metadata", {})
    backup_metadata = _metadata(backup)
    for key in ("labels", "annotations"):
        additions = backup_metadata.get(key)
        if not isinstance(additions, Mapping) or not additions:
            continue
        current = metadata.get(key)
        combined_map = dict(current) if isinstance(current, Mapping) else {}
        for name, value in additions.items():
            combined_map.setdefault(name, value)
        if combined_map != current:
            metadata[key] = combined_map
    return merged


def _quote(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def compare_existing(
    live: Mapping[str, Any],
    desired: Mapping[str, Any],
    group_resource: str,
    policy: str | None = None,
    *,
    prune: bool = False,
) -> ExistingDecision:
    """Decide what to do with `live`, the existing object, given `desired`, the prepared one.

    `policy` is the restore's existingResourcePolicy: None (not set), "none" or "update".
    """
    live_norm, desired_norm = normalize_for_compare(live, desired)
    blanked = copy.deepcopy(live_norm)
    blank_restore_labels(blanked)
    labels_patch = merge_patch(blanked, live_norm, prune=False)
    update = policy == "update"

    if json_equal(live_norm, desired_norm):
        if update:
            return ExistingDecision(Outcome.SKIP_IDENTICAL, patch=labels_patch)
        return ExistingDecision(Outcome.SKIP_IDENTICAL)

    if group_resource == SERVICE_ACCOUNTS:
        merged = merge_service_accounts(live_norm, desired_norm)
        patch = merge_patch(live_norm, merged, prune=prune)
        if patch is None:
            return ExistingDecision(Outcome.SKIP_IDENTICAL)
        return ExistingDecision(Outcome.UPDATE, patch=patch, fallback_patch=labels_patch if update else None)

    kind = str(desired.get("kind", ""))
    name = str(_metadata(desired).get("name", ""))
    if policy == "none":
        return ExistingDecision(
            Outcome.SKIP_DIFFERENT,
            message=f"could not restore, {kind} {_quote(name)} already exists. {_DIFFERENT}",
        )
    if update:
        return ExistingDecision(
            Outcome.UPDATE, patch=merge_patch(blanked, desired_norm, prune=prune), fallback_patch=labels_patch
        )
    return ExistingDecision(
        Outcome.SKIP_DIFFERENT, message=f"could not restore, {kind}:{name} already exists. {_DIFFERENT}"
    )


def _yaml(obj: Mapping[str, Any]) -> list[str]:
    text = yaml.safe_dump(obj, sort_keys=True, default_flow_style=False, allow_unicode=True)
    return text.splitlines(keepends=True)


def render_diff(live: Mapping[str, Any], desired: Mapping[str, Any], *, normalize: bool = True) -> str:
    """A unified diff of the two objects as YAML, live first; empty when they are equal.

    Normalised as `compare_existing` sees them (unless ``normalize=False``), so
    the diff shows exactly why an existing object counts as different.
    """
    if normalize:
        live, desired = normalize_for_compare(live, desired)
    lines = difflib.unified_diff(_yaml(live), _yaml(desired), fromfile="in-cluster", tofile="backup")
    return "".join(lines)
