"""Velero's bucket keys (format 1.1.0), checked name by name against pkg/persistence."""

from __future__ import annotations

import pytest

from strongroom.errors import StorageConfigError
from strongroom.storage import VALID_TOP_LEVEL_DIRS, Layout


def test_backup_keys_match_velero() -> None:
    layout = Layout()
    b = "nightly-20240101"
    assert layout.backup_dir(b) == f"backups/{b}/"
    assert layout.backup_metadata(b) == f"backups/{b}/velero-backup.json"
    assert layout.backup_contents(b) == f"backups/{b}/{b}.tar.gz"
    assert layout.backup_log(b) == f"backups/{b}/{b}-logs.gz"
    assert layout.backup_results(b) == f"backups/{b}/{b}-results.gz"
    assert layout.backup_resource_list(b) == f"backups/{b}/{b}-resource-list.json.gz"
    assert layout.backup_volume_snapshots(b) == f"backups/{b}/{b}-volumesnapshots.json.gz"
    assert layout.backup_item_operations(b) == f"backups/{b}/{b}-itemoperations.json.gz"
    assert layout.backup_pod_volume_backups(b) == f"backups/{b}/{b}-podvolumebackups.json.gz"
    assert layout.backup_csi_volume_snapshots(b) == f"backups/{b}/{b}-csi-volumesnapshots.json.gz"
    assert (
        layout.backup_csi_volume_snapshot_contents(b) == f"backups/{b}/{b}-csi-volumesnapshotcontents.json.gz"
    )
    assert (
        layout.backup_csi_volume_snapshot_classes(b) == f"backups/{b}/{b}-csi-volumesnapshotclasses.json.gz"
    )
    assert layout.backup_volume_info(b) == f"backups/{b}/{b}-volumeinfo.json.gz"


def test_strongroom_files_live_inside_the_backup_directory() -> None:
    assert Layout().backup_checksums("b") == "backups/b/strongroom-checksums.json"


def test_restore_keys_match_velero() -> None:
    layout = Layout()
    r = "restore-1"
    assert layout.restore_dir(r) == f"restores/{r}/"
    assert layout.restore_log(r) == f"restores/{r}/restore-{r}-logs.gz"
    assert layout.restore_results(r) == f"restores/{r}/restore-{r}-results.gz"
    assert layout.restore_resource_list(r) == f"restores/{r}/restore-{r}-resource-list.json.gz"
    assert layout.restore_item_operations(r) == f"restores/{r}/restore-{r}-itemoperations.json.gz"
    assert layout.restore_volume_info(r) == f"restores/{r}/{r}-volumeinfo.json.gz"


def test_metadata_and_repository_keys() -> None:
    layout = Layout()
    assert layout.revision == "metadata/revision"
    assert layout.restic_repo("app-ns") == "restic/app-ns"
    assert layout.kopia_dir == "kopia/"
    assert layout.plugins_dir == "plugins/"


@pytest.mark.parametrize("prefix", ["velero", "velero/", "/velero", "/velero/"])
def test_prefix_is_trimmed_like_velero(prefix: str) -> None:
    layout = Layout(prefix)
    assert layout.prefix == "velero"
    assert layout.root == "velero/"
    assert layout.backup_contents("b") == "velero/backups/b/b.tar.gz"
    assert layout.restic_repo("ns") == "velero/restic/ns"
    assert layout.revision == "velero/metadata/revision"


def test_nested_prefix() -> None:
    assert Layout("team/cluster-a").backup_metadata("b") == "team/cluster-a/backups/b/velero-backup.json"


def test_backup_name_from_a_listed_prefix() -> None:
    layout = Layout("p")
    assert layout.backup_name("p/backups/nightly/") == "nightly"
    with pytest.raises(StorageConfigError):
        layout.backup_name("p/restores/nightly/")


@pytest.mark.parametrize("name", ["", "a/b", ".", ".."])
def test_names_must_be_one_path_segment(name: str) -> None:
    with pytest.raises(StorageConfigError, match="single non-empty path segment"):
        Layout().backup_metadata(name)
    with pytest.raises(StorageConfigError):
        Layout().restore_log(name)


def test_malformed_prefix_is_refused() -> None:
    with pytest.raises(StorageConfigError):
        Layout("a//b")


def test_only_velero_directories_are_valid_at_the_top() -> None:
    assert (
        frozenset({"backups", "restores", "restic", "kopia", "metadata", "plugins"}) == VALID_TOP_LEVEL_DIRS
    )
