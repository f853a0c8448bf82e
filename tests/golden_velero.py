"""Generate the golden Velero backup in ``tests/data/velero-golden/``, byte layout as Velero writes it.

Why this exists: strongroom must restore what Velero writes. A fixture made
with strongroom's own ``BackupWriter`` would only prove that strongroom agrees
with itself, so this module reproduces, independently of ``strongroom``, what
a Velero v1.16.2 server stores in its bucket for ``velero backup create golden
--include-namespaces shop`` (server flag ``--features=EnableAPIGroupVersions``,
no volume snapshot location, file-system backup not requested) against a
Kubernetes v1.31.4 cluster. Every choice below cites the Velero (or Go
standard library) behaviour it reproduces; nothing here imports strongroom.

What is reproduced, and from where:

* ``<B>.tar.gz``: Go's ``archive/tar`` writer as Velero drives it
  (``pkg/backup/backup.go`` ``writeBackupVersion``, ``item_backupper.go``
  ``getFileForArchive``): headers with only Name, Size, Typeflag ``'0'``,
  Mode 0755 and ModTime (rounded to the second by ``tar.Writer``); Go picks
  USTAR, splitting a long path into the ``prefix`` field at the last ``/``
  within 156 bytes, and a PAX ``path`` record (header named
  ``<dir>/PaxHeaders.0/<file>``, mode/mtime 0, no device numbers) when the
  file name part exceeds 100 bytes; uid/gid 0, uname/gname empty, no
  directory entries, two zero blocks at the end and no record padding.
  (Checked byte for byte against Go 1.19's ``archive/tar``: see the
  fixture's README.)
* gzip as Go's ``compress/gzip`` writes it: header ``1f 8b 08``, no flags,
  MTIME 0, XFL 0 (default level), OS 255, and the stream ends, as Go's
  ``flate.Writer.Close`` ends it, with an empty final stored block
  (``01 00 00 ff ff``). The compressed blocks before it come from zlib, not
  Go's compressor, and end with a sync flush (an empty non-final stored
  block Go does not write), so the deflate bits differ from Go's; every
  inflater reads both to the same bytes.
* items: Go's ``json.Marshal`` of the unstructured object (keys sorted,
  compact, ``<``, ``>``, ``&`` escaped), each written twice (classic path and
  ``v1-preferredversion``), and CronTabs a third time under ``v1beta1/``
  because of EnableAPIGroupVersions; in Velero's order: ``metadata/version``,
  then the core group with pods first (a pod's PVC and the PVC's PV, backed up
  as additional items, land before the pod), then the other groups, and the
  CRD of a backed-up custom resource last (``backupCRD``). Velero's order
  among resources of one group (and, with EnableAPIGroupVersions, among
  groups) comes from Go map iteration in client-go's discovery and varies
  between runs; this fixture fixes one possible order (alphabetical).
* ``velero-backup.json``: the Backup as the finalizer re-uploads it
  (``backup_finalizer_controller.go``): apimachinery's pretty JSON encoder
  (``json.MarshalIndent``, two spaces, struct field order, no trailing
  newline), phase Completed, with the server's defaults (TTL 720h,
  CSI snapshot timeout 10m, item operation timeout 4h, storage location
  ``default``, ``defaultVolumesToFsBackup``/``snapshotMoveData`` false).
* side files: ``encode.ToJSONGzip`` (``json.Encoder``: one line plus ``\\n``)
  of what ``persistBackup`` hands it; empty lists that are nil in Go are
  ``null``, the item operations list is ``[]``.

Regenerate (output is deterministic; only zlib's version can change the
compressed bytes)::

    .venv/bin/python -m tests.golden_velero            # rewrite the fixture
    .venv/bin/python -m tests.golden_velero --check    # compare decompressed contents
"""

from __future__ import annotations

import argparse
import base64
import json
import struct
import sys
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

BACKUP = "golden"
NAMESPACE = "shop"
VELERO_NAMESPACE = "velero"
VELERO_VERSION = "v1.16.2"
K8S_GIT_VERSION = "v1.31.4"
FORMAT_VERSION = "1.1.0"
FIXTURE_DIR = Path(__file__).parent / "data" / "velero-golden"

# --------------------------------------------------------------------------
# Go's encoding/json


_GO_HTML_ESCAPES = (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e"))
_GO_LINE_ESCAPES = (("\u2028", "\\u2028"), ("\u2029", "\\u2029"))


def _go_escape(text: str) -> str:
    # Go's encoder escapes these inside strings (HTML safety and JavaScript
    # line terminators); they cannot occur outside strings in JSON text.
    for raw, escaped in (*_GO_HTML_ESCAPES, *_GO_LINE_ESCAPES):
        text = text.replace(raw, escaped)
    return text


def go_marshal_map(value: Any) -> bytes:
    """``json.Marshal`` of a Go map[string]interface{} tree: keys sorted, compact."""
    return _go_escape(json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)).encode()


def go_marshal_struct(value: Any) -> bytes:
    """``json.Marshal`` of Go structs: keys in the (insertion) order given, maps pre-sorted by the caller."""
    return _go_escape(json.dumps(value, separators=(",", ":"), ensure_ascii=False)).encode()


def go_encoder_line(value: Any, *, struct_order: bool = False) -> bytes:
    """``json.NewEncoder(w).Encode(v)``: ``Marshal`` plus a newline."""
    return (go_marshal_struct(value) if struct_order else go_marshal_map(value)) + b"\n"


def go_marshal_indent(value: Any) -> bytes:
    """``json.MarshalIndent(v, "", "  ")``: what apimachinery's pretty JSON serializer writes (no final newline)."""
    return _go_escape(json.dumps(value, indent=2, ensure_ascii=False)).encode()


# --------------------------------------------------------------------------
# Go's compress/gzip

# ID1 ID2 CM=deflate FLG=0 MTIME=0 XFL=0 OS=255 (Go's gzip.Writer with a zero Header).
GO_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
# What flate.Writer.Close appends: an empty stored block with BFINAL set.
_FINAL_EMPTY_STORED_BLOCK = b"\x01\x00\x00\xff\xff"


def go_gzip(data: bytes, level: int = 6) -> bytes:
    """gzip ``data`` with Go's header and Go's closing block (deflate blocks from zlib)."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)
    # A sync flush ends the data blocks byte-aligned without BFINAL, so the
    # final empty stored block Go writes can follow.
    body = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH) + _FINAL_EMPTY_STORED_BLOCK
    trailer = struct.pack("<II", zlib.crc32(data), len(data) & 0xFFFFFFFF)
    return GO_GZIP_HEADER + body + trailer


# --------------------------------------------------------------------------
# Go's archive/tar

_BLOCK = 512
_NAME_SIZE = 100
_PREFIX_SIZE = 155


def _go_octal(value: int, width: int) -> bytes:
    # formatOctal: zero-padded, leaving room for a NUL terminator.
    digits = f"{value:o}"
    if len(digits) > width - 1:
        raise ValueError(f"{value} does not fit a {width}-byte tar field")
    return digits.rjust(width - 1, "0").encode() + b"\x00"


def _field(value: bytes, width: int) -> bytes:
    # formatString: copy and NUL-terminate when shorter (a field of exactly
    # `width` bytes keeps no terminator; a longer one is truncated).
    return value[:width].ljust(width, b"\x00")


def split_ustar_path(name: str) -> tuple[str, str] | None:
    """Go's ``splitUSTARPath``: (prefix, name) at the last "/" within the first 156 bytes, or None."""
    length = len(name)
    if length <= _NAME_SIZE or not name.isascii():
        return None
    if length > _PREFIX_SIZE + 1:
        length = _PREFIX_SIZE + 1
    elif name[length - 1] == "/":
        length -= 1
    cut = name.rfind("/", 0, length)
    suffix_len = len(name) - cut - 1
    if cut <= 0 or suffix_len > _NAME_SIZE or suffix_len == 0 or cut > _PREFIX_SIZE:
        return None
    return name[:cut], name[cut + 1 :]


