"""Object storage: one small interface, its backends, and the bucket key layout.

The engine sees only ``ObjectStore`` (put, get, stream, head, list, delete);
``open_store`` builds one from a BackupStorageLocation, and ``Layout`` is the
only place that knows Velero's bucket keys. Retries live inside the
obstore-backed stores (see ``strongroom.storage.s3``); anything else that
must wrap a store (metrics, rate limits) implements ``ObjectStore`` too
instead of widening it.
"""

from __future__ import annotations

from strongroom.storage._obstore import StoreOptions
from strongroom.storage.base import ObjectInfo, ObjectStore, PutData
from strongroom.storage.credentials import AwsCredentials, load_credentials_file, parse_credentials
from strongroom.storage.factory import (
    PROVIDERS,
    StoreCredentials,
    open_store,
    parse_location_credentials,
    provider_kind,
)
from strongroom.storage.layout import VALID_TOP_LEVEL_DIRS, Layout, validate_top_level
from strongroom.storage.local import LocalObjectStore
from strongroom.storage.s3 import S3ObjectStore, S3Settings

__all__ = [
    "PROVIDERS",
    "VALID_TOP_LEVEL_DIRS",
    "AwsCredentials",
    "Layout",
    "LocalObjectStore",
    "ObjectInfo",
    "ObjectStore",
    "PutData",
    "S3ObjectStore",
    "S3Settings",
    "StoreCredentials",
    "StoreOptions",
    "load_credentials_file",
    "open_store",
    "parse_credentials",
    "parse_location_credentials",
    "provider_kind",
    "validate_top_level",
]
