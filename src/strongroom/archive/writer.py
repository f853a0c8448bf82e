"""Stream a backup tarball in Velero's format, one item at a time.

A backup of 300,000 objects must not hold them in memory (DESIGN.md,
"Streaming everywhere"), so each item is encoded, written and forgotten; only
its namespace and name are kept, because the resource list Velero stores
beside the tarball (``<B>-resource-list.json.gz``) needs them, exactly as
Velero keeps them in its ``backedUpItemsMap``. The SHA-256 of the compressed
output is computed while it is written, for ``strongroom-checksums.json``.

Header choices follow Velero (``pkg/backup/backup.go``,
``pkg/backup/item_backupper.go``): regular files only, no directory entries,
mode 0755. The mode is not cosmetic: Velero's extractor creates each parent
directory with the mode of the file inside it, and Velero runs as a non-root
user, so a 0644 member would yield directories it cannot write into.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Self

from strongroom.archive import gzipstream, jsoncodec
from strongroom.archive.checksum import HashingWriter, WritableStream
from strongroom.archive.errors import ArchiveError
from strongroom.archive.paths import (
    FORMAT_VERSION,
    ITEM_SUFFIX,
    VERSION_FILE,
    GroupResource,
    check_segment,
    item_paths,
    resource_list_entry,
    resource_list_key,
)
from strongroom.archive.tarstream import END_OF_ARCHIVE, regular_member

# ISA-L's level 1 compresses a backup's items as tightly as zlib's level 6
# (Go's default) at a tenth of the CPU; the output is plain gzip.
DEFAULT_COMPRESSLEVEL: Final = 1
# Members are gathered and compressed in chunks of this size: far fewer calls,
# and zlib releases the GIL while it works on each chunk.
_CHUNK: Final = 256 * 1024

ResourceList = dict[str, list[str]]


@dataclass(frozen=True)
class WriteResult:
    """What a finished tarball holds, for the Backup status and the side files."""

    sha256: str
    size: int
    item_count: int
    entry_count: int
    resource_list: ResourceList


class BackupWriter:
    """Writes ``<B>.tar.gz`` to a binary file object.

    Use as a context manager. ``metadata/version`` is written on construction,
    so it is the first member as in Velero. If the ``with`` block raises, the
    output is left without its gzip trailer, so every reader (Velero's too)
    sees a truncated file rather than a short but complete-looking backup.
    """

    def __init__(
        self,
        fileobj: WritableStream,
        *,
        mtime: float | None = None,
        compresslevel: int = DEFAULT_COMPRESSLEVEL,
    ) -> None:
        # One timestamp for every member (the backup's start) makes the output
        # a function of its inputs; Velero stamps each member with time.Now().
        self._mtime = int(time.time() if mtime is None else mtime)
        self._sink = HashingWriter(fileobj)
        # Go's gzip writer leaves the header's name empty and its time zero.
        self._gzip = gzipstream.writer(self._sink, compresslevel)
        self._entries: dict[str, set[str]] = {}
        self._pending: list[bytes] = []
        self._directory_cache: dict[tuple[str, str, str, bool, str | None], tuple[str, ...]] = {}
        self._pending_size = 0
        self._item_count = 0
        self._entry_count = 0
        self._result: WriteResult | None = None
        self._aborted = False
        self._add_member(VERSION_FILE, f"{FORMAT_VERSION}\n".encode())

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None and not self._aborted:
            self.close()
        else:
            self.abort()

    def add(
        self, item: Mapping[str, Any], *, group: str, version: str, resource: str, preferred: bool
    ) -> tuple[str, ...]:
        """Write one item; returns the tar paths written (two when ``preferred``).

        ``item`` needs ``apiVersion``, ``kind`` and ``metadata.name``; a
        ``metadata.namespace`` makes it namespaced. ``preferred`` says the item
        was read at its group's preferred version, the normal case.
        """
        self._check_open()
        namespace, name, kind = _identity(item, group, version)
        directories = self._directories(group, version, resource, preferred, namespace)
        check_segment(name, "item name")
        key = resource_list_key(group, version, kind)
        entry = resource_list_entry(namespace, name)
        names = self._entries.setdefault(key, set())
        if entry in names:
            raise ArchiveError(f"{key} {entry} was already added to this backup")
        try:
            data = jsoncodec.encode(item)
        except ArchiveError as exc:
            raise ArchiveError(f"{key} {entry}: {exc.message}") from exc
        written = tuple(f"{directory}{name}{ITEM_SUFFIX}" for directory in directories)
        for path in written:
            self._add_member(path, data)
        names.add(entry)
        self._item_count += 1
        return written

    def _directories(
        self, group: str, version: str, resource: str, preferred: bool, namespace: str | None
    ) -> tuple[str, ...]:
        """The directories of an item's copies, worked out (and validated) once per resource and namespace."""
        cache_key = (group, version, resource, preferred, namespace)
        directories = self._directory_cache.get(cache_key)
        if directories is None:
            paths = item_paths(
                GroupResource(resource, group), namespace, "_", version=version, preferred=preferred
            )
            directories = tuple(path.path.removesuffix("_" + ITEM_SUFFIX) for path in paths)
            self._directory_cache[cache_key] = directories
        return directories

    @property
    def item_count(self) -> int:
        """Items added (Velero's ``itemsBackedUp``); a preferred-version copy is not counted twice."""
        return self._item_count

    @property
    def entry_count(self) -> int:
        """Tar members written, ``metadata/version`` included."""
        return self._entry_count

    @property
    def aborted(self) -> bool:
        """The output was abandoned (a write failed, or ``abort`` was called): nothing more can be added."""
        return self._aborted

    def resource_list(self) -> ResourceList:
        """Velero's resource list: ``<apiVersion>/<Kind>`` to sorted ``<ns>/<name>`` (or ``<name>``)."""
        return {key: sorted(names) for key, names in sorted(self._entries.items())}

    def close(self) -> WriteResult:
        """Finish the tar and gzip streams; idempotent. The file object stays open."""
        if self._result is not None:
            return self._result
        self._check_open()
        self._flush_pending()
        try:
            self._gzip.write(END_OF_ARCHIVE)
            self._gzip.close()
            self._sink.flush()
        except OSError as exc:
            self.abort()
            raise ArchiveError(f"writing the backup tarball failed: {exc}") from exc
        self._result = WriteResult(
            sha256=self._sink.hexdigest(),
            size=self._sink.size,
            item_count=self._item_count,
            entry_count=self._entry_count,
            resource_list=self.resource_list(),
        )
        return self._result

    def abort(self) -> None:
        """Stop writing and leave the output detectably incomplete."""
        if self._result is not None or self._aborted:
            return
        self._aborted = True
        self._pending.clear()
        self._sink.discard()
        # Closing releases zlib's state; with the sink discarding, the
        # compressor's last bytes and the gzip trailer never reach the file.
        self._gzip.close()

    def _check_open(self) -> None:
        if self._aborted:
            raise ArchiveError("the backup writer was aborted")
        if self._result is not None:
            raise ArchiveError("the backup writer is closed")

    def _add_member(self, path: str, data: bytes) -> None:
        self._pending.append(regular_member(path, data, self._mtime))
        self._pending_size += len(self._pending[-1])
        self._entry_count += 1
        if self._pending_size >= _CHUNK:
            self._flush_pending(path)

    def _flush_pending(self, path: str | None = None) -> None:
        if not self._pending:
            return
        chunk = b"".join(self._pending)
        self._pending.clear()
        self._pending_size = 0
        try:
            self._gzip.write(chunk)
        except OSError as exc:
            # A member may be half written; nothing after it could be trusted.
            self.abort()
            where = f"{path} to " if path else ""
            raise ArchiveError(f"writing {where}the backup tarball failed: {exc}") from exc


def _identity(item: Mapping[str, Any], group: str, version: str) -> tuple[str | None, str, str]:
    metadata = item.get("metadata")
    if not isinstance(metadata, Mapping):
        raise ArchiveError("item has no metadata")
    name = metadata.get("name")
    if not isinstance(name, str) or not name:
        raise ArchiveError("item has no metadata.name")
    namespace = metadata.get("namespace") or None
    if namespace is not None and not isinstance(namespace, str):
        raise ArchiveError(f"item {name!r} has a metadata.namespace that is not a string")
    kind = item.get("kind")
    if not isinstance(kind, str) or not kind:
        raise ArchiveError(f"item {name!r} has no kind")
    # The resource list is keyed by the object's own apiVersion, as Velero's
    # is; a caller passing another version would make the two disagree.
    expected = f"{group}/{version}" if group else version
    if item.get("apiVersion") != expected:
        raise ArchiveError(
            f"item {name!r} has apiVersion {item.get('apiVersion')!r} but is being written as {expected!r}"
        )
    return namespace, name, kind
