"""Backup and restore through Azure Blob Storage (Azurite) and Google Cloud Storage (fake-gcs-server).

Each location is created with the command line as the guide configures it:
Azure with the DataProtectionApplication's config keys (resourceGroup,
storageAccount, subscriptionId, storageAccountKeyEnvVar) and the guide's
``AZURE_...`` credentials file, plus ``storageAccountURI`` for the emulator;
GCP with a service-account JSON key, plus ``storeEndpoint`` for the emulator.
The round trip, verify, logs, describe and deletion are the S3 path's; no
secret appears in anything printed or stored.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.conftest import Sandbox
from tests.integration.backupkit import Cli, delete_namespace, deploy_sample, get, unique
from tests.integration.cloudkit import CloudLocation, azure_server, cloud, gcs_server

__all__ = ["azure_server", "cloud", "gcs_server"]  # fixtures

pytestmark = pytest.mark.integration


@pytest.fixture
def cli(sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    return Cli(sandbox, tmp_path / "config", monkeypatch)


def test_round_trip_verify_logs_and_deletion(
    cli: Cli, sandbox: Sandbox, cloud: CloudLocation, tmp_path: Path
) -> None:
    namespace = unique(f"{cloud.provider}app")
    group = f"{namespace}.example.com"
    deploy_sample(sandbox, namespace, group)
    try:
        cli.ok(
            "backup-location", "create", "cloud", *cloud.cli_args(tmp_path), "--prefix", "velero", "--default"
        )
        created = cli.ok("backup", "create", "c-b1", "--include-namespaces", namespace, "-o", "json")
        assert created.json()["status"]["phase"] == "Completed"
        assert {
            "velero/backups/c-b1/velero-backup.json",
            "velero/backups/c-b1/c-b1.tar.gz",
            "velero/backups/c-b1/c-b1-logs.gz",
            "velero/backups/c-b1/c-b1-resource-list.json.gz",
        } <= cloud.listing()
        assert json.loads(cloud.read("velero/backups/c-b1/velero-backup.json"))["metadata"]["name"] == "c-b1"
        assert cli.ok("backup", "verify", "c-b1", "-o", "json").json()["ok"] is True

        delete_namespace(sandbox, namespace)
        restored = cli.ok("restore", "create", "c-r1", "--from-backup", "c-b1", "-o", "json").json()
        assert restored["status"]["phase"] == "Completed", restored
        config_map = get(sandbox, "configmap", "web-config", "-n", namespace)
        assert config_map is not None and config_map["data"] == {"index.html": "<h1>hello</h1>"}
        assert get(sandbox, f"crontabs.{group}", "nightly", "-n", namespace) is not None
        assert "velero/restores/c-r1/restore-c-r1-results.gz" in cloud.listing()

        outputs = [
            cli.ok("backup-location", "get", "-o", "yaml").stdout,
            cli.ok("backup", "describe", "c-b1", "--details").stdout,
            cli.ok("backup", "logs", "c-b1").stdout,
            cli.ok("restore", "logs", "c-r1").stdout,
            (cli.config_dir / "locations.yaml").read_text(),
        ]
        outputs += [cloud.read(key).decode("latin-1") for key in cloud.listing()]
        assert not any(secret in text for secret in cloud.secrets for text in outputs)

        cli.ok("backup", "delete", "c-b1", "--confirm")
        assert not any(key.startswith("velero/backups/c-b1/") for key in cloud.listing())
    finally:
        sandbox.kubectl("delete", "namespace", namespace, "--ignore-not-found", "--wait=false")
        sandbox.kubectl("delete", "crd", f"crontabs.{group}", "--ignore-not-found", "--wait=false")


def test_foreign_top_level_directories_are_refused_until_a_prefix_is_given(
    cli: Cli, cloud: CloudLocation, tmp_path: Path
) -> None:
    # Someone else's data at the root of the bucket: Velero's check refuses the location...
    cloud.write("photos/cat.jpg", b"jpeg")
    refused = cli("backup-location", "create", "shared", *cloud.cli_args(tmp_path))
    assert refused.code == 2
    assert "invalid top-level directories: [photos]" in refused.stderr and "prefix" in refused.stderr
    # ...and with a prefix of its own the same bucket serves.
    cli.ok(
        "backup-location", "create", "shared", *cloud.cli_args(tmp_path), "--prefix", "velero", "--default"
    )
    cli.ok(
        "backup", "create", "beside", "--include-namespaces", "default", "--include-resources", "configmaps"
    )
    assert "velero/backups/beside/velero-backup.json" in cloud.listing()
    assert cloud.read("photos/cat.jpg") == b"jpeg"
