"""Where things live inside a Velero backup tarball (format 1.1.0).

The tarball layout is a compatibility contract: Velero must restore what
strongroom writes and strongroom must restore what Velero writes. This module
is the only place that knows the layout, so the writer and the reader cannot
disagree, and the parser is strict because tar member names come from a file
an attacker (or a broken disk) may have shaped: a name that is absolute,
climbs with ``..`` or falls outside the layout must never reach a restore.

Layout, as Velero's ``pkg/archive/filesystem.go`` and
``pkg/backup/item_backupper.go`` build it::

    metadata/version                                       "1.1.0\\n"
    resources/<resource>[.<group>]/namespaces/<ns>/<name>.json
    resources/<resource>[.<group>]/cluster/<name>.json
    resources/<resource>[.<group>]/<version>-preferredversion/namespaces/<ns>/<name>.json
    resources/<resource>[.<group>]/<version>/cluster/<name>.json  (non-preferred versions)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from strongroom.archive.errors import ArchiveError, UnsupportedFormatError

FORMAT_VERSION: Final = "1.1.0"
# Velero's own promise (site/content/docs/main/output-file-format.md): minor and
# patch versions only add files and directories; a new major one moves them.
SUPPORTED_MAJOR: Final = 1

RESOURCES_DIR: Final = "resources"
METADATA_DIR: Final = "metadata"
VERSION_FILE: Final = f"{METADATA_DIR}/version"
CLUSTER_SCOPED_DIR: Final = "cluster"
NAMESPACE_SCOPED_DIR: Final = "namespaces"
PREFERRED_VERSION_SUFFIX: Final = "-preferredversion"
ITEM_SUFFIX: Final = ".json"

_LAYOUT_HINT: Final = (
    "items live at resources/<resource>[.<group>][/<version>[-preferredversion]]"
    "/(cluster/<name>|namespaces/<namespace>/<name>).json"
)
_VERSION_RE: Final = re.compile(r"(\d{1,9})(?:\.(\d{1,9})(?:\.(\d{1,9}))?)?")


def split_archive_path(path: str, *, directory: bool = False) -> tuple[str, ...]:
    """Split a tar member name into its components, refusing every unsafe shape.

    One leading ``./`` is accepted because ``tar -C dir -czf b.tar.gz .`` of an
    extracted backup produces it and Velero's extractor accepts it; directory
    entries may end with ``/``.
    """
    if "\x00" in path:
        raise ArchiveError(f"archive path {path!r} contains a NUL byte")
    if path.startswith("/"):
        raise ArchiveError(f"archive path {path!r} is absolute")
    trimmed = path.removeprefix("./")
    if directory:
        trimmed = trimmed.removesuffix("/")
    if directory and trimmed in ("", "."):
        return ()
    parts = tuple(trimmed.split("/"))
    for part in parts:
        if part == "":
            raise ArchiveError(f"archive path {path!r} has an empty component")
        if part in (".", ".."):
            raise ArchiveError(f"archive path {path!r} has a {part!r} component")
    return parts


def check_segment(value: str, what: str) -> None:
    # Kubernetes names never contain "/" and are never "." or ".."
    # (apimachinery's path-segment validation); anything else would change the
    # shape of the path.
    if not value or value in (".", "..") or "/" in value or "\x00" in value:
        raise ArchiveError(f"{what} {value!r} cannot be used in a backup tarball path")


@dataclass(frozen=True, order=True)
class GroupResource:
    """A resource and its API group: the ``<resource>[.<group>]`` directory name."""

    resource: str
    group: str = ""

    def __post_init__(self) -> None:
        check_segment(self.resource, "resource")
        if "." in self.resource:
            raise ArchiveError(f"resource {self.resource!r} must not contain a dot")
        if self.group:
            check_segment(self.group, "API group")
            if any(label == "" for label in self.group.split(".")):
                raise ArchiveError(f"API group {self.group!r} has an empty label")

    def __str__(self) -> str:
        return f"{self.resource}.{self.group}" if self.group else self.resource

    @classmethod
    def parse(cls, text: str) -> GroupResource:
        """Read a directory name: the core group has no suffix (``pods``, ``deployments.apps``)."""
        resource, _, group = text.partition(".")
        if "." in text and not group:
            raise ArchiveError(f"resource directory {text!r} ends with a dot")
        return cls(resource, group)


@dataclass(frozen=True, order=True)
class FormatVersion:
    """The backup format version stored in ``metadata/version``."""

    major: int
    minor: int = 0
    patch: int = 0

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"

    @classmethod
    def parse(cls, text: str) -> FormatVersion:
        """Parse ``1.1.0`` and the bare ``1`` Velero wrote before format 1.1 (as 1.0.0)."""
        match = _VERSION_RE.fullmatch(text.strip())
        if match is None:
            raise ArchiveError(f"{VERSION_FILE} holds {text.strip()[:40]!r}, not a format version like 1.1.0")
        major, minor, patch = (int(group) if group else 0 for group in match.groups())
        return cls(major, minor, patch)

    def check_supported(self) -> None:
        if self.major != SUPPORTED_MAJOR:
            raise UnsupportedFormatError(
                f"backup format version {self} is not supported: strongroom reads Velero's format "
                f"{SUPPORTED_MAJOR}.x (it writes {FORMAT_VERSION})",
                hint="restore this backup with a Velero or strongroom release that reads this format",
            )

    @property
    def knows_every_file(self) -> bool:
        """Whether strongroom knows every file this version may contain.

        Newer minor versions may add files; those are skipped rather than refused.
        """
        return (self.major, self.minor) <= (SUPPORTED_MAJOR, 1)


@dataclass(frozen=True)
class ItemPath:
    """The identity one item file carries in its tar path.

    ``namespace`` is None for cluster-scoped items. ``version`` is None for the
    classic, version-less copy; ``preferred`` marks the
    ``<version>-preferredversion`` copy of the same item.
    """

    group_resource: GroupResource
    namespace: str | None
    name: str
    version: str | None = None
    preferred: bool = False

    def __post_init__(self) -> None:
        check_segment(self.name, "item name")
        if self.namespace is not None:
            check_segment(self.namespace, "namespace")
        if self.version is None:
            if self.preferred:
                raise ArchiveError("a preferred-version copy needs a version")
        else:
            _check_version(self.version)

    @property
    def version_dir(self) -> str | None:
        if self.version is None:
            return None
        return self.version + PREFERRED_VERSION_SUFFIX if self.preferred else self.version

    @property
    def path(self) -> str:
        parts = [RESOURCES_DIR, str(self.group_resource)]
        if self.version_dir is not None:
            parts.append(self.version_dir)
        if self.namespace is None:
            parts.append(CLUSTER_SCOPED_DIR)
        else:
            parts += [NAMESPACE_SCOPED_DIR, self.namespace]
        parts.append(self.name + ITEM_SUFFIX)
        return "/".join(parts)


def _check_version(version: str) -> None:
    check_segment(version, "API version")
    # These would make a version directory indistinguishable from a scope
    # directory or from a preferred-version directory when read back.
    if "." in version or version in (CLUSTER_SCOPED_DIR, NAMESPACE_SCOPED_DIR):
        raise ArchiveError(f"API version {version!r} cannot be used as a version directory")
    if version.endswith(PREFERRED_VERSION_SUFFIX):
        raise ArchiveError(f"API version {version!r} must not end with {PREFERRED_VERSION_SUFFIX!r}")


def item_paths(
    group_resource: GroupResource, namespace: str | None, name: str, *, version: str, preferred: bool
) -> tuple[ItemPath, ...]:
    """The copies Velero writes for one item, in Velero's order.

    An item read at its group's preferred version is written twice: the classic
    version-less path (what a plain restore reads) and ``<version>-preferredversion``.
    An item read at another version (Velero's EnableAPIGroupVersions) is written
    once, under ``<version>``.
    """
    if preferred:
        return (
            ItemPath(group_resource, namespace, name),
            ItemPath(group_resource, namespace, name, version, preferred=True),
        )
    return (ItemPath(group_resource, namespace, name, version),)


def parse_item_path(path: str) -> ItemPath:
    """Read an item's identity back from its tar path; anything outside the layout is refused."""
    parts = split_archive_path(path)
    if len(parts) < 4 or parts[0] != RESOURCES_DIR:
        raise ArchiveError(f"archive path {path!r} is not an item path", hint=_LAYOUT_HINT)
    group_resource = GroupResource.parse(parts[1])
    rest = parts[2:]
    version: str | None = None
    preferred = False
    if rest[0] not in (CLUSTER_SCOPED_DIR, NAMESPACE_SCOPED_DIR):
        version_dir, rest = rest[0], rest[1:]
        preferred = version_dir.endswith(PREFERRED_VERSION_SUFFIX)
        version = version_dir.removesuffix(PREFERRED_VERSION_SUFFIX)
    namespace: str | None
    if len(rest) == 2 and rest[0] == CLUSTER_SCOPED_DIR:
        namespace, filename = None, rest[1]
    elif len(rest) == 3 and rest[0] == NAMESPACE_SCOPED_DIR:
        namespace, filename = rest[1], rest[2]
    else:
        raise ArchiveError(f"archive path {path!r} does not match the item layout", hint=_LAYOUT_HINT)
    if not filename.endswith(ITEM_SUFFIX) or filename == ITEM_SUFFIX:
        raise ArchiveError(f"archive path {path!r} is not a <name>.json file", hint=_LAYOUT_HINT)
    return ItemPath(group_resource, namespace, filename.removesuffix(ITEM_SUFFIX), version, preferred)


def resource_list_key(group: str, version: str, kind: str) -> str:
    """The resource-list key Velero uses: the item's ``apiVersion`` and kind (``apps/v1/Deployment``)."""
    group_version = f"{group}/{version}" if group else version
    return f"{group_version}/{kind}"


def resource_list_entry(namespace: str | None, name: str) -> str:
    """A resource-list entry: ``<namespace>/<name>``, or the bare name for a cluster-scoped item."""
    return f"{namespace}/{name}" if namespace else name
