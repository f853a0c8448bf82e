"""The CustomResourceDefinitions of Velero's and OADP's resources, generated from the models.

The models in this package are the one description of each resource, so the
CRDs strongroom installs are derived from them rather than written by hand:
the schemas the API server validates with and ``kubectl explain`` prints
cannot drift from what the controllers read. A pydantic JSON Schema is not
what the apiextensions server accepts, though; it wants a *structural*
OpenAPI v3 schema: every node typed, no references, no type unions, no
``additionalProperties`` beside ``properties``, and only ``name`` and
``generateName`` constrained in the root ``metadata``. :func:`openapi_schema`
does that conversion and refuses a model it cannot express rather than
emitting a schema the server would reject.

Names, scope and printer columns follow Velero's CRDs (and OADP's for the
DataProtectionApplication). Two deliberate differences:

* every kind has the ``status`` subresource, so a user's ``kubectl apply``
  cannot overwrite what the server recorded, and the controllers write status
  through ``/status`` (Velero's CRDs have no subresources; a Backup created
  with a status, as backup sync does, gets it through a second write);
* Backups and Restores get the columns ``velero backup get`` and ``velero
  restore get`` print (Velero's CRDs declare none for them), with
  ``Expires`` as text because a ``date`` column shows a future time as
  ``<invalid>``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from pydantic import BaseModel

from strongroom.errors import NotFoundError, StrongroomError
from strongroom.model.oadp import DataProtectionApplication
from strongroom.model.podvolume import BackupRepository, PodVolumeBackup, PodVolumeRestore
from strongroom.model.requests import DeleteBackupRequest, DownloadRequest, ServerStatusRequest
from strongroom.model.schedule import Schedule
from strongroom.model.snapshotlocation import VolumeSnapshotLocation
from strongroom.model.velero import Backup, BackupStorageLocation, Restore

__all__ = [
    "CRD_API_VERSION",
    "ResourceDefinition",
    "crd_manifest",
    "crd_manifests",
    "openapi_schema",
    "resource_definitions",
]

CRD_API_VERSION: Final = "apiextensions.k8s.io/v1"

JsonObject = dict[str, Any]


@dataclass(frozen=True)
class ResourceDefinition:
    """What a CRD needs beyond the schema: the kind's names and how ``kubectl get`` lists it."""

    model: type[BaseModel]
    group: str
    version: str
    kind: str
    plural: str
    short_names: tuple[str, ...] = ()
    printer_columns: tuple[JsonObject, ...] = ()

    @property
    def name(self) -> str:
        """The CRD's name, ``<plural>.<group>``."""
        return f"{self.plural}.{self.group}"

    @property
    def singular(self) -> str:
        return self.kind.lower()


def _column(
    name: str,
    json_path: str,
    type_: str = "string",
    description: str | None = None,
    *,
    priority: int = 0,
    fmt: str | None = None,
) -> JsonObject:
    column: JsonObject = {"name": name, "type": type_, "jsonPath": json_path}
    if description:
        column["description"] = description
    if fmt:
        column["format"] = fmt
    if priority:
        column["priority"] = priority
    return column


_AGE = _column("Age", ".metadata.creationTimestamp", "date")

_VELERO: Final = "velero.io"
_OADP: Final = "oadp.openshift.io"

