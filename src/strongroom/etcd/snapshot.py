"""etcd snapshots: taken by streaming, checked as they arrive, kept with a record of what they hold.

``cluster-backup.sh`` writes ``snapshot_<ts>.db`` to a local disk of the very
host that may be lost. strongroom streams the Maintenance.Snapshot RPC straight
to a directory or an object store (never a full local copy first), checks the
SHA-256 etcd appends to the stream, and stores beside each snapshot a small
JSON record of what ``etcdutl snapshot status`` would report (computed from the
bytes as they pass) and where it came from. A record is written last, so a
snapshot without one is either foreign (copied from cluster-backup.sh) or
incomplete; listing says which.

Files are written once and never rewritten: a verification adds its own
``snapshot_<ts>.verified-<when>.json`` rather than editing the record, and
the newest of those is the snapshot's verification.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import hashlib
import json
import os
import re
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from strongroom.errors import ConflictError, NotFoundError, ObjectNotFound, StrongroomError, UsageError
from strongroom.etcd.bbolt import SnapshotStatus, StatusBuilder
from strongroom.etcd.connection import RPC_ERRORS, EtcdTarget, etcd_error, open_client
from strongroom.storage import ObjectInfo, ObjectStore

__all__ = [
    "HASH_SIZE",
    "IntegrityError",
    "MemberInfo",
    "SnapshotArchive",
    "SnapshotRecord",
    "StoredSnapshot",
    "Verification",
    "pick_member",
    "resources_name",
    "save_snapshot",
    "snapshot_name",
    "snapshot_time",
]

HASH_SIZE: Final = 32  # etcd appends sha256(db) to the snapshot stream
RECORD_KIND: Final = "EtcdSnapshot"
RECORD_API: Final = "strongroom.io/v1"
_NAME_RE: Final = re.compile(r"^snapshot_(\d{4}-\d{2}-\d{2}_\d{6})\.db$")
_TS_FORMAT: Final = "%Y-%m-%d_%H%M%S"
_CHUNK: Final = 1024 * 1024
_QUEUE_CHUNKS: Final = 16  # 16 MiB in flight between the network and the store


class IntegrityError(StrongroomError):
    """A snapshot's bytes are not what etcd sent: flipped, truncated or not a snapshot at all."""


def snapshot_name(when: datetime) -> str:
    """``snapshot_<YYYY-MM-DD_HHMMSS>.db``, as cluster-backup.sh names it (UTC)."""
    return f"snapshot_{when.astimezone(UTC):{_TS_FORMAT}}.db"


def resources_name(snapshot: str) -> str:
    """The static pod resources archive taken with ``snapshot``: ``static_kuberesources_<ts>.tar.gz``."""
    return f"static_kuberesources_{_stamp(snapshot)}.tar.gz"


def snapshot_time(name: str) -> datetime:
    return datetime.strptime(_stamp(name), _TS_FORMAT).replace(tzinfo=UTC)


def _stamp(name: str) -> str:
    match = _NAME_RE.match(name)
    if not match:
        raise UsageError(
            f"{name!r} is not a snapshot name", hint="snapshot names look like snapshot_2026-11-25_233012.db"
        )
    return match[1]


@dataclass(frozen=True)
class MemberInfo:
    """The member a snapshot was taken from."""

    endpoint: str
    member_id: int
    cluster_id: int
    version: str
    revision: int
    db_size: int
    leader: int
    raft_index: int
    raft_term: int
    is_learner: bool = False


