"""How a BackupStorageLocation's config (Velero's AWS plugin keys) becomes an S3 store, without a server."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from strongroom.errors import StorageConfigError
from strongroom.sandbox.pki import ensure_pki
from strongroom.storage import S3ObjectStore, S3Settings, StoreOptions, open_store
from strongroom.storage.credentials import AwsCredentials

CREDENTIALS_FILE = """[backupStorage]
aws_access_key_id=AKIAIOSFODNN7EXAMPLE
aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY
"""


def settings(config: dict[str, str], bucket: str = "velero-bucket") -> S3Settings:
    return S3Settings.from_velero_config(bucket, "", config)


@pytest.fixture(scope="module")
def ca_pem(tmp_path_factory: pytest.TempPathFactory) -> str:
    return ensure_pki(tmp_path_factory.mktemp("pki")).ca_cert.read_text()


def test_aws_defaults_to_virtual_hosted_requests_in_us_east_1() -> None:
    s3 = settings({})
    assert (s3.region, s3.endpoint, s3.virtual_hosted_style, s3.allow_http) == (
        "us-east-1",
        None,
        True,
        False,
    )
    assert s3.location == "s3://velero-bucket"


def test_the_oadp_minio_example_configures_a_path_style_endpoint() -> None:
    s3 = S3Settings.from_velero_config(
        "bucket-name",
        "prefix",
        {
            "profile": "default",
            "region": "minio",
            "s3Url": "http://minio.example.com:9000/",
            "insecureSkipTLSVerify": "true",
            "s3ForcePathStyle": "true",
        },
    )
    assert s3.endpoint == "http://minio.example.com:9000"
    assert not s3.virtual_hosted_style
    assert s3.allow_http
    assert s3.insecure_skip_tls_verify
    assert s3.region == "minio"
    assert s3.location == "s3://bucket-name/prefix at http://minio.example.com:9000"


def test_virtual_hosted_custom_endpoint_carries_the_bucket_in_its_host() -> None:
    s3 = settings({"s3Url": "https://s3.example.com:8443"})
    assert s3.virtual_hosted_style
    assert s3.endpoint == "https://velero-bucket.s3.example.com:8443"


@pytest.mark.parametrize(
    ("s3_url", "bucket"),
    [
        ("http://127.0.0.1:9000", "velero"),
        ("http://[::1]:9000", "velero"),
        ("http://localhost:9000", "velero"),
    ],
)
def test_ip_and_localhost_endpoints_use_path_style(s3_url: str, bucket: str) -> None:
    s3 = settings({"s3Url": s3_url}, bucket)
    assert not s3.virtual_hosted_style
    assert s3.endpoint == s3_url


def test_dotted_buckets_use_path_style() -> None:
    assert not settings({}, "backups.example.com").virtual_hosted_style


@pytest.mark.parametrize("value", ["1", "t", "T", "TRUE", "true", "True"])
def test_booleans_parse_like_go(value: str) -> None:
    assert settings({"s3ForcePathStyle": value, "insecureSkipTLSVerify": value}).insecure_skip_tls_verify


def test_a_malformed_boolean_is_refused() -> None:
    with pytest.raises(StorageConfigError, match=r"could not parse s3ForcePathStyle \(expected bool\)"):
        settings({"s3ForcePathStyle": "yes"})


def test_unknown_keys_are_refused_like_velero() -> None:
    with pytest.raises(
        StorageConfigError, match=r"config has invalid keys \[regoin\]; valid keys are \[region "
    ):
        settings({"regoin": "us-east-1"})


def test_keys_the_velero_server_adds_are_accepted() -> None:
    settings(
        {"bucket": "velero-bucket", "prefix": "p", "resticRepoPrefix": "s3:...", "enableSharedConfig": "true"}
    )


@pytest.mark.parametrize(
    "url", ["minio:9000", "ftp://minio:9000", "http://", "https://user:pass@minio:9000", "http://minio?x=1"]
)
def test_malformed_s3_urls_are_refused(url: str) -> None:
    with pytest.raises(StorageConfigError, match="invalid s3Url"):
        settings({"s3Url": url})


def test_public_url_is_kept_for_download_links() -> None:
    assert settings({"publicUrl": "https://public.example.com/"}).public_url == "https://public.example.com"


@pytest.mark.parametrize(
    ("given", "sent"),
    [
        ("", None),
        ("CRC32", None),
        ("CRC32C", None),
        ("SHA1", None),
        ("SHA256", "SHA256"),
        ("CRC64NVME", "CRC64NVME"),
    ],
)
def test_checksum_algorithms(given: str, sent: str | None) -> None:
    assert settings({"checksumAlgorithm": given}).checksum_algorithm == sent


def test_an_unknown_checksum_algorithm_is_refused() -> None:
    with pytest.raises(StorageConfigError, match="invalid checksum algorithm: MD5"):
        settings({"checksumAlgorithm": "MD5"})


def test_server_side_encryption_passes_through() -> None:
    assert settings({"serverSideEncryption": "AES256"}).server_side_encryption == "AES256"
    kms = settings({"kmsKeyId": "arn:aws:kms:us-east-1:123456789012:key/abcd"})
    assert (kms.server_side_encryption, kms.kms_key_id) == (
        "aws:kms",
        "arn:aws:kms:us-east-1:123456789012:key/abcd",
    )
    dsse = settings({"kmsKeyId": "k", "serverSideEncryption": "aws:kms:dsse"})
    assert dsse.server_side_encryption == "aws:kms:dsse"


def test_customer_key_file_enables_sse_c_without_showing_the_key(tmp_path: Path) -> None:
    key_file = tmp_path / "sse-c.key"
    key_file.write_bytes(b"k" * 32)
    s3 = settings({"customerKeyEncryptionFile": str(key_file)})
    assert s3.server_side_encryption == "sse-c"
    assert s3.sse_customer_key_base64 == base64.b64encode(b"k" * 32).decode()
    assert s3.sse_customer_key_base64 not in repr(s3)
    key_file.write_bytes(b"short")
    with pytest.raises(StorageConfigError, match="not exactly 32 bytes"):
        settings({"customerKeyEncryptionFile": str(key_file)})


def test_only_one_encryption_key_source() -> None:
    with pytest.raises(StorageConfigError, match="you can only use one of"):
        settings({"kmsKeyId": "k", "customerKeyEncryptionFile": "/f"})
    with pytest.raises(StorageConfigError, match="customerKeyEncryptionSecret is not supported"):
        settings({"customerKeyEncryptionSecret": "secret/key"})


def test_tagging() -> None:
    assert settings({"tagging": "team=storage&env=prod%20eu"}).tags == {"team": "storage", "env": "prod eu"}
    assert settings({"tagging": "single=tag"}).tags == {"single": "tag"}
    with pytest.raises(StorageConfigError, match="invalid tagging"):
        settings({"tagging": "no-equals-sign"})
    with pytest.raises(StorageConfigError, match="at most 10 tags"):
        settings({"tagging": "&".join(f"k{i}=v" for i in range(11))})


def test_only_signature_version_4() -> None:
    settings({"signatureVersion": "4"})
    with pytest.raises(StorageConfigError, match="signature version 4"):
        settings({"signatureVersion": "1"})


def test_ca_certificate_as_pem_base64_or_file(ca_pem: str, tmp_path: Path) -> None:
    ca_file = tmp_path / "ca.crt"
    ca_file.write_text(ca_pem)
    for value in (ca_pem, base64.b64encode(ca_pem.encode()).decode(), str(ca_file)):
        assert settings({"caCert": value}).ca_cert_pem == ca_pem
    with pytest.raises(StorageConfigError, match="caCert is neither"):
        settings({"caCert": "not a certificate"})
    with pytest.raises(StorageConfigError, match="not hold a valid PEM certificate"):
        settings({"caCert": "-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n"})


def test_credentials_file_content_with_the_profile_of_the_config() -> None:
    s3 = S3Settings.from_velero_config("b", "", {"profile": "backupStorage"}, CREDENTIALS_FILE)
    assert s3.credentials is not None
    assert s3.credentials.profile == "backupStorage"
    with pytest.raises(StorageConfigError, match="profile 'default' not found"):
        S3Settings.from_velero_config("b", "", {}, CREDENTIALS_FILE)


def test_credentials_file_from_config(tmp_path: Path) -> None:
    path = tmp_path / "cloud"
    path.write_text(CREDENTIALS_FILE)
    s3 = settings({"credentialsFile": str(path), "profile": "backupStorage"})
    assert s3.credentials is not None
    assert s3.credentials.access_key_id == "AKIAIOSFODNN7EXAMPLE"


def test_settings_repr_hides_credentials() -> None:
    s3 = S3Settings.from_velero_config("b", "", {"profile": "backupStorage"}, CREDENTIALS_FILE)
    store = S3ObjectStore(s3)
    for text in (repr(s3), repr(store), store.location):
        assert "wJalrXUtnFEMI" not in text
        assert "AKIAIOSFODNN7EXAMPLE" not in text


def test_open_store_builds_an_s3_store_without_contacting_it() -> None:
    store = open_store(
        "velero.io/aws",
        "/velero-bucket/",
        "/cluster-a/",
        {"region": "eu-west-1", "profile": "backupStorage"},
        CREDENTIALS_FILE,
    )
    assert isinstance(store, S3ObjectStore)
    assert store.location == "s3://velero-bucket/cluster-a"
    assert store.settings.region == "eu-west-1"


def test_open_store_takes_parsed_credentials() -> None:
    store = open_store("aws", "b", credentials=AwsCredentials("AKIAEXAMPLEEXAMPLE", "secret"))
    assert isinstance(store, S3ObjectStore)


def test_bucket_with_a_slash_is_refused_like_velero() -> None:
    with pytest.raises(StorageConfigError, match="must not contain a '/' \\(if using a prefix"):
        open_store("aws", "bucket/prefix")
    with pytest.raises(StorageConfigError, match="no bucket"):
        open_store("aws", "/")


@pytest.mark.parametrize("provider", ["azure-blob", "gs", "velero.io/s3", "ftp", ""])
def test_unknown_providers_are_refused_with_the_supported_ones(provider: str) -> None:
    with pytest.raises(StorageConfigError, match="unsupported object storage provider") as raised:
        open_store(provider, "bucket")
    assert all(name in str(raised.value.hint) for name in ("aws", "azure", "gcp", "local"))


def test_options_guard_s3_limits() -> None:
    assert StoreOptions().max_object_size > 150 * 1024**3
    with pytest.raises(StorageConfigError, match="below the minimum part size"):
        StoreOptions(part_size=1024 * 1024)
