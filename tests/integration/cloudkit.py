"""Azure (Azurite) and GCS (fake-gcs-server) locations for end-to-end tests, set up as the guide sets them up.

A ``CloudLocation`` carries what a test needs on both paths: the location's
config and credentials file (for ``backup-location create`` in local mode, or
a Secret and a DataProtectionApplication for the server), and a look into the
bucket past strongroom (list, read, write), plus the secrets that must never
show up anywhere.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.integration.azurite import ACCOUNT, Azurite, azurite, guide_credentials
from tests.integration.backupkit import unique
from tests.integration.gcsserver import FakeGcsServer, TokenServer, fake_gcs_server, service_account_key
from tests.integration.serverproc import HOST
from tests.integration.tlsproxy import InterceptingProxy, intercepting_proxy

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


def azure_location(server: Azurite, *, public: bool = False) -> CloudLocation:
    """A container of ``server``; ``public``: addressed as in Azure's public cloud (no storageAccountURI)."""
    container = unique("velero")
    server.create_container(container)
    # The guide's file; the client secret is never used (the storage key is).
    credentials = guide_credentials(AZURE_CLIENT_SECRET, server.account_key)
    config = {
        "resourceGroup": "Velero_Backups",
        "storageAccount": server.account,
        "subscriptionId": "00000000-1111-2222-3333-444444444444",
        "storageAccountKeyEnvVar": "AZURE_STORAGE_ACCOUNT_ACCESS_KEY",
    }
    if not public:
        config["storageAccountURI"] = server.endpoint
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


def gcs_location(server: FakeGcsServer, tokens: TokenServer, *, public: bool = False) -> CloudLocation:
    """A bucket of ``server``; ``public``: addressed as Google's own (no storeEndpoint)."""
    bucket = unique("velero")
    server.create_bucket(bucket)
    key = service_account_key(tokens.token_uri)
    return CloudLocation(
        "gcp",
        bucket,
        {} if public else {"storeEndpoint": server.endpoint},
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


# The host names restic 0.14 reaches, and nothing else: the intercepting proxy plays them.
AZURE_PUBLIC_HOST = f"{ACCOUNT}.blob.core.windows.net"
GCS_PUBLIC_HOST = "storage.googleapis.com"


@dataclass
class PublicClouds:
    """Both emulators behind an intercepting proxy, reached by the clouds' public host names."""

    proxy: InterceptingProxy
    azure: Azurite
    gcs: FakeGcsServer
    tokens: TokenServer

    @property
    def environment(self) -> dict[str, str]:
        """What a process needs to reach the clouds through the proxy (and everything local directly)."""
        return {"HTTPS_PROXY": self.proxy.url, "NO_PROXY": f"{HOST},localhost"}

    @property
    def ca_cert(self) -> str:
        """The proxy's CA as a location's caCert holds it (base64 of the PEM)."""
        return base64.b64encode(self.proxy.ca_pem.encode()).decode()

    def location(self, provider: str) -> CloudLocation:
        if provider == "azure":
            return azure_location(self.azure, public=True)
        return gcs_location(self.gcs, self.tokens, public=True)


@pytest.fixture(scope="module")
def public_clouds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PublicClouds]:
    """Azurite and fake-gcs-server answering as ``<account>.blob.core.windows.net`` and ``storage.googleapis.com``."""
    directory = tmp_path_factory.mktemp("public-clouds")
    with (
        azurite(directory) as azure,
        fake_gcs_server(directory, public_url=f"https://{GCS_PUBLIC_HOST}") as gcs,
        TokenServer() as tokens,
    ):
        port = int(gcs.endpoint.rsplit(":", 1)[1])
        routes = {AZURE_PUBLIC_HOST: (HOST, azure.port), GCS_PUBLIC_HOST: (HOST, port)}
        with intercepting_proxy(directory, routes) as proxy:
            yield PublicClouds(proxy, azure, gcs, tokens)
