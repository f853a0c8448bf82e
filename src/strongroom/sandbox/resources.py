"""The kinds the sandbox serves: names, scope, discovery facts and etcd location.

kube-apiserver's observable contract for a kind is spread over discovery
(plural, singular, short names, categories, verbs, subresources) and where it
keeps objects in etcd. Both live here, in one table, so the REST layer, the
discovery documents and the storage layer cannot disagree.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

REGISTRY_ROOT = "/registry"

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class ResourceType:
    """One resource at one group/version, as discovery describes it."""

    group: str
    version: str
    resource: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    # etcd path segment below /registry; kube-apiserver keeps a few historic names
    # (nodes are "minions") and puts custom resources under their group.
    storage: str = ""
    builtin: bool = True
    # The version objects are stored at; other served versions are views of it.
    storage_version: str = ""
    # Storage shared with another group's kind (events.k8s.io Event is a view of v1 Event).
    storage_group: str | None = None
    verbs: tuple[str, ...] = ALL_VERBS
    # For custom resources: the CRD's openAPIV3Schema and printer columns of this version.
    schema: dict[str, object] | None = field(default=None, compare=False, hash=False)
    printer_columns: tuple[dict[str, object], ...] = field(default=(), compare=False, hash=False)
    # For custom resources with a scale subresource: its specReplicasPath, statusReplicasPath
    # and labelSelectorPath (built-in kinds use spec.replicas, status.replicas, spec.selector).
    scale_paths: dict[str, str] | None = field(default=None, compare=False, hash=False)

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def api_version(self) -> str:
        return self.group_version

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def storage_path(self) -> str:
        segment = self.storage or self.resource
        if self.builtin:
            return f"{REGISTRY_ROOT}/{segment}"
        return f"{REGISTRY_ROOT}/{self.group}/{segment}"

    def key_prefix(self, namespace: str | None) -> str:
        """The etcd prefix that holds this kind's objects (all namespaces when None)."""
        if self.namespaced and namespace:
            return f"{self.storage_path}/{namespace}/"
        return f"{self.storage_path}/"

    def key(self, namespace: str | None, name: str) -> str:
        if self.namespaced:
            return f"{self.storage_path}/{namespace}/{name}"
        return f"{self.storage_path}/{name}"

    @property
    def group_resource(self) -> str:
        return f"{self.resource}.{self.group}" if self.group else self.resource


def _builtin(
    group: str,
    version: str,
    resource: str,
    kind: str,
    namespaced: bool = True,
    short: Iterable[str] = (),
    categories: Iterable[str] = (),
    subresources: Iterable[str] = (),
    storage: str = "",
    storage_group: str | None = None,
) -> ResourceType:
    return ResourceType(
        group=group,
        version=version,
        resource=resource,
        kind=kind,
        namespaced=namespaced,
        short_names=tuple(short),
        categories=tuple(categories),
        subresources=tuple(subresources),
        storage=storage,
        storage_version=version,
        storage_group=storage_group,
    )


_ALL = ("all",)

