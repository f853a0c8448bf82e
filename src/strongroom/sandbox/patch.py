"""The three PATCH flavours of kube-apiserver, applied to objects decoded from JSON.

The sandbox stores objects as plain JSON, not as Go structs, so it cannot lean
on apimachinery to apply a PATCH request. Clients (kubectl, controllers,
strongroom's own restore) rely on the exact server-side semantics, for
instance kubectl apply's ``$setElementOrder`` lists or the merge of
containers by name, so this module re-implements them:

* RFC 7386 JSON merge patch (``application/merge-patch+json``);
* RFC 6902 JSON patch (``application/json-patch+json``), through ``jsonpatch``;
* strategic merge patch (``application/strategic-merge-patch+json``), driven by
  a table of the ``patchStrategy``/``patchMergeKey`` struct tags of the
  built-in kinds, which kube-apiserver reads from its Go types.

Every function returns new structures and leaves its arguments untouched,
because callers keep the stored object for the response and for watch events.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final, Literal

import jsonpatch
import jsonpointer

__all__ = [
    "CONTAINER",
    "OBJECT_META",
    "POD_SPEC",
    "POD_TEMPLATE_SPEC",
    "FieldPatch",
    "PatchError",
    "PatchSchema",
    "apply_json_merge_patch",
    "apply_json_patch",
    "apply_strategic_merge_patch",
    "schema_for",
]

JSONObject = dict[str, Any]


class PatchError(ValueError):
    """The patch is malformed or cannot be applied; the message goes to the client."""


# --------------------------------------------------------------------------- copying


def _copy(value: Any) -> Any:
    """Deep-copy decoded JSON; far cheaper than copy.deepcopy for this shape of data."""
    if isinstance(value, dict):
        return {key: _copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy(item) for item in value]
    return value


def json_type_name(value: object) -> str:
    """The JSON Schema name of a decoded JSON value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


# --------------------------------------------------------------------------- JSON merge patch


def apply_json_merge_patch(target: object, patch: object) -> object:
    """Apply an RFC 7386 JSON merge patch.

    As the RFC says, a patch that is not an object replaces the target as a
    whole; the caller decides whether such a result is an acceptable object.
    """
    if not isinstance(patch, dict):
        return _copy(patch)
    result: JSONObject = _copy(target) if isinstance(target, dict) else {}
    _merge_patch_into(result, patch)
    return result


def _merge_patch_into(target: JSONObject, patch: JSONObject) -> None:
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict):
            current = target.get(key)
            # A non-object in the target is replaced by an empty object first, which
            # also drops the nulls nested in the patch value, as the RFC requires.
            nested: JSONObject = current if isinstance(current, dict) else {}
            _merge_patch_into(nested, value)
            target[key] = nested
        else:
            target[key] = _copy(value)


# --------------------------------------------------------------------------- JSON patch


def apply_json_patch(target: object, operations: object) -> object:
    """Apply an RFC 6902 JSON patch; any failing operation fails the whole patch."""
    if not isinstance(operations, list):
        raise PatchError(f"a JSON patch must be an array of operations, not {json_type_name(operations)}")
    document = _copy(target)
    for index, operation in enumerate(operations):
        if not isinstance(operation, dict):
            raise PatchError(
                f"JSON patch operation {index} must be an object, not {json_type_name(operation)}"
            )
        # The operation is copied because jsonpatch inserts its "value" into the
        # document as is, and a later operation would then write into the input.
        # One operation at a time lets the error name the operation that failed.
        try:
            document = jsonpatch.JsonPatch([_copy(operation)]).apply(document, in_place=True)
        except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as error:
            raise PatchError(
                f"JSON patch operation {index} {_describe_operation(operation)}: {error}"
            ) from error
    return document


def _describe_operation(operation: JSONObject) -> str:
    op, path = operation.get("op"), operation.get("path")
    if isinstance(op, str) and isinstance(path, str):
        return f'("{op}" at "{path}")'
    return "(malformed)"


