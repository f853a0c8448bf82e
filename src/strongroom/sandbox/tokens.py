"""Service-account tokens: the TokenRequest API and the bearer-token authenticator behind it.

Tokens are RS256 JWTs with kube-apiserver's claims (``iss``, ``sub``,
``aud``, ``exp``, ``kubernetes.io`` with the namespace, the service account and
the pod a token is bound to), signed by a key kept in the sandbox's PKI
directory, so they stay valid across restarts of the same sandbox. A token
authenticates as ``system:serviceaccount:<namespace>:<name>`` while it has not
expired and its service account (and bound pod) still exist with the same uid.
"""

from __future__ import annotations

import base64
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from strongroom.sandbox import apierrors
from strongroom.sandbox.engine import Engine, get_core

__all__ = [
    "EXTENDED_EXPIRATION",
    "ISSUER",
    "WARN_ONLY_EXPIRATION",
    "Claims",
    "TokenIssuer",
    "authenticate",
    "pod_token_lifetime",
    "token_request",
]

JsonObject = dict[str, Any]
ISSUER = "https://kubernetes.default.svc.cluster.local"
KEY_FILE = "sa.key"
DEFAULT_EXPIRATION = 3600
MIN_EXPIRATION = 600
MAX_EXPIRATION = 2**32
WARN_ONLY_EXPIRATION = 3607
"""The lifetime ServiceAccount admission asks for in ``kube-api-access-*`` volumes (kube's marker value)."""
EXTENDED_EXPIRATION = 365 * 24 * 3600
"""What such a pod-bound token really lives: kube-apiserver's ``--service-account-extend-token-expiration``."""


def pod_token_lifetime(requested: int, audiences: list[str]) -> int:
    """How long a pod-bound token is signed for.

    kube-apiserver (extend-token-expiration, on by default) gives tokens of the admission
    volume's marker lifetime for its own audience a year, so that workloads written before
    token rotation keep working; the kubelet still renews them at 80% of the requested time.
    """
    if requested == WARN_ONLY_EXPIRATION and ISSUER in audiences:
        return max(EXTENDED_EXPIRATION, requested)
    return requested


@dataclass(frozen=True)
class Claims:
    """What a verified token says about its holder."""

    namespace: str
    name: str
    uid: str
    audiences: tuple[str, ...]
    pod_name: str | None = None
    pod_uid: str | None = None

    @property
    def username(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.name}"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenIssuer:
    """Signs and verifies service-account JWTs with the sandbox's key."""

    def __init__(self, pki_dir: Path) -> None:
        self._key = _load_or_create_key(pki_dir / KEY_FILE)
        public = self._key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        digest = hashes.Hash(hashes.SHA256())
        digest.update(public)
        self.key_id = _b64(digest.finalize())

    def issue(
        self,
        *,
        namespace: str,
        name: str,
        uid: str,
        audiences: list[str],
        expiration_seconds: int,
        pod: JsonObject | None = None,
        now: float | None = None,
    ) -> tuple[str, int]:
        """A signed token and its expiry (seconds since the epoch)."""
        issued = int(now if now is not None else time.time())
        expires = issued + expiration_seconds
        kube: JsonObject = {"namespace": namespace, "serviceaccount": {"name": name, "uid": uid}}
        if pod is not None:
            kube["pod"] = {"name": pod["metadata"]["name"], "uid": pod["metadata"]["uid"]}
        claims = {
            "aud": audiences,
            "exp": expires,
            "iat": issued,
            "iss": ISSUER,
            "jti": _b64(os.urandom(12)),
            "kubernetes.io": kube,
            "nbf": issued,
            "sub": f"system:serviceaccount:{namespace}:{name}",
        }
        header = {"alg": "RS256", "kid": self.key_id}
        signing_input = f"{_b64(_compact(header))}.{_b64(_compact(claims))}"
        signature = self._key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64(signature)}", expires

    def verify(self, token: str, now: float | None = None) -> Claims | None:
        """The claims of a token this issuer signed that is valid now; None otherwise."""
        parts = token.split(".")
        if len(parts) != 3:
            return None
        try:
            header = json.loads(_unb64(parts[0]))
            payload = json.loads(_unb64(parts[1]))
            signature = _unb64(parts[2])
        except (ValueError, UnicodeDecodeError):
            return None
        if not isinstance(header, dict) or header.get("alg") != "RS256" or not isinstance(payload, dict):
            return None
        try:
            self._key.public_key().verify(
                signature, f"{parts[0]}.{parts[1]}".encode(), padding.PKCS1v15(), hashes.SHA256()
            )
        except InvalidSignature:
            return None
        moment = now if now is not None else time.time()
        try:
            if payload.get("iss") != ISSUER or not (int(payload["nbf"]) - 60 <= moment < int(payload["exp"])):
                return None
            kube = payload["kubernetes.io"]
            account = kube["serviceaccount"]
            pod = kube.get("pod") or {}
            audiences = payload.get("aud") or []
            return Claims(
                namespace=str(kube["namespace"]),
                name=str(account["name"]),
                uid=str(account["uid"]),
                audiences=tuple(str(a) for a in (audiences if isinstance(audiences, list) else [audiences])),
                pod_name=pod.get("name"),
                pod_uid=pod.get("uid"),
            )
        except (KeyError, TypeError, ValueError):
            return None


