"""Which certificate signing requests may be approved: the kubelet's, from the right requester, for a real node.

After a cluster was shut down past its certificates' renewal, or when nodes
join, the seed has the administrator approve pending CSRs with a loop of `oc
adm certificate approve`, judging each by eye. An attacker who can create a
CSR can ask for any node's identity; approving it blindly hands them that
node. This module judges each CSR the way the cluster's own approvers do:

* ``kubernetes.io/kube-apiserver-client-kubelet`` (a kubelet's client
  certificate): requested by the node bootstrapper (OpenShift's
  ``node-bootstrapper`` service account, or a kubeadm bootstrap token) or by
  the node itself when it renews; subject exactly ``CN=system:node:<name>``,
  ``O=system:nodes``; no SANs; client usages only; ``<name>`` a Node or a
  Machine the cluster knows.
* ``kubernetes.io/kubelet-serving`` (a kubelet's serving certificate):
  requested by ``system:node:<name>`` in ``system:nodes`` for that same name;
  server usages only; every DNS and IP SAN one of that Node's addresses.

Anything else gets a reason and is never approved by ``--all-valid``.
"""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from cryptography import x509
from cryptography.x509.oid import NameOID

from strongroom.errors import UsageError
from strongroom.kube import Discovery, KubeClient

__all__ = [
    "KUBELET_CLIENT",
    "KUBELET_SERVING",
    "NODE_BOOTSTRAPPER",
    "CsrReview",
    "Judgement",
    "Reviewed",
    "judge",
    "state",
]

KUBELET_CLIENT: Final = "kubernetes.io/kube-apiserver-client-kubelet"
KUBELET_SERVING: Final = "kubernetes.io/kubelet-serving"
NODE_BOOTSTRAPPER: Final = "system:serviceaccount:openshift-machine-config-operator:node-bootstrapper"
_NODE_PREFIX: Final = "system:node:"
_CLIENT_USAGES: Final = frozenset({"digital signature", "key encipherment", "client auth"})
_SERVING_USAGES: Final = frozenset({"digital signature", "key encipherment", "server auth"})
_DNS_ADDRESSES: Final = ("Hostname", "InternalDNS", "ExternalDNS")
_IP_ADDRESSES: Final = ("InternalIP", "ExternalIP")

JsonObject = Mapping[str, Any]


@dataclass(frozen=True)
class Judgement:
    """Whether a CSR may be approved, and every reason it may not."""

    name: str
    signer: str
    requester: str
    node: str | None
    reasons: tuple[str, ...] = field(default_factory=tuple)

    @property
    def valid(self) -> bool:
        return not self.reasons


def state(csr: JsonObject) -> str:
    """Pending, Approved, Denied or Failed, with Issued when a certificate is there."""
    conditions = {c.get("type") for c in (csr.get("status") or {}).get("conditions") or []}
    for kind in ("Denied", "Failed"):
        if kind in conditions:
            return kind
    if "Approved" in conditions:
        return "Approved,Issued" if (csr.get("status") or {}).get("certificate") else "Approved"
    return "Pending"