# --------------------------------------------------------------------------- patch metadata

Strategy = Literal["", "merge", "replace"]


@dataclass(frozen=True, slots=True)
class FieldPatch:
    """Patch metadata of one field: the Go struct tags ``patchStrategy`` and ``patchMergeKey``.

    ``strategy`` "" is the default: maps merge key by key, lists are replaced.
    "merge" on a list merges elements by ``merge_key``, or takes the union of a
    list of primitives when there is no key. "replace" on a map replaces it.
    ``retain_keys`` only tells clients that they may send ``$retainKeys``; the
    server honours that directive wherever it appears, as kube-apiserver does.
    ``schema`` describes the map, or each element of the list.
    """

    strategy: Strategy = ""
    merge_key: str | None = None
    retain_keys: bool = False
    schema: PatchSchema | None = None


@dataclass(frozen=True, slots=True)
class PatchSchema:
    """The patch metadata of one Go struct, by JSON field name; fields not listed have none."""

    name: str
    fields: Mapping[str, FieldPatch]

    def lookup(self, field: str) -> FieldPatch:
        return self.fields.get(field, _NO_METADATA)


_NO_METADATA: Final = FieldPatch()
_UNKNOWN: Final = PatchSchema("unknown", MappingProxyType({}))


def _struct(name: str, **fields: FieldPatch | PatchSchema) -> PatchSchema:
    """Describe a struct; a PatchSchema value is a nested struct with no tag of its own."""
    metadata = {
        key: FieldPatch(schema=value) if isinstance(value, PatchSchema) else value
        for key, value in fields.items()
    }
    return PatchSchema(name, MappingProxyType(metadata))


def _merge_by(key: str, element: PatchSchema | None = None, *, retain_keys: bool = False) -> FieldPatch:
    return FieldPatch("merge", key, retain_keys, element)


_UNION: Final = FieldPatch("merge")  # a list of primitives merged as a set, e.g. finalizers
_REPLACE: Final = FieldPatch("replace")
_RETAIN_KEYS: Final = FieldPatch(retain_keys=True)
_CONDITIONS: Final = _merge_by("type")

# The table mirrors the struct tags of k8s.io/api and apimachinery's ObjectMeta.
# Anything absent has no tag, so its lists are replaced wholesale: tolerations,
# Endpoints subsets, RBAC rules. That includes Container resizePolicy,
# ServiceAccount imagePullSecrets and the status conditions of CSRs and CRDs:
# they carry only +listType markers, which serve server-side apply and which
# strategic merge patch ignores.

OBJECT_META: Final = _struct("ObjectMeta", finalizers=_UNION, ownerReferences=_merge_by("uid"))

CONTAINER: Final = _struct(
    "Container",
    ports=_merge_by("containerPort"),
    env=_merge_by("name"),
    volumeMounts=_merge_by("mountPath"),
    volumeDevices=_merge_by("devicePath"),
)

POD_SPEC: Final = _struct(
    "PodSpec",
    volumes=_merge_by("name", retain_keys=True),
    initContainers=_merge_by("name", CONTAINER),
    containers=_merge_by("name", CONTAINER),
    # EphemeralContainerCommon repeats Container's fields with the same tags.
    ephemeralContainers=_merge_by("name", CONTAINER),
    imagePullSecrets=_merge_by("name"),
    hostAliases=_merge_by("ip"),
    topologySpreadConstraints=_merge_by("topologyKey"),
    schedulingGates=_merge_by("name"),
    resourceClaims=_merge_by("name", retain_keys=True),
)

_POD_STATUS: Final = _struct(
    "PodStatus",
    conditions=_CONDITIONS,
    hostIPs=_merge_by("ip"),
    podIPs=_merge_by("ip"),
    resourceClaimStatuses=_merge_by("name", retain_keys=True),
)

POD_TEMPLATE_SPEC: Final = _struct("PodTemplateSpec", metadata=OBJECT_META, spec=POD_SPEC)
_JOB_SPEC: Final = _struct("JobSpec", template=POD_TEMPLATE_SPEC)


