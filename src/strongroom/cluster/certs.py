"""Control-plane certificate expiry, and the last date a stopped cluster can safely be started again.

A cluster shut down for a long time must run again before the
kube-apiserver-to-kubelet signer expires, or its kubelets cannot renew their
certificates (the seed's graceful shutdown chapter reads the signer Secret's
``auth.openshift.io/certificate-not-after`` annotation for that date). This
module finds that date and every other control-plane certificate it can read.

The parsing and the judgement (status, deadline) are pure functions of bytes,
documents and a clock; ``read_cluster`` and ``read_kubeconfig`` are the only
IO. Of a Secret only the certificate keys (``tls.crt``, ``ca.crt``) are
decoded; a private key is dropped with the rest of the listed object and never
copied, logged or reported.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.x509.oid import NameOID

from strongroom.kube import ApiResource, KubeClient, KubeForbidden

__all__ = [
    "CONTROL_PLANE_NAMESPACES",
    "NOT_AFTER_ANNOTATION",
    "SIGNER_NAME",
    "SIGNER_NAMESPACE",
    "CertificateFacts",
    "CertificateReport",
    "CertsReport",
    "ClusterFindings",
    "PemSource",
    "RestartDeadline",
    "SignerReport",
    "SignerSecret",
    "Source",
    "Status",
    "build_report",
    "certificate_facts",
    "days_left",
    "has_certificate",
    "judge",
    "kubeconfig_sources",
    "parse_not_after_annotation",
    "parse_pem_bundle",
    "read_cluster",
    "read_kubeconfig",
]

SIGNER_NAMESPACE = "openshift-kube-apiserver-operator"
SIGNER_NAME = "kube-apiserver-to-kubelet-signer"
NOT_AFTER_ANNOTATION = "auth.openshift.io/certificate-not-after"
CONTROL_PLANE_NAMESPACES = (
    "kube-system",
    "openshift-kube-apiserver",
    "openshift-kube-apiserver-operator",
    "openshift-kube-controller-manager",
    "openshift-kube-scheduler",
    "openshift-etcd",
    "openshift-config-managed",
    "openshift-config",
)
# The keys of a TLS Secret that hold certificates; tls.key is never decoded.
SECRET_CERT_KEYS = ("tls.crt", "ca.crt")
# Plain Kubernetes has no OpenShift signer: kubelets renew against the cluster CA,
# published in these ConfigMaps (and trust the apiserver through the kubeconfig's CA).
_KUBERNETES_CLIENT_CAS = (
    ("kube-system", "extension-apiserver-authentication", "client-ca-file"),
    ("kube-system", "kube-root-ca.crt", "ca.crt"),
)

_SIGNER_ROLE = "kube-apiserver-to-kubelet signer"
_PEM_BLOCK = re.compile(
    rb"-----BEGIN CERTIFICATE-----(?P<body>(?:(?!-----).)*)-----END CERTIFICATE-----", re.DOTALL
)
_SECRETS = ApiResource(group="", version="v1", resource="secrets", kind="Secret", namespaced=True)
_CONFIGMAPS = ApiResource(group="", version="v1", resource="configmaps", kind="ConfigMap", namespaced=True)
_NAMESPACES = ApiResource(group="", version="v1", resource="namespaces", kind="Namespace", namespaced=False)


class Status(StrEnum):
    ok = "ok"
    warning = "WARNING"
    expired = "EXPIRED"


@dataclass(frozen=True)
class Source:
    """Where a certificate was read: ``Secret/ns/name/tls.crt``, ``Kubeconfig//cluster/...``."""

    kind: str
    namespace: str
    name: str
    key: str
    index: int = 0  # the position in a bundle
    count: int = 1  # how many certificates the bundle holds

    def describe(self) -> str:
        where = "/".join(part for part in (self.kind, self.namespace, self.name, self.key) if part)
        return f"{where}[{self.index}]" if self.count > 1 else where

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "namespace": self.namespace,
            "name": self.name,
            "key": self.key,
            "index": self.index,
        }