_DEFINITIONS: Final = (
    ResourceDefinition(
        Backup,
        _VELERO,
        "v1",
        "Backup",
        "backups",
        printer_columns=(
            _column("Status", ".status.phase", description="The phase of the backup"),
            _column("Errors", ".status.errors", "integer", "Errors the backup produced"),
            _column("Warnings", ".status.warnings", "integer", "Warnings the backup produced"),
            _column("Created", ".status.startTimestamp", "date", "When the backup started"),
            _column("Expires", ".status.expiration", description="When the backup expires"),
            _column("Storage Location", ".spec.storageLocation", description="Where the backup is stored"),
            _column(
                "Queue Position",
                ".status.queuePosition",
                "integer",
                "The backup's place in the queue",
                priority=1,
            ),
            _column("Selector", ".spec.labelSelector", description="The backup's label selector", priority=1),
        ),
    ),
    ResourceDefinition(
        Restore,
        _VELERO,
        "v1",
        "Restore",
        "restores",
        printer_columns=(
            _column("Backup", ".spec.backupName", description="The backup restored from"),
            _column("Status", ".status.phase", description="The phase of the restore"),
            _column("Started", ".status.startTimestamp", "date", "When the restore started"),
            _column("Completed", ".status.completionTimestamp", "date", "When the restore ended"),
            _column("Errors", ".status.errors", "integer", "Errors the restore produced"),
            _column("Warnings", ".status.warnings", "integer", "Warnings the restore produced"),
            _column("Created", ".metadata.creationTimestamp", "date", "When the restore was created"),
            _column(
                "Selector", ".spec.labelSelector", description="The restore's label selector", priority=1
            ),
        ),
    ),
    ResourceDefinition(
        Schedule,
        _VELERO,
        "v1",
        "Schedule",
        "schedules",
        printer_columns=(
            _column("Status", ".status.phase", description="The phase of the schedule"),
            _column("Schedule", ".spec.schedule", description="The cron expression backups are created on"),
            _column("LastBackup", ".status.lastBackup", "date", "When a backup was last created"),
            _AGE,
            _column("Paused", ".spec.paused", "boolean"),
        ),
    ),
    ResourceDefinition(
        BackupStorageLocation,
        _VELERO,
        "v1",
        "BackupStorageLocation",
        "backupstoragelocations",
        short_names=("bsl",),
        printer_columns=(
            _column("Phase", ".status.phase", description="Available or Unavailable"),
            _column(
                "Last Validated", ".status.lastValidationTime", "date", "When the location was last checked"
            ),
            _AGE,
            _column("Default", ".spec.default", "boolean", "Whether this is the default location"),
        ),
    ),
    ResourceDefinition(
        VolumeSnapshotLocation,
        _VELERO,
        "v1",
        "VolumeSnapshotLocation",
        "volumesnapshotlocations",
        short_names=("vsl",),
    ),
    ResourceDefinition(
        DeleteBackupRequest,
        _VELERO,
        "v1",
        "DeleteBackupRequest",
        "deletebackuprequests",
        printer_columns=(
            _column("BackupName", ".spec.backupName", description="The backup to delete"),
            _column("Status", ".status.phase", description="The phase of the deletion"),
        ),
    ),
    ResourceDefinition(DownloadRequest, _VELERO, "v1", "DownloadRequest", "downloadrequests"),
    ResourceDefinition(
        ServerStatusRequest,
        _VELERO,
        "v1",
        "ServerStatusRequest",
        "serverstatusrequests",
        short_names=("ssr",),
    ),
    ResourceDefinition(
        PodVolumeBackup,
        _VELERO,
        "v1",
        "PodVolumeBackup",
        "podvolumebackups",
        printer_columns=(
            _column("Status", ".status.phase", description="The phase of the copy"),
            _column("Started", ".status.startTimestamp", "date", "When the copy started"),
            _column("Bytes Done", ".status.progress.bytesDone", "integer", "Bytes copied", fmt="int64"),
            _column("Total Bytes", ".status.progress.totalBytes", "integer", "Bytes to copy", fmt="int64"),
            _column(
                "Incremental Bytes",
                ".status.incrementalBytes",
                "integer",
                "Bytes new or changed since the previous snapshot",
                priority=10,
                fmt="int64",
            ),
            _column(
                "Storage Location",
                ".spec.backupStorageLocation",
                description="The location of the repository",
            ),
            _column("Age", ".metadata.creationTimestamp", "date", "When the request was created"),
            _column("Node", ".status.node", description="The node whose agent copies the volume"),
            _column("Uploader", ".spec.uploaderType", description="kopia or restic"),
        ),
    ),
    ResourceDefinition(
        PodVolumeRestore,
        _VELERO,
        "v1",
        "PodVolumeRestore",
        "podvolumerestores",
        printer_columns=(
            _column("Status", ".status.phase", description="The phase of the copy"),
            _column("Started", ".status.startTimestamp", "date", "When the copy started"),
            _column("Bytes Done", ".status.progress.bytesDone", "integer", "Bytes copied", fmt="int64"),
            _column("Total Bytes", ".status.progress.totalBytes", "integer", "Bytes to copy", fmt="int64"),
            _column(
                "Storage Location",
                ".spec.backupStorageLocation",
                description="The location of the repository",
            ),
            _column("Age", ".metadata.creationTimestamp", "date", "When the request was created"),
            _column("Node", ".status.node", description="The node whose agent copies the volume"),
            _column("Uploader Type", ".spec.uploaderType", description="kopia or restic"),
        ),
    ),
    ResourceDefinition(
        BackupRepository,
        _VELERO,
        "v1",
        "BackupRepository",
        "backuprepositories",
        printer_columns=(_AGE, _column("Repository Type", ".spec.repositoryType")),
    ),
    ResourceDefinition(
        DataProtectionApplication,
        _OADP,
        "v1alpha1",
        "DataProtectionApplication",
        "dataprotectionapplications",
        short_names=("dpa",),
        printer_columns=(
            _column(
                "Reconciled",
                ".status.conditions[?(@.type=='Reconciled')].status",
                description="Whether the DataProtectionApplication was reconciled",
            ),
            _column(
                "Age", ".metadata.creationTimestamp", "date", "When the DataProtectionApplication was created"
            ),
        ),
    ),
)


