"""Which images of an ImageStream live in the cluster's internal registry, and the ImageStream after a restore.

OpenShift's ImageStreams (``image.openshift.io/v1``) name images by pull spec.
An image built in the cluster or pushed to it lives in the internal registry
(``image-registry.openshift-image-registry.svc:5000`` on OpenShift 4), whose
storage is not part of any backup: an application restored without those
images cannot start. So, as OADP's ``openshift`` plugin does, a backup copies
them into the backup location and a restore copies them back. This module is
the pure part of that: dicts in, values out, no IO.

* **Which images.** Every ``status.tags[].items[]`` (the tag's history, newest
  first: ``dockerImageReference`` and ``image``, the manifest digest) and every
  ``spec.tags[].from`` of kind ``DockerImage`` whose registry host is internal:
  the host of the ImageStream's own ``status.dockerImageRepository`` or
  ``status.publicDockerImageRepository`` (the registry's route), or one the
  caller names. Images elsewhere (quay.io, a mirror) are left where they are,
  as OADP does. Each image is taken once per ImageStream, by digest: digests are
  what pods pull and what a restore must reproduce exactly.
* **Where a copy lives.** In the backup location's registry every image of an
  ImageStream is stored in the repository ``<namespace>/<imagestream>`` by
  digest only (never by tag: a tag would move between backups, a digest
  names one content forever). An image the ImageStream took from another
  namespace's stream is stored under this one's repository too, so a restore
  needs nothing outside the backup.
* **After a restore.** The ImageStream moves to its target namespace and every
  internal reference points, by digest, at the copy in the target cluster's
  internal registry (``<registry>/<namespace>/<imagestream>@<digest>``), as does
  ``status.dockerImageRepository``; references to other registries stay.
  ``ImageStreamTag``/``ImageStreamImage`` sources in the source namespace follow
  it to the target namespace.

A ``spec.tags[].from`` that names the internal registry by tag alone cannot be
pinned to a digest from the object; it is resolved through the status tag of
the same name (the image that tag imported) when there is one, and reported as
a warning otherwise.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from strongroom.errors import UsageError

__all__ = [
    "OPENSHIFT_INTERNAL_REGISTRY",
    "ImageReference",
    "ImageStreamImages",
    "InternalImage",
    "backup_reference",
    "backup_repository",
    "internal_hosts",
    "internal_images",
    "is_digest",
    "rewrite_for_restore",
]

# The internal registry's service, as OpenShift 4 writes it into ImageStreams.
OPENSHIFT_INTERNAL_REGISTRY = "image-registry.openshift-image-registry.svc:5000"

_DIGEST = re.compile(r"^(?:sha256:[a-f0-9]{64}|sha384:[a-f0-9]{96}|sha512:[a-f0-9]{128})$")
# A path component of a repository (the distribution spec's grammar).
_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
# Kubernetes names of namespaces and ImageStreams (DNS-1123 subdomain, lower case).
_K8S_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


def is_digest(value: str) -> bool:
    """Whether ``value`` is a manifest digest (``sha256:`` and 64 hex digits, or sha384/sha512)."""
    return bool(_DIGEST.match(value))


@dataclass(frozen=True)
class ImageReference:
    """A pull spec taken apart: ``registry/repository[:tag][@digest]``."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @classmethod
    def parse(cls, text: str) -> ImageReference:
        """Parse a pull spec; UsageError when it is not one. A spec without a registry host is Docker Hub's."""
        value = text.strip()
        name, at, digest = value.partition("@")
        if at and not is_digest(digest):
            raise UsageError(f"invalid image reference {text!r}: {digest!r} is not a digest")
        tag: str | None = None
        slash = name.rfind("/")
        colon = name.rfind(":")
        if colon > slash:
            name, tag = name[:colon], name[colon + 1 :]
            if not _TAG.match(tag):
                raise UsageError(f"invalid image reference {text!r}: {tag!r} is not a tag")
        first, sep, rest = name.partition("/")
        if sep and ("." in first or ":" in first or first == "localhost"):
            registry, repository = first.lower(), rest
        else:
            registry, repository = "docker.io", name if sep else f"library/{name}"
        if not repository or not all(_COMPONENT.match(part) for part in repository.split("/")):
            raise UsageError(f"invalid image reference {text!r}: {repository!r} is not a repository name")
        return cls(registry=registry, repository=repository, tag=tag, digest=digest or None)

    def by_digest(self, digest: str | None = None) -> ImageReference:
        """The same repository, named by digest only (``digest``, or this reference's own)."""
        wanted = digest or self.digest
        if wanted is None or not is_digest(wanted):
            raise UsageError(f"{self} has no digest to refer to")
        return replace(self, tag=None, digest=wanted)

    def at(self, registry: str, repository: str | None = None) -> ImageReference:
        """The same tag and digest in another registry (and repository)."""
        return replace(self, registry=registry, repository=repository or self.repository)

    def __str__(self) -> str:
        text = f"{self.registry}/{self.repository}"
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


