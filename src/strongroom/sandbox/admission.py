"""What kube-apiserver does to an object before it stores it: defaults and validation.

Names, labels and the handful of per-kind rules that clients run into (a pod
needs containers, a namespace name is a DNS label, a ConfigMap key must be a
valid key) answer 422 Invalid with kube's field paths, so tools built on the
sandbox meet the same refusals a real cluster gives.
"""

from __future__ import annotations

import re
from typing import Any

from strongroom.sandbox import apierrors
from strongroom.sandbox.crds import crd_errors, prune_and_validate
from strongroom.sandbox.resources import ResourceType

JsonObject = dict[str, Any]
Cause = tuple[str, str, str]

_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_DNS1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_LABEL_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_CONFIG_KEY = re.compile(r"[-._a-zA-Z0-9]+")

# Kinds whose names only need to be valid path segments (RBAC names such as "system:node").
_PATH_SEGMENT_NAMED = {
    ("rbac.authorization.k8s.io", "Role"),
    ("rbac.authorization.k8s.io", "RoleBinding"),
    ("rbac.authorization.k8s.io", "ClusterRole"),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
    ("", "Event"),
    ("events.k8s.io", "Event"),
    ("certificates.k8s.io", "CertificateSigningRequest"),
}
_DNS_LABEL_NAMED = {("", "Namespace")}
_DNS1035_NAMED = {("", "Service")}

# Kinds whose strategy tracks metadata.generation (spec changes bump it).
GENERATION_KINDS = {
    ("apps", "Deployment"),
    ("apps", "StatefulSet"),
    ("apps", "DaemonSet"),
    ("apps", "ReplicaSet"),
    ("", "ReplicationController"),
    ("batch", "Job"),
    ("batch", "CronJob"),
    ("policy", "PodDisruptionBudget"),
    ("networking.k8s.io", "Ingress"),
    ("networking.k8s.io", "NetworkPolicy"),
    ("apiextensions.k8s.io", "CustomResourceDefinition"),
    ("scheduling.k8s.io", "PriorityClass"),
}

# Top-level fields each built-in kind has; anything else is an unknown field
# (a typo like "metdata"), which Strict field validation refuses.
_COMMON_FIELDS = {"apiVersion", "kind", "metadata"}
TOP_LEVEL_FIELDS: dict[tuple[str, str], set[str]] = {
    ("", "ConfigMap"): {"data", "binaryData", "immutable"},
    ("", "Secret"): {"data", "stringData", "type", "immutable"},
    ("", "ServiceAccount"): {"secrets", "imagePullSecrets", "automountServiceAccountToken"},
    ("", "Endpoints"): {"subsets"},
    ("", "Event"): {
        "involvedObject",
        "reason",
        "message",
        "source",
        "firstTimestamp",
        "lastTimestamp",
        "count",
        "type",
        "eventTime",
        "series",
        "action",
        "related",
        "reportingComponent",
        "reportingInstance",
    },
    ("events.k8s.io", "Event"): {
        "eventTime",
        "series",
        "reportingController",
        "reportingInstance",
        "action",
        "reason",
        "regarding",
        "related",
        "note",
        "type",
        "deprecatedSource",
        "deprecatedFirstTimestamp",
        "deprecatedLastTimestamp",
        "deprecatedCount",
    },
    ("rbac.authorization.k8s.io", "Role"): {"rules"},
    ("rbac.authorization.k8s.io", "ClusterRole"): {"rules", "aggregationRule"},
    ("rbac.authorization.k8s.io", "RoleBinding"): {"subjects", "roleRef"},
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): {"subjects", "roleRef"},
    ("storage.k8s.io", "StorageClass"): {
        "provisioner",
        "parameters",
        "reclaimPolicy",
        "mountOptions",
        "allowVolumeExpansion",
        "volumeBindingMode",
        "allowedTopologies",
    },
    ("scheduling.k8s.io", "PriorityClass"): {"value", "globalDefault", "description", "preemptionPolicy"},
}


def _builtin_fields(rt: ResourceType) -> set[str] | None:
    if not rt.builtin:
        return None
    extra = TOP_LEVEL_FIELDS.get((rt.group, rt.kind), {"spec", "status"})
    return _COMMON_FIELDS | extra


def unknown_fields(rt: ResourceType, obj: JsonObject) -> list[str]:
    """Top-level and metadata fields the kind does not have."""
    found: list[str] = []
    allowed = _builtin_fields(rt)
    if allowed is not None:
        found += [f".{name}" for name in obj if name not in allowed]
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        found += [f".metadata.{name}" for name in meta if name not in _META_FIELDS]
    return found


