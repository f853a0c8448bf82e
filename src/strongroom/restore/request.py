"""From command line flags to a validated Restore, and from a Restore to the planner's options.

``build_restore`` refuses bad input before anything happens: a missing
backup name, malformed mappings or selectors, conflicting flags, resources
that can never be restored, an unknown existing-resource policy (Velero's
validation messages). ``restore_options`` resolves the spec against the
target cluster's resource types and the namespaces the backup holds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from strongroom.archive.sidecars import decode_resource_list
from strongroom.errors import ObjectNotFound, UsageError
from strongroom.kube import Discovery
from strongroom.model.filters import (
    LabelFilter,
    ResourceCatalog,
    restore_filter,
    selector_flags_to_spec,
    validate_restore_spec,
)
from strongroom.model.velero import Restore
from strongroom.restore.plan import RestoreOptions
from strongroom.storage.catalog import BackupCatalog

__all__ = ["RestoreFlags", "build_restore", "parse_namespace_mappings", "restore_options"]

_DNS_LABEL: Final = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_NAME: Final = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?")


@dataclass(frozen=True)
class RestoreFlags:
    """``restore create``'s flags, as typed."""

    name: str | None
    from_backup: str | None
    namespace: str = "velero"
    namespace_mappings: list[str] = field(default_factory=list)
    include_namespaces: list[str] = field(default_factory=list)
    exclude_namespaces: list[str] = field(default_factory=list)
    include_resources: list[str] = field(default_factory=list)
    exclude_resources: list[str] = field(default_factory=list)
    include_cluster_resources: bool | None = None
    selector: str | None = None
    or_selector: str | None = None
    existing_resource_policy: str | None = None
    restore_volumes: bool | None = None
    preserve_nodeports: bool | None = None
    status_include_resources: list[str] = field(default_factory=list)


def parse_namespace_mappings(pairs: list[str]) -> dict[str, str]:
    """``src1:dst1,src2:dst2``: every source once, every target a valid namespace name used once."""
    mapping: dict[str, str] = {}
    for pair in pairs:
        source, sep, target = pair.partition(":")
        source, target = source.strip(), target.strip()
        if not sep or not source or not target or ":" in target:
            raise UsageError(
                f"invalid namespace mapping {pair!r}",
                hint="use source:target pairs, e.g. prod:prod-copy,db:db-copy",
            )
        for name in (source, target):
            if not _DNS_LABEL.fullmatch(name) or len(name) > 63:
                raise UsageError(f"invalid namespace name {name!r} in mapping {pair!r}")
        if source in mapping:
            raise UsageError(f"namespace {source!r} is mapped twice")
        if target in mapping.values():
            raise UsageError(f"two namespaces are mapped to {target!r}")
        mapping[source] = target
    return mapping


def build_restore(flags: RestoreFlags, now: datetime) -> dict[str, Any]:
    """The Restore object for these flags; UsageError listing every problem."""
    problems: list[str] = []
    if not flags.from_backup:
        raise UsageError("a backup to restore from is required", hint="pass --from-backup NAME")
    if flags.selector and flags.or_selector:
        problems.append("either a 'selector' or an 'or-selector' can be specified, but not both")
    name = flags.name or f"{flags.from_backup}-{now.strftime('%Y%m%d%H%M%S')}"
    if not _NAME.fullmatch(name) or len(name) > 253:
        problems.append(f"invalid restore name {name!r}: use lower-case letters, digits, '-' and '.'")
    spec: dict[str, Any] = {
        "backupName": flags.from_backup,
        "includedNamespaces": flags.include_namespaces or ["*"],
    }
    for key, values in (
        ("excludedNamespaces", flags.exclude_namespaces),
        ("includedResources", flags.include_resources),
        ("excludedResources", flags.exclude_resources),
    ):
        if values:
            spec[key] = values
    try:
        mapping = parse_namespace_mappings(flags.namespace_mappings)
        if mapping:
            spec["namespaceMapping"] = mapping
        for key, value in (
            ("includeClusterResources", flags.include_cluster_resources),
            ("restorePVs", flags.restore_volumes),
            ("preserveNodePorts", flags.preserve_nodeports),
        ):
            if value is not None:
                spec[key] = value
        spec.update(selector_flags_to_spec(flags.selector, flags.or_selector))
    except (UsageError, ValueError) as exc:
        problems.append(exc.message if isinstance(exc, UsageError) else str(exc))
    if flags.existing_resource_policy is not None:
        spec["existingResourcePolicy"] = flags.existing_resource_policy
    if flags.status_include_resources:
        spec["restoreStatus"] = {"includedResources": flags.status_include_resources}
    manifest = {
        "apiVersion": "velero.io/v1",
        "kind": "Restore",
        "metadata": {"name": name, "namespace": flags.namespace},
        "spec": spec,
    }
    if not problems:
        try:
            problems.extend(validate_restore_spec(Restore.from_manifest(manifest).spec))
        except ValueError as exc:
            problems.append(str(exc))
    if problems:
        raise UsageError(
            "invalid restore: " + "; ".join(problems), hint="see `strongroom restore create --help`"
        )
    return manifest


def restore_options(
    discovery: Discovery,
    manifest: dict[str, Any],
    backup_namespaces: list[str],
    warnings: list[str] | None = None,
) -> RestoreOptions:
    """The planner's options for a Restore, resolved against the target cluster's discovery.

    Resource names that match no type of the cluster are added to ``warnings``
    (and ignored), as a backup does.
    """
    restore = Restore.from_manifest(manifest)
    spec = restore.spec
    catalog = ResourceCatalog(discovery.resources)
    chosen = restore_filter(spec, catalog, backup_namespaces)
    if warnings is not None:
        warnings.extend(
            f"resource {name!r} matches no resource type of the cluster; ignored"
            for name in chosen.unresolved
        )
    labels = (
        LabelFilter.from_spec(spec.label_selector, spec.or_label_selectors)
        if spec.label_selector is not None or spec.or_label_selectors
        else None
    )
    return RestoreOptions.from_filter(
        backup_name=str(spec.backup_name),
        restore_name=restore.metadata.name or "",
        restore_filter=chosen,
        labels=labels,
        namespace_mapping=dict(spec.namespace_mapping or {}),
        preserve_node_ports=bool(spec.preserve_node_ports),
        restore_volumes=spec.restore_pvs,
        existing_resource_policy=spec.existing_resource_policy,
        included_resources=tuple(spec.included_resources or ()),
        excluded_resources=tuple(spec.excluded_resources or ()),
    )


async def backup_namespaces(catalog: BackupCatalog, backup_name: str) -> list[str]:
    """The namespaces a backup holds items of, from its resource list (for namespace patterns)."""
    try:
        resource_list = decode_resource_list(
            await catalog.read_file(catalog.layout.backup_resource_list(backup_name))
        )
    except ObjectNotFound:
        return []
    return sorted(
        {entry.partition("/")[0] for entries in resource_list.values() for entry in entries if "/" in entry}
    )