def judge(csr: JsonObject, nodes: Iterable[JsonObject], machines: Iterable[JsonObject] = ()) -> Judgement:
    """Validate one CSR against the cluster's Nodes and (OpenShift) Machines."""
    spec = csr.get("spec") or {}
    name = str((csr.get("metadata") or {}).get("name", ""))
    signer = str(spec.get("signerName", ""))
    username = str(spec.get("username", ""))
    groups = [str(g) for g in spec.get("groups") or []]
    usages = {str(u) for u in spec.get("usages") or []}
    by_name = {str(n["metadata"]["name"]): n for n in nodes}
    try:
        request = _parse(spec.get("request"))
    except ValueError as exc:
        return Judgement(
            name, signer, username, None, (f"the request is not a PEM certificate request: {exc}",)
        )
    common_names = [a.value for a in request.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    organizations = sorted(
        str(a.value) for a in request.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    )
    node = str(common_names[0]).removeprefix(_NODE_PREFIX) if len(common_names) == 1 else None
    reasons: list[str] = []
    if not request.is_signature_valid:
        reasons.append("the request's signature does not match its key")
    if len(common_names) != 1 or not str(common_names[0]).startswith(_NODE_PREFIX) or not node:
        reasons.append(f"the subject's CN must be system:node:<name>, not {common_names or 'missing'}")
        node = None
    if organizations != ["system:nodes"]:
        reasons.append(f"the subject's O must be exactly system:nodes, not {organizations or 'missing'}")
    if signer == KUBELET_CLIENT:
        reasons += _client_reasons(request, username, groups, usages, node, by_name, machines)
    elif signer == KUBELET_SERVING:
        reasons += _serving_reasons(request, username, groups, usages, node, by_name)
    else:
        reasons = [f"signer {signer or '(none)'} is not a kubelet signer: never approved automatically"]
    return Judgement(name, signer, username, node, tuple(reasons))


def _client_reasons(
    request: x509.CertificateSigningRequest,
    username: str,
    groups: Sequence[str],
    usages: set[str],
    node: str | None,
    nodes: Mapping[str, JsonObject],
    machines: Iterable[JsonObject],
) -> list[str]:
    reasons: list[str] = []
    bootstrap = username == NODE_BOOTSTRAPPER or (
        username.startswith("system:bootstrap:") and "system:bootstrappers" in groups
    )
    renewal = node is not None and username == f"{_NODE_PREFIX}{node}" and "system:nodes" in groups
    if not (bootstrap or renewal):
        reasons.append(
            f"requested by {username or '(nobody)'}: a kubelet client certificate comes from the node "
            "bootstrapper or from the node itself"
        )
    if _sans(request):
        reasons.append("a kubelet client certificate carries no subject alternative names")
    reasons += _usage_reasons(usages, _CLIENT_USAGES, "client auth")
    if node is not None and node not in nodes and not _machine_for(node, machines):
        reasons.append(f"no Node or Machine named {node} in the cluster")
    return reasons


def _serving_reasons(
    request: x509.CertificateSigningRequest,
    username: str,
    groups: Sequence[str],
    usages: set[str],
    node: str | None,
    nodes: Mapping[str, JsonObject],
) -> list[str]:
    reasons: list[str] = []
    if node is None or username != f"{_NODE_PREFIX}{node}" or "system:nodes" not in groups:
        reasons.append(
            f"requested by {username or '(nobody)'}: a kubelet serving certificate comes from that node itself "
            "(system:node:<name> in system:nodes)"
        )
    reasons += _usage_reasons(usages, _SERVING_USAGES, "server auth")
    if node is None:
        return reasons
    known = nodes.get(node)
    if known is None:
        return [*reasons, f"no Node named {node} in the cluster"]
    addresses = (known.get("status") or {}).get("addresses") or []
    dns_ok = {str(a["address"]).lower() for a in addresses if a.get("type") in _DNS_ADDRESSES}
    ip_ok = {_ip(str(a["address"])) for a in addresses if a.get("type") in _IP_ADDRESSES}
    sans = _sans(request)
    if not sans:
        reasons.append("a kubelet serving certificate names at least one of the node's addresses")
    for kind, value in sans:
        if kind == "DNS" and value.lower() not in dns_ok:
            reasons.append(f"DNS name {value} is not an address of node {node}")
        elif kind == "IP" and _ip(value) not in ip_ok:
            reasons.append(f"IP address {value} is not an address of node {node}")
        elif kind not in ("DNS", "IP"):
            reasons.append(f"{kind} {value} has no place in a kubelet serving certificate")
    return reasons


def _usage_reasons(usages: set[str], allowed: frozenset[str], required: str) -> list[str]:
    reasons = []
    extra = sorted(usages - allowed)
    if extra:
        reasons.append(f"usages {', '.join(extra)} are not allowed here")
    if required not in usages:
        reasons.append(f"usage {required} is missing")
    return reasons


def _machine_for(node: str, machines: Iterable[JsonObject]) -> bool:
    """A Machine whose node is (or will be) ``node``: by its nodeRef, or a Hostname/InternalDNS address."""
    for machine in machines:
        status = machine.get("status") or {}
        if (status.get("nodeRef") or {}).get("name") == node:
            return True
        for address in status.get("addresses") or []:
            if address.get("type") in ("Hostname", "InternalDNS") and address.get("address") == node:
                return True
    return False


def _parse(request: object) -> x509.CertificateSigningRequest:
    if not isinstance(request, str) or not request:
        raise ValueError("empty")
    try:
        pem = base64.b64decode(request, validate=True)
    except (ValueError, TypeError) as exc:
        raise ValueError("not base64") from exc
    return x509.load_pem_x509_csr(pem)


def _sans(request: x509.CertificateSigningRequest) -> list[tuple[str, str]]:
    try:
        extension = request.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    out: list[tuple[str, str]] = []
    for entry in extension.value:
        if isinstance(entry, x509.DNSName):
            out.append(("DNS", entry.value))
        elif isinstance(entry, x509.IPAddress):
            out.append(("IP", str(entry.value)))
        elif isinstance(entry, x509.RFC822Name):
            out.append(("email", entry.value))
        elif isinstance(entry, x509.UniformResourceIdentifier):
            out.append(("URI", entry.value))
        else:
            out.append(("other", str(entry.value)))
    return out


def _ip(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return text


@dataclass(frozen=True)
class Reviewed:
    """A CSR as the cluster holds it, with its state and the judgement on it."""

    csr: JsonObject
    state: str
    judgement: Judgement

    @property
    def name(self) -> str:
        return self.judgement.name


class CsrReview:
    """Reads the CSRs with the Nodes and Machines they are judged against, and writes approvals."""

    def __init__(self, kube: KubeClient, discovery: Discovery) -> None:
        self._kube = kube
        csrs = discovery.find("certificates.k8s.io", "certificatesigningrequests")
        nodes = discovery.find("", "nodes")
        if csrs is None or nodes is None:
            raise UsageError("this API server serves no certificatesigningrequests (certificates.k8s.io/v1)")
        self._csrs = csrs
        self._nodes = nodes
        self._machines = discovery.find("machine.openshift.io", "machines")

    async def review(self) -> list[Reviewed]:
        csrs = await self._kube.list_all(self._csrs)
        nodes = await self._kube.list_all(self._nodes)
        machines = (
            await self._kube.list_all(self._machines, namespace="openshift-machine-api")
            if self._machines
            else []
        )
        out = [Reviewed(c, state(c), judge(c, nodes, machines)) for c in csrs]
        out.sort(key=lambda r: str((r.csr.get("metadata") or {}).get("creationTimestamp", "")))
        return out

    async def decide(self, reviewed: Reviewed, *, approve: bool, message: str, now: str) -> JsonObject:
        """PUT the approval subresource with an Approved (or Denied) condition, as kubectl certificate does."""
        body = dict(reviewed.csr)
        status = dict(body.get("status") or {})
        conditions = [
            c for c in status.get("conditions") or [] if c.get("type") not in ("Approved", "Denied")
        ]
        conditions.append(
            {
                "type": "Approved" if approve else "Denied",
                "status": "True",
                "reason": "StrongroomApprove" if approve else "StrongroomDeny",
                "message": message,
                "lastUpdateTime": now,
            }
        )
        status["conditions"] = conditions
        body["status"] = status
        return await self._kube.replace(self._csrs, body, subresource="approval")
