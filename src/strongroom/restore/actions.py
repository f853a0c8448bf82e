"""Per-kind changes a restore makes to an object before creating it.

Some fields in a backed-up object only made sense in the source cluster: a
service's allocated cluster IP and node ports, the node a pod ran on, the uid
a job's selector was generated from, token secrets the token controller
created. Created as they are, such objects are rejected, collide with
existing allocations, or fight their controllers. Velero fixes them with its
built-in restore item actions (``pkg/restore/actions/*.go``); strongroom does
the same here, as pure functions over the object dict, so a backup restores
to the same objects with either tool.

Every function changes the object in place. Each rule carries a one-line
reason; the Velero file it reproduces is named in the function's docstring.

Deliberately not special, as in Velero: Endpoints and EndpointSlices are
restored like any object (Endpoints before Services, by priority, so the
endpoints controller adopts them instead of creating new ones); objects with
owner references (pods of a ReplicaSet, ReplicaSets of a Deployment) are
restored too, without the references (see `strongroom.restore.metadata`),
and their controllers adopt them by selector.
Actions that need a cluster (change-storage-class and change-image-name read
a ConfigMap, pod-volume-restore and init-restore-hook add init containers,
the CSI and data-mover actions create snapshots) are not here: they belong to
the volume and hook code that performs that IO.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = [
    "ANN_BETA_STORAGE_PROVISIONER",
    "ANN_BIND_COMPLETED",
    "ANN_BOUND_BY_CONTROLLER",
    "ANN_LAST_APPLIED_CONFIG",
    "ANN_MIRROR_POD",
    "ANN_ORIGINAL_PV_NAME",
    "ANN_SELECTED_NODE",
    "ANN_STORAGE_PROVISIONER",
    "APISERVICE_AUTOMANAGED_LABEL",
    "ActionContext",
    "ActionError",
    "ActionOutcome",
    "ItemRef",
    "admission_webhook_action",
    "apply_pv_renames",
    "crd_preserve_unknown_fields_action",
    "is_completed",
    "is_managed_apiservice",
    "is_mirror_pod",
    "job_action",
    "pod_action",
    "pod_additional_items",
    "pvc_action",
    "pvc_additional_items",
    "remap_claim_ref_namespace",
    "rename_pv",
    "reset_volume_binding_info",
    "role_binding_action",
    "run_actions",
    "secret_action",
    "service_account_action",
    "service_action",
]

ANN_LAST_APPLIED_CONFIG: Final = "kubectl.kubernetes.io/last-applied-configuration"
ANN_MIRROR_POD: Final = "kubernetes.io/config.mirror"
ANN_BIND_COMPLETED: Final = "pv.kubernetes.io/bind-completed"
ANN_BOUND_BY_CONTROLLER: Final = "pv.kubernetes.io/bound-by-controller"
ANN_STORAGE_PROVISIONER: Final = "volume.kubernetes.io/storage-provisioner"
ANN_BETA_STORAGE_PROVISIONER: Final = "volume.beta.kubernetes.io/storage-provisioner"
ANN_SELECTED_NODE: Final = "volume.kubernetes.io/selected-node"
ANN_VOLUME_SNAPSHOT_NAME: Final = "velero.io/volume-snapshot-name"
ANN_DATA_UPLOAD_NAME: Final = "velero.io/data-upload-name"
ANN_ORIGINAL_PV_NAME: Final = "velero.io/original-pv-name"
ANN_SA_UID: Final = "kubernetes.io/service-account.uid"
APISERVICE_AUTOMANAGED_LABEL: Final = "kube-aggregator.kubernetes.io/automanaged"
SA_TOKEN_SECRET_TYPE: Final = "kubernetes.io/service-account-token"
JOB_CONTROLLER_UID_LABELS: Final = ("batch.kubernetes.io/controller-uid", "controller-uid")

PODS: Final = "pods"
JOBS: Final = "jobs.batch"
SERVICES: Final = "services"
SERVICE_ACCOUNTS: Final = "serviceaccounts"
SECRETS: Final = "secrets"
PVCS: Final = "persistentvolumeclaims"
PVS: Final = "persistentvolumes"
PRIORITY_CLASSES: Final = "priorityclasses.scheduling.k8s.io"
ROLE_BINDINGS: Final = "rolebindings.rbac.authorization.k8s.io"
CLUSTER_ROLE_BINDINGS: Final = "clusterrolebindings.rbac.authorization.k8s.io"
CRDS: Final = "customresourcedefinitions.apiextensions.k8s.io"
APISERVICES: Final = "apiservices.apiregistration.k8s.io"
WEBHOOK_CONFIGURATIONS: Final = frozenset(
    {
        "mutatingwebhookconfigurations.admissionregistration.k8s.io",
        "validatingwebhookconfigurations.admissionregistration.k8s.io",
    }
)


class ActionError(ValueError):
    """The object is malformed in a way a restore action cannot handle; the item fails."""


@dataclass(frozen=True, order=True)
class ItemRef:
    """One item of the backup: its group-resource, namespace in the backup (None if cluster-scoped), name."""

    group_resource: str
    namespace: str | None
    name: str


@dataclass(frozen=True)
class ActionContext:
    """What the actions need to know about the restore."""

    namespace_mapping: Mapping[str, str] = field(default_factory=dict)
    preserve_node_ports: bool = False
    service_accounts: Callable[[str], Collection[str]] = field(default=lambda _namespace: ())
    """Names of the service accounts the target cluster has in a namespace (for token secrets)."""


@dataclass(frozen=True)
class ActionOutcome:
    skip_reason: str | None = None
    """Set when an action discards the item (an auto-created token secret, a managed APIService)."""
    additional_items: tuple[ItemRef, ...] = ()
    """Items to restore before this one (a pod's claims, a claim's volume)."""


# --- small dict helpers ----------------------------------------------------------


def _dict(parent: Mapping[str, Any], key: str) -> MutableMapping[str, Any] | None:
    value = parent.get(key)
    return value if isinstance(value, MutableMapping) else None


def _list(parent: Mapping[str, Any], key: str) -> list[Any] | None:
    value = parent.get(key)
    return value if isinstance(value, list) else None


def _spec(obj: Mapping[str, Any]) -> MutableMapping[str, Any] | None:
    return _dict(obj, "spec")


def _annotations(obj: Mapping[str, Any]) -> MutableMapping[str, Any] | None:
    metadata = _dict(obj, "metadata")
    return None if metadata is None else _dict(metadata, "annotations")


def _labels(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    metadata = _dict(obj, "metadata")
    labels = None if metadata is None else _dict(metadata, "labels")
    return labels or {}


def _drop_if_empty(parent: MutableMapping[str, Any], key: str) -> None:
    # Velero round-trips objects through Go types, whose empty maps and lists
    # are omitted when serialised; dropping them keeps the created objects equal.
    value = parent.get(key)
    if isinstance(value, Mapping | list) and not value:
        del parent[key]


def _name(obj: Mapping[str, Any]) -> str:
    metadata = _dict(obj, "metadata")
    name = None if metadata is None else metadata.get("name")
    return name if isinstance(name, str) else ""


# --- completion and mirror pods (pkg/restore/restore.go) -------------------------


def is_completed(obj: Mapping[str, Any], group_resource: str) -> bool:
    """Finished pods and jobs are not restored: they would only run again (restore.go ``isCompleted``)."""
    status = _dict(obj, "status") or {}
    if group_resource == PODS:
        return status.get("phase") in ("Failed", "Succeeded")
    if group_resource == JOBS:
        completion = status.get("completionTime")
        return completion is not None and completion != ""
    return False


def is_mirror_pod(obj: Mapping[str, Any]) -> bool:
    """Mirror pods are the API shadows of static pods; the kubelet recreates them (restore.go)."""
    annotations = _annotations(obj) or {}
    return bool(annotations.get(ANN_MIRROR_POD))


# --- services (service_action.go) ------------------------------------------------


def _node_port_int(value: object) -> int:
    if isinstance(value, bool):
        return 0
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError as exc:
            raise ActionError(f"invalid nodePort {value!r} in {ANN_LAST_APPLIED_CONFIG}") from exc
    return 0


def _load_last_applied(raw: object) -> Any:
    try:
        return json.loads(raw) if isinstance(raw, str) else None
    except ValueError as exc:
        raise ActionError(f"invalid JSON in annotation {ANN_LAST_APPLIED_CONFIG}: {exc}") from exc


def _managed_field_sets(obj: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    metadata = _dict(obj, "metadata") or {}
    entries = _list(metadata, "managedFields") or []
    return [
        entry["fieldsV1"]
        for entry in entries
        if isinstance(entry, Mapping) and isinstance(entry.get("fieldsV1"), Mapping)
    ]


def _delete_node_ports(obj: MutableMapping[str, Any], spec: MutableMapping[str, Any]) -> None:
    if spec.get("type") == "ExternalName":
        return
    ports = [port for port in _list(spec, "ports") or [] if isinstance(port, MutableMapping)]
    annotations = _annotations(obj) or {}
    if ANN_LAST_APPLIED_CONFIG in annotations:
        # kubectl apply records what the user wrote: ports given there were chosen, keep them.
        applied = _load_last_applied(annotations[ANN_LAST_APPLIED_CONFIG])
        applied_spec = applied.get("spec") if isinstance(applied, Mapping) else None
        applied_ports = applied_spec.get("ports") if isinstance(applied_spec, Mapping) else None
        if applied_ports is not None and not isinstance(applied_ports, list):
            raise ActionError(f"spec.ports in {ANN_LAST_APPLIED_CONFIG} is not a list")
        explicit_names: set[str] = set()
        explicit_unnamed: set[int] = set()
        for port in applied_ports or []:
            if not isinstance(port, Mapping) or "nodePort" not in port:
                continue
            number = _node_port_int(port["nodePort"])
            if number <= 0:
                continue
            if "name" in port:
                explicit_names.add(str(port["name"]))
            else:
                explicit_unnamed.add(number)
        for port in ports:
            name = port.get("name") or ""
            if name:
                keep = name in explicit_names
            else:
                keep = _node_port_int(port.get("nodePort", 0)) in explicit_unnamed
            if not keep:
                port.pop("nodePort", None)
        return
    # Server-side apply records the same in managedFields, keyed by port and protocol.
    explicit_keys: set[str] = set()
    for fields in _managed_field_sets(obj):
        fspec = fields.get("f:spec")
        fports = fspec.get("f:ports") if isinstance(fspec, Mapping) else None
        if not isinstance(fports, Mapping):
            continue
        for key, value in fports.items():
            if isinstance(value, Mapping) and "f:nodePort" in value:
                explicit_keys.add(key)
    for port in ports:
        key = f'k:{{"port":{port.get("port", 0)},"protocol":"{port.get("protocol", "")}"}}'
        if key not in explicit_keys:
            port.pop("nodePort", None)


def _delete_health_check_node_port(obj: MutableMapping[str, Any], spec: MutableMapping[str, Any]) -> None:
    # Only a LoadBalancer with the Local traffic policy has one.
    if spec.get("externalTrafficPolicy") != "Local" or spec.get("type") != "LoadBalancer":
        return
    if not spec.get("healthCheckNodePort"):
        return
    annotations = _annotations(obj) or {}
    if ANN_LAST_APPLIED_CONFIG in annotations:
        applied = _load_last_applied(annotations[ANN_LAST_APPLIED_CONFIG])
        applied_spec = applied.get("spec") if isinstance(applied, Mapping) else None
        value = applied_spec.get("healthCheckNodePort") if isinstance(applied_spec, Mapping) else None
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ActionError(f"invalid healthCheckNodePort {value!r} in {ANN_LAST_APPLIED_CONFIG}")
            if value != 0:
                return  # chosen by the user with kubectl apply
    for fields in _managed_field_sets(obj):
        fspec = fields.get("f:spec")
        if isinstance(fspec, Mapping) and isinstance(fspec.get("f:healthCheckNodePort"), Mapping):
            return  # chosen by the user with server-side apply
    del spec["healthCheckNodePort"]


def service_action(obj: MutableMapping[str, Any], *, preserve_node_ports: bool) -> None:
    """Velero's ``service_action.go``.

    * clusterIP/clusterIPs are removed unless the service is headless
      (``None``): the IP was allocated in the source cluster's range.
    * Unless node ports are preserved, auto-assigned nodePorts and the
      healthCheckNodePort are removed so the new cluster allocates free ones;
      ports the user chose (found in kubectl's last-applied annotation or, when
      that is absent, in the server-side-apply managed fields) are kept.
    """
    spec = _spec(obj)
    if spec is None:
        return
    if spec.get("clusterIP") != "None":
        spec.pop("clusterIP", None)
        spec.pop("clusterIPs", None)
    if preserve_node_ports:
        return
    _delete_node_ports(obj, spec)
    _delete_health_check_node_port(obj, spec)


# --- pods (pod_action.go, add_pvc_from_pod_action.go) ----------------------------


def pod_action(obj: MutableMapping[str, Any]) -> None:
    """Velero's ``pod_action.go``.

    * spec.nodeName is removed: the node belongs to the source cluster; the scheduler picks one.
    * spec.priority is removed: admission recomputes it from priorityClassName.
    * Volumes and volume mounts named ``<serviceAccountName>-token-*`` are
      removed: they mount the legacy token secret of the source cluster, which
      is not restored; the service account admission adds a fresh one.
    """
    spec = _spec(obj)
    if spec is None:
        return
    spec.pop("nodeName", None)
    spec.pop("priority", None)
    account = spec.get("serviceAccountName")
    prefix = f"{account if isinstance(account, str) else ''}-token-"

    def keep(entry: object) -> bool:
        name = entry.get("name") if isinstance(entry, Mapping) else None
        return not (isinstance(name, str) and name.startswith(prefix))

    if "volumes" in spec and isinstance(spec["volumes"], list):
        spec["volumes"] = [volume for volume in spec["volumes"] if keep(volume)]
        _drop_if_empty(spec, "volumes")
    for containers_key in ("containers", "initContainers"):
        for container in _list(spec, containers_key) or []:
            if isinstance(container, MutableMapping) and isinstance(container.get("volumeMounts"), list):
                container["volumeMounts"] = [mount for mount in container["volumeMounts"] if keep(mount)]
                _drop_if_empty(container, "volumeMounts")


def pod_additional_items(obj: Mapping[str, Any], namespace: str | None) -> tuple[ItemRef, ...]:
    """A pod needs its priority class (``pod_action.go``) and its claims (``add_pvc_from_pod_action.go``)."""
    spec = _spec(obj) or {}
    refs: list[ItemRef] = []
    priority_class = spec.get("priorityClassName")
    if isinstance(priority_class, str) and priority_class:
        refs.append(ItemRef(PRIORITY_CLASSES, None, priority_class))
    for volume in _list(spec, "volumes") or []:
        claim = volume.get("persistentVolumeClaim") if isinstance(volume, Mapping) else None
        if isinstance(claim, Mapping):
            claim_name = claim.get("claimName")
            refs.append(ItemRef(PVCS, namespace, claim_name if isinstance(claim_name, str) else ""))
    return tuple(refs)


# --- jobs (job_action.go) --------------------------------------------------------


def job_action(obj: MutableMapping[str, Any]) -> None:
    """Velero's ``job_action.go``: the controller-uid label is removed from selector and template.

    It holds the uid of the source job; the job controller generates a new one
    and rejects a selector that does not match it.
    """
    spec = _spec(obj)
    if spec is None:
        return
    selector = _dict(spec, "selector")
    match_labels = None if selector is None else _dict(selector, "matchLabels")
    template = _dict(spec, "template")
    template_meta = None if template is None else _dict(template, "metadata")
    template_labels = None if template_meta is None else _dict(template_meta, "labels")
    for labels in (match_labels, template_labels):
        if labels is not None:
            for key in JOB_CONTROLLER_UID_LABELS:
                labels.pop(key, None)


# --- service accounts and secrets ------------------------------------------------


def service_account_action(obj: MutableMapping[str, Any]) -> None:
    """Velero's ``service_account_action.go``: the ``<name>-token-*`` secret reference is removed.

    That legacy token secret is recreated by the token controller (or not at
    all on Kubernetes >= 1.24). Like Velero, only one reference is removed:
    the last one that matches.
    """
    secrets = _list(obj, "secrets")
    if secrets is None:
        return
    prefix = f"{_name(obj)}-token-"
    for index in range(len(secrets) - 1, -1, -1):
        entry = secrets[index]
        name = entry.get("name") if isinstance(entry, Mapping) else None
        if isinstance(name, str) and name.startswith(prefix):
            del secrets[index]
            break
    _drop_if_empty(obj, "secrets")


def secret_action(obj: MutableMapping[str, Any], service_accounts: Collection[str]) -> str | None:
    """Velero's ``secret_action.go``; returns a skip reason or None.

    A service-account token secret named ``<account>-token-*`` for an account
    the target namespace has was created by the token controller and will be
    again, so it is skipped. Any other token secret is restored without its
    uid annotation, token and CA, which the token controller fills in for the
    new account.
    """
    if obj.get("type") != SA_TOKEN_SECRET_TYPE:
        return None
    name = _name(obj)
    for account in service_accounts:
        if name.startswith(f"{account}-token-"):
            return f"auto-created token secret of service account {account}"
    annotations = _annotations(obj)
    if annotations is not None:
        annotations.pop(ANN_SA_UID, None)
        metadata = _dict(obj, "metadata")
        if metadata is not None:
            _drop_if_empty(metadata, "annotations")
    data = _dict(obj, "data")
    if data is not None:
        data.pop("token", None)
        data.pop("ca.crt", None)
        _drop_if_empty(obj, "data")
    return None


# --- volumes (restore.go, pvc_action.go) -----------------------------------------


def reset_volume_binding_info(obj: MutableMapping[str, Any]) -> None:
    """Velero's ``resetVolumeBindingInfo`` for a PV or a PVC.

    The claimRef's uid and resourceVersion name the source claim, and the
    bind annotations tell the PV controller the binding is done; both are
    removed so the controller binds the restored pair again.
    """
    spec = _spec(obj)
    claim_ref = None if spec is None else _dict(spec, "claimRef")
    if claim_ref is not None:
        claim_ref.pop("uid", None)
        claim_ref.pop("resourceVersion", None)
    annotations = _annotations(obj)
    if annotations is not None:
        annotations.pop(ANN_BIND_COMPLETED, None)
        annotations.pop(ANN_BOUND_BY_CONTROLLER, None)


def remap_claim_ref_namespace(obj: MutableMapping[str, Any], namespace_mapping: Mapping[str, str]) -> bool:
    """Point a PV's claimRef at the claim's new namespace (restore.go ``remapClaimRefNS``)."""
    spec = _spec(obj)
    claim_ref = None if spec is None else _dict(spec, "claimRef")
    if claim_ref is None or not namespace_mapping:
        return False
    target = namespace_mapping.get(claim_ref.get("namespace", ""))
    if target is None:
        return False
    claim_ref["namespace"] = target
    return True


def rename_pv(obj: MutableMapping[str, Any], new_name: str) -> None:
    """Give a PV a new name and remember the old one in an annotation (restore.go ``handlePVHasNativeSnapshot``).

    Velero renames a snapshot-restored PV when a PV of the same name exists
    and its claim's namespace is being remapped (a clone next to the original).
    """
    metadata = obj.setdefault("metadata", {})
    old_name = metadata.get("name", "")
    metadata["name"] = new_name
    annotations = metadata.get("annotations")
    if not isinstance(annotations, dict):
        annotations = {}
        metadata["annotations"] = annotations
    annotations[ANN_ORIGINAL_PV_NAME] = old_name


def apply_pv_renames(obj: MutableMapping[str, Any], renamed: Mapping[str, str]) -> bool:
    """Point a PVC at the new name of a renamed PV (restore.go, after the PVC actions)."""
    spec = _spec(obj)
    if spec is None:
        return False
    new_name = renamed.get(spec.get("volumeName") or "")
    if new_name is None:
        return False
    spec["volumeName"] = new_name
    return True


_PVC_ANNOTATIONS_REMOVED: Final = (
    ANN_BIND_COMPLETED,
    ANN_BOUND_BY_CONTROLLER,
    ANN_STORAGE_PROVISIONER,
    ANN_BETA_STORAGE_PROVISIONER,
    ANN_SELECTED_NODE,
    ANN_VOLUME_SNAPSHOT_NAME,
    ANN_DATA_UPLOAD_NAME,
)


def pvc_action(obj: MutableMapping[str, Any]) -> None:
    """Velero's ``pvc_action.go``: binding, provisioner, selected-node and Velero snapshot annotations are removed.

    They describe the binding and provisioning in the source cluster; the
    selected node in particular would pin a WaitForFirstConsumer claim to a
    node that may not exist (velero#9053).
    """
    annotations = _annotations(obj)
    if annotations is None:
        return
    for key in _PVC_ANNOTATIONS_REMOVED:
        annotations.pop(key, None)


def pvc_additional_items(from_backup: Mapping[str, Any]) -> tuple[ItemRef, ...]:
    """A bound claim needs its volume (``pvc_action.go``); the backed-up status says whether it was bound."""
    status = _dict(from_backup, "status") or {}
    spec = _spec(from_backup) or {}
    volume_name = spec.get("volumeName")
    if status.get("phase") != "Bound" or not isinstance(volume_name, str) or not volume_name:
        return ()
    return (ItemRef(PVS, None, volume_name),)


# --- RBAC, CRDs, webhooks, API services ------------------------------------------


def role_binding_action(obj: MutableMapping[str, Any], namespace_mapping: Mapping[str, str]) -> None:
    """Velero's ``rolebinding_action.go``/``clusterrolebinding_action.go``.

    Subjects in a remapped namespace (service accounts, usually) are pointed at
    the new namespace, or the binding would grant nothing to the restored copies.
    """
    if not namespace_mapping:
        return
    for subject in _list(obj, "subjects") or []:
        if isinstance(subject, MutableMapping):
            target = namespace_mapping.get(subject.get("namespace", ""))
            if target is not None:
                subject["namespace"] = target


def crd_preserve_unknown_fields_action(obj: MutableMapping[str, Any]) -> None:
    """Velero's ``crd_v1_preserve_unknown_fields_action.go``.

    apiextensions.k8s.io/v1 refuses ``spec.preserveUnknownFields: true``
    (allowed in v1beta1, kept by converted CRDs); the same meaning is expressed
    with ``x-kubernetes-preserve-unknown-fields`` on every version's schema.
    """
    if obj.get("apiVersion") != "apiextensions.k8s.io/v1":
        return
    spec = _spec(obj)
    if spec is None or spec.get("preserveUnknownFields") is not True:
        return
    spec["preserveUnknownFields"] = False
    for version in _list(spec, "versions") or []:
        schema = _dict(version, "schema") if isinstance(version, Mapping) else None
        openapi = None if schema is None else _dict(schema, "openAPIV3Schema")
        if openapi is not None:
            openapi["x-kubernetes-preserve-unknown-fields"] = True


def admission_webhook_action(obj: MutableMapping[str, Any]) -> None:
    """Velero's ``admissionwebhook_config_action.go``.

    admissionregistration/v1 only accepts sideEffects None or NoneOnDryRun;
    configurations converted from v1beta1 may carry Unknown or Some (velero#3516).
    """
    if obj.get("apiVersion") != "admissionregistration.k8s.io/v1":
        return
    for webhook in _list(obj, "webhooks") or []:
        if isinstance(webhook, MutableMapping) and webhook.get("sideEffects") not in ("None", "NoneOnDryRun"):
            webhook["sideEffects"] = "None"


def is_managed_apiservice(obj: Mapping[str, Any]) -> bool:
    """APIServices labelled automanaged are registered by kube-apiserver itself (``apiservice_action.go``)."""
    return APISERVICE_AUTOMANAGED_LABEL in _labels(obj)


# --- dispatch ----------------------------------------------------------------------


def run_actions(
    group_resource: str,
    obj: MutableMapping[str, Any],
    from_backup: Mapping[str, Any],
    context: ActionContext,
) -> ActionOutcome:
    """Apply the built-in actions for this resource to `obj` (metadata already reset, namespace not yet mapped).

    `from_backup` is the untouched item: some actions look at its status.
    """
    namespace = (from_backup.get("metadata") or {}).get("namespace") or None
    if group_resource == SERVICES:
        service_action(obj, preserve_node_ports=context.preserve_node_ports)
    elif group_resource == PODS:
        pod_action(obj)
        return ActionOutcome(additional_items=pod_additional_items(obj, namespace))
    elif group_resource == JOBS:
        job_action(obj)
    elif group_resource == SERVICE_ACCOUNTS:
        service_account_action(obj)
    elif group_resource == SECRETS:
        # Velero asks the cluster in the secret's namespace in the backup, before remapping.
        reason = secret_action(obj, context.service_accounts(namespace or ""))
        if reason is not None:
            return ActionOutcome(skip_reason=reason)
    elif group_resource == PVCS:
        pvc_action(obj)
        return ActionOutcome(additional_items=pvc_additional_items(from_backup))
    elif group_resource in (ROLE_BINDINGS, CLUSTER_ROLE_BINDINGS):
        role_binding_action(obj, context.namespace_mapping)
    elif group_resource == CRDS:
        crd_preserve_unknown_fields_action(obj)
    elif group_resource in WEBHOOK_CONFIGURATIONS:
        admission_webhook_action(obj)
    elif group_resource == APISERVICES and is_managed_apiservice(obj):
        return ActionOutcome(skip_reason="APIService is managed by Kubernetes")
    return ActionOutcome()
