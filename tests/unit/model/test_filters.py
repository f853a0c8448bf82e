"""Namespaces, resources and labels must be filtered as Velero filters them.

The tables reproduce the behaviours Velero's own tests pin down
(pkg/util/collections/includes_excludes_test.go, pkg/util/wildcard/expand_test.go,
pkg/cmd/util/flag/orlabelselector_test.go), plus the controller validation messages.
"""

from __future__ import annotations

import pytest

from strongroom.model.filters import (
    NON_RESTORABLE_RESOURCES,
    FilterError,
    GlobalResourceFilter,
    IncludesExcludes,
    LabelFilter,
    NamespaceIncludesExcludes,
    ResourceCatalog,
    ScopedResourceFilter,
    backup_namespace_filter,
    backup_resource_filter,
    format_label_selector,
    format_or_selector_flag,
    glob_matches,
    is_excluded_from_backup,
    old_and_new_resource_filters_mixed,
    parse_or_selector_flag,
    parse_selector_flag,
    resolve_resources,
    restore_filter,
    should_expand_wildcards,
    uses_old_resource_filters,
    validate_backup_spec,
    validate_includes_excludes,
    validate_namespace_includes_excludes,
    validate_restore_spec,
    validate_scoped_includes_excludes,
)
from strongroom.model.resources import ApiResource
from strongroom.model.selectors import SelectorError
from strongroom.model.velero import BackupSpec, LabelSelectorSpec, RestoreSpec

ALL_VERBS = frozenset({"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"})


def api(
    group: str,
    resource: str,
    kind: str,
    *,
    namespaced: bool = True,
    version: str = "v1",
    short: tuple[str, ...] = (),
    singular: str | None = None,
    verbs: frozenset[str] = ALL_VERBS,
    preferred: bool = True,
) -> ApiResource:
    return ApiResource(
        group=group,
        version=version,
        resource=resource,
        kind=kind,
        namespaced=namespaced,
        singular=kind.lower() if singular is None else singular,
        short_names=short,
        verbs=verbs,
        preferred=preferred,
    )


PODS = api("", "pods", "Pod", short=("po",))
PVCS = api("", "persistentvolumeclaims", "PersistentVolumeClaim", short=("pvc",))
PVS = api("", "persistentvolumes", "PersistentVolume", namespaced=False, short=("pv",))
NAMESPACES = api("", "namespaces", "Namespace", namespaced=False, short=("ns",))
CONFIGMAPS = api("", "configmaps", "ConfigMap", short=("cm",))
EVENTS = api("", "events", "Event", short=("ev",))
NODES = api("", "nodes", "Node", namespaced=False, short=("no",))
DEPLOYMENTS = api("apps", "deployments", "Deployment", short=("deploy",))
CORE_EVENTS_GROUP = api("events.k8s.io", "events", "Event", short=("ev",))
CLUSTERROLES = api("rbac.authorization.k8s.io", "clusterroles", "ClusterRole", namespaced=False)
CRDS = api(
    "apiextensions.k8s.io",
    "customresourcedefinitions",
    "CustomResourceDefinition",
    namespaced=False,
    short=("crd", "crds"),
)
CRONTABS = api("stable.example.com", "crontabs", "CronTab", short=("ct",))
CRONTABS_BETA = api(
    "stable.example.com", "crontabs", "CronTab", short=("ct",), version="v1beta1", preferred=False
)
VOLUMESNAPSHOTS = api("snapshot.storage.k8s.io", "volumesnapshots", "VolumeSnapshot", short=("vs",))
VOLUMESNAPSHOTCONTENTS = api(
    "snapshot.storage.k8s.io",
    "volumesnapshotcontents",
    "VolumeSnapshotContent",
    namespaced=False,
    short=("vsc",),
)
TOKENREVIEWS = api(
    "authentication.k8s.io", "tokenreviews", "TokenReview", namespaced=False, verbs=frozenset({"create"})
)
POD_LOGS = api("", "pods/log", "Pod", verbs=frozenset({"get"}))
# The legacy extensions group also serves deployments, under the same short name.
EXT_DEPLOYMENTS = api("extensions", "deployments", "Deployment", short=("deploy",), version="v1beta1")

CATALOG = ResourceCatalog(
    [
        PODS,
        POD_LOGS,
        PVCS,
        PVS,
        NAMESPACES,
        CONFIGMAPS,
        EVENTS,
        NODES,
        DEPLOYMENTS,
        CORE_EVENTS_GROUP,
        CLUSTERROLES,
        CRDS,
        CRONTABS,
        CRONTABS_BETA,
        VOLUMESNAPSHOTS,
        VOLUMESNAPSHOTCONTENTS,
        TOKENREVIEWS,
        EXT_DEPLOYMENTS,
    ]
)


# ---------------------------------------------------------------------------
# IncludesExcludes
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("includes", "excludes", "item", "expected"),
    [
        pytest.param([], [], "foo", True, id="empty lists include every item"),
        pytest.param(["*"], [], "foo", True, id="include * includes every item"),
        pytest.param(["foo", "bar", "baz"], [], "foo", True, id="item in includes"),
        pytest.param(["foo", "baz"], [], "bar", False, id="item not in includes"),
        pytest.param(["*"], ["foo"], "foo", False, id="include *, excluded item"),
        pytest.param(["*"], ["foo"], "bar", True, id="include *, other item"),
        pytest.param(["foo"], ["foo"], "foo", False, id="both included and excluded"),
        pytest.param(["*.bar"], [], "foo.bar", True, id="wildcard include matches"),
        pytest.param(["*.bar"], [], "bar.foo", False, id="wildcard include mismatch"),
        pytest.param(["*"], ["*.bar"], "foo.bar", False, id="wildcard exclude matches"),
        pytest.param(["*"], ["*.bar"], "bar.foo", True, id="wildcard exclude mismatch"),
    ],
)
def test_should_include(includes: list[str], excludes: list[str], item: str, expected: bool) -> None:
    assert IncludesExcludes(tuple(includes), tuple(excludes)).should_include(item) is expected