def _status(name: str) -> PatchSchema:
    return _struct(name, conditions=_CONDITIONS)


def _kind(kind: str, **fields: FieldPatch | PatchSchema) -> PatchSchema:
    return _struct(kind, metadata=OBJECT_META, **fields)


def _workload(kind: str, **spec: FieldPatch | PatchSchema) -> PatchSchema:
    return _kind(
        kind,
        spec=_struct(f"{kind}Spec", template=POD_TEMPLATE_SPEC, **spec),
        status=_status(f"{kind}Status"),
    )


_KINDS: Final[Mapping[tuple[str, str], PatchSchema]] = MappingProxyType(
    {
        ("", "Pod"): _kind("Pod", spec=POD_SPEC, status=_POD_STATUS),
        ("", "PodTemplate"): _kind("PodTemplate", template=POD_TEMPLATE_SPEC),
        ("", "ReplicationController"): _workload("ReplicationController"),
        ("apps", "Deployment"): _workload("Deployment", strategy=_RETAIN_KEYS),
        ("apps", "StatefulSet"): _workload("StatefulSet"),
        ("apps", "DaemonSet"): _workload("DaemonSet"),
        ("apps", "ReplicaSet"): _workload("ReplicaSet"),
        ("batch", "Job"): _kind("Job", spec=_JOB_SPEC, status=_status("JobStatus")),
        ("batch", "CronJob"): _kind(
            "CronJob",
            spec=_struct(
                "CronJobSpec", jobTemplate=_struct("JobTemplateSpec", metadata=OBJECT_META, spec=_JOB_SPEC)
            ),
        ),
        ("", "Service"): _kind(
            "Service", spec=_struct("ServiceSpec", ports=_merge_by("port")), status=_status("ServiceStatus")
        ),
        ("", "Node"): _kind(
            "Node",
            spec=_struct("NodeSpec", podCIDRs=_UNION),
            status=_struct("NodeStatus", conditions=_CONDITIONS, addresses=_merge_by("type")),
        ),
        ("", "Namespace"): _kind("Namespace", status=_status("NamespaceStatus")),
        ("", "ConfigMap"): _kind("ConfigMap"),
        ("", "Secret"): _kind("Secret"),
        ("", "ServiceAccount"): _kind("ServiceAccount", secrets=_merge_by("name")),
        ("", "PersistentVolume"): _kind("PersistentVolume"),
        ("", "PersistentVolumeClaim"): _kind(
            "PersistentVolumeClaim", status=_status("PersistentVolumeClaimStatus")
        ),
        ("", "Endpoints"): _kind("Endpoints"),
        ("", "Event"): _kind("Event"),
        ("", "LimitRange"): _kind("LimitRange"),
        ("", "ResourceQuota"): _kind("ResourceQuota"),
        ("rbac.authorization.k8s.io", "Role"): _kind("Role"),
        ("rbac.authorization.k8s.io", "RoleBinding"): _kind("RoleBinding"),
        ("rbac.authorization.k8s.io", "ClusterRole"): _kind("ClusterRole"),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding"): _kind("ClusterRoleBinding"),
        ("storage.k8s.io", "StorageClass"): _kind("StorageClass"),
        ("networking.k8s.io", "Ingress"): _kind("Ingress"),
        ("networking.k8s.io", "NetworkPolicy"): _kind("NetworkPolicy"),
        ("certificates.k8s.io", "CertificateSigningRequest"): _kind("CertificateSigningRequest"),
        ("coordination.k8s.io", "Lease"): _kind("Lease"),
        ("policy", "PodDisruptionBudget"): _kind(
            "PodDisruptionBudget",
            spec=_struct("PodDisruptionBudgetSpec", selector=_REPLACE),
            status=_status("PodDisruptionBudgetStatus"),
        ),
        ("scheduling.k8s.io", "PriorityClass"): _kind("PriorityClass"),
        ("apiextensions.k8s.io", "CustomResourceDefinition"): _kind("CustomResourceDefinition"),
        ("events.k8s.io", "Event"): _kind("Event"),
    }
)


