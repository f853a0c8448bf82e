"""CustomResourceDefinitions: what a CRD serves, whether its names clash, and its schema rules.

The apiextensions server turns a CRD into served REST kinds, refuses
malformed definitions, and validates and prunes custom objects against the
version's structural schema. Velero's and OADP's own resources are CRDs, so
the sandbox must treat them as a real cluster would.
"""

from __future__ import annotations

import re
from typing import Any

from strongroom.sandbox.patch import json_type_name
from strongroom.sandbox.resources import ResourceType

JsonObject = dict[str, Any]
Cause = tuple[str, str, str]

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_VERSION = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def served_types(crd: JsonObject) -> list[ResourceType]:
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    versions = spec.get("versions") or []
    storage = next(
        (v.get("name") for v in versions if v.get("storage")), versions[0].get("name") if versions else ""
    )
    subresources_default = spec.get("subresources") or {}
    out: list[ResourceType] = []
    for version in versions:
        if not version.get("served", True):
            continue
        subresources = version.get("subresources") or subresources_default
        subs = tuple(name for name in ("status", "scale") if name in subresources)
        scale = subresources.get("scale") if isinstance(subresources.get("scale"), dict) else None
        schema = (version.get("schema") or {}).get("openAPIV3Schema")
        out.append(
            ResourceType(
                group=spec.get("group", ""),
                version=version.get("name", ""),
                resource=names.get("plural", ""),
                kind=names.get("kind", ""),
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                subresources=subs,
                storage=names.get("plural", ""),
                builtin=False,
                storage_version=storage,
                schema=schema,
                printer_columns=tuple(version.get("additionalPrinterColumns") or ()),
                scale_paths=dict(scale) if scale else None,
            )
        )
    return out


