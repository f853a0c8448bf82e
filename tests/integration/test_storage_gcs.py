"""The GCS store against a real GCS JSON-API server (fake-gcs-server on 127.0.0.1).

The shared ObjectStore contract runs here unchanged, then what only GCS has:
resumable uploads in 256 KiB-aligned chunks, listings longer than GCS's
1,000-object pages, a missing bucket told apart from a missing object, and a
location shaped like the OADP guide's GCP example (a service-account key,
here with its token endpoint on 127.0.0.1) pointed at the emulator through
``storeEndpoint``. Nothing here reaches anything but 127.0.0.1: every store
has an explicit endpoint and either anonymous credentials or a key whose
``token_uri`` is the local token server.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import requests
from tests.integration.gcsserver import (
    ACCESS_TOKEN,
    FakeGcsServer,
    TokenServer,
    fake_gcs_server,
    service_account_key,
)
from tests.integration.s3server import PASS, SLOWDOWN, FlakyProxy
from tests.runasync import run_async
from tests.unit.storage.test_storage_conformance import StoreConformance, chunks_of, keys

from strongroom.errors import ObjectNotFound, StorageConfigError, StorageError
from strongroom.storage import Layout, ObjectStore, StoreOptions, validate_top_level
from strongroom.storage.gcs import GcsObjectStore, GcsSettings

pytestmark = pytest.mark.integration

MiB = 1024 * 1024
# Small parts and quick retries keep the suite fast; the behaviour is the same.
FAST = StoreOptions(
    part_size=5 * MiB,
    connect_timeout=timedelta(seconds=2),
    read_timeout=timedelta(seconds=10),
    request_timeout=timedelta(seconds=30),
    max_retries=3,
    init_backoff=timedelta(milliseconds=10),
    max_backoff=timedelta(milliseconds=100),
    retry_timeout=timedelta(seconds=10),
)


@pytest.fixture(scope="module")
def gcs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeGcsServer]:
    with fake_gcs_server(tmp_path_factory.mktemp("fake-gcs")) as server:
        yield server


@pytest.fixture(scope="module")
def tokens() -> Iterator[TokenServer]:
    with TokenServer() as server:
        yield server


def new_bucket(gcs: FakeGcsServer) -> str:
    name = f"strongroom-{uuid.uuid4().hex[:16]}"
    gcs.create_bucket(name)
    return name


def open_gcs(
    gcs: FakeGcsServer,
    bucket: str,
    prefix: str = "",
    credentials: str | None = None,
    options: StoreOptions = FAST,
    **config: str,
) -> GcsObjectStore:
    settings = GcsSettings.from_velero_config(
        bucket, prefix, {"storeEndpoint": gcs.endpoint, **config}, credentials
    )
    return GcsObjectStore(settings, options)


def record_requests(store: GcsObjectStore) -> list[requests.PreparedRequest]:
    """Every request the store's HTTP session makes from now on (an observer, not a stand-in)."""
    seen: list[requests.PreparedRequest] = []

    def hook(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        seen.append(response.request)

    store._get_client()._http.hooks["response"].append(hook)
    return seen


class TestGcsStoreConformance(StoreConformance):
    @pytest.fixture(params=["bucket-root", "prefixed"])
    def store(self, request: pytest.FixtureRequest, gcs: FakeGcsServer) -> ObjectStore:
        prefix = "" if request.param == "bucket-root" else "velero/cluster-a"
        return open_gcs(gcs, new_bucket(gcs), prefix)


@run_async
async def test_a_20_mib_stream_goes_up_resumably_in_several_chunks(gcs: FakeGcsServer) -> None:
    bucket = new_bucket(gcs)
    store = open_gcs(gcs, bucket, "velero")
    seen = record_requests(store)
    data = os.urandom(20 * MiB + 17)
    await store.put("backups/b1/b1.tar.gz", chunks_of(data, MiB), content_type="application/gzip")
    uploads = [request for request in seen if "/upload/" in (request.url or "")]
    assert [request.method for request in uploads[:1]] == ["POST"]
    assert "uploadType=resumable" in (uploads[0].url or "")
    # Five chunks of 5 MiB (the part size, a multiple of 256 KiB), the last one short.
    chunk_bodies = [len(request.body or b"") for request in uploads if request.method == "PUT"]
    assert chunk_bodies == [5 * MiB] * 4 + [17]
    assert gcs.read(bucket, "velero/backups/b1/b1.tar.gz") == data
    info = await store.head("backups/b1/b1.tar.gz")
    assert info is not None
    assert info.size == len(data)
    assert hashlib.sha256(await store.get("backups/b1/b1.tar.gz")).digest() == hashlib.sha256(data).digest()


@run_async
async def test_a_short_stream_goes_up_in_one_request(gcs: FakeGcsServer) -> None:
    store = open_gcs(gcs, new_bucket(gcs))
    seen = record_requests(store)
    await store.put("backups/b1/b1-logs.gz", chunks_of(b"x" * 300_000, 64 * 1024))
    assert [(request.method, "uploadType=multipart" in (request.url or "")) for request in seen] == [
        ("POST", True)
    ]
    assert await store.get("backups/b1/b1-logs.gz") == b"x" * 300_000


@run_async
async def test_bytes_larger_than_a_part_go_up_resumably(gcs: FakeGcsServer) -> None:
    bucket = new_bucket(gcs)
    store = open_gcs(gcs, bucket)
    seen = record_requests(store)
    data = os.urandom(11 * MiB)
    await store.put("etcd/snapshot.db", data)
    assert len([request for request in seen if request.method == "PUT"]) == 3
    assert gcs.read(bucket, "etcd/snapshot.db") == data


@run_async
async def test_listing_past_one_page_yields_every_key_once_in_order(gcs: FakeGcsServer) -> None:
    bucket = new_bucket(gcs)
    store = open_gcs(gcs, bucket, "velero")
    names = [f"backups/b{index // 100:03d}/obj-{index:05d}" for index in range(2345)]
    await asyncio.gather(*(store.put(name, b"x") for name in names))
    seen = record_requests(store)
    listed = [info.key async for info in store.list("backups")]
    assert listed == sorted(names)
    listings = [request for request in seen if request.method == "GET" and "/o?" in (request.url or "")]
    assert len(listings) == 3  # pages of 1,000
    assert await store.list_prefixes("backups") == sorted({f"{name.rsplit('/', 1)[0]}/" for name in names})
    assert await store.delete_prefix("backups/b001") == 100
    assert len(gcs.object_names(bucket)) == 2245


@run_async
async def test_a_missing_bucket_is_not_a_missing_object(gcs: FakeGcsServer) -> None:
    present = open_gcs(gcs, new_bucket(gcs), "velero")
    with pytest.raises(ObjectNotFound):
        await present.get("backups/b1/velero-backup.json")
    await present.delete("backups/b1/velero-backup.json")

    absent = open_gcs(gcs, f"strongroom-absent-{uuid.uuid4().hex[:8]}", "velero")
    for operation in (
        absent.get("backups/b1/velero-backup.json"),
        absent.get_stream("backups/b1/velero-backup.json"),
        absent.head("backups/b1/velero-backup.json"),
        absent.delete("backups/b1/velero-backup.json"),
        absent.put("backups/b1/velero-backup.json", b"{}"),
        absent.put("backups/b1/b1.tar.gz", chunks_of(os.urandom(6 * MiB), MiB)),
        absent.list_prefixes("backups"),
        keys(absent, "backups"),
    ):
        with pytest.raises(StorageError) as raised:
            await operation
        assert not isinstance(raised.value, ObjectNotFound)
        assert "does not exist" in raised.value.message
        assert raised.value.hint is not None
        assert "bucket" in raised.value.hint


@run_async
async def test_the_oadp_gcp_location_works_against_the_emulator(
    gcs: FakeGcsServer, tokens: TokenServer
) -> None:
    # The guide's location: provider gcp, bucket velero-bucket, prefix velero, the
    # cloud-credentials-gcp Secret's key; plus storeEndpoint at the emulator.
    bucket = f"velero-bucket-{uuid.uuid4().hex[:8]}"
    gcs.create_bucket(bucket)
    key = service_account_key(tokens.token_uri)
    credential = json.dumps(key, indent=2)
    store = open_gcs(gcs, bucket, "velero", credential)
    seen = record_requests(store)
    layout = Layout()
    await store.put(layout.backup_metadata("nightly-1"), b'{"kind": "Backup"}')
    assert await store.get(layout.backup_metadata("nightly-1")) == b'{"kind": "Backup"}'
    await validate_top_level(store, layout)
    assert gcs.object_names(bucket) == ["velero/backups/nightly-1/velero-backup.json"]
    # The key's JWT was exchanged at its token_uri, and the token went with every request.
    assert tokens.grants
    assert tokens.grants[-1]["grant_type"] == ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
    assert seen
    assert all(request.headers["Authorization"] == f"Bearer {ACCESS_TOKEN}" for request in seen)
    assert all(urllib.parse.urlsplit(request.url or "").hostname == "127.0.0.1" for request in seen)
    # A service-account key signs download URLs locally (V4), for the endpoint in use.
    url = await store.download_url(layout.backup_metadata("nightly-1"), timedelta(minutes=10))
    parts = urllib.parse.urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == gcs.endpoint
    query = urllib.parse.parse_qs(parts.query)
    assert query["X-Goog-Algorithm"] == ["GOOG4-RSA-SHA256"]
    assert query["X-Goog-Credential"][0].startswith(key["client_email"])
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.read() == b'{"kind": "Backup"}'
    # Nothing secret in what the store shows.
    assert key["private_key"] not in repr(store.settings)
    assert key["private_key_id"] not in repr(store.settings)


@run_async
async def test_objects_are_written_with_the_kms_key(gcs: FakeGcsServer) -> None:
    kms = "projects/my-project-123456/locations/us/keyRings/velero/cryptoKeys/backups"
    store = open_gcs(gcs, new_bucket(gcs), kmsKeyName=kms)
    seen = record_requests(store)
    await store.put("small", b"x")
    await store.put("streamed", chunks_of(os.urandom(6 * MiB), MiB))
    starts = [request for request in seen if request.method == "POST"]
    assert len(starts) == 2
    for request in starts:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(request.url or "").query)
        assert query["kmsKeyName"] == [kms]