def schema_for(group: str, kind: str) -> PatchSchema | None:
    """Patch metadata of a built-in kind (group "" is core); None for any other kind.

    kube-apiserver refuses strategic merge patch for custom resources with 415,
    so None tells the caller to do the same.
    """
    return _KINDS.get((group, kind))


# --------------------------------------------------------------------------- strategic merge patch

_PATCH: Final = "$patch"
_RETAIN: Final = "$retainKeys"
_SET_ORDER: Final = "$setElementOrder"
_DELETE_PRIMITIVES: Final = "$deleteFromPrimitiveList"
# Real fields of JSONSchemaProps in a CustomResourceDefinition, not directives.
_DOLLAR_FIELDS: Final = frozenset({"$ref", "$schema"})


def apply_strategic_merge_patch(target: JSONObject, patch: object, schema: PatchSchema | None) -> JSONObject:
    """Apply a strategic merge patch as kube-apiserver does for a built-in kind.

    ``schema`` None applies the patch with no field metadata: maps merge, lists
    are replaced, directives still apply.
    """
    if not isinstance(target, dict):
        raise PatchError(f"the patched object must be a JSON object, not {json_type_name(target)}")
    if not isinstance(patch, dict):
        raise PatchError(f"a strategic merge patch must be a JSON object, not {json_type_name(patch)}")
    return _merge_map(_copy(target), _copy(patch), schema or _UNKNOWN, "")


# Everything below works on private copies, so it updates them in place.


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _fail(path: str, message: str) -> PatchError:
    return PatchError(f"{path or 'the object'}: {message}")


def _same(left: object, right: object) -> bool:
    # Go compares decoded JSON values by type too: 1 and 1.0 (int64 and float64
    # in apimachinery's decoder) or true and 1 never match.
    return type(left) is type(right) and left == right


def _directive_field(key: str, prefix: str, path: str) -> str:
    """The field a parallel-list directive such as ``$setElementOrder/containers`` names."""
    head, slash, field = key.partition("/")
    if head != prefix or not slash or not field:
        raise _fail(path, f'malformed directive "{key}": expected "{prefix}/<field>"')
    return field


def _is_deletion(value: object) -> bool:
    return isinstance(value, dict) and value.get(_PATCH) == "delete"


def _carries_directive(value: object, path: str) -> bool:
    """Whether a value is a map holding ``$patch``, whose directive must then be valid."""
    if isinstance(value, dict) and _PATCH in value:
        _check_patch_directive(value, path)
        return True
    return False


def _check_patch_directive(value: dict[str, Any], path: str) -> str:
    directive = value[_PATCH]
    if directive in ("replace", "delete"):
        return str(directive)
    if directive == "merge":
        # kube-apiserver rejects it too: merge is already the default for maps
        # and was never implemented for lists.
        raise _fail(path, '"$patch": "merge" is not supported; maps merge by default')
    raise _fail(path, f'unknown "$patch" directive {directive!r}; expected "replace" or "delete"')


def _check_parallel_list(key: str, value: object, path: str) -> None:
    """Validate a directive key of a map other than $patch; unknown $-keys are refused."""
    if key == _RETAIN:
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise _fail(path, f'"{_RETAIN}" must be a list of field names')
        return
    for prefix in (_SET_ORDER, _DELETE_PRIMITIVES):
        if key.startswith(prefix):
            _directive_field(key, prefix, path)
            if not isinstance(value, list):
                raise _fail(path, f'"{key}" must be a list, not {json_type_name(value)}')
            return
    raise _fail(path, f'unknown patch directive "{key}"')


