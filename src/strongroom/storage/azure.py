"""Azure Blob Storage through obstore, configured with the keys of Velero's Azure plugin.

A BackupStorageLocation with provider ``azure`` names a storage account in
``config`` and a blob container as its bucket, exactly as for Velero's
plugin (velero-plugin-for-microsoft-azure, whose configuration code lives in
Velero's pkg/util/azure). ``AzureSettings.from_velero_config`` translates
the location once, up front, and rejects what it cannot honour:

===============================  ==============================================
``storageAccount``               required: the storage account's name
``storageAccountKeyEnvVar``      the name of the credentials-file entry that
                                 holds the account's access key (the OADP
                                 guide uses AZURE_STORAGE_ACCOUNT_ACCESS_KEY);
                                 requests are signed with that shared key
``useAAD``                       ``"true"``: authenticate as the service
                                 principal of AZURE_TENANT_ID, AZURE_CLIENT_ID
                                 and AZURE_CLIENT_SECRET (Azure AD / Entra ID)
``storageAccountURI``            the blob service's URL, when it is not
                                 ``https://<account>.blob.<cloud suffix>``
                                 (a private endpoint, Azure Stack, Azurite's
                                 ``http://host:port/<account>``)
``activeDirectoryAuthorityURI``  the Azure AD authority host (useAAD only)
``blockSizeInBytes``             the size of each uploaded block (see below)
``caCert``                       PEM text, base64 of it, or a file: trusted in
                                 addition to the system's roots
``credentialsFile``              the credentials file, when not passed directly
``resourceGroup``,               accepted and unused: Velero needs them only
``subscriptionId``               to ask Azure Resource Manager for the key
===============================  ==============================================

The credentials are the dotenv-style file of the OADP guide
(``AZURE_SUBSCRIPTION_ID=...`` lines, see ``parse_azure_credentials``);
``AZURE_CLOUD_NAME`` picks the cloud (AzurePublicCloud by default,
AzureChinaCloud, AzureUSGovernmentCloud) and with it the endpoint suffix and
the Azure AD authority.

Deviations from Velero, all deliberate:

- Without ``storageAccountKeyEnvVar`` and without ``useAAD: "true"``, Velero
  logs in with the service principal (or a managed identity) and fetches the
  storage account's key through Azure Resource Manager (ListKeys). strongroom
  does not call the management plane: such a location is refused with a hint
  to put the key into the credentials and set ``storageAccountKeyEnvVar``, or
  to set ``useAAD: "true"``.
- ``useAAD`` needs a client secret; Velero would also accept a client
  certificate, a user name and password, workload identity or a managed
  identity.
- Velero reads ``AZURE_CREDENTIALS_FILE`` from its environment when a
  location has no credentials; strongroom only reads credentials it is given
  (or ``config.credentialsFile``).
- ``blockSizeInBytes``: Velero uploads 1 MiB blocks unless told otherwise;
  strongroom uses ``StoreOptions.part_size`` (16 MiB) unless the location
  sets a size. A value that is not a positive integer is ignored with a
  warning and one above Azure's 100 MiB limit is lowered to it, as in Velero.
  Azure allows 50,000 blocks per blob, so the block size bounds an object's
  size (1 MiB blocks: about 48 GiB).
- Download URLs are service SAS URLs signed by obstore (with the shared key,
  or with a user delegation key under useAAD); Velero restricts them to
  HTTPS and back-dates their start by ten minutes against clock skew,
  obstore's start at the current time.

Retries are obstore's (see ``strongroom.storage.s3``). The credentials are
handed to obstore explicitly, and the account, endpoint and emulator
settings are always set, so the ``AZURE_STORAGE_*`` variables of the process
environment do not redirect or re-authenticate a location.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import obstore
from obstore.exceptions import (
    GenericError,
    InvalidPathError,
    NotSupportedError,
    PermissionDeniedError,
    UnauthenticatedError,
)
from obstore.store import AzureStore

from strongroom.errors import ObjectNotFound, StorageConfigError, StorageError
from strongroom.storage._obstore import (
    PROVIDER_ERRORS,
    ObstoreStore,
    StoreOptions,
    client_config,
    configuration_error,
    retry_config,
    settle,
)
from strongroom.storage.base import validate_key
from strongroom.storage.config import check_config_keys, parse_bool, parse_url
from strongroom.storage.tls import ca_certificate

if TYPE_CHECKING:
    from obstore.store import AzureAccessKey, AzureConfig

__all__ = [
    "VELERO_AZURE_CONFIG_KEYS",
    "AzureCredentials",
    "AzureObjectStore",
    "AzureSettings",
    "load_azure_credentials_file",
    "parse_azure_credentials",
]

_log = logging.getLogger(__name__)
# A SAS token in a URL's query would be a credential in plain sight.
_NO_SAS = "a SAS token is not supported; use the storage account key or useAAD"

# Velero's Azure plugin accepts these keys (ValidateObjectStoreConfigKeys in
# object_store.go), and the Velero server adds bucket, prefix and caCert.
VELERO_AZURE_CONFIG_KEYS = (
    "resourceGroup",
    "storageAccount",
    "subscriptionId",
    "blockSizeInBytes",
    "activeDirectoryAuthorityURI",
    "storageAccountURI",
    "useAAD",
    "storageAccountKeyEnvVar",
    "credentialsFile",
    "bucket",
    "prefix",
    "caCert",
    # Read by the volume code (restic repository location), not by this store.
    "resticRepoPrefix",
)

# The credentials file's entries (Velero's pkg/util/azure/util.go).
SUBSCRIPTION_ID = "AZURE_SUBSCRIPTION_ID"
TENANT_ID = "AZURE_TENANT_ID"
CLIENT_ID = "AZURE_CLIENT_ID"
CLIENT_SECRET = "AZURE_CLIENT_SECRET"
RESOURCE_GROUP = "AZURE_RESOURCE_GROUP"
CLOUD_NAME = "AZURE_CLOUD_NAME"
# Entries whose values are secrets, whatever else the file holds.
_SECRET_ENTRIES = frozenset(
    {
        CLIENT_SECRET,
        "AZURE_STORAGE_KEY",
        "AZURE_STORAGE_ACCOUNT_ACCESS_KEY",
        "AZURE_CLIENT_CERTIFICATE",
        "AZURE_CLIENT_CERTIFICATE_PASSWORD",
        "AZURE_PASSWORD",
    }
)
_SECRET_NAME = re.compile(r"KEY|SECRET|PASSWORD|TOKEN|CERTIFICATE", re.IGNORECASE)
_ENTRY_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
_EXAMPLE_LINE = "expected KEY=VALUE (for example AZURE_SUBSCRIPTION_ID=...)"


@dataclass(frozen=True)
class _Cloud:
    blob_suffix: str
    authority_host: str


# AZURE_CLOUD_NAME, case-insensitive, as Velero's getCloudConfiguration reads it.
_PUBLIC = _Cloud("core.windows.net", "https://login.microsoftonline.com")
_CHINA = _Cloud("core.chinacloudapi.cn", "https://login.chinacloudapi.cn")
_US_GOVERNMENT = _Cloud("core.usgovcloudapi.net", "https://login.microsoftonline.us")
_CLOUDS = {
    "": _PUBLIC,
    "AZURECLOUD": _PUBLIC,
    "AZUREPUBLICCLOUD": _PUBLIC,
    "AZURECHINACLOUD": _CHINA,
    "AZUREUSGOVERNMENT": _US_GOVERNMENT,
    "AZUREUSGOVERNMENTCLOUD": _US_GOVERNMENT,
}
# Azure's rules for a storage account name.
_ACCOUNT_NAME = re.compile(r"[a-z0-9]{3,24}")
# Put Block accepts at most 100 MiB per block with the API versions Velero uses.
MAX_BLOCK_SIZE = 100 * 1024 * 1024
# Go's strconv.Atoi.
_GO_INT = re.compile(r"[+-]?[0-9]+")


@dataclass(frozen=True, repr=False)
class AzureCredentials:
    """The entries of an Azure credentials file; printing them never shows a value."""

    entries: tuple[tuple[str, str], ...]
    source: str = "the credentials file"

    def get(self, name: str) -> str:
        """The value of entry ``name``, "" when the file does not set it."""
        for key, value in self.entries:
            if key == name:
                return value
        return ""

    def __contains__(self, name: object) -> bool:
        return any(key == name for key, _ in self.entries)

    def names(self) -> tuple[str, ...]:
        return tuple(key for key, _ in self.entries)

    @property
    def subscription_id(self) -> str:
        return self.get(SUBSCRIPTION_ID)

    @property
    def tenant_id(self) -> str:
        return self.get(TENANT_ID)

    @property
    def client_id(self) -> str:
        return self.get(CLIENT_ID)

    @property
    def client_secret(self) -> str:
        return self.get(CLIENT_SECRET)

    @property
    def resource_group(self) -> str:
        return self.get(RESOURCE_GROUP)

    @property
    def cloud_name(self) -> str:
        return self.get(CLOUD_NAME)

    @property
    def secret_values(self) -> tuple[str, ...]:
        """Every value that must be blanked if it ever shows up in a provider's message."""
        return tuple(
            value
            for key, value in self.entries
            if value and (key in _SECRET_ENTRIES or _SECRET_NAME.search(key))
        )

    def __repr__(self) -> str:
        return f"AzureCredentials(source={self.source!r}, entries=[{', '.join(self.names())}])"

    __str__ = __repr__


