"""Google Cloud Storage through Google's official client (the JSON API), as Velero's gcp plugin does.

A BackupStorageLocation with provider ``gcp`` configures this store with the
same ``config`` keys as velero-plugin-for-gcp, so existing locations and the
OADP guide's examples work verbatim:

==================  ==========================================================
``kmsKeyName``      every object is written with this Cloud KMS key
                    (``projects/P/locations/L/keyRings/R/cryptoKeys/K``)
``serviceAccount``  the service account that signs download URLs through
                    the IAM API when the credentials cannot sign themselves
                    (workload identity); not needed with a JSON key
``credentialsFile`` the credentials JSON file, when not passed directly
``storeEndpoint``   another JSON-API endpoint: Private Service Connect
                    (``storage-example.p.googleapis.com``, as in the plugin's
                    documentation), a proxy, or an emulator (``http://...``)
``universeDomain``  a universe other than googleapis.com
==================  ==========================================================

obstore is not used here: its GCS store speaks only the XML API, which no
emulator we can run implements, while Velero's plugin and ``storeEndpoint``
speak the JSON API. google-cloud-storage is synchronous, so every call runs
in a small pool of worker threads owned by the store and the event loop never
blocks; a streamed upload runs in a second, separate pool because its thread
waits for the caller's async iterator (which may itself read from this store).

Credentials: a service-account key (``type: service_account``), workload
identity federation (``external_account``) or a user's refresh token
(``authorized_user``), parsed strictly by ``parse_gcp_credentials`` without
ever echoing a value. Without credentials Google's default chain (ADC:
``GOOGLE_APPLICATION_CREDENTIALS``, gcloud's file, the metadata server) is
consulted on first use, as Velero does; with a plain-HTTP ``storeEndpoint``
(an emulator: Google never serves plain HTTP, and a token must never travel
in clear text) and no credentials, requests are anonymous.

Retries are google-cloud-storage's own policy (connection errors, timeouts,
408, 429 and 5xx), with its delays, attempts and deadline taken from
``StoreOptions``; uploads are retried too, since an upload here always
replaces the object with the same bytes.
"""

from __future__ import annotations

import asyncio
import builtins
import concurrent.futures
import functools
import io
import json
import os
import re
import ssl
import threading
import warnings
import weakref
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
import requests.adapters

# google.api_core warns (ImportWarning) when grpcio-status is missing; this
# store speaks HTTP/JSON only and never needs it, and the warning would be an
# error wherever warnings are (as in the test suite).
with warnings.catch_warnings():
    warnings.simplefilter("ignore", ImportWarning)
    import google.auth
    import google.auth.transport.requests
    from google.api_core import exceptions as api_exceptions
    from google.api_core.retry import Retry
    from google.auth import exceptions as auth_exceptions
    from google.auth.credentials import AnonymousCredentials, Credentials, Signing
    from google.auth.transport.requests import AuthorizedSession
    from google.cloud import storage  # type: ignore[import-untyped]
    from google.cloud.storage import exceptions as storage_exceptions  # type: ignore[import-untyped]
    from google.cloud.storage.retry import _should_retry  # type: ignore[import-untyped]

from strongroom.errors import ObjectNotFound, StorageConfigError, StorageError
from strongroom.model.proxy import environment_proxy
from strongroom.storage._obstore import ProviderDetail, StoreOptions
from strongroom.storage.base import ObjectInfo, ObjectStore, PutData, normalize_prefix, validate_key
from strongroom.storage.config import check_config_keys
from strongroom.storage.tls import ca_certificate

__all__ = [
    "VELERO_GCP_CONFIG_KEYS",
    "GcpCredentials",
    "GcsObjectStore",
    "GcsSettings",
    "load_gcp_credentials_file",
    "parse_gcp_credentials",
]

# velero-plugin-for-gcp's ValidateObjectStoreConfigKeys, plus what the Velero
# server adds to every location's config.
VELERO_GCP_CONFIG_KEYS = (
    "kmsKeyName",
    "serviceAccount",
    "credentialsFile",
    "storeEndpoint",
    "universeDomain",
    "bucket",
    "prefix",
    "caCert",
    # Read by the volume code (restic repository location), not by this store.
    "resticRepoPrefix",
)
SCOPES = ("https://www.googleapis.com/auth/devstorage.read_write",)
# Go's google.JWTConfigFromJSON uses this when a key has no token_uri.
DEFAULT_TOKEN_URI = "https://oauth2.googleapis.com/token"
_CREDENTIAL_TYPES = ("service_account", "external_account", "authorized_user")
_REQUIRED: Mapping[str, tuple[str, ...]] = {
    "service_account": ("client_email", "private_key"),
    "external_account": ("audience", "subject_token_type", "token_url", "credential_source"),
    "authorized_user": ("client_id", "client_secret", "refresh_token"),
}
_TITLES = {
    "service_account": "service-account key",
    "external_account": "external-account credentials",
    "authorized_user": "authorized-user credentials",
}
_SECRET_FIELDS = ("private_key", "private_key_id", "client_secret", "refresh_token")
_KMS_KEY = re.compile(r"projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+")
_HOST = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:\d{1,5})?")
_JSON_API_PATHS = ("", "/", "/storage/v1", "/storage/v1/")

