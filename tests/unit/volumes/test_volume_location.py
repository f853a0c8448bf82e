"""Repository addresses of BackupStorageLocations, and how restic is told to reach them."""

from __future__ import annotations

import base64
import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from strongroom.errors import StorageConfigError, UsageError
from strongroom.storage.azure import parse_azure_credentials
from strongroom.storage.credentials import AwsCredentials
from strongroom.storage.gcs import parse_gcp_credentials
from strongroom.volumes import RepositoryLocation


def self_signed_ca() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "strongroom-test-ca")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")


def bsl(
    provider: str, bucket: str, prefix: str = "", config: dict[str, str] | None = None, **extra: Any
) -> dict[str, Any]:
    return {
        "apiVersion": "velero.io/v1",
        "kind": "BackupStorageLocation",
        "metadata": {"name": "default", "namespace": "openshift-adp"},
        "spec": {
            "provider": provider,
            "objectStorage": {"bucket": bucket, "prefix": prefix, **extra},
            "config": config or {},
        },
    }


def test_aws_location_with_s3_url_addresses_the_namespace_repository_under_the_prefix() -> None:
    location = RepositoryLocation.from_location(
        bsl(
            "aws",
            "velero-bucket",
            "cluster-a",
            {"s3Url": "https://minio.example.com:9000/", "region": "minio"},
        )
    )
    assert (
        location.repository_url("app")
        == "s3:https://minio.example.com:9000/velero-bucket/cluster-a/restic/app"
    )


def test_aws_location_without_s3_url_uses_the_regional_endpoint() -> None:
    location = RepositoryLocation.from_location(bsl("aws", "bucket", "velero", {"region": "eu-west-1"}))
    assert location.repository_url("ns1") == "s3:s3-eu-west-1.amazonaws.com/bucket/velero/restic/ns1"


def test_aws_location_without_region_or_prefix_defaults_to_us_east_1() -> None:
    location = RepositoryLocation.from_location(bsl("velero.io/aws", "bucket"))
    assert location.repository_url("ns1") == "s3:s3-us-east-1.amazonaws.com/bucket/restic/ns1"


def test_local_location_addresses_a_directory_under_the_bucket(tmp_path: Path) -> None:
    location = RepositoryLocation.from_location(bsl("local", str(tmp_path), "/velero/"))
    assert location.repository_url("app") == str(tmp_path.resolve() / "velero" / "restic" / "app")
    assert location.config_key("app") == "restic/app/config"


def test_restic_target_of_s3_carries_keys_in_the_environment_only(tmp_path: Path) -> None:
    credentials = AwsCredentials("AKIAEXAMPLEEXAMPLE01", "secret/key", "token-value")
    location = RepositoryLocation.from_location(
        bsl(
            "aws",
            "bucket",
            "p",
            {"s3Url": "http://127.0.0.1:9000", "region": "us-west-2", "s3ForcePathStyle": "true"},
        ),
        credentials,
    )
    target = location.restic_target("ns", "the-password", tmp_path)
    assert target.environment == {
        "AWS_DEFAULT_REGION": "us-west-2",
        "AWS_ACCESS_KEY_ID": "AKIAEXAMPLEEXAMPLE01",
        "AWS_SECRET_ACCESS_KEY": "secret/key",
        "AWS_SESSION_TOKEN": "token-value",
    }
    assert "s3.bucket-lookup=path" in target.options
    assert "the-password" not in repr(target)
    assert "secret/key" not in repr(target)
    assert set(target.secrets) == {"the-password", "AKIAEXAMPLEEXAMPLE01", "secret/key", "token-value"}


def test_insecure_skip_tls_verify_turns_on_restic_insecure_tls(tmp_path: Path) -> None:
    location = RepositoryLocation.from_location(
        bsl("aws", "bucket", config={"s3Url": "https://10.0.0.1:9000", "insecureSkipTLSVerify": "true"})
    )
    assert location.restic_target("ns", "pw", tmp_path).insecure_tls is True


