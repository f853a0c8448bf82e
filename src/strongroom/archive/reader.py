"""Read a Velero-format backup tarball, validating everything before trusting it.

A restore must not start from a tarball that turns out to be truncated or
corrupt half way: by then some objects are applied and others are not. So
``verify()`` makes one full pass first: the gzip stream to its CRC and length
trailer, the tar structure to its end-of-archive marker, every member name
against the layout, every item as a JSON object, and the format version. Only
then does ``items()`` stream the objects. Both passes hold one item at a time.

Python's tarfile quietly treats an unreadable header as the end of the
archive; the reader therefore checks itself that the archive ends with a
proper end-of-archive block, so a damaged header cannot silently shorten a
backup.

Format versions follow Velero's promise (output-file-format.md): minor
versions only add files. Files strongroom does not know are refused in the
versions it knows (1.0 and 1.1) and skipped in newer 1.x versions; another
major version is refused outright.
"""

from __future__ import annotations

import gzip
import tarfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Final

from strongroom.archive import gzipstream, jsoncodec
from strongroom.archive.checksum import HashingReader
from strongroom.archive.errors import ArchiveError
from strongroom.archive.paths import (
    RESOURCES_DIR,
    VERSION_FILE,
    FormatVersion,
    GroupResource,
    ItemPath,
    parse_item_path,
    split_archive_path,
)
from strongroom.archive.tarstream import StreamingTarFile

# Kubernetes objects are bounded by etcd's request limit (1.5 MiB by default);
# the margin covers raised limits without letting one member exhaust memory.
DEFAULT_MAX_ITEM_BYTES: Final = 32 * 1024 * 1024
_MAX_VERSION_BYTES: Final = 1024
_MAX_REPORTED_PATHS: Final = 20
_CHUNK: Final = 1 << 20
_BLOCK: Final = tarfile.BLOCKSIZE
_DAMAGED_HINT: Final = (
    "the backup tarball is damaged or incomplete; compare it with strongroom-checksums.json "
    "or take a new backup"
)


@dataclass(frozen=True)
class BackupItem:
    """One item file: where it was in the tarball and the object it holds."""

    path: ItemPath
    object: dict[str, Any]

    @property
    def group_resource(self) -> GroupResource:
        return self.path.group_resource

    @property
    def namespace(self) -> str | None:
        return self.path.namespace

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def version(self) -> str | None:
        return self.path.version


@dataclass(frozen=True)
class ArchiveSummary:
    """What a full verification pass found."""

    format_version: FormatVersion
    item_entries: int
    """Item files, each preferred-version copy counted separately."""
    sha256: str
    """SHA-256 of the compressed file, as recorded in strongroom-checksums.json."""
    size: int
    ignored: tuple[str, ...] = field(default=())
    """Files of a newer minor format version that strongroom does not know (at most 20 listed)."""
    ignored_count: int = 0


class _Tracker:
    """A forward-only view of the decompressed tar stream for tarfile.

    It keeps the last block read so that, after tarfile stops, the reader can
    see whether what stopped it was an end-of-archive block or damage.
    """

    def __init__(self, source: gzip.GzipFile) -> None:
        self._source = source
        self._position = 0
        self.last = b""

    def read(self, size: int = -1, /) -> bytes:
        data = self._source.read(size)
        self._position += len(data)
        self.last = (self.last + data)[-_BLOCK:] if len(data) < _BLOCK else data[-_BLOCK:]
        return data

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = 0, /) -> int:
        if whence != 0 or offset < self._position:
            # Reading the archive in order never seeks backwards; going back
            # would mean decompressing from the start again.
            raise ArchiveError("internal error: the backup tarball reader tried to seek backwards")
        while self._position < offset and self.read(min(_CHUNK, offset - self._position)):
            pass
        return self._position

    def write(self, data: bytes, /) -> int:
        raise ArchiveError("internal error: the backup tarball reader tried to write")

    def close(self) -> None:
        pass