def resource_definitions() -> tuple[ResourceDefinition, ...]:
    """Every custom resource strongroom serves, in the order the CRDs are installed."""
    return _DEFINITIONS


def crd_manifests() -> list[JsonObject]:
    """The ``apiextensions.k8s.io/v1`` CustomResourceDefinitions of all of Velero's and OADP's kinds."""
    return [_crd(definition) for definition in _DEFINITIONS]


def crd_manifest(name: str) -> JsonObject:
    """One CRD, looked up by kind (``Backup``), plural (``backups``), short name or CRD name.

    Raises :class:`NotFoundError` for a name that is none of these.
    """
    wanted = name.lower()
    for definition in _DEFINITIONS:
        names = {definition.kind.lower(), definition.plural, definition.name, *definition.short_names}
        if wanted in names:
            return _crd(definition)
    known = ", ".join(definition.kind for definition in _DEFINITIONS)
    raise NotFoundError(f"no custom resource definition for {name!r}", hint=f"known kinds: {known}")


def _crd(definition: ResourceDefinition) -> JsonObject:
    names: JsonObject = {
        "kind": definition.kind,
        "listKind": f"{definition.kind}List",
        "plural": definition.plural,
        "singular": definition.singular,
    }
    if definition.short_names:
        names["shortNames"] = list(definition.short_names)
    version: JsonObject = {"name": definition.version, "served": True, "storage": True}
    if definition.printer_columns:
        version["additionalPrinterColumns"] = [dict(column) for column in definition.printer_columns]
    version["schema"] = {"openAPIV3Schema": openapi_schema(definition.model)}
    version["subresources"] = {"status": {}}
    return {
        "apiVersion": CRD_API_VERSION,
        "kind": "CustomResourceDefinition",
        "metadata": {"name": definition.name},
        "spec": {
            "group": definition.group,
            "names": names,
            "scope": "Namespaced",
            "versions": [version],
        },
    }


# ---------------------------------------------------------------------------
# pydantic JSON Schema -> structural OpenAPI v3
# ---------------------------------------------------------------------------

