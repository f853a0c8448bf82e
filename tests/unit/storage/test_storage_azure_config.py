"""How an Azure BackupStorageLocation (Velero's Azure plugin keys) and its credentials file become a store."""

from __future__ import annotations

import base64
import logging
from datetime import timedelta
from pathlib import Path

import pytest
from tests.runasync import run_async

from strongroom.errors import StorageConfigError
from strongroom.storage import open_store
from strongroom.storage.azure import (
    MAX_BLOCK_SIZE,
    VELERO_AZURE_CONFIG_KEYS,
    AzureCredentials,
    AzureObjectStore,
    AzureSettings,
    parse_azure_credentials,
)
from strongroom.storage.credentials import AwsCredentials

MiB = 1024 * 1024
ACCOUNT_KEY = base64.b64encode(b"an-azure-storage-account-key-for-the-unit-tests-0123456789abcdef").decode()
CLIENT_SECRET = "Client~Secret.Value_123"
# The OADP guide's credentials-velero for Azure.
CREDENTIALS = f"""AZURE_SUBSCRIPTION_ID=00000000-1111-2222-3333-444444444444
AZURE_TENANT_ID=11111111-2222-3333-4444-555555555555
AZURE_CLIENT_ID=22222222-3333-4444-5555-666666666666
AZURE_CLIENT_SECRET={CLIENT_SECRET}
AZURE_RESOURCE_GROUP=Velero_Backups
AZURE_STORAGE_ACCOUNT_ACCESS_KEY={ACCOUNT_KEY}
AZURE_CLOUD_NAME=AzurePublicCloud
"""
# The seed's DPA example (tests/data/seed/dpa-0616-azure.yaml).
OADP_CONFIG = {
    "resourceGroup": "Velero_Backups",
    "storageAccount": "velero0a1b2c3d4e5f",
    "subscriptionId": "00000000-1111-2222-3333-444444444444",
    "storageAccountKeyEnvVar": "AZURE_STORAGE_ACCOUNT_ACCESS_KEY",
}
AAD_CONFIG = {"storageAccount": "velero0a1b2c3d4e5f", "useAAD": "true"}


def settings(
    config: dict[str, str], credentials: str | AzureCredentials | None = CREDENTIALS, prefix: str = ""
) -> AzureSettings:
    return AzureSettings.from_velero_config("velero", prefix, config, credentials)


def message(config: dict[str, str], credentials: str | None = CREDENTIALS) -> str:
    with pytest.raises(StorageConfigError) as raised:
        settings(config, credentials)
    return raised.value.message


def hint(config: dict[str, str], credentials: str | None = CREDENTIALS) -> str:
    with pytest.raises(StorageConfigError) as raised:
        settings(config, credentials)
    return str(raised.value.hint)


# --- the credentials file ---------------------------------------------------------------------


def test_the_oadp_credentials_file_parses() -> None:
    credentials = parse_azure_credentials(CREDENTIALS)
    assert credentials.names() == (
        "AZURE_SUBSCRIPTION_ID",
        "AZURE_TENANT_ID",
        "AZURE_CLIENT_ID",
        "AZURE_CLIENT_SECRET",
        "AZURE_RESOURCE_GROUP",
        "AZURE_STORAGE_ACCOUNT_ACCESS_KEY",
        "AZURE_CLOUD_NAME",
    )
    assert credentials.subscription_id == "00000000-1111-2222-3333-444444444444"
    assert credentials.tenant_id == "11111111-2222-3333-4444-555555555555"
    assert credentials.client_id == "22222222-3333-4444-5555-666666666666"
    assert credentials.client_secret == CLIENT_SECRET
    assert credentials.resource_group == "Velero_Backups"
    assert credentials.cloud_name == "AzurePublicCloud"
    assert credentials.get("AZURE_STORAGE_ACCOUNT_ACCESS_KEY") == ACCOUNT_KEY
    assert credentials.get("AZURE_NOT_THERE") == ""
    assert "AZURE_CLIENT_ID" in credentials
    assert credentials.source == "the credentials file"


