"""Open the object store a BackupStorageLocation names.

The controller and the CLI hold a location's provider, bucket, prefix,
config and credentials; this is the one place that turns them into an
ObjectStore, so adding a provider (Azure, GCS) touches nothing else.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, TypeAlias

from strongroom.errors import StorageConfigError
from strongroom.storage._obstore import StoreOptions
from strongroom.storage.base import ObjectStore
from strongroom.storage.credentials import DEFAULT_PROFILE, AwsCredentials, parse_credentials
from strongroom.storage.local import LocalObjectStore
from strongroom.storage.s3 import S3ObjectStore, S3Settings

if TYPE_CHECKING:  # each provider's module loads only when a location of it is opened
    from strongroom.storage.azure import AzureCredentials
    from strongroom.storage.gcs import GcpCredentials

__all__ = ["PROVIDERS", "StoreCredentials", "open_store", "parse_location_credentials", "provider_kind"]

StoreCredentials: TypeAlias = "AwsCredentials | AzureCredentials | GcpCredentials"

_log = logging.getLogger(__name__)

# Velero accepts a provider with or without its "velero.io/" namespace.
_S3_PROVIDERS = frozenset({"aws", "velero.io/aws"})
_AZURE_PROVIDERS = frozenset({"azure", "velero.io/azure"})
_GCP_PROVIDERS = frozenset({"gcp", "velero.io/gcp"})
_LOCAL_PROVIDERS = frozenset({"local"})
PROVIDERS = ("aws", "azure", "gcp", "local")
_UNSUPPORTED_HINT = (
    "use aws (Amazon S3 and S3-compatible stores such as MinIO, NooBaa/MCG and Ceph RGW), "
    "azure (Azure Blob Storage), gcp (Google Cloud Storage) or local (a directory)"
)


def provider_kind(provider: str) -> str:
    """``aws``, ``azure``, ``gcp`` or ``local`` for a location's provider (with or without ``velero.io/``)."""
    name = provider.strip()
    for kind, names in (
        ("aws", _S3_PROVIDERS),
        ("azure", _AZURE_PROVIDERS),
        ("gcp", _GCP_PROVIDERS),
        ("local", _LOCAL_PROVIDERS),
    ):
        if name in names:
            return kind
    raise StorageConfigError(f"unsupported object storage provider {provider!r}", hint=_UNSUPPORTED_HINT)


def parse_location_credentials(
    provider: str, content: str | bytes, config: Mapping[str, str] | None = None, *, source: str
) -> StoreCredentials:
    """A location's credentials file, parsed as its provider writes it; mistakes name ``source`` and the line.

    aws: the shared-credentials INI file (``config.profile`` picks the section);
    azure: the ``AZURE_...=`` lines of the OADP guide; gcp: a service-account JSON key."""
    kind = provider_kind(provider)
    if kind == "azure":
        from strongroom.storage.azure import parse_azure_credentials

        return parse_azure_credentials(content, source)
    if kind == "gcp":
        from strongroom.storage.gcs import parse_gcp_credentials

        return parse_gcp_credentials(content, source)
    if kind == "local":
        raise StorageConfigError("the local provider takes no credentials")
    return parse_credentials(content, (config or {}).get("profile") or DEFAULT_PROFILE, source=source)


# Keys the Velero server adds to every location's config, meaningless for a directory.
_LOCAL_CONFIG_KEYS = frozenset({"bucket", "prefix"})


def open_store(
    provider: str,
    bucket: str,
    prefix: str = "",
    config: Mapping[str, str] | None = None,
    credentials: StoreCredentials | str | bytes | None = None,
    *,
    options: StoreOptions | None = None,
) -> ObjectStore:
    """The store for one location, confined to ``bucket``/``prefix``.

    ``provider`` is the location's: ``aws`` for S3 and every S3-compatible
    store, ``azure`` (the bucket is the blob container), ``gcp``, or
    ``local`` for a directory named by ``bucket``. ``credentials`` is parsed
    credentials or the credentials file's content (for aws, ``config.profile``
    picks its section). Raises StorageConfigError for anything malformed;
    nothing is sent to the store until the first operation.
    """
    kind = provider_kind(provider)
    clean_bucket, clean_prefix = _bucket_and_prefix(bucket, prefix, local=kind == "local")
    store: ObjectStore
    if kind == "aws":
        if credentials is not None and not isinstance(credentials, str | bytes | AwsCredentials):
            raise StorageConfigError("an aws location needs AWS credentials")
        settings = S3Settings.from_velero_config(clean_bucket, clean_prefix, config, credentials)
        store = S3ObjectStore(settings, options)
    elif kind == "azure":
        from strongroom.storage.azure import AzureCredentials, AzureObjectStore, AzureSettings

        if credentials is not None and not isinstance(credentials, str | bytes | AzureCredentials):
            raise StorageConfigError("an azure location needs Azure credentials")
        store = AzureObjectStore(
            AzureSettings.from_velero_config(clean_bucket, clean_prefix, config, credentials), options
        )
    elif kind == "gcp":
        from strongroom.storage.gcs import GcpCredentials, GcsObjectStore, GcsSettings

        if credentials is not None and not isinstance(credentials, str | bytes | GcpCredentials):
            raise StorageConfigError("a gcp location needs a Google Cloud service-account key")
        store = GcsObjectStore(
            GcsSettings.from_velero_config(clean_bucket, clean_prefix, config, credentials), options
        )
    else:
        unknown = sorted(set(config or {}) - _LOCAL_CONFIG_KEYS)
        if unknown:
            raise StorageConfigError(
                f"config has invalid keys [{' '.join(unknown)}]; the local provider takes none"
            )
        store = LocalObjectStore(clean_bucket, clean_prefix)
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