_API_VERSION_DOC: Final = (
    "The versioned schema of this representation of an object; the server converts "
    "recognised schemas to the latest internal value."
)
_KIND_DOC: Final = (
    "The REST resource this object represents, in CamelCase; the server infers it from the endpoint."
)
_METADATA_DOC: Final = "Standard object metadata: name, namespace, labels, annotations ..."

# Keywords both JSON Schema and the apiextensions server understand, copied as they are.
_KEPT: Final = frozenset(
    {
        "format",
        "pattern",
        "minLength",
        "maxLength",
        "minItems",
        "maxItems",
        "minProperties",
        "maxProperties",
        "minimum",
        "maximum",
        "multipleOf",
        "enum",
    }
)
# Keywords that describe the Python side only (or that the server refuses, such as
# uniqueItems): dropped. Defaults in particular stay with the controllers, which
# know them; a server-side default would be written into every stored object.
_DROPPED: Final = frozenset(
    {"title", "default", "examples", "deprecated", "readOnly", "writeOnly", "uniqueItems", "$defs"}
)
# Kubernetes' own types that Velero's CRDs mark as replaced whole by apply, never merged.
_ATOMIC_MAPS: Final = frozenset(
    {"LabelSelectorSpec", "SecretKeySelector", "TypedLocalObjectReference", "ObjectReference"}
)
_REF_PREFIX: Final = "#/$defs/"


def openapi_schema(model: type[BaseModel]) -> JsonObject:
    """The structural OpenAPI v3 schema of a resource model, as ``openAPIV3Schema`` of a CRD.

    Field docstrings become descriptions; optional fields are ``nullable``
    (except enums, whose null the server would check against the values);
    ``int | str`` becomes ``x-kubernetes-int-or-string``; free-form values
    (``Any``, ``dict[str, Any]``) keep unknown fields; fields the model keeps
    only as extras are pruned by the server, as Velero's CRDs do. Raises
    :class:`StrongroomError` for a model that has no structural equivalent.
    """
    raw = model.model_json_schema(by_alias=True)
    definitions: Mapping[str, JsonObject] = raw.get("$defs", {})
    root = _convert(raw, definitions, "", ())
    root.pop("required", None)  # Velero's CRDs require nothing at the root, not even spec
    root.pop("nullable", None)
    properties = root.setdefault("properties", {})
    properties["apiVersion"] = {"type": "string", "description": _API_VERSION_DOC}
    properties["kind"] = {"type": "string", "description": _KIND_DOC}
    # Only name and generateName may be constrained at the root; the server owns the rest.
    properties["metadata"] = {"type": "object", "description": _METADATA_DOC}
    root["type"] = "object"
    return root


def _description(text: str) -> str:
    # Docstrings use reStructuredText literals; kubectl explain shows plain text.
    return re.sub(r"``([^`]+)``", r"`\1`", text).strip()


def _resolve(
    node: Mapping[str, Any], definitions: Mapping[str, JsonObject], path: str
) -> tuple[JsonObject, str]:
    """The node with a reference (``$ref`` or a lone ``allOf``) replaced by its target; siblings win."""
    merged = dict(node)
    name = ""
    all_of = merged.pop("allOf", None)
    if all_of is not None:
        if len(all_of) != 1:
            raise StrongroomError(
                f"{path or 'the root'}: allOf with {len(all_of)} schemas has no structural form"
            )
        merged = {**all_of[0], **merged}
    ref = merged.pop("$ref", None)
    if ref is not None:
        if not isinstance(ref, str) or not ref.startswith(_REF_PREFIX):
            raise StrongroomError(f"{path}: unsupported reference {ref!r}")
        name = ref.removeprefix(_REF_PREFIX)
        target = definitions[name]
        merged = {**target, **merged}
    return merged, name


