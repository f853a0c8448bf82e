"""Built-in kinds with behaviour of their own: events.k8s.io Events over core Events, CSR approval."""

from __future__ import annotations

import base64
import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from kubernetes import client
from tests.integration.sandboxapi import Kube, unique

pytestmark = pytest.mark.integration


def test_events_v1_event_is_readable_as_core_event(kube: Kube, namespace: str) -> None:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    body = {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"name": "web.1"},
        "eventTime": now,
        "reportingController": "example.com/controller",
        "reportingInstance": "controller-1",
        "action": "Reconcile",
        "reason": "Synced",
        "type": "Normal",
        "note": "all good",
        "regarding": {"kind": "ConfigMap", "namespace": namespace, "name": "web", "apiVersion": "v1"},
    }

    created = kube.request("POST", f"/apis/events.k8s.io/v1/namespaces/{namespace}/events", body)
    assert created.status == 201
    assert created.body["note"] == "all good"

    core = kube.core.read_namespaced_event("web.1", namespace)
    assert core.message == "all good"
    assert core.reason == "Synced"
    assert core.type == "Normal"
    assert core.involved_object.kind == "ConfigMap"
    assert core.involved_object.name == "web"
    assert core.reporting_component == "example.com/controller"
    assert core.metadata.uid == created.body["metadata"]["uid"]

    # And back: a core Event appears in the events.k8s.io list with its fields renamed.
    listing = kube.request("GET", f"/apis/events.k8s.io/v1/namespaces/{namespace}/events").body
    (item,) = [i for i in listing["items"] if i["metadata"]["name"] == "web.1"]
    assert item["regarding"]["name"] == "web"
    assert item["note"] == "all good"
    assert "message" not in item
    assert "involvedObject" not in item


def _csr_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "alice")]))
        .sign(key, hashes.SHA256())
    )
    return request.public_bytes(serialization.Encoding.PEM).decode()


def test_csr_approval_subresource_sets_the_approved_condition(kube: Kube) -> None:
    name = unique("csr")
    certificates = client.CertificatesV1Api(kube.api)
    certificates.create_certificate_signing_request(
        {
            "metadata": {"name": name},
            "spec": {
                "request": base64.b64encode(_csr_pem().encode()).decode(),
                "signerName": "example.com/signer",
                "usages": ["client auth"],
            },
        }
    )
    try:
        csr = certificates.read_certificate_signing_request(name)
        assert not (csr.status.conditions or [])
        csr.status.conditions = [
            client.V1CertificateSigningRequestCondition(
                type="Approved", status="True", reason="TestApproved", message="approved by the test"
            )
        ]

        approved = certificates.replace_certificate_signing_request_approval(name, csr)

        (condition,) = approved.status.conditions
        assert (condition.type, condition.status, condition.reason) == ("Approved", "True", "TestApproved")
        # The server stamps the times a client leaves out.
        assert condition.last_update_time is not None
        assert condition.last_transition_time is not None
        stored = certificates.read_certificate_signing_request(name)
        assert [c.type for c in stored.status.conditions] == ["Approved"]
        assert stored.spec.signer_name == "example.com/signer"
    finally:
        certificates.delete_certificate_signing_request(name)


def test_csr_main_resource_update_does_not_approve(kube: Kube) -> None:
    name = unique("csr")
    path = f"/apis/certificates.k8s.io/v1/certificatesigningrequests/{name}"
    kube.request(
        "POST",
        "/apis/certificates.k8s.io/v1/certificatesigningrequests",
        {
            "metadata": {"name": name},
            "spec": {
                "request": base64.b64encode(_csr_pem().encode()).decode(),
                "signerName": "example.com/signer",
                "usages": ["client auth"],
            },
        },
    )
    try:
        current = kube.request("GET", path).body
        current["status"] = {"conditions": [{"type": "Approved", "status": "True", "reason": "Sneaky"}]}

        kube.request("PUT", path, current)

        assert not kube.request("GET", path).body.get("status", {}).get("conditions")
    finally:
        kube.request("DELETE", path)