def _header_block(
    *,
    name: bytes,
    mode: int,
    size: int,
    mtime: int,
    typeflag: bytes,
    prefix: bytes = b"",
    device_numbers: bool = True,
) -> bytes:
    """One header block in the USTAR layout with Go's field formatting and checksum."""
    fields = [
        _field(name, 100),  # name
        _go_octal(mode, 8),  # mode
        _go_octal(0, 8),  # uid
        _go_octal(0, 8),  # gid
        _go_octal(size, 12),  # size
        _go_octal(mtime, 12),  # mtime
        b" " * 8,  # checksum, counted as spaces
        typeflag,
        bytes(100),  # linkname
        b"ustar\x00",  # magic (USTAR and PAX)
        b"00",  # version
        bytes(32),  # uname: empty in Velero's headers
        bytes(32),  # gname
        _go_octal(0, 8) if device_numbers else bytes(8),  # devmajor
        _go_octal(0, 8) if device_numbers else bytes(8),  # devminor
        _field(prefix, 155),
        bytes(12),
    ]
    block = b"".join(fields)
    assert len(block) == _BLOCK
    # setFormat: six octal digits, NUL, space.
    checksum = f"{sum(block):06o}".encode() + b"\x00 "
    return block[:148] + checksum + block[156:]


def _pad(size: int) -> bytes:
    return bytes(-size % _BLOCK)


def _pax_record(key: str, value: str) -> bytes:
    # formatPAXRecord: "<size> <key>=<value>\n", the size counting itself.
    size = len(key) + len(value) + 3
    size += len(str(size))
    record = f"{size} {key}={value}\n"
    if len(record.encode()) != size:
        size = len(record.encode())
        record = f"{size} {key}={value}\n"
    return record.encode()


def go_tar_member(name: str, data: bytes, mtime: int) -> bytes:
    """A regular file as ``tar.Writer.WriteHeader`` + ``Write`` emit it for Velero's headers."""
    split = split_ustar_path(name)
    if len(name) <= _NAME_SIZE and name.isascii():
        header = _header_block(name=name.encode(), mode=0o755, size=len(data), mtime=mtime, typeflag=b"0")
        return header + data + _pad(len(data))
    if split is not None:
        prefix, suffix = split
        header = _header_block(
            name=suffix.encode(),
            prefix=prefix.encode(),
            mode=0o755,
            size=len(data),
            mtime=mtime,
            typeflag=b"0",
        )
        return header + data + _pad(len(data))
    # writePAXHeader: an 'x' member holding the path, then the main header
    # with the path cut to 100 ASCII bytes.
    records = _pax_record("path", name)
    directory, _, file = name.rpartition("/")
    pax_name = (f"{directory}/PaxHeaders.0/{file}" if directory else f"PaxHeaders.0/{file}")[:_NAME_SIZE]
    pax_header = _header_block(
        name=pax_name.rstrip("/").encode(),
        mode=0,
        size=len(records),
        mtime=0,
        typeflag=b"x",
        device_numbers=False,
    )
    ascii_name = name.encode("ascii", "ignore")
    header = _header_block(name=ascii_name, mode=0o755, size=len(data), mtime=mtime, typeflag=b"0")
    return pax_header + records + _pad(len(records)) + header + data + _pad(len(data))


GO_TAR_FOOTER = bytes(2 * _BLOCK)


# --------------------------------------------------------------------------
# time


