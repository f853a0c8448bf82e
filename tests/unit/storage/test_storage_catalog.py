"""The catalog of a backup store: a backup appears only when complete, checksums catch damage, deletion starts with the metadata."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.runasync import run_async

from strongroom.errors import NotFoundError, StorageError
from strongroom.storage import Layout, LocalObjectStore
from strongroom.storage.catalog import BackupCatalog, FileDigest


def catalog_in(tmp_path: Path, prefix: str = "") -> BackupCatalog:
    bucket = tmp_path / "bucket"
    bucket.mkdir(exist_ok=True)
    return BackupCatalog(LocalObjectStore(bucket, prefix), Layout())


async def store_b1(catalog: BackupCatalog, tmp_path: Path) -> None:
    tarball = tmp_path / "b1.tar.gz"
    tarball.write_bytes(b"tarball-bytes")
    layout = catalog.layout
    await catalog.store_backup(
        "b1",
        files={layout.backup_contents("b1"): tarball, layout.backup_log("b1"): b"log"},
        metadata={"kind": "Backup", "metadata": {"name": "b1"}, "status": {"phase": "Completed"}},
    )


@run_async
async def test_stored_backup_lists_and_reads_back(tmp_path: Path) -> None:
    catalog = catalog_in(tmp_path, "velero")
    await store_b1(catalog, tmp_path)
    assert await catalog.backup_names() == ["b1"]
    assert (await catalog.read_backup_metadata("b1"))["status"]["phase"] == "Completed"
    checksums = await catalog.read_checksums("b1")
    assert checksums is not None
    assert checksums["b1.tar.gz"] == FileDigest.of_bytes(b"tarball-bytes")
    assert set(checksums) == {"b1.tar.gz", "b1-logs.gz", "velero-backup.json"}
    report = await catalog.verify_backup("b1")
    assert report.ok and sorted(report.checked) == ["b1-logs.gz", "b1.tar.gz", "velero-backup.json"]


@run_async
async def test_a_directory_without_metadata_is_not_a_backup(tmp_path: Path) -> None:
    catalog = catalog_in(tmp_path)
    await catalog.store.put("backups/half/half.tar.gz", b"partial")
    assert await catalog.backup_names() == []
    with pytest.raises(NotFoundError, match="backup 'half' not found"):
        await catalog.read_backup_metadata("half")


@run_async
async def test_metadata_is_written_last_so_a_failed_upload_leaves_no_backup(tmp_path: Path) -> None:
    catalog = catalog_in(tmp_path)
    layout = catalog.layout
    with pytest.raises(FileNotFoundError):
        await catalog.store_backup(
            "b2",
            files={
                layout.backup_log("b2"): b"log",
                layout.backup_contents("b2"): tmp_path / "missing.tar.gz",
            },
            metadata={"kind": "Backup"},
        )
    assert not await catalog.backup_exists("b2")
    assert await catalog.backup_names() == []


@run_async
async def test_an_existing_backup_is_never_overwritten(tmp_path: Path) -> None:
    catalog = catalog_in(tmp_path)
    await store_b1(catalog, tmp_path)
    with pytest.raises(StorageError, match="already exists"):
        await store_b1(catalog, tmp_path)
    report = await catalog.verify_backup("b1")
    assert report.ok


@run_async
async def test_verify_finds_altered_missing_and_unlisted_files(tmp_path: Path) -> None:
    catalog = catalog_in(tmp_path)
    await store_b1(catalog, tmp_path)
    await catalog.store.put("backups/b1/b1.tar.gz", b"tampered")
    await catalog.store.delete("backups/b1/b1-logs.gz")
    await catalog.store.put("backups/b1/extra.txt", b"?")
    report = await catalog.verify_backup("b1")
    assert not report.ok
    assert list(report.altered) == ["b1.tar.gz"]
    assert report.missing == ["b1-logs.gz"]
    assert report.unlisted == ["extra.txt"]
    assert report.to_json()["ok"] is False


@run_async
async def test_a_backup_without_checksums_is_reported_as_such(tmp_path: Path) -> None:
    catalog = catalog_in(tmp_path)
    await catalog.store.put("backups/velero1/velero-backup.json", json.dumps({"kind": "Backup"}).encode())
    await catalog.store.put("backups/velero1/velero1.tar.gz", b"x")
    report = await catalog.verify_backup("velero1")
    assert not report.has_checksums and not report.ok
    assert report.unlisted == ["velero-backup.json", "velero1.tar.gz"]


@run_async
async def test_delete_removes_the_metadata_first_and_then_everything(tmp_path: Path) -> None:
    catalog = catalog_in(tmp_path)
    await store_b1(catalog, tmp_path)
    removed = await catalog.delete_backup("b1")
    assert removed >= 4
    assert await catalog.backup_names() == []
    assert not (tmp_path / "bucket" / "backups" / "b1").exists()


@run_async
async def test_restore_records_round_trip(tmp_path: Path) -> None:
    catalog = catalog_in(tmp_path)
    layout = catalog.layout
    await catalog.store_restore(
        "r1", files={layout.restore_log("r1"): b"log"}, record={"kind": "Restore", "metadata": {"name": "r1"}}
    )
    assert await catalog.restore_names() == ["r1"]
    assert (await catalog.read_restore_record("r1"))["kind"] == "Restore"
    with pytest.raises(NotFoundError):
        await catalog.read_restore_record("r2")


@run_async
async def test_malformed_metadata_is_a_storage_error(tmp_path: Path) -> None:
    catalog = catalog_in(tmp_path)
    await catalog.store.put("backups/bad/velero-backup.json", b"{not json")
    with pytest.raises(StorageError, match="not valid JSON"):
        await catalog.read_backup_metadata("bad")