def test_credentials_never_show_a_value() -> None:
    credentials = parse_azure_credentials(CREDENTIALS, "secret 'cloud-credentials-azure', key 'cloud'")
    for text in (repr(credentials), str(credentials), repr(settings(OADP_CONFIG, credentials))):
        assert ACCOUNT_KEY not in text
        assert CLIENT_SECRET not in text
    assert repr(credentials).startswith(
        "AzureCredentials(source=\"secret 'cloud-credentials-azure', key 'cloud'\""
    )
    assert "AZURE_CLIENT_SECRET" in repr(credentials)
    assert set(credentials.secret_values) == {CLIENT_SECRET, ACCOUNT_KEY}


def test_credentials_are_frozen_and_comparable() -> None:
    first, second = parse_azure_credentials(CREDENTIALS), parse_azure_credentials(CREDENTIALS.encode())
    assert first == second
    assert hash(first) == hash(second)
    with pytest.raises(AttributeError):
        first.source = "elsewhere"  # type: ignore[misc]


def test_dotenv_syntax_is_accepted() -> None:
    content = (
        "\ufeff# credentials-velero\r\n"
        "\r\n"
        "; an ini-style comment\n"
        "export AZURE_SUBSCRIPTION_ID=sub\n"
        "AZURE_TENANT_ID = tenant\n"
        "AZURE_CLIENT_ID='client id # not a comment'\n"
        'AZURE_CLIENT_SECRET="a \\"quoted\\" secret\\n"  # a comment\n'
        "AZURE_RESOURCE_GROUP=group # a comment\n"
        "AZURE_STORAGE_ACCOUNT_ACCESS_KEY=abc#def==\n"
        "AZURE_CLOUD_NAME=\n"
        "exported_lower_case=ok\n"
    )
    credentials = parse_azure_credentials(content.encode())
    assert dict(credentials.entries) == {
        "AZURE_SUBSCRIPTION_ID": "sub",
        "AZURE_TENANT_ID": "tenant",
        "AZURE_CLIENT_ID": "client id # not a comment",
        "AZURE_CLIENT_SECRET": 'a "quoted" secret\n',
        "AZURE_RESOURCE_GROUP": "group",
        "AZURE_STORAGE_ACCOUNT_ACCESS_KEY": "abc#def==",
        "AZURE_CLOUD_NAME": "",
        "exported_lower_case": "ok",
    }


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            "AZURE_SUBSCRIPTION_ID=abc\ntopsecretvalue\n",
            "the credentials file, line 2: expected KEY=VALUE (for example AZURE_SUBSCRIPTION_ID=...)",
        ),
        (
            "=topsecretvalue\n",
            "the credentials file, line 1: expected KEY=VALUE (for example AZURE_SUBSCRIPTION_ID=...)",
        ),
        (
            "AZURE CLIENT SECRET=topsecretvalue\n",
            "the credentials file, line 1: expected KEY=VALUE (for example AZURE_SUBSCRIPTION_ID=...)",
        ),
        (
            "AZURE_CLIENT_SECRET=topsecretvalue\n# again\nAZURE_CLIENT_SECRET=topsecretvalue2\n",
            "the credentials file, line 3: AZURE_CLIENT_SECRET is set twice (first on line 1)",
        ),
        (
            "[default]\nAZURE_CLIENT_SECRET=topsecretvalue\n",
            "the credentials file, line 1: a [section] header belongs in an AWS credentials file; "
            "expected KEY=VALUE (for example AZURE_SUBSCRIPTION_ID=...)",
        ),
        (
            'AZURE_CLIENT_SECRET="topsecretvalue\n',
            "the credentials file, line 1: the quoted value of AZURE_CLIENT_SECRET has no closing quote",
        ),
        (
            "AZURE_CLIENT_SECRET='topsecret'value\n",
            "the credentials file, line 1: text follows the closing quote of AZURE_CLIENT_SECRET's value",
        ),
    ],
)
def test_credential_mistakes_name_the_line_and_never_the_value(content: str, expected: str) -> None:
    with pytest.raises(StorageConfigError) as raised:
        parse_azure_credentials(content)
    assert raised.value.message == expected
    assert "topsecret" not in str(raised.value)


