"""OpenAPI v3 documents for the kinds the sandbox serves.

kubectl reads `/openapi/v3` for three decisions that change what it sends:

* whether the server validates fields itself (it looks for a ``fieldValidation``
  query parameter on the PATCH operation tagged with the object's
  group/version/kind; if present, `kubectl apply`/`create` leave validation to
  the server instead of failing on a missing client-side schema);
* how to compute `kubectl apply`'s patch (it uses strategic merge from the
  document when the PATCH operation accepts that media type);
* what `kubectl explain` prints.

The built-in schemas here are deliberately shallow (spec and status accept any
field) because the sandbox does not carry the full Kubernetes schemas; see the
note at `_PATCH_MEDIA_TYPES` for why that forces what the PATCH operations say.
Custom resources get their CRD's schema, which is complete by definition.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterable
from typing import Any

from strongroom.sandbox.discovery import GIT_VERSION, subresource_kind
from strongroom.sandbox.resources import ResourceRegistry, ResourceType

JSON = dict[str, Any]

META = "io.k8s.apimachinery.pkg.apis.meta.v1"
OBJECT_META = f"{META}.ObjectMeta"
LIST_META = f"{META}.ListMeta"
_REF_PREFIX = "#/components/schemas/"

# kubectl apply computes a strategic merge patch from this document whenever
# the PATCH requestBody lists "application/strategic-merge-patch+json". Our
# built-in schemas lack the patch-merge-key and list-type markers of the real
# Kubernetes schemas, so a patch computed from them would replace whole lists
# (containers, ports, env). Leaving that media type out makes kubectl fall back
# to its compiled-in Go types, which carry the right merge keys. Custom
# resources never accept strategic merge patch, exactly as in kube-apiserver.
_PATCH_MEDIA_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/apply-patch+yaml",
)

_RESPONSE_MEDIA_TYPES = ("application/json", "application/yaml", "application/vnd.kubernetes.protobuf")
_WATCH_MEDIA_TYPES = (
    "application/json",
    "application/yaml",
    "application/vnd.kubernetes.protobuf",
    "application/json;stream=watch",
    "application/vnd.kubernetes.protobuf;stream=watch",
)


def _ref(name: str) -> JSON:
    return {"$ref": _REF_PREFIX + name}


def _string(description: str, fmt: str | None = None) -> JSON:
    schema: JSON = {"type": "string", "description": description}
    if fmt:
        schema["format"] = fmt
    return schema


def _integer(description: str, fmt: str = "int32") -> JSON:
    return {"type": "integer", "format": fmt, "description": description}


def _boolean(description: str) -> JSON:
    return {"type": "boolean", "description": description}


def _free_object(description: str) -> JSON:
    return {"type": "object", "description": description, "x-kubernetes-preserve-unknown-fields": True}


def _free_list(description: str) -> JSON:
    return {
        "type": "array",
        "description": description,
        "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    }


def _string_map(description: str, fmt: str | None = None) -> JSON:
    values: JSON = {"type": "string", "default": ""}
    if fmt:
        values["format"] = fmt
    return {"type": "object", "description": description, "additionalProperties": values}


def _string_list(description: str) -> JSON:
    return {"type": "array", "description": description, "items": {"type": "string", "default": ""}}


def _embedded(name: str, description: str) -> JSON:
    # kube-apiserver wraps references in allOf so a description can sit beside them,
    # and gives embedded structs an empty default (never scalars such as Time).
    schema: JSON = {"allOf": [_ref(name)], "description": description}
    if not name.endswith((".Time", ".MicroTime")):
        schema["default"] = {}
    return schema


_API_VERSION_DOC = (
    "APIVersion defines the versioned schema of this representation of an object. Servers should "
    "convert recognized schemas to the latest internal value, and may reject unrecognized values."
)
_KIND_DOC = (
    "Kind is a string value representing the REST resource this object represents. Servers may infer "
    "this from the endpoint the client submits requests to. Cannot be updated. In CamelCase."
)
_METADATA_DOC = "Standard object's metadata."
_LIST_METADATA_DOC = "Standard list metadata."


def _meta_schemas() -> dict[str, JSON]:
    """The apimachinery types every kind refers to, with short descriptions for `kubectl explain`."""
    time_ref = "io.k8s.apimachinery.pkg.apis.meta.v1.Time"
    return {
        time_ref: {
            "type": "string",
            "format": "date-time",
            "description": "A wrapper around time which marshals to RFC 3339 in UTC, with second precision.",
        },
        f"{META}.MicroTime": {
            "type": "string",
            "format": "date-time",
            "description": "A version of Time with microsecond precision.",
        },
        f"{META}.FieldsV1": {
            "type": "object",
            "description": "The set of fields a manager owns, in the FieldsV1 trie format.",
        },
        f"{META}.ManagedFieldsEntry": {
            "type": "object",
            "description": "Records the workflow identifier (manager) and the fields it manages.",
            "properties": {
                "apiVersion": _string("The version of the resource this field set applies to."),
                "fieldsType": _string('The format of fieldsV1; only "FieldsV1" exists.'),
                "fieldsV1": _embedded(f"{META}.FieldsV1", "The fields the manager owns."),
                "manager": _string("The identifier of the workflow managing these fields."),
                "operation": _string('The operation that created this entry: "Apply" or "Update".'),
                "subresource": _string("The subresource used to update the object, if any."),
                "time": _embedded(time_ref, "When the fields were last changed by this manager."),
            },
        },
        f"{META}.OwnerReference": {
            "type": "object",
            "description": "Enough information to identify an owning object in the same namespace.",
            "required": ["apiVersion", "kind", "name", "uid"],
            "properties": {
                "apiVersion": _string("API version of the referent."),
                "blockOwnerDeletion": _boolean(
                    "If true, the owner cannot be deleted from storage before this reference is removed."
                ),
                "controller": _boolean("If true, this reference points to the managing controller."),
                "kind": _string("Kind of the referent."),
                "name": _string("Name of the referent."),
                "uid": _string("UID of the referent."),
            },
            "x-kubernetes-map-type": "atomic",
        },
        OBJECT_META: {
            "type": "object",
            "description": "Metadata that all persisted resources must have, including user-created objects.",
            "properties": {
                "annotations": _string_map(
                    "Unstructured key value map stored with a resource that may be set by external "
                    "tools to store and retrieve arbitrary metadata. Not queryable."
                ),
                "creationTimestamp": _embedded(
                    time_ref, "When this object was created, set by the server. Read-only."
                ),
                "deletionGracePeriodSeconds": _integer(
                    "Seconds allowed for graceful termination before the object is removed.", "int64"
                ),
                "deletionTimestamp": _embedded(
                    time_ref, "When this object will be deleted, set by the server on a graceful delete."
                ),
                "finalizers": {
                    **_string_list(
                        "Must be empty before the object is deleted from the registry; each entry "
                        "identifies a component responsible for a cleanup step."
                    ),
                    "x-kubernetes-list-type": "set",
                    "x-kubernetes-patch-strategy": "merge",
                },
                "generateName": _string(
                    "Optional prefix the server uses to generate a unique name when name is empty."
                ),
                "generation": _integer(
                    "A sequence number representing a specific generation of the desired state.", "int64"
                ),
                "labels": _string_map(
                    "Map of string keys and values that can be used to organize and categorize "
                    "(scope and select) objects."
                ),
                "managedFields": {
                    "type": "array",
                    "description": "Which workflow manages which fields, maintained by the server.",
                    "items": _ref(f"{META}.ManagedFieldsEntry"),
                    "x-kubernetes-list-type": "atomic",
                },
                "name": _string(
                    "Name must be unique within a namespace. Is required when creating resources, "
                    "although some resources may allow a client to request a generated name."
                ),
                "namespace": _string(
                    "The namespace within which the name must be unique. An empty namespace is "
                    'equivalent to the "default" namespace for namespaced kinds.'
                ),
                "ownerReferences": {
                    "type": "array",
                    "description": (
                        "Objects this object depends on; when all are deleted, it is garbage collected."
                    ),
                    "items": _ref(f"{META}.OwnerReference"),
                    "x-kubernetes-list-map-keys": ["uid"],
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-patch-merge-key": "uid",
                    "x-kubernetes-patch-strategy": "merge",
                },
                "resourceVersion": _string(
                    "An opaque value identifying the internal version of this object, used for "
                    "optimistic concurrency and watches."
                ),
                "selfLink": _string("Deprecated; the system does not populate it."),
                "uid": _string("The unique in time and space value for this object, set by the server."),
            },
        },
        LIST_META: {
            "type": "object",
            "description": "Metadata that synthetic resources (lists) must have.",
            "properties": {
                "continue": _string("Set when the list was truncated; pass it back to fetch the next page."),
                "remainingItemCount": _integer(
                    "The number of items left after this page, if known.", "int64"
                ),
                "resourceVersion": _string("The version of the list, usable to start a watch."),
                "selfLink": _string("Deprecated; the system does not populate it."),
            },
        },
        f"{META}.StatusCause": {
            "type": "object",
            "description": "More information about one cause of an error.",
            "properties": {
                "field": _string("The field of the resource that caused the error, if any."),
                "message": _string("A human-readable description of the cause."),
                "reason": _string("A machine-readable description of the cause."),
            },
        },
        f"{META}.StatusDetails": {
            "type": "object",
            "description": "Extra attributes of a Status that clients may use.",
            "properties": {
                "causes": {
                    "type": "array",
                    "description": "The causes of the failure.",
                    "items": _ref(f"{META}.StatusCause"),
                    "x-kubernetes-list-type": "atomic",
                },
                "group": _string("The group of the resource the status is about."),
                "kind": _string("The kind of the resource the status is about."),
                "name": _string("The name of the resource the status is about."),
                "retryAfterSeconds": _integer("Seconds to wait before retrying, if any."),
                "uid": _string("The UID of the resource, if any."),
            },
        },
        f"{META}.Status": {
            "type": "object",
            "description": "The result of a call that does not return another object.",
            "properties": {
                "apiVersion": _string(_API_VERSION_DOC),
                "code": _integer("The suggested HTTP return code."),
                "details": {**_embedded(f"{META}.StatusDetails", "Extended data for the reason.")},
                "kind": _string(_KIND_DOC),
                "message": _string("A human-readable description of the status."),
                "metadata": _embedded(LIST_META, _LIST_METADATA_DOC),
                "reason": _string("A machine-readable description of why the operation failed."),
                "status": _string('"Success" or "Failure".'),
            },
            "x-kubernetes-group-version-kind": [{"group": "", "kind": "Status", "version": "v1"}],
        },
        f"{META}.Preconditions": {
            "type": "object",
            "description": "Conditions that must hold before a delete is carried out.",
            "properties": {
                "resourceVersion": _string("The target resource version."),
                "uid": _string("The target UID."),
            },
        },
        f"{META}.DeleteOptions": {
            "type": "object",
            "description": "Options for a delete request.",
            "properties": {
                "apiVersion": _string(_API_VERSION_DOC),
                "dryRun": _string_list("When present, modifications are not persisted."),
                "gracePeriodSeconds": _integer("Seconds before the object should be deleted.", "int64"),
                "ignoreStoreReadErrorWithClusterBreakingPotential": _boolean(
                    "Delete an object whose stored form cannot be read. Dangerous."
                ),
                "kind": _string(_KIND_DOC),
                "orphanDependents": _boolean("Deprecated: use propagationPolicy."),
                "preconditions": _embedded(f"{META}.Preconditions", "Must be fulfilled before deletion."),
                "propagationPolicy": _string(
                    'How garbage collection treats dependents: "Orphan", "Background" or "Foreground".'
                ),
            },
        },
        f"{META}.Patch": {
            "type": "object",
            "description": "Gives a concrete name and type to the Kubernetes PATCH request body.",
        },
        f"{META}.WatchEvent": {
            "type": "object",
            "description": "An event of a watch stream.",
            "required": ["type", "object"],
            "properties": {
                "object": {"type": "object", "description": "The object the event is about."},
                "type": _string('"ADDED", "MODIFIED", "DELETED", "BOOKMARK" or "ERROR".'),
            },
        },
    }


def _scale_schema() -> JSON:
    return {
        "type": "object",
        "description": "Represents a scaling request for a resource.",
        "properties": {
            "apiVersion": _string(_API_VERSION_DOC),
            "kind": _string(_KIND_DOC),
            "metadata": _embedded(OBJECT_META, _METADATA_DOC),
            "spec": {
                "type": "object",
                "description": "The desired scale of the object.",
                "properties": {"replicas": _integer("The desired number of instances.")},
            },
            "status": {
                "type": "object",
                "description": "The current status of the scale.",
                "properties": {
                    "replicas": _integer("The actual number of observed instances."),
                    "selector": _string("The label selector of the pods counted in replicas."),
                },
            },
        },
        "x-kubernetes-group-version-kind": [{"group": "autoscaling", "kind": "Scale", "version": "v1"}],
    }


_SPEC = "spec"
_STATUS = "status"

# Top-level fields of built-in kinds that are not spec/status, so a server that
# checks unknown fields against these schemas sees the real shape of, say, a
# ConfigMap. Kinds not listed have spec and status.
_TOP_LEVEL_FIELDS: dict[tuple[str, str], dict[str, JSON]] = {
    ("", "ConfigMap"): {
        "binaryData": _string_map("Binary data, base64-encoded.", "byte"),
        "data": _string_map("Configuration data."),
        "immutable": _boolean("If true, the data cannot be changed after creation."),
    },
    ("", "Secret"): {
        "data": _string_map("Secret data, base64-encoded.", "byte"),
        "immutable": _boolean("If true, the data cannot be changed after creation."),
        "stringData": _string_map("Write-only convenience: plain values merged into data on write."),
        "type": _string("Used to facilitate programmatic handling of secret data."),
    },
    ("", "ServiceAccount"): {
        "automountServiceAccountToken": _boolean("Whether pods running as this account mount a token."),
        "imagePullSecrets": _free_list("Secrets used to pull images for pods using this account."),
        "secrets": _free_list("Secrets pods running as this account may use."),
    },
    ("", "Endpoints"): {"subsets": _free_list("The addresses and ports that comprise a service.")},
    ("", "Event"): {
        "action": _string("What action was taken or failed regarding the object."),
        "count": _integer("The number of times this event has occurred."),
        "eventTime": _string("When this event was first observed.", "date-time"),
        "firstTimestamp": _string("When the event was first recorded.", "date-time"),
        "involvedObject": _free_object("The object this event is about."),
        "lastTimestamp": _string("When the most recent occurrence of this event was recorded.", "date-time"),
        "message": _string("A human-readable description of the status of this operation."),
        "reason": _string("A short, machine-understandable reason for the transition."),
        "related": _free_object("An optional secondary object for more complex actions."),
        "reportingComponent": _string("The controller that emitted this event."),
        "reportingInstance": _string("The ID of the controller instance."),
        "series": _free_object("Data about the event series this event represents."),
        "source": _free_object("The component reporting this event."),
        "type": _string("Type of this event (Normal, Warning)."),
    },
    ("", "LimitRange"): {_SPEC: _free_object("The limits enforced.")},
    ("events.k8s.io", "Event"): {
        "action": _string("What action was taken or failed regarding the regarding object."),
        "deprecatedCount": _integer("Deprecated field kept for backward compatibility."),
        "deprecatedFirstTimestamp": _string("Deprecated field kept for backward compatibility.", "date-time"),
        "deprecatedLastTimestamp": _string("Deprecated field kept for backward compatibility.", "date-time"),
        "deprecatedSource": _free_object("Deprecated field kept for backward compatibility."),
        "eventTime": _string("When this event was first observed.", "date-time"),
        "note": _string("A human-readable description of the status of this operation."),
        "reason": _string("Why the action was taken."),
        "regarding": _free_object("The object this event is about."),
        "related": _free_object("An optional secondary object for more complex actions."),
        "reportingController": _string("The controller that emitted this event."),
        "reportingInstance": _string("The ID of the controller instance."),
        "series": _free_object("Data about the event series this event represents."),
        "type": _string("Type of this event (Normal, Warning)."),
    },
    ("rbac.authorization.k8s.io", "Role"): {"rules": _free_list("The policy rules of this role.")},
    ("rbac.authorization.k8s.io", "ClusterRole"): {
        "aggregationRule": _free_object("How to build the rules of this role from other roles."),
        "rules": _free_list("The policy rules of this role."),
    },
    ("rbac.authorization.k8s.io", "RoleBinding"): {
        "roleRef": _free_object("The role this binding grants."),
        "subjects": _free_list("The subjects the role applies to."),
    },
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): {
        "roleRef": _free_object("The cluster role this binding grants."),
        "subjects": _free_list("The subjects the role applies to."),
    },
    ("storage.k8s.io", "StorageClass"): {
        "allowVolumeExpansion": _boolean("Whether volumes of this class can be expanded."),
        "allowedTopologies": _free_list("Where volumes of this class may be provisioned."),
        "mountOptions": _string_list("Mount options of volumes of this class."),
        "parameters": _string_map("Parameters for the provisioner."),
        "provisioner": _string("The provisioner of volumes of this class."),
        "reclaimPolicy": _string("What happens to released volumes: Delete or Retain."),
        "volumeBindingMode": _string("When volumes are bound and provisioned."),
    },
    ("networking.k8s.io", "NetworkPolicy"): {_SPEC: _free_object("The desired network policy.")},
    ("coordination.k8s.io", "Lease"): {_SPEC: _free_object("The specification of the lease.")},
    ("scheduling.k8s.io", "PriorityClass"): {
        "description": _string("When this priority class should be used."),
        "globalDefault": _boolean("Whether this class is the default for pods without one."),
        "preemptionPolicy": _string("Whether pods of this class may preempt lower-priority pods."),
        "value": _integer("The priority of pods of this class."),
    },
}

_KIND_DOCS: dict[str, str] = {
    "Namespace": "Namespace provides a scope for names.",
    "Pod": (
        "Pod is a collection of containers that can run on a host, created by clients and scheduled"
        " onto hosts."
    ),
    "Service": (
        "Service is a named abstraction of a software service: a local port that the proxy listens "
        "on and the selector that picks the pods answering on it."
    ),
    "Endpoints": "Endpoints is the set of addresses and ports that implement a service.",
    "ConfigMap": "ConfigMap holds configuration data for pods to consume.",
    "Secret": "Secret holds secret data of a certain type, at most 1MB in total.",
    "ServiceAccount": (
        "ServiceAccount binds together a name understood by users and systems, a principal that can"
        " be authenticated and authorized, and a set of secrets."
    ),
    "PersistentVolume": (
        "PersistentVolume is a storage resource provisioned by an administrator, analogous to a node."
    ),
    "PersistentVolumeClaim": (
        "PersistentVolumeClaim is a user's request for and claim to a persistent volume."
    ),
    "Node": "Node is a worker node in Kubernetes; each node has a unique identifier in the cache.",
    "Event": "Event is a report of an event somewhere in the cluster.",
    "LimitRange": "LimitRange sets resource usage limits for each kind of resource in a namespace.",
    "ResourceQuota": "ResourceQuota sets aggregate quota restrictions enforced per namespace.",
    "ReplicationController": (
        "ReplicationController represents the configuration of a replication controller."
    ),
    "Deployment": "Deployment enables declarative updates for Pods and ReplicaSets.",
    "StatefulSet": "StatefulSet represents a set of pods with consistent identities and stable storage.",
    "DaemonSet": "DaemonSet represents the configuration of a daemon set, a pod on every eligible node.",
    "ReplicaSet": "ReplicaSet ensures that a specified number of pod replicas are running at any given time.",
    "Job": "Job represents the configuration of a single job.",
    "CronJob": "CronJob represents the configuration of a single cron job.",
    "Role": (
        "Role is a namespaced, logical grouping of PolicyRules that can be referenced as a unit by "
        "a RoleBinding."
    ),
    "RoleBinding": "RoleBinding references a role and grants it to subjects within a namespace.",
    "ClusterRole": "ClusterRole is a cluster-level, logical grouping of PolicyRules.",
    "ClusterRoleBinding": (
        "ClusterRoleBinding references a ClusterRole and grants it to subjects cluster-wide."
    ),
    "StorageClass": (
        "StorageClass describes the parameters for a class of storage for which volumes can be "
        "dynamically provisioned."
    ),
    "Ingress": "Ingress is a collection of rules that allow inbound connections to reach backends.",
    "NetworkPolicy": "NetworkPolicy describes what network traffic is allowed for a set of Pods.",
    "CustomResourceDefinition": (
        "CustomResourceDefinition represents a resource that should be exposed on the API server."
    ),
    "CertificateSigningRequest": (
        "CertificateSigningRequest objects provide a mechanism to obtain x509 certificates by "
        "submitting a certificate signing request and having it asynchronously approved and issued."
    ),
    "Lease": "Lease defines a lease concept.",
    "PodDisruptionBudget": (
        "PodDisruptionBudget limits the number of pods of a collection that are down simultaneously"
        " from voluntary disruptions."
    ),
    "PriorityClass": "PriorityClass maps a priority class name to the integer value of a priority.",
}


def schema_name(group: str, version: str, kind: str, builtin: bool = True) -> str:
    """The components.schemas key kube-apiserver uses for a kind."""
    if group == "apiextensions.k8s.io":
        return f"io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.{version}.{kind}"
    if not builtin:
        return ".".join([*reversed(group.split(".")), version, kind])
    short = "core" if not group else group.removesuffix(".k8s.io").split(".")[0]
    return f"io.k8s.api.{short}.{version}.{kind}"


def _gvk(group: str, version: str, kind: str) -> JSON:
    return {"group": group, "version": version, "kind": kind}


def _builtin_schema(rt: ResourceType) -> JSON:
    fields = _TOP_LEVEL_FIELDS.get((rt.group, rt.kind))
    if fields is None:
        # preserve-unknown-fields: the sandbox does not carry the full schemas, and a
        # server-side strict check must not reject fields it simply doesn't know.
        fields = {
            _SPEC: _free_object(f"The desired state of the {rt.kind}."),
            _STATUS: _free_object(f"The most recently observed state of the {rt.kind}. Read-only."),
        }
    properties: JSON = {
        "apiVersion": _string(_API_VERSION_DOC),
        "kind": _string(_KIND_DOC),
        "metadata": _embedded(OBJECT_META, _METADATA_DOC),
        **fields,
    }
    return {
        "type": "object",
        "description": _KIND_DOCS.get(rt.kind, f"{rt.kind} is a {rt.group or 'core'} {rt.version} resource."),
        "properties": dict(sorted(properties.items())),
        "x-kubernetes-group-version-kind": [_gvk(rt.group, rt.version, rt.kind)],
    }


def _custom_schema(rt: ResourceType) -> JSON:
    """The CRD's openAPIV3Schema, plus the type-meta fields kube-apiserver adds to it."""
    schema: JSON = (
        copy.deepcopy(rt.schema)
        if rt.schema
        else {
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": True,
        }
    )
    properties: JSON = dict(schema.get("properties") or {})
    properties["apiVersion"] = _string(_API_VERSION_DOC)
    properties["kind"] = _string(_KIND_DOC)
    properties["metadata"] = _embedded(OBJECT_META, _METADATA_DOC)
    schema["properties"] = properties
    schema.setdefault("type", "object")
    schema["x-kubernetes-group-version-kind"] = [_gvk(rt.group, rt.version, rt.kind)]
    return schema


