"""Deleting a backup's internal images: only those no other backup keeps, and nothing when in doubt."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

from tests.runasync import run_async

from strongroom.backup.deletion import delete_volume_data, has_volume_data
from strongroom.storage import Layout, LocalObjectStore
from strongroom.storage.catalog import BackupCatalog

DIGEST = "sha256:" + "a" * 64


def _gz(document: Any) -> bytes:
    return gzip.compress(json.dumps(document).encode())


async def _backup(catalog: BackupCatalog, name: str, images: bytes | None) -> None:
    files: dict[str, bytes | Path] = {catalog.layout.backup_log(name): _gz([])}
    if images is not None:
        files[catalog.layout.backup_images(name)] = images
    await catalog.store_backup(name, files=files, metadata={"metadata": {"name": name}})


def catalog_in(tmp_path: Path) -> BackupCatalog:
    bucket = tmp_path / "bucket"
    bucket.mkdir()
    return BackupCatalog(LocalObjectStore(bucket, ""), Layout())


async def _delete(catalog: BackupCatalog, name: str) -> list[str]:
    return await delete_volume_data(None, None, catalog, name, repositories=None, location=None)


@run_async
async def test_an_image_another_backup_keeps_is_left_alone(tmp_path: Path) -> None:
    catalog = catalog_in(tmp_path)
    kept = _gz([{"repository": "shop/web", "digest": DIGEST}])
    await _backup(catalog, "old", kept)
    await _backup(catalog, "new", kept)
    assert await has_volume_data(catalog, "old")
    # Nothing to delete, so no registry is needed (none is given).
    assert await _delete(catalog, "old") == []


@run_async
async def test_an_image_only_this_backup_keeps_needs_the_registry(tmp_path: Path) -> None:
    catalog = catalog_in(tmp_path)
    await _backup(catalog, "old", _gz([{"repository": "shop/web", "digest": DIGEST}]))
    await _backup(catalog, "plain", None)
    (message,) = await _delete(catalog, "old")
    assert "internal images of backup old were not deleted" in message
    assert "no access to its location's registry" in message


@run_async
async def test_unreadable_records_of_another_backup_delete_nothing(tmp_path: Path) -> None:
    catalog = catalog_in(tmp_path)
    await _backup(catalog, "old", _gz([{"repository": "shop/web", "digest": DIGEST}]))
    await _backup(catalog, "damaged", b"not gzip")
    (message,) = await _delete(catalog, "old")
    assert "reading the other backups' failed" in message
