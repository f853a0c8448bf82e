"""The doctor's judging functions, each with a planted case of the troubleshooting chapter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from strongroom.cluster import doctor
from strongroom.cluster.doctor import Status

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def _obj(
    name: str, *, spec: dict[str, Any] | None = None, status: dict[str, Any] | None = None, **meta: Any
) -> dict[str, Any]:
    return {"metadata": {"name": name, **meta}, "spec": spec or {}, "status": status or {}}


def _statuses(findings: list[doctor.Finding]) -> list[Status]:
    return [f.status for f in findings]


def test_invalid_directories_names_the_location_and_the_prefix_fix() -> None:
    found = doctor.invalid_directories(
        {"default": "Backup store contains invalid top-level directories: [junk]", "other": None}
    )
    assert _statuses(found) == [Status.problem]
    assert found[0].subject == "BackupStorageLocation/default"
    assert "junk" in found[0].found
    assert "objectStorage.prefix" in found[0].fix


def test_valid_stores_are_ok_and_no_store_is_skipped() -> None:
    assert _statuses(doctor.invalid_directories({"default": None})) == [Status.ok]
    assert _statuses(doctor.invalid_directories({})) == [Status.skipped]


def test_malformed_credentials_show_the_missing_key_and_the_file_format() -> None:
    message = (
        "key 'cloud' of Secret 'cloud-credentials': profile [default] (line 1) has no aws_secret_access_key"
    )
    found = doctor.malformed_credentials({"default": message})
    assert _statuses(found) == [Status.problem]
    assert "aws_secret_access_key" in found[0].found
    assert "[default]" in found[0].fix
    assert _statuses(doctor.malformed_credentials({"default": None})) == [Status.ok]


def _pv(name: str, region: str, label: str = doctor.REGION_LABELS[0]) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {label: region}}}


def test_snapshot_location_in_another_region_than_the_pvs_is_a_problem() -> None:
    vsl = _obj("default", spec={"provider": "aws", "config": {"region": "us-west-2"}})
    found = doctor.region_mismatch([vsl], [_pv("pv-1", "us-east-1", doctor.REGION_LABELS[1])])
    assert _statuses(found) == [Status.problem]
    assert "us-west-2" in found[0].found
    assert "us-east-1" in found[0].found
    assert "InvalidVolume.NotFound" in found[0].found
    assert "snapshotLocations.velero.config.region" in found[0].fix


def test_snapshot_location_in_the_pvs_region_is_ok_and_no_labels_skip() -> None:
    vsl = _obj("default", spec={"config": {"region": "us-east-1"}})
    assert _statuses(doctor.region_mismatch([vsl], [_pv("pv-1", "us-east-1")])) == [Status.ok]
    assert _statuses(doctor.region_mismatch([vsl], [{"metadata": {"name": "pv"}}])) == [Status.skipped]
    assert _statuses(doctor.region_mismatch([], [_pv("pv-1", "us-east-1")])) == [Status.skipped]


def _in_progress(name: str, started: datetime) -> dict[str, Any]:
    return _obj(
        name, status={"phase": "InProgress", "startTimestamp": started.strftime("%Y-%m-%dT%H:%M:%SZ")}
    )


def test_backup_in_progress_for_two_hours_is_stuck() -> None:
    found = doctor.stuck_runs(
        [("Backup", _in_progress("old", NOW - timedelta(hours=2))), ("Backup", _in_progress("new", NOW))],
        now=NOW,
        stuck_after=timedelta(hours=1),
        server_running=True,
        namespace="openshift-adp",
    )
    assert _statuses(found) == [Status.problem]
    assert found[0].subject == "Backup/old"
    assert "2h0m" in found[0].found
    assert "oc delete backup old -n openshift-adp" in found[0].fix


def test_a_run_in_progress_without_a_server_is_stuck_at_once() -> None:
    found = doctor.stuck_runs(
        [("Restore", _in_progress("r", NOW))],
        now=NOW,
        stuck_after=timedelta(hours=1),
        server_running=False,
        namespace="velero",
    )
    assert _statuses(found) == [Status.problem]
    assert "no strongroom/velero server pod is Running" in found[0].found


def test_completed_runs_are_not_stuck() -> None:
    done = _obj("b", status={"phase": "Completed", "startTimestamp": "2020-01-01T00:00:00Z"})
    found = doctor.stuck_runs(
        [("Backup", done)], now=NOW, stuck_after=timedelta(hours=1), server_running=False, namespace="x"
    )
    assert _statuses(found) == [Status.ok]


def test_ready_repository_without_its_config_in_the_bucket_is_a_problem() -> None:
    repo = _obj(
        "app-default-restic",
        spec={"volumeNamespace": "app", "backupStorageLocation": "default"},
        status={"phase": "Ready"},
    )
    found = doctor.missing_repositories([repo], {"app-default-restic": False})
    assert _statuses(found) == [Status.problem]
    assert "restic/app/config" in found[0].found
    assert "delete the BackupRepository" in found[0].fix
    assert _statuses(doctor.missing_repositories([repo], {"app-default-restic": True})) == [Status.ok]
    assert _statuses(doctor.missing_repositories([repo], {})) == [Status.skipped]
    assert _statuses(doctor.missing_repositories([], {})) == [Status.skipped]


def test_pod_volume_backup_permission_denied_suggests_supplemental_groups() -> None:
    failed = _obj(
        "pvb-1",
        spec={"pod": {"namespace": "app", "name": "web-0"}, "volume": "data"},
        status={"phase": "Failed", "message": 'fork/exec /usr/bin/restic: permission denied"'},
    )
    other = _obj("pvb-2", status={"phase": "Failed", "message": "timed out"})
    found = doctor.nfs_permission_denied([("PodVolumeBackup", failed), ("PodVolumeBackup", other)])
    assert _statuses(found) == [Status.problem]
    assert found[0].subject == "PodVolumeBackup/pvb-1"
    assert "root_squash" in found[0].found
    assert "restic.supplementalGroups" in found[0].fix
    assert "--node-agent-supplemental-groups" in found[0].fix
    assert _statuses(doctor.nfs_permission_denied([("PodVolumeRestore", other)])) == [Status.ok]


def test_partially_failed_restore_naming_deploymentconfigs_suggests_the_two_step_restore() -> None:
    restore = _obj(
        "r1", spec={"backupName": "b1", "includedNamespaces": ["app"]}, status={"phase": "PartiallyFailed"}
    )
    messages = {"r1": ["error restoring deploymentconfigs.apps.openshift.io/app/web: pods redeployed"]}
    found = doctor.deploymentconfig_restores([restore], messages, namespace="openshift-adp")
    assert _statuses(found) == [Status.problem]
    fix = found[0].fix
    assert (
        "--exclude-resources replicationcontroller,deploymentconfig,templateinstances.template.openshift.io"
        in fix
    )
    assert "--include-resources replicationcontroller,deploymentconfig" in fix
    assert "--from-backup b1" in fix
    assert "--include-namespaces app" in fix


def test_failed_restore_for_other_reasons_is_not_blamed_on_deploymentconfigs() -> None:
    restore = _obj("r1", status={"phase": "PartiallyFailed"})
    found = doctor.deploymentconfig_restores([restore], {"r1": ["configmaps/x: conflict"]}, namespace="n")
    assert _statuses(found) == [Status.ok]
    assert _statuses(doctor.deploymentconfig_restores([], {}, namespace="n")) == [Status.ok]


def test_unhealthy_etcd_member_is_reported() -> None:
    found = doctor.etcd_members(
        [{"name": "m1", "healthy": True}, {"name": "m2", "healthy": False, "error": "connection refused"}]
    )
    assert _statuses(found) == [Status.problem]
    assert "m2" in found[0].subject
    assert "connection refused" in found[0].found
    assert _statuses(doctor.etcd_members([{"name": "m1", "healthy": True}])) == [Status.ok]


def test_findings_serialise_without_enum_objects() -> None:
    finding = doctor.skipped(doctor.ETCD_MEMBERS, "no --etcd-endpoints given")[0]
    assert finding.to_json() == {
        "check": "etcd-members",
        "status": "SKIPPED",
        "subject": "",
        "found": "no --etcd-endpoints given",
        "fix": "",
    }


def test_cluster_proxy_judges_the_server_and_the_in_cluster_endpoints() -> None:
    from strongroom.model.proxy import ProxySettings

    cluster = ProxySettings(
        "http://u:pw@proxy:3128", "http://u:pw@proxy:3128", ".cluster.local,172.30.0.0/16"
    )
    endpoints = {"minio": "http://minio.minio.svc:9000", "aws": "https://s3.us-east-1.amazonaws.com"}
    # The server runs without the proxy the cluster has.
    missing = doctor.cluster_proxy(cluster, ProxySettings(), {}, deployment="velero")
    assert [f.subject for f in missing] == ["Deployment/velero"]
    assert "runs without one" in missing[0].found and "pw" not in missing[0].found
    assert "strongroom install" in missing[0].fix
    # It runs with it, but the in-cluster MinIO is not exempted: only that location is a problem.
    routed = doctor.cluster_proxy(cluster, cluster, endpoints)
    assert [(f.status, f.subject) for f in routed] == [(doctor.Status.problem, "BackupStorageLocation/minio")]
    assert "minio.minio.svc" in routed[0].fix
    exempt = ProxySettings(cluster.http_proxy, cluster.https_proxy, cluster.no_proxy + ",.svc")
    assert [f.status for f in doctor.cluster_proxy(exempt, exempt, endpoints)] == [doctor.Status.ok]
    # The Proxy changed after the install.
    changed = doctor.cluster_proxy(exempt, cluster, {})
    assert "other settings" in changed[0].found
    # No proxy anywhere.
    assert doctor.cluster_proxy(None, None, endpoints)[0].found == "no cluster-wide proxy is set"


def test_malformed_credentials_show_the_format_of_each_provider() -> None:
    probes = {
        "aws": "no aws_secret_access_key",
        "azure": "line 2: expected KEY=VALUE",
        "gcp": "no private_key",
    }
    found = doctor.malformed_credentials(probes, {"aws": "aws", "azure": "azure", "gcp": "gcp"})
    fixes = {f.subject.removeprefix("BackupStorageLocation/"): f.fix for f in found}
    assert "aws_secret_access_key=<AWS_SECRET_ACCESS_KEY>" in fixes["aws"]
    assert (
        "AZURE_STORAGE_ACCOUNT_ACCESS_KEY" in fixes["azure"] and "cloud-credentials-azure" in fixes["azure"]
    )
    assert "JSON key" in fixes["gcp"] and "cloud-credentials-gcp" in fixes["gcp"]


def _azure_location(**config: str) -> dict[str, Any]:
    base = {"storageAccount": "velerostore", "storageAccountKeyEnvVar": "AZURE_STORAGE_ACCOUNT_ACCESS_KEY"}
    return _obj(
        "azure", spec={"provider": "azure", "objectStorage": {"bucket": "c"}, "config": {**base, **config}}
    )


def test_locations_restic_cannot_reach_are_problems_with_what_to_change() -> None:
    from strongroom.cli.doctor import _restic_reach
    from strongroom.storage.azure import parse_azure_credentials

    credentials = parse_azure_credentials(
        "AZURE_STORAGE_ACCOUNT_ACCESS_KEY=c2VjcmV0LWtleQ==\nAZURE_CLOUD_NAME=AzurePublicCloud\n"
    )
    probes = {
        "public": _restic_reach(_azure_location(), credentials),
        "stack": _restic_reach(
            _azure_location(storageAccountURI="https://azs.local/velerostore"), credentials
        ),
        "gcs-private": _restic_reach(
            _obj(
                "gcs-private",
                spec={
                    "provider": "gcp",
                    "objectStorage": {"bucket": "b"},
                    "config": {"storeEndpoint": "https://gcs.internal"},
                },
            ),
            None,
        ),
    }
    assert probes["public"] is None
    found = doctor.restic_unreachable(probes)
    assert [(f.status, f.subject) for f in found] == [
        (Status.problem, "BackupStorageLocation/gcs-private"),
        (Status.problem, "BackupStorageLocation/stack"),
    ]
    assert "https://gcs.internal" in found[0].found and "storage.googleapis.com" in found[0].fix
    assert "https://azs.local/velerostore" in found[1].found and "blob.core.windows.net" in found[1].fix
    assert "c2VjcmV0LWtleQ==" not in str(found)


def test_restic_reach_is_ok_when_every_location_is_reachable_and_skipped_without_any() -> None:
    assert _statuses(doctor.restic_unreachable({"public": None})) == [Status.ok]
    assert _statuses(doctor.restic_unreachable({})) == [Status.skipped]