class BackupReader:
    """Reads ``<B>.tar.gz`` from a binary file object.

    Call ``verify()`` first, then ``items()``; the second pass seeks back to
    where the file object stood when the reader was made, so it must be
    seekable (a downloaded temporary file is). ``items()`` alone works on a
    plain stream, but then damage can only surface part way through.
    """

    def __init__(self, fileobj: BinaryIO, *, max_item_bytes: int = DEFAULT_MAX_ITEM_BYTES) -> None:
        self._fileobj = fileobj
        self._max_item_bytes = max_item_bytes
        self._start = fileobj.tell() if fileobj.seekable() else None
        self._passes = 0
        self._format_version: FormatVersion | None = None
        self._failed = False

    @property
    def format_version(self) -> FormatVersion | None:
        """The format version, once a pass has read ``metadata/version``."""
        return self._format_version

    def verify(self, *, expected_sha256: str | None = None) -> ArchiveSummary:
        """Read the whole archive and validate it; raises ArchiveError on any damage."""
        try:
            summary = self._verify_pass()
            if expected_sha256 is not None and summary.sha256 != expected_sha256.lower():
                raise ArchiveError(
                    f"backup tarball SHA-256 is {summary.sha256}, expected {expected_sha256}",
                    hint=_DAMAGED_HINT,
                )
        except ArchiveError:
            self._failed = True
            raise
        return summary

    def items(self, where: Callable[[ItemPath], bool] | None = None) -> Iterator[BackupItem]:
        """Yield the items in archive order, decoding only those ``where`` selects.

        Every copy is yielded: the version-less one Velero restores by default
        (``item.version is None``) and the versioned ones; pass ``where`` to
        pick, which also skips decoding the rest.
        """
        if self._failed:
            raise ArchiveError("the backup tarball failed verification", hint=_DAMAGED_HINT)
        for member in self._walk(self._open()):
            version = self._version_before(member)
            if isinstance(member, _Unknown):
                if version.knows_every_file:
                    raise _unexpected_error([member.path])
            elif where is None or where(member.path):
                yield BackupItem(member.path, member.load())

    def _verify_pass(self) -> ArchiveSummary:
        item_entries = 0
        unknown: list[str] = []
        unknown_count = 0
        hashing = self._open()
        for member in self._walk(hashing):
            if isinstance(member, _Unknown):
                unknown_count += 1
                if len(unknown) < _MAX_REPORTED_PATHS:
                    unknown.append(member.path)
            else:
                member.load()
                item_entries += 1
        version = self._format_version
        if version is None:
            raise ArchiveError(
                f"the backup tarball has no {VERSION_FILE}; it is not a Velero backup", hint=_DAMAGED_HINT
            )
        if unknown_count and version.knows_every_file:
            raise _unexpected_error(unknown, unknown_count)
        return ArchiveSummary(
            format_version=version,
            item_entries=item_entries,
            sha256=hashing.hexdigest(),
            size=hashing.size,
            ignored=tuple(unknown),
            ignored_count=unknown_count,
        )

    def _version_before(self, member: _Member) -> FormatVersion:
        # Velero writes metadata/version first; an archive that does not can
        # still be read, but only after verify() has found its version.
        version = self._format_version
        if version is None:
            where = member.path if isinstance(member, _Unknown) else member.info.name
            raise ArchiveError(f"{where} comes before {VERSION_FILE}; call verify() before items()")
        return version

    def _open(self) -> HashingReader:
        if self._passes:
            if self._start is None:
                raise ArchiveError(
                    "the backup tarball stream cannot be read twice",
                    hint="give the reader a seekable file, e.g. a downloaded temporary file",
                )
            self._fileobj.seek(self._start)
        self._passes += 1
        return HashingReader(self._fileobj)

    def _walk(self, hashing: HashingReader) -> Iterator[_Member]:
        seen_version = False
        with _damage_is_archive_error():
            stream = gzipstream.reader(hashing)
            tracker = _Tracker(stream)
            tar = StreamingTarFile(fileobj=tracker, mode="r", encoding="utf-8")
            while (info := tar.next()) is not None:
                member = self._classify(tar, info)
                if isinstance(member, FormatVersion):
                    if seen_version:
                        raise ArchiveError(f"the backup tarball holds {VERSION_FILE} twice")
                    seen_version = True
                    member.check_supported()
                    self._format_version = member
                elif member is not None:
                    yield member
            _check_end(tar.offset, tracker)
            hashing.drain()

    def _classify(self, tar: tarfile.TarFile, info: tarfile.TarInfo) -> _Member | FormatVersion | None:
        name = info.name
        if info.isdir():
            split_archive_path(name, directory=True)
            return None
        if info.issym() or info.islnk():
            raise ArchiveError(
                f"the backup tarball holds a link, {name!r} -> {info.linkname!r}; links are refused",
                hint=_DAMAGED_HINT,
            )
        if not info.isreg() or info.issparse():
            raise ArchiveError(
                f"the backup tarball entry {name!r} is not a regular file (tar type {info.type!r})",
                hint=_DAMAGED_HINT,
            )
        parts = split_archive_path(name)
        path = "/".join(parts)
        if path == VERSION_FILE:
            return FormatVersion.parse(_read(tar, info, path, _MAX_VERSION_BYTES).decode("utf-8", "replace"))
        if parts[0] == RESOURCES_DIR:
            return _Item(parse_item_path(path), tar, info, self._max_item_bytes)
        return _Unknown(path)


