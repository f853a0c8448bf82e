"""What the DPA reconciler accepts in a credentials Secret: each mistake named by Secret, key and line, no value."""

from __future__ import annotations

from strongroom.controller.dpa import check_credentials_content
from strongroom.model.oadp import CredentialUse

AWS = CredentialUse("spec.backupLocations[0]", "aws", "cloud-credentials", "cloud", "backupStorage")
AZURE = CredentialUse(
    "spec.backupLocations[0]",
    "azure",
    "cloud-credentials-azure",
    "cloud",
    None,
    "AZURE_STORAGE_ACCOUNT_ACCESS_KEY",
)
GCP = CredentialUse("spec.backupLocations[0]", "gcp", "cloud-credentials-gcp", "cloud")


def test_aws_profile_must_exist_and_values_never_show() -> None:
    content = b"[default]\naws_access_key_id=AKIAEXAMPLEKEY1\naws_secret_access_key=SuperSecretValue1\n"
    (problem,) = check_credentials_content(AWS, content)
    assert (
        "profile 'backupStorage' not found" in problem
        and "secret 'cloud-credentials', key 'cloud'" in problem
    )
    assert "AKIA" not in problem and "SuperSecret" not in problem


def test_aws_malformed_line_is_named_without_its_value() -> None:
    content = b"[backupStorage]\naws_access_key_id=AKIAEXAMPLEKEY1\nSuperSecretValue1\n"
    (problem,) = check_credentials_content(AWS, content)
    assert "line 3" in problem and "SuperSecret" not in problem


def test_azure_needs_the_storage_key_variable() -> None:
    content = b"AZURE_SUBSCRIPTION_ID=abc\nAZURE_RESOURCE_GROUP=rg\n"
    assert check_credentials_content(AZURE, content) == [
        "secret 'cloud-credentials-azure', key 'cloud': no value for AZURE_STORAGE_ACCOUNT_ACCESS_KEY "
        "(config.storageAccountKeyEnvVar names AZURE_STORAGE_ACCOUNT_ACCESS_KEY); add a line KEY=... for each"
    ]
    assert check_credentials_content(AZURE, content + b"AZURE_STORAGE_ACCOUNT_ACCESS_KEY=s3cr3t\n") == []


def test_azure_malformed_line_is_named_without_its_value() -> None:
    (problem,) = check_credentials_content(AZURE, b"AZURE_SUBSCRIPTION_ID=abc\ntopsecretvalue\n")
    assert (
        problem
        == "secret 'cloud-credentials-azure', key 'cloud', line 2: expected KEY=VALUE (for example AZURE_SUBSCRIPTION_ID=...)"
    )


def test_gcp_needs_a_service_account_json() -> None:
    (problem,) = check_credentials_content(
        GCP, b'{"type": "service_account", "private_key": "-----BEGIN secret"'
    )
    assert problem.startswith(
        "secret 'cloud-credentials-gcp', key 'cloud': not a JSON service-account key (line 1"
    )
    assert "BEGIN secret" not in problem
    assert check_credentials_content(GCP, b'{"type": "service_account", "private_key": "k"}') == [
        "secret 'cloud-credentials-gcp', key 'cloud': the service-account key has no client_email"
    ]
    pem = "-----BEGIN PRIVATE KEY-----\\nMIIE\\n-----END PRIVATE KEY-----\\n"
    key = f'{{"type": "service_account", "private_key": "{pem}", "client_email": "velero@p.iam.gserviceaccount.com"}}'
    assert check_credentials_content(GCP, key.encode()) == []
    # A private key that is not PEM is named, never shown.
    (not_pem,) = check_credentials_content(
        GCP,
        b'{"type": "service_account", "private_key": "k", "client_email": "velero@p.iam.gserviceaccount.com"}',
    )
    assert "private_key of the service-account key is not a PEM private key" in not_pem
