"""The sandbox's own certificate authority, serving certificate, admin identity and token.

The sandbox must look like a real kube-apiserver to real clients: ``kubectl``
(Go's crypto/x509) and the official Python ``kubernetes`` client refuse a
server they cannot verify, and the apiserver's admin is conventionally the
holder of a client certificate in ``system:masters``. So the sandbox mints a
small private PKI under its state directory and writes a kubeconfig for it.

Everything is kept on disk and reused across restarts, because kubeconfigs
handed out earlier embed the CA and the admin credentials; only what is
missing, unreadable, expired or about to expire is issued again, and a leaf is
always re-issued by the existing CA so those kubeconfigs keep working.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import fcntl
import ipaddress
import logging
import os
import re
import secrets
import ssl
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from strongroom.errors import SandboxError

__all__ = [
    "ADMIN_GROUP",
    "ADMIN_USER",
    "Pki",
    "client_groups",
    "client_identity",
    "ensure_pki",
    "server_ssl_context",
    "write_kubeconfig",
]

_log = logging.getLogger(__name__)

ADMIN_USER = "strongroom-admin"
# kube-apiserver maps the Organization of a client certificate to groups, and
# system:masters bypasses authorization: the same meaning as kubeadm's admin.conf.
ADMIN_GROUP = "system:masters"

_DEFAULT_HOSTS = ("127.0.0.1", "localhost")
_CA_LIFETIME = dt.timedelta(days=3650)
_LEAF_LIFETIME = dt.timedelta(days=365)
# Renewing well before expiry means a long-running sandbox or a kubeconfig
# copied today does not start failing a few days later.
_RENEW_BEFORE = dt.timedelta(days=30)
# Backdating tolerates clocks that disagree a little (containers, VMs, CI runners).
_BACKDATE = dt.timedelta(hours=1)
# A bearer token is sent in an HTTP header: printable ASCII, no spaces.
_TOKEN_RE = re.compile(r"[!-~]+")

_DIR_MODE = 0o700
_SECRET_MODE = 0o600
_PUBLIC_MODE = 0o644

_SigningKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True)
class Pki:
    """Where the sandbox's PKI files live; all of them exist once ensure_pki returned."""

    directory: Path
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    token_file: Path

    @classmethod
    def at(cls, directory: Path) -> Pki:
        """The file layout under ``directory``, without touching the disk."""
        return cls(
            directory=directory,
            ca_cert=directory / "ca.crt",
            ca_key=directory / "ca.key",
            server_cert=directory / "server.crt",
            server_key=directory / "server.key",
            client_cert=directory / "admin.crt",
            client_key=directory / "admin.key",
            token_file=directory / "token",
        )

    def token(self) -> str:
        """The admin bearer token (read on each call, so a regenerated token is seen)."""
        return self.token_file.read_text(encoding="ascii").strip()


def ensure_pki(state_dir: Path, *, hosts: Sequence[str] = _DEFAULT_HOSTS) -> Pki:
    """Create or reuse the PKI under ``state_dir/pki`` and return its layout.

    The server certificate always names 127.0.0.1 and localhost, plus ``hosts``.
    Raises SandboxError if the directory cannot be prepared.
    """
    pki = Pki.at(Path(state_dir) / "pki")
    try:
        pki.directory.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
        # mkdir honours the umask and leaves an existing directory alone.
        pki.directory.chmod(_DIR_MODE)
        with _locked(pki.directory / ".lock"):
            _ensure_locked(pki, _names_for(hosts))
    except OSError as exc:
        raise SandboxError(
            f"cannot prepare the sandbox PKI in {pki.directory}: {exc}",
            hint="check that the state directory is writable by the current user",
        ) from exc
    return pki


