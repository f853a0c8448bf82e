"""CertificateSigningRequests as kube-apiserver and kube-controller-manager treat them.

Three pieces of upstream behaviour live here, pure and separate from HTTP:

* the registry strategy: on create the requester's identity replaces whatever
  ``spec.username``/``uid``/``groups``/``extra`` the client sent, and the
  status starts empty (``pkg/registry/certificates/certificates/strategy.go``);
* validation: the request must be a PEM ``CERTIFICATE REQUEST`` with a valid
  signature, usages known and not repeated, a fully qualified signer name,
  ``expirationSeconds`` >= 600, and conditions where Approved and Denied
  exclude each other and are never removed (``pkg/apis/certificates/validation``);
* the signers of ``pkg/controller/certificates/signer``: an approved request
  for ``kubernetes.io/kube-apiserver-client``, ``kube-apiserver-client-kubelet``
  or ``kubelet-serving`` gets a certificate from the cluster CA, or a
  ``Failed`` condition (``SignerValidationFailure``) when the request does
  not fit the signer's rules.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from strongroom.sandbox import apierrors
from strongroom.sandbox.identity import UserInfo

JsonObject = dict[str, Any]

GROUP = "certificates.k8s.io"
KIND = "CertificateSigningRequest"

KUBE_APISERVER_CLIENT = "kubernetes.io/kube-apiserver-client"
KUBELET_CLIENT = "kubernetes.io/kube-apiserver-client-kubelet"
KUBELET_SERVING = "kubernetes.io/kubelet-serving"
SIGNERS = (KUBE_APISERVER_CLIENT, KUBELET_CLIENT, KUBELET_SERVING)

MIN_EXPIRATION_SECONDS = 600
# kube-controller-manager's default --cluster-signing-duration.
DEFAULT_TTL = dt.timedelta(days=365)
_BACKDATE = dt.timedelta(minutes=5)
_MIN_TTL = dt.timedelta(minutes=10)

_KEY_USAGES = {
    "signing": "digital_signature",
    "digital signature": "digital_signature",
    "content commitment": "content_commitment",
    "key encipherment": "key_encipherment",
    "key agreement": "key_agreement",
    "data encipherment": "data_encipherment",
    "cert sign": "key_cert_sign",
    "crl sign": "crl_sign",
    "encipher only": "encipher_only",
    "decipher only": "decipher_only",
}
_EXT_KEY_USAGES = {
    "any": ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,
    "server auth": ExtendedKeyUsageOID.SERVER_AUTH,
    "client auth": ExtendedKeyUsageOID.CLIENT_AUTH,
    "code signing": ExtendedKeyUsageOID.CODE_SIGNING,
    "email protection": ExtendedKeyUsageOID.EMAIL_PROTECTION,
    "s/mime": ExtendedKeyUsageOID.EMAIL_PROTECTION,
    "ipsec end system": x509.ObjectIdentifier("1.3.6.1.5.5.7.3.5"),
    "ipsec tunnel": x509.ObjectIdentifier("1.3.6.1.5.5.7.3.6"),
    "ipsec user": x509.ObjectIdentifier("1.3.6.1.5.5.7.3.7"),
    "timestamping": ExtendedKeyUsageOID.TIME_STAMPING,
    "ocsp signing": ExtendedKeyUsageOID.OCSP_SIGNING,
    "microsoft sgc": x509.ObjectIdentifier("1.3.6.1.4.1.311.10.3.3"),
    "netscape sgc": x509.ObjectIdentifier("2.16.840.1.113730.4.1"),
}
VALID_USAGES = tuple(sorted({*_KEY_USAGES, *_EXT_KEY_USAGES}))
_KUBELET_SERVING_USAGES = (
    frozenset({"digital signature", "key encipherment", "server auth"}),
    frozenset({"digital signature", "server auth"}),
)
_KUBELET_CLIENT_USAGES = (
    frozenset({"digital signature", "key encipherment", "client auth"}),
    frozenset({"digital signature", "client auth"}),
)
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class SignerValidationError(Exception):
    """The request does not fit its signer's rules; it becomes a Failed condition."""


# ------------------------------------------------------------------ strategy


