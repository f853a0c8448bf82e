"""Which namespaces, resource types and objects a Backup or Restore covers, decided as Velero decides.

A Velero user writes ``--include-namespaces 'app-*' --exclude-resources pvc
--selector app=web`` and expects the same objects in the backup whichever tool
runs it; a restore of a Velero backup must bring back exactly what Velero
would. This module reproduces Velero's filtering semantics without touching a
cluster:

* :class:`IncludesExcludes` -- include/exclude lists where ``*`` means
  everything and items are glob patterns (gobwas/glob syntax, as Velero uses),
  and :class:`NamespaceIncludesExcludes`, which adds Velero's expansion of
  namespace wildcards against the namespaces that exist;
* :class:`ResourceCatalog` -- resolution of the names users write (``deploy``,
  ``Deployment``, ``pvc``, ``deployments.apps``, ``crontabs.stable.example.com``)
  to group-resources, the way Velero's discovery helper (kubectl's shortcut
  expander over a discovery REST mapper) resolves them;
* :class:`GlobalResourceFilter` / :class:`ScopedResourceFilter` -- whether a
  resource type is backed up, with the tri-state ``includeClusterResources``
  (old-style filters) or the cluster-/namespace-scoped lists (new style);
  :class:`RestoreFilter` -- the same questions for a restore;
* :class:`LabelFilter` -- ``labelSelector`` or ``orLabelSelectors``, and the
  CLI's ``--selector``/``--or-selector`` strings;
* :func:`validate_backup_spec` / :func:`validate_restore_spec` -- the
  validation messages Velero's controllers put in ``status.validationErrors``.

Velero behaviours deliberately not copied are marked "Deliberate:" below.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from strongroom.errors import UsageError
from strongroom.model import labels as velero_labels
from strongroom.model.resources import ApiResource
from strongroom.model.selectors import (
    DOES_NOT_EXIST,
    EQUALS,
    EXISTS,
    GREATER_THAN,
    IN,
    LESS_THAN,
    NOT_IN,
    LabelSelector,
    SelectorError,
    parse_label_selector,
)
from strongroom.model.velero import (
    BackupSpec,
    ExistingResourcePolicy,
    LabelSelectorRequirementSpec,
    LabelSelectorSpec,
    RestoreSpec,
)

__all__ = [
    "AUTO_EXCLUDED_CLUSTER_SCOPED_RESOURCES",
    "AUTO_EXCLUDED_NAMESPACE_SCOPED_RESOURCES",
    "NON_RESTORABLE_RESOURCES",
    "FilterError",
    "GlobalResourceFilter",
    "IncludesExcludes",
    "LabelFilter",
    "NamespaceIncludesExcludes",
    "ResolvedResources",
    "ResourceCatalog",
    "ResourceFilter",
    "RestoreFilter",
    "ScopedResourceFilter",
    "backup_namespace_filter",
    "backup_resource_filter",
    "format_label_selector",
    "format_or_selector_flag",
    "glob_matches",
    "is_excluded_from_backup",
    "non_restorable_errors",
    "old_and_new_resource_filters_mixed",
    "parse_or_selector_flag",
    "parse_selector_flag",
    "resolve_resources",
    "restore_filter",
    "selector_flags_to_spec",
    "should_expand_wildcards",
    "uses_old_resource_filters",
    "validate_backup_spec",
    "validate_includes_excludes",
    "validate_namespace_includes_excludes",
    "validate_restore_spec",
    "validate_scoped_includes_excludes",
]


class FilterError(UsageError, ValueError):
    """A filter cannot be built: a bad namespace pattern, or conflicting selectors."""


# The group-resource of namespaces; several rules single it out.
_NAMESPACES: Final = "namespaces"

# Resources Velero never collects directly during a backup: CSI snapshots that
# exist before the backup are not the backup's own (Velero >= 1.17 adds these to
# the spec's exclude lists; see ScopedResourceFilter for how they apply here).
AUTO_EXCLUDED_NAMESPACE_SCOPED_RESOURCES: Final = ("volumesnapshots.snapshot.storage.k8s.io",)
AUTO_EXCLUDED_CLUSTER_SCOPED_RESOURCES: Final = ("volumesnapshotcontents.snapshot.storage.k8s.io",)

# Resources a restore never creates, whatever the spec says (Velero's restore
# controller appends them to spec.excludedResources).
NON_RESTORABLE_RESOURCES: Final[tuple[str, ...]] = (
    "nodes",  # belong to the cluster, not to an application
    "events",  # history, not state
    "events.events.k8s.io",
    "backups.velero.io",  # synced from object storage, never restored (velero#622)
    "restores.velero.io",  # cluster-specific records (velero#622)
    "resticrepositories.velero.io",  # recreated on demand (velero#1113)
    "csinodes.storage.k8s.io",  # describe nodes of the source cluster (velero#4823)
    "volumeattachments.storage.k8s.io",  # record mounts on nodes of the source cluster (velero#4823)
    "backuprepositories.velero.io",  # the renamed restic repositories
)


def non_restorable_errors(included_resources: Iterable[str] | None) -> list[str]:
    """Velero's validation errors for a restore that asks to include a non-restorable resource."""
    included = set(included_resources or ())
    return [f"{name} are non-restorable resources" for name in NON_RESTORABLE_RESOURCES if name in included]


_BACKUP_VERBS: Final = frozenset({"list", "create", "get", "delete"})


def _go_quote(text: str) -> str:
    # Go's %q for the printable names these messages deal with.
    return json.dumps(text, ensure_ascii=False)


# ---------------------------------------------------------------------------
# Glob patterns (gobwas/glob without separators, which is how Velero compiles them)
# ---------------------------------------------------------------------------


class _GlobSyntaxError(ValueError):
    pass