def parse_azure_credentials(content: str | bytes, source: str = "the credentials file") -> AzureCredentials:
    """The entries of an Azure credentials file (the OADP guide's ``credentials-velero``).

    One ``KEY=VALUE`` per line, as godotenv (which Velero uses) reads it:
    blank lines and ``#`` (or ``;``) comment lines are skipped, ``export
    KEY=VALUE`` is accepted, a value may be quoted ('single': taken as is;
    "double": backslash escapes) and an unquoted value ends at `` #``.
    A malformed line or an entry set twice is a StorageConfigError naming
    ``source`` and the line number, never a value.
    """
    text = _text(content, source)
    entries: dict[str, tuple[str, int]] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        where = f"{source}, line {number}"
        if line.startswith("[") and line.endswith("]"):
            raise StorageConfigError(
                f"{where}: a [section] header belongs in an AWS credentials file; {_EXAMPLE_LINE}",
                hint="an Azure credentials file holds AZURE_...=... lines only",
            )
        if line.startswith("export") and line[6:7].isspace():
            line = line[6:].lstrip()
        name, equals, rest = line.partition("=")
        name = name.strip()
        if not equals or not _ENTRY_NAME.fullmatch(name):
            raise StorageConfigError(f"{where}: {_EXAMPLE_LINE}")
        if name in entries:
            raise StorageConfigError(f"{where}: {name} is set twice (first on line {entries[name][1]})")
        entries[name] = (_value(rest.strip(), where, name), number)
    return AzureCredentials(tuple((name, value) for name, (value, _) in entries.items()), source)


