"""The S3 store against a real S3 server (moto's standalone server on 127.0.0.1).

The shared ObjectStore contract runs here unchanged, then what only S3 has:
multipart uploads, path-style requests to a custom endpoint configured the
way the OADP guide configures MinIO, listings longer than one page, TLS with
a private CA, and retries through a proxy that fails requests on purpose.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import os
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta

import aiohttp
import pytest
from tests.integration.s3server import (
    ACCESS_KEY_ID,
    CUT,
    FORBIDDEN,
    INTERNAL,
    PASS,
    RESET,
    SECRET_ACCESS_KEY,
    SLOWDOWN,
    STALL,
    FlakyProxy,
    MotoServer,
    cuttable,
    moto_server,
)
from tests.runasync import run_async
from tests.unit.storage.test_storage_conformance import StoreConformance, chunks_of, keys

from strongroom.errors import ObjectNotFound, StorageConfigError, StorageError
from strongroom.sandbox.pki import ensure_pki
from strongroom.storage import (
    Layout,
    ObjectStore,
    S3ObjectStore,
    StoreOptions,
    open_store,
    validate_top_level,
)

pytestmark = pytest.mark.integration

MiB = 1024 * 1024
# The Secret of the OADP guide, with a profile per purpose.
CREDENTIALS = f"""[backupStorage]
aws_access_key_id={ACCESS_KEY_ID}
aws_secret_access_key={SECRET_ACCESS_KEY}

[volumeSnapshot]
aws_access_key_id=AKIAVOLUMESNAPSHOTS1
aws_secret_access_key=another-secret-for-snapshots
"""
# Small parts and quick retries keep the suite fast; the behaviour is the same.
FAST = StoreOptions(
    part_size=5 * MiB,
    connect_timeout=timedelta(seconds=2),
    read_timeout=timedelta(seconds=5),
    request_timeout=timedelta(seconds=30),
    max_retries=6,
    init_backoff=timedelta(milliseconds=10),
    max_backoff=timedelta(milliseconds=100),
    retry_timeout=timedelta(seconds=20),
)


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    with moto_server(tmp_path_factory.mktemp("moto")) as server:
        yield server


def new_bucket(moto: MotoServer) -> str:
    name = f"strongroom-{uuid.uuid4().hex[:16]}"
    moto.create_bucket(name)
    return name


def minio_config(endpoint: str, **extra: str) -> dict[str, str]:
    """The OADP guide's MinIO location config, pointed at ``endpoint``."""
    return {
        "profile": "backupStorage",
        "region": "minio",
        "s3Url": endpoint,
        "insecureSkipTLSVerify": "true",
        "s3ForcePathStyle": "true",
        **extra,
    }


def open_s3(
    endpoint: str, bucket: str, prefix: str = "", options: StoreOptions = FAST, **extra: str
) -> S3ObjectStore:
    store = open_store("aws", bucket, prefix, minio_config(endpoint, **extra), CREDENTIALS, options=options)
    assert isinstance(store, S3ObjectStore)
    return store


class TestS3StoreConformance(StoreConformance):
    @pytest.fixture(params=["bucket-root", "prefixed"])
    def store(self, request: pytest.FixtureRequest, moto: MotoServer) -> ObjectStore:
        prefix = "" if request.param == "bucket-root" else "velero/cluster-a"
        return open_s3(moto.endpoint, new_bucket(moto), prefix)


@run_async
async def test_multipart_upload_of_a_20_mib_stream(moto: MotoServer) -> None:
    bucket = new_bucket(moto)
    store = open_s3(moto.endpoint, bucket, "velero")
    data = os.urandom(20 * MiB + 17)
    await store.put("backups/b1/b1.tar.gz", chunks_of(data, MiB), content_type="application/gzip")
    head = moto.client().head_object(Bucket=bucket, Key="velero/backups/b1/b1.tar.gz")
    # Five parts of 5 MiB: the ETag of a multipart object ends in its part count.
    assert head["ETag"].strip('"').endswith("-5")
    assert head["ContentLength"] == len(data)
    assert head["ContentType"] == "application/gzip"
    assert hashlib.sha256(await store.get("backups/b1/b1.tar.gz")).digest() == hashlib.sha256(data).digest()


@run_async
async def test_bytes_larger_than_a_part_go_up_in_parts(moto: MotoServer) -> None:
    bucket = new_bucket(moto)
    store = open_s3(moto.endpoint, bucket)
    await store.put("etcd/snapshot.db", os.urandom(11 * MiB))
    assert moto.client().head_object(Bucket=bucket, Key="etcd/snapshot.db")["ETag"].strip('"').endswith("-3")


