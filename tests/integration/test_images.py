"""Internal images backed up into the location's registry and restored, against real servers only.

The cluster's internal registry is a real docker-registry on loopback
(``registrykit``), the backup location is moto's S3 server or a directory,
the location's registry is strongroom's ``LocationRegistry`` (docker-registry
on that storage) and every copy is skopeo's.
"""

from __future__ import annotations

import logging
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.integration.registrykit import (
    BuiltImage,
    DroppingProxy,
    InternalRegistry,
    build_image,
    build_index,
    imagestream,
    internal_registry,
    manifest_digest,
    push,
)
from tests.integration.s3server import ACCESS_KEY_ID, SECRET_ACCESS_KEY, MotoServer, moto_server
from tests.runasync import run_async

from strongroom.errors import StorageConfigError, StorageError, StrongroomError
from strongroom.images import (
    OPENSHIFT_INTERNAL_REGISTRY,
    ImageBackup,
    ImageCopier,
    ImageRestore,
    LocationRegistry,
    Outcome,
    RegistryCredentials,
    RegistryEndpoint,
)
from strongroom.sandbox.pki import ensure_pki
from strongroom.storage.credentials import AwsCredentials

pytestmark = pytest.mark.integration

CREDENTIALS = f"""[default]
aws_access_key_id={ACCESS_KEY_ID}
aws_secret_access_key={SECRET_ACCESS_KEY}
"""
REGISTRY_PASSWORD = "internal-registry-token-do-not-log-me"
PREFIX = "velero"
IMAGES = f"{PREFIX}/plugins/images/docker/registry/v2/"


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    with moto_server(tmp_path_factory.mktemp("moto")) as server:
        yield server


@pytest.fixture(scope="module")
def internal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InternalRegistry]:
    """The source cluster's internal registry, shared by the tests that only read it."""
    with internal_registry(tmp_path_factory.mktemp("internal")) as registry:
        yield registry


@pytest.fixture(scope="module")
def images(
    internal: InternalRegistry, tmp_path_factory: pytest.TempPathFactory
) -> tuple[BuiltImage, BuiltImage]:
    """Two builds of shop/web: the older one tagged v1, then latest; returns (newer, older)."""
    older = build_image(tmp_path_factory.mktemp("older"), tag="v1")
    newer = build_image(tmp_path_factory.mktemp("newer"), tag="latest")
    push(older, internal.host, "shop/web", "v1")
    push(older, internal.host, "shop/web", "latest")
    push(newer, internal.host, "shop/web", "latest")
    return newer, older


def web_stream(images: tuple[BuiltImage, BuiltImage], name: str = "web") -> dict[str, Any]:
    newer, older = images
    return imagestream("shop", name, {"latest": [newer.digest, older.digest], "v1": [older.digest]})


def location_config(moto: MotoServer) -> dict[str, str]:
    """The OADP guide's MinIO location, pointed at moto."""
    return {
        "region": "minio",
        "s3Url": moto.endpoint,
        "s3ForcePathStyle": "true",
        "insecureSkipTLSVerify": "true",
    }


def new_bucket(moto: MotoServer) -> str:
    name = f"images-{uuid.uuid4().hex[:12]}"
    moto.create_bucket(name)
    return name


def objects(moto: MotoServer, bucket: str) -> dict[str, tuple[str, Any]]:
    """Every object of the bucket: key -> (ETag, LastModified)."""
    found: dict[str, tuple[str, Any]] = {}
    for page in moto.client().get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            found[item["Key"]] = (item["ETag"], item["LastModified"])
    return found


def blob_key(digest: str) -> str:
    hexdigest = digest.split(":", 1)[1]
    return f"{IMAGES}blobs/sha256/{hexdigest[:2]}/{hexdigest}/data"


def s3_registry(moto: MotoServer, bucket: str, tmp_path: Path) -> LocationRegistry:
    return LocationRegistry(
        "aws", bucket, PREFIX, location_config(moto), CREDENTIALS, scratch_dir=tmp_path / "scratch"
    )