def drop_unknown_fields(rt: ResourceType, obj: JsonObject) -> None:
    """Remove what `unknown_fields` finds: kube's decoder has nowhere to keep it, so it is never stored."""
    allowed = _builtin_fields(rt)
    if allowed is not None:
        for name in [name for name in obj if name not in allowed]:
            del obj[name]
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        for name in [name for name in meta if name not in _META_FIELDS]:
            del meta[name]


def pruned_fields(rt: ResourceType, obj: JsonObject) -> list[str]:
    """A custom object's unknown fields: those its structural schema prunes."""
    if rt.builtin or not rt.schema:
        return []
    pruned: list[str] = []
    prune_and_validate(rt.schema, obj, pruned)
    return [f".{path}" for path in pruned]


_META_FIELDS = {
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
}


def name_errors(rt: ResourceType, name: str, field: str = "metadata.name") -> list[Cause]:
    if not name:
        return [(field, "FieldValueRequired", "Required value: name or generateName is required")]
    ident = (rt.group, rt.kind)
    if ident in _PATH_SEGMENT_NAMED:
        if name in (".", "..") or "/" in name or "%" in name:
            return [(field, "FieldValueInvalid", f"Invalid value: \"{name}\": may not contain '/' or '%'")]
        return []
    if ident in _DNS_LABEL_NAMED:
        return _pattern_error(field, name, _DNS1123_LABEL, 63, "a lowercase RFC 1123 label", "my-name")
    if ident in _DNS1035_NAMED:
        return _pattern_error(field, name, _DNS1035_LABEL, 63, "a DNS-1035 label", "my-name")
    return _pattern_error(
        field, name, _DNS1123_SUBDOMAIN, 253, "a lowercase RFC 1123 subdomain", "example.com"
    )


def _pattern_error(
    field: str, value: str, pattern: re.Pattern[str], limit: int, what: str, example: str
) -> list[Cause]:
    if len(value) > limit:
        return [
            (field, "FieldValueInvalid", f'Invalid value: "{value}": must be no more than {limit} characters')
        ]
    if not pattern.fullmatch(value):
        return [
            (
                field,
                "FieldValueInvalid",
                f'Invalid value: "{value}": {what} must consist of lower case alphanumeric characters, '
                f"'-' or '.', and must start and end with an alphanumeric character "
                f"(e.g. '{example}')",
            )
        ]
    return []


def _label_errors(labels: Any, field: str) -> list[Cause]:
    if labels is None:
        return []
    if not isinstance(labels, dict):
        return [(field, "FieldValueInvalid", "Invalid value: must be a map of strings")]
    causes: list[Cause] = []
    for key, value in labels.items():
        causes += _qualified_name_errors(key, f"{field}")
        if not isinstance(value, str):
            causes.append((f"{field}", "FieldValueInvalid", f"Invalid value: {value!r}: must be a string"))
        elif value and (len(value) > 63 or not _LABEL_NAME.fullmatch(value)):
            causes.append(
                (
                    field,
                    "FieldValueInvalid",
                    f'Invalid value: "{value}": a valid label must be an empty string or consist of '
                    "alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric "
                    "character, no more than 63 characters",
                )
            )
    return causes


def _qualified_name_errors(key: str, field: str) -> list[Cause]:
    prefix, _, name = key.rpartition("/")
    bad = not name or len(name) > 63 or not _LABEL_NAME.fullmatch(name)
    if prefix and (len(prefix) > 253 or not _DNS1123_SUBDOMAIN.fullmatch(prefix)):
        bad = True
    if bad:
        return [
            (
                field,
                "FieldValueInvalid",
                f"Invalid value: \"{key}\": name part must consist of alphanumeric characters, '-', '_' "
                "or '.', and must start and end with an alphanumeric character, with an optional DNS "
                "subdomain prefix and '/'",
            )
        ]
    return []


def prune_custom(rt: ResourceType, obj: JsonObject) -> JsonObject:
    """A custom object pruned to its CRD schema; 422 Invalid when it breaks the schema."""
    if rt.builtin:
        return obj
    pruned, causes = prune_and_validate(rt.schema, obj)
    if causes:
        name = str((obj.get("metadata") or {}).get("name") or "")
        raise apierrors.invalid(rt.group, rt.kind, name, causes)
    return pruned


