"""The command line against an installed server: Velero's resources, DownloadRequests, and mode choice.

The sandbox has no kubelet, so "installed" is a Deployment object with the
server's labels, and the server's side of each contract is played by a small
thread of the test (``StandIn``): it moves Backups and Restores from New to a
final phase with progress, answers DownloadRequests with ``file://`` URLs and
carries out DeleteBackupRequests by deleting the Backup. The CLI runs
in-process, as ``strongroom`` would, against the real sandbox and the CRDs
strongroom installs.
"""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from tests.conftest import Sandbox
from tests.integration.backupkit import Cli, CliResult
from tests.integration.sandboxapi import Kube, eventually, unique
from tests.integration.serverkit import install_crds, shell_cli

GROUP, VERSION = "velero.io", "v1"
SERVER_LABELS = {"app.kubernetes.io/name": "strongroom", "app.kubernetes.io/component": "server"}
FROZEN = "test.strongroom.io/frozen"  # objects the stand-in leaves alone (seeded with a final status)


@pytest.fixture(scope="module")
def crds(sandbox: Sandbox) -> None:
    """The CRDs, as strongroom installs them."""
    install_crds(sandbox)


@pytest.fixture
def cli(sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    return shell_cli(sandbox, tmp_path / "config", monkeypatch)


def server_deployment(kube: Kube, namespace: str) -> None:
    body = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "strongroom", "namespace": namespace, "labels": SERVER_LABELS},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": SERVER_LABELS},
            "template": {
                "metadata": {"labels": SERVER_LABELS},
                "spec": {"containers": [{"name": "server", "image": "strongroom:test", "args": ["server"]}]},
            },
        },
    }
    kube.apps.create_namespaced_deployment(namespace, body)


def remove_deployment(kube: Kube, namespace: str) -> None:
    # Removed before the namespace goes: a server left behind would switch later tests to server mode.
    try:
        kube.apps.delete_namespaced_deployment("strongroom", namespace)
    except ApiException as exc:
        if exc.status != 404:
            raise
    eventually(
        lambda: all(
            deployment.metadata.namespace != namespace
            for deployment in kube.apps.list_deployment_for_all_namespaces(label_selector=_selector()).items
        )
    )


def _selector() -> str:
    return ",".join(f"{key}={value}" for key, value in SERVER_LABELS.items())


@dataclass
class Plan:
    total: int = 3
    phase: str = "Completed"


