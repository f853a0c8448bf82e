"""The Azure Blob store against a real blob service (Azurite, Microsoft's emulator, on 127.0.0.1).

The shared ObjectStore contract runs here unchanged, then what only Azure
has: block uploads, listings longer than one 5,000-blob page, shared-key
authentication failures, a missing container, a location configured the
way the OADP guide configures one (with storageAccountURI pointing at the
emulator), and Azure AD (useAAD) over TLS with a private CA.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import socket
import ssl
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta

import aiohttp
import pytest
from tests.integration.azurite import ACCOUNT, ACCOUNT_KEY, Azurite, TokenServer, azurite, guide_credentials
from tests.integration.s3server import CUT, PASS, FlakyProxy
from tests.runasync import run_async
from tests.unit.storage.test_storage_conformance import StoreConformance, chunks_of, keys

from strongroom.errors import ObjectNotFound, StorageConfigError, StorageError
from strongroom.sandbox.pki import ensure_pki
from strongroom.storage import Layout, ObjectStore, StoreOptions, open_store
from strongroom.storage.azure import AzureObjectStore

pytestmark = pytest.mark.integration

MiB = 1024 * 1024
# The OADP guide's credentials-velero for Azure, with Azurite's account key.
CLIENT_SECRET = "strongroom-client-secret-do-not-log-me"
CREDENTIALS = guide_credentials(CLIENT_SECRET)
# Small blocks and quick retries keep the suite fast; the behaviour is the same.
FAST = StoreOptions(
    part_size=5 * MiB,
    connect_timeout=timedelta(seconds=2),
    read_timeout=timedelta(seconds=5),
    request_timeout=timedelta(seconds=30),
    max_retries=4,
    init_backoff=timedelta(milliseconds=10),
    max_backoff=timedelta(milliseconds=100),
    retry_timeout=timedelta(seconds=20),
)


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    with azurite(tmp_path_factory.mktemp("azurite")) as server:
        yield server


def new_container(server: Azurite) -> str:
    name = f"strongroom-{uuid.uuid4().hex[:16]}"
    server.create_container(name)
    return name


def oadp_config(endpoint: str, **extra: str) -> dict[str, str]:
    """The OADP guide's Azure location config (seed dpa-0616-azure.yaml), pointed at ``endpoint``."""
    return {
        "resourceGroup": "Velero_Backups",
        "storageAccount": ACCOUNT,
        "subscriptionId": "00000000-1111-2222-3333-444444444444",
        "storageAccountKeyEnvVar": "AZURE_STORAGE_ACCOUNT_ACCESS_KEY",
        "storageAccountURI": endpoint,
        **extra,
    }


def open_azure(
    endpoint: str,
    container: str,
    prefix: str = "",
    options: StoreOptions = FAST,
    credentials: str = CREDENTIALS,
    **extra: str,
) -> AzureObjectStore:
    store = open_store(
        "azure", container, prefix, oadp_config(endpoint, **extra), credentials, options=options
    )
    assert isinstance(store, AzureObjectStore)
    return store


class TestAzureStoreConformance(StoreConformance):
    @pytest.fixture(params=["container-root", "prefixed"])
    def store(self, request: pytest.FixtureRequest, emulator: Azurite) -> ObjectStore:
        prefix = "" if request.param == "container-root" else "velero/cluster-a"
        return open_azure(emulator.endpoint, new_container(emulator), prefix)


@run_async
async def test_the_oadp_example_location_works(emulator: Azurite) -> None:
    container = new_container(emulator)
    store = open_store("velero.io/azure", container, "backups", oadp_config(emulator.endpoint), CREDENTIALS)
    assert store.location == f"azure://{ACCOUNT}/{container}/backups at {emulator.endpoint}"
    await store.put("backups/b1/velero-backup.json", b"{}", content_type="application/json")
    assert await store.get("backups/b1/velero-backup.json") == b"{}"
    assert await store.list_prefixes() == ["backups/"]
    blob = emulator.client().get_blob_client(container, "backups/backups/b1/velero-backup.json")
    properties = blob.get_blob_properties()
    assert properties.size == 2
    assert properties.content_settings.content_type == "application/json"