# GCS lists at most 1,000 objects per page; resumable uploads go in
# multiples of 256 KiB; ranged reads of a streamed download are this large.
_PAGE = 1000
_UPLOAD_QUANTUM = 256 * 1024
_RANGE_SIZE = 8 * 1024 * 1024
# Objects up to this size go up in one multipart request (google-cloud-storage's limit).
_SINGLE_REQUEST_MAX = 8 * 1024 * 1024
# Worker threads of one store for ordinary calls, and for streamed uploads.
_WORKERS = 16
_STREAM_WORKERS = 8
# How often a streamed upload's thread checks whether its caller went away.
_POLL_SECONDS = 0.5
_REDACTED = "<redacted>"

T = TypeVar("T")


@dataclass(frozen=True, repr=False, eq=False)
class GcpCredentials:
    """Google credentials from a JSON file; printing them never shows a secret."""

    kind: str
    info: Mapping[str, Any]
    source: str = "the credentials file"

    @property
    def client_email(self) -> str | None:
        value = self.info.get("client_email")
        return value if isinstance(value, str) and value else None

    @property
    def project_id(self) -> str | None:
        value = self.info.get("project_id") or self.info.get("quota_project_id")
        return value if isinstance(value, str) and value else None

    @property
    def can_sign(self) -> bool:
        """Whether download URLs can be signed locally (a service-account key holds a private key)."""
        return self.kind == "service_account"

    @property
    def secret_values(self) -> tuple[str, ...]:
        """Every value that must be blanked if it ever shows up in a provider's message."""
        return tuple(
            value for name in _SECRET_FIELDS if isinstance(value := self.info.get(name), str) and value
        )

    def __repr__(self) -> str:
        return (
            f"GcpCredentials(kind={self.kind!r}, client_email={self.client_email!r}, "
            f"project_id={self.project_id!r}, secrets=<hidden>)"
        )

    __str__ = __repr__