@dataclass(frozen=True)
class SnapshotRecord:
    """What is stored beside a snapshot: where it came from and what it holds."""

    name: str
    created: datetime
    size: int
    sha256: str
    status: SnapshotStatus | None
    endpoint: str = ""
    cluster_id: str = ""
    member_id: str = ""
    etcd_version: str = ""
    static_resources: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "apiVersion": RECORD_API,
            "kind": RECORD_KIND,
            "name": self.name,
            "created": _iso(self.created),
            "size": self.size,
            "sha256": self.sha256,
            "status": self.status.to_json() if self.status else None,
            "source": {
                "endpoint": self.endpoint,
                "clusterID": self.cluster_id,
                "memberID": self.member_id,
                "etcdVersion": self.etcd_version,
            },
            "staticResources": self.static_resources,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SnapshotRecord:
        status = data.get("status")
        source = data.get("source") or {}
        return cls(
            name=str(data["name"]),
            created=datetime.fromisoformat(str(data["created"])),
            size=int(data["size"]),
            sha256=str(data.get("sha256", "")),
            status=SnapshotStatus(
                hash=int(status["hash"]),
                revision=int(status["revision"]),
                total_key=int(status["totalKey"]),
                total_size=int(status["totalSize"]),
            )
            if status
            else None,
            endpoint=str(source.get("endpoint", "")),
            cluster_id=str(source.get("clusterID", "")),
            member_id=str(source.get("memberID", "")),
            etcd_version=str(source.get("etcdVersion", "")),
            static_resources=data.get("staticResources"),
        )


@dataclass(frozen=True)
class Verification:
    """The outcome of ``etcd snapshot verify``, kept beside the snapshot."""

    name: str
    verified_at: datetime
    ok: bool
    checks: dict[str, str] = field(default_factory=dict)
    etcdutl_version: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "apiVersion": RECORD_API,
            "kind": "EtcdSnapshotVerification",
            "name": self.name,
            "verifiedAt": _iso(self.verified_at),
            "ok": self.ok,
            "checks": self.checks,
            "etcdutlVersion": self.etcdutl_version,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Verification:
        return cls(
            name=str(data["name"]),
            verified_at=datetime.fromisoformat(str(data["verifiedAt"])),
            ok=bool(data.get("ok")),
            checks={str(k): str(v) for k, v in (data.get("checks") or {}).items()},
            etcdutl_version=str(data.get("etcdutlVersion", "")),
        )


@dataclass(frozen=True)
class StoredSnapshot:
    """One snapshot as a listing sees it."""

    name: str
    size: int
    modified: datetime
    record: SnapshotRecord | None
    verification: Verification | None
    resources: bool

    @property
    def created(self) -> datetime:
        return self.record.created if self.record else snapshot_time(self.name)

    @property
    def verified(self) -> bool:
        return self.verification is not None and self.verification.ok