def _compact(obj: JsonObject) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


def _load_or_create_key(path: Path) -> rsa.RSAPrivateKey:
    if path.exists():
        loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if isinstance(loaded, rsa.RSAPrivateKey):
            return loaded
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    os.replace(tmp, path)
    return key


async def token_request(
    engine: Engine, issuer: TokenIssuer, namespace: str, name: str, body: Any, *, now: float | None = None
) -> JsonObject:
    """``POST serviceaccounts/{name}/token``: the TokenRequest with its status filled in."""
    if not isinstance(body, dict):
        raise apierrors.bad_request("the body of the request must be a TokenRequest object")
    account = await get_core(engine, "serviceaccounts", namespace, name)
    if account is None:
        raise apierrors.not_found("", "serviceaccounts", name)
    spec = body.get("spec") if isinstance(body.get("spec"), dict) else {}
    assert isinstance(spec, dict)
    expiration = spec.get("expirationSeconds")
    expiration = DEFAULT_EXPIRATION if expiration in (None, 0) else expiration
    if not isinstance(expiration, int) or expiration < MIN_EXPIRATION:
        raise apierrors.invalid(
            "authentication.k8s.io",
            "TokenRequest",
            "",
            [
                (
                    "spec.expirationSeconds",
                    "FieldValueInvalid",
                    "may not specify a duration less than 10 minutes",
                )
            ],
        )
    if expiration > MAX_EXPIRATION:
        raise apierrors.invalid(
            "authentication.k8s.io",
            "TokenRequest",
            "",
            [
                (
                    "spec.expirationSeconds",
                    "FieldValueTooLong",
                    "may not specify a duration larger than 2^32 seconds",
                )
            ],
        )
    audiences = [str(a) for a in spec.get("audiences") or []] or [ISSUER]
    pod = await _bound_pod(engine, namespace, spec.get("boundObjectRef"))
    lifetime = pod_token_lifetime(expiration, audiences) if pod is not None else expiration
    token, signed_until = issuer.issue(
        namespace=namespace,
        name=name,
        uid=str(account["metadata"]["uid"]),
        audiences=audiences,
        expiration_seconds=lifetime,
        pod=pod,
        now=now,
    )
    # The status keeps the requested expiry (kube does too): the kubelet renews by it.
    expires = signed_until - lifetime + expiration
    bound = spec.get("boundObjectRef")
    out_spec: JsonObject = {"audiences": audiences, "expirationSeconds": expiration, "boundObjectRef": bound}
    return {
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "creationTimestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires - expiration)),
        },
        "spec": out_spec,
        "status": {
            "token": token,
            "expirationTimestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires)),
        },
    }


async def _bound_pod(engine: Engine, namespace: str, ref: Any) -> JsonObject | None:
    if not ref:
        return None
    if not isinstance(ref, dict) or ref.get("kind") not in ("Pod", "Secret"):
        raise apierrors.invalid(
            "authentication.k8s.io",
            "TokenRequest",
            "",
            [("spec.boundObjectRef.kind", "FieldValueNotSupported", 'supported values: "Pod", "Secret"')],
        )
    if ref.get("kind") != "Pod":
        return None
    pod = await get_core(engine, "pods", namespace, str(ref.get("name", "")))
    if pod is None or (ref.get("uid") and ref["uid"] != pod["metadata"]["uid"]):
        raise apierrors.not_found("", "pods", str(ref.get("name", "")))
    return pod


async def authenticate(engine: Engine, issuer: TokenIssuer, token: str) -> Claims | None:
    """The service account a bearer token stands for, if it and its bound objects still exist."""
    claims = issuer.verify(token)
    if claims is None or ISSUER not in claims.audiences:
        # kube-apiserver accepts only tokens meant for it (its --api-audiences).
        return None
    account = await get_core(engine, "serviceaccounts", claims.namespace, claims.name)
    if account is None or account["metadata"].get("uid") != claims.uid:
        return None
    if claims.pod_name:
        pod = await get_core(engine, "pods", claims.namespace, claims.pod_name)
        if pod is None or pod["metadata"].get("uid") != claims.pod_uid:
            return None
    return claims
