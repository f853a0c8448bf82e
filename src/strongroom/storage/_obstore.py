"""The ObjectStore interface on top of obstore, shared by the local and the S3 backends.

obstore (Rust's object_store) gives every backend the same semantics: atomic
puts, multipart uploads for streams, paginated listings, and retries with
backoff inside each request. This module only adapts its calls to our
interface and turns its exceptions into ours: a short message naming the
operation, the key and the store's location, plus a hint for the mistakes
administrators make (credentials, CA certificate, region, missing bucket).
Provider messages are cut to their first line and any credential value in
them is blanked, so neither a message nor a log line can carry a secret.
"""

from __future__ import annotations

import asyncio
import atexit
import builtins
import logging
import os
import re
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from obstore.exceptions import (
    BaseError,
    GenericError,
    InvalidPathError,
    NotSupportedError,
    PermissionDeniedError,
    UnauthenticatedError,
)

from strongroom.errors import ObjectNotFound, StorageConfigError, StorageError
from strongroom.model.proxy import environment_proxy
from strongroom.storage.base import ObjectInfo, ObjectStore, PutData, normalize_prefix, validate_key

if TYPE_CHECKING:
    from obstore import Attributes, ObjectMeta
    from obstore.store import AzureStore, ClientConfig, LocalStore, RetryConfig, S3Store

__all__ = ["PROVIDER_ERRORS", "ObstoreStore", "ProviderDetail", "configuration_error", "settle"]

_log = logging.getLogger(__name__)

# What obstore raises: its own BaseError tree, plus builtins for some cases
# (FileNotFoundError for a missing object, ValueError for an unparsable path,
# NotImplementedError for an option a backend lacks).
PROVIDER_ERRORS: tuple[type[Exception], ...] = (BaseError, OSError, ValueError, NotImplementedError)

# S3 accepts at most 1,000 keys per DeleteObjects request; obstore's list
# pages hold up to 1,000 entries as well.
_BATCH = 1000
_REDACTED = "<redacted>"
_S3_ERROR = re.compile(r"<Code>(?P<code>[^<]*)</Code>(?:\s*<Message>(?P<message>[^<]*)</Message>)?")
_STATUS = re.compile(r"status code: (?P<status>\d{3}[^:]*)")
_STATUS_PREFIX = re.compile(r".*?status code: \d{3}[^:]*")
# obstore's wording when a response arrived but its body could not be read
# ("Error getting list response body: ... request or response body error").
_BODY_INTERRUPTED = re.compile(r"Error getting [\w ]*response body|response body error")
# S3 error bodies and signing errors can echo the access key id.
_ECHOED_KEY_ID = re.compile(r"(?P<open><AWSAccessKeyId>)[^<]*(?P<close></AWSAccessKeyId>)")
_SIGNED_CREDENTIAL = re.compile(r"(?P<name>Credential=)[^/\s,]+")
# Repeats of an idempotent call whose response body broke off.
_REPEATS = 3

T = TypeVar("T")

# obstore hands each result back from one of its tokio threads through
# loop.call_soon_threadsafe, which releases the GIL while it wakes the loop.
# If the program ends right after that await, the thread asks for the GIL
# again while CPython finalizes; CPython 3.11 then ends it with pthread_exit
# through Rust frames and the whole process aborts (exit code 134, in up to
# half of short runs here; see pyo3-async-runtimes issue #40). Pausing at
# exit, only when a call settled moments ago, lets that thread finish first.
_EXIT_GRACE = 0.1
_last_settled = 0.0


def _grace_at_exit() -> None:
    remaining = _EXIT_GRACE - (time.monotonic() - _last_settled)
    if remaining > 0:
        time.sleep(remaining)


atexit.register(_grace_at_exit)


async def settle(awaitable: Awaitable[T]) -> T:
    """Await one obstore call and note when it finished (see _grace_at_exit)."""
    global _last_settled
    try:
        return await awaitable
    finally:
        _last_settled = time.monotonic()


class ProviderDetail(Exception):
    """The provider's message behind a StorageError, chained as its cause, with credentials blanked.

    Chaining obstore's own exception would put a provider type (and any key
    id an S3 error body echoes) into every logged traceback.
    """