def test_credential_mistakes_name_the_source() -> None:
    with pytest.raises(StorageConfigError) as raised:
        parse_azure_credentials(
            b"AZURE_SUBSCRIPTION_ID=abc\n\xff\n", "secret 'cloud-credentials-azure', key 'cloud'"
        )
    assert raised.value.message == "secret 'cloud-credentials-azure', key 'cloud': not UTF-8 text (byte 26)"


# --- the location's config ------------------------------------------------------------------


def test_the_oadp_example_signs_with_the_storage_account_key() -> None:
    azure = settings(OADP_CONFIG, prefix="backups")
    assert azure.auth == "shared_key"
    assert azure.account == "velero0a1b2c3d4e5f"
    assert azure.account_key == ACCOUNT_KEY
    assert azure.endpoint == "https://velero0a1b2c3d4e5f.blob.core.windows.net"
    assert not azure.custom_endpoint
    assert not azure.allow_http
    assert (azure.tenant_id, azure.client_id, azure.client_secret, azure.authority_host) == (None,) * 4
    assert azure.block_size is None
    assert azure.location == "azure://velero0a1b2c3d4e5f/velero/backups"
    assert settings(OADP_CONFIG).location == "azure://velero0a1b2c3d4e5f/velero"
    assert set(azure.secret_values()) == {ACCOUNT_KEY, CLIENT_SECRET}
    assert ACCOUNT_KEY not in repr(azure)
    assert CLIENT_SECRET not in repr(azure)


def test_every_velero_key_is_accepted() -> None:
    config = dict.fromkeys(VELERO_AZURE_CONFIG_KEYS, "") | OADP_CONFIG
    config |= {"bucket": "velero", "prefix": "backups", "resticRepoPrefix": "azure:velero:/restic"}
    assert settings(config).auth == "shared_key"


def test_unknown_keys_are_refused_as_velero_does() -> None:
    assert message({**OADP_CONFIG, "region": "westeurope", "s3Url": "x"}) == (
        "config has invalid keys [region s3Url]; valid keys are [resourceGroup storageAccount subscriptionId "
        "blockSizeInBytes activeDirectoryAuthorityURI storageAccountURI useAAD storageAccountKeyEnvVar "
        "credentialsFile bucket prefix caCert resticRepoPrefix]"
    )


def test_the_storage_account_is_required_and_checked() -> None:
    assert message({}) == "storageAccount is required in the BackupStorageLocation's config"
    assert message({"storageAccountKeyEnvVar": "AZURE_STORAGE_ACCOUNT_ACCESS_KEY"}) == (
        "storageAccount is required in the BackupStorageLocation's config"
    )
    for bad in ("Velero", "ab", "a" * 25, "my-account", "acct.evil.example"):
        assert message({**OADP_CONFIG, "storageAccount": bad}) == (
            f"invalid storageAccount {bad!r}: a storage account name has 3 to 24 lowercase letters and digits"
        )


def test_the_key_entry_must_be_in_the_credentials() -> None:
    config = {**OADP_CONFIG, "storageAccountKeyEnvVar": "AZURE_STORAGE_KEY"}
    assert (
        message(config)
        == "no storage account access key with key AZURE_STORAGE_KEY found in the credentials file"
    )
    assert "AZURE_STORAGE_KEY=" in hint(config)
    empty = CREDENTIALS.replace(f"ACCESS_KEY={ACCOUNT_KEY}", "ACCESS_KEY=")
    assert message(OADP_CONFIG, empty) == (
        "no storage account access key with key AZURE_STORAGE_ACCOUNT_ACCESS_KEY found in the credentials file"
    )
    named = parse_azure_credentials(
        "AZURE_SUBSCRIPTION_ID=x\n", "secret 'cloud-credentials-azure', key 'cloud'"
    )
    with pytest.raises(StorageConfigError) as raised:
        settings(OADP_CONFIG, named)
    assert raised.value.message == (
        "no storage account access key with key AZURE_STORAGE_ACCOUNT_ACCESS_KEY found in "
        "secret 'cloud-credentials-azure', key 'cloud'"
    )
    assert message(OADP_CONFIG, None) == (
        "config.storageAccountKeyEnvVar names AZURE_STORAGE_ACCOUNT_ACCESS_KEY, but the location has no credentials"
    )


