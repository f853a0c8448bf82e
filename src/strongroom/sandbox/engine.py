"""The REST semantics of kube-apiserver, independent of HTTP.

Create, get, list, watch, update, patch and delete with kube's rules:
metadata the server owns (uid, creationTimestamp, generation), optimistic
concurrency, the status subresource, finalizers and propagation policies,
server-side dry run, and per-kind defaults. The HTTP layer and the built-in
controllers both call this, so a controller's write follows the same rules as
a client's.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import ipaddress
import json
import random
import uuid
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from typing import Any

from strongroom.model.selectors import (
    SELECTABLE_FIELDS,
    FieldSelector,
    LabelSelector,
    SelectorError,
    label_selector_from_object,
    object_fields,
    parse_field_selector,
    parse_label_selector,
)
from strongroom.sandbox import admission, apierrors, csr, patch
from strongroom.sandbox.identity import UserInfo, admin_user
from strongroom.sandbox.resources import REVIEW_GROUPS, ResourceRegistry, ResourceType
from strongroom.sandbox.store import ListPage, ResourceExpired, Store, Stored

JsonObject = dict[str, Any]

FINALIZER_ORPHAN = "orphan"
FINALIZER_FOREGROUND = "foregroundDeletion"
FINALIZER_NAMESPACE = "kubernetes"
FINALIZER_CRD = "customresourcecleanup.apiextensions.k8s.io"

PATCH_JSON = "application/json-patch+json"
PATCH_MERGE = "application/merge-patch+json"
PATCH_STRATEGIC = "application/strategic-merge-patch+json"
PATCH_APPLY = "application/apply-patch+yaml"

_SERVICE_CIDR = ipaddress.ip_network("10.96.0.0/12")
# kube-apiserver's default --service-node-port-range.
_NODE_PORT_MIN, _NODE_PORT_MAX = 30000, 32767
_DEFAULT_STORAGE_CLASS_ANNOTATIONS = (
    "storageclass.kubernetes.io/is-default-class",
    "storageclass.beta.kubernetes.io/is-default-class",
)
# Kinds whose DELETE answers with the object itself rather than a Status (ReturnDeletedObject
# in their kube registries); every other kind, custom resources included, answers with a Status.
_RETURN_DELETED = {
    ("", "Pod"),
    ("", "Service"),
    ("", "Namespace"),
    ("", "Node"),
    ("", "ServiceAccount"),
    ("", "PersistentVolume"),
    ("", "PersistentVolumeClaim"),
    ("storage.k8s.io", "StorageClass"),
    ("storage.k8s.io", "CSIDriver"),
    ("storage.k8s.io", "VolumeAttachment"),
}


def now_rfc3339(clock: Callable[[], dt.datetime]) -> str:
    return clock().astimezone(dt.UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Target:
    """What a request addresses: a kind, maybe a namespace, maybe an object and subresource."""

    rt: ResourceType
    namespace: str | None = None
    name: str | None = None
    subresource: str | None = None


@dataclass(frozen=True)
class ListOptions:
    label_selector: str = ""
    field_selector: str = ""
    limit: int = 0
    continue_token: str = ""
    resource_version: str = ""
    resource_version_match: str = ""
    allow_bookmarks: bool = False
    timeout_seconds: float | None = None
    send_initial_events: bool = False


@dataclass(frozen=True)
class DeleteOptions:
    propagation_policy: str | None = None
    orphan_dependents: bool | None = None
    precondition_uid: str | None = None
    precondition_resource_version: str | None = None
    dry_run: bool = False
    grace_period_seconds: int | None = None


@dataclass
class WriteOptions:
    dry_run: bool = False
    field_validation: str = "Warn"  # Ignore, Warn, Strict
    field_manager: str = ""
    warnings: list[str] = field(default_factory=list)
    # Who writes (after impersonation); None is the sandbox's own administrator (its controllers).
    user: UserInfo | None = None


@dataclass(frozen=True)
class Event:
    type: str  # ADDED, MODIFIED, DELETED, BOOKMARK, ERROR
    obj: JsonObject


class Engine:
    """kube-apiserver's registry behaviour over a `Store`."""

    def __init__(
        self,
        store: Store,
        registry: ResourceRegistry,
        *,
        clock: Callable[[], dt.datetime] | None = None,
        user: str = "strongroom-admin",
        bookmark_interval: float = 5.0,
    ) -> None:
        self.store = store
        self.registry = registry
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.user = user
        self.bookmark_interval = bookmark_interval
        # namespace -> (revision, active), kept by the controllers' watch as kube's namespace
        # lifecycle admission keeps an informer; only "active" skips the etcd read.
        self._namespaces: dict[str, tuple[int, bool]] = {}

    # ----------------------------------------------------------------- helpers

    def _storage(self, rt: ResourceType) -> ResourceType:
        return self.registry.storage_type(rt)

    def key(self, rt: ResourceType, namespace: str | None, name: str) -> str:
        return self._storage(rt).key(namespace, name)

    def _not_found(self, t: Target, name: str | None = None) -> apierrors.ApiError:
        return apierrors.not_found(t.rt.group, t.rt.resource, name or t.name or "")

    def to_external(self, rt: ResourceType, obj: JsonObject) -> JsonObject:
        """The stored object as the requested group/version presents it."""
        if rt.storage_group is not None:
            return _core_event_to_events_v1(obj)
        if obj.get("apiVersion") != rt.api_version:
            obj = {**obj, "apiVersion": rt.api_version}
        return obj

    def to_internal(self, rt: ResourceType, obj: JsonObject) -> JsonObject:
        storage = self._storage(rt)
        if rt.storage_group is not None:
            obj = _events_v1_to_core_event(obj)
        return {**obj, "apiVersion": storage.api_version, "kind": storage.kind}

    def _check_kind(self, t: Target, body: JsonObject) -> None:
        rt = t.rt
        kind = body.get("kind")
        api_version = body.get("apiVersion")
        if kind and kind != rt.kind:
            raise apierrors.bad_request(
                f"the object provided is unrecognized (kind {kind!r} does not match the URL's {rt.kind!r})"
            )
        if api_version and api_version != rt.api_version:
            # kube converts between served versions of the same kind.
            served = {other.api_version for other in self.registry.by_kind(rt.group, rt.kind)}
            if api_version not in served:
                raise apierrors.bad_request(
                    f"the API version in the data ({api_version}) does not match the expected API version "
                    f"({rt.api_version})"
                )

    def note_namespace(self, name: str, revision: int, active: bool) -> None:
        """Record a namespace's state as of `revision`; older news never overrides newer."""
        if revision >= self._namespaces.get(name, (0, False))[0]:
            self._namespaces[name] = (revision, active)

    async def _namespace_check(self, t: Target, name: str, *, creating: bool) -> None:
        if not t.rt.namespaced:
            return
        if self._namespaces.get(t.namespace or "", (0, False))[1]:
            return
        ns_type = self.registry.lookup("", "v1", "namespaces")
        assert ns_type is not None
        stored = await self.store.get(ns_type.key(None, t.namespace or ""))
        if stored is None:
            raise apierrors.not_found("", "namespaces", t.namespace or "")
        if creating and stored.obj.get("metadata", {}).get("deletionTimestamp"):
            raise apierrors.forbidden_terminating(t.namespace or "", t.rt.group, t.rt.resource, name)

    # ------------------------------------------------------------------- reads

    async def get(self, t: Target) -> JsonObject:
        assert t.name is not None
        stored = await self.store.get(self.key(t.rt, t.namespace, t.name))
        if stored is None:
            raise self._not_found(t)
        obj = self.to_external(t.rt, stored.obj)
        return _to_scale(t.rt, obj) if t.subresource == "scale" else obj

    async def get_if_exists(self, t: Target) -> JsonObject | None:
        """The object, or None when it does not exist (what the sandbox's own controllers ask)."""
        try:
            return await self.get(t)
        except apierrors.ApiError as exc:
            if exc.code == 404:
                return None
            raise

    def _filters(self, t: Target, opts: ListOptions) -> Callable[[JsonObject], bool] | None:
        labels = _parse_labels(opts.label_selector)
        fields = self._parse_fields(t.rt, opts.field_selector)
        if labels.is_empty() and not fields.requirements:
            return None
        extra = SELECTABLE_FIELDS.get((t.rt.group, t.rt.resource), ())

        def accept(obj: JsonObject) -> bool:
            meta = obj.get("metadata") or {}
            if not labels.matches(meta.get("labels") or {}):
                return False
            if not fields.requirements:
                return True  # no need to build the field set of every listed object
            return fields.matches(object_fields(self.to_external(t.rt, obj), extra))

        return accept

    def _parse_fields(self, rt: ResourceType, text: str) -> FieldSelector:
        supported = {
            "metadata.name",
            "metadata.namespace",
            *SELECTABLE_FIELDS.get((rt.group, rt.resource), ()),
        }
        try:
            return parse_field_selector(text, supported)
        except SelectorError as exc:
            raise apierrors.bad_request(str(exc)) from exc

    async def list(self, t: Target, opts: ListOptions) -> JsonObject:
        rt = t.rt
        prefix = self._storage(rt).key_prefix(t.namespace)
        revision = 0
        if opts.resource_version and opts.resource_version != "0" and not opts.continue_token:
            revision = _parse_rv(opts.resource_version)
            if opts.resource_version_match != "Exact":
                # NotOlderThan (or unset): the latest state is never older than asked.
                current = await self.store.current_revision()
                if revision > current:
                    raise apierrors.timeout(f"Too large resource version: {revision}, current: {current}")
                revision = 0
        if opts.continue_token and opts.resource_version:
            raise apierrors.bad_request("specifying resource version is not allowed when using continue")
        try:
            page: ListPage = await self.store.list(
                prefix,
                limit=max(opts.limit, 0),
                continue_token=opts.continue_token or None,
                revision=revision,
                accept=self._filters(t, opts),
            )
        except ResourceExpired as exc:
            if opts.continue_token:
                raise apierrors.gone(
                    "The provided continue parameter is too old to display a consistent list result. You can "
                    "start a new list without the continue parameter, or use the continue token in this "
                    "response to retrieve the remainder of the results. Continuing with the provided token "
                    "results in an inconsistent list - objects that were created, modified, or deleted "
                    "between the time the first chunk was returned and now may show up in the list."
                ) from exc
            raise apierrors.gone(f"The resourceVersion for the provided list is too old: {exc}") from exc
        metadata: JsonObject = {"resourceVersion": str(page.revision)}
        if page.continue_key:
            metadata["continue"] = page.continue_key
            if page.remaining is not None:
                metadata["remainingItemCount"] = page.remaining
        return {
            "kind": rt.list_kind,
            "apiVersion": rt.api_version,
            "metadata": metadata,
            "items": [self.to_external(rt, s.obj) for s in page.items],
        }

    def watch(self, t: Target, opts: ListOptions) -> AsyncGenerator[Event]:
        """kube's watch: optional initial ADDED events, then changes, bookmarks, 410 when compacted.

        Parameters are checked now, before the caller commits to a 200 response; the
        returned stream does the rest.
        """
        if t.name:
            # A watch of one object (fieldSelector=metadata.name=... or a /watch/<name> path).
            name_filter = f"metadata.name={t.name}"
            opts = ListOptions(
                label_selector=opts.label_selector,
                field_selector=",".join(filter(None, [opts.field_selector, name_filter])),
                allow_bookmarks=opts.allow_bookmarks,
                timeout_seconds=opts.timeout_seconds,
                resource_version=opts.resource_version,
                send_initial_events=opts.send_initial_events,
            )
        accept = self._filters(t, opts)
        if opts.resource_version not in ("", "0"):
            _parse_rv(opts.resource_version)
        return self._watch_stream(t, opts, accept)

    async def _watch_stream(
        self, t: Target, opts: ListOptions, accept: Callable[[JsonObject], bool] | None
    ) -> AsyncGenerator[Event]:
        rt = t.rt
        prefix = self._storage(rt).key_prefix(t.namespace)
        rv = opts.resource_version
        if rv in ("", "0") or opts.send_initial_events:
            page = await self.store.list(
                prefix, accept=accept, revision=0 if rv in ("", "0") else _parse_rv(rv)
            )
            for stored in page.items:
                yield Event("ADDED", self.to_external(rt, stored.obj))
            start = page.revision + 1
            if opts.send_initial_events and opts.allow_bookmarks:
                yield Event("BOOKMARK", self._bookmark(rt, page.revision, initial_events_end=True))
        else:
            start = _parse_rv(rv) + 1
        last_revision = start - 1
        events = self.store.watch(prefix, start)
        queue: asyncio.Queue[Event | None] = asyncio.Queue(maxsize=1000)

        async def pump() -> None:
            try:
                async for ev in events:
                    out = self._translate(rt, ev.type, ev.obj, ev.prev, accept)
                    if out is not None:
                        await queue.put(out)
            except ResourceExpired as exc:
                await queue.put(Event("ERROR", apierrors.gone(str(exc)).status()))
            finally:
                await queue.put(None)

        task = asyncio.create_task(pump())
        try:
            while True:
                try:
                    timeout = self.bookmark_interval if opts.allow_bookmarks else None
                    item = await asyncio.wait_for(queue.get(), timeout=timeout)
                except TimeoutError:
                    yield Event(
                        "BOOKMARK", self._bookmark(rt, max(last_revision, await self._progress(start)))
                    )
                    continue
                if item is None:
                    return
                rv_text = item.obj.get("metadata", {}).get("resourceVersion")
                if rv_text and rv_text.isdigit():
                    last_revision = int(rv_text)
                yield item
                if item.type == "ERROR":
                    return
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _progress(self, start: int) -> int:
        return max(start - 1, await self.store.current_revision())

    def _bookmark(self, rt: ResourceType, revision: int, *, initial_events_end: bool = False) -> JsonObject:
        meta: JsonObject = {"resourceVersion": str(revision)}
        if initial_events_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        return {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": meta}

    def _translate(
        self,
        rt: ResourceType,
        kind: str,
        obj: JsonObject,
        prev: JsonObject | None,
        accept: Callable[[JsonObject], bool] | None,
    ) -> Event | None:
        if accept is None:
            return Event(kind, self.to_external(rt, obj))
        now_matches = accept(obj)
        before = prev is not None and accept(prev)
        if kind == "DELETED":
            return Event("DELETED", self.to_external(rt, obj)) if before else None
        if now_matches and (kind == "ADDED" or not before):
            return Event("ADDED", self.to_external(rt, obj))
        if now_matches:
            return Event("MODIFIED", self.to_external(rt, obj))
        if before:
            # The object left the selection: watchers see it go away.
            return Event("DELETED", self.to_external(rt, obj))
        return None

    # ------------------------------------------------------------------ create

    def _check_body(self, t: Target, body: Any, opts: WriteOptions) -> JsonObject:
        """What create and update check before anything else: shape, kind and unknown fields."""
        if not isinstance(body, dict):
            raise apierrors.bad_request("the body of the request must be a JSON object")
        self._check_kind(t, body)
        self._check_fields(t.rt, body, opts)
        return body

    async def create(self, t: Target, body: JsonObject, opts: WriteOptions) -> JsonObject:
        rt = t.rt
        body = self._check_body(t, body, opts)
        if rt.group in REVIEW_GROUPS:
            return self._review(rt, body, opts.user or admin_user(self.user))
        obj = copy.deepcopy(body)
        admission.drop_unknown_fields(rt, obj)
        obj["apiVersion"] = rt.api_version
        obj["kind"] = rt.kind
        meta = obj.get("metadata")
        if meta is None:
            meta = obj["metadata"] = {}
        if not isinstance(meta, dict):
            raise apierrors.bad_request("metadata must be an object")
        if rt.namespaced:
            body_ns = meta.get("namespace")
            if body_ns and t.namespace and body_ns != t.namespace:
                raise apierrors.bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            meta["namespace"] = t.namespace
        else:
            meta.pop("namespace", None)
        if t.subresource:
            raise apierrors.method_not_allowed()
        generated = not meta.get("name") and meta.get("generateName")
        if generated:
            meta["name"] = f"{meta['generateName']}{_random_suffix()}"
        name = str(meta.get("name") or "")
        if t.name and name and t.name != name:
            raise apierrors.bad_request(
                f"the name of the object ({name}) does not match the name on the URL ({t.name})"
            )
        for owned in (
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
        ):
            meta.pop(owned, None)
        sent_rv = str(meta.pop("resourceVersion", None) or "")
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339(self.clock)
        if self._tracks_generation(rt):
            meta["generation"] = 1
        else:
            meta.pop("generation", None)
        if "status" in rt.subresources and (rt.group, rt.kind) != ("", "Node"):
            # Status is written through /status only: PrepareForCreate resets it
            # (kubelets create their Node with its status, so Node keeps it). A
            # built-in kind's empty status struct still serializes as {}.
            obj.pop("status", None)
            if rt.builtin:
                obj["status"] = {}
        await self._defaults(rt, obj, creating=True)
        if (rt.group, rt.kind) == ("certificates.k8s.io", "CertificateSigningRequest"):
            csr.stamp_requester(obj, opts.user or admin_user(self.user))
        if (rt.group, rt.kind) == ("", "Pod") and t.namespace:
            await self._admit_service_account(t.namespace, obj)
        obj = admission.prune_custom(rt, obj)
        meta = obj["metadata"]
        admission.validate(rt, obj)
        if (rt.group, rt.kind) == ("certificates.k8s.io", "CertificateSigningRequest"):
            csr.validate(obj)
        await self._namespace_check(t, name, creating=True)
        internal = self.to_internal(rt, obj)
        key = self.key(rt, t.namespace, name)
        if opts.dry_run:
            if await self.store.get(key) is not None:
                raise apierrors.already_exists(rt.group, rt.resource, name)
            return self.to_external(rt, internal)
        if sent_rv.isdigit() and int(sent_rv) > 0:
            # etcd3's store refuses it (an object copied from another read, not meant to be
            # created); the error is untyped, so clients see a 500 without a reason.
            raise apierrors.ApiError(500, "", "resourceVersion should not be set on objects to be created")
        for _ in range(8 if generated else 1):
            created = await self.store.create(key, internal)
            if created is not None:
                return self.to_external(rt, created.obj)
            if generated:
                meta["name"] = name = f"{meta['generateName']}{_random_suffix()}"
                internal = self.to_internal(rt, obj)
                key = self.key(rt, t.namespace, name)
        if generated:
            raise apierrors.ApiError(
                409,
                "AlreadyExists",
                f'{rt.resource} "{name}" already exists, the server was not able to '
                "generate a unique name for the object",
            )
        raise apierrors.already_exists(rt.group, rt.resource, name)

    def _review(self, rt: ResourceType, body: JsonObject, user: UserInfo) -> JsonObject:
        """Answer an access or identity review; like kube, nothing is stored.

        The sandbox has no authorizer: every request it authenticates is
        allowed, whoever it acts as.
        """
        answer = {**copy.deepcopy(body), "apiVersion": rt.api_version, "kind": rt.kind}
        answer["metadata"] = {**(answer.get("metadata") or {}), "creationTimestamp": None}
        if rt.kind == "SelfSubjectReview":
            info: JsonObject = {"username": user.username}
            if user.uid:
                info["uid"] = user.uid
            if user.groups:
                info["groups"] = list(user.groups)
            if user.extra:
                info["extra"] = {k: list(v) for k, v in user.extra.items()}
            answer["status"] = {"userInfo": info}
        elif rt.kind == "SelfSubjectRulesReview":
            answer["status"] = {
                "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
                "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
                "incomplete": False,
            }
        else:
            spec = answer.get("spec")
            if not isinstance(spec, dict) or not (
                spec.get("resourceAttributes") or spec.get("nonResourceAttributes")
            ):
                raise apierrors.invalid(
                    rt.group,
                    rt.kind,
                    "",
                    [
                        (
                            "spec.resourceAttributes",
                            "FieldValueInvalid",
                            "Invalid value: exactly one of nonResourceAttributes or resourceAttributes must be specified",
                        )
                    ],
                )
            answer["status"] = {
                "allowed": True,
                "reason": 'RBAC: allowed by ClusterRoleBinding "cluster-admin" of ClusterRole "cluster-admin" '
                'to Group "system:masters"',
            }
        return answer

    def _check_fields(self, rt: ResourceType, body: JsonObject, opts: WriteOptions) -> None:
        if opts.field_validation == "Ignore":
            return
        unknown = admission.unknown_fields(rt, body) + admission.pruned_fields(rt, body)
        if not unknown:
            return
        if opts.field_validation == "Strict":
            text = ", ".join(f'unknown field "{f.lstrip(".")}"' for f in unknown)
            raise apierrors.bad_request(f"strict decoding error: {text}")
        opts.warnings += [f'unknown field "{f.lstrip(".")}"' for f in unknown]

    def _tracks_generation(self, rt: ResourceType) -> bool:
        return not rt.builtin or (rt.group, rt.kind) in admission.GENERATION_KINDS

    async def _allocate_node_ports(self, rt: ResourceType, obj: JsonObject) -> None:
        """Give every port of a NodePort/LoadBalancer Service a node port, unique in the cluster.

        kube-apiserver allocates from 30000-32767 and refuses a requested port
        that another Service holds ("provided port is already allocated").
        The allocation is read from the Services themselves, not a bitmap.
        """
        used: set[int] = set()
        metadata = obj.get("metadata") or {}
        own_key = rt.key(metadata.get("namespace"), str(metadata.get("name", "")))
        page = await self.store.list(rt.key_prefix(None))
        for stored in page.items:
            if stored.key == own_key:
                continue  # an update may keep the ports it holds
            for port in (stored.obj.get("spec") or {}).get("ports") or []:
                if isinstance(port, dict) and isinstance(port.get("nodePort"), int):
                    used.add(port["nodePort"])
        name = str((obj.get("metadata") or {}).get("name", ""))
        for index, port in enumerate((obj.get("spec") or {}).get("ports") or []):
            if not isinstance(port, dict):
                continue
            requested = port.get("nodePort")
            if isinstance(requested, int) and requested:
                if requested in used:
                    raise apierrors.invalid(
                        rt.group,
                        rt.kind,
                        name,
                        [
                            (
                                f"spec.ports[{index}].nodePort",
                                "FieldValueInvalid",
                                f"Invalid value: {requested}: provided port is already allocated",
                            )
                        ],
                    )
                used.add(requested)
                continue
            free = [
                candidate for candidate in range(_NODE_PORT_MIN, _NODE_PORT_MAX + 1) if candidate not in used
            ]
            if not free:
                raise apierrors.invalid(
                    rt.group,
                    rt.kind,
                    name,
                    [(f"spec.ports[{index}].nodePort", "FieldValueInvalid", "range is full")],
                )
            port["nodePort"] = random.choice(free)
            used.add(port["nodePort"])

    async def _admit_service_account(self, namespace: str, pod: JsonObject) -> None:
        """The ServiceAccount admission plugin: the account's automount setting decides the token volume."""
        spec = pod.get("spec") if isinstance(pod.get("spec"), dict) else {}
        account = str((spec or {}).get("serviceAccountName") or "default")
        sa_type = self.registry.lookup("", "v1", "serviceaccounts")
        stored = await self.store.get(self.key(sa_type, namespace, account)) if sa_type else None
        automount = stored.obj.get("automountServiceAccountToken") if stored else None
        admission.add_service_account_volume(
            pod, automount if isinstance(automount, bool) else None, admission.volume_suffix(random.choice)
        )

    async def _defaults(self, rt: ResourceType, obj: JsonObject, *, creating: bool) -> None:
        ident = (rt.group, rt.kind)
        spec = obj.get("spec")
        if ident == ("", "Namespace"):
            if creating:
                obj.setdefault("spec", {}).setdefault("finalizers", [FINALIZER_NAMESPACE])
                obj["status"] = {"phase": "Active"}
            labels = obj["metadata"].setdefault("labels", {})
            labels["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
        elif ident == ("", "Pod") and isinstance(spec, dict):
            spec.setdefault("restartPolicy", "Always")
            spec.setdefault("dnsPolicy", "ClusterFirst")
            spec.setdefault("schedulerName", "default-scheduler")
            spec.setdefault("terminationGracePeriodSeconds", 30)
            spec.setdefault("serviceAccountName", "default")
            spec.setdefault("securityContext", {})
            spec.setdefault("enableServiceLinks", True)
            for container in spec.get("containers") or []:
                if isinstance(container, dict):
                    container.setdefault("terminationMessagePath", "/dev/termination-log")
                    container.setdefault("terminationMessagePolicy", "File")
                    container.setdefault("imagePullPolicy", _pull_policy(str(container.get("image", ""))))
                    container.setdefault("resources", {})
            if creating:
                obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
        elif ident == ("", "Service") and isinstance(spec, dict):
            spec.setdefault("type", "ClusterIP")
            spec.setdefault("sessionAffinity", "None")
            if spec["type"] != "ExternalName":
                if creating and not spec.get("clusterIP"):
                    address = str(_SERVICE_CIDR[random.randrange(2, _SERVICE_CIDR.num_addresses - 1)])
                    spec["clusterIP"] = address
                if spec.get("clusterIP") and not spec.get("clusterIPs"):
                    spec["clusterIPs"] = [spec["clusterIP"]]
                spec.setdefault("ipFamilies", ["IPv4"])
                spec.setdefault("ipFamilyPolicy", "SingleStack")
                spec.setdefault("internalTrafficPolicy", "Cluster")
            for port in spec.get("ports") or []:
                if isinstance(port, dict):
                    port.setdefault("protocol", "TCP")
                    if "port" in port:
                        port.setdefault("targetPort", port["port"])
            if spec["type"] in ("NodePort", "LoadBalancer"):
                spec.setdefault("externalTrafficPolicy", "Cluster")
                if creating:
                    await self._allocate_node_ports(rt, obj)
            else:
                # Only NodePort and LoadBalancer Services have node ports.
                for index, port in enumerate(spec.get("ports") or []):
                    if isinstance(port, dict) and creating and port.get("nodePort"):
                        raise apierrors.invalid(
                            rt.group,
                            rt.kind,
                            str((obj.get("metadata") or {}).get("name", "")),
                            [
                                (
                                    f"spec.ports[{index}].nodePort",
                                    "FieldValueForbidden",
                                    f"Forbidden: may not be used when `type` is '{spec['type']}'",
                                )
                            ],
                        )
            if creating:
                obj["status"] = {"loadBalancer": {}}
        elif ident == ("", "Secret"):
            obj.setdefault("type", "Opaque")
            string_data = obj.pop("stringData", None)
            if isinstance(string_data, dict):
                import base64

                data = obj.setdefault("data", {})
                for key, value in string_data.items():
                    data[key] = base64.b64encode(str(value).encode()).decode()
        elif ident == ("", "PersistentVolumeClaim") and isinstance(spec, dict):
            spec.setdefault("volumeMode", "Filesystem")
            if creating:
                if "storageClassName" not in spec:
                    default_class = await self.default_storage_class()
                    if default_class:
                        spec["storageClassName"] = default_class
                obj["status"] = {"phase": "Pending"}
        elif ident == ("", "PersistentVolume") and isinstance(spec, dict):
            spec.setdefault("persistentVolumeReclaimPolicy", "Retain")
            spec.setdefault("volumeMode", "Filesystem")
            if creating:
                obj["status"] = {"phase": "Pending"}
        elif ident == ("apps", "Deployment") and isinstance(spec, dict):
            spec.setdefault("replicas", 1)
            spec.setdefault("revisionHistoryLimit", 10)
            spec.setdefault("progressDeadlineSeconds", 600)
            spec.setdefault(
                "strategy",
                {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
            )
        elif ident in {("apps", "StatefulSet"), ("apps", "ReplicaSet")} and isinstance(spec, dict):
            spec.setdefault("replicas", 1)
        elif ident == ("policy", "PodDisruptionBudget") and creating:
            # Go serializes these status fields even at zero (no omitempty).
            obj["status"] = {
                "disruptionsAllowed": 0,
                "currentHealthy": 0,
                "desiredHealthy": 0,
                "expectedPods": 0,
            }
        elif ident == ("storage.k8s.io", "StorageClass"):
            obj.setdefault("reclaimPolicy", "Delete")
            obj.setdefault("volumeBindingMode", "Immediate")
        elif ident == ("certificates.k8s.io", "CertificateSigningRequest") and creating:
            obj["status"] = {}  # users cannot create pre-approved requests
        elif ident == ("apiextensions.k8s.io", "CustomResourceDefinition") and creating:
            finalizers = obj["metadata"].setdefault("finalizers", [])
            if FINALIZER_CRD not in finalizers:
                finalizers.append(FINALIZER_CRD)
            obj["status"] = {
                "conditions": [],
                "acceptedNames": {"plural": "", "kind": ""},
                "storedVersions": [],
            }
        if ident in {("apps", "DaemonSet"), ("apps", "StatefulSet"), ("batch", "Job")}:
            from strongroom.sandbox.workloads import apply_defaults  # it imports this module

            apply_defaults(obj, creating=creating)

    async def default_storage_class(self) -> str | None:
        sc_type = self.registry.lookup("storage.k8s.io", "v1", "storageclasses")
        assert sc_type is not None
        page = await self.store.list(sc_type.key_prefix(None))
        for stored in page.items:
            annotations = stored.obj.get("metadata", {}).get("annotations") or {}
            if any(annotations.get(a) == "true" for a in _DEFAULT_STORAGE_CLASS_ANNOTATIONS):
                return str(stored.obj["metadata"]["name"])
        return None

    # ------------------------------------------------------------------ update

    async def update(self, t: Target, body: JsonObject, opts: WriteOptions) -> JsonObject:
        rt = t.rt
        if t.subresource == "scale":
            return await self._write_scale(t, lambda scale: body, opts)
        body = self._check_body(t, body, opts)
        meta = body.get("metadata")
        if not isinstance(meta, dict):
            raise apierrors.bad_request("metadata must be an object")
        name = meta.get("name") or ""
        if name != t.name:
            raise apierrors.bad_request(
                f"the name of the object ({name}) does not match the name on the URL ({t.name})"
            )
        if rt.namespaced and meta.get("namespace") and meta["namespace"] != t.namespace:
            raise apierrors.bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        wanted_rv = str(meta.get("resourceVersion") or "")
        wanted_uid = str(meta.get("uid") or "")

        async def mutate(current: Stored) -> JsonObject | None:
            current_uid = current.obj.get("metadata", {}).get("uid")
            if wanted_uid and wanted_uid != current_uid:
                # The object named in the body is not the stored one (deleted and recreated).
                raise apierrors.conflict(
                    rt.group,
                    rt.resource,
                    t.name or "",
                    f"StorageError: invalid object, Code: 4, Key: {current.key}, ResourceVersion: 0, "
                    f"AdditionalErrorMsg: Precondition failed: UID in precondition: {wanted_uid}, "
                    f"UID in object meta: {current_uid}",
                )
            if not wanted_rv and not _allows_unconditional_update(rt):
                raise apierrors.invalid(
                    rt.group,
                    rt.resource,
                    t.name or "",
                    [
                        (
                            "metadata.resourceVersion",
                            "FieldValueInvalid",
                            "Invalid value: 0x0: must be specified for an update",
                        )
                    ],
                )
            if wanted_rv and wanted_rv != str(current.mod_revision):
                raise apierrors.stale_conflict(rt.group, rt.resource, t.name or "")
            return await self._prepare_update(t, current, copy.deepcopy(body), opts)

        return await self._write(t, mutate, opts)

    async def _write(
        self,
        t: Target,
        mutate: Callable[[Stored], Any],
        opts: WriteOptions,
    ) -> JsonObject:
        """Run a read-modify-write, honouring dry run and finalizer-driven removal."""
        assert t.name is not None
        key = self.key(t.rt, t.namespace, t.name)
        if opts.dry_run:
            current = await self.store.get(key)
            if current is None:
                raise self._not_found(t)
            updated = await mutate(current)
            result = updated if updated is not None else current.obj
            return self.to_external(
                t.rt,
                {**result, "metadata": {**result["metadata"], "resourceVersion": str(current.mod_revision)}},
            )
        stored = await self.store.guaranteed_update(key, mutate, not_found=lambda: self._not_found(t))
        meta = stored.obj.get("metadata", {})
        if (
            meta.get("deletionTimestamp")
            and not meta.get("finalizers")
            and not meta.get("deletionGracePeriodSeconds")
            and not self._namespace_blocked(t.rt, stored.obj)
        ):
            # The last finalizer is gone: the object's deletion completes now.
            await self.store.delete(key, stored.mod_revision)
        return self.to_external(t.rt, stored.obj)

    def _namespace_blocked(self, rt: ResourceType, obj: JsonObject) -> bool:
        return (rt.group, rt.kind) == ("", "Namespace") and bool((obj.get("spec") or {}).get("finalizers"))

    async def _prepare_update(
        self, t: Target, current: Stored, new: JsonObject, opts: WriteOptions
    ) -> JsonObject | None:
        rt = t.rt
        old = self.to_external(rt, current.obj)
        admission.drop_unknown_fields(rt, new)
        new["apiVersion"] = rt.api_version
        new["kind"] = rt.kind
        new_meta = new.setdefault("metadata", {})
        old_meta = old["metadata"]
        for owned in (
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ):
            if owned in old_meta:
                new_meta[owned] = old_meta[owned]
            else:
                new_meta.pop(owned, None)
        new_meta["name"] = old_meta["name"]
        if rt.namespaced:
            new_meta["namespace"] = old_meta.get("namespace")
        sub = t.subresource
        ident = (rt.group, rt.kind)
        has_status = "status" in rt.subresources
        if sub == "status":
            # Only status changes through /status; metadata changes other than
            # labels and annotations are reset, as ResetObjectMetaForStatus does.
            result = copy.deepcopy(old)
            if "status" in new:
                result["status"] = new["status"]
            else:
                result.pop("status", None)
            for keep in ("labels", "annotations"):
                if keep in new_meta:
                    result["metadata"][keep] = new_meta[keep]
            new = result
        elif sub == "approval" and ident == ("certificates.k8s.io", "CertificateSigningRequest"):
            result = copy.deepcopy(old)
            conditions = (new.get("status") or {}).get("conditions") or []
            status = result.setdefault("status", {})
            status["conditions"] = conditions
            new = result
        elif sub == "finalize" and ident == ("", "Namespace"):
            result = copy.deepcopy(old)
            result.setdefault("spec", {})["finalizers"] = (new.get("spec") or {}).get("finalizers") or []
            new = result
        elif sub:
            raise apierrors.not_found(rt.group, f"{rt.resource}/{sub}", t.name or "")
        else:
            if has_status:
                if "status" in old:
                    new["status"] = old["status"]
                else:
                    new.pop("status", None)
            if ident == ("", "Namespace"):
                new.setdefault("spec", {})["finalizers"] = (old.get("spec") or {}).get("finalizers", [])
                new["status"] = old.get("status", {})
            if ident == ("certificates.k8s.io", "CertificateSigningRequest"):
                new["status"] = old.get("status", {})
                new["spec"] = old.get("spec", {})
            await self._defaults(rt, new, creating=False)
            await self._immutable(rt, old, new)
        if ident == ("certificates.k8s.io", "CertificateSigningRequest") and sub in ("approval", "status"):
            _stamp_csr_conditions(new, old, now_rfc3339(self.clock))
        if old_meta.get("deletionTimestamp"):
            added = [
                f
                for f in new["metadata"].get("finalizers") or []
                if f not in (old_meta.get("finalizers") or [])
            ]
            if added:
                listed = ", ".join(f'"{f}"' for f in sorted(set(added)))
                raise apierrors.invalid(
                    rt.group,
                    rt.kind,
                    old_meta["name"],
                    [
                        (
                            "metadata.finalizers",
                            "FieldValueForbidden",
                            "Forbidden: no new finalizers can be added if the object is being deleted, "
                            f"found new finalizers []string{{{listed}}}",
                        )
                    ],
                )
        if self._tracks_generation(rt) and not sub and _spec_changed(old, new, has_status):
            new_meta["generation"] = int(old_meta.get("generation") or 1) + 1
            new["metadata"] = new_meta
        new = admission.prune_custom(rt, new)
        admission.validate(rt, new)
        if ident == ("certificates.k8s.io", "CertificateSigningRequest"):
            csr.validate_update(old, new, sub)
        if _same(old, new):
            return None
        return self.to_internal(rt, new)

    async def _immutable(self, rt: ResourceType, old: JsonObject, new: JsonObject) -> None:
        ident = (rt.group, rt.kind)
        name = old["metadata"]["name"]
        if ident == ("", "PersistentVolumeClaim"):
            _check_claim_spec_update(rt, name, old, new)
        frozen = ident in {("", "ConfigMap"), ("", "Secret")} and old.get("immutable")
        if frozen and any(old.get(f) != new.get(f) for f in ("data", "binaryData", "immutable")):
            raise apierrors.invalid(
                rt.group,
                rt.kind,
                name,
                [
                    (
                        "data",
                        "FieldValueForbidden",
                        "Forbidden: field is immutable when `immutable` is set",
                    )
                ],
            )
        if ident == ("", "Service"):
            old_ip = (old.get("spec") or {}).get("clusterIP")
            new_spec = new.get("spec") or {}
            if old_ip and new_spec.get("clusterIP") in (None, ""):
                new_spec["clusterIP"] = old_ip
                new_spec.setdefault("clusterIPs", [old_ip])
            elif old_ip and new_spec.get("clusterIP") != old_ip:
                raise apierrors.invalid(
                    rt.group,
                    rt.kind,
                    name,
                    [("spec.clusterIPs[0]", "FieldValueInvalid", "Invalid value: may not change once set")],
                )
            # An update that leaves a port's nodePort out keeps the one allocated (kube's
            # patchAllocatedValues); a type change to NodePort allocates the missing ones.
            old_ports = {
                (port.get("port"), port.get("protocol", "TCP")): port.get("nodePort")
                for port in (old.get("spec") or {}).get("ports") or []
                if isinstance(port, dict)
            }
            if new_spec.get("type") in ("NodePort", "LoadBalancer"):
                for port in new_spec.get("ports") or []:
                    if isinstance(port, dict) and not port.get("nodePort"):
                        kept = old_ports.get((port.get("port"), port.get("protocol", "TCP")))
                        if kept:
                            port["nodePort"] = kept
                if any(
                    isinstance(port, dict) and not port.get("nodePort")
                    for port in new_spec.get("ports") or []
                ):
                    await self._allocate_node_ports(rt, new)
        if ident in {
            ("apps", "Deployment"),
            ("apps", "ReplicaSet"),
            ("apps", "StatefulSet"),
            ("apps", "DaemonSet"),
        } and (old.get("spec") or {}).get("selector") != (new.get("spec") or {}).get("selector"):
            raise apierrors.invalid(
                rt.group,
                rt.kind,
                name,
                [("spec.selector", "FieldValueInvalid", "Invalid value: field is immutable")],
            )

    # ------------------------------------------------------------------- patch

    async def patch(
        self, t: Target, patch_type: str, body: Any, opts: WriteOptions, *, force: bool = False
    ) -> JsonObject:
        rt = t.rt
        if t.subresource == "scale":
            # The Scale is a built-in type, so every patch type applies to it.
            return await self._write_scale(
                t, lambda scale: self._apply_patch(rt, patch_type, scale, body), opts
            )
        if patch_type == PATCH_STRATEGIC and not rt.builtin:
            raise apierrors.ApiError(
                415,
                "UnsupportedMediaType",
                f"the body of the request was in an unknown format - accepted media types include: "
                f"{PATCH_JSON}, {PATCH_MERGE}, {PATCH_APPLY}",
            )
        if patch_type == PATCH_APPLY:
            return await self._apply(t, body, opts, force=force)

        async def mutate(current: Stored) -> JsonObject | None:
            old = self.to_external(rt, current.obj)
            patched = self._apply_patch(rt, patch_type, old, body)
            if not isinstance(patched, dict):
                raise apierrors.bad_request("the patched object is not a JSON object")
            self._check_fields(rt, patched, opts)
            patched_meta = patched.get("metadata")
            if not isinstance(patched_meta, dict):
                raise apierrors.bad_request("metadata must be an object")
            wanted_rv = str(patched_meta.get("resourceVersion") or "")
            if wanted_rv and wanted_rv != str(current.mod_revision):
                raise apierrors.stale_conflict(rt.group, rt.resource, t.name or "")
            if patched_meta.get("name") != old["metadata"]["name"]:
                raise apierrors.bad_request(
                    f"the name of the object ({patched_meta.get('name')}) does not match the name on the URL "
                    f"({t.name})"
                )
            patched_meta.pop("resourceVersion", None)
            return await self._prepare_update(t, current, patched, opts)

        return await self._write(t, mutate, opts)

    async def _write_scale(
        self, t: Target, change: Callable[[JsonObject], Any], opts: WriteOptions
    ) -> JsonObject:
        """PUT or PATCH of the scale subresource: only the replica count of the object changes."""
        rt = t.rt

        async def mutate(current: Stored) -> JsonObject | None:
            obj = self.to_external(rt, current.obj)
            scale = _to_scale(rt, obj)
            wanted = change(copy.deepcopy(scale))
            if not isinstance(wanted, dict) or wanted.get("kind") not in (None, "Scale"):
                raise apierrors.bad_request("the body of a scale request must be an autoscaling/v1 Scale")
            wanted_rv = str((wanted.get("metadata") or {}).get("resourceVersion") or "")
            if wanted_rv and wanted_rv != str(current.mod_revision):
                raise apierrors.stale_conflict(rt.group, rt.resource, t.name or "")
            replicas = (wanted.get("spec") or {}).get("replicas", 0)
            if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
                raise apierrors.invalid(
                    "autoscaling",
                    "Scale",
                    t.name or "",
                    [
                        (
                            "spec.replicas",
                            "FieldValueInvalid",
                            f"Invalid value: {replicas!r}: must be greater than or equal to 0",
                        )
                    ],
                )
            updated = copy.deepcopy(obj)
            _set_path(updated, _scale_paths(rt)["specReplicasPath"], replicas)
            return await self._prepare_update(Target(rt, t.namespace, t.name), current, updated, opts)

        result = await self._write(Target(rt, t.namespace, t.name), mutate, opts)
        return _to_scale(rt, result)

    def _apply_patch(self, rt: ResourceType, patch_type: str, old: JsonObject, body: Any) -> Any:
        try:
            if patch_type == PATCH_JSON:
                return patch.apply_json_patch(old, body)
            if patch_type == PATCH_MERGE:
                return patch.apply_json_merge_patch(old, body)
            if patch_type == PATCH_STRATEGIC:
                if not isinstance(body, dict):
                    raise patch.PatchError("strategic merge patch must be a JSON object")
                return patch.apply_strategic_merge_patch(old, body, patch.schema_for(rt.group, rt.kind))
        except patch.PatchError as exc:
            raise apierrors.ApiError(
                422 if patch_type == PATCH_JSON else 400,
                "Invalid" if patch_type == PATCH_JSON else "BadRequest",
                str(exc),
            ) from exc
        raise apierrors.ApiError(
            415, "UnsupportedMediaType", f"the body of the request was in an unknown format: {patch_type}"
        )

    async def _apply(self, t: Target, body: Any, opts: WriteOptions, *, force: bool) -> JsonObject:
        """Server-side apply, without managed-field ownership: create, or merge the applied config."""
        if not isinstance(body, dict):
            raise apierrors.bad_request("the applied configuration must be an object")
        if not opts.field_manager:
            raise apierrors.bad_request(
                'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: '
                "is required for apply patch"
            )
        assert t.name is not None
        key = self.key(t.rt, t.namespace, t.name)
        if await self.store.get(key) is None:
            body = copy.deepcopy(body)
            body.setdefault("metadata", {})["name"] = t.name
            try:
                return await self.create(Target(t.rt, t.namespace), body, opts)
            except apierrors.ApiError as exc:
                if exc.reason != "AlreadyExists":
                    raise
        patch_type = PATCH_STRATEGIC if t.rt.builtin else PATCH_MERGE
        return await self.patch(t, patch_type, body, opts, force=force)

    # ------------------------------------------------------------------ delete

    async def delete(self, t: Target, opts: DeleteOptions) -> tuple[JsonObject, bool]:
        """Delete or start deleting one object: (response body, whether it is gone now)."""
        rt = t.rt
        assert t.name is not None
        if t.subresource:
            raise apierrors.method_not_allowed()
        key = self.key(rt, t.namespace, t.name)
        policy = opts.propagation_policy
        if policy is None and opts.orphan_dependents is not None:
            policy = "Orphan" if opts.orphan_dependents else "Background"
        if policy not in (None, "Orphan", "Foreground", "Background"):
            raise apierrors.invalid(
                "meta.k8s.io",
                "DeleteOptions",
                "",
                [
                    (
                        "propagationPolicy",
                        "FieldValueNotSupported",
                        f'Unsupported value: "{policy}": supported values: "Foreground", "Background", "Orphan"',
                    )
                ],
            )
        for _ in range(64):
            current = await self.store.get(key)
            if current is None:
                raise self._not_found(t)
            meta = current.obj.get("metadata", {})
            if opts.precondition_uid and opts.precondition_uid != meta.get("uid"):
                raise apierrors.conflict(
                    rt.group,
                    rt.resource,
                    t.name,
                    f"Precondition failed: UID in precondition: {opts.precondition_uid}, UID in object meta: "
                    f"{meta.get('uid')}",
                )
            if opts.precondition_resource_version and opts.precondition_resource_version != str(
                current.mod_revision
            ):
                raise apierrors.conflict(
                    rt.group,
                    rt.resource,
                    t.name,
                    f"Precondition failed: ResourceVersion in precondition: {opts.precondition_resource_version}, "
                    f"ResourceVersion in object meta: {current.mod_revision}",
                )
            finalizers = list(meta.get("finalizers") or [])
            if policy == "Orphan" and FINALIZER_ORPHAN not in finalizers:
                finalizers.append(FINALIZER_ORPHAN)
            if policy == "Foreground" and FINALIZER_FOREGROUND not in finalizers:
                finalizers.append(FINALIZER_FOREGROUND)
            if policy in ("Foreground", "Background") and FINALIZER_ORPHAN in finalizers:
                finalizers.remove(FINALIZER_ORPHAN)
            pod_grace = _pod_grace_period(rt, current.obj, opts)
            if pod_grace > 0 and not await self._node_registered(current.obj):
                # No kubelet will ever finish it: kube's PodGC force-deletes pods of unknown nodes.
                pod_grace = 0
            graceful = bool(finalizers) or self._namespace_blocked(rt, current.obj) or pod_grace > 0
            if not graceful:
                if opts.dry_run:
                    return self._deleted_response(rt, current), True
                deleted_at = await self.store.delete(key, current.mod_revision)
                if deleted_at is None:
                    continue
                if (rt.group, rt.kind) == ("", "Namespace"):
                    self.note_namespace(t.name, deleted_at, active=False)
                return self._deleted_response(rt, current), True
            obj = copy.deepcopy(current.obj)
            obj_meta = obj["metadata"]
            if pod_grace > 0:
                # A pod on a node is deleted gracefully: its kubelet stops it, then deletes it.
                previous_grace = obj_meta.get("deletionGracePeriodSeconds")
                if previous_grace is None or pod_grace < int(previous_grace):
                    deadline = self.clock() + dt.timedelta(seconds=pod_grace)
                    obj_meta["deletionTimestamp"] = deadline.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                    obj_meta["deletionGracePeriodSeconds"] = pod_grace
            elif not obj_meta.get("deletionTimestamp"):
                obj_meta["deletionTimestamp"] = now_rfc3339(self.clock)
                obj_meta["deletionGracePeriodSeconds"] = 0
            elif obj_meta.get("deletionGracePeriodSeconds"):
                # A pod's kubelet is done (or the caller forces it): only finalizers hold it now.
                obj_meta["deletionGracePeriodSeconds"] = 0
            if finalizers:
                obj_meta["finalizers"] = finalizers
            if (rt.group, rt.kind) == ("", "Namespace"):
                obj.setdefault("status", {})["phase"] = "Terminating"
            if opts.dry_run:
                return self.to_external(rt, obj), False
            if obj == current.obj:
                return self.to_external(rt, current.obj), False
            written = await self.store.replace(key, obj, current.mod_revision)
            if written is None:
                continue
            if (rt.group, rt.kind) == ("", "Namespace"):
                # Like kube's admission after a namespace DELETE: no create slips in meanwhile.
                self.note_namespace(t.name, written.mod_revision, active=False)
            return self.to_external(rt, written.obj), False
        raise apierrors.timeout(f"too many concurrent changes while deleting {t.name}")

    async def _node_registered(self, pod: JsonObject) -> bool:
        """Whether the Node a pod is bound to exists (only a registered node's kubelet stops pods)."""
        node = str((pod.get("spec") or {}).get("nodeName") or "")
        rt = self.registry.lookup("", "v1", "nodes")
        if not node or rt is None:
            return False
        found = await self.store.get(self.key(rt, None, node))
        return found is not None

    def _deleted_response(self, rt: ResourceType, current: Stored) -> JsonObject:
        if (rt.group, rt.kind) in _RETURN_DELETED:
            return self.to_external(rt, current.obj)
        meta = current.obj.get("metadata", {})
        details: JsonObject = {"name": meta.get("name"), "kind": rt.resource, "uid": meta.get("uid")}
        if rt.group:
            details["group"] = rt.group
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}

    async def delete_collection(self, t: Target, list_opts: ListOptions, opts: DeleteOptions) -> JsonObject:
        listing = await self.list(Target(t.rt, t.namespace), list_opts)
        deleted = []
        for item in listing["items"]:
            meta = item["metadata"]
            try:
                body, _ = await self.delete(Target(t.rt, meta.get("namespace"), meta["name"]), opts)
            except apierrors.ApiError as exc:
                if exc.code == 404:
                    continue
                raise
            deleted.append(item if body.get("kind") == "Status" else body)
        return {**listing, "items": deleted}


def _pod_grace_period(rt: ResourceType, obj: JsonObject, opts: DeleteOptions) -> int:
    """kube's pod CheckGracefulDelete: only a pod bound to a node and not finished waits for its kubelet."""
    if (rt.group, rt.kind) != ("", "Pod"):
        return 0
    spec = obj.get("spec") or {}
    if not spec.get("nodeName") or (obj.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return 0
    grace = opts.grace_period_seconds
    if grace is None:
        grace = spec.get("terminationGracePeriodSeconds")
    return max(0, int(grace if grace is not None else 30))


def _parse_labels(text: str) -> LabelSelector:
    try:
        return parse_label_selector(text)
    except SelectorError as exc:
        raise apierrors.bad_request(f"unable to parse requirement: {exc}") from exc


def _parse_rv(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise apierrors.bad_request(f'Invalid value: "{text}": invalid resource version')
    return value


def _stamp_csr_conditions(new: JsonObject, old: JsonObject, now: str) -> None:
    """kube's populateConditionTimestamps: missing condition times are set, a kept transition time stays."""
    previous = (old.get("status") or {}).get("conditions") or []
    for condition in (new.get("status") or {}).get("conditions") or []:
        if not isinstance(condition, dict):
            continue
        if not condition.get("lastUpdateTime"):
            condition["lastUpdateTime"] = now
        if not condition.get("lastTransitionTime"):
            condition["lastTransitionTime"] = next(
                (
                    c["lastTransitionTime"]
                    for c in previous
                    if isinstance(c, dict)
                    and c.get("type") == condition.get("type")
                    and c.get("status") == condition.get("status")
                    and c.get("lastTransitionTime")
                ),
                now,
            )


def _allows_unconditional_update(rt: ResourceType) -> bool:
    """Whether a PUT without metadata.resourceVersion may overwrite (the strategy's AllowUnconditionalUpdate)."""
    return rt.builtin and (rt.group, rt.kind) != ("apiextensions.k8s.io", "CustomResourceDefinition")


def _random_suffix() -> str:
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    return "".join(random.choice(alphabet) for _ in range(5))


def _pull_policy(image: str) -> str:
    tag = image.rsplit("/", 1)[-1]
    if "@" in tag:
        return "IfNotPresent"
    if ":" not in tag or tag.endswith(":latest"):
        return "Always"
    return "IfNotPresent"


def _spec_changed(old: JsonObject, new: JsonObject, has_status: bool) -> bool:
    ignored = {"metadata", "apiVersion", "kind"}
    if has_status:
        ignored.add("status")
    keys = (set(old) | set(new)) - ignored
    return any(old.get(k) != new.get(k) for k in keys)


def _same(old: JsonObject, new: JsonObject) -> bool:
    def strip(obj: JsonObject) -> str:
        meta = {k: v for k, v in obj.get("metadata", {}).items() if k != "resourceVersion"}
        return json.dumps({**obj, "metadata": meta}, sort_keys=True)

    return strip(old) == strip(new)


# events.k8s.io/v1 Event is a view of the stored core v1 Event.
_EVENT_FIELD_MAP = (
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
    ("reportingComponent", "reportingController"),
)


def _core_event_to_events_v1(obj: JsonObject) -> JsonObject:
    out = {k: v for k, v in obj.items() if k not in {a for a, _ in _EVENT_FIELD_MAP}}
    for core, events in _EVENT_FIELD_MAP:
        if core in obj and obj[core] not in (None, "", 0, {}):
            out[events] = obj[core]
    out["apiVersion"] = "events.k8s.io/v1"
    out["kind"] = "Event"
    out.setdefault("eventTime", None)
    return out


def _events_v1_to_core_event(obj: JsonObject) -> JsonObject:
    out = {k: v for k, v in obj.items() if k not in {b for _, b in _EVENT_FIELD_MAP}}
    for core, events in _EVENT_FIELD_MAP:
        if events in obj:
            out[core] = obj[events]
    return out


_BUILTIN_SCALE_PATHS = {
    "specReplicasPath": ".spec.replicas",
    "statusReplicasPath": ".status.replicas",
    "labelSelectorPath": ".spec.selector",
}


def _scale_paths(rt: ResourceType) -> dict[str, str]:
    return rt.scale_paths or _BUILTIN_SCALE_PATHS


def _get_path(obj: Any, path: str) -> Any:
    for part in [p for p in path.split(".") if p]:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def _set_path(obj: JsonObject, path: str, value: Any) -> None:
    parts = [p for p in path.split(".") if p]
    for part in parts[:-1]:
        obj = obj.setdefault(part, {})
    obj[parts[-1]] = value


def _to_scale(rt: ResourceType, obj: JsonObject) -> JsonObject:
    """The autoscaling/v1 Scale view of a scalable object."""
    paths = _scale_paths(rt)
    meta = obj.get("metadata") or {}
    selector = _get_path(obj, paths.get("labelSelectorPath", ""))
    if isinstance(selector, dict):
        try:
            # A LabelSelector (matchLabels/matchExpressions), or a plain map on ReplicationControllers.
            if "matchLabels" in selector or "matchExpressions" in selector:
                selector = str(label_selector_from_object(selector))
            else:
                selector = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
        except SelectorError:
            selector = ""
    status: JsonObject = {"replicas": int(_get_path(obj, paths.get("statusReplicasPath", "")) or 0)}
    if selector:
        status["selector"] = selector
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            key: meta[key]
            for key in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if key in meta
        },
        "spec": {"replicas": int(_get_path(obj, paths.get("specReplicasPath", "")) or 0)},
        "status": status,
    }


def _check_claim_spec_update(rt: ResourceType, name: str, old: JsonObject, new: JsonObject) -> None:
    """kube-apiserver's rule for claims: the spec is frozen once created, but for the storage
    request (expansion), the volume attributes class, and one setting of ``volumeName``
    (the binder's) while it is empty."""
    old_spec = copy.deepcopy(old.get("spec") or {})
    new_spec = copy.deepcopy(new.get("spec") or {})
    if not old_spec.get("volumeName") and new_spec.get("volumeName"):
        old_spec["volumeName"] = new_spec["volumeName"]
    for spec in (old_spec, new_spec):
        spec.pop("volumeAttributesClassName", None)
        requests = (spec.get("resources") or {}).get("requests")
        if isinstance(requests, dict):
            requests.pop("storage", None)
    if old_spec != new_spec:
        raise apierrors.invalid(
            rt.group,
            rt.kind,
            name,
            [
                (
                    "spec",
                    "FieldValueForbidden",
                    "Forbidden: spec is immutable after creation except resources.requests and "
                    "volumeAttributesClassName for bound claims",
                )
            ],
        )


async def get_core(engine: Engine, resource: str, namespace: str | None, name: str) -> JsonObject | None:
    """A core/v1 object, or None when it does not exist."""
    rt = engine.registry.lookup("", "v1", resource)
    assert rt is not None
    return await engine.get_if_exists(Target(rt, namespace, name))
