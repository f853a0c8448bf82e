"""How a gcp BackupStorageLocation's config and JSON credentials become a GCS store, without a server.

Nothing here sends a request: the store makes its client on first use, and
the tests that use one fail before any request could be made.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tests.runasync import run_async

from strongroom.errors import StorageConfigError
from strongroom.sandbox.pki import ensure_pki
from strongroom.storage.gcs import (
    VELERO_GCP_CONFIG_KEYS,
    GcpCredentials,
    GcsObjectStore,
    GcsSettings,
    load_gcp_credentials_file,
    parse_gcp_credentials,
)

SOURCE = "the credentials file"
PRIVATE_KEY = "-----BEGIN PRIVATE KEY-----\nSeedSecretValue\n-----END PRIVATE KEY-----\n"
# The shape of the seed's cloud-credentials-gcp key (its private key is a placeholder).
KEY: dict[str, Any] = {
    "type": "service_account",
    "project_id": "my-project-123456",
    "private_key_id": "0123private-key-id",
    "private_key": PRIVATE_KEY,
    "client_email": "velero@my-project-123456.iam.gserviceaccount.com",
    "client_id": "123456789012345678901",
    "token_uri": "https://oauth2.googleapis.com/token",
}
EXTERNAL: dict[str, Any] = {
    "type": "external_account",
    "audience": "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/k8s",
    "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
    "token_url": "https://sts.googleapis.com/v1/token",
    "credential_source": {"file": "/var/run/secrets/openshift/serviceaccount/token"},
}
USER: dict[str, Any] = {
    "type": "authorized_user",
    "client_id": "764086051850-6qr4p6gpi6hn506pt8ejuq83di341hur.apps.googleusercontent.com",
    "client_secret": "d-FL95Q19q7MQmFpd7hHD0Ty",
    "refresh_token": "1//0refresh-token-value",
}


def with_(base: dict[str, Any], **changes: Any) -> str:
    document = {**base, **changes}
    return json.dumps({name: value for name, value in document.items() if value is not None})


def refused(content: str | bytes) -> StorageConfigError:
    with pytest.raises(StorageConfigError) as raised:
        parse_gcp_credentials(content)
    for secret in (PRIVATE_KEY, "SeedSecretValue", "0123private-key-id", "d-FL95Q19q7MQmFpd7hHD0Ty"):
        assert secret not in str(raised.value)
    return raised.value


@pytest.fixture(scope="module")
def ca_pem(tmp_path_factory: pytest.TempPathFactory) -> str:
    return ensure_pki(tmp_path_factory.mktemp("pki")).ca_cert.read_text()


# -- config keys -----------------------------------------------------------------------------


def test_the_keys_are_the_gcp_plugins_plus_the_servers() -> None:
    assert VELERO_GCP_CONFIG_KEYS == (
        "kmsKeyName",
        "serviceAccount",
        "credentialsFile",
        "storeEndpoint",
        "universeDomain",
        "bucket",
        "prefix",
        "caCert",
        "resticRepoPrefix",
    )


def test_unknown_keys_are_refused_with_the_plugins_wording() -> None:
    with pytest.raises(StorageConfigError) as raised:
        GcsSettings.from_velero_config(
            "velero-bucket", "", {"region": "us", "s3Url": "http://x", "prefix": "p"}
        )
    assert raised.value.message == (
        "config has invalid keys [region s3Url]; valid keys are [kmsKeyName serviceAccount credentialsFile "
        "storeEndpoint universeDomain bucket prefix caCert resticRepoPrefix]"
    )


def test_a_plain_location_goes_to_google_with_the_default_credentials() -> None:
    gcs = GcsSettings.from_velero_config("velero-bucket", "velero", {"bucket": "velero-bucket"})
    assert (gcs.endpoint, gcs.kms_key_name, gcs.service_account, gcs.universe_domain) == (None,) * 4
    assert gcs.credentials is None
    assert not gcs.anonymous
    assert gcs.location == "gs://velero-bucket/velero"
    assert GcsSettings.from_velero_config("velero-bucket").location == "gs://velero-bucket"
    assert gcs.secret_values() == ()


@pytest.mark.parametrize(
    ("value", "endpoint"),
    [
        # The plugin's documented example is a bare host name.
        ("storage-example.p.googleapis.com", "https://storage-example.p.googleapis.com"),
        ("https://storage.example.com", "https://storage.example.com"),
        ("https://storage.example.com/", "https://storage.example.com"),
        ("https://storage.googleapis.com/storage/v1/", "https://storage.googleapis.com"),
        ("http://127.0.0.1:4443/storage/v1", "http://127.0.0.1:4443"),
        ("http://localhost:4443", "http://localhost:4443"),
    ],
)
def test_store_endpoint_forms(value: str, endpoint: str) -> None:
    gcs = GcsSettings.from_velero_config("b", "p", {"storeEndpoint": value})
    assert gcs.endpoint == endpoint
    assert gcs.location == f"gs://b/p at {endpoint}"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "ftp://storage.example.com",
            "invalid storeEndpoint 'ftp://storage.example.com': it must be a host name or a URL starting "
            "with http:// or https://",
        ),
        (
            "https://",
            "invalid storeEndpoint 'https://': it must be a host name or a URL starting with http:// or https://",
        ),
        (
            "https://admin:hunter2@storage.example.com",
            "invalid storeEndpoint: it must not contain a user name or password",
        ),
        (
            "https://storage.example.com/?alt=json",
            "invalid storeEndpoint 'https://storage.example.com/?alt=json': it must not have a query or fragment",
        ),
        (
            "https://storage.example.com:port",
            "invalid storeEndpoint 'https://storage.example.com:port': its port is not a number",
        ),
        (
            "https://storage.example.com/bucket",
            "invalid storeEndpoint 'https://storage.example.com/bucket': only the JSON API's path /storage/v1 "
            "may follow the host",
        ),
    ],
)
def test_bad_store_endpoints_are_refused(value: str, message: str) -> None:
    with pytest.raises(StorageConfigError) as raised:
        GcsSettings.from_velero_config("b", "", {"storeEndpoint": value})
    assert raised.value.message == message
    assert "hunter2" not in str(raised.value)


def test_only_a_plain_http_endpoint_without_credentials_is_anonymous() -> None:
    assert GcsSettings.from_velero_config("b", "", {"storeEndpoint": "http://127.0.0.1:4443"}).anonymous
    # A Private Service Connect endpoint still uses the default credentials (workload identity), as in Velero.
    assert not GcsSettings.from_velero_config(
        "b", "", {"storeEndpoint": "storage-x.p.googleapis.com"}
    ).anonymous
    assert not GcsSettings.from_velero_config(
        "b", "", {"storeEndpoint": "http://127.0.0.1:4443"}, json.dumps(KEY)
    ).anonymous


def test_kms_key_service_account_and_universe_are_kept() -> None:
    kms = "projects/my-project/locations/us/keyRings/velero/cryptoKeys/backups"
    gcs = GcsSettings.from_velero_config(
        "b",
        "",
        {
            "kmsKeyName": kms,
            "serviceAccount": "velero@my-project.iam.gserviceaccount.com",
            "universeDomain": "googleapis.com",
        },
    )
    assert gcs.kms_key_name == kms
    assert gcs.service_account == "velero@my-project.iam.gserviceaccount.com"
    assert gcs.universe_domain == "googleapis.com"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {"kmsKeyName": "projects/p/locations/us/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1"},
            "invalid kmsKeyName 'projects/p/locations/us/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1'",
        ),
        ({"kmsKeyName": "my-key"}, "invalid kmsKeyName 'my-key'"),
        (
            {"serviceAccount": "velero"},
            "invalid serviceAccount 'velero': expected the service account's e-mail address",
        ),
        (
            {"universeDomain": "https://googleapis.com"},
            "invalid universeDomain 'https://googleapis.com': expected a domain name such as googleapis.com",
        ),
    ],
)
def test_malformed_values_are_refused(config: dict[str, str], message: str) -> None:
    with pytest.raises(StorageConfigError) as raised:
        GcsSettings.from_velero_config("b", "", config)
    assert raised.value.message == message


def test_kms_key_hint_shows_the_resource_name_form() -> None:
    with pytest.raises(StorageConfigError) as raised:
        GcsSettings.from_velero_config("b", "", {"kmsKeyName": "my-key"})
    assert raised.value.hint == (
        "use the key's resource name: projects/PROJECT/locations/LOCATION/keyRings/RING/cryptoKeys/KEY"
    )


def test_ca_cert_is_checked_up_front(ca_pem: str) -> None:
    gcs = GcsSettings.from_velero_config(
        "b", "", {"storeEndpoint": "https://gcs.example.com", "caCert": ca_pem}
    )
    assert gcs.ca_cert_pem == ca_pem
    assert ca_pem not in repr(gcs)
    with pytest.raises(StorageConfigError, match="caCert"):
        GcsSettings.from_velero_config("b", "", {"caCert": "not a certificate"})


# -- credentials -----------------------------------------------------------------------------


def test_the_seed_service_account_key_parses() -> None:
    credentials = parse_gcp_credentials(json.dumps(KEY, indent=2))
    assert credentials.kind == "service_account"
    assert credentials.client_email == "velero@my-project-123456.iam.gserviceaccount.com"
    assert credentials.project_id == "my-project-123456"
    assert credentials.can_sign
    assert credentials.source == SOURCE
    assert set(credentials.secret_values) == {PRIVATE_KEY, "0123private-key-id"}
    shown = f"{credentials!r} {credentials}"
    assert shown.startswith("GcpCredentials(kind='service_account', client_email='velero@")
    for secret in credentials.secret_values:
        assert secret not in shown
    assert "SeedSecretValue" not in shown


def test_bytes_with_a_byte_order_mark_and_a_key_without_token_uri_parse() -> None:
    content = "\ufeff" + with_(KEY, token_uri=None, project_id=None)
    credentials = parse_gcp_credentials(content.encode("utf-8"))
    assert credentials.project_id is None
    assert "token_uri" not in credentials.info


def test_external_account_and_authorized_user_are_accepted() -> None:
    external = parse_gcp_credentials(json.dumps(EXTERNAL))
    assert (external.kind, external.can_sign, external.secret_values) == ("external_account", False, ())
    user = parse_gcp_credentials(json.dumps(USER))
    assert user.kind == "authorized_user"
    assert set(user.secret_values) == {USER["client_secret"], USER["refresh_token"]}
    assert USER["client_secret"] not in repr(user)
    assert USER["refresh_token"] not in repr(user)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (with_(KEY, client_email=None), f"{SOURCE}: the service-account key has no client_email"),
        (with_(KEY, private_key=None), f"{SOURCE}: the service-account key has no private_key"),
        (
            with_(KEY, client_email="", private_key=None),
            f"{SOURCE}: the service-account key has no client_email, private_key",
        ),
        (
            with_(EXTERNAL, audience=None, credential_source=None),
            f"{SOURCE}: the external-account credentials have no audience, credential_source",
        ),
        (
            with_(USER, refresh_token=None),
            f"{SOURCE}: the authorized-user credentials have no refresh_token",
        ),
    ],
)
def test_each_missing_field_is_named(content: str, message: str) -> None:
    assert refused(content).message == message


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            '{"type": "service_account",\n "private_key": "-----BEGIN PRIVATE KEY-----\\nSeedSecretValue",\n}',
            f"{SOURCE}: not a JSON service-account key (line 3, column 1: Expecting property name enclosed in double quotes)",
        ),
        (
            "[default]\naws_access_key_id=SeedSecretValue\n",
            f"{SOURCE}: not a JSON service-account key (line 1, column 2: Expecting value)",
        ),
        (
            '["SeedSecretValue"]',
            f"{SOURCE}: not a JSON service-account key (expected an object, found an array)",
        ),
        (
            with_(KEY, type=None),
            f'{SOURCE}: the JSON key has no "type" (service_account, external_account or authorized_user)',
        ),
        (
            with_(KEY, type="impersonated_service_account"),
            f"{SOURCE}: unsupported credentials type 'impersonated_service_account'; "
            "expected service_account, external_account or authorized_user",
        ),
        (with_(KEY, private_key=12345), f"{SOURCE}: in the service-account key, private_key must be text"),
        (
            with_(KEY, private_key="SeedSecretValue"),
            f"{SOURCE}: private_key of the service-account key is not a PEM private key",
        ),
        (
            with_(KEY, client_email="velero"),
            f"{SOURCE}: client_email of the service-account key is not an e-mail address",
        ),
        (
            with_(EXTERNAL, credential_source="/var/run/token"),
            f"{SOURCE}: in the external-account credentials, credential_source must be an object",
        ),
        ("  \n", f"{SOURCE}: empty; expected a JSON key"),
    ],
)
def test_malformed_credentials_are_refused_without_echoing_them(content: str, message: str) -> None:
    assert refused(content).message == message


def test_text_that_is_not_utf8_is_refused_with_its_position() -> None:
    assert refused(b'{"type": "\xff"}').message == f"{SOURCE}: not UTF-8 text (byte 10)"


def test_the_source_names_the_secret_in_messages() -> None:
    with pytest.raises(StorageConfigError) as raised:
        parse_gcp_credentials("{", "Secret openshift-adp/cloud-credentials-gcp, key cloud")
    assert raised.value.message.startswith("Secret openshift-adp/cloud-credentials-gcp, key cloud: ")


def test_credentials_come_from_the_argument_or_from_credentials_file(tmp_path: Path) -> None:
    path = tmp_path / "gcp.json"
    path.write_text(json.dumps(KEY))
    from_file = GcsSettings.from_velero_config("b", "", {"credentialsFile": str(path)})
    assert from_file.credentials is not None
    assert from_file.credentials.source == str(path)
    assert from_file.secret_values() == (PRIVATE_KEY, "0123private-key-id")
    # Given content wins over the file, as for the aws provider.
    given = GcsSettings.from_velero_config("b", "", {"credentialsFile": str(path)}, json.dumps(USER))
    assert given.credentials is not None
    assert given.credentials.kind == "authorized_user"
    parsed = parse_gcp_credentials(json.dumps(EXTERNAL))
    assert GcsSettings.from_velero_config("b", "", None, parsed).credentials is parsed
    assert isinstance(load_gcp_credentials_file(path), GcpCredentials)
    with pytest.raises(StorageConfigError) as raised:
        GcsSettings.from_velero_config("b", "", {"credentialsFile": str(tmp_path / "absent.json")})
    assert raised.value.message == (
        f"cannot read the credentials file {str(tmp_path / 'absent.json')!r}: No such file or directory"
    )


def test_settings_repr_hides_the_key() -> None:
    gcs = GcsSettings.from_velero_config("b", "", None, json.dumps(KEY))
    assert PRIVATE_KEY not in repr(gcs)
    assert "SeedSecretValue" not in repr(gcs)
    assert "0123private-key-id" not in repr(gcs)


# -- the store, before any request -------------------------------------------------------------


def test_making_a_store_sends_nothing_and_shows_no_secret() -> None:
    store = GcsObjectStore(GcsSettings.from_velero_config("velero-bucket", "velero", None, json.dumps(KEY)))
    assert store.location == "gs://velero-bucket/velero"
    assert repr(store) == "GcsObjectStore('gs://velero-bucket/velero')"
    # No credentials and no endpoint: the default chain is consulted on first use, not here.
    GcsObjectStore(GcsSettings.from_velero_config("velero-bucket"))


@run_async
async def test_an_unusable_private_key_fails_at_first_use_without_showing_it() -> None:
    # The seed's key passes the structural checks, but its private key cannot be loaded.
    store = GcsObjectStore(
        GcsSettings.from_velero_config("b", "", {"storeEndpoint": "http://127.0.0.1:9"}, json.dumps(KEY))
    )
    with pytest.raises(StorageConfigError) as raised:
        await store.head("backups/b1/velero-backup.json")
    assert raised.value.message.startswith(
        f"cannot use the Google credentials from {SOURCE} for gs://b at http://127.0.0.1:9: "
    )
    assert "SeedSecretValue" not in str(raised.value)
    assert raised.value.__cause__ is None


@run_async
async def test_missing_default_credentials_are_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # GOOGLE_APPLICATION_CREDENTIALS comes first in the default chain: a missing
    # file fails there, before the metadata server could be asked.
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "absent.json"))
    store = GcsObjectStore(GcsSettings.from_velero_config("velero-bucket", "velero"))
    with pytest.raises(StorageConfigError) as raised:
        await store.get("backups/b1/velero-backup.json")
    assert raised.value.message.startswith(
        "cannot use the Google credentials from the environment for gs://velero-bucket/velero: "
    )
    assert raised.value.hint == "give the location a credential (a service account's JSON key)"


@run_async
async def test_keys_are_checked_before_any_request() -> None:
    store = GcsObjectStore(GcsSettings.from_velero_config("velero-bucket"))
    with pytest.raises(StorageConfigError, match="invalid object key"):
        await store.put("../escape", b"x")
    with pytest.raises(StorageConfigError, match="empty prefix"):
        await store.delete_prefix("")
