"""Proving a snapshot restorable before anyone has to rely on it.

A snapshot is only as good as the restore it allows. ``verify`` checks the
three things that fail on the worst day: the bytes are the ones etcd sent (the
SHA-256 appended to the stream), the bbolt database is consistent (etcd's own
``etcdutl`` reads it and must agree with the summary taken while streaming),
and ``etcdutl snapshot restore`` really produces a data directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from strongroom.errors import StrongroomError, UsageError
from strongroom.etcd.bbolt import SnapshotStatus, StatusBuilder
from strongroom.etcd.snapshot import HASH_SIZE, IntegrityError, SnapshotRecord
from strongroom.etcd.tools import EtcdTool

__all__ = ["FileCheck", "check_file", "check_version", "verify_file"]

_PAGE: Final = 4096
_CHUNK: Final = 1024 * 1024


@dataclass(frozen=True)
class FileCheck:
    """What reading a snapshot file once tells: its size, hash and etcdutl-style status."""

    path: Path
    size: int
    sha256: str
    has_hash: bool
    status: SnapshotStatus


@dataclass
class VerifyReport:
    """Each check's outcome in words, and whether all passed."""

    file: FileCheck
    checks: dict[str, str] = field(default_factory=dict)
    ok: bool = True


def check_file(path: Path, *, skip_hash_check: bool = False) -> FileCheck:
    """Read the file once: the trailing hash must match, and the database must be readable."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise UsageError(f"cannot read snapshot {path}: {exc.strerror}") from exc
    if size < 2 * _PAGE:
        raise IntegrityError(f"{path} is not an etcd snapshot: only {size} bytes (truncated or empty)")
    body_size = size - HASH_SIZE
    digest = hashlib.sha256()
    builder = StatusBuilder()
    with open(path, "rb") as handle:
        remaining = body_size
        while remaining > 0:
            chunk = handle.read(min(_CHUNK, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            digest.update(chunk)
            builder.feed(chunk)
        trailer = handle.read(HASH_SIZE)
    has_hash = digest.digest() == trailer
    if not has_hash:
        if size % _PAGE == 0:
            # A whole number of pages: a db file copied from a data directory, which has no hash.
            if not skip_hash_check:
                raise IntegrityError(
                    f"{path} carries no integrity hash (a database copied from a data directory, not a snapshot)",
                    hint="take snapshots with `strongroom etcd snapshot save`; to use this file anyway "
                    "pass --skip-hash-check",
                )
            return FileCheck(path, size, "", False, _status_of_whole(path))
        raise IntegrityError(
            f"{path} does not match the SHA-256 etcd appended to it: the file was altered or truncated",
            hint="use another snapshot; this one cannot be trusted",
        )
    try:
        status = builder.finish()
    except UsageError as exc:
        raise IntegrityError(f"{path} is not a readable etcd database: {exc.message}") from exc
    return FileCheck(path, size, trailer.hex(), True, status)


def _status_of_whole(path: Path) -> SnapshotStatus:
    from strongroom.etcd.bbolt import status_of_file

    try:
        return status_of_file(path)
    except UsageError as exc:
        raise IntegrityError(f"{path} is not a readable etcd database: {exc.message}") from exc


def check_version(record: SnapshotRecord | None, tool: EtcdTool) -> str | None:
    """Refuse a snapshot from an etcd the tool cannot restore (another major, or a newer minor)."""
    if record is None or not record.etcd_version:
        return None
    try:
        major, minor = (int(part) for part in record.etcd_version.split(".")[:2])
    except ValueError:
        return None
    tool_major, tool_minor, _ = tool.version
    if major != tool_major or (major, minor) > (tool_major, tool_minor):
        raise IntegrityError(
            f"the snapshot was taken from etcd {record.etcd_version}; etcdutl {tool.version_text} cannot restore it",
            hint=f"use etcdutl {major}.{minor} or later of the same major version (--etcdutl PATH)",
        )
    return f"taken from etcd {record.etcd_version}, restorable with etcdutl {tool.version_text}"


def verify_file(
    path: Path,
    tool: EtcdTool,
    *,
    record: SnapshotRecord | None = None,
    scratch: Path | None = None,
    trial_restore: bool = True,
    skip_hash_check: bool = False,
) -> VerifyReport:
    """Every check; the first that fails raises ``IntegrityError`` with what is wrong."""
    file = check_file(path, skip_hash_check=skip_hash_check)
    report = VerifyReport(file)
    report.checks["hash"] = (
        f"sha256 {file.sha256[:16]}... matches the hash etcd appended"
        if file.has_hash
        else "no hash in the file (skipped on request)"
    )
    if record is not None and record.sha256 and file.has_hash and record.sha256 != file.sha256:
        raise IntegrityError(
            f"{path} is not the snapshot its record describes (sha256 {file.sha256[:16]}... vs {record.sha256[:16]}...)"
        )
    version = check_version(record, tool)
    if version:
        report.checks["version"] = version
    theirs = _etcdutl_status(tool, path)
    ours = file.status
    if (theirs.hash, theirs.revision, theirs.total_key) != (ours.hash, ours.revision, ours.total_key):
        raise IntegrityError(
            f"etcdutl reads {path} differently from the stream summary "
            f"(hash {theirs.hash} vs {ours.hash}, revision {theirs.revision} vs {ours.revision})"
        )
    report.checks["bbolt"] = (
        f"etcdutl {tool.version_text} reads a consistent database: revision {theirs.revision}, "
        f"{theirs.total_key} keys, {theirs.total_size} bytes"
    )
    if trial_restore:
        report.checks["restore"] = _trial_restore(tool, path, scratch, skip_hash_check=not file.has_hash)
    return report


def _etcdutl_status(tool: EtcdTool, path: Path) -> SnapshotStatus:
    try:
        result = tool.run(["snapshot", "status", str(path), "--write-out", "json"], timeout=1800)
    except StrongroomError as exc:
        raise IntegrityError(f"etcdutl cannot read {path}: {exc.message}") from exc
    try:
        data = json.loads(result.stdout)
        return SnapshotStatus(
            hash=int(data["hash"]),
            revision=int(data["revision"]),
            total_key=int(data["totalKey"]),
            total_size=int(data["totalSize"]),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise IntegrityError(f"etcdutl's status of {path} is unreadable: {result.stdout[:200]!r}") from exc


def _trial_restore(tool: EtcdTool, path: Path, scratch: Path | None, *, skip_hash_check: bool) -> str:
    workdir = Path(tempfile.mkdtemp(prefix="strongroom-verify-", dir=scratch))
    try:
        data_dir = workdir / "data"
        args = [
            "snapshot",
            "restore",
            str(path),
            "--data-dir",
            str(data_dir),
            "--name",
            "verify",
            "--initial-cluster",
            "verify=http://127.0.0.1:2380",
            "--initial-advertise-peer-urls",
            "http://127.0.0.1:2380",
            "--initial-cluster-token",
            "strongroom-verify",
        ]
        if skip_hash_check:
            args.append("--skip-hash-check")
        try:
            tool.run(args, timeout=3600)
        except StrongroomError as exc:
            raise IntegrityError(f"a trial restore of {path} failed: {exc.message}") from exc
        db = data_dir / "member" / "snap" / "db"
        wal = data_dir / "member" / "wal"
        if not db.is_file() or not wal.is_dir() or not os.listdir(wal):
            raise IntegrityError(f"a trial restore of {path} produced no usable data directory")
        return f"etcdutl snapshot restore produced a data directory ({db.stat().st_size} byte database)"
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