def load_azure_credentials_file(path: str | Path) -> AzureCredentials:
    """Read and parse the credentials file at ``path`` (Velero's ``credentialsFile``)."""
    try:
        content = Path(path).read_bytes()
    except OSError as exc:
        raise StorageConfigError(f"cannot read the credentials file {str(path)!r}: {exc.strerror}") from exc
    return parse_azure_credentials(content, str(path))


def _text(content: str | bytes, source: str) -> str:
    if isinstance(content, bytes):
        try:
            content = content.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise StorageConfigError(f"{source}: not UTF-8 text (byte {exc.start})") from None
    return content.removeprefix("\ufeff")


_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", '"': '"', "$": "$"}


def _value(rest: str, where: str, name: str) -> str:
    """The value after '=' of one line (stripped), unquoted."""
    if not rest:
        return ""
    quote = rest[0]
    if quote not in "'\"":
        # godotenv: in an unquoted value, '#' after whitespace starts a comment.
        comment = re.search(r"\s#", rest)
        return (rest[: comment.start()] if comment else rest).strip()
    chars: list[str] = []
    index = 1
    while index < len(rest):
        char = rest[index]
        if char == quote:
            tail = rest[index + 1 :].strip()
            if tail and not tail.startswith("#"):
                raise StorageConfigError(
                    f"{where}: text follows the closing quote of {name}'s value",
                    hint="quote the whole value, or put a comment after ' #'",
                )
            return "".join(chars)
        if char == "\\" and quote == '"' and index + 1 < len(rest):
            following = rest[index + 1]
            chars.append(_ESCAPES.get(following, "\\" + following))
            index += 2
            continue
        chars.append(char)
        index += 1
    raise StorageConfigError(
        f"{where}: the quoted value of {name} has no closing quote",
        hint="a value must fit on its line",
    )