@pytest.mark.parametrize(
    ("includes", "excludes", "expected"),
    [
        pytest.param([], [], [], id="empty includes is allowed"),
        pytest.param(["*"], [], [], id="include everything"),
        pytest.param(
            ["*", "foo"],
            [],
            ["includes list must either contain '*' only, or a non-empty list of items"],
            id="* with other includes",
        ),
        pytest.param(["foo"], ["*"], ["excludes list cannot contain '*'"], id="exclude everything"),
        pytest.param(
            ["foo", "bar"],
            ["bar"],
            ["excludes list cannot contain an item in the includes list: bar"],
            id="excluded item also included",
        ),
    ],
)
def test_validate_includes_excludes(includes: list[str], excludes: list[str], expected: list[str]) -> None:
    assert validate_includes_excludes(includes, excludes) == expected
    assert IncludesExcludes(tuple(includes), tuple(excludes)).validate() == expected


def test_includes_and_excludes_strings() -> None:
    assert IncludesExcludes().includes_string() == "*"
    assert IncludesExcludes().excludes_string() == "<none>"
    lists = IncludesExcludes(("foo", "bar"), ("baz", "xyz"))
    assert lists.includes_string() == "bar, foo"
    assert lists.excludes_string() == "baz, xyz"


@pytest.mark.parametrize(
    ("includes", "excludes", "expected"),
    [
        ([], [], True),
        (["*"], [], True),
        (["*"], ["kube-system"], False),
        (["default"], [], False),
        (["*", "default"], [], False),
    ],
)
def test_include_everything(includes: list[str], excludes: list[str], expected: bool) -> None:
    assert IncludesExcludes(tuple(includes), tuple(excludes)).include_everything() is expected


@pytest.mark.parametrize(
    ("includes", "excludes", "expected"),
    [
        pytest.param([], [], [], id="empty includes"),
        pytest.param(["*"], [], [], id="asterisk includes"),
        pytest.param(
            ["*", "foo"],
            [],
            ["includes list must either contain '*' only, or a non-empty list of items"],
            id="* with other includes",
        ),
        pytest.param([], ["*"], [], id="asterisk excludes"),
        pytest.param(
            [],
            ["*", "foo"],
            ["excludes list must either contain '*' only, or a non-empty list of items"],
            id="* with other excludes",
        ),
        pytest.param(
            ["foo"], ["*"], ["when exclude is '*', include cannot have value"], id="exclude * and include"
        ),
        pytest.param(
            ["foo", "bar"],
            ["bar"],
            ["excludes list cannot contain an item in the includes list: bar"],
            id="excluded item also included",
        ),
    ],
)
def test_validate_scoped_includes_excludes(
    includes: list[str], excludes: list[str], expected: list[str]
) -> None:
    assert validate_scoped_includes_excludes(includes, excludes) == expected


# ---------------------------------------------------------------------------
# Namespaces: validation and wildcards
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("includes", "excludes", "valid"),
    [
        pytest.param([], [], True, id="empty"),
        pytest.param(["*"], [], True, id="asterisk alone"),
        pytest.param(
            ["foobar", "bar-321", "foo123bar"],
            ["123bar", "barfoo", "foo-321", "bar123foo"],
            True,
            id="dns labels",
        ),
        pytest.param(["-123foo"], ["foo321-", "foo321-"], False, id="bad first or last character"),
        pytest.param(
            ["foo?", "foo.bar", "bar_321"], ["$foo", "foo>bar", "bar=321"], False, id="special characters"
        ),
        pytest.param([""], [], True, id="empty string include"),
        pytest.param([], [""], True, id="empty string exclude"),
        pytest.param(
            ["foo", "bar"], ["nginx-ingress-*", "*-bar", "*-ingress-*"], True, id="wildcard excludes"
        ),
        pytest.param(["*-foo", "kube-*", "*kube*"], ["bar"], True, id="wildcard includes"),
        pytest.param(["*", "foo"], [], False, id="* with other includes"),
        pytest.param(["foo"], ["*"], False, id="exclude everything"),
        pytest.param(["foo", "bar"], ["bar"], False, id="excluded item also included"),
        pytest.param(["kube-*", "test-?", "ns-[0-9]"], [], True, id="glob includes"),
        pytest.param(["default"], ["test-*", "app-?", "ns-[1-5]"], True, id="glob excludes"),
        pytest.param(["ns-[abc]", "test-[0-9]"], [], True, id="character classes"),
        pytest.param(["namespace|other"], [], False, id="pipe"),
        pytest.param(["namespace(prod)", "test-(dev)"], [], False, id="parentheses"),
        pytest.param(["!namespace", "test!"], [], False, id="exclamation mark"),
        pytest.param(["default"], ["test|prod", "app(staging)"], False, id="unsupported in excludes"),
        pytest.param(["kube-**"], [], False, id="double asterisk"),
        pytest.param(["ns-[]"], [], False, id="empty brackets"),
        pytest.param(["ns-[a"], [], False, id="unclosed bracket"),
        pytest.param(["ns-a]"], [], False, id="unmatched closing bracket"),
    ],
)
def test_validate_namespace_includes_excludes(includes: list[str], excludes: list[str], valid: bool) -> None:
    errors = validate_namespace_includes_excludes(includes, excludes)
    assert (errors == []) is valid, errors


@pytest.mark.parametrize(
    ("namespace", "message"),
    [
        (
            "bar_321",
            'invalid namespace "bar_321": a lowercase RFC 1123 label must consist of lower case alphanumeric '
            "characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or "
            "'123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
        ),
        ("foo.bar", 'invalid namespace "foo.bar": must not contain dots'),
        ("a" * 64, f'invalid namespace "{"a" * 64}": must be no more than 63 characters'),
        ("kube-**", "wildcard pattern contains consecutive asterisks (only single * allowed)"),
        ("a|b", "wildcard pattern contains unsupported characters: |, (, ), !, {, }, ,"),
        ("ns-[]", "wildcard pattern contains empty bracket pattern '[]'"),
        ("ns-[a", "wildcard pattern contains unclosed bracket '['"),
        ("ns-a]", "wildcard pattern contains unmatched closing bracket ']'"),
    ],
)
def test_namespace_validation_messages(namespace: str, message: str) -> None:
    assert validate_namespace_includes_excludes([namespace], []) == [message]


