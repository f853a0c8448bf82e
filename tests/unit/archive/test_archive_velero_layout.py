"""Golden tarballs shaped exactly like Velero's are read, and ours match them.

The file lists come from Velero itself: pkg/backup/backup_test.go
(TestBackedUpItemsMatchesTarballContents and "no filters backs up everything")
for format 1.1, and site/content/docs/main/output-file-format.md for format 1.
"""

from __future__ import annotations

import gzip
import io
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from tests.unit.archive.builders import deployment, persistent_volume, pod, velero_tarball, write_backup

from strongroom.archive import BackupReader, FormatVersion, GroupResource, ItemPath

# What Velero's own test expects in the tarball of a backup of two pods, two
# deployments and two persistent volumes with no filters.
VELERO_1_1_FILES = [
    "resources/pods/namespaces/foo/bar.json",
    "resources/pods/namespaces/zoo/raz.json",
    "resources/deployments.apps/namespaces/foo/bar.json",
    "resources/deployments.apps/namespaces/zoo/raz.json",
    "resources/persistentvolumes/cluster/bar.json",
    "resources/persistentvolumes/cluster/baz.json",
    "resources/pods/v1-preferredversion/namespaces/foo/bar.json",
    "resources/pods/v1-preferredversion/namespaces/zoo/raz.json",
    "resources/deployments.apps/v1-preferredversion/namespaces/foo/bar.json",
    "resources/deployments.apps/v1-preferredversion/namespaces/zoo/raz.json",
    "resources/persistentvolumes/v1-preferredversion/cluster/bar.json",
    "resources/persistentvolumes/v1-preferredversion/cluster/baz.json",
]

# Format 1 (before Velero 1.4): "1\n" in metadata/version, no version directories.
VELERO_1_FILES = [
    "resources/persistentvolumes/cluster/pv01.json",
    "resources/configmaps/namespaces/namespace1/myconfigmap.json",
    "resources/pods/namespaces/namespace1/mypod.json",
    "resources/jobs.batch/namespaces/namespace1/awesome-job.json",
]


def _object_for(path: str) -> dict[str, object]:
    parts = path.split("/")
    name = parts[-1].removesuffix(".json")
    if "cluster" in parts:
        return persistent_volume(name)
    namespace = parts[-2]
    return deployment(name, namespace) if parts[1] == "deployments.apps" else pod(name, namespace)


def _velero_1_1_tarball() -> bytes:
    return velero_tarball([(path, json.dumps(_object_for(path))) for path in VELERO_1_1_FILES])


def test_velero_1_1_tarball_is_read_with_every_copy() -> None:
    reader = BackupReader(io.BytesIO(_velero_1_1_tarball()))

    summary = reader.verify()
    items = list(reader.items())

    assert summary.format_version == FormatVersion(1, 1, 0)
    assert summary.item_entries == 12
    assert {item.path.path for item in items} == set(VELERO_1_1_FILES)
    preferred = [item.path for item in items if item.path.preferred]
    assert ItemPath(GroupResource("deployments", "apps"), "zoo", "raz", "v1", preferred=True) in preferred
    assert len(preferred) == 6
    by_path = {item.path.path: item.object for item in items}
    assert by_path["resources/persistentvolumes/cluster/baz.json"] == persistent_volume("baz")


def test_our_tarball_for_the_same_objects_has_exactly_velero_paths() -> None:
    ours = write_backup(
        [
            (pod("bar", "foo"), "", "v1", "pods", True),
            (pod("raz", "zoo"), "", "v1", "pods", True),
            (deployment("bar", "foo"), "apps", "v1", "deployments", True),
            (deployment("raz", "zoo"), "apps", "v1", "deployments", True),
            (persistent_volume("bar"), "", "v1", "persistentvolumes", True),
            (persistent_volume("baz"), "", "v1", "persistentvolumes", True),
        ]
    )

    with tarfile.open(fileobj=io.BytesIO(ours), mode="r:gz") as ours_tar:
        our_names = ours_tar.getnames()
    with tarfile.open(fileobj=io.BytesIO(_velero_1_1_tarball()), mode="r:gz") as velero_tar:
        velero_names = velero_tar.getnames()

    assert our_names[0] == velero_names[0] == "metadata/version"
    assert sorted(our_names) == sorted(velero_names)


def test_format_1_tarball_from_before_version_directories_is_read() -> None:
    data = velero_tarball([(path, json.dumps(_object_for(path))) for path in VELERO_1_FILES], version="1\n")
    reader = BackupReader(io.BytesIO(data))

    assert reader.verify().format_version == FormatVersion(1, 0, 0)
    assert [(str(item.group_resource), item.namespace, item.name) for item in reader.items()] == [
        ("persistentvolumes", None, "pv01"),
        ("configmaps", "namespace1", "myconfigmap"),
        ("pods", "namespace1", "mypod"),
        ("jobs.batch", "namespace1", "awesome-job"),
    ]


@pytest.mark.skipif(shutil.which("tar") is None, reason="GNU tar is not installed")
def test_extracted_and_retarred_backup_with_directories_is_read(tmp_path: Path) -> None:
    # What an administrator gets from `tar -xzf` then `tar -czf . ` of a
    # Velero backup: directory entries, "./" prefixes, GNU headers.
    source = tmp_path / "source.tar.gz"
    source.write_bytes(_velero_1_1_tarball())
    extracted = tmp_path / "extracted"
    extracted.mkdir()
    subprocess.run(["tar", "-xzf", str(source), "-C", str(extracted)], check=True)
    retarred = subprocess.run(
        ["tar", "-czf", "-", "-C", str(extracted), "."], check=True, capture_output=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(retarred), mode="r:gz") as tar:
        assert any(info.isdir() for info in tar.getmembers())

    reader = BackupReader(io.BytesIO(retarred))

    assert reader.verify().item_entries == 12
    assert {item.path.path for item in reader.items()} == set(VELERO_1_1_FILES)


def test_go_style_gzip_with_two_end_blocks_and_no_record_padding_is_read() -> None:
    # Go's tar writer ends with exactly two zero blocks and no padding to a
    # 10 KiB record, unlike Python's; both must read.
    raw = gzip.decompress(_velero_1_1_tarball()).rstrip(b"\x00")
    raw = raw + bytes(-len(raw) % 512) + bytes(1024)

    assert BackupReader(io.BytesIO(gzip.compress(raw, mtime=0))).verify().item_entries == 12
