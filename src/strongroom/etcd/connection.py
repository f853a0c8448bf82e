"""Reaching etcd members: endpoints, TLS material, and errors an administrator can act on.

Every etcd command needs the same three things etcdctl needs (endpoints, a CA,
a client certificate and key) and must turn gRPC's failures into the one
sentence that says what is wrong: the member is down, the CA does not match,
the certificate was refused. Endpoints come from the command line, else from
etcdctl's own environment variables (``ETCDCTL_ENDPOINTS`` ...), which is how
an etcd pod on OpenShift is set up; ``strongroom.etcd.discovery`` derives them
from the cluster.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import grpc
from etcd3aio.errors import EtcdError

from strongroom.errors import StrongroomError, UnavailableError, UsageError

__all__ = [
    "RPC_ERRORS",
    "EtcdTarget",
    "TlsFiles",
    "etcd_error",
    "host_port",
    "open_client",
    "parse_endpoints",
    "target_from_env",
]

DEFAULT_DIAL_TIMEOUT = 5.0
# What a call to etcd can raise besides our own errors; each becomes ours through etcd_error.
RPC_ERRORS = (grpc.aio.AioRpcError, EtcdError, TimeoutError, OSError)
# etcd's default request size limit is 1.5 MiB, but a snapshot stream and a
# range over a big keyspace need more than gRPC's 4 MiB default.
_MAX_MESSAGE = 256 * 1024 * 1024


@dataclass(frozen=True)
class TlsFiles:
    """Paths of the CA bundle and client certificate, as etcdctl's --cacert/--cert/--key."""

    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None

    @property
    def enabled(self) -> bool:
        return self.ca is not None or self.cert is not None

    def read(self) -> dict[str, bytes]:
        """The PEM bytes etcd3aio wants; a file that cannot be read is a usage error naming it."""
        if (self.cert is None) != (self.key is None):
            raise UsageError("--cert and --key go together: give both or neither")
        out: dict[str, bytes] = {}
        for name, path in (("ca_cert", self.ca), ("cert_chain", self.cert), ("cert_key", self.key)):
            if path is None:
                continue
            try:
                out[name] = path.read_bytes()
            except OSError as exc:
                raise UsageError(f"cannot read {path}: {exc.strerror}") from exc
        if out and "ca_cert" not in out:
            raise UsageError(
                "a client certificate needs the CA that signed the server's certificate: add --cacert"
            )
        return out


@dataclass(frozen=True)
class EtcdTarget:
    """The members to talk to and how."""

    endpoints: tuple[str, ...]
    tls: TlsFiles = field(default_factory=TlsFiles)
    dial_timeout: float = DEFAULT_DIAL_TIMEOUT
    source: str = "command line"

    def __post_init__(self) -> None:
        if not self.endpoints:
            raise UsageError("no etcd endpoint given", hint="pass --endpoints https://HOST:2379[,...]")

    def with_endpoints(self, endpoints: Sequence[str]) -> EtcdTarget:
        return EtcdTarget(tuple(endpoints), self.tls, self.dial_timeout, self.source)


def parse_endpoints(text: str, *, secure: bool) -> tuple[str, ...]:
    """``a:2379,https://b:2379`` as URLs; a bare host:port gets https when TLS is configured, as etcdctl does."""
    out: list[str] = []
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        if "://" not in item:
            item = ("https://" if secure else "http://") + item
        parts = urlsplit(item)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError(f"malformed etcd endpoint {raw.strip()!r}", hint="use http(s)://HOST:PORT")
        try:
            port = parts.port
        except ValueError as exc:
            raise UsageError(f"malformed etcd endpoint {raw.strip()!r}: bad port") from exc
        out.append(f"{parts.scheme}://{_bracket(parts.hostname)}:{port or 2379}")
    if not out:
        raise UsageError("no etcd endpoint given", hint="pass --endpoints https://HOST:2379[,...]")
    return tuple(dict.fromkeys(out))


