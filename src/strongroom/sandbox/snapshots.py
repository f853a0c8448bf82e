"""CSI volume snapshots in the sandbox: the snapshot CRDs, the snapshot controller and the driver's side.

A real cluster splits this work between external-snapshotter's CRDs, its
snapshot-controller (binds VolumeSnapshots to VolumeSnapshotContents, picks
default classes, keeps finalizers), the csi-snapshotter sidecar (asks the CSI
driver to create, list and delete snapshots) and the CSI driver itself. The
sandbox has one CSI driver, its hostpath driver, whose volumes and snapshots
are directories under the sandbox directory, so one controller here plays all
three parts. Backups that take CSI snapshots (Velero's CSI plugin) and restores
that provision claims from them therefore run against the same objects,
finalizers, status fields and events as on a real cluster.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import hashlib
import json
import logging
import os
import re
import shutil
import stat
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from strongroom.sandbox import apierrors
from strongroom.sandbox.engine import DeleteOptions, Engine, ListOptions, Target, WriteOptions, now_rfc3339
from strongroom.sandbox.resources import ResourceType
from strongroom.sandbox.runtime import HOSTPATH_DRIVER, snapshot_dir, volume_dir

log = logging.getLogger(__name__)

JsonObject = dict[str, Any]

GROUP = "snapshot.storage.k8s.io"
VERSION = "v1"
SNAPSHOTS = "volumesnapshots"
CONTENTS = "volumesnapshotcontents"
CLASSES = "volumesnapshotclasses"

FINALIZER_AS_SOURCE = "snapshot.storage.kubernetes.io/volumesnapshot-as-source-protection"
FINALIZER_BOUND = "snapshot.storage.kubernetes.io/volumesnapshot-bound-protection"
FINALIZER_CONTENT = "snapshot.storage.kubernetes.io/volumesnapshotcontent-bound-protection"
FINALIZER_PVC_SOURCE = "snapshot.storage.kubernetes.io/pvc-as-source-protection"
ANNOTATION_DEFAULT_CLASS = "snapshot.storage.kubernetes.io/is-default-class"
ANNOTATION_BEING_DELETED = "snapshot.storage.kubernetes.io/volumesnapshot-being-deleted"

_RETRY_SECONDS = 1.0
_HANDLE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,252}")


# ------------------------------------------------------------------ the CRDs


def _string(description: str) -> JsonObject:
    return {"type": "string", "description": description}


def _error_schema() -> JsonObject:
    return {
        "type": "object",
        "description": "The last error seen while creating the snapshot; cleared on success.",
        "properties": {
            "message": _string("What went wrong; never holds secrets."),
            "time": {"type": "string", "format": "date-time", "description": "When the error was seen."},
        },
    }


def _column(name: str, path: str, kind: str, description: str = "") -> JsonObject:
    column: JsonObject = {"name": name, "type": kind, "jsonPath": path}
    if description:
        column["description"] = description
    return column


def _crd(
    plural: str,
    kind: str,
    scope: str,
    short_names: list[str],
    schema: JsonObject,
    columns: list[JsonObject],
    *,
    status: bool,
) -> JsonObject:
    version: JsonObject = {
        "name": VERSION,
        "served": True,
        "storage": True,
        "schema": {"openAPIV3Schema": schema},
        "additionalPrinterColumns": columns,
    }
    if status:
        version["subresources"] = {"status": {}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.{GROUP}",
            # Groups under k8s.io need an approved API review; these are the community's CRDs.
            "annotations": {
                "api-approved.kubernetes.io": "https://github.com/kubernetes-csi/external-snapshotter/pull/955"
            },
        },
        "spec": {
            "group": GROUP,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": short_names,
            },
            "scope": scope,
            "versions": [version],
        },
    }


def _class_crd() -> JsonObject:
    schema = {
        "type": "object",
        "description": "How snapshots of one CSI driver's volumes are taken, like a StorageClass for volumes.",
        "required": ["deletionPolicy", "driver"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "driver": _string("The CSI driver that takes the snapshots."),
            "deletionPolicy": {
                "type": "string",
                "enum": ["Delete", "Retain"],
                "description": "Whether a snapshot's content and data go when its VolumeSnapshot is deleted.",
            },
            "parameters": {
                "type": "object",
                "additionalProperties": {"type": "string"},
                "description": "Driver-specific settings.",
            },
        },
    }
    columns = [
        _column("Driver", ".driver", "string"),
        _column(
            "DeletionPolicy",
            ".deletionPolicy",
            "string",
            "Whether contents made through this class are deleted with their VolumeSnapshot.",
        ),
        _column("Age", ".metadata.creationTimestamp", "date"),
    ]
    return _crd(
        CLASSES, "VolumeSnapshotClass", "Cluster", ["vsclass", "vsclasses"], schema, columns, status=False
    )


def _snapshot_crd() -> JsonObject:
    schema = {
        "type": "object",
        "description": "A request for a point-in-time snapshot of a claim, or for a pre-existing snapshot.",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": {
                "type": "object",
                "required": ["source"],
                "properties": {
                    "source": {
                        "type": "object",
                        "description": "Exactly one of the two: a claim to snapshot, or an existing content.",
                        "properties": {
                            "persistentVolumeClaimName": _string("The claim (same namespace) to snapshot."),
                            "volumeSnapshotContentName": _string("A pre-provisioned VolumeSnapshotContent."),
                        },
                        "oneOf": [
                            {"required": ["persistentVolumeClaimName"]},
                            {"required": ["volumeSnapshotContentName"]},
                        ],
                    },
                    "volumeSnapshotClassName": _string("The class; empty means the driver's default class."),
                },
            },
            "status": {
                "type": "object",
                "properties": {
                    "boundVolumeSnapshotContentName": _string("The content this snapshot is bound to."),
                    "creationTime": {
                        "type": "string",
                        "format": "date-time",
                        "description": "When the storage took the snapshot.",
                    },
                    "readyToUse": {
                        "type": "boolean",
                        "description": "Whether a volume can be restored from it.",
                    },
                    "restoreSize": {
                        "x-kubernetes-int-or-string": True,
                        "pattern": r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$",
                        "description": "The smallest volume that can hold a restore of it.",
                    },
                    "error": _error_schema(),
                    "volumeGroupSnapshotName": _string("The group snapshot this snapshot belongs to."),
                },
            },
        },
    }
    columns = [
        _column("ReadyToUse", ".status.readyToUse", "boolean", "Whether a volume can be restored from it."),
        _column("SourcePVC", ".spec.source.persistentVolumeClaimName", "string", "The claim snapshotted."),
        _column(
            "SourceSnapshotContent",
            ".spec.source.volumeSnapshotContentName",
            "string",
            "The pre-provisioned content it represents.",
        ),
        _column("RestoreSize", ".status.restoreSize", "string", "The smallest volume a restore needs."),
        _column("SnapshotClass", ".spec.volumeSnapshotClassName", "string", "The class requested."),
        _column("SnapshotContent", ".status.boundVolumeSnapshotContentName", "string", "The bound content."),
        _column("CreationTime", ".status.creationTime", "date", "When the storage took the snapshot."),
        _column("Age", ".metadata.creationTimestamp", "date"),
    ]
    return _crd(SNAPSHOTS, "VolumeSnapshot", "Namespaced", ["vs"], schema, columns, status=True)


def _content_crd() -> JsonObject:
    reference = {
        "type": "object",
        "description": "The VolumeSnapshot this content is bound to.",
        "x-kubernetes-map-type": "atomic",
        "properties": {
            name: {"type": "string"}
            for name in ("apiVersion", "fieldPath", "kind", "name", "namespace", "resourceVersion", "uid")
        },
    }
    schema = {
        "type": "object",
        "description": "A snapshot on the storage system, as the cluster sees it.",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": {
                "type": "object",
                "required": ["deletionPolicy", "driver", "source", "volumeSnapshotRef"],
                "properties": {
                    "deletionPolicy": {
                        "type": "string",
                        "enum": ["Delete", "Retain"],
                        "description": "Whether the snapshot's data goes when its VolumeSnapshot is deleted.",
                    },
                    "driver": _string("The CSI driver that holds the snapshot."),
                    "source": {
                        "type": "object",
                        "description": "Exactly one of the two: a volume to snapshot, or an existing snapshot.",
                        "properties": {
                            "snapshotHandle": _string("The driver's id of an existing snapshot."),
                            "volumeHandle": _string("The driver's id of the volume to snapshot."),
                        },
                    },
                    "sourceVolumeMode": _string("Filesystem or Block: the mode of the volume snapshotted."),
                    "volumeSnapshotClassName": _string("The class the snapshot was taken with."),
                    "volumeSnapshotRef": reference,
                },
            },
            "status": {
                "type": "object",
                "properties": {
                    "creationTime": {
                        "type": "integer",
                        "format": "int64",
                        "description": "When the snapshot was taken, in Unix nanoseconds.",
                    },
                    "error": _error_schema(),
                    "readyToUse": {
                        "type": "boolean",
                        "description": "Whether a volume can be restored from it.",
                    },
                    "restoreSize": {
                        "type": "integer",
                        "format": "int64",
                        "minimum": 0,
                        "description": "The size of the snapshot in bytes.",
                    },
                    "snapshotHandle": _string("The driver's id of the snapshot."),
                    "volumeGroupSnapshotHandle": _string("The driver's id of the group snapshot."),
                },
            },
        },
    }
    columns = [
        _column("ReadyToUse", ".status.readyToUse", "boolean", "Whether a volume can be restored from it."),
        _column("RestoreSize", ".status.restoreSize", "integer", "The size of the snapshot in bytes."),
        _column(
            "DeletionPolicy", ".spec.deletionPolicy", "string", "Whether the data goes with its snapshot."
        ),
        _column("Driver", ".spec.driver", "string", "The CSI driver that holds the snapshot."),
        _column("VolumeSnapshotClass", ".spec.volumeSnapshotClassName", "string", "The class used."),
        _column("VolumeSnapshot", ".spec.volumeSnapshotRef.name", "string", "The bound VolumeSnapshot."),
        _column(
            "VolumeSnapshotNamespace",
            ".spec.volumeSnapshotRef.namespace",
            "string",
            "The namespace of the bound VolumeSnapshot.",
        ),
        _column("Age", ".metadata.creationTimestamp", "date"),
    ]
    return _crd(CONTENTS, "VolumeSnapshotContent", "Cluster", ["vsc", "vscs"], schema, columns, status=True)


def snapshot_crds() -> list[JsonObject]:
    """The three snapshot.storage.k8s.io/v1 CRDs a cluster with CSI snapshots has installed."""
    return [_class_crd(), _snapshot_crd(), _content_crd()]


# ------------------------------------------------------------ the CSI driver


class DriverError(Exception):
    """The hostpath driver could not do what was asked (the message goes into status and events)."""


@dataclass(frozen=True)
class SnapshotInfo:
    """What CSI's CreateSnapshot and ListSnapshots answer about one snapshot."""

    handle: str
    source_volume: str
    size_bytes: int
    creation_ns: int