class ObstoreStore(ObjectStore):
    """An ObjectStore backed by one obstore store (LocalStore, S3Store or AzureStore).

    obstore retries a request that fails before its response (5xx, 503
    SlowDown, resets, timeouts) and resumes an interrupted object download
    with a range request; it does not retry when the connection drops while
    a small XML response body (a list page, a DeleteObjects result) is being
    read. Those calls are idempotent, so this class repeats them, and a
    listing resumes after the last key it yielded (S3 lists in key order) so
    that no key is yielded twice. A wrapper could not do this without an
    ``offset`` in the interface, which is why it lives here.
    """

    def __init__(
        self,
        store: LocalStore | S3Store | AzureStore,
        *,
        location: str,
        part_size: int,
        max_concurrency: int,
        stream_chunk_size: int,
        supports_attributes: bool,
        ordered_listing: bool,
        tags: Mapping[str, str] | None = None,
        secrets: Sequence[str] = (),
        repeat_backoff: float = 0.2,
    ) -> None:
        self._store = store
        self._location = location
        self._part_size = part_size
        self._max_concurrency = max_concurrency
        self._stream_chunk_size = stream_chunk_size
        self._supports_attributes = supports_attributes
        # Only a listing in key order can resume after its last key.
        self._ordered_listing = ordered_listing
        self._tags = dict(tags) if tags else None
        # Values that must never appear in a message: checked on every error.
        self._secrets = tuple(secret for secret in secrets if secret)
        self._repeat_backoff = repeat_backoff

    @property
    def location(self) -> str:
        return self._location

    async def put(self, key: str, data: PutData, *, content_type: str | None = None) -> None:
        path = validate_key(key)
        # The caller's iterator runs inside obstore; remember its own failure
        # so it propagates as itself and is not mistaken for a storage error.
        source_failure: list[BaseException] = []
        payload: Any
        if isinstance(data, bytes | bytearray | memoryview):
            payload = data
        elif isinstance(data, os.PathLike):
            payload = Path(os.fspath(data))
            # A missing source file is the caller's mistake, reported as the
            # ordinary OSError before any request is made.
            payload.stat()
        elif isinstance(data, AsyncIterable):
            payload = _guarded(data, source_failure)
        else:
            raise TypeError(
                f"put() takes bytes, an async iterable of bytes or a path object, not {type(data).__name__}"
            )
        attributes: Attributes | None = None
        if content_type and self._supports_attributes:
            attributes = {"Content-Type": content_type}
        # Bytes and files can be sent again; a stream is consumed by its first attempt.
        attempts = 1 if isinstance(data, AsyncIterable) else _REPEATS + 1
        for attempt in range(1, attempts + 1):
            try:
                await settle(
                    self._store.put_async(
                        path,
                        payload,
                        attributes=attributes,
                        tags=self._tags,
                        chunk_size=self._part_size,
                        max_concurrency=self._max_concurrency,
                    )
                )
            except BaseException as exc:
                if (
                    isinstance(exc, PROVIDER_ERRORS)
                    and attempt < attempts
                    and (_interrupted(exc) or _upload_lost(exc))
                ):
                    # A cut response, or a completed multipart upload whose answer was
                    # lost (the retry then finds no upload): the data is still here.
                    await self._pause(attempt)
                    continue
                self._after_failed_put(path)
                if source_failure:
                    original = source_failure[0]
                    if original is exc:
                        raise
                    raise original from None
                if isinstance(exc, PROVIDER_ERRORS):
                    raise self.translate(exc, "write", key, missing="container") from self.cause(exc)
                raise
            return

    def _after_failed_put(self, path: str) -> None:
        """Clean up what a failed upload may leave behind (a hook for backends that need it).

        Synchronous and quick on purpose: it also runs while a cancelled task unwinds.
        """

    async def get(self, key: str) -> bytes:
        path = validate_key(key)
        try:
            result = await settle(self._store.get_async(path))
            data = await settle(result.bytes_async())
        except PROVIDER_ERRORS as exc:
            raise self.translate(exc, "read", key) from self.cause(exc)
        return bytes(data)

    async def get_stream(self, key: str) -> AsyncIterator[bytes]:
        path = validate_key(key)
        try:
            result = await settle(self._store.get_async(path))
        except PROVIDER_ERRORS as exc:
            raise self.translate(exc, "read", key) from self.cause(exc)
        return self._chunks(result.stream(min_chunk_size=self._stream_chunk_size), key)

    async def _chunks(self, stream: AsyncIterator[bytes], key: str) -> AsyncIterator[bytes]:
        while True:
            try:
                chunk = await settle(anext(stream))
            except StopAsyncIteration:
                return
            except PROVIDER_ERRORS as exc:
                raise self.translate(exc, "read", key) from self.cause(exc)
            yield chunk

    async def head(self, key: str) -> ObjectInfo | None:
        path = validate_key(key)
        try:
            meta = await settle(self._store.head_async(path))
        except FileNotFoundError:
            return None
        except PROVIDER_ERRORS as exc:
            raise self.translate(exc, "inspect", key) from self.cause(exc)
        return _info(meta)

    async def list(self, prefix: str = "", *, delimiter: str | None = None) -> AsyncIterator[ObjectInfo]:
        directory = normalize_prefix(prefix)
        if delimiter is not None:
            if delimiter != "/":
                raise StorageConfigError(f"unsupported delimiter {delimiter!r}: only '/' is supported")
            objects, _ = await self._list_directory(directory)
            for meta in sorted(objects, key=lambda meta: meta["path"]):
                yield _info(meta)
            return
        last: str | None = None
        # Where a resumed listing continues: some stores ignore the offset
        # (obstore 0.12's Azure lists from the start again), so what was
        # already yielded is skipped here as well.
        resumed_after: str | None = None
        failures = 0
        stream = self._store.list(directory or None, chunk_size=_BATCH)
        while True:
            try:
                chunk = await settle(anext(stream))
            except StopAsyncIteration:
                return
            except PROVIDER_ERRORS as exc:
                failures += 1
                if self._ordered_listing and failures <= _REPEATS and _interrupted(exc):
                    await self._pause(failures)
                    resumed_after = last
                    stream = self._store.list(directory or None, offset=last, chunk_size=_BATCH)
                    continue
                raise self.translate(exc, "list", directory or None, missing="container") from self.cause(exc)
            failures = 0
            for meta in chunk:
                if resumed_after is not None and meta["path"] <= resumed_after:
                    continue
                last = meta["path"]
                yield _info(meta)

    async def list_prefixes(self, prefix: str = "") -> builtins.list[str]:
        directory = normalize_prefix(prefix)
        _, prefixes = await self._list_directory(directory)
        return sorted(f"{name.rstrip('/')}/" for name in prefixes)

    async def _list_directory(self, directory: str) -> tuple[Sequence[ObjectMeta], Sequence[str]]:
        """One directory level: its objects and its sub-directories (all pages, as obstore collects them)."""
        attempt = 0
        while True:
            attempt += 1
            try:
                result = await settle(self._store.list_with_delimiter_async(directory or None))
            except PROVIDER_ERRORS as exc:
                if attempt <= _REPEATS and _interrupted(exc):
                    await self._pause(attempt)
                    continue
                raise self.translate(exc, "list", directory or None, missing="container") from self.cause(exc)
            return result["objects"], result["common_prefixes"]

    async def delete(self, key: str) -> None:
        path = validate_key(key)
        attempt = 0
        while True:
            attempt += 1
            try:
                await settle(self._store.delete_async(path))
            except FileNotFoundError:
                return
            except PROVIDER_ERRORS as exc:
                # Deleting is idempotent, but S3's delete is a POST that obstore does
                # not retry: a reset or a timeout is repeated here.
                if attempt <= _REPEATS and _transient(exc):
                    await self._pause(attempt)
                    continue
                raise self.translate(exc, "delete", key) from self.cause(exc)
            return

    async def delete_prefix(self, prefix: str) -> int:
        directory = normalize_prefix(prefix)
        if not directory:
            raise StorageConfigError(
                "refusing to delete with an empty prefix: that would empty the whole store"
            )
        # Collect first: deleting while a listing walks the same directories
        # can make the walk skip or trip over entries on some backends.
        keys = [info.key async for info in self.list(directory)]
        for start in range(0, len(keys), _BATCH):
            await self._delete_batch(keys[start : start + _BATCH], directory)
        return len(keys)

    async def _delete_batch(self, batch: builtins.list[str], directory: str) -> None:
        attempt = 0
        while True:
            attempt += 1
            try:
                await settle(self._store.delete_async(batch))
            except FileNotFoundError:
                # Someone else deleted one of them meanwhile: finish one by one.
                for key in batch:
                    await self.delete(key)
            except PROVIDER_ERRORS as exc:
                if attempt <= _REPEATS and _transient(exc):
                    await self._pause(attempt)
                    continue
                raise self.translate(exc, "delete", f"{directory}/", missing="container") from self.cause(exc)
            return

    async def _pause(self, attempt: int) -> None:
        delay = self._repeat_backoff * 4 ** (attempt - 1)
        _log.debug(
            "%s: a response broke off; repeating in %.2f s (repeat %d)", self._location, delay, attempt
        )
        await asyncio.sleep(delay)

    def translate(
        self, exc: BaseException, action: str, key: str | None, *, missing: str = "object"
    ) -> StorageError:
        """Our exception for obstore's ``exc``; ``missing`` says what a not-found error means here."""
        detail = self._detail(exc)
        target = f"{key!r} in {self._location}" if key else self._location
        if isinstance(exc, FileNotFoundError) and "NoSuchUpload" in f"{detail} {exc}":
            return StorageError(
                f"cannot {action} {target}: the multipart upload was no longer there when it was completed ({detail})",
                hint="the store lost or already completed the upload (an answer may have been lost on the way); try again",
            )
        if isinstance(exc, FileNotFoundError):
            if missing == "object" and "NoSuchBucket" not in detail:
                return ObjectNotFound(f"no object {key!r} in {self._location}")
            return StorageError(
                f"cannot {action} {target}: the bucket or directory does not exist ({detail})",
                hint="create it, or correct the bucket name of the backup storage location",
            )
        if isinstance(exc, InvalidPathError | ValueError):
            return StorageConfigError(f"cannot {action} {target}: {detail}")
        if isinstance(exc, NotSupportedError | NotImplementedError):
            return StorageConfigError(f"cannot {action} {target}: not supported by this store: {detail}")
        return StorageError(f"cannot {action} {target}: {detail}", hint=_hint(exc, detail))

    def cause(self, exc: BaseException) -> ProviderDetail:
        """What to chain to our error: the provider's full message (useful for debugging), redacted."""
        return ProviderDetail(self._redact(f"{type(exc).__name__}: {exc}"))

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, _REDACTED)
        # Also when the credentials came from elsewhere and are not known here.
        text = _ECHOED_KEY_ID.sub(rf"\g<open>{_REDACTED}\g<close>", text)
        return _SIGNED_CREDENTIAL.sub(rf"\g<name>{_REDACTED}", text)

    def _detail(self, exc: BaseException) -> str:
        """The useful part of a provider message, without credentials."""
        text = str(exc)
        match = _S3_ERROR.search(text)
        first_line = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
        if match:
            # The XML body can echo the access key id; keep only its code and message.
            status = _STATUS.search(first_line)
            code, message = match.group("code"), (match.group("message") or "").strip()
            detail = f"{code}: {message}" if message else code
            if status:
                detail = f"{detail} (HTTP {status.group('status').strip()})"
        else:
            # Drop a response body after the status; it may be long or echo the request.
            cut = _STATUS_PREFIX.match(first_line)
            detail = cut.group(0) if cut else first_line
        return self._redact(detail)


