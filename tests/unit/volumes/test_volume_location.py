"""Repository addresses of BackupStorageLocations, and how restic is told to reach them."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from strongroom.errors import StorageConfigError, UsageError
from strongroom.storage.credentials import AwsCredentials
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


def test_unsupported_provider_is_a_clear_error() -> None:
    location = RepositoryLocation.from_location(bsl("azure", "container"))
    with pytest.raises(
        StorageConfigError, match="file-system backup \\(restic\\) to provider 'azure' is not"
    ):
        location.repository_url("ns")


def test_location_without_bucket_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="bucket is required"):
        RepositoryLocation.from_location(bsl("aws", ""))
