"""Decoding the Kubernetes protobuf request bodies that kubectl's typed clients send.

kubectl sends `application/vnd.kubernetes.protobuf` for everything it builds
with a typed client: `kubectl create namespace|configmap|secret|deployment|...`,
`kubectl auth can-i`, `kubectl certificate approve`. kube-apiserver accepts
them, so the sandbox must too. The body is the `k8s\\0` magic, then a
`runtime.Unknown` envelope (type meta, raw object bytes).

The field tables below cover the messages those commands send. Their field
numbers are part of the Kubernetes wire API; they were checked against the
bodies kubectl itself sends (see the integration tests, which compare every
decoded object with kubectl's own `--dry-run=client -o json`). A field this
module does not know is refused with 415, never dropped: losing part of an
object silently is worse than asking the client for JSON.

Decoding follows Go's JSON encoding of the same structs: the generated
marshallers write every non-pointer field, so zero values are omitted unless
the field is a pointer (it was set) or its JSON tag has no `omitempty`.
"""

from __future__ import annotations

import base64
import datetime as dt
from dataclasses import dataclass
from typing import Any

MAGIC = b"k8s\x00"
CONTENT_TYPE = "application/vnd.kubernetes.protobuf"


class ProtobufError(ValueError):
    """The body cannot be decoded faithfully."""


@dataclass(frozen=True)
class Field:
    name: str
    type: str  # a scalar, "map:<value type>", or a message name
    repeated: bool = False
    # "opt": a pointer in Go (present on the wire means set, so zero is kept);
    # "keep": no omitempty in its JSON tag (zero is emitted too).
    presence: str = ""


def f(name: str, type_: str = "string", *, repeated: bool = False, presence: str = "") -> Field:
    return Field(name, type_, repeated, presence)


def opt(name: str, type_: str) -> Field:
    return Field(name, type_, False, "opt")


def keep(name: str, type_: str = "string") -> Field:
    return Field(name, type_, False, "keep")


def rep(name: str, type_: str = "string") -> Field:
    return Field(name, type_, True)


_OBJECT_META = {
    1: f("name"),
    2: f("generateName"),
    3: f("namespace"),
    4: f("selfLink"),
    5: f("uid"),
    6: f("resourceVersion"),
    7: f("generation", "int64"),
    8: f("creationTimestamp", "Time"),
    9: opt("deletionTimestamp", "Time"),
    10: opt("deletionGracePeriodSeconds", "int64"),
    11: f("labels", "map:string"),
    12: f("annotations", "map:string"),
    13: rep("ownerReferences", "OwnerReference"),
    14: rep("finalizers"),
}


def _typed(spec: str | None = None, status: str | None = None, **extra: Field) -> dict[int, Field]:
    """The usual shape of a kind: metadata = 1, spec = 2, status = 3."""
    fields: dict[int, Field] = {1: f("metadata", "ObjectMeta")}
    if spec:
        fields[2] = f("spec", spec)
    if status:
        fields[3] = f("status", status)
    return fields


