"""Include/exclude glob lists for a planner used without discovery.

The full filters (name resolution through discovery, namespace wildcard
expansion) are `strongroom.model.filters`; the planner accepts them as
predicates (`RestoreOptions.from_filter`). This is the fallback for plain
lists, with the same glob syntax and Velero's ``IncludesExcludes`` rules: an
exclude match always wins; an empty include list or ``*`` includes everything.
"""

from __future__ import annotations

from dataclasses import dataclass

from strongroom.model.filters import glob_matches

__all__ = ["GlobFilter", "resource_pattern_matches"]


def resource_pattern_matches(pattern: str, group_resource: str) -> bool:
    """Match a resource pattern; an unqualified one (``deployments``) matches the resource in any group.

    Velero resolves unqualified names with discovery; without it, the resource
    part of the group-resource is the closest pure equivalent.
    """
    if glob_matches(pattern, group_resource):
        return True
    return "." not in pattern and glob_matches(pattern, group_resource.partition(".")[0])


@dataclass(frozen=True)
class GlobFilter:
    includes: tuple[str, ...] = ()
    excludes: tuple[str, ...] = ()
    resources: bool = False
    """Match patterns as resource names (see `resource_pattern_matches`)."""

    def _match(self, pattern: str, value: str) -> bool:
        return resource_pattern_matches(pattern, value) if self.resources else glob_matches(pattern, value)

    def matches(self, value: str) -> bool:
        if any(self._match(pattern, value) for pattern in self.excludes):
            return False
        if not self.includes or "*" in self.includes:
            return True
        return any(self._match(pattern, value) for pattern in self.includes)

    @property
    def includes_everything(self) -> bool:
        """True when nothing is excluded and everything is included (Velero's ``IncludeEverything``)."""
        return not self.excludes and (not self.includes or tuple(set(self.includes)) == ("*",))
