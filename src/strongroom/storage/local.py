"""A directory on the local disk as an object store: local mode, demos and tests.

Built on obstore's LocalStore rather than plain files, so that the local store
runs the very adapter the S3 store runs (key checks, streaming multipart
uploads, listing semantics, error mapping) and local-mode tests exercise the
production path. LocalStore already writes atomically: an upload goes to a
staging file ``<key>#<n>`` next to its target and is renamed over it only when
complete, staging files never show in listings, and an aborted upload
removes its staging file. A crash can leave a staging file behind, invisible
to every operation here.

What this class adds, so the directory behaves like a bucket:

* the directory (the "bucket") must exist; the prefix inside it is created,
* empty directories are pruned after deletes and failed uploads, and never
  reported by ``list_prefixes`` (S3 has no empty prefixes),
* deleting a missing key is not an error (as on S3).

Two limits of a file system remain: a key cannot be both an object and a
"directory" (``a`` and ``a/b``), and a file name may not end in ``#<digits>``
(LocalStore's staging suffix). Velero's layout never needs either.
"""

from __future__ import annotations

import builtins
import os
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from obstore.exceptions import PreconditionError
from obstore.store import LocalStore

from strongroom.errors import ObjectNotFound, StorageConfigError, StorageError
from strongroom.storage._obstore import PROVIDER_ERRORS, ObstoreStore, settle
from strongroom.storage.base import PutData, normalize_prefix, validate_key

if TYPE_CHECKING:
    from obstore import GetOptions

__all__ = ["LocalObjectStore"]

_STAGING_SUFFIX = re.compile(r"#\d+$")
DEFAULT_PART_SIZE = 8 * 1024 * 1024
_RANGE_SIZE = 8 * 1024 * 1024


class LocalObjectStore(ObstoreStore):
    """Objects as files under ``root/prefix``."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        prefix: str = "",
        *,
        part_size: int = DEFAULT_PART_SIZE,
        stream_chunk_size: int = 1024 * 1024,
    ) -> None:
        root_path = Path(root).expanduser()
        if not root_path.is_dir():
            raise StorageConfigError(
                f"the local store's directory {str(root_path)!r} does not exist",
                hint="create it first (mkdir -p), like a bucket is created before it is used",
            )
        directory = normalize_prefix(prefix)
        base = root_path.resolve()
        self._root = base / directory if directory else base
        store = LocalStore(self._root, automatic_cleanup=True, mkdir=True)
        super().__init__(
            store,
            location=self._root.as_uri(),
            part_size=part_size,
            max_concurrency=1,
            stream_chunk_size=stream_chunk_size,
            # LocalStore rejects attributes (content type); a file has none to keep.
            supports_attributes=False,
            # A directory walk has no order to resume from (and never breaks off mid-response).
            ordered_listing=False,
        )

    @property
    def root(self) -> Path:
        """The directory that holds the objects."""
        return self._root

    async def download_url(self, key: str, expires_in: timedelta) -> str:
        # A directory has no signatures: the URL is good wherever the directory is mounted.
        target = self._root / validate_key(key)
        if not target.is_file():
            raise ObjectNotFound(f"{key} not found in {self.location}")
        return target.as_uri()

    async def put(self, key: str, data: PutData, *, content_type: str | None = None) -> None:
        if _STAGING_SUFFIX.search(validate_key(key).rsplit("/", 1)[-1]):
            raise StorageConfigError(
                f"invalid object key {key!r} for a local store: a file name may not end in '#<digits>'"
            )
        await super().put(key, data, content_type=content_type)

    def _after_failed_put(self, path: str) -> None:
        # The upload created the key's parent directories; S3 would show no
        # trace of a failed upload, so neither may we.
        parent = (self._root / path).parent
        while parent != self._root and self._root in parent.parents:
            try:
                parent.rmdir()
            except OSError:
                return  # not empty (another object lives there) or already gone
            parent = parent.parent

    async def get_stream(self, key: str) -> AsyncIterator[bytes]:
        # obstore streams a local file in small reads (about 180 MB/s here), while a range read
        # takes the file at disk speed: so the object is read range by range, each pinned to the
        # version first seen (its e_tag), and a file replaced meanwhile fails instead of mixing.
        path = validate_key(key)
        try:
            meta = await settle(self._store.head_async(path))
        except PROVIDER_ERRORS as exc:
            raise self.translate(exc, "read", key) from self.cause(exc)
        return self._ranges(path, key, int(meta["size"]), meta.get("e_tag"))

    async def _ranges(self, path: str, key: str, size: int, e_tag: str | None) -> AsyncIterator[bytes]:
        step = max(self._stream_chunk_size, _RANGE_SIZE)
        for start in range(0, size, step):
            options: GetOptions = {"range": (start, min(start + step, size))}
            if e_tag:
                options["if_match"] = e_tag
            try:
                result = await settle(self._store.get_async(path, options=options))
                chunk = await settle(result.bytes_async())
            except PreconditionError:
                raise StorageError(
                    f"cannot read {key!r} in {self.location}: it was replaced while being read",
                    hint="read it again",
                ) from None
            except PROVIDER_ERRORS as exc:
                raise self.translate(exc, "read", key) from self.cause(exc)
            yield chunk.to_bytes()

    async def list_prefixes(self, prefix: str = "") -> builtins.list[str]:
        candidates = await super().list_prefixes(prefix)
        return [candidate for candidate in candidates if await self._holds_objects(candidate)]

    async def _holds_objects(self, directory: str) -> bool:
        # A directory left empty (or holding only a crashed upload's staging
        # file, which listings skip) is not a prefix: S3 only knows prefixes
        # of existing keys.
        stream = self._store.list(normalize_prefix(directory), chunk_size=1)
        try:
            chunk = await settle(anext(stream, None))
        except PROVIDER_ERRORS as exc:
            raise self.translate(exc, "list", directory, missing="container") from self.cause(exc)
        return bool(chunk)