@dataclass(frozen=True)
class CertificateFacts:
    """What matters of one X.509 certificate for its expiry: names, validity, whether it signs others."""

    subject_cn: str
    issuer_cn: str
    not_before: datetime
    not_after: datetime
    serial: int
    is_ca: bool


@dataclass(frozen=True)
class PemSource:
    """The PEM text of one key of an object (or of the kubeconfig), and what it is for."""

    source: Source
    data: bytes
    role: str = ""


@dataclass(frozen=True)
class SignerSecret:
    """The two places the kube-apiserver-to-kubelet signer records its expiry."""

    annotation: str | None
    tls_crt: bytes | None


@dataclass(frozen=True)
class ClusterFindings:
    """Everything read from the cluster, before judgement."""

    pems: tuple[PemSource, ...]
    signer: SignerSecret | None
    openshift: bool
    namespaces: tuple[str, ...]
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class CertificateReport:
    source: Source
    facts: CertificateFacts
    status: Status
    days_left: int
    role: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "subject": self.facts.subject_cn,
            "issuer": self.facts.issuer_cn,
            "notBefore": _rfc3339(self.facts.not_before),
            "notAfter": _rfc3339(self.facts.not_after),
            "daysLeft": self.days_left,
            "status": str(self.status),
            "isCA": self.facts.is_ca,
            "role": self.role,
            "source": self.source.describe(),
            "sourceRef": self.source.to_json(),
        }