def validate(rt: ResourceType, obj: JsonObject) -> None:
    """Raise 422 Invalid with every problem found, as kube's validation does."""
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        raise apierrors.invalid(rt.group, rt.kind, "", [("metadata", "FieldValueRequired", "Required value")])
    name = str(meta.get("name") or "")
    causes = name_errors(rt, name)
    causes += _label_errors(meta.get("labels"), "metadata.labels")
    annotations = meta.get("annotations")
    if annotations is not None:
        if not isinstance(annotations, dict) or not all(isinstance(v, str) for v in annotations.values()):
            causes.append(
                ("metadata.annotations", "FieldValueInvalid", "Invalid value: must be a map of strings")
            )
        else:
            for key in annotations:
                causes += _qualified_name_errors(key, "metadata.annotations")
            if sum(len(k) + len(v) for k, v in annotations.items()) > 256 * 1024:
                causes.append(
                    ("metadata.annotations", "FieldValueTooLong", "Too long: must have at most 262144 bytes")
                )
    causes += _kind_errors(rt, obj)
    if causes:
        raise apierrors.invalid(rt.group, rt.kind, name, causes)


def _kind_errors(rt: ResourceType, obj: JsonObject) -> list[Cause]:
    ident = (rt.group, rt.kind)
    spec = obj.get("spec")
    causes: list[Cause] = []
    if ident in {("", "ConfigMap"), ("", "Secret")}:
        for section in ("data", "binaryData", "stringData"):
            values = obj.get(section)
            if values is None:
                continue
            if not isinstance(values, dict):
                causes.append((section, "FieldValueInvalid", "Invalid value: must be a map"))
                continue
            for key in values:
                if len(key) > 253 or not _CONFIG_KEY.fullmatch(key) or key in (".", ".."):
                    causes.append(
                        (
                            f"{section}[{key}]",
                            "FieldValueInvalid",
                            f'Invalid value: "{key}": a valid config key must consist of alphanumeric '
                            "characters, '-', '_' or '.'",
                        )
                    )
    elif ident == ("", "Pod"):
        containers = spec.get("containers") if isinstance(spec, dict) else None
        if not containers:
            causes.append(("spec.containers", "FieldValueRequired", "Required value"))
        else:
            causes += _container_errors(containers, "spec.containers")
        if isinstance(spec, dict):
            causes += pod_spec_errors(spec, "spec")
    elif ident in {
        ("apps", "Deployment"),
        ("apps", "StatefulSet"),
        ("apps", "DaemonSet"),
        ("apps", "ReplicaSet"),
    }:
        template = spec.get("template") if isinstance(spec, dict) else None
        if not isinstance(spec, dict) or not isinstance(spec.get("selector"), dict):
            causes.append(("spec.selector", "FieldValueRequired", "Required value"))
        pod_spec = template.get("spec") if isinstance(template, dict) else None
        containers = pod_spec.get("containers") if isinstance(pod_spec, dict) else None
        if not containers:
            causes.append(("spec.template.spec.containers", "FieldValueRequired", "Required value"))
        else:
            causes += _container_errors(containers, "spec.template.spec.containers")
        if isinstance(pod_spec, dict):
            causes += pod_spec_errors(pod_spec, "spec.template.spec")
        selector = spec.get("selector") if isinstance(spec, dict) else None
        labels = (template or {}).get("metadata", {}).get("labels", {}) if isinstance(template, dict) else {}
        if isinstance(selector, dict) and isinstance(labels, dict):
            wanted = selector.get("matchLabels") or {}
            if isinstance(wanted, dict) and any(labels.get(k) != v for k, v in wanted.items()):
                causes.append(
                    (
                        "spec.template.metadata.labels",
                        "FieldValueInvalid",
                        f"Invalid value: {labels!r}: `selector` does not match template `labels`",
                    )
                )
    elif ident == ("", "PersistentVolumeClaim"):
        if not isinstance(spec, dict) or not spec.get("accessModes"):
            causes.append(
                (
                    "spec.accessModes",
                    "FieldValueRequired",
                    "Required value: at least 1 access mode is required",
                )
            )
        storage = (
            (((spec or {}).get("resources") or {}).get("requests") or {}).get("storage")
            if isinstance(spec, dict)
            else None
        )
        if not storage and not (isinstance(spec, dict) and spec.get("volumeName")):
            causes.append(("spec.resources[storage]", "FieldValueRequired", "Required value"))
    elif ident == ("", "PersistentVolume"):
        if not isinstance(spec, dict) or not (spec.get("capacity") or {}).get("storage"):
            causes.append(("spec.capacity", "FieldValueRequired", "Required value"))
        if not isinstance(spec, dict) or not spec.get("accessModes"):
            causes.append(("spec.accessModes", "FieldValueRequired", "Required value"))
    elif ident == ("storage.k8s.io", "StorageClass"):
        if not obj.get("provisioner"):
            causes.append(("provisioner", "FieldValueRequired", "Required value"))
    elif ident == ("", "Service"):
        ports = spec.get("ports") if isinstance(spec, dict) else None
        service_type = spec.get("type", "ClusterIP") if isinstance(spec, dict) else "ClusterIP"
        if not ports and service_type != "ExternalName" and (spec or {}).get("clusterIP") != "None":
            causes.append(("spec.ports", "FieldValueRequired", "Required value"))
    elif ident == ("apiextensions.k8s.io", "CustomResourceDefinition"):
        causes += crd_errors(obj)
    elif ident in {
        ("rbac.authorization.k8s.io", "RoleBinding"),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
    } and not isinstance(obj.get("roleRef"), dict):
        causes.append(("roleRef", "FieldValueRequired", "Required value"))
    return causes