def stamp_requester(obj: JsonObject, user: UserInfo) -> None:
    """PrepareForCreate: the spec's identity is the requester's, whatever the client sent."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        spec = obj["spec"] = {}
    for owned in ("username", "uid", "groups", "extra"):
        spec.pop(owned, None)
    if user.username:
        spec["username"] = user.username
    if user.uid:
        spec["uid"] = user.uid
    if user.groups:
        spec["groups"] = list(user.groups)
    if user.extra:
        spec["extra"] = {key: list(values) for key, values in user.extra.items()}
    obj["status"] = {}


# ---------------------------------------------------------------- validation


def validate(obj: JsonObject) -> None:
    """ValidateCertificateSigningRequestCreate; raises 422 Invalid with every problem."""
    _raise(obj, _spec_errors(obj) + _condition_errors(obj))


def validate_update(old: JsonObject, new: JsonObject, subresource: str | None) -> None:
    """The update, status and approval validations: conditions stay consistent and are never dropped."""
    errors = _condition_errors(new)
    for kind in ("Approved", "Denied"):
        before = [c for c in _conditions(old) if c.get("type") == kind]
        after = [c for c in _conditions(new) if c.get("type") == kind]
        if len(after) < len(before):
            errors.append(
                (
                    "status.conditions",
                    "FieldValueForbidden",
                    f'Forbidden: updates may not remove a condition of type "{kind}"',
                )
            )
    if subresource == "status":
        certificate = (new.get("status") or {}).get("certificate")
        if certificate and certificate != (old.get("status") or {}).get("certificate"):
            errors += _certificate_errors(certificate)
    _raise(new, errors)


def _raise(obj: JsonObject, errors: list[tuple[str, str, str]]) -> None:
    if errors:
        name = str((obj.get("metadata") or {}).get("name") or "")
        raise apierrors.invalid(GROUP, KIND, name, errors)


def _spec_errors(obj: JsonObject) -> list[tuple[str, str, str]]:
    spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
    assert isinstance(spec, dict)
    errors: list[tuple[str, str, str]] = []
    raw = request_bytes(spec.get("request"))
    try:
        parse_request(raw)
    except ValueError as exc:
        errors.append(("spec.request", "FieldValueInvalid", f"Invalid value: {_go_bytes(raw)}: {exc}"))
    usages = spec.get("usages") or []
    if not usages:
        errors.append(("spec.usages", "FieldValueRequired", "Required value"))
    seen: set[str] = set()
    supported = ", ".join(f'"{u}"' for u in VALID_USAGES)
    for index, usage in enumerate(usages):
        if usage not in VALID_USAGES:
            errors.append(
                (
                    f"spec.usages[{index}]",
                    "FieldValueNotSupported",
                    f'Unsupported value: "{usage}": supported values: {supported}',
                )
            )
        if usage in seen:
            errors.append((f"spec.usages[{index}]", "FieldValueDuplicate", f'Duplicate value: "{usage}"'))
        seen.add(str(usage))
    errors += _signer_name_errors(str(spec.get("signerName") or ""))
    expiration = spec.get("expirationSeconds")
    if isinstance(expiration, int) and expiration < MIN_EXPIRATION_SECONDS:
        errors.append(
            (
                "spec.expirationSeconds",
                "FieldValueInvalid",
                f"Invalid value: {expiration}: may not specify a duration less than 600 seconds (10 minutes)",
            )
        )
    return errors


def _signer_name_errors(name: str) -> list[tuple[str, str, str]]:
    path = "spec.signerName"
    if not name:
        return [(path, "FieldValueRequired", "Required value")]
    segments = name.split("/")
    if len(segments) != 2:
        return [
            (
                path,
                "FieldValueInvalid",
                f'Invalid value: "{name}": must be a fully qualified domain and path of the form '
                "'example.com/signer-name'",
            )
        ]
    domain, rest = segments
    errors: list[tuple[str, str, str]] = []
    labels = domain.split(".")
    for label in labels:
        if not _DNS_LABEL.match(label) or len(label) > 63:
            errors.append(
                (
                    path,
                    "FieldValueInvalid",
                    f'Invalid value: "{domain}": validating label "{label}": a lowercase RFC 1123 label must '
                    "consist of lower case alphanumeric characters or '-', and must start and end with an "
                    "alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
                    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
                )
            )
            break
    if len(labels) < 2:
        errors.append(
            (
                path,
                "FieldValueInvalid",
                f'Invalid value: "{domain}": should be a domain with at least two segments separated by dots',
            )
        )
    if not rest:
        errors.append((path, "FieldValueInvalid", f'Invalid value: "{rest}": a path segment is required'))
    return errors


def _conditions(obj: JsonObject) -> list[JsonObject]:
    return [c for c in (obj.get("status") or {}).get("conditions") or [] if isinstance(c, dict)]


def _condition_errors(obj: JsonObject) -> list[tuple[str, str, str]]:
    errors: list[tuple[str, str, str]] = []
    seen: set[str] = set()
    approved = denied = False
    for index, condition in enumerate(_conditions(obj)):
        where = f"status.conditions[{index}]"
        kind = str(condition.get("type") or "")
        status = str(condition.get("status") or "")
        if not kind:
            errors.append((f"{where}.type", "FieldValueRequired", "Required value"))
        if not status:
            errors.append((f"{where}.status", "FieldValueRequired", "Required value"))
        elif status not in ("True", "False", "Unknown"):
            errors.append(
                (
                    f"{where}.status",
                    "FieldValueNotSupported",
                    f'Unsupported value: "{status}": supported values: "True", "False", "Unknown"',
                )
            )
        if kind in ("Approved", "Denied"):
            approved = approved or kind == "Approved"
            denied = denied or kind == "Denied"
            if status != "True":
                errors.append(
                    (
                        f"{where}.status",
                        "FieldValueInvalid",
                        f'Invalid value: "{status}": {kind} condition may only be set to True',
                    )
                )
        if kind in seen:
            errors.append((f"{where}.type", "FieldValueDuplicate", f'Duplicate value: "{kind}"'))
        seen.add(kind)
    if approved and denied:
        errors.append(
            (
                "status.conditions",
                "FieldValueInvalid",
                "Invalid value: ...: Approved and Denied conditions are mutually exclusive",
            )
        )
    return errors


def _certificate_errors(certificate: Any) -> list[tuple[str, str, str]]:
    data = request_bytes(certificate)
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        certs = []
    if not certs:
        return [
            (
                "status.certificate",
                "FieldValueInvalid",
                'Invalid value: "<certificate data>": must contain at least one CERTIFICATE PEM block',
            )
        ]
    return []


def request_bytes(value: Any) -> bytes:
    """The bytes of a ``[]byte`` field, which JSON carries as base64."""
    if isinstance(value, bytes):
        return value
    if not value:
        return b""
    text = str(value)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        # The typed decoder fails before validation, as kube-apiserver's does.
        alphabet = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
        offset = next((i for i, c in enumerate(text.rstrip("=")) if c not in alphabet), len(text.rstrip("=")))
        raise apierrors.bad_request(
            f'{KIND} in version "v1" cannot be handled as a {KIND}: illegal base64 data at input byte {offset}'
        ) from exc


def parse_request(data: bytes) -> x509.CertificateSigningRequest:
    """certificates.ParseCSR and CheckSignature; ValueError says what is wrong as kube does."""
    begin = b"-----BEGIN CERTIFICATE REQUEST-----"
    if begin not in data:
        raise ValueError("PEM block type must be CERTIFICATE REQUEST")
    try:
        request = x509.load_pem_x509_csr(data[data.index(begin) :])
    except ValueError as exc:
        raise ValueError(f"x509: malformed certificate request: {exc}") from exc
    if not request.is_signature_valid:
        raise ValueError("x509: ECDSA verification failure")
    return request


def _go_bytes(data: bytes) -> str:
    """A []byte as Go's %#v prints it in field errors."""
    if not data:
        return "[]byte(nil)"
    return "[]byte{" + ", ".join(f"0x{b:x}" for b in data) + "}"


