"""strongroom reads a backup exactly as Velero v1.16.2 stores it (tests/data/velero-golden).

The fixture was produced by tests/golden_velero.py, which reproduces Velero's
Go byte layout without strongroom's writer, so these tests prove that the
reader, the side-file decoders and the bucket layout agree with Velero, not
merely with strongroom. The expectations below are spelled out by hand
rather than taken from the generator, so a change to either shows up here.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from tests import golden_velero

from strongroom.archive import (
    BackupReader,
    FormatVersion,
    decode_resource_list,
    decode_results,
    iter_log_lines,
)
from strongroom.model.velero import Backup
from strongroom.storage import Layout, LocalObjectStore, validate_top_level

BUCKET = Path(__file__).parents[2] / "data" / "velero-golden"
BACKUP = "golden"
BACKUP_DIR = BUCKET / "backups" / BACKUP
TARBALL = BACKUP_DIR / f"{BACKUP}.tar.gz"
PV = "pvc-8c1e2f4a-93b5-4d6e-a7f1-0b2c3d4e5f60"
LONG_CONFIGMAP = (
    "shop-catalog-import-settings-generated-by-the-catalog-operator-for-the-nightly-batch-"
    "0123456789abcdef0123456789abcdef"
)

# (resource directory, namespace, name, apiVersion, kind) in Velero's write order.
ITEMS = [
    ("persistentvolumes", None, PV, "v1", "PersistentVolume"),
    ("persistentvolumeclaims", "shop", "data", "v1", "PersistentVolumeClaim"),
    ("pods", "shop", "web-6d5f8b7c9d-q7x2m", "v1", "Pod"),
    ("configmaps", "shop", "kube-root-ca.crt", "v1", "ConfigMap"),
    ("configmaps", "shop", LONG_CONFIGMAP, "v1", "ConfigMap"),
    ("configmaps", "shop", "shop-config", "v1", "ConfigMap"),
    ("endpoints", "shop", "web", "v1", "Endpoints"),
    ("namespaces", None, "shop", "v1", "Namespace"),
    ("secrets", "shop", "shop-secret", "v1", "Secret"),
    ("serviceaccounts", "shop", "default", "v1", "ServiceAccount"),
    ("serviceaccounts", "shop", "shop-app", "v1", "ServiceAccount"),
    ("services", "shop", "web", "v1", "Service"),
    ("deployments.apps", "shop", "web", "apps/v1", "Deployment"),
    ("replicasets.apps", "shop", "web-6d5f8b7c9d", "apps/v1", "ReplicaSet"),
    (
        "rolebindings.rbac.authorization.k8s.io",
        "shop",
        "shop-reader",
        "rbac.authorization.k8s.io/v1",
        "RoleBinding",
    ),
    ("roles.rbac.authorization.k8s.io", "shop", "shop-reader", "rbac.authorization.k8s.io/v1", "Role"),
    ("endpointslices.discovery.k8s.io", "shop", "web-8kq4v", "discovery.k8s.io/v1", "EndpointSlice"),
    ("crontabs.stable.example.com", "shop", "hourly-sync", "stable.example.com/v1", "CronTab"),
    ("crontabs.stable.example.com", "shop", "hourly-sync", "stable.example.com/v1beta1", "CronTab"),
    ("crontabs.stable.example.com", "shop", "nightly-report", "stable.example.com/v1", "CronTab"),
    ("crontabs.stable.example.com", "shop", "nightly-report", "stable.example.com/v1beta1", "CronTab"),
    (
        "customresourcedefinitions.apiextensions.k8s.io",
        None,
        "crontabs.stable.example.com",
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
    ),
]

RESOURCE_LIST = {
    "apiextensions.k8s.io/v1/CustomResourceDefinition": ["crontabs.stable.example.com"],
    "apps/v1/Deployment": ["shop/web"],
    "apps/v1/ReplicaSet": ["shop/web-6d5f8b7c9d"],
    "discovery.k8s.io/v1/EndpointSlice": ["shop/web-8kq4v"],
    "rbac.authorization.k8s.io/v1/Role": ["shop/shop-reader"],
    "rbac.authorization.k8s.io/v1/RoleBinding": ["shop/shop-reader"],
    "stable.example.com/v1/CronTab": ["shop/hourly-sync", "shop/nightly-report"],
    "stable.example.com/v1beta1/CronTab": ["shop/hourly-sync", "shop/nightly-report"],
    "v1/ConfigMap": ["shop/kube-root-ca.crt", f"shop/{LONG_CONFIGMAP}", "shop/shop-config"],
    "v1/Endpoints": ["shop/web"],
    "v1/Namespace": ["shop"],
    "v1/PersistentVolume": [PV],
    "v1/PersistentVolumeClaim": ["shop/data"],
    "v1/Pod": ["shop/web-6d5f8b7c9d-q7x2m"],
    "v1/Secret": ["shop/shop-secret"],
    "v1/Service": ["shop/web"],
    "v1/ServiceAccount": ["shop/default", "shop/shop-app"],
}


def expected_entries() -> list[tuple[str, str | None, str, str | None, bool]]:
    """(resource dir, namespace, name, version dir, preferred) of every item member, in order."""
    entries = []
    for resource, namespace, name, api_version, _kind in ITEMS:
        version = api_version.rpartition("/")[2]
        if version == "v1beta1":
            entries.append((resource, namespace, name, version, False))
        else:
            entries += [(resource, namespace, name, None, False), (resource, namespace, name, version, True)]
    return entries


def read_all() -> list[Any]:
    with TARBALL.open("rb") as handle:
        reader = BackupReader(handle)
        reader.verify()
        return list(reader.items())


def gunzip_json(name: str) -> Any:
    return json.loads(gzip.decompress((BACKUP_DIR / name).read_bytes()))


def test_the_committed_fixture_is_what_the_generator_produces() -> None:
    assert golden_velero.check(BUCKET) == []


def test_velero_tarball_verifies_as_format_1_1_0_with_its_checksum() -> None:
    data = TARBALL.read_bytes()
    with TARBALL.open("rb") as handle:
        summary = BackupReader(handle).verify(expected_sha256=hashlib.sha256(data).hexdigest())
    assert summary.format_version == FormatVersion(1, 1, 0)
    assert summary.item_entries == 42
    assert summary.size == len(data)
    assert summary.ignored == ()
    assert summary.ignored_count == 0


def test_every_velero_item_is_yielded_in_archive_order_with_its_identity() -> None:
    found = [
        (str(item.group_resource), item.namespace, item.name, item.version, item.path.preferred)
        for item in read_all()
    ]
    assert found == expected_entries()


def test_each_item_holds_the_object_its_path_names() -> None:
    by_identity = {
        (resource, ns, name, api.rpartition("/")[2]): (api, kind) for resource, ns, name, api, kind in ITEMS
    }
    for item in read_all():
        version = item.version or "v1"
        api_version, kind = by_identity[(str(item.group_resource), item.namespace, item.name, version)]
        metadata = item.object["metadata"]
        assert item.object["apiVersion"] == api_version
        assert item.object["kind"] == kind
        assert metadata["name"] == item.name
        assert metadata.get("namespace") == item.namespace
        assert api_version.rpartition("/")[0] == item.group_resource.group
        # As kube-apiserver returned them.
        assert metadata["uid"] and metadata["resourceVersion"] and metadata["creationTimestamp"]
        # A ServiceAccount has no fields of its own, so no manager owns any.
        assert metadata.get("managedFields") or kind == "ServiceAccount"


def test_the_preferred_version_copy_is_identical_and_the_older_version_differs_only_in_api_version() -> None:
    copies: dict[tuple[str, str | None, str], dict[str | None, dict[str, Any]]] = {}
    for item in read_all():
        copies.setdefault((str(item.group_resource), item.namespace, item.name), {})[item.version] = (
            item.object
        )
    for key, versions in copies.items():
        assert versions[None] == versions["v1"], key
    for name in ("hourly-sync", "nightly-report"):
        versions = copies[("crontabs.stable.example.com", "shop", name)]
        older = dict(versions["v1beta1"])
        assert older.pop("apiVersion") == "stable.example.com/v1beta1"
        assert older == {k: v for k, v in versions[None].items() if k != "apiVersion"}


def test_a_name_too_long_for_ustar_is_read_whole_from_its_pax_header() -> None:
    names = [item.name for item in read_all() if str(item.group_resource) == "configmaps"]
    assert names.count(LONG_CONFIGMAP) == 2


def test_go_escaped_json_and_cluster_fields_come_back_unchanged() -> None:
    objects = {
        (str(item.group_resource), item.name): item.object for item in read_all() if item.version is None
    }
    config = objects[("configmaps", "shop-config")]["data"]
    assert config["STOREFRONT_URL"] == "https://shop.example.com/?utm_source=k8s&utm_medium=golden"
    assert config["banner.html"] == '<p class="banner">Free shipping > 50 \u20ac & more</p>\n'
    service = objects[("services", "web")]["spec"]
    assert service["clusterIP"] == "10.96.142.17"
    assert service["ports"][0]["nodePort"] == 30080
    assert objects[("secrets", "shop-secret")]["type"] == "Opaque"
    pvc = objects[("persistentvolumeclaims", "data")]
    assert pvc["spec"]["volumeName"] == PV
    assert pvc["status"]["phase"] == "Bound"
    assert objects[("persistentvolumes", PV)]["spec"]["claimRef"]["name"] == "data"
    pod_owner = objects[("pods", "web-6d5f8b7c9d-q7x2m")]["metadata"]["ownerReferences"][0]
    assert (pod_owner["kind"], pod_owner["name"]) == ("ReplicaSet", "web-6d5f8b7c9d")
    rs_owner = objects[("replicasets.apps", "web-6d5f8b7c9d")]["metadata"]["ownerReferences"][0]
    assert (rs_owner["kind"], rs_owner["name"]) == ("Deployment", "web")


def test_results_hold_velero_s_one_warning_and_no_errors() -> None:
    results = decode_results((BACKUP_DIR / f"{BACKUP}-results.gz").read_bytes())
    assert results.errors.is_empty()
    assert results.warnings.cluster == []
    assert results.warnings.namespaces == {}
    assert len(results.warnings.velero) == 1
    assert results.warnings.velero[0].startswith(" message: /backup operation may encounter complications")
    assert "namespaces [shop] managed by ArgoCD" in results.warnings.velero[0]


def test_resource_list_names_every_backed_up_item_once_per_version() -> None:
    resource_list = decode_resource_list((BACKUP_DIR / f"{BACKUP}-resource-list.json.gz").read_bytes())
    assert resource_list == RESOURCE_LIST
    from_tarball: dict[str, set[str]] = {}
    for item in read_all():
        key = f"{item.object['apiVersion']}/{item.object['kind']}"
        from_tarball.setdefault(key, set()).add(
            f"{item.namespace}/{item.name}" if item.namespace else item.name
        )
    assert {key: sorted(entries) for key, entries in from_tarball.items()} == resource_list


def test_log_lines_are_read_with_their_warning() -> None:
    lines = list(iter_log_lines((BACKUP_DIR / f"{BACKUP}-logs.gz").read_bytes()))
    assert len(lines) == 60
    assert all(line.startswith('time="2025-06-04T09:30:0') for line in lines)
    warnings = [line for line in lines if " level=warning " in line]
    assert len(warnings) == 1
    assert "managed by ArgoCD" in warnings[0]


def test_empty_side_files_hold_what_go_encodes_for_nil_and_empty_lists() -> None:
    for suffix in (
        "volumesnapshots",
        "podvolumebackups",
        "csi-volumesnapshots",
        "csi-volumesnapshotcontents",
        "csi-volumesnapshotclasses",
    ):
        assert gunzip_json(f"{BACKUP}-{suffix}.json.gz") is None
    assert gunzip_json(f"{BACKUP}-itemoperations.json.gz") == []
    volume_info = gunzip_json(f"{BACKUP}-volumeinfo.json.gz")
    assert [
        (info["pvcNamespace"], info["pvcName"], info["pvName"], info["skipped"]) for info in volume_info
    ] == [("shop", "data", PV, True)]


def test_side_files_are_gzip_as_go_writes_it() -> None:
    for path in BACKUP_DIR.glob("*.gz"):
        header = path.read_bytes()[:10]
        # No name, no time, default level, OS "unknown".
        assert header == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff", path.name


def test_velero_backup_json_is_read_by_the_backup_model() -> None:
    manifest = json.loads((BACKUP_DIR / "velero-backup.json").read_text())
    backup = Backup.from_manifest(manifest)
    assert backup.metadata.name == BACKUP
    assert backup.status.phase == "Completed"
    assert backup.status.format_version == "1.1.0"
    assert backup.status.progress is not None
    assert backup.status.progress.items_backed_up == len(ITEMS)
    assert backup.spec.included_namespaces == ["shop"]
    assert manifest["metadata"]["labels"] == {"velero.io/storage-location": "default"}
    assert manifest["metadata"]["annotations"]["velero.io/source-cluster-k8s-gitversion"] == "v1.31.4"
    assert backup.to_manifest() == manifest


def layout_keys(layout: Layout) -> dict[str, str]:
    """Every backup file Layout knows for the golden backup, by method name."""
    return {
        method: getattr(layout, method)(BACKUP)
        for method in (
            "backup_metadata",
            "backup_contents",
            "backup_log",
            "backup_results",
            "backup_resource_list",
            "backup_volume_snapshots",
            "backup_item_operations",
            "backup_pod_volume_backups",
            "backup_csi_volume_snapshots",
            "backup_csi_volume_snapshot_contents",
            "backup_csi_volume_snapshot_classes",
            "backup_volume_info",
        )
    }


def test_layout_names_every_file_velero_wrote_and_nothing_else() -> None:
    layout = Layout()
    keys = layout_keys(layout)
    stored = {path.relative_to(BUCKET).as_posix() for path in BACKUP_DIR.iterdir()}
    assert set(keys.values()) == stored
    assert not (BUCKET / layout.backup_checksums(BACKUP)).exists()


@pytest.mark.parametrize("prefix", ["", "velero/cluster-a"])
def test_a_store_over_the_bucket_finds_the_backup_through_the_layout(tmp_path: Path, prefix: str) -> None:
    root = tmp_path / "bucket"
    for source in BACKUP_DIR.iterdir():
        target = root / prefix / "backups" / BACKUP / source.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.read_bytes())

    async def scenario() -> None:
        store = LocalObjectStore(root)
        layout = Layout(prefix)
        await validate_top_level(store, layout)
        backup_dirs = await store.list_prefixes(layout.backups_dir)
        assert [layout.backup_name(directory) for directory in backup_dirs] == [BACKUP]
        for key in layout_keys(layout).values():
            assert await store.exists(key), key
        listed = {info.key async for info in store.list(layout.backup_dir(BACKUP))}
        assert listed == set(layout_keys(layout).values())
        with TARBALL.open("rb") as original:
            assert await store.get(layout.backup_contents(BACKUP)) == original.read()

    asyncio.run(scenario())