@pytest.mark.parametrize(
    ("includes", "excludes", "expected"),
    [
        pytest.param(["ns1", "ns2"], ["ns3", "ns4"], False, id="no wildcards"),
        pytest.param(["*"], ["ns1"], False, id="lone star"),
        pytest.param(["ns*", "*"], ["ns1"], False, id="star after a pattern"),
        pytest.param(["ns*"], ["ns1"], True, id="pattern in includes"),
        pytest.param(["ns1"], ["ns*"], True, id="pattern in excludes"),
        pytest.param(["app-*"], ["test-*"], True, id="patterns in both"),
        pytest.param(["**"], [], True, id="double asterisk is a pattern (rejected later)"),
        pytest.param([], [], False, id="empty"),
        pytest.param([], ["ns*"], False, id="empty includes with pattern excludes"),
        pytest.param(["ns?"], [], True, id="question mark"),
        pytest.param(["ns[abc]"], [], True, id="character class"),
        pytest.param(["ns{prod,staging}"], [], False, id="braces are not wildcards"),
        pytest.param(["app.prod"], [], False, id="dot is literal"),
        pytest.param(["app+"], [], False, id="plus is literal"),
    ],
)
def test_should_expand_wildcards(includes: list[str], excludes: list[str], expected: bool) -> None:
    assert should_expand_wildcards(includes, excludes) is expected


@pytest.mark.parametrize(
    ("includes", "excludes", "active", "expected_includes", "expected_excludes", "expanded"),
    [
        pytest.param(
            ["default", "kube-system"],
            ["kube-public"],
            ["default", "kube-system", "kube-public", "test"],
            ["default", "kube-system"],
            ["kube-public"],
            False,
            id="no wildcards",
        ),
        pytest.param(["*"], [], ["default", "kube-system"], ["*"], [], False, id="asterisk alone"),
        pytest.param(
            ["kube-*"],
            [],
            ["default", "kube-system", "kube-public", "test"],
            ["kube-system", "kube-public"],
            [],
            True,
            id="pattern in includes",
        ),
        pytest.param(
            ["default"],
            ["*-test"],
            ["default", "kube-test", "app-test", "prod"],
            ["default"],
            ["kube-test", "app-test"],
            True,
            id="pattern in excludes",
        ),
        pytest.param(
            ["kube-*", "app-*"],
            ["*-test"],
            ["kube-system", "kube-test", "app-prod", "app-test", "default"],
            ["kube-system", "kube-test", "app-prod", "app-test"],
            ["kube-test", "app-test"],
            True,
            id="patterns in both",
        ),
        pytest.param(
            ["nonexistent-*"], [], ["default", "kube-system"], [], [], True, id="pattern matches nothing"
        ),
        pytest.param(
            ["default", "kube-*"],
            [],
            ["default", "kube-system", "kube-public", "test"],
            ["default", "kube-system", "kube-public"],
            [],
            True,
            id="names and patterns",
        ),
        pytest.param(
            ["test-?"],
            [],
            ["test-1", "test-2", "test-10", "default"],
            ["test-1", "test-2"],
            [],
            True,
            id="question mark",
        ),
        pytest.param(["kube-*"], [], [], [], [], True, id="no active namespaces"),
        pytest.param(
            ["ns[abc]"],
            [],
            ["nsa", "nsb", "nsc", "nsx", "ns1"],
            ["nsa", "nsb", "nsc"],
            [],
            True,
            id="character class",
        ),
        pytest.param(
            ["ns[a-c]"],
            [],
            ["nsa", "nsb", "nsc", "nsd", "ns1"],
            ["nsa", "nsb", "nsc"],
            [],
            True,
            id="character range",
        ),
        pytest.param(
            ["app.prod", "app+", "x*"],
            [],
            ["app.prod", "app-prod", "app+", "app"],
            ["app.prod", "app+"],
            [],
            True,
            id="dot and plus are literal",
        ),
        pytest.param(
            ["ns1", "ns3", "x*"],
            [],
            ["ns1", "ns2"],
            ["ns1", "ns3"],
            [],
            True,
            id="plain names kept even if absent",
        ),
    ],
)
def test_expand_wildcards(
    includes: list[str],
    excludes: list[str],
    active: list[str],
    expected_includes: list[str],
    expected_excludes: list[str],
    expanded: bool,
) -> None:
    result = NamespaceIncludesExcludes.of(includes, excludes).expand_wildcards(active)
    assert result.wildcard_expanded is expanded
    assert set(result.includes) == set(expected_includes)
    assert set(result.excludes) == set(expected_excludes)


@pytest.mark.parametrize(
    ("includes", "excludes"),
    [
        pytest.param(["kube-**"], [], id="double asterisk in includes"),
        pytest.param(["default"], ["test-**"], id="double asterisk in excludes"),
        pytest.param(["app-{prod,staging}", "x*"], [], id="braces"),
        pytest.param(["ns(1|2)*"], [], id="regex symbols"),
    ],
)
def test_expand_wildcards_rejects_unsupported_patterns(includes: list[str], excludes: list[str]) -> None:
    with pytest.raises(FilterError):
        NamespaceIncludesExcludes.of(includes, excludes).expand_wildcards(["default"])


@pytest.mark.parametrize(
    ("includes", "excludes", "active", "expected"),
    [
        pytest.param(
            [], [], ["default", "kube-system", "test"], ["default", "kube-system", "test"], id="no lists"
        ),
        pytest.param(
            ["*"], [], ["default", "kube-system", "test"], ["default", "kube-system", "test"], id="asterisk"
        ),
        pytest.param(
            ["default", "test"], [], ["default", "kube-system", "test"], ["default", "test"], id="specific"
        ),
        pytest.param(
            ["*"],
            ["kube-system"],
            ["default", "kube-system", "test"],
            ["default", "test"],
            id="with excludes",
        ),
        pytest.param(
            ["kube-*"],
            [],
            ["default", "kube-system", "kube-public", "test"],
            ["kube-system", "kube-public"],
            id="pattern",
        ),
        pytest.param(
            ["app-*"],
            ["*-test"],
            ["app-prod", "app-dev", "app-test", "default"],
            ["app-prod", "app-dev"],
            id="both",
        ),
        pytest.param(["nonexistent-*"], [], ["default", "kube-system"], [], id="pattern matches nothing"),
        pytest.param(["*"], [], [], [], id="no active namespaces"),
        pytest.param(
            ["default", "nonexistent"], [], ["default", "test"], ["default"], id="include absent namespace"
        ),
        pytest.param(
            ["default", "test"], ["default", "test"], ["default", "test", "prod"], [], id="all excluded"
        ),
        pytest.param(
            ["ns-?"], [], ["ns-1", "ns-2", "ns-10", "default"], ["ns-1", "ns-2"], id="question mark"
        ),
    ],
)
def test_resolve_namespace_list(
    includes: list[str], excludes: list[str], active: list[str], expected: list[str]
) -> None:
    assert NamespaceIncludesExcludes.of(includes, excludes).resolve_namespace_list(active) == expected


