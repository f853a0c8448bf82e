"""OpenShift kinds the tests serve as CRDs: the shapes strongroom reads, nothing more."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import yaml
from tests.conftest import Sandbox
from tests.integration.sandboxapi import eventually

CRD_NAME = "clusteroperators.config.openshift.io"

# OpenShift's static pod operators (operator.openshift.io/v1): plural, kind.
STATIC_POD_OPERATORS = (
    ("etcds", "Etcd"),
    ("kubeapiservers", "KubeAPIServer"),
    ("kubecontrollermanagers", "KubeControllerManager"),
    ("kubeschedulers", "KubeScheduler"),
)


def crd(
    group: str,
    plural: str,
    kind: str,
    *,
    scope: str = "Cluster",
    short_names: Sequence[str] = (),
    version: str = "v1",
) -> dict[str, Any]:
    """A served, stored v1 CRD with a status subresource that keeps whatever fields it is given."""
    schema = {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}
    names: dict[str, Any] = {
        "plural": plural,
        "singular": kind.lower(),
        "kind": kind,
        "listKind": f"{kind}List",
    }
    if short_names:
        names["shortNames"] = list(short_names)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": scope,
            "names": names,
            "versions": [
                {
                    "name": version,
                    "served": True,
                    "storage": True,
                    "schema": schema,
                    "subresources": {"status": {}},
                }
            ],
        },
    }


def cluster_operator_crd() -> dict[str, Any]:
    """OpenShift's ClusterOperator: cluster scoped, status subresource."""
    return crd("config.openshift.io", "clusteroperators", "ClusterOperator", short_names=["co"])


def proxy_crd() -> dict[str, Any]:
    """OpenShift's cluster-wide Proxy (config.openshift.io/v1, the object is named ``cluster``)."""
    return crd("config.openshift.io", "proxies", "Proxy")


def machine_crd() -> dict[str, Any]:
    """OpenShift's Machine (machine.openshift.io/v1beta1), kept in openshift-machine-api."""
    return crd("machine.openshift.io", "machines", "Machine", scope="Namespaced", version="v1beta1")


def operator_crds(plurals: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """The static pod operators' CRDs (all four, or those named)."""
    return [
        crd("operator.openshift.io", plural, kind)
        for plural, kind in STATIC_POD_OPERATORS
        if plurals is None or plural in plurals
    ]


def _established(sandbox: Sandbox, name: str) -> bool:
    found = sandbox.kubectl_json("get", "crd", name)
    conditions = {c["type"]: c["status"] for c in found.get("status", {}).get("conditions", [])}
    return conditions.get("Established") == "True"


@contextmanager
def served(sandbox: Sandbox, *crds: dict[str, Any]) -> Iterator[None]:
    """Serve these CRDs for the block; delete afterwards those that were not there before."""
    names = [c["metadata"]["name"] for c in crds]
    existing = set(sandbox.kubectl("get", "crd", "-o", "name").stdout.split())
    added = [
        name for name in names if f"customresourcedefinition.apiextensions.k8s.io/{name}" not in existing
    ]
    sandbox.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(crds))
    for name in names:
        eventually(lambda name=name: _established(sandbox, name), timeout=20)
    try:
        yield
    finally:
        for name in added:
            sandbox.kubectl("delete", "crd", name, "--wait=false", check=False)