def test_ca_cert_of_the_location_is_written_for_restic_cacert(tmp_path: Path) -> None:
    pem = self_signed_ca()
    location = RepositoryLocation.from_location(
        bsl(
            "aws",
            "bucket",
            config={"s3Url": "https://minio:9000"},
            caCert=base64.b64encode(pem.encode()).decode(),
        )
    )
    target = location.restic_target("ns", "pw", tmp_path)
    assert target.ca_cert_file is not None
    assert target.ca_cert_file.read_text() == pem
    assert target.ca_cert_file.is_relative_to(tmp_path)


def test_restic_repo_prefix_is_refused_with_a_reason() -> None:
    location = RepositoryLocation.from_location(
        bsl("aws", "bucket", config={"resticRepoPrefix": "s3:elsewhere/x"})
    )
    with pytest.raises(UsageError, match="resticRepoPrefix is not supported"):
        location.repository_url("ns")


def test_unknown_provider_is_a_clear_error() -> None:
    location = RepositoryLocation.from_location(bsl("openstack", "container"))
    with pytest.raises(StorageConfigError, match="unsupported object storage provider 'openstack'"):
        location.repository_url("ns")


ACCOUNT_KEY = base64.b64encode(b"azure-account-key-for-the-unit-tests-0123456789").decode()
AZURE_CONFIG = {
    "resourceGroup": "Velero_Backups",
    "storageAccount": "velerostore",
    "subscriptionId": "00000000-1111-2222-3333-444444444444",
    "storageAccountKeyEnvVar": "AZURE_STORAGE_ACCOUNT_ACCESS_KEY",
}
AZURE_CREDENTIALS = (
    "AZURE_SUBSCRIPTION_ID=00000000-1111-2222-3333-444444444444\n"
    "AZURE_TENANT_ID=11111111-2222-3333-4444-555555555555\n"
    "AZURE_CLIENT_ID=22222222-3333-4444-5555-666666666666\n"
    "AZURE_CLIENT_SECRET=the-client-secret\n"
    "AZURE_RESOURCE_GROUP=Velero_Backups\n"
    f"AZURE_STORAGE_ACCOUNT_ACCESS_KEY={ACCOUNT_KEY}\n"
    "AZURE_CLOUD_NAME=AzurePublicCloud\n"
)


def azure_location(
    config: dict[str, str] | None = None, prefix: str = "velero", **extra: Any
) -> RepositoryLocation:
    return RepositoryLocation.from_location(
        bsl("azure", "backups", prefix, {**AZURE_CONFIG, **(config or {})}, **extra),
        parse_azure_credentials(AZURE_CREDENTIALS),
    )


def test_azure_repositories_are_addressed_as_velero_addresses_them() -> None:
    assert azure_location().repository_url("app") == "azure:backups:/velero/restic/app"
    assert azure_location(prefix="").repository_url("app") == "azure:backups:/restic/app"


def test_restic_target_of_azure_carries_the_account_and_its_key_in_the_environment_only(
    tmp_path: Path,
) -> None:
    pem = self_signed_ca()
    target = azure_location(caCert=base64.b64encode(pem.encode()).decode()).restic_target(
        "app", "pw", tmp_path
    )
    assert target.url == "azure:backups:/velero/restic/app"
    assert target.environment == {"AZURE_ACCOUNT_NAME": "velerostore", "AZURE_ACCOUNT_KEY": ACCOUNT_KEY}
    assert ACCOUNT_KEY not in repr(target)
    assert set(target.secrets) == {"pw", ACCOUNT_KEY}
    assert target.ca_cert_file is not None and target.ca_cert_file.read_text() == pem


def test_azure_public_endpoint_given_explicitly_is_accepted(tmp_path: Path) -> None:
    location = azure_location({"storageAccountURI": "https://velerostore.blob.core.windows.net/"})
    assert location.restic_target("app", "pw", tmp_path).environment["AZURE_ACCOUNT_NAME"] == "velerostore"


