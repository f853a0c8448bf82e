"""The AWS shared-credentials file that OADP and Velero keep in the ``cloud-credentials`` Secret.

Administrators write this file by hand (``credentials-velero`` in the OADP
guide) and a typo in it is the classic cause of "NoCredentialProviders: no
valid provider in chain" hours later. So it is parsed strictly, up front, and
every mistake is reported with its line number and what is wrong, without
ever echoing a value: the file is full of secrets.

The format is the INI dialect of the AWS SDKs::

    [default]
    aws_access_key_id=AKIAIOSFODNN7EXAMPLE
    aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY

    [backupStorage]
    ...

Sections are profiles; a BackupStorageLocation's ``config.profile`` picks one
(``default`` if unset). ``[profile NAME]`` is accepted as ``NAME`` because
Velero also reads the file as an AWS config file. Setting names are
case-insensitive (as in the SDKs), other settings (region, output, nested
``s3 =`` blocks) are allowed and ignored, and ``#`` or ``;`` starts a comment
line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from strongroom.errors import StorageConfigError

__all__ = ["DEFAULT_PROFILE", "AwsCredentials", "load_credentials_file", "parse_credentials", "profiles"]

DEFAULT_PROFILE = "default"
_ACCESS_KEY = "aws_access_key_id"
_SECRET_KEY = "aws_secret_access_key"
_SESSION_TOKEN = "aws_session_token"
_REQUIRED = (_ACCESS_KEY, _SECRET_KEY)
_OURS = (*_REQUIRED, _SESSION_TOKEN)


@dataclass(frozen=True, repr=False)
class AwsCredentials:
    """Static AWS credentials of one profile; printing them never shows a secret."""

    access_key_id: str
    secret_access_key: str
    session_token: str | None = None
    profile: str = DEFAULT_PROFILE

    def __repr__(self) -> str:
        token = "<hidden>" if self.session_token else None
        return (
            f"AwsCredentials(profile={self.profile!r}, access_key_id={_mask(self.access_key_id)!r}, "
            f"secret_access_key=<hidden>, session_token={token})"
        )

    __str__ = __repr__

    @property
    def secret_values(self) -> tuple[str, ...]:
        """Every value that must be blanked if it ever shows up in a provider's message."""
        return tuple(
            value for value in (self.access_key_id, self.secret_access_key, self.session_token) if value
        )


@dataclass(frozen=True)
class _Profile:
    name: str
    line: int
    settings: dict[str, tuple[str, int]]


def parse_credentials(
    content: str | bytes, profile: str = DEFAULT_PROFILE, *, source: str = "credentials file"
) -> AwsCredentials:
    """The credentials of ``profile`` in ``content``; StorageConfigError names the line of any mistake.

    ``source`` names the file in messages (a path, or the Secret and key it came from).
    """
    wanted = profile or DEFAULT_PROFILE
    parsed = _parse(content, source)
    found = parsed.get(wanted)
    if found is None:
        existing = ", ".join(sorted(parsed)) if parsed else "none"
        raise StorageConfigError(
            f"{source}: profile {wanted!r} not found; the profiles it defines: {existing}",
            hint="set config.profile of the backup storage location to one of them, or add the profile",
        )
    for key in _REQUIRED:
        if key not in found.settings:
            raise StorageConfigError(
                f"{source}: profile [{found.name}] (line {found.line}) has no {key}",
                hint=f"add a line '{key}=...' under [{found.name}]",
            )
    token = found.settings.get(_SESSION_TOKEN)
    return AwsCredentials(
        access_key_id=found.settings[_ACCESS_KEY][0],
        secret_access_key=found.settings[_SECRET_KEY][0],
        session_token=token[0] if token else None,
        profile=found.name,
    )


def profiles(content: str | bytes, *, source: str = "credentials file") -> list[str]:
    """The profile names ``content`` defines, in file order (after checking its syntax)."""
    return list(_parse(content, source))


def load_credentials_file(path: str | Path, profile: str = DEFAULT_PROFILE) -> AwsCredentials:
    """Read and parse the credentials file at ``path`` (Velero's ``credentialsFile``)."""
    try:
        content = Path(path).read_bytes()
    except OSError as exc:
        raise StorageConfigError(f"cannot read the credentials file {str(path)!r}: {exc.strerror}") from exc
    return parse_credentials(content, profile, source=str(path))


def _parse(content: str | bytes, source: str) -> dict[str, _Profile]:
    if isinstance(content, bytes):
        try:
            content = content.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise StorageConfigError(f"{source}: not UTF-8 text (byte {exc.start})") from None
    content = content.removeprefix("\ufeff")
    found: dict[str, _Profile] = {}
    current: _Profile | None = None
    # A setting with an empty value may open a nested block of indented lines
    # (the AWS config file's "s3 =" form); those lines belong to it.
    nested = False
    for number, raw in enumerate(content.splitlines(), start=1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if nested and raw[:1].isspace():
            continue
        nested = False
        if line.startswith("["):
            current = _section(line, number, source, found)
            found[current.name] = current
            continue
        if "=" not in line:
            raise StorageConfigError(
                f"{source}, line {number}: expected 'name = value' or a [profile] header, but the line has no '='"
            )
        key, _, value = line.partition("=")
        key, value = key.strip().lower(), value.strip()
        if not key:
            raise StorageConfigError(f"{source}, line {number}: a setting has no name before '='")
        if current is None:
            raise StorageConfigError(
                f"{source}, line {number}: setting {key!r} comes before any [profile] header",
                hint="start the file with a header such as [default]",
            )
        if key in current.settings:
            first = current.settings[key][1]
            raise StorageConfigError(
                f"{source}, line {number}: duplicate setting {key!r} in profile [{current.name}] "
                f"(first set on line {first})"
            )
        if not value:
            if key in _OURS:
                raise StorageConfigError(
                    f"{source}, line {number}: {key} in profile [{current.name}] is empty"
                )
            nested = True
        current.settings[key] = (value, number)
    return found


def _section(line: str, number: int, source: str, found: dict[str, _Profile]) -> _Profile:
    close = line.find("]")
    if close == -1:
        raise StorageConfigError(f"{source}, line {number}: malformed profile header: it has no closing ']'")
    if line[close + 1 :].strip():
        raise StorageConfigError(
            f"{source}, line {number}: malformed profile header: text follows the closing ']'",
            hint="put the header and each setting on a line of its own",
        )
    name = line[1:close].strip()
    if name.startswith("profile ") and name != "profile ":
        name = name.removeprefix("profile ").strip()
    if not name or any(char in name for char in "[]"):
        raise StorageConfigError(
            f"{source}, line {number}: malformed profile header: expected [name] with a non-empty name"
        )
    if name in found:
        raise StorageConfigError(
            f"{source}, line {number}: profile [{name}] is defined twice (first on line {found[name].line})"
        )
    return _Profile(name=name, line=number, settings={})


def _mask(access_key_id: str) -> str:
    # The first four characters tell the key's kind (AKIA: long-term, ASIA:
    # temporary) without identifying it.
    return f"{access_key_id[:4]}..." if len(access_key_id) > 8 else "..."
