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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.conftest import Sandbox
from tests.integration.azurite import Azurite, azurite
from tests.integration.backupkit import Cli, delete_namespace, deploy_sample, get, unique
from tests.integration.gcsserver import FakeGcsServer, TokenServer, fake_gcs_server, service_account_key

pytestmark = pytest.mark.integration


@dataclass
class CloudLocation:
    """How to create a location on one emulator, and how to look into its bucket past strongroom."""

    provider: str
    bucket: str
    args: list[str]
    listing: Callable[[], set[str]]
    read: Callable[[str], bytes]
    write: Callable[[str, bytes], None]
    secrets: list[str]


@pytest.fixture(scope="module")
def azure_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    with azurite(tmp_path_factory.mktemp("azurite")) as server:
        yield server


@pytest.fixture(scope="module")
def gcs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FakeGcsServer, TokenServer]]:
    with fake_gcs_server(tmp_path_factory.mktemp("fake-gcs")) as server, TokenServer() as tokens:
        yield server, tokens


def _azure(server: Azurite, tmp_path: Path) -> CloudLocation:
    container = unique("velero")
    server.create_container(container)
    credentials = tmp_path / "credentials-velero"
    # The guide's file; the client secret is never used (the storage key is).
    credentials.write_text(
        "AZURE_SUBSCRIPTION_ID=00000000-0000-0000-0000-000000000000\n"
        "AZURE_TENANT_ID=11111111-1111-1111-1111-111111111111\n"
        "AZURE_CLIENT_ID=22222222-2222-2222-2222-222222222222\n"
        "AZURE_CLIENT_SECRET=azure-client-secret-never-shown\n"
        "AZURE_RESOURCE_GROUP=velero-rg\n"
        f"AZURE_STORAGE_ACCOUNT_ACCESS_KEY={server.account_key}\n"
        "AZURE_CLOUD_NAME=AzurePublicCloud\n"
    )
    config = (
        f"resourceGroup=velero-rg,storageAccount={server.account},"
        "subscriptionId=00000000-0000-0000-0000-000000000000,"
        f"storageAccountKeyEnvVar=AZURE_STORAGE_ACCOUNT_ACCESS_KEY,storageAccountURI={server.endpoint}"
    )
    blobs = server.client().get_container_client(container)
    return CloudLocation(
        "azure",
        container,
        [
            "--provider",
            "azure",
            "--bucket",
            container,
            "--config",
            config,
            "--credential-file",
            str(credentials),
        ],
        lambda: {blob.name for blob in blobs.list_blobs()},
        lambda key: blobs.download_blob(key).readall(),
        lambda key, data: blobs.upload_blob(key, data, overwrite=True),
        [server.account_key, "azure-client-secret-never-shown"],
    )


def _gcs(server: FakeGcsServer, tokens: TokenServer, tmp_path: Path) -> CloudLocation:
    bucket = unique("velero")
    server.create_bucket(bucket)
    key = service_account_key(tokens.token_uri)
    credentials = tmp_path / "credentials-velero"
    credentials.write_text(json.dumps(key))
    private_key_body = key["private_key"].splitlines()[1]
    args = ["--provider", "gcp", "--bucket", bucket, "--config", f"storeEndpoint={server.endpoint}"]
    args += ["--credential-file", str(credentials)]
    return CloudLocation(
        "gcp",
        bucket,
        args,
        lambda: set(server.object_names(bucket)),
        lambda name: server.read(bucket, name),
        lambda name, data: server.write(bucket, name, data),
        [private_key_body, key["private_key_id"]],
    )


@pytest.fixture(params=["azure", "gcp"])
def cloud(request: pytest.FixtureRequest, tmp_path: Path) -> CloudLocation:
    if request.param == "azure":
        return _azure(request.getfixturevalue("azure_server"), tmp_path)
    server, tokens = request.getfixturevalue("gcs_server")
    return _gcs(server, tokens, tmp_path)


@pytest.fixture
def cli(sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    return Cli(sandbox, tmp_path / "config", monkeypatch)


def test_round_trip_verify_logs_and_deletion(cli: Cli, sandbox: Sandbox, cloud: CloudLocation) -> None:
    namespace = unique(f"{cloud.provider}app")
    group = f"{namespace}.example.com"
    deploy_sample(sandbox, namespace, group)
    try:
        cli.ok("backup-location", "create", "cloud", *cloud.args, "--prefix", "velero", "--default")
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
    cli: Cli, cloud: CloudLocation
) -> None:
    # Someone else's data at the root of the bucket: Velero's check refuses the location...
    cloud.write("photos/cat.jpg", b"jpeg")
    refused = cli("backup-location", "create", "shared", *cloud.args)
    assert refused.code == 2
    assert "invalid top-level directories: [photos]" in refused.stderr and "prefix" in refused.stderr
    # ...and with a prefix of its own the same bucket serves.
    cli.ok("backup-location", "create", "shared", *cloud.args, "--prefix", "velero", "--default")
    cli.ok(
        "backup", "create", "beside", "--include-namespaces", "default", "--include-resources", "configmaps"
    )
    assert "velero/backups/beside/velero-backup.json" in cloud.listing()
    assert cloud.read("photos/cat.jpg") == b"jpeg"