# -------------------------------------------------------------------- signers


@dataclass(frozen=True)
class Decision:
    """What a signer does with a request: issue ``certificate`` (PEM), fail it, or leave it."""

    certificate: bytes | None = None
    failure: str | None = None


def is_approved(obj: JsonObject) -> bool:
    kinds = {c.get("type") for c in _conditions(obj) if c.get("status") == "True"}
    return "Approved" in kinds and "Denied" not in kinds and "Failed" not in kinds


def decide(
    obj: JsonObject,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
    now: dt.datetime,
) -> Decision:
    """The signer controller's handle(): only approved, unsigned requests of a known signer are touched."""
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    signer = spec.get("signerName")
    if signer not in SIGNERS or not is_approved(obj) or status.get("certificate"):
        return Decision()
    try:
        request = parse_request(request_bytes(spec.get("request")))
    except (ValueError, apierrors.ApiError):
        return Decision()  # validation refused such requests at create
    usages = [str(u) for u in spec.get("usages") or []]
    try:
        _check_signer_rules(str(signer), request, usages)
    except SignerValidationError as exc:
        return Decision(failure=str(exc))
    expiration = spec.get("expirationSeconds")
    ttl = _duration(expiration if isinstance(expiration, int) else None)
    return Decision(certificate=issue(request, usages, ttl, ca_cert, ca_key, now))


def failed_condition(message: str, now: str) -> JsonObject:
    return {
        "type": "Failed",
        "status": "True",
        "reason": "SignerValidationFailure",
        "message": message,
        "lastUpdateTime": now,
        "lastTransitionTime": now,
    }