def _node_port_service(name: str, namespace: str, node_port: int | None = None) -> client.V1Service:
    return client.V1Service(
        metadata=client.V1ObjectMeta(name=name, namespace=namespace),
        spec=client.V1ServiceSpec(
            type="NodePort",
            selector={"app": name},
            ports=[
                client.V1ServicePort(port=80, node_port=node_port),
                client.V1ServicePort(name="tls", port=443),
            ],
        ),
    )


def test_node_port_services_get_unique_node_ports_that_updates_keep(kube: Kube, namespace: str) -> None:
    first = kube.core.create_namespaced_service(namespace, _node_port_service("a", namespace)).to_dict()
    ports = [port["node_port"] for port in first["spec"]["ports"]]
    assert all(30000 <= port <= 32767 for port in ports) and len(set(ports)) == 2
    assert first["spec"]["external_traffic_policy"] == "Cluster"

    taken = kube.request("POST", f"/api/v1/namespaces/{namespace}/services", {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "b"},
        "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": ports[0]}]},
    })  # fmt: skip
    assert taken.status == 422
    assert "provided port is already allocated" in taken.body["message"]

    # A replace that leaves the node ports out keeps them.
    current = kube.core.read_namespaced_service("a", namespace)
    for port in current.spec.ports:
        port.node_port = None
    current.metadata.labels = {"touched": "yes"}
    replaced = kube.core.replace_namespaced_service("a", namespace, current).to_dict()
    assert [port["node_port"] for port in replaced["spec"]["ports"]] == ports

    forbidden = kube.request("POST", f"/api/v1/namespaces/{namespace}/services", {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "c"},
        "spec": {"ports": [{"port": 80, "nodePort": 30999}]},
    })  # fmt: skip
    assert (
        forbidden.status == 422 and "may not be used when `type` is 'ClusterIP'" in forbidden.body["message"]
    )


def test_endpoint_slices_are_served_and_stored_where_kube_apiserver_keeps_them(
    kube: Kube, namespace: str
) -> None:
    body = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": "web-abc12", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.244.0.7"], "conditions": {"ready": True}}],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
    }
    created = kube.request("POST", f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices", body)
    assert created.status == 201, created.body
    listed = kube.request(
        "GET",
        "/apis/discovery.k8s.io/v1/endpointslices",
        query={"labelSelector": "kubernetes.io/service-name=web"},
    )
    assert [
        item["metadata"]["name"]
        for item in listed.body["items"]
        if item["metadata"]["namespace"] == namespace
    ] == ["web-abc12"]
    resources = kube.request("GET", "/apis/discovery.k8s.io/v1").body["resources"]
    assert {"name": "endpointslices", "namespaced": True, "kind": "EndpointSlice"}.items() <= resources[
        0
    ].items()


def test_a_claims_spec_is_frozen_but_for_its_storage_request_and_first_binding(
    kube: Kube, namespace: str
) -> None:
    path = f"/api/v1/namespaces/{namespace}/persistentvolumeclaims"
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "frozen"},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": "none",
            "resources": {"requests": {"storage": "1Gi"}},
        },
    }
    assert kube.request("POST", path, claim).status == 201
    patch = "application/merge-patch+json"
    bound = kube.request("PATCH", f"{path}/frozen", {"spec": {"volumeName": "pv-1"}}, content_type=patch)
    assert bound.status == 200
    rebound = kube.request("PATCH", f"{path}/frozen", {"spec": {"volumeName": "pv-2"}}, content_type=patch)
    assert rebound.status == 422
    assert "spec is immutable after creation" in rebound.body["message"]
    modes = kube.request(
        "PATCH", f"{path}/frozen", {"spec": {"accessModes": ["ReadWriteMany"]}}, content_type=patch
    )
    assert modes.status == 422
    grown = kube.request(
        "PATCH",
        f"{path}/frozen",
        {"spec": {"resources": {"requests": {"storage": "2Gi"}}}},
        content_type=patch,
    )
    assert grown.status == 200 and grown.body["spec"]["resources"]["requests"]["storage"] == "2Gi"