def _list_schema(rt: ResourceType, item_schema: str) -> JSON:
    return {
        "type": "object",
        "description": f"{rt.list_kind} is a list of {rt.kind} objects.",
        "required": ["items"],
        "properties": {
            "apiVersion": _string(_API_VERSION_DOC),
            "items": {
                "type": "array",
                "description": f"List of {rt.resource}.",
                "items": _ref(item_schema),
            },
            "kind": _string(_KIND_DOC),
            "metadata": _embedded(LIST_META, _LIST_METADATA_DOC),
        },
        "x-kubernetes-group-version-kind": [_gvk(rt.group, rt.version, rt.list_kind)],
    }


def _camel_group(group: str) -> str:
    """Operation-id group part as kube-apiserver spells it.

    "" -> Core, rbac.authorization.k8s.io -> RbacAuthorization, example.com -> ExampleCom.
    """
    if not group:
        return "Core"
    return "".join(part[:1].upper() + part[1:] for part in group.removesuffix(".k8s.io").split("."))


def _tag(group: str, version: str) -> str:
    camel = _camel_group(group)
    return f"{camel[:1].lower()}{camel[1:]}_{version}"


# Parameters. kube-apiserver defines them once in components.parameters and refers to
# them, but client-go's query-parameter check reads inline parameters as well, so we inline.