@dataclass(frozen=True)
class SignerReport:
    """The OpenShift signer: its annotation, its certificate, and which date counts."""

    present: bool
    namespace_exists: bool
    annotation_not_after: datetime | None = None
    certificate_not_after: datetime | None = None
    not_after: datetime | None = None
    status: Status | None = None
    days_left: int | None = None
    notes: tuple[str, ...] = ()

    @property
    def source(self) -> str:
        return f"Secret/{SIGNER_NAMESPACE}/{SIGNER_NAME}"

    def to_json(self) -> dict[str, Any]:
        return {
            "present": self.present,
            "source": self.source,
            "annotationNotAfter": _rfc3339(self.annotation_not_after),
            "certificateNotAfter": _rfc3339(self.certificate_not_after),
            "notAfter": _rfc3339(self.not_after),
            "status": str(self.status) if self.status else None,
            "daysLeft": self.days_left,
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class RestartDeadline:
    """The date by which the cluster must run again so that kubelets can still renew."""

    not_after: datetime
    days_left: int
    basis: tuple[str, ...]
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {
            "notAfter": _rfc3339(self.not_after),
            "daysLeft": self.days_left,
            "basis": list(self.basis),
            "reason": self.reason,
        }


@dataclass(frozen=True)
class CertsReport:
    now: datetime
    warn_days: int
    certificates: tuple[CertificateReport, ...]
    signer: SignerReport
    deadline: RestartDeadline | None
    notes: tuple[str, ...] = ()
    namespaces: tuple[str, ...] = ()

    def expired(self) -> list[str]:
        """Each EXPIRED certificate, described for people (the signer's annotation too, without a certificate)."""
        return self._with(Status.expired)

    def warnings(self) -> list[str]:
        return self._with(Status.warning)

    def _with(self, status: Status) -> list[str]:
        found = [
            f"{c.source.describe()} (CN {c.facts.subject_cn or '-'}): notAfter {_rfc3339(c.facts.not_after)}, "
            f"{c.days_left} days left"
            for c in self.certificates
            if c.status is status
        ]
        signer = self.signer
        if signer.status is status and signer.certificate_not_after is None and signer.not_after is not None:
            found.append(
                f"{signer.source} annotation {NOT_AFTER_ANNOTATION}: {_rfc3339(signer.not_after)}, "
                f"{signer.days_left} days left"
            )
        return found

    def to_json(self) -> dict[str, Any]:
        return {
            "now": _rfc3339(self.now),
            "warnDays": self.warn_days,
            "lastSafeRestart": self.deadline.to_json() if self.deadline else None,
            "signer": self.signer.to_json(),
            "certificates": [c.to_json() for c in self.certificates],
            "expired": self.expired(),
            "warnings": self.warnings(),
            "namespaces": list(self.namespaces),
            "notes": list(self.notes),
        }


# -- pure parsing ----------------------------------------------------------------------------------


def _rfc3339(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.isoformat().replace("+00:00", "Z")


def _common_name(name: x509.Name) -> str:
    values = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    if values:
        value = values[0].value
        return value if isinstance(value, str) else value.decode("utf-8", "replace")
    return name.rfc4514_string()


def certificate_facts(cert: x509.Certificate) -> CertificateFacts:
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        is_ca = bool(constraints.ca)
    except x509.ExtensionNotFound:
        is_ca = cert.subject == cert.issuer  # an old self-signed root without the extension
    return CertificateFacts(
        subject_cn=_common_name(cert.subject),
        issuer_cn=_common_name(cert.issuer),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        serial=cert.serial_number,
        is_ca=is_ca,
    )


def parse_pem_bundle(data: bytes | str) -> tuple[list[CertificateFacts], list[str]]:
    """Every certificate of a PEM bundle, in order; text between blocks is ignored.

    A block that does not decode is reported in the second list (by position)
    and the others are still returned.
    """
    raw = data.encode("utf-8", "replace") if isinstance(data, str) else data
    found: list[CertificateFacts] = []
    problems: list[str] = []
    for position, match in enumerate(_PEM_BLOCK.finditer(raw)):
        try:
            der = base64.b64decode(b"".join(match["body"].split()), validate=True)
            found.append(certificate_facts(x509.load_der_x509_certificate(der)))
        except (binascii.Error, ValueError) as exc:
            problems.append(f"certificate {position} does not decode: {exc}")
    return found, problems


def has_certificate(data: bytes | str) -> bool:
    raw = data.encode("utf-8", "replace") if isinstance(data, str) else data
    return b"-----BEGIN CERTIFICATE-----" in raw


def parse_not_after_annotation(value: str) -> datetime:
    """An RFC 3339 time such as ``2022-08-05T14:37:50Z``; ValueError without a UTC offset."""
    text = value.strip()
    moment = datetime.fromisoformat(text[:-1] + "+00:00" if text[-1:] in ("Z", "z") else text)
    if moment.tzinfo is None:
        raise ValueError(f"{value!r} has no time zone (RFC 3339 requires one)")
    return moment


def days_left(not_after: datetime, now: datetime) -> int:
    """Whole days until ``not_after`` (rounded down; negative once past)."""
    return math.floor((not_after - now) / timedelta(days=1))


def judge(not_after: datetime, now: datetime, warn_days: int) -> Status:
    """EXPIRED at or after ``not_after``; WARNING when less than ``warn_days`` remain."""
    if not_after <= now:
        return Status.expired
    if not_after - now < timedelta(days=warn_days):
        return Status.warning
    return Status.ok


def kubeconfig_sources(
    documents: Sequence[tuple[Path, Mapping[str, Any]]], context: str | None
) -> tuple[list[PemSource], list[str]]:
    """The cluster CA and the client certificate of a kubeconfig context.

    Several files merge as kubectl merges them: the first definition of a
    name wins, and so does the first ``current-context``. A file path in the
    kubeconfig is relative to the file that names it.
    """
    notes: list[str] = []
    contexts: dict[str, tuple[Path, Mapping[str, Any]]] = {}
    clusters: dict[str, tuple[Path, Mapping[str, Any]]] = {}
    users: dict[str, tuple[Path, Mapping[str, Any]]] = {}
    current: str | None = None
    for path, document in documents:
        for section, into in (("contexts", contexts), ("clusters", clusters), ("users", users)):
            for entry in document.get(section) or ():
                if isinstance(entry, Mapping) and isinstance(entry.get("name"), str):
                    body = entry.get(section[:-1])
                    into.setdefault(entry["name"], (path, body if isinstance(body, Mapping) else {}))
        chosen = document.get("current-context")
        if current is None and isinstance(chosen, str) and chosen:
            current = chosen
    name = context or current
    if not name or name not in contexts:
        notes.append(f"kubeconfig context {name!r} not found: its certificates are not reported")
        return [], notes
    settings = contexts[name][1]
    found: list[PemSource] = []
    wanted = (
        ("cluster", clusters, "certificate-authority", "kubeconfig cluster CA"),
        ("user", users, "client-certificate", "kubeconfig client certificate"),
    )
    for reference, table, key, role in wanted:
        entry_name = settings.get(reference)
        if not isinstance(entry_name, str) or entry_name not in table:
            continue
        where, body = table[entry_name]
        kind = f"Kubeconfig/{reference}"
        inline = body.get(f"{key}-data")
        if isinstance(inline, str) and inline:
            try:
                data = base64.b64decode(inline)
            except (binascii.Error, ValueError):
                notes.append(f"kubeconfig {reference} {entry_name}: {key}-data is not base64")
                continue
            found.append(PemSource(Source(kind, "", entry_name, f"{key}-data"), data, role))
            continue
        file_name = body.get(key)
        if isinstance(file_name, str) and file_name:
            file_path = Path(file_name).expanduser()
            if not file_path.is_absolute():
                file_path = where.parent / file_path
            try:
                data = file_path.read_bytes()
            except OSError as exc:
                notes.append(f"kubeconfig {reference} {entry_name}: cannot read {file_path}: {exc.strerror}")
                continue
            found.append(PemSource(Source(kind, "", entry_name, str(file_path)), data, role))
    return found, notes


def _signer_report(
    signer: SignerSecret | None, namespace_exists: bool, now: datetime, warn_days: int
) -> SignerReport:
    if signer is None:
        return SignerReport(present=False, namespace_exists=namespace_exists)
    notes: list[str] = []
    annotated: datetime | None = None
    if signer.annotation is None:
        notes.append(f"the signer Secret has no {NOT_AFTER_ANNOTATION} annotation")
    else:
        try:
            annotated = parse_not_after_annotation(signer.annotation)
        except ValueError:
            notes.append(
                f"the annotation {NOT_AFTER_ANNOTATION}={signer.annotation!r} is not an RFC 3339 time"
            )
    certified: datetime | None = None
    if signer.tls_crt is not None:
        facts, problems = parse_pem_bundle(signer.tls_crt)
        notes.extend(f"the signer's tls.crt: {problem}" for problem in problems)
        if facts:
            certified = facts[0].not_after
    if annotated is not None and certified is not None and annotated != certified:
        notes.append(
            f"the annotation says {_rfc3339(annotated)} but the certificate's notAfter is "
            f"{_rfc3339(certified)}: the certificate wins"
        )
    effective = certified if certified is not None else annotated
    return SignerReport(
        present=True,
        namespace_exists=True,
        annotation_not_after=annotated,
        certificate_not_after=certified,
        not_after=effective,
        status=judge(effective, now, warn_days) if effective else None,
        days_left=days_left(effective, now) if effective else None,
        notes=tuple(notes),
    )


def _deadline(
    signer: SignerReport, certificates: Iterable[CertificateReport], now: datetime
) -> RestartDeadline | None:
    if signer.present:
        if signer.not_after is None:
            return None
        basis = (
            "certificate"
            if signer.certificate_not_after is not None
            else f"annotation {NOT_AFTER_ANNOTATION}"
        )
        return RestartDeadline(
            not_after=signer.not_after,
            days_left=days_left(signer.not_after, now),
            basis=(f"{signer.source} ({basis})",),
            reason="the kube-apiserver-to-kubelet signer expires then; after it kubelets cannot renew "
            "their certificates and pending CSRs must be approved by hand",
        )
    candidates = [c for c in certificates if c.role and c.facts.is_ca]
    if not candidates:
        return None
    earliest = min(c.facts.not_after for c in candidates)
    return RestartDeadline(
        not_after=earliest,
        days_left=days_left(earliest, now),
        basis=tuple(c.source.describe() for c in candidates if c.facts.not_after == earliest),
        reason="the earliest client/cluster CA that kubelets and the API server rely on expires then",
    )


def build_report(
    findings: ClusterFindings,
    kubeconfig: Sequence[PemSource],
    *,
    now: datetime,
    warn_days: int,
    kubeconfig_notes: Sequence[str] = (),
) -> CertsReport:
    """Judge everything read: each certificate's status, the signer, the last safe restart."""
    notes = [*findings.notes, *kubeconfig_notes]
    certificates: list[CertificateReport] = []
    seen: set[tuple[str, str, str, str, int]] = set()
    for pem in [*findings.pems, *kubeconfig]:
        facts, problems = parse_pem_bundle(pem.data)
        notes.extend(f"{pem.source.describe()}: {problem}" for problem in problems)
        for index, cert in enumerate(facts):
            source = Source(
                pem.source.kind, pem.source.namespace, pem.source.name, pem.source.key, index, len(facts)
            )
            identity = (source.kind, source.namespace, source.name, source.key, index)
            if identity in seen:
                continue
            seen.add(identity)
            certificates.append(
                CertificateReport(
                    source=source,
                    facts=cert,
                    status=judge(cert.not_after, now, warn_days),
                    days_left=days_left(cert.not_after, now),
                    role=pem.role,
                )
            )
    signer = _signer_report(findings.signer, findings.openshift, now, warn_days)
    notes.extend(signer.notes)
    if not signer.present:
        notes.append(
            f"the OpenShift kube-apiserver-to-kubelet signer ({signer.source}) does not exist"
            + (
                ""
                if findings.openshift
                else " (namespace not found: not an OpenShift cluster); "
                "the last safe restart comes from the Kubernetes client CAs found"
            )
        )
    certificates.sort(key=lambda c: (c.facts.not_after, c.source.describe()))
    return CertsReport(
        now=now,
        warn_days=warn_days,
        certificates=tuple(certificates),
        signer=signer,
        deadline=_deadline(signer, certificates, now),
        notes=tuple(notes),
        namespaces=findings.namespaces,
    )


# -- reads -------------------------------------------------------------------------------------------


def read_kubeconfig(location: str) -> list[tuple[Path, Mapping[str, Any]]]:
    """The documents of a kubeconfig location (``:``-separated files, as ``KUBECONFIG`` lists them)."""
    documents: list[tuple[Path, Mapping[str, Any]]] = []
    for part in location.split(":"):
        if not part:
            continue
        path = Path(part).expanduser()
        try:
            document = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError):
            continue  # the client reported an unusable kubeconfig already; a missing file is allowed
        if isinstance(document, Mapping):
            documents.append((path, document))
    return documents


def _decoded(value: object) -> bytes | None:
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value)
    except (binascii.Error, ValueError):
        return None