def _container_errors(containers: Any, field: str) -> list[Cause]:
    if not isinstance(containers, list):
        return [(field, "FieldValueInvalid", "Invalid value: must be a list")]
    causes: list[Cause] = []
    seen: set[str] = set()
    for index, container in enumerate(containers):
        path = f"{field}[{index}]"
        if not isinstance(container, dict):
            causes.append((path, "FieldValueInvalid", "Invalid value: must be an object"))
            continue
        name = container.get("name")
        if not name:
            causes.append((f"{path}.name", "FieldValueRequired", "Required value"))
        elif name in seen:
            causes.append((f"{path}.name", "FieldValueDuplicate", f'Duplicate value: "{name}"'))
        else:
            seen.add(name)
            causes += _rfc1123_label_errors(f"{path}.name", str(name))
        if not container.get("image"):
            causes.append((f"{path}.image", "FieldValueRequired", "Required value"))
    return causes


_RFC1123_LABEL_MESSAGE = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
    "start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
    "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)

# kube's volume sources; a volume names exactly one of them.
_VOLUME_SOURCES = (
    "hostPath",
    "emptyDir",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "gitRepo",
    "secret",
    "nfs",
    "iscsi",
    "glusterfs",
    "persistentVolumeClaim",
    "rbd",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "downwardAPI",
    "fc",
    "azureFile",
    "configMap",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "photonPersistentDisk",
    "projected",
    "portworxVolume",
    "scaleIO",
    "storageos",
    "csi",
    "ephemeral",
    "image",
)


def _rfc1123_label_errors(field: str, value: str) -> list[Cause]:
    if len(value) > 63:
        return [(field, "FieldValueInvalid", f'Invalid value: "{value}": must be no more than 63 characters')]
    if not _DNS1123_LABEL.fullmatch(value):
        return [(field, "FieldValueInvalid", f'Invalid value: "{value}": {_RFC1123_LABEL_MESSAGE}')]
    return []


def relative_path_errors(path: str, field: str) -> list[Cause]:
    """kube's validateLocalDescendingPath: a path inside a volume, never above or beside it."""
    causes: list[Cause] = []
    if path.startswith("/"):
        causes.append((field, "FieldValueInvalid", f'Invalid value: "{path}": must be a relative path'))
    if ".." in path.split("/"):
        causes.append((field, "FieldValueInvalid", f"Invalid value: \"{path}\": must not contain '..'"))
    return causes


def _item_path_errors(path: Any, field: str) -> list[Cause]:
    """kube's validateLocalNonReservedPath for the files a volume projects."""
    if not isinstance(path, str) or not path:
        return [(field, "FieldValueRequired", "Required value")]
    causes = relative_path_errors(path, field)
    if path.startswith("..") and not causes:
        causes.append((field, "FieldValueInvalid", f"Invalid value: \"{path}\": must not start with '..'"))
    return causes


def _items_errors(items: Any, field: str) -> list[Cause]:
    if items is None:
        return []
    if not isinstance(items, list):
        return [(field, "FieldValueInvalid", "Invalid value: must be a list")]
    causes: list[Cause] = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            causes.append((f"{field}[{index}]", "FieldValueInvalid", "Invalid value: must be an object"))
            continue
        causes += _item_path_errors(item.get("path"), f"{field}[{index}].path")
    return causes