async def back_up(
    registry: LocationRegistry, source: str, stream: dict[str, Any], tmp_path: Path, *more: dict[str, Any]
) -> list[Any]:
    async with ImageCopier(scratch_dir=tmp_path / "scratch", retry_times=0) as copier:
        backup = ImageBackup(
            copier, source=RegistryEndpoint.plain_http(source), destination=registry.endpoint
        )
        return [await backup.backup(item) for item in (stream, *more)]


@run_async
async def test_backup_to_s3_then_restore_into_another_namespace_keeps_every_digest(
    moto: MotoServer,
    internal: InternalRegistry,
    images: tuple[BuiltImage, BuiltImage],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="strongroom")
    newer, older = images
    stream = web_stream(images)
    bucket = new_bucket(moto)

    async with s3_registry(moto, bucket, tmp_path) as registry:
        [result] = await back_up(registry, internal.host, stream, tmp_path)
        host = registry.host

    assert result.errors == []
    assert {r.digest for r in result.copied} == {newer.digest, older.digest}
    assert {r.destination for r in result.copied} == {
        f"{host}/shop/web@{newer.digest}",
        f"{host}/shop/web@{older.digest}",
    }
    stored = objects(moto, bucket)
    assert stored
    assert all(key.startswith(IMAGES) for key in stored)
    for image in images:
        for digest in (*image.layers, image.config, image.digest):
            assert blob_key(digest) in stored

    with internal_registry(tmp_path / "target-cluster") as target:
        async with (
            s3_registry(moto, bucket, tmp_path) as registry,
            ImageCopier(scratch_dir=tmp_path / "scratch", retry_times=0) as copier,
        ):
            restore = ImageRestore(
                copier,
                source=registry.endpoint,
                destination=RegistryEndpoint.plain_http(target.host),
                target_registry=OPENSHIFT_INTERNAL_REGISTRY,
            )
            restored = await restore.restore(stream, "shop-restored")

        assert restored.errors == []
        assert {r.digest for r in restored.copied} == {newer.digest, older.digest}
        for image in images:
            assert manifest_digest(f"{target.host}/shop-restored/web@{image.digest}") == image.digest
        # Each tag's history was replayed oldest first: its newest image is current.
        assert manifest_digest(f"{target.host}/shop-restored/web:latest") == newer.digest
        assert manifest_digest(f"{target.host}/shop-restored/web:v1") == older.digest

    rewritten = restored.imagestream
    repository = f"{OPENSHIFT_INTERNAL_REGISTRY}/shop-restored/web"
    assert rewritten["metadata"]["namespace"] == "shop-restored"
    assert rewritten["status"]["dockerImageRepository"] == repository
    assert "publicDockerImageRepository" not in rewritten["status"]
    assert [
        (tag["tag"], [(item["dockerImageReference"], item["image"]) for item in tag["items"]])
        for tag in rewritten["status"]["tags"]
    ] == [
        (
            "latest",
            [(f"{repository}@{newer.digest}", newer.digest), (f"{repository}@{older.digest}", older.digest)],
        ),
        ("v1", [(f"{repository}@{older.digest}", older.digest)]),
    ]
    assert stream["metadata"]["namespace"] == "shop"  # the backed-up object is left as it was
    assert SECRET_ACCESS_KEY not in caplog.text


