"""gzip streams through ISA-L: the same gzip format, a fraction of zlib's CPU.

Compression was most of a backup's CPU with zlib (about 60 µs per item at
Go's default level); ISA-L's level 1 compresses a backup's items as tightly
at about 5 µs, and its decompression is faster too. The files are plain
gzip, read by Go, Velero and every other tool. This module is the one place
that names the library, and gives it the types the rest of ``archive`` uses.
"""

from __future__ import annotations

import gzip
import zlib
from typing import Any, Final, cast

from isal import igzip, isal_zlib

__all__ = ["DECOMPRESSION_ERRORS", "reader", "writer"]

# What a damaged stream raises while it is read (besides EOFError for a cut one).
DECOMPRESSION_ERRORS: Final[tuple[type[BaseException], ...]] = (
    zlib.error,
    cast("type[BaseException]", isal_zlib.error),
    gzip.BadGzipFile,
)


def writer(fileobj: Any, compresslevel: int) -> gzip.GzipFile:
    """A gzip writer with Go's header (no name, zero time, OS unknown)."""
    stream = igzip.GzipFile(filename="", mode="wb", fileobj=fileobj, compresslevel=compresslevel, mtime=0)  # type: ignore[no-untyped-call]
    return cast("gzip.GzipFile", stream)


def reader(fileobj: Any) -> gzip.GzipFile:
    """A gzip reader that checks the CRC and length trailer at the end of the stream."""
    return cast("gzip.GzipFile", igzip.GzipFile(fileobj=fileobj, mode="rb"))  # type: ignore[no-untyped-call]
