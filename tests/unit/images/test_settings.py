"""How the cluster's internal registry is reached: plain HTTP on loopback, else TLS with the service account."""

from __future__ import annotations

from pathlib import Path

import pytest

from strongroom.images.settings import registry_endpoint


@pytest.mark.parametrize("host", ["127.0.0.1:5000", "localhost:5000", "[::1]:5000", "127.9.9.9"])
def test_a_loopback_registry_is_plain_http_without_credentials(host: str, tmp_path: Path) -> None:
    (tmp_path / "token").write_text("sa-token\n")
    endpoint = registry_endpoint(host, tmp_path)
    assert endpoint.tls_verify is False and endpoint.credentials is None


def test_the_service_registry_is_verified_with_the_service_account_cas_and_token(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("sa-token\n")
    (tmp_path / "service-ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    endpoint = registry_endpoint("image-registry.openshift-image-registry.svc:5000", tmp_path)
    assert endpoint.tls_verify is True
    assert endpoint.cert_dir == tmp_path
    assert endpoint.credentials is not None and endpoint.credentials.password == "sa-token"
    assert "sa-token" not in repr(endpoint)


def test_outside_a_pod_the_registry_is_reached_with_the_systems_cas_and_no_token(tmp_path: Path) -> None:
    endpoint = registry_endpoint("registry.example.com", tmp_path / "absent")
    assert endpoint.tls_verify is True and endpoint.cert_dir is None and endpoint.credentials is None
