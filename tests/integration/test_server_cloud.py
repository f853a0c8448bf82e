"""The in-cluster server with the guide's Azure and GCP DataProtectionApplications, on the emulators.

The seed's DPA is applied as the guide writes it. Only two things change: the
bucket is the test's, and there is one endpoint key (``storageAccountURI``,
``storeEndpoint``) with the emulator's storage account. Its location turns
Available, and a Backup completes into the bucket. A second server sharing
the bucket syncs the Backup. A DownloadRequest's URL reads the logs without
credentials, and a DeleteBackupRequest empties the backup's directory. No
secret is ever logged.
"""

from __future__ import annotations

import base64
import gzip
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.conftest import Sandbox
from tests.integration.backupkit import unique
from tests.integration.cloudkit import CloudLocation, azure_server, cloud, gcs_server
from tests.integration.sandboxapi import eventually
from tests.integration.serverkit import (
    ServerProcess,
    apply_yaml,
    backup,
    get,
    install_crds,
    velero,
    wait_phase,
)

__all__ = ["azure_server", "cloud", "gcs_server"]  # fixtures

pytestmark = pytest.mark.integration

SEED = Path(__file__).parents[1] / "data" / "seed"
SEED_DPA = {"azure": "dpa-0616-azure.yaml", "gcp": "dpa-0836-gcp.yaml"}
SECRET = {"azure": "cloud-credentials-azure", "gcp": "cloud-credentials-gcp"}


@pytest.fixture(scope="module")
def crds(sandbox: Sandbox) -> None:
    install_crds(sandbox)


@pytest.fixture
def servers() -> Iterator[list[ServerProcess]]:
    started: list[ServerProcess] = []
    yield started
    for server in started:
        server.stop()


def _namespace(sandbox: Sandbox) -> str:
    name = unique("adp")
    sandbox.kubectl("create", "namespace", name)
    return name


def _dpa_and_secret(cloud: CloudLocation, namespace: str) -> list[dict[str, Any]]:
    dpa: dict[str, Any] = yaml.safe_load((SEED / SEED_DPA[cloud.provider]).read_text())
    dpa["metadata"]["namespace"] = namespace
    location = dpa["spec"]["backupLocations"][0]["velero"]
    location["objectStorage"]["bucket"] = cloud.bucket
    config = location.setdefault("config", {})
    if cloud.provider == "azure":
        config["storageAccount"] = cloud.config["storageAccount"]
        config["storageAccountURI"] = cloud.config["storageAccountURI"]
    else:
        config["storeEndpoint"] = cloud.config["storeEndpoint"]
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": SECRET[cloud.provider], "namespace": namespace},
        "data": {"cloud": base64.b64encode(cloud.credentials.encode()).decode()},
    }
    return [secret, dpa]


def test_the_guides_dpa_backs_up_syncs_serves_logs_and_deletes(
    sandbox: Sandbox, crds: None, cloud: CloudLocation, tmp_path: Path, servers: list[ServerProcess]
) -> None:
    first, second = _namespace(sandbox), _namespace(sandbox)
    try:
        for namespace in (first, second):
            server = ServerProcess(sandbox, namespace, tmp_path / f"{namespace}.log").start()
            servers.append(server)
            apply_yaml(sandbox, *_dpa_and_secret(cloud, namespace))
        wait_phase(sandbox, "backupstoragelocations", "dpa-sample-1", first, ("Available",), timeout=60)

        apply_yaml(sandbox, backup("cloud-one", first, includedNamespaces=["kube-public"]))
        done = wait_phase(sandbox, "backups", "cloud-one", first, ("Completed", "PartiallyFailed", "Failed"))
        assert done["status"]["phase"] == "Completed", done["status"]
        prefix = "backups" if cloud.provider == "azure" else "velero"  # the seed DPAs' prefixes
        assert f"{prefix}/backups/cloud-one/velero-backup.json" in cloud.listing()

        # The second server shares the bucket: the Backup appears there too.
        synced = wait_phase(sandbox, "backups", "cloud-one", second, ("Completed",), timeout=60)
        assert synced["spec"]["storageLocation"] == "dpa-sample-1"

        # A download URL reads the logs without any credentials.
        apply_yaml(
            sandbox,
            velero("DownloadRequest", "logs", first, target={"kind": "BackupLog", "name": "cloud-one"}),
        )
        answered = wait_phase(sandbox, "downloadrequests", "logs", first, ("Processed",))
        with urllib.request.urlopen(answered["status"]["downloadURL"], timeout=10) as response:
            assert b"cloud-one" in gzip.decompress(response.read())

        apply_yaml(sandbox, velero("DeleteBackupRequest", "del", first, backupName="cloud-one"))
        wait_phase(sandbox, "deletebackuprequests", "del", first, ("Processed",))
        eventually(lambda: get(sandbox, "backups", "cloud-one", first) is None, timeout=30)
        assert not any(key.startswith(f"{prefix}/backups/cloud-one/") for key in cloud.listing())
        logs = "".join(server.log_path.read_text() for server in servers)
        assert not any(secret in logs for secret in cloud.secrets)
    finally:
        for namespace in (first, second):
            sandbox.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def test_a_location_without_a_credential_uses_oadps_secret_for_its_provider(
    sandbox: Sandbox, crds: None, cloud: CloudLocation, tmp_path: Path, servers: list[ServerProcess]
) -> None:
    namespace = _namespace(sandbox)
    try:
        servers.append(ServerProcess(sandbox, namespace, tmp_path / "server.log").start())
        secret, _ = _dpa_and_secret(cloud, namespace)
        location = velero(
            "BackupStorageLocation",
            "plain",
            namespace,
            provider=cloud.provider,
            objectStorage={"bucket": cloud.bucket},
            config=cloud.config,
        )
        apply_yaml(sandbox, secret, location)
        grants = cloud.token_grants() if cloud.token_grants else 0
        # No cloud-credentials Secret: cloud-credentials-azure / -gcp (key cloud) is the one read.
        # (Azure: without it there is no key at all; GCS: the emulator would also take anonymous
        # requests, so the key's token exchange shows it was used.)
        wait_phase(sandbox, "backupstoragelocations", "plain", namespace, ("Available",), timeout=60)
        if cloud.token_grants:
            assert cloud.token_grants() > grants
    finally:
        sandbox.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