_TEXT_BREAKERS: Final = frozenset("?*[{")
_TERMS_BREAKERS: Final = frozenset("?*[{},")


class _GlobCompiler:
    """Translate a gobwas/glob pattern to a Python regular expression.

    ``*`` (and ``**``) match any run of characters, ``?`` one character,
    ``[abc]``/``[a-z]`` (``[!...]`` negated) one character of a class,
    ``{a,b}`` either alternative, and ``\\`` escapes the next character.
    Malformed classes are errors, as in gobwas; an unclosed ``{`` is not.
    """

    def __init__(self, pattern: str) -> None:
        self._text = pattern
        self._position = 0
        self._depth = 0

    def _peek(self) -> str:
        return self._text[self._position] if self._position < len(self._text) else ""

    def _read(self) -> str:
        character = self._peek()
        self._position += len(character)
        return character

    def _literal_run(self, breakers: frozenset[str]) -> str:
        characters: list[str] = []
        escaped = False
        while self._position < len(self._text):
            character = self._text[self._position]
            if not escaped:
                if character == "\\":
                    escaped = True
                    self._position += 1
                    continue
                if character in breakers:
                    break
            escaped = False
            characters.append(character)
            self._position += 1
        # A trailing lone backslash escapes nothing and is dropped, as in gobwas.
        return "".join(characters)

    def _character_class(self) -> str:
        negated = seen_not = want_high = want_close = False
        low = high = chars = ""
        while True:
            character = self._read()
            if not character:
                raise _GlobSyntaxError("unexpected end of input")
            if want_close:
                if character != "]":
                    raise _GlobSyntaxError("expected close range character")
                break
            if want_high:
                high = character
                want_close = True
                continue
            if not seen_not and character == "!":
                negated = seen_not = True
                continue
            if self._peek() == "-":
                self._position += 1
                low = character
                want_high = True
                continue
            self._position -= len(character)
            chars = self._literal_run(frozenset("]"))
            want_close = True
        if high and high < low:
            raise _GlobSyntaxError(f"hi character '{high}' should be greater than lo '{low}'")
        is_range = bool(low and high)
        if is_range == bool(chars):
            raise _GlobSyntaxError("could not parse range")
        body = f"{re.escape(low)}-{re.escape(high)}" if is_range else "".join(re.escape(c) for c in chars)
        return f"[{'^' if negated else ''}{body}]"

    def compile(self) -> re.Pattern[str]:
        parts: list[str] = []
        while True:
            character = self._read()
            if not character:
                break
            if character == "{":
                self._depth += 1
                parts.append("(?:")
            elif character == "," and self._depth:
                parts.append("|")
            elif character == "}" and self._depth:
                self._depth -= 1
                parts.append(")")
            elif character == "[":
                parts.append(self._character_class())
            elif character == "?":
                parts.append(".")
            elif character == "*":
                if self._peek() == "*":
                    self._position += 1
                parts.append(".*")
            else:
                self._position -= len(character)
                parts.append(re.escape(self._literal_run(_TERMS_BREAKERS if self._depth else _TEXT_BREAKERS)))
        parts.append(")" * self._depth)
        return re.compile("".join(parts), re.DOTALL)


@functools.lru_cache(maxsize=1024)
def _compiled_glob(pattern: str) -> re.Pattern[str] | None:
    try:
        return _GlobCompiler(pattern).compile()
    except _GlobSyntaxError:
        return None


def glob_matches(pattern: str, text: str) -> bool:
    """Whether `text` matches the gobwas/glob `pattern` in full; a malformed pattern matches nothing."""
    compiled = _compiled_glob(pattern)
    return compiled is not None and compiled.fullmatch(text) is not None


def _glob_set_matches(patterns: Sequence[str], text: str) -> bool:
    for pattern in patterns:
        compiled = _compiled_glob(pattern)
        if compiled is None:
            # Velero stops at the first pattern that does not compile and reports
            # no match, even if a later pattern would have matched.
            return False
        if compiled.fullmatch(text) is not None:
            return True
    return False


# ---------------------------------------------------------------------------
# Include/exclude lists
# ---------------------------------------------------------------------------


def _normalise(items: Iterable[str] | None) -> tuple[str, ...]:
    # Velero keeps these lists in sets and walks them sorted; doing the same
    # makes the first-malformed-pattern rule and every message order match.
    return tuple(sorted(set(items or ())))


@dataclass(frozen=True)
class IncludesExcludes:
    """Velero's include/exclude lists: everything included, minus everything excluded.

    An empty include list or ``*`` includes everything; items are glob
    patterns. Lists are kept sorted and without duplicates.
    """

    includes: tuple[str, ...] = ()
    excludes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "includes", _normalise(self.includes))
        object.__setattr__(self, "excludes", _normalise(self.excludes))

    def should_include(self, item: str) -> bool:
        """Whether `item` is included: not excluded, and included by ``*``, a pattern, or an empty list."""
        if _glob_set_matches(self.excludes, item):
            return False
        return not self.includes or "*" in self.includes or _glob_set_matches(self.includes, item)

    def include_everything(self) -> bool:
        """True when nothing is excluded and the include list is empty or just ``*``."""
        return not self.excludes and (not self.includes or self.includes == ("*",))

    def includes_string(self) -> str:
        """The includes as Velero logs and describes them (``*`` when empty)."""
        return ", ".join(self.includes) if self.includes else "*"

    def excludes_string(self) -> str:
        """The excludes as Velero logs and describes them (``<none>`` when empty)."""
        return ", ".join(self.excludes) if self.excludes else "<none>"

    def validate(self) -> list[str]:
        """Velero's check of a pair of lists (resources, or a restore's namespaces)."""
        return validate_includes_excludes(self.includes, self.excludes)