AuthMethod = Literal["shared_key", "client_secret"]


@dataclass(frozen=True)
class AzureSettings:
    """Where and how to reach one blob container: Velero's Azure location config, validated."""

    container: str
    account: str
    endpoint: str
    auth: AuthMethod
    prefix: str = ""
    custom_endpoint: bool = False
    allow_http: bool = False
    ca_cert_pem: str | None = field(default=None, repr=False)
    account_key: str | None = field(default=None, repr=False)
    tenant_id: str | None = None
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    authority_host: str | None = None
    block_size: int | None = None
    credentials: AzureCredentials | None = None

    @classmethod
    def from_velero_config(
        cls,
        container: str,
        prefix: str = "",
        config: Mapping[str, str] | None = None,
        credentials: AzureCredentials | str | bytes | None = None,
    ) -> AzureSettings:
        """Translate a BackupStorageLocation's bucket (the container), prefix and ``config``.

        ``credentials`` is the parsed credentials file or its content; without
        it, ``config.credentialsFile`` is read if set.
        """
        values = dict(config or {})
        check_config_keys(values, VELERO_AZURE_CONFIG_KEYS)
        account = values.get("storageAccount", "")
        if not account:
            raise StorageConfigError(
                "storageAccount is required in the BackupStorageLocation's config",
                hint="set config.storageAccount to the name of the storage account that holds the container",
            )
        if not _ACCOUNT_NAME.fullmatch(account):
            raise StorageConfigError(
                f"invalid storageAccount {account!r}: a storage account name has 3 to 24 lowercase letters and digits"
            )
        if isinstance(credentials, str | bytes):
            credentials = parse_azure_credentials(credentials)
        elif credentials is None and values.get("credentialsFile"):
            credentials = load_azure_credentials_file(values["credentialsFile"])

        cloud_name = credentials.cloud_name if credentials else ""
        cloud = _CLOUDS.get(cloud_name.upper())
        if cloud is None:
            raise StorageConfigError(
                f"unknown cloud: {cloud_name}",
                hint=f"set {CLOUD_NAME} in the credentials to AzurePublicCloud, AzureChinaCloud or AzureUSGovernmentCloud",
            )
        uri = parse_url(
            values, "storageAccountURI", example="https://myaccount.blob.core.windows.net", query_hint=_NO_SAS
        )
        authority = parse_url(
            values,
            "activeDirectoryAuthorityURI",
            example="https://login.microsoftonline.com",
            query_hint=_NO_SAS,
        )
        endpoint = uri or f"https://{account}.blob.{cloud.blob_suffix}"

        auth: AuthMethod
        account_key = tenant_id = client_id = client_secret = None
        key_entry = values.get("storageAccountKeyEnvVar", "")
        if key_entry:
            auth, account_key = "shared_key", _account_key(credentials, key_entry)
        elif parse_bool(values, "useAAD"):
            auth = "client_secret"
            tenant_id, client_id, client_secret = _service_principal(credentials)
        else:
            raise _no_key_error(credentials)
        ca_pem = ca_certificate(values["caCert"]) if values.get("caCert") else None
        return cls(
            container=container,
            account=account,
            endpoint=endpoint,
            auth=auth,
            prefix=prefix,
            custom_endpoint=uri is not None,
            allow_http=endpoint.startswith("http://"),
            ca_cert_pem=ca_pem,
            account_key=account_key,
            tenant_id=tenant_id,
            client_id=client_id,
            client_secret=client_secret,
            authority_host=(authority or cloud.authority_host) if auth == "client_secret" else None,
            block_size=_block_size(values.get("blockSizeInBytes")),
            credentials=credentials,
        )

    @property
    def location(self) -> str:
        """The account, container and prefix as a URL, plus the endpoint when it is a custom one."""
        where = f"azure://{self.account}/{self.container}"
        if self.prefix:
            where = f"{where}/{self.prefix}"
        return f"{where} at {self.endpoint}" if self.custom_endpoint else where

    def secret_values(self) -> tuple[str, ...]:
        secrets = list(self.credentials.secret_values if self.credentials else ())
        secrets += [value for value in (self.account_key, self.client_secret) if value]
        return tuple(dict.fromkeys(secrets))