MESSAGES: dict[str, dict[int, Field]] = {
    "TypeMeta": {1: f("apiVersion"), 2: f("kind")},
    "ObjectMeta": _OBJECT_META,
    "OwnerReference": {
        1: keep("kind"),
        3: keep("name"),
        4: keep("uid"),
        5: keep("apiVersion"),
        6: opt("controller", "bool"),
        7: opt("blockOwnerDeletion", "bool"),
    },
    "LabelSelector": {
        1: f("matchLabels", "map:string"),
        2: rep("matchExpressions", "LabelSelectorRequirement"),
    },
    "LabelSelectorRequirement": {1: keep("key"), 2: keep("operator"), 3: rep("values")},
    "ObjectReference": {
        1: f("kind"),
        2: f("namespace"),
        3: f("name"),
        4: f("uid"),
        5: f("apiVersion"),
        6: f("resourceVersion"),
        7: f("fieldPath"),
    },
    "LocalObjectReference": {1: f("name")},
    # core/v1
    "Namespace": _typed("NamespaceSpec", "NamespaceStatus"),
    "NamespaceSpec": {1: rep("finalizers")},
    "NamespaceStatus": {1: f("phase")},
    "ConfigMap": {
        1: f("metadata", "ObjectMeta"),
        2: f("data", "map:string"),
        3: f("binaryData", "map:bytes"),
        4: opt("immutable", "bool"),
    },
    "Secret": {
        1: f("metadata", "ObjectMeta"),
        2: f("data", "map:bytes"),
        3: f("type"),
        4: f("stringData", "map:string"),
        5: opt("immutable", "bool"),
    },
    "ServiceAccount": {
        1: f("metadata", "ObjectMeta"),
        2: rep("secrets", "ObjectReference"),
        3: rep("imagePullSecrets", "LocalObjectReference"),
        4: opt("automountServiceAccountToken", "bool"),
    },
    "Service": _typed("ServiceSpec", "ServiceStatus"),
    "ServiceSpec": {
        1: rep("ports", "ServicePort"),
        2: f("selector", "map:string"),
        3: f("clusterIP"),
        4: f("type"),
        5: rep("externalIPs"),
        7: f("sessionAffinity"),
        8: f("loadBalancerIP"),
        9: rep("loadBalancerSourceRanges"),
        10: f("externalName"),
        11: f("externalTrafficPolicy"),
        12: f("healthCheckNodePort", "int32"),
        13: f("publishNotReadyAddresses", "bool"),
        18: rep("clusterIPs"),
    },
    "ServicePort": {
        1: f("name"),
        2: f("protocol"),
        3: keep("port", "int32"),
        4: f("targetPort", "IntOrString"),
        5: f("nodePort", "int32"),
        6: opt("appProtocol", "string"),
    },
    "ServiceStatus": {1: f("loadBalancer", "LoadBalancerStatus")},
    "LoadBalancerStatus": {},
    "ResourceQuota": _typed("ResourceQuotaSpec", "ResourceQuotaStatus"),
    "ResourceQuotaSpec": {1: f("hard", "map:Quantity"), 2: rep("scopes")},
    "ResourceQuotaStatus": {1: f("hard", "map:Quantity"), 2: f("used", "map:Quantity")},
    "PodTemplateSpec": {1: f("metadata", "ObjectMeta"), 2: f("spec", "PodSpec")},
    "PodSpec": {
        2: rep("containers", "Container"),
        3: f("restartPolicy"),
        4: opt("terminationGracePeriodSeconds", "int64"),
        5: opt("activeDeadlineSeconds", "int64"),
        6: f("dnsPolicy"),
        7: f("nodeSelector", "map:string"),
        8: f("serviceAccountName"),
        9: f("serviceAccount"),
        10: f("nodeName"),
        11: f("hostNetwork", "bool"),
        12: f("hostPID", "bool"),
        13: f("hostIPC", "bool"),
        15: rep("imagePullSecrets", "LocalObjectReference"),
        16: f("hostname"),
        17: f("subdomain"),
        19: f("schedulerName"),
        21: opt("automountServiceAccountToken", "bool"),
        24: f("priorityClassName"),
    },
    "Container": {
        1: keep("name"),
        2: f("image"),
        3: rep("command"),
        4: rep("args"),
        5: f("workingDir"),
        6: rep("ports", "ContainerPort"),
        7: rep("env", "EnvVar"),
        8: f("resources", "ResourceRequirements"),
        13: f("terminationMessagePath"),
        14: f("imagePullPolicy"),
        16: f("stdin", "bool"),
        17: f("stdinOnce", "bool"),
        18: f("tty", "bool"),
        20: f("terminationMessagePolicy"),
    },
    "ContainerPort": {
        1: f("name"),
        2: f("hostPort", "int32"),
        3: keep("containerPort", "int32"),
        4: f("protocol"),
        5: f("hostIP"),
    },
    "EnvVar": {1: keep("name"), 2: f("value")},
    "ResourceRequirements": {1: f("limits", "map:Quantity"), 2: f("requests", "map:Quantity")},
    # apps/v1
    "Deployment": _typed("DeploymentSpec", "DeploymentStatus"),
    "DeploymentSpec": {
        1: opt("replicas", "int32"),
        2: opt("selector", "LabelSelector"),
        3: f("template", "PodTemplateSpec"),
        4: f("strategy", "DeploymentStrategy"),
        5: f("minReadySeconds", "int32"),
        6: opt("revisionHistoryLimit", "int32"),
        7: f("paused", "bool"),
        9: opt("progressDeadlineSeconds", "int32"),
    },
    "DeploymentStrategy": {1: f("type"), 2: opt("rollingUpdate", "RollingUpdateDeployment")},
    "RollingUpdateDeployment": {1: opt("maxUnavailable", "IntOrString"), 2: opt("maxSurge", "IntOrString")},
    "DeploymentStatus": {
        1: f("observedGeneration", "int64"),
        2: f("replicas", "int32"),
        3: f("updatedReplicas", "int32"),
        4: f("availableReplicas", "int32"),
        5: f("unavailableReplicas", "int32"),
        7: f("readyReplicas", "int32"),
        8: opt("collisionCount", "int32"),
    },
    # batch/v1
    "Job": _typed("JobSpec", "JobStatus"),
    "JobSpec": {
        1: opt("parallelism", "int32"),
        2: opt("completions", "int32"),
        3: opt("activeDeadlineSeconds", "int64"),
        4: opt("selector", "LabelSelector"),
        5: opt("manualSelector", "bool"),
        6: f("template", "PodTemplateSpec"),
        7: opt("backoffLimit", "int32"),
        8: opt("ttlSecondsAfterFinished", "int32"),
        9: opt("completionMode", "string"),
        10: opt("suspend", "bool"),
    },
    "JobStatus": {
        4: f("active", "int32"),
        5: f("succeeded", "int32"),
        6: f("failed", "int32"),
        7: f("completedIndexes"),
        9: opt("ready", "int32"),
    },
    "CronJob": _typed("CronJobSpec", "CronJobStatus"),
    "CronJobSpec": {
        1: keep("schedule"),
        2: opt("startingDeadlineSeconds", "int64"),
        3: f("concurrencyPolicy"),
        4: opt("suspend", "bool"),
        5: f("jobTemplate", "JobTemplateSpec"),
        6: opt("successfulJobsHistoryLimit", "int32"),
        7: opt("failedJobsHistoryLimit", "int32"),
        8: opt("timeZone", "string"),
    },
    "JobTemplateSpec": {1: f("metadata", "ObjectMeta"), 2: f("spec", "JobSpec")},
    "CronJobStatus": {},
    # rbac.authorization.k8s.io/v1
    "Role": {1: f("metadata", "ObjectMeta"), 2: rep("rules", "PolicyRule")},
    "ClusterRole": {1: f("metadata", "ObjectMeta"), 2: rep("rules", "PolicyRule")},
    "PolicyRule": {
        1: Field("verbs", "string", True, "keep"),
        2: rep("apiGroups"),
        3: rep("resources"),
        4: rep("resourceNames"),
        5: rep("nonResourceURLs"),
    },
    "RoleBinding": {
        1: f("metadata", "ObjectMeta"),
        2: rep("subjects", "Subject"),
        3: keep("roleRef", "RoleRef"),
    },
    "ClusterRoleBinding": {
        1: f("metadata", "ObjectMeta"),
        2: rep("subjects", "Subject"),
        3: keep("roleRef", "RoleRef"),
    },
    "Subject": {1: keep("kind"), 2: f("apiGroup"), 3: keep("name"), 4: f("namespace")},
    "RoleRef": {1: keep("apiGroup"), 2: keep("kind"), 3: keep("name")},
    # scheduling.k8s.io/v1
    "PriorityClass": {
        1: f("metadata", "ObjectMeta"),
        2: keep("value", "int32"),
        3: f("globalDefault", "bool"),
        4: f("description"),
        5: opt("preemptionPolicy", "string"),
    },
    # policy/v1
    "PodDisruptionBudget": _typed("PodDisruptionBudgetSpec", "PodDisruptionBudgetStatus"),
    "PodDisruptionBudgetSpec": {
        1: opt("minAvailable", "IntOrString"),
        2: opt("selector", "LabelSelector"),
        3: opt("maxUnavailable", "IntOrString"),
        4: opt("unhealthyPodEvictionPolicy", "string"),
    },
    "PodDisruptionBudgetStatus": {
        1: f("observedGeneration", "int64"),
        3: keep("disruptionsAllowed", "int32"),
        4: keep("currentHealthy", "int32"),
        5: keep("desiredHealthy", "int32"),
        6: keep("expectedPods", "int32"),
    },
    # networking.k8s.io/v1
    "Ingress": _typed("IngressSpec", "IngressStatus"),
    "IngressSpec": {
        1: opt("defaultBackend", "IngressBackend"),
        2: rep("tls", "IngressTLS"),
        3: rep("rules", "IngressRule"),
        4: opt("ingressClassName", "string"),
    },
    "IngressTLS": {1: rep("hosts"), 2: f("secretName")},
    # The rule's value is embedded in Go and so inlined in JSON (`http` sits on the rule).
    "IngressRule": {1: f("host"), 2: Field("", "IngressRuleValue", False, "inline")},
    "IngressRuleValue": {1: opt("http", "HTTPIngressRuleValue")},
    "HTTPIngressRuleValue": {1: Field("paths", "HTTPIngressPath", True, "keep")},
    "HTTPIngressPath": {1: f("path"), 2: keep("backend", "IngressBackend"), 3: opt("pathType", "string")},
    "IngressBackend": {4: opt("service", "IngressServiceBackend")},
    "IngressServiceBackend": {1: keep("name"), 2: f("port", "ServiceBackendPort")},
    "ServiceBackendPort": {1: f("name"), 2: f("number", "int32")},
    "IngressStatus": {1: f("loadBalancer", "IngressLoadBalancerStatus")},
    "IngressLoadBalancerStatus": {},
    # certificates.k8s.io/v1
    "CertificateSigningRequest": _typed("CertificateSigningRequestSpec", "CertificateSigningRequestStatus"),
    "CertificateSigningRequestSpec": {
        1: keep("request", "bytes"),
        2: f("username"),
        3: f("uid"),
        4: rep("groups"),
        5: rep("usages"),
        6: f("extra", "map:ExtraValue"),
        7: keep("signerName"),
        8: opt("expirationSeconds", "int32"),
    },
    "ExtraValue": {1: rep("items")},
    "CertificateSigningRequestStatus": {
        1: rep("conditions", "CertificateSigningRequestCondition"),
        2: f("certificate", "bytes"),
    },
    "CertificateSigningRequestCondition": {
        1: keep("type"),
        2: f("reason"),
        3: f("message"),
        4: f("lastUpdateTime", "Time"),
        5: f("lastTransitionTime", "Time"),
        6: keep("status"),
    },
    # authorization.k8s.io/v1 and authentication.k8s.io/v1
    "SelfSubjectAccessReview": _typed("SelfSubjectAccessReviewSpec", "SubjectAccessReviewStatus"),
    "SelfSubjectAccessReviewSpec": {
        1: opt("resourceAttributes", "ResourceAttributes"),
        2: opt("nonResourceAttributes", "NonResourceAttributes"),
    },
    "ResourceAttributes": {
        1: f("namespace"),
        2: f("verb"),
        3: f("group"),
        4: f("version"),
        5: f("resource"),
        6: f("subresource"),
        7: f("name"),
    },
    "NonResourceAttributes": {1: f("path"), 2: f("verb")},
    "SubjectAccessReviewStatus": {
        1: keep("allowed", "bool"),
        2: f("reason"),
        3: f("evaluationError"),
        4: f("denied", "bool"),
    },
    "SelfSubjectRulesReview": _typed("SelfSubjectRulesReviewSpec", "SubjectRulesReviewStatus"),
    "SelfSubjectRulesReviewSpec": {1: f("namespace")},
    "SubjectRulesReviewStatus": {3: keep("incomplete", "bool"), 4: f("evaluationError")},
    # authentication.k8s.io/v1 TokenRequest (serviceaccounts/token)
    "TokenRequest": _typed("TokenRequestSpec", "TokenRequestStatus"),
    "TokenRequestStatus": {1: f("token"), 2: f("expirationTimestamp", "Time")},
    "TokenRequestSpec": {
        1: Field("audiences", "string", True, "keep"),
        3: f("boundObjectRef", "BoundObjectReference"),
        4: opt("expirationSeconds", "int64"),
    },
    "BoundObjectReference": {1: f("kind"), 2: f("apiVersion"), 3: f("name"), 4: f("uid")},
    "SelfSubjectReview": {1: f("metadata", "ObjectMeta"), 2: f("status", "SelfSubjectReviewStatus")},
    "SelfSubjectReviewStatus": {1: f("userInfo", "UserInfo")},
    "UserInfo": {1: f("username"), 2: f("uid"), 3: rep("groups"), 4: f("extra", "map:ExtraValue")},
}