BUILTIN_TYPES: tuple[ResourceType, ...] = (
    # core/v1
    _builtin("", "v1", "namespaces", "Namespace", False, ["ns"], subresources=["status", "finalize"]),
    _builtin("", "v1", "pods", "Pod", short=["po"], categories=_ALL, subresources=["status", "proxy"]),
    _builtin(
        "",
        "v1",
        "services",
        "Service",
        short=["svc"],
        categories=_ALL,
        subresources=["status"],
        storage="services/specs",
    ),
    _builtin("", "v1", "endpoints", "Endpoints", short=["ep"], storage="services/endpoints"),
    _builtin("", "v1", "configmaps", "ConfigMap", short=["cm"]),
    _builtin("", "v1", "secrets", "Secret"),
    _builtin("", "v1", "serviceaccounts", "ServiceAccount", short=["sa"]),
    _builtin("", "v1", "persistentvolumes", "PersistentVolume", False, ["pv"], subresources=["status"]),
    _builtin(
        "", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", short=["pvc"], subresources=["status"]
    ),
    _builtin("", "v1", "nodes", "Node", False, ["no"], subresources=["status"], storage="minions"),
    _builtin("", "v1", "events", "Event", short=["ev"]),
    _builtin("", "v1", "limitranges", "LimitRange", short=["limits"]),
    _builtin("", "v1", "resourcequotas", "ResourceQuota", short=["quota"], subresources=["status"]),
    _builtin(
        "",
        "v1",
        "replicationcontrollers",
        "ReplicationController",
        short=["rc"],
        categories=_ALL,
        subresources=["status", "scale"],
        storage="controllers",
    ),
    # apps/v1
    _builtin(
        "apps",
        "v1",
        "deployments",
        "Deployment",
        short=["deploy"],
        categories=_ALL,
        subresources=["status", "scale"],
    ),
    _builtin(
        "apps",
        "v1",
        "statefulsets",
        "StatefulSet",
        short=["sts"],
        categories=_ALL,
        subresources=["status", "scale"],
    ),
    _builtin("apps", "v1", "daemonsets", "DaemonSet", short=["ds"], categories=_ALL, subresources=["status"]),
    _builtin(
        "apps",
        "v1",
        "replicasets",
        "ReplicaSet",
        short=["rs"],
        categories=_ALL,
        subresources=["status", "scale"],
    ),
    # batch/v1
    _builtin("batch", "v1", "jobs", "Job", categories=_ALL, subresources=["status"]),
    _builtin("batch", "v1", "cronjobs", "CronJob", short=["cj"], categories=_ALL, subresources=["status"]),
    # rbac.authorization.k8s.io/v1
    _builtin("rbac.authorization.k8s.io", "v1", "roles", "Role"),
    _builtin("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding"),
    _builtin("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False),
    _builtin("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False),
    # storage.k8s.io/v1
    _builtin("storage.k8s.io", "v1", "storageclasses", "StorageClass", False, ["sc"]),
    # networking.k8s.io/v1
    _builtin(
        "networking.k8s.io",
        "v1",
        "ingresses",
        "Ingress",
        short=["ing"],
        subresources=["status"],
        storage="ingress",
    ),
    _builtin("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", short=["netpol"]),
    # apiextensions.k8s.io/v1: kept under its group, as the apiextensions server does.
    ResourceType(
        group="apiextensions.k8s.io",
        version="v1",
        resource="customresourcedefinitions",
        kind="CustomResourceDefinition",
        namespaced=False,
        short_names=("crd", "crds"),
        categories=("api-extensions",),
        subresources=("status",),
        storage="apiextensions.k8s.io/customresourcedefinitions",
        storage_version="v1",
    ),
    # certificates.k8s.io/v1
    _builtin(
        "certificates.k8s.io",
        "v1",
        "certificatesigningrequests",
        "CertificateSigningRequest",
        False,
        ["csr"],
        subresources=["status", "approval"],
    ),
    # coordination.k8s.io/v1
    _builtin("coordination.k8s.io", "v1", "leases", "Lease"),
    # events.k8s.io/v1 shares storage with core v1 events.
    _builtin("events.k8s.io", "v1", "events", "Event", short=["ev"], storage_group=""),
    # policy/v1
    _builtin(
        "policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", short=["pdb"], subresources=["status"]
    ),
    # scheduling.k8s.io/v1
    _builtin("scheduling.k8s.io", "v1", "priorityclasses", "PriorityClass", False, ["pc"]),
    # discovery.k8s.io/v1 (stored where kube-apiserver keeps them, /registry/endpointslices/)
    _builtin("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice"),
    # Reviews are answered, never stored (`kubectl auth can-i`, `kubectl auth whoami`).
    *(
        ResourceType(
            group=group,
            version="v1",
            resource=resource,
            kind=kind,
            namespaced=namespaced,
            storage_version="v1",
            verbs=("create",),
        )
        for group, resource, kind, namespaced in (
            ("authentication.k8s.io", "selfsubjectreviews", "SelfSubjectReview", False),
            ("authorization.k8s.io", "localsubjectaccessreviews", "LocalSubjectAccessReview", True),
            ("authorization.k8s.io", "selfsubjectaccessreviews", "SelfSubjectAccessReview", False),
            ("authorization.k8s.io", "selfsubjectrulesreviews", "SelfSubjectRulesReview", False),
            ("authorization.k8s.io", "subjectaccessreviews", "SubjectAccessReview", False),
        )
    ),
)

REVIEW_GROUPS = ("authentication.k8s.io", "authorization.k8s.io")

# Group order in discovery: kube-apiserver lists core first, then groups by priority.
BUILTIN_GROUP_ORDER = (
    "",
    "apps",
    "events.k8s.io",
    "batch",
    "certificates.k8s.io",
    "networking.k8s.io",
    "policy",
    "rbac.authorization.k8s.io",
    "storage.k8s.io",
    "authentication.k8s.io",
    "authorization.k8s.io",
    "apiextensions.k8s.io",
    "scheduling.k8s.io",
    "coordination.k8s.io",
    "discovery.k8s.io",
)


class ResourceRegistry:
    """Built-in kinds plus the kinds that CustomResourceDefinitions establish.

    Thread-safe because the CRD controller updates it while requests read it.
    """

    def __init__(self, builtins: Iterable[ResourceType] = BUILTIN_TYPES) -> None:
        self._lock = threading.Lock()
        self._builtins = tuple(builtins)
        self._custom: dict[str, tuple[ResourceType, ...]] = {}  # CRD name -> its served versions
        self.generation = 0

    def all(self) -> list[ResourceType]:
        with self._lock:
            custom = [rt for versions in self._custom.values() for rt in versions]
        return [*self._builtins, *custom]

    def set_custom(self, crd_name: str, versions: Iterable[ResourceType]) -> None:
        with self._lock:
            self._custom[crd_name] = tuple(versions)
            self.generation += 1

    def remove_custom(self, crd_name: str) -> None:
        with self._lock:
            if self._custom.pop(crd_name, None) is not None:
                self.generation += 1

    def custom_names(self) -> list[str]:
        with self._lock:
            return list(self._custom)

    def lookup(self, group: str, version: str, resource: str) -> ResourceType | None:
        for rt in self.all():
            if rt.group == group and rt.version == version and rt.resource == resource:
                return rt
        return None

    def by_kind(self, group: str, kind: str) -> list[ResourceType]:
        return [rt for rt in self.all() if rt.group == group and rt.kind == kind]

    def groups(self) -> dict[str, list[str]]:
        """Group name -> served versions, preferred version first, in discovery order."""
        found: dict[str, list[str]] = {}
        for rt in self.all():
            versions = found.setdefault(rt.group, [])
            if rt.version not in versions:
                versions.append(rt.version)
        order = {name: i for i, name in enumerate(BUILTIN_GROUP_ORDER)}
        ordered = sorted(found, key=lambda g: (order.get(g, len(order)), g))
        return {g: _sort_versions(found[g]) for g in ordered}

    def in_group_version(self, group: str, version: str) -> list[ResourceType]:
        return [rt for rt in self.all() if rt.group == group and rt.version == version]

    def storage_type(self, rt: ResourceType) -> ResourceType:
        """The resource type whose etcd prefix holds `rt`'s objects."""
        if rt.storage_group is not None:
            for other in self._builtins:
                if other.group == rt.storage_group and other.resource == rt.resource:
                    return other
        return rt


def _version_priority(version: str) -> tuple[int, int, int]:
    """Kubernetes version ordering: GA > beta > alpha, higher numbers first."""
    match = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", version)
    if not match:
        return (3, 0, 0)
    major = int(match.group(1))
    stage = {"alpha": 2, "beta": 1, None: 0}[match.group(2)]
    minor = int(match.group(3) or 0)
    return (stage, -major, -minor)


def _sort_versions(versions: list[str]) -> list[str]:
    return sorted(versions, key=lambda v: (_version_priority(v), v))