@run_async
async def test_path_style_requests_reach_the_custom_endpoint(moto: MotoServer) -> None:
    bucket = new_bucket(moto)
    async with FlakyProxy(_port(moto), lambda _n, _m: PASS) as proxy:
        store = open_s3(proxy.endpoint, bucket, "velero")
        assert not store.settings.virtual_hosted_style
        await store.put("backups/b/velero-backup.json", b"{}")
    assert proxy.request_lines() == [f"PUT /{bucket}/velero/backups/b/velero-backup.json HTTP/1.1"]
    assert (
        moto.client().get_object(Bucket=bucket, Key="velero/backups/b/velero-backup.json")["Body"].read()
        == b"{}"
    )


@run_async
async def test_an_ip_endpoint_works_without_force_path_style(moto: MotoServer) -> None:
    config = {"region": "us-east-1", "s3Url": moto.endpoint, "profile": "backupStorage"}
    store = open_store("aws", new_bucket(moto), "", config, CREDENTIALS, options=FAST)
    await store.put("k", b"v")
    assert await store.get("k") == b"v"


@run_async
async def test_requests_carry_only_the_given_credentials(
    moto: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Credentials in the environment must not leak into a location's requests.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFROMENVIRONMENT0")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret-from-environment")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "token-from-environment")
    async with FlakyProxy(_port(moto), lambda _n, _m: PASS) as proxy:
        store = open_s3(proxy.endpoint, new_bucket(moto))
        await store.put("k", b"v")
    head = proxy.heads[0].decode("latin-1").lower()
    assert f"credential={ACCESS_KEY_ID.lower()}/" in head
    assert "x-amz-security-token" not in head
    assert SECRET_ACCESS_KEY.lower() not in head


def cut_second_page() -> Callable[[int, str], str]:
    """Cut the body of the second page of each kind of listing, once."""
    pages: Counter[str] = Counter()

    def plan(_number: int, request: str) -> str:
        kind = "delimited" if "delimiter=" in request else "recursive" if "list-type=2" in request else None
        if kind is None:
            return PASS
        pages[kind] += 1
        return CUT if pages[kind] == 2 else PASS

    return plan


@run_async
async def test_listings_page_past_1000_keys_and_resume_after_a_broken_page(moto: MotoServer) -> None:
    bucket = new_bucket(moto)
    writer = open_s3(moto.endpoint, bucket)
    count = 1005
    limit = asyncio.Semaphore(16)

    async def put(index: int) -> None:
        async with limit:
            await writer.put(f"backups/b{index:04d}/velero-backup.json", b"{}")

    await asyncio.gather(*(put(index) for index in range(count)))
    async with FlakyProxy(_port(moto), cut_second_page()) as proxy:
        reader = open_s3(proxy.endpoint, bucket)
        listed = await keys(reader, "backups")
        prefixes = await reader.list_prefixes("backups")
    assert len(listed) == len(set(listed)) == count
    assert len(prefixes) == count
    assert prefixes[0] == "backups/b0000/"
    assert [Layout().backup_name(prefix) for prefix in prefixes[-2:]] == ["b1003", "b1004"]
    # Both listings took more than one page, and each survived a page cut halfway.
    assert proxy.actions_for("list-type=2").count(CUT) == 2
    assert len(proxy.requests_for("delimiter=")) >= 3
    assert any("start-after=" in line for line in proxy.requests_for("list-type=2"))
    assert await writer.delete_prefix("backups") == count
    assert await keys(writer) == []


@run_async
async def test_a_shared_bucket_needs_a_prefix(moto: MotoServer) -> None:
    bucket = new_bucket(moto)
    client = moto.client()
    client.put_object(Bucket=bucket, Key="photos/cat.jpg", Body=b"")
    client.put_object(Bucket=bucket, Key="oadp/backups/b1/velero-backup.json", Body=b"{}")
    with pytest.raises(StorageConfigError) as raised:
        await validate_top_level(open_s3(moto.endpoint, bucket), Layout())
    assert raised.value.message == "Backup store contains invalid top-level directories: [oadp photos]"
    assert "prefix" in str(raised.value.hint)
    await validate_top_level(open_s3(moto.endpoint, bucket, "oadp"), Layout())
    await validate_top_level(open_s3(moto.endpoint, bucket), Layout("oadp"))


@run_async
async def test_location_settings_reach_the_objects(moto: MotoServer) -> None:
    bucket = new_bucket(moto)
    store = open_s3(
        moto.endpoint,
        bucket,
        tagging="app=strongroom&team=platform",
        serverSideEncryption="AES256",
        checksumAlgorithm="SHA256",
    )
    await store.put("backups/b/velero-backup.json", b"{}", content_type="application/json")
    await store.put("backups/b/b.tar.gz", chunks_of(os.urandom(6 * MiB), MiB))
    client = moto.client()
    for key in ("backups/b/velero-backup.json", "backups/b/b.tar.gz"):
        tags = client.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]
        assert sorted((tag["Key"], tag["Value"]) for tag in tags) == [
            ("app", "strongroom"),
            ("team", "platform"),
        ]
        assert client.head_object(Bucket=bucket, Key=key)["ServerSideEncryption"] == "AES256"
    assert (
        client.head_object(Bucket=bucket, Key="backups/b/velero-backup.json")["ContentType"]
        == "application/json"
    )