def test_any_entry_can_hold_the_key_and_it_is_then_secret() -> None:
    azure = settings({**OADP_CONFIG, "storageAccountKeyEnvVar": "MY_ACCOUNT"}, "MY_ACCOUNT=the-key-value\n")
    assert azure.account_key == "the-key-value"
    assert azure.secret_values() == ("the-key-value",)


def test_use_aad_authenticates_as_the_service_principal() -> None:
    azure = settings(AAD_CONFIG)
    assert azure.auth == "client_secret"
    assert azure.account_key is None
    assert (azure.tenant_id, azure.client_id, azure.client_secret) == (
        "11111111-2222-3333-4444-555555555555",
        "22222222-3333-4444-5555-666666666666",
        CLIENT_SECRET,
    )
    assert azure.authority_host == "https://login.microsoftonline.com"
    custom = settings({**AAD_CONFIG, "activeDirectoryAuthorityURI": "https://login.example.com/"})
    assert custom.authority_host == "https://login.example.com"
    # Go's ParseBool: these all mean true; the key entry, when set, wins (as in Velero).
    for value in ("1", "t", "T", "TRUE", "True"):
        assert settings({**AAD_CONFIG, "useAAD": value}).auth == "client_secret"
    assert settings({**OADP_CONFIG, "useAAD": "true"}).auth == "shared_key"


def test_use_aad_names_each_missing_service_principal_entry() -> None:
    assert message(AAD_CONFIG, "AZURE_TENANT_ID=t\n") == (
        'useAAD is "true", but the credentials file has no AZURE_CLIENT_ID, AZURE_CLIENT_SECRET'
    )
    assert message(AAD_CONFIG, "AZURE_CLIENT_ID=c\nAZURE_CLIENT_SECRET=s\nAZURE_TENANT_ID=\n") == (
        'useAAD is "true", but the credentials file has no AZURE_TENANT_ID'
    )
    assert message(AAD_CONFIG, None) == (
        'useAAD is "true", but the location\'s credentials (it has none) has no '
        "AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET"
    )
    assert "managed identities are not supported" in hint(AAD_CONFIG, "AZURE_TENANT_ID=t\n")


def test_use_aad_must_be_a_go_bool() -> None:
    assert message({**AAD_CONFIG, "useAAD": "yes"}) == "could not parse useAAD (expected bool): 'yes'"
    for value in ("", "0", "f", "false", "FALSE"):
        # Without the key entry and without AAD there is no way in (see the next test).
        assert "storageAccountKeyEnvVar is not set" in message({**AAD_CONFIG, "useAAD": value})


def test_no_key_exchange_through_azure_resource_manager() -> None:
    config = {"storageAccount": "velero0a1b2c3d4e5f", "resourceGroup": "Velero_Backups"}
    assert message(config) == (
        "config.storageAccountKeyEnvVar is not set: Velero would fetch the storage account key "
        "through Azure Resource Manager with the service principal, which strongroom does not do"
    )
    assert hint(config) == (
        "put the storage account's access key into the credentials (for example "
        "AZURE_STORAGE_ACCOUNT_ACCESS_KEY=...) and set config.storageAccountKeyEnvVar to that name, "
        'or set config.useAAD: "true" to authenticate as the service principal'
    )
    assert message(config, None) == (
        "config.storageAccountKeyEnvVar is not set and useAAD is not true, so there is no way to "
        "authenticate to the storage account (strongroom does not fetch keys through Azure Resource Manager)"
    )
    assert "storageAccountKeyEnvVar" in hint(config, None)


