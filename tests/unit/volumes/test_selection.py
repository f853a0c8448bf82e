"""Velero's rules for which pod volumes file-system backup copies."""

from __future__ import annotations

from typing import Any

from strongroom.volumes.selection import defaults_to_fs_backup, select_pod_volumes


def pod(annotations: dict[str, str] | None = None, *, devices: bool = False) -> dict[str, Any]:
    volumes = [
        {"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
        {"name": "cache", "emptyDir": {}},
        {"name": "config", "configMap": {"name": "app"}},
        {"name": "creds", "secret": {"secretName": "app"}},
        {"name": "kube-api-access-x1y2z", "projected": {"sources": []}},
        {"name": "info", "downwardAPI": {"items": []}},
        {"name": "host", "hostPath": {"path": "/srv"}},
        {"name": "unmounted", "emptyDir": {}},
        {"name": "block", "persistentVolumeClaim": {"claimName": "block"}},
        {"name": "legacy", "persistentVolumeClaim": {"claimName": "legacy"}},
    ]
    mounts = [
        {"name": name, "mountPath": f"/{name}"}
        for name in ("data", "cache", "config", "creds", "host", "legacy")
    ]
    container: dict[str, Any] = {"name": "app", "image": "app", "volumeMounts": mounts}
    if devices:
        container["volumeDevices"] = [{"name": "block", "devicePath": "/dev/xvdb"}]
    return {
        "metadata": {"name": "p", "namespace": "ns", "annotations": annotations or {}},
        "spec": {"containers": [container], "volumes": volumes},
    }


def test_opt_in_copies_only_the_annotated_volumes() -> None:
    selection = select_pod_volumes(
        pod({"backup.velero.io/backup-volumes": "data, cache"}), default_to_fs_backup=False
    )
    assert selection.selected == ["data", "cache"]
    assert selection.skipped == {}


def test_opt_in_reports_volumes_it_cannot_copy() -> None:
    selection = select_pod_volumes(
        pod({"backup.velero.io/backup-volumes": "host,config,unmounted,missing,block"}, devices=True),
        default_to_fs_backup=False,
    )
    assert selection.selected == []
    assert set(selection.skipped) == {"host", "config", "unmounted", "missing", "block"}
    assert "hostPath" in selection.skipped["host"]
    assert "block" in selection.skipped["block"]
    assert "mounts" in selection.skipped["unmounted"]


def test_opt_out_copies_every_data_volume_but_the_excluded() -> None:
    selection = select_pod_volumes(
        pod({"backup.velero.io/backup-volumes-excludes": "cache"}, devices=True), default_to_fs_backup=True
    )
    # Object volumes are never copied; hostPath, block and unmounted ones are reported.
    assert selection.selected == ["data", "legacy"]
    assert selection.opted_out == ["cache"]
    assert set(selection.skipped) == {"host", "unmounted", "block"}


def test_claims_on_host_path_volumes_are_skipped() -> None:
    selection = select_pod_volumes(pod(), default_to_fs_backup=True, host_path_claims=["legacy"])
    assert "legacy" not in selection.selected
    assert "hostPath" in selection.skipped["legacy"]


def test_no_annotation_means_nothing_in_opt_in_mode() -> None:
    assert select_pod_volumes(pod(), default_to_fs_backup=False).selected == []


def test_backup_spec_decides_the_mode_before_the_server_default() -> None:
    assert defaults_to_fs_backup({"defaultVolumesToFsBackup": True}) is True
    assert defaults_to_fs_backup({"defaultVolumesToRestic": True}) is True
    assert defaults_to_fs_backup({"defaultVolumesToFsBackup": False}, server_default=True) is False
    assert defaults_to_fs_backup({}, server_default=True) is True
    assert defaults_to_fs_backup({}) is False