def _duration(expiration_seconds: int | None) -> dt.timedelta:
    if expiration_seconds is None:
        return DEFAULT_TTL
    requested = dt.timedelta(seconds=expiration_seconds)
    return min(max(requested, _MIN_TTL), DEFAULT_TTL)


def _check_signer_rules(signer: str, request: x509.CertificateSigningRequest, usages: list[str]) -> None:
    if signer == KUBE_APISERVER_CLIENT:
        has_client_auth = False
        for usage in usages:
            if usage == "client auth":
                has_client_auth = True
            elif usage not in ("digital signature", "key encipherment"):
                raise SignerValidationError(f"invalid usage for client certificate: {usage}")
        if not has_client_auth:
            raise SignerValidationError("missing required usage for client certificate: client auth")
        return
    organizations = [a.value for a in request.subject.get_attributes_for_oid(x509.NameOID.ORGANIZATION_NAME)]
    names = [a.value for a in request.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)]
    common_name = str(names[-1]) if names else ""
    sans = _sans(request)
    dns = sans.get_values_for_type(x509.DNSName) if sans else []
    ips = sans.get_values_for_type(x509.IPAddress) if sans else []
    emails = sans.get_values_for_type(x509.RFC822Name) if sans else []
    uris = sans.get_values_for_type(x509.UniformResourceIdentifier) if sans else []
    if organizations != ["system:nodes"]:
        raise SignerValidationError("subject organization is not system:nodes")
    if signer == KUBELET_SERVING:
        if not dns and not ips:
            raise SignerValidationError("DNS or IP subjectAltName is required")
        if emails:
            raise SignerValidationError("Email subjectAltNames are not allowed")
        if uris:
            raise SignerValidationError("URI subjectAltNames are not allowed")
        if frozenset(usages) not in _KUBELET_SERVING_USAGES or len(set(usages)) != len(usages):
            raise SignerValidationError(
                "usages did not match [digital signature key encipherment server auth]"
            )
        if not common_name.startswith("system:node:"):
            raise SignerValidationError("subject common name does not begin with system:node:")
        return
    if dns:
        raise SignerValidationError("DNS subjectAltNames are not allowed")
    if emails:
        raise SignerValidationError("Email subjectAltNames are not allowed")
    if ips:
        raise SignerValidationError("IP subjectAltNames are not allowed")
    if uris:
        raise SignerValidationError("URI subjectAltNames are not allowed")
    if not common_name.startswith("system:node:"):
        raise SignerValidationError("subject common name does not begin with system:node:")
    if frozenset(usages) not in _KUBELET_CLIENT_USAGES or len(set(usages)) != len(usages):
        raise SignerValidationError("usages did not match [client auth digital signature key encipherment]")


def _sans(request: x509.CertificateSigningRequest) -> x509.SubjectAlternativeName | None:
    try:
        return request.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None


def issue(
    request: x509.CertificateSigningRequest,
    usages: list[str],
    ttl: dt.timedelta,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
    now: dt.datetime,
) -> bytes:
    """authority.Sign with the PermissiveSigningPolicy: subject and SANs from the request, usages as asked."""
    public_key = request.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        raise SignerValidationError(f"unsupported public key type {type(public_key).__name__}")
    not_before = now - _BACKDATE
    not_after = min(not_before + ttl, ca_cert.not_valid_after_utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(request.subject)
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    )
    flags = dict.fromkeys(set(_KEY_USAGES.values()), False)
    for usage in usages:
        if usage in _KEY_USAGES:
            flags[_KEY_USAGES[usage]] = True
    if any(flags.values()):
        if not flags["key_agreement"]:
            flags["encipher_only"] = flags["decipher_only"] = False
        builder = builder.add_extension(x509.KeyUsage(**flags), critical=True)
    # Go sorts the extended usages by its enum, which follows this table's order.
    order = list(dict.fromkeys(_EXT_KEY_USAGES.values()))
    extended = sorted({_EXT_KEY_USAGES[u] for u in usages if u in _EXT_KEY_USAGES}, key=order.index)
    if extended:
        builder = builder.add_extension(x509.ExtendedKeyUsage(extended), critical=False)
    sans = _sans(request)
    if sans is not None and len(sans) > 0:
        builder = builder.add_extension(sans, critical=False)
    builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    try:
        ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
    except x509.ExtensionNotFound:
        pass
    certificate = builder.sign(ca_key, hashes.SHA256())
    return certificate.public_bytes(serialization.Encoding.PEM)