def validate_includes_excludes(includes: Iterable[str] | None, excludes: Iterable[str] | None) -> list[str]:
    """Why these lists are not a valid include/exclude pair; empty when they are."""
    include_set, exclude_set = set(includes or ()), set(excludes or ())
    errors: list[str] = []
    if len(include_set) > 1 and "*" in include_set:
        errors.append("includes list must either contain '*' only, or a non-empty list of items")
    if "*" in exclude_set:
        errors.append("excludes list cannot contain '*'")
    errors.extend(
        f"excludes list cannot contain an item in the includes list: {item}"
        for item in sorted(exclude_set)
        if item in include_set
    )
    return errors


def validate_scoped_includes_excludes(
    includes: Iterable[str] | None, excludes: Iterable[str] | None
) -> list[str]:
    """Velero's check of the cluster-scoped or namespace-scoped resource lists (``*`` may be excluded)."""
    include_set, exclude_set = set(includes or ()), set(excludes or ())
    errors: list[str] = []
    if len(include_set) > 1 and "*" in include_set:
        errors.append("includes list must either contain '*' only, or a non-empty list of items")
    if len(exclude_set) > 1 and "*" in exclude_set:
        errors.append("excludes list must either contain '*' only, or a non-empty list of items")
    if include_set and "*" in exclude_set:
        errors.append("when exclude is '*', include cannot have value")
    errors.extend(
        f"excludes list cannot contain an item in the includes list: {item}"
        for item in sorted(exclude_set)
        if item in include_set
    )
    return errors


# --- Namespace wildcards ---------------------------------------------------------

