"""What the cluster serves, as one frozen value: the result of API discovery.

A backup must know every resource type (built-in and custom) and the version
to read each one at; a restore must find the type of each archived item by
group and kind or by group and resource. Discovery is slow (one request per
group version), so it happens once per run and the answer is a value that
the pure parts of the engine query without touching the network.

The version choice follows Velero (and client-go's preferred resources): a
resource is backed up at its group's preferred version; a resource that the
preferred version does not serve is taken from the highest-priority version
that does (Kubernetes version priority: GA, then beta, then alpha, higher
numbers first).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from strongroom.model.resources import ApiResource

__all__ = ["Discovery", "resources_from_list", "version_priority"]

_KUBE_VERSION = re.compile(r"^v(?P<major>[1-9][0-9]*)(?:(?P<stage>alpha|beta)(?P<minor>[1-9][0-9]*))?$")
_STAGE_RANK = {None: 0, "beta": 1, "alpha": 2}


def version_priority(version: str) -> tuple[int, int, int, int, str]:
    """A sort key: ascending order is Kubernetes' version priority, the most preferred first.

    ``v2 > v1 > v2beta1 > v1beta2 > v1beta1 > v1alpha1 > (others, alphabetically)``,
    as apimachinery's ``CompareKubeAwareVersionStrings`` orders them.
    """
    match = _KUBE_VERSION.match(version)
    if match is None:
        return (1, 0, 0, 0, version)
    minor = int(match["minor"]) if match["minor"] else 0
    return (0, _STAGE_RANK[match["stage"]], -int(match["major"]), -minor, "")


def resources_from_list(
    document: Mapping[str, Any], group: str, version: str, *, preferred: bool
) -> list[ApiResource]:
    """The resources of one ``APIResourceList`` (``/api/v1``, ``/apis/apps/v1``).

    Subresources (``backups/status``) are not resources of their own; each is
    noted on its parent's ``subresources``.
    """
    found: list[ApiResource] = []
    entries = document.get("resources") or ()
    subresources: dict[str, set[str]] = {}
    for entry in entries:
        parent, slash, sub = (entry.get("name") or "").partition("/")
        if slash and sub:
            subresources.setdefault(parent, set()).add(sub)
    for entry in entries:
        name = entry.get("name", "")
        if not name or "/" in name:
            continue
        found.append(
            ApiResource(
                group=group,
                version=version,
                resource=name,
                kind=entry.get("kind", ""),
                namespaced=bool(entry.get("namespaced", False)),
                singular=entry.get("singularName") or "",
                short_names=tuple(entry.get("shortNames") or ()),
                verbs=frozenset(entry.get("verbs") or ()),
                categories=tuple(entry.get("categories") or ()),
                preferred=preferred,
                subresources=frozenset(subresources.get(name, ())),
            )
        )
    return found


@dataclass(frozen=True)
class Discovery:
    """Every resource the cluster serves, at every version it serves it.

    ``resources`` keeps the server's order (core first, then the groups as
    ``/apis`` lists them); ``preferred`` is set on the resources of each
    group's preferred version. ``failed`` maps a group version whose
    discovery failed (an aggregated API that is down) to the reason; its
    resources are missing, and a backup should report that.
    """

    resources: tuple[ApiResource, ...]
    failed: dict[str, str] = field(default_factory=dict)
    _by_group_resource: dict[str, list[ApiResource]] = field(init=False, repr=False, compare=False)
    _preferred: tuple[ApiResource, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        grouped: dict[str, list[ApiResource]] = {}
        for res in self.resources:
            grouped.setdefault(res.group_resource, []).append(res)
        for versions in grouped.values():
            versions.sort(key=lambda r: (not r.preferred, version_priority(r.version)))
        object.__setattr__(self, "_by_group_resource", grouped)
        object.__setattr__(self, "_preferred", tuple(versions[0] for versions in grouped.values()))

    def preferred(self) -> list[ApiResource]:
        """One entry per group-resource, at the version to read and write it at.

        That is the group's preferred version; a resource it does not serve
        comes from the highest-priority version that does (``preferred`` is
        False on such an entry). Order: the server's, by first appearance.
        """
        return list(self._preferred)

    def versions_of(self, group_resource: str) -> list[ApiResource]:
        """Every served version of ``deployments.apps`` (or ``pods``), the one to use first."""
        return list(self._by_group_resource.get(group_resource, ()))

    def find(self, group: str, resource: str) -> ApiResource | None:
        """The resource at the version to use, or None when the cluster does not serve it."""
        versions = self._by_group_resource.get(f"{resource}.{group}" if group else resource)
        return versions[0] if versions else None

    def by_kind(self, group: str, kind: str) -> ApiResource | None:
        """The resource of a kind (``apps``, ``Deployment``) at the version to use."""
        for res in self._preferred:
            if res.group == group and res.kind == kind:
                return res
        return None

    def served(self, group: str, version: str, resource: str) -> ApiResource | None:
        """The resource at exactly that group version, or None."""
        for res in self._by_group_resource.get(f"{resource}.{group}" if group else resource, ()):
            if res.version == version:
                return res
        return None

    def groups(self) -> list[str]:
        """The API groups served, in the server's order (``""`` is the core group)."""
        return list(dict.fromkeys(res.group for res in self.resources))