def test_resolving_an_already_expanded_filter_does_not_expand_again() -> None:
    expanded = NamespaceIncludesExcludes.of(["kube-*"], []).expand_wildcards(["default", "kube-system"])
    assert expanded.resolve_namespace_list(["default", "kube-system", "kube-public"]) == ["kube-system"]


@pytest.mark.parametrize(
    ("includes", "active", "namespace", "expected"),
    [
        pytest.param(
            ["nonexistent-*"], ["default", "kube-system"], "default", False, id="expanded to nothing"
        ),
        pytest.param(["kube-*"], ["default", "kube-system"], "kube-system", True, id="matched"),
        pytest.param(["kube-*"], ["default", "kube-system"], "default", False, id="not matched"),
        pytest.param([], ["default", "kube-system"], "default", True, id="no expansion, empty includes"),
    ],
)
def test_should_include_after_expansion(
    includes: list[str], active: list[str], namespace: str, expected: bool
) -> None:
    expanded = NamespaceIncludesExcludes.of(includes, []).expand_wildcards(active)
    assert expanded.should_include(namespace) is expected


def test_pattern_that_matched_nothing_is_not_everything() -> None:
    # Deliberate difference: Velero would call this "everything" and back up all cluster resources.
    expanded = NamespaceIncludesExcludes.of(["nonexistent-*"], []).expand_wildcards(["default"])
    assert not expanded.include_everything()


@pytest.mark.parametrize(
    ("includes", "excludes", "expected"),
    [
        (["*"], [], [""]),
        (["*"], ["kube-system"], [""]),
        (["b", "a"], [], ["a", "b"]),
        (["a", "b"], ["b"], ["a"]),
    ],
)
def test_namespaces_to_list(includes: list[str], excludes: list[str], expected: list[str]) -> None:
    assert NamespaceIncludesExcludes.of(includes, excludes).namespaces_to_list() == expected


# ---------------------------------------------------------------------------
# Globs
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        ("*", "", True),
        ("*", "anything.at/all", True),
        ("*s", "pods", True),
        ("*spaces", "namespaces", True),
        ("ns-?", "ns-10", False),
        ("ns-[!0-9]", "ns-a", True),
        ("ns-[!0-9]", "ns-5", False),
        ("{app,db}-prod", "db-prod", True),
        ("{app,db}-prod", "web-prod", False),
        ("{app,db", "db", True),  # gobwas tolerates an unclosed brace
        ("a\\*", "a*", True),
        ("a\\*", "ab", False),
        ("a]", "a]", True),
        ("a.b", "axb", False),
        ("[", "[", False),  # malformed classes match nothing
        ("[]", "", False),
        ("[z-a]", "m", False),
    ],
)
def test_glob_matches_like_gobwas(pattern: str, text: str, expected: bool) -> None:
    assert glob_matches(pattern, text) is expected


def test_malformed_pattern_hides_later_patterns_as_in_velero() -> None:
    # Velero walks the sorted list and gives up at the first pattern that does not compile.
    assert not IncludesExcludes(("[", "foo")).should_include("foo")
    assert IncludesExcludes(("foo", "~[")).should_include("foo")


# ---------------------------------------------------------------------------
# Resource names
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("pods", "pods"),
        ("pod", "pods"),
        ("Pod", "pods"),
        ("PODS", "pods"),
        ("po", "pods"),
        ("pvc", "persistentvolumeclaims"),
        ("pv", "persistentvolumes"),
        ("deploy", "deployments.apps"),
        ("deployment", "deployments.apps"),
        ("Deployment", "deployments.apps"),
        ("deployments", "deployments.apps"),
        ("deployments.apps", "deployments.apps"),
        ("deploy.apps", "deployments.apps"),
        ("deployments.extensions", "deployments.extensions"),
        ("crontabs.stable.example.com", "crontabs.stable.example.com"),
        ("crontab", "crontabs.stable.example.com"),
        ("CronTab", "crontabs.stable.example.com"),
        ("ct", "crontabs.stable.example.com"),
        ("crd", "customresourcedefinitions.apiextensions.k8s.io"),
        ("events", "events"),  # the core group comes first in discovery
        ("ev", "events"),
        ("events.events.k8s.io", "events.events.k8s.io"),
        ("clusterroles.rbac.authorization.k8s.io", "clusterroles.rbac.authorization.k8s.io"),
    ],
)
def test_resource_names_resolve_like_veleros_discovery_helper(name: str, expected: str) -> None:
    resource = CATALOG.resource_for(name)
    assert resource is not None
    assert resource.group_resource == expected


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("nope", id="unknown"),
        pytest.param("PVC", id="short names are case-sensitive"),
        pytest.param("deployments.app", id="partial group"),
        pytest.param("tokenreviews", id="cannot be listed, so not backed up"),
        pytest.param("pods/log", id="subresource"),
        pytest.param("*", id="asterisk"),
        pytest.param("*.apps", id="pattern"),
    ],
)
def test_names_velero_cannot_resolve(name: str) -> None:
    assert CATALOG.resource_for(name) is None


def test_resolution_prefers_the_preferred_version() -> None:
    resource = CATALOG.resource_for("crontabs")
    assert resource is not None
    assert resource.version == "v1"


def test_only_entries_of_a_non_preferred_version_still_resolve() -> None:
    beta_only = api("batch", "cronjobs", "CronJob", version="v1beta1", preferred=False, short=("cj",))
    resource = ResourceCatalog([PODS, beta_only]).resource_for("cj")
    assert resource is not None
    assert resource.version == "v1beta1"


