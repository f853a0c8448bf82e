"""Amazon S3 and the S3-compatible stores (MinIO, NooBaa/MCG, Ceph RGW) through obstore.

A BackupStorageLocation with provider ``aws`` configures this store with the
same ``config`` keys as Velero's AWS plugin, so existing locations and the
OADP guide's examples work verbatim. ``S3Settings.from_velero_config``
translates them once, up front, and rejects what it cannot honour with the
plugin's own wording rather than failing at the first backup:

==========================  ==================================================
``region``                  the bucket's region (default us-east-1; Velero
                            would ask AWS for it, see below)
``s3Url``                   a custom endpoint: MinIO, NooBaa, RGW, a proxy
``s3ForcePathStyle``        ``https://host/bucket/key`` instead of
                            ``https://bucket.host/key``
``insecureSkipTLSVerify``   accept any server certificate (testing only)
``caCert``                  PEM text, base64 of it, or a file: trusted in
                            addition to the system's roots
``profile``                 which section of the credentials file to use
``credentialsFile``         the credentials file, when not passed directly
``checksumAlgorithm``       SHA256 and CRC64NVME are sent; CRC32, CRC32C and
                            SHA1 (Velero's default is CRC32) are not offered
                            by obstore, so none is added; SigV4's signed
                            payload still guards every request body
``serverSideEncryption``,   passed through (SSE-S3, SSE-KMS, DSSE-KMS);
``kmsKeyId``                a key id alone means ``aws:kms``, as in Velero
``customerKeyEncryptionFile``  SSE-C with the 32-byte key in that file
``tagging``                 ``k1=v1&k2=v2``: tags on every uploaded object
``publicUrl``               kept for signed download URLs; not used to store
``signatureVersion``        only 4 (obstore signs with SigV4 only)
``enableSharedConfig``      accepted and ignored: only static keys are read
==========================  ==================================================

Deviations from Velero, both deliberate: an AWS location without a region
uses us-east-1 instead of looking the bucket's region up (a wrong region
fails with a hint to set ``config.region``), and
``customerKeyEncryptionSecret`` is refused because reading a Secret is the
kube package's job, not storage's.

Retries are obstore's own (RetryConfig): 5xx answers including 503 SlowDown,
connection errors and resets, and timeouts are retried with exponential
backoff and jitter, and an interrupted download resumes with a range
request, so this store needs no retrying wrapper of ours. Its limits are in
``StoreOptions``; certificate errors are retried too, which is why the default
number of retries is moderate.

When credentials are given (the usual case: the ``cloud-credentials``
Secret), they are handed to obstore through a credential provider, so
credentials in the process environment are ignored and neither the EC2
metadata service nor any other source is ever consulted. Without
credentials obstore's default chain applies (environment, web identity,
container and instance metadata), which is what IRSA and instance roles need.
"""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlsplit

import obstore
from obstore.store import S3Store

from strongroom.errors import StorageConfigError
from strongroom.storage._obstore import (
    PROVIDER_ERRORS,
    ObstoreStore,
    StoreOptions,
    client_config,
    configuration_error,
    retry_config,
)
from strongroom.storage.base import validate_key
from strongroom.storage.config import check_config_keys, parse_bool, parse_url
from strongroom.storage.credentials import (
    DEFAULT_PROFILE,
    AwsCredentials,
    load_credentials_file,
    parse_credentials,
)
from strongroom.storage.tls import ca_certificate

if TYPE_CHECKING:
    from obstore.store import S3Config, S3Credential

__all__ = ["VELERO_AWS_CONFIG_KEYS", "S3ObjectStore", "S3Settings"]

# Velero's AWS plugin accepts these keys (ValidateObjectStoreConfigKeys), and
# the Velero server adds bucket, prefix and caCert to every location's config.
VELERO_AWS_CONFIG_KEYS = (
    "region",
    "s3Url",
    "publicUrl",
    "kmsKeyId",
    "customerKeyEncryptionFile",
    "customerKeyEncryptionSecret",
    "s3ForcePathStyle",
    "signatureVersion",
    "credentialsFile",
    "profile",
    "serverSideEncryption",
    "insecureSkipTLSVerify",
    "enableSharedConfig",
    "tagging",
    "checksumAlgorithm",
    "bucket",
    "prefix",
    "caCert",
    # Read by the volume code (restic repository location), not by this store.
    "resticRepoPrefix",
)
DEFAULT_REGION = "us-east-1"
_S3_URL_EXAMPLE = "https://minio.example.com:9000"
# The values of the AWS SDK's ChecksumAlgorithm enum, which Velero validates against.
_CHECKSUM_ALGORITHMS = frozenset({"", "CRC32", "CRC32C", "SHA1", "SHA256", "CRC64NVME"})
_OBSTORE_CHECKSUMS = frozenset({"SHA256", "CRC64NVME"})
_SSE_C_KEY_BYTES = 32
_MAX_TAGS = 10


