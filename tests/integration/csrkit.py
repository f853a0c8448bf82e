"""Certificate signing requests for the tests: a PEM request with the subject and SANs asked, and its manifest."""

from __future__ import annotations

import base64
import ipaddress
import json
from collections.abc import Sequence
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from tests.conftest import Sandbox


def csr_request(
    common_name: str, *, dns: Sequence[str] = (), ips: Sequence[str] = (), org: str = "system:nodes"
) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
                x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            ]
        )
    )
    names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    names += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    pem = builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)
    return base64.b64encode(pem).decode()


def csr_manifest(name: str, request: str, signer: str, usages: list[str], **spec: Any) -> str:
    return json.dumps(
        {
            "apiVersion": "certificates.k8s.io/v1",
            "kind": "CertificateSigningRequest",
            "metadata": {"name": name},
            "spec": {"request": request, "signerName": signer, "usages": usages, **spec},
        }
    )


def create_csr(sandbox: Sandbox, manifest: str, user: str | None = None, *groups: str) -> None:
    """``kubectl create`` the CSR, as ``user`` (impersonated, with ``groups``) or as the administrator."""
    flags = ["--as", user, *[f"--as-group={group}" for group in groups]] if user else []
    sandbox.kubectl("create", "-f", "-", *flags, input=manifest)
