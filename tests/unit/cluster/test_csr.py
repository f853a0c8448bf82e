"""Only the kubelet's own CSRs, from the right requester and for a known node, are judged valid."""

from __future__ import annotations

import base64
import ipaddress
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from strongroom.cluster.csr import KUBELET_CLIENT, KUBELET_SERVING, NODE_BOOTSTRAPPER, judge, state

NODES = [
    {
        "metadata": {"name": "worker-0"},
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": "10.0.0.10"},
                {"type": "Hostname", "address": "worker-0"},
                {"type": "InternalDNS", "address": "worker-0.example.internal"},
            ]
        },
    },
    {
        "metadata": {"name": "worker-1"},
        "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.11"}]},
    },
]
MACHINES = [
    {
        "metadata": {"name": "cluster-worker-2"},
        "status": {"addresses": [{"type": "Hostname", "address": "worker-2"}]},
    }
]


def request(
    cn: str, orgs: tuple[str, ...] = ("system:nodes",), dns: tuple[str, ...] = (), ips: tuple[str, ...] = ()
) -> str:
    names = [x509.NameAttribute(NameOID.COMMON_NAME, cn)] + [
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs
    ]
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(names))
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns] + [
        x509.IPAddress(ipaddress.ip_address(i)) for i in ips
    ]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    pem = builder.sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256()).public_bytes(
        serialization.Encoding.PEM
    )
    return base64.b64encode(pem).decode()


def csr(signer: str, req: str, username: str, groups: list[str], usages: list[str]) -> dict[str, Any]:
    return {
        "metadata": {"name": "csr-x"},
        "spec": {
            "signerName": signer,
            "request": req,
            "username": username,
            "groups": groups,
            "usages": usages,
        },
    }


CLIENT_USAGES = ["digital signature", "key encipherment", "client auth"]
SERVING_USAGES = ["digital signature", "key encipherment", "server auth"]


def test_a_bootstrap_client_csr_for_a_node_or_machine_is_valid() -> None:
    for node in ("worker-0", "worker-2"):
        judged = judge(
            csr(
                KUBELET_CLIENT,
                request(f"system:node:{node}"),
                NODE_BOOTSTRAPPER,
                ["system:serviceaccounts"],
                CLIENT_USAGES,
            ),
            NODES,
            MACHINES,
        )
        assert judged.valid, judged.reasons
        assert judged.node == node
    kubeadm = csr(
        KUBELET_CLIENT,
        request("system:node:worker-1"),
        "system:bootstrap:abcdef",
        ["system:bootstrappers"],
        CLIENT_USAGES,
    )
    assert judge(kubeadm, NODES).valid


def test_forged_client_csrs_are_refused_with_their_reasons() -> None:
    someone = csr(
        KUBELET_CLIENT, request("system:node:worker-0"), "mallory", ["system:authenticated"], CLIENT_USAGES
    )
    assert any("requested by mallory" in r for r in judge(someone, NODES).reasons)
    ghost = csr(KUBELET_CLIENT, request("system:node:ghost"), NODE_BOOTSTRAPPER, [], CLIENT_USAGES)
    assert judge(ghost, NODES, MACHINES).reasons == ("no Node or Machine named ghost in the cluster",)
    admin = csr(
        KUBELET_CLIENT,
        request("system:node:worker-0", ("system:masters",)),
        NODE_BOOTSTRAPPER,
        [],
        CLIENT_USAGES,
    )
    assert any("O must be exactly system:nodes" in r for r in judge(admin, NODES).reasons)
    with_sans = csr(
        KUBELET_CLIENT,
        request("system:node:worker-0", dns=("evil.example",)),
        NODE_BOOTSTRAPPER,
        [],
        CLIENT_USAGES,
    )
    assert any("no subject alternative names" in r for r in judge(with_sans, NODES).reasons)
    serving_usage = csr(
        KUBELET_CLIENT, request("system:node:worker-0"), NODE_BOOTSTRAPPER, [], SERVING_USAGES
    )
    assert any("server auth" in r for r in judge(serving_usage, NODES).reasons)
    # A node may renew its own client certificate, not another node's.
    other = csr(
        KUBELET_CLIENT,
        request("system:node:worker-0"),
        "system:node:worker-1",
        ["system:nodes"],
        CLIENT_USAGES,
    )
    assert not judge(other, NODES).valid
    own = csr(
        KUBELET_CLIENT,
        request("system:node:worker-0"),
        "system:node:worker-0",
        ["system:nodes"],
        CLIENT_USAGES,
    )
    assert judge(own, NODES).valid


def test_serving_csrs_must_come_from_the_node_and_name_only_its_addresses() -> None:
    good = csr(
        KUBELET_SERVING,
        request("system:node:worker-0", dns=("worker-0", "worker-0.example.internal"), ips=("10.0.0.10",)),
        "system:node:worker-0",
        ["system:nodes", "system:authenticated"],
        SERVING_USAGES,
    )
    assert judge(good, NODES).valid
    stolen = csr(
        KUBELET_SERVING,
        request("system:node:worker-0", ips=("10.0.0.11",)),
        "system:node:worker-0",
        ["system:nodes"],
        SERVING_USAGES,
    )
    assert judge(stolen, NODES).reasons == ("IP address 10.0.0.11 is not an address of node worker-0",)
    by_other = csr(
        KUBELET_SERVING,
        request("system:node:worker-0", ips=("10.0.0.10",)),
        "system:node:worker-1",
        ["system:nodes"],
        SERVING_USAGES,
    )
    assert any("requested by system:node:worker-1" in r for r in judge(by_other, NODES).reasons)
    no_node = csr(
        KUBELET_SERVING,
        request("system:node:worker-9", ips=("10.0.0.10",)),
        "system:node:worker-9",
        ["system:nodes"],
        SERVING_USAGES,
    )
    assert "no Node named worker-9 in the cluster" in judge(no_node, NODES).reasons


def test_other_signers_and_garbage_are_never_valid() -> None:
    other = csr("example.com/anything", request("system:node:worker-0"), NODE_BOOTSTRAPPER, [], CLIENT_USAGES)
    assert "not a kubelet signer" in judge(other, NODES).reasons[0]
    garbage = csr(
        KUBELET_CLIENT, base64.b64encode(b"not a csr").decode(), NODE_BOOTSTRAPPER, [], CLIENT_USAGES
    )
    assert "not a PEM certificate request" in judge(garbage, NODES).reasons[0]


def test_state_reads_the_conditions() -> None:
    assert state({"status": {}}) == "Pending"
    assert state({"status": {"conditions": [{"type": "Approved"}]}}) == "Approved"
    assert state({"status": {"conditions": [{"type": "Approved"}], "certificate": "x"}}) == "Approved,Issued"
    assert state({"status": {"conditions": [{"type": "Denied"}]}}) == "Denied"