def _materialize(value: Any, path: str) -> Any:
    """Turn a patch value that meets nothing to merge with into stored data.

    Nulls (nothing to delete) and directives are dropped, so that no directive
    is ever stored. Like kube-apiserver, a nested map or list element carrying
    ``$patch`` is dropped whole: there is nothing for it to replace or delete.
    The value's own ``$patch``, if any, was handled by the caller.
    """
    if isinstance(value, dict):
        if _PATCH in value:
            _check_patch_directive(value, path)
        result: JSONObject = {}
        for key, item in value.items():
            where = _child(path, key)
            if key == _PATCH:
                continue
            if key.startswith("$") and key not in _DOLLAR_FIELDS:
                _check_parallel_list(key, item, path)
            elif item is not None and not _carries_directive(item, where):
                result[key] = _materialize(item, where)
        return result
    if isinstance(value, list):
        return [
            _materialize(item, f"{path}[{index}]")
            for index, item in enumerate(value)
            if not _carries_directive(item, f"{path}[{index}]")
        ]
    return value


def _merge_map(original: JSONObject, patch: JSONObject, schema: PatchSchema, path: str) -> JSONObject:
    if _PATCH in patch:
        if _check_patch_directive(patch, path) == "delete":
            return {}
        return dict(_materialize(patch, path))

    _apply_retain_keys(original, patch, path)
    _apply_element_orders(original, patch, schema, path)

    # Deletions run after the merge so that the outcome does not hang on the
    # order of keys in the patch (Go's map iteration order is random anyway).
    deletions: list[tuple[str, Any]] = []
    for key, value in patch.items():
        if key.startswith(_DELETE_PRIMITIVES):
            deletions.append((_directive_field(key, _DELETE_PRIMITIVES, path), value))
            continue
        if key.startswith("$") and key not in _DOLLAR_FIELDS:
            # $retainKeys and $setElementOrder/... were consumed above.
            raise _fail(path, f'unknown patch directive "{key}"')
        where = _child(path, key)
        if value is None:
            original.pop(key, None)
            continue
        current = original.get(key)
        meta = schema.lookup(key)
        if isinstance(current, dict) and isinstance(value, dict):
            if meta.strategy == "replace":
                original[key] = _materialize(value, where)
            else:
                original[key] = _merge_map(current, value, meta.schema or _UNKNOWN, where)
        elif isinstance(current, list) and isinstance(value, list):
            original[key] = _merge_list_field(current, value, meta, where)
        elif _carries_directive(value, where):
            # Nothing to replace or delete: kube-apiserver then drops the field.
            original.pop(key, None)
        else:
            original[key] = _materialize(value, where)

    for field, values in deletions:
        _delete_primitives(original, field, values, _child(path, field))
    return original


def _apply_retain_keys(original: JSONObject, patch: JSONObject, path: str) -> None:
    if _RETAIN not in patch:
        return
    retained = patch.pop(_RETAIN)
    _check_parallel_list(_RETAIN, retained, path)
    for key, value in patch.items():
        if value is None or key.startswith((_SET_ORDER, _DELETE_PRIMITIVES)):
            continue
        if key not in retained:
            raise _fail(path, f'field "{key}" is set by the patch but missing from "{_RETAIN}" {retained}')
    for key in [key for key in original if key not in retained]:
        del original[key]


def _merge_list_field(original: list[Any], patch: list[Any], meta: FieldPatch, path: str) -> list[Any]:
    if meta.strategy != "merge":
        return list(_materialize(patch, path))
    return _merge_list(original, patch, meta, path)


def _element_kind(elements: list[Any], path: str) -> type | None:
    """The one JSON type that every element of a merged list must share, as in apimachinery."""
    kind: type | None = None
    first: object = None
    for element in elements:
        if isinstance(element, list):
            raise _fail(path, "lists of lists cannot be merged")
        if element is None:
            raise _fail(path, "null elements cannot be merged")
        if kind is None:
            kind, first = type(element), element
        elif type(element) is not kind:
            raise _fail(
                path,
                f"cannot merge a list mixing {json_type_name(first)} and {json_type_name(element)} elements",
            )
    return kind