def _configmap_role(namespace: str, name: str, key: str) -> str:
    return "kubernetes client CA" if (namespace, name, key) in _KUBERNETES_CLIENT_CAS else ""


def _secret_pems(secret: Mapping[str, Any], notes: list[str]) -> list[PemSource]:
    metadata = secret.get("metadata") or {}
    namespace, name = str(metadata.get("namespace", "")), str(metadata.get("name", ""))
    data = secret.get("data") or {}
    found: list[PemSource] = []
    for key in SECRET_CERT_KEYS:  # only these keys are decoded: never tls.key
        if key not in data:
            continue
        decoded = _decoded(data[key])
        if decoded is None:
            notes.append(f"Secret/{namespace}/{name}/{key} is not base64")
        elif has_certificate(decoded):
            found.append(PemSource(Source("Secret", namespace, name, key), decoded))
    return found


def _configmap_pems(configmap: Mapping[str, Any]) -> list[PemSource]:
    metadata = configmap.get("metadata") or {}
    namespace, name = str(metadata.get("namespace", "")), str(metadata.get("name", ""))
    found: list[PemSource] = []
    # Every value holding PEM certificates, not only ca-bundle.crt or ca.crt: OpenShift names its bundles freely.
    for key, value in sorted((configmap.get("data") or {}).items()):
        if isinstance(value, str) and has_certificate(value):
            found.append(
                PemSource(
                    Source("ConfigMap", namespace, name, key),
                    value.encode("utf-8"),
                    _configmap_role(namespace, name, key),
                )
            )
    return found