def _query(name: str, schema: JSON, description: str) -> JSON:
    return {
        "name": name,
        "in": "query",
        "description": description,
        "schema": {**schema, "uniqueItems": True},
    }


_STR: JSON = {"type": "string"}
_BOOL: JSON = {"type": "boolean"}
_INT: JSON = {"type": "integer"}

_PRETTY = _query("pretty", _STR, "If 'true', the output is pretty printed.")
_DRY_RUN = _query(
    "dryRun", _STR, "When present, modifications are not persisted. The only valid value is 'All'."
)
_FIELD_MANAGER = _query("fieldManager", _STR, "The name of the actor or entity making these changes.")
_FIELD_VALIDATION = _query(
    "fieldValidation",
    _STR,
    "How the server handles objects with unknown or duplicate fields: Ignore, Warn (the default) or Strict.",
)
_FORCE = _query("force", _BOOL, "Force apply requests to take fields owned by other managers.")
_LIST_PARAMS = [
    _query("allowWatchBookmarks", _BOOL, "Request watch events of type BOOKMARK."),
    _query("continue", _STR, "The continue token returned by the previous page of a list."),
    _query("fieldSelector", _STR, "Restrict the returned objects by their fields."),
    _query("labelSelector", _STR, "Restrict the returned objects by their labels."),
    _query("limit", _INT, "The maximum number of objects to return in one page."),
    _query("resourceVersion", _STR, "Constrains which resource versions the request may be served from."),
    _query("resourceVersionMatch", _STR, "How resourceVersion is applied to list calls."),
    _query("sendInitialEvents", _BOOL, "With watch, start with synthetic events for the current state."),
    _query("timeoutSeconds", _INT, "Timeout for the list/watch call."),
    _query("watch", _BOOL, "Watch for changes instead of listing."),
]
_DELETE_PARAMS = [
    _DRY_RUN,
    _query("gracePeriodSeconds", _INT, "Seconds before the object should be deleted."),
    _query(
        "ignoreStoreReadErrorWithClusterBreakingPotential",
        _BOOL,
        "Delete an object whose stored form cannot be read. Dangerous.",
    ),
    _query("orphanDependents", _BOOL, "Deprecated: use propagationPolicy."),
    _query("propagationPolicy", _STR, "Whether and how garbage collection is performed."),
]


