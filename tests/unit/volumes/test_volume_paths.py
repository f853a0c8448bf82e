"""Finding a pod volume's directory on the node, in a fake kubelet pods tree."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from strongroom.errors import NotFoundError, UsageError
from strongroom.volumes import find_volume_path, pod_volume, volume_directory_name

POD_UID = "6f1c2d3e-0000-4000-8000-000000000001"


def pv(name: str, *, csi: bool) -> dict[str, Any]:
    spec: dict[str, Any] = (
        {"csi": {"driver": "hostpath.csi.k8s.io", "volumeHandle": "h"}} if csi else {"hostPath": {}}
    )
    return {"metadata": {"name": name}, "spec": spec}


def test_csi_pvc_volume_directory_is_the_pv_name_with_mount() -> None:
    volume = {"name": "data", "persistentVolumeClaim": {"claimName": "data-pvc"}}
    assert volume_directory_name(volume, pv("pvc-123", csi=True)) == "pvc-123/mount"


def test_non_csi_pvc_volume_directory_is_the_pv_name() -> None:
    volume = {"name": "data", "persistentVolumeClaim": {"claimName": "data-pvc"}}
    assert volume_directory_name(volume, pv("pv-local", csi=False)) == "pv-local"


def test_empty_dir_volume_directory_is_the_volume_name() -> None:
    assert volume_directory_name({"name": "cache", "emptyDir": {}}) == "cache"


def test_inline_csi_volume_directory_is_the_volume_name_with_mount() -> None:
    assert volume_directory_name({"name": "inline", "csi": {"driver": "d"}}) == "inline/mount"


def test_pvc_volume_without_its_pv_is_refused() -> None:
    with pytest.raises(UsageError, match="PersistentVolume is needed"):
        volume_directory_name({"name": "data", "persistentVolumeClaim": {"claimName": "c"}})


def test_pod_volume_not_in_the_pod_is_not_found() -> None:
    pod = {"metadata": {"name": "p", "namespace": "n"}, "spec": {"volumes": [{"name": "a", "emptyDir": {}}]}}
    assert pod_volume(pod, "a")["name"] == "a"
    with pytest.raises(NotFoundError, match="volume 'b' not found in pod n/p"):
        pod_volume(pod, "b")


def test_csi_mount_symlink_is_resolved_to_the_data_directory(tmp_path: Path) -> None:
    data = tmp_path / "csi-data" / "pvc-123"
    data.mkdir(parents=True)
    volume_dir = tmp_path / "pods" / POD_UID / "volumes" / "kubernetes.io~csi" / "pvc-123"
    volume_dir.mkdir(parents=True)
    os.symlink(data, volume_dir / "mount")
    assert find_volume_path(tmp_path / "pods", POD_UID, "pvc-123/mount") == data.resolve()


def test_empty_dir_is_found_under_its_plugin_directory(tmp_path: Path) -> None:
    cache = tmp_path / "pods" / POD_UID / "volumes" / "kubernetes.io~empty-dir" / "cache"
    cache.mkdir(parents=True)
    (tmp_path / "pods" / POD_UID / "volumes" / "kubernetes.io~configmap" / "config").mkdir(parents=True)
    assert find_volume_path(tmp_path / "pods", POD_UID, "cache") == cache.resolve()


def test_volume_of_a_pod_not_on_this_node_is_not_found_with_a_hint(tmp_path: Path) -> None:
    (tmp_path / "pods").mkdir()
    with pytest.raises(NotFoundError) as raised:
        find_volume_path(tmp_path / "pods", POD_UID, "cache")
    assert "must be running on this node" in str(raised.value)


def test_two_matching_volume_directories_are_ambiguous(tmp_path: Path) -> None:
    for plugin in ("kubernetes.io~empty-dir", "kubernetes.io~other"):
        (tmp_path / POD_UID / "volumes" / plugin / "cache").mkdir(parents=True)
    with pytest.raises(UsageError, match="more than one volume directory"):
        find_volume_path(tmp_path, POD_UID, "cache")


@pytest.mark.parametrize("uid, directory", [("..", "x"), (POD_UID, "../escape"), ("", "x")])
def test_path_components_that_could_escape_the_tree_are_refused(
    tmp_path: Path, uid: str, directory: str
) -> None:
    with pytest.raises(UsageError, match="invalid volume path component"):
        find_volume_path(tmp_path, uid, directory)


def test_glob_characters_in_names_match_literally(tmp_path: Path) -> None:
    (tmp_path / POD_UID / "volumes" / "p" / "ab").mkdir(parents=True)
    with pytest.raises(NotFoundError):
        find_volume_path(tmp_path, POD_UID, "a*")