def test_catalog_lists_backuppable_resources_with_extensions_last() -> None:
    reordered = ResourceCatalog([EXT_DEPLOYMENTS, PODS, DEPLOYMENTS])
    assert [resource.group_resource for resource in reordered.resources] == [
        "pods",
        "deployments.apps",
        "deployments.extensions",
    ]
    names = [resource.group_resource for resource in CATALOG.resources]
    assert "tokenreviews.authentication.k8s.io" not in names
    assert "pods/log" not in names
    assert names.count("crontabs.stable.example.com") == 1


def test_resolve_keeps_unknown_names_and_reports_them() -> None:
    resolved = resolve_resources(["deploy", "nope", "*", "*.apps", "pvc"], [PODS, PVCS, DEPLOYMENTS])
    assert resolved.names == ("deployments.apps", "nope", "*", "*.apps", "persistentvolumeclaims")
    assert resolved.unresolved == ("nope",)


def test_scoped_resolution_drops_the_other_scope() -> None:
    namespaced = CATALOG.resolve(["deployments.apps", "persistentvolumes"], namespaced=True)
    assert namespaced.names == ("deployments.apps",)
    assert namespaced.wrong_scope == ("persistentvolumes",)
    cluster = CATALOG.resolve(["deployments.apps", "persistentvolumes"], namespaced=False)
    assert cluster.names == ("persistentvolumes",)


# ---------------------------------------------------------------------------
# Backup: scoped (new) filters
# ---------------------------------------------------------------------------


def scoped(
    namespace_includes: list[str] | None = None,
    namespace_excludes: list[str] | None = None,
    cluster_includes: list[str] | None = None,
    cluster_excludes: list[str] | None = None,
    namespaces: list[str] | None = None,
) -> ScopedResourceFilter:
    spec = BackupSpec(
        included_namespace_scoped_resources=namespace_includes,
        excluded_namespace_scoped_resources=namespace_excludes,
        included_cluster_scoped_resources=cluster_includes,
        excluded_cluster_scoped_resources=cluster_excludes,
    )
    result = backup_resource_filter(spec, CATALOG, NamespaceIncludesExcludes.of(namespaces, []))
    assert isinstance(result, ScopedResourceFilter)
    return result


@pytest.mark.parametrize(
    ("includes", "excludes", "expected"),
    [
        pytest.param(None, None, True, id="no lists include everything"),
        pytest.param(["*"], None, True, id="include *"),
        pytest.param(["foo", "bar", "pods"], None, True, id="in includes"),
        pytest.param(["foo", "baz"], None, False, id="not in includes"),
        pytest.param(["*"], ["pods"], False, id="include *, excluded"),
        pytest.param(["*"], ["foo"], True, id="include *, other excluded"),
        pytest.param(["pods"], ["pods"], False, id="included and excluded"),
        pytest.param(["*s"], None, True, id="wildcard include"),
        pytest.param(["*.bar"], None, False, id="wildcard mismatch"),
        pytest.param(None, ["*"], False, id="exclude * excludes everything"),
        pytest.param(["*"], ["*s"], False, id="wildcard exclude"),
        pytest.param(None, ["*.bar"], True, id="wildcard exclude mismatch"),
    ],
)
def test_namespace_scoped_should_include(
    includes: list[str] | None, excludes: list[str] | None, expected: bool
) -> None:
    assert scoped(namespace_includes=includes, namespace_excludes=excludes).should_include(PODS) is expected


@pytest.mark.parametrize(
    ("includes", "excludes", "namespaces", "resource", "expected"),
    [
        pytest.param(None, None, ["default"], PVS, False, id="specific namespaces: nothing"),
        pytest.param(["*"], None, None, PVS, True, id="include *"),
        pytest.param(["namespaces", "bar", "baz"], None, None, NAMESPACES, True, id="in includes"),
        pytest.param(["foo", "baz"], None, ["default"], PVS, False, id="not in includes"),
        pytest.param(["*"], ["namespaces"], None, NAMESPACES, False, id="include *, excluded"),
        pytest.param(["*"], ["foo"], None, NAMESPACES, True, id="include *, other excluded"),
        pytest.param(["namespaces"], ["namespaces"], None, NAMESPACES, False, id="included and excluded"),
        pytest.param(["*spaces"], None, None, NAMESPACES, True, id="wildcard include"),
        pytest.param(["*.bar"], None, ["default"], PVS, False, id="wildcard mismatch"),
        pytest.param(None, ["*"], None, NAMESPACES, False, id="exclude *"),
        pytest.param(["*"], ["*spaces"], None, NAMESPACES, False, id="wildcard exclude"),
        pytest.param(None, ["*spaces"], None, NAMESPACES, False, id="wildcard exclude, no includes"),
        pytest.param(["foo", "baz"], None, None, NAMESPACES, True, id="namespaces always considered"),
        pytest.param(None, None, ["*"], PVS, True, id="full backup takes cluster resources"),
        pytest.param(None, ["persistentvolumes"], ["*"], PVS, False, id="full backup, excluded"),
        pytest.param(
            None, ["persistentvolumes"], ["*"], CLUSTERROLES, False, id="any cluster list turns off 'all'"
        ),
    ],
)
def test_cluster_scoped_should_include(
    includes: list[str] | None,
    excludes: list[str] | None,
    namespaces: list[str] | None,
    resource: ApiResource,
    expected: bool,
) -> None:
    result = scoped(cluster_includes=includes, cluster_excludes=excludes, namespaces=namespaces)
    assert result.should_include(resource) is expected


def test_scoped_lists_keep_only_their_scope() -> None:
    result = scoped(
        namespace_includes=["deployments.apps", "persistentvolumes"],
        namespace_excludes=["pods", "persistentvolumes"],
        cluster_includes=["deployments.apps", "persistentvolumes"],
        cluster_excludes=["pods", "persistentvolumes"],
    )
    assert result.namespace_scoped == IncludesExcludes(("deployments.apps",), ("pods",))
    assert result.cluster_scoped == IncludesExcludes(("persistentvolumes",), ("persistentvolumes",))


