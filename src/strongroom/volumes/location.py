"""Where a namespace's restic repository lives in a BackupStorageLocation, and how restic reaches it.

Velero keeps one restic repository per source namespace under
``<prefix>/restic/<namespace>`` of the location's bucket, and names it with
an identifier restic understands (Velero's ``GetRepoIdentifier``):

* provider ``aws``: ``s3:<s3Url or s3-<region>.amazonaws.com>/<bucket>/<prefix>/restic/<ns>``;
* provider ``azure``: ``azure:<container>:/<prefix>/restic/<ns>``;
* provider ``gcp``: ``gs:<bucket>:/<prefix>/restic/<ns>``;
* provider ``local`` (strongroom's directory store): ``<bucket>/<prefix>/restic/<ns>``.

The location's settings are read once by the storage package
(``S3Settings``, ``AzureSettings``, ``GcsSettings``: endpoint, CA, TLS,
credentials), so a location that the server can use is one restic can use
the same way, or is refused with the reason before restic runs.

restic 0.14 (the nodes' restic, the last Debian build with the Azure
backend) reaches Azure only at ``https://<account>.blob.core.windows.net``
with the account key, and Google Cloud Storage only at
``storage.googleapis.com``: a location with another endpoint, or with Azure
AD instead of a key, keeps its API-object backups but has file-system backup
refused with what to change (decision 0015).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from strongroom.errors import StorageConfigError, UsageError
from strongroom.storage import Layout, ObjectStore, StoreCredentials, open_store, provider_kind
from strongroom.storage.credentials import AwsCredentials
from strongroom.storage.s3 import S3Settings
from strongroom.volumes.restic import ResticTarget

if TYPE_CHECKING:
    from strongroom.storage.azure import AzureSettings
    from strongroom.storage.gcs import GcsSettings

__all__ = ["RepositoryLocation"]

# The only Azure endpoint restic 0.14 reaches (its SDK builds https://<account>.blob.core.windows.net).
_AZURE_PUBLIC_SUFFIX = "blob.core.windows.net"
# The only Google Cloud Storage endpoint restic 0.14 reaches.
_GCS_PUBLIC_ENDPOINT = "https://storage.googleapis.com"
_RESTIC_AZURE_HINT = (
    "restic (0.14, the last Debian build with Azure) reaches only Azure's public cloud, "
    "https://<account>.blob.core.windows.net, with the storage account key"
)


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
    def kind(self) -> str:
        """``aws``, ``azure``, ``gcp`` or ``local`` (StorageConfigError for any other provider)."""
        return provider_kind(self.provider)

    @property
    def is_s3(self) -> bool:
        return self.kind == "aws"

    def _check_supported(self) -> None:
        if self.config.get("resticRepoPrefix"):
            raise UsageError(
                f"location {self.name}: config.resticRepoPrefix is not supported",
                hint="remove it: repositories always live under <prefix>/restic/<namespace> of the location, "
                "where strongroom can tell a missing repository from an unreachable one",
            )
        provider_kind(self.provider)  # an unknown provider is refused here

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
        kind = self.kind
        if kind == "aws":
            s3_url = self.config.get("s3Url", "").rstrip("/")
            if not s3_url:
                region = self._settings().region
                s3_url = f"s3-{region}.amazonaws.com"
            return f"s3:{s3_url}/{self.bucket.strip('/')}/{key}"
        if kind == "azure":
            return f"azure:{self.bucket.strip('/')}:/{key}"
        if kind == "gcp":
            return f"gs:{self.bucket.strip('/')}:/{key}"
        return str(Path(self.bucket).expanduser().resolve() / key)

    def _settings(self) -> S3Settings:
        credentials = self.credentials if isinstance(self.credentials, AwsCredentials) else None
        return S3Settings.from_velero_config(self.bucket.strip("/"), self.prefix, self.config, credentials)

    def open_store(self) -> ObjectStore:
        """The location's object store, confined to its prefix (blocking: call it in a thread)."""
        self._check_supported()
        return open_store(self.provider, self.bucket, self.prefix, self.config, self.credentials)

    def restic_target(self, namespace: str, password: str, scratch_dir: Path) -> ResticTarget:
        """How restic opens the namespace's repository.

        A CA certificate, and a Google credentials file, are written under ``scratch_dir``.
        """
        url = self.repository_url(namespace)
        kind = self.kind
        if kind == "aws":
            return self._s3_target(url, password, scratch_dir)
        if kind == "azure":
            return self._azure_target(url, password, scratch_dir)
        if kind == "gcp":
            return self._gcs_target(url, password, scratch_dir)
        return ResticTarget(url=url, password=password)

    def _s3_target(self, url: str, password: str, scratch_dir: Path) -> ResticTarget:
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
        return ResticTarget(
            url=url,
            password=password,
            environment=environment,
            ca_cert_file=_write_ca(scratch_dir, settings.ca_cert_pem) if settings.ca_cert_pem else None,
            insecure_tls=settings.insecure_skip_tls_verify,
            options=tuple(options),
        )

    def check_restic_reachable(self) -> None:
        """Refuse (StorageConfigError, with what to change) a location restic cannot reach; writes nothing."""
        kind = self.kind
        if kind == "azure":
            self._azure_settings()
        elif kind == "gcp":
            self._gcs_settings()

    def _azure_settings(self) -> AzureSettings:
        from strongroom.storage.azure import AzureCredentials, AzureSettings  # the SDK loads only when used

        credentials = self.credentials if isinstance(self.credentials, AzureCredentials) else None
        settings = AzureSettings.from_velero_config(
            self.bucket.strip("/"), self.prefix, self.config, credentials
        )
        expected = f"https://{settings.account}.{_AZURE_PUBLIC_SUFFIX}"
        if settings.endpoint.rstrip("/").lower() != expected:
            raise StorageConfigError(
                f"location {self.name}: file-system backup (restic) cannot reach the storage account's "
                f"endpoint {settings.endpoint}; the location's backups of API objects work",
                hint=f"{_RESTIC_AZURE_HINT}: keep pod volume data in a location of the public cloud, "
                "an aws (S3-compatible) location, or use CSI snapshots",
            )
        if settings.auth != "shared_key" or not settings.account_key:
            raise StorageConfigError(
                f"location {self.name}: file-system backup (restic) to Azure needs the storage account key, "
                "and this location signs in with Azure AD (useAAD)",
                hint=f"{_RESTIC_AZURE_HINT}: put the key in the credentials (AZURE_STORAGE_ACCOUNT_ACCESS_KEY=...) "
                "and name it in config.storageAccountKeyEnvVar",
            )
        return settings

    def _azure_target(self, url: str, password: str, scratch_dir: Path) -> ResticTarget:
        settings = self._azure_settings()
        assert settings.account_key is not None  # checked by _azure_settings
        return ResticTarget(
            url=url,
            password=password,
            environment={"AZURE_ACCOUNT_NAME": settings.account, "AZURE_ACCOUNT_KEY": settings.account_key},
            ca_cert_file=_write_ca(scratch_dir, settings.ca_cert_pem) if settings.ca_cert_pem else None,
        )

    def _gcs_settings(self) -> GcsSettings:
        from strongroom.storage.gcs import GcpCredentials, GcsSettings  # the SDK loads only when used

        credentials = self.credentials if isinstance(self.credentials, GcpCredentials) else None
        settings = GcsSettings.from_velero_config(
            self.bucket.strip("/"), self.prefix, self.config, credentials
        )
        endpoint = (settings.endpoint or "").rstrip("/")
        if endpoint not in ("", _GCS_PUBLIC_ENDPOINT) or settings.universe_domain not in (
            None,
            "googleapis.com",
        ):
            where = settings.endpoint or f"the universe domain {settings.universe_domain}"
            raise StorageConfigError(
                f"location {self.name}: file-system backup (restic) cannot reach {where}; "
                "the location's backups of API objects work",
                hint="restic (0.14) reaches Google Cloud Storage only at storage.googleapis.com: keep pod volume "
                "data in a location without storeEndpoint, an aws (S3-compatible) location, or use CSI snapshots",
            )
        return settings

    def _gcs_target(self, url: str, password: str, scratch_dir: Path) -> ResticTarget:
        settings = self._gcs_settings()
        environment: dict[str, str] = {}
        if settings.credentials is not None:
            environment["GOOGLE_APPLICATION_CREDENTIALS"] = str(
                _write_private(
                    scratch_dir / "credentials", json.dumps(dict(settings.credentials.info)), ".json"
                )
            )
            if settings.credentials.project_id:
                # Only `restic init` uses it, to create a missing bucket in the key's project.
                environment["GOOGLE_PROJECT_ID"] = settings.credentials.project_id
        return ResticTarget(
            url=url,
            password=password,
            environment=environment,
            ca_cert_file=_write_ca(scratch_dir, settings.ca_cert_pem) if settings.ca_cert_pem else None,
        )


def _write_ca(scratch_dir: Path, pem: str) -> Path:
    """The CA bundle as a file for ``--cacert``, named by its content so concurrent writers agree."""
    return _write_file(scratch_dir / "ca", pem, ".pem", mode=0o644)


def _write_private(directory: Path, content: str, suffix: str) -> Path:
    """A secret as a file only this user can read (a directory of its own, 0700, and the file 0600)."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    return _write_file(directory, content, suffix, mode=0o600)


def _write_file(directory: Path, content: str, suffix: str, *, mode: int) -> Path:
    """``content`` in ``directory``, named by its digest: written once, atomically, whoever writes it first."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{hashlib.sha256(content.encode()).hexdigest()[:16]}{suffix}"
    if not path.exists():
        staging = path.with_name(f".{path.name}.{os.getpid()}.{id(content)}.tmp")
        descriptor = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(content)
        staging.replace(path)
    return path