def _hint(exc: BaseException, detail: str) -> str | None:
    text = f"{detail} {exc}"
    if isinstance(exc, PermissionDeniedError | UnauthenticatedError) or any(
        code in text
        for code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403 Forbidden")
    ):
        return (
            "check the credentials (aws_access_key_id and aws_secret_access_key of the selected profile) "
            "and that they may read and write the bucket"
        )
    if "InvalidCertificate" in text or "certificate" in text.lower():
        return (
            "the server's TLS certificate is not trusted: give its CA certificate in caCert, "
            'or set insecureSkipTLSVerify: "true" (only for testing)'
        )
    if (
        "PermanentRedirect" in text
        or "301 Moved Permanently" in text
        or "AuthorizationHeaderMalformed" in text
    ):
        return "the bucket is in another region: set config.region to the bucket's region"
    if "error sending request" in text or "Connect" in text or "timed out" in text.lower():
        return "check that the object store's address (s3Url) is right and reachable from here"
    return None


def _interrupted(exc: BaseException) -> bool:
    """Whether obstore gave up because a response body broke off (a case it does not retry)."""
    return isinstance(exc, GenericError) and _BODY_INTERRUPTED.search(str(exc)) is not None


def _transient(exc: BaseException) -> bool:
    """A failure worth repeating for an idempotent request: a cut body, a reset, a timeout, a 5xx."""
    return _interrupted(exc) or (
        isinstance(exc, GenericError)
        and not isinstance(
            exc, PermissionDeniedError | UnauthenticatedError | InvalidPathError | NotSupportedError
        )
    )