def test_unfiltered_backup_takes_every_cluster_resource_but_never_csi_snapshots() -> None:
    result = scoped(namespaces=["*"])
    assert result.should_include(CLUSTERROLES)
    assert result.should_include(PVS)
    assert result.should_include(DEPLOYMENTS)
    assert not result.should_include(VOLUMESNAPSHOTS)
    assert not result.should_include(VOLUMESNAPSHOTCONTENTS)
    assert result.should_exclude(VOLUMESNAPSHOTCONTENTS)


@pytest.mark.parametrize(
    ("includes", "excludes", "expected"),
    [
        pytest.param(None, None, False, id="defaults"),
        pytest.param(["persistentvolumes"], None, False, id="in include list"),
        pytest.param(None, ["namespaces"], False, id="other excluded"),
        pytest.param(None, ["persistentvolumes"], True, id="excluded"),
    ],
)
def test_scoped_should_exclude(
    includes: list[str] | None, excludes: list[str] | None, expected: bool
) -> None:
    assert scoped(cluster_includes=includes, cluster_excludes=excludes).should_exclude(PVS) is expected


# ---------------------------------------------------------------------------
# Backup: old filters and includeClusterResources
# ---------------------------------------------------------------------------


def global_filter(
    include_cluster_resources: bool | None,
    namespaces: list[str] | None = None,
    excluded_namespaces: list[str] | None = None,
    includes: list[str] | None = None,
    excludes: list[str] | None = None,
) -> GlobalResourceFilter | ScopedResourceFilter:
    """The filter of a backup using the old-style fields (scoped when none is set, as in Velero)."""
    spec = BackupSpec(
        included_namespaces=namespaces,
        excluded_namespaces=excluded_namespaces,
        included_resources=includes,
        excluded_resources=excludes,
        include_cluster_resources=include_cluster_resources,
    )
    return backup_resource_filter(
        spec, CATALOG, backup_namespace_filter(spec, ["default", "app", "kube-system"])
    )


@pytest.mark.parametrize(
    ("include_cluster_resources", "namespaces", "excluded_namespaces", "resource", "expected"),
    [
        pytest.param(None, None, None, PVS, True, id="auto, all namespaces: cluster resources"),
        pytest.param(None, ["app"], None, PVS, False, id="auto, some namespaces: no cluster resources"),
        pytest.param(
            None, None, ["kube-system"], PVS, False, id="auto, namespaces excluded: no cluster resources"
        ),
        pytest.param(None, ["app"], None, NAMESPACES, True, id="auto: namespaces themselves considered"),
        pytest.param(None, ["app"], None, DEPLOYMENTS, True, id="auto: namespaced resources"),
        pytest.param(True, ["app"], None, PVS, True, id="true: cluster resources"),
        pytest.param(True, ["app"], None, CLUSTERROLES, True, id="true: every cluster resource"),
        pytest.param(False, None, None, PVS, False, id="false: no cluster resources"),
        pytest.param(False, None, None, NAMESPACES, False, id="false: not even namespaces"),
        pytest.param(False, None, None, DEPLOYMENTS, True, id="false: namespaced resources"),
    ],
)
def test_include_cluster_resources_tri_state(
    include_cluster_resources: bool | None,
    namespaces: list[str] | None,
    excluded_namespaces: list[str] | None,
    resource: ApiResource,
    expected: bool,
) -> None:
    result = global_filter(include_cluster_resources, namespaces, excluded_namespaces)
    assert result.should_include(resource) is expected


@pytest.mark.parametrize(
    ("namespaces", "expected"),
    [
        pytest.param(None, True, id="all namespaces"),
        pytest.param(["app"], False, id="some namespaces"),
    ],
)
def test_automatic_cluster_resources_with_old_resource_lists(
    namespaces: list[str] | None, expected: bool
) -> None:
    result = global_filter(None, namespaces, includes=["*"])
    assert isinstance(result, GlobalResourceFilter)
    assert result.should_include(PVS) is expected
    assert result.should_include(CLUSTERROLES) is expected
    assert result.should_include(NAMESPACES)


def test_include_cluster_resources_still_obeys_the_resource_lists() -> None:
    result = global_filter(True, includes=["deploy"])
    assert result.should_include(DEPLOYMENTS)
    assert not result.should_include(PVS)
    assert not result.should_include(PODS)


def test_excluded_resources_are_resolved_before_matching() -> None:
    result = global_filter(None, excludes=["pvc", "Deployment"])
    assert not result.should_include(PVCS)
    assert not result.should_include(DEPLOYMENTS)
    assert result.should_include(PODS)


def test_unknown_resource_names_are_reported_not_treated_as_everything() -> None:
    result = global_filter(None, includes=["widgets"])
    assert result.unresolved == ("widgets",)
    assert not result.should_include(PODS)


def test_asterisk_is_ignored_in_old_style_excludes() -> None:
    assert global_filter(None, excludes=["*"]).should_include(PODS)


@pytest.mark.parametrize(
    ("include_cluster_resources", "includes", "excludes", "resource", "expected"),
    [
        pytest.param(None, None, None, PVS, False, id="auto: additional PV allowed"),
        pytest.param(True, None, None, PVS, False, id="true: allowed"),
        pytest.param(False, ["persistentvolumes"], None, PVS, True, id="false: refused"),
        pytest.param(None, ["persistentvolumes"], None, PVS, False, id="auto, in include list"),
        pytest.param(None, ["pods"], None, PVS, True, id="auto, not in include list"),
        pytest.param(None, None, ["pv"], PVS, True, id="explicitly excluded"),
        pytest.param(False, None, None, PODS, False, id="namespaced additional item"),
    ],
)
def test_global_should_exclude(
    include_cluster_resources: bool | None,
    includes: list[str] | None,
    excludes: list[str] | None,
    resource: ApiResource,
    expected: bool,
) -> None:
    assert (
        global_filter(include_cluster_resources, includes=includes, excludes=excludes).should_exclude(
            resource
        )
        is expected
    )


