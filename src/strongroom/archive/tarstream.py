"""The tar layer: member blocks for the writer, a forgetful TarFile for the reader.

Writing: a backup has two tar members per item, and ``tarfile``'s general
header code (PAX checks, a copy of every TarInfo, three small writes) costs
about five times what building the one kind of member a backup needs does.
So the writer builds its members here, as Go's ``archive/tar`` writes them for
Velero: a POSIX ustar header, the long-name ``prefix`` field when the path
fits it, and a PAX ``path`` record otherwise.

Reading stays with ``tarfile``, which already understands every header
variant that Velero, GNU tar or bsdtar produce; ``StreamingTarFile`` only
stops it from keeping a list of every member seen, which would grow with the
backup. Links, the one reason to look members up again, are refused.
"""

from __future__ import annotations

import functools
import struct
import tarfile
from typing import Any, Final

from strongroom.archive.errors import ArchiveError

BLOCK: Final = 512
END_OF_ARCHIVE: Final = bytes(2 * BLOCK)

_NAME_LEN: Final = 100
_PREFIX_LEN: Final = 155
_MODE: Final = b"0000755\x00"
_ZERO_ID: Final = b"0000000\x00"
_MAGIC: Final = b"ustar\x0000"
_CHECKSUM_OFFSET: Final = 148
_MAX_SIZE: Final = 8**11 - 1


def _octal(value: int, width: int) -> bytes:
    # Numeric fields are zero-padded octal ending in NUL, as Go writes them.
    if not 0 <= value < 8 ** (width - 1):
        raise ArchiveError(f"value {value} does not fit a tar header field")
    return b"%0*o\x00" % (width - 1, value)


# name, mode, uid, gid, size, mtime, checksum, typeflag, linkname, magic+version,
# uname, gname, devmajor, devminor, prefix, padding: a ustar header's fields.
_USTAR: Final = struct.Struct("100s8s8s8s12s12s8s1s100s8s32s32s8s8s155s12s")
# The bytes every header has in the same place (mode, ids, magic, the
# checksum field as spaces); their sum is added once instead of per header.
_FIXED_SUM: Final = sum(_MODE + _ZERO_ID * 4 + _MAGIC + b" " * 8)


@functools.lru_cache(maxsize=16)
def _mtime_field(mtime: int) -> tuple[bytes, int]:
    # Every member of a backup has the same time: its field and sum are computed once.
    field = _octal(mtime, 12)
    return field, sum(field)


def _header(name: bytes, prefix: bytes, size: int, mtime: int, typeflag: bytes) -> bytes:
    size_field = _octal(size, 12)
    mtime_field, mtime_sum = _mtime_field(mtime)
    # The checksum is the sum of the header's bytes with its own field as
    # spaces, written as six octal digits, NUL and space; zero padding adds nothing.
    checksum = _FIXED_SUM + sum(name) + sum(prefix) + sum(size_field) + mtime_sum + typeflag[0]
    return _USTAR.pack(
        name,
        _MODE,
        _ZERO_ID,
        _ZERO_ID,
        size_field,
        mtime_field,
        b"%06o\x00 " % checksum,
        typeflag,
        b"",
        _MAGIC,
        b"",
        b"",
        _ZERO_ID,
        _ZERO_ID,
        prefix,
        b"",
    )


def _split_ustar(path: bytes) -> tuple[bytes, bytes] | None:
    if len(path) <= _NAME_LEN:
        return path, b""
    # The longest prefix that fits leaves the shortest name.
    cut = path.rfind(b"/", 0, _PREFIX_LEN + 1)
    while cut > 0:
        if len(path) - cut - 1 <= _NAME_LEN:
            return path[cut + 1 :], path[:cut]
        cut = path.rfind(b"/", 0, cut)
    return None


def _pax_record(key: str, value: bytes) -> bytes:
    # "<length> <key>=<value>\n", where the length counts its own digits.
    body = b" %s=%s\n" % (key.encode("ascii"), value)
    length = len(body) + len(str(len(body)))
    if len(str(length)) != len(str(len(body))):
        length += 1
    return b"%d%s" % (length, body)


def _padding(size: int) -> bytes:
    return bytes(-size % BLOCK)


def regular_member(path: str, data: bytes, mtime: int) -> bytes:
    """A complete tar member (header, data, padding) for a regular file, mode 0755."""
    if len(data) > _MAX_SIZE:
        raise ArchiveError(f"{path} is too large for a tar member ({len(data)} bytes)")
    encoded = path.encode("utf-8")
    split = _split_ustar(encoded) if path.isascii() else None
    if split is not None:
        name, prefix = split
        return _header(name, prefix, len(data), mtime, b"0") + data + _padding(len(data))
    # Too long for ustar, or not ASCII: a PAX extended header carries the path
    # and the ustar name is only a truncated fallback for very old readers.
    records = _pax_record("path", encoded)
    pax = _header(b"PaxHeaders.0/entry", b"", len(records), mtime, b"x") + records + _padding(len(records))
    fallback = encoded[:_NAME_LEN].decode("utf-8", "ignore").encode("ascii", "ignore")
    return pax + _header(fallback, b"", len(data), mtime, b"0") + data + _padding(len(data))


class _Forgetful(list[tarfile.TarInfo]):
    def append(self, item: tarfile.TarInfo, /) -> None:
        pass


class StreamingTarFile(tarfile.TarFile):
    """A TarFile that does not keep the members it has read."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.members = _Forgetful()
