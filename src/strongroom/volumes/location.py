"""Where a namespace's restic repository lives in a BackupStorageLocation, and how restic reaches it.

Velero keeps one restic repository per source namespace under
``<prefix>/restic/<namespace>`` of the location's bucket, and names it with
an identifier restic understands (Velero's ``GetRepoIdentifier``):

* provider ``aws``: ``s3:<s3Url or s3-<region>.amazonaws.com>/<bucket>/<prefix>/restic/<ns>``;
* provider ``local`` (strongroom's directory store): ``<bucket>/<prefix>/restic/<ns>``.

The location's settings are read once by the storage package
(``S3Settings.from_velero_config``: region, endpoint, CA, TLS, credentials),
so a location that the server can use is one restic can use the same way.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from strongroom.errors import StorageConfigError, UsageError
from strongroom.storage import Layout, ObjectStore, StoreCredentials, open_store
from strongroom.storage.credentials import AwsCredentials
from strongroom.storage.s3 import S3Settings
from strongroom.volumes.restic import ResticTarget

__all__ = ["RepositoryLocation"]

_S3_PROVIDERS = frozenset({"aws", "velero.io/aws"})
_LOCAL_PROVIDERS = frozenset({"local"})


@dataclass(frozen=True)
class RepositoryLocation:
    """A BackupStorageLocation as the volume code needs it: the store's address and its credentials."""

    name: str
    provider: str
    bucket: str
    prefix: str = ""
    config: Mapping[str, str] = field(default_factory=dict)
    credentials: StoreCredentials | None = None

    @classmethod
    def from_location(
        cls, location: Mapping[str, Any], credentials: StoreCredentials | None = None
    ) -> RepositoryLocation:
        """From a BackupStorageLocation object (a dict as the API returns it) and its parsed credentials."""
        spec = location.get("spec") or {}
        name = str((location.get("metadata") or {}).get("name") or "")
        object_storage = spec.get("objectStorage") or {}
        provider = str(spec.get("provider") or "").strip()
        bucket = str(object_storage.get("bucket") or "")
        if not provider:
            raise UsageError(f"location {name}: spec.provider is required")
        if not bucket:
            raise UsageError(f"location {name}: spec.objectStorage.bucket is required")
        config = {str(k): str(v) for k, v in (spec.get("config") or {}).items()}
        if object_storage.get("caCert"):
            config["caCert"] = str(object_storage["caCert"])
        return cls(
            name=name,
            provider=provider,
            bucket=bucket,
            prefix=str(object_storage.get("prefix") or "").strip("/"),
            config=config,
            credentials=credentials,
        )

    @property
    def is_s3(self) -> bool:
        return self.provider in _S3_PROVIDERS

    def _check_supported(self) -> None:
        if self.config.get("resticRepoPrefix"):
            raise UsageError(
                f"location {self.name}: config.resticRepoPrefix is not supported",
                hint="remove it: repositories always live under <prefix>/restic/<namespace> of the location, "
                "where strongroom can tell a missing repository from an unreachable one",
            )
        if not self.is_s3 and self.provider not in _LOCAL_PROVIDERS:
            raise StorageConfigError(
                f"location {self.name}: file-system backup (restic) to provider {self.provider!r} is not "
                "available in this version; the location's backups of API objects work",
                hint="keep pod volume data in an aws (S3 and S3-compatible) or local location, or use CSI snapshots",
            )

    def config_key(self, namespace: str) -> str:
        """The key of the repository's ``config`` object, relative to the location's prefix."""
        return f"{Layout().restic_repo(namespace)}/config"

    def repository_prefix(self, namespace: str) -> str:
        """The directory of the repository, relative to the location's prefix."""
        return Layout().restic_repo(namespace)

    def repository_url(self, namespace: str) -> str:
        """restic's ``--repo`` for the namespace's repository (Velero's repository identifier)."""
        self._check_supported()
        key = Layout(self.prefix).restic_repo(namespace)
        if self.is_s3:
            s3_url = self.config.get("s3Url", "").rstrip("/")
            if not s3_url:
                region = self._settings().region
                s3_url = f"s3-{region}.amazonaws.com"
            return f"s3:{s3_url}/{self.bucket.strip('/')}/{key}"
        return str(Path(self.bucket).expanduser().resolve() / key)

    def _settings(self) -> S3Settings:
        credentials = self.credentials if isinstance(self.credentials, AwsCredentials) else None
        return S3Settings.from_velero_config(self.bucket.strip("/"), self.prefix, self.config, credentials)

    def open_store(self) -> ObjectStore:
        """The location's object store, confined to its prefix (blocking: call it in a thread)."""
        self._check_supported()
        return open_store(self.provider, self.bucket, self.prefix, self.config, self.credentials)

    def restic_target(self, namespace: str, password: str, scratch_dir: Path) -> ResticTarget:
        """How restic opens the namespace's repository; a CA certificate is written under ``scratch_dir``."""
        url = self.repository_url(namespace)
        if not self.is_s3:
            return ResticTarget(url=url, password=password)
        settings = self._settings()
        environment = {"AWS_DEFAULT_REGION": settings.region}
        if settings.credentials is not None:
            environment["AWS_ACCESS_KEY_ID"] = settings.credentials.access_key_id
            environment["AWS_SECRET_ACCESS_KEY"] = settings.credentials.secret_access_key
            if settings.credentials.session_token:
                environment["AWS_SESSION_TOKEN"] = settings.credentials.session_token
        options = [f"s3.region={settings.region}"]
        if not settings.virtual_hosted_style:
            options.append("s3.bucket-lookup=path")
        ca_file = None
        if settings.ca_cert_pem:
            ca_file = _write_ca(scratch_dir, settings.ca_cert_pem)
        return ResticTarget(
            url=url,
            password=password,
            environment=environment,
            ca_cert_file=ca_file,
            insecure_tls=settings.insecure_skip_tls_verify,
            options=tuple(options),
        )


def _write_ca(scratch_dir: Path, pem: str) -> Path:
    """The CA bundle as a file for ``--cacert``, named by its content so concurrent writers agree."""
    directory = scratch_dir / "ca"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{hashlib.sha256(pem.encode()).hexdigest()[:16]}.pem"
    if not path.exists():
        staging = path.with_suffix(f".{id(pem)}.tmp")
        staging.write_text(pem, encoding="ascii")
        staging.replace(path)
    return path