@run_async
async def test_multipart_upload_of_a_20_mib_stream(emulator: Azurite) -> None:
    container = new_container(emulator)
    store = open_azure(emulator.endpoint, container, "velero")
    data = os.urandom(20 * MiB + 17)
    await store.put("backups/b1/b1.tar.gz", chunks_of(data, MiB), content_type="application/gzip")
    blob = emulator.client().get_blob_client(container, "velero/backups/b1/b1.tar.gz")
    committed, uncommitted = blob.get_block_list("all")
    # Five blocks of at most 5 MiB, all committed by one Put Block List.
    assert len(committed) == 5
    assert uncommitted == []
    assert max(block.size for block in committed) == 5 * MiB
    properties = blob.get_blob_properties()
    assert properties.size == len(data)
    assert properties.content_settings.content_type == "application/gzip"
    assert hashlib.sha256(await store.get("backups/b1/b1.tar.gz")).digest() == hashlib.sha256(data).digest()


@run_async
async def test_block_size_in_bytes_sets_the_block_size(emulator: Azurite) -> None:
    container = new_container(emulator)
    store = open_azure(emulator.endpoint, container, blockSizeInBytes=str(6 * MiB))
    data = os.urandom(13 * MiB)
    await store.put("etcd/snapshot.db", data)
    blob = emulator.client().get_blob_client(container, "etcd/snapshot.db")
    committed, _ = blob.get_block_list("committed")
    assert [block.size for block in committed] == [6 * MiB, 6 * MiB, 1 * MiB]
    assert await store.get("etcd/snapshot.db") == data


def cut_second_page() -> Callable[[int, str], str]:
    """Cut the body of the second page of each kind of listing, once."""
    pages: Counter[str] = Counter()

    def plan(_number: int, request: str) -> str:
        if "comp=list" not in request:
            return PASS
        kind = "delimited" if "delimiter=" in request else "recursive"
        pages[kind] += 1
        return CUT if pages[kind] == 2 else PASS

    return plan


@run_async
async def test_listings_page_past_5000_blobs_and_resume_after_a_broken_page(emulator: Azurite) -> None:
    container = new_container(emulator)
    writer = open_azure(emulator.endpoint, container)
    count = 5010
    limit = asyncio.Semaphore(32)

    async def put(index: int) -> None:
        async with limit:
            await writer.put(f"backups/b{index:04d}/velero-backup.json", b"{}")

    await asyncio.gather(*(put(index) for index in range(count)))
    async with FlakyProxy(emulator.port, cut_second_page(), budget=50) as proxy:
        reader = open_azure(f"{proxy.endpoint}/{ACCOUNT}", container)
        listed = [info.key async for info in reader.list("backups")]
        prefixes = await reader.list_prefixes("backups")
    # Every blob once, in key order, although the second page broke off halfway.
    assert listed == sorted(set(listed))
    assert len(listed) == count
    assert len(prefixes) == count
    assert prefixes[0] == "backups/b0000/"
    assert [Layout().backup_name(prefix) for prefix in prefixes[-2:]] == ["b5008", "b5009"]
    recursive = [line for line in proxy.requests_for("comp=list") if "delimiter=" not in line]
    assert proxy.actions_for("comp=list").count(CUT) == 2
    assert any("marker=" in line for line in recursive)
    assert len(proxy.requests_for("delimiter=")) >= 3
    # Deleting 5,000 blobs one batch after another takes Azurite half a minute; the
    # emulator is in memory, and batched deletes have a test of their own.
    emulator.client().delete_container(container)


