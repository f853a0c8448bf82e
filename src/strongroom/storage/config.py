"""What every provider's ``config`` parsing shares: Velero's key check, Go's booleans, endpoint URLs.

Velero's plugins refuse unknown ``config`` keys (ValidateObjectStoreConfigKeys)
and read booleans with Go's ``strconv.ParseBool``; each provider's settings
(``s3.py``, ``azure.py``, ``gcs.py``) apply the same rules with the same words.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit

from strongroom.errors import StorageConfigError

__all__ = ["check_config_keys", "parse_bool", "parse_url"]

# Go's strconv.ParseBool.
_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


def check_config_keys(values: Mapping[str, str], valid: Sequence[str]) -> None:
    """Refuse the keys ``valid`` does not name, as Velero's plugins word it."""
    unknown = sorted(set(values) - set(valid))
    if unknown:
        raise StorageConfigError(
            f"config has invalid keys [{' '.join(unknown)}]; valid keys are [{' '.join(valid)}]"
        )


def parse_bool(values: Mapping[str, str], key: str) -> bool:
    """``values[key]`` read as Go reads a boolean; absent or empty is false."""
    value = values.get(key, "")
    if value == "" or value in _FALSE:
        return False
    if value in _TRUE:
        return True
    raise StorageConfigError(
        f"could not parse {key} (expected bool): {value!r}", hint='use "true" or "false"'
    )


def parse_url(
    values: Mapping[str, str], key: str, *, example: str, query_hint: str | None = None
) -> str | None:
    """``values[key]`` as an http(s) URL without credentials, query or fragment (None when unset).

    ``query_hint`` is for a provider whose URLs may carry a credential in the
    query (an Azure SAS token): the message then leaves the URL out and says
    what to use instead.
    """
    value = values.get(key, "")
    if not value:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise StorageConfigError(
            f"invalid {key} {value!r}: it must be a URL starting with http:// or https://",
            hint=f"for example {example}",
        )
    if parts.username or parts.password:
        # Credentials belong in the credentials file, never in a URL that
        # ends up in status fields and log lines.
        raise StorageConfigError(f"invalid {key}: it must not contain a user name or password")
    if parts.query or parts.fragment:
        if query_hint is not None:
            raise StorageConfigError(f"invalid {key}: it must not have a query or fragment", hint=query_hint)
        raise StorageConfigError(f"invalid {key} {value!r}: it must not have a query or fragment")
    return value.rstrip("/")