def ts(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def rfc3339(moment: datetime) -> str:
    """metav1.Time's JSON form: RFC 3339, UTC, whole seconds."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


NS_CREATED = ts("2025-06-02T16:02:11Z")
CRD_CREATED = ts("2025-06-02T16:03:40Z")
APP_CREATED = ts("2025-06-02T16:04:27Z")
BACKUP_CREATED = ts("2025-06-04T09:30:00Z")
BACKUP_STARTED = ts("2025-06-04T09:30:01Z")
BACKUP_COMPLETED = ts("2025-06-04T09:30:05Z")
DEFAULT_TTL = timedelta(hours=720)


# --------------------------------------------------------------------------
# managedFields in kube-apiserver's shape

# Lists merged by key (strategic merge / structured-merge-diff list-map keys).
_LIST_KEYS: dict[str, tuple[str, ...]] = {
    "containers": ("name",),
    "initContainers": ("name",),
    "volumes": ("name",),
    "volumeMounts": ("mountPath",),
    "env": ("name",),
    "conditions": ("type",),
    "tolerations": (),
    "envFrom": (),
}
_PORT_KEYS = {"containers": ("containerPort", "protocol"), "spec": ("port", "protocol")}


def fields_v1(value: Mapping[str, Any], *, depth: int = 0, parent: str = "") -> dict[str, Any]:
    """The FieldsV1 set of every field in ``value``, nested as the API server records it."""
    result: dict[str, Any] = {}
    if depth >= 2:
        result["."] = {}
    for key, item in value.items():
        if item is None:
            continue
        name = f"f:{key}"
        atomic_selector = (
            key == "selector" and parent == "spec" and isinstance(item, Mapping) and "matchLabels" in item
        )
        if isinstance(item, Mapping) and item and not atomic_selector:
            result[name] = fields_v1(item, depth=depth + 1, parent=key)
        elif isinstance(item, list) and item and all(isinstance(entry, Mapping) for entry in item):
            keys = _list_keys(key, parent)
            entries: dict[str, Any] = {}
            for entry in item if keys else ():
                identity = {k: entry[k] for k in keys if k in entry}
                entries["k:" + json.dumps(identity, separators=(",", ":"), sort_keys=True)] = fields_v1(
                    entry, depth=max(depth + 1, 2), parent=key
                )
            result[name] = entries
        else:
            # Scalars, atomic lists and atomic maps are owned as a whole.
            result[name] = {}
    return dict(sorted(result.items()))


def _list_keys(key: str, parent: str) -> tuple[str, ...]:
    if key == "ports":
        return _PORT_KEYS.get(parent, ("containerPort", "protocol"))
    return _LIST_KEYS.get(key, ())


def managed(
    manager: str,
    operation: str,
    api_version: str,
    time: datetime,
    fields: Mapping[str, Any],
    subresource: str | None = None,
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "apiVersion": api_version,
        "fieldsType": "FieldsV1",
        "fieldsV1": fields_v1(fields),
        "manager": manager,
        "operation": operation,
    }
    if subresource:
        entry["subresource"] = subresource
    entry["time"] = rfc3339(time)
    return entry


def last_applied(obj: Mapping[str, Any]) -> str:
    # kubectl stores the applied manifest as compact JSON with a trailing newline.
    return json.dumps(obj, separators=(",", ":"), sort_keys=True) + "\n"


# --------------------------------------------------------------------------
# the cluster's objects, as kube-apiserver returns them

UIDS = {
    "namespace": "5f0c1a52-7d7e-4b8e-9a51-2c1f4e0d9b11",
    "crd": "0e6c3a1b-2d4f-4a8e-b1c7-9f3e5d2a6b40",
    "deployment": "a3d9e5f1-7b2c-4c8d-9e6f-1a2b3c4d5e60",
    "replicaset": "b4e0f6a2-8c3d-4d9e-af70-2b3c4d5e6f71",
    "pod": "c5f1a7b3-9d4e-4eaf-b081-3c4d5e6f7082",
    "pvc": "8c1e2f4a-93b5-4d6e-a7f1-0b2c3d4e5f60",
    "service": "d6a2b8c4-ae5f-4fb0-8192-4d5e6f708193",
    "endpointslice": "e7b3c9d5-bf60-40c1-92a3-5e6f708192a4",
    "endpoints": "f8c4dae6-c071-41d2-a3b4-6f708192a3b5",
    "configmap": "09d5ebf7-d182-42e3-b4c5-708192a3b4c6",
    "configmap-long": "1ae6fc08-e293-43f4-85d6-8192a3b4c5d7",
    "kube-root-ca": "2bf70d19-f3a4-4405-96e7-92a3b4c5d6e8",
    "secret": "3c081e2a-04b5-4516-a7f8-a3b4c5d6e7f9",
    "sa-default": "4d192f3b-15c6-4627-b809-b4c5d6e7f80a",
    "sa-shop-app": "5e2a304c-26d7-4738-891a-c5d6e7f8091b",
    "role": "6f3b415d-37e8-4849-9a2b-d6e7f8091a2c",
    "rolebinding": "704c526e-48f9-495a-ab3c-e7f8091a2b3d",
    "crontab-nightly": "815d637f-590a-4a6b-bc4d-f8091a2b3c4e",
    "crontab-hourly": "926e7480-6a1b-4b7c-8d5e-091a2b3c4d5f",
    "backup": "e2b7a8f4-6c1d-4f3e-9b2a-7d5c8e1f0a93",
}
PV_NAME = f"pvc-{UIDS['pvc']}"
RS_HASH = "6d5f8b7c9d"
RS_NAME = f"web-{RS_HASH}"
POD_NAME = f"{RS_NAME}-q7x2m"
EPS_NAME = "web-8kq4v"
NODE = "golden-worker"
POD_IP = "10.244.1.7"
HOST_IP = "172.18.0.3"
CLUSTER_IP = "10.96.142.17"
NODE_PORT = 30080
WEB_IMAGE = "registry.example.com/shop/web:1.4.2"
WEB_IMAGE_ID = "registry.example.com/shop/web@sha256:" + "4f" * 32
CONTAINER_ID = "containerd://" + "9c" * 32
# A Kubernetes name may be 253 characters; past 100 for "<name>.json" Go's
# tar writer needs a PAX header, so this one exercises that path.
LONG_CONFIGMAP = (
    "shop-catalog-import-settings-generated-by-the-catalog-operator-for-the-nightly-batch-"
    "0123456789abcdef0123456789abcdef"
)
KUBE_ROOT_CA = """-----BEGIN CERTIFICATE-----
MIIBYjCCAQigAwIBAgIIPyqcHV57igEwCgYIKoZIzj0EAwIwFTETMBEGA1UEAwwK
a3ViZXJuZXRlczAeFw0yNTA2MDIxNTU3NDFaFw0zNTA1MzExNTU3NDFaMBUxEzAR
BgNVBAMMCmt1YmVybmV0ZXMwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAASC7olO
Qkvm2/aLOgOL8W0qB/NNf9MbBeKvqNKImRmmH6+vMVTfeRjuAnHyKgjUgD+PlVnk
/NPVhSsqFwRiVd+ro0IwQDAPBgNVHRMBAf8EBTADAQH/MA4GA1UdDwEB/wQEAwIC
pDAdBgNVHQ4EFgQU6fkdruI1S4FFODJ6RP8XBTEMjU0wCgYIKoZIzj0EAwIDSAAw
RQIhAN3pogqT+PRNIBKujvzpuhIp63ajeYjUC88ZEdVvXkKDAiBDuBXtz8KdAvDg
z+OfnVZN3e/nRPjv6i98N8K8rt6i6A==
-----END CERTIFICATE-----
"""


def _meta(
    name: str,
    uid_key: str,
    resource_version: int,
    created: datetime,
    *,
    namespace: str | None = NAMESPACE,
    **extra: Any,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if namespace is not None:
        metadata["namespace"] = namespace
    metadata.update(
        {
            "uid": UIDS[uid_key],
            "resourceVersion": str(resource_version),
            "creationTimestamp": rfc3339(created),
        }
    )
    metadata.update(extra)
    return metadata


def _t(seconds: int) -> datetime:
    return APP_CREATED + timedelta(seconds=seconds)


def namespace() -> dict[str, Any]:
    labels = {"argocd.argoproj.io/managed-by": "openshift-gitops", "kubernetes.io/metadata.name": NAMESPACE}
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": _meta(
            NAMESPACE,
            "namespace",
            1104,
            NS_CREATED,
            namespace=None,
            labels=labels,
            managedFields=[
                managed(
                    "kubectl-create",
                    "Update",
                    "v1",
                    NS_CREATED,
                    {"metadata": {"labels": {"kubernetes.io/metadata.name": ""}}},
                ),
                managed(
                    "kubectl-label",
                    "Update",
                    "v1",
                    NS_CREATED + timedelta(seconds=9),
                    {"metadata": {"labels": {"argocd.argoproj.io/managed-by": ""}}},
                ),
            ],
        ),
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    }


def _crd_schema() -> dict[str, Any]:
    return {
        "openAPIV3Schema": {
            "properties": {
                "spec": {
                    "properties": {
                        "cronSpec": {"type": "string"},
                        "image": {"type": "string"},
                        "replicas": {"type": "integer"},
                    },
                    "type": "object",
                }
            },
            "type": "object",
        }
    }


def crd() -> dict[str, Any]:
    versions = [
        {"name": "v1", "schema": _crd_schema(), "served": True, "storage": True},
        {"name": "v1beta1", "schema": _crd_schema(), "served": True, "storage": False},
    ]
    names = {
        "kind": "CronTab",
        "listKind": "CronTabList",
        "plural": "crontabs",
        "shortNames": ["ct"],
        "singular": "crontab",
    }
    applied = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"annotations": {}, "name": "crontabs.stable.example.com"},
        "spec": {"group": "stable.example.com", "names": names, "scope": "Namespaced", "versions": versions},
    }
    spec = {
        "conversion": {"strategy": "None"},
        "group": "stable.example.com",
        "names": names,
        "scope": "Namespaced",
        "versions": versions,
    }
    conditions = [
        {
            "lastTransitionTime": rfc3339(CRD_CREATED),
            "message": "no conflicts found",
            "reason": "NoConflicts",
            "status": "True",
            "type": "NamesAccepted",
        },
        {
            "lastTransitionTime": rfc3339(CRD_CREATED),
            "message": "the initial names have been accepted",
            "reason": "InitialNamesAccepted",
            "status": "True",
            "type": "Established",
        },
    ]
    annotations = {"kubectl.kubernetes.io/last-applied-configuration": last_applied(applied)}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": _meta(
            "crontabs.stable.example.com",
            "crd",
            1187,
            CRD_CREATED,
            namespace=None,
            annotations=annotations,
            generation=1,
            managedFields=[
                managed(
                    "kube-apiserver",
                    "Update",
                    "apiextensions.k8s.io/v1",
                    CRD_CREATED,
                    {"status": {"acceptedNames": names, "conditions": conditions}},
                    subresource="status",
                ),
                managed(
                    "kubectl-client-side-apply",
                    "Update",
                    "apiextensions.k8s.io/v1",
                    CRD_CREATED,
                    {"metadata": {"annotations": annotations}, "spec": spec},
                ),
            ],
        ),
        "spec": spec,
        "status": {"acceptedNames": names, "conditions": conditions, "storedVersions": ["v1"]},
    }


def crontab(
    name: str, uid_key: str, resource_version: int, spec: dict[str, Any], version: str
) -> dict[str, Any]:
    applied = {
        "apiVersion": "stable.example.com/v1",
        "kind": "CronTab",
        "metadata": {"annotations": {}, "name": name, "namespace": NAMESPACE},
        "spec": spec,
    }
    annotations = {"kubectl.kubernetes.io/last-applied-configuration": last_applied(applied)}
    # With conversion strategy None the API server serves the stored object at
    # any version, changing only apiVersion; managedFields keep v1.
    return {
        "apiVersion": f"stable.example.com/{version}",
        "kind": "CronTab",
        "metadata": _meta(
            name,
            uid_key,
            resource_version,
            _t(2),
            annotations=annotations,
            generation=1,
            managedFields=[
                managed(
                    "kubectl-client-side-apply",
                    "Update",
                    "stable.example.com/v1",
                    _t(2),
                    {"metadata": {"annotations": annotations}, "spec": spec},
                )
            ],
        ),
        "spec": spec,
    }


NIGHTLY_SPEC = {"cronSpec": "0 2 * * *", "image": "registry.example.com/shop/report:2.0", "replicas": 1}
HOURLY_SPEC = {"cronSpec": "*/60 * * * *", "image": "registry.example.com/shop/sync:1.3", "replicas": 2}


def config_map() -> dict[str, Any]:
    data = {
        "LOG_LEVEL": "info",
        "STOREFRONT_URL": "https://shop.example.com/?utm_source=k8s&utm_medium=golden",
        "banner.html": '<p class="banner">Free shipping > 50 \u20ac & more</p>\n',
        "nginx.conf": "server {\n  listen 8080;\n  location / { root /usr/share/nginx/html; }\n}\n",
    }
    applied = {
        "apiVersion": "v1",
        "data": data,
        "kind": "ConfigMap",
        "metadata": {"annotations": {}, "name": "shop-config", "namespace": NAMESPACE},
    }
    annotations = {"kubectl.kubernetes.io/last-applied-configuration": last_applied(applied)}
    return {
        "apiVersion": "v1",
        "data": data,
        "kind": "ConfigMap",
        "metadata": _meta(
            "shop-config",
            "configmap",
            1311,
            _t(0),
            annotations=annotations,
            managedFields=[
                managed(
                    "kubectl-client-side-apply",
                    "Update",
                    "v1",
                    _t(0),
                    {"data": data, "metadata": {"annotations": annotations}},
                )
            ],
        ),
    }


def long_config_map() -> dict[str, Any]:
    data = {"import.yaml": "source: s3://catalog-exports/nightly/\nbatchSize: 500\n"}
    labels = {"app.kubernetes.io/managed-by": "catalog-operator"}
    return {
        "apiVersion": "v1",
        "data": data,
        "kind": "ConfigMap",
        "metadata": _meta(
            LONG_CONFIGMAP,
            "configmap-long",
            1318,
            _t(3),
            labels=labels,
            managedFields=[
                managed(
                    "catalog-operator", "Update", "v1", _t(3), {"data": data, "metadata": {"labels": labels}}
                )
            ],
        ),
    }


def kube_root_ca() -> dict[str, Any]:
    annotations = {
        "kubernetes.io/description": (
            "Contains a CA bundle that can be used to verify the kube-apiserver when using internal "
            "endpoints such as the internal service IP or kubernetes.default.svc. No other usage is "
            "guaranteed across distributions of Kubernetes clusters."
        )
    }
    data = {"ca.crt": KUBE_ROOT_CA}
    return {
        "apiVersion": "v1",
        "data": data,
        "kind": "ConfigMap",
        "metadata": _meta(
            "kube-root-ca.crt",
            "kube-root-ca",
            1105,
            NS_CREATED,
            annotations=annotations,
            managedFields=[
                managed(
                    "kube-controller-manager",
                    "Update",
                    "v1",
                    NS_CREATED,
                    {"data": data, "metadata": {"annotations": annotations}},
                )
            ],
        ),
    }


def secret() -> dict[str, Any]:
    data = {
        "DATABASE_PASSWORD": base64.b64encode(b"s3cr3t-p@ss&word").decode(),
        "DATABASE_USER": base64.b64encode(b"shop").decode(),
    }
    applied = {
        "apiVersion": "v1",
        "data": data,
        "kind": "Secret",
        "metadata": {"annotations": {}, "name": "shop-secret", "namespace": NAMESPACE},
        "type": "Opaque",
    }
    annotations = {"kubectl.kubernetes.io/last-applied-configuration": last_applied(applied)}
    return {
        "apiVersion": "v1",
        "data": data,
        "kind": "Secret",
        "metadata": _meta(
            "shop-secret",
            "secret",
            1312,
            _t(0),
            annotations=annotations,
            managedFields=[
                managed(
                    "kubectl-client-side-apply",
                    "Update",
                    "v1",
                    _t(0),
                    {"data": data, "metadata": {"annotations": annotations}, "type": ""},
                )
            ],
        ),
        "type": "Opaque",
    }


def service_account(name: str, uid_key: str, resource_version: int, created: datetime) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _meta(name, uid_key, resource_version, created),
    }


def role() -> dict[str, Any]:
    rules = [{"apiGroups": [""], "resources": ["configmaps", "secrets"], "verbs": ["get", "list", "watch"]}]
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": _meta(
            "shop-reader",
            "role",
            1314,
            _t(1),
            managedFields=[
                managed("kubectl-create", "Update", "rbac.authorization.k8s.io/v1", _t(1), {"rules": {}})
            ],
        ),
        "rules": rules,
    }


def role_binding() -> dict[str, Any]:
    role_ref = {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "shop-reader"}
    subjects = [{"kind": "ServiceAccount", "name": "shop-app", "namespace": NAMESPACE}]
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _meta(
            "shop-reader",
            "rolebinding",
            1315,
            _t(1),
            managedFields=[
                managed(
                    "kubectl-create",
                    "Update",
                    "rbac.authorization.k8s.io/v1",
                    _t(1),
                    {"roleRef": {}, "subjects": {}},
                )
            ],
        ),
        "roleRef": role_ref,
        "subjects": subjects,
    }


def pvc() -> dict[str, Any]:
    annotations = {
        "pv.kubernetes.io/bind-completed": "yes",
        "pv.kubernetes.io/bound-by-controller": "yes",
        "volume.beta.kubernetes.io/storage-provisioner": "rancher.io/local-path",
        "volume.kubernetes.io/selected-node": NODE,
        "volume.kubernetes.io/storage-provisioner": "rancher.io/local-path",
    }
    spec = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "1Gi"}},
        "storageClassName": "standard",
        "volumeMode": "Filesystem",
        "volumeName": PV_NAME,
    }
    status = {"accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1Gi"}, "phase": "Bound"}
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _meta(
            "data",
            "pvc",
            1402,
            _t(0),
            annotations=annotations,
            finalizers=["kubernetes.io/pvc-protection"],
            managedFields=[
                managed(
                    "kubectl-create",
                    "Update",
                    "v1",
                    _t(0),
                    {
                        "spec": {
                            "accessModes": [],
                            "resources": {"requests": {"storage": ""}},
                            "volumeMode": "",
                        }
                    },
                ),
                managed(
                    "kube-scheduler",
                    "Update",
                    "v1",
                    _t(4),
                    {"metadata": {"annotations": {"volume.kubernetes.io/selected-node": ""}}},
                ),
                managed(
                    "kube-controller-manager",
                    "Update",
                    "v1",
                    _t(9),
                    {
                        "metadata": {
                            "annotations": {
                                "pv.kubernetes.io/bind-completed": "",
                                "pv.kubernetes.io/bound-by-controller": "",
                                "volume.beta.kubernetes.io/storage-provisioner": "",
                                "volume.kubernetes.io/storage-provisioner": "",
                            }
                        },
                        "spec": {"volumeName": ""},
                    },
                ),
                managed(
                    "kube-controller-manager", "Update", "v1", _t(9), {"status": status}, subresource="status"
                ),
            ],
        ),
        "spec": spec,
        "status": status,
    }


def pv() -> dict[str, Any]:
    annotations = {
        "local.path.provisioner/selected-node": NODE,
        "pv.kubernetes.io/provisioned-by": "rancher.io/local-path",
    }
    spec = {
        "accessModes": ["ReadWriteOnce"],
        "capacity": {"storage": "1Gi"},
        "claimRef": {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "name": "data",
            "namespace": NAMESPACE,
            "resourceVersion": "1391",
            "uid": UIDS["pvc"],
        },
        "hostPath": {
            "path": f"/var/local-path-provisioner/{PV_NAME}_{NAMESPACE}_data",
            "type": "DirectoryOrCreate",
        },
        "nodeAffinity": {
            "required": {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {"key": "kubernetes.io/hostname", "operator": "In", "values": [NODE]}
                        ]
                    }
                ]
            }
        },
        "persistentVolumeReclaimPolicy": "Delete",
        "storageClassName": "standard",
        "volumeMode": "Filesystem",
    }
    status = {"lastPhaseTransitionTime": rfc3339(_t(8)), "phase": "Bound"}
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "annotations": annotations,
            "creationTimestamp": rfc3339(_t(8)),
            "finalizers": ["kubernetes.io/pv-protection"],
            "managedFields": [
                managed(
                    "kube-controller-manager",
                    "Update",
                    "v1",
                    _t(8),
                    {"status": {"phase": ""}},
                    subresource="status",
                ),
                managed(
                    "local-path-provisioner",
                    "Update",
                    "v1",
                    _t(8),
                    {"metadata": {"annotations": annotations}, "spec": spec},
                ),
            ],
            "name": PV_NAME,
            "resourceVersion": "1398",
            "uid": "a81f3c5e-7d9b-4f2a-8c6e-1b3d5f7a9c0e",
        },
        "spec": spec,
        "status": status,
    }


def _pod_template_spec() -> dict[str, Any]:
    return {
        "containers": [
            {
                "envFrom": [
                    {"configMapRef": {"name": "shop-config"}},
                    {"secretRef": {"name": "shop-secret"}},
                ],
                "image": WEB_IMAGE,
                "imagePullPolicy": "IfNotPresent",
                "name": "web",
                "ports": [{"containerPort": 8080, "name": "http", "protocol": "TCP"}],
                "resources": {},
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File",
                "volumeMounts": [{"mountPath": "/data", "name": "data"}],
            }
        ],
        "dnsPolicy": "ClusterFirst",
        "restartPolicy": "Always",
        "schedulerName": "default-scheduler",
        "securityContext": {},
        "serviceAccount": "shop-app",
        "serviceAccountName": "shop-app",
        "terminationGracePeriodSeconds": 30,
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
    }


def _deployment_manifest() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"annotations": {}, "name": "web", "namespace": NAMESPACE},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "envFrom": [
                                {"configMapRef": {"name": "shop-config"}},
                                {"secretRef": {"name": "shop-secret"}},
                            ],
                            "image": WEB_IMAGE,
                            "name": "web",
                            "ports": [{"containerPort": 8080, "name": "http"}],
                            "volumeMounts": [{"mountPath": "/data", "name": "data"}],
                        }
                    ],
                    "serviceAccountName": "shop-app",
                    "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
                },
            },
        },
    }


def deployment() -> dict[str, Any]:
    annotations = {
        "deployment.kubernetes.io/revision": "1",
        "kubectl.kubernetes.io/last-applied-configuration": last_applied(_deployment_manifest()),
    }
    labels = {"app": "web"}
    spec = {
        "progressDeadlineSeconds": 600,
        "replicas": 1,
        "revisionHistoryLimit": 10,
        "selector": {"matchLabels": labels},
        "strategy": {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}, "type": "RollingUpdate"},
        "template": {"metadata": {"creationTimestamp": None, "labels": labels}, "spec": _pod_template_spec()},
    }
    status = {
        "availableReplicas": 1,
        "conditions": [
            {
                "lastTransitionTime": rfc3339(_t(21)),
                "lastUpdateTime": rfc3339(_t(21)),
                "message": "Deployment has minimum availability.",
                "reason": "MinimumReplicasAvailable",
                "status": "True",
                "type": "Available",
            },
            {
                "lastTransitionTime": rfc3339(_t(2)),
                "lastUpdateTime": rfc3339(_t(21)),
                "message": f'ReplicaSet "{RS_NAME}" has successfully progressed.',
                "reason": "NewReplicaSetAvailable",
                "status": "True",
                "type": "Progressing",
            },
        ],
        "observedGeneration": 1,
        "readyReplicas": 1,
        "replicas": 1,
        "updatedReplicas": 1,
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(
            "web",
            "deployment",
            1461,
            _t(2),
            annotations=annotations,
            generation=1,
            labels=labels,
            managedFields=[
                managed(
                    "kubectl-client-side-apply",
                    "Update",
                    "apps/v1",
                    _t(2),
                    {
                        "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": ""}},
                        "spec": spec,
                    },
                ),
                managed(
                    "kube-controller-manager",
                    "Update",
                    "apps/v1",
                    _t(21),
                    {
                        "metadata": {"annotations": {"deployment.kubernetes.io/revision": ""}},
                        "status": status,
                    },
                    subresource="status",
                ),
            ],
        ),
        "spec": spec,
        "status": status,
    }


def _owner(api_version: str, kind: str, name: str, uid_key: str) -> dict[str, Any]:
    return {
        "apiVersion": api_version,
        "blockOwnerDeletion": True,
        "controller": True,
        "kind": kind,
        "name": name,
        "uid": UIDS[uid_key],
    }


def replica_set() -> dict[str, Any]:
    annotations = {
        "deployment.kubernetes.io/desired-replicas": "1",
        "deployment.kubernetes.io/max-replicas": "2",
        "deployment.kubernetes.io/revision": "1",
    }
    labels = {"app": "web", "pod-template-hash": RS_HASH}
    spec = {
        "replicas": 1,
        "selector": {"matchLabels": labels},
        "template": {"metadata": {"creationTimestamp": None, "labels": labels}, "spec": _pod_template_spec()},
    }
    status = {
        "availableReplicas": 1,
        "fullyLabeledReplicas": 1,
        "observedGeneration": 1,
        "readyReplicas": 1,
        "replicas": 1,
    }
    owners = [_owner("apps/v1", "Deployment", "web", "deployment")]
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": _meta(
            RS_NAME,
            "replicaset",
            1459,
            _t(2),
            annotations=annotations,
            generation=1,
            labels=labels,
            managedFields=[
                managed(
                    "kube-controller-manager",
                    "Update",
                    "apps/v1",
                    _t(2),
                    {
                        "metadata": {"annotations": annotations, "labels": labels, "ownerReferences": {}},
                        "spec": spec,
                    },
                ),
                managed(
                    "kube-controller-manager",
                    "Update",
                    "apps/v1",
                    _t(21),
                    {"status": status},
                    subresource="status",
                ),
            ],
            ownerReferences=owners,
        ),
        "spec": spec,
        "status": status,
    }


def pod() -> dict[str, Any]:
    labels = {"app": "web", "pod-template-hash": RS_HASH}
    spec = _pod_template_spec()
    container = dict(spec["containers"][0])
    container["volumeMounts"] = [
        {"mountPath": "/data", "name": "data"},
        {
            "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
            "name": "kube-api-access-7m2xk",
            "readOnly": True,
        },
    ]
    spec = {
        **spec,
        "containers": [container],
        "enableServiceLinks": True,
        "nodeName": NODE,
        "preemptionPolicy": "PreemptLowerPriority",
        "priority": 0,
        "tolerations": [
            {
                "effect": "NoExecute",
                "key": "node.kubernetes.io/not-ready",
                "operator": "Exists",
                "tolerationSeconds": 300,
            },
            {
                "effect": "NoExecute",
                "key": "node.kubernetes.io/unreachable",
                "operator": "Exists",
                "tolerationSeconds": 300,
            },
        ],
        "volumes": [
            {"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
            {
                "name": "kube-api-access-7m2xk",
                "projected": {
                    "defaultMode": 420,
                    "sources": [
                        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                        {
                            "configMap": {
                                "items": [{"key": "ca.crt", "path": "ca.crt"}],
                                "name": "kube-root-ca.crt",
                            }
                        },
                        {
                            "downwardAPI": {
                                "items": [
                                    {
                                        "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
                                        "path": "namespace",
                                    }
                                ]
                            }
                        },
                    ],
                },
            },
        ],
    }
    status = {
        "conditions": [
            {
                "lastProbeTime": None,
                "lastTransitionTime": rfc3339(_t(19)),
                "status": "True",
                "type": "PodReadyToStartContainers",
            },
            {
                "lastProbeTime": None,
                "lastTransitionTime": rfc3339(_t(10)),
                "status": "True",
                "type": "Initialized",
            },
            {"lastProbeTime": None, "lastTransitionTime": rfc3339(_t(20)), "status": "True", "type": "Ready"},
            {
                "lastProbeTime": None,
                "lastTransitionTime": rfc3339(_t(20)),
                "status": "True",
                "type": "ContainersReady",
            },
            {
                "lastProbeTime": None,
                "lastTransitionTime": rfc3339(_t(10)),
                "status": "True",
                "type": "PodScheduled",
            },
        ],
        "containerStatuses": [
            {
                "containerID": CONTAINER_ID,
                "image": WEB_IMAGE,
                "imageID": WEB_IMAGE_ID,
                "lastState": {},
                "name": "web",
                "ready": True,
                "restartCount": 0,
                "started": True,
                "state": {"running": {"startedAt": rfc3339(_t(19))}},
                "volumeMounts": [
                    {"mountPath": "/data", "name": "data"},
                    {
                        "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                        "name": "kube-api-access-7m2xk",
                        "readOnly": True,
                        "recursiveReadOnly": "Disabled",
                    },
                ],
            }
        ],
        "hostIP": HOST_IP,
        "hostIPs": [{"ip": HOST_IP}],
        "phase": "Running",
        "podIP": POD_IP,
        "podIPs": [{"ip": POD_IP}],
        "qosClass": "BestEffort",
        "startTime": rfc3339(_t(10)),
    }
    owners = [_owner("apps/v1", "ReplicaSet", RS_NAME, "replicaset")]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": _meta(
            POD_NAME,
            "pod",
            1457,
            _t(2),
            generateName=f"{RS_NAME}-",
            labels=labels,
            managedFields=[
                managed(
                    "kube-controller-manager",
                    "Update",
                    "v1",
                    _t(2),
                    {
                        "metadata": {"generateName": "", "labels": labels, "ownerReferences": {}},
                        "spec": _pod_template_spec(),
                    },
                ),
                managed(
                    "kubelet",
                    "Update",
                    "v1",
                    _t(20),
                    {"status": {k: v for k, v in status.items() if k != "qosClass"}},
                    subresource="status",
                ),
            ],
            ownerReferences=owners,
        ),
        "spec": spec,
        "status": status,
    }


def service() -> dict[str, Any]:
    labels = {"app": "web"}
    ports = [{"name": "http", "nodePort": NODE_PORT, "port": 80, "protocol": "TCP", "targetPort": "http"}]
    applied = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"annotations": {}, "labels": labels, "name": "web", "namespace": NAMESPACE},
        "spec": {
            "ports": [{"name": "http", "nodePort": NODE_PORT, "port": 80, "targetPort": "http"}],
            "selector": labels,
            "type": "NodePort",
        },
    }
    annotations = {"kubectl.kubernetes.io/last-applied-configuration": last_applied(applied)}
    spec = {
        "clusterIP": CLUSTER_IP,
        "clusterIPs": [CLUSTER_IP],
        "externalTrafficPolicy": "Cluster",
        "internalTrafficPolicy": "Cluster",
        "ipFamilies": ["IPv4"],
        "ipFamilyPolicy": "SingleStack",
        "ports": ports,
        "selector": labels,
        "sessionAffinity": "None",
        "type": "NodePort",
    }
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(
            "web",
            "service",
            1320,
            _t(2),
            annotations=annotations,
            labels=labels,
            managedFields=[
                managed(
                    "kubectl-client-side-apply",
                    "Update",
                    "v1",
                    _t(2),
                    {
                        "metadata": {
                            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": ""},
                            "labels": labels,
                        },
                        "spec": {
                            "externalTrafficPolicy": "",
                            "internalTrafficPolicy": "",
                            "ports": ports,
                            "selector": {},
                            "sessionAffinity": "",
                            "type": "",
                        },
                    },
                )
            ],
        ),
        "spec": spec,
        "status": {"loadBalancer": {}},
    }


def _target_ref() -> dict[str, Any]:
    return {"kind": "Pod", "name": POD_NAME, "namespace": NAMESPACE, "uid": UIDS["pod"]}


def endpoints() -> dict[str, Any]:
    labels = {"app": "web"}
    annotations = {"endpoints.kubernetes.io/last-change-trigger-time": rfc3339(_t(20))}
    subsets = [
        {
            "addresses": [{"ip": POD_IP, "nodeName": NODE, "targetRef": _target_ref()}],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        }
    ]
    return {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": _meta(
            "web",
            "endpoints",
            1456,
            _t(2),
            annotations=annotations,
            labels=labels,
            managedFields=[
                managed(
                    "kube-controller-manager",
                    "Update",
                    "v1",
                    _t(20),
                    {"metadata": {"annotations": annotations, "labels": labels}, "subsets": {}},
                )
            ],
        ),
        "subsets": subsets,
    }


def endpoint_slice() -> dict[str, Any]:
    labels = {
        "app": "web",
        "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
        "kubernetes.io/service-name": "web",
    }
    annotations = {"endpoints.kubernetes.io/last-change-trigger-time": rfc3339(_t(20))}
    owners = [_owner("v1", "Service", "web", "service")]
    return {
        "addressType": "IPv4",
        "apiVersion": "discovery.k8s.io/v1",
        "endpoints": [
            {
                "addresses": [POD_IP],
                "conditions": {"ready": True, "serving": True, "terminating": False},
                "nodeName": NODE,
                "targetRef": _target_ref(),
            }
        ],
        "kind": "EndpointSlice",
        "metadata": _meta(
            EPS_NAME,
            "endpointslice",
            1458,
            _t(2),
            annotations=annotations,
            generateName="web-",
            generation=3,
            labels=labels,
            managedFields=[
                managed(
                    "kube-controller-manager",
                    "Update",
                    "discovery.k8s.io/v1",
                    _t(20),
                    {
                        "addressType": "",
                        "endpoints": {},
                        "metadata": {
                            "annotations": annotations,
                            "generateName": "",
                            "labels": labels,
                            "ownerReferences": {},
                        },
                        "ports": {},
                    },
                )
            ],
            ownerReferences=owners,
        ),
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
    }


# --------------------------------------------------------------------------
# the backup


@dataclass(frozen=True)
class Item:
    """One object as Velero's item collector hands it to the item backupper."""

    obj: dict[str, Any]
    group_resource: str  # "<resource>[.<group>]", Velero's directory name
    preferred_version: str  # the group's preferred version (discovery)
    mtime: datetime  # when Velero wrote its members (time.Now(), rounded by tar.Writer)

    @property
    def version(self) -> str:
        return str(self.obj["apiVersion"]).rpartition("/")[2]

    @property
    def namespace(self) -> str:
        return str(self.obj["metadata"].get("namespace", ""))

    @property
    def name(self) -> str:
        return str(self.obj["metadata"]["name"])

    @property
    def resource_key(self) -> str:
        return f"{self.obj['apiVersion']}/{self.obj['kind']}"

    def paths(self) -> list[str]:
        """``getFileForArchive`` calls of ``backupItemInternal``: classic + preferred copy, or one versioned copy."""
        scope = f"namespaces/{self.namespace}" if self.namespace else "cluster"
        leaf = f"{scope}/{self.name}.json"
        base = f"resources/{self.group_resource}"
        if self.version == self.preferred_version:
            return [f"{base}/{leaf}", f"{base}/{self.version}-preferredversion/{leaf}"]
        return [f"{base}/{self.version}/{leaf}"]


def velero_pvc_action(obj: dict[str, Any]) -> dict[str, Any]:
    """What Velero's PVCAction (``backup_pv_action.go``) does to a bound PVC before it is written.

    It clears ``spec.dataSource``/``dataSourceRef`` and, unless the storage
    class is "", ``spec.selector``, then converts the typed object back to a
    map; for this PVC, which has none of those, the content is unchanged.
    """
    spec = dict(obj["spec"])
    spec.pop("dataSource", None)
    spec.pop("dataSourceRef", None)
    if spec.get("storageClassName") != "":
        spec.pop("selector", None)
    return {**obj, "spec": spec}


SECOND_1 = BACKUP_STARTED + timedelta(seconds=1)  # 09:30:02
SECOND_2 = BACKUP_STARTED + timedelta(seconds=2)  # 09:30:03


def backup_items() -> list[Item]:
    """The items in the order Velero v1.16.2 writes them (see the module docstring)."""
    core = "v1"
    return [
        # Item block of the pod: PodAction returns the PVC, PVCAction the PV,
        # each written as soon as it is backed up, so PV, PVC, pod.
        Item(pv(), "persistentvolumes", core, SECOND_1),
        Item(velero_pvc_action(pvc()), "persistentvolumeclaims", core, SECOND_1),
        Item(pod(), "pods", core, SECOND_1),
        # The rest of the core group (PVCs and PVs are already done).
        Item(kube_root_ca(), "configmaps", core, SECOND_1),
        Item(long_config_map(), "configmaps", core, SECOND_1),
        Item(config_map(), "configmaps", core, SECOND_1),
        Item(endpoints(), "endpoints", core, SECOND_1),
        Item(namespace(), "namespaces", core, SECOND_1),
        Item(secret(), "secrets", core, SECOND_1),
        Item(service_account("default", "sa-default", 1106, NS_CREATED), "serviceaccounts", core, SECOND_1),
        Item(service_account("shop-app", "sa-shop-app", 1313, _t(1)), "serviceaccounts", core, SECOND_1),
        Item(service(), "services", core, SECOND_1),
        Item(deployment(), "deployments.apps", "v1", SECOND_1),
        Item(replica_set(), "replicasets.apps", "v1", SECOND_1),
        Item(role_binding(), "rolebindings.rbac.authorization.k8s.io", "v1", SECOND_2),
        Item(role(), "roles.rbac.authorization.k8s.io", "v1", SECOND_2),
        Item(endpoint_slice(), "endpointslices.discovery.k8s.io", "v1", SECOND_2),
        # EnableAPIGroupVersions: every served version of an item goes into
        # the same item block, the preferred one first here.
        Item(
            crontab("hourly-sync", "crontab-hourly", 1352, HOURLY_SPEC, "v1"),
            "crontabs.stable.example.com",
            "v1",
            SECOND_2,
        ),
        Item(
            crontab("hourly-sync", "crontab-hourly", 1352, HOURLY_SPEC, "v1beta1"),
            "crontabs.stable.example.com",
            "v1",
            SECOND_2,
        ),
        Item(
            crontab("nightly-report", "crontab-nightly", 1351, NIGHTLY_SPEC, "v1"),
            "crontabs.stable.example.com",
            "v1",
            SECOND_2,
        ),
        Item(
            crontab("nightly-report", "crontab-nightly", 1351, NIGHTLY_SPEC, "v1beta1"),
            "crontabs.stable.example.com",
            "v1",
            SECOND_2,
        ),
        # backupCRD, after all item blocks: the CRD of every backed-up custom resource.
        Item(crd(), "customresourcedefinitions.apiextensions.k8s.io", "v1", SECOND_2),
    ]


def tarball_members(items: Iterable[Item]) -> Iterator[tuple[str, bytes, int]]:
    """(path, data, mtime) of every tar member, ``metadata/version`` first."""
    yield "metadata/version", f"{FORMAT_VERSION}\n".encode(), int(SECOND_1.timestamp())
    for item in items:
        data = go_marshal_map(item.obj)
        for path in item.paths():
            yield path, data, int(item.mtime.timestamp())


def tarball(items: Iterable[Item]) -> bytes:
    """The uncompressed tar stream."""
    return (
        b"".join(go_tar_member(path, data, mtime) for path, data, mtime in tarball_members(items))
        + GO_TAR_FOOTER
    )


def resource_list(items: Iterable[Item]) -> dict[str, list[str]]:
    """``backedUpItemsMap.ResourceMap``: ``apiVersion/Kind`` to sorted ``ns/name`` (or name)."""
    result: dict[str, list[str]] = {}
    for item in items:
        entry = f"{item.namespace}/{item.name}" if item.namespace else item.name
        result.setdefault(item.resource_key, []).append(entry)
    return {key: sorted(entries) for key, entries in result.items()}


ARGOCD_WARNING = (
    "backup operation may encounter complications and potentially produce undesirable results due to "
    f"the inclusion of namespaces [{NAMESPACE}] managed by ArgoCD in the backup."
)
SKIP_REASON_POD = f"opted out due to annotation in pod {POD_NAME}"
SKIP_REASON_SNAPSHOT = "no applicable volumesnapshotter found"


def results() -> dict[str, Any]:
    """The ``results`` map ``runBackup`` builds from the log hook: one warning, logged without a namespace field."""
    return {"errors": {}, "warnings": {"velero": [f" message: /{ARGOCD_WARNING}"]}}


def volume_info() -> list[dict[str, Any]]:
    """``BackupVolumesInformation.Result``: the PV skipped by both approaches (struct field order)."""
    return [
        {
            "pvcName": "data",
            "pvcNamespace": NAMESPACE,
            "pvName": PV_NAME,
            "snapshotDataMoved": False,
            "preserveLocalSnapshot": False,
            "skipped": True,
            "skippedReason": f"podvolume: {SKIP_REASON_POD};volumeSnapshot: {SKIP_REASON_SNAPSHOT};",
            "pvInfo": {"reclaimPolicy": "Delete", "labels": None},
        }
    ]


def backup_object(item_count: int) -> dict[str, Any]:
    """The Backup as ``encode.To(backup, "json", ...)`` writes it (Go struct field order)."""
    annotations = {
        "velero.io/resource-timeout": "10m0s",
        "velero.io/source-cluster-k8s-gitversion": K8S_GIT_VERSION,
        "velero.io/source-cluster-k8s-major-version": "1",
        "velero.io/source-cluster-k8s-minor-version": "31",
    }
    labels = {"velero.io/storage-location": "default"}
    cli_fields = {
        "spec": {
            "csiSnapshotTimeout": "",
            "hooks": {},
            "includedNamespaces": [],
            "itemOperationTimeout": "",
            "metadata": {},
            "ttl": "",
        },
        "status": {},
    }
    server_fields = {
        "metadata": {"annotations": annotations, "labels": labels},
        "spec": {
            "csiSnapshotTimeout": "",
            "defaultVolumesToFsBackup": "",
            "itemOperationTimeout": "",
            "snapshotMoveData": "",
            "storageLocation": "",
            "ttl": "",
        },
        "status": {
            "expiration": "",
            "formatVersion": "",
            "hookStatus": {},
            "phase": "",
            "progress": {"itemsBackedUp": "", "totalItems": ""},
            "startTimestamp": "",
            "version": "",
            "warnings": "",
        },
    }
    cli = managed("velero", "Update", "velero.io/v1", BACKUP_CREATED, cli_fields)
    server = managed(
        "velero-server", "Update", "velero.io/v1", BACKUP_STARTED + timedelta(seconds=3), server_fields
    )
    # ManagedFieldsEntry's struct order, not the sorted order of a map.
    managed_fields = [
        {key: entry[key] for key in ("manager", "operation", "apiVersion", "time", "fieldsType", "fieldsV1")}
        for entry in (cli, server)
    ]
    return {
        "kind": "Backup",
        "apiVersion": "velero.io/v1",
        "metadata": {
            "name": BACKUP,
            "namespace": VELERO_NAMESPACE,
            "uid": UIDS["backup"],
            "resourceVersion": "48213",
            "generation": 7,
            "creationTimestamp": rfc3339(BACKUP_CREATED),
            "labels": labels,
            "annotations": annotations,
            "managedFields": managed_fields,
        },
        "spec": {
            "metadata": {},
            "includedNamespaces": [NAMESPACE],
            "ttl": "720h0m0s",
            "hooks": {},
            "storageLocation": "default",
            "defaultVolumesToFsBackup": False,
            "csiSnapshotTimeout": "10m0s",
            "itemOperationTimeout": "4h0m0s",
            "snapshotMoveData": False,
        },
        "status": {
            "version": 1,
            "formatVersion": FORMAT_VERSION,
            "expiration": rfc3339(BACKUP_STARTED + DEFAULT_TTL),
            "phase": "Completed",
            "startTimestamp": rfc3339(BACKUP_STARTED),
            "completionTimestamp": rfc3339(BACKUP_COMPLETED),
            "warnings": 1,
            "progress": {"totalItems": item_count, "itemsBackedUp": item_count},
            "hookStatus": {},
        },
    }


# --------------------------------------------------------------------------
# the backup log (logrus TextFormatter, abridged)

_LOGFMT_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._/@^+")


def _logfmt(value: str) -> str:
    # logrus quotes a value (Go's %q) when it holds anything outside this set.
    if all(char in _LOGFMT_SAFE for char in value):
        return value
    return json.dumps(value, ensure_ascii=False)


def log_line(moment: datetime, level: str, msg: str, source: str, **fields: str) -> str:
    data = {"backup": f"{VELERO_NAMESPACE}/{BACKUP}", "logSource": source, **fields}
    parts = [f"time={_logfmt(rfc3339(moment))}", f"level={level}", f"msg={_logfmt(msg)}"]
    parts += [f"{key}={_logfmt(data[key])}" for key in sorted(data)]
    return " ".join(parts)


def log_lines(items: list[Item]) -> list[str]:
    """The start, the per-item lines and the end of the backup's log, with Velero's messages and sources."""
    started, first, second = BACKUP_STARTED, SECOND_1, SECOND_2
    ctrl, bk, ib = (
        "pkg/controller/backup_controller.go",
        "pkg/backup/backup.go",
        "pkg/backup/item_backupper.go",
    )
    lines = [
        log_line(started, "info", "Setting up backup temp file", f"{ctrl}:632"),
        log_line(started, "info", "Setting up plugin manager", f"{ctrl}:639"),
        log_line(started, "info", "Getting backup item actions", f"{ctrl}:643"),
        log_line(started, "info", "Getting ItemBlock actions", f"{ctrl}:648"),
        log_line(started, "info", "Setting up backup store to check for backup existence", f"{ctrl}:653"),
        log_line(first, "info", "Writing backup version file", f"{bk}:245"),
        log_line(first, "info", f"Including namespaces: {NAMESPACE}", f"{bk}:251"),
        log_line(first, "info", "Excluding namespaces: <none>", f"{bk}:252"),
        log_line(first, "warning", ARGOCD_WARNING, f"{bk}:262"),
        log_line(first, "info", "Backing up all volumes using pod volume backup: false", f"{bk}:282"),
        log_line(
            first,
            "info",
            f"Collected {len(items) - 2} items matching the backup spec from the Kubernetes API (actual number of "
            "items backed up may be more or less depending on velero.io/exclude-from-backup annotation, plugins "
            "returning additional related items to back up, etc.)",
            f"{bk}:345",
            progress="",
        ),
    ]

    def fields(item: Item) -> dict[str, str]:
        return {"name": item.name, "namespace": item.namespace, "resource": item.group_resource}

    def processing(item: Item) -> str:
        return log_line(item.mtime, "info", "Processing item", f"{bk}:511", progress="", **fields(item))

    def backing_up(item: Item) -> list[str]:
        found = [log_line(item.mtime, "info", "Backing up item", f"{ib}:187", **fields(item))]
        if item.group_resource == "persistentvolumes":
            found.append(
                log_line(item.mtime, "info", "Executing takePVSnapshot", f"{ib}:552", **fields(item))
            )
            found.append(
                log_line(
                    item.mtime,
                    "info",
                    "Persistent volume is not a supported volume type for Velero-native volumeSnapshotter "
                    "snapshot, skipping.",
                    f"{ib}:667",
                    persistentVolume=item.name,
                    **fields(item),
                )
            )
        return found

    pv_item, pvc_item, pod_item, *rest = items
    crd_item = rest.pop()
    versioned = [item for item in rest if item.version != item.preferred_version]
    # The pod's item block: backupItemInternal(pod) runs PodAction, which
    # backs up the PVC, whose PVCAction backs up the PV.
    lines += [processing(pod_item), *backing_up(pod_item), *backing_up(pvc_item), *backing_up(pv_item)]
    lines.append(processing(pvc_item))  # already in the pod's item block
    for item in rest:
        if item in versioned:
            continue  # backed up in the block of its preferred version
        lines.append(processing(item))
        for same in [
            item,
            *(v for v in versioned if (v.group_resource, v.name) == (item.group_resource, item.name)),
        ]:
            lines += backing_up(same)
    lines += [processing(item) for item in versioned]
    summary = json.dumps(
        [
            {
                "name": PV_NAME,
                "reasons": [
                    {"approach": "podvolume", "reason": SKIP_REASON_POD},
                    {"approach": "volumeSnapshot", "reason": SKIP_REASON_SNAPSHOT},
                ],
            }
        ],
        separators=(",", ":"),
    )
    lines += [
        log_line(second, "info", "done processing ItemBlocks", f"{bk}:568"),
        log_line(
            second,
            "info",
            "Found associated CRD crontabs.stable.example.com to add to backup",
            f"{bk}:934",
        ),
        *backing_up(crd_item),
        log_line(second, "info", f"Summary for skipped PVs: {summary}", f"{bk}:616"),
        log_line(second, "info", f"Backed up a total of {len(items)} items", f"{bk}:620", progress=""),
        log_line(second, "info", "Setting up backup store to persist the backup", f"{ctrl}:747"),
    ]
    return lines


# --------------------------------------------------------------------------
# the bucket


def bucket_files() -> dict[str, bytes]:
    """Every object Velero stores for the backup: key (relative to the location's prefix) to bytes."""
    items = backup_items()
    directory = f"backups/{BACKUP}"
    log_text = "".join(f"{line}\n" for line in log_lines(items)).encode()
    return {
        f"{directory}/velero-backup.json": go_marshal_indent(backup_object(len(items))),
        f"{directory}/{BACKUP}.tar.gz": go_gzip(tarball(items)),
        f"{directory}/{BACKUP}-logs.gz": go_gzip(log_text),
        f"{directory}/{BACKUP}-results.gz": go_gzip(go_encoder_line(results())),
        f"{directory}/{BACKUP}-resource-list.json.gz": go_gzip(go_encoder_line(resource_list(items))),
        # nil Go slices: no native snapshots, no PodVolumeBackups, CSI disabled.
        f"{directory}/{BACKUP}-volumesnapshots.json.gz": go_gzip(go_encoder_line(None)),
        f"{directory}/{BACKUP}-podvolumebackups.json.gz": go_gzip(go_encoder_line(None)),
        f"{directory}/{BACKUP}-csi-volumesnapshots.json.gz": go_gzip(go_encoder_line(None)),
        f"{directory}/{BACKUP}-csi-volumesnapshotcontents.json.gz": go_gzip(go_encoder_line(None)),
        f"{directory}/{BACKUP}-csi-volumesnapshotclasses.json.gz": go_gzip(go_encoder_line(None)),
        # GetItemOperationsList() creates an empty, non-nil slice.
        f"{directory}/{BACKUP}-itemoperations.json.gz": go_gzip(go_encoder_line([])),
        f"{directory}/{BACKUP}-volumeinfo.json.gz": go_gzip(
            go_encoder_line(volume_info(), struct_order=True)
        ),
    }


def _plain(key: str, data: bytes) -> bytes:
    return zlib.decompress(data, 16 + zlib.MAX_WBITS) if key.endswith(".gz") else data


def check(directory: Path = FIXTURE_DIR) -> list[str]:
    """Keys whose committed content (decompressed) differs from what this module generates."""
    stale = []
    for key, data in bucket_files().items():
        path = directory / key
        if not path.is_file() or _plain(key, path.read_bytes()) != _plain(key, data):
            stale.append(key)
    return stale


def write(directory: Path = FIXTURE_DIR) -> None:
    for key, data in bucket_files().items():
        path = directory / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    parser.add_argument("--dir", type=Path, default=FIXTURE_DIR)
    args = parser.parse_args(argv)
    if args.check:
        stale = check(args.dir)
        for key in stale:
            print(f"out of date: {key}", file=sys.stderr)
        return 1 if stale else 0
    write(args.dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
