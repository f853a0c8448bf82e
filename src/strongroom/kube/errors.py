"""The errors of the Kubernetes API, as strongroom's exception tree.

The API server answers a failed request with a ``metav1.Status`` (a code, a
machine-readable reason such as ``NotFound`` or ``AlreadyExists``, and a
message written for people). Callers decide on the reason: a restore skips an
object that already exists, a backup records a forbidden resource as a
warning, a controller retries a conflict. So every failure becomes a
``KubeError`` carrying the status code, the reason and the server's message,
and the common reasons get subclasses that also sit in the generic branches
of ``strongroom.errors`` (``NotFoundError``, ``ConflictError``,
``UnavailableError``), which give the CLI its exit codes.

Credentials must never reach a message: everything built here passes through
``redact``, which blanks the secrets the client knows and anything that looks
like an Authorization header value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

from strongroom.errors import (
    EXIT_CONFLICT,
    EXIT_FAILURE,
    EXIT_NOT_FOUND,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    ConflictError,
    NotFoundError,
    StrongroomError,
    UnavailableError,
    UsageError,
)

__all__ = [
    "KubeAlreadyExists",
    "KubeConfigError",
    "KubeConflict",
    "KubeError",
    "KubeExpired",
    "KubeForbidden",
    "KubeInvalid",
    "KubeNotFound",
    "KubeUnavailable",
    "error_from_response",
    "redact",
]

REDACTED = "<redacted>"
# A message that echoes a request header shows "Bearer <token>" or "Basic <b64>".
_AUTH_VALUE = re.compile(r"\b(?P<scheme>Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
# A body that is not a metav1.Status (a proxy's HTML page) is cut to this length.
_MAX_BODY = 300

# The reason kube-apiserver gives each status code when a body does not say.
_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    410: "Expired",
    413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every known secret and every Authorization value blanked."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return _AUTH_VALUE.sub(lambda m: f"{m.group('scheme')} {REDACTED}", text)


class KubeError(StrongroomError):
    """A request to the Kubernetes API failed.

    ``status`` is the HTTP status (None when no response arrived), ``reason``
    the metav1.Status reason (``NotFound``, ``AlreadyExists``, ``Conflict``,
    ``Invalid``, ``Forbidden``, ...), ``message`` the server's message.
    ``method`` and ``path`` name the request, for logs.
    """

    exit_code = EXIT_FAILURE

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        reason: str = "",
        hint: str | None = None,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.reason = reason
        self.method = method
        self.path = path


class KubeNotFound(KubeError, NotFoundError):
    """The object, its namespace, or the resource type does not exist (404)."""

    exit_code = EXIT_NOT_FOUND


class KubeAlreadyExists(KubeError, ConflictError):
    """A create found an object of that name already there (409 AlreadyExists)."""

    exit_code = EXIT_CONFLICT


class KubeConflict(KubeError, ConflictError):
    """The object changed since it was read (409 Conflict): read it again and retry."""

    exit_code = EXIT_CONFLICT


class KubeInvalid(KubeError):
    """The server rejected the object's content (422 Invalid); the message says which field."""


class KubeForbidden(KubeError):
    """The credentials were refused (401) or lack a permission (403)."""


class KubeExpired(KubeError):
    """A continue token (or resource version) is too old for the server (410)."""


class KubeUnavailable(KubeError, UnavailableError):
    """No answer from the API server: connection refused, TLS failure, timeout, or 503."""

    exit_code = EXIT_UNAVAILABLE


class KubeConfigError(KubeError, UsageError):
    """The kubeconfig file is missing or malformed, or names no such context."""

    exit_code = EXIT_USAGE


def _status_body(body: bytes) -> dict[str, object] | None:
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) and doc.get("kind") == "Status" else None


def error_from_response(
    status: int, body: bytes, *, method: str, path: str, secrets: Iterable[str] = ()
) -> KubeError:
    """The error for a non-2xx answer, from its metav1.Status when it has one."""
    doc = _status_body(body)
    if doc is not None:
        reason = str(doc.get("reason") or _REASONS.get(status, ""))
        message = str(doc.get("message") or f"{method} {path}: HTTP {status} {reason}".rstrip())
    else:
        reason = _REASONS.get(status, "")
        text = body.decode("utf-8", errors="replace").strip()
        if len(text) > _MAX_BODY:
            text = text[:_MAX_BODY] + "..."
        message = f"{method} {path}: HTTP {status} {reason}".rstrip() + (f": {text}" if text else "")
    message = redact(message, secrets)
    cls: type[KubeError] = KubeError
    hint: str | None = None
    if status == 404:
        cls = KubeNotFound
    elif status == 409:
        cls = KubeAlreadyExists if reason == "AlreadyExists" else KubeConflict
    elif status == 422 or reason == "Invalid":
        cls = KubeInvalid
    elif status == 401:
        cls = KubeForbidden
        hint = "the API server refused the credentials: check the kubeconfig's user (token or client certificate)"
    elif status == 403:
        cls = KubeForbidden
        hint = "the kubeconfig's user lacks this permission: check its RBAC roles"
    elif status == 410:
        cls = KubeExpired
    elif status == 503:
        cls = KubeUnavailable
        hint = "the API server (or the aggregated API behind it) is not serving; retry later"
    return cls(message, status=status, reason=reason, hint=hint, method=method, path=path)
