"""Azure (Azurite) and GCS (fake-gcs-server) locations for end-to-end tests, set up as the guide sets them up.

A ``CloudLocation`` carries what a test needs on both paths: the location's
config and credentials file (for ``backup-location create`` in local mode, or
a Secret and a DataProtectionApplication for the server), and a look into the
bucket past strongroom (list, read, write), plus the secrets that must never
show up anywhere.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.integration.azurite import Azurite, azurite, guide_credentials
from tests.integration.backupkit import unique
from tests.integration.gcsserver import FakeGcsServer, TokenServer, fake_gcs_server, service_account_key

PROVIDERS = ("azure", "gcp")
AZURE_CLIENT_SECRET = "azure-client-secret-never-shown"


@dataclass
class CloudLocation:
    """One bucket on one emulator, with how strongroom reaches it and how a test looks into it."""

    provider: str
    bucket: str
    config: dict[str, str]
    credentials: str  # the credentials file's content, as the guide writes it
    listing: Callable[[], set[str]]
    read: Callable[[str], bytes]
    write: Callable[[str, bytes], None]
    secrets: list[str]
    # How many times the credentials were exchanged for a token (GCS); None where the key signs itself.
    token_grants: Callable[[], int] | None = None

    def cli_args(self, directory: Path) -> list[str]:
        """``backup-location create`` flags; the credentials file is written into ``directory``."""
        path = directory / f"credentials-velero-{self.provider}"
        path.write_text(self.credentials)
        config = ",".join(f"{key}={value}" for key, value in self.config.items())
        return [
            "--provider",
            self.provider,
            "--bucket",
            self.bucket,
            "--config",
            config,
            "--credential-file",
            str(path),
        ]


def azure_location(server: Azurite) -> CloudLocation:
    container = unique("velero")
    server.create_container(container)
    # The guide's file; the client secret is never used (the storage key is).
    credentials = guide_credentials(AZURE_CLIENT_SECRET, server.account_key)
    config = {
        "resourceGroup": "Velero_Backups",
        "storageAccount": server.account,
        "subscriptionId": "00000000-1111-2222-3333-444444444444",
        "storageAccountKeyEnvVar": "AZURE_STORAGE_ACCOUNT_ACCESS_KEY",
        "storageAccountURI": server.endpoint,
    }
    blobs = server.client().get_container_client(container)
    return CloudLocation(
        "azure",
        container,
        config,
        credentials,
        lambda: {blob.name for blob in blobs.list_blobs()},
        lambda key: blobs.download_blob(key).readall(),
        lambda key, data: blobs.upload_blob(key, data, overwrite=True),
        [server.account_key, AZURE_CLIENT_SECRET],
    )


def gcs_location(server: FakeGcsServer, tokens: TokenServer) -> CloudLocation:
    bucket = unique("velero")
    server.create_bucket(bucket)
    key = service_account_key(tokens.token_uri)
    return CloudLocation(
        "gcp",
        bucket,
        {"storeEndpoint": server.endpoint},
        json.dumps(key),
        lambda: set(server.object_names(bucket)),
        lambda name: server.read(bucket, name),
        lambda name, data: server.write(bucket, name, data),
        [key["private_key"].splitlines()[1], key["private_key_id"]],
        lambda: len(tokens.grants),
    )


@pytest.fixture(scope="module")
def azure_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    with azurite(tmp_path_factory.mktemp("azurite")) as server:
        yield server


@pytest.fixture(scope="module")
def gcs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FakeGcsServer, TokenServer]]:
    with fake_gcs_server(tmp_path_factory.mktemp("fake-gcs")) as server, TokenServer() as tokens:
        yield server, tokens


@pytest.fixture(params=PROVIDERS)
def cloud(request: pytest.FixtureRequest) -> CloudLocation:
    """A fresh bucket on each emulator in turn (one emulator per test module)."""
    if request.param == "azure":
        return azure_location(request.getfixturevalue("azure_server"))
    server, tokens = request.getfixturevalue("gcs_server")
    return gcs_location(server, tokens)