@pytest.mark.parametrize(
    "uri",
    [
        "http://127.0.0.1:10000/velerostore",
        "https://velerostore.blob.core.chinacloudapi.cn",
        "https://azs.local",
    ],
)
def test_azure_endpoints_restic_cannot_reach_are_refused_with_the_endpoint(uri: str, tmp_path: Path) -> None:
    location = azure_location({"storageAccountURI": uri})
    with pytest.raises(StorageConfigError, match="cannot reach the storage account's endpoint") as caught:
        location.restic_target("app", "pw", tmp_path)
    assert uri in caught.value.message
    assert "blob.core.windows.net" in (caught.value.hint or "")


def test_azure_ad_sign_in_is_refused_for_restic_with_what_to_set(tmp_path: Path) -> None:
    config = {k: v for k, v in AZURE_CONFIG.items() if k != "storageAccountKeyEnvVar"}
    location = RepositoryLocation.from_location(
        bsl("azure", "backups", "velero", {**config, "useAAD": "true"}),
        parse_azure_credentials(AZURE_CREDENTIALS),
    )
    with pytest.raises(StorageConfigError, match="needs the storage account key") as caught:
        location.restic_target("app", "pw", tmp_path)
    assert "storageAccountKeyEnvVar" in (caught.value.hint or "")
    assert "the-client-secret" not in str(caught.value) + (caught.value.hint or "")


GCP_KEY = {
    "type": "service_account",
    "project_id": "my-project-123456",
    "private_key_id": "0123456789abcdef",
    "private_key": "-----BEGIN PRIVATE KEY-----\nSecretKeyMaterial\n-----END PRIVATE KEY-----\n",
    "client_email": "velero@my-project-123456.iam.gserviceaccount.com",
    "token_uri": "https://oauth2.googleapis.com/token",
}


def gcs_location(config: dict[str, str] | None = None) -> RepositoryLocation:
    return RepositoryLocation.from_location(
        bsl("gcp", "velero-bucket", "velero", config), parse_gcp_credentials(json.dumps(GCP_KEY))
    )


def test_gcs_repositories_are_addressed_as_velero_addresses_them() -> None:
    assert gcs_location().repository_url("app") == "gs:velero-bucket:/velero/restic/app"


def test_restic_target_of_gcs_hands_restic_the_key_in_a_private_file(tmp_path: Path) -> None:
    target = gcs_location().restic_target("app", "pw", tmp_path)
    key_file = Path(target.environment["GOOGLE_APPLICATION_CREDENTIALS"])
    assert json.loads(key_file.read_text()) == GCP_KEY
    assert key_file.is_relative_to(tmp_path)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
    assert target.environment["GOOGLE_PROJECT_ID"] == "my-project-123456"
    assert "SecretKeyMaterial" not in repr(target)
    # Another call (another agent thread) finds the same file.
    assert gcs_location().restic_target("other", "pw", tmp_path).environment[
        "GOOGLE_APPLICATION_CREDENTIALS"
    ] == str(key_file)


def test_gcs_without_credentials_leaves_restic_to_the_nodes_own(tmp_path: Path) -> None:
    location = RepositoryLocation.from_location(bsl("gcp", "velero-bucket"))
    target = location.restic_target("app", "pw", tmp_path)
    assert target.environment == {}
    assert target.url == "gs:velero-bucket:/restic/app"


@pytest.mark.parametrize(
    ("config", "named"),
    [
        ({"storeEndpoint": "http://127.0.0.1:4443"}, "http://127.0.0.1:4443"),
        ({"universeDomain": "example-universe.com"}, "example-universe.com"),
    ],
)
def test_gcs_endpoints_restic_cannot_reach_are_refused(
    config: dict[str, str], named: str, tmp_path: Path
) -> None:
    with pytest.raises(StorageConfigError, match=f"cannot reach .*{named}"):
        gcs_location(config).restic_target("app", "pw", tmp_path)


def test_gcs_public_endpoint_given_explicitly_is_accepted(tmp_path: Path) -> None:
    target = gcs_location({"storeEndpoint": "https://storage.googleapis.com/"}).restic_target(
        "app", "pw", tmp_path
    )
    assert "GOOGLE_APPLICATION_CREDENTIALS" in target.environment


def test_location_without_bucket_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="bucket is required"):
        RepositoryLocation.from_location(bsl("aws", ""))