def _merge_list(original: list[Any], patch: list[Any], meta: FieldPatch, path: str) -> list[Any]:
    if not original and not patch:
        return original
    if _element_kind(original + patch, path) is not dict:
        return _order(_dedupe(original + patch), patch, original, None, path)

    key = meta.merge_key
    if key is None:
        raise _fail(path, "a list of objects with patch strategy merge needs a merge key")
    original, patch = _list_directives(original, patch, key, path)
    merged = list(original)
    for index, element in enumerate(patch):
        if key not in element:
            raise _fail(f"{path}[{index}]", f'element has no merge key "{key}"')
        where = f"{path}[{key}={element[key]!r}]"
        position = _position(merged, element, key)
        if position < 0:
            merged.append(_materialize(element, where))
        else:
            merged[position] = _merge_map(merged[position], element, meta.schema or _UNKNOWN, where)
    return _order(merged, patch, original, key, path)


def _dedupe(values: list[Any]) -> list[Any]:
    unique: list[Any] = []
    for value in values:
        if not any(_same(value, kept) for kept in unique):
            unique.append(value)
    return unique


def _list_directives(
    original: list[Any], patch: list[Any], key: str, path: str
) -> tuple[list[Any], list[Any]]:
    """Apply the ``$patch`` elements of a merged list; return the original and the plain elements left."""
    plain: list[Any] = []
    replace = False
    for index, element in enumerate(patch):
        if _PATCH not in element:
            plain.append(element)
            continue
        where = f"{path}[{index}]"
        if _check_patch_directive(element, where) == "replace":
            replace = True
        elif key not in element:
            raise _fail(where, f'"$patch": "delete" needs the merge key "{key}" to find the element')
        else:
            original = [kept for kept in original if not (key in kept and _same(kept[key], element[key]))]
    if replace:
        # The other elements of the patch become the whole list.
        return [_materialize(element, path) for element in plain], []
    return original, plain


def _identity(element: Any, key: str | None, path: str) -> Any:
    if key is None:
        return element
    if not isinstance(element, dict) or key not in element:
        raise _fail(path, f'list element {element!r} has no merge key "{key}"')
    return element[key]


def _position(elements: list[Any], element: Any, key: str | None, path: str = "") -> int:
    wanted = _identity(element, key, path)
    for index, candidate in enumerate(elements):
        if key is not None and not (isinstance(candidate, dict) and key in candidate):
            continue
        if _same(_identity(candidate, key, path), wanted):
            return index
    return -1


def _order(
    merged: list[Any], patch_order: list[Any], server_order: list[Any], key: str | None, path: str
) -> list[Any]:
    """Order a merged list as apimachinery does.

    Elements named by the patch follow the patch's order; the others keep the
    stored order and are woven in before the first patch element that they
    preceded in the stored list. So a new element comes first unless the
    patch also names the elements it should follow, as kubectl apply does
    through $setElementOrder.
    """
    for element in merged:
        _identity(element, key, path)  # every element needs the merge key, stored ones included
    from_patch = [element for element in merged if _position(patch_order, element, key, path) >= 0]
    server_only = [element for element in merged if _position(patch_order, element, key, path) < 0]
    from_patch.sort(key=lambda element: _position(patch_order, element, key, path))
    server_only.sort(key=lambda element: _rank(server_order, element, key, path))

    woven: list[Any] = []
    left = right = 0
    while left < len(server_only) and right < len(from_patch):
        mine = _position(server_order, server_only[left], key, path)
        theirs = _position(server_order, from_patch[right], key, path)
        if 0 <= mine < theirs:
            woven.append(server_only[left])
            left += 1
        else:
            woven.append(from_patch[right])
            right += 1
    return woven + server_only[left:] + from_patch[right:]


def _rank(order: list[Any], element: Any, key: str | None, path: str) -> int:
    position = _position(order, element, key, path)
    return position if position >= 0 else len(order)


