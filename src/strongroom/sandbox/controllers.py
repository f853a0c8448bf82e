"""The control loops a backup/restore tool relies on, running inside the sandbox.

kube-controller-manager and the apiextensions server do work that clients
observe: namespaces drain and disappear, dependents follow their owners,
claims bind to volumes, the hostpath CSI driver provisions volumes (empty,
or from a snapshot or another claim), CSI snapshots are taken and bound
(:mod:`strongroom.sandbox.snapshots`), CRDs become Established and start
serving. Each loop here is driven by one etcd watch
over the whole registry, with a periodic resync, and writes through the
`Engine` so its writes obey the same rules as a client's.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import logging
import random
import shutil
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from strongroom.model.selectors import SelectorError, label_selector_from_object
from strongroom.sandbox import apierrors, csr
from strongroom.sandbox.crds import names_conflict, served_types
from strongroom.sandbox.engine import (
    FINALIZER_CRD,
    FINALIZER_FOREGROUND,
    FINALIZER_NAMESPACE,
    FINALIZER_ORPHAN,
    DeleteOptions,
    Engine,
    ListOptions,
    Target,
    WriteOptions,
    now_rfc3339,
)
from strongroom.sandbox.pki import Pki, signing_ca
from strongroom.sandbox.resources import REGISTRY_ROOT, ResourceType
from strongroom.sandbox.runtime import HOSTPATH_DRIVER
from strongroom.sandbox.snapshots import (
    DriverError,
    EventRecorder,
    HostpathDriver,
    ProvisioningError,
    SnapshotController,
    VolumeSource,
    snapshot_crds,
)
from strongroom.sandbox.store import ResourceExpired

log = logging.getLogger(__name__)

JsonObject = dict[str, Any]

HOSTPATH_PROVISIONER = HOSTPATH_DRIVER
DEFAULT_STORAGE_CLASS = "standard"
PVC_PROTECTION = "kubernetes.io/pvc-protection"
PV_PROTECTION = "kubernetes.io/pv-protection"
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
_RESYNC_SECONDS = 2.0


class Controllers:
    """Bootstraps the cluster's built-in objects and runs the control loops."""

    def __init__(
        self,
        engine: Engine,
        *,
        state_dir: Path,
        nodes: int = 1,
        api_port: int = 0,
        ca_pem: str = "",
    ) -> None:
        self.engine = engine
        self.state_dir = state_dir
        self.node_count = nodes
        self.api_port = api_port
        self.ca_pem = ca_pem
        self.ready = False
        self._queues: dict[str, asyncio.Queue[str]] = {}
        self._pending: dict[str, set[str]] = defaultdict(set)
        self._tasks: list[asyncio.Task[Any]] = []
        # Garbage collector's view: uid -> key of every object, and owner uid -> dependent keys.
        self._uid_key: dict[str, str] = {}
        self._key_uid: dict[str, str] = {}
        self._dependents: dict[str, set[str]] = defaultdict(set)
        self._key_owners: dict[str, set[str]] = {}
        self._by_storage: dict[str, ResourceType] = {}
        self._registry_generation = -1
        self._delayed: set[tuple[str, str]] = set()
        self._ca: tuple[Any, Any] | None = None  # the CSR signers' CA, loaded when first needed
        self.driver = HostpathDriver(state_dir)
        self.snapshots = SnapshotController(engine, self.driver, enqueue=self._enqueue, later=self._later)
        self._provisioner_events = EventRecorder(engine, HOSTPATH_DRIVER)
        # external-provisioner stamps each volume with the identity of the provisioner
        # instance that made it: start time in ms, a random number, the driver name.
        self._provisioner_identity = f"{int(time.time() * 1000)}-{random.randrange(10000)}-{HOSTPATH_DRIVER}"

    # ------------------------------------------------------------- type lookup

    def _type_for_key(self, key: str) -> tuple[ResourceType, str | None, str] | None:
        registry = self.engine.registry
        if registry.generation != self._registry_generation:
            mapping: dict[str, ResourceType] = {}
            for rt in registry.all():
                storage = registry.storage_type(rt)
                current = mapping.get(storage.storage_path)
                if current is None or rt.version == rt.storage_version:
                    mapping[storage.storage_path] = storage
            self._by_storage = mapping
            self._registry_generation = registry.generation
        best: tuple[ResourceType, str | None, str] | None = None
        for path, rt in self._by_storage.items():
            if key.startswith(path + "/"):
                rest = key[len(path) + 1 :].split("/")
                candidate: tuple[ResourceType, str | None, str]
                if rt.namespaced and len(rest) == 2:
                    candidate = (rt, rest[0], rest[1])
                elif not rt.namespaced and len(rest) == 1:
                    candidate = (rt, None, rest[0])
                else:
                    continue
                if best is None or len(path) > len(best[0].storage_path):
                    best = candidate
        return best

    # --------------------------------------------------------------- bootstrap

    async def bootstrap(self) -> None:
        """Create what a fresh cluster has; idempotent across restarts."""
        await self._load_crds()
        await self._install_snapshot_crds()
        for name in SYSTEM_NAMESPACES:
            await self._ensure("", "v1", "namespaces", None, {"metadata": {"name": name}})
        await self._ensure(
            "storage.k8s.io",
            "v1",
            "storageclasses",
            None,
            {
                "metadata": {
                    "name": DEFAULT_STORAGE_CLASS,
                    "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
                },
                "provisioner": HOSTPATH_PROVISIONER,
                "reclaimPolicy": "Delete",
                "volumeBindingMode": "Immediate",
            },
        )
        await self._ensure(
            "",
            "v1",
            "services",
            "default",
            {
                "metadata": {
                    "name": "kubernetes",
                    "labels": {"component": "apiserver", "provider": "kubernetes"},
                },
                "spec": {
                    "clusterIP": "10.96.0.1",
                    "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": self.api_port}],
                },
            },
        )
        await self._upsert(
            "",
            "v1",
            "endpoints",
            "default",
            {
                "metadata": {"name": "kubernetes"},
                "subsets": [
                    {
                        "addresses": [{"ip": "127.0.0.1"}],
                        "ports": [{"name": "https", "port": self.api_port, "protocol": "TCP"}],
                    }
                ],
            },
        )
        for name, value in (("system-cluster-critical", 2000000000), ("system-node-critical", 2000001000)):
            await self._ensure(
                "scheduling.k8s.io",
                "v1",
                "priorityclasses",
                None,
                {"metadata": {"name": name}, "value": value, "description": "Used for system critical pods."},
            )
        if self.engine.registry.lookup("storage.k8s.io", "v1", "csidrivers") is not None:
            await self._ensure(
                "storage.k8s.io",
                "v1",
                "csidrivers",
                None,
                {
                    "metadata": {"name": HOSTPATH_DRIVER},
                    "spec": {
                        "attachRequired": False,
                        "podInfoOnMount": True,
                        "volumeLifecycleModes": ["Persistent"],
                        "fsGroupPolicy": "File",
                        "storageCapacity": False,
                        "requiresRepublish": False,
                        "seLinuxMount": False,
                    },
                },
            )
        await self._bootstrap_rbac()
        for index in range(1, self.node_count + 1):
            await self._ensure_node(f"sandbox-node-{index}", control_plane=index == 1)

    async def _install_snapshot_crds(self) -> None:
        """external-snapshotter's CRDs, Established before the sandbox reports ready."""
        crd_type = self._rt("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        for crd in snapshot_crds():
            await self._ensure("apiextensions.k8s.io", "v1", "customresourcedefinitions", None, crd)
            await self._sync_crd(crd_type.key(None, crd["metadata"]["name"]))

    async def _bootstrap_rbac(self) -> None:
        everything = [
            {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
            {"nonResourceURLs": ["*"], "verbs": ["*"]},
        ]
        for name, rules in (
            ("cluster-admin", everything),
            ("admin", [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]),
            (
                "edit",
                [
                    {
                        "apiGroups": ["*"],
                        "resources": ["*"],
                        "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
                    }
                ],
            ),
            ("view", [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["get", "list", "watch"]}]),
        ):
            await self._ensure(
                "rbac.authorization.k8s.io",
                "v1",
                "clusterroles",
                None,
                {
                    "metadata": {"name": name, "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"}},
                    "rules": rules,
                },
            )
        await self._ensure(
            "rbac.authorization.k8s.io",
            "v1",
            "clusterrolebindings",
            None,
            {
                "metadata": {
                    "name": "cluster-admin",
                    "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
                },
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "cluster-admin",
                },
                "subjects": [
                    {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:masters"}
                ],
            },
        )

    async def _ensure_node(self, name: str, *, control_plane: bool) -> None:
        labels = {
            "kubernetes.io/hostname": name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "beta.kubernetes.io/os": "linux",
            "beta.kubernetes.io/arch": "amd64",
        }
        if control_plane:
            labels["node-role.kubernetes.io/control-plane"] = ""
        now = now_rfc3339(self.engine.clock)
        node = {
            "metadata": {"name": name, "labels": labels},
            "spec": {"podCIDR": "10.244.0.0/24"},
        }
        created = await self._ensure("", "v1", "nodes", None, node)
        status = {
            "capacity": {"cpu": "2", "memory": "8Gi", "pods": "110", "ephemeral-storage": "50Gi"},
            "allocatable": {"cpu": "2", "memory": "8Gi", "pods": "110", "ephemeral-storage": "50Gi"},
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "message": "kubelet is posting ready status",
                    "lastHeartbeatTime": now,
                    "lastTransitionTime": now,
                },
                *[
                    {
                        "type": kind,
                        "status": "False",
                        "reason": reason,
                        "message": "",
                        "lastHeartbeatTime": now,
                        "lastTransitionTime": now,
                    }
                    for kind, reason in (
                        ("MemoryPressure", "KubeletHasSufficientMemory"),
                        ("DiskPressure", "KubeletHasNoDiskPressure"),
                        ("PIDPressure", "KubeletHasSufficientPID"),
                    )
                ],
            ],
            "addresses": [
                {"type": "InternalIP", "address": "127.0.0.1"},
                {"type": "Hostname", "address": name},
            ],
            "nodeInfo": {
                "kubeletVersion": "v1.32.0",
                "kubeProxyVersion": "v1.32.0",
                "operatingSystem": "linux",
                "architecture": "amd64",
                "osImage": "strongroom sandbox",
                "kernelVersion": "",
                "containerRuntimeVersion": "sandbox://0.1.0",
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
            },
        }
        if created is not None and not created.get("status", {}).get("conditions"):
            rt = self._rt("", "v1", "nodes")
            current = {**created, "status": status}
            await self.engine.update(Target(rt, None, name, "status"), current, WriteOptions())
        await self._ensure(
            "coordination.k8s.io",
            "v1",
            "leases",
            "kube-node-lease",
            {
                "metadata": {"name": name},
                "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": _micro(now)},
            },
        )

    def _rt(self, group: str, version: str, resource: str) -> ResourceType:
        rt = self.engine.registry.lookup(group, version, resource)
        assert rt is not None, (group, version, resource)
        return rt

    async def _ensure(
        self, group: str, version: str, resource: str, namespace: str | None, body: JsonObject
    ) -> JsonObject | None:
        rt = self._rt(group, version, resource)
        name = body["metadata"]["name"]
        try:
            return await self.engine.get(Target(rt, namespace, name))
        except apierrors.ApiError as exc:
            if exc.code != 404:
                raise
        try:
            return await self.engine.create(Target(rt, namespace), copy.deepcopy(body), WriteOptions())
        except apierrors.ApiError as exc:
            if exc.code != 409:
                raise
            return None

    async def _upsert(
        self, group: str, version: str, resource: str, namespace: str | None, body: JsonObject
    ) -> None:
        rt = self._rt(group, version, resource)
        name = body["metadata"]["name"]
        existing = await self._ensure(group, version, resource, namespace, body)
        if existing is not None:
            merged = {**existing, **{k: v for k, v in body.items() if k != "metadata"}}
            await self.engine.update(Target(rt, namespace, name), merged, WriteOptions())

    # ---------------------------------------------------------------- the loop

    async def start(self) -> None:
        await self.bootstrap()
        revision = await self._build_index()
        handlers: dict[str, Callable[[str], Awaitable[None]]] = {
            "namespace": self._sync_namespace,
            "gc": self._sync_gc,
            "crd": self._sync_crd,
            "pv": self._sync_volumes,
            "defaults": self._sync_namespace_defaults,
            "snapshot": self._sync_snapshots,
            "csr": self._sync_csr,
            "node": self._sync_node_taints,
        }
        for name, handler in handlers.items():
            self._queues[name] = asyncio.Queue()
            self._tasks.append(asyncio.create_task(self._worker(name, handler)))
        self._tasks.append(asyncio.create_task(self._watch_loop(revision + 1)))
        self._tasks.append(asyncio.create_task(self._resync_loop()))
        ns_type = self._rt("", "v1", "namespaces")
        for stored in (await self.engine.store.list(ns_type.key_prefix(None))).items:
            active = not stored.obj["metadata"].get("deletionTimestamp")
            self.engine.note_namespace(stored.obj["metadata"]["name"], stored.mod_revision, active)
            await self._sync_namespace_defaults(stored.obj["metadata"]["name"])
        await self._resync()
        for group, resource, queue in (
            (csr.GROUP, "certificatesigningrequests", "csr"),
            ("", "nodes", "node"),
        ):
            # Work that a previous run left undone (an approved request not yet signed).
            for stored in (
                await self.engine.store.list(self._rt(group, "v1", resource).key_prefix(None))
            ).items:
                self._enqueue(queue, stored.obj["metadata"]["name"])
        self.ready = True

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    def _enqueue(self, queue: str, item: str) -> None:
        if item not in self._pending[queue]:
            self._pending[queue].add(item)
            self._queues[queue].put_nowait(item)

    async def _worker(self, name: str, handler: Callable[[str], Awaitable[None]]) -> None:
        queue = self._queues[name]
        while True:
            item = await queue.get()
            self._pending[name].discard(item)
            try:
                await handler(item)
            except apierrors.ApiError as exc:
                if exc.code not in (404, 409):
                    log.warning("%s controller: %s: %s", name, item, exc.message)
            except Exception:
                log.exception("%s controller failed on %s", name, item)

    async def _build_index(self) -> int:
        page = await self.engine.store.list(f"{REGISTRY_ROOT}/")
        for stored in page.items:
            self._index(stored.key, stored.obj)
        return page.revision

    def _index(self, key: str, obj: JsonObject | None) -> None:
        old_uid = self._key_uid.pop(key, None)
        if old_uid is not None:
            self._uid_key.pop(old_uid, None)
        for owner in self._key_owners.pop(key, set()):
            self._dependents[owner].discard(key)
            if not self._dependents[owner]:
                del self._dependents[owner]
        if obj is None:
            return
        meta = obj.get("metadata") or {}
        uid = meta.get("uid")
        if uid:
            self._uid_key[uid] = key
            self._key_uid[key] = uid
        owners = {ref.get("uid") for ref in meta.get("ownerReferences") or [] if ref.get("uid")}
        if owners:
            self._key_owners[key] = owners
            for owner in owners:
                self._dependents[owner].add(key)

    async def _watch_loop(self, start: int) -> None:
        while True:
            try:
                async for event in self.engine.store.watch(f"{REGISTRY_ROOT}/", start):
                    start = event.revision + 1
                    self._on_event(event.type, event.key, event.obj, event.prev, event.revision)
            except ResourceExpired:
                start = await self._build_index() + 1
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("registry watch failed; restarting")
                await asyncio.sleep(0.5)

    def _on_event(self, kind: str, key: str, obj: JsonObject, prev: JsonObject | None, revision: int) -> None:
        deleted = kind == "DELETED"
        uid = (obj.get("metadata") or {}).get("uid")
        owners_before = set(self._key_owners.get(key, set()))
        self._index(key, None if deleted else obj)
        meta = obj.get("metadata") or {}
        found = self._type_for_key(key)
        if found is None:
            return
        rt = found[0]
        ident = (rt.group, rt.kind)
        if ident == ("", "Namespace"):
            active = not deleted and not meta.get("deletionTimestamp")
            self.engine.note_namespace(meta.get("name", ""), revision, active)
            self._enqueue("namespace", key)
            if kind == "ADDED":
                self._enqueue("defaults", meta.get("name", ""))
        elif ident == ("apiextensions.k8s.io", "CustomResourceDefinition"):
            self._enqueue("crd", key)
        elif ident in {("", "PersistentVolumeClaim"), ("", "PersistentVolume"), ("", "Pod")}:
            self._enqueue("pv", key)
        elif self.snapshots.is_snapshot_key(rt):
            self._enqueue("snapshot", key)
        elif ident == (csr.GROUP, csr.KIND) and not deleted:
            self._enqueue("csr", meta.get("name", ""))
        elif ident == ("", "Node") and not deleted:
            self._enqueue("node", meta.get("name", ""))
        if deleted and uid:
            for dependent in list(self._dependents.get(uid, set())):
                self._enqueue("gc", dependent)
        if meta.get("deletionTimestamp") and (
            FINALIZER_ORPHAN in (meta.get("finalizers") or [])
            or FINALIZER_FOREGROUND in (meta.get("finalizers") or [])
        ):
            self._enqueue("gc", key)
        if deleted or meta.get("deletionTimestamp"):
            # An owner waiting in foreground deletion may now be free to go.
            for owner in owners_before:
                owner_key = self._uid_key.get(owner)
                if owner_key:
                    self._enqueue("gc", owner_key)
        if kind == "ADDED" and meta.get("ownerReferences"):
            self._enqueue("gc", key)

    async def _resync_loop(self) -> None:
        while True:
            await asyncio.sleep(_RESYNC_SECONDS)
            try:
                await self._resync()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("resync failed")

    async def _resync(self) -> None:
        store = self.engine.store
        for group, resource, queue in (
            ("", "namespaces", "namespace"),
            ("apiextensions.k8s.io", "customresourcedefinitions", "crd"),
            ("", "persistentvolumeclaims", "pv"),
            ("", "persistentvolumes", "pv"),
        ):
            rt = self._rt(group, "v1", resource)
            page = await store.list(rt.key_prefix(None))
            for stored in page.items:
                meta = stored.obj.get("metadata") or {}
                status = stored.obj.get("status") or {}
                needs = (
                    meta.get("deletionTimestamp")
                    or (queue == "crd" and not _condition_true(stored.obj, "Established"))
                    or (queue == "pv" and status.get("phase") != "Bound")
                    or (queue == "pv" and resource == "persistentvolumes")
                )
                if needs:
                    self._enqueue(queue, stored.key)
        for key in await self.snapshots.resync_keys():
            self._enqueue("snapshot", key)

    # ----------------------------------------------------- namespace lifecycle

    async def _sync_namespace_defaults(self, namespace: str) -> None:
        """Every namespace gets its default ServiceAccount and the cluster CA bundle."""
        if not namespace:
            return
        try:
            await self._ensure("", "v1", "serviceaccounts", namespace, {"metadata": {"name": "default"}})
            if self.ca_pem:
                await self._ensure(
                    "",
                    "v1",
                    "configmaps",
                    namespace,
                    {"metadata": {"name": "kube-root-ca.crt"}, "data": {"ca.crt": self.ca_pem}},
                )
        except apierrors.ApiError as exc:
            if exc.code not in (403, 404):
                raise

    async def _sync_namespace(self, key: str) -> None:
        ns_type = self._rt("", "v1", "namespaces")
        stored = await self.engine.store.get(key)
        if stored is None:
            return
        meta = stored.obj.get("metadata") or {}
        if not meta.get("deletionTimestamp"):
            return
        name = meta["name"]
        remaining = 0
        seen: set[str] = set()
        for rt in self.engine.registry.all():
            storage = self.engine.registry.storage_type(rt)
            if not storage.namespaced or storage.storage_path in seen:
                continue
            seen.add(storage.storage_path)
            page = await self.engine.store.list(storage.key_prefix(name))
            for item in page.items:
                remaining += 1
                item_meta = item.obj.get("metadata") or {}
                if item_meta.get("deletionTimestamp"):
                    continue
                with contextlib.suppress(apierrors.ApiError):
                    await self.engine.delete(Target(storage, name, item_meta["name"]), DeleteOptions())
        if remaining:
            await self._later("namespace", key)
            return
        finalizers = (stored.obj.get("spec") or {}).get("finalizers") or []
        if FINALIZER_NAMESPACE in finalizers:
            body = copy.deepcopy(self.engine.to_external(ns_type, stored.obj))
            body["spec"]["finalizers"] = [f for f in finalizers if f != FINALIZER_NAMESPACE]
            await self.engine.update(Target(ns_type, None, name, "finalize"), body, WriteOptions())

    async def _later(self, queue: str, item: str, delay: float = 0.3) -> None:
        # One delayed retry per item at a time: retries scheduled by every sync of an
        # item that keeps failing (plus the resync's) would otherwise pile up.
        if (queue, item) in self._delayed:
            return
        self._delayed.add((queue, item))

        async def requeue() -> None:
            try:
                await asyncio.sleep(delay)
            finally:
                self._delayed.discard((queue, item))
            self._enqueue(queue, item)

        task = asyncio.create_task(requeue())
        self._tasks.append(task)
        task.add_done_callback(lambda t: self._tasks.remove(t) if t in self._tasks else None)

    # ------------------------------------------------------ garbage collection

    async def _sync_gc(self, key: str) -> None:
        stored = await self.engine.store.get(key)
        if stored is None:
            return
        found = self._type_for_key(key)
        if found is None:
            return
        rt, namespace, name = found
        meta = stored.obj.get("metadata") or {}
        finalizers = meta.get("finalizers") or []
        uid = meta.get("uid", "")
        if meta.get("deletionTimestamp") and FINALIZER_ORPHAN in finalizers:
            await self._orphan_dependents(uid)
            await self._remove_finalizer(rt, namespace, name, FINALIZER_ORPHAN)
            return
        if meta.get("deletionTimestamp") and FINALIZER_FOREGROUND in finalizers:
            # The owner waits only for dependents that block its deletion; every
            # dependent is deleted.
            blocking = False
            for dependent in [d for d in self._dependents.get(uid, set()) if d != key]:
                current = await self.engine.store.get(dependent)
                if current is None:
                    continue
                dependent_meta = current.obj.get("metadata") or {}
                if any(
                    ref.get("uid") == uid and ref.get("blockOwnerDeletion")
                    for ref in dependent_meta.get("ownerReferences") or []
                ):
                    blocking = True
                if not dependent_meta.get("deletionTimestamp"):
                    await self._delete_key(dependent, self._dependent_policy(dependent))
            if not blocking:
                await self._remove_finalizer(rt, namespace, name, FINALIZER_FOREGROUND)
            else:
                await self._later("gc", key)
            return
        refs = meta.get("ownerReferences") or []
        if not refs:
            return
        dangling = [ref for ref in refs if ref.get("uid") not in self._uid_key]
        if not dangling:
            waiting = False
            for ref in refs:
                owner = await self.engine.store.get(self._uid_key[ref["uid"]])
                owner_meta = (owner.obj.get("metadata") or {}) if owner else {}
                if owner_meta.get("deletionTimestamp") and FINALIZER_FOREGROUND in (
                    owner_meta.get("finalizers") or []
                ):
                    waiting = True
            if waiting and len(refs) == 1:
                await self._delete_key(key, self._dependent_policy(key))
            return
        if len(dangling) == len(refs):
            await self._delete_key(key, "Background")
            return
        # Some owners remain: drop only the references to owners that are gone.
        keep = [ref for ref in refs if ref not in dangling]
        body = self.engine.to_external(rt, copy.deepcopy(stored.obj))
        body["metadata"]["ownerReferences"] = keep
        await self.engine.update(Target(rt, namespace, name), body, WriteOptions())

    def _dependent_policy(self, key: str) -> str:
        """kube's collector deletes a dependent in the foreground only when it has dependents itself."""
        uid = self._key_uid.get(key)
        return "Foreground" if uid and self._dependents.get(uid) else "Background"

    async def _orphan_dependents(self, owner_uid: str) -> None:
        for dependent in list(self._dependents.get(owner_uid, set())):
            found = self._type_for_key(dependent)
            if found is None:
                continue
            rt, namespace, name = found
            current = await self.engine.store.get(dependent)
            if current is None:
                continue
            body = self.engine.to_external(rt, copy.deepcopy(current.obj))
            refs = [r for r in body["metadata"].get("ownerReferences") or [] if r.get("uid") != owner_uid]
            if refs:
                body["metadata"]["ownerReferences"] = refs
            else:
                body["metadata"].pop("ownerReferences", None)
            await self.engine.update(Target(rt, namespace, name), body, WriteOptions())

    async def _delete_key(self, key: str, policy: str) -> None:
        found = self._type_for_key(key)
        if found is None:
            return
        rt, namespace, name = found
        with contextlib.suppress(apierrors.ApiError):
            await self.engine.delete(Target(rt, namespace, name), DeleteOptions(propagation_policy=policy))

    async def _remove_finalizer(
        self, rt: ResourceType, namespace: str | None, name: str, finalizer: str
    ) -> None:
        current = await self.engine.get(Target(rt, namespace, name))
        finalizers = [f for f in current["metadata"].get("finalizers") or [] if f != finalizer]
        current["metadata"]["finalizers"] = finalizers
        await self.engine.update(Target(rt, namespace, name), current, WriteOptions())

    # ------------------------------------------------------------------- CRDs

    async def _load_crds(self) -> None:
        crd_type = self._rt("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        page = await self.engine.store.list(crd_type.key_prefix(None))
        for stored in page.items:
            if _condition_true(stored.obj, "Established"):
                self._register_crd(stored.obj)

    def _register_crd(self, crd: JsonObject) -> None:
        self.engine.registry.set_custom(crd["metadata"]["name"], served_types(crd))

    async def _sync_crd(self, key: str) -> None:
        crd_type = self._rt("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        stored = await self.engine.store.get(key)
        name = key.rsplit("/", 1)[-1]
        if stored is None:
            self.engine.registry.remove_custom(name)
            return
        crd = self.engine.to_external(crd_type, stored.obj)
        meta = crd["metadata"]
        if meta.get("deletionTimestamp"):
            await self._set_crd_conditions(crd, terminating=True)
            types = served_types(crd)
            if types:
                storage = next((t for t in types if t.version == t.storage_version), types[0])
                page = await self.engine.store.list(storage.key_prefix(None))
                for item in page.items:
                    item_meta = item.obj.get("metadata") or {}
                    if not item_meta.get("deletionTimestamp"):
                        with contextlib.suppress(apierrors.ApiError):
                            await self.engine.delete(
                                Target(storage, item_meta.get("namespace"), item_meta["name"]),
                                DeleteOptions(),
                            )
                if page.items:
                    await self._later("crd", key)
                    return
            if FINALIZER_CRD in (meta.get("finalizers") or []):
                await self._remove_finalizer(crd_type, None, name, FINALIZER_CRD)
            return
        others = []
        for other_name in self.engine.registry.custom_names():
            if other_name == name:
                continue
            other = await self.engine.store.get(crd_type.key(None, other_name))
            if other is not None:
                others.append(other.obj)
        conflict = names_conflict(crd, others)
        if conflict is None:
            self._register_crd(crd)
        await self._set_crd_conditions(crd, conflict=conflict)

    async def _set_crd_conditions(
        self, crd: JsonObject, *, conflict: str | None = None, terminating: bool = False
    ) -> None:
        crd_type = self._rt("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        spec = crd.get("spec") or {}
        names = dict(spec.get("names") or {})
        names.setdefault("singular", str(names.get("kind", "")).lower())
        names.setdefault("listKind", f"{names.get('kind', '')}List")
        now = now_rfc3339(self.engine.clock)
        status = copy.deepcopy(crd.get("status") or {})
        conditions = {c["type"]: c for c in status.get("conditions") or []}

        def set_condition(kind: str, value: str, reason: str, message: str) -> None:
            old = conditions.get(kind)
            if old and old.get("status") == value and old.get("reason") == reason:
                return
            conditions[kind] = {
                "type": kind,
                "status": value,
                "reason": reason,
                "message": message,
                "lastTransitionTime": now,
            }

        if terminating:
            set_condition(
                "Terminating", "True", "InstanceDeletionInProgress", "CustomResource deletion is in progress"
            )
        elif conflict:
            set_condition("NamesAccepted", "False", "NameConflict", conflict)
            set_condition("Established", "False", "NotAccepted", "not all names are accepted")
        else:
            set_condition("NamesAccepted", "True", "NoConflicts", "no conflicts found")
            set_condition(
                "Established", "True", "InitialNamesAccepted", "the initial names have been accepted"
            )
            status["acceptedNames"] = names
        stored_versions = list(status.get("storedVersions") or [])
        for version in spec.get("versions") or []:
            if version.get("storage") and version.get("name") not in stored_versions:
                stored_versions.append(version["name"])
        status["storedVersions"] = stored_versions
        order = ["NamesAccepted", "Established", "Terminating"]
        status["conditions"] = sorted(
            conditions.values(), key=lambda c: order.index(c["type"]) if c["type"] in order else 9
        )
        if status == crd.get("status"):
            return
        body = {**crd, "status": status}
        await self.engine.update(
            Target(crd_type, None, crd["metadata"]["name"], "status"), body, WriteOptions()
        )

    # ------------------------------------------------- volumes and their claims

    async def _sync_csr(self, name: str) -> None:
        """kube-controller-manager's CSR signers: approved requests of the kubernetes.io signers get a certificate."""
        rt = self._rt(csr.GROUP, "v1", "certificatesigningrequests")
        obj = await self.engine.get(Target(rt, None, name))
        if not csr.is_approved(obj) or (obj.get("spec") or {}).get("signerName") not in csr.SIGNERS:
            return
        if self._ca is None:
            self._ca = signing_ca(Pki.at(self.state_dir / "pki"))
        if self._ca is None:
            log.warning("CSR signer: no sandbox CA in %s", self.state_dir / "pki")
            return
        decision = csr.decide(obj, self._ca[0], self._ca[1], self.engine.clock())
        status = obj.setdefault("status", {})
        if decision.certificate is not None:
            status["certificate"] = base64.b64encode(decision.certificate).decode()
        elif decision.failure is not None:
            now = now_rfc3339(self.engine.clock)
            status.setdefault("conditions", []).append(csr.failed_condition(decision.failure, now))
        else:
            return
        await self.engine.update(Target(rt, None, name, "status"), obj, WriteOptions())

    async def _sync_node_taints(self, name: str) -> None:
        """The node lifecycle controller's taint passes: the Ready condition decides the condition taints.

        Ready=False brings ``node.kubernetes.io/not-ready``, Ready=Unknown
        ``node.kubernetes.io/unreachable``, each as NoSchedule
        and NoExecute (stamped with timeAdded); Ready=True removes them.
        """
        rt = self._rt("", "v1", "nodes")
        node = await self.engine.get(Target(rt, None, name))
        wanted = _condition_taints(node, now_rfc3339(self.engine.clock))
        spec = node.setdefault("spec", {})
        current = [t for t in spec.get("taints") or [] if isinstance(t, dict)]
        kept = [t for t in current if (t.get("key"), t.get("effect")) not in _LIFECYCLE_TAINTS]
        lifecycle = [t for t in current if (t.get("key"), t.get("effect")) in _LIFECYCLE_TAINTS]
        same = {(t.get("key"), t.get("effect")) for t in lifecycle} == {
            (t["key"], t["effect"]) for t in wanted
        }
        if same:
            return
        spec["taints"] = kept + wanted
        if not spec["taints"]:
            del spec["taints"]
        await self.engine.update(Target(rt, None, name), node, WriteOptions())

    async def _sync_volumes(self, key: str) -> None:
        found = self._type_for_key(key)
        if found is None:
            return
        rt, namespace, name = found
        stored = await self.engine.store.get(key)
        if rt.kind == "Pod":
            # A deleted pod may have been the last user of a claim being deleted.
            await self._release_protected_claims(namespace)
            return
        if rt.kind == "PersistentVolumeClaim":
            if stored is None:
                await self._claim_gone(namespace or "", name)
                return
            await self._sync_claim(rt, namespace or "", name, stored.obj)
        else:
            await self._sync_volume(rt, name, stored.obj if stored else None)

    async def _sync_claim(self, rt: ResourceType, namespace: str, name: str, claim: JsonObject) -> None:
        meta = claim.get("metadata") or {}
        finalizers = meta.get("finalizers") or []
        if meta.get("deletionTimestamp"):
            if PVC_PROTECTION in finalizers and not await self._claim_in_use(namespace, name):
                await self._remove_finalizer(rt, namespace, name, PVC_PROTECTION)
            return
        if PVC_PROTECTION not in finalizers:
            body = self.engine.to_external(rt, copy.deepcopy(claim))
            body["metadata"]["finalizers"] = [*finalizers, PVC_PROTECTION]
            await self.engine.update(Target(rt, namespace, name), body, WriteOptions())
            return
        if (claim.get("status") or {}).get("phase") == "Bound":
            return
        pv_type = self._rt("", "v1", "persistentvolumes")
        spec = claim.get("spec") or {}
        volumes = (await self.engine.list(Target(pv_type), ListOptions()))["items"]
        chosen = _match_volume(claim, volumes)
        if chosen is None and not spec.get("volumeName"):
            chosen = await self._provision(claim)
        if chosen is None:
            return
        await self._bind(claim, chosen)

    async def _claim_gone(self, namespace: str, name: str) -> None:
        """A deleted claim releases (and maybe reclaims) the volume bound to it."""
        pv_type = self._rt("", "v1", "persistentvolumes")
        for volume in (await self.engine.list(Target(pv_type), ListOptions()))["items"]:
            ref = (volume.get("spec") or {}).get("claimRef") or {}
            if ref.get("namespace") == namespace and ref.get("name") == name:
                self._enqueue("pv", pv_type.key(None, volume["metadata"]["name"]))

    async def _claim_in_use(self, namespace: str, name: str) -> bool:
        pod_type = self._rt("", "v1", "pods")
        pods = (await self.engine.list(Target(pod_type, namespace), ListOptions()))["items"]
        for pod in pods:
            if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                continue
            for volume in (pod.get("spec") or {}).get("volumes") or []:
                if (volume.get("persistentVolumeClaim") or {}).get("claimName") == name:
                    return True
        return False

    async def _release_protected_claims(self, namespace: str | None) -> None:
        pvc_type = self._rt("", "v1", "persistentvolumeclaims")
        claims = (await self.engine.list(Target(pvc_type, namespace), ListOptions()))["items"]
        for claim in claims:
            if claim["metadata"].get("deletionTimestamp"):
                self._enqueue("pv", pvc_type.key(namespace, claim["metadata"]["name"]))

    async def _provision(self, claim: JsonObject) -> JsonObject | None:
        """external-provisioner for the hostpath CSI driver: a CSI volume for a claim of its class.

        A claim with a data source (a VolumeSnapshot, or another claim to clone)
        waits, with ProvisioningFailed events, until the source can be copied.
        """
        class_name = (claim.get("spec") or {}).get("storageClassName")
        if not class_name:
            return None
        sc_type = self._rt("storage.k8s.io", "v1", "storageclasses")
        try:
            storage_class = await self.engine.get(Target(sc_type, None, class_name))
        except apierrors.ApiError:
            return None
        if storage_class.get("provisioner") != HOSTPATH_PROVISIONER:
            return None
        meta = claim["metadata"]
        try:
            source = await self.snapshots.volume_source(claim, HOSTPATH_DRIVER)
            handle = f"pvc-{meta['uid']}"
            await asyncio.to_thread(self._create_volume_data, handle, source)
        except (ProvisioningError, DriverError, OSError) as exc:
            await self._provisioner_events.event(
                claim,
                "Warning",
                "ProvisioningFailed",
                f'failed to provision volume with StorageClass "{class_name}": {exc}',
            )
            pvc_type = self._rt("", "v1", "persistentvolumeclaims")
            await self._later("pv", pvc_type.key(meta["namespace"], meta["name"]), 1.0)
            return None
        volume = await self._create_csi_volume(claim, storage_class, handle)
        await self._provisioner_events.event(
            claim, "Normal", "ProvisioningSucceeded", f"Successfully provisioned volume {handle}"
        )
        return volume

    def _create_volume_data(self, handle: str, source: VolumeSource | None) -> None:
        if source is None:
            self.driver.create_volume(handle)
        else:
            self.driver.create_volume_from(handle, source.path)

    async def _create_csi_volume(
        self, claim: JsonObject, storage_class: JsonObject, handle: str
    ) -> JsonObject:
        """The PV external-provisioner writes for a new CSI volume (named after the claim's uid)."""
        spec = claim.get("spec") or {}
        volume_mode = spec.get("volumeMode", "Filesystem")
        csi: JsonObject = {
            "driver": HOSTPATH_DRIVER,
            "volumeHandle": handle,
            "volumeAttributes": {"storage.kubernetes.io/csiProvisionerIdentity": self._provisioner_identity},
        }
        if volume_mode == "Filesystem":
            csi["fsType"] = (storage_class.get("parameters") or {}).get("csi.storage.k8s.io/fstype", "ext4")
        pv_type = self._rt("", "v1", "persistentvolumes")
        body = {
            "metadata": {
                "name": handle,
                "annotations": {"pv.kubernetes.io/provisioned-by": HOSTPATH_PROVISIONER},
                "finalizers": [PV_PROTECTION],
            },
            "spec": {
                "capacity": {
                    "storage": ((spec.get("resources") or {}).get("requests") or {}).get("storage", "1Gi")
                },
                "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": storage_class.get("reclaimPolicy", "Delete"),
                "storageClassName": spec.get("storageClassName"),
                "volumeMode": volume_mode,
                "csi": csi,
                "claimRef": _claim_ref(claim),
            },
        }
        try:
            return await self.engine.create(Target(pv_type), body, WriteOptions())
        except apierrors.ApiError as exc:
            if exc.code != 409:
                raise
            return await self.engine.get(Target(pv_type, None, handle))

    async def _bind(self, claim: JsonObject, volume: JsonObject) -> None:
        pv_type = self._rt("", "v1", "persistentvolumes")
        pvc_type = self._rt("", "v1", "persistentvolumeclaims")
        pv_name = volume["metadata"]["name"]
        meta = claim["metadata"]
        if (volume.get("spec") or {}).get("claimRef", {}).get("uid") != meta["uid"]:
            volume = copy.deepcopy(volume)
            volume["spec"]["claimRef"] = _claim_ref(claim)
            annotations = volume["metadata"].setdefault("annotations", {})
            annotations["pv.kubernetes.io/bound-by-controller"] = "yes"
            volume = await self.engine.update(Target(pv_type, None, pv_name), volume, WriteOptions())
        if (volume.get("status") or {}).get("phase") != "Bound":
            volume = {**volume, "status": {"phase": "Bound"}}
            await self.engine.update(Target(pv_type, None, pv_name, "status"), volume, WriteOptions())
        name, namespace = meta["name"], meta["namespace"]
        current = await self.engine.get(Target(pvc_type, namespace, name))
        annotations = current["metadata"].setdefault("annotations", {})
        changed = False
        if current["spec"].get("volumeName") != pv_name:
            current["spec"]["volumeName"] = pv_name
            annotations["pv.kubernetes.io/bound-by-controller"] = "yes"
            changed = True
        if annotations.get("pv.kubernetes.io/bind-completed") != "yes":
            annotations["pv.kubernetes.io/bind-completed"] = "yes"
            changed = True
        provisioned_by = volume["metadata"].get("annotations", {}).get("pv.kubernetes.io/provisioned-by")
        if provisioned_by and "volume.kubernetes.io/storage-provisioner" not in annotations:
            annotations["volume.kubernetes.io/storage-provisioner"] = provisioned_by
            annotations["volume.beta.kubernetes.io/storage-provisioner"] = provisioned_by
            changed = True
        if changed:
            current = await self.engine.update(Target(pvc_type, namespace, name), current, WriteOptions())
        status = {
            "phase": "Bound",
            "accessModes": volume["spec"].get("accessModes", []),
            "capacity": volume["spec"].get("capacity", {}),
        }
        if current.get("status") != status:
            await self.engine.update(
                Target(pvc_type, namespace, name, "status"), {**current, "status": status}, WriteOptions()
            )

    def _delete_volume_data(self, spec: JsonObject) -> None:
        """Reclaim policy Delete: the driver deletes the volume's data (DeleteVolume)."""
        _delete_volume_data_of(self.driver, self.state_dir, spec)

    async def _sync_snapshots(self, key: str) -> None:
        found = self._type_for_key(key)
        if found is None:
            return
        rt, namespace, name = found
        await self.snapshots.sync(rt, namespace, name, key)

    async def _set_volume_phase(self, rt: ResourceType, volume: JsonObject, phase: str) -> None:
        name = volume["metadata"]["name"]
        await self.engine.update(
            Target(rt, None, name, "status"), {**volume, "status": {"phase": phase}}, WriteOptions()
        )

    async def _sync_volume(self, rt: ResourceType, name: str, volume: JsonObject | None) -> None:
        if volume is None:
            return
        meta = volume.get("metadata") or {}
        spec = volume.get("spec") or {}
        phase = (volume.get("status") or {}).get("phase")
        if meta.get("deletionTimestamp"):
            if PV_PROTECTION in (meta.get("finalizers") or []) and phase != "Bound":
                await self._remove_finalizer(rt, None, name, PV_PROTECTION)
            return
        claim_ref = spec.get("claimRef")
        if not claim_ref:
            if phase != "Available":
                await self._set_volume_phase(rt, volume, "Available")
            return
        pvc_type = self._rt("", "v1", "persistentvolumeclaims")
        try:
            claim = await self.engine.get(
                Target(pvc_type, claim_ref.get("namespace"), claim_ref.get("name", ""))
            )
        except apierrors.ApiError as exc:
            if exc.code != 404:
                raise
            claim = None
        if claim is not None and (
            not claim_ref.get("uid") or claim["metadata"]["uid"] == claim_ref.get("uid")
        ):
            if phase != "Bound":
                await self._bind(claim, volume)
            return
        if not claim_ref.get("uid"):
            # Pre-bound to a claim that does not exist yet: stays Available for it.
            if phase != "Available":
                await self._set_volume_phase(rt, volume, "Available")
            return
        # Its claim is gone.
        if spec.get("persistentVolumeReclaimPolicy") == "Delete":
            if meta.get("annotations", {}).get("pv.kubernetes.io/provisioned-by") == HOSTPATH_PROVISIONER:
                await asyncio.to_thread(self._delete_volume_data, spec)
            if phase == "Bound":
                await self._set_volume_phase(rt, volume, "Released")
            await self.engine.delete(Target(rt, None, name), DeleteOptions())
            return
        if phase != "Released":
            await self._set_volume_phase(rt, volume, "Released")


def _delete_volume_data_of(driver: HostpathDriver, state_dir: Path, spec: JsonObject) -> None:
    csi = spec.get("csi") or {}
    if csi.get("driver") == HOSTPATH_DRIVER:
        with contextlib.suppress(DriverError):
            driver.delete_volume(str(csi.get("volumeHandle", "")))
        return
    # Volumes provisioned as hostPath before the driver spoke CSI.
    path = Path((spec.get("hostPath") or {}).get("path", ""))
    if path.is_relative_to(state_dir / "volumes"):
        shutil.rmtree(path, ignore_errors=True)


def _micro(rfc3339: str) -> str:
    return rfc3339.replace("Z", ".000000Z")


TAINT_NOT_READY = "node.kubernetes.io/not-ready"
TAINT_UNREACHABLE = "node.kubernetes.io/unreachable"
_LIFECYCLE_TAINTS = {
    (key, effect) for key in (TAINT_NOT_READY, TAINT_UNREACHABLE) for effect in ("NoSchedule", "NoExecute")
}


def _condition_taints(node: JsonObject, now: str) -> list[JsonObject]:
    ready = next(
        (c for c in (node.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"), None
    )
    if ready is None:
        # A registering node has no conditions yet; kube waits out its startup grace period.
        return []
    status = ready.get("status") or "Unknown"
    if status == "True":
        return []
    key = TAINT_NOT_READY if status == "False" else TAINT_UNREACHABLE
    return [{"key": key, "effect": "NoSchedule"}, {"key": key, "effect": "NoExecute", "timeAdded": now}]


def _condition_true(obj: JsonObject, kind: str) -> bool:
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind:
            return bool(condition.get("status") == "True")
    return False


def _claim_ref(claim: JsonObject) -> JsonObject:
    meta = claim["metadata"]
    return {
        "kind": "PersistentVolumeClaim",
        "apiVersion": "v1",
        "namespace": meta["namespace"],
        "name": meta["name"],
        "uid": meta["uid"],
        "resourceVersion": meta.get("resourceVersion", ""),
    }


_UNITS = {
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
    "m": 0.001,
}


def parse_quantity(text: str) -> float:
    """A Kubernetes resource quantity ("1Gi", "500M", "1.5") as a number."""
    text = str(text).strip()
    for suffix in sorted(_UNITS, key=len, reverse=True):
        if suffix and text.endswith(suffix):
            return float(text[: -len(suffix)]) * _UNITS[suffix]
    return float(text)


def _match_volume(claim: JsonObject, volumes: list[JsonObject]) -> JsonObject | None:
    """The smallest Available volume that satisfies the claim, or its pre-bound one."""
    spec = claim.get("spec") or {}
    meta = claim["metadata"]
    wanted_class = spec.get("storageClassName") or ""
    wanted_modes = set(spec.get("accessModes") or [])
    try:
        wanted_size = parse_quantity(
            ((spec.get("resources") or {}).get("requests") or {}).get("storage", "0")
        )
    except ValueError:
        return None
    try:
        selector = label_selector_from_object(spec.get("selector"))
    except SelectorError:
        return None
    best: tuple[float, JsonObject] | None = None
    for volume in volumes:
        vspec = volume.get("spec") or {}
        vmeta = volume["metadata"]
        if vmeta.get("deletionTimestamp"):
            continue
        ref = vspec.get("claimRef") or {}
        if spec.get("volumeName"):
            if vmeta["name"] != spec["volumeName"]:
                continue
        elif ref and not (ref.get("name") == meta["name"] and ref.get("namespace") == meta["namespace"]):
            continue
        if ref.get("uid") and ref["uid"] != meta["uid"]:
            continue
        if not ref and (volume.get("status") or {}).get("phase") not in ("Available", "Pending", None):
            continue
        if (vspec.get("storageClassName") or "") != wanted_class:
            continue
        if not wanted_modes <= set(vspec.get("accessModes") or []):
            continue
        if vspec.get("volumeMode", "Filesystem") != spec.get("volumeMode", "Filesystem"):
            continue
        if not selector.matches(vmeta.get("labels") or {}):
            continue
        try:
            size = parse_quantity((vspec.get("capacity") or {}).get("storage", "0"))
        except ValueError:
            continue
        if size < wanted_size:
            continue
        if ref or spec.get("volumeName"):
            return volume
        if best is None or size < best[0]:
            best = (size, volume)
    return best[1] if best else None