@run_async
async def test_a_missing_bucket_is_not_a_missing_object(moto: MotoServer) -> None:
    store = open_s3(moto.endpoint, "no-such-bucket-anywhere")
    with pytest.raises(StorageError) as raised:
        await store.put("k", b"v")
    assert not isinstance(raised.value, ObjectNotFound)
    assert "does not exist" in str(raised.value)
    with pytest.raises(StorageError) as listing:
        await store.list_prefixes()
    assert not isinstance(listing.value, ObjectNotFound)


def every_other(faults: list[str]) -> Callable[[int, str], str]:
    """A plan that cycles through ``faults`` with a passing request after each, so every retry passes.

    A CUT waits for a request whose response has a body to cut.
    """
    upcoming = itertools.cycle(faults)
    fault = next(upcoming)
    failed_last = False

    def plan(_number: int, request: str) -> str:
        nonlocal fault, failed_last
        if failed_last or (fault == CUT and not cuttable(request)):
            failed_last = False
            return PASS
        applied, fault, failed_last = fault, next(upcoming), True
        return applied

    return plan


@run_async
async def test_uploads_and_downloads_survive_throttling_errors_and_resets(moto: MotoServer) -> None:
    bucket = new_bucket(moto)
    data = os.urandom(12 * MiB + 5)
    async with FlakyProxy(_port(moto), every_other([SLOWDOWN, INTERNAL, RESET, CUT])) as proxy:
        store = open_s3(proxy.endpoint, bucket, "velero")
        await store.put("backups/b1/b1.tar.gz", chunks_of(data, MiB))
        await store.put("backups/b1/velero-backup.json", b"{}")
        assert await store.get("backups/b1/b1.tar.gz") == data
        streamed = b"".join([chunk async for chunk in await store.get_stream("backups/b1/b1.tar.gz")])
        assert streamed == data
        assert await store.get("backups/b1/velero-backup.json") == b"{}"
        info = await store.head("backups/b1/b1.tar.gz")
        assert info is not None
        assert info.size == len(data)
        assert await keys(store, "backups") == ["backups/b1/b1.tar.gz", "backups/b1/velero-backup.json"]
        assert await store.list_prefixes() == ["backups/"]
        assert await store.delete_prefix("backups/b1") == 2
        assert await keys(store) == []
    assert not proxy.exhausted
    assert proxy.requests < proxy.budget
    for fault in (SLOWDOWN, INTERNAL, RESET, CUT):
        assert proxy.served[fault] > 0, f"no {fault} was injected: {dict(proxy.served)}"


@run_async
async def test_a_stalled_request_times_out_and_is_retried(moto: MotoServer) -> None:
    options = StoreOptions(
        part_size=5 * MiB,
        request_timeout=timedelta(seconds=1),
        read_timeout=timedelta(seconds=1),
        max_retries=3,
        init_backoff=timedelta(milliseconds=10),
        max_backoff=timedelta(milliseconds=50),
    )

    def plan(number: int, _request: str) -> str:
        return STALL if number == 1 else PASS

    async with FlakyProxy(_port(moto), plan, stall_seconds=5) as proxy:
        store = open_s3(proxy.endpoint, new_bucket(moto), options=options)
        started = time.monotonic()
        await store.put("k", b"value")
        assert await store.get("k") == b"value"
    assert proxy.served[STALL] == 1
    assert time.monotonic() - started < 5