def _convert(
    node: Mapping[str, Any], definitions: Mapping[str, JsonObject], path: str, seen: tuple[str, ...]
) -> JsonObject:
    node, name = _resolve(node, definitions, path)
    if name:
        if name in seen:
            raise StrongroomError(f"{path}: {name} contains itself; a CRD schema cannot be recursive")
        seen = (*seen, name)
    nullable = False
    union = node.pop("anyOf", None) or node.pop("oneOf", None)
    if union is not None:
        alternatives = [alt for alt in union if alt.get("type") != "null"]
        nullable = len(alternatives) < len(union)
        types = {alt.get("type") for alt in alternatives}
        if len(alternatives) == 1:
            inner, inner_name = _resolve(alternatives[0], definitions, path)
            if inner_name in seen:
                raise StrongroomError(
                    f"{path}: {inner_name} contains itself; a CRD schema cannot be recursive"
                )
            if inner_name:
                seen = (*seen, inner_name)
                name = inner_name
            node = {**inner, **node}
        elif len(alternatives) == 2 and types in ({"integer", "string"}, {"number", "string"}):
            node["x-kubernetes-int-or-string"] = True
        else:
            raise StrongroomError(
                f"{path}: a union of {sorted(str(t) for t in types)} has no structural form; "
                "only T | None and int | str do"
            )

    out: JsonObject = {}
    if "description" in node:
        out["description"] = _description(str(node.pop("description")))
    if node.pop("x-kubernetes-int-or-string", False):
        # The server allows nothing but the marker (and its description) on an int-or-string node.
        if nullable:
            out["nullable"] = True
        out["x-kubernetes-int-or-string"] = True
        return out

    if "const" in node:
        node.setdefault("enum", [node.pop("const")])
    for key in ("exclusiveMinimum", "exclusiveMaximum"):
        # JSON Schema's exclusive bounds are numbers; OpenAPI v3.0's are flags on minimum/maximum.
        if key in node and not isinstance(node[key], bool):
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = node.pop(key)
            out[key] = True

    type_ = node.pop("type", None)
    properties = node.pop("properties", None)
    additional = node.pop("additionalProperties", None)
    items = node.pop("items", None)
    required = node.pop("required", None)
    preserve = bool(node.pop("x-kubernetes-preserve-unknown-fields", False))

    if type_ is None and properties is None and items is None:
        # Any: a free-form value of any JSON type, null included.
        out["x-kubernetes-preserve-unknown-fields"] = True
        nullable = True
    elif type_ is not None:
        if not isinstance(type_, str):
            raise StrongroomError(f"{path}: a list of types {type_!r} has no structural form")
        out["type"] = type_
    else:
        out["type"] = "object" if properties is not None else "array"

    if properties is not None:
        converted = {
            key: _convert(child, definitions, f"{path}.{key}" if path else key, seen)
            for key, child in properties.items()
        }
        if converted:
            out["properties"] = converted
            if required:
                out["required"] = list(required)
        # additionalProperties beside properties is only pydantic's extra="allow":
        # the server prunes such fields, as it does for Velero's CRDs.
    elif isinstance(additional, dict) and additional:
        out["additionalProperties"] = _convert(additional, definitions, f"{path}[*]", seen)
    elif additional is True or additional == {}:
        preserve = True
    if items is not None:
        out["items"] = _convert(items, definitions, f"{path}[*]", seen)

    for key in list(node):
        if key in _KEPT:
            out[key] = node.pop(key)
        elif key in _DROPPED or key.startswith("x-kubernetes-"):
            if key.startswith("x-kubernetes-"):
                out[key] = node[key]
            node.pop(key)
    if node:
        raise StrongroomError(
            f"{path or 'the root'}: JSON Schema keywords {sorted(node)} have no CRD equivalent"
        )

    if preserve:
        out["x-kubernetes-preserve-unknown-fields"] = True
    if name in _ATOMIC_MAPS and out.get("type") == "object":
        out["x-kubernetes-map-type"] = "atomic"
    if nullable and "enum" not in out:
        out["nullable"] = True
    return out