@dataclass(frozen=True)
class InternalImage:
    """One image an ImageStream keeps in the internal registry."""

    digest: str
    # Where it is, by digest, as the ImageStream names it (its own repository or another stream's).
    source: ImageReference
    # The status tags whose history holds it.
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class ImageStreamImages:
    """What ``internal_images`` found in one ImageStream."""

    namespace: str
    name: str
    images: tuple[InternalImage, ...] = ()
    # Every status tag with internal images: their digests, newest first (the tag's history).
    tag_history: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # References that look internal but cannot be copied (no digest, malformed).
    warnings: tuple[str, ...] = ()

    @property
    def repository(self) -> str:
        """The repository the images are kept under in the backup location's registry."""
        return backup_repository(self.namespace, self.name)

    @property
    def digests(self) -> tuple[str, ...]:
        return tuple(image.digest for image in self.images)


def backup_repository(namespace: str, name: str) -> str:
    """The repository of an ImageStream's images in the backup location's registry: ``<namespace>/<name>``."""
    for what, value in (("namespace", namespace), ("ImageStream name", name)):
        if not _K8S_NAME.match(value) or not _COMPONENT.match(value):
            raise UsageError(f"invalid {what} {value!r} for an image repository")
    return f"{namespace}/{name}"


def backup_reference(registry: str, namespace: str, name: str, digest: str) -> ImageReference:
    """Where an image of the ImageStream ``namespace/name`` is kept in the registry at ``registry``."""
    return ImageReference(registry, backup_repository(namespace, name)).by_digest(digest)


def _host_of(repository_url: object) -> str | None:
    if not isinstance(repository_url, str) or "/" not in repository_url:
        return None
    host = repository_url.strip().split("/", 1)[0].lower()
    return host or None


def internal_hosts(imagestream: Mapping[str, Any], extra: Iterable[str] = ()) -> frozenset[str]:
    """The internal registry's hosts: ``extra`` and those of the ImageStream's own repository URLs."""
    status = imagestream.get("status") or {}
    hosts = {host.strip().lower() for host in extra if host.strip()}
    for key in ("dockerImageRepository", "publicDockerImageRepository"):
        host = _host_of(status.get(key))
        if host:
            hosts.add(host)
    return frozenset(hosts)


def _identity(imagestream: Mapping[str, Any]) -> tuple[str, str]:
    metadata = imagestream.get("metadata") or {}
    namespace = str(metadata.get("namespace") or "")
    name = str(metadata.get("name") or "")
    if not namespace or not name:
        raise UsageError("an ImageStream needs metadata.namespace and metadata.name")
    return namespace, name


def _parse(text: object) -> ImageReference | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return ImageReference.parse(text)
    except UsageError:
        return None


def _spec_digest(tag: Mapping[str, Any], reference: ImageReference, current: Mapping[str, str]) -> str | None:
    """The digest a spec tag's internal DockerImage source stands for (None when it cannot be known)."""
    if reference.digest:
        return reference.digest
    return current.get(str(tag.get("name") or ""))