# Which message a kind's raw bytes hold (the envelope names the kind).
KINDS = {
    "Namespace", "ConfigMap", "Secret", "ServiceAccount", "Service", "ResourceQuota", "Deployment", "Job",
    "CronJob", "Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding", "PriorityClass",
    "PodDisruptionBudget", "Ingress", "CertificateSigningRequest", "SelfSubjectAccessReview",
    "SelfSubjectRulesReview", "SelfSubjectReview", "TokenRequest",
}  # fmt: skip


# ----------------------------------------------------------------- wire format


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ProtobufError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ProtobufError("varint too long")


def _fields(data: bytes) -> list[tuple[int, int, int | bytes]]:
    """(field number, wire type, value) in wire order."""
    out: list[tuple[int, int, int | bytes]] = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        value: int | bytes
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise ProtobufError("truncated length-delimited field")
            value, pos = data[pos : pos + length], pos + length
        elif wire == 1:
            value, pos = int.from_bytes(data[pos : pos + 8], "little"), pos + 8
        elif wire == 5:
            value, pos = int.from_bytes(data[pos : pos + 4], "little"), pos + 4
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
        out.append((number, wire, value))
    return out


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _time(data: bytes, micro: bool = False) -> str | None:
    seconds = nanos = 0
    for number, _, value in _fields(data):
        if number == 1 and isinstance(value, int):
            seconds = _signed(value)
        elif number == 2 and isinstance(value, int):
            nanos = _signed(value)
    if seconds == 0 and nanos == 0:
        return None  # Go's zero time marshals as null
    moment = dt.datetime.fromtimestamp(seconds, dt.UTC)
    if micro:
        return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos // 1000:06d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _int_or_string(data: bytes) -> int | str:
    kind, number, text = 0, 0, ""
    for field, _, value in _fields(data):
        if field == 1 and isinstance(value, int):
            kind = value
        elif field == 2 and isinstance(value, int):
            number = _signed(value)
        elif field == 3 and isinstance(value, bytes):
            text = value.decode()
    return text if kind == 1 else number