@run_async
async def test_delete_prefix_removes_more_blobs_than_one_batch_holds(emulator: Azurite) -> None:
    store = open_azure(emulator.endpoint, new_container(emulator), "velero")
    count = 600  # Azure takes at most 256 deletes per batch request
    limit = asyncio.Semaphore(32)

    async def put(index: int) -> None:
        async with limit:
            await store.put(f"backups/b1/{index:04d}", b"x")

    await asyncio.gather(*(put(index) for index in range(count)))
    await store.put("backups/b10/kept", b"x")
    assert await store.delete_prefix("backups/b1") == count
    assert await keys(store) == ["backups/b10/kept"]


@run_async
async def test_a_wrong_account_key_fails_clearly_and_never_shows_a_key(
    emulator: Azurite, caplog: pytest.LogCaptureFixture
) -> None:
    container = new_container(emulator)
    wrong_key = "V3JvbmdLZXlXcm9uZ0tleVdyb25nS2V5V3JvbmdLZXlXcm9uZ0tleVdyb25nS2V5V3Jvbmc="
    credentials = CREDENTIALS.replace(ACCOUNT_KEY, wrong_key)
    store = open_azure(emulator.endpoint, container, credentials=credentials)
    caplog.set_level(logging.DEBUG, logger="strongroom")
    errors: list[StorageError] = []
    for operation in (
        store.put("backups/b/velero-backup.json", b"{}"),
        store.get("backups/b/velero-backup.json"),
        store.delete("backups/b/velero-backup.json"),
        store.list_prefixes(),
    ):
        with pytest.raises(StorageError) as raised:
            await operation
        errors.append(raised.value)
    put_error = errors[0]
    assert not isinstance(put_error, ObjectNotFound)
    assert put_error.message.startswith(f"cannot write 'backups/b/velero-backup.json' in {store.location}: ")
    assert "403" in put_error.message
    assert "storage account key" in str(put_error.hint)
    assert type(put_error.__cause__).__name__ == "ProviderDetail"
    ours = "\n".join(record.getMessage() for record in caplog.records if record.name.startswith("strongroom"))
    for error in errors:
        assert not isinstance(error, ObjectNotFound)
        for text in (str(error), repr(error), str(error.__cause__), ours):
            assert wrong_key not in text
            assert ACCOUNT_KEY not in text
            assert CLIENT_SECRET not in text


@run_async
async def test_a_missing_container_is_not_a_missing_object(emulator: Azurite) -> None:
    store = open_azure(emulator.endpoint, "no-such-container-anywhere")
    for operation in (store.put("k", b"v"), store.get("k"), store.delete("k"), store.list_prefixes()):
        with pytest.raises(StorageError) as raised:
            await operation
        assert not isinstance(raised.value, ObjectNotFound)
        assert "the container does not exist" in raised.value.message
        assert "ContainerNotFound" in raised.value.message or "(code: 404)" in raised.value.message
        assert "container" in str(raised.value.hint)
    with pytest.raises(StorageError, match="the container does not exist"):
        await keys(store)


@run_async
async def test_a_missing_blob_is_object_not_found_with_a_short_message(emulator: Azurite) -> None:
    store = open_azure(emulator.endpoint, new_container(emulator), "velero")
    with pytest.raises(ObjectNotFound) as raised:
        await store.get("backups/b1/velero-backup.json")
    assert str(raised.value) == (
        f"no object 'backups/b1/velero-backup.json' in azure://{ACCOUNT}/{store.settings.container}/velero"
        f" at {emulator.endpoint}"
    )