def server_ssl_context(pki: Pki) -> ssl.SSLContext:
    """A TLS server context presenting the server certificate.

    Client certificates are requested and verified against the sandbox CA but
    not required, as in kube-apiserver: clients without one authenticate with
    the bearer token instead. A client offering a certificate from another CA
    fails the handshake.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(certfile=pki.server_cert, keyfile=pki.server_key)
    ctx.load_verify_locations(cafile=pki.ca_cert)
    ctx.verify_mode = ssl.CERT_OPTIONAL
    # aiohttp speaks HTTP/1.1 only; advertising it makes Go clients, which
    # offer h2 first, settle on HTTP/1.1 during the handshake.
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def signing_ca(pki: Pki) -> tuple[x509.Certificate, _SigningKey] | None:
    """The CA certificate and key that sign certificates for approved CertificateSigningRequests.

    kube-controller-manager's signers use the cluster CA (``--cluster-signing-cert-file``);
    the sandbox has one CA for everything.
    """
    return _load_pair(pki.ca_cert, pki.ca_key)


def client_identity(peer_cert: Mapping[str, Any] | None) -> str | None:
    """The user name (subject CN) of a client certificate, from ``SSLSocket.getpeercert()``.

    With CERT_OPTIONAL the handshake fails on a certificate that does not
    verify, so a non-empty dict is always a verified one; None and the empty
    dict (no certificate, or not validated) both mean "no identity".
    """
    names = _subject_values(peer_cert, "commonName")
    # Go's pkix.Name keeps the last CN when there are several; match the apiserver.
    return names[-1] if names else None


def client_groups(peer_cert: Mapping[str, Any] | None) -> tuple[str, ...]:
    """The groups (subject O values) of a client certificate, as kube-apiserver reads them."""
    return tuple(_subject_values(peer_cert, "organizationName"))


def write_kubeconfig(
    path: Path,
    *,
    server: str,
    pki: Pki,
    cluster_name: str = "strongroom-sandbox",
    user: str = ADMIN_USER,
    embed: bool = True,
    insecure: bool = False,
) -> None:
    """Write a kubeconfig for the sandbox, readable by kubectl and the Python client.

    ``embed`` inlines the CA, client certificate, key and token; otherwise the
    kubeconfig refers to the files in ``pki`` by absolute path. ``insecure`` is
    for a plain-HTTP sandbox: the server URL must be http:// and only the
    token is written. The file is private (0600) and replaced atomically, so a
    client never reads half a kubeconfig.
    """
    scheme = urlsplit(server).scheme
    if scheme != ("http" if insecure else "https"):
        # A TLS kubeconfig for an http:// URL (or the reverse) cannot work and
        # the clients' errors about it are obscure; fail here instead.
        raise ValueError(f"server {server!r} does not match insecure={insecure}")

    cluster: dict[str, str] = {"server": server}
    credentials: dict[str, str] = {}
    if embed:
        credentials["token"] = pki.token()
    else:
        credentials["tokenFile"] = str(pki.token_file.resolve())
    if not insecure:
        if embed:
            cluster["certificate-authority-data"] = _b64(pki.ca_cert)
            credentials["client-certificate-data"] = _b64(pki.client_cert)
            credentials["client-key-data"] = _b64(pki.client_key)
        else:
            cluster["certificate-authority"] = str(pki.ca_cert.resolve())
            credentials["client-certificate"] = str(pki.client_cert.resolve())
            credentials["client-key"] = str(pki.client_key.resolve())

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [{"name": cluster_name, "cluster": cluster}],
        "users": [{"name": user, "user": credentials}],
        "contexts": [
            {
                "name": cluster_name,
                "context": {"cluster": cluster_name, "user": user, "namespace": "default"},
            }
        ],
        "current-context": cluster_name,
    }
    text = yaml.safe_dump(config, sort_keys=False, default_flow_style=False)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(path, text.encode("utf-8"), _SECRET_MODE)


# --- issuing and checking --------------------------------------------------------------


@dataclass(frozen=True)
class _Names:
    dns: frozenset[str]
    ips: frozenset[ipaddress.IPv4Address | ipaddress.IPv6Address]


def _names_for(hosts: Sequence[str]) -> _Names:
    dns: set[str] = set()
    ips: set[ipaddress.IPv4Address | ipaddress.IPv6Address] = set()
    for host in (*_DEFAULT_HOSTS, *hosts):
        # Tolerate "[::1]" as written in URLs.
        bare = host.strip().strip("[]")
        if not bare:
            raise ValueError(f"empty host name in {list(hosts)!r}")
        try:
            ips.add(ipaddress.ip_address(bare))
        except ValueError:
            # DNS names compare case-insensitively; Go lowercases too.
            dns.add(bare.lower())
    return _Names(frozenset(dns), frozenset(ips))


def _ensure_locked(pki: Pki, names: _Names) -> None:
    now = dt.datetime.now(dt.UTC)

    ca = _load_ca(pki, now)
    ca_renewed = ca is None
    if ca is None:
        ca = _issue_ca(pki, now)

    ca_cert, ca_key = ca
    server = _load_leaf(pki.server_cert, pki.server_key, ca_cert, now)
    if ca_renewed or server is None or not _covers(server, names):
        _issue_server(pki, ca_cert, ca_key, names, now)

    client = _load_leaf(pki.client_cert, pki.client_key, ca_cert, now)
    if ca_renewed or client is None or client.subject != _client_subject():
        _issue_client(pki, ca_cert, ca_key, now)

    if not _token_usable(pki.token_file):
        _log.info("generating the sandbox admin token in %s", pki.token_file)
        _write_atomic(pki.token_file, secrets.token_urlsafe(32).encode("ascii"), _SECRET_MODE)

    # Reused files keep their bytes, but a copy or an old umask may have left
    # them readable by others.
    for secret in (pki.ca_key, pki.server_key, pki.client_key, pki.token_file):
        secret.chmod(_SECRET_MODE)


def _load_ca(pki: Pki, now: dt.datetime) -> tuple[x509.Certificate, _SigningKey] | None:
    pair = _load_pair(pki.ca_cert, pki.ca_key)
    if pair is None:
        return None
    cert, key = pair
    if not _fresh(cert, now):
        _log.warning("sandbox CA %s expires soon or is not yet valid; issuing a new CA", pki.ca_cert)
        return None
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return None
    return (cert, key) if constraints.ca else None


def _load_leaf(
    cert_path: Path, key_path: Path, ca_cert: x509.Certificate, now: dt.datetime
) -> x509.Certificate | None:
    pair = _load_pair(cert_path, key_path)
    if pair is None:
        return None
    cert, _ = pair
    if not _fresh(cert, now):
        return None
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        # Issued by a CA that has since been replaced (or is not ours).
        return None
    return cert


def _load_pair(cert_path: Path, key_path: Path) -> tuple[x509.Certificate, _SigningKey] | None:
    """The certificate and its private key, or None if either is missing, unreadable or mismatched."""
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except FileNotFoundError:
        return None
    except ValueError:
        # A half-written or foreign file is as good as missing: it cannot be used.
        _log.warning("unreadable certificate or key %s / %s; issuing a new one", cert_path, key_path)
        return None
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        return None
    # A crash between writing a key and its certificate leaves them unrelated.
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if cert.public_key().public_bytes(*spki) != key.public_key().public_bytes(*spki):
        return None
    return cert, key


def _fresh(cert: x509.Certificate, now: dt.datetime) -> bool:
    return cert.not_valid_before_utc <= now and cert.not_valid_after_utc - now >= _RENEW_BEFORE


def _covers(cert: x509.Certificate, names: _Names) -> bool:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    dns = {name.lower() for name in san.get_values_for_type(x509.DNSName)}
    ips = set(san.get_values_for_type(x509.IPAddress))
    return names.dns <= dns and names.ips <= ips


def _token_usable(path: Path) -> bool:
    try:
        token = path.read_text(encoding="ascii").strip()
    except (FileNotFoundError, UnicodeDecodeError):
        return False
    return _TOKEN_RE.fullmatch(token) is not None


def _client_subject() -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ADMIN_GROUP),
            x509.NameAttribute(NameOID.COMMON_NAME, ADMIN_USER),
        ]
    )


def _new_key() -> ec.EllipticCurvePrivateKey:
    # P-256: accepted by Go's crypto/tls and OpenSSL alike, and fast to generate.
    return ec.generate_private_key(ec.SECP256R1())


def _issue_ca(pki: Pki, now: dt.datetime) -> tuple[x509.Certificate, _SigningKey]:
    _log.info("generating the sandbox CA in %s", pki.directory)
    key = _new_key()
    # A per-CA name, as kube-apiserver's self-signed "localhost-ca@<time>",
    # keeps two sandboxes' CAs apart in a merged trust bundle and in errors.
    name = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, f"strongroom-sandbox-ca@{int(now.timestamp())}")]
    )
    cert = (
        _builder(name, name, key.public_key(), now, now + _CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(digital_signature=True, key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _store(pki.ca_cert, pki.ca_key, cert, key)
    return cert, key


def _issue_server(
    pki: Pki, ca_cert: x509.Certificate, ca_key: _SigningKey, names: _Names, now: dt.datetime
) -> None:
    _log.info("issuing the sandbox server certificate in %s", pki.directory)
    key = _new_key()
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in sorted(names.dns)]
    sans += [x509.IPAddress(ip) for ip in sorted(names.ips, key=lambda ip: (ip.version, int(ip)))]
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "strongroom-sandbox-apiserver")])
    cert = (
        _leaf_builder(subject, ca_cert, key, now)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    _store(pki.server_cert, pki.server_key, cert, key)


def _issue_client(pki: Pki, ca_cert: x509.Certificate, ca_key: _SigningKey, now: dt.datetime) -> None:
    _log.info("issuing the sandbox admin client certificate in %s", pki.directory)
    key = _new_key()
    cert = (
        _leaf_builder(_client_subject(), ca_cert, key, now)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    _store(pki.client_cert, pki.client_key, cert, key)


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    now: dt.datetime,
    not_after: dt.datetime,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(not_after)
    )


def _leaf_builder(
    subject: x509.Name, ca_cert: x509.Certificate, key: ec.EllipticCurvePrivateKey, now: dt.datetime
) -> x509.CertificateBuilder:
    # A leaf outliving its CA would only look valid; the CA is renewed first anyway.
    not_after = min(now + _LEAF_LIFETIME, ca_cert.not_valid_after_utc)
    try:
        ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski)
    except x509.ExtensionNotFound:
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(_issuer_public_key(ca_cert))
    return (
        _builder(subject, ca_cert.subject, key.public_key(), now, not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(digital_signature=True), critical=True)
        # OpenSSL's strict mode (Python 3.13's default) requires both identifiers.
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(aki, critical=False)
    )


def _issuer_public_key(ca_cert: x509.Certificate) -> ec.EllipticCurvePublicKey | rsa.RSAPublicKey:
    public_key = ca_cert.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        raise TypeError(f"unsupported CA key type {type(public_key).__name__}")
    return public_key


def _key_usage(
    *, digital_signature: bool = False, key_cert_sign: bool = False, crl_sign: bool = False
) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )


# --- files -----------------------------------------------------------------------------


def _store(cert_path: Path, key_path: Path, cert: x509.Certificate, key: _SigningKey) -> None:
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # Key first: a crash in between leaves a mismatched pair, which the next
    # start detects and re-issues, never a new certificate with a lost key.
    _write_atomic(key_path, key_pem, _SECRET_MODE)
    _write_atomic(cert_path, cert.public_bytes(serialization.Encoding.PEM), _PUBLIC_MODE)


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    # mkstemp creates the file 0600, so a secret is never readable by others,
    # not even between creation and rename.
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable; best effort where directories cannot be opened.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    # Two sandboxes started at once on one state directory must not each mint
    # a CA and leave a certificate signed by the one that lost the race.
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, _SECRET_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode("ascii")


def _subject_values(peer_cert: Mapping[str, Any] | None, attribute: str) -> list[str]:
    if not peer_cert:
        return []
    subject = peer_cert.get("subject")
    if not isinstance(subject, tuple | list):
        return []
    # getpeercert() gives the subject as a tuple of RDNs, each a tuple of (name, value).
    values: list[str] = []
    for rdn in subject:
        for pair in rdn:
            if (
                isinstance(pair, tuple | list)
                and len(pair) == 2
                and pair[0] == attribute
                and isinstance(pair[1], str)
            ):
                values.append(pair[1])
    return values
