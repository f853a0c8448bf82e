"""The AWS credentials file of the OADP guide: good files, and each mistake with its line number."""

from __future__ import annotations

from pathlib import Path

import pytest

from strongroom.errors import StorageConfigError
from strongroom.storage.credentials import AwsCredentials, load_credentials_file, parse_credentials, profiles

KEY_ID = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
TOKEN = "FwoGZXIvYXdzEXAMPLETOKEN"

# The two files of the OADP guide, as an administrator writes them.
SEED_DEFAULT = f"""[default]
aws_access_key_id={KEY_ID}
aws_secret_access_key={SECRET}
"""
SEED_PROFILES = f"""[backupStorage]
aws_access_key_id={KEY_ID}
aws_secret_access_key={SECRET}

[volumeSnapshot]
aws_access_key_id=AKIAVOLUMESNAPSHOT01
aws_secret_access_key=volumesnapshotsecretvolumesnapshotsecret
"""


def assert_no_secret(error: BaseException) -> None:
    text = f"{error} {error!r}"
    for secret in (SECRET, TOKEN, "volumesnapshotsecretvolumesnapshotsecret"):
        assert secret not in text


def parse_error(content: str, profile: str = "default") -> StorageConfigError:
    with pytest.raises(StorageConfigError) as raised:
        parse_credentials(content, profile)
    assert_no_secret(raised.value)
    return raised.value


def test_default_profile_of_the_seed_file() -> None:
    credentials = parse_credentials(SEED_DEFAULT)
    assert credentials == AwsCredentials(KEY_ID, SECRET, None, "default")


def test_profile_selects_a_section() -> None:
    storage = parse_credentials(SEED_PROFILES, "backupStorage")
    snapshots = parse_credentials(SEED_PROFILES.encode(), "volumeSnapshot")
    assert (storage.access_key_id, storage.profile) == (KEY_ID, "backupStorage")
    assert (snapshots.access_key_id, snapshots.profile) == ("AKIAVOLUMESNAPSHOT01", "volumeSnapshot")
    assert profiles(SEED_PROFILES) == ["backupStorage", "volumeSnapshot"]


def test_an_empty_profile_name_means_default() -> None:
    assert parse_credentials(SEED_DEFAULT, "").profile == "default"


def test_session_token_comments_spacing_and_other_settings() -> None:
    content = (
        "\ufeff# written by hand\r\n"
        "; another comment\r\n"
        "[profile default]\r\n"
        f"  AWS_Access_Key_Id = {KEY_ID}  \r\n"
        f"aws_secret_access_key= {SECRET}\r\n"
        f"aws_session_token ={TOKEN}\r\n"
        "region = us-east-1\r\n"
        "s3 =\r\n"
        "    max_concurrent_requests = 10\r\n"
        "    max_concurrent_requests = 20\r\n"
    )
    credentials = parse_credentials(content)
    assert credentials == AwsCredentials(KEY_ID, SECRET, TOKEN, "default")


def test_repr_and_str_hide_the_secrets() -> None:
    credentials = AwsCredentials(KEY_ID, SECRET, TOKEN, "backupStorage")
    for text in (repr(credentials), str(credentials), f"{credentials}", repr([credentials])):
        assert SECRET not in text
        assert TOKEN not in text
        assert KEY_ID not in text
        assert "backupStorage" in text
    assert credentials.secret_values == (KEY_ID, SECRET, TOKEN)


def test_profile_not_found_lists_the_profiles_that_exist() -> None:
    error = parse_error(SEED_PROFILES, "default")
    assert "profile 'default' not found" in str(error)
    assert "backupStorage, volumeSnapshot" in str(error)


def test_an_empty_file_has_no_profiles() -> None:
    assert "profiles it defines: none" in str(parse_error("\n# nothing\n"))


def test_the_seed_text_flattened_onto_one_line_is_explained() -> None:
    # Copying the guide's example out of a PDF joins its lines.
    error = parse_error(f"[default] aws_access_key_id={KEY_ID} aws_secret_access_key={SECRET}")
    assert "line 1: malformed profile header: text follows the closing ']'" in str(error)
    assert "own" in str(error.hint)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("[default\naws_access_key_id=x\n", "line 1: malformed profile header: it has no closing ']'"),
        ("\n\n[]\n", "line 3: malformed profile header: expected [name]"),
        ("[[default]]\n", "line 1: malformed profile header"),
        (f"[default]\naws_access_key_id {KEY_ID}\n", "line 2: expected 'name = value'"),
        (f"[default]\naws_access_key_id={KEY_ID}\n{SECRET}\n", "line 3: expected 'name = value'"),
        (f"aws_access_key_id={KEY_ID}\n[default]\n", "line 1: setting 'aws_access_key_id' comes before any"),
        ("[default]\n=value\n", "line 2: a setting has no name before '='"),
        (
            "[default]\naws_secret_access_key=\n",
            "line 2: aws_secret_access_key in profile [default] is empty",
        ),
        (
            f"[default]\naws_access_key_id={KEY_ID}\naws_secret_access_key={SECRET}\n"
            f"aws_secret_access_key={SECRET}\n",
            "line 4: duplicate setting 'aws_secret_access_key' in profile [default] (first set on line 3)",
        ),
        (
            f"[default]\naws_access_key_id={KEY_ID}\n[default]\n",
            "line 3: profile [default] is defined twice (first on line 1)",
        ),
        (
            f"[default]\naws_access_key_id={KEY_ID}\n",
            "profile [default] (line 1) has no aws_secret_access_key",
        ),
        (
            f"\n[default]\naws_secret_access_key={SECRET}\n",
            "profile [default] (line 2) has no aws_access_key_id",
        ),
    ],
)
def test_each_mistake_names_its_line_and_never_a_secret(content: str, expected: str) -> None:
    assert expected in str(parse_error(content))


def test_a_secret_on_a_malformed_line_is_not_echoed() -> None:
    error = parse_error(f"[default]\naws_access_key_id={KEY_ID}\naws_secret_access_key: {SECRET}\n")
    assert "line 3" in str(error)


def test_binary_garbage_is_reported_without_echo() -> None:
    with pytest.raises(StorageConfigError, match="not UTF-8 text"):
        parse_credentials(b"[default]\n\xff\xfe" + SECRET.encode())


def test_source_names_the_file_in_messages() -> None:
    with pytest.raises(StorageConfigError) as raised:
        parse_credentials("nonsense", source="secret openshift-adp/cloud-credentials")
    assert str(raised.value).startswith("secret openshift-adp/cloud-credentials, line 1:")


def test_load_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "credentials-velero"
    path.write_text(SEED_PROFILES)
    assert load_credentials_file(path, "volumeSnapshot").access_key_id == "AKIAVOLUMESNAPSHOT01"
    with pytest.raises(StorageConfigError) as raised:
        load_credentials_file(path, "x")
    assert str(raised.value).startswith(f"{path}: profile 'x' not found")
    with pytest.raises(StorageConfigError, match="cannot read the credentials file"):
        load_credentials_file(tmp_path / "missing")
