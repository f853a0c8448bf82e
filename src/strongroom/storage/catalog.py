"""The backups and restores kept in one backup store, as files.

A location's storage is the source of truth in local mode (``backup get``
lists what is stored, so a backup written by Velero or by another cluster
appears), and the in-cluster server syncs from it. This module owns the
rules that make that safe:

* a backup exists only when its ``velero-backup.json`` exists, and that file
  is written last, after every other file and the checksums;
* ``strongroom-checksums.json`` records the SHA-256 and size of every file,
  so ``verify`` can tell a missing or altered file from a good one;
* deleting a backup removes ``velero-backup.json`` first, so a half-deleted
  backup never looks complete.

It deals in bytes and JSON documents; what a Backup means is the engine's.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from strongroom.errors import NotFoundError, ObjectNotFound, StorageError
from strongroom.storage.base import ObjectStore
from strongroom.storage.layout import Layout

__all__ = [
    "CHECKSUM_ALGORITHM",
    "BackupCatalog",
    "FileDigest",
    "VerifyReport",
]

_log = logging.getLogger(__name__)

CHECKSUM_ALGORITHM: Final = "sha256"
_CHUNK: Final = 1 << 20
_PARALLEL_UPLOADS: Final = 8


@dataclass(frozen=True, slots=True)
class FileDigest:
    """The SHA-256 and size of one stored file."""

    sha256: str
    size: int

    @classmethod
    def of_bytes(cls, data: bytes) -> FileDigest:
        return cls(hashlib.sha256(data).hexdigest(), len(data))

    @classmethod
    def of_file(cls, path: Path) -> FileDigest:
        digest = hashlib.sha256()
        size = 0
        with path.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
        return cls(digest.hexdigest(), size)


@dataclass
class VerifyReport:
    """What ``verify`` found, file by file (names relative to the backup's directory)."""

    backup: str
    checked: dict[str, FileDigest] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    altered: dict[str, str] = field(default_factory=dict)
    unlisted: list[str] = field(default_factory=list)
    has_checksums: bool = True

    @property
    def ok(self) -> bool:
        return self.has_checksums and not self.missing and not self.altered

    def to_json(self) -> dict[str, Any]:
        return {
            "backup": self.backup,
            "ok": self.ok,
            "hasChecksums": self.has_checksums,
            "checked": {
                name: {"sha256": d.sha256, "size": d.size} for name, d in sorted(self.checked.items())
            },
            "missing": sorted(self.missing),
            "altered": dict(sorted(self.altered.items())),
            "unlisted": sorted(self.unlisted),
        }


class BackupCatalog:
    """The backups and restores of one store, under one layout."""

    def __init__(self, store: ObjectStore, layout: Layout | None = None) -> None:
        self.store = store
        self.layout = layout or Layout()

    @property
    def location(self) -> str:
        return self.store.location

    # --- backups -----------------------------------------------------------

    async def backup_names(self) -> list[str]:
        """Names of the complete backups (those with ``velero-backup.json``), sorted."""
        prefixes = await self.store.list_prefixes(self.layout.backups_dir)
        names: list[str] = []
        for prefix in prefixes:
            try:
                name = self.layout.backup_name(prefix)
            except StorageError:
                continue
            if await self.store.exists(self.layout.backup_metadata(name)):
                names.append(name)
        return sorted(names)

    async def backup_exists(self, name: str) -> bool:
        return await self.store.exists(self.layout.backup_metadata(name))

    async def read_backup_metadata(self, name: str) -> dict[str, Any]:
        """The Backup object stored as ``velero-backup.json``; NotFoundError when there is none."""
        return await self._read_document(self.layout.backup_metadata(name), "backup", name)

    async def read_file(self, key: str) -> bytes:
        return await self.store.get(key)

    async def read_checksums(self, name: str) -> dict[str, FileDigest] | None:
        """The recorded digests, or None for a backup without them (written by Velero)."""
        key = self.layout.backup_checksums(name)
        try:
            data = await self.store.get(key)
        except ObjectNotFound:
            return None
        document = _json_object(data, key)
        files = document.get("files")
        if document.get("algorithm") != CHECKSUM_ALGORITHM or not isinstance(files, dict):
            raise StorageError(f"{key} is not a checksums file this version understands")
        digests: dict[str, FileDigest] = {}
        for file_name, entry in files.items():
            if (
                not isinstance(entry, dict)
                or not isinstance(entry.get("sha256"), str)
                or not isinstance(entry.get("size"), int)
            ):
                raise StorageError(f"{key}: malformed entry for {file_name!r}")
            digests[file_name] = FileDigest(entry["sha256"], entry["size"])
        return digests

    async def store_backup(
        self,
        name: str,
        *,
        files: Mapping[str, bytes | Path],
        metadata: Mapping[str, Any],
        digests: Mapping[str, FileDigest] | None = None,
    ) -> dict[str, FileDigest]:
        """Upload a finished backup: the files, then the checksums, then ``velero-backup.json``.

        ``files`` maps a key (from the layout) to bytes or a local file;
        ``digests`` may give the digest of a local file already computed while
        it was written. Refuses to overwrite an existing backup. If anything
        fails, the metadata is never written, so the backup does not appear.
        """
        if await self.backup_exists(name):
            raise StorageError(
                f"backup {name!r} already exists in {self.location}",
                hint="choose another name, or delete the stored backup first",
            )
        directory = self.layout.backup_dir(name)
        for key in files:
            if not key.startswith(directory):
                raise StorageError(f"{key!r} is not inside {directory!r}")
        recorded: dict[str, FileDigest] = {}
        uploaded: list[str] = []
        try:
            for key, data in files.items():
                if isinstance(data, Path):
                    digest = (digests or {}).get(key) or FileDigest.of_file(data)
                else:
                    digest = FileDigest.of_bytes(data)
                recorded[key[len(directory) :]] = digest
            uploaded.extend(files)
            # The files go up side by side (a dozen round trips cost more than the
            # bytes); only the checksums and the metadata wait for all of them.
            limit = asyncio.Semaphore(_PARALLEL_UPLOADS)

            async def upload(key: str, data: bytes | Path) -> None:
                async with limit:
                    await self.store.put(key, data)

            # Every upload settles before a failure is raised, so the clean-up below
            # never races one still in flight.
            outcomes = await asyncio.gather(
                *(upload(key, data) for key, data in files.items()), return_exceptions=True
            )
            failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
            if failures:
                raise failures[0]
            metadata_bytes = _encode(metadata)
            recorded["velero-backup.json"] = FileDigest.of_bytes(metadata_bytes)
            checksums = {
                "algorithm": CHECKSUM_ALGORITHM,
                "files": {
                    file_name: {"sha256": digest.sha256, "size": digest.size}
                    for file_name, digest in sorted(recorded.items())
                },
            }
            uploaded.append(self.layout.backup_checksums(name))
            await self.store.put(self.layout.backup_checksums(name), _encode(checksums))
            await self.store.put(self.layout.backup_metadata(name), metadata_bytes)
        except BaseException:
            # The backup never became visible; take away what was uploaded so
            # the bucket keeps no invisible leftovers (best effort).
            await self._remove_quietly(uploaded)
            raise
        return recorded

    async def _remove_quietly(self, keys: list[str]) -> None:
        for key in keys:
            try:
                await self.store.delete(key)
            except (StorageError, OSError) as exc:
                _log.warning("could not remove %s after a failed upload: %s", key, exc)

    async def delete_backup(self, name: str) -> int:
        """Remove every file of a backup, ``velero-backup.json`` first; returns the number removed."""
        directory = self.layout.backup_dir(name)
        removed = 0
        metadata = self.layout.backup_metadata(name)
        if await self.store.exists(metadata):
            await self.store.delete(metadata)
            removed += 1
        removed += await self.store.delete_prefix(directory)
        return removed

    async def verify_backup(
        self, name: str, *, known: Mapping[str, FileDigest] | None = None
    ) -> VerifyReport:
        """Re-read every file of a backup and compare it with the recorded checksums.

        ``known`` holds digests the caller already computed while reading files
        itself (by name within the backup's directory); those are not read again.
        """
        await self.read_backup_metadata(name)
        report = VerifyReport(name)
        directory = self.layout.backup_dir(name)
        present = {info.key[len(directory) :]: info.size async for info in self.store.list(directory)}
        recorded = await self.read_checksums(name)
        if recorded is None:
            report.has_checksums = False
            report.unlisted = sorted(present)
            return report
        for file_name, expected in sorted(recorded.items()):
            if file_name not in present:
                report.missing.append(file_name)
                continue
            actual = (known or {}).get(file_name) or await self._digest(directory + file_name)
            if actual is None:
                report.missing.append(file_name)
            elif actual != expected:
                report.altered[file_name] = (
                    f"sha256 {actual.sha256} size {actual.size}, recorded sha256 {expected.sha256} size {expected.size}"
                )
            else:
                report.checked[file_name] = actual
        checksums_name = self.layout.backup_checksums(name)[len(directory) :]
        report.unlisted = sorted(set(present) - set(recorded) - {checksums_name})
        return report

    async def _digest(self, key: str) -> FileDigest | None:
        digest = hashlib.sha256()
        size = 0
        try:
            async for chunk in await self.store.get_stream(key):
                digest.update(chunk)
                size += len(chunk)
        except ObjectNotFound:
            return None
        return FileDigest(digest.hexdigest(), size)

    async def download(self, key: str, destination: Path) -> FileDigest:
        """Stream one object to a local file; returns its digest."""
        digest = hashlib.sha256()
        size = 0
        with destination.open("wb") as handle:
            async for chunk in await self.store.get_stream(key):
                handle.write(chunk)
                digest.update(chunk)
                size += len(chunk)
        return FileDigest(digest.hexdigest(), size)

    # --- restores ----------------------------------------------------------

    async def restore_names(self) -> list[str]:
        prefixes = await self.store.list_prefixes(self.layout.restores_dir)
        names = []
        for prefix in prefixes:
            name = prefix[len(self.layout.restores_dir) :].rstrip("/")
            if name and await self.store.exists(self.layout.restore_record(name)):
                names.append(name)
        return sorted(names)

    async def store_restore(
        self, name: str, *, files: Mapping[str, bytes], record: Mapping[str, Any]
    ) -> None:
        """Upload a restore's log, results and resource list, then its record (last, as for backups)."""
        for key, data in files.items():
            await self.store.put(key, data)
        await self.store.put(self.layout.restore_record(name), _encode(record))

    async def delete_restore(self, name: str) -> int:
        """Remove a restore's files (its record first); returns the number removed."""
        removed = 0
        record = self.layout.restore_record(name)
        if await self.store.exists(record):
            await self.store.delete(record)
            removed += 1
        return removed + await self.store.delete_prefix(self.layout.restore_dir(name))

    async def restore_exists(self, name: str) -> bool:
        return await self.store.exists(self.layout.restore_record(name))

    async def read_restore_record(self, name: str) -> dict[str, Any]:
        """The Restore object a local-mode restore stored; NotFoundError when there is none."""
        return await self._read_document(self.layout.restore_record(name), "restore", name)

    async def _read_document(self, key: str, what: str, name: str) -> dict[str, Any]:
        try:
            data = await self.store.get(key)
        except ObjectNotFound as exc:
            raise NotFoundError(
                f"{what} {name!r} not found in {self.location}",
                hint=f"list the {what}s with `strongroom {what} get`",
            ) from exc
        return _json_object(data, key)


def _encode(document: Mapping[str, Any]) -> bytes:
    return (json.dumps(document, separators=(",", ":"), ensure_ascii=False) + "\n").encode()


def _json_object(data: bytes, key: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StorageError(f"{key} is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise StorageError(f"{key} does not hold a JSON object")
    return value