def valid_handle(handle: str) -> bool:
    """A handle is one path segment: anything else could name a directory outside the driver's."""
    return bool(_HANDLE.fullmatch(handle)) and handle not in (".", "..")


class HostpathDriver:
    """The sandbox's CSI driver: volumes and snapshots are directory trees under the sandbox directory.

    A snapshot is a full copy of the volume's tree (modes, times and symlinks
    kept), so later writes to the volume never reach it. Its size, as the real
    hostpath driver reports it, is the source volume's capacity; it is kept in
    a small metadata file beside the copy (``snapshots/.<handle>.json``).
    """

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir

    def volume_path(self, handle: str) -> Path:
        if not valid_handle(handle):
            raise DriverError(f"invalid volume handle {handle!r}")
        return volume_dir(self.state_dir, handle)

    def snapshot_path(self, handle: str) -> Path:
        if not valid_handle(handle):
            raise DriverError(f"invalid snapshot handle {handle!r}")
        return snapshot_dir(self.state_dir, handle)

    def _metadata_path(self, handle: str) -> Path:
        path = self.snapshot_path(handle)
        return path.parent / f".{handle}.json"

    def create_volume(self, handle: str) -> Path:
        path = self.volume_path(handle)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def create_volume_from(self, handle: str, source: Path) -> Path:
        """A new volume holding a copy of `source` (a snapshot or another volume)."""
        path = self.volume_path(handle)
        if path.exists():
            return path
        if not source.is_dir():
            raise DriverError(f"the source data {source.name} does not exist")
        _copy_tree(source, path)
        return path

    def delete_volume(self, handle: str) -> None:
        shutil.rmtree(self.volume_path(handle), ignore_errors=True)

    def create_snapshot(self, handle: str, volume_handle: str, size_bytes: int) -> SnapshotInfo:
        """Copy the volume's tree now; idempotent, as CSI requires of CreateSnapshot."""
        existing = self.list_snapshot(handle)
        if existing is not None:
            return existing
        source = self.volume_path(volume_handle)
        if not source.is_dir():
            raise DriverError(f"volume {volume_handle} has no data directory")
        info = SnapshotInfo(handle, volume_handle, size_bytes, time.time_ns())
        _copy_tree(source, self.snapshot_path(handle))
        metadata = {
            "sourceVolume": info.source_volume,
            "sizeBytes": info.size_bytes,
            "creationTime": info.creation_ns,
        }
        self._metadata_path(handle).write_text(json.dumps(metadata))
        return info

    def list_snapshot(self, handle: str) -> SnapshotInfo | None:
        """The snapshot with this handle, or None when the driver has no such snapshot."""
        path = self.snapshot_path(handle)
        if not path.is_dir():
            return None
        try:
            metadata = json.loads(self._metadata_path(handle).read_text())
        except (OSError, ValueError):
            # Data without our metadata (copied in by hand): its size is what it holds.
            metadata = {"sizeBytes": _tree_bytes(path), "creationTime": path.stat().st_mtime_ns}
        return SnapshotInfo(
            handle,
            str(metadata.get("sourceVolume", "")),
            int(metadata.get("sizeBytes", 0)),
            int(metadata.get("creationTime", 0)),
        )

    def delete_snapshot(self, handle: str) -> None:
        shutil.rmtree(self.snapshot_path(handle), ignore_errors=True)
        self._metadata_path(handle).unlink(missing_ok=True)


