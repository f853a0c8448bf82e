"""Provider errors become ours: short, with a hint, and never carrying a credential."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from obstore.exceptions import GenericError, PermissionDeniedError

import strongroom.storage
from strongroom.errors import (
    EXIT_NOT_FOUND,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    ObjectNotFound,
    StorageConfigError,
    StorageError,
)
from strongroom.storage import S3ObjectStore, S3Settings, open_store
from strongroom.storage._obstore import ProviderDetail
from strongroom.storage.credentials import AwsCredentials

KEY_ID = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


@pytest.fixture
def store() -> S3ObjectStore:
    settings = S3Settings.from_velero_config(
        "velero-bucket",
        "p",
        {"s3Url": "http://127.0.0.1:9", "s3ForcePathStyle": "true"},
        AwsCredentials(KEY_ID, SECRET),
    )
    return S3ObjectStore(settings)


def obstore_message(first_line: str) -> str:
    return f'{first_line}\n\nDebug source:\nGeneric {{\n    store: "S3",\n    secret_in_debug: {SECRET}\n}}'


def test_access_denied_keeps_code_and_message_and_drops_the_echoed_key(store: S3ObjectStore) -> None:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?><Error><Code>InvalidAccessKeyId</Code>'
        "<Message>The AWS Access Key Id you provided does not exist in our records.</Message>"
        f"<AWSAccessKeyId>{KEY_ID}</AWSAccessKeyId></Error>"
    )
    exc = PermissionDeniedError(
        obstore_message(
            "The operation lacked the necessary privileges to complete for path p/k: Error performing PUT "
            f"http://127.0.0.1:9/velero-bucket/p/k in 3ms - Server returned non-2xx status code: 403 Forbidden: {body}"
        )
    )
    error = store.translate(exc, "write", "k")
    text = f"{error} {error!r}"
    assert "InvalidAccessKeyId: The AWS Access Key Id you provided does not exist in our records." in text
    assert "(HTTP 403 Forbidden)" in text
    assert KEY_ID not in text
    assert SECRET not in text
    assert error.hint is not None
    assert "credentials" in error.hint
    assert error.exit_code == EXIT_UNAVAILABLE


def test_the_chained_cause_keeps_the_provider_detail_without_credentials(store: S3ObjectStore) -> None:
    exc = GenericError(
        obstore_message(
            "Generic S3 error: ... 403 Forbidden: <Error><Code>SignatureDoesNotMatch</Code>"
            "<AWSAccessKeyId>AKIAOTHERKEYOTHERKEY</AWSAccessKeyId></Error> Credential=AKIAOTHERKEYOTHERKEY/2026"
        )
    )
    cause = store.cause(exc)
    assert isinstance(cause, ProviderDetail)
    assert "Debug source" in str(cause)
    for secret in (SECRET, "AKIAOTHERKEYOTHERKEY"):
        assert secret not in str(cause)


def test_known_secret_values_are_blanked_anywhere_in_a_message(store: S3ObjectStore) -> None:
    error = store.translate(GenericError(f"weird failure mentioning {SECRET} and {KEY_ID}"), "read", "k")
    assert SECRET not in str(error)
    assert KEY_ID not in str(error)
    assert "<redacted>" in str(error)


def test_untrusted_certificate_hints_at_ca_cert(store: S3ObjectStore) -> None:
    exc = GenericError(
        obstore_message(
            "Generic S3 error: Error performing PUT https://127.0.0.1:9/b/k in 44ms, after 3 retries, "
            "max_retries: 3, retry_timeout: 180s  - HTTP error: error sending request"
        ).replace("secret_in_debug", "InvalidCertificate(UnknownIssuer)")
    )
    error = store.translate(exc, "write", "k")
    assert "caCert" in str(error.hint)
    assert "Debug source" not in str(error)


def test_wrong_region_hints_at_region(store: S3ObjectStore) -> None:
    exc = GenericError(
        "Generic S3 error: Error performing GET https://b.s3.us-east-1.amazonaws.com/k in 9ms - Server returned "
        "non-2xx status code: 301 Moved Permanently: <Error><Code>PermanentRedirect</Code><Message>The bucket you "
        "are attempting to access must be addressed using the specified endpoint.</Message></Error>"
    )
    error = store.translate(exc, "read", "k")
    assert "config.region" in str(error.hint)


def test_not_found_is_object_not_found_except_for_a_missing_bucket(store: S3ObjectStore) -> None:
    missing_object = store.translate(FileNotFoundError("Object at location p/k not found"), "read", "k")
    assert isinstance(missing_object, ObjectNotFound)
    assert missing_object.exit_code == EXIT_NOT_FOUND
    no_bucket = store.translate(
        FileNotFoundError(
            "Server returned non-2xx status code: 404 Not Found: <Error><Code>NoSuchBucket</Code>"
        ),
        "read",
        "k",
    )
    assert type(no_bucket) is StorageError
    assert "does not exist" in str(no_bucket)
    listing = store.translate(FileNotFoundError("not found"), "list", None, missing="container")
    assert not isinstance(listing, ObjectNotFound)


def test_invalid_paths_are_configuration_errors(store: S3ObjectStore) -> None:
    error = store.translate(ValueError("Could not parse path"), "read", "k")
    assert isinstance(error, StorageConfigError)
    assert error.exit_code == EXIT_USAGE


def test_configuration_obstore_refuses_becomes_a_config_error() -> None:
    with pytest.raises(StorageConfigError, match="Invalid encryption type: bogus") as raised:
        open_store("aws", "b", config={"serverSideEncryption": "bogus"})
    assert raised.value.__cause__ is None


def test_storage_imports_no_engine_sandbox_or_cli_package() -> None:
    # Storage sits below the engine (DESIGN: dependencies point one way).
    forbidden = (
        "strongroom.sandbox",
        "strongroom.cli",
        "strongroom.kube",
        "strongroom.backup",
        "strongroom.restore",
    )
    package = Path(strongroom.storage.__file__).parent
    for module in package.glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert not name.startswith(forbidden), f"{module.name} imports {name}"