@run_async
async def test_rejected_credentials_fail_fast_and_never_show_a_secret(
    moto: MotoServer, caplog: pytest.LogCaptureFixture
) -> None:
    bucket = new_bucket(moto)
    caplog.set_level(logging.DEBUG, logger="strongroom")
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InvalidAccessKeyId</Code><Message>The AWS Access Key '
        f"Id you provided does not exist in our records.</Message><AWSAccessKeyId>{ACCESS_KEY_ID}</AWSAccessKeyId>"
        "</Error>"
    ).encode()
    async with FlakyProxy(_port(moto), lambda _n, _m: FORBIDDEN, forbidden_body=body) as proxy:
        store = open_s3(proxy.endpoint, bucket)
        with pytest.raises(StorageError) as raised:
            await store.put("backups/b/velero-backup.json", b"{}")
    assert proxy.requests == 1
    error = raised.value
    assert "InvalidAccessKeyId" in str(error)
    assert "credentials" in str(error.hint)
    ours = "\n".join(record.getMessage() for record in caplog.records if record.name.startswith("strongroom"))
    assert "opened object store" in ours
    assert type(error.__cause__).__name__ == "ProviderDetail"
    for text in (str(error), repr(error), ours, str(error.__cause__)):
        assert SECRET_ACCESS_KEY not in text
        assert ACCESS_KEY_ID not in text


@pytest.fixture(scope="module")
def tls_moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    pki = ensure_pki(tmp_path_factory.mktemp("s3-pki"))
    with moto_server(
        tmp_path_factory.mktemp("moto-tls"), certificate=(pki.ca_cert, pki.server_cert, pki.server_key)
    ) as server:
        yield server


def tls_store(server: MotoServer, bucket: str, **config: str) -> S3ObjectStore:
    options = StoreOptions(part_size=5 * MiB, max_retries=0)
    base = {"profile": "backupStorage", "s3Url": server.endpoint, "s3ForcePathStyle": "true"}
    store = open_store("aws", bucket, "", {**base, **config}, CREDENTIALS, options=options)
    assert isinstance(store, S3ObjectStore)
    return store


@run_async
async def test_tls_with_the_ca_certificate_of_the_location(tls_moto: MotoServer) -> None:
    bucket = new_bucket(tls_moto)
    assert tls_moto.ca_file is not None
    ca_pem = tls_moto.ca_file.read_text()
    for ca_cert in (ca_pem, str(tls_moto.ca_file)):
        store = tls_store(tls_moto, bucket, caCert=ca_cert, insecureSkipTLSVerify="false")
        await store.put("k", b"over tls")
        assert await store.get("k") == b"over tls"


@run_async
async def test_tls_skip_verify_accepts_any_certificate(tls_moto: MotoServer) -> None:
    store = tls_store(tls_moto, new_bucket(tls_moto), insecureSkipTLSVerify="true")
    await store.put("k", b"v")


@run_async
async def test_an_untrusted_certificate_is_explained(tls_moto: MotoServer) -> None:
    store = tls_store(tls_moto, new_bucket(tls_moto))
    with pytest.raises(StorageError) as raised:
        await store.put("k", b"v")
    assert "caCert" in str(raised.value.hint)


def _port(server: MotoServer) -> int:
    return int(server.endpoint.rsplit(":", 1)[1])


def test_every_other_plan_lets_each_retry_pass() -> None:
    plan = every_other([SLOWDOWN, CUT])
    put, get = "PUT /b/k HTTP/1.1", "GET /b/k HTTP/1.1"
    requests = [put, put, put, put, get, get, put]
    assert [plan(number, line) for number, line in enumerate(requests, 1)] == [
        SLOWDOWN,
        PASS,
        PASS,
        PASS,
        CUT,
        PASS,
        SLOWDOWN,
    ]


@run_async
async def test_a_download_url_reads_the_object_without_credentials(moto: MotoServer) -> None:
    store = open_s3(moto.endpoint, new_bucket(moto), "velero/cluster-a")
    await store.put("backups/b1/b1-logs.gz", b"log lines")

    url = await store.download_url("backups/b1/b1-logs.gz", timedelta(minutes=10))

    assert "velero/cluster-a/backups/b1/b1-logs.gz" in url
    assert "X-Amz-Signature=" in url
    assert SECRET_ACCESS_KEY not in url
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200
        assert await response.read() == b"log lines"
