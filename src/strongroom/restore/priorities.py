"""The order in which a restore creates resources, and the resources it never creates.

Objects depend on each other: custom resources need their definition,
namespaced objects need their namespace, pods need the claims, secrets and
config maps they mount, and controllers should adopt restored pods rather
than start new ones. Velero encodes this in one priority list (the server's
``--restore-resource-priorities``); a restore made by strongroom must create
objects in the same order so that a backup restores the same way with either
tool. The list, its flag syntax and the non-restorable resources are
Velero's (``pkg/cmd/server/config/config.go``, ``pkg/types/priority.go``,
``pkg/controller/restore_controller.go``).

Some priority entries are not fully qualified (``storageclasses``,
``volumesnapshotclass.snapshot.storage.k8s.io``): Velero resolves them with
discovery. Here they are resolved against the group-resources actually present
(a small table covers Velero's own defaults exactly), or by a resolver built
from discovery results (`resolver_from_api_resources`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import Final

from strongroom.errors import UsageError
from strongroom.model.filters import NON_RESTORABLE_RESOURCES, non_restorable_errors
from strongroom.model.resources import ApiResource

__all__ = [
    "DEFAULT_RESTORE_PRIORITIES",
    "NEVER_RESTORE",
    "NON_RESTORABLE_RESOURCES",
    "PRIORITY_SEPARATOR",
    "Priorities",
    "Resolver",
    "non_restorable_errors",
    "order_resources",
    "parse_priorities",
    "resolve_priority_entry",
    "resolver_from_api_resources",
]

PRIORITY_SEPARATOR: Final = "-"

Resolver = Callable[[str], str | None]
"""Maps a priority entry (``pods``, ``storageclasses``) to a full group-resource, or None."""


@dataclass(frozen=True)
class Priorities:
    """High priorities are restored first in list order, low priorities last.

    Everything else is restored between them in alphabetical order.
    """

    high: tuple[str, ...] = ()
    low: tuple[str, ...] = ()

    def __str__(self) -> str:
        """The flag syntax, ``high,...,-,low,...`` (the separator only when there are low ones)."""
        entries = list(self.high)
        if self.low:
            entries.append(PRIORITY_SEPARATOR)
            entries.extend(self.low)
        return ",".join(entries)


# Velero's defaults. The reasons, in Velero's words condensed: CRDs before their
# custom resources; namespaces before anything namespaced; storage classes and
# snapshot classes/contents/snapshots before the volumes provisioned from them;
# data uploads before PVCs (the data mover needs their results); PVs before the
# PVCs that bind them; PVCs, secrets and config maps before the pods that mount
# them; service accounts before secrets so token secrets are filled in; limit
# ranges and priority classes before pods; pods and replica sets before their
# controllers so they are adopted, not recreated; CAPI cluster classes before
# clusters; endpoints before services so no new endpoints are created. The low
# ones (Tanzu/CAPI/Carvel) reference anything and must come after the workloads.
DEFAULT_RESTORE_PRIORITIES: Final = Priorities(
    high=(
        "customresourcedefinitions",
        "namespaces",
        "storageclasses",
        "volumesnapshotclass.snapshot.storage.k8s.io",
        "volumesnapshotcontents.snapshot.storage.k8s.io",
        "volumesnapshots.snapshot.storage.k8s.io",
        "datauploads.velero.io",
        "persistentvolumes",
        "persistentvolumeclaims",
        "clusterroles",
        "roles",
        "serviceaccounts",
        "clusterrolebindings",
        "rolebindings",
        "secrets",
        "configmaps",
        "limitranges",
        "priorityclasses",
        "pods",
        "replicasets.apps",
        "clusterclasses.cluster.x-k8s.io",
        "endpoints",
        "services",
    ),
    low=(
        "clusterbootstraps.run.tanzu.vmware.com",
        "clusters.cluster.x-k8s.io",
        "clusterresourcesets.addons.cluster.x-k8s.io",
        "apps.kappctrl.k14s.io",
        "packageinstalls.packaging.carvel.dev",
    ),
)

# Velero's nonRestorableResources (listed once, in strongroom.model.filters) as a set.
NEVER_RESTORE: Final = frozenset(NON_RESTORABLE_RESOURCES)

# Velero's default entries that are not fully qualified, resolved the way
# discovery resolves them on every Kubernetes cluster.
_WELL_KNOWN: Final = {
    "customresourcedefinitions": "customresourcedefinitions.apiextensions.k8s.io",
    "storageclasses": "storageclasses.storage.k8s.io",
    "volumesnapshotclass.snapshot.storage.k8s.io": "volumesnapshotclasses.snapshot.storage.k8s.io",
    "clusterroles": "clusterroles.rbac.authorization.k8s.io",
    "roles": "roles.rbac.authorization.k8s.io",
    "clusterrolebindings": "clusterrolebindings.rbac.authorization.k8s.io",
    "rolebindings": "rolebindings.rbac.authorization.k8s.io",
    "priorityclasses": "priorityclasses.scheduling.k8s.io",
}


def parse_priorities(text: str) -> Priorities:
    """Parse ``--restore-resource-priorities``: entries before ``-`` are high, after it low.

    Without a separator every entry is high. Surrounding spaces and empty
    entries are dropped (Velero keeps them, but they can never match). More
    than one separator is an error, as in Velero.
    """
    entries = [entry.strip() for entry in text.split(",")]
    entries = [entry for entry in entries if entry]
    separators = [index for index, entry in enumerate(entries) if entry == PRIORITY_SEPARATOR]
    if len(separators) > 1:
        raise UsageError(
            f'multiple priority separator "{PRIORITY_SEPARATOR}" found',
            hint="use a single '-' between the high and the low priorities",
        )
    if not separators:
        return Priorities(high=tuple(entries))
    cut = separators[0]
    return Priorities(high=tuple(entries[:cut]), low=tuple(entries[cut + 1 :]))


def _split(group_resource: str) -> tuple[str, str]:
    resource, _, group = group_resource.partition(".")
    return resource, group


def _plural_forms(resource: str) -> set[str]:
    forms = {resource, resource + "s", resource + "es"}
    if resource.endswith("y"):
        forms.add(resource[:-1] + "ies")
    return forms


def resolve_priority_entry(entry: str, present: Collection[str]) -> str | None:
    """Resolve one priority entry against the group-resources present in a backup.

    An exact match wins; Velero's own unqualified defaults use a fixed table;
    otherwise an entry matches a present resource of the same name (plural or
    a simple singular) in the entry's group, or in any group when the entry
    names none, preferring the core group, as discovery does.
    """
    if entry in present:
        return entry
    known = _WELL_KNOWN.get(entry)
    if known is not None:
        return known if known in present else None
    resource, group = _split(entry)
    forms = _plural_forms(resource)
    candidates = sorted(
        gr for gr in present if _split(gr)[0] in forms and (not group or _split(gr)[1] == group)
    )
    if not candidates:
        return None
    core = [gr for gr in candidates if not _split(gr)[1]]
    return (core or candidates)[0]


def resolver_from_api_resources(resources: Iterable[ApiResource]) -> Resolver:
    """A resolver that knows plural and singular names, short names and kinds, like discovery does."""
    by_name: dict[tuple[str, str], str] = {}
    ordered = sorted(resources, key=lambda r: (r.group != "", r.group, r.resource))
    for api in ordered:
        if "/" in api.resource:
            continue  # subresources are never restored on their own
        names = {api.resource, api.singular, api.kind.lower(), *api.short_names} - {""}
        for name in names:
            for group_key in ("*", api.group):
                by_name.setdefault((name.lower(), group_key), api.group_resource)

    def resolve(entry: str) -> str | None:
        resource, group = _split(entry)
        return by_name.get((resource.lower(), group if "." in entry else "*"))

    return resolve


def order_resources(
    group_resources: Iterable[str],
    priorities: Priorities = DEFAULT_RESTORE_PRIORITIES,
    *,
    resolve: Resolver | None = None,
) -> list[str]:
    """Order the given group-resources for restore, the way Velero's ``getOrderedResources`` does.

    High priorities first in list order, then every other resource
    alphabetically, then low priorities in list order. Only resources that
    were given are returned (each once); a priority that matches nothing is
    ignored, and a resource named by two entries takes the first position.
    """
    present = list(dict.fromkeys(group_resources))
    present_set = set(present)

    def resolved(entry: str) -> str | None:
        target = resolve(entry) if resolve is not None else resolve_priority_entry(entry, present_set)
        return target if target in present_set else None

    placed: set[str] = set()
    high: list[str] = []
    for entry in priorities.high:
        target = resolved(entry)
        if target is not None and target not in placed:
            placed.add(target)
            high.append(target)
    low: list[str] = []
    for entry in priorities.low:
        target = resolved(entry)
        if target is not None and target not in placed:
            placed.add(target)
            low.append(target)
    middle = sorted(gr for gr in present if gr not in placed)
    return high + middle + low
