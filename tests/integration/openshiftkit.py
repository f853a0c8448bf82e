"""OpenShift kinds the tests serve as CRDs: the shapes strongroom reads, nothing more."""

from __future__ import annotations

from typing import Any

CRD_NAME = "clusteroperators.config.openshift.io"


def cluster_operator_crd() -> dict[str, Any]:
    """The shape of OpenShift's ClusterOperator CRD that matters here: cluster scoped, status subresource."""
    schema = {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": CRD_NAME},
        "spec": {
            "group": "config.openshift.io",
            "scope": "Cluster",
            "names": {
                "plural": "clusteroperators",
                "singular": "clusteroperator",
                "kind": "ClusterOperator",
                "listKind": "ClusterOperatorList",
                "shortNames": ["co"],
            },
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": schema,
                    "subresources": {"status": {}},
                }
            ],
        },
    }