def names_conflict(crd: JsonObject, others: list[JsonObject]) -> str | None:
    """Why the CRD's names clash with another CRD of the same group, or None."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    mine = {
        names.get("plural"),
        names.get("singular") or str(names.get("kind", "")).lower(),
        *(names.get("shortNames") or []),
    }
    for other in others:
        other_spec = other.get("spec") or {}
        if other_spec.get("group") != spec.get("group"):
            continue
        other_names = (other.get("status") or {}).get("acceptedNames") or other_spec.get("names") or {}
        theirs = {
            other_names.get("plural"),
            other_names.get("singular"),
            *(other_names.get("shortNames") or []),
        }
        clash = (mine & theirs) - {None, ""}
        if clash:
            return f'"{sorted(clash)[0]}" is already in use'
        if other_names.get("kind") == names.get("kind"):
            return f'"{names.get("kind")}" is already in use'
    return None


def crd_errors(crd: JsonObject) -> list[Cause]:
    """The validation the apiextensions server applies to a CRD."""
    causes: list[Cause] = []
    meta = crd.get("metadata") or {}
    spec = crd.get("spec")
    if not isinstance(spec, dict):
        return [("spec", "FieldValueRequired", "Required value")]
    group = spec.get("group") or ""
    names = spec.get("names") or {}
    plural = names.get("plural") or ""
    if not group:
        causes.append(("spec.group", "FieldValueRequired", "Required value"))
    elif "." not in group:
        causes.append(
            (
                "spec.group",
                "FieldValueInvalid",
                f'Invalid value: "{group}": should be a domain with at least one dot',
            )
        )
    if not plural:
        causes.append(("spec.names.plural", "FieldValueRequired", "Required value"))
    elif not _DNS_LABEL.fullmatch(plural):
        causes.append(
            (
                "spec.names.plural",
                "FieldValueInvalid",
                f'Invalid value: "{plural}": a lowercase RFC 1123 label',
            )
        )
    if not names.get("kind"):
        causes.append(("spec.names.kind", "FieldValueRequired", "Required value"))
    if plural and group and meta.get("name") != f"{plural}.{group}":
        causes.append(
            (
                "metadata.name",
                "FieldValueInvalid",
                f'Invalid value: "{meta.get("name")}": must be spec.names.plural+"."+spec.group',
            )
        )
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        causes.append(
            (
                "spec.scope",
                "FieldValueNotSupported",
                f'Unsupported value: "{spec.get("scope")}": supported values: "Cluster", "Namespaced"',
            )
        )
    versions = spec.get("versions")
    if not isinstance(versions, list) or not versions:
        causes.append(
            (
                "spec.versions",
                "FieldValueInvalid",
                "Invalid value: must have exactly one version marked as storage version",
            )
        )
        return causes
    storage = [v for v in versions if isinstance(v, dict) and v.get("storage")]
    if len(storage) != 1:
        causes.append(
            (
                "spec.versions",
                "FieldValueInvalid",
                "Invalid value: must have exactly one version marked as storage version",
            )
        )
    if not any(isinstance(v, dict) and v.get("served") for v in versions):
        causes.append(
            (
                "spec.versions",
                "FieldValueInvalid",
                "Invalid value: must have at least one version marked as served",
            )
        )
    seen: set[str] = set()
    for index, version in enumerate(versions):
        if not isinstance(version, dict):
            continue
        name = version.get("name") or ""
        if not _VERSION.fullmatch(name):
            causes.append(
                (
                    f"spec.versions[{index}].name",
                    "FieldValueInvalid",
                    f'Invalid value: "{name}": a DNS-1035 label',
                )
            )
        if name in seen:
            causes.append(
                (f"spec.versions[{index}].name", "FieldValueDuplicate", f'Duplicate value: "{name}"')
            )
        seen.add(name)
        schema = (version.get("schema") or {}).get("openAPIV3Schema")
        if schema is None:
            causes.append(
                (
                    f"spec.versions[{index}].schema.openAPIV3Schema",
                    "FieldValueRequired",
                    "Required value: schemas are required",
                )
            )
        elif not isinstance(schema, dict) or (
            schema.get("type") != "object" and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            causes.append(
                (
                    f"spec.versions[{index}].schema.openAPIV3Schema.type",
                    "FieldValueRequired",
                    'Required value: must be "object" at the root',
                )
            )
    return causes


# --------------------------------------------------------- structural schemas


def prune_and_validate(
    schema: JsonObject | None, obj: JsonObject, pruned: list[str] | None = None
) -> tuple[JsonObject, list[Cause]]:
    """Drop fields the schema does not know and report type/required/enum violations.

    apiVersion, kind and metadata are kept and checked elsewhere, as the
    apiextensions server does. The paths of dropped fields are appended to
    `pruned`: field validation reports them as unknown fields.
    """
    if not schema:
        return obj, []
    causes: list[Cause] = []
    out = dict(obj)
    properties = schema.get("properties") or {}
    preserve = bool(schema.get("x-kubernetes-preserve-unknown-fields"))
    for key in list(out):
        if key in ("apiVersion", "kind", "metadata"):
            continue
        if key in properties:
            out[key] = _walk(properties[key], out[key], key, causes, pruned)
        elif not preserve:
            del out[key]
            if pruned is not None:
                pruned.append(key)
    for required in schema.get("required") or []:
        if required not in out and required not in ("apiVersion", "kind", "metadata"):
            causes.append((required, "FieldValueRequired", "Required value"))
    return out, causes


_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
}


def _walk(
    schema: JsonObject, value: Any, path: str, causes: list[Cause], pruned: list[str] | None = None
) -> Any:
    if value is None:
        if not schema.get("nullable"):
            # A null for a non-nullable field is dropped, as the apiserver's pruning does.
            return None
        return None
    if schema.get("x-kubernetes-int-or-string"):
        if not isinstance(value, (int, str)) or isinstance(value, bool):
            causes.append(
                (path, "FieldValueInvalid", f"Invalid value: {value!r}: must be an integer or a string")
            )
        return value
    expected = schema.get("type")
    if expected in _TYPES:
        ok = isinstance(value, _TYPES[expected]) and not (
            expected in ("integer", "number") and isinstance(value, bool)
        )
        if not ok:
            causes.append(
                (
                    path,
                    "FieldValueTypeInvalid",
                    f'Invalid value: "{json_type_name(value)}": {path} in body must be of type {expected}: "{json_type_name(value)}"',
                )
            )
            return value
    enum = schema.get("enum")
    if enum is not None and value not in enum:
        allowed = ", ".join(f'"{e}"' for e in enum)
        causes.append(
            (path, "FieldValueNotSupported", f'Unsupported value: "{value}": supported values: {allowed}')
        )
    if isinstance(value, dict):
        properties = schema.get("properties")
        additional = schema.get("additionalProperties")
        preserve = bool(schema.get("x-kubernetes-preserve-unknown-fields"))
        out: JsonObject = {}
        for key, item in value.items():
            child = f"{path}.{key}"
            if properties and key in properties:
                out[key] = _walk(properties[key], item, child, causes, pruned)
            elif isinstance(additional, dict):
                out[key] = _walk(additional, item, child, causes, pruned)
            elif additional is True or preserve or (properties is None and expected != "object"):
                out[key] = item
            elif pruned is not None:
                # Unknown to the schema (an object schema without properties keeps nothing).
                pruned.append(child)
        for required in schema.get("required") or []:
            if required not in out:
                causes.append((f"{path}.{required}", "FieldValueRequired", "Required value"))
        return out
    if isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            return [
                _walk(items, item, f"{path}[{index}]", causes, pruned) for index, item in enumerate(value)
            ]
    if isinstance(value, str):
        if "maxLength" in schema and len(value) > int(schema["maxLength"]):
            causes.append(
                (path, "FieldValueTooLong", f"Too long: may not be longer than {schema['maxLength']}")
            )
        if "pattern" in schema and not re.search(str(schema["pattern"]), value):
            causes.append(
                (
                    path,
                    "FieldValueInvalid",
                    f"Invalid value: \"{value}\": {path} in body should match '{schema['pattern']}'",
                )
            )
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            causes.append(
                (
                    path,
                    "FieldValueInvalid",
                    f"Invalid value: {value}: {path} in body should be greater than or equal to {schema['minimum']}",
                )
            )
        if "maximum" in schema and value > schema["maximum"]:
            causes.append(
                (
                    path,
                    "FieldValueInvalid",
                    f"Invalid value: {value}: {path} in body should be less than or equal to {schema['maximum']}",
                )
            )
    return value