def _account_key(credentials: AzureCredentials | None, entry: str) -> str:
    if credentials is None:
        raise StorageConfigError(
            f"config.storageAccountKeyEnvVar names {entry}, but the location has no credentials",
            hint=f"give the location a credential whose file has a line {entry}=<the storage account's access key>",
        )
    key = credentials.get(entry)
    if not key:
        raise StorageConfigError(
            f"no storage account access key with key {entry} found in {credentials.source}",
            hint=f"add a line {entry}=<the storage account's access key>, or correct config.storageAccountKeyEnvVar",
        )
    return key


def _service_principal(credentials: AzureCredentials | None) -> tuple[str, str, str]:
    wanted = (TENANT_ID, CLIENT_ID, CLIENT_SECRET)
    missing = [name for name in wanted if not (credentials and credentials.get(name))]
    if missing:
        where = credentials.source if credentials else "the location's credentials (it has none)"
        raise StorageConfigError(
            f'useAAD is "true", but {where} has no {", ".join(missing)}',
            hint=(
                "Azure AD authentication needs a service principal's AZURE_TENANT_ID, AZURE_CLIENT_ID and "
                "AZURE_CLIENT_SECRET (certificates, workload and managed identities are not supported); "
                "or authenticate with the storage account key through config.storageAccountKeyEnvVar"
            ),
        )
    assert credentials is not None
    return credentials.tenant_id, credentials.client_id, credentials.client_secret


def _no_key_error(credentials: AzureCredentials | None) -> StorageConfigError:
    hint = (
        "put the storage account's access key into the credentials (for example "
        "AZURE_STORAGE_ACCOUNT_ACCESS_KEY=...) and set config.storageAccountKeyEnvVar to that name, "
        'or set config.useAAD: "true" to authenticate as the service principal'
    )
    if credentials is not None and (credentials.client_id or credentials.client_secret):
        return StorageConfigError(
            "config.storageAccountKeyEnvVar is not set: Velero would fetch the storage account key "
            "through Azure Resource Manager with the service principal, which strongroom does not do",
            hint=hint,
        )
    return StorageConfigError(
        "config.storageAccountKeyEnvVar is not set and useAAD is not true, so there is no way to "
        "authenticate to the storage account (strongroom does not fetch keys through Azure Resource Manager)",
        hint=hint,
    )


def _block_size(value: str | None) -> int | None:
    """The block size Velero would use, None for our default; mistakes are warnings, as in Velero."""
    if value is None:
        return None
    if not _GO_INT.fullmatch(value):
        _log.warning("config.blockSizeInBytes %r is not an integer; using the default block size", value)
        return None
    size = int(value)
    if size <= 0:
        _log.warning("config.blockSizeInBytes (%d) is < 1; using the default block size", size)
        return None
    if size > MAX_BLOCK_SIZE:
        _log.warning(
            "config.blockSizeInBytes (%d) is above the maximum of %d; using %d",
            size,
            MAX_BLOCK_SIZE,
            MAX_BLOCK_SIZE,
        )
        return MAX_BLOCK_SIZE
    return size


