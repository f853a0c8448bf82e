"""The in-cluster server on the sandbox: the seed's resources applied with kubectl reach their documented states.

Each test runs `strongroom server` as a real process (as its Deployment
does) for a namespace of its own, and drives it only through the API:
kubectl apply of Velero/OADP resources, then reading their status.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.conftest import Sandbox
from tests.faultproxy import Fault, FaultProxy, Request
from tests.integration.backupkit import deploy_sample, unique
from tests.integration.s3server import MotoServer, moto_server
from tests.integration.sandboxapi import eventually
from tests.integration.serverkit import (
    ServerProcess,
    apply_yaml,
    backup,
    get,
    install_crds,
    local_location,
    velero,
    wait_phase,
)

from strongroom.model.velero import parse_timestamp
from strongroom.sandbox import runner

pytestmark = pytest.mark.integration

SEED = Path(__file__).parents[1] / "data" / "seed"
ACCESS_KEY = "AKIASERVERTESTS00001"
SECRET_KEY = "server-test-secret-key-never-logged"


@pytest.fixture(scope="module")
def crds(sandbox: Sandbox) -> None:
    install_crds(sandbox)


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    with moto_server(tmp_path_factory.mktemp("moto-server")) as server:
        yield server


@pytest.fixture
def adp(sandbox: Sandbox, crds: None) -> Iterator[str]:
    """The server's namespace (openshift-adp in the seed), one per test."""
    name = unique("adp")
    sandbox.kubectl("create", "namespace", name)
    yield name
    sandbox.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[ServerProcess]]:
    started: list[ServerProcess] = []
    yield started
    for server in started:
        server.stop()


def start_server(
    sandbox: Sandbox,
    namespace: str,
    tmp_path: Path,
    servers: list[ServerProcess],
    *extra: str,
    name: str = "server",
) -> ServerProcess:
    server = ServerProcess(sandbox, namespace, tmp_path / f"{name}-{len(servers)}.log", tuple(extra)).start()
    servers.append(server)
    return server


def seed(name: str, **replacements: str) -> dict[str, Any]:
    text = (SEED / name).read_text()
    for old, new in replacements.items():
        text = text.replace(old, new)
    document: dict[str, Any] = yaml.safe_load(text)
    return document


def credentials_secret(namespace: str) -> dict[str, Any]:
    content = f"[default]\naws_access_key_id={ACCESS_KEY}\naws_secret_access_key={SECRET_KEY}\n"
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "cloud-credentials", "namespace": namespace},
        "data": {"cloud": base64.b64encode(content.encode()).decode()},
    }


def s3_dpa(namespace: str, endpoint: str, bucket: str) -> dict[str, Any]:
    """The seed's MCG DataProtectionApplication, pointed at the test's S3 server, named as the Backup example expects."""
    dpa = seed("dpa-1032-mcg.yaml")
    dpa["metadata"] = {"name": "velero-sample", "namespace": namespace}
    location = dpa["spec"]["backupLocations"][0]["velero"]
    location["config"]["s3Url"] = endpoint
    location["objectStorage"]["bucket"] = bucket
    return dpa


def kubectl_get_all(sandbox: Sandbox, namespace: str) -> str:
    return sandbox.kubectl("get", "all", "-n", namespace).stdout