def internal_images(imagestream: Mapping[str, Any], hosts: Iterable[str] = ()) -> ImageStreamImages:
    """The images ``imagestream`` keeps in the internal registry, once each, by digest.

    ``hosts`` adds internal registry hosts to those the ImageStream names itself.
    """
    namespace, name = _identity(imagestream)
    internal = internal_hosts(imagestream, hosts)
    found: dict[str, InternalImage] = {}
    history: dict[str, tuple[str, ...]] = {}
    current: dict[str, str] = {}
    warnings: list[str] = []

    def add(digest: str, source: ImageReference, tag: str | None) -> None:
        known = found.get(digest)
        if known is None:
            found[digest] = InternalImage(digest, source.by_digest(digest), (tag,) if tag else ())
        elif tag and tag not in known.tags:
            found[digest] = replace(known, tags=(*known.tags, tag))

    for status_tag in (imagestream.get("status") or {}).get("tags") or ():
        tag = str(status_tag.get("tag") or "")
        digests: list[str] = []
        for position, item in enumerate(status_tag.get("items") or ()):
            text = item.get("dockerImageReference")
            reference = _parse(text)
            if reference is None or reference.registry not in internal:
                if reference is None and text:
                    warnings.append(f"tag {tag!r}: cannot parse the image reference {text!r}")
                continue
            digest = str(item.get("image") or reference.digest or "")
            if not is_digest(digest):
                warnings.append(f"tag {tag!r}: the internal image {text} has no digest; it is not copied")
                continue
            add(digest, reference, tag)
            digests.append(digest)
            if position == 0:
                current[tag] = digest
        if digests:
            history[tag] = tuple(dict.fromkeys(digests))

    for spec_tag in (imagestream.get("spec") or {}).get("tags") or ():
        source = spec_tag.get("from") or {}
        if source.get("kind") != "DockerImage":
            continue
        reference = _parse(source.get("name"))
        if reference is None or reference.registry not in internal:
            continue
        spec_digest = _spec_digest(spec_tag, reference, current)
        if spec_digest is None:
            warnings.append(
                f"spec tag {spec_tag.get('name')!r} refers to the internal image {reference} by tag only "
                "and no status tag says which image that is; it is not copied"
            )
            continue
        add(spec_digest, reference, None)

    return ImageStreamImages(
        namespace=namespace,
        name=name,
        images=tuple(found.values()),
        tag_history=history,
        warnings=tuple(warnings),
    )


def rewrite_for_restore(
    imagestream: Mapping[str, Any],
    *,
    target_registry: str,
    target_namespace: str | None = None,
    public_registry: str | None = None,
    hosts: Iterable[str] = (),
    namespace_mapping: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The ImageStream as it is restored: in ``target_namespace`` (default: its own), every internal
    reference by digest to ``<target_registry>/<target_namespace>/<name>@<digest>``.

    ``public_registry`` is the target registry's route host (``publicDockerImageRepository``; removed
    when None, since the source cluster's route means nothing there); ``hosts`` adds internal hosts
    of the source cluster; ``namespace_mapping`` moves ``ImageStreamTag``/``ImageStreamImage``
    sources of other namespaces too (the ImageStream's own namespace always follows it).
    """
    namespace, name = _identity(imagestream)
    target = target_namespace or namespace
    internal = internal_hosts(imagestream, hosts)
    mapping = {**(namespace_mapping or {}), namespace: target}
    restored_repository = ImageReference(target_registry.lower(), backup_repository(target, name))
    result: dict[str, Any] = copy.deepcopy(dict(imagestream))
    result.setdefault("metadata", {})["namespace"] = target

    status = result.get("status")
    current: dict[str, str] = {}
    if isinstance(status, dict):
        status["dockerImageRepository"] = str(restored_repository)
        if public_registry:
            status["publicDockerImageRepository"] = f"{public_registry.lower()}/{target}/{name}"
        else:
            status.pop("publicDockerImageRepository", None)
        for status_tag in status.get("tags") or ():
            for position, item in enumerate(status_tag.get("items") or ()):
                reference = _parse(item.get("dockerImageReference"))
                if reference is None or reference.registry not in internal:
                    continue
                digest = str(item.get("image") or reference.digest or "")
                if not is_digest(digest):
                    continue
                item["dockerImageReference"] = str(restored_repository.by_digest(digest))
                if position == 0:
                    current[str(status_tag.get("tag") or "")] = digest

    spec = result.get("spec")
    if isinstance(spec, dict):
        for spec_tag in spec.get("tags") or ():
            source = spec_tag.get("from")
            if not isinstance(source, dict):
                continue
            kind = source.get("kind")
            if kind == "DockerImage":
                reference = _parse(source.get("name"))
                if reference is None or reference.registry not in internal:
                    continue
                pinned = _spec_digest(spec_tag, reference, current)
                if pinned is not None:
                    source["name"] = str(restored_repository.by_digest(pinned))
            elif kind in ("ImageStreamTag", "ImageStreamImage"):
                source_namespace = source.get("namespace")
                if source_namespace and source_namespace in mapping:
                    source["namespace"] = mapping[source_namespace]
    return result