@run_async
async def test_anonymous_emulator_access_cannot_sign_urls(gcs: FakeGcsServer) -> None:
    store = open_gcs(gcs, new_bucket(gcs))
    assert store.settings.anonymous
    with pytest.raises(StorageConfigError, match="cannot hand out download URLs") as raised:
        await store.download_url("backups/b1/b1.tar.gz", timedelta(minutes=5))
    assert raised.value.hint is not None
    assert "serviceAccount" in raised.value.hint


@run_async
async def test_an_unreachable_endpoint_fails_with_a_hint(gcs: FakeGcsServer) -> None:
    options = StoreOptions(
        part_size=5 * MiB,
        connect_timeout=timedelta(milliseconds=500),
        read_timeout=timedelta(seconds=1),
        max_retries=1,
        init_backoff=timedelta(milliseconds=10),
        max_backoff=timedelta(milliseconds=20),
        retry_timeout=timedelta(seconds=2),
    )
    settings = GcsSettings.from_velero_config("bucket", "", {"storeEndpoint": "http://127.0.0.1:9"})
    store = GcsObjectStore(settings, options)
    with pytest.raises(StorageError) as raised:
        await store.get("backups/b1/velero-backup.json")
    assert raised.value.hint is not None
    assert "storeEndpoint" in raised.value.hint
    assert not isinstance(raised.value, ObjectNotFound)