@run_async
async def test_a_second_backup_uploads_nothing_and_another_stream_reuses_the_layers(
    moto: MotoServer, internal: InternalRegistry, images: tuple[BuiltImage, BuiltImage], tmp_path: Path
) -> None:
    bucket = new_bucket(moto)
    async with s3_registry(moto, bucket, tmp_path) as registry:
        [first] = await back_up(registry, internal.host, web_stream(images), tmp_path)
    assert len(first.copied) == 2
    before = objects(moto, bucket)

    # A later backup: a new registry process on the same bucket; the web stream again and, new in
    # this run, a stream in another namespace holding the same newer image.
    other = imagestream("shop-staging", "web", {"latest": [images[0].digest]})
    other["status"]["tags"][0]["items"][0]["dockerImageReference"] = (
        f"{OPENSHIFT_INTERNAL_REGISTRY}/shop/web@{images[0].digest}"
    )
    async with s3_registry(moto, bucket, tmp_path) as registry:
        second, staging = await back_up(registry, internal.host, web_stream(images), tmp_path, other)

    assert second.copied == () and second.failed == ()
    assert {r.digest for r in second.present} == {images[0].digest, images[1].digest}
    assert all(r.outcome is Outcome.PRESENT for r in second.images)
    assert [r.outcome for r in staging.images] == [Outcome.COPIED]
    after = objects(moto, bucket)
    # Nothing of the first backup was rewritten, and no blob was stored twice: the new stream's
    # repository only links the blobs that were there.
    assert {key: after[key] for key in before} == before
    added = set(after) - set(before)
    assert added
    assert all(key.startswith(f"{IMAGES}repositories/shop-staging/web/") for key in added)