@run_async
async def test_requests_carry_only_the_given_credentials(
    emulator: Azurite, monkeypatch: pytest.MonkeyPatch
) -> None:
    # obstore reads AZURE_* variables; a location's own settings must win over all of them.
    for name, value in {
        "AZURE_STORAGE_ACCOUNT_NAME": "someoneelse",
        "AZURE_STORAGE_ACCOUNT_KEY": "d3JvbmcgZW52aXJvbm1lbnQga2V5",
        "AZURE_STORAGE_TOKEN": "environment-bearer-token",
        "AZURE_STORAGE_USE_EMULATOR": "true",
        "AZURE_STORAGE_ENDPOINT": "http://127.0.0.1:9/elsewhere",
        "AZURE_SKIP_SIGNATURE": "true",
    }.items():
        monkeypatch.setenv(name, value)
    async with FlakyProxy(emulator.port, lambda _n, _m: PASS) as proxy:
        store = open_azure(f"{proxy.endpoint}/{ACCOUNT}", new_container(emulator))
        await store.put("k", b"v")
        assert await store.get("k") == b"v"
    head = proxy.heads[0].decode("latin-1").lower()
    assert proxy.request_lines()[0] == f"PUT /{ACCOUNT}/{store.settings.container}/k HTTP/1.1"
    assert f"authorization: sharedkey {ACCOUNT}:" in head
    assert ACCOUNT_KEY.lower() not in head


@run_async
async def test_a_download_url_reads_the_blob_without_credentials(emulator: Azurite) -> None:
    store = open_azure(emulator.endpoint, new_container(emulator), "velero/cluster-a")
    await store.put("backups/b1/b1-logs.gz", b"log lines")

    url = await store.download_url("backups/b1/b1-logs.gz", timedelta(minutes=10))

    assert url.startswith(
        f"{emulator.endpoint}/{store.settings.container}/velero/cluster-a/backups/b1/b1-logs.gz?"
    )
    assert "sig=" in url
    assert "sp=r" in url
    assert ACCOUNT_KEY not in url
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as response:
            assert response.status == 200
            assert await response.read() == b"log lines"
        # The signature covers this blob only.
        other = url.replace("b1-logs.gz?", "b1-other.gz?")
        async with session.get(other) as response:
            assert response.status == 403


@run_async
async def test_an_unreachable_endpoint_is_explained(emulator: Azurite) -> None:
    options = StoreOptions(
        part_size=5 * MiB,
        connect_timeout=timedelta(milliseconds=500),
        max_retries=0,
        retry_timeout=timedelta(seconds=2),
    )
    with socket_closed() as port:
        store = open_azure(f"http://127.0.0.1:{port}/{ACCOUNT}", "container", options=options)
        with pytest.raises(StorageError) as raised:
            await store.put("k", b"v")
    assert "storageAccountURI" in str(raised.value.hint)


@run_async
async def test_configuration_mistakes_fail_before_any_request(emulator: Azurite) -> None:
    with pytest.raises(StorageConfigError, match="no storage account access key with key AZURE_STORAGE_KEY"):
        open_azure(emulator.endpoint, "container", storageAccountKeyEnvVar="AZURE_STORAGE_KEY")


@contextlib.contextmanager
def socket_closed() -> Iterator[int]:
    """A 127.0.0.1 port with nothing listening on it (bound, never listening, while in use)."""
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        port: int = bound.getsockname()[1]
        yield port


TENANT_ID = "11111111-2222-3333-4444-555555555555"
CLIENT_ID = "22222222-3333-4444-5555-666666666666"


@pytest.fixture(scope="module")
def tls_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Azurite, TokenServer]]:
    pki = ensure_pki(tmp_path_factory.mktemp("azure-pki"))
    certificate = (pki.ca_cert, pki.server_cert, pki.server_key)
    with (
        azurite(tmp_path_factory.mktemp("azurite-tls"), certificate=certificate) as server,
        TokenServer((pki.server_cert, pki.server_key), TENANT_ID, CLIENT_ID, CLIENT_SECRET) as tokens,
    ):
        yield server, tokens