def target_from_env(env: Mapping[str, str]) -> EtcdTarget | None:
    """The target etcdctl itself would use from ``ETCDCTL_*`` variables, or None when unset."""
    endpoints = env.get("ETCDCTL_ENDPOINTS")
    if not endpoints:
        return None
    tls = TlsFiles(
        ca=_path(env.get("ETCDCTL_CACERT")),
        cert=_path(env.get("ETCDCTL_CERT")),
        key=_path(env.get("ETCDCTL_KEY")),
    )
    return EtcdTarget(parse_endpoints(endpoints, secure=tls.enabled), tls, source="ETCDCTL_* environment")


def host_port(endpoint: str) -> tuple[str, int]:
    parts = urlsplit(endpoint)
    return parts.hostname or "127.0.0.1", parts.port or 2379


@asynccontextmanager
async def open_client(target: EtcdTarget, endpoint: str) -> AsyncIterator[Any]:
    """An etcd3aio client bound to one member (never round-robin: answers must name their member)."""
    from etcd3aio import Etcd3Client

    host, port = host_port(endpoint)
    secure = endpoint.startswith("https://")
    pem = target.tls.read() if secure else {}
    if secure and "ca_cert" not in pem:
        raise UsageError(f"{endpoint} uses https but no CA was given", hint="pass --cacert FILE")
    address, server_name = await _resolve(host)
    client = Etcd3Client(
        [f"{address}:{port}" if ":" not in address else f"[{address}]:{port}"],
        rpc_max_attempts=1,
        tls_server_name=server_name if secure else None,
        ca_cert=pem.get("ca_cert"),
        cert_key=pem.get("cert_key"),
        cert_chain=pem.get("cert_chain"),
    )
    client._manager.grpc_options.extend(  # the library exposes no option for message sizes
        [("grpc.max_receive_message_length", _MAX_MESSAGE), ("grpc.max_send_message_length", _MAX_MESSAGE)]
    )
    await client.connect()
    try:
        yield client
    finally:
        await client.close()


def etcd_error(exc: BaseException, endpoint: str, what: str) -> StrongroomError:
    """The administrator's reading of an etcd3aio or gRPC failure."""
    text = _details(exc)
    lowered = text.lower()
    if isinstance(exc, TimeoutError | asyncio.TimeoutError) or "deadline" in lowered:
        return UnavailableError(
            f"etcd at {endpoint} did not answer {what} in time",
            hint="check that the member is running and reachable from here",
        )
    if any(word in lowered for word in ("certificate", "ssl", "handshake", "tls")):
        return UnavailableError(
            f"TLS with etcd at {endpoint} failed during {what}: {text}",
            hint="--cacert must be the CA that signed the member's serving certificate, "
            "and --cert/--key a client certificate that CA (or the member's trusted CA) issued",
        )
    if "unauthenticated" in lowered or "permission denied" in lowered:
        return UnavailableError(
            f"etcd at {endpoint} refused {what}: {text}", hint="check the client certificate's user"
        )
    if "unavailable" in lowered or "connect" in lowered or "socket closed" in lowered:
        return UnavailableError(
            f"etcd at {endpoint} is unreachable ({what}): {text}",
            hint="check the endpoint's address and port, and that the member is running",
        )
    return StrongroomError(f"etcd at {endpoint} failed {what}: {text}")


def _details(exc: BaseException) -> str:
    seen: set[int] = set()
    current: BaseException | None = exc
    texts: list[str] = []
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, grpc.aio.AioRpcError):
            texts += [str(current.details() or ""), str(current.code())]
        texts.append(str(current))
        current = current.__cause__ or current.__context__
    return "; ".join(dict.fromkeys(t for t in texts if t))[:500]


async def _resolve(host: str) -> tuple[str, str | None]:
    """An IP address for gRPC's ipv4 target, and the name TLS must verify when a name was given."""
    try:
        ipaddress.ip_address(host)
        return host, host
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise UnavailableError(f"cannot resolve etcd host {host!r}: {exc}") from exc
    return str(infos[0][4][0]), host


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None