def _apply_element_orders(original: JSONObject, patch: JSONObject, schema: PatchSchema, path: str) -> None:
    """Merge each list named by a ``$setElementOrder/<field>`` and put it in that order."""
    for directive in [key for key in patch if key.startswith(_SET_ORDER)]:
        order = patch.pop(directive)
        _check_parallel_list(directive, order, path)
        field = _directive_field(directive, _SET_ORDER, path)
        where = _child(path, field)
        meta = schema.lookup(field)
        key = meta.merge_key
        stored, patched = original.get(field), patch.get(field)
        if field in original and not isinstance(stored, list):
            raise _fail(
                where, f"{directive} applies to a list, but the object holds {json_type_name(stored)}"
            )
        if field in patch and not isinstance(patched, list):
            raise _fail(where, f"{directive} needs a list in the patch, not {json_type_name(patched)}")
        if key is not None:
            for element in order:
                _identity(element, key, _child(path, directive))
        _check_order_matches(patched or [], order, key, where, directive)

        reference = stored or []
        if stored is not None and patched is not None:
            merged = _merge_list_field(stored, patched, meta, where)
            if meta.strategy == "merge" and key is not None:
                reference = _reused_slots(stored, patched, key)
        elif patched is not None:
            merged = list(_materialize(patched, where))
        elif stored is not None:
            merged = stored
        else:
            continue
        original[field] = _order(merged, order, reference, key, where)
        patch.pop(field, None)


def _reused_slots(stored: list[Any], patched: list[Any], key: str) -> list[Any]:
    """The stored list as apimachinery sees it when it orders by ``$setElementOrder``.

    apimachinery deletes elements by shifting them inside the stored slice and
    then appends new elements into the slots freed at its end; its ordering
    reference is that same slice, so an element added by the patch takes the
    place of a deleted one there. Reproducing it matters when the list also
    holds elements unknown to the patch, such as an injected sidecar: kubectl
    apply replacing one container with another keeps the sidecar first.
    """
    view = list(stored)
    length = len(view)
    for element in patched:
        if _is_deletion(element) and key in element:
            while (index := _position(view[:length], element, key)) >= 0:
                view[index : length - 1] = view[index + 1 : length]
                length -= 1
    if any(isinstance(element, dict) and element.get(_PATCH) == "replace" for element in patched):
        return view
    for element in patched:
        if not isinstance(element, dict) or _PATCH in element or key not in element:
            continue
        if _position(view[:length], element, key) >= 0:
            continue  # merged in place
        if length == len(view):
            break  # the slice is full: Go moves it, later appends are not seen
        view[length] = element
        length += 1
    return view


def _check_order_matches(
    patched: list[Any], order: list[Any], key: str | None, path: str, directive: str
) -> None:
    """Refuse a patch list whose elements are not a subsequence of the ``$setElementOrder`` list."""
    if not order:
        return  # nothing to check against; kube-apiserver accepts it too
    elements = [element for element in patched if not (isinstance(element, dict) and _PATCH in element)]
    if key is not None:
        for element in elements:
            _identity(element, key, path)
    position = 0
    for element in elements:
        wanted = _identity(element, key, path)
        while position < len(order) and not _same(_identity(order[position], key, path), wanted):
            position += 1
        if position == len(order):
            raise _fail(path, f"the patch lists {wanted!r} out of the order given by {directive}")
        position += 1


def _delete_primitives(original: JSONObject, field: str, values: object, path: str) -> None:
    if not isinstance(values, list):
        raise _fail(path, f'"{_DELETE_PRIMITIVES}/{field}" must be a list, not {json_type_name(values)}')
    current = original.get(field)
    if not isinstance(current, list):
        return  # nothing to delete from, which kube-apiserver accepts silently
    if _element_kind(current + values, path) is dict:
        raise _fail(path, f'"{_DELETE_PRIMITIVES}" applies to lists of primitives only')
    original[field] = [value for value in current if not any(_same(value, gone) for gone in values)]
