"""SHA-256 of a stream, computed while it is written or read.

strongroom records the SHA-256 of every file of a backup in
``strongroom-checksums.json``. Hashing on the way through means a backup of
hundreds of megabytes is never read twice and never held in memory, and a
restore learns whether the tarball matches its checksum in the same pass that
validates it.
"""

from __future__ import annotations

import hashlib
from typing import BinaryIO, Protocol


class WritableStream(Protocol):
    """Anything bytes can be written to: a file, a socket wrapper, an upload buffer."""

    def write(self, data: bytes, /) -> object: ...


class HashingWriter:
    """Forwards writes to ``sink`` and keeps their SHA-256 and byte count.

    After ``discard()`` writes are swallowed: a writer that is abandoned half
    way must not let buffered layers above it (gzip's trailer, tar's end
    blocks) make the output look complete.
    """

    def __init__(self, sink: WritableStream) -> None:
        self._sink = sink
        self._hash = hashlib.sha256()
        self._size = 0
        self._discarding = False

    def write(self, data: bytes, /) -> int:
        if self._discarding:
            return len(data)
        self._sink.write(data)
        self._hash.update(data)
        self._size += len(data)
        return len(data)

    def flush(self) -> None:
        flush = getattr(self._sink, "flush", None)
        if flush is not None and not self._discarding:
            flush()

    def discard(self) -> None:
        self._discarding = True

    @property
    def size(self) -> int:
        return self._size

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


class HashingReader:
    """Reads from ``source`` and keeps the SHA-256 and byte count of what was read."""

    def __init__(self, source: BinaryIO) -> None:
        self._source = source
        self._hash = hashlib.sha256()
        self._size = 0

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(size)
        self._hash.update(data)
        self._size += len(data)
        return data

    def readinto(self, buffer: bytearray | memoryview, /) -> int:
        # ISA-L's gzip reader fills its buffer in place.
        view = memoryview(buffer).cast("B")
        count = self._source.readinto(view)  # type: ignore[attr-defined]
        if count:
            self._hash.update(view[:count])
            self._size += count
        return count or 0

    def seek(self, offset: int, whence: int = 0, /) -> int:
        # gzip only seeks its source to rewind, which a single forward pass never does.
        raise OSError("a hashing reader cannot seek")

    def drain(self, chunk_size: int = 1 << 20) -> None:
        """Read to the end so the digest covers the whole stream."""
        while self.read(chunk_size):
            pass

    @property
    def size(self) -> int:
        return self._size

    def hexdigest(self) -> str:
        return self._hash.hexdigest()
