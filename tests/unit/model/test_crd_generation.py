"""The generated CRDs must be ones kube-apiserver accepts, and must describe what the models read."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, ConfigDict

from strongroom.errors import NotFoundError, StrongroomError
from strongroom.model.crds import crd_manifest, crd_manifests, openapi_schema, resource_definitions
from strongroom.model.velero import Backup, Restore
from strongroom.sandbox.crds import crd_errors, prune_and_validate

SEED = Path(__file__).parents[2] / "data" / "seed"

VELERO_KINDS = [
    "Backup",
    "Restore",
    "Schedule",
    "BackupStorageLocation",
    "VolumeSnapshotLocation",
    "DeleteBackupRequest",
    "DownloadRequest",
    "ServerStatusRequest",
    "PodVolumeBackup",
    "PodVolumeRestore",
    "BackupRepository",
]


def schema_of(kind: str) -> dict[str, Any]:
    schema: dict[str, Any] = crd_manifest(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def node(schema: dict[str, Any], dotted: str) -> dict[str, Any]:
    """The schema of a field: `spec.hooks.resources[].pre[].exec.timeout`."""
    current = schema
    for part in dotted.split("."):
        name = part.removesuffix("[]")
        current = current["properties"][name]
        if part.endswith("[]"):
            current = current["items"]
    return current


# ---------------------------------------------------------------------------
# An independent structural-schema checker, written from the apiextensions
# rules (k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/validation and
# pkg/apiserver/schema): it must not share code with the generator.

# The fields of apiextensions/v1 JSONSchemaProps; anything else is refused by
# strict field validation (or silently dropped by the server).
JSON_SCHEMA_PROPS = {
    "id",
    "$schema",
    "$ref",
    "description",
    "type",
    "format",
    "title",
    "default",
    "maximum",
    "exclusiveMaximum",
    "minimum",
    "exclusiveMinimum",
    "maxLength",
    "minLength",
    "pattern",
    "maxItems",
    "minItems",
    "uniqueItems",
    "multipleOf",
    "enum",
    "maxProperties",
    "minProperties",
    "required",
    "items",
    "allOf",
    "oneOf",
    "anyOf",
    "not",
    "properties",
    "additionalProperties",
    "patternProperties",
    "dependencies",
    "additionalItems",
    "definitions",
    "externalDocs",
    "example",
    "nullable",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-embedded-resource",
    "x-kubernetes-int-or-string",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-list-type",
    "x-kubernetes-map-type",
    "x-kubernetes-validations",
}
# Allowed in JSONSchemaProps but forbidden in a v1 CRD's schema.
FORBIDDEN = {"$ref", "id", "$schema", "definitions", "patternProperties", "dependencies", "additionalItems"}
TYPES = {"object", "array", "string", "integer", "number", "boolean"}
PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
}


def structural_problems(schema: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    if schema.get("type") != "object":
        problems.append("(root): type must be object")
    if schema.get("nullable"):
        problems.append("(root): must not be nullable")
    properties = schema.get("properties") or {}
    metadata = properties.get("metadata")
    if metadata is not None:
        extra = set(metadata) - {"type", "description", "properties"}
        if extra or metadata.get("type") != "object":
            problems.append(f"metadata: only type object is allowed, found {sorted(metadata)}")
        if set(metadata.get("properties") or {}) - {"name", "generateName"}:
            problems.append("metadata: only name and generateName may be constrained")
    for key in ("apiVersion", "kind"):
        if key in properties and properties[key].get("type") != "string":
            problems.append(f"{key}: must be of type string")
    _check(schema, "(root)", problems)
    return problems


def _check(node: Any, path: str, problems: list[str]) -> None:
    if not isinstance(node, dict):
        problems.append(f"{path}: a schema must be an object")
        return
    unknown = set(node) - JSON_SCHEMA_PROPS
    if unknown:
        problems.append(f"{path}: not JSONSchemaProps fields {sorted(unknown)}")
    forbidden = set(node) & FORBIDDEN
    if forbidden:
        problems.append(f"{path}: forbidden in a CRD schema {sorted(forbidden)}")
    for key in ("allOf", "anyOf", "oneOf", "not"):
        if key in node:
            # Allowed only as pure value validation; we never need them.
            problems.append(f"{path}: {key} is not structural here")
    int_or_string = node.get("x-kubernetes-int-or-string") is True
    preserve = node.get("x-kubernetes-preserve-unknown-fields") is True
    type_ = node.get("type")
    if int_or_string:
        if type_ is not None:
            problems.append(f"{path}: type must be empty with x-kubernetes-int-or-string")
    elif type_ is None:
        if not preserve:
            problems.append(f"{path}: type must not be empty")
    elif type_ not in TYPES:
        problems.append(f"{path}: unknown type {type_!r}")
    if "x-kubernetes-preserve-unknown-fields" in node and not preserve:
        problems.append(f"{path}: x-kubernetes-preserve-unknown-fields must be true when set")
    if "properties" in node and "additionalProperties" in node:
        problems.append(f"{path}: properties and additionalProperties are mutually exclusive")
    additional = node.get("additionalProperties")
    if additional is False or additional is True:
        problems.append(f"{path}: additionalProperties must be a schema")
    if node.get("uniqueItems") is True:
        problems.append(f"{path}: uniqueItems cannot be true")
    if "default" in node:
        problems.append(f"{path}: defaults are left to the controllers")
    if type_ == "array" and "items" not in node:
        problems.append(f"{path}: an array must have items")
    if type_ != "array" and "items" in node:
        problems.append(f"{path}: items on a non-array")
    if type_ != "object" and ("properties" in node or "additionalProperties" in node):
        problems.append(f"{path}: properties on a non-object")
    if "x-kubernetes-map-type" in node and type_ != "object":
        problems.append(f"{path}: x-kubernetes-map-type on a non-object")
    for name in node.get("required") or []:
        if name not in (node.get("properties") or {}):
            problems.append(f"{path}: required {name!r} is not a property")
    if "enum" in node:
        if type_ in PYTHON_TYPES and not all(
            isinstance(value, PYTHON_TYPES[type_]) for value in node["enum"]
        ):
            problems.append(f"{path}: enum values do not match type {type_}")
        if node.get("nullable"):
            # The server checks null against the enum: a nullable enum refuses null.
            problems.append(f"{path}: nullable enum")
    for key in ("exclusiveMinimum", "exclusiveMaximum"):
        if key in node and not isinstance(node[key], bool):
            problems.append(f"{path}: {key} must be a boolean in OpenAPI v3.0")
    if "description" in node and not isinstance(node["description"], str):
        problems.append(f"{path}: description must be a string")
    for name, child in (node.get("properties") or {}).items():
        _check(child, f"{path}.{name}", problems)
    if isinstance(additional, dict):
        _check(additional, f"{path}{{}}", problems)
    if "items" in node:
        _check(node["items"], f"{path}[]", problems)


def walk(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, schema
    for name, child in (schema.get("properties") or {}).items():
        yield from walk(child, f"{path}.{name}" if path else name)
    if isinstance(schema.get("additionalProperties"), dict):
        yield from walk(schema["additionalProperties"], f"{path}{{}}")
    if "items" in schema:
        yield from walk(schema["items"], f"{path}[]")


# ---------------------------------------------------------------------------
# The CRD manifests


def test_there_is_one_crd_per_velero_and_oadp_kind() -> None:
    kinds = {(m["spec"]["group"], m["spec"]["names"]["kind"]) for m in crd_manifests()}
    assert kinds == {("velero.io", kind) for kind in VELERO_KINDS} | {
        ("oadp.openshift.io", "DataProtectionApplication")
    }


@pytest.mark.parametrize("manifest", crd_manifests(), ids=lambda m: m["metadata"]["name"])
def test_every_crd_passes_the_apiextensions_checks(manifest: dict[str, Any]) -> None:
    assert crd_errors(manifest) == []
    schema = manifest["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert structural_problems(schema) == []


@pytest.mark.parametrize("manifest", crd_manifests(), ids=lambda m: m["metadata"]["name"])
def test_every_crd_is_namespaced_with_a_status_subresource(manifest: dict[str, Any]) -> None:
    spec = manifest["spec"]
    assert spec["scope"] == "Namespaced"
    (version,) = spec["versions"]
    assert version["served"] is True
    assert version["storage"] is True
    assert version["subresources"] == {"status": {}}
    names = spec["names"]
    assert manifest["metadata"]["name"] == f"{names['plural']}.{spec['group']}"
    assert names["singular"] == names["kind"].lower()
    assert names["listKind"] == f"{names['kind']}List"


def test_names_and_short_names_are_veleros_and_oadps() -> None:
    names = {m["spec"]["names"]["kind"]: m["spec"]["names"] for m in crd_manifests()}
    assert names["Backup"]["plural"] == "backups"
    assert names["BackupRepository"]["plural"] == "backuprepositories"
    assert names["BackupStorageLocation"]["shortNames"] == ["bsl"]
    assert names["VolumeSnapshotLocation"]["shortNames"] == ["vsl"]
    assert names["ServerStatusRequest"]["shortNames"] == ["ssr"]
    assert names["DataProtectionApplication"]["shortNames"] == ["dpa"]
    assert "shortNames" not in names["Backup"]
    assert crd_manifest("DataProtectionApplication")["spec"]["versions"][0]["name"] == "v1alpha1"


def columns(kind: str) -> list[tuple[str, str, str]]:
    version = crd_manifest(kind)["spec"]["versions"][0]
    return [
        (c["name"], c["jsonPath"], c["type"])
        for c in version.get("additionalPrinterColumns", [])
        if c.get("priority", 0) == 0
    ]


def test_printer_columns_match_what_velero_shows() -> None:
    assert columns("Backup") == [
        ("Status", ".status.phase", "string"),
        ("Errors", ".status.errors", "integer"),
        ("Warnings", ".status.warnings", "integer"),
        ("Created", ".status.startTimestamp", "date"),
        # A date column would print a future expiry as <invalid>.
        ("Expires", ".status.expiration", "string"),
        ("Storage Location", ".spec.storageLocation", "string"),
    ]
    assert columns("Restore") == [
        ("Backup", ".spec.backupName", "string"),
        ("Status", ".status.phase", "string"),
        ("Started", ".status.startTimestamp", "date"),
        ("Completed", ".status.completionTimestamp", "date"),
        ("Errors", ".status.errors", "integer"),
        ("Warnings", ".status.warnings", "integer"),
        ("Created", ".metadata.creationTimestamp", "date"),
    ]
    assert columns("Schedule") == [
        ("Status", ".status.phase", "string"),
        ("Schedule", ".spec.schedule", "string"),
        ("LastBackup", ".status.lastBackup", "date"),
        ("Age", ".metadata.creationTimestamp", "date"),
        ("Paused", ".spec.paused", "boolean"),
    ]
    assert columns("bsl") == [
        ("Phase", ".status.phase", "string"),
        ("Last Validated", ".status.lastValidationTime", "date"),
        ("Age", ".metadata.creationTimestamp", "date"),
        ("Default", ".spec.default", "boolean"),
    ]
    assert [name for name, _, _ in columns("PodVolumeBackup")] == [
        "Status",
        "Started",
        "Bytes Done",
        "Total Bytes",
        "Storage Location",
        "Age",
        "Node",
        "Uploader",
    ]
    assert columns("dpa") == [
        ("Reconciled", ".status.conditions[?(@.type=='Reconciled')].status", "string"),
        ("Age", ".metadata.creationTimestamp", "date"),
    ]
    # Velero declares none for these; the server then shows Age alone.
    for kind in ("DownloadRequest", "ServerStatusRequest", "VolumeSnapshotLocation"):
        assert columns(kind) == []


def test_a_crd_is_found_by_kind_plural_short_name_or_crd_name() -> None:
    for name in ("Backup", "backup", "backups", "backups.velero.io"):
        assert crd_manifest(name)["metadata"]["name"] == "backups.velero.io"
    assert crd_manifest("bsl")["spec"]["names"]["kind"] == "BackupStorageLocation"
    with pytest.raises(NotFoundError, match="Widget"):
        crd_manifest("Widget")


def test_the_manifests_are_fresh_copies() -> None:
    first = crd_manifests()
    first[0]["spec"]["versions"][0]["additionalPrinterColumns"].clear()
    assert crd_manifests()[0]["spec"]["versions"][0]["additionalPrinterColumns"]


def test_definitions_list_each_kind_once() -> None:
    kinds = [definition.kind for definition in resource_definitions()]
    assert len(kinds) == len(set(kinds)) == 12


# ---------------------------------------------------------------------------
# Schema contents


def test_field_docstrings_are_what_kubectl_explain_prints() -> None:
    ttl = node(schema_of("Backup"), "spec.ttl")
    assert ttl["type"] == "string"
    assert "720h0m0s" in ttl["description"]
    assert "``" not in schema_of("Backup")["description"]
    assert node(schema_of("Schedule"), "spec.schedule")["description"].startswith("A standard 5-field cron")


@pytest.mark.parametrize("kind", VELERO_KINDS)
def test_every_velero_field_has_a_description(kind: str) -> None:
    missing = [
        path
        for path, item in walk(schema_of(kind))
        if path and not path.endswith(("[]", "{}")) and "description" not in item
    ]
    assert missing == []


def test_types_are_precise() -> None:
    backup = schema_of("Backup")
    assert node(backup, "status.startTimestamp") == {
        "description": "When the backup started.",
        "type": "string",
        "format": "date-time",
        "nullable": True,
    }
    assert node(backup, "status.errors")["type"] == "integer"
    assert node(backup, "spec.includeClusterResources")["type"] == "boolean"
    assert node(backup, "spec.includedNamespaces")["items"] == {"type": "string"}
    assert node(backup, "spec.orderedResources")["additionalProperties"] == {"type": "string"}
    assert node(schema_of("bsl"), "spec.objectStorage.caCert")["format"] == "byte"


def test_phases_list_veleros_values_and_are_not_nullable() -> None:
    phase = node(schema_of("Backup"), "status.phase")
    assert phase["enum"][:3] == ["New", "Queued", "ReadyToStart"]
    assert "nullable" not in phase
    assert node(schema_of("DeleteBackupRequest"), "status.phase")["enum"] == [
        "New",
        "InProgress",
        "Processed",
    ]
    assert node(schema_of("DownloadRequest"), "spec.target.kind")["enum"][-1] == "RestoreVolumeInfo"
    assert node(schema_of("PodVolumeBackup"), "spec.uploaderType")["enum"] == ["kopia", "restic", ""]


def test_required_fields_are_veleros() -> None:
    assert "required" not in schema_of("BackupStorageLocation")
    assert node(schema_of("bsl"), "spec")["required"] == ["provider", "objectStorage"]
    assert sorted(node(schema_of("Schedule"), "spec")["required"]) == ["schedule", "template"]
    assert node(schema_of("DeleteBackupRequest"), "spec")["required"] == ["backupName"]
    assert sorted(node(schema_of("DownloadRequest"), "spec.target")["required"]) == ["kind", "name"]
    assert sorted(node(schema_of("PodVolumeBackup"), "spec")["required"]) == [
        "backupStorageLocation",
        "node",
        "pod",
        "repoIdentifier",
        "volume",
    ]
    assert node(schema_of("Backup"), "spec.hooks.resources[].pre[].exec")["required"] == ["command"]


def test_free_form_values_keep_their_fields_and_nothing_else_does() -> None:
    restore = schema_of("Restore")
    init_container = node(restore, "spec.hooks.resources[].postHooks[].init.initContainers[]")
    assert init_container == {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    preserving = [
        path
        for kind in VELERO_KINDS
        for path, item in walk(schema_of(kind), kind)
        if item.get("x-kubernetes-preserve-unknown-fields")
    ]
    assert preserving == ["Restore.spec.hooks.resources[].postHooks[].init.initContainers[]"]


def test_selectors_and_references_are_atomic_like_veleros() -> None:
    backup = schema_of("Backup")
    assert node(backup, "spec.labelSelector")["x-kubernetes-map-type"] == "atomic"
    assert node(backup, "spec.resourcePolicy")["x-kubernetes-map-type"] == "atomic"


def test_resource_quantities_are_int_or_string() -> None:
    quantities = [
        item
        for _, item in walk(schema_of("DataProtectionApplication"))
        if item.get("x-kubernetes-int-or-string")
    ]
    assert quantities
    assert all("type" not in item and "anyOf" not in item for item in quantities)


# ---------------------------------------------------------------------------
# The conversion refuses what has no structural form


class Recursive(BaseModel):
    children: list[Recursive] | None = None


class Union(BaseModel):
    value: bool | str


class Loose(BaseModel):
    model_config = ConfigDict(extra="allow")

    anything: Any = None
    mapping: dict[str, Any] | None = None
    flag: bool | None = None


def test_recursive_models_are_refused() -> None:
    with pytest.raises(StrongroomError, match="contains itself"):
        openapi_schema(Recursive)


def test_type_unions_are_refused() -> None:
    with pytest.raises(StrongroomError, match="value: a union"):
        openapi_schema(Union)


def test_any_and_free_maps_preserve_unknown_fields_and_extras_are_pruned() -> None:
    schema = openapi_schema(Loose)
    assert schema["properties"]["anything"] == {
        "x-kubernetes-preserve-unknown-fields": True,
        "nullable": True,
    }
    assert schema["properties"]["mapping"] == {
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
        "nullable": True,
    }
    assert "additionalProperties" not in schema
    assert "x-kubernetes-preserve-unknown-fields" not in schema
    assert structural_problems(schema) == []


# ---------------------------------------------------------------------------
# The schemas accept what the models write, and the seed's examples


def seed_examples() -> list[Path]:
    return sorted(SEED.glob("*.yaml"))


@pytest.mark.parametrize("path", seed_examples(), ids=lambda path: path.stem)
def test_the_seed_examples_pass_the_schema_without_losing_a_field(path: Path) -> None:
    # kubectl apply validates strictly: a field the schema would prune is refused as unknown.
    example = yaml.safe_load(path.read_text(encoding="utf-8"))
    pruned: list[str] = []
    kept, causes = prune_and_validate(schema_of(example["kind"]), copy.deepcopy(example), pruned)
    assert causes == []
    assert pruned == []
    assert kept == example


def full_backup() -> dict[str, Any]:
    fixture = Path(__file__).parent / "data" / "velero-backup.json"
    manifest: dict[str, Any] = Backup.from_manifest(yaml.safe_load(fixture.read_text())).to_manifest()
    manifest["metadata"] = {"name": "b", "namespace": "velero"}
    return manifest


def test_a_velero_backup_json_passes_the_schema_without_losing_a_field() -> None:
    manifest = full_backup()
    pruned: list[str] = []
    kept, causes = prune_and_validate(schema_of("Backup"), copy.deepcopy(manifest), pruned)
    assert causes == []
    assert pruned == []
    assert kept == manifest


def test_a_wrong_type_is_named_by_the_schema() -> None:
    _, causes = prune_and_validate(schema_of("Backup"), {"spec": {"ttl": 5, "includedNamespaces": "a"}})
    assert sorted(path for path, _, _ in causes) == ["spec.includedNamespaces", "spec.ttl"]


def test_fields_only_the_model_keeps_as_extras_are_pruned_by_the_server() -> None:
    restore = Restore.from_manifest({"spec": {"backupName": "b", "futureField": 1}}).to_manifest()
    pruned: list[str] = []
    prune_and_validate(schema_of("Restore"), restore, pruned)
    assert pruned == ["spec.futureField"]


def test_the_checker_refuses_what_pydantic_writes_unconverted() -> None:
    # The checker must be able to fail: pydantic's own schema is not structural.
    problems = structural_problems(Backup.model_json_schema(by_alias=True))
    assert "(root).spec: forbidden in a CRD schema ['$ref']" in problems
    assert "(root).spec: type must not be empty" in problems
    assert "(root): properties and additionalProperties are mutually exclusive" in problems
    problems = structural_problems(Loose.model_json_schema())
    assert "(root).flag: anyOf is not structural here" in problems
