"""The local directory store beyond the shared contract: what a file system adds or lacks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tests.runasync import run_async
from tests.unit.storage.test_storage_conformance import SourceBroke, failing_source, keys

from strongroom.errors import StorageConfigError
from strongroom.storage import LocalObjectStore, open_store


@pytest.fixture
def bucket(tmp_path: Path) -> Path:
    directory = tmp_path / "bucket"
    directory.mkdir()
    return directory


def files_under(directory: Path) -> list[str]:
    return sorted(str(path.relative_to(directory)) for path in directory.rglob("*"))


@run_async
async def test_objects_are_plain_files_under_bucket_and_prefix(bucket: Path) -> None:
    store = LocalObjectStore(bucket, "velero/")
    await store.put("backups/b1/velero-backup.json", b"{}")
    assert (bucket / "velero" / "backups" / "b1" / "velero-backup.json").read_bytes() == b"{}"
    assert store.root == bucket.resolve() / "velero"
    assert store.location == (bucket.resolve() / "velero").as_uri()


def test_the_bucket_directory_must_exist(tmp_path: Path) -> None:
    with pytest.raises(StorageConfigError, match="does not exist") as raised:
        open_store("local", str(tmp_path / "missing"))
    assert raised.value.hint is not None
    assert "mkdir" in raised.value.hint


@run_async
async def test_a_crashed_upload_leaves_only_an_invisible_staging_file(bucket: Path) -> None:
    store = LocalObjectStore(bucket)
    await store.put("backups/b1/velero-backup.json", b"{}")
    # What a killed process leaves behind: obstore's staging file, never renamed.
    (bucket / "backups" / "b2").mkdir()
    (bucket / "backups" / "b2" / "b2.tar.gz#1").write_bytes(b"half")
    assert await keys(store) == ["backups/b1/velero-backup.json"]
    assert await store.list_prefixes("backups") == ["backups/b1/"]
    assert await store.head("backups/b2/b2.tar.gz") is None


@run_async
async def test_a_failed_upload_removes_the_directories_it_created(bucket: Path) -> None:
    store = LocalObjectStore(bucket)
    await store.put("backups/b1/keep", b"x")
    with pytest.raises(SourceBroke):
        await store.put("backups/b2/deep/down/obj", failing_source(100_000))
    assert files_under(bucket) == ["backups", "backups/b1", "backups/b1/keep"]


@run_async
async def test_deleting_the_last_object_removes_empty_directories(bucket: Path) -> None:
    store = LocalObjectStore(bucket)
    await store.put("backups/b1/deep/obj", b"x")
    await store.put("backups/b2/obj", b"x")
    await store.delete("backups/b1/deep/obj")
    assert files_under(bucket) == ["backups", "backups/b2", "backups/b2/obj"]


@run_async
async def test_empty_directories_are_not_prefixes(bucket: Path) -> None:
    store = LocalObjectStore(bucket)
    (bucket / "backups" / "empty").mkdir(parents=True)
    (bucket / "lost+found").mkdir()
    assert await store.list_prefixes() == []


@run_async
async def test_staging_file_names_are_refused_as_keys(bucket: Path) -> None:
    store = LocalObjectStore(bucket)
    with pytest.raises(StorageConfigError, match="#<digits>"):
        await store.put("backups/b1/data#12", b"x")
    await store.put("backups/b1/data#v2", b"a '#' without digits is fine")


@run_async
async def test_a_missing_source_file_is_the_callers_error(bucket: Path, tmp_path: Path) -> None:
    store = LocalObjectStore(bucket)
    with pytest.raises(FileNotFoundError):
        await store.put("k", tmp_path / "no-such-file")
    assert os.listdir(bucket) == []


def test_local_provider_takes_no_config(bucket: Path) -> None:
    with pytest.raises(StorageConfigError, match=r"invalid keys \[region\]"):
        open_store("local", str(bucket), config={"region": "us-east-1"})
    # The keys Velero's server adds to every location are harmless.
    open_store("local", str(bucket), "p", config={"bucket": str(bucket), "prefix": "p"})


@run_async
async def test_a_large_object_streams_whole_and_a_replacement_mid_read_fails(tmp_path: Path) -> None:
    from strongroom.errors import StorageError

    store = LocalObjectStore(tmp_path)
    data = os.urandom(20 * 1024 * 1024 + 5)
    await store.put("big", data)
    assert b"".join([chunk async for chunk in await store.get_stream("big")]) == data
    chunks = await store.get_stream("big")
    first = await anext(chunks)
    assert first == data[: len(first)] and len(first) < len(data)
    await store.put("big", os.urandom(len(data)))  # another writer replaces it meanwhile
    with pytest.raises(StorageError, match="replaced while being read"):
        async for _ in chunks:
            pass