async def _namespace_exists(kube: KubeClient, name: str) -> bool | None:
    """True or False, or None when the client may not read namespaces."""
    try:
        return await kube.get(_NAMESPACES, name) is not None
    except KubeForbidden:
        return None


async def _read_namespace(kube: KubeClient, namespace: str, notes: list[str]) -> list[PemSource]:
    found: list[PemSource] = []
    try:
        secrets = await kube.list_all(_SECRETS, namespace=namespace, field_selector="type=kubernetes.io/tls")
    except KubeForbidden:
        notes.append(f"not allowed to list Secrets in {namespace}: its TLS certificates are not reported")
    else:
        for secret in secrets:
            found.extend(_secret_pems(secret, notes))
        del secrets  # the listed objects hold private keys; keep nothing of them but the certificates
    try:
        configmaps = await kube.list_all(_CONFIGMAPS, namespace=namespace)
    except KubeForbidden:
        notes.append(f"not allowed to list ConfigMaps in {namespace}: its CA bundles are not reported")
    else:
        for configmap in configmaps:
            found.extend(_configmap_pems(configmap))
    return found


async def _read_signer(kube: KubeClient, notes: list[str]) -> SignerSecret | None:
    try:
        secret = await kube.get(_SECRETS, SIGNER_NAME, SIGNER_NAMESPACE)
    except KubeForbidden:
        notes.append(f"not allowed to read Secret {SIGNER_NAMESPACE}/{SIGNER_NAME}")
        return None
    if secret is None:
        return None
    annotations = (secret.get("metadata") or {}).get("annotations") or {}
    annotation = annotations.get(NOT_AFTER_ANNOTATION)
    tls_crt = _decoded((secret.get("data") or {}).get("tls.crt"))
    return SignerSecret(
        annotation=annotation if isinstance(annotation, str) else None,
        tls_crt=tls_crt if tls_crt is not None and has_certificate(tls_crt) else None,
    )