def _scalar(type_: str, wire: int, value: int | bytes, where: str) -> Any:
    if type_ in ("int32", "int64", "bool"):
        if not isinstance(value, int):
            raise ProtobufError(f"{where}: expected a number")
        if type_ == "bool":
            return value != 0
        number = _signed(value)
        if type_ == "int32" and not -(1 << 31) <= number < 1 << 31:
            raise ProtobufError(f"{where}: int32 out of range")
        return number
    if not isinstance(value, bytes):
        raise ProtobufError(f"{where}: expected length-delimited data")
    if type_ == "string":
        try:
            return value.decode()
        except UnicodeDecodeError as exc:
            raise ProtobufError(f"{where}: not UTF-8") from exc
    if type_ == "bytes":
        return base64.b64encode(value).decode()
    if type_ == "Time":
        return _time(value)
    if type_ == "MicroTime":
        return _time(value, micro=True)
    if type_ == "Quantity":
        fields = _fields(value)
        return next((v.decode() for n, _, v in fields if n == 1 and isinstance(v, bytes)), "")
    if type_ == "IntOrString":
        return _int_or_string(value)
    return _message(type_, value, where)


def _is_zero(value: Any) -> bool:
    # Go's omitempty: the zero value of the field's type.
    return (
        value is None
        or value is False
        or (not isinstance(value, bool) and value in ("", 0))
        or (isinstance(value, (dict, list)) and not value)
    )