@pytest.mark.parametrize(
    ("cloud", "endpoint", "authority"),
    [
        ("", "https://acct123.blob.core.windows.net", "https://login.microsoftonline.com"),
        ("AzurePublicCloud", "https://acct123.blob.core.windows.net", "https://login.microsoftonline.com"),
        ("AZURECLOUD", "https://acct123.blob.core.windows.net", "https://login.microsoftonline.com"),
        ("AzureChinaCloud", "https://acct123.blob.core.chinacloudapi.cn", "https://login.chinacloudapi.cn"),
        (
            "AzureUSGovernmentCloud",
            "https://acct123.blob.core.usgovcloudapi.net",
            "https://login.microsoftonline.us",
        ),
        (
            "azureusgovernment",
            "https://acct123.blob.core.usgovcloudapi.net",
            "https://login.microsoftonline.us",
        ),
    ],
)
def test_the_cloud_picks_the_endpoint_and_the_authority(cloud: str, endpoint: str, authority: str) -> None:
    credentials = CREDENTIALS.replace("AZURE_CLOUD_NAME=AzurePublicCloud", f"AZURE_CLOUD_NAME={cloud}")
    config = {"storageAccount": "acct123", "useAAD": "true"}
    azure = settings(config, credentials)
    assert (azure.endpoint, azure.authority_host) == (endpoint, authority)
    assert azure.location == "azure://acct123/velero"


def test_an_unknown_cloud_is_refused() -> None:
    credentials = CREDENTIALS.replace(
        "AZURE_CLOUD_NAME=AzurePublicCloud", "AZURE_CLOUD_NAME=AzureGermanCloud"
    )
    assert message(OADP_CONFIG, credentials) == "unknown cloud: AzureGermanCloud"
    assert "AzureChinaCloud" in hint(OADP_CONFIG, credentials)
    # Checked even when the endpoint is given, as in Velero.
    assert message({**OADP_CONFIG, "storageAccountURI": "https://blob.example.com"}, credentials) == (
        "unknown cloud: AzureGermanCloud"
    )


def test_storage_account_uri_is_the_endpoint() -> None:
    azurite = settings({**OADP_CONFIG, "storageAccountURI": "http://127.0.0.1:10000/devstoreaccount1/"})
    assert azurite.endpoint == "http://127.0.0.1:10000/devstoreaccount1"
    assert azurite.custom_endpoint
    assert azurite.allow_http
    assert azurite.location == "azure://velero0a1b2c3d4e5f/velero at http://127.0.0.1:10000/devstoreaccount1"
    private = settings({**OADP_CONFIG, "storageAccountURI": "https://velero0a1b2c3d4e5f.privatelink.example"})
    assert not private.allow_http
    assert (
        private.location
        == "azure://velero0a1b2c3d4e5f/velero at https://velero0a1b2c3d4e5f.privatelink.example"
    )


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        (
            "blob.example.com",
            "invalid storageAccountURI 'blob.example.com': it must be a URL starting with http:// or https://",
        ),
        (
            "ftp://blob.example.com",
            "invalid storageAccountURI 'ftp://blob.example.com': it must be a URL starting with http:// or https://",
        ),
        (
            "https://user:pw@blob.example.com",
            "invalid storageAccountURI: it must not contain a user name or password",
        ),
        (
            "https://blob.example.com/?sv=2020&sig=secret",
            "invalid storageAccountURI: it must not have a query or fragment",
        ),
    ],
)
def test_a_malformed_storage_account_uri_is_refused(uri: str, expected: str) -> None:
    assert message({**OADP_CONFIG, "storageAccountURI": uri}) == expected
    assert message({**AAD_CONFIG, "activeDirectoryAuthorityURI": uri}) == expected.replace(
        "storageAccountURI", "activeDirectoryAuthorityURI"
    )


def test_block_size_in_bytes_is_the_block_size() -> None:
    assert settings({**OADP_CONFIG, "blockSizeInBytes": "8388608"}).block_size == 8 * MiB
    assert settings({**OADP_CONFIG, "blockSizeInBytes": "+1048576"}).block_size == MiB
    assert settings({**OADP_CONFIG, "blockSizeInBytes": str(MAX_BLOCK_SIZE)}).block_size == MAX_BLOCK_SIZE