@dataclass
class StandIn:
    """The server's side of Velero's contracts, played by a thread of the test."""

    kube: Kube
    namespace: str
    directory: Path
    plans: dict[str, Plan] = field(default_factory=dict)
    files: dict[tuple[str, str], bytes] = field(default_factory=dict)
    answered: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    errors: list[BaseException] = field(default_factory=list)
    step: float = 0.25

    @property
    def custom(self) -> client.CustomObjectsApi:
        return self.kube.custom

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.tick()
            except ApiException as exc:
                if exc.status not in (404, 409):
                    self.errors.append(exc)
            except BaseException as exc:  # reported by the fixture, not lost in the thread
                self.errors.append(exc)
            self.stop.wait(self.step)

    def _items(self, plural: str) -> list[dict[str, Any]]:
        listed = self.custom.list_namespaced_custom_object(GROUP, VERSION, self.namespace, plural)
        return list(listed.get("items") or [])

    def _status(self, plural: str, obj: dict[str, Any], status: dict[str, Any]) -> None:
        obj["status"] = status
        self.custom.replace_namespaced_custom_object_status(
            GROUP, VERSION, self.namespace, plural, obj["metadata"]["name"], obj
        )

    def tick(self) -> None:
        for request in self._items("downloadrequests"):
            if (request.get("status") or {}).get("phase"):
                continue
            target = request["spec"]["target"]
            data = self.files.get((target["kind"], target["name"]))
            status: dict[str, Any] = {
                "phase": "Processed",
                "expiration": (datetime.now(UTC) + timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
            if data is not None:
                path = self.directory / f"{uuid.uuid4().hex}-{target['kind']}"
                path.write_bytes(data)
                status["downloadURL"] = path.as_uri()
            self.answered.append(request["metadata"]["name"])
            self._status("downloadrequests", request, status)
        for request in self._items("deletebackuprequests"):
            if (request.get("status") or {}).get("phase"):
                continue
            try:
                self.custom.delete_namespaced_custom_object(
                    GROUP, VERSION, self.namespace, "backups", request["spec"]["backupName"]
                )
            except ApiException as exc:
                if exc.status != 404:
                    raise
            self._status("deletebackuprequests", request, {"phase": "Processed"})
        for plural, counter in (("backups", "itemsBackedUp"), ("restores", "itemsRestored")):
            for obj in self._items(plural):
                if FROZEN not in (obj["metadata"].get("labels") or {}):
                    self._advance(plural, counter, obj)

    def _advance(self, plural: str, counter: str, obj: dict[str, Any]) -> None:
        plan = self.plans.get(obj["metadata"]["name"], Plan())
        status = dict(obj.get("status") or {})
        phase = status.get("phase") or "New"
        if phase == "New":
            status.update(phase="InProgress", progress={"totalItems": plan.total, counter: 0})
        elif phase == "InProgress":
            done = status["progress"][counter]
            if done < plan.total:
                status["progress"] = {"totalItems": plan.total, counter: done + 1}
            else:
                status["phase"] = plan.phase
                if plan.phase == "PartiallyFailed":
                    status["errors"] = 1
        else:
            return
        self._status(plural, obj, status)


@pytest.fixture
def server(crds: None, kube: Kube, namespace: str, tmp_path: Path) -> Iterator[StandIn]:
    """An installed server in ``namespace``: its Deployment object and the stand-in thread."""
    files = tmp_path / "served"
    files.mkdir()
    stand_in = StandIn(kube, namespace, files)
    server_deployment(kube, namespace)
    thread = threading.Thread(target=stand_in.run, daemon=True)
    thread.start()
    try:
        yield stand_in
    finally:
        stand_in.stop.set()
        thread.join(timeout=10)
        remove_deployment(kube, namespace)
    assert not stand_in.errors, stand_in.errors


def seed(
    kube: Kube,
    namespace: str,
    plural: str,
    kind: str,
    name: str,
    spec: dict[str, Any],
    status: dict[str, Any],
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A resource with a final status, as the server would have left it."""
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": kind,
        "metadata": {"name": name, "labels": {FROZEN: "true", **(labels or {})}},
        "spec": spec,
    }
    created = kube.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, plural, body)
    created["status"] = status
    return dict(
        kube.custom.replace_namespaced_custom_object_status(GROUP, VERSION, namespace, plural, name, created)
    )


def get(kube: Kube, namespace: str, plural: str, name: str) -> dict[str, Any] | None:
    try:
        return dict(kube.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name))
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def completed_backup(kube: Kube, namespace: str, name: str, **labels: str) -> dict[str, Any]:
    return seed(
        kube,
        namespace,
        "backups",
        "Backup",
        name,
        {"includedNamespaces": ["app"], "storageLocation": "default", "ttl": "720h0m0s"},
        {
            "phase": "Completed",
            "startTimestamp": "2026-01-02T03:04:05Z",
            "completionTimestamp": "2026-01-02T03:04:09Z",
            "progress": {"totalItems": 2, "itemsBackedUp": 2},
        },
        labels,
    )


def using_server(result: CliResult, namespace: str) -> None:
    assert f"Using the strongroom server in namespace {namespace}." in result.stderr, result.stderr
    assert "Local mode" not in result.stderr


# -- backups ---------------------------------------------------------------------------


def test_backup_create_wait_follows_progress_and_exits_zero_when_completed(
    cli: Cli, server: StandIn, namespace: str, kube: Kube
) -> None:
    result = cli("backup", "create", "nightly", "--include-namespaces", "app,db", "--ttl", "24h", "--wait")

    assert result.code == 0, result.stderr
    using_server(result, namespace)
    assert 'Backup request "nightly" submitted successfully.' in result.stdout
    assert "Backup completed with status: Completed." in result.stdout
    assert 'Backup "nightly": InProgress, ' in result.stderr
    assert "of 3 items backed up" in result.stderr
    stored = get(kube, namespace, "backups", "nightly")
    assert stored is not None
    # The same Backup local mode would run; the server chooses the default location.
    assert stored["spec"]["includedNamespaces"] == ["app", "db"]
    assert stored["spec"]["ttl"] == "24h0m0s"
    assert "storageLocation" not in stored["spec"]
    assert stored["status"]["phase"] == "Completed"


@pytest.mark.parametrize(("phase", "code"), [("PartiallyFailed", 6), ("Failed", 1)])
def test_backup_create_wait_exits_by_the_final_phase(
    cli: Cli, server: StandIn, phase: str, code: int
) -> None:
    server.plans["shaky"] = Plan(total=1, phase=phase)

    result = cli("backup", "create", "shaky", "--wait")

    assert result.code == code, (result.stdout, result.stderr)
    assert f"Backup completed with status: {phase}." in result.stdout


def test_backup_create_without_wait_returns_at_once_and_json_stays_on_stdout(
    cli: Cli, server: StandIn, namespace: str
) -> None:
    result = cli("backup", "create", "quick", "--storage-location", "s3", "-o", "json")

    assert result.code == 0, result.stderr
    document = result.json()
    assert document["metadata"]["name"] == "quick"
    assert document["spec"]["storageLocation"] == "s3"
    assert document["metadata"]["labels"]["velero.io/storage-location"] == "s3"
    assert 'Backup request "quick" submitted successfully.' in result.stderr


def test_invalid_backup_flags_are_refused_before_anything_is_created(
    cli: Cli, server: StandIn, namespace: str, kube: Kube
) -> None:
    result = cli("backup", "create", "bad", "--selector", "app=web", "--or-selector", "a=b or c=d")

    assert result.code == 2
    assert "either a 'selector' or an 'or-selector'" in result.stderr
    assert get(kube, namespace, "backups", "bad") is None


def test_backup_get_and_describe_read_the_backup_resources(
    cli: Cli, server: StandIn, namespace: str, kube: Kube
) -> None:
    completed_backup(kube, namespace, "alpha", team="blue")
    completed_backup(kube, namespace, "beta", team="red")
    server.files[("BackupResourceList", "alpha")] = gzip.compress(
        json.dumps({"v1/ConfigMap": ["app/web-config"], "apps/v1/Deployment": ["app/web"]}).encode()
    )
    server.files[("BackupResults", "alpha")] = gzip.compress(
        json.dumps({"errors": {}, "warnings": {"namespaces": {"app": ["one warning"]}}}).encode()
    )

    listed = cli("backup", "get", "-o", "json")
    table = cli("backup", "get")
    selected = cli("backup", "get", "-l", "team=red", "-o", "json")
    described = cli("backup", "describe", "alpha", "--details")

    assert listed.code == 0, listed.stderr
    assert {item["metadata"]["name"] for item in listed.json()["items"]} == {"alpha", "beta"}
    using_server(listed, namespace)
    assert "alpha" in table.stdout and "Completed" in table.stdout and "STORAGE LOCATION" in table.stdout
    assert [item["metadata"]["name"] for item in selected.json()["items"]] == ["beta"]
    assert described.code == 0, described.stderr
    assert "Name:         alpha" in described.stdout
    assert "Phase:  Completed" in described.stdout
    assert "apps/v1/Deployment:" in described.stdout and "- app/web" in described.stdout
    assert "one warning" in described.stdout


def test_backup_logs_and_download_go_through_download_requests(
    cli: Cli, server: StandIn, namespace: str, kube: Kube, tmp_path: Path
) -> None:
    completed_backup(kube, namespace, "gamma")
    server.files[("BackupLog", "gamma")] = gzip.compress(b'time="t" level=info msg="Backup completed"\n')
    server.files[("BackupContents", "gamma")] = b"tarball-bytes"
    destination = tmp_path / "gamma.tar.gz"

    logs = cli("backup", "logs", "gamma")
    downloaded = cli("backup", "download", "gamma", "-o", str(destination))

    assert logs.code == 0, logs.stderr
    assert logs.stdout == 'time="t" level=info msg="Backup completed"\n'
    assert downloaded.code == 0, downloaded.stderr
    assert destination.read_bytes() == b"tarball-bytes"
    assert "successfully downloaded" in downloaded.stdout
    assert len(server.answered) == 2
    # Each request is removed once its file is fetched.
    assert not kube.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "downloadrequests")[
        "items"
    ]


def test_a_download_request_processed_without_url_is_a_clear_error(
    cli: Cli, server: StandIn, kube: Kube, namespace: str
) -> None:
    completed_backup(kube, namespace, "nolog")

    result = cli("backup", "logs", "nolog")

    assert result.code == 3, result.stderr
    assert "without a URL" in result.stderr


def test_download_times_out_when_no_server_answers(
    cli: Cli, server: StandIn, kube: Kube, namespace: str
) -> None:
    completed_backup(kube, namespace, "silent")
    server.stop.set()  # the server is installed but not running

    started = time.monotonic()
    result = cli("backup", "logs", "silent", "--timeout", "1")

    assert result.code == 5, result.stderr
    assert "timed out" in result.stderr
    assert time.monotonic() - started < 10


def test_backup_delete_creates_delete_backup_requests_and_waits_for_them(
    cli: Cli, server: StandIn, namespace: str, kube: Kube
) -> None:
    backup = completed_backup(kube, namespace, "old")

    result = cli("backup", "delete", "old", "--confirm", "--wait")

    assert result.code == 0, result.stderr
    assert 'Request to delete backup "old" submitted successfully.' in result.stdout
    assert "disk snapshots, backup files, restores" in result.stdout
    assert get(kube, namespace, "backups", "old") is None
    (request,) = kube.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "deletebackuprequests")[
        "items"
    ]
    assert request["spec"]["backupName"] == "old"
    assert request["metadata"]["labels"] == {
        "velero.io/backup-name": "old",
        "velero.io/backup-uid": backup["metadata"]["uid"],
    }


def test_backup_delete_of_a_missing_backup_is_not_found(cli: Cli, server: StandIn) -> None:
    result = cli("backup", "delete", "nosuch", "--confirm")

    assert result.code == 3
    assert "backup 'nosuch' not found" in result.stderr


# -- restores ------------------------------------------------------------------------


def test_restore_create_wait_follows_progress_and_reports_counts(
    cli: Cli, server: StandIn, namespace: str, kube: Kube
) -> None:
    completed_backup(kube, namespace, "src")
    server.plans["back"] = Plan(total=2, phase="PartiallyFailed")

    result = cli(
        "restore", "create", "back", "--from-backup", "src", "--namespace-mappings", "app:app2", "--wait"
    )

    assert result.code == 6, result.stderr
    assert 'Restore request "back" submitted successfully.' in result.stdout
    assert "of 2 items restored" in result.stderr
    assert "Restore completed with status: PartiallyFailed." in result.stdout
    assert "Warnings: 0  Errors: 1" in result.stdout
    stored = get(kube, namespace, "restores", "back")
    assert stored is not None
    assert stored["spec"]["backupName"] == "src"
    assert stored["spec"]["namespaceMapping"] == {"app": "app2"}


def test_restore_from_schedule_names_the_schedule(
    cli: Cli, server: StandIn, namespace: str, kube: Kube
) -> None:
    completed_backup(kube, namespace, "daily-20260101070000", **{"velero.io/schedule-name": "daily"})

    result = cli("restore", "create", "from-daily", "--from-schedule", "daily")

    assert result.code == 0, result.stderr
    stored = get(kube, namespace, "restores", "from-daily")
    assert stored is not None
    assert stored["spec"]["scheduleName"] == "daily"
    assert not stored["spec"].get("backupName")


def test_restore_get_describe_and_logs_read_the_restore(
    cli: Cli, server: StandIn, namespace: str, kube: Kube
) -> None:
    seed(
        kube,
        namespace,
        "restores",
        "Restore",
        "r1",
        {"backupName": "alpha"},
        {"phase": "Completed", "warnings": 1, "progress": {"totalItems": 4, "itemsRestored": 4}},
    )
    server.files[("RestoreResults", "r1")] = gzip.compress(
        json.dumps({"errors": {}, "warnings": {"namespaces": {"app": ["kept the existing web"]}}}).encode()
    )
    server.files[("RestoreLog", "r1")] = gzip.compress(b"restore line 1\nrestore line 2\n")

    listed = cli("restore", "get", "-o", "json")
    described = cli("restore", "describe", "r1", "--details")
    logs = cli("restore", "logs", "r1")

    assert [item["metadata"]["name"] for item in listed.json()["items"]] == ["r1"]
    assert "Items restored:              4" in described.stdout
    assert "kept the existing web" in described.stdout
    assert logs.stdout.splitlines() == ["restore line 1", "restore line 2"]


def test_dry_run_is_refused_in_server_mode(cli: Cli, server: StandIn) -> None:
    result = cli("restore", "create", "--from-backup", "x", "--dry-run")

    assert result.code == 2
    assert "--dry-run works in local mode only" in result.stderr


# -- schedules -------------------------------------------------------------------------


def test_schedule_create_get_pause_and_unpause(cli: Cli, server: StandIn, namespace: str, kube: Kube) -> None:
    created = cli(
        "schedule", "create", "daily", "--schedule", "0 7 * * *", "--include-namespaces", "app",
        "--ttl", "48h", "--paused", "--use-owner-references-in-backup", "--labels", "tier=gold",
    )  # fmt: skip
    listed = cli("schedule", "get", "-o", "json")
    table = cli("schedule", "get")
    unpaused = cli("schedule", "unpause", "daily")
    again = cli("schedule", "unpause", "daily")
    paused = cli("schedule", "pause", "daily")
    described = cli("schedule", "describe", "daily")

    assert created.code == 0, created.stderr
    assert 'Schedule "daily" created successfully.' in created.stdout
    (item,) = listed.json()["items"]
    assert item["spec"]["schedule"] == "0 7 * * *"
    assert item["spec"]["template"]["includedNamespaces"] == ["app"]
    assert item["spec"]["template"]["ttl"] == "48h0m0s"
    assert item["spec"]["useOwnerReferencesInBackup"] is True
    assert item["metadata"]["labels"] == {"tier": "gold"}
    assert "0 7 * * *" in table.stdout and "PAUSED" in table.stdout
    assert "Schedule daily unpaused successfully" in unpaused.stdout
    assert "Schedule daily is already unpaused, skip" in again.stdout
    assert "Schedule daily paused successfully" in paused.stdout
    stored = get(kube, namespace, "schedules", "daily")
    assert stored is not None and stored["spec"]["paused"] is True
    assert "Schedule:  0 7 * * *" in described.stdout


def test_backup_create_from_schedule_uses_its_template_and_label(
    cli: Cli, server: StandIn, namespace: str, kube: Kube
) -> None:
    cli.ok("schedule", "create", "weekly", "--schedule", "0 1 * * 0", "--include-namespaces", "app")

    result = cli("backup", "create", "--from-schedule", "weekly")

    assert result.code == 0, result.stderr
    assert "Creating backup from schedule, all other filters are ignored." in result.stdout
    backups = kube.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "backups")["items"]
    (backup,) = [b for b in backups if b["metadata"]["name"].startswith("weekly-")]
    assert backup["metadata"]["labels"]["velero.io/schedule-name"] == "weekly"
    assert backup["spec"]["includedNamespaces"] == ["app"]


def test_schedule_delete_removes_it(cli: Cli, server: StandIn, namespace: str, kube: Kube) -> None:
    cli.ok("schedule", "create", "gone", "--schedule", "@daily")

    result = cli("schedule", "delete", "gone", "--confirm")

    assert "Schedule deleted: gone" in result.stdout
    assert get(kube, namespace, "schedules", "gone") is None


# -- backup storage locations ------------------------------------------------------------


def test_backup_location_commands_manage_backup_storage_locations(
    cli: Cli, server: StandIn, namespace: str, kube: Kube, tmp_path: Path
) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")

    created = cli(
        "backup-location", "create", "s3", "--provider", "aws", "--bucket", "backups", "--prefix", "team",
        "--config", "region=eu-west-1", "--credential", "cloud-credentials=cloud", "--cacert", str(ca),
    )  # fmt: skip
    stored = get(kube, namespace, "backupstoragelocations", "s3")
    assert stored is not None
    stored["status"] = {"phase": "Available", "lastValidationTime": "2026-01-02T03:04:05Z"}
    kube.custom.replace_namespaced_custom_object_status(
        GROUP, VERSION, namespace, "backupstoragelocations", "s3", stored
    )
    table = cli("backup-location", "get")
    made_default = cli("backup-location", "set", "s3", "--default")
    deleted = cli("backup-location", "delete", "s3", "--confirm")

    assert created.code == 0, created.stderr
    assert stored["spec"]["objectStorage"]["bucket"] == "backups"
    assert stored["spec"]["objectStorage"]["prefix"] == "team"
    assert stored["spec"]["credential"] == {"name": "cloud-credentials", "key": "cloud"}
    assert stored["spec"]["config"] == {"region": "eu-west-1"}
    assert stored["spec"]["objectStorage"]["caCert"]
    row = [line for line in table.stdout.splitlines() if line.startswith("s3 ")]
    assert row and "backups/team" in row[0] and "Available" in row[0] and "2026-01-02 03:04:05" in row[0]
    assert made_default.code == 0, made_default.stderr
    assert deleted.code == 0, deleted.stderr
    assert get(kube, namespace, "backupstoragelocations", "s3") is None


def test_a_credential_file_is_refused_in_server_mode(cli: Cli, server: StandIn, tmp_path: Path) -> None:
    secret = tmp_path / "creds"
    secret.write_text("[default]\n")

    result = cli(
        "backup-location",
        "create",
        "x",
        "--provider",
        "aws",
        "--bucket",
        "b",
        "--credential-file",
        str(secret),
    )

    assert result.code == 2
    assert "--credential SECRET=KEY" in result.stderr


# -- choosing the mode ---------------------------------------------------------------------


def test_mode_local_forces_local_mode_beside_an_installed_server(cli: Cli, server: StandIn) -> None:
    result = cli("backup", "get", "--mode", "local", "-o", "json")

    assert result.code == 0, result.stderr
    assert "Local mode: requested" in result.stderr
    assert result.json()["items"] == []


def test_strongroom_mode_environment_variable_chooses_the_mode(
    cli: Cli, server: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STRONGROOM_MODE", "local")

    result = cli("backup", "get")

    assert "Local mode: requested" in result.stderr


def test_without_a_server_deployment_the_cli_runs_in_local_mode(cli: Cli, crds: None, namespace: str) -> None:
    result = cli("backup", "get", "-o", "json")
    scheduled = cli("schedule", "create", "daily", "--schedule", "0 7 * * *")
    forced = cli("backup", "get", "--mode", "server")

    assert result.code == 0, result.stderr
    assert "Local mode: no strongroom server is installed in the cluster" in result.stderr
    assert json.loads(result.stdout)["kind"] == "BackupList"
    assert scheduled.code == 2
    assert "needs the strongroom server" in scheduled.stderr
    assert forced.code == 3
    assert "no strongroom server is installed" in forced.stderr


def test_namespace_option_limits_where_the_server_is_looked_for(
    cli: Cli, server: StandIn, namespace: str
) -> None:
    elsewhere = cli("backup", "get", "-n", "no-server-here")
    here = cli("backup", "get", "-n", namespace)

    assert "Local mode: no strongroom server is installed in namespace no-server-here" in elsewhere.stderr
    using_server(here, namespace)


def test_servers_in_several_namespaces_ask_for_one(cli: Cli, server: StandIn, kube: Kube) -> None:
    other = unique("t2")
    kube.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=other)))
    server_deployment(kube, other)
    try:
        result = cli("backup", "get")
    finally:
        remove_deployment(kube, other)
        kube.core.delete_namespace(other)

    assert result.code == 2
    assert "several namespaces" in result.stderr and "-n/--namespace" in result.stderr


def _kubeconfig_for(sandbox: Sandbox, tmp_path: Path, server: str) -> Path:
    config = yaml.safe_load(Path(sandbox.kubeconfig).read_text())
    config["clusters"][0]["cluster"]["server"] = server
    path = tmp_path / "unreachable.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


def test_an_unreachable_cluster_means_local_mode_at_once(cli: Cli, sandbox: Sandbox, tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    kubeconfig = _kubeconfig_for(sandbox, tmp_path, f"https://127.0.0.1:{closed_port}")

    started = time.monotonic()
    result = cli("backup", "get", "--kubeconfig", str(kubeconfig))
    elapsed = time.monotonic() - started

    assert result.code == 0, result.stderr
    assert "Local mode: could not look for a server" in result.stderr
    assert elapsed < 2


def test_a_cluster_that_never_answers_means_local_mode_after_a_short_timeout(
    cli: Cli, sandbox: Sandbox, tmp_path: Path
) -> None:
    # Accepts connections (the kernel completes the handshake) but never speaks TLS.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        kubeconfig = _kubeconfig_for(sandbox, tmp_path, f"https://127.0.0.1:{silent.getsockname()[1]}")

        started = time.monotonic()
        result = cli("backup", "get", "--kubeconfig", str(kubeconfig))
        elapsed = time.monotonic() - started

    assert result.code == 0, result.stderr
    assert "did not answer within 2s" in result.stderr
    assert 1.5 < elapsed < 5