def _upload_lost(exc: BaseException) -> bool:
    return isinstance(exc, FileNotFoundError) and "NoSuchUpload" in str(exc)


def _info(meta: ObjectMeta) -> ObjectInfo:
    return ObjectInfo(
        key=meta["path"],
        size=meta["size"],
        etag=meta["e_tag"],
        last_modified=meta["last_modified"],
    )


async def _guarded(
    source: AsyncIterable[bytes], failures: builtins.list[BaseException]
) -> AsyncIterator[bytes]:
    """Pass ``source`` through, recording the exception it raises (obstore re-raises it as is)."""
    try:
        async for chunk in source:
            yield chunk
    except GeneratorExit:
        raise
    except BaseException as exc:
        failures.append(exc)
        raise


# S3 (and GCS's XML API) refuse parts below 5 MiB and uploads of more than 10,000 parts.
_MIN_PART_SIZE = 5 * 1024 * 1024
_MAX_PARTS = 10_000


@dataclass(frozen=True)
class StoreOptions:
    """How an obstore client behaves, whatever the provider (not where it points): part size,
    timeouts, retries.

    16 MiB parts allow objects up to 156 GiB within S3's 10,000 parts (5 MiB
    parts stop at 48 GiB); four parts in flight keep an upload's memory near
    64 MiB. The overall request timeout is generous because a download is
    one request however slowly its reader consumes it; stalls are caught by
    the read timeout instead.
    """

    part_size: int = 16 * 1024 * 1024
    max_concurrency: int = 4
    stream_chunk_size: int = 1024 * 1024
    connect_timeout: timedelta = timedelta(seconds=10)
    read_timeout: timedelta = timedelta(seconds=60)
    request_timeout: timedelta = timedelta(minutes=30)
    max_retries: int = 8
    init_backoff: timedelta = timedelta(milliseconds=200)
    max_backoff: timedelta = timedelta(seconds=10)
    retry_timeout: timedelta = timedelta(minutes=3)

    def __post_init__(self) -> None:
        if self.part_size < _MIN_PART_SIZE:
            raise StorageConfigError(
                f"part size {self.part_size} is below the minimum part size of {_MIN_PART_SIZE} bytes"
            )
        if self.max_concurrency < 1 or self.max_retries < 0:
            raise StorageConfigError("max_concurrency must be at least 1 and max_retries at least 0")

    @property
    def max_object_size(self) -> int:
        """The largest object a streamed upload can produce with this part size."""
        return self.part_size * _MAX_PARTS