def _volume_source_errors(kind: str, source: Any, field: str) -> list[Cause]:
    """The parts of a volume source that name places on disk; the rest the kubelet reads as given."""
    if source is None and kind == "emptyDir":
        return []
    if not isinstance(source, dict):
        return [(field, "FieldValueInvalid", "Invalid value: must be an object")]
    if kind == "hostPath":
        path = source.get("path")
        if not isinstance(path, str) or not path:
            return [(f"{field}.path", "FieldValueRequired", "Required value")]
        causes: list[Cause] = []
        if not path.startswith("/"):
            causes.append(
                (f"{field}.path", "FieldValueInvalid", f'Invalid value: "{path}": must be an absolute path')
            )
        if ".." in path.split("/"):
            causes.append(
                (f"{field}.path", "FieldValueInvalid", f"Invalid value: \"{path}\": must not contain '..'")
            )
        return causes
    if kind in ("configMap", "secret", "downwardAPI"):
        return _items_errors(source.get("items"), f"{field}.items")
    if kind == "projected":
        return _projected_errors(source.get("sources"), f"{field}.sources")
    return []


def _projected_errors(sources: Any, field: str) -> list[Cause]:
    if sources is None:
        return []
    if not isinstance(sources, list):
        return [(field, "FieldValueInvalid", "Invalid value: must be a list")]
    causes: list[Cause] = []
    for index, projection in enumerate(sources):
        path = f"{field}[{index}]"
        if not isinstance(projection, dict):
            causes.append((path, "FieldValueInvalid", "Invalid value: must be an object"))
            continue
        for kind in ("configMap", "secret", "downwardAPI"):
            part = projection.get(kind)
            if part is None:
                continue
            if not isinstance(part, dict):
                causes.append((f"{path}.{kind}", "FieldValueInvalid", "Invalid value: must be an object"))
            else:
                causes += _items_errors(part.get("items"), f"{path}.{kind}.items")
        token = projection.get("serviceAccountToken")
        if token is not None:
            if not isinstance(token, dict):
                causes.append(
                    (f"{path}.serviceAccountToken", "FieldValueInvalid", "Invalid value: must be an object")
                )
            else:
                causes += _item_path_errors(token.get("path"), f"{path}.serviceAccountToken.path")
    return causes


def _volume_errors(volumes: Any, field: str) -> tuple[list[Cause], set[str]]:
    """Every volume's name (a DNS label, unique) and its one source; the valid names."""
    if volumes is None:
        return [], set()
    if not isinstance(volumes, list):
        return [(field, "FieldValueInvalid", "Invalid value: must be a list")], set()
    causes: list[Cause] = []
    names: set[str] = set()
    for index, volume in enumerate(volumes):
        path = f"{field}[{index}]"
        if not isinstance(volume, dict):
            causes.append((path, "FieldValueInvalid", "Invalid value: must be an object"))
            continue
        name = volume.get("name")
        if not isinstance(name, str) or not name:
            causes.append((f"{path}.name", "FieldValueRequired", "Required value"))
        elif name in names:
            causes.append((f"{path}.name", "FieldValueDuplicate", f'Duplicate value: "{name}"'))
        else:
            label = _rfc1123_label_errors(f"{path}.name", name)
            causes += label
            if not label:
                names.add(name)
        kinds = [k for k in _VOLUME_SOURCES if k in volume]
        if not kinds:
            causes.append((path, "FieldValueRequired", "Required value: must specify a volume type"))
        elif len(kinds) > 1:
            causes.append((path, "FieldValueForbidden", "Forbidden: may not specify more than 1 volume type"))
        else:
            causes += _volume_source_errors(kinds[0], volume[kinds[0]], f"{path}.{kinds[0]}")
    return causes, names