_WILDCARD_CHARACTERS: Final = frozenset("*?[")
_UNSUPPORTED_PATTERN_CHARACTERS: Final = frozenset("|()!{},")
_DNS1123_LABEL_RE: Final = re.compile(r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?")
_DNS1123_SUBDOMAIN_RE: Final = re.compile(
    r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*"
)
_DNS1123_LABEL_MESSAGE: Final = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
    "start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
    "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)


def _has_wildcard(pattern: str) -> bool:
    return any(character in _WILDCARD_CHARACTERS for character in pattern)


def should_expand_wildcards(includes: Iterable[str] | None, excludes: Iterable[str] | None) -> bool:
    """Whether Velero expands namespace patterns against the live namespaces for these lists.

    Not when the includes are empty or contain a lone ``*`` (both mean "all");
    otherwise when any include or exclude has ``*``, ``?`` or ``[``.
    """
    include_list, exclude_list = list(includes or ()), list(excludes or ())
    if not include_list or "*" in include_list:
        return False
    return any(_has_wildcard(item) for item in (*include_list, *exclude_list))


def _namespace_pattern_error(pattern: str) -> str | None:
    """Why `pattern` is not a namespace pattern Velero supports (its wildcard.ValidateNamespaceName)."""
    if any(character in _UNSUPPORTED_PATTERN_CHARACTERS for character in pattern):
        return "wildcard pattern contains unsupported characters: |, (, ), !, {, }, ,"
    if "**" in pattern:
        return "wildcard pattern contains consecutive asterisks (only single * allowed)"
    index = 0
    while index < len(pattern):
        if pattern[index] == "[":
            close = pattern.find("]", index + 1)
            if close < 0:
                return "wildcard pattern contains unclosed bracket '['"
            if close == index + 1:
                return "wildcard pattern contains empty bracket pattern '[]'"
            index = close
        elif pattern[index] == "]":
            return "wildcard pattern contains unmatched closing bracket ']'"
        index += 1
    return None


def _namespace_name_errors(namespace: str) -> list[str]:
    # The empty string means "no namespace" (cluster-scoped) to Velero and is allowed.
    if not namespace:
        return []
    pattern_error = _namespace_pattern_error(namespace)
    if pattern_error is not None:
        return [pattern_error]
    # Glob characters are not valid in names; stand-ins let the rest be checked.
    candidate = namespace
    for character in "*?[]":
        candidate = candidate.replace(character, "x")
    messages: list[str] = []
    if len(candidate.encode("utf-8")) > 63:
        messages.append("must be no more than 63 characters")
    if not _DNS1123_LABEL_RE.fullmatch(candidate):
        if _DNS1123_SUBDOMAIN_RE.fullmatch(candidate):
            messages.append("must not contain dots")
        else:
            messages.append(_DNS1123_LABEL_MESSAGE)
    return [f"invalid namespace {_go_quote(namespace)}: {message}" for message in messages]


def validate_namespace_includes_excludes(
    includes: Iterable[str] | None, excludes: Iterable[str] | None
) -> list[str]:
    """Velero's check of a backup's namespace lists: the generic rules, then every name or pattern."""
    include_list, exclude_list = list(includes or ()), list(excludes or ())
    errors = validate_includes_excludes(include_list, exclude_list)
    for namespace in sorted(set(include_list)):
        errors.extend(_namespace_name_errors(namespace))
    for namespace in sorted(set(exclude_list)):
        errors.extend(_namespace_name_errors(namespace))
    return errors


def _expand_patterns(patterns: Sequence[str], active_namespaces: Sequence[str]) -> tuple[str, ...]:
    for pattern in patterns:
        problem = _namespace_pattern_error(pattern)
        if problem is not None:
            raise FilterError(problem)
    matched: set[str] = set()
    for pattern in patterns:
        if not _has_wildcard(pattern):
            # Plain names stay, whether or not such a namespace exists.
            matched.add(pattern)
            continue
        compiled = _compiled_glob(pattern)
        if compiled is None:
            raise FilterError(f"invalid namespace pattern {_go_quote(pattern)}")
        matched.update(namespace for namespace in active_namespaces if compiled.fullmatch(namespace))
    return tuple(matched)


@dataclass(frozen=True)
class NamespaceIncludesExcludes(IncludesExcludes):
    """Namespace include/exclude lists, with Velero's expansion of wildcard patterns.

    Before a backup runs, patterns such as ``app-*`` are replaced by the
    existing namespaces they match (:meth:`expand_wildcards`); after that a
    pattern that matched nothing includes nothing, where an empty include
    list normally includes everything.
    """

    wildcard_expanded: bool = False

    @classmethod
    def of(cls, includes: Iterable[str] | None, excludes: Iterable[str] | None) -> NamespaceIncludesExcludes:
        """Build from a spec's (possibly absent) lists."""
        return cls(tuple(includes or ()), tuple(excludes or ()))

    def should_include(self, item: str) -> bool:
        """Whether namespace `item` is included (nothing is, once expansion left no includes)."""
        if self.wildcard_expanded and not self.includes:
            return False
        return super().should_include(item)

    def include_everything(self) -> bool:
        """True when every namespace is included.

        Deliberate: Velero answers True when wildcard expansion matched no
        namespace at all (its include list is then empty), which turns on
        "back up all cluster-scoped resources" for a backup that covers no
        namespace; here such a filter includes nothing, so this is False.
        """
        if self.wildcard_expanded and not self.includes:
            return False
        return super().include_everything()

    def validate(self) -> list[str]:
        """Velero's namespace validation (generic rules plus name/pattern checks)."""
        return validate_namespace_includes_excludes(self.includes, self.excludes)

    def expand_wildcards(self, active_namespaces: Iterable[str]) -> NamespaceIncludesExcludes:
        """Replace patterns by the `active_namespaces` they match, when Velero would.

        Returns ``self`` when no expansion applies (no patterns, or all
        namespaces included). Raises :class:`FilterError` for a pattern Velero
        rejects (``**``, ``{a,b}``, ``|`` ...).
        """
        if self.wildcard_expanded or not should_expand_wildcards(self.includes, self.excludes):
            return self
        active = list(active_namespaces)
        return NamespaceIncludesExcludes(
            _expand_patterns(self.includes, active),
            _expand_patterns(self.excludes, active),
            wildcard_expanded=True,
        )

    def resolve_namespace_list(self, active_namespaces: Iterable[str]) -> list[str]:
        """The `active_namespaces` this filter selects, in their given order (expanding patterns first)."""
        active = list(active_namespaces)
        expanded = self.expand_wildcards(active)
        return [namespace for namespace in active if expanded.should_include(namespace)]

    def namespaces_to_list(self) -> list[str]:
        """Where the item collector lists namespaced resources: ``[""]`` (all at once) or specific names."""
        if self.should_include("*"):
            return [""]
        return [namespace for namespace in self.includes if self.should_include(namespace)]


# ---------------------------------------------------------------------------
# Resource name resolution
# ---------------------------------------------------------------------------


def _supports_backup(resource: ApiResource) -> bool:
    # Velero only handles resources it can list, get, create and delete.
    # Deliberate: an entry with no verbs at all (verbs unknown, as in hand-built
    # catalogs) is given the benefit of the doubt.
    return not resource.verbs or resource.verbs >= _BACKUP_VERBS


def _singular(resource: ApiResource) -> str:
    # Servers that do not report a singular name get kube's guess: the lowercased kind.
    return resource.singular or resource.kind.lower()


@dataclass(frozen=True)
class ResolvedResources:
    """The result of resolving user-written resource names.

    ``names`` is what goes into an include/exclude list: group-resources
    (``deployments.apps``, ``pods``), ``*`` as is, and names that did not
    resolve kept verbatim (so that a list of only unknown names does not
    silently become "everything"). ``unresolved`` lists the names that did
    not resolve and are not glob patterns, for the caller to warn about;
    ``wrong_scope`` lists names dropped because they resolved to a resource of
    the other scope (scoped lists only).
    """

    names: tuple[str, ...]
    unresolved: tuple[str, ...] = ()
    wrong_scope: tuple[str, ...] = ()


class ResourceCatalog:
    """The resource types a cluster serves, answering "which resource is ``deploy``?" as Velero does.

    Built from discovery (:class:`~strongroom.model.resources.ApiResource`
    entries in discovery order: the core group first, then the groups as the
    server lists them). Every non-subresource entry takes part in name
    matching; only the preferred version of each resource, and only if it
    supports list, get, create and delete, is a resolution result (Velero's
    discovery helper keeps exactly those).
    """

    def __init__(self, resources: Iterable[ApiResource]) -> None:
        entries = tuple(resource for resource in resources if "/" not in resource.resource)
        self._entries = entries

        versions: dict[str, list[str]] = {}
        preferred_version: dict[str, str] = {}
        for entry in entries:
            group_versions = versions.setdefault(entry.group, [])
            if entry.version not in group_versions:
                group_versions.append(entry.version)
            if entry.preferred:
                preferred_version.setdefault(entry.group, entry.version)
        # The order in which ambiguous names are settled: each group in turn,
        # its preferred version first, then its other versions; then each group
        # with any version.
        priority: list[tuple[str, str | None]] = []
        for group, group_versions in versions.items():
            preferred = preferred_version.get(group)
            if preferred is not None:
                priority.append((group, preferred))
            priority.extend((group, version) for version in group_versions if version != preferred)
        priority.extend((group, None) for group in versions)
        self._priority = tuple(priority)

        # One entry per group-resource: the preferred version's, else the first seen.
        chosen: dict[tuple[str, str], ApiResource] = {}
        for entry in entries:
            key = (entry.group, entry.resource)
            current = chosen.get(key)
            if current is None or (entry.preferred and not current.preferred):
                chosen[key] = entry
        backuppable = [entry for entry in chosen.values() if _supports_backup(entry)]
        self._backuppable = {(entry.group, entry.version, entry.resource): entry for entry in backuppable}
        # Velero moves the legacy "extensions" group last; short names are tried in this order.
        ordered = sorted(backuppable, key=lambda entry: entry.group == "extensions")
        self._shortcuts = tuple(
            (entry.group, short_name, entry.resource) for entry in ordered for short_name in entry.short_names
        )
        self._resources = tuple(ordered)

    @property
    def resources(self) -> tuple[ApiResource, ...]:
        """The resource types a backup can handle, one per group-resource, legacy ``extensions`` last."""
        return self._resources

    def _expand_short_name(self, resource: str, group: str) -> str:
        for short_group, short_name, long_name in self._shortcuts:
            if group and group != short_group:
                continue
            if resource == short_name:
                return long_name
        if not group:
            return resource
        # A partial group also selects short names ('deploy.app' finds apps' 'deploy').
        for short_group, short_name, long_name in self._shortcuts:
            if short_group.startswith(group) and resource == short_name:
                return long_name
        return resource

    def resource_for(self, name: str) -> ApiResource | None:
        """The resource type `name` designates, or None when it is unknown or ambiguous.

        Accepts the plural (``deployments``), the singular or kind in any case
        (``deployment``, ``Deployment``), a short name (``deploy``), and any of
        these qualified by a group (``deployments.apps``). Names are matched
        as kubectl's REST mapper matches them: a short name is expanded first
        (case-sensitively), the resource part is then lowercased, the group is
        compared exactly.
        """
        resource, _, group = name.partition(".")
        resource = self._expand_short_name(resource, group).lower()
        candidates: list[ApiResource] = []
        seen: set[tuple[str, str, str]] = set()
        for entry in self._entries:
            if group and entry.group != group:
                continue
            if resource not in (entry.resource, _singular(entry)):
                continue
            key = (entry.group, entry.version, entry.resource)
            if key not in seen:
                seen.add(key)
                candidates.append(entry)
        choice = self._settle(candidates)
        if choice is None:
            return None
        return self._backuppable.get((choice.group, choice.version, choice.resource))

    def _settle(self, candidates: list[ApiResource]) -> ApiResource | None:
        if len(candidates) <= 1:
            return candidates[0] if candidates else None
        remaining = candidates
        for group, version in self._priority:
            matched = [
                entry for entry in remaining if entry.group == group and version in (None, entry.version)
            ]
            if len(matched) == 1:
                return matched[0]
            if matched:
                remaining = matched
        return None

    def resolve(self, names: Iterable[str], *, namespaced: bool | None = None) -> ResolvedResources:
        """Resolve user-written names to group-resources (see :class:`ResolvedResources`).

        With `namespaced` given, names that resolve to a resource of the other
        scope are dropped, as Velero's scoped filters drop them.
        """
        resolved: list[str] = []
        unresolved: list[str] = []
        wrong_scope: list[str] = []
        for name in names:
            if name == "*":
                resolved.append(name)
                continue
            resource = self.resource_for(name)
            if resource is None:
                resolved.append(name)
                if not any(character in "*?[{" for character in name):
                    unresolved.append(name)
            elif namespaced is not None and resource.namespaced != namespaced:
                wrong_scope.append(name)
            else:
                resolved.append(resource.group_resource)
        return ResolvedResources(tuple(resolved), tuple(unresolved), tuple(wrong_scope))


def resolve_resources(
    names: Iterable[str],
    catalog: ResourceCatalog | Iterable[ApiResource],
    *,
    namespaced: bool | None = None,
) -> ResolvedResources:
    """Resolve names such as ``deploy``, ``Deployment``, ``pvc`` or ``deployments.apps`` against discovery."""
    if not isinstance(catalog, ResourceCatalog):
        catalog = ResourceCatalog(catalog)
    return catalog.resolve(names, namespaced=namespaced)


def _resource_lists(
    catalog: ResourceCatalog, includes: Iterable[str] | None, excludes: Iterable[str] | None
) -> tuple[IncludesExcludes, tuple[str, ...]]:
    included = catalog.resolve(includes or ())
    # Velero ignores '*' in a (non-scoped) exclude list rather than exclude everything.
    excluded = catalog.resolve(item for item in excludes or () if item != "*")
    return (
        IncludesExcludes(included.names, excluded.names),
        _unique(included.unresolved + excluded.unresolved),
    )


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


# ---------------------------------------------------------------------------
# Backup: which resource types
# ---------------------------------------------------------------------------


class ResourceFilter(Protocol):
    """Whether a resource type takes part in a backup."""

    @property
    def unresolved(self) -> tuple[str, ...]:
        """Resource names from the spec discovery could not resolve (for a warning)."""
        ...

    def should_include(self, resource: ApiResource) -> bool:
        """Whether items of `resource` are collected directly (listed by the item collector)."""
        ...

    def should_exclude(self, resource: ApiResource) -> bool:
        """Whether an item of `resource` is refused when a plugin adds it as an additional item."""
        ...


def _always_excluded_default() -> frozenset[str]:
    return frozenset(AUTO_EXCLUDED_NAMESPACE_SCOPED_RESOURCES + AUTO_EXCLUDED_CLUSTER_SCOPED_RESOURCES)


@dataclass(frozen=True)
class GlobalResourceFilter:
    """The old-style filters: ``includedResources``/``excludedResources`` and ``includeClusterResources``.

    ``include_cluster_resources`` is tri-state:

    * ``False`` -- no cluster-scoped resource at all;
    * ``True`` -- every cluster-scoped resource the resource lists allow;
    * ``None`` -- cluster-scoped resources are collected only when the backup
      covers every namespace (namespaces themselves are always considered);
      otherwise they come in only as additional items of namespaced ones
      (a PVC's PV), which :meth:`should_exclude` allows.
    """

    resources: IncludesExcludes
    include_cluster_resources: bool | None
    namespaces: NamespaceIncludesExcludes
    unresolved: tuple[str, ...] = ()
    always_excluded: frozenset[str] = field(default_factory=_always_excluded_default)

    def should_include(self, resource: ApiResource) -> bool:
        """Whether items of `resource` are collected directly."""
        name = resource.group_resource
        if name in self.always_excluded:
            return False
        if not resource.namespaced:
            if self.include_cluster_resources is False:
                return False
            if (
                self.include_cluster_resources is None
                and name != _NAMESPACES
                and not self.namespaces.include_everything()
            ):
                return False
        return self.resources.should_include(name)

    def should_exclude(self, resource: ApiResource) -> bool:
        """Whether an additional item of `resource` is refused."""
        name = resource.group_resource
        if name in self.always_excluded or _glob_set_matches(self.resources.excludes, name):
            return True
        if not resource.namespaced:
            if self.include_cluster_resources is False:
                return True
            if self.include_cluster_resources is None and not self.resources.should_include(name):
                return True
        return False


@dataclass(frozen=True)
class ScopedResourceFilter:
    """The new-style filters: separate include/exclude lists for cluster- and namespace-scoped types.

    Namespaced types follow their lists (``*`` may be excluded). Cluster-scoped
    types follow theirs; when neither cluster list is given, they are all
    collected if the backup covers every namespace and every namespaced type,
    and otherwise only namespaces are. Namespaces are always considered
    unless excluded.

    Deliberate: Velero >= 1.17 writes the auto-excluded CSI snapshot types
    into the spec's exclude lists, and as a side effect a backup with no
    resource filters stops collecting cluster-scoped types. Here those types
    live in ``always_excluded`` instead, so an unfiltered backup still takes
    every cluster-scoped resource, as Velero 1.11-1.16 do.
    """

    namespace_scoped: IncludesExcludes
    cluster_scoped: IncludesExcludes
    namespaces: NamespaceIncludesExcludes
    unresolved: tuple[str, ...] = ()
    always_excluded: frozenset[str] = field(default_factory=_always_excluded_default)

    def should_include(self, resource: ApiResource) -> bool:
        """Whether items of `resource` are collected directly."""
        name = resource.group_resource
        if name in self.always_excluded:
            return False
        if resource.namespaced:
            return self.namespace_scoped.should_include(name)
        cluster = self.cluster_scoped
        if "*" in cluster.excludes or _glob_set_matches(cluster.excludes, name):
            return False
        if (
            not cluster.includes
            and not cluster.excludes
            and self.namespaces.include_everything()
            and self.namespace_scoped.include_everything()
        ):
            return True
        return "*" in cluster.includes or _glob_set_matches(cluster.includes, name) or name == _NAMESPACES

    def should_exclude(self, resource: ApiResource) -> bool:
        """Whether an additional item of `resource` is refused (only when its scope's list excludes it)."""
        name = resource.group_resource
        if name in self.always_excluded:
            return True
        lists = self.namespace_scoped if resource.namespaced else self.cluster_scoped
        return _glob_set_matches(lists.excludes, name)


def uses_old_resource_filters(spec: BackupSpec) -> bool:
    """Whether a backup uses the old filters (any of included/excludedResources, includeClusterResources)."""
    return bool(
        spec.include_cluster_resources is not None or spec.included_resources or spec.excluded_resources
    )


def _uses_new_resource_filters(spec: BackupSpec) -> bool:
    return bool(
        spec.included_cluster_scoped_resources
        or spec.excluded_cluster_scoped_resources
        or spec.included_namespace_scoped_resources
        or spec.excluded_namespace_scoped_resources
    )


def old_and_new_resource_filters_mixed(spec: BackupSpec) -> bool:
    """Whether a backup mixes old and new resource filters, which Velero refuses."""
    return uses_old_resource_filters(spec) and _uses_new_resource_filters(spec)


def backup_namespace_filter(spec: BackupSpec, active_namespaces: Iterable[str]) -> NamespaceIncludesExcludes:
    """The namespace filter of a backup, with patterns expanded against the existing namespaces.

    No included namespaces means all of them (``*``), as Velero normalises it.
    Raises :class:`FilterError` for a pattern Velero rejects.
    """
    includes = spec.included_namespaces or ["*"]
    return NamespaceIncludesExcludes.of(includes, spec.excluded_namespaces).expand_wildcards(
        active_namespaces
    )


def backup_resource_filter(
    spec: BackupSpec,
    catalog: ResourceCatalog,
    namespaces: NamespaceIncludesExcludes,
) -> GlobalResourceFilter | ScopedResourceFilter:
    """The resource filter a backup runs with: old-style when the spec uses old filters, else scoped."""
    if uses_old_resource_filters(spec):
        resources, unresolved = _resource_lists(catalog, spec.included_resources, spec.excluded_resources)
        return GlobalResourceFilter(resources, spec.include_cluster_resources, namespaces, unresolved)
    lists: list[IncludesExcludes] = []
    unresolved_names: list[str] = []
    for includes, excludes, namespaced in (
        (spec.included_namespace_scoped_resources, spec.excluded_namespace_scoped_resources, True),
        (spec.included_cluster_scoped_resources, spec.excluded_cluster_scoped_resources, False),
    ):
        included = catalog.resolve(includes or (), namespaced=namespaced)
        excluded = catalog.resolve(excludes or (), namespaced=namespaced)
        lists.append(IncludesExcludes(included.names, excluded.names))
        unresolved_names.extend(included.unresolved + excluded.unresolved)
    return ScopedResourceFilter(lists[0], lists[1], namespaces, _unique(unresolved_names))


# ---------------------------------------------------------------------------
# Restore
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RestoreFilter:
    """What a restore restores, from the spec and the backup's contents.

    ``include_cluster_resources`` is tri-state here too, with restore's own
    rule: ``False`` restores no cluster-scoped item; ``True`` restores those
    the resource lists allow; ``None`` restores them from the backup only
    when every namespace is restored, but still lets cluster-scoped
    *additional* items through (a restored PVC's PV).
    """

    resources: IncludesExcludes
    namespaces: NamespaceIncludesExcludes
    include_cluster_resources: bool | None
    status_resources: IncludesExcludes | None = None
    unresolved: tuple[str, ...] = ()

    def should_include(self, group_resource: str, namespace: str) -> bool:
        """Whether the backup's items of `group_resource` in `namespace` ("" = cluster-scoped) are restored."""
        if not self.resources.should_include(group_resource):
            return False
        if namespace:
            return self.namespaces.should_include(namespace)
        if self.include_cluster_resources is False:
            return False
        return self.include_cluster_resources is True or self.namespaces.include_everything()

    def should_include_additional_item(self, group_resource: str, namespace: str) -> bool:
        """Whether an item a restore item action asks for is restored (`namespace` is its original one)."""
        if not self.resources.should_include(group_resource):
            return False
        if namespace:
            return self.namespaces.should_include(namespace)
        return self.include_cluster_resources is not False

    def restores_status_of(self, group_resource: str) -> bool:
        """Whether ``status`` is restored for `group_resource` (never, unless ``spec.restoreStatus`` says so)."""
        return self.status_resources is not None and self.status_resources.should_include(group_resource)


def restore_filter(
    spec: RestoreSpec,
    catalog: ResourceCatalog,
    backup_namespaces: Iterable[str] = (),
) -> RestoreFilter:
    """The filter a restore runs with.

    Non-restorable resources (nodes, events, Velero's own backups and
    restores ...) are always excluded. Namespace patterns are expanded
    against `backup_namespaces`, the namespaces that have items in the
    backup. Raises :class:`FilterError` for a pattern Velero rejects, and for
    ``*`` among excluded namespaces when patterns are used.
    """
    excluded = list(spec.excluded_resources or ())
    excluded.extend(name for name in NON_RESTORABLE_RESOURCES if name not in excluded)
    resources, unresolved = _resource_lists(catalog, spec.included_resources, excluded)
    # The built-in exclusions name types many clusters do not serve: not the user's mistake.
    given = set(spec.excluded_resources or ()) | set(spec.included_resources or ())
    unresolved = tuple(name for name in unresolved if name in given)
    namespaces = NamespaceIncludesExcludes.of(spec.included_namespaces, spec.excluded_namespaces)
    if should_expand_wildcards(namespaces.includes, namespaces.excludes):
        if "*" in namespaces.excludes:
            raise FilterError("wildcard '*' is not allowed in restore excludes")
        namespaces = namespaces.expand_wildcards(backup_namespaces)
    status_resources = None
    if spec.restore_status is not None:
        status_resources, status_unresolved = _resource_lists(
            catalog, spec.restore_status.included_resources, spec.restore_status.excluded_resources
        )
        unresolved = _unique(unresolved + status_unresolved)
    return RestoreFilter(resources, namespaces, spec.include_cluster_resources, status_resources, unresolved)


# ---------------------------------------------------------------------------
# Labels
# ---------------------------------------------------------------------------


def is_excluded_from_backup(labels: Mapping[str, str] | None) -> bool:
    """Whether an object opts out of backups with ``velero.io/exclude-from-backup=true`` (exactly "true")."""
    return labels is not None and labels.get(velero_labels.EXCLUDE_FROM_BACKUP_LABEL) == "true"


@dataclass(frozen=True)
class LabelFilter:
    """A spec's ``labelSelector`` or ``orLabelSelectors`` (never both), as one matcher.

    With or-selectors an object is selected when any of them matches;
    otherwise the single selector decides; with neither, everything is.
    """

    selector: LabelSelector | None = None
    or_selectors: tuple[LabelSelector, ...] = ()

    @classmethod
    def from_spec(
        cls,
        label_selector: LabelSelectorSpec | None,
        or_label_selectors: Sequence[LabelSelectorSpec] | None,
    ) -> LabelFilter:
        """Build from a spec's fields; raises FilterError if both are set, SelectorError if one is invalid."""
        if label_selector is not None and or_label_selectors is not None:
            raise FilterError("labelSelector and orLabelSelectors cannot both be specified")
        return cls(
            label_selector.to_selector() if label_selector is not None else None,
            tuple(selector.to_selector() for selector in or_label_selectors or ()),
        )

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        """Whether an object with `labels` is selected."""
        if self.or_selectors:
            return any(selector.matches(labels) for selector in self.or_selectors)
        return self.selector is None or self.selector.matches(labels)

    def list_selectors(self) -> tuple[str, ...]:
        """The ``labelSelector`` strings to list with: one list call per or-selector, else one call.

        ``""`` lists everything. Velero lists once per or-selector and merges the results.
        """
        if self.or_selectors:
            return tuple(str(selector) for selector in self.or_selectors)
        return (str(self.selector) if self.selector is not None else "",)


_EXPRESSION_OPERATORS: Final = {IN: "In", NOT_IN: "NotIn", EXISTS: "Exists", DOES_NOT_EXIST: "DoesNotExist"}


def parse_selector_flag(text: str) -> LabelSelectorSpec:
    """Parse the CLI's ``--selector`` string into a spec's label selector, as ``metav1.ParseToLabelSelector``.

    ``a=b`` becomes ``matchLabels``; ``in``, ``notin``, existence and ``!key``
    become ``matchExpressions``. As in Velero, ``!=``, ``>`` and ``<`` are refused.
    """
    try:
        selector = parse_label_selector(text)
    except SelectorError as exc:
        # Go formats this one with "%s" between literal quotes, not %q.
        raise SelectorError(f'couldn\'t parse the selector string "{text}": {exc}') from exc
    match_labels: dict[str, str] = {}
    expressions: list[LabelSelectorRequirementSpec] = []
    for requirement in selector.requirements:
        operator = requirement.operator
        if operator == EQUALS:
            match_labels[requirement.key] = requirement.values[0]
        elif operator in (GREATER_THAN, LESS_THAN):
            raise SelectorError(f"{_go_quote(operator)} isn't supported in label selectors")
        elif operator in _EXPRESSION_OPERATORS:
            expressions.append(
                LabelSelectorRequirementSpec(
                    key=requirement.key,
                    operator=_EXPRESSION_OPERATORS[operator],
                    values=list(requirement.values) or None,
                )
            )
        else:
            raise SelectorError(f"{_go_quote(operator)} is not a valid label selector operator")
    return LabelSelectorSpec(match_labels=match_labels or None, match_expressions=expressions or None)


def parse_or_selector_flag(text: str) -> list[LabelSelectorSpec]:
    """Parse the CLI's ``--or-selector`` (``"app=web or tier in (db,cache)"``); Velero splits on ``" or "``."""
    return [parse_selector_flag(part) for part in text.split(" or ")]


def selector_flags_to_spec(selector: str | None, or_selector: str | None) -> dict[str, Any]:
    """``labelSelector``/``orLabelSelectors`` spec fields from the CLI's ``--selector``/``--or-selector``."""
    fields: dict[str, Any] = {}
    if selector:
        fields["labelSelector"] = parse_selector_flag(selector).model_dump(by_alias=True, exclude_none=True)
    if or_selector:
        fields["orLabelSelectors"] = [
            parsed.model_dump(by_alias=True, exclude_none=True)
            for parsed in parse_or_selector_flag(or_selector)
        ]
    return fields


def format_label_selector(selector: LabelSelectorSpec | None) -> str:
    """A spec's label selector in string form as Velero prints it (``<none>`` when it selects everything)."""
    if selector is None:
        return "<none>"
    try:
        text = str(selector.to_selector())
    except SelectorError:
        return "<error>"
    return text or "<none>"


def format_or_selector_flag(selectors: Sequence[LabelSelectorSpec]) -> str:
    """The ``--or-selector`` string form of or-selectors (``"a=b or c=d"``)."""
    return " or ".join(format_label_selector(selector) for selector in selectors)


# ---------------------------------------------------------------------------
# Spec validation
# ---------------------------------------------------------------------------

_OLD_AND_NEW_FILTERS_MESSAGE: Final = (
    "include-resources, exclude-resources and include-cluster-resources are old filter parameters.\n"
    "include-cluster-scoped-resources, exclude-cluster-scoped-resources, include-namespace-scoped-resources "
    "and exclude-namespace-scoped-resources are new filter parameters.\n"
    "They cannot be used together"
)


def validate_backup_spec(spec: BackupSpec) -> list[str]:
    """The filter-related validation errors Velero's backup controller reports for `spec`, in its order.

    Checks that need the cluster (storage and snapshot locations, resource
    policies) belong to the controller and are not made here.
    """
    errors: list[str] = []
    if old_and_new_resource_filters_mixed(spec):
        errors.append(_OLD_AND_NEW_FILTERS_MESSAGE)
    if uses_old_resource_filters(spec):
        errors.extend(
            f"Invalid included/excluded resource lists: {error}"
            for error in validate_includes_excludes(spec.included_resources, spec.excluded_resources)
        )
    else:
        errors.extend(
            f"Invalid cluster-scoped included/excluded resource lists: {error}"
            for error in validate_scoped_includes_excludes(
                spec.included_cluster_scoped_resources, spec.excluded_cluster_scoped_resources
            )
        )
        errors.extend(
            f"Invalid namespace-scoped included/excluded resource lists: {error}"
            for error in validate_scoped_includes_excludes(
                spec.included_namespace_scoped_resources, spec.excluded_namespace_scoped_resources
            )
        )
    errors.extend(
        f"Invalid included/excluded namespace lists: {error}"
        for error in validate_namespace_includes_excludes(
            spec.included_namespaces or ["*"], spec.excluded_namespaces
        )
    )
    if spec.or_label_selectors is not None and spec.label_selector is not None:
        errors.append(
            "encountered labelSelector as well as orLabelSelectors in backup spec, only one can be specified"
        )
    return errors


def validate_restore_spec(spec: RestoreSpec) -> list[str]:
    """The spec validation errors Velero's restore controller reports, in its order.

    Checks that need the cluster or the bucket (the backup exists, the
    location is available, hook init containers, resource modifiers) are
    the controller's.
    """
    errors: list[str] = []
    errors.extend(non_restorable_errors(spec.included_resources))
    excluded = list(spec.excluded_resources or ())
    excluded.extend(name for name in NON_RESTORABLE_RESOURCES if name not in excluded)
    errors.extend(
        f"Invalid included/excluded resource lists: {error}"
        for error in validate_includes_excludes(spec.included_resources, excluded)
    )
    errors.extend(
        f"Invalid included/excluded namespace lists: {error}"
        for error in validate_includes_excludes(spec.included_namespaces, spec.excluded_namespaces)
    )
    if spec.or_label_selectors is not None and spec.label_selector is not None:
        errors.append(
            "encountered labelSelector as well as orLabelSelectors in restore spec, only one can be specified"
        )
    if bool(spec.backup_name) == bool(spec.schedule_name):
        errors.append(
            "Either a backup or schedule must be specified as a source for the restore, but not both"
        )
        return errors
    policy = spec.existing_resource_policy
    if policy and policy not in {member.value for member in ExistingResourcePolicy}:
        errors.append(f"Invalid ExistingResourcePolicy: {policy}")
    return errors