def client_config(
    options: StoreOptions,
    *,
    endpoint: str,
    allow_http: bool = False,
    ca_cert_pem: str | None = None,
    insecure_skip_tls_verify: bool = False,
) -> ClientConfig:
    """obstore's HTTP client settings for ``options`` and one location's transport security.

    The proxy for ``endpoint`` is decided here from ``HTTPS_PROXY``/``HTTP_PROXY``
    and ``NO_PROXY`` as Go programs decide it (CIDRs included), when the store is
    built: the HTTP client underneath would otherwise read them once per process.
    """
    client: ClientConfig = {
        "connect_timeout": options.connect_timeout,
        "read_timeout": options.read_timeout,
        "timeout": options.request_timeout,
        "user_agent": "strongroom",
    }
    if allow_http:
        client["allow_http"] = True
    if ca_cert_pem:
        client["root_certificate"] = ca_cert_pem
    if insecure_skip_tls_verify:
        client["allow_invalid_certificates"] = True
    proxy = environment_proxy(endpoint)
    if proxy:
        client["proxy_url"] = proxy
    return client


def retry_config(options: StoreOptions) -> RetryConfig:
    return {
        "max_retries": options.max_retries,
        "retry_timeout": options.retry_timeout,
        "backoff": {"init_backoff": options.init_backoff, "max_backoff": options.max_backoff, "base": 2},
    }


def configuration_error(
    exc: BaseException, what: str, location: str, secrets: Sequence[str]
) -> StorageConfigError:
    """A store that could not even be built (only its configuration is checked then; nothing was sent)."""
    detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    for secret in secrets:
        if secret:
            detail = detail.replace(secret, _REDACTED)
    return StorageConfigError(f"invalid {what} configuration for {location}: {detail}")
