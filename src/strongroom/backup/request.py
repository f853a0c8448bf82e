"""From a Backup's spec to what the collector walks: validated, resolved against the cluster.

Two steps, both before anything is written. ``build_backup`` turns command
line flags into a Backup object and refuses bad input (malformed selectors,
an invalid TTL, conflicting flags) with Velero's validation messages.
``plan_backup`` reads the cluster's discovery and namespaces and resolves the
spec's names and patterns into a ``BackupScope``; names that match no
resource type are warnings, as in Velero.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from strongroom.backup.collector import BackupScope
from strongroom.errors import UsageError
from strongroom.kube import Discovery, KubeClient
from strongroom.model import labels as velero_labels
from strongroom.model.duration import format_duration, parse_duration
from strongroom.model.filters import (
    LabelFilter,
    ResourceCatalog,
    backup_namespace_filter,
    backup_resource_filter,
    selector_flags_to_spec,
    validate_backup_spec,
)
from strongroom.model.resources import ApiResource
from strongroom.model.velero import Backup

__all__ = ["BackupFlags", "BackupPlan", "build_backup", "plan_backup"]

DEFAULT_TTL = "720h0m0s"
_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?")


@dataclass(frozen=True)
class BackupFlags:
    """``backup create``'s flags, as typed."""

    name: str
    namespace: str = "velero"
    include_namespaces: list[str] = field(default_factory=list)
    exclude_namespaces: list[str] = field(default_factory=list)
    include_resources: list[str] = field(default_factory=list)
    exclude_resources: list[str] = field(default_factory=list)
    include_cluster_resources: bool | None = None
    selector: str | None = None
    or_selector: str | None = None
    ttl: str = DEFAULT_TTL
    ordered_resources: str | None = None
    labels: list[str] = field(default_factory=list)
    default_volumes_to_fs_backup: bool | None = None
    snapshot_volumes: bool | None = None
    csi_snapshot_timeout: str | None = None
    volume_snapshot_locations: list[str] = field(default_factory=list)


def parse_ordered_resources(text: str | None) -> dict[str, str] | None:
    """``--ordered-resources 'pods=ns1/pod1,ns1/pod2;persistentvolumes=pv4'`` as Velero parses it."""
    if not text:
        return None
    result: dict[str, str] = {}
    for part in text.split(";"):
        if not part.strip():
            continue
        kind, sep, items = part.partition("=")
        if not sep or not kind.strip() or not items.strip():
            raise UsageError(
                f"invalid --ordered-resources entry {part!r}",
                hint="use kind=ns/name,ns/name;kind2=name (e.g. pods=ns1/pod1,ns1/pod2;persistentvolumes=pv4)",
            )
        result[kind.strip()] = items.strip()
    return result


def parse_labels(pairs: list[str]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"invalid label {pair!r}", hint="use key=value")
        labels[key] = value
    return labels


def build_backup(flags: BackupFlags, location: str) -> tuple[dict[str, Any], timedelta]:
    """The Backup object for these flags and its TTL; UsageError with every problem found."""
    problems: list[str] = []
    if flags.selector and flags.or_selector:
        problems.append("either a 'selector' or an 'or-selector' can be specified, but not both")
    ttl_text = flags.ttl
    try:
        ttl = parse_duration(flags.ttl)
        # Stored as Velero's CLI stores a metav1.Duration: "24h" becomes "24h0m0s".
        ttl_text = format_duration(ttl)
        if ttl < timedelta(0):
            problems.append(f"invalid --ttl {flags.ttl!r}: it must not be negative")
    except ValueError as exc:
        problems.append(f"invalid --ttl: {exc}")
        ttl = timedelta(0)
    spec: dict[str, Any] = {
        "includedNamespaces": flags.include_namespaces or ["*"],
        "ttl": ttl_text,
        "storageLocation": location,
    }
    for key, values in (
        ("excludedNamespaces", flags.exclude_namespaces),
        ("includedResources", flags.include_resources),
        ("excludedResources", flags.exclude_resources),
    ):
        if values:
            spec[key] = values
    if flags.default_volumes_to_fs_backup is not None:
        spec["defaultVolumesToFsBackup"] = flags.default_volumes_to_fs_backup
    if flags.snapshot_volumes is not None:
        spec["snapshotVolumes"] = flags.snapshot_volumes
    if flags.volume_snapshot_locations:
        spec["volumeSnapshotLocations"] = flags.volume_snapshot_locations
    if flags.csi_snapshot_timeout is not None:
        try:
            timeout = parse_duration(flags.csi_snapshot_timeout)
            if timeout <= timedelta(0):
                problems.append(
                    f"invalid --csi-snapshot-timeout {flags.csi_snapshot_timeout!r}: it must be positive"
                )
            spec["csiSnapshotTimeout"] = format_duration(timeout)
        except ValueError as exc:
            problems.append(f"invalid --csi-snapshot-timeout: {exc}")
    try:
        if flags.include_cluster_resources is not None:
            spec["includeClusterResources"] = flags.include_cluster_resources
        spec.update(selector_flags_to_spec(flags.selector, flags.or_selector))
        ordered = parse_ordered_resources(flags.ordered_resources)
        if ordered:
            spec["orderedResources"] = ordered
        labels = parse_labels(flags.labels)
    except (UsageError, ValueError) as exc:
        problems.append(exc.message if isinstance(exc, UsageError) else str(exc))
        labels = {}
    labels[velero_labels.STORAGE_LOCATION_LABEL] = velero_labels.valid_label_value(location)
    manifest = {
        "apiVersion": "velero.io/v1",
        "kind": "Backup",
        "metadata": {"name": flags.name, "namespace": flags.namespace, "labels": labels},
        "spec": spec,
    }
    if not problems:
        try:
            backup = Backup.from_manifest(manifest)
            problems.extend(validate_backup_spec(backup.spec))
        except ValueError as exc:
            problems.append(str(exc))
    _check_name(flags.name, problems)
    if problems:
        raise UsageError(
            "invalid backup: " + "; ".join(problems),
            hint="see `strongroom backup create --help`",
        )
    return manifest, ttl