def test_the_seed_dpa_backup_and_restore_reach_their_documented_states(
    sandbox: Sandbox, adp: str, moto: MotoServer, tmp_path: Path, servers: list[ServerProcess]
) -> None:
    bucket = f"strongroom-{uuid.uuid4().hex[:12]}"
    moto.create_bucket(bucket)
    app = unique("nginx-example")
    # A CRD group of the test's own: the sample's CRD is cluster-wide.
    deploy_sample(sandbox, app, f"{app}.example.com")
    before = kubectl_get_all(sandbox, app)
    server = start_server(sandbox, adp, tmp_path, servers)
    apply_yaml(sandbox, credentials_secret(adp), s3_dpa(adp, moto.endpoint, bucket))

    def reconciled() -> bool:
        dpa = get(sandbox, "dataprotectionapplications", "velero-sample", adp) or {}
        conditions = {c["type"]: c for c in (dpa.get("status") or {}).get("conditions", [])}
        return conditions.get("Reconciled", {}).get("status") == "True"

    eventually(reconciled, timeout=30)
    wait_phase(sandbox, "backupstoragelocations", "velero-sample-1", adp, ("Available",))

    backup_doc = seed("backup.yaml", **{"nginx-example": app})
    backup_doc["metadata"]["namespace"] = adp
    apply_yaml(sandbox, backup_doc)
    done = wait_phase(sandbox, "backups", "nginx-backup", adp, ("Completed", "PartiallyFailed", "Failed"))
    assert done["status"]["phase"] == "Completed", done["status"]
    assert done["metadata"]["labels"]["velero.io/storage-location"] == "velero-sample-1"
    assert done["status"]["progress"]["itemsBackedUp"] > 5
    assert done["status"]["expiration"]
    listing = sandbox.kubectl("get", "backups", "-n", adp).stdout
    assert "nginx-backup" in listing and "Completed" in listing and "velero-sample-1" in listing
    keys = {obj["Key"] for obj in moto.client().list_objects_v2(Bucket=bucket)["Contents"]}
    assert "velero/backups/nginx-backup/velero-backup.json" in keys

    sandbox.kubectl("delete", "namespace", app, "--wait=true", timeout=120)
    restore_doc = seed("restore.yaml")
    restore_doc["metadata"]["namespace"] = adp
    apply_yaml(sandbox, restore_doc)
    restored = wait_phase(
        sandbox, "restores", "nginx-restore", adp, ("Completed", "PartiallyFailed", "Failed")
    )
    assert restored["status"]["phase"] == "Completed", restored["status"]
    assert restored["status"]["progress"]["itemsRestored"] > 5
    after = kubectl_get_all(sandbox, app)
    for line in before.splitlines()[1:]:
        if line.strip() and not line.startswith("NAME"):
            assert line.split()[0] in after

    # Metrics: the attempt and its success are counted; no secret is in the log.
    metrics = urllib.request.urlopen(f"{server.metrics_url}/metrics", timeout=5).read().decode()
    assert 'velero_backup_success_total{schedule=""} 1.0' in metrics
    assert 'velero_restore_success_total{schedule=""} 1.0' in metrics
    assert 'velero_backup_location_status_gauge{backup_location_name="velero-sample-1"} 1.0' in metrics
    assert SECRET_KEY not in server.log_path.read_text()
    sandbox.kubectl("delete", "namespace", app, "--wait=false")
    sandbox.kubectl("delete", "crd", f"crontabs.{app}.example.com", "--wait=false")


def test_backups_fail_validation_for_a_missing_unavailable_or_read_only_location(
    sandbox: Sandbox, adp: str, tmp_path: Path, servers: list[ServerProcess]
) -> None:
    start_server(sandbox, adp, tmp_path, servers)
    apply_yaml(
        sandbox,
        local_location("ro", adp, tmp_path / "ro", accessMode="ReadOnly"),
        {
            **local_location("gone", adp, tmp_path / "gone"),
            "spec": {"provider": "local", "objectStorage": {"bucket": str(tmp_path / "missing-dir")}},
        },
    )
    wait_phase(sandbox, "backupstoragelocations", "ro", adp, ("Available",))
    unavailable = wait_phase(sandbox, "backupstoragelocations", "gone", adp, ("Unavailable",))
    assert "does not exist" in unavailable["status"]["message"]
    assert unavailable["status"]["lastValidationTime"]

    apply_yaml(
        sandbox,
        backup("to-nowhere", adp, storageLocation="nowhere"),
        backup("to-ro", adp, storageLocation="ro"),
        backup("to-gone", adp, storageLocation="gone"),
        backup(
            "both-selectors",
            adp,
            storageLocation="ro",
            labelSelector={"matchLabels": {"a": "b"}},
            orLabelSelectors=[{"matchLabels": {"c": "d"}}],
        ),
    )
    errors = {}
    for name in ("to-nowhere", "to-ro", "to-gone", "both-selectors"):
        failed = wait_phase(sandbox, "backups", name, adp, ("FailedValidation",))
        errors[name] = " ".join(failed["status"]["validationErrors"])
    assert "nowhere does not exist" in errors["to-nowhere"]
    assert "read-only mode" in errors["to-ro"]
    assert "Unavailable" in errors["to-gone"]
    assert (
        "labelSelector as well as orLabelSelectors" in errors["both-selectors"]
        or "selector" in errors["both-selectors"]
    )
    assert get(sandbox, "backups", "to-ro", adp)["metadata"]["labels"]["velero.io/storage-location"] == "ro"


