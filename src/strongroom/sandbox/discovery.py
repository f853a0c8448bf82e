"""Discovery documents shaped exactly as kube-apiserver 1.32 serves them.

kubectl and client-go build their REST mapping (which URL serves which kind,
short names, categories such as ``all``) from these documents before they send
a single object request, so a missing field here breaks commands far away from
discovery. Everything is derived from the `ResourceRegistry`, so a kind that a
CustomResourceDefinition establishes appears the moment the registry learns it.

The functions are pure: they take the registry and return the JSON-ready dict;
the HTTP layer decides which one to call and with which content type.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Any

from strongroom.sandbox.resources import ResourceRegistry, ResourceType

JSON = dict[str, Any]

KUBE_MAJOR = "1"
KUBE_MINOR = "32"
GIT_VERSION = "v1.32.0+strongroom"

AGGREGATED_CONTENT_TYPE = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"

_AGGREGATED_PARAMS = {"g": "apidiscovery.k8s.io", "v": "v2", "as": "APIGroupDiscoveryList"}


def version_info() -> JSON:
    """The `/version` document; kubectl prints it and warns on version skew."""
    return {
        "major": KUBE_MAJOR,
        "minor": KUBE_MINOR,
        "gitVersion": GIT_VERSION,
        # A fixed, plausible commit: clients only display it.
        "gitCommit": "70d3cc986aa8221cd1dfb1121852688902d3bf53",
        "gitTreeState": "clean",
        "buildDate": "2024-12-11T17:59:15Z",
        "goVersion": "go1.23.3",
        "compiler": "gc",
        "platform": "linux/amd64",
    }


def core_versions(server_address: str) -> JSON:
    """The legacy `/api` document (APIVersions).

    kube-apiserver omits apiVersion on this one kind; clients tolerate both but
    we stay byte-compatible in shape.
    """
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


def _group_version_ref(group: str, version: str) -> JSON:
    return {"groupVersion": f"{group}/{version}" if group else version, "version": version}


def _api_group(group: str, versions: list[str]) -> JSON:
    return {
        "name": group,
        "versions": [_group_version_ref(group, v) for v in versions],
        "preferredVersion": _group_version_ref(group, versions[0]),
    }


def group_list(registry: ResourceRegistry) -> JSON:
    """`/apis`: every non-core group, preferred version first."""
    groups = [_api_group(g, versions) for g, versions in registry.groups().items() if g]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def group(registry: ResourceRegistry, name: str) -> JSON | None:
    """`/apis/<group>`, or None when the group is not served (the caller answers 404)."""
    if not name:
        return None
    versions = registry.groups().get(name)
    if not versions:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_api_group(name, versions)}


@dataclass(frozen=True)
class _Subresource:
    verbs: tuple[str, ...]
    # None means "the parent's kind in the parent's group/version".
    kind: str | None = None
    group: str | None = None
    version: str | None = None


# What kube-apiserver reports for the subresources a registry entry can name.
# Status-like subresources answer with the parent object; the others have kinds
# of their own, which client-go needs to decode their responses.
_SUBRESOURCES: dict[str, _Subresource] = {
    "status": _Subresource(("get", "patch", "update")),
    "approval": _Subresource(("get", "patch", "update")),
    "finalize": _Subresource(("update",)),
    "ephemeralcontainers": _Subresource(("get", "patch", "update")),
    "resize": _Subresource(("get", "patch", "update")),
    "scale": _Subresource(("get", "patch", "update"), "Scale", "autoscaling", "v1"),
    "eviction": _Subresource(("create",), "Eviction", "policy", "v1"),
    "binding": _Subresource(("create",), "Binding", "", "v1"),
    "log": _Subresource(("get",)),
    "exec": _Subresource(("create", "get"), "PodExecOptions", "", "v1"),
    "attach": _Subresource(("create", "get"), "PodAttachOptions", "", "v1"),
    "portforward": _Subresource(("create", "get"), "PodPortForwardOptions", "", "v1"),
    "token": _Subresource(("create",), "TokenRequest", "authentication.k8s.io", "v1"),
}
_DEFAULT_SUBRESOURCE = _Subresource(("get", "patch", "update"))


def subresource_kind(rt: ResourceType, subresource: str) -> tuple[str, str, str]:
    """(group, version, kind) of what `<resource>/<subresource>` reads and writes."""
    info = _SUBRESOURCES.get(subresource, _DEFAULT_SUBRESOURCE)
    if subresource == "proxy":
        return ("", "v1", f"{rt.kind}ProxyOptions")
    if info.kind is None:
        return (rt.group, rt.version, rt.kind)
    return (
        rt.group if info.group is None else info.group,
        rt.version if info.version is None else info.version,
        info.kind,
    )


def subresource_verbs(subresource: str) -> list[str]:
    if subresource == "proxy":
        return ["create", "delete", "get", "patch", "update"]
    return list(_SUBRESOURCES.get(subresource, _DEFAULT_SUBRESOURCE).verbs)


def storage_version_hash(rt: ResourceType) -> str:
    """A stable digest of the storage group/version/kind.

    Storage-version migrators compare it across servers to notice a changed
    storage version; any stable value works as long as it changes with the
    storage version, which is what this encodes.
    """
    group = rt.group if rt.storage_group is None else rt.storage_group
    version = rt.storage_version or rt.version
    digest = hashlib.sha256(f"{group}/{version}/{rt.kind}".encode()).digest()
    return base64.b64encode(digest[:8]).decode("ascii")


def _resource_entry(rt: ResourceType) -> JSON:
    entry: JSON = {
        "name": rt.resource,
        "singularName": rt.singular,
        "namespaced": rt.namespaced,
        "kind": rt.kind,
        "verbs": list(rt.verbs),
    }
    if rt.short_names:
        entry["shortNames"] = list(rt.short_names)
    if rt.categories:
        entry["categories"] = list(rt.categories)
    entry["storageVersionHash"] = storage_version_hash(rt)
    return entry


def _subresource_entry(rt: ResourceType, subresource: str) -> JSON:
    sub_group, sub_version, sub_kind = subresource_kind(rt, subresource)
    entry: JSON = {"name": f"{rt.resource}/{subresource}", "singularName": "", "namespaced": rt.namespaced}
    # Legacy discovery names group/version only when they differ from the list's own.
    if (sub_group, sub_version) != (rt.group, rt.version):
        entry["group"] = sub_group
        entry["version"] = sub_version
    entry["kind"] = sub_kind
    entry["verbs"] = subresource_verbs(subresource)
    return entry


def resource_list(registry: ResourceRegistry, group: str, version: str) -> JSON | None:
    """`/api/v1` or `/apis/<group>/<version>` (APIResourceList), or None if not served."""
    rts = registry.in_group_version(group, version)
    if not rts:
        return None
    entries: list[JSON] = []
    for rt in rts:
        entries.append(_resource_entry(rt))
        entries.extend(_subresource_entry(rt, sub) for sub in rt.subresources)
    # kube-apiserver lists resources sorted by path, so subresources follow their parent.
    entries.sort(key=lambda e: str(e["name"]))
    doc: JSON = {"kind": "APIResourceList"}
    if group:
        # The core list carries no apiVersion in kube-apiserver's output; group lists do.
        doc["apiVersion"] = "v1"
    doc["groupVersion"] = f"{group}/{version}" if group else version
    doc["resources"] = entries
    return doc


def _discovery_resource(rt: ResourceType) -> JSON:
    entry: JSON = {
        "resource": rt.resource,
        "responseKind": {"group": rt.group, "version": rt.version, "kind": rt.kind},
        "scope": "Namespaced" if rt.namespaced else "Cluster",
        "singularResource": rt.singular,
        "verbs": list(rt.verbs),
    }
    if rt.short_names:
        entry["shortNames"] = list(rt.short_names)
    if rt.categories:
        entry["categories"] = list(rt.categories)
    subresources = []
    for sub in sorted(rt.subresources):
        sub_group, sub_version, sub_kind = subresource_kind(rt, sub)
        subresources.append(
            {
                "subresource": sub,
                "responseKind": {"group": sub_group, "version": sub_version, "kind": sub_kind},
                "verbs": subresource_verbs(sub),
            }
        )
    if subresources:
        entry["subresources"] = subresources
    return entry


def _discovery_group(registry: ResourceRegistry, group: str, versions: list[str]) -> JSON:
    metadata: JSON = {"creationTimestamp": None}
    if group:
        metadata = {"name": group, **metadata}
    return {
        "metadata": metadata,
        "versions": [
            {
                "version": version,
                "resources": [
                    _discovery_resource(rt)
                    for rt in sorted(registry.in_group_version(group, version), key=lambda r: r.resource)
                ],
                "freshness": "Current",
            }
            for version in versions
        ],
    }


def aggregated(registry: ResourceRegistry, core: bool) -> JSON:
    """Aggregated discovery (apidiscovery.k8s.io/v2 APIGroupDiscoveryList).

    `core=True` answers `/api` (just the legacy group, whose name is empty);
    `core=False` answers `/apis` with every other group. kubectl fetches both
    in two requests instead of one per group-version.
    """
    items = [
        _discovery_group(registry, g, versions)
        for g, versions in registry.groups().items()
        if (g == "") == core
    ]
    return {
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    }


def parse_accept(accept_header: str) -> list[tuple[str, dict[str, str]]]:
    """Split an Accept header into (media type, parameters) pairs, dropping q=0 ranges."""
    ranges: list[tuple[str, dict[str, str]]] = []
    for part in accept_header.split(","):
        pieces = [p.strip() for p in part.split(";")]
        media = pieces[0].lower()
        if not media:
            continue
        params: dict[str, str] = {}
        for piece in pieces[1:]:
            key, sep, value = piece.partition("=")
            if sep:
                params[key.strip().lower()] = value.strip().strip('"')
        if params.get("q", "1").strip() in {"0", "0.0", "0.00", "0.000"}:
            continue
        ranges.append((media, params))
    return ranges


def wants_aggregated(accept_header: str) -> bool:
    """True when the client accepts the v2 APIGroupDiscoveryList anywhere in its Accept list.

    Only v2 is answered: a client asking solely for v2beta1 gets the plain
    documents, which every client also understands.
    """
    for media, params in parse_accept(accept_header):
        if media == "application/json" and all(params.get(k) == v for k, v in _AGGREGATED_PARAMS.items()):
            return True
    return False