def _message(name: str, data: bytes, where: str) -> dict[str, Any]:
    schema = MESSAGES.get(name)
    if schema is None:
        raise ProtobufError(f"{where}: message {name} is not known")
    out: dict[str, Any] = {}
    present: set[str] = set()
    for number, wire, value in _fields(data):
        field = schema.get(number)
        if field is None:
            raise ProtobufError(f"{where}: field {number} of {name} is not known to the sandbox")
        path = f"{where}.{field.name}" if field.name else where
        if field.type.startswith("map:"):
            if not isinstance(value, bytes):
                raise ProtobufError(f"{path}: expected a map entry")
            key, item = "", None
            for entry_number, entry_wire, entry_value in _fields(value):
                if entry_number == 1 and isinstance(entry_value, bytes):
                    key = entry_value.decode()
                elif entry_number == 2:
                    item = _scalar(field.type[4:], entry_wire, entry_value, f"{path}[{key}]")
            if field.type == "map:ExtraValue" and isinstance(item, dict):
                item = item.get("items", [])
            out.setdefault(field.name, {})[key] = "" if item is None and field.type == "map:string" else item
        elif field.presence == "inline":
            out.update(_scalar(field.type, wire, value, path))
        elif field.repeated:
            out.setdefault(field.name, []).append(_scalar(field.type, wire, value, path))
        else:
            out[field.name] = _scalar(field.type, wire, value, path)
        present.add(field.name)
    kept: dict[str, Any] = {}
    for key, value in out.items():
        field_presence = next((fl.presence for fl in schema.values() if fl.name == key), "")
        explicit = field_presence in ("opt", "keep") and key in present and value is not None
        if explicit or not _is_zero(value):
            kept[key] = value
    return kept


def decode(body: bytes) -> dict[str, Any]:
    """The JSON form of a protobuf request body, or ProtobufError."""
    if not body.startswith(MAGIC):
        raise ProtobufError("the body does not start with the Kubernetes protobuf magic number")
    type_meta: dict[str, Any] = {}
    raw = b""
    for number, _, value in _fields(body[len(MAGIC) :]):
        if number == 1 and isinstance(value, bytes):
            type_meta = _message("TypeMeta", value, "typeMeta")
        elif number == 2 and isinstance(value, bytes):
            raw = value
        elif number in (3, 4) and isinstance(value, bytes) and value:
            raise ProtobufError("encoded or nested content types are not supported")
    kind = str(type_meta.get("kind") or "")
    if kind not in KINDS:
        raise ProtobufError(f"protobuf bodies of kind {kind or '(none)'} are not known to the sandbox")
    return {"apiVersion": type_meta.get("apiVersion", ""), "kind": kind, **_message(kind, raw, kind)}