def aad_store(server: Azurite, tokens: TokenServer, container: str, **extra: str) -> AzureObjectStore:
    config = {
        "storageAccount": ACCOUNT,
        "useAAD": "true",
        "storageAccountURI": server.endpoint,
        "activeDirectoryAuthorityURI": tokens.authority,
        **extra,
    }
    options = StoreOptions(part_size=5 * MiB, max_retries=0)
    store = open_store("azure", container, "velero", config, CREDENTIALS, options=options)
    assert isinstance(store, AzureObjectStore)
    return store


@run_async
async def test_use_aad_signs_in_as_the_service_principal_over_tls(
    tls_emulator: tuple[Azurite, TokenServer],
) -> None:
    server, tokens = tls_emulator
    assert server.ca_file is not None
    container = new_container(server)
    store = aad_store(server, tokens, container, caCert=server.ca_file.read_text())
    tokens.requests.clear()
    await store.put("backups/b1/velero-backup.json", b"{}")
    assert await store.get("backups/b1/velero-backup.json") == b"{}"
    assert await store.list_prefixes() == ["backups/"]
    # One token, asked for at the tenant's endpoint with the client secret, for the storage scope.
    ((path, form),) = tokens.requests
    assert path == f"/{TENANT_ID}/oauth2/v2.0/token"
    assert form["grant_type"] == ["client_credentials"]
    assert form["client_id"] == [CLIENT_ID]
    assert form["scope"] == ["https://storage.azure.com/.default"]
    # Under useAAD a download URL is a user delegation SAS.
    url = await store.download_url("backups/b1/velero-backup.json", timedelta(minutes=5))
    assert "skoid=" in url
    assert CLIENT_SECRET not in url
    context = ssl.create_default_context(cafile=str(server.ca_file))
    async with aiohttp.ClientSession() as session, session.get(url, ssl=context) as response:
        assert response.status == 200
        assert await response.read() == b"{}"


@run_async
async def test_a_rejected_client_secret_fails_clearly_and_never_shows_it(
    tls_emulator: tuple[Azurite, TokenServer], caplog: pytest.LogCaptureFixture
) -> None:
    server, tokens = tls_emulator
    assert server.ca_file is not None
    wrong = "Wrong~Client.Secret_456"
    config = {
        "storageAccount": ACCOUNT,
        "useAAD": "true",
        "storageAccountURI": server.endpoint,
        "activeDirectoryAuthorityURI": tokens.authority,
        "caCert": str(server.ca_file),
    }
    caplog.set_level(logging.DEBUG, logger="strongroom")
    store = open_store(
        "azure",
        new_container(server),
        "",
        config,
        CREDENTIALS.replace(CLIENT_SECRET, wrong),
        options=StoreOptions(part_size=5 * MiB, max_retries=0),
    )
    with pytest.raises(StorageError) as raised:
        await store.put("k", b"v")
    error = raised.value
    assert not isinstance(error, ObjectNotFound)
    assert error.message.endswith(
        "the Azure AD token request failed: invalid_client: AADSTS7000215: Invalid client secret provided. "
        "(HTTP 401 Unauthorized)"
    )
    assert "AZURE_CLIENT_SECRET" in str(error.hint)
    ours = "\n".join(record.getMessage() for record in caplog.records if record.name.startswith("strongroom"))
    for text in (str(error), repr(error), str(error.__cause__), ours):
        assert wrong not in text
        assert CLIENT_SECRET not in text


@run_async
async def test_an_untrusted_certificate_is_explained(tls_emulator: tuple[Azurite, TokenServer]) -> None:
    server, _ = tls_emulator
    store = open_azure(
        server.endpoint, new_container(server), options=StoreOptions(part_size=5 * MiB, max_retries=0)
    )
    with pytest.raises(StorageError) as raised:
        await store.put("k", b"v")
    assert "caCert" in str(raised.value.hint)
    assert server.ca_file is not None
    trusted = open_azure(server.endpoint, new_container(server), caCert=str(server.ca_file))
    await trusted.put("k", b"over tls")
    assert await trusted.get("k") == b"over tls"
