"""Open the object store a BackupStorageLocation names.

The controller and the CLI hold a location's provider, bucket, prefix,
config and credentials; this is the one place that turns them into an
ObjectStore, so adding a provider (Azure, GCS) touches nothing else.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from strongroom.errors import StorageConfigError
from strongroom.storage._obstore import StoreOptions
from strongroom.storage.base import ObjectStore
from strongroom.storage.credentials import AwsCredentials
from strongroom.storage.local import LocalObjectStore
from strongroom.storage.s3 import S3ObjectStore, S3Settings

__all__ = ["PROVIDERS", "open_store"]

_log = logging.getLogger(__name__)

# Velero accepts a provider with or without its "velero.io/" namespace.
_S3_PROVIDERS = frozenset({"aws", "velero.io/aws"})
_LOCAL_PROVIDERS = frozenset({"local"})
PROVIDERS = ("aws", "local")
# Keys the Velero server adds to every location's config, meaningless for a directory.
_LOCAL_CONFIG_KEYS = frozenset({"bucket", "prefix"})


def open_store(
    provider: str,
    bucket: str,
    prefix: str = "",
    config: Mapping[str, str] | None = None,
    credentials: AwsCredentials | str | bytes | None = None,
    *,
    options: StoreOptions | None = None,
) -> ObjectStore:
    """The store for one location, confined to ``bucket``/``prefix``.

    ``provider`` is the location's (``aws`` for S3 and every S3-compatible
    store, ``local`` for a directory named by ``bucket``). ``credentials`` is
    parsed credentials or the credentials file's content (``config.profile``
    picks its section). Raises StorageConfigError for anything malformed;
    nothing is sent to the store until the first operation.
    """
    name = provider.strip()
    clean_bucket, clean_prefix = _bucket_and_prefix(bucket, prefix, local=name in _LOCAL_PROVIDERS)
    store: ObjectStore
    if name in _S3_PROVIDERS:
        settings = S3Settings.from_velero_config(clean_bucket, clean_prefix, config, credentials)
        store = S3ObjectStore(settings, options)
    elif name in _LOCAL_PROVIDERS:
        unknown = sorted(set(config or {}) - _LOCAL_CONFIG_KEYS)
        if unknown:
            raise StorageConfigError(
                f"config has invalid keys [{' '.join(unknown)}]; the local provider takes none"
            )
        store = LocalObjectStore(clean_bucket, clean_prefix)
    else:
        raise StorageConfigError(
            f"unsupported object storage provider {provider!r}",
            hint=(
                "use aws (Amazon S3 and S3-compatible stores such as MinIO, NooBaa/MCG and Ceph RGW) "
                "or local (a directory); azure and gcp are not supported yet"
            ),
        )
    _log.debug("opened object store %s", store.location)
    return store


def _bucket_and_prefix(bucket: str, prefix: str, *, local: bool) -> tuple[str, str]:
    # Velero trims the slashes around both and refuses "bucket/prefix" in the
    # bucket field, a common mistake; a local bucket is a path and keeps them.
    clean_prefix = prefix.strip("/")
    if local:
        if not bucket:
            raise StorageConfigError("the local provider needs a directory as its bucket")
        return bucket, clean_prefix
    clean_bucket = bucket.strip("/")
    if not clean_bucket:
        raise StorageConfigError("the backup storage location has no bucket name")
    if "/" in clean_bucket and not clean_bucket.startswith("arn:aws:s3:"):
        raise StorageConfigError(
            f"backup storage location's bucket name {bucket!r} must not contain a '/' "
            "(if using a prefix, put it in the 'Prefix' field instead)"
        )
    return clean_bucket, clean_prefix