@run_async
async def test_an_s3_endpoint_with_a_private_ca_is_trusted_through_the_locations_ca_cert(
    internal: InternalRegistry,
    images: tuple[BuiltImage, BuiltImage],
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    pki = ensure_pki(tmp_path_factory.mktemp("images-pki"))
    with moto_server(
        tmp_path_factory.mktemp("moto-tls"), certificate=(pki.ca_cert, pki.server_cert, pki.server_key)
    ) as server:
        bucket = new_bucket(server)
        config = {"region": "minio", "s3Url": server.endpoint, "s3ForcePathStyle": "true"}
        # Without the CA the registry cannot reach the bucket, and says so at start-up.
        with pytest.raises(StorageError, match="certificate") as untrusted:
            async with LocationRegistry(
                "aws", bucket, PREFIX, config, CREDENTIALS, scratch_dir=tmp_path / "s"
            ):
                pass
        assert SECRET_ACCESS_KEY not in str(untrusted.value)
        trusted = {**config, "caCert": str(pki.ca_cert)}
        async with LocationRegistry(
            "aws", bucket, PREFIX, trusted, CREDENTIALS, scratch_dir=tmp_path / "s"
        ) as registry:
            [result] = await back_up(
                registry, internal.host, imagestream("shop", "web", {"v1": [images[1].digest]}), tmp_path
            )
        assert [r.outcome for r in result.images] == [Outcome.COPIED]
        assert blob_key(images[1].layers[0]) in objects(server, bucket)


@run_async
async def test_a_local_directory_location_holds_the_images(
    internal: InternalRegistry, images: tuple[BuiltImage, BuiltImage], tmp_path: Path
) -> None:
    directory = tmp_path / "backups"
    directory.mkdir()
    async with LocationRegistry(
        "local", str(directory), "cluster-a", scratch_dir=tmp_path / "scratch"
    ) as registry:
        [result] = await back_up(registry, internal.host, web_stream(images), tmp_path)
        async with ImageCopier(scratch_dir=tmp_path / "scratch") as copier:
            copier.register(registry.endpoint)
            assert await copier.exists(f"{registry.host}/shop/web@{images[0].digest}")
            assert not await copier.exists(f"{registry.host}/shop/other@{images[0].digest}")

    assert result.errors == []
    assert len(result.copied) == 2
    root = directory / "cluster-a" / "plugins" / "images" / "docker" / "registry" / "v2"
    digest = images[0].layers[0].split(":", 1)[1]
    assert (root / "blobs" / "sha256" / digest[:2] / digest / "data").is_file()
    assert sorted(p.name for p in (directory / "cluster-a").iterdir()) == ["plugins"]


@run_async
async def test_a_multi_architecture_image_is_copied_whole_with_its_digests(
    internal: InternalRegistry, tmp_path: Path
) -> None:
    index = build_index(tmp_path / "multi")
    push(index, internal.host, "shop/multi", "latest")
    directory = tmp_path / "backups"
    directory.mkdir()
    stream = imagestream("shop", "multi", {"latest": [index.digest]})
    async with (
        LocationRegistry("local", str(directory), scratch_dir=tmp_path / "scratch") as registry,
        ImageCopier(scratch_dir=tmp_path / "scratch") as copier,
    ):
        [result] = await back_up(registry, internal.host, stream, tmp_path)
        copier.register(registry.endpoint)
        assert await copier.exists(f"{registry.host}/shop/multi@{index.digest}")
        for manifest in index.layers:  # every architecture's image came along
            assert await copier.exists(f"{registry.host}/shop/multi@{manifest}")
    assert [(r.digest, r.outcome) for r in result.images] == [(index.digest, Outcome.COPIED)]


@run_async
async def test_an_internal_registry_that_is_gone_fails_each_image_by_name(
    images: tuple[BuiltImage, BuiltImage], tmp_path: Path
) -> None:
    newer, _ = images
    with internal_registry(tmp_path / "gone") as gone:
        push(newer, gone.host, "shop/web", "latest")
        gone.stop()
        location = tmp_path / "backups"
        location.mkdir()
        stream = imagestream("shop", "web", {"latest": [newer.digest]})
        async with LocationRegistry("local", str(location), scratch_dir=tmp_path / "scratch") as registry:
            [result] = await back_up(registry, gone.host, stream, tmp_path)

    assert result.copied == () and result.present == ()
    [failed] = result.failed
    assert failed.digest == newer.digest
    [error] = result.errors
    assert f"shop/web@{newer.digest}" in error
    assert gone.host in error
    assert "connection refused" in error


@run_async
async def test_a_registry_that_drops_the_connection_mid_layer_fails_the_image(
    internal: InternalRegistry, tmp_path: Path
) -> None:
    big = build_image(tmp_path / "big", (2 * 1024 * 1024,))
    push(big, internal.host, "shop/big", "latest")
    location = tmp_path / "backups"
    location.mkdir()
    stream = imagestream("shop", "big", {"latest": [big.digest]})
    async with (
        DroppingProxy(internal.host) as proxy,
        LocationRegistry("local", str(location), scratch_dir=tmp_path / "scratch") as registry,
    ):
        source = proxy.host
        [result] = await back_up(registry, source, stream, tmp_path)
        async with ImageCopier(scratch_dir=tmp_path / "scratch") as copier:
            copier.register(registry.endpoint)
            assert not await copier.exists(f"{registry.host}/shop/big@{big.digest}")

    assert proxy.cuts >= 1
    assert result.copied == () and result.present == ()
    [error] = result.errors
    assert f"shop/big@{big.digest}" in error
    assert source in error


@run_async
async def test_a_corrupt_layer_in_the_internal_registry_is_an_error_not_a_copy(tmp_path: Path) -> None:
    image = build_image(tmp_path / "image")
    location = tmp_path / "backups"
    location.mkdir()
    with internal_registry(tmp_path / "corrupt") as registry:
        push(image, registry.host, "shop/web", "latest")
        blob = registry.blob_path(image.layers[0])
        data = bytearray(blob.read_bytes())
        data[len(data) // 2] ^= 0xFF  # one bit flipped, the size unchanged
        blob.write_bytes(bytes(data))
        stream = imagestream("shop", "web", {"latest": [image.digest]})
        async with LocationRegistry(
            "local", str(location), scratch_dir=tmp_path / "scratch"
        ) as backup_registry:
            [result] = await back_up(backup_registry, registry.host, stream, tmp_path)
            async with ImageCopier(scratch_dir=tmp_path / "scratch") as copier:
                copier.register(backup_registry.endpoint)
                assert not await copier.exists(f"{backup_registry.host}/shop/web@{image.digest}")

    assert result.copied == ()
    [error] = result.errors
    assert f"shop/web@{image.digest}" in error
    assert "digest" in error.lower()


@run_async
async def test_no_secret_reaches_argv_a_message_or_a_log(
    moto: MotoServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="strongroom")
    messages: list[str] = []

    # The registry keeps the secret key in its configuration file only: 0600, in a 0700 directory.
    async with s3_registry(moto, new_bucket(moto), tmp_path) as registry:
        assert registry.pid is not None and registry.config_path is not None
        assert SECRET_ACCESS_KEY not in Path(f"/proc/{registry.pid}/cmdline").read_text()
        assert stat.S_IMODE(registry.config_path.stat().st_mode) == 0o600
        assert stat.S_IMODE(registry.config_path.parent.stat().st_mode) == 0o700
        assert SECRET_ACCESS_KEY in registry.config_path.read_text()
        scratch = registry.config_path.parent
    assert not scratch.exists()

    # A bucket that does not exist fails at start-up, with the driver's words and no key.
    with pytest.raises(StorageError) as missing:
        async with s3_registry(moto, "no-such-bucket-here", tmp_path):
            pass
    assert "NoSuchBucket" in str(missing.value)
    messages.append(str(missing.value))

    # Temporary credentials go through the registry's environment: never its argv or its file.
    temporary = AwsCredentials(ACCESS_KEY_ID, SECRET_ACCESS_KEY, session_token="session-token-do-not-log")
    async with LocationRegistry(
        "aws", new_bucket(moto), PREFIX, location_config(moto), temporary, scratch_dir=tmp_path / "scratch"
    ) as registry:
        assert registry.config_path is not None
        assert SECRET_ACCESS_KEY not in registry.config_path.read_text()
        assert "session-token-do-not-log" not in Path(f"/proc/{registry.pid}/cmdline").read_text()
        messages.append(registry.log_tail())

    # A registry's password goes to skopeo in an auth file; a failed copy's message does not carry it.
    with internal_registry(tmp_path / "gone") as gone:
        gone.stop()
    endpoint = RegistryEndpoint(
        gone.host, tls_verify=False, credentials=RegistryCredentials("me", REGISTRY_PASSWORD)
    )
    async with ImageCopier(endpoints=[endpoint], scratch_dir=tmp_path / "scratch", retry_times=0) as copier:
        with pytest.raises(StrongroomError) as failed:
            await copier.copy(f"{gone.host}/shop/web:latest", f"{gone.host}/shop/copy:latest")
        # The auth file lived only while skopeo ran.
        assert not list((tmp_path / "scratch").rglob("auth-*"))
    messages.append(str(failed.value))
    assert REGISTRY_PASSWORD not in repr(endpoint)

    logged = caplog.text
    for secret in (SECRET_ACCESS_KEY, "session-token-do-not-log", REGISTRY_PASSWORD):
        assert secret not in logged
        assert all(secret not in message for message in messages)


def test_a_location_that_cannot_hold_images_is_refused_with_what_to_use(tmp_path: Path) -> None:
    with pytest.raises(StorageConfigError) as refused:
        LocationRegistry("azure", "container", config={"storageAccount": "acct"})
    assert "S3-compatible or local location" in str(refused.value)
    with pytest.raises(StorageConfigError):
        LocationRegistry("local", str(tmp_path / "missing"))
    with pytest.raises(StorageConfigError, match="SSE-S3 and SSE-KMS only"):
        LocationRegistry(
            "aws",
            "bucket",
            config={"region": "us-east-1", "serverSideEncryption": "aws:kms:dsse", "kmsKeyId": "k"},
        )


@run_async
async def test_a_missing_registry_binary_says_what_to_install(tmp_path: Path) -> None:
    registry = LocationRegistry("local", str(tmp_path), binary="/nonexistent/docker-registry")
    with pytest.raises(StrongroomError) as missing:
        async with registry:
            pass
    assert "apt-get install docker-registry" in str(missing.value)
    with pytest.raises(StrongroomError, match="apt-get install skopeo"):
        ImageCopier(binary="/nonexistent/skopeo")