class SnapshotArchive:
    """Where snapshots are kept: a directory, or a folder of a backup location."""

    def __init__(
        self, store: ObjectStore, prefix: str, description: str, directory: Path | None = None
    ) -> None:
        self.store = store
        self.prefix = prefix
        self.description = description
        # A local directory's files are flushed to disk once written, as etcdctl does.
        self.directory = directory

    def sync(self, *names: str) -> None:
        """fsync the named files and their directory, when the archive is a local directory."""
        if self.directory is None:
            return
        for name in names:
            path = self.directory / self.key(name)
            if path.exists():
                with open(path, "rb") as handle:
                    os.fsync(handle.fileno())
        fd = os.open(self.directory / self.prefix if self.prefix else self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def key(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def record_key(self, name: str) -> str:
        return self.key(f"{name.removesuffix('.db')}.json")

    def verification_key(self, name: str, when: datetime) -> str:
        return self.key(f"{name.removesuffix('.db')}.verified-{when.astimezone(UTC):%Y%m%d-%H%M%S-%f}.json")

    @staticmethod
    def _verifications(stem: str, names: Iterable[str]) -> builtins.list[str]:
        """The verification files of one snapshot, oldest first (their names sort by time)."""
        return sorted(n for n in names if n.startswith(f"{stem}.verified-") and n.endswith(".json"))

    def resources_key(self, name: str) -> str:
        return self.key(resources_name(name))

    async def list(self) -> builtins.list[StoredSnapshot]:
        """Every ``snapshot_*.db``, newest first, with its record and verification when present."""
        infos = await self._infos()
        return [await self._stored(name, infos) for name in sorted(self._names(infos), reverse=True)]

    async def find(self, name: str) -> StoredSnapshot:
        """A snapshot by name (``snapshot_<ts>`` or ``snapshot_<ts>.db``), or the newest for ``latest``.

        One listing of the folder, then only that snapshot's record and verification are read.
        """
        infos = await self._infos()
        names = sorted(self._names(infos), reverse=True)
        if name == "latest":
            if not names:
                raise NotFoundError(f"no snapshot in {self.description}")
            return await self._stored(names[0], infos)
        wanted = name if name.endswith(".db") else f"{name}.db"
        if wanted in names:
            return await self._stored(wanted, infos)
        known = ", ".join(names[:5]) or "none"
        raise NotFoundError(
            f"snapshot {name!r} not found in {self.description}", hint=f"newest there: {known}"
        )

    async def _infos(self) -> dict[str, ObjectInfo]:
        return {
            info.key[len(self.prefix) :]: info async for info in self.store.list(self.prefix, delimiter="/")
        }

    @staticmethod
    def _names(infos: Mapping[str, ObjectInfo]) -> builtins.list[str]:
        return [name for name in infos if "/" not in name and _NAME_RE.match(name)]

    async def _stored(self, name: str, infos: Mapping[str, ObjectInfo]) -> StoredSnapshot:
        info = infos[name]
        stem = name.removesuffix(".db")
        record = await self._json(self.record_key(name)) if f"{stem}.json" in infos else None
        verifications = self._verifications(stem, infos)
        verification = await self._json(self.key(verifications[-1])) if verifications else None
        return StoredSnapshot(
            name=name,
            size=info.size,
            modified=info.last_modified,
            record=SnapshotRecord.from_json(record) if record else None,
            verification=Verification.from_json(verification) if verification else None,
            resources=resources_name(name) in infos,
        )

    async def exists(self, name: str) -> bool:
        return await self.store.exists(self.key(name))

    async def stream(self, name: str) -> AsyncIterator[bytes]:
        try:
            chunks = await self.store.get_stream(self.key(name))
            async for chunk in chunks:
                yield chunk
        except ObjectNotFound as exc:
            raise NotFoundError(f"snapshot {name!r} not found in {self.description}") from exc

    async def download(self, name: str, dest: Path) -> Path:
        """Copy a snapshot to a local file (0600), for the tools that need a file."""
        with open(dest, "xb") as out:
            dest.chmod(0o600)
            async for chunk in self.stream(name):
                out.write(chunk)
        return dest

    async def put_record(self, record: SnapshotRecord) -> None:
        await self.store.put(
            self.record_key(record.name), _dumps(record.to_json()), content_type="application/json"
        )

    async def put_verification(self, verification: Verification) -> None:
        await self.store.put(
            self.verification_key(verification.name, verification.verified_at),
            _dumps(verification.to_json()),
            content_type="application/json",
        )

    async def delete(self, name: str) -> builtins.list[str]:
        """Delete a snapshot and its companions; returns the keys deleted."""
        stem = name.removesuffix(".db")
        siblings = [
            info.key[len(self.prefix) :] async for info in self.store.list(self.prefix, delimiter="/")
        ]
        keys = [
            self.record_key(name),
            *(self.key(n) for n in self._verifications(stem, siblings)),
            self.resources_key(name),
            self.key(name),
        ]
        deleted = []
        # The record goes first: a snapshot without its record reads as incomplete, never as whole.
        for key in keys:
            if await self.store.exists(key):
                await self.store.delete(key)
                deleted.append(key)
        return deleted

    async def _json(self, key: str) -> dict[str, Any] | None:
        try:
            data = json.loads(await self.store.get(key))
        except (ObjectNotFound, ValueError):
            return None
        return data if isinstance(data, dict) else None


async def member_info(target: EtcdTarget, endpoint: str, *, timeout: float | None = None) -> MemberInfo:
    """Maintenance.Status of one member, or the administrator's reading of why it failed."""
    try:
        async with open_client(target, endpoint) as client:
            status = await client.maintenance.status(timeout=timeout or target.dial_timeout)
    except StrongroomError:
        raise
    except RPC_ERRORS as exc:
        raise etcd_error(exc, endpoint, "a status request") from exc
    return MemberInfo(
        endpoint=endpoint,
        member_id=int(status.header.member_id),
        cluster_id=int(status.header.cluster_id),
        version=str(status.version),
        revision=int(status.header.revision),
        db_size=int(status.dbSize),
        leader=int(status.leader),
        raft_index=int(status.raftIndex),
        raft_term=int(status.raftTerm),
        is_learner=bool(getattr(status, "isLearner", False)),
    )


async def pick_member(target: EtcdTarget) -> MemberInfo:
    """The first endpoint that answers; a snapshot comes from exactly one member, as with etcdctl."""
    errors: list[StrongroomError] = []
    for endpoint in target.endpoints:
        try:
            info = await member_info(target, endpoint)
        except UsageError:
            raise  # the same for every endpoint: unreadable TLS files, a malformed endpoint
        except StrongroomError as exc:
            errors.append(exc)
            continue
        if info.is_learner:
            errors.append(UsageError(f"{endpoint} is a learner; a snapshot must come from a voting member"))
            continue
        return info
    if len(errors) == 1:
        raise errors[0]
    raise type(errors[0])(
        "no etcd endpoint answered: " + "; ".join(e.message for e in errors), hint=errors[0].hint
    )


ProgressCallback = Callable[[int, int], None]
"""Called with the bytes streamed so far and the member's database size (what the stream will be)."""


async def save_snapshot(
    target: EtcdTarget,
    archive: SnapshotArchive,
    *,
    now: datetime,
    resources: AsyncIterable[bytes] | None = None,
    resources_archive: SnapshotArchive | None = None,
    resources_info: dict[str, Any] | None = None,
    progress: ProgressCallback | None = None,
) -> SnapshotRecord:
    """Stream a snapshot into ``archive``; with ``resources``, store the static pod resources first.

    The stream is checked against the SHA-256 etcd appends; on a mismatch the
    upload is abandoned and nothing becomes visible. The record is written
    last. A failure leaves no part of this snapshot behind.
    """
    member = await pick_member(target)
    name = snapshot_name(now)
    if await archive.exists(name):
        raise ConflictError(f"{name} already exists in {archive.description}", hint="wait a second and retry")
    resources_store = resources_archive or archive
    resources_record: dict[str, Any] | None = None
    if resources is not None and await resources_store.store.exists(resources_store.resources_key(name)):
        raise ConflictError(
            f"{resources_name(name)} already exists in {resources_store.description}",
            hint="wait a second and retry",
        )
    if resources is not None:
        digest = hashlib.sha256()
        size = 0

        async def counted() -> AsyncIterator[bytes]:
            nonlocal size
            async for chunk in resources:
                digest.update(chunk)
                size += len(chunk)
                yield chunk

        await resources_store.store.put(
            resources_store.resources_key(name), counted(), content_type="application/gzip"
        )
        resources_record = {
            "name": resources_name(name),
            "size": size,
            "sha256": digest.hexdigest(),
            "storedIn": resources_store.description if resources_archive is not None else "",
            **(resources_info or {}),
        }
    stream = _CheckedStream()
    try:
        async with open_client(target, member.endpoint) as client:
            try:
                await archive.store.put(
                    archive.key(name),
                    stream.pass_through(
                        client.maintenance.snapshot(),
                        (lambda done: progress(done, member.db_size + HASH_SIZE)) if progress else None,
                    ),
                    content_type="application/octet-stream",
                )
            except IntegrityError:
                raise
            except RPC_ERRORS as exc:  # the stream broke off: the store got the stream's own error back
                raise etcd_error(exc, member.endpoint, "the snapshot stream") from exc
            except StrongroomError as exc:
                if stream.source_error is not None:
                    raise etcd_error(stream.source_error, member.endpoint, "the snapshot stream") from exc
                raise
        record = SnapshotRecord(
            name=name,
            created=now,
            size=stream.size,
            sha256=stream.sha256,
            status=stream.status,
            endpoint=member.endpoint,
            cluster_id=f"{member.cluster_id:x}",
            member_id=f"{member.member_id:x}",
            etcd_version=member.version,
            static_resources=resources_record,
        )
        await archive.put_record(record)
        archive.sync(name, resources_name(name), record.name.removesuffix(".db") + ".json")
        if resources_archive is not None:
            resources_archive.sync(resources_name(name))
    except BaseException:
        await archive.store.delete(archive.key(name))
        if resources is not None:
            await resources_store.store.delete(resources_store.resources_key(name))
        raise
    return record


class _CheckedStream:
    """Passes a snapshot stream on in large chunks while hashing it and summarising its bbolt pages."""

    def __init__(self) -> None:
        self._digest = hashlib.sha256()
        self._builder = StatusBuilder()
        self.size = 0
        self.sha256 = ""
        self.status: SnapshotStatus | None = None
        self.source_error: BaseException | None = None
        self.status_error: str | None = None

    async def pass_through(
        self, source: AsyncIterator[bytes], progress: Callable[[int], None] | None
    ) -> AsyncIterator[bytes]:
        # Receiving, hashing and writing overlap: a reader task keeps the gRPC stream
        # flowing into a bounded queue while the chunks before are hashed and handed
        # to the store, which writes on its own threads.
        queue: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue(maxsize=_QUEUE_CHUNKS)
        trailer = bytearray()
        reader = asyncio.create_task(self._read(source, queue, trailer))
        try:
            while True:
                item = await queue.get()
                if item is None:
                    break
                if isinstance(item, BaseException):
                    raise item
                self._take(item)  # measured: inline beats a thread hop per chunk here
                if progress:
                    progress(self.size)
                yield item
        finally:
            if not reader.done():
                reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        if self._digest.digest() != bytes(trailer):
            raise IntegrityError(
                "the snapshot stream does not match the SHA-256 etcd sent with it; nothing was stored",
                hint="retry; if it repeats, check the member's disk and network",
            )
        self.sha256 = bytes(trailer).hex()
        self.size += HASH_SIZE
        try:
            self.status = self._builder.finish()
        except UsageError as exc:
            # The bytes are exactly etcd's: a summary we cannot compute while streaming is no
            # reason to lose the snapshot; ``snapshot status`` computes it from the stored file.
            self.status_error = exc.message
        if progress:
            progress(self.size)
        yield bytes(trailer)

    async def _read(
        self,
        source: AsyncIterator[bytes],
        queue: asyncio.Queue[bytes | BaseException | None],
        trailer: bytearray,
    ) -> None:
        pending = bytearray()
        try:
            async for blob in source:
                pending += blob
                # Hold back what may be etcd's trailing hash until the stream ends.
                if len(pending) >= _CHUNK + HASH_SIZE:
                    body = bytes(pending[:-HASH_SIZE])
                    del pending[:-HASH_SIZE]
                    await queue.put(body)
            if len(pending) < HASH_SIZE:
                raise IntegrityError("the snapshot stream ended before etcd's integrity hash arrived")
            if len(pending) > HASH_SIZE:
                await queue.put(bytes(pending[:-HASH_SIZE]))
            trailer += pending[-HASH_SIZE:]
            await queue.put(None)
        except RPC_ERRORS as exc:
            self.source_error = exc
            await queue.put(exc)
        except IntegrityError as exc:
            await queue.put(exc)

    def _take(self, body: bytes) -> None:
        self._digest.update(body)
        self._builder.feed(body)
        self.size += len(body)


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _dumps(data: dict[str, Any]) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()