@pytest.mark.parametrize(
    ("value", "expected", "warning"),
    [
        ("8MiB", None, "config.blockSizeInBytes '8MiB' is not an integer; using the default block size"),
        (" 1024", None, "config.blockSizeInBytes ' 1024' is not an integer; using the default block size"),
        ("0", None, "config.blockSizeInBytes (0) is < 1; using the default block size"),
        ("-5", None, "config.blockSizeInBytes (-5) is < 1; using the default block size"),
        (
            str(MAX_BLOCK_SIZE + 1),
            MAX_BLOCK_SIZE,
            f"config.blockSizeInBytes ({MAX_BLOCK_SIZE + 1}) is above the maximum of {MAX_BLOCK_SIZE}; "
            f"using {MAX_BLOCK_SIZE}",
        ),
    ],
)
def test_a_bad_block_size_falls_back_with_a_warning_as_in_velero(
    value: str, expected: int | None, warning: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="strongroom.storage.azure")
    assert settings({**OADP_CONFIG, "blockSizeInBytes": value}).block_size == expected
    assert [record.getMessage() for record in caplog.records] == [warning]


def test_ca_cert_is_read_as_for_s3(tmp_path: Path) -> None:
    from strongroom.sandbox.pki import ensure_pki

    ca_file = ensure_pki(tmp_path).ca_cert
    pem = ca_file.read_text()
    for value in (pem, base64.b64encode(pem.encode()).decode(), str(ca_file)):
        assert settings({**OADP_CONFIG, "caCert": value}).ca_cert_pem == pem
    assert message({**OADP_CONFIG, "caCert": "not a certificate"}) == (
        "caCert is neither a PEM certificate, nor base64 of one, nor a readable file"
    )


def test_credentials_file_is_read_when_none_are_given(tmp_path: Path) -> None:
    path = tmp_path / "credentials-velero"
    path.write_text(CREDENTIALS)
    azure = settings({**OADP_CONFIG, "credentialsFile": str(path)}, None)
    assert azure.account_key == ACCOUNT_KEY
    assert azure.credentials is not None
    assert azure.credentials.source == str(path)
    assert message({**OADP_CONFIG, "credentialsFile": str(tmp_path / "absent")}, None) == (
        f"cannot read the credentials file {str(tmp_path / 'absent')!r}: No such file or directory"
    )
    path.write_text("AZURE_STORAGE_ACCOUNT_ACCESS_KEY=topsecret\nnonsense\n")
    assert message({**OADP_CONFIG, "credentialsFile": str(path)}, None) == (
        f"{path}, line 2: expected KEY=VALUE (for example AZURE_SUBSCRIPTION_ID=...)"
    )


# --- the store ---------------------------------------------------------------------------------


def test_open_store_builds_an_azure_store_without_a_request() -> None:
    store = open_store("azure", "/velero/", "/backups/", OADP_CONFIG, CREDENTIALS)
    assert isinstance(store, AzureObjectStore)
    assert store.location == "azure://velero0a1b2c3d4e5f/velero/backups"
    assert repr(store) == "AzureObjectStore('azure://velero0a1b2c3d4e5f/velero/backups')"
    parsed = parse_azure_credentials(CREDENTIALS)
    assert isinstance(open_store("velero.io/azure", "velero", "", OADP_CONFIG, parsed), AzureObjectStore)
    with pytest.raises(StorageConfigError, match="an azure location needs Azure credentials"):
        open_store("azure", "velero", "", OADP_CONFIG, AwsCredentials("AKIAEXAMPLE00000", "secret"))


def test_the_store_honours_the_block_size_and_the_service_principal() -> None:
    store = AzureObjectStore(settings({**OADP_CONFIG, "blockSizeInBytes": str(2 * MiB)}))
    assert store.settings.block_size == 2 * MiB
    aad = AzureObjectStore(settings(AAD_CONFIG))
    assert aad.settings.auth == "client_secret"
    assert CLIENT_SECRET not in repr(aad)


@run_async
async def test_a_download_url_is_signed_locally_with_the_key() -> None:
    store = open_store("azure", "velero", "backups", OADP_CONFIG, CREDENTIALS)
    url = await store.download_url("backups/b1/b1-logs.gz", timedelta(minutes=10))
    assert url.startswith(
        "https://velero0a1b2c3d4e5f.blob.core.windows.net/velero/backups/backups/b1/b1-logs.gz?"
    )
    assert "sp=r" in url
    assert "sig=" in url
    assert ACCOUNT_KEY not in url
    with pytest.raises(StorageConfigError, match="invalid object key"):
        await store.download_url("../escape", timedelta(minutes=1))
