"""What every ObjectStore must do, whatever the backend.

``StoreConformance`` holds the behaviour; each backend's test class inherits
it and provides a ``store`` fixture (an empty store). The local directory
store runs it here; tests/integration/test_storage_s3.py runs the very same
class against an S3 server.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import ParamSpec

import pytest
from tests.runasync import run_async

from strongroom.errors import NotFoundError, ObjectNotFound, StorageConfigError, StorageError
from strongroom.storage import Layout, LocalObjectStore, ObjectStore, open_store, validate_top_level

P = ParamSpec("P")
MiB = 1024 * 1024


async def chunks_of(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        await asyncio.sleep(0)
        yield data[start : start + size]


async def keys(store: ObjectStore, prefix: str = "", *, delimiter: str | None = None) -> list[str]:
    return sorted([info.key async for info in store.list(prefix, delimiter=delimiter)])


class SourceBroke(Exception):
    """Raised by a test's own upload source, to tell it apart from storage errors."""


async def failing_source(good_bytes: int) -> AsyncIterator[bytes]:
    sent = 0
    while sent < good_bytes:
        chunk = os.urandom(min(MiB, good_bytes - sent))
        sent += len(chunk)
        yield chunk
    raise SourceBroke("the source failed halfway")


class StoreConformance:
    """The ObjectStore contract; subclasses provide the ``store`` fixture."""

    # Large enough to need several parts at the smallest part size S3 allows.
    LARGE = 12 * MiB + 12345

    @run_async
    async def test_put_then_get_returns_the_same_bytes(self, store: ObjectStore) -> None:
        await store.put(
            "backups/b1/velero-backup.json", b'{"kind": "Backup"}', content_type="application/json"
        )
        assert await store.get("backups/b1/velero-backup.json") == b'{"kind": "Backup"}'

    @run_async
    async def test_head_reports_size_etag_and_time(self, store: ObjectStore) -> None:
        await store.put("a/object", b"12345")
        info = await store.head("a/object")
        assert info is not None
        assert (info.key, info.size) == ("a/object", 5)
        assert info.etag
        assert info.last_modified.tzinfo is not None
        assert await store.exists("a/object")

    @run_async
    async def test_put_replaces_an_existing_object(self, store: ObjectStore) -> None:
        await store.put("k", b"first version")
        await store.put("k", b"second")
        assert await store.get("k") == b"second"

    @run_async
    async def test_empty_object_round_trips(self, store: ObjectStore) -> None:
        await store.put("empty", b"")
        assert await store.get("empty") == b""
        info = await store.head("empty")
        assert info is not None
        assert info.size == 0

    @run_async
    async def test_missing_object_is_object_not_found_or_none(self, store: ObjectStore) -> None:
        with pytest.raises(ObjectNotFound) as raised:
            await store.get("backups/nope/velero-backup.json")
        assert isinstance(raised.value, StorageError)
        assert isinstance(raised.value, NotFoundError)
        assert "backups/nope/velero-backup.json" in str(raised.value)
        with pytest.raises(ObjectNotFound):
            await store.get_stream("missing")
        assert await store.head("missing") is None
        assert not await store.exists("missing")

    @run_async
    async def test_put_uploads_a_local_file(self, store: ObjectStore, tmp_path: Path) -> None:
        source = tmp_path / "snapshot.db"
        data = os.urandom(300_000)
        source.write_bytes(data)
        await store.put("etcd/snapshot.db", source)
        assert await store.get("etcd/snapshot.db") == data

    @run_async
    async def test_list_is_recursive_and_treats_the_prefix_as_a_directory(self, store: ObjectStore) -> None:
        for key in ("backups/b1/a", "backups/b1/sub/b", "backups/b10/c", "restores/r1/d", "top"):
            await store.put(key, b"x")
        assert await keys(store, "backups/b1") == ["backups/b1/a", "backups/b1/sub/b"]
        assert await keys(store, "backups/b1/") == ["backups/b1/a", "backups/b1/sub/b"]
        assert await keys(store) == [
            "backups/b1/a",
            "backups/b1/sub/b",
            "backups/b10/c",
            "restores/r1/d",
            "top",
        ]
        assert await keys(store, "nothing/here") == []

    @run_async
    async def test_list_with_delimiter_shows_one_level(self, store: ObjectStore) -> None:
        for key in ("backups/b1/a", "backups/b1/sub/b", "backups/top.json", "top"):
            await store.put(key, b"x")
        assert await keys(store, "backups/b1", delimiter="/") == ["backups/b1/a"]
        assert await keys(store, "", delimiter="/") == ["top"]
        assert await keys(store, "backups", delimiter="/") == ["backups/top.json"]

    @run_async
    async def test_list_prefixes_gives_sorted_subdirectories(self, store: ObjectStore) -> None:
        for key in ("backups/b2/x", "backups/b1/x", "backups/b1/deeper/y", "restores/r/x", "file-at-top"):
            await store.put(key, b"x")
        assert await store.list_prefixes() == ["backups/", "restores/"]
        assert await store.list_prefixes("backups") == ["backups/b1/", "backups/b2/"]
        assert await store.list_prefixes("backups/") == ["backups/b1/", "backups/b2/"]
        assert await store.list_prefixes("backups/b1") == ["backups/b1/deeper/"]
        assert await store.list_prefixes("absent") == []

    @run_async
    async def test_only_slash_is_a_delimiter(self, store: ObjectStore) -> None:
        with pytest.raises(StorageConfigError, match="delimiter"):
            await keys(store, "", delimiter=":")

    @run_async
    async def test_delete_removes_and_tolerates_missing_keys(self, store: ObjectStore) -> None:
        await store.put("a/b", b"x")
        await store.delete("a/b")
        assert await store.head("a/b") is None
        await store.delete("a/b")
        await store.delete("never/existed")
        assert await store.list_prefixes() == []

    @run_async
    async def test_delete_prefix_removes_one_directory_only(self, store: ObjectStore) -> None:
        for key in ("backups/b1/a", "backups/b1/deep/b", "backups/b10/c"):
            await store.put(key, b"x")
        assert await store.delete_prefix("backups/b1") == 2
        assert await keys(store) == ["backups/b10/c"]
        assert await store.delete_prefix("backups/b1/") == 0
        with pytest.raises(StorageConfigError, match="empty prefix"):
            await store.delete_prefix("")

    @run_async
    async def test_large_streamed_object_round_trips_in_bounded_chunks(self, store: ObjectStore) -> None:
        data = os.urandom(self.LARGE)
        await store.put("backups/big/big.tar.gz", chunks_of(data, 256 * 1024))
        info = await store.head("backups/big/big.tar.gz")
        assert info is not None
        assert info.size == len(data)
        digest = hashlib.sha256()
        largest = 0
        async for chunk in await store.get_stream("backups/big/big.tar.gz"):
            digest.update(chunk)
            largest = max(largest, len(chunk))
        assert digest.digest() == hashlib.sha256(data).digest()
        assert largest <= 8 * MiB

    @run_async
    async def test_concurrent_writers_to_different_keys(self, store: ObjectStore) -> None:
        payloads = {f"concurrent/{index:02d}/obj": os.urandom(1000 + index) for index in range(24)}
        await asyncio.gather(*(store.put(key, data) for key, data in payloads.items()))
        assert await keys(store, "concurrent") == sorted(payloads)
        fetched = await asyncio.gather(*(store.get(key) for key in payloads))
        assert fetched == list(payloads.values())

    @run_async
    async def test_failed_streamed_put_leaves_nothing_visible(self, store: ObjectStore) -> None:
        with pytest.raises(SourceBroke):
            await store.put("backups/b1/b1.tar.gz", failing_source(6 * MiB))
        assert await store.head("backups/b1/b1.tar.gz") is None
        assert await keys(store) == []
        assert await store.list_prefixes() == []

    @run_async
    async def test_failed_streamed_put_keeps_the_previous_object(self, store: ObjectStore) -> None:
        await store.put("metadata/object", b"old and whole")
        with pytest.raises(SourceBroke):
            await store.put("metadata/object", failing_source(6 * MiB))
        assert await store.get("metadata/object") == b"old and whole"

    @pytest.mark.parametrize("key", ["", "/absolute", "a//b", "../escape", "a/./b", "dir/", "a\x00b"])
    @run_async
    async def test_malformed_keys_are_refused_before_any_request(self, store: ObjectStore, key: str) -> None:
        with pytest.raises(StorageConfigError, match="invalid"):
            await store.put(key, b"x")
        with pytest.raises(StorageConfigError):
            await store.get(key)

    @run_async
    async def test_put_refuses_text_instead_of_bytes(self, store: ObjectStore) -> None:
        with pytest.raises(TypeError, match="not str"):
            await store.put("k", "text is ambiguous")  # type: ignore[arg-type]

    @run_async
    async def test_velero_layout_round_trips_through_the_store(self, store: ObjectStore) -> None:
        layout = Layout()
        for backup in ("nightly-1", "nightly-2"):
            await store.put(layout.backup_metadata(backup), b"{}")
            await store.put(layout.backup_contents(backup), b"tar")
        await store.put(layout.restore_log("r1"), b"log")
        names = [layout.backup_name(prefix) for prefix in await store.list_prefixes(layout.backups_dir)]
        assert names == ["nightly-1", "nightly-2"]
        await validate_top_level(store, layout)

    @run_async
    async def test_top_level_check_accepts_velero_directories_and_files(self, store: ObjectStore) -> None:
        await validate_top_level(store, Layout())
        for directory in ("backups", "restores", "restic", "kopia", "metadata", "plugins"):
            await store.put(f"{directory}/x/y", b"")
        await store.put("README.txt", b"a file at the top is not a directory")
        await validate_top_level(store, Layout())

    @run_async
    async def test_top_level_check_names_foreign_directories(self, store: ObjectStore) -> None:
        await store.put("backups/b1/velero-backup.json", b"{}")
        await store.put("photos/cat.jpg", b"")
        with pytest.raises(StorageConfigError) as raised:
            await validate_top_level(store, Layout())
        assert raised.value.message == "Backup store contains invalid top-level directories: [photos]"
        assert raised.value.hint is not None
        assert "prefix" in raised.value.hint
        # Under a prefix of its own, the same bucket is fine.
        await store.put("velero/backups/b1/velero-backup.json", b"{}")
        await validate_top_level(store, Layout("velero"))

    @run_async
    async def test_top_level_check_counts_many_foreign_directories(self, store: ObjectStore) -> None:
        for name in ("a", "b", "c", "d", "e"):
            await store.put(f"{name}/x", b"")
        with pytest.raises(StorageConfigError) as raised:
            await validate_top_level(store, Layout())
        assert raised.value.message == "Backup store contains 5 invalid top-level directories: [a b c ...]"


class TestLocalStoreConformance(StoreConformance):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[ObjectStore]:
        bucket = tmp_path / "bucket"
        bucket.mkdir()
        store = open_store("local", str(bucket), "velero")
        assert isinstance(store, LocalObjectStore)
        yield store