# Azure error bodies: <Code>...</Code><Message>first line\nRequestId:...</Message>.
_AZURE_ERROR = re.compile(r"<Code>(?P<code>[^<]*)</Code>(?:\s*<Message>(?P<message>[^<\n]*))?")
_STATUS = re.compile(r"status code: (?P<status>\d{3}[^:]*)")
_CLIENT_ERROR = re.compile(r"status code: 4(?!08|29)\d\d")
_STATUS_PREFIX = re.compile(r".*?status code: \d{3}[^:]*")
_SAS_SIGNATURE = re.compile(r"(?P<name>[?&]sig=)[^&\s\"']+")
_SHARED_KEY = re.compile(r"(?P<name>SharedKey(?:Lite)? [^:\s]+:)[^\s\"',]+")
_TOKEN_REQUEST = "Error performing token request"
_AAD_ERROR = re.compile(
    r'"error"\s*:\s*"(?P<error>[^"]*)"\s*,\s*"error_description"\s*:\s*"(?P<description>[^"\\]*)'
)
_CONTAINER_MISSING = ("ContainerNotFound", "container does not exist")
_REDACTED = "<redacted>"


def _container_missing(exc: BaseException) -> bool:
    text = str(exc)
    return any(marker in text for marker in _CONTAINER_MISSING)


