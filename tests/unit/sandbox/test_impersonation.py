"""kube-apiserver's impersonation rules, applied to header lists."""

from __future__ import annotations

import pytest

from strongroom.sandbox import apierrors
from strongroom.sandbox.identity import (
    UserInfo,
    admin_user,
    certificate_user,
    impersonate,
    service_account_user,
    split_service_account,
)

ADMIN = admin_user()


def test_no_impersonation_headers_keep_the_requester() -> None:
    assert impersonate(ADMIN, [("Accept", "application/json")]) is ADMIN


def test_a_user_without_groups_is_authenticated() -> None:
    assert impersonate(ADMIN, [("Impersonate-User", "alice")]) == UserInfo(
        "alice", groups=("system:authenticated",)
    )


def test_groups_repeat_and_keep_their_order_before_system_authenticated() -> None:
    user = impersonate(
        ADMIN,
        [
            ("Impersonate-User", "system:node:n1"),
            ("Impersonate-Group", "system:nodes"),
            ("Impersonate-Group", "extra"),
        ],
    )
    assert user.username == "system:node:n1"
    assert user.groups == ("system:nodes", "extra", "system:authenticated")


def test_header_names_are_case_insensitive() -> None:
    user = impersonate(ADMIN, [("impersonate-user", "bob"), ("IMPERSONATE-GROUP", "g")])
    assert (user.username, user.groups) == ("bob", ("g", "system:authenticated"))


def test_system_authenticated_is_not_added_twice_nor_to_unauthenticated() -> None:
    given = impersonate(ADMIN, [("Impersonate-User", "bob"), ("Impersonate-Group", "system:authenticated")])
    assert given.groups == ("system:authenticated",)
    unauth = impersonate(
        ADMIN, [("Impersonate-User", "bob"), ("Impersonate-Group", "system:unauthenticated")]
    )
    assert unauth.groups == ("system:unauthenticated",)


def test_anonymous_joins_system_unauthenticated() -> None:
    user = impersonate(ADMIN, [("Impersonate-User", "system:anonymous")])
    assert user.groups == ("system:unauthenticated",)


def test_a_service_account_gets_its_fixed_groups_unless_groups_are_given() -> None:
    name = "system:serviceaccount:openshift-machine-config-operator:node-bootstrapper"
    user = impersonate(ADMIN, [("Impersonate-User", name)])
    assert user.groups == (
        "system:serviceaccounts",
        "system:serviceaccounts:openshift-machine-config-operator",
        "system:authenticated",
    )
    chosen = impersonate(ADMIN, [("Impersonate-User", name), ("Impersonate-Group", "g")])
    assert chosen.groups == ("g", "system:authenticated")


def test_uid_and_extra() -> None:
    user = impersonate(
        ADMIN,
        [
            ("Impersonate-User", "bob"),
            ("Impersonate-Uid", "1234"),
            ("Impersonate-Extra-Scopes", "view"),
            ("Impersonate-Extra-scopes", "edit"),
            ("Impersonate-Extra-example.com%2fteam", "a"),
        ],
    )
    assert user.uid == "1234"
    assert user.extra == {"scopes": ("view", "edit"), "example.com/team": ("a",)}


@pytest.mark.parametrize(
    "headers",
    [
        [("Impersonate-Group", "system:nodes")],
        [("Impersonate-Uid", "1")],
        [("Impersonate-Extra-a", "b")],
        [("Impersonate-User", ""), ("Impersonate-Group", "g")],
    ],
)
def test_anything_but_the_user_needs_a_user(headers: list[tuple[str, str]]) -> None:
    with pytest.raises(apierrors.ApiError) as caught:
        impersonate(ADMIN, headers)
    assert caught.value.code == 500
    assert "without impersonating a user" in caught.value.message


def test_authenticated_identities() -> None:
    assert certificate_user("system:node:n1", ["system:nodes"]).groups == (
        "system:nodes",
        "system:authenticated",
    )
    account = service_account_user("ns", "sa", "uid-1")
    assert account.username == "system:serviceaccount:ns:sa"
    assert account.uid == "uid-1"
    assert account.groups == ("system:serviceaccounts", "system:serviceaccounts:ns", "system:authenticated")
    assert ADMIN.groups == ("system:masters", "system:authenticated")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("system:serviceaccount:ns:sa", ("ns", "sa")),
        ("system:serviceaccount:ns", None),
        ("system:serviceaccount::sa", None),
        ("system:serviceaccount:a:b:c", None),
        ("alice", None),
    ],
)
def test_split_service_account(name: str, expected: tuple[str, str] | None) -> None:
    assert split_service_account(name) == expected
