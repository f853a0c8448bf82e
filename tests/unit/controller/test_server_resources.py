"""The server refuses to start on a cluster without its CRDs, and says how to install them."""

from __future__ import annotations

import pytest

from strongroom.controller.context import ServerResources
from strongroom.errors import UsageError
from strongroom.kube import Discovery
from strongroom.model.crds import crd_manifests
from strongroom.model.resources import ApiResource

CORE = (
    ApiResource("", "v1", "secrets", "Secret", True),
    ApiResource("", "v1", "namespaces", "Namespace", False),
    ApiResource("coordination.k8s.io", "v1", "leases", "Lease", True),
)


def served_crds(skip: str = "") -> tuple[ApiResource, ...]:
    found = []
    for crd in crd_manifests():
        spec = crd["spec"]
        if spec["names"]["plural"] == skip:
            continue
        version = spec["versions"][0]
        found.append(
            ApiResource(
                spec["group"],
                version["name"],
                spec["names"]["plural"],
                spec["names"]["kind"],
                True,
                subresources=frozenset(version.get("subresources") or {}),
            )
        )
    return tuple(found)


def test_every_type_the_server_needs_is_found_with_its_subresources() -> None:
    resources = ServerResources.from_discovery(Discovery(CORE + served_crds()))
    assert resources.backups.kind == "Backup"
    assert resources.dpas.group == "oadp.openshift.io"
    assert "status" in resources.schedules.subresources


def test_a_cluster_without_the_crds_is_refused_with_the_install_command() -> None:
    with pytest.raises(UsageError) as caught:
        ServerResources.from_discovery(Discovery(CORE + served_crds(skip="downloadrequests")))
    assert "downloadrequests.velero.io" in caught.value.message
    assert caught.value.hint is not None and "strongroom install" in caught.value.hint