def _check_name(name: str, problems: list[str]) -> None:
    # A backup's name becomes object keys and a label value; Kubernetes' object-name rule keeps it safe for both.
    if not _NAME.fullmatch(name) or len(name) > 253:
        problems.append(
            f"invalid backup name {name!r}: use lower-case letters, digits, '-' and '.', starting and ending with a letter or digit"
        )


@dataclass(frozen=True)
class BackupPlan:
    """A validated backup resolved against one cluster."""

    scope: BackupScope
    resources: list[ApiResource]
    warnings: list[str]
    cluster_version: dict[str, Any] | None
    discovery: Discovery | None = None
    namespaces: tuple[str, ...] = ()
    """The cluster's namespaces the backup covers."""


async def plan_backup(kube: KubeClient, manifest: dict[str, Any]) -> BackupPlan:
    """Resolve a Backup's filters against the cluster's resource types and namespaces."""
    backup = Backup.from_manifest(manifest)
    spec = backup.spec
    discovery = await kube.discover()
    warnings = [f"could not discover {gv}: {reason}" for gv, reason in sorted(discovery.failed.items())]
    resources = discovery.preferred()
    catalog = ResourceCatalog(discovery.resources)
    namespace_type = discovery.find("", "namespaces")
    active = (
        [str(ns["metadata"]["name"]) for ns in await kube.list_all(namespace_type)]
        if namespace_type is not None
        else []
    )
    namespaces = backup_namespace_filter(spec, active)
    resource_filter = backup_resource_filter(spec, catalog, namespaces)
    warnings.extend(
        f"resource {name!r} matches no resource type of the cluster; ignored"
        for name in resource_filter.unresolved
    )
    explicit = namespaces.namespaces_to_list()
    missing = [ns for ns in explicit if ns and ns not in active]
    warnings.extend(f"namespace {ns!r} does not exist in the cluster" for ns in missing)
    labels = LabelFilter.from_spec(spec.label_selector, spec.or_label_selectors)
    selectors = labels.list_selectors()
    ordered: dict[str, list[str]] = {}
    for kind, entries in (spec.ordered_resources or {}).items():
        resolved = catalog.resource_for(kind)
        if resolved is None:
            warnings.append(f"ordered resource kind {kind!r} matches no resource type; ignored")
            continue
        ordered[resolved.group_resource] = [entry.strip() for entry in entries.split(",") if entry.strip()]
    scope = BackupScope(
        namespace_included=namespaces.should_include,
        resource_included=resource_filter.should_include,
        additional_allowed=lambda resource: not resource_filter.should_exclude(resource),
        label_matches=labels.matches,
        explicit_namespaces=None if explicit == [""] else tuple(ns for ns in explicit if ns not in missing),
        server_selector=selectors[0] if len(selectors) == 1 and selectors[0] else None,
        label_filtered=selectors != ("",),
        ordered_resources=ordered,
    )
    try:
        version = await kube.server_version()
    except UsageError:
        version = None
    covered = tuple(ns for ns in active if namespaces.should_include(ns))
    return BackupPlan(scope, resources, warnings, version, discovery, covered)
