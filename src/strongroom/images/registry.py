"""A container registry whose storage is the backup location: where internal images are backed up.

OADP's ``openshift`` plugin keeps a backup's internal images in a
Distribution registry that stores into the backup location's bucket. strongroom
runs the real one, Debian's ``docker-registry`` (Distribution 2.8), for the
duration of a backup or restore: ``docker-registry serve CONFIG`` on
127.0.0.1 and a free port, reached by skopeo over plain HTTP. Everything it
stores lies under ``<prefix>/plugins/images/`` (``docker/registry/v2/...``):
``plugins/`` is a top-level directory Velero accepts in a location, so
Velero and OADP still see a valid location. The registry's own layout gives
deduplication for free: blobs are stored once per digest, whichever
repository and backup pushes them, and a blob already present is never
uploaded again.

Storage, from the location (``provider``, bucket, prefix, ``config`` and
credentials, read by the storage package exactly as for the location's
other files):

* ``aws`` (S3 and S3-compatible: MinIO, NooBaa, Ceph RGW): the ``s3`` driver
  with ``bucket``, ``region``, ``s3Url`` as ``regionendpoint`` (Distribution 2.8
  then always uses path-style requests, which covers ``s3ForcePathStyle``),
  ``insecureSkipTLSVerify`` as ``skipverify``, SSE-S3 and SSE-KMS as
  ``encrypt``/``keyid``. The driver has no CA setting, so ``caCert`` is added
  to the bundle Go reads from ``SSL_CERT_FILE``; nor a session-token setting,
  so temporary credentials go through the ``AWS_*`` variables of the
  registry's process alone. SSE-C and DSSE-KMS cannot be honoured and are
  refused rather than weakened; object tags (``tagging``) are not applied.
* ``local`` (a directory): the ``filesystem`` driver, under the same path in
  the location's directory.
* anything else is refused with what to use instead.

The configuration file holds the secret key: it is written 0600 into a 0700
scratch directory that is removed on exit, and no secret ever reaches argv,
a log line or a message (the registry's output is masked before it is
shown). The registry serves no authentication, which is why it listens on
loopback only; ``storage.redirect.disable`` keeps the S3 driver from sending
clients to presigned bucket URLs, and ``REGISTRY_*`` variables, which would
override the configuration, are removed from its environment. Start-up
waits for ``GET /v2/`` and then lists the catalog once, so a wrong bucket or
key fails here, with the driver's message, and not at the first push.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import secrets
import shutil
import socket
import ssl
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import aiohttp
import yaml

from strongroom.errors import StorageConfigError, StorageError, UnavailableError
from strongroom.images._process import find_binary, mask, stop_process, tail
from strongroom.images.copy import RegistryEndpoint
from strongroom.storage import Layout, S3Settings, StoreCredentials, provider_kind
from strongroom.storage.config import parse_url
from strongroom.storage.credentials import AwsCredentials

__all__ = ["IMAGES_DIRECTORY", "LocationRegistry", "images_root"]

_log = logging.getLogger(__name__)

HOST: Final = "127.0.0.1"
# Under the location's prefix: plugins/ is a top-level directory Velero allows.
IMAGES_DIRECTORY: Final = "images"
_PORT_ATTEMPTS: Final = 3
_POLL_INTERVAL: Final = 0.05
_LOG_LINES: Final = 8
_AWS_CREDENTIAL_VARIABLES: Final = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CONFIG_FILE",
)
# Every manifest type the registry may hold: a delete first reads the manifest (an index names children).
_MANIFEST_TYPES: Final = ", ".join(
    (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)
_ADDRESS_IN_USE = re.compile(r"address already in use", re.IGNORECASE)
_UNSUPPORTED_HINT: Final = (
    "back up internal images to an aws (S3 or S3-compatible: MinIO, NooBaa/MCG, Ceph RGW) "
    "or local location, or leave them out of this backup"
)


def images_root(prefix: str = "") -> str:
    """The registry's root directory relative to the bucket: ``<prefix>/plugins/images``."""
    return f"{Layout(prefix).plugins_dir}{IMAGES_DIRECTORY}"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _write_private(path: Path, content: str) -> None:
    """``content`` in a new file only this user can read."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(content)


def _read_text(path: str | None) -> str:
    if not path:
        return ""
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


class LocationRegistry:
    """``docker-registry serve`` on loopback with a backup location as storage, while the block runs.

    ``provider``, ``bucket``, ``prefix``, ``config`` and ``credentials`` are the
    location's (for ``aws``, ``credentials`` is an ``AwsCredentials`` or the
    credentials file's content, of which ``config.profile`` picks a section).
    The configuration is checked here; nothing starts before ``async with``.
    """

    def __init__(
        self,
        provider: str,
        bucket: str,
        prefix: str = "",
        config: Mapping[str, str] | None = None,
        credentials: StoreCredentials | str | bytes | None = None,
        *,
        binary: str | None = None,
        scratch_dir: Path | None = None,
        start_timeout: float = 30.0,
        stop_timeout: float = 10.0,
        environment: Mapping[str, str] | None = None,
    ) -> None:
        self.root_directory = images_root(prefix.strip("/"))
        self._binary_name = binary
        self._parent = scratch_dir
        self._start_timeout = start_timeout
        self._stop_timeout = stop_timeout
        self._base_environment = dict(os.environ if environment is None else environment)
        self._secrets: tuple[str, ...] = ()
        self._session_token: AwsCredentials | None = None
        self._ca_pem: str | None = None
        self._has_credentials = False
        self.location = ""
        kind = provider_kind(provider)
        if kind == "aws":
            self._storage = self._s3_storage(bucket, prefix, config, credentials)
        elif kind == "local":
            self._storage = self._filesystem_storage(bucket)
        else:
            raise StorageConfigError(
                f"internal images cannot be stored in a {kind} location for now: "
                "they need an S3-compatible or local location",
                hint=_UNSUPPORTED_HINT,
            )
        self._scratch: Path | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._port: int | None = None
        self._http_secret = secrets.token_urlsafe(32)
        self._binary: str | None = None

    @classmethod
    def from_location(
        cls,
        location: Mapping[str, Any],
        credentials: StoreCredentials | str | bytes | None = None,
        **options: Any,
    ) -> LocationRegistry:
        """For a BackupStorageLocation object (a dict as the API returns it) and its credentials."""
        from strongroom.volumes.location import RepositoryLocation

        parsed = RepositoryLocation.from_location(location)
        return cls(parsed.provider, parsed.bucket, parsed.prefix, parsed.config, credentials, **options)

    def __repr__(self) -> str:
        where = self.host if self._port is not None else "not running"
        return f"LocationRegistry({self.location!r}, {where})"

    # -- configuration ----------------------------------------------------------

    def _s3_storage(
        self,
        bucket: str,
        prefix: str,
        config: Mapping[str, str] | None,
        credentials: StoreCredentials | str | bytes | None,
    ) -> dict[str, Any]:
        if credentials is not None and not isinstance(credentials, str | bytes | AwsCredentials):
            raise StorageConfigError("an aws location needs AWS credentials")
        values = dict(config or {})
        settings = S3Settings.from_velero_config(bucket.strip("/"), prefix.strip("/"), values, credentials)
        self.location = settings.location
        s3_url = parse_url(values, "s3Url", example="https://minio.example.com:9000")
        driver: dict[str, Any] = {
            "bucket": settings.bucket,
            "region": settings.region,
            "rootdirectory": self.root_directory,
            "v4auth": True,
            "secure": not (s3_url or "").startswith("http://"),
        }
        if s3_url:
            driver["regionendpoint"] = s3_url
        if settings.insecure_skip_tls_verify:
            driver["skipverify"] = True
        sse = settings.server_side_encryption
        if sse in ("sse-c", "aws:kms:dsse"):
            raise StorageConfigError(
                f"internal images cannot be stored with the location's server-side encryption ({sse}): "
                "the registry supports SSE-S3 and SSE-KMS only",
                hint=_UNSUPPORTED_HINT,
            )
        if sse:
            driver["encrypt"] = True
            if settings.kms_key_id:
                driver["keyid"] = settings.kms_key_id
        if settings.tags:
            _log.warning("location %s: object tags (config.tagging) are not applied to images", self.location)
        creds = settings.credentials
        if creds is not None:
            self._secrets = creds.secret_values
            if creds.session_token:
                # Distribution 2.8's S3 driver has no session token setting; its credential chain
                # reads all three from the environment of its own process.
                self._session_token = creds
            else:
                driver["accesskey"] = creds.access_key_id
                driver["secretkey"] = creds.secret_access_key
        self._ca_pem = settings.ca_cert_pem
        self._has_credentials = creds is not None
        return {"s3": driver}

    def _filesystem_storage(self, bucket: str) -> dict[str, Any]:
        directory = Path(bucket).expanduser()
        if not directory.is_dir():
            raise StorageConfigError(
                f"the local location's directory {str(directory)!r} does not exist",
                hint="create it first (mkdir -p), like a bucket is created before it is used",
            )
        root = directory.resolve() / self.root_directory
        self.location = str(root)
        return {"filesystem": {"rootdirectory": str(root)}}

    def _config(self, port: int) -> dict[str, Any]:
        return {
            "version": "0.1",
            "log": {"level": "warn", "formatter": "text", "accesslog": {"disabled": True}},
            "storage": {
                **self._storage,
                "delete": {"enabled": True},
                "redirect": {"disable": True},
                "cache": {"blobdescriptor": "inmemory"},
            },
            "http": {"addr": f"{HOST}:{port}", "secret": self._http_secret},
        }

    def _environment(self, scratch: Path) -> dict[str, str]:
        base = self._base_environment
        # REGISTRY_* variables override the configuration file, storage included.
        env = {key: value for key, value in base.items() if not key.startswith("REGISTRY_")}
        # aws-sdk-go refuses AWS_CA_BUNDLE with the registry's HTTP transport (it panics at start):
        # its certificates join the SSL_CERT_FILE bundle instead.
        aws_bundle = _read_text(env.pop("AWS_CA_BUNDLE", None))
        if self._has_credentials:
            for name in _AWS_CREDENTIAL_VARIABLES:
                env.pop(name, None)
        if self._session_token is not None:
            env["AWS_ACCESS_KEY_ID"] = self._session_token.access_key_id
            env["AWS_SECRET_ACCESS_KEY"] = self._session_token.secret_access_key
            env["AWS_SESSION_TOKEN"] = self._session_token.session_token or ""
        if self._ca_pem or aws_bundle:
            defaults = ssl.get_default_verify_paths()
            system = (
                _read_text(env.get("SSL_CERT_FILE"))
                or _read_text(defaults.cafile)
                or _read_text(defaults.openssl_cafile)
            )
            bundle = scratch / "ca-bundle.pem"
            parts = [part.strip() for part in (system, aws_bundle, self._ca_pem or "") if part.strip()]
            bundle.write_text("\n".join(parts) + "\n", encoding="utf-8")
            env["SSL_CERT_FILE"] = str(bundle)
        env.setdefault("HOME", str(scratch))
        return env

    # -- lifecycle --------------------------------------------------------------

    @property
    def host(self) -> str:
        """``127.0.0.1:<port>``: the registry's address while it runs."""
        if self._port is None:
            raise UnavailableError("the location's image registry is not running")
        return f"{HOST}:{self._port}"

    @property
    def endpoint(self) -> RegistryEndpoint:
        """How skopeo reaches it: plain HTTP on loopback, no credentials."""
        return RegistryEndpoint.plain_http(self.host)

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    @property
    def pid(self) -> int | None:
        """The registry's process id while it runs (its resources can be measured, it can be signalled)."""
        return self._process.pid if self._process is not None else None

    @property
    def config_path(self) -> Path | None:
        """The configuration file (0600, in a 0700 directory) while the registry runs."""
        return self._scratch / "config.yml" if self._scratch is not None else None

    def log_tail(self, lines: int = _LOG_LINES) -> str:
        """The last lines the registry printed, with every secret masked."""
        if self._scratch is None:
            return ""
        return tail(_read_text(str(self._scratch / "registry.log")), self._all_secrets, lines=lines)

    @property
    def _all_secrets(self) -> tuple[str, ...]:
        return (*self._secrets, self._http_secret)

    async def __aenter__(self) -> LocationRegistry:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start the registry and wait until it serves and reaches its storage."""
        if self._process is not None:
            raise UnavailableError("the location's image registry is already running")
        binary = find_binary(
            "docker-registry",
            self._binary_name,
            package="docker-registry",
            purpose="back up and restore internal images",
        )
        if self._parent is not None:
            self._parent.mkdir(parents=True, exist_ok=True)
        # mkdtemp makes it 0700: the configuration in it holds the secret key.
        self._scratch = Path(tempfile.mkdtemp(prefix="strongroom-registry-", dir=self._parent))
        try:
            for attempt in range(1, _PORT_ATTEMPTS + 1):
                if await self._start_once(binary, self._scratch, last=attempt == _PORT_ATTEMPTS):
                    break
            await self._check_storage()
        except BaseException:
            await self.stop()
            raise
        self._binary = binary
        _log.info("image registry for %s listening on %s", self.location, self.host)

    async def _start_once(self, binary: str, scratch: Path, *, last: bool) -> bool:
        """One start on a fresh port; False when another process took the port first."""
        port = _free_port()
        config_path = scratch / "config.yml"
        _write_private(config_path, yaml.safe_dump(self._config(port), sort_keys=False))
        log_path = scratch / "registry.log"
        with log_path.open("wb") as log:
            try:
                self._process = await asyncio.create_subprocess_exec(
                    binary,
                    "serve",
                    str(config_path),
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=log,
                    stderr=asyncio.subprocess.STDOUT,
                    env=self._environment(scratch),
                    start_new_session=True,
                )
            except FileNotFoundError:
                raise UnavailableError(
                    f"the docker-registry binary {binary!r} could not be started",
                    hint="install it (Debian: apt-get install docker-registry) or put it on PATH",
                ) from None
        self._port = port
        deadline = time.monotonic() + self._start_timeout
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
            while True:
                if self._process.returncode is not None:
                    text = _read_text(str(log_path))
                    self._process = None
                    self._port = None
                    if _ADDRESS_IN_USE.search(text) and not last:
                        return False
                    raise UnavailableError(
                        f"the image registry for {self.location} exited at start-up: "
                        f"{tail(text, self._all_secrets, lines=_LOG_LINES) or 'no output'}",
                    )
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with session.get(f"http://{HOST}:{port}/v2/") as response:
                        if response.status in (200, 401):
                            return True
                if time.monotonic() > deadline:
                    raise UnavailableError(
                        f"the image registry for {self.location} did not answer within "
                        f"{self._start_timeout:.0f}s: {self.log_tail() or 'no output'}"
                    )
                await asyncio.sleep(_POLL_INTERVAL)

    async def _check_storage(self) -> None:
        """List one repository: the first request that reaches the storage (bucket, keys, TLS)."""
        url = f"http://{self.host}/v2/_catalog?n=1"
        timeout = aiohttp.ClientTimeout(total=max(self._start_timeout, 5.0))
        try:
            async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as response:
                body = await response.text()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise UnavailableError(
                f"the image registry for {self.location} did not answer: {type(exc).__name__}"
            ) from None
        if status != 200:
            # The driver's own words are in the registry's log; its HTTP answer says only "unknown error".
            detail = self.log_tail(3) or mask(body.strip(), self._all_secrets)
            raise StorageError(
                f"the image registry cannot use the location's storage {self.location}: {detail}",
                hint="check the location's bucket, s3Url, region, credentials and caCert",
            )

    # -- retention ----------------------------------------------------------------

    async def delete_manifest(self, repository: str, digest: str) -> bool:
        """Delete a manifest by digest, and the manifests an index lists; False when it was not there.

        The blobs stay until :meth:`garbage_collect`: another manifest may share them.
        """
        url = f"http://{self.host}/v2/{repository}/manifests/{digest}"
        timeout = aiohttp.ClientTimeout(total=60)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as session:
                async with session.get(url, headers={"Accept": _MANIFEST_TYPES}) as response:
                    if response.status == 404:
                        return False
                    document = await response.json(content_type=None) if response.status == 200 else {}
                children = [
                    str(item["digest"])
                    for item in (document or {}).get("manifests") or []
                    if isinstance(item, dict) and item.get("digest")
                ]
                async with session.delete(url) as response:
                    if response.status not in (202, 404):
                        raise StorageError(
                            f"deleting image {repository}@{digest} from {self.location} failed: "
                            f"HTTP {response.status}: {self.log_tail(3) or 'no detail'}"
                        )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise StorageError(
                f"deleting image {repository}@{digest} from {self.location} failed: {type(exc).__name__}"
            ) from None
        for child in children:
            await self.delete_manifest(repository, child)
        return True

    async def garbage_collect(self) -> None:
        """Remove the blobs no manifest refers to any more (``docker-registry garbage-collect``).

        Manifests are kept by digest without tags, so untagged manifests are
        never collected. No other registry may be writing to the same storage
        meanwhile: a blob uploaded for a manifest not yet pushed would go.
        """
        if self._scratch is None or self._binary is None or self.config_path is None:
            raise UnavailableError("the location's image registry is not running")
        process = await asyncio.create_subprocess_exec(
            self._binary,
            "garbage-collect",
            str(self.config_path),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=self._environment(self._scratch),
            start_new_session=True,
        )
        try:
            output, _ = await process.communicate()
        except BaseException:
            await stop_process(process, self._stop_timeout)
            raise
        if process.returncode != 0:
            raise StorageError(
                f"collecting unused image layers in {self.location} failed: "
                f"{tail(output.decode(errors='replace'), self._all_secrets, lines=_LOG_LINES) or 'no output'}"
            )

    async def stop(self) -> None:
        """Stop the registry (SIGTERM, SIGKILL after the timeout) and remove its scratch directory."""
        process, self._process = self._process, None
        self._port = None
        try:
            if process is not None:
                await stop_process(process, self._stop_timeout)
        finally:
            if self._scratch is not None:
                shutil.rmtree(self._scratch, ignore_errors=True)
                self._scratch = None
