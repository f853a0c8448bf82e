"""The one small interface every object store implements.

The engine writes backups, logs and etcd snapshots and reads them back; it
never needs more than these few operations, so every backend (a directory,
S3 and the S3-compatible stores, later Azure and GCS) and every decorator
(retries, metrics, rate limits) implements exactly this surface and nothing
wider. Keys are relative to the store's root, use "/" as the separator and
never start with "/".

Prefixes are directories, not string prefixes: ``list("backups/b1")`` lists
the keys under ``backups/b1/`` and never ``backups/b10/...``. That is what
every caller wants, what Velero always asks for (its prefixes end in "/"),
and what obstore can list without fetching a whole parent directory.
"""

from __future__ import annotations

import builtins
import os
from abc import ABC, abstractmethod
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeAlias

from strongroom.errors import StorageConfigError

__all__ = [
    "MAX_KEY_BYTES",
    "ObjectInfo",
    "ObjectStore",
    "PutData",
    "normalize_prefix",
    "validate_key",
]

# S3's limit; the other providers allow at least as much.
MAX_KEY_BYTES = 1024

PutData: TypeAlias = bytes | bytearray | memoryview | AsyncIterable[bytes] | os.PathLike[str]
"""What ``put`` uploads: bytes in memory, an async stream of chunks, or a local file (a path object)."""


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """What a store knows about one object without reading it."""

    key: str
    size: int
    etag: str | None
    last_modified: datetime


class ObjectStore(ABC):
    """A bucket (or a directory) seen through a handful of async operations.

    Every method raises ``StorageError`` (``ObjectNotFound`` for a missing
    object, ``StorageConfigError`` for a malformed key or location) and never a
    provider's own exception type.
    """

    @property
    @abstractmethod
    def location(self) -> str:
        """Where the store points, safe to show to a user (never carries credentials)."""

    @abstractmethod
    async def put(self, key: str, data: PutData, *, content_type: str | None = None) -> None:
        """Store ``data`` under ``key``, replacing any object there.

        Atomic: readers see the old object or the whole new one, never a part;
        if the upload or ``data``'s own iterator fails, nothing becomes visible
        and the iterator's exception propagates unchanged. Large and streamed
        data go up in parts, so memory stays bounded by the part size.
        """

    @abstractmethod
    async def get(self, key: str) -> bytes:
        """The whole object, in memory; use ``get_stream`` for large objects."""

    @abstractmethod
    async def get_stream(self, key: str) -> AsyncIterator[bytes]:
        """Start a download and return its chunks.

        The request is made before this returns, so a missing object raises
        ``ObjectNotFound`` here rather than at the first chunk.
        """

    @abstractmethod
    async def head(self, key: str) -> ObjectInfo | None:
        """The object's size, etag and modification time, or None when it does not exist."""

    @abstractmethod
    def list(self, prefix: str = "", *, delimiter: str | None = None) -> AsyncIterator[ObjectInfo]:
        """The objects under the directory ``prefix`` ("" for all), in no particular order.

        Recursive by default; with ``delimiter="/"`` only the objects directly
        in that directory. Pages of the provider's listing are fetched as the
        iterator advances.
        """

    @abstractmethod
    async def list_prefixes(self, prefix: str = "") -> builtins.list[str]:
        """The sub-directories directly under ``prefix``, sorted, as keys ending in "/".

        Like S3's CommonPrefixes with delimiter "/": ``list_prefixes("")`` gives
        the top-level directories, e.g. ``["backups/", "restores/"]``.
        """

    @abstractmethod
    async def delete(self, key: str) -> None:
        """Remove the object; a key that does not exist is not an error (as on S3)."""

    @abstractmethod
    async def delete_prefix(self, prefix: str) -> int:
        """Remove every object under the directory ``prefix`` and return how many there were.

        The prefix must not be empty: wiping a whole store is never a side effect.
        """

    async def exists(self, key: str) -> bool:
        """Whether an object is stored under ``key``."""
        return await self.head(key) is not None

    async def download_url(self, key: str, expires_in: timedelta) -> str:
        """A URL that lets its holder read the object until it expires, without credentials.

        What a DownloadRequest hands to the CLI: a pre-signed URL for a bucket,
        a ``file://`` URL for a directory (readable where the directory is).
        """
        raise StorageConfigError(f"{self.location} cannot hand out download URLs")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.location!r})"


def validate_key(key: str) -> str:
    """Return ``key`` if every backend can store it, else raise StorageConfigError.

    Checked before any request, so a bad key fails the same way on every
    backend instead of as a provider-specific error (or, worse, as a file
    outside a local store's directory).
    """
    if not isinstance(key, str) or not key:
        raise StorageConfigError(f"invalid object key {key!r}: it must be a non-empty string")
    if key.endswith("/"):
        raise StorageConfigError(f"invalid object key {key!r}: it must not end with '/'")
    _check_segments(key, "object key")
    return key


def normalize_prefix(prefix: str) -> str:
    """The directory ``prefix`` without its trailing "/" ("" for the root), or StorageConfigError."""
    if not isinstance(prefix, str):
        raise StorageConfigError(f"invalid prefix {prefix!r}: it must be a string")
    stripped = prefix[:-1] if prefix.endswith("/") else prefix
    if stripped:
        _check_segments(stripped, "prefix")
    return stripped


def _check_segments(value: str, what: str) -> None:
    if value.startswith("/"):
        raise StorageConfigError(f"invalid {what} {value!r}: keys are relative and must not start with '/'")
    if len(value.encode("utf-8")) > MAX_KEY_BYTES:
        raise StorageConfigError(f"invalid {what}: longer than {MAX_KEY_BYTES} bytes")
    if any(ord(char) < 0x20 or char == "\x7f" for char in value):
        raise StorageConfigError(f"invalid {what} {value!r}: it contains a control character")
    for segment in value.split("/"):
        if segment == "":
            raise StorageConfigError(f"invalid {what} {value!r}: it contains an empty path segment ('//')")
        if segment in (".", ".."):
            raise StorageConfigError(
                f"invalid {what} {value!r}: '.' and '..' are not allowed as path segments"
            )
