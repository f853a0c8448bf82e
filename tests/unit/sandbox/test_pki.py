"""The sandbox PKI: files, reuse across restarts, renewal, real TLS handshakes and kubeconfigs."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import http.server
import ipaddress
import json
import shutil
import socket
import ssl
import stat
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store

from strongroom.errors import SandboxError
from strongroom.sandbox.pki import (
    Pki,
    client_groups,
    client_identity,
    ensure_pki,
    server_ssl_context,
    write_kubeconfig,
)


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return ensure_pki(tmp_path / "state")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _all_files(pki: Pki) -> dict[str, bytes]:
    names = ("ca_cert", "ca_key", "server_cert", "server_key", "client_cert", "client_key", "token_file")
    return {name: getattr(pki, name).read_bytes() for name in names}


def _verify_server(pki: Pki, host: x509.DNSName | x509.IPAddress) -> None:
    """Full RFC 5280 path validation, stricter than OpenSSL's and close to Go's."""
    store = Store([_cert(pki.ca_cert)])
    PolicyBuilder().store(store).build_server_verifier(host).verify(_cert(pki.server_cert), [])


def _reissue_expiring(pki: Pki, cert_path: Path, key_path: Path, *, days_left: int) -> bytes:
    """Overwrite a leaf with one from the same CA that expires in ``days_left`` days."""
    ca_cert = _cert(pki.ca_cert)
    ca_key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    old = _cert(cert_path)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(old.subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=300))
        .not_valid_after(now + dt.timedelta(days=days_left))
    )
    for ext in old.extensions:
        if not isinstance(ext.value, x509.SubjectKeyIdentifier):
            builder = builder.add_extension(ext.value, critical=ext.critical)
    cert = builder.sign(ca_key, hashes.SHA256())
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    cert_path.write_bytes(pem)
    return pem


# --- files and reuse -------------------------------------------------------------------


def test_ensure_pki_creates_private_directory_keys_and_token(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path / "state")

    assert pki.directory == tmp_path / "state" / "pki"
    assert _mode(pki.directory) == 0o700
    for secret in (pki.ca_key, pki.server_key, pki.client_key, pki.token_file):
        assert _mode(secret) == 0o600, secret
    for cert in (pki.ca_cert, pki.server_cert, pki.client_cert):
        assert cert.is_file()
    token = pki.token()
    assert len(base64.urlsafe_b64decode(token + "=")) == 32
    # No temporary files are left behind by the atomic writes.
    assert not [p for p in pki.directory.iterdir() if p.name.endswith(".tmp")]


def test_ensure_pki_tightens_modes_of_an_existing_directory(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path)
    pki.directory.chmod(0o755)
    pki.ca_key.chmod(0o644)

    ensure_pki(tmp_path)

    assert _mode(pki.directory) == 0o700
    assert _mode(pki.ca_key) == 0o600


def test_ensure_pki_again_reuses_identical_bytes(tmp_path: Path) -> None:
    first = ensure_pki(tmp_path)
    before = _all_files(first)

    second = ensure_pki(tmp_path)

    assert second == first
    assert _all_files(second) == before


def test_certificates_have_the_expected_shape(pki: Pki) -> None:
    ca = _cert(pki.ca_cert)
    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca
    assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    assert ca.not_valid_after_utc - ca.not_valid_before_utc >= dt.timedelta(days=3650)

    server = _cert(pki.server_cert)
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in san.get_values_for_type(x509.DNSName)
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    eku = server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]

    client = _cert(pki.client_cert)
    assert client.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "strongroom-admin"
    assert client.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "system:masters"
    eku = client.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    for leaf in (server, client):
        assert dt.timedelta(days=364) < leaf.not_valid_after_utc - leaf.not_valid_before_utc
        assert leaf.not_valid_after_utc - leaf.not_valid_before_utc < dt.timedelta(days=367)


def test_server_certificate_passes_strict_path_validation_for_loopback_names(pki: Pki) -> None:
    _verify_server(pki, x509.DNSName("localhost"))
    _verify_server(pki, x509.IPAddress(ipaddress.ip_address("127.0.0.1")))


def test_expiring_server_certificate_is_reissued_by_the_same_ca(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path)
    before = _all_files(pki)
    expiring = _reissue_expiring(pki, pki.server_cert, pki.server_key, days_left=10)

    ensure_pki(tmp_path)

    after = _all_files(pki)
    assert after["server_cert"] != expiring
    assert _cert(pki.server_cert).not_valid_after_utc > dt.datetime.now(dt.UTC) + dt.timedelta(days=300)
    for unchanged in ("ca_cert", "ca_key", "client_cert", "client_key", "token_file"):
        assert after[unchanged] == before[unchanged], unchanged
    _cert(pki.server_cert).verify_directly_issued_by(_cert(pki.ca_cert))
    _verify_server(pki, x509.DNSName("localhost"))


def test_server_certificate_with_more_than_30_days_left_is_kept(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path)
    still_good = _reissue_expiring(pki, pki.server_cert, pki.server_key, days_left=45)

    ensure_pki(tmp_path)

    assert pki.server_cert.read_bytes() == still_good


def test_expiring_client_certificate_is_reissued_with_the_same_identity(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path)
    ca_before = pki.ca_cert.read_bytes()
    expiring = _reissue_expiring(pki, pki.client_cert, pki.client_key, days_left=1)

    ensure_pki(tmp_path)

    client = _cert(pki.client_cert)
    assert pki.client_cert.read_bytes() != expiring
    assert pki.ca_cert.read_bytes() == ca_before
    client.verify_directly_issued_by(_cert(pki.ca_cert))
    assert client.subject.rfc4514_string() == "CN=strongroom-admin,O=system:masters"


def test_missing_files_are_regenerated_alone(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path)
    before = _all_files(pki)
    pki.client_key.unlink()
    pki.token_file.unlink()

    ensure_pki(tmp_path)

    after = _all_files(pki)
    assert after["client_key"] != before["client_key"]
    assert after["client_cert"] != before["client_cert"]
    assert after["token_file"] != before["token_file"]
    for unchanged in ("ca_cert", "ca_key", "server_cert", "server_key"):
        assert after[unchanged] == before[unchanged], unchanged
    _cert(pki.client_cert).verify_directly_issued_by(_cert(pki.ca_cert))


def test_corrupt_server_certificate_is_regenerated(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path)
    ca_before = pki.ca_cert.read_bytes()
    pki.server_cert.write_text("not a certificate")

    ensure_pki(tmp_path)

    assert pki.ca_cert.read_bytes() == ca_before
    _verify_server(pki, x509.DNSName("localhost"))


def test_lost_ca_key_replaces_the_ca_and_every_leaf(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path)
    before = _all_files(pki)
    pki.ca_key.unlink()

    ensure_pki(tmp_path)

    after = _all_files(pki)
    for changed in ("ca_cert", "ca_key", "server_cert", "client_cert"):
        assert after[changed] != before[changed], changed
    assert after["token_file"] == before["token_file"]
    _cert(pki.server_cert).verify_directly_issued_by(_cert(pki.ca_cert))
    _cert(pki.client_cert).verify_directly_issued_by(_cert(pki.ca_cert))


def test_extra_hosts_are_added_and_a_narrower_request_keeps_the_certificate(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path)
    ca_before = pki.ca_cert.read_bytes()

    ensure_pki(tmp_path, hosts=("Sandbox.Example", "10.1.2.3", "[::1]"))
    widened = pki.server_cert.read_bytes()
    ensure_pki(tmp_path)

    san = _cert(pki.server_cert).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(san.get_values_for_type(x509.DNSName)) == {"localhost", "sandbox.example"}
    assert {str(ip) for ip in san.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "10.1.2.3", "::1"}
    assert pki.server_cert.read_bytes() == widened
    assert pki.ca_cert.read_bytes() == ca_before


def test_concurrent_first_starts_agree_on_one_ca(tmp_path: Path) -> None:
    results: list[Pki] = []
    threads = [threading.Thread(target=lambda: results.append(ensure_pki(tmp_path))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert len(results) == 4
    pki = results[0]
    ca = _cert(pki.ca_cert)
    _cert(pki.server_cert).verify_directly_issued_by(ca)
    _cert(pki.client_cert).verify_directly_issued_by(ca)
    before = _all_files(pki)
    ensure_pki(tmp_path)
    assert _all_files(pki) == before


def test_unwritable_state_directory_raises_sandbox_error_with_hint(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")

    with pytest.raises(SandboxError) as caught:
        ensure_pki(blocker)

    assert caught.value.hint


# --- TLS -------------------------------------------------------------------------------


class _OneShotServer:
    """Accepts one TLS connection on 127.0.0.1, records the peer certificate or the failure."""

    def __init__(self, ctx: ssl.SSLContext) -> None:
        self._ctx = ctx
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(10)
        self.port: int = self._listener.getsockname()[1]
        self.peer_cert: dict[str, Any] | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self._listener.accept()
            with conn, self._ctx.wrap_socket(conn, server_side=True) as tls:
                self.peer_cert = tls.getpeercert()
                tls.sendall(b"hello")
        except (OSError, ssl.SSLError) as exc:
            self.error = exc
        finally:
            self._listener.close()

    def join(self) -> None:
        self._thread.join(timeout=10)
        assert not self._thread.is_alive()


def _client_context(pki: Pki, *, cert_from: Pki | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
    # Python 3.13 turns this on by default; the certificates must already pass it.
    ctx.verify_flags |= ssl.VERIFY_X509_STRICT
    if cert_from is not None:
        ctx.load_cert_chain(certfile=cert_from.client_cert, keyfile=cert_from.client_key)
    return ctx


def _talk(ctx: ssl.SSLContext, port: int, host: str) -> bytes:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        ctx.wrap_socket(raw, server_hostname=host) as tls,
    ):
        return tls.recv(5)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_tls_handshake_with_admin_certificate_identifies_the_admin(pki: Pki, host: str) -> None:
    server = _OneShotServer(server_ssl_context(pki))

    assert _talk(_client_context(pki, cert_from=pki), server.port, host) == b"hello"

    server.join()
    assert server.error is None
    assert client_identity(server.peer_cert) == "strongroom-admin"
    assert client_groups(server.peer_cert) == ("system:masters",)


def test_tls_handshake_without_client_certificate_succeeds_with_no_identity(pki: Pki) -> None:
    server = _OneShotServer(server_ssl_context(pki))

    assert _talk(_client_context(pki, cert_from=None), server.port, "localhost") == b"hello"

    server.join()
    assert server.error is None
    assert client_identity(server.peer_cert) is None
    assert client_groups(server.peer_cert) == ()


def test_client_certificate_from_another_ca_is_refused(pki: Pki, tmp_path: Path) -> None:
    stranger = ensure_pki(tmp_path / "other")
    server = _OneShotServer(server_ssl_context(pki))

    # With TLS 1.3 the client learns of the rejection only on its first read.
    with pytest.raises((ssl.SSLError, ConnectionError)):
        _talk(_client_context(pki, cert_from=stranger), server.port, "localhost")

    server.join()
    assert isinstance(server.error, ssl.SSLError)
    assert server.peer_cert is None


def test_client_identity_of_missing_or_unverified_certificate_is_none() -> None:
    assert client_identity(None) is None
    assert client_identity({}) is None
    assert client_identity({"subject": ((("organizationName", "system:masters"),),)}) is None


# --- kubeconfig ------------------------------------------------------------------------


def _load(path: Path) -> dict[str, Any]:
    loaded = yaml.safe_load(path.read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_kubeconfig_embeds_ca_client_certificate_key_and_token(pki: Pki, tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"

    write_kubeconfig(path, server="https://127.0.0.1:6443", pki=pki)

    assert _mode(path) == 0o600
    config = _load(path)
    assert config["apiVersion"] == "v1"
    assert config["kind"] == "Config"
    cluster = config["clusters"][0]
    assert cluster["name"] == "strongroom-sandbox"
    assert cluster["cluster"]["server"] == "https://127.0.0.1:6443"
    assert base64.b64decode(cluster["cluster"]["certificate-authority-data"]) == pki.ca_cert.read_bytes()
    user = config["users"][0]
    assert user["name"] == "strongroom-admin"
    assert base64.b64decode(user["user"]["client-certificate-data"]) == pki.client_cert.read_bytes()
    assert base64.b64decode(user["user"]["client-key-data"]) == pki.client_key.read_bytes()
    assert user["user"]["token"] == pki.token()
    context = config["contexts"][0]
    assert context["context"] == {
        "cluster": "strongroom-sandbox",
        "user": "strongroom-admin",
        "namespace": "default",
    }
    assert config["current-context"] == context["name"]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_kubeconfig_is_replaced_not_appended(pki: Pki, tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text("stale: true\n" * 1000)
    path.chmod(0o644)

    write_kubeconfig(path, server="https://localhost:1", pki=pki, cluster_name="c", user="u")

    config = _load(path)
    assert "stale" not in config
    assert config["current-context"] == "c"
    assert config["users"][0]["name"] == "u"
    assert _mode(path) == 0o600


def test_insecure_kubeconfig_has_token_only(pki: Pki, tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"

    write_kubeconfig(path, server="http://127.0.0.1:8080", pki=pki, insecure=True)

    config = _load(path)
    assert config["clusters"][0]["cluster"] == {"server": "http://127.0.0.1:8080"}
    assert config["users"][0]["user"] == {"token": pki.token()}


@pytest.mark.parametrize(
    ("server", "insecure"), [("http://127.0.0.1:1", False), ("https://127.0.0.1:1", True)]
)
def test_kubeconfig_rejects_a_scheme_that_contradicts_insecure(
    pki: Pki, tmp_path: Path, server: str, insecure: bool
) -> None:
    with pytest.raises(ValueError, match="insecure"):
        write_kubeconfig(tmp_path / "kubeconfig", server=server, pki=pki, insecure=insecure)
    assert not (tmp_path / "kubeconfig").exists()


def _python_client_configuration(path: Path) -> Any:
    from kubernetes import client, config  # type: ignore[import-untyped]

    configuration = client.Configuration()
    config.load_kube_config(config_file=str(path), client_configuration=configuration)
    return configuration


def test_official_python_client_loads_the_embedded_kubeconfig(pki: Pki, tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    write_kubeconfig(path, server="https://127.0.0.1:6443", pki=pki)

    configuration = _python_client_configuration(path)

    assert configuration.host == "https://127.0.0.1:6443"
    assert configuration.api_key["BearerToken"] == f"Bearer {pki.token()}"
    assert Path(configuration.ssl_ca_cert).read_bytes() == pki.ca_cert.read_bytes()
    assert Path(configuration.cert_file).read_bytes() == pki.client_cert.read_bytes()
    assert Path(configuration.key_file).read_bytes() == pki.client_key.read_bytes()


def test_official_python_client_loads_the_file_referencing_kubeconfig(pki: Pki, tmp_path: Path) -> None:
    path = tmp_path / "elsewhere" / "kubeconfig"
    write_kubeconfig(path, server="https://localhost:6443", pki=pki, embed=False)

    configuration = _python_client_configuration(path)

    assert configuration.api_key["BearerToken"] == f"Bearer {pki.token()}"
    assert Path(configuration.ssl_ca_cert) == pki.ca_cert.resolve()
    assert Path(configuration.cert_file) == pki.client_cert.resolve()
    assert Path(configuration.key_file) == pki.client_key.resolve()


def test_official_python_client_loads_the_insecure_kubeconfig(pki: Pki, tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    write_kubeconfig(path, server="http://127.0.0.1:8080", pki=pki, insecure=True)

    configuration = _python_client_configuration(path)

    assert configuration.host == "http://127.0.0.1:8080"
    assert configuration.api_key["BearerToken"] == f"Bearer {pki.token()}"


# --- end to end with real clients ------------------------------------------------------


_VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2025-01-01T00:00:00Z",
    "goVersion": "go1.23.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}


@contextlib.contextmanager
def _version_server(pki: Pki) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    """An HTTPS /version endpoint that records who called it and with which token."""
    seen: list[dict[str, Any]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            assert isinstance(self.request, ssl.SSLSocket)
            seen.append(
                {
                    "path": self.path,
                    "user": client_identity(self.request.getpeercert()),
                    "authorization": self.headers.get("Authorization"),
                }
            )
            body = json.dumps(_VERSION).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    httpd.socket = server_ssl_context(pki).wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd.server_address[1], seen
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


def test_official_python_client_talks_to_the_server_with_certificate_and_token(
    pki: Pki, tmp_path: Path
) -> None:
    from kubernetes import client

    path = tmp_path / "kubeconfig"
    with _version_server(pki) as (port, seen):
        write_kubeconfig(path, server=f"https://localhost:{port}", pki=pki)
        with client.ApiClient(_python_client_configuration(path)) as api:
            version = client.VersionApi(api).get_code()

    assert version.git_version == "v1.32.0"
    assert seen == [
        {"path": "/version/", "user": "strongroom-admin", "authorization": f"Bearer {pki.token()}"}
    ]


@pytest.mark.integration
@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
@pytest.mark.parametrize("embed", [True, False])
def test_kubectl_trusts_the_server_and_presents_the_admin_certificate(
    pki: Pki, tmp_path: Path, embed: bool
) -> None:
    path = tmp_path / "kubeconfig"
    with _version_server(pki) as (port, seen):
        write_kubeconfig(path, server=f"https://127.0.0.1:{port}", pki=pki, embed=embed)
        result = subprocess.run(
            ["kubectl", "--kubeconfig", str(path), "get", "--raw", "/version"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["gitVersion"] == "v1.32.0"
    # kubectl also probes /version?timeout=5s for its skew warning: every request counts.
    assert seen[-1]["path"] == "/version"
    assert {(r["user"], r["authorization"]) for r in seen} == {("strongroom-admin", f"Bearer {pki.token()}")}