async def read_cluster(
    kube: KubeClient, namespaces: Sequence[str] = CONTROL_PLANE_NAMESPACES
) -> ClusterFindings:
    """Read the signer and the certificates of the control-plane namespaces that exist.

    A namespace or object the client may not read becomes a note, not a failure.
    """
    notes: list[str] = []
    exists = dict(
        zip(
            namespaces, await asyncio.gather(*(_namespace_exists(kube, ns) for ns in namespaces)), strict=True
        )
    )
    # A namespace whose existence cannot be checked (no permission) is tried anyway.
    present = [name for name in namespaces if exists[name] is not False]
    openshift = exists.get(SIGNER_NAMESPACE) is True
    signer = await _read_signer(kube, notes) if exists.get(SIGNER_NAMESPACE) is not False else None
    pems: list[PemSource] = []
    for found in await asyncio.gather(*(_read_namespace(kube, ns, notes) for ns in present)):
        pems.extend(found)
    signer_source = Source("Secret", SIGNER_NAMESPACE, SIGNER_NAME, "tls.crt")
    pems = [
        PemSource(pem.source, pem.data, _SIGNER_ROLE) if pem.source == signer_source else pem for pem in pems
    ]
    if signer is not None and signer.tls_crt is not None and all(p.source != signer_source for p in pems):
        pems.append(PemSource(signer_source, signer.tls_crt, _SIGNER_ROLE))
    return ClusterFindings(
        pems=tuple(pems),
        signer=signer,
        openshift=openshift or signer is not None,
        namespaces=tuple(present),
        notes=tuple(notes),
    )