def test_invalid_schedules_and_restores_fail_and_the_server_keeps_working(
    sandbox: Sandbox, adp: str, tmp_path: Path, servers: list[ServerProcess]
) -> None:
    start_server(sandbox, adp, tmp_path, servers)
    apply_yaml(
        sandbox,
        {
            **local_location("default", adp, tmp_path / "bucket"),
            "spec": {**local_location("default", adp, tmp_path / "bucket")["spec"], "default": True},
        },
    )
    apply_yaml(
        sandbox,
        velero("Schedule", "bad-cron", adp, schedule="0 25 * * *", template={"includedNamespaces": ["x"]}),
        velero("Restore", "from-nothing", adp, backupName="no-such-backup"),
        velero("Restore", "no-source", adp),
        velero(
            "Restore",
            "bad-init-hook",
            adp,
            backupName="no-such-backup",
            hooks={
                "resources": [{"name": "h", "postHooks": [{"init": {"initContainers": [{"name": "x"}]}}]}]
            },
        ),
    )
    bad = wait_phase(sandbox, "schedules", "bad-cron", adp, ("FailedValidation",))
    hook = wait_phase(sandbox, "restores", "bad-init-hook", adp, ("FailedValidation",))
    assert any("invalid InitContainer" in message for message in hook["status"]["validationErrors"])
    assert "invalid schedule" in bad["status"]["validationErrors"][0]
    missing = wait_phase(sandbox, "restores", "from-nothing", adp, ("FailedValidation",))
    assert "no-such-backup" in missing["status"]["validationErrors"][0]
    wait_phase(sandbox, "restores", "no-source", adp, ("FailedValidation",))
    # The server is unaffected: a good backup still completes.
    apply_yaml(sandbox, backup("fine", adp, includedNamespaces=["kube-public"]))
    assert wait_phase(sandbox, "backups", "fine", adp, ("Completed",))["status"]["phase"] == "Completed"
    # The seed's daily schedule is accepted and waits for 07:00.
    daily = seed("schedule.yaml")
    daily["metadata"]["namespace"] = adp
    daily["spec"]["template"]["storageLocation"] = "default"
    apply_yaml(sandbox, daily)
    enabled = wait_phase(sandbox, "schedules", "nginx-daily", adp, ("Enabled",))
    assert not (enabled.get("status") or {}).get("lastBackup")