@dataclass(frozen=True)
class S3Settings:
    """Where and how to reach one bucket: Velero's location config, validated."""

    bucket: str
    prefix: str = ""
    region: str = DEFAULT_REGION
    endpoint: str | None = None
    virtual_hosted_style: bool = True
    allow_http: bool = False
    ca_cert_pem: str | None = field(default=None, repr=False)
    insecure_skip_tls_verify: bool = False
    checksum_algorithm: str | None = None
    server_side_encryption: str | None = None
    kms_key_id: str | None = None
    sse_customer_key_base64: str | None = field(default=None, repr=False)
    tags: Mapping[str, str] = field(default_factory=dict)
    public_url: str | None = None
    credentials: AwsCredentials | None = None

    @classmethod
    def from_velero_config(
        cls,
        bucket: str,
        prefix: str = "",
        config: Mapping[str, str] | None = None,
        credentials: AwsCredentials | str | bytes | None = None,
    ) -> S3Settings:
        """Translate a BackupStorageLocation's bucket, prefix and ``config`` (Velero's AWS keys).

        ``credentials`` is the parsed profile, or the credentials file's
        content from which ``config.profile`` selects a section; without it,
        ``config.credentialsFile`` is read if set.
        """
        values = dict(config or {})
        check_config_keys(values, VELERO_AWS_CONFIG_KEYS)
        path_style = parse_bool(values, "s3ForcePathStyle")
        insecure = parse_bool(values, "insecureSkipTLSVerify")
        region = values.get("region") or DEFAULT_REGION
        s3_url = parse_url(values, "s3Url", example=_S3_URL_EXAMPLE)
        public_url = parse_url(values, "publicUrl", example=_S3_URL_EXAMPLE)

        signature = values.get("signatureVersion", "")
        if signature not in ("", "4"):
            raise StorageConfigError(
                f"signatureVersion {signature!r} is not supported: every request is signed with signature version 4"
            )
        checksum = values.get("checksumAlgorithm", "")
        if checksum not in _CHECKSUM_ALGORITHMS:
            raise StorageConfigError(
                f"invalid checksum algorithm: {checksum}",
                hint=f'use one of {", ".join(sorted(_CHECKSUM_ALGORITHMS - {""}))}, or "" for none',
            )

        sse, kms_key_id, sse_c_key = _encryption(values)
        virtual_hosted = not path_style and _virtual_hostable(bucket, s3_url)
        endpoint = None
        if s3_url is not None:
            endpoint = _bucket_endpoint(s3_url, bucket) if virtual_hosted else s3_url
        profile = values.get("profile") or DEFAULT_PROFILE
        if isinstance(credentials, str | bytes):
            credentials = parse_credentials(credentials, profile)
        elif credentials is None and values.get("credentialsFile"):
            credentials = load_credentials_file(values["credentialsFile"], profile)
        ca_pem = ca_certificate(values["caCert"]) if values.get("caCert") else None
        return cls(
            bucket=bucket,
            prefix=prefix,
            region=region,
            endpoint=endpoint,
            virtual_hosted_style=virtual_hosted,
            allow_http=(s3_url or "").startswith("http://"),
            ca_cert_pem=ca_pem,
            insecure_skip_tls_verify=insecure,
            checksum_algorithm=checksum if checksum in _OBSTORE_CHECKSUMS else None,
            server_side_encryption=sse,
            kms_key_id=kms_key_id,
            sse_customer_key_base64=sse_c_key,
            tags=_parse_tags(values.get("tagging", "")),
            public_url=public_url,
            credentials=credentials,
        )

    @property
    def location(self) -> str:
        """The bucket and prefix as a URL, plus the endpoint when it is not AWS's."""
        where = f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"
        return f"{where} at {self.endpoint}" if self.endpoint else where

    def secret_values(self) -> tuple[str, ...]:
        secrets = self.credentials.secret_values if self.credentials else ()
        return (*secrets, self.sse_customer_key_base64) if self.sse_customer_key_base64 else secrets


class S3ObjectStore(ObstoreStore):
    """A bucket (and prefix) of S3 or an S3-compatible store."""

    def __init__(self, settings: S3Settings, options: StoreOptions | None = None) -> None:
        options = options or StoreOptions()
        self.settings = settings
        self.options = options
        try:
            store = S3Store(
                settings.bucket,
                prefix=settings.prefix or None,
                config=_s3_config(settings),
                client_options=client_config(
                    options,
                    endpoint=settings.endpoint
                    or f"https://{settings.bucket}.s3.{settings.region}.amazonaws.com",
                    allow_http=settings.allow_http,
                    ca_cert_pem=settings.ca_cert_pem,
                    insecure_skip_tls_verify=settings.insecure_skip_tls_verify,
                ),
                retry_config=retry_config(options),
                credential_provider=_StaticCredentials(settings.credentials)
                if settings.credentials
                else None,
            )
        except PROVIDER_ERRORS as exc:
            raise configuration_error(exc, "S3", settings.location, settings.secret_values()) from None
        self._s3_store = store
        super().__init__(
            store,
            location=settings.location,
            part_size=options.part_size,
            max_concurrency=options.max_concurrency,
            stream_chunk_size=options.stream_chunk_size,
            supports_attributes=True,
            ordered_listing=True,
            repeat_backoff=options.init_backoff.total_seconds(),
            tags=settings.tags,
            secrets=settings.secret_values(),
        )

    async def download_url(self, key: str, expires_in: timedelta) -> str:
        path = validate_key(key)
        try:
            # Signing is local (no request): the URL carries the signature, never the secret.
            return await obstore.sign_async(self._s3_store, "GET", path, expires_in)
        except PROVIDER_ERRORS as exc:
            raise self.translate(exc, "sign", key) from self.cause(exc)