@run_async
async def test_a_thousand_concurrent_small_objects_put_list_and_delete(gcs: FakeGcsServer) -> None:
    # Concurrency is bounded by the store's threads; the 10,000-object figures are in benchmarks/.
    store = open_gcs(gcs, new_bucket(gcs))
    names = [f"restic/ns/data/{index:04x}" for index in range(1000)]
    await asyncio.gather(*(store.put(name, b"blob") for name in names))
    assert await keys(store, "restic") == sorted(names)
    assert await store.delete_prefix("restic") == 1000


@run_async
async def test_a_refused_key_fails_with_a_credentials_hint_and_no_secret(gcs: FakeGcsServer) -> None:
    with TokenServer(refuse=True) as refusing:
        key = service_account_key(refusing.token_uri)
        store = open_gcs(gcs, new_bucket(gcs), "velero", json.dumps(key))
        with pytest.raises(StorageError) as raised:
            await store.put("backups/b1/velero-backup.json", b"{}")
    assert not isinstance(raised.value, StorageConfigError)
    assert "could not get an access token" in raised.value.message
    assert "invalid_grant" in raised.value.message
    assert raised.value.hint is not None
    assert "credentials" in raised.value.hint
    shown = f"{raised.value} {raised.value.__cause__}"
    assert key["private_key"] not in shown
    assert key["private_key_id"] not in shown


@run_async
async def test_503_answers_are_retried(gcs: FakeGcsServer) -> None:
    bucket = new_bucket(gcs)
    port = int(urllib.parse.urlsplit(gcs.endpoint).port or 0)
    async with FlakyProxy(port, lambda number, _line: SLOWDOWN if number in (1, 2, 4) else PASS) as proxy:
        settings = GcsSettings.from_velero_config(bucket, "velero", {"storeEndpoint": proxy.endpoint})
        store = GcsObjectStore(settings, FAST)
        await store.put("backups/b1/velero-backup.json", b'{"kind": "Backup"}')
        assert await store.get("backups/b1/velero-backup.json") == b'{"kind": "Backup"}'
    assert proxy.served[SLOWDOWN] == 3
    assert gcs.read(bucket, "velero/backups/b1/velero-backup.json") == b'{"kind": "Backup"}'