def parse_gcp_credentials(content: str | bytes, source: str = "the credentials file") -> GcpCredentials:
    """The credentials in a Google JSON credentials file; StorageConfigError says what is wrong.

    Messages name missing fields and the position of a JSON syntax error,
    never a value. ``source`` names the file (a path, or a Secret and its key).
    """
    if isinstance(content, bytes):
        try:
            content = content.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise StorageConfigError(f"{source}: not UTF-8 text (byte {exc.start})") from None
    content = content.removeprefix("\ufeff")
    if not content.strip():
        raise StorageConfigError(
            f"{source}: empty; expected a JSON key",
            hint="put the service account's JSON key file (gcloud iam service-accounts keys create) in it",
        )
    try:
        document = json.loads(content)
    except json.JSONDecodeError as exc:
        # exc.msg says what is wrong where, never the document's text.
        raise StorageConfigError(
            f"{source}: not a JSON service-account key (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None
    if not isinstance(document, dict):
        raise StorageConfigError(
            f"{source}: not a JSON service-account key (expected an object, found {_json_type(document)})"
        )
    kind = document.get("type")
    if not isinstance(kind, str) or not kind:
        raise StorageConfigError(
            f'{source}: the JSON key has no "type" (service_account, external_account or authorized_user)',
            hint="use the JSON key file of a service account as it was downloaded",
        )
    if kind not in _CREDENTIAL_TYPES:
        raise StorageConfigError(
            f"{source}: unsupported credentials type {kind[:64]!r}; "
            "expected service_account, external_account or authorized_user"
        )
    title = _TITLES[kind]
    missing = [name for name in _REQUIRED[kind] if not document.get(name)]
    if missing:
        verb = "has" if kind == "service_account" else "have"
        raise StorageConfigError(f"{source}: the {title} {verb} no {', '.join(missing)}")
    not_text = sorted(
        name
        for name, value in document.items()
        if name in (*_REQUIRED[kind], *_SECRET_FIELDS, "project_id", "token_uri", "universe_domain")
        and name != "credential_source"
        and not isinstance(value, str)
    )
    if not_text:
        raise StorageConfigError(f"{source}: in the {title}, {', '.join(not_text)} must be text")
    if kind == "external_account" and not isinstance(document["credential_source"], dict):
        raise StorageConfigError(f"{source}: in the {title}, credential_source must be an object")
    if kind == "service_account":
        key = document["private_key"]
        if "-----BEGIN" not in key or "PRIVATE KEY-----" not in key:
            raise StorageConfigError(
                f"{source}: private_key of the {title} is not a PEM private key",
                hint="use the JSON key file as downloaded; its private_key starts with -----BEGIN PRIVATE KEY-----",
            )
        if "@" not in document["client_email"]:
            raise StorageConfigError(f"{source}: client_email of the {title} is not an e-mail address")
    return GcpCredentials(kind=kind, info=MappingProxyType(dict(document)), source=source)


def load_gcp_credentials_file(path: str | Path) -> GcpCredentials:
    """Read and parse the JSON credentials file at ``path`` (Velero's ``credentialsFile``)."""
    try:
        content = Path(path).read_bytes()
    except OSError as exc:
        raise StorageConfigError(f"cannot read the credentials file {str(path)!r}: {exc.strerror}") from exc
    return parse_gcp_credentials(content, str(path))


@dataclass(frozen=True)
class GcsSettings:
    """Where and how to reach one bucket: Velero's gcp location config, validated."""

    bucket: str
    prefix: str = ""
    endpoint: str | None = None
    kms_key_name: str | None = None
    service_account: str | None = None
    universe_domain: str | None = None
    ca_cert_pem: str | None = field(default=None, repr=False)
    credentials: GcpCredentials | None = None

    @classmethod
    def from_velero_config(
        cls,
        bucket: str,
        prefix: str = "",
        config: Mapping[str, str] | None = None,
        credentials: GcpCredentials | str | bytes | None = None,
    ) -> GcsSettings:
        """Translate a BackupStorageLocation's bucket, prefix and ``config`` (Velero's gcp keys).

        ``credentials`` is parsed credentials or the JSON file's content;
        without it, ``config.credentialsFile`` is read if set, else Google's
        default credentials are looked up on first use.
        """
        values = dict(config or {})
        check_config_keys(values, VELERO_GCP_CONFIG_KEYS)
        endpoint = _parse_endpoint(values.get("storeEndpoint", ""))
        kms_key_name = values.get("kmsKeyName") or None
        if kms_key_name is not None and not _KMS_KEY.fullmatch(kms_key_name):
            raise StorageConfigError(
                f"invalid kmsKeyName {kms_key_name!r}",
                hint="use the key's resource name: projects/PROJECT/locations/LOCATION/keyRings/RING/cryptoKeys/KEY",
            )
        service_account = values.get("serviceAccount") or None
        if service_account is not None and "@" not in service_account:
            raise StorageConfigError(
                f"invalid serviceAccount {service_account!r}: expected the service account's e-mail address",
                hint="for example velero@my-project.iam.gserviceaccount.com",
            )
        universe_domain = values.get("universeDomain") or None
        if universe_domain is not None and (not _HOST.fullmatch(universe_domain) or ":" in universe_domain):
            raise StorageConfigError(
                f"invalid universeDomain {universe_domain!r}: expected a domain name such as googleapis.com"
            )
        if isinstance(credentials, str | bytes):
            credentials = parse_gcp_credentials(credentials)
        elif credentials is None and values.get("credentialsFile"):
            credentials = load_gcp_credentials_file(values["credentialsFile"])
        ca_pem = ca_certificate(values["caCert"]) if values.get("caCert") else None
        return cls(
            bucket=bucket,
            prefix=prefix.strip("/"),
            endpoint=endpoint,
            kms_key_name=kms_key_name,
            service_account=service_account,
            universe_domain=universe_domain,
            ca_cert_pem=ca_pem,
            credentials=credentials,
        )

    @property
    def anonymous(self) -> bool:
        """Whether requests go without credentials: an emulator at a plain-HTTP endpoint, no credentials given."""
        return self.credentials is None and (self.endpoint or "").startswith("http://")

    @property
    def location(self) -> str:
        """The bucket and prefix as a URL, plus the endpoint when it is not Google's."""
        where = f"gs://{self.bucket}/{self.prefix}" if self.prefix else f"gs://{self.bucket}"
        return f"{where} at {self.endpoint}" if self.endpoint else where

    def secret_values(self) -> tuple[str, ...]:
        return self.credentials.secret_values if self.credentials else ()


def _parse_endpoint(value: str) -> str | None:
    """``storeEndpoint`` as the client's API endpoint (scheme and host), or None for Google's."""
    if not value:
        return None
    # The plugin's documentation gives a bare host name (storage-example.p.googleapis.com).
    url = value if "://" in value else f"https://{value}"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise StorageConfigError(
            f"invalid storeEndpoint {value!r}: it must be a host name or a URL starting with http:// or https://",
            hint="for example storage-example.p.googleapis.com or https://storage.example.com",
        )
    if parts.username or parts.password:
        raise StorageConfigError("invalid storeEndpoint: it must not contain a user name or password")
    if parts.query or parts.fragment:
        raise StorageConfigError(f"invalid storeEndpoint {value!r}: it must not have a query or fragment")
    try:
        parts.port  # noqa: B018 (validates the port)
    except ValueError:
        raise StorageConfigError(f"invalid storeEndpoint {value!r}: its port is not a number") from None
    if parts.path not in _JSON_API_PATHS:
        raise StorageConfigError(
            f"invalid storeEndpoint {value!r}: only the JSON API's path /storage/v1 may follow the host"
        )
    return f"{parts.scheme}://{parts.netloc}"


class GcsObjectStore(ObjectStore):
    """A bucket (and prefix) of Google Cloud Storage, or of an emulator speaking its JSON API."""

    def __init__(self, settings: GcsSettings, options: StoreOptions | None = None) -> None:
        options = options or StoreOptions()
        self.settings = settings
        self.options = options
        self._root = settings.prefix.strip("/")
        self._secrets = tuple(secret for secret in settings.secret_values() if secret)
        # GCS wants resumable chunks in multiples of 256 KiB.
        self._chunk_size = max(_UPLOAD_QUANTUM, options.part_size // _UPLOAD_QUANTUM * _UPLOAD_QUANTUM)
        self._range_size = max(options.stream_chunk_size, _RANGE_SIZE)
        self._timeout = (options.connect_timeout.total_seconds(), options.read_timeout.total_seconds())
        self._executor = concurrent.futures.ThreadPoolExecutor(_WORKERS, thread_name_prefix="strongroom-gcs")
        self._stream_executor = concurrent.futures.ThreadPoolExecutor(
            _STREAM_WORKERS, thread_name_prefix="strongroom-gcs-upload"
        )
        self._lock = threading.Lock()
        self._client: Any = None
        self._credentials: Credentials | None = None
        # Nothing is sent (not even to find credentials) before the first operation.
        self._closed = weakref.finalize(self, _release, self._executor, self._stream_executor, [])

    @property
    def location(self) -> str:
        return self.settings.location

    # -- the client ---------------------------------------------------------------------------

    def _get_client(self) -> Any:
        """The google-cloud-storage client, made on first use in a worker thread (ADC may ask the network)."""
        with self._lock:
            if self._client is None:
                self._client, self._credentials, session = self._make_client()
                self._closed.detach()
                self._closed = weakref.finalize(
                    self, _release, self._executor, self._stream_executor, [session]
                )
            return self._client

    def _make_client(self) -> tuple[Any, Credentials, requests.Session]:
        settings = self.settings
        credentials: Credentials
        project: str | None = None
        try:
            if settings.credentials is not None:
                credentials = _google_credentials(settings.credentials)
                project = settings.credentials.project_id
            elif settings.anonymous:
                credentials = AnonymousCredentials()  # type: ignore[no-untyped-call]
            else:
                credentials, project = google.auth.default(scopes=list(SCOPES))
        except auth_exceptions.DefaultCredentialsError as exc:
            where = settings.credentials.source if settings.credentials else "the environment"
            raise StorageConfigError(
                f"cannot use the Google credentials from {where} for {self.location}: {self._first_line(exc)}",
                hint=(
                    "give the location a credential (a service account's JSON key)"
                    if settings.credentials is None
                    else "use the JSON key file as it was downloaded"
                ),
            ) from None
        except (ValueError, TypeError) as exc:
            where = settings.credentials.source if settings.credentials else "the environment"
            raise StorageConfigError(
                f"cannot use the Google credentials from {where} for {self.location}: {self._first_line(exc)}",
                hint="the private key may be damaged: use the JSON key file as it was downloaded",
            ) from None
        session = AuthorizedSession(credentials)  # type: ignore[no-untyped-call]
        adapter = _Adapter(_WORKERS + _STREAM_WORKERS, settings.ca_cert_pem)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        # The proxy is decided once, as Go programs decide it (NO_PROXY CIDRs included); left to
        # requests, every request would look it up again and read ~/.netrc. The CA bundle the
        # environment names is still honoured, as requests would.
        session.trust_env = False
        session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        endpoint = settings.endpoint or f"https://storage.{settings.universe_domain or 'googleapis.com'}"
        proxy = environment_proxy(endpoint)
        if proxy:
            session.proxies = {endpoint.split(":", 1)[0]: proxy}
        session.hooks["response"].append(_read_error_body)
        client_options: dict[str, str] = {}
        if settings.endpoint:
            client_options["api_endpoint"] = settings.endpoint
        if settings.universe_domain:
            client_options["universe_domain"] = settings.universe_domain
        try:
            client = storage.Client(
                project=project,
                credentials=credentials,
                _http=session,
                client_options=client_options or None,
            )
            # 3.x fetches each bucket's metadata in a new background thread per
            # miss, for tracing: extra requests (needing storage.buckets.get)
            # outside the store's bounded threads. Tracing is not used here.
            client._bucket_metadata_cache = None
        except ValueError as exc:
            session.close()  # type: ignore[no-untyped-call]
            raise StorageConfigError(
                f"invalid GCS configuration for {self.location}: {self._first_line(exc)}"
            ) from None
        return client, credentials, session

    def _bucket(self) -> Any:
        return self._get_client().bucket(self.settings.bucket)

    def _blob(self, name: str, generation: int | None = None, *, upload: bool = False) -> Any:
        # A chunk size makes uploads resumable in chunks of that size, but would
        # also turn a download into a series of range requests.
        return self._bucket().blob(
            name,
            chunk_size=self._chunk_size if upload else None,
            kms_key_name=self.settings.kms_key_name,
            generation=generation,
        )

    def _retry(self, source_failure: builtins.list[BaseException] | None = None) -> Retry:
        """google-cloud-storage's retry policy, limited by StoreOptions (a fresh counter per call)."""
        attempts = [0]
        limit = self.options.max_retries

        def predicate(exc: Exception) -> bool:
            if source_failure and exc in source_failure:
                return False
            attempts[0] += 1
            return attempts[0] <= limit and bool(_should_retry(exc))

        return Retry(
            predicate=predicate,
            initial=self.options.init_backoff.total_seconds(),
            maximum=self.options.max_backoff.total_seconds(),
            multiplier=2.0,
            timeout=self.options.retry_timeout.total_seconds(),
        )

    async def _run(self, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(call, *args, **kwargs))

    def _name(self, key: str) -> str:
        return f"{self._root}/{key}" if self._root else key

    def _directory(self, directory: str) -> str:
        """The listing prefix of a directory ("" is the store's root)."""
        full = self._name(directory) if directory else self._root
        return f"{full}/" if full else ""

    def _key(self, name: str) -> str:
        return name[len(self._root) + 1 :] if self._root else name

    # -- operations ---------------------------------------------------------------------------

    async def put(self, key: str, data: PutData, *, content_type: str | None = None) -> None:
        name = self._name(validate_key(key))
        if isinstance(data, bytes | bytearray | memoryview):
            payload = bytes(data)
            await self._upload_bytes(key, name, payload, content_type)
        elif isinstance(data, os.PathLike):
            path = Path(os.fspath(data))
            # A missing source file is the caller's mistake, reported as the
            # ordinary OSError before any request is made.
            path.stat()
            try:
                await self._run(self._upload_file_sync, name, path, content_type)
            except _PROVIDER_ERRORS as exc:
                raise self._translate(exc, "write", key, missing="bucket") from self._cause(exc)
        elif isinstance(data, AsyncIterable):
            await self._upload_stream(key, name, data, content_type)
        else:
            raise TypeError(
                f"put() takes bytes, an async iterable of bytes or a path object, not {type(data).__name__}"
            )

    async def _upload_bytes(self, key: str, name: str, payload: bytes, content_type: str | None) -> None:
        try:
            await self._run(self._upload_bytes_sync, name, payload, content_type)
        except _PROVIDER_ERRORS as exc:
            raise self._translate(exc, "write", key, missing="bucket") from self._cause(exc)

    def _upload_bytes_sync(self, name: str, payload: bytes, content_type: str | None) -> None:
        # Up to 8 MiB in one request; larger payloads go up resumably in chunks.
        self._blob(name, upload=True).upload_from_file(
            io.BytesIO(payload),
            size=len(payload),
            content_type=content_type,
            timeout=self._timeout,
            retry=self._retry(),
        )

    def _upload_file_sync(self, name: str, path: Path, content_type: str | None) -> None:
        # A file's size is known: the client's own chunking (100 MiB requests) serves it best;
        # the store's smaller chunks exist to bound the memory a stream of unknown length takes.
        with path.open("rb") as source:
            self._blob(name).upload_from_file(
                source,
                size=os.fstat(source.fileno()).st_size,
                content_type=content_type,
                timeout=self._timeout,
                retry=self._retry(),
            )

    async def _upload_stream(
        self, key: str, name: str, data: AsyncIterable[bytes], content_type: str | None
    ) -> None:
        iterator = aiter(data)
        # Read ahead up to one chunk: a small stream (most of them) goes up in one request.
        head = bytearray()
        exhausted = False
        while len(head) <= self._chunk_size:
            try:
                chunk = await anext(iterator)
            except StopAsyncIteration:
                exhausted = True
                break
            head += _as_bytes(chunk)
        if exhausted:
            await self._upload_bytes(key, name, bytes(head), content_type)
            return
        reader = _StreamReader(bytes(head), iterator, asyncio.get_running_loop())
        del head
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(
                self._stream_executor,
                functools.partial(self._upload_stream_sync, name, reader, content_type),
            )
        except BaseException as exc:
            # Whatever happened, the upload's thread must stop asking for data.
            reader.abort()
            if reader.failure is not None and (exc is reader.failure or reader.failure in _chain(exc)):
                # The caller's own iterator failed: its exception, unchanged. The
                # resumable session was never finalized, so nothing is visible.
                raise reader.failure from None
            if isinstance(exc, _PROVIDER_ERRORS):
                raise self._translate(exc, "write", key, missing="bucket") from self._cause(exc)
            raise

    def _upload_stream_sync(self, name: str, reader: _StreamReader, content_type: str | None) -> None:
        failures: builtins.list[BaseException] = reader.failures
        self._blob(name, upload=True).upload_from_file(
            reader,
            size=None,
            content_type=content_type,
            timeout=self._timeout,
            retry=self._retry(failures),
        )

    async def get(self, key: str) -> bytes:
        name = self._name(validate_key(key))
        try:
            data: bytes = await self._run(
                lambda: self._blob(name).download_as_bytes(
                    raw_download=True, timeout=self._timeout, retry=self._retry()
                )
            )
        except api_exceptions.NotFound as exc:
            raise await self._not_found(exc, "read", key) from self._cause(exc)
        except _PROVIDER_ERRORS as exc:
            raise self._translate(exc, "read", key) from self._cause(exc)
        return data

    async def get_stream(self, key: str) -> AsyncIterator[bytes]:
        name = self._name(validate_key(key))
        try:
            blob = await self._run(self._metadata, name)
        except api_exceptions.NotFound as exc:
            raise await self._not_found(exc, "read", key) from self._cause(exc)
        except _PROVIDER_ERRORS as exc:
            raise self._translate(exc, "read", key) from self._cause(exc)
        return self._chunks(key, name, int(blob.size or 0), int(blob.generation))

    def _metadata(self, name: str) -> Any:
        """The object's blob with its metadata loaded (a request: call it in a worker thread)."""
        blob = self._blob(name)
        blob.reload(timeout=self._timeout, retry=self._retry())
        return blob

    async def _chunks(self, key: str, name: str, size: int, generation: int) -> AsyncIterator[bytes]:
        # Ranged reads of the generation seen at the start: a replaced object
        # fails the read instead of mixing two versions.
        pinned = await self._run(self._blob, name, generation)
        step = self.options.stream_chunk_size
        position = 0
        while position < size:
            end = min(position + self._range_size, size) - 1
            try:
                data: bytes = await self._run(
                    pinned.download_as_bytes,
                    start=position,
                    end=end,
                    raw_download=True,
                    checksum=None,
                    timeout=self._timeout,
                    retry=self._retry(),
                )
            except api_exceptions.NotFound as exc:
                raise StorageError(
                    f"cannot read {key!r} in {self.location}: the object was replaced or deleted while it was read"
                ) from self._cause(exc)
            except _PROVIDER_ERRORS as exc:
                raise self._translate(exc, "read", key) from self._cause(exc)
            if not data:
                raise StorageError(f"cannot read {key!r} in {self.location}: the object ended early")
            for start in range(0, len(data), step):
                yield data[start : start + step]
            position += len(data)

    async def head(self, key: str) -> ObjectInfo | None:
        name = self._name(validate_key(key))
        try:
            blob = await self._run(self._metadata, name)
        except api_exceptions.NotFound as exc:
            error = await self._not_found(exc, "inspect", key)
            if isinstance(error, ObjectNotFound):
                return None
            raise error from self._cause(exc)
        except _PROVIDER_ERRORS as exc:
            raise self._translate(exc, "inspect", key) from self._cause(exc)
        return self._info(blob)

    async def list(self, prefix: str = "", *, delimiter: str | None = None) -> AsyncIterator[ObjectInfo]:
        directory = normalize_prefix(prefix)
        if delimiter is not None and delimiter != "/":
            raise StorageConfigError(f"unsupported delimiter {delimiter!r}: only '/' is supported")
        pages: Any = None
        while True:
            try:
                if pages is None:
                    pages = await self._run(lambda: self._listing(directory, delimiter).pages)
                page = await self._run(_next_page, pages)
            except _PROVIDER_ERRORS as exc:
                raise self._translate(exc, "list", directory or None, missing="bucket") from self._cause(exc)
            if page is None:
                return
            for blob in page:
                # Folder placeholders ("dir/") made by consoles are not objects.
                if not blob.name.endswith("/"):
                    yield self._info(blob)

    def _listing(self, directory: str, delimiter: str | None) -> Any:
        """The pages of a listing; each ``next`` fetches one (call it in a worker thread)."""
        return self._get_client().list_blobs(
            self.settings.bucket,
            prefix=self._directory(directory) or None,
            delimiter=delimiter,
            page_size=_PAGE,
            timeout=self._timeout,
            retry=self._retry(),
        )

    async def list_prefixes(self, prefix: str = "") -> builtins.list[str]:
        directory = normalize_prefix(prefix)

        def collect() -> builtins.list[str]:
            listing = self._listing(directory, "/")
            for _page in listing.pages:
                pass
            return sorted(listing.prefixes)

        try:
            names = await self._run(collect)
        except _PROVIDER_ERRORS as exc:
            raise self._translate(exc, "list", directory or None, missing="bucket") from self._cause(exc)
        return [f"{self._key(name).rstrip('/')}/" for name in names]

    async def delete(self, key: str) -> None:
        name = self._name(validate_key(key))
        try:
            await self._run(lambda: self._blob(name).delete(timeout=self._timeout, retry=self._retry()))
        except api_exceptions.NotFound as exc:
            error = await self._not_found(exc, "delete", key)
            if not isinstance(error, ObjectNotFound):
                raise error from self._cause(exc)
        except _PROVIDER_ERRORS as exc:
            raise self._translate(exc, "delete", key) from self._cause(exc)

    async def delete_prefix(self, prefix: str) -> int:
        directory = normalize_prefix(prefix)
        if not directory:
            raise StorageConfigError(
                "refusing to delete with an empty prefix: that would empty the whole store"
            )
        # Collect first: deleting while a listing walks the same pages can skip entries.
        keys = [info.key async for info in self.list(directory)]
        slots = asyncio.Semaphore(_WORKERS)

        async def remove(key: str) -> None:
            async with slots:
                await self.delete(key)

        for start in range(0, len(keys), _PAGE):
            await asyncio.gather(*(remove(key) for key in keys[start : start + _PAGE]))
        return len(keys)

    async def download_url(self, key: str, expires_in: timedelta) -> str:
        name = self._name(validate_key(key))

        def sign() -> str:
            self._get_client()
            credentials = self._credentials
            options: dict[str, Any] = {
                "version": "v4",
                "expiration": expires_in,
                "method": "GET",
            }
            if self.settings.endpoint:
                options["api_access_endpoint"] = self.settings.endpoint
            if isinstance(credentials, Signing) and not isinstance(credentials, AnonymousCredentials):
                # Signed locally with the key's private key: nothing is sent.
                options["credentials"] = credentials
            elif self.settings.service_account and credentials is not None and not self.settings.anonymous:
                # Workload identity: the IAM API signs for the named service account, as in Velero.
                if not credentials.valid:
                    credentials.refresh(google.auth.transport.requests.Request())  # type: ignore[no-untyped-call]
                options["service_account_email"] = self.settings.service_account
                options["access_token"] = credentials.token
            else:
                raise StorageConfigError(
                    f"{self.location} cannot hand out download URLs: its credentials cannot sign them",
                    hint=(
                        "use a service account's JSON key as the location's credential, or set "
                        "config.serviceAccount to the service account that should sign (workload identity)"
                    ),
                )
            url: str = self._blob(name).generate_signed_url(**options)
            return url

        try:
            return await self._run(sign)
        except StorageConfigError:
            raise
        except _PROVIDER_ERRORS as exc:
            raise self._translate(exc, "sign", key) from self._cause(exc)

    # -- results and errors ---------------------------------------------------------------------

    def _info(self, blob: Any) -> ObjectInfo:
        updated: datetime | None = blob.updated
        if updated is None:
            updated = datetime.now(UTC)
        elif updated.tzinfo is None:
            updated = updated.replace(tzinfo=UTC)
        return ObjectInfo(
            key=self._key(blob.name), size=int(blob.size or 0), etag=blob.etag, last_modified=updated
        )

    async def _not_found(self, exc: api_exceptions.NotFound, action: str, key: str) -> StorageError:
        """ObjectNotFound, or the error for a missing bucket: GCS says which; emulators may not."""
        text = f"{exc.message} {exc.errors}"
        if "No such object" in text:
            return ObjectNotFound(f"no object {key!r} in {self.location}")
        if "bucket does not exist" not in text.lower() and not await self._bucket_missing():
            return ObjectNotFound(f"no object {key!r} in {self.location}")
        return self._translate(exc, action, key, missing="bucket")

    async def _bucket_missing(self) -> bool:
        def probe() -> bool:
            listing = self._get_client().list_blobs(
                self.settings.bucket, max_results=1, timeout=self._timeout, retry=self._retry()
            )
            try:
                _next_page(listing.pages)
            except api_exceptions.NotFound:
                return True
            except _PROVIDER_ERRORS:
                # Not allowed to list, or unreachable: the object's 404 stands.
                return False
            return False

        return await self._run(probe)

    def _translate(
        self, exc: BaseException, action: str, key: str | None, *, missing: str = "object"
    ) -> StorageError:
        """Our exception for google-cloud-storage's ``exc``; ``missing`` says what a 404 means here."""
        if isinstance(exc, StorageError):
            return exc
        detail = self._detail(exc)
        target = f"{key!r} in {self.location}" if key else self.location
        if isinstance(exc, api_exceptions.NotFound):
            if missing == "object":
                return ObjectNotFound(f"no object {key!r} in {self.location}")
            return StorageError(
                f"cannot {action} {target}: the bucket {self.settings.bucket!r} does not exist ({detail})",
                hint="create it, or correct the bucket name of the backup storage location",
            )
        if isinstance(
            exc, api_exceptions.Unauthorized | api_exceptions.Forbidden | auth_exceptions.RefreshError
        ):
            return StorageError(
                f"cannot {action} {target}: {detail}",
                hint=(
                    "check the credentials (the service account's JSON key in the location's credential) "
                    "and that the service account may read and write objects in the bucket "
                    "(for example roles/storage.objectAdmin)"
                ),
            )
        if isinstance(exc, auth_exceptions.DefaultCredentialsError):
            return StorageConfigError(f"cannot {action} {target}: {detail}")
        if isinstance(exc, ValueError) and not isinstance(exc, requests.RequestException):
            return StorageConfigError(f"cannot {action} {target}: {detail}")
        hint = None
        text = f"{detail} {exc!r}".lower()
        if "certificate" in text or isinstance(exc, requests.exceptions.SSLError):
            hint = "the server's TLS certificate is not trusted: give its CA certificate in caCert"
        elif isinstance(exc, requests.ConnectionError | requests.Timeout | auth_exceptions.TransportError):
            hint = "check that the object store's address (storeEndpoint) is right and reachable from here"
        return StorageError(f"cannot {action} {target}: {detail}", hint=hint)

    def _detail(self, exc: BaseException) -> str:
        """The useful part of a provider message, without the request URL or any credential."""
        if isinstance(exc, api_exceptions.GoogleAPICallError):
            message = (exc.message or "").strip().splitlines()
            reason = _REQUEST_PREFIX.sub("", message[0]).rstrip(": ") if message else ""
            reason = _json_error_message(reason) or reason
            if not reason or reason == (exc.reason or ""):
                reason = reason or type(exc).__name__
            text = f"{reason} (HTTP {exc.code})" if exc.code else reason
        elif isinstance(exc, auth_exceptions.RefreshError):
            text = f"could not get an access token: {self._first_line(exc)}"
        else:
            text = self._first_line(exc)
        return self._redact(text)

    def _first_line(self, exc: BaseException) -> str:
        text = str(exc).strip()
        first = text.splitlines()[0] if text else type(exc).__name__
        if len(first) > 300:
            first = f"{first[:300]}..."
        return self._redact(first)

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, _REDACTED)
            # A PEM key may appear with its line breaks escaped.
            text = text.replace(secret.replace("\n", "\\n"), _REDACTED)
        return _BEARER.sub(r"\g<name><redacted>", text)

    def _cause(self, exc: BaseException) -> ProviderDetail:
        """What to chain to our error: the provider's full message (useful for debugging), redacted."""
        return ProviderDetail(self._redact(f"{type(exc).__name__}: {exc}"))


# "GET http://host/path?query: " before a media request's error message.
_REQUEST_PREFIX = re.compile(r"^[A-Z]+ https?://\S+: ")
_BEARER = re.compile(r"(?P<name>(?:Bearer|access_token[\"']?\s*[:=]\s*[\"']?)\s*)[A-Za-z0-9._~+/=-]{8,}")

# What google-cloud-storage and its transport raise.
_PROVIDER_ERRORS: tuple[type[Exception], ...] = (
    api_exceptions.GoogleAPIError,
    auth_exceptions.GoogleAuthError,
    storage_exceptions.InvalidResponse,
    storage_exceptions.DataCorruption,
    requests.RequestException,
    ValueError,
    OSError,
)


def _read_error_body(response: requests.Response, *args: Any, **kwargs: Any) -> None:
    """Read an error answer's (small) body at once, which hands its connection back to the pool.

    Downloads are streamed, and google-cloud-storage retries a failed one
    (a 503, say) without closing the failed response: its connection would
    stay open until the garbage collector finds it.
    """
    if response.status_code >= 400:
        response.content  # noqa: B018 (reading it is the point)


def _google_credentials(credentials: GcpCredentials) -> Credentials:
    """google-auth's credentials of the parsed type (sends nothing: tokens are fetched on first use)."""
    info = dict(credentials.info)
    scopes = list(SCOPES)
    if credentials.kind == "service_account":
        from google.oauth2 import service_account

        info.setdefault("token_uri", DEFAULT_TOKEN_URI)
        return service_account.Credentials.from_service_account_info(info, scopes=scopes)  # type: ignore[no-untyped-call,no-any-return]
    if credentials.kind == "authorized_user":
        from google.oauth2 import credentials as user_credentials

        return user_credentials.Credentials.from_authorized_user_info(info, scopes=scopes)  # type: ignore[no-untyped-call,no-any-return]
    # external_account, told apart as google-auth's own loader does (without its
    # project lookup, which would be a request).
    source = info.get("credential_source") or {}
    if info.get("subject_token_type") == _AWS_SUBJECT_TOKEN_TYPE:
        from google.auth import aws

        return aws.Credentials.from_info(info, scopes=scopes)  # type: ignore[no-untyped-call,no-any-return]
    if "executable" in source:
        from google.auth import pluggable

        return pluggable.Credentials.from_info(info, scopes=scopes)  # type: ignore[no-untyped-call,no-any-return]
    from google.auth import identity_pool

    return identity_pool.Credentials.from_info(info, scopes=scopes)  # type: ignore[no-untyped-call,no-any-return]


_AWS_SUBJECT_TOKEN_TYPE = "urn:ietf:params:aws:token-type:aws4_request"


class _Adapter(requests.adapters.HTTPAdapter):
    """A connection pool per host as large as the store's thread pools, trusting ``caCert`` too."""

    def __init__(self, connections: int, ca_cert_pem: str | None) -> None:
        self._ssl_context: ssl.SSLContext | None = None
        if ca_cert_pem:
            self._ssl_context = ssl.create_default_context()
            self._ssl_context.load_verify_locations(cadata=ca_cert_pem)
        super().__init__(pool_connections=4, pool_maxsize=connections)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        if self._ssl_context is not None:
            kwargs["ssl_context"] = self._ssl_context
        super().init_poolmanager(*args, **kwargs)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        # Through a proxy (the cluster's), the store's TLS is still checked against caCert.
        if self._ssl_context is not None:
            proxy_kwargs["ssl_context"] = self._ssl_context
        return super().proxy_manager_for(proxy, **proxy_kwargs)


class _StreamReader(io.RawIOBase):
    """A file for the upload's worker thread that pulls the caller's async chunks from the event loop.

    The resumable upload reads one chunk at a time and, to recover from a
    failed request, may seek back into the chunk it last read; so this keeps
    that much and nothing older. The first failure of the caller's iterator
    is kept and raised again on every later read.
    """

    def __init__(self, head: bytes, source: AsyncIterator[bytes], loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._source = source
        self._loop = loop
        self._window = b""  # what the last read returned, for seeking back
        self._window_start = 0
        self._pending = bytearray(head)
        self._position = 0
        self._done = False
        self._aborted = threading.Event()
        self.failures: builtins.list[BaseException] = []

    @property
    def failure(self) -> BaseException | None:
        return self.failures[0] if self.failures else None

    def abort(self) -> None:
        self._aborted.set()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_CUR:
            offset += self._position
        elif whence != io.SEEK_SET:
            raise OSError("a streamed upload cannot seek relative to its end")
        if not self._window_start <= offset <= self._position:
            raise OSError("a streamed upload can only seek back within its last chunk")
        # Unread window bytes go back in front of what is pending.
        self._pending[:0] = self._window[offset - self._window_start : self._position - self._window_start]
        self._position = offset
        return offset

    def read(self, size: int | None = -1) -> bytes:
        wanted = size if size is not None and size >= 0 else None
        while not self._done and (wanted is None or len(self._pending) < wanted):
            self._pending += self._pull()
        take = len(self._pending) if wanted is None else min(wanted, len(self._pending))
        data = bytes(self._pending[:take])
        del self._pending[:take]
        self._window_start, self._window = self._position, data
        self._position += len(data)
        return data

    def _pull(self) -> bytes:
        if self.failures:
            raise self.failures[0]
        future = asyncio.run_coroutine_threadsafe(_next_chunk(self._source), self._loop)
        while True:
            if self._aborted.is_set() or self._loop.is_closed():
                future.cancel()
                raise _Aborted("the upload was abandoned")
            try:
                chunk = future.result(timeout=_POLL_SECONDS)
            except concurrent.futures.TimeoutError:
                continue
            except BaseException as exc:
                self.failures.append(exc)
                raise
            break
        if chunk is None:
            self._done = True
            return b""
        return chunk


class _Aborted(Exception):
    """Ends an upload whose caller was cancelled."""


async def _next_chunk(source: AsyncIterator[bytes]) -> bytes | None:
    try:
        return _as_bytes(await anext(source))
    except StopAsyncIteration:
        return None


def _as_bytes(chunk: object) -> bytes:
    if isinstance(chunk, bytes):
        return chunk
    if isinstance(chunk, bytearray | memoryview):
        return bytes(chunk)
    raise TypeError(f"an upload stream must yield bytes, not {type(chunk).__name__}")


def _next_page(pages: Any) -> builtins.list[Any] | None:
    """The next page of a listing's blobs, or None at its end (makes a request: run it in a thread)."""
    page = next(pages, None)
    return None if page is None else builtins.list(page)


def _chain(exc: BaseException) -> builtins.list[BaseException]:
    seen: builtins.list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _json_error_message(text: str) -> str | None:
    """The message of a JSON error body (``{"error": {"message": ...}}``), as upload errors carry it."""
    if not text.startswith("{"):
        return None
    try:
        body = json.loads(text)
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    return message if isinstance(message, str) and message else None


def _json_type(value: object) -> str:
    return {list: "an array", str: "a string", int: "a number", float: "a number", bool: "a boolean"}.get(
        type(value), "null"
    )


def _release(
    executor: concurrent.futures.ThreadPoolExecutor,
    stream_executor: concurrent.futures.ThreadPoolExecutor,
    sessions: builtins.list[requests.Session],
) -> None:
    """Let the worker threads end and close pooled connections once the store is gone."""
    executor.shutdown(wait=False)
    stream_executor.shutdown(wait=False)
    for session in sessions:
        session.close()