class _StaticCredentials:
    """Hands fixed keys to obstore, which then never looks for credentials anywhere else."""

    def __init__(self, credentials: AwsCredentials) -> None:
        self._credentials = credentials

    def __call__(self) -> S3Credential:
        return {
            "access_key_id": self._credentials.access_key_id,
            "secret_access_key": self._credentials.secret_access_key,
            "token": self._credentials.session_token,
            # Static keys never expire, so obstore asks once and caches them.
            "expires_at": None,
        }

    def __repr__(self) -> str:
        return f"_StaticCredentials({self._credentials!r})"


def _s3_config(settings: S3Settings) -> S3Config:
    config: S3Config = {
        "region": settings.region,
        "virtual_hosted_style_request": settings.virtual_hosted_style,
    }
    if settings.endpoint:
        config["endpoint"] = settings.endpoint
    if settings.checksum_algorithm:
        config["checksum_algorithm"] = settings.checksum_algorithm
    if settings.server_side_encryption:
        config["server_side_encryption"] = settings.server_side_encryption
    if settings.kms_key_id:
        config["sse_kms_key_id"] = settings.kms_key_id
    if settings.sse_customer_key_base64:
        config["sse_customer_key_base64"] = settings.sse_customer_key_base64
    return config


def _virtual_hostable(bucket: str, s3_url: str | None) -> bool:
    """Whether ``bucket`` can be addressed as a host name, as the AWS SDK's endpoint rules decide."""
    if "." in bucket:
        # A dotted bucket breaks the TLS wildcard certificate of *.s3.amazonaws.com.
        return False
    if s3_url is None:
        return True
    host = urlsplit(s3_url).hostname or ""
    if host == "localhost":
        return False
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return True
    return False


def _bucket_endpoint(s3_url: str, bucket: str) -> str:
    # obstore expects the bucket inside a virtual-hosted endpoint's host name.
    parts = urlsplit(s3_url)
    return f"{parts.scheme}://{bucket}.{parts.netloc}{parts.path}"


def _encryption(values: Mapping[str, str]) -> tuple[str | None, str | None, str | None]:
    """(server_side_encryption, kms_key_id, sse_customer_key_base64) as Velero's plugin combines them."""
    sse = values.get("serverSideEncryption") or None
    kms_key_id = values.get("kmsKeyId") or None
    key_file = values.get("customerKeyEncryptionFile") or None
    key_secret = values.get("customerKeyEncryptionSecret") or None
    if sum(1 for value in (kms_key_id, key_file, key_secret) if value) > 1:
        raise StorageConfigError(
            "you can only use one of: kmsKeyId, customerKeyEncryptionFile, or customerKeyEncryptionSecret"
        )
    if key_secret:
        raise StorageConfigError(
            "customerKeyEncryptionSecret is not supported",
            hint="mount the 32-byte key from its Secret as a file and set customerKeyEncryptionFile to its path",
        )
    if kms_key_id:
        return (sse if sse in ("aws:kms", "aws:kms:dsse") else "aws:kms"), kms_key_id, None
    if key_file:
        try:
            key = Path(key_file).read_bytes()
        except OSError as exc:
            raise StorageConfigError(
                f"could not read customerKeyEncryptionFile {key_file!r}: {exc.strerror}"
            ) from exc
        if len(key) != _SSE_C_KEY_BYTES:
            raise StorageConfigError(
                f"contents of customerKeyEncryptionFile ({key_file}) are not exactly {_SSE_C_KEY_BYTES} bytes"
            )
        return "sse-c", None, base64.b64encode(key).decode("ascii")
    return sse, None, None


def _parse_tags(tagging: str) -> dict[str, str]:
    if not tagging:
        return {}
    try:
        pairs = parse_qsl(tagging, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        raise StorageConfigError(
            "invalid tagging: expected key=value pairs separated by '&' (key1=value1&key2=value2)"
        ) from None
    if len(pairs) > _MAX_TAGS:
        raise StorageConfigError(f"invalid tagging: S3 allows at most {_MAX_TAGS} tags per object")
    tags: dict[str, str] = {}
    for key, value in pairs:
        if not key or len(key) > 128 or len(value) > 256:
            raise StorageConfigError(
                f"invalid tagging: tag {key!r} needs a key of 1 to 128 characters and a value of at most 256"
            )
        if key in tags:
            raise StorageConfigError(f"invalid tagging: tag {key!r} appears twice")
        tags[key] = value
    return tags