def _mount_errors(containers: Any, field: str, volumes: set[str], volume_causes: bool) -> list[Cause]:
    """Each mount names a volume of the pod; subPath and subPathExpr stay inside it."""
    if not isinstance(containers, list):
        return []
    causes: list[Cause] = []
    for index, container in enumerate(containers):
        mounts = container.get("volumeMounts") if isinstance(container, dict) else None
        if mounts is None:
            continue
        path = f"{field}[{index}].volumeMounts"
        if not isinstance(mounts, list):
            causes.append((path, "FieldValueInvalid", "Invalid value: must be a list"))
            continue
        for number, mount in enumerate(mounts):
            at = f"{path}[{number}]"
            if not isinstance(mount, dict):
                causes.append((at, "FieldValueInvalid", "Invalid value: must be an object"))
                continue
            name = mount.get("name")
            if not name:
                causes.append((f"{at}.name", "FieldValueRequired", "Required value"))
            elif name not in volumes and not volume_causes:
                causes.append((f"{at}.name", "FieldValueNotFound", f'Not found: "{name}"'))
            if not mount.get("mountPath"):
                causes.append((f"{at}.mountPath", "FieldValueRequired", "Required value"))
            sub_path, expression = mount.get("subPath"), mount.get("subPathExpr")
            if sub_path and expression:
                causes.append(
                    (
                        f"{at}.subPathExpr",
                        "FieldValueInvalid",
                        f'Invalid value: "{expression}": subPathExpr and subPath are mutually exclusive',
                    )
                )
            for key, value in (("subPath", sub_path), ("subPathExpr", expression)):
                if value is None:
                    continue
                if not isinstance(value, str):
                    causes.append((f"{at}.{key}", "FieldValueInvalid", "Invalid value: must be a string"))
                else:
                    causes += relative_path_errors(value, f"{at}.{key}")
    return causes


def pod_spec_errors(spec: JsonObject, field: str) -> list[Cause]:
    """What kube validates of a pod spec beyond its containers: init containers, volumes, mounts.

    These names and paths become paths on the node, so they are checked as strictly as kube does.
    """
    causes: list[Cause] = []
    inits = spec.get("initContainers")
    if inits is not None:
        causes += _container_errors(inits, f"{field}.initContainers")
        mains = {c.get("name") for c in spec.get("containers") or [] if isinstance(c, dict)}
        for index, init in enumerate(inits if isinstance(inits, list) else []):
            if isinstance(init, dict) and init.get("name") and init.get("name") in mains:
                causes.append(
                    (
                        f"{field}.initContainers[{index}].name",
                        "FieldValueDuplicate",
                        f'Duplicate value: "{init["name"]}"',
                    )
                )
    volume_causes, names = _volume_errors(spec.get("volumes"), f"{field}.volumes")
    causes += volume_causes
    for kind in ("initContainers", "containers"):
        causes += _mount_errors(spec.get(kind), f"{field}.{kind}", names, bool(volume_causes))
    return causes


SERVICE_ACCOUNT_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
_VOLUME_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def add_service_account_volume(pod: JsonObject, account_automount: bool | None, suffix: str) -> None:
    """kube-apiserver's ServiceAccount admission for a new pod.

    Sets ``serviceAccount`` (the deprecated twin of ``serviceAccountName``) and, unless the
    pod or its service account turn automounting off, adds the ``kube-api-access-<suffix>``
    projected volume (token, cluster CA, namespace) mounted read-only at the usual path
    in every container that has no mount there yet.
    """
    spec = pod.get("spec")
    if not isinstance(spec, dict):
        return
    account = spec.get("serviceAccountName") or "default"
    spec["serviceAccountName"] = account
    spec["serviceAccount"] = account
    automount = spec.get("automountServiceAccountToken")
    if automount is None:
        automount = account_automount
    if automount is False:
        return
    volumes = spec.setdefault("volumes", [])
    if not isinstance(volumes, list):
        return
    name = f"kube-api-access-{suffix}"
    if any(isinstance(v, dict) and str(v.get("name", "")).startswith("kube-api-access-") for v in volumes):
        return
    volumes.append(
        {
            "name": name,
            "projected": {
                "defaultMode": 420,
                "sources": [
                    {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                    {
                        "configMap": {
                            "name": "kube-root-ca.crt",
                            "items": [{"key": "ca.crt", "path": "ca.crt"}],
                        }
                    },
                    {
                        "downwardAPI": {
                            "items": [
                                {
                                    "path": "namespace",
                                    "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
                                }
                            ]
                        }
                    },
                ],
            },
        }
    )
    for kind in ("initContainers", "containers"):
        for container in spec.get(kind) or []:
            if not isinstance(container, dict):
                continue
            mounts = container.setdefault("volumeMounts", [])
            if not isinstance(mounts, list):
                continue
            if any(isinstance(m, dict) and m.get("mountPath") == SERVICE_ACCOUNT_MOUNT for m in mounts):
                continue
            mounts.append({"name": name, "readOnly": True, "mountPath": SERVICE_ACCOUNT_MOUNT})


def volume_suffix(random_choice: Any) -> str:
    """Five characters as kube's utilrand.String draws them for generated names."""
    return "".join(random_choice(_VOLUME_SUFFIX_ALPHABET) for _ in range(5))