class AzureObjectStore(ObstoreStore):
    """A blob container (and prefix) of an Azure storage account."""

    def __init__(self, settings: AzureSettings, options: StoreOptions | None = None) -> None:
        options = options or StoreOptions()
        self.settings = settings
        self.options = options
        try:
            store = AzureStore(
                settings.container,
                prefix=settings.prefix or None,
                config=_azure_config(settings),
                client_options=client_config(
                    options,
                    endpoint=settings.endpoint,
                    allow_http=settings.allow_http,
                    ca_cert_pem=settings.ca_cert_pem,
                ),
                retry_config=retry_config(options),
                credential_provider=_SharedKey(settings.account_key) if settings.account_key else None,
            )
        except PROVIDER_ERRORS as exc:
            raise configuration_error(exc, "Azure", settings.location, settings.secret_values()) from None
        self._azure_store = store
        super().__init__(
            store,
            location=settings.location,
            part_size=settings.block_size or options.part_size,
            max_concurrency=options.max_concurrency,
            stream_chunk_size=options.stream_chunk_size,
            supports_attributes=True,
            # Azure lists blobs in key order, so a broken listing resumes after its last key.
            ordered_listing=True,
            repeat_backoff=options.init_backoff.total_seconds(),
            secrets=settings.secret_values(),
        )

    async def delete(self, key: str) -> None:
        # obstore deletes through a blob batch and reports a missing container like
        # a missing blob; only the latter may pass silently.
        path = validate_key(key)
        try:
            await settle(self._azure_store.delete_async(path))
        except FileNotFoundError as exc:
            if _container_missing(exc):
                raise self.translate(exc, "delete", key, missing="container") from self.cause(exc)
            return
        except PROVIDER_ERRORS as exc:
            if (
                not isinstance(exc, GenericError)
                or isinstance(
                    exc, PermissionDeniedError | UnauthenticatedError | InvalidPathError | NotSupportedError
                )
                or _CLIENT_ERROR.search(str(exc))
            ):
                # A refused request (a 4xx answer, which obstore reports for a batch as a
                # generic error) is not repeated.
                raise self.translate(exc, "delete", key) from self.cause(exc)
            # Possibly transient: the shared loop repeats it with backoff.
            await super().delete(key)

    async def download_url(self, key: str, expires_in: timedelta) -> str:
        path = validate_key(key)
        try:
            # A service SAS, signed locally with the shared key (a user delegation
            # key is fetched first under useAAD); the URL never carries the key.
            return await obstore.sign_async(self._azure_store, "GET", path, expires_in)
        except PROVIDER_ERRORS as exc:
            raise self.translate(exc, "sign", key) from self.cause(exc)

    def translate(
        self, exc: BaseException, action: str, key: str | None, *, missing: str = "object"
    ) -> StorageError:
        """Our exception for obstore's ``exc``, with Azure's error codes and hints."""
        detail = self._azure_detail(exc)
        target = f"{key!r} in {self.location}" if key else self.location
        if _container_missing(exc):
            return StorageError(
                f"cannot {action} {target}: the container does not exist ({detail})",
                hint="create it, or correct the bucket (the container's name) or storageAccount of the backup storage location",
            )
        if isinstance(exc, FileNotFoundError):
            if missing == "object":
                return ObjectNotFound(f"no object {key!r} in {self.location}")
            return StorageError(f"cannot {action} {target}: not found ({detail})")
        if isinstance(exc, InvalidPathError | ValueError):
            return StorageConfigError(f"cannot {action} {target}: {detail}")
        if isinstance(exc, NotSupportedError | NotImplementedError):
            return StorageConfigError(f"cannot {action} {target}: not supported by this store: {detail}")
        return StorageError(f"cannot {action} {target}: {detail}", hint=self._hint(exc, detail))

    def _redact(self, text: str) -> str:
        text = super()._redact(text)
        text = _SAS_SIGNATURE.sub(rf"\g<name>{_REDACTED}", text)
        return _SHARED_KEY.sub(rf"\g<name>{_REDACTED}", text)

    def _azure_detail(self, exc: BaseException) -> str:
        """The useful part of a provider message: Azure's error code and message, and the HTTP status."""
        text = str(exc)
        first_line = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
        match = _AZURE_ERROR.search(text)
        if _TOKEN_REQUEST in text:
            # Azure AD answers in JSON; its AADSTS code says what is wrong.
            aad = _AAD_ERROR.search(text)
            status = _STATUS.search(first_line)
            detail = "the Azure AD token request failed"
            if aad:
                detail = f"{detail}: {aad.group('error')}: {aad.group('description')}"
            if status:
                detail = f"{detail} (HTTP {status.group('status').strip()})"
        elif match:
            code, message = match.group("code"), (match.group("message") or "").strip()
            detail = f"{code}: {message}" if message else code
            status = _STATUS.search(first_line)
            if status:
                detail = f"{detail} (HTTP {status.group('status').strip()})"
        else:
            cut = _STATUS_PREFIX.match(first_line)
            detail = cut.group(0) if cut else first_line
        return self._redact(detail)

    def _hint(self, exc: BaseException, detail: str) -> str | None:
        text = f"{detail} {exc}"
        if _TOKEN_REQUEST in text:
            return (
                "Azure AD refused the service principal: check AZURE_TENANT_ID, AZURE_CLIENT_ID and "
                "AZURE_CLIENT_SECRET in the credentials (and activeDirectoryAuthorityURI, if set)"
            )
        if isinstance(exc, PermissionDeniedError | UnauthenticatedError) or any(
            code in text
            for code in (
                "AuthenticationFailed",
                "AuthorizationFailure",
                "AuthorizationPermissionMismatch",
                "403 Forbidden",
            )
        ):
            if self.settings.auth == "shared_key":
                return (
                    "check the storage account key (the credentials entry that config.storageAccountKeyEnvVar "
                    "names) and config.storageAccount"
                )
            return (
                "check the service principal (AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET) and that "
                "it has a data role such as Storage Blob Data Contributor on the container"
            )
        if "certificate" in text.lower():
            return "the server's TLS certificate is not trusted: give its CA certificate in caCert"
        if "error sending request" in text or "Connect" in text or "timed out" in text.lower():
            return (
                "check that the blob service's address (storageAccountURI, or the storage account name and "
                "AZURE_CLOUD_NAME) is right and reachable from here"
            )
        return None


class _SharedKey:
    """Hands the account key to obstore, which then never looks for credentials anywhere else."""

    def __init__(self, key: str) -> None:
        self._key = key

    def __call__(self) -> AzureAccessKey:
        # A key never expires, so obstore asks once and caches it.
        return {"access_key": self._key, "expires_at": None}

    def __repr__(self) -> str:
        return "_SharedKey(<hidden>)"


def _azure_config(settings: AzureSettings) -> AzureConfig:
    # Every setting that the AZURE_* environment could otherwise supply is set here.
    config: AzureConfig = {
        "account_name": settings.account,
        "endpoint": settings.endpoint,
        "use_emulator": False,
        "use_fabric_endpoint": False,
        "skip_signature": False,
        "disable_tagging": True,
    }
    if settings.auth == "client_secret":
        assert settings.tenant_id and settings.client_id and settings.client_secret
        config["credential_type"] = "client_secret"
        config["tenant_id"] = settings.tenant_id
        config["client_id"] = settings.client_id
        config["client_secret"] = settings.client_secret
        if settings.authority_host:
            config["authority_host"] = settings.authority_host
    return config