def _path_param(name: str, description: str) -> JSON:
    return {"name": name, "in": "path", "description": description, "required": True, "schema": _STR}


def _content(schema: JSON, media_types: Iterable[str]) -> JSON:
    return {media: {"schema": schema} for media in media_types}


def _responses(
    schema: JSON, codes: Iterable[str], media_types: Iterable[str] = _RESPONSE_MEDIA_TYPES
) -> JSON:
    names = {"200": "OK", "201": "Created", "202": "Accepted"}
    responses: JSON = {
        code: {"description": names[code], "content": _content(schema, media_types)} for code in codes
    }
    responses["401"] = {"description": "Unauthorized"}
    return responses


_WRITE_PARAMS = [_DRY_RUN, _FIELD_MANAGER, _FIELD_VALIDATION]
_PATCH_PARAMS = [_DRY_RUN, _FIELD_MANAGER, _FIELD_VALIDATION, _FORCE]


class _GroupVersionDoc:
    """Builds one group-version document: paths plus the schemas they refer to."""

    def __init__(self, group: str, version: str) -> None:
        self.group = group
        self.version = version
        self.prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"
        self.camel = _camel_group(group) + version[:1].upper() + version[1:]
        self.tag = _tag(group, version)
        self.paths: dict[str, JSON] = {}
        self.schemas: dict[str, JSON] = {}

    def _op(
        self,
        action: str,
        operation_id: str,
        gvk: JSON,
        *,
        description: str,
        responses: JSON,
        parameters: list[JSON] | None = None,
        body: JSON | None = None,
    ) -> JSON:
        op: JSON = {"tags": [self.tag], "description": description, "operationId": operation_id}
        if parameters:
            op["parameters"] = parameters
        if body is not None:
            media_types = _PATCH_MEDIA_TYPES if action == "patch" else ("*/*",)
            op["requestBody"] = {"content": _content(body, media_types), "required": True}
        op["responses"] = responses
        # kubectl finds operations by these two extensions, not by path.
        op["x-kubernetes-action"] = action
        op["x-kubernetes-group-version-kind"] = gvk
        return op

    def _patch_op(self, operation_id: str, gvk: JSON, schema: JSON, description: str) -> JSON:
        return self._op(
            "patch",
            operation_id,
            gvk,
            description=description,
            responses=_responses(schema, ["200", "201"]),
            parameters=_PATCH_PARAMS,
            body=_ref(f"{META}.Patch"),
        )

    def add(self, rt: ResourceType) -> None:
        name = schema_name(rt.group, rt.version, rt.kind, rt.builtin)
        self.schemas[name] = _builtin_schema(rt) if rt.builtin else _custom_schema(rt)
        self.schemas[name + "List"] = _list_schema(rt, name)
        obj, lst = _ref(name), _ref(name + "List")
        gvk = _gvk(rt.group, rt.version, rt.kind)
        verbs = set(rt.verbs)
        ns = "Namespaced" if rt.namespaced else ""
        kind_id = f"{self.camel}{ns}{rt.kind}"
        kind = rt.kind

        if rt.namespaced:
            scope = [_path_param("namespace", "object name and auth scope, such as for teams and projects")]
            collection = f"{self.prefix}/namespaces/{{namespace}}/{rt.resource}"
            watch_collection = f"{self.prefix}/watch/namespaces/{{namespace}}/{rt.resource}"
        else:
            scope = []
            collection = f"{self.prefix}/{rt.resource}"
            watch_collection = f"{self.prefix}/watch/{rt.resource}"
        item = f"{collection}/{{name}}"
        name_param = _path_param("name", f"name of the {kind}")
        item_params = [name_param, *scope, _PRETTY]
        list_responses = _responses(lst, ["200"], _WATCH_MEDIA_TYPES)
        delete_options = _ref(f"{META}.DeleteOptions")

        coll: JSON = {}
        if "list" in verbs:
            coll["get"] = self._op(
                "list",
                f"list{kind_id}",
                gvk,
                description=f"list or watch objects of kind {kind}",
                responses=list_responses,
                parameters=_LIST_PARAMS,
            )
        if "create" in verbs:
            coll["post"] = self._op(
                "post",
                f"create{kind_id}",
                gvk,
                description=f"create a {kind}",
                responses=_responses(obj, ["200", "201", "202"]),
                parameters=_WRITE_PARAMS,
                body=obj,
            )
        if "deletecollection" in verbs:
            coll["delete"] = self._op(
                "deletecollection",
                f"delete{self.camel}Collection{ns}{kind}",
                gvk,
                description=f"delete collection of {kind}",
                responses=_responses(_ref(f"{META}.Status"), ["200"]),
                parameters=[*_LIST_PARAMS, *_DELETE_PARAMS],
                body=delete_options,
            )
        if coll:
            self.paths[collection] = {**coll, "parameters": [*scope, _PRETTY]}

        one: JSON = {}
        if "get" in verbs:
            one["get"] = self._op(
                "get",
                f"read{kind_id}",
                gvk,
                description=f"read the specified {kind}",
                responses=_responses(obj, ["200"]),
            )
        if "update" in verbs:
            one["put"] = self._op(
                "put",
                f"replace{kind_id}",
                gvk,
                description=f"replace the specified {kind}",
                responses=_responses(obj, ["200", "201"]),
                parameters=_WRITE_PARAMS,
                body=obj,
            )
        if "delete" in verbs:
            one["delete"] = self._op(
                "delete",
                f"delete{kind_id}",
                gvk,
                description=f"delete a {kind}",
                responses=_responses(obj, ["200", "202"]),
                parameters=_DELETE_PARAMS,
                body=delete_options,
            )
        if "patch" in verbs:
            one["patch"] = self._patch_op(
                f"patch{kind_id}", gvk, obj, f"partially update the specified {kind}"
            )
        if one:
            self.paths[item] = {**one, "parameters": item_params}

        if rt.namespaced and "list" in verbs:
            self.paths[f"{self.prefix}/{rt.resource}"] = {
                "get": self._op(
                    "list",
                    f"list{self.camel}{kind}ForAllNamespaces",
                    gvk,
                    description=f"list or watch objects of kind {kind}",
                    responses=list_responses,
                ),
                "parameters": [*_LIST_PARAMS, _PRETTY],
            }
        if "watch" in verbs:
            self._add_watch_paths(rt, gvk, watch_collection, [*scope], name_param)

        for sub in rt.subresources:
            self._add_subresource(rt, sub, item, item_params)

    def _add_watch_paths(
        self, rt: ResourceType, gvk: JSON, watch_collection: str, scope: list[JSON], name_param: JSON
    ) -> None:
        # Deprecated watch paths; kube-apiserver still publishes them and old clients use them.
        ns = "Namespaced" if rt.namespaced else ""
        responses = _responses(_ref(f"{META}.WatchEvent"), ["200"], _WATCH_MEDIA_TYPES)
        self.paths[watch_collection] = {
            "get": self._op(
                "watchlist",
                f"watch{self.camel}{ns}{rt.kind}List",
                gvk,
                description=f"watch individual changes to a list of {rt.kind}",
                responses=responses,
            ),
            "parameters": [*_LIST_PARAMS, *scope, _PRETTY],
        }
        self.paths[f"{watch_collection}/{{name}}"] = {
            "get": self._op(
                "watch",
                f"watch{self.camel}{ns}{rt.kind}",
                gvk,
                description=f"watch changes to an object of kind {rt.kind}",
                responses=responses,
            ),
            "parameters": [*_LIST_PARAMS, name_param, *scope, _PRETTY],
        }
        if rt.namespaced:
            self.paths[f"{self.prefix}/watch/{rt.resource}"] = {
                "get": self._op(
                    "watchlist",
                    f"watch{self.camel}{rt.kind}ListForAllNamespaces",
                    gvk,
                    description=f"watch individual changes to a list of {rt.kind}",
                    responses=responses,
                ),
                "parameters": [*_LIST_PARAMS, _PRETTY],
            }

    def _add_subresource(self, rt: ResourceType, sub: str, item: str, item_params: list[JSON]) -> None:
        sub_group, sub_version, sub_kind = subresource_kind(rt, sub)
        if (sub_group, sub_version, sub_kind) == ("autoscaling", "v1", "Scale"):
            self.schemas["io.k8s.api.autoscaling.v1.Scale"] = _scale_schema()
            schema = _ref("io.k8s.api.autoscaling.v1.Scale")
        elif (sub_group, sub_version, sub_kind) == (rt.group, rt.version, rt.kind):
            schema = _ref(schema_name(rt.group, rt.version, rt.kind, rt.builtin))
        else:
            # Connect-style subresources (exec, log, ...) are not described.
            return
        gvk = _gvk(sub_group, sub_version, sub_kind)
        op_id = f"{self.camel}{'Namespaced' if rt.namespaced else ''}{rt.kind}{sub[:1].upper()}{sub[1:]}"
        ops: JSON = {}
        if sub != "finalize":
            ops["get"] = self._op(
                "get",
                f"read{op_id}",
                gvk,
                description=f"read {sub} of the specified {rt.kind}",
                responses=_responses(schema, ["200"]),
            )
        ops["put"] = self._op(
            "put",
            f"replace{op_id}",
            gvk,
            description=f"replace {sub} of the specified {rt.kind}",
            responses=_responses(schema, ["200", "201"]),
            parameters=_WRITE_PARAMS,
            body=schema,
        )
        if sub != "finalize":
            ops["patch"] = self._patch_op(
                f"patch{op_id}", gvk, schema, f"partially update {sub} of the specified {rt.kind}"
            )
        self.paths[f"{item}/{sub}"] = {**ops, "parameters": item_params}

    def document(self) -> JSON:
        schemas = {**_meta_schemas(), **self.schemas}
        return {
            "openapi": "3.0.0",
            "info": {"title": "Kubernetes", "version": GIT_VERSION.split("+")[0]},
            "paths": dict(sorted(self.paths.items())),
            "components": {
                "schemas": dict(sorted(schemas.items())),
                "securitySchemes": {
                    "BearerToken": {
                        "type": "apiKey",
                        "description": "Bearer Token authentication",
                        "name": "authorization",
                        "in": "header",
                    }
                },
            },
            "security": [{"BearerToken": []}],
        }


def v3_group_version(registry: ResourceRegistry, group: str, version: str) -> JSON | None:
    """`/openapi/v3/api/v1` or `/openapi/v3/apis/<group>/<version>`; None when not served."""
    rts = registry.in_group_version(group, version)
    if not rts:
        return None
    builder = _GroupVersionDoc(group, version)
    for rt in rts:
        builder.add(rt)
    return builder.document()


def document_hash(doc: JSON) -> str:
    """The cache-busting hash kube-apiserver puts in serverRelativeURL: uppercase hex SHA-512."""
    encoded = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha512(encoded).hexdigest().upper()


def group_version_path(group: str, version: str) -> str:
    """The key of a group-version in `/openapi/v3`, e.g. "api/v1" or "apis/apps/v1"."""
    return f"apis/{group}/{version}" if group else f"api/{version}"


def v3_root(registry: ResourceRegistry) -> JSON:
    """`/openapi/v3`: where each group-version document lives, with a content hash clients may cache on."""
    paths: JSON = {}
    for group_name, versions in registry.groups().items():
        for version in versions:
            doc = v3_group_version(registry, group_name, version)
            if doc is None:
                continue
            key = group_version_path(group_name, version)
            paths[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={document_hash(doc)}"}
    return {"paths": paths}
