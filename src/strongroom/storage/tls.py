"""A location's ``caCert``: the certificate authorities a store's server certificate may chain to.

Velero takes ``caCert`` as PEM text (base64 of it in the BackupStorageLocation).
strongroom also accepts plain PEM and a file path. The bundle is checked when the
location is opened, so a broken one fails with a clear message rather than as a
TLS error on the first request.
"""

from __future__ import annotations

import base64
import binascii
import ssl
from pathlib import Path

from strongroom.errors import StorageConfigError

__all__ = ["ca_certificate"]


def ca_certificate(value: str) -> str:
    """The PEM text of ``caCert``: given as PEM, as base64 of PEM (as in the CR), or as a file path."""
    pem: str | None = None
    if "-----BEGIN" in value:
        pem = value
    else:
        try:
            decoded = base64.b64decode(value, validate=True).decode("ascii")
        except (binascii.Error, UnicodeDecodeError):
            decoded = ""
        pem = decoded if "-----BEGIN" in decoded else _read_pem_file(value)
    if pem is None:
        raise StorageConfigError(
            "caCert is neither a PEM certificate, nor base64 of one, nor a readable file",
        )
    try:
        # Checked here so that a broken bundle fails now, with a clear message,
        # instead of as a TLS error on the first request.
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cadata=pem)
    except (ssl.SSLError, ValueError) as exc:
        raise StorageConfigError(f"caCert does not hold a valid PEM certificate: {exc}") from None
    return pem


def _read_pem_file(value: str) -> str | None:
    try:
        return Path(value).read_text(encoding="ascii")
    except FileNotFoundError:
        return None
    except OSError as exc:
        # Too long for a file name, a directory, unreadable: not a usable file either way.
        raise StorageConfigError(f"caCert is not PEM text and not a readable file ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise StorageConfigError("caCert names a file that does not hold PEM text") from None