def test_which_filters_a_backup_uses() -> None:
    assert not uses_old_resource_filters(BackupSpec(default_volumes_to_fs_backup=False))
    assert uses_old_resource_filters(BackupSpec(include_cluster_resources=True))
    assert not uses_old_resource_filters(BackupSpec(included_cluster_scoped_resources=["storageclasses"]))
    mixed = BackupSpec(include_cluster_resources=True, included_cluster_scoped_resources=["storageclasses"])
    assert uses_old_resource_filters(mixed)
    assert old_and_new_resource_filters_mixed(mixed)
    assert isinstance(
        backup_resource_filter(mixed, CATALOG, NamespaceIncludesExcludes()), GlobalResourceFilter
    )


def test_backup_namespace_filter_expands_patterns_against_live_namespaces() -> None:
    spec = BackupSpec(included_namespaces=["app-*"], excluded_namespaces=["app-test"])
    result = backup_namespace_filter(spec, ["app-prod", "app-test", "default"])
    assert result.resolve_namespace_list(["app-prod", "app-test", "default"]) == ["app-prod"]
    assert not result.include_everything()


def test_backup_namespace_filter_defaults_to_all_namespaces() -> None:
    result = backup_namespace_filter(BackupSpec(), ["default"])
    assert result.include_everything()
    assert result.includes == ("*",)


# ---------------------------------------------------------------------------
# Restore
# ---------------------------------------------------------------------------


def test_restore_never_restores_non_restorable_resources() -> None:
    result = restore_filter(RestoreSpec(backup_name="b"), CATALOG)
    assert not result.should_include("nodes", "")
    assert not result.should_include("events", "default")
    assert not result.should_include("events.events.k8s.io", "default")
    assert not result.should_include("backups.velero.io", "velero")
    assert result.should_include("pods", "default")


@pytest.mark.parametrize(
    ("include_cluster_resources", "namespaces", "top_level", "additional"),
    [
        pytest.param(None, None, True, True, id="auto, all namespaces"),
        pytest.param(None, ["app"], False, True, id="auto, some namespaces: only as additional items"),
        pytest.param(True, ["app"], True, True, id="true"),
        pytest.param(False, None, False, False, id="false"),
    ],
)
def test_restore_cluster_scoped_rules(
    include_cluster_resources: bool | None, namespaces: list[str] | None, top_level: bool, additional: bool
) -> None:
    spec = RestoreSpec(
        backup_name="b", included_namespaces=namespaces, include_cluster_resources=include_cluster_resources
    )
    result = restore_filter(spec, CATALOG)
    assert result.should_include("persistentvolumes", "") is top_level
    assert result.should_include_additional_item("persistentvolumes", "") is additional


def test_restore_namespace_and_resource_lists() -> None:
    spec = RestoreSpec(backup_name="b", included_namespaces=["app"], excluded_resources=["cm"])
    result = restore_filter(spec, CATALOG)
    assert result.should_include("pods", "app")
    assert not result.should_include("pods", "other")
    assert not result.should_include("configmaps", "app")
    assert not result.should_include_additional_item("configmaps", "app")


def test_restore_expands_namespace_patterns_against_the_backup() -> None:
    spec = RestoreSpec(backup_name="b", included_namespaces=["app-*"])
    result = restore_filter(spec, CATALOG, ["app-frontend-prod", "app-backend-prod", "db"])
    assert result.namespaces.wildcard_expanded
    assert result.should_include("pods", "app-frontend-prod")
    assert not result.should_include("pods", "db")


def test_restore_pattern_that_matches_nothing_restores_no_namespace() -> None:
    spec = RestoreSpec(backup_name="b", included_namespaces=["nonexistent*"])
    result = restore_filter(spec, CATALOG, ["test1", "test2"])
    assert not result.should_include("pods", "test1")


def test_restore_refuses_excluding_every_namespace_with_patterns() -> None:
    spec = RestoreSpec(backup_name="b", included_namespaces=["test*"], excluded_namespaces=["*"])
    with pytest.raises(FilterError, match="wildcard '\\*' is not allowed in restore excludes"):
        restore_filter(spec, CATALOG, ["test1"])


def test_restore_status_is_restored_only_for_listed_resources() -> None:
    assert not restore_filter(RestoreSpec(backup_name="b"), CATALOG).restores_status_of(
        "crontabs.stable.example.com"
    )
    spec = RestoreSpec.model_validate({"backupName": "b", "restoreStatus": {"includedResources": ["ct"]}})
    result = restore_filter(spec, CATALOG)
    assert result.restores_status_of("crontabs.stable.example.com")
    assert not result.restores_status_of("pods")


# ---------------------------------------------------------------------------
# Labels
# ---------------------------------------------------------------------------


def selector(**labels: str) -> LabelSelectorSpec:
    return LabelSelectorSpec(match_labels=labels)


def test_label_selector_and_or_selectors_are_exclusive() -> None:
    with pytest.raises(FilterError):
        LabelFilter.from_spec(selector(a="b"), [selector(c="d")])


def test_or_selectors_match_any() -> None:
    result = LabelFilter.from_spec(None, [selector(app="nginx"), selector(app="redis")])
    assert result.matches({"app": "nginx"})
    assert result.matches({"app": "redis", "x": "y"})
    assert not result.matches({"app": "mysql"})
    assert not result.matches(None)
    assert result.list_selectors() == ("app=nginx", "app=redis")


def test_single_selector_and_no_selector() -> None:
    single = LabelFilter.from_spec(selector(app="nginx"), None)
    assert single.matches({"app": "nginx"})
    assert not single.matches({})
    assert single.list_selectors() == ("app=nginx",)
    everything = LabelFilter.from_spec(None, None)
    assert everything.matches(None)
    assert everything.list_selectors() == ("",)
    assert LabelFilter.from_spec(None, []).matches({"any": "thing"})


def test_excluded_from_backup_label_must_be_exactly_true() -> None:
    assert is_excluded_from_backup({"velero.io/exclude-from-backup": "true"})
    assert not is_excluded_from_backup({"velero.io/exclude-from-backup": "True"})
    assert not is_excluded_from_backup({"velero.io/exclude-from-backup": "false"})
    assert not is_excluded_from_backup(None)


