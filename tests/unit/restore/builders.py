"""Small builders for the objects restore tests feed to the planner, as a backup holds them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from strongroom.restore.plan import RestoreOptions

SERVER_SET = {
    "uid": "0b7c6a57-8a1e-4c5e-9a0f-1b2c3d4e5f60",
    "resourceVersion": "4711",
    "creationTimestamp": "2024-05-01T10:00:00Z",
    "generation": 3,
    "selfLink": "/api/v1/whatever",
}


def obj(
    api_version: str,
    kind: str,
    name: str,
    namespace: str | None = None,
    *,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    server_set: bool = True,
    **body: Any,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if namespace is not None:
        metadata["namespace"] = namespace
    if labels:
        metadata["labels"] = dict(labels)
    if annotations:
        metadata["annotations"] = dict(annotations)
    if server_set:
        metadata.update(SERVER_SET)
    return {"apiVersion": api_version, "kind": kind, "metadata": metadata, **body}


def configmap(name: str = "settings", namespace: str = "shop", **kw: Any) -> dict[str, Any]:
    kw.setdefault("data", {"mode": "fast"})
    return obj("v1", "ConfigMap", name, namespace, **kw)


def service(name: str = "web", namespace: str = "shop", **spec: Any) -> dict[str, Any]:
    annotations = spec.pop("annotations", None)
    managed = spec.pop("managedFields", None)
    item = obj("v1", "Service", name, namespace, annotations=annotations, spec=spec)
    if managed is not None:
        item["metadata"]["managedFields"] = managed
    return item


def pod(
    name: str = "web-0", namespace: str = "shop", *, phase: str = "Running", **spec: Any
) -> dict[str, Any]:
    annotations = spec.pop("annotations", None)
    labels = spec.pop("labels", None)
    spec.setdefault("containers", [{"name": "app", "image": "nginx"}])
    return obj(
        "v1",
        "Pod",
        name,
        namespace,
        annotations=annotations,
        labels=labels,
        spec=spec,
        status={"phase": phase},
    )


def pvc(
    name: str = "data",
    namespace: str = "shop",
    *,
    volume_name: str | None = "pv-data",
    phase: str = "Bound",
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    if volume_name is not None:
        spec["volumeName"] = volume_name
    return obj(
        "v1",
        "PersistentVolumeClaim",
        name,
        namespace,
        annotations=annotations,
        spec=spec,
        status={"phase": phase},
    )


def pv(
    name: str = "pv-data",
    *,
    claim_namespace: str = "shop",
    claim_name: str = "data",
    reclaim: str = "Retain",
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    spec = {
        "capacity": {"storage": "1Gi"},
        "persistentVolumeReclaimPolicy": reclaim,
        "claimRef": {
            "kind": "PersistentVolumeClaim",
            "namespace": claim_namespace,
            "name": claim_name,
            "uid": "c1a1m",
            "resourceVersion": "99",
        },
        "hostPath": {"path": "/data"},
    }
    return obj("v1", "PersistentVolume", name, annotations=annotations, spec=spec, status={"phase": "Bound"})


def namespace(name: str = "shop", *, labels: dict[str, str] | None = None, **kw: Any) -> dict[str, Any]:
    return obj(
        "v1",
        "Namespace",
        name,
        labels=labels,
        spec={"finalizers": ["kubernetes"]},
        status={"phase": "Active"},
        **kw,
    )


def crd(plural: str = "crontabs", group: str = "stable.example.com") -> dict[str, Any]:
    return obj(
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        f"{plural}.{group}",
        spec={
            "group": group,
            "names": {"plural": plural, "kind": "CronTab"},
            "scope": "Namespaced",
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": {"type": "object"}},
                }
            ],
        },
    )


def options(**kw: Any) -> RestoreOptions:
    kw.setdefault("backup_name", "nightly")
    kw.setdefault("restore_name", "nightly-20240502")
    return RestoreOptions(**kw)


@dataclass(frozen=True)
class Item:
    """What the archive reader yields, reduced to what the planner reads."""

    group_resource: str
    namespace: str | None
    name: str
    object: dict[str, Any]
    version: str | None = None


def item(group_resource: str, body: dict[str, Any], version: str | None = None) -> Item:
    metadata = body["metadata"]
    return Item(group_resource, metadata.get("namespace"), metadata["name"], body, version)
