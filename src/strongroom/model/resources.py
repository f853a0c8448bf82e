"""The resource types a cluster serves, as discovery reports them.

Backup filters, restore ordering and the tarball's paths all speak of
resources ("deployments.apps", "pods"); the kube client discovers them and
everything else reasons about them through this one value type, so filtering
and planning stay pure and testable without a cluster.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class ApiResource:
    """One resource type at one group version (a discovery entry)."""

    group: str
    version: str
    resource: str
    kind: str
    namespaced: bool
    singular: str = ""
    short_names: tuple[str, ...] = ()
    verbs: frozenset[str] = field(default_factory=frozenset)
    categories: tuple[str, ...] = ()
    preferred: bool = True
    # Subresources served beside the resource ("status", "scale"): where a
    # controller must write its status.
    subresources: frozenset[str] = frozenset()

    @property
    def group_resource(self) -> str:
        """``deployments.apps``; the core group has no suffix (``pods``)."""
        return f"{self.resource}.{self.group}" if self.group else self.resource

    @property
    def group_version(self) -> str:
        """``apps/v1``; the core group is plain ``v1``."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def listable(self) -> bool:
        return "list" in self.verbs

    @property
    def creatable(self) -> bool:
        return "create" in self.verbs
