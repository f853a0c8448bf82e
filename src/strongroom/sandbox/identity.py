"""Who a request acts as: the authenticated user and kube-apiserver's impersonation.

kube-apiserver authenticates a request (client certificate CN/O, bearer
token), then its impersonation filter replaces that identity with the one
named by the ``Impersonate-*`` headers (``kubectl --as USER --as-group G``).
The rules here are that filter's (``endpoints/filters/impersonation.go``):
the user header is required with any other, a service-account user gets the
fixed service-account groups when no group is given, and every impersonated
user other than ``system:anonymous`` is in ``system:authenticated``.

The sandbox has no authorizer: every authenticated requester is allowed the
``impersonate`` verb, as the sandbox's admin (in ``system:masters``) is on a
real cluster. The identity then reaches what depends on it: a
CertificateSigningRequest's ``spec.username``/``uid``/``groups``/``extra``
and ``kubectl auth whoami``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import unquote

from strongroom.sandbox import apierrors

ALL_AUTHENTICATED = "system:authenticated"
ALL_UNAUTHENTICATED = "system:unauthenticated"
ANONYMOUS = "system:anonymous"
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"

IMPERSONATE_USER = "Impersonate-User"
IMPERSONATE_GROUP = "Impersonate-Group"
IMPERSONATE_UID = "Impersonate-Uid"
IMPERSONATE_EXTRA_PREFIX = "Impersonate-Extra-"


@dataclass(frozen=True)
class UserInfo:
    """kube's user.Info: what authentication (or impersonation) established."""

    username: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: dict[str, tuple[str, ...]] = field(default_factory=dict)


def admin_user(username: str = "strongroom-admin") -> UserInfo:
    """The sandbox's administrator: the client certificate's and the admin token's identity."""
    return UserInfo(username, groups=("system:masters", ALL_AUTHENTICATED))


def certificate_user(common_name: str, organizations: Iterable[str]) -> UserInfo:
    """The x509 authenticator: CN is the user, each O a group; authenticated users join system:authenticated."""
    return UserInfo(common_name, groups=(*organizations, ALL_AUTHENTICATED))


def service_account_user(namespace: str, name: str, uid: str = "") -> UserInfo:
    """The service-account token authenticator's identity."""
    return UserInfo(
        f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}",
        uid=uid,
        groups=(*service_account_groups(namespace), ALL_AUTHENTICATED),
    )


def service_account_groups(namespace: str) -> tuple[str, ...]:
    """serviceaccount.MakeGroupNames."""
    return ("system:serviceaccounts", f"system:serviceaccounts:{namespace}")


def split_service_account(username: str) -> tuple[str, str] | None:
    """serviceaccount.SplitUsername: (namespace, name) of ``system:serviceaccount:NS:NAME``, else None."""
    if not username.startswith(SERVICE_ACCOUNT_PREFIX):
        return None
    parts = username[len(SERVICE_ACCOUNT_PREFIX) :].split(":")
    if len(parts) != 2 or not parts[0] or not parts[1]:
        return None
    return parts[0], parts[1]


def impersonation_requested(headers: Iterable[tuple[str, str]]) -> bool:
    return any(_is_impersonation(name) for name, _ in headers)


def impersonate(requester: UserInfo, headers: Iterable[tuple[str, str]]) -> UserInfo:
    """The identity a request acts as, given its headers (name, value pairs; names case-insensitive).

    Without any ``Impersonate-*`` header the requester itself. Raises the
    ApiError kube-apiserver answers for a malformed combination.
    """
    user_values: list[str] = []
    groups_given: list[str] = []
    uid_values: list[str] = []
    extra: dict[str, list[str]] = {}
    for name, value in headers:
        lowered = name.lower()
        if lowered == IMPERSONATE_USER.lower():
            user_values.append(value)
        elif lowered == IMPERSONATE_GROUP.lower():
            groups_given.append(value)
        elif lowered == IMPERSONATE_UID.lower():
            uid_values.append(value)
        elif lowered.startswith(IMPERSONATE_EXTRA_PREFIX.lower()):
            # Header names are case-insensitive, so kube lower-cases the key; keys that are not
            # valid header tokens arrive percent-encoded.
            key = unquote(lowered[len(IMPERSONATE_EXTRA_PREFIX) :])
            extra.setdefault(key, []).append(value)
    requested_user = user_values[0] if user_values else ""
    requested_uid = uid_values[0] if uid_values else ""
    if not requested_user:
        if groups_given or extra or requested_uid:
            # buildImpersonationRequests fails, and the filter answers with an internal error.
            raise apierrors.internal(
                f"requested {_describe(groups_given, extra, requested_uid)} without impersonating a user"
            )
        return requester
    groups: list[str] = []
    account = split_service_account(requested_user)
    if account is not None and not groups_given:
        # The groups of a service account are a fixed mapping.
        groups.extend(service_account_groups(account[0]))
    groups.extend(groups_given)
    if requested_user != ANONYMOUS:
        if ALL_AUTHENTICATED not in groups and ALL_UNAUTHENTICATED not in groups:
            groups.append(ALL_AUTHENTICATED)
    elif ALL_UNAUTHENTICATED not in groups:
        groups.append(ALL_UNAUTHENTICATED)
    return UserInfo(
        requested_user,
        uid=requested_uid,
        groups=tuple(groups),
        extra={key: tuple(values) for key, values in extra.items()},
    )


def _is_impersonation(name: str) -> bool:
    lowered = name.lower()
    return lowered in (
        IMPERSONATE_USER.lower(),
        IMPERSONATE_GROUP.lower(),
        IMPERSONATE_UID.lower(),
    ) or lowered.startswith(IMPERSONATE_EXTRA_PREFIX.lower())


def _describe(groups: list[str], extra: dict[str, list[str]], uid: str) -> str:
    parts = [f"Group={g}" for g in groups]
    parts += [f"UserExtra[{k}]={v}" for k, values in extra.items() for v in values]
    if uid:
        parts.append(f"UID={uid}")
    return "[" + " ".join(parts) + "]"
