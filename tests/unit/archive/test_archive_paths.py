"""Tar paths follow Velero's layout exactly, and unsafe or foreign paths are refused."""

from __future__ import annotations

import re

import pytest

from strongroom.archive import (
    ArchiveError,
    FormatVersion,
    GroupResource,
    ItemPath,
    UnsupportedFormatError,
    item_paths,
    parse_item_path,
    resource_list_entry,
    resource_list_key,
)
from strongroom.archive.paths import split_archive_path

PODS = GroupResource("pods")
DEPLOYMENTS = GroupResource("deployments", "apps")
PVS = GroupResource("persistentvolumes")


def test_core_group_has_no_suffix_and_other_groups_follow_a_dot() -> None:
    assert str(PODS) == "pods"
    assert str(DEPLOYMENTS) == "deployments.apps"
    assert GroupResource.parse("horizontalpodautoscalers.autoscaling") == GroupResource(
        "horizontalpodautoscalers", "autoscaling"
    )
    assert GroupResource.parse("widgets.example.com") == GroupResource("widgets", "example.com")


def test_preferred_item_is_written_classic_path_first_then_preferredversion_copy() -> None:
    paths = item_paths(DEPLOYMENTS, "ns-1", "deploy-1", version="v1", preferred=True)

    assert [path.path for path in paths] == [
        "resources/deployments.apps/namespaces/ns-1/deploy-1.json",
        "resources/deployments.apps/v1-preferredversion/namespaces/ns-1/deploy-1.json",
    ]


def test_cluster_scoped_item_lives_under_cluster() -> None:
    paths = item_paths(PVS, None, "pv-1", version="v1", preferred=True)

    assert [path.path for path in paths] == [
        "resources/persistentvolumes/cluster/pv-1.json",
        "resources/persistentvolumes/v1-preferredversion/cluster/pv-1.json",
    ]


def test_non_preferred_version_is_written_once_under_its_version() -> None:
    hpa = GroupResource("horizontalpodautoscalers", "autoscaling")

    paths = item_paths(hpa, "ns", "web", version="v2beta2", preferred=False)

    assert [path.path for path in paths] == [
        "resources/horizontalpodautoscalers.autoscaling/v2beta2/namespaces/ns/web.json"
    ]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("resources/pods/namespaces/foo/bar.json", ItemPath(PODS, "foo", "bar")),
        ("resources/persistentvolumes/cluster/pv01.json", ItemPath(PVS, None, "pv01")),
        (
            "resources/pods/v1-preferredversion/namespaces/zoo/raz.json",
            ItemPath(PODS, "zoo", "raz", "v1", preferred=True),
        ),
        (
            "resources/persistentvolumes/v1-preferredversion/cluster/bar.json",
            ItemPath(PVS, None, "bar", "v1", preferred=True),
        ),
        (
            "resources/horizontalpodautoscalers.autoscaling/v2beta1/namespaces/namespace1/hpa-to-the-rescue.json",
            ItemPath(
                GroupResource("horizontalpodautoscalers", "autoscaling"),
                "namespace1",
                "hpa-to-the-rescue",
                "v2beta1",
            ),
        ),
        # RBAC names may contain colons and dots; they are still one path segment.
        (
            "resources/clusterroles.rbac.authorization.k8s.io/cluster/system:node.proxier.json",
            ItemPath(GroupResource("clusterroles", "rbac.authorization.k8s.io"), None, "system:node.proxier"),
        ),
        ("./resources/pods/namespaces/foo/bar.json", ItemPath(PODS, "foo", "bar")),
    ],
)
def test_item_path_parses_back_to_its_identity(path: str, expected: ItemPath) -> None:
    parsed = parse_item_path(path)

    assert parsed == expected
    assert parsed.path == path.removeprefix("./")


@pytest.mark.parametrize(
    ("path", "complaint"),
    [
        ("/resources/pods/namespaces/foo/bar.json", "absolute"),
        ("resources/pods/namespaces/../../../etc/passwd.json", "'..'"),
        ("resources/pods/namespaces/foo/../bar.json", "'..'"),
        ("resources/pods/./namespaces/foo/bar.json", "'.'"),
        ("resources//pods/namespaces/foo/bar.json", "empty component"),
        ("resources/pods/namespaces/foo/bar.json/", "empty component"),
        ("resources/pods/namespaces/foo\x00/bar.json", "NUL"),
        ("metadata/version", "not an item path"),
        ("other/pods/namespaces/foo/bar.json", "not an item path"),
        ("resources/pods/namespaces/bar.json", "does not match"),
        ("resources/pods/cluster/foo/bar.json", "does not match"),
        ("resources/pods/v1/v2/namespaces/foo/bar.json", "does not match"),
        ("resources/pods/namespaces/foo/bar.yaml", "not a <name>.json"),
        ("resources/pods/namespaces/foo/.json", "not a <name>.json"),
        ("resources/.apps/namespaces/foo/bar.json", "resource ''"),
        ("resources/deployments./namespaces/foo/bar.json", "ends with a dot"),
        ("resources/pods/-preferredversion/namespaces/foo/bar.json", "API version ''"),
    ],
)
def test_unsafe_or_foreign_paths_are_refused(path: str, complaint: str) -> None:
    with pytest.raises(ArchiveError, match=re.escape(complaint)):
        parse_item_path(path)


def test_names_that_would_change_the_path_shape_cannot_be_written() -> None:
    for name in ("..", ".", "a/b", ""):
        with pytest.raises(ArchiveError):
            ItemPath(PODS, "ns", name)
    with pytest.raises(ArchiveError):
        ItemPath(PODS, "../x", "name")
    with pytest.raises(ArchiveError):
        item_paths(PODS, "ns", "name", version="namespaces", preferred=False)
    with pytest.raises(ArchiveError):
        item_paths(PODS, "ns", "name", version="v1-preferredversion", preferred=True)


def test_directory_entries_may_end_with_a_slash_and_the_root_is_empty() -> None:
    assert split_archive_path("resources/pods/", directory=True) == ("resources", "pods")
    assert split_archive_path("./", directory=True) == ()
    with pytest.raises(ArchiveError):
        split_archive_path("../", directory=True)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1.1.0\n", FormatVersion(1, 1, 0)), ("1\n", FormatVersion(1, 0, 0)), ("1.2", FormatVersion(1, 2, 0))],
)
def test_format_version_reads_velero_and_pre_1_1_spellings(text: str, expected: FormatVersion) -> None:
    assert FormatVersion.parse(text) == expected


def test_format_version_2_is_refused_with_a_clear_message() -> None:
    with pytest.raises(UnsupportedFormatError, match=r"format version 2\.0\.0 is not supported"):
        FormatVersion.parse("2.0.0\n").check_supported()


def test_format_version_that_is_not_a_version_is_an_error() -> None:
    with pytest.raises(ArchiveError, match="not a format version"):
        FormatVersion.parse("latest")


def test_resource_list_keys_are_api_version_and_kind() -> None:
    assert resource_list_key("", "v1", "Pod") == "v1/Pod"
    assert resource_list_key("apps", "v1", "Deployment") == "apps/v1/Deployment"
    assert resource_list_entry("ns1", "pod1") == "ns1/pod1"
    assert resource_list_entry(None, "pv1") == "pv1"