@dataclass(frozen=True)
class _Unknown:
    path: str


@dataclass(frozen=True)
class _Item:
    path: ItemPath
    tar: tarfile.TarFile
    info: tarfile.TarInfo
    limit: int

    def load(self) -> dict[str, Any]:
        where = self.info.name
        # Member data is decompressed only now, so damage can surface here too.
        with _damage_is_archive_error():
            data = _read(self.tar, self.info, where, self.limit)
        value = jsoncodec.decode(data, where)
        if not isinstance(value, dict):
            raise ArchiveError(f"{where} holds JSON that is not an object")
        return value


_Member = _Unknown | _Item


_DAMAGE: Final[tuple[type[BaseException], ...]] = (
    tarfile.TarError,
    EOFError,
    *gzipstream.DECOMPRESSION_ERRORS,
)


@contextmanager
def _damage_is_archive_error() -> Iterator[None]:
    try:
        yield
    except _DAMAGE as exc:
        raise ArchiveError(f"the backup tarball is damaged or truncated: {exc}", hint=_DAMAGED_HINT) from exc
    except OSError as exc:
        raise ArchiveError(f"reading the backup tarball failed: {exc}") from exc


def _read(tar: tarfile.TarFile, info: tarfile.TarInfo, where: str, limit: int) -> bytes:
    if info.size > limit:
        raise ArchiveError(f"{where} is {info.size} bytes, more than the {limit} bytes allowed for it")
    handle = tar.extractfile(info)
    if handle is None:  # pragma: no cover - only regular files reach here
        raise ArchiveError(f"{where} cannot be read")
    return handle.read(info.size)


def _check_end(offset: int, tracker: _Tracker) -> None:
    # tarfile stopped at `offset`: a genuine end leaves exactly one all-zero
    # block read past it; anything else is a damaged or missing header.
    consumed = tracker.tell() - offset
    if consumed < _BLOCK:
        raise ArchiveError(
            "the backup tarball ends without the tar end-of-archive marker", hint=_DAMAGED_HINT
        )
    if consumed != _BLOCK or tracker.last.count(0) != _BLOCK:
        raise ArchiveError(
            f"the backup tarball has an unreadable tar header at offset {offset}", hint=_DAMAGED_HINT
        )
    # After the marker only zero padding may follow; reading it to the end also
    # makes gzip check its CRC and length trailer.
    while chunk := tracker.read(_CHUNK):
        if chunk.count(0) != len(chunk):
            raise ArchiveError(
                "the backup tarball has data after its end-of-archive marker", hint=_DAMAGED_HINT
            )


def _unexpected_error(paths: list[str], count: int | None = None) -> ArchiveError:
    total = len(paths) if count is None else count
    shown = ", ".join(paths[:_MAX_REPORTED_PATHS])
    return ArchiveError(
        f"the backup tarball holds {total} file(s) outside Velero's layout: {shown}",
        hint="only metadata/version and resources/... item files belong in a format 1.1 backup",
    )