@pytest.mark.parametrize(
    ("text", "count", "canonical"),
    [
        ("k1=v1 or k2=v2", 2, "k1=v1 or k2=v2"),
        ("k1=v1,k2=v2 or a1=b1,a2=b2", 2, "k1=v1,k2=v2 or a1=b1,a2=b2"),
        ("app in (web,api) or !legacy", 2, "app in (api,web) or !legacy"),
    ],
)
def test_or_selector_flag_round_trips(text: str, count: int, canonical: str) -> None:
    selectors = parse_or_selector_flag(text)
    assert len(selectors) == count
    assert format_or_selector_flag(selectors) == canonical


def test_selector_flag_becomes_match_labels_and_expressions() -> None:
    spec = parse_selector_flag("app=web,tier in (db,cache),debug,!legacy")
    assert spec.model_dump(by_alias=True, exclude_none=True) == {
        "matchLabels": {"app": "web"},
        "matchExpressions": [
            {"key": "debug", "operator": "Exists"},
            {"key": "legacy", "operator": "DoesNotExist"},
            {"key": "tier", "operator": "In", "values": ["cache", "db"]},
        ],
    }


def test_empty_selector_flag_selects_everything() -> None:
    spec = parse_selector_flag("")
    assert spec.model_dump(exclude_none=True) == {}
    assert format_label_selector(spec) == "<none>"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a!=b", '"!=" is not a valid label selector operator'),
        ("a>1", '"gt" isn\'t supported in label selectors'),
        ("a in", 'couldn\'t parse the selector string "a in": '),
    ],
)
def test_selector_flag_refuses_what_velero_refuses(text: str, message: str) -> None:
    with pytest.raises(SelectorError) as caught:
        parse_selector_flag(text)
    assert str(caught.value).startswith(message)


# ---------------------------------------------------------------------------
# Spec validation
# ---------------------------------------------------------------------------


def test_default_backup_spec_is_valid() -> None:
    assert validate_backup_spec(BackupSpec()) == []


@pytest.mark.parametrize(
    ("spec", "errors"),
    [
        pytest.param(
            {"includedResources": ["*", "pods"]},
            [
                "Invalid included/excluded resource lists: includes list must either contain '*' only, or a non-empty list of items"
            ],
            id="old resource lists",
        ),
        pytest.param(
            {"includedClusterScopedResources": ["foo"], "excludedClusterScopedResources": ["*"]},
            [
                "Invalid cluster-scoped included/excluded resource lists: when exclude is '*', include cannot have value"
            ],
            id="cluster-scoped lists",
        ),
        pytest.param(
            {"includedNamespaceScopedResources": ["pods"], "excludedNamespaceScopedResources": ["pods"]},
            [
                "Invalid namespace-scoped included/excluded resource lists: "
                "excludes list cannot contain an item in the includes list: pods"
            ],
            id="namespace-scoped lists",
        ),
        pytest.param(
            {"excludedNamespaces": ["*"]},
            [
                # Velero defaults the includes to '*' first, so both rules fire.
                "Invalid included/excluded namespace lists: excludes list cannot contain '*'",
                "Invalid included/excluded namespace lists: excludes list cannot contain an item in the includes list: *",
            ],
            id="exclude all namespaces",
        ),
        pytest.param(
            {"includedNamespaces": ["foo.bar"]},
            ['Invalid included/excluded namespace lists: invalid namespace "foo.bar": must not contain dots'],
            id="bad namespace name",
        ),
        pytest.param(
            {"labelSelector": {"matchLabels": {"a": "b"}}, "orLabelSelectors": []},
            [
                "encountered labelSelector as well as orLabelSelectors in backup spec, only one can be specified"
            ],
            id="both selectors",
        ),
        pytest.param(
            {"includeClusterResources": True, "excludedClusterScopedResources": ["nodes"]},
            [
                "include-resources, exclude-resources and include-cluster-resources are old filter parameters.\n"
                "include-cluster-scoped-resources, exclude-cluster-scoped-resources, "
                "include-namespace-scoped-resources and exclude-namespace-scoped-resources are new filter parameters.\n"
                "They cannot be used together"
            ],
            id="old and new filters",
        ),
    ],
)
def test_backup_validation_messages(spec: dict[str, object], errors: list[str]) -> None:
    assert validate_backup_spec(BackupSpec.model_validate(spec)) == errors


def test_valid_restore_spec() -> None:
    assert validate_restore_spec(RestoreSpec(backup_name="b", existing_resource_policy="none")) == []


@pytest.mark.parametrize(
    ("spec", "errors"),
    [
        pytest.param(
            {},
            ["Either a backup or schedule must be specified as a source for the restore, but not both"],
            id="no source",
        ),
        pytest.param(
            {"backupName": "b", "scheduleName": "s"},
            ["Either a backup or schedule must be specified as a source for the restore, but not both"],
            id="two sources",
        ),
        pytest.param(
            {"backupName": "b", "includedResources": ["nodes"]},
            [
                "nodes are non-restorable resources",
                "Invalid included/excluded resource lists: excludes list cannot contain an item in the includes list: nodes",
            ],
            id="non-restorable",
        ),
        pytest.param(
            {"scheduleName": "s", "excludedNamespaces": ["*"]},
            ["Invalid included/excluded namespace lists: excludes list cannot contain '*'"],
            id="exclude all namespaces",
        ),
        pytest.param(
            {"backupName": "b", "labelSelector": {}, "orLabelSelectors": [{}]},
            [
                "encountered labelSelector as well as orLabelSelectors in restore spec, only one can be specified"
            ],
            id="both selectors",
        ),
        pytest.param(
            {"backupName": "b", "existingResourcePolicy": "overwrite"},
            ["Invalid ExistingResourcePolicy: overwrite"],
            id="bad policy",
        ),
    ],
)
def test_restore_validation_messages(spec: dict[str, object], errors: list[str]) -> None:
    assert validate_restore_spec(RestoreSpec.model_validate(spec)) == errors


def test_non_restorable_list_is_veleros() -> None:
    assert NON_RESTORABLE_RESOURCES == (
        "nodes",
        "events",
        "events.events.k8s.io",
        "backups.velero.io",
        "restores.velero.io",
        "resticrepositories.velero.io",
        "csinodes.storage.k8s.io",
        "volumeattachments.storage.k8s.io",
        "backuprepositories.velero.io",
    )