def _copy_tree(source: Path, target: Path) -> None:
    """Copy a directory tree through a temporary name, so a half-made copy is never seen."""
    partial = target.with_name(f".{target.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, partial, symlinks=True, copy_function=_copy_entry)
    os.replace(partial, target)


def _copy_entry(source: str, target: str) -> None:
    """copy2 for regular files; FIFOs are recreated (reading one would block), sockets and devices skipped."""
    mode = os.lstat(source).st_mode
    if stat.S_ISREG(mode):
        shutil.copy2(source, target)
    elif stat.S_ISFIFO(mode):
        os.mkfifo(target, stat.S_IMODE(mode))
        shutil.copystat(source, target)


def _tree_bytes(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            entry = Path(root) / name
            if entry.is_file() and not entry.is_symlink():
                total += entry.stat().st_size
    return total


# ------------------------------------------------------------------- helpers


def format_bytes(size: int) -> str:
    """Bytes as kube's canonical binary quantity: 1073741824 -> "1Gi", 1500 -> "1500"."""
    for suffix, factor in (
        ("Ei", 2**60),
        ("Pi", 2**50),
        ("Ti", 2**40),
        ("Gi", 2**30),
        ("Mi", 2**20),
        ("Ki", 2**10),
    ):
        if size and size % factor == 0:
            return f"{size // factor}{suffix}"
    return str(size)


def _rfc3339_from_ns(nanoseconds: int) -> str:
    moment = dt.datetime.fromtimestamp(nanoseconds // 1_000_000_000, dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _quoted(text: str) -> str:
    """Go's %q, which upstream's messages use to quote a nested error."""
    return json.dumps(text)


def data_source(claim: JsonObject) -> JsonObject | None:
    """The claim's data source: dataSourceRef when set, else dataSource (kube keeps them in step)."""
    spec = claim.get("spec") or {}
    source = spec.get("dataSourceRef") or spec.get("dataSource")
    return source if isinstance(source, dict) and source.get("name") else None


def _is_snapshot_source(source: JsonObject | None, name: str | None = None) -> bool:
    return bool(
        source
        and source.get("apiGroup") == GROUP
        and source.get("kind") == "VolumeSnapshot"
        and (name is None or source.get("name") == name)
    )


class EventRecorder:
    """Writes core/v1 Events as client-go's recorder does, folding repeats into one with a count."""

    def __init__(self, engine: Engine, component: str) -> None:
        self.engine = engine
        self.component = component

    async def event(self, obj: JsonObject, kind: str, reason: str, message: str) -> None:
        """Record an event about `obj`; failures are logged, never raised (events are best effort)."""
        event_type = self.engine.registry.lookup("", "v1", "events")
        if event_type is None:
            return
        meta = obj.get("metadata") or {}
        namespace = meta.get("namespace") or "default"
        digest = hashlib.sha256(
            "\0".join((meta.get("uid", ""), kind, reason, message, self.component)).encode()
        ).hexdigest()[:16]
        name = f"{meta.get('name', '')}.{digest}"
        now = now_rfc3339(self.engine.clock)
        try:
            try:
                current = await self.engine.get(Target(event_type, namespace, name))
            except apierrors.ApiError as exc:
                if exc.code != 404:
                    raise
                await self.engine.create(
                    Target(event_type, namespace),
                    self._body(obj, name, namespace, kind, reason, message, now),
                    WriteOptions(),
                )
                return
            current = copy.deepcopy(current)
            current["count"] = int(current.get("count") or 1) + 1
            current["lastTimestamp"] = now
            await self.engine.update(Target(event_type, namespace, name), current, WriteOptions())
        except apierrors.ApiError as exc:
            log.debug("event %s on %s not recorded: %s", reason, meta.get("name"), exc.message)

    def _body(
        self, obj: JsonObject, name: str, namespace: str, kind: str, reason: str, message: str, now: str
    ) -> JsonObject:
        meta = obj.get("metadata") or {}
        involved = {
            "kind": obj.get("kind", ""),
            "apiVersion": obj.get("apiVersion", ""),
            "name": meta.get("name", ""),
            "uid": meta.get("uid", ""),
            "resourceVersion": meta.get("resourceVersion", ""),
        }
        if meta.get("namespace"):
            involved["namespace"] = meta["namespace"]
        return {
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": involved,
            "reason": reason,
            "message": message,
            "type": kind,
            "source": {"component": self.component},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "reportingComponent": self.component,
            "reportingInstance": "",
        }


class ProvisioningError(Exception):
    """Why a claim's volume cannot be provisioned yet; the provisioner reports it and retries."""


@dataclass(frozen=True)
class VolumeSource:
    """Where a new volume's data comes from: a snapshot's or another volume's directory."""

    path: Path
    description: str


# ------------------------------------------------------------- the controller


class SnapshotController:
    """external-snapshotter's controller and sidecar for the hostpath driver, on the sandbox's queues.

    `enqueue(queue, key)` and `later(queue, key, delay)` are the controller
    manager's: work is keyed by etcd key, as every other loop in the sandbox.
    """

    def __init__(
        self,
        engine: Engine,
        driver: HostpathDriver,
        *,
        enqueue: Callable[[str, str], None],
        later: Callable[[str, str, float], Awaitable[None]],
    ) -> None:
        self.engine = engine
        self.driver = driver
        self._enqueue = enqueue
        self._later = later
        self.events = EventRecorder(engine, "snapshot-controller")
        self._sidecar_events = EventRecorder(engine, f"csi-snapshotter {HOSTPATH_DRIVER}")

    # ------------------------------------------------------------ plumbing

    def _type(self, resource: str) -> ResourceType | None:
        return self.engine.registry.lookup(GROUP, VERSION, resource)

    def _core(self, resource: str) -> ResourceType:
        rt = self.engine.registry.lookup("", "v1", resource)
        assert rt is not None, resource
        return rt

    async def _get(self, rt: ResourceType, namespace: str | None, name: str) -> JsonObject | None:
        try:
            return copy.deepcopy(await self.engine.get(Target(rt, namespace, name)))
        except apierrors.ApiError as exc:
            if exc.code != 404:
                raise
            return None

    async def _modify(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        change: Callable[[JsonObject], bool],
        subresource: str | None = None,
    ) -> JsonObject | None:
        """Read, change and write back, again on a conflict; None when the object is gone."""
        for attempt in range(5):
            current = await self._get(rt, namespace, name)
            if current is None:
                return None
            if not change(current):
                return current
            try:
                return await self.engine.update(
                    Target(rt, namespace, name, subresource), current, WriteOptions()
                )
            except apierrors.ApiError as exc:
                if exc.code != 409 or attempt == 4:
                    raise
        return None

    async def _retry(self, key: str) -> None:
        await self._later("snapshot", key, _RETRY_SECONDS)

    def is_snapshot_key(self, rt: ResourceType) -> bool:
        return rt.group == GROUP and rt.kind in ("VolumeSnapshot", "VolumeSnapshotContent")

    async def resync_keys(self) -> list[str]:
        """Objects that still need work: not ready, failed, or being deleted."""
        keys: list[str] = []
        for resource in (SNAPSHOTS, CONTENTS):
            rt = self._type(resource)
            if rt is None:
                continue
            page = await self.engine.store.list(self.engine.registry.storage_type(rt).key_prefix(None))
            for stored in page.items:
                meta = stored.obj.get("metadata") or {}
                status = stored.obj.get("status") or {}
                if meta.get("deletionTimestamp") or not status.get("readyToUse") or status.get("error"):
                    keys.append(stored.key)
        return keys

    async def sync(self, rt: ResourceType, namespace: str | None, name: str, key: str) -> None:
        """Bring one VolumeSnapshot or VolumeSnapshotContent a step closer to its wanted state."""
        obj = await self._get(rt, namespace, name)
        if obj is None:
            return
        if rt.kind == "VolumeSnapshot":
            await self._sync_snapshot(rt, obj, key)
        else:
            await self._sync_content(rt, obj, key)

    # ------------------------------------------------------ VolumeSnapshot

    async def _sync_snapshot(self, rt: ResourceType, snapshot: JsonObject, key: str) -> None:
        meta = snapshot["metadata"]
        if meta.get("deletionTimestamp"):
            await self._delete_snapshot(rt, snapshot, key)
            return
        source = (snapshot.get("spec") or {}).get("source") or {}
        claim_name = source.get("persistentVolumeClaimName")
        content_name = source.get("volumeSnapshotContentName")
        if bool(claim_name) == bool(content_name):
            await self._snapshot_error(
                rt,
                snapshot,
                "SnapshotValidationError",
                "Exactly one of PersistentVolumeClaimName and VolumeSnapshotContentName should be specified",
            )
            return
        snapshot = await self._ensure_snapshot_finalizers(rt, snapshot) or snapshot
        if content_name:
            await self._sync_preprovisioned(rt, snapshot, str(content_name), key)
        else:
            await self._sync_dynamic(rt, snapshot, str(claim_name), key)

    async def _ensure_snapshot_finalizers(self, rt: ResourceType, snapshot: JsonObject) -> JsonObject | None:
        meta = snapshot["metadata"]
        wanted = [FINALIZER_AS_SOURCE]
        if (snapshot.get("status") or {}).get("boundVolumeSnapshotContentName"):
            wanted.append(FINALIZER_BOUND)
        missing = [f for f in wanted if f not in (meta.get("finalizers") or [])]
        if not missing:
            return None

        def add(current: JsonObject) -> bool:
            finalizers = current["metadata"].get("finalizers") or []
            current["metadata"]["finalizers"] = [*finalizers, *[f for f in missing if f not in finalizers]]
            return True

        return await self._modify(rt, meta["namespace"], meta["name"], add)

    async def _snapshot_error(
        self, rt: ResourceType, snapshot: JsonObject, reason: str, message: str, *, ready_false: bool = True
    ) -> None:
        """Set status.error (when it changed) and emit a Warning event, as upstream's controller does."""
        meta = snapshot["metadata"]
        if ((snapshot.get("status") or {}).get("error") or {}).get("message") == message:
            return
        now = now_rfc3339(self.engine.clock)

        def change(current: JsonObject) -> bool:
            status = dict(current.get("status") or {})
            current["status"] = status
            status["error"] = {"message": message, "time": now}
            if ready_false:
                status["readyToUse"] = False
            return True

        await self._modify(rt, meta["namespace"], meta["name"], change, "status")
        await self.events.event(snapshot, "Warning", reason, message)

    async def _sync_dynamic(self, rt: ResourceType, snapshot: JsonObject, claim_name: str, key: str) -> None:
        meta = snapshot["metadata"]
        contents = self._type(CONTENTS)
        if contents is None:
            await self._retry(key)
            return
        content_name = f"snapcontent-{meta['uid']}"
        content = await self._get(contents, None, content_name)
        if content is None:
            if (snapshot.get("status") or {}).get("readyToUse"):
                await self._snapshot_error(
                    rt, snapshot, "SnapshotContentMissing", "VolumeSnapshotContent is missing"
                )
                return
            content = await self._create_content(rt, snapshot, claim_name, content_name, key)
            if content is None:
                return
        ref = (content.get("spec") or {}).get("volumeSnapshotRef") or {}
        if ref.get("uid") != meta["uid"] or ref.get("name") != meta["name"]:
            await self._snapshot_error(
                rt,
                snapshot,
                "SnapshotContentMisbound",
                f"VolumeSnapshotContent [{content_name}] is bound to a different snapshot",
            )
            return
        content = await self._run_sidecar(contents, content, claim=(meta["namespace"], claim_name)) or content
        await self._mirror_status(rt, snapshot, content)

    async def _create_content(
        self, rt: ResourceType, snapshot: JsonObject, claim_name: str, content_name: str, key: str
    ) -> JsonObject | None:
        """The content for a dynamic snapshot, or None after reporting why it cannot be made yet.

        Upstream would create a content for a class of another driver and leave it
        for that driver's sidecar, forever not ready when there is none; the sandbox
        has a single driver, so it says so in status.error instead of waiting silently.
        """
        meta = snapshot["metadata"]
        spec = snapshot.get("spec") or {}
        class_name = spec.get("volumeSnapshotClassName")
        try:
            volume = await self._source_volume(
                meta["namespace"], claim_name, f"{meta['namespace']}/{meta['name']}"
            )
        except DriverError as exc:
            if class_name:
                reason = "SnapshotContentCreationFailed"
                message = (
                    "Failed to create snapshot content with error failed to get input parameters "
                    f"to create snapshot {meta['name']}: {_quoted(str(exc))}"
                )
            else:
                reason, message = (
                    "SetDefaultSnapshotClassFailed",
                    f"Failed to set default snapshot class with error {exc}",
                )
            await self._snapshot_error(rt, snapshot, reason, message, ready_false=bool(class_name))
            await self._retry(key)
            return None
        csi = (volume.get("spec") or {}).get("csi") or {}
        snapshot_class = await self._snapshot_class(rt, snapshot, class_name, str(csi.get("driver", "")), key)
        if snapshot_class is None:
            return None
        if snapshot_class.get("driver") != csi.get("driver"):
            await self._snapshot_error(
                rt,
                snapshot,
                "SnapshotContentCreationFailed",
                "Failed to create snapshot content with error the VolumeSnapshotClass "
                f'"{snapshot_class["metadata"]["name"]}" is for driver "{snapshot_class.get("driver")}", '
                f'but the volume of claim "{claim_name}" belongs to driver "{csi.get("driver")}"',
            )
            await self._retry(key)
            return None
        contents = self._type(CONTENTS)
        assert contents is not None
        body: JsonObject = {
            "metadata": {"name": content_name, "finalizers": [FINALIZER_CONTENT]},
            "spec": {
                "volumeSnapshotRef": {
                    "kind": "VolumeSnapshot",
                    "apiVersion": f"{GROUP}/{VERSION}",
                    "namespace": meta["namespace"],
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "resourceVersion": meta.get("resourceVersion", ""),
                },
                "source": {"volumeHandle": csi["volumeHandle"]},
                "volumeSnapshotClassName": snapshot_class["metadata"]["name"],
                "deletionPolicy": snapshot_class.get("deletionPolicy", "Delete"),
                "driver": snapshot_class["driver"],
                "sourceVolumeMode": (volume.get("spec") or {}).get("volumeMode", "Filesystem"),
            },
        }
        try:
            content = await self.engine.create(Target(contents), body, WriteOptions())
        except apierrors.ApiError as exc:
            if exc.code != 409:
                await self.events.event(
                    snapshot,
                    "Warning",
                    "CreateSnapshotContentFailed",
                    f"Error creating volume snapshot content object for snapshot {meta['namespace']}/{meta['name']}: "
                    f"{exc.message}.",
                )
                raise
            existing = await self._get(contents, None, content_name)
            if existing is None:
                return None
            content = existing
        await self.events.event(
            snapshot,
            "Normal",
            "CreatingSnapshot",
            f"Waiting for a snapshot {meta['namespace']}/{meta['name']} to be created by the CSI driver.",
        )

        def bind(current: JsonObject) -> bool:
            status = current.get("status") or {}
            if status.get("boundVolumeSnapshotContentName") == content_name:
                return False
            current["status"] = {
                **status,
                "boundVolumeSnapshotContentName": content_name,
                "readyToUse": False,
            }
            return True

        await self._modify(rt, meta["namespace"], meta["name"], bind, "status")
        return content

    async def _source_volume(self, namespace: str, claim_name: str, snapshot_key: str) -> JsonObject:
        """The CSI volume bound to the claim to snapshot; DriverError says why there is none."""
        claim = await self._get(self._core("persistentvolumeclaims"), namespace, claim_name)
        if claim is None:
            raise DriverError(
                f"failed to retrieve PVC {claim_name} from the lister: "
                + _quoted(f'persistentvolumeclaim "{claim_name}" not found')
            )
        volume_name = (claim.get("spec") or {}).get("volumeName")
        if (claim.get("status") or {}).get("phase") != "Bound" or not volume_name:
            raise DriverError(
                f"the PVC {claim_name} is not yet bound to a PV, will not attempt to take a snapshot"
            )
        volume = await self._get(self._core("persistentvolumes"), None, str(volume_name))
        if volume is None:
            raise DriverError(
                f"failed to retrieve PV {volume_name} from the API server: "
                + _quoted(f'persistentvolumes "{volume_name}" not found')
            )
        ref = (volume.get("spec") or {}).get("claimRef") or {}
        if (
            ref.get("name") != claim_name
            or ref.get("namespace") != namespace
            or (ref.get("uid") and ref.get("uid") != claim["metadata"]["uid"])
        ):
            raise DriverError("claim in dataSource not bound or invalid")
        if not (volume.get("spec") or {}).get("csi"):
            raise DriverError(f"snapshotting non-CSI volumes is not supported, snapshot:{snapshot_key}")
        return volume

    async def _snapshot_class(
        self, rt: ResourceType, snapshot: JsonObject, class_name: str | None, driver: str, key: str
    ) -> JsonObject | None:
        """The class named by the snapshot, or the driver's default class (written into the snapshot)."""
        classes = self._type(CLASSES)
        meta = snapshot["metadata"]
        if classes is None:
            await self._retry(key)
            return None
        if class_name:
            found = await self._get(classes, None, class_name)
            if found is None:
                await self._snapshot_error(
                    rt,
                    snapshot,
                    "GetSnapshotClassFailed",
                    "Failed to get snapshot class with error "
                    f'volumesnapshotclass.snapshot.storage.k8s.io "{class_name}" not found',
                    ready_false=False,
                )
                await self._retry(key)
            return found
        items = (await self.engine.list(Target(classes), ListOptions()))["items"]
        defaults = [
            c
            for c in items
            if (c["metadata"].get("annotations") or {}).get(ANNOTATION_DEFAULT_CLASS) == "true"
            and c.get("driver") == driver
        ]
        if len(defaults) != 1:
            problem = (
                "cannot find default snapshot class"
                if not defaults
                else f"{len(defaults)} default snapshot classes were found"
            )
            await self._snapshot_error(
                rt,
                snapshot,
                "SetDefaultSnapshotClassFailed",
                f"Failed to set default snapshot class with error {problem}",
                ready_false=False,
            )
            await self._retry(key)
            return None
        chosen = defaults[0]

        def set_class(current: JsonObject) -> bool:
            spec = current.setdefault("spec", {})
            if spec.get("volumeSnapshotClassName"):
                return False
            spec["volumeSnapshotClassName"] = chosen["metadata"]["name"]
            return True

        await self._modify(rt, meta["namespace"], meta["name"], set_class)
        result: JsonObject = chosen
        return result

    async def _sync_preprovisioned(
        self, rt: ResourceType, snapshot: JsonObject, content_name: str, key: str
    ) -> None:
        meta = snapshot["metadata"]
        contents = self._type(CONTENTS)
        content = await self._get(contents, None, content_name) if contents else None
        if contents is None or content is None:
            await self._snapshot_error(
                rt, snapshot, "SnapshotContentMissing", "VolumeSnapshotContent is missing"
            )
            await self._retry(key)
            return
        spec = content.get("spec") or {}
        if not (spec.get("source") or {}).get("snapshotHandle"):
            await self._snapshot_error(
                rt,
                snapshot,
                "SnapshotContentMismatch",
                "VolumeSnapshotContent is dynamically provisioned while expecting a pre-provisioned one",
            )
            return
        ref = spec.get("volumeSnapshotRef") or {}
        if (
            ref.get("name") != meta["name"]
            or ref.get("namespace") != meta["namespace"]
            or (ref.get("uid") and ref.get("uid") != meta["uid"])
        ):
            await self._snapshot_error(
                rt,
                snapshot,
                "SnapshotContentMisbound",
                f"VolumeSnapshotContent [{content_name}] is bound to a different snapshot",
            )
            return
        if not ref.get("uid"):

            def bind(current: JsonObject) -> bool:
                current_spec = current["spec"]
                current_spec["volumeSnapshotRef"] = {
                    **current_spec.get("volumeSnapshotRef", {}),
                    "uid": meta["uid"],
                }
                if not current_spec.get("volumeSnapshotClassName") and snapshot["spec"].get(
                    "volumeSnapshotClassName"
                ):
                    current_spec["volumeSnapshotClassName"] = snapshot["spec"]["volumeSnapshotClassName"]
                finalizers = current["metadata"].get("finalizers") or []
                if FINALIZER_CONTENT not in finalizers:
                    current["metadata"]["finalizers"] = [*finalizers, FINALIZER_CONTENT]
                return True

            content = await self._modify(contents, None, content_name, bind)
            if content is None:
                await self._retry(key)
                return
        content = await self._run_sidecar(contents, content) or content
        await self._mirror_status(rt, snapshot, content)
        if not (content.get("status") or {}).get("readyToUse"):
            await self._retry(key)

    async def _mirror_status(self, rt: ResourceType, snapshot: JsonObject, content: JsonObject) -> None:
        """Copy the content's state into the snapshot's status, with upstream's events on the way to ready."""
        meta = snapshot["metadata"]
        content_status = content.get("status") or {}
        wanted: JsonObject = {"boundVolumeSnapshotContentName": content["metadata"]["name"]}
        if content_status.get("creationTime"):
            wanted["creationTime"] = _rfc3339_from_ns(int(content_status["creationTime"]))
        wanted["readyToUse"] = bool(content_status.get("readyToUse"))
        if content_status.get("restoreSize") is not None:
            wanted["restoreSize"] = format_bytes(int(content_status["restoreSize"]))
        if content_status.get("error"):
            wanted["error"] = content_status["error"]
        before = snapshot.get("status") or {}

        def change(current: JsonObject) -> bool:
            status = {k: v for k, v in (current.get("status") or {}).items() if k != "error"}
            status.update(wanted)
            if status == current.get("status"):
                return False
            current["status"] = status
            return True

        updated = await self._modify(rt, meta["namespace"], meta["name"], change, "status")
        if updated is None:
            return
        await self._ensure_snapshot_finalizers(rt, updated)
        key = f"{meta['namespace']}/{meta['name']}"
        if wanted.get("creationTime") and not before.get("creationTime"):
            await self.events.event(
                snapshot,
                "Normal",
                "SnapshotCreated",
                f"Snapshot {key} was successfully created by the CSI driver.",
            )
        if wanted["readyToUse"] and not before.get("readyToUse"):
            await self.events.event(snapshot, "Normal", "SnapshotReady", f"Snapshot {key} is ready to use.")
            await self._wake_claims(meta["namespace"], meta["name"])

    async def _wake_claims(self, namespace: str, name: str) -> None:
        """Claims waiting to be provisioned from this snapshot can go now."""
        claims = self._core("persistentvolumeclaims")
        for claim in await self._restoring_claims(namespace, name):
            self._enqueue("pv", claims.key(namespace, claim["metadata"]["name"]))

    async def _restoring_claims(self, namespace: str, name: str) -> list[JsonObject]:
        claims = self._core("persistentvolumeclaims")
        items = (await self.engine.list(Target(claims, namespace), ListOptions()))["items"]
        return [
            c
            for c in items
            if _is_snapshot_source(data_source(c), name) and (c.get("status") or {}).get("phase") != "Bound"
        ]

    async def _delete_snapshot(self, rt: ResourceType, snapshot: JsonObject, key: str) -> None:
        """Release a deleted snapshot: its content goes too when its policy is Delete."""
        meta = snapshot["metadata"]
        finalizers = meta.get("finalizers") or []
        if FINALIZER_AS_SOURCE not in finalizers and FINALIZER_BOUND not in finalizers:
            return
        if any(
            not c["metadata"].get("deletionTimestamp")
            for c in await self._restoring_claims(meta["namespace"], meta["name"])
        ):
            await self.events.event(
                snapshot, "Warning", "SnapshotDeletePending", "Snapshot is being used to restore a PVC"
            )
            await self._retry(key)
            return
        contents = self._type(CONTENTS)
        source = (snapshot.get("spec") or {}).get("source") or {}
        content_name = (
            (snapshot.get("status") or {}).get("boundVolumeSnapshotContentName")
            or source.get("volumeSnapshotContentName")
            or f"snapcontent-{meta['uid']}"
        )
        content = await self._get(contents, None, content_name) if contents else None
        ref = ((content or {}).get("spec") or {}).get("volumeSnapshotRef") or {}
        if contents is not None and content is not None and ref.get("uid") == meta["uid"]:

            def mark(current: JsonObject) -> bool:
                annotations = current["metadata"].setdefault("annotations", {})
                if annotations.get(ANNOTATION_BEING_DELETED) == "yes":
                    return False
                annotations[ANNOTATION_BEING_DELETED] = "yes"
                return True

            content = await self._modify(contents, None, content_name, mark)
            if content is not None and (content.get("spec") or {}).get("deletionPolicy") == "Delete":
                try:
                    await self.engine.delete(Target(contents, None, content_name), DeleteOptions())
                except apierrors.ApiError as exc:
                    if exc.code != 404:
                        await self.events.event(
                            snapshot,
                            "Warning",
                            "SnapshotContentObjectDeleteError",
                            "Failed to delete snapshot content API object",
                        )
                        raise

        def release(current: JsonObject) -> bool:
            current["metadata"]["finalizers"] = [
                f
                for f in current["metadata"].get("finalizers") or []
                if f not in (FINALIZER_AS_SOURCE, FINALIZER_BOUND)
            ]
            return True

        await self._modify(rt, meta["namespace"], meta["name"], release)

    # ----------------------------------------------- VolumeSnapshotContent

    async def _sync_content(self, rt: ResourceType, content: JsonObject, key: str) -> None:
        meta = content["metadata"]
        spec = content.get("spec") or {}
        source = spec.get("source") or {}
        if bool(source.get("volumeHandle")) == bool(source.get("snapshotHandle")):
            await self.events.event(
                content,
                "Warning",
                "ContentValidationError",
                "Exactly one of VolumeHandle and SnapshotHandle should be specified",
            )
            return
        if meta.get("deletionTimestamp"):
            await self._delete_content(rt, content)
            return
        ref = spec.get("volumeSnapshotRef") or {}
        if ref.get("uid") and FINALIZER_CONTENT not in (meta.get("finalizers") or []):

            def add(current: JsonObject) -> bool:
                current["metadata"]["finalizers"] = [
                    *(current["metadata"].get("finalizers") or []),
                    FINALIZER_CONTENT,
                ]
                return True

            content = await self._modify(rt, None, meta["name"], add) or content
        content = await self._run_sidecar(rt, content) or content
        snapshots = self._type(SNAPSHOTS)
        if snapshots is not None and ref.get("name") and ref.get("namespace"):
            # The bound snapshot mirrors this content's status (its sync writes only on a change).
            snapshot = await self._get(snapshots, ref["namespace"], ref["name"])
            if snapshot is not None and snapshot["metadata"]["uid"] == ref.get("uid"):
                self._enqueue("snapshot", snapshots.key(ref["namespace"], ref["name"]))
        if source.get("snapshotHandle") and not (content.get("status") or {}).get("readyToUse"):
            await self._retry(key)

    async def _run_sidecar(
        self, rt: ResourceType, content: JsonObject, claim: tuple[str, str] | None = None
    ) -> JsonObject | None:
        """The csi-snapshotter's part: take a dynamic snapshot, or look up a pre-provisioned one."""
        spec = content.get("spec") or {}
        status = content.get("status") or {}
        if spec.get("driver") != HOSTPATH_DRIVER or status.get("readyToUse"):
            return None
        source = spec.get("source") or {}
        name = content["metadata"]["name"]
        if source.get("volumeHandle"):
            if status.get("snapshotHandle"):
                return None
            return await self._take_snapshot(rt, content, str(source["volumeHandle"]), claim)
        handle = str(source.get("snapshotHandle") or "")
        try:
            info = await asyncio.to_thread(self.driver.list_snapshot, handle)
        except DriverError as exc:
            return await self._content_error(
                rt, content, f"failed to list snapshot for content {name}: {exc}"
            )
        if info is None:
            return await self._content_error(
                rt,
                content,
                f"failed to list snapshot for content {name}: snapshot {handle} does not exist on "
                f"the storage of driver {HOSTPATH_DRIVER}",
            )
        return await self._content_ready(rt, name, info)

    async def _take_snapshot(
        self, rt: ResourceType, content: JsonObject, volume_handle: str, claim: tuple[str, str] | None
    ) -> JsonObject | None:
        name = content["metadata"]["name"]
        handle = f"snapshot-{content['metadata']['uid']}"
        size = await self._volume_capacity(volume_handle)
        claims = self._core("persistentvolumeclaims")
        if claim is not None:
            await self._claim_finalizer(claims, claim, add=True)
        try:
            info = await asyncio.to_thread(self.driver.create_snapshot, handle, volume_handle, size)
        except (DriverError, OSError) as exc:
            message = (
                f"Failed to create snapshot: failed to take snapshot of the volume {volume_handle}: {exc}"
            )
            await self._sidecar_events.event(content, "Warning", "SnapshotCreationFailed", message)
            return await self._content_error(rt, content, message)
        finally:
            if claim is not None:
                await self._claim_finalizer(claims, claim, add=False)
        return await self._content_ready(rt, name, info)

    async def _claim_finalizer(self, claims: ResourceType, claim: tuple[str, str], *, add: bool) -> None:
        """The source claim cannot go away while its data is being copied."""

        def change(current: JsonObject) -> bool:
            finalizers = current["metadata"].get("finalizers") or []
            if add == (FINALIZER_PVC_SOURCE in finalizers) or (
                add and current["metadata"].get("deletionTimestamp")
            ):
                return False
            current["metadata"]["finalizers"] = (
                [*finalizers, FINALIZER_PVC_SOURCE]
                if add
                else [f for f in finalizers if f != FINALIZER_PVC_SOURCE]
            )
            return True

        await self._modify(claims, claim[0], claim[1], change)

    async def _volume_capacity(self, volume_handle: str) -> int:
        """The capacity of the PV with this handle, in bytes: what the hostpath driver reports as size."""
        volumes = (await self.engine.list(Target(self._core("persistentvolumes")), ListOptions()))["items"]
        for volume in volumes:
            spec = volume.get("spec") or {}
            if (spec.get("csi") or {}).get("volumeHandle") == volume_handle:
                try:
                    return int(parse_bytes(str((spec.get("capacity") or {}).get("storage", "0"))))
                except ValueError:
                    return 0
        return 0

    async def _content_ready(self, rt: ResourceType, name: str, info: SnapshotInfo) -> JsonObject | None:
        def change(current: JsonObject) -> bool:
            status = {k: v for k, v in (current.get("status") or {}).items() if k != "error"}
            status.update(
                {
                    "snapshotHandle": info.handle,
                    "creationTime": info.creation_ns,
                    "restoreSize": info.size_bytes,
                    "readyToUse": True,
                }
            )
            if status == current.get("status"):
                return False
            current["status"] = status
            return True

        return await self._modify(rt, None, name, change, "status")

    async def _content_error(self, rt: ResourceType, content: JsonObject, message: str) -> JsonObject | None:
        if ((content.get("status") or {}).get("error") or {}).get("message") == message:
            return content
        now = now_rfc3339(self.engine.clock)

        def change(current: JsonObject) -> bool:
            status = current.get("status") or {}
            current["status"] = {**status, "error": {"message": message, "time": now}, "readyToUse": False}
            return True

        return await self._modify(rt, None, content["metadata"]["name"], change, "status")

    async def _delete_content(self, rt: ResourceType, content: JsonObject) -> None:
        """A deleted content stays while its snapshot is alive; then its data goes if its policy is Delete."""
        meta = content["metadata"]
        if FINALIZER_CONTENT not in (meta.get("finalizers") or []):
            return
        spec = content.get("spec") or {}
        ref = spec.get("volumeSnapshotRef") or {}
        snapshots = self._type(SNAPSHOTS)
        if (
            ref.get("uid")
            and snapshots is not None
            and (meta.get("annotations") or {}).get(ANNOTATION_BEING_DELETED) != "yes"
        ):
            snapshot = await self._get(snapshots, ref.get("namespace"), str(ref.get("name", "")))
            if (
                snapshot is not None
                and snapshot["metadata"]["uid"] == ref["uid"]
                and not snapshot["metadata"].get("deletionTimestamp")
            ):
                return
        if spec.get("deletionPolicy") == "Delete" and spec.get("driver") == HOSTPATH_DRIVER:
            handle = (content.get("status") or {}).get("snapshotHandle") or (spec.get("source") or {}).get(
                "snapshotHandle"
            )
            if handle and valid_handle(str(handle)):
                await asyncio.to_thread(self.driver.delete_snapshot, str(handle))

        def release(current: JsonObject) -> bool:
            current["metadata"]["finalizers"] = [
                f for f in current["metadata"].get("finalizers") or [] if f != FINALIZER_CONTENT
            ]
            return True

        await self._modify(rt, None, meta["name"], release)

    # ------------------------------------------------------- provisioning

    async def volume_source(self, claim: JsonObject, driver: str) -> VolumeSource | None:
        """Where a new volume for `claim` gets its data: None for an empty volume.

        Raises ProvisioningError with external-provisioner's wording while the
        source is missing, not ready, or larger than the claim asks for.
        """
        source = data_source(claim)
        if source is None:
            return None
        namespace = claim["metadata"]["namespace"]
        requested = _requested_bytes(claim)
        if _is_snapshot_source(source):
            return await self._snapshot_source(namespace, str(source["name"]), requested, driver)
        if not source.get("apiGroup") and source.get("kind") == "PersistentVolumeClaim":
            return await self._clone_source(claim, str(source["name"]), requested, driver)
        raise ProvisioningError(
            f"data source {source.get('kind')} of API group {source.get('apiGroup') or 'core'!r} is not supported "
            f"by {driver}: it provisions from VolumeSnapshots and PersistentVolumeClaims"
        )

    async def _snapshot_source(self, namespace: str, name: str, requested: int, driver: str) -> VolumeSource:
        prefix = f"error getting handle for DataSource Type VolumeSnapshot by Name {name}"
        snapshots, contents = self._type(SNAPSHOTS), self._type(CONTENTS)
        snapshot = await self._get(snapshots, namespace, name) if snapshots else None
        if snapshot is None:
            raise ProvisioningError(
                f"{prefix}: error getting snapshot {name} from api server: "
                f'volumesnapshots.snapshot.storage.k8s.io "{name}" not found'
            )
        if snapshot["metadata"].get("deletionTimestamp"):
            raise ProvisioningError(f"{prefix}: snapshot {name} is currently being deleted")
        status = snapshot.get("status") or {}
        if not status.get("readyToUse"):
            raise ProvisioningError(f"{prefix}: snapshot {name} is not Ready")
        content_name = str(status.get("boundVolumeSnapshotContentName") or "")
        content = await self._get(contents, None, content_name) if contents and content_name else None
        ref = ((content or {}).get("spec") or {}).get("volumeSnapshotRef") or {}
        if content is None or ref.get("uid") != snapshot["metadata"]["uid"]:
            raise ProvisioningError(f"{prefix}: snapshot in dataSource not bound or invalid")
        if (content.get("spec") or {}).get("driver") != driver:
            raise ProvisioningError(
                f"{prefix}: snapshot's driver {content['spec'].get('driver')} does not match "
                f"the storage class's provisioner {driver}"
            )
        content_status = content.get("status") or {}
        size = content_status.get("restoreSize")
        if size is not None and requested < int(size):
            raise ProvisioningError(
                f"{prefix}: requested volume size {requested} is less than the size {int(size)} "
                f"for the source snapshot {name}"
            )
        handle = str(content_status.get("snapshotHandle") or "")
        try:
            path = self.driver.snapshot_path(handle)
        except DriverError as exc:
            raise ProvisioningError(f"{prefix}: {exc}") from exc
        return VolumeSource(path, f"snapshot {name}")

    async def _clone_source(self, claim: JsonObject, name: str, requested: int, driver: str) -> VolumeSource:
        namespace = claim["metadata"]["namespace"]
        prefix = f"error getting handle for DataSource Type PersistentVolumeClaim by Name {name}"
        source = await self._get(self._core("persistentvolumeclaims"), namespace, name)
        if source is None:
            raise ProvisioningError(f'{prefix}: persistentvolumeclaims "{name}" not found')
        if (source.get("status") or {}).get("phase") != "Bound" or not (source.get("spec") or {}).get(
            "volumeName"
        ):
            raise ProvisioningError(f"{prefix}: the PVC {name} is not bound")
        if (source.get("spec") or {}).get("storageClassName") != (claim.get("spec") or {}).get(
            "storageClassName"
        ):
            raise ProvisioningError(
                f"{prefix}: the source PVC and destination PVCs must be in the same storage class for cloning"
            )
        volume = await self._get(self._core("persistentvolumes"), None, str(source["spec"]["volumeName"]))
        csi = ((volume or {}).get("spec") or {}).get("csi") or {}
        if csi.get("driver") != driver:
            raise ProvisioningError(f"{prefix}: the source volume is not provisioned by {driver}")
        capacity = int(
            parse_bytes(str(((source.get("status") or {}).get("capacity") or {}).get("storage", "0")))
        )
        if requested < capacity:
            raise ProvisioningError(
                f"{prefix}: error, new PVC request must be greater than or equal in size to the specified "
                f"PVC data source, requested {requested} but source is {capacity}"
            )
        try:
            path = self.driver.volume_path(str(csi.get("volumeHandle", "")))
        except DriverError as exc:
            raise ProvisioningError(f"{prefix}: {exc}") from exc
        return VolumeSource(path, f"claim {name}")


_UNITS = {
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
}


def parse_bytes(text: str) -> int:
    """A storage quantity ("1Gi", "500M", "1024") in bytes, rounded up as kube rounds storage."""
    text = text.strip()
    for suffix in sorted(_UNITS, key=len, reverse=True):
        if text.endswith(suffix):
            return int(-(-float(text[: -len(suffix)]) * _UNITS[suffix] // 1))
    if text.endswith("m"):
        return int(-(-float(text[:-1]) // 1000))
    return int(-(-float(text) // 1))


def _requested_bytes(claim: JsonObject) -> int:
    storage = (((claim.get("spec") or {}).get("resources") or {}).get("requests") or {}).get("storage", "0")
    try:
        return parse_bytes(str(storage))
    except ValueError:
        return 0
