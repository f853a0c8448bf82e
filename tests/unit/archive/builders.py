"""Builders for archive tests: Kubernetes objects and hand-made tarballs."""

from __future__ import annotations

import gzip
import io
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from strongroom.archive import BackupWriter

MTIME = 1_700_000_000


def k8s_object(
    api_version: str, kind: str, name: str, namespace: str | None = None, **fields: Any
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if namespace is not None:
        metadata["namespace"] = namespace
    return {"apiVersion": api_version, "kind": kind, "metadata": metadata, **fields}


def pod(name: str, namespace: str) -> dict[str, Any]:
    return k8s_object("v1", "Pod", name, namespace, spec={"containers": [{"name": "app", "image": "nginx"}]})


def deployment(name: str, namespace: str) -> dict[str, Any]:
    return k8s_object("apps/v1", "Deployment", name, namespace, spec={"replicas": 2})


def persistent_volume(name: str) -> dict[str, Any]:
    return k8s_object("v1", "PersistentVolume", name, spec={"capacity": {"storage": "1Gi"}})


def write_backup(items: Iterable[tuple[dict[str, Any], str, str, str, bool]]) -> bytes:
    """Write (object, group, version, resource, preferred) tuples with BackupWriter."""
    buffer = io.BytesIO()
    with BackupWriter(buffer, mtime=MTIME) as writer:
        for obj, group, version, resource, preferred in items:
            writer.add(obj, group=group, version=version, resource=resource, preferred=preferred)
    return buffer.getvalue()


@dataclass(frozen=True)
class Entry:
    """One member of a hand-made tarball."""

    name: str
    data: bytes = b""
    type: bytes = tarfile.REGTYPE
    linkname: str = ""
    mode: int = 0o755


def file(name: str, data: bytes | str) -> Entry:
    return Entry(name, data.encode() if isinstance(data, str) else data)


def tar_bytes(entries: Iterable[Entry], *, fmt: int = tarfile.USTAR_FORMAT) -> bytes:
    """An uncompressed tar written by Python's tarfile (an independent writer)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=fmt) as tar:
        for entry in entries:
            info = tarfile.TarInfo(entry.name)
            info.type = entry.type
            info.mode = entry.mode
            info.mtime = MTIME
            info.linkname = entry.linkname
            info.size = len(entry.data) if entry.type == tarfile.REGTYPE else 0
            tar.addfile(info, io.BytesIO(entry.data) if entry.type == tarfile.REGTYPE else None)
    return buffer.getvalue()


def tar_gz(entries: Iterable[Entry], *, fmt: int = tarfile.USTAR_FORMAT) -> bytes:
    return gzip.compress(tar_bytes(entries, fmt=fmt), mtime=0)


def velero_tarball(files: Iterable[tuple[str, bytes | str]], version: str = "1.1.0\n") -> bytes:
    """A tarball shaped the way Velero's Go code writes one.

    metadata/version first, then regular files only (no directory entries),
    mode 0755, ustar headers, gzip without name or time.
    """
    return tar_gz([file("metadata/version", version), *(file(name, data) for name, data in files)])