def test_a_schedule_fires_its_backups_and_ttl_expiry_deletes_them(
    sandbox: Sandbox, adp: str, tmp_path: Path, servers: list[ServerProcess]
) -> None:
    server = start_server(sandbox, adp, tmp_path, servers, "--garbage-collection-frequency", "1s")
    bucket = tmp_path / "bucket"
    apply_yaml(sandbox, local_location("default", adp, bucket))
    wait_phase(sandbox, "backupstoragelocations", "default", adp, ("Available",))
    apply_yaml(
        sandbox,
        {
            "apiVersion": "velero.io/v1",
            "kind": "Schedule",
            "metadata": {"name": "often", "namespace": adp, "labels": {"team": "a"}},
            "spec": {
                "schedule": "@every 2s",
                "useOwnerReferencesInBackup": True,
                "template": {"includedNamespaces": ["kube-public"], "ttl": "3s"},
            },
        },
    )

    def scheduled() -> list[dict[str, Any]]:
        items = sandbox.kubectl_json("get", "backups", "-n", adp, "-l", "velero.io/schedule-name=often")[
            "items"
        ]
        return [b for b in items if (b.get("status") or {}).get("phase") == "Completed"]

    first = eventually(scheduled, timeout=30)[0]
    assert (
        first["metadata"]["name"].startswith("often-")
        and len(first["metadata"]["name"]) == len("often-") + 14
    )
    assert first["metadata"]["labels"]["team"] == "a"
    owner = first["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("Schedule", "often", True)
    schedule = get(sandbox, "schedules", "often", adp)
    assert schedule["status"]["phase"] == "Enabled" and schedule["status"]["lastBackup"]
    name = first["metadata"]["name"]
    assert (bucket / "velero" / "backups" / name / "velero-backup.json").exists()

    metrics = urllib.request.urlopen(f"{server.metrics_url}/metrics", timeout=5).read().decode()
    assert 'velero_schedule_expected_interval_seconds{schedule="often"} 2.0' in metrics

    sandbox.kubectl("patch", "schedule", "often", "-n", adp, "--type=merge", "-p", '{"spec":{"paused":true}}')
    # Expired: a DeleteBackupRequest removes the files, then the resource.
    eventually(lambda: get(sandbox, "backups", name, adp) is None, timeout=40, interval=0.3)
    assert not (bucket / "velero" / "backups" / name).exists()


def test_a_killed_server_leaves_no_backup_in_progress_and_the_next_one_completes(
    sandbox: Sandbox, adp: str, moto: MotoServer, tmp_path: Path, servers: list[ServerProcess]
) -> None:
    bucket = f"strongroom-{uuid.uuid4().hex[:12]}"
    moto.create_bucket(bucket)

    def stall_tarball(request: Request) -> tuple[Fault, ...]:
        return (Fault.STALL,) if request.method == "PUT" and request.path.endswith(".tar.gz") else ()

    proxy = FaultProxy(
        moto.endpoint, rate=1.0, kinds=[Fault.STALL], eligibility=stall_tarball, stall_seconds=120
    ).start()
    # The killed server's lease runs out 2 s after its last renewal: by the time the new
    # process has started, it can take over at once (with the usual 4 s it waited ~2 s).
    short_lease = ("--lease-duration", "2s", "--renew-deadline", "1.5s", "--retry-period", "0.25s")
    try:
        server = start_server(sandbox, adp, tmp_path, servers, *short_lease)
        location = velero(
            "BackupStorageLocation",
            "default",
            adp,
            provider="aws",
            default=True,
            objectStorage={"bucket": bucket, "prefix": "velero"},
            config={"region": "minio", "s3Url": proxy.url, "s3ForcePathStyle": "true"},
        )
        apply_yaml(sandbox, credentials_secret(adp), location)
        wait_phase(sandbox, "backupstoragelocations", "default", adp, ("Available",))
        apply_yaml(sandbox, backup("interrupted", adp, includedNamespaces=["kube-public"]))
        wait_phase(sandbox, "backups", "interrupted", adp, ("InProgress",))
        eventually(lambda: any(".tar.gz" in e.request for e in proxy.events), timeout=20)
        server.kill()
        proxy.healthy()

        restarted = start_server(sandbox, adp, tmp_path, servers, *short_lease)
        failed = wait_phase(sandbox, "backups", "interrupted", adp, ("Failed",), timeout=40)
        assert "during the server starting" in failed["status"]["failureReason"]
        restarted.wait_leading()
        apply_yaml(sandbox, backup("after-restart", adp, includedNamespaces=["kube-public"]))
        assert wait_phase(sandbox, "backups", "after-restart", adp, ("Completed",), timeout=40)
        keys = {obj["Key"] for obj in moto.client().list_objects_v2(Bucket=bucket).get("Contents", [])}
        assert not any(key.startswith("velero/backups/interrupted/") for key in keys)
    finally:
        proxy.stop()


def test_two_replicas_elect_one_leader_and_the_standby_takes_over(
    sandbox: Sandbox, adp: str, tmp_path: Path, servers: list[ServerProcess]
) -> None:
    first = start_server(sandbox, adp, tmp_path, servers, name="first")
    first.wait_leading()
    second = start_server(sandbox, adp, tmp_path, servers, name="second")
    eventually(lambda: second.logged("waiting for the leader lease"), timeout=20)
    lease = sandbox.kubectl_json("get", "lease", "strongroom-server", "-n", adp)
    assert lease["spec"]["holderIdentity"].startswith("first-")
    time.sleep(2)  # the standby keeps standing by while the leader renews
    assert not second.logged("became the leader")

    apply_yaml(sandbox, local_location("default", adp, tmp_path / "bucket"))
    apply_yaml(sandbox, backup("once", adp, includedNamespaces=["kube-public"]))
    wait_phase(sandbox, "backups", "once", adp, ("Completed",))
    assert first.logged("backup once started") and not second.logged("backup once started")

    assert first.stop() == 0  # a clean stop releases the lease
    second.wait_leading(timeout=15)
    apply_yaml(sandbox, backup("twice", adp, includedNamespaces=["kube-public"]))
    wait_phase(sandbox, "backups", "twice", adp, ("Completed",))
    assert second.logged("backup twice started")


def test_a_second_cluster_sharing_the_bucket_syncs_the_backups(
    sandbox: Sandbox,
    adp: str,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    servers: list[ServerProcess],
) -> None:
    bucket = tmp_path / "shared"
    start_server(sandbox, adp, tmp_path, servers)
    apply_yaml(sandbox, local_location("default", adp, bucket))
    wait_phase(sandbox, "backupstoragelocations", "default", adp, ("Available",))
    apply_yaml(sandbox, backup("shared-one", adp, includedNamespaces=["kube-public"]))
    wait_phase(sandbox, "backups", "shared-one", adp, ("Completed",))

    other_dir = tmp_path_factory.mktemp("second-sandbox")
    state = runner.start_detached(other_dir, port=None, nodes=1, insecure=False)
    try:
        other = Sandbox(other_dir, state.kubeconfig, state.server)
        install_crds(other)
        other.kubectl("create", "namespace", "openshift-adp")
        start_server(other, "openshift-adp", tmp_path, servers, name="other")
        apply_yaml(other, local_location("main", "openshift-adp", bucket))
        synced = wait_phase(other, "backups", "shared-one", "openshift-adp", ("Completed",), timeout=30)
        assert synced["spec"]["storageLocation"] == "main"
        assert synced["metadata"]["labels"]["velero.io/storage-location"] == "main"
        # Files removed from the bucket: the Completed backup's resource goes too.
        for path in sorted((bucket / "velero" / "backups" / "shared-one").iterdir()):
            path.unlink()
        (bucket / "velero" / "backups" / "shared-one").rmdir()
        eventually(lambda: get(other, "backups", "shared-one", "openshift-adp") is None, timeout=30)
    finally:
        for server in [s for s in servers if s.sandbox.dir == other_dir]:
            server.stop()
        runner.stop(other_dir)


def test_download_and_delete_requests_are_answered(
    sandbox: Sandbox, adp: str, tmp_path: Path, servers: list[ServerProcess]
) -> None:
    bucket = tmp_path / "bucket"
    start_server(sandbox, adp, tmp_path, servers)
    apply_yaml(sandbox, local_location("default", adp, bucket))
    wait_phase(sandbox, "backupstoragelocations", "default", adp, ("Available",))
    apply_yaml(sandbox, backup("kept", adp, includedNamespaces=["kube-public"]))
    wait_phase(sandbox, "backups", "kept", adp, ("Completed",))
    apply_yaml(
        sandbox,
        velero("DownloadRequest", "logs", adp, target={"kind": "BackupLog", "name": "kept"}),
        {
            "apiVersion": "velero.io/v1",
            "kind": "ServerStatusRequest",
            "metadata": {"name": "ssr", "namespace": adp},
        },
    )
    answered = wait_phase(sandbox, "downloadrequests", "logs", adp, ("Processed",))
    url = answered["status"]["downloadURL"]
    assert url.startswith("file://") and url.endswith("/backups/kept/kept-logs.gz")
    assert answered["status"]["expiration"]
    assert wait_phase(sandbox, "serverstatusrequests", "ssr", adp, ("Processed",))["status"]["serverVersion"]

    apply_yaml(
        sandbox,
        velero("DeleteBackupRequest", "del", adp, backupName="kept"),
    )
    assert (
        wait_phase(sandbox, "deletebackuprequests", "del", adp, ("Processed",))["status"].get("errors")
        is None
    )
    eventually(lambda: get(sandbox, "backups", "kept", adp) is None)
    assert not (bucket / "velero" / "backups" / "kept").exists()
    events = json.loads(sandbox.kubectl("get", "events", "-n", adp, "-o", "json").stdout)["items"]
    assert any(e["reason"] == "Completed" and e["involvedObject"]["name"] == "kept" for e in events)


def test_expired_backups_of_an_unavailable_location_are_kept_and_labelled(
    sandbox: Sandbox, adp: str, tmp_path: Path, servers: list[ServerProcess]
) -> None:
    # Locations validated every second, so that the short-lived backup's location is seen
    # Unavailable well before its TTL runs out (and Available again soon after).
    start_server(
        sandbox, adp, tmp_path, servers,
        "--garbage-collection-frequency", "1s", "--store-validation-frequency", "1s",
    )  # fmt: skip
    bucket = tmp_path / "bucket"
    apply_yaml(sandbox, local_location("default", adp, bucket))
    wait_phase(sandbox, "backupstoragelocations", "default", adp, ("Available",))
    # A backup that never ran expires too, wherever it meant to go (its location does not exist).
    apply_yaml(
        sandbox,
        backup("short-lived", adp, includedNamespaces=["kube-public"], ttl="6s"),
        backup("never-ran", adp, storageLocation="nowhere", ttl="1s"),
    )
    assert wait_phase(sandbox, "backups", "never-ran", adp, ("FailedValidation",))["status"]["expiration"]
    completed = wait_phase(sandbox, "backups", "short-lived", adp, ("Completed",))
    expiration = parse_timestamp(completed["status"]["expiration"])
    assert expiration is not None

    # Someone else's files at the top of the prefix: Velero's check makes the location Unavailable.
    (bucket / "velero" / "not-velero").mkdir(parents=True)
    (bucket / "velero" / "not-velero" / "data.txt").write_text("not a backup")
    unavailable = wait_phase(sandbox, "backupstoragelocations", "default", adp, ("Unavailable",))
    assert "invalid top-level directories: [not-velero]" in unavailable["status"]["message"]
    # What this test is about: the backup expires while its location is Unavailable.
    assert datetime.now(UTC) < expiration, "the location became Unavailable only after the backup expired"

    eventually(lambda: get(sandbox, "backups", "never-ran", adp) is None, timeout=20, interval=0.3)
    labelled = eventually(
        lambda: (
            (get(sandbox, "backups", "short-lived", adp) or {})
            .get("metadata", {})
            .get("labels", {})
            .get("velero.io/gc-failure")
        ),
        timeout=20,
    )
    assert labelled == "BSLUnavailable"
    assert (bucket / "velero" / "backups" / "short-lived" / "velero-backup.json").exists()

    (bucket / "velero" / "not-velero" / "data.txt").unlink()
    (bucket / "velero" / "not-velero").rmdir()
    wait_phase(sandbox, "backupstoragelocations", "default", adp, ("Available",))
    eventually(lambda: get(sandbox, "backups", "short-lived", adp) is None, timeout=30, interval=0.3)
    assert not (bucket / "velero" / "backups" / "short-lived").exists()


def test_a_restore_from_a_schedule_uses_its_newest_completed_backup(
    sandbox: Sandbox, adp: str, tmp_path: Path, servers: list[ServerProcess]
) -> None:
    start_server(sandbox, adp, tmp_path, servers)
    apply_yaml(sandbox, local_location("default", adp, tmp_path / "bucket"))
    wait_phase(sandbox, "backupstoragelocations", "default", adp, ("Available",))
    apply_yaml(
        sandbox,
        velero(
            "Schedule", "hourly", adp, schedule="@every 1s", template={"includedNamespaces": ["kube-public"]}
        ),
    )

    def completed() -> list[str]:
        items = sandbox.kubectl_json("get", "backups", "-n", adp, "-l", "velero.io/schedule-name=hourly")[
            "items"
        ]
        names = sorted(
            b["metadata"]["name"] for b in items if (b.get("status") or {}).get("phase") == "Completed"
        )
        return names if len(names) >= 2 else []

    eventually(completed, timeout=30)
    sandbox.kubectl(
        "patch", "schedule", "hourly", "-n", adp, "--type=merge", "-p", '{"spec":{"paused":true}}'
    )

    def settled() -> bool:
        # A backup fired just before the pause must finish before "newest" means anything.
        items = sandbox.kubectl_json("get", "backups", "-n", adp, "-l", "velero.io/schedule-name=hourly")[
            "items"
        ]
        return all((b.get("status") or {}).get("phase") not in (None, "", "New", "InProgress") for b in items)

    time.sleep(1.5)  # a tick that read the schedule before the pause may still fire once
    eventually(settled, timeout=30)
    newest = eventually(completed)[-1]
    apply_yaml(
        sandbox,
        velero("Restore", "latest", adp, scheduleName="hourly"),
    )
    restored = wait_phase(sandbox, "restores", "latest", adp, ("Completed", "PartiallyFailed", "Failed"))
    assert restored["status"]["phase"] == "Completed", restored["status"]
    assert restored["spec"]["backupName"] == newest


def test_a_dpa_waits_for_its_secret_and_its_log_level_applies(
    sandbox: Sandbox, adp: str, moto: MotoServer, tmp_path: Path, servers: list[ServerProcess]
) -> None:
    bucket = f"strongroom-{uuid.uuid4().hex[:12]}"
    moto.create_bucket(bucket)
    server = start_server(sandbox, adp, tmp_path, servers, "--log-level", "info")
    dpa = s3_dpa(adp, moto.endpoint, bucket)
    dpa["spec"]["configuration"]["velero"]["logLevel"] = "debug"
    apply_yaml(sandbox, dpa)

    def condition() -> dict[str, Any]:
        found = get(sandbox, "dataprotectionapplications", "velero-sample", adp) or {}
        return {c["type"]: c for c in (found.get("status") or {}).get("conditions", [])}.get("Reconciled", {})

    waiting = eventually(lambda: condition() if condition().get("status") == "False" else None, timeout=30)
    assert "cloud-credentials" in waiting["message"]
    assert get(sandbox, "backupstoragelocations", "velero-sample-1", adp) is None
    assert not [r for r in server.records() if r.get("level") == "debug"]

    # Only the Secret is created: the server notices without the DPA being touched.
    apply_yaml(sandbox, credentials_secret(adp))
    eventually(lambda: condition().get("status") == "True", timeout=30)
    wait_phase(sandbox, "backupstoragelocations", "velero-sample-1", adp, ("Available",))
    eventually(lambda: [r for r in server.records() if r.get("level") == "debug"], timeout=10)


def test_an_unexpected_failure_mid_backup_ends_it_failed_instead_of_in_progress(
    sandbox: Sandbox, adp: str, tmp_path: Path, servers: list[ServerProcess]
) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    start_server(sandbox, adp, tmp_path, servers, "--scratch-dir", str(scratch))
    apply_yaml(sandbox, local_location("default", adp, tmp_path / "bucket"))
    wait_phase(sandbox, "backupstoragelocations", "default", adp, ("Available",))
    scratch.rmdir()  # the work directory vanishes under the running server
    apply_yaml(sandbox, backup("no-room", adp, includedNamespaces=["kube-public"]))
    failed = wait_phase(sandbox, "backups", "no-room", adp, ("Failed", "Completed"))
    assert failed["status"]["phase"] == "Failed"
    assert failed["status"]["failureReason"].startswith("unexpected error: FileNotFoundError")
    scratch.mkdir()
    apply_yaml(sandbox, backup("room-again", adp, includedNamespaces=["kube-public"]))
    assert wait_phase(sandbox, "backups", "room-again", adp, ("Completed",))


def test_the_server_refuses_a_scratch_directory_that_does_not_exist(sandbox: Sandbox, tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "strongroom",
            "server",
            "--kubeconfig",
            sandbox.kubeconfig,
            "--scratch-dir",
            str(tmp_path / "missing"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "is not a writable directory" in result.stderr
