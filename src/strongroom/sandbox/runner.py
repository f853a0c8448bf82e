"""Starting, stopping and inspecting a sandbox cluster that lives in one directory.

A sandbox is etcd plus the API server plus its controllers, with all state
under DIR: etcd's data, the PKI, the kubeconfig, volumes and a state file
that says which processes and ports belong to it. Starting again with the
same DIR keeps every object and the same credentials.

The API server can instead store objects in an etcd the caller runs (a
multi-member or TLS cluster, as kube-apiserver's ``--etcd-servers`` points at
one); the sandbox then neither starts nor stops etcd.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import ssl
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from etcd3aio import Etcd3Client

from strongroom.errors import SandboxError, UsageError
from strongroom.sandbox.apiserver import ApiServer
from strongroom.sandbox.controllers import Controllers
from strongroom.sandbox.engine import Engine
from strongroom.sandbox.etcdproc import EtcdMember, free_port, pid_alive, start_etcd, stop_pid
from strongroom.sandbox.kubelet import Kubelets
from strongroom.sandbox.pki import ensure_pki, server_ssl_context, write_kubeconfig
from strongroom.sandbox.resources import ResourceRegistry
from strongroom.sandbox.runtime import node_root
from strongroom.sandbox.scheduler import Scheduler
from strongroom.sandbox.store import Store
from strongroom.sandbox.tokens import TokenIssuer
from strongroom.sandbox.workloads import Workloads

log = logging.getLogger(__name__)

STATE_FILE = "sandbox.json"
LOG_FILE = "sandbox.log"
READY_TIMEOUT = 30.0
ETCD_CONNECT_TIMEOUT = 10.0


@dataclass(frozen=True)
class ExternalEtcd:
    """An etcd the caller runs: its client URLs and the TLS files to reach it (kube-apiserver's --etcd-*)."""

    endpoints: tuple[str, ...]
    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None

    @classmethod
    def parse(
        cls, endpoints: str, *, ca: Path | None = None, cert: Path | None = None, key: Path | None = None
    ) -> ExternalEtcd:
        """``host:port`` or ``http(s)://host:port``, comma-separated; a bare one is https when a CA is given."""
        urls: list[str] = []
        for raw in endpoints.split(","):
            item = raw.strip()
            if not item:
                continue
            if "://" not in item:
                item = ("https://" if ca else "http://") + item
            parts = urlsplit(item)
            try:
                port = parts.port
            except ValueError:
                port = None
            if parts.scheme not in ("http", "https") or not parts.hostname or port is None:
                raise UsageError(
                    f"malformed etcd endpoint {raw.strip()!r}", hint="use http(s)://HOST:PORT[,...]"
                )
            urls.append(f"{parts.scheme}://{parts.hostname}:{port}")
        if not urls:
            raise UsageError("no etcd endpoint given", hint="pass --etcd-endpoints https://HOST:PORT[,...]")
        if (cert is None) != (key is None):
            raise UsageError("--etcd-cert and --etcd-key go together: give both or neither")
        schemes = {url.split("://", 1)[0] for url in urls}
        if len(schemes) > 1:
            raise UsageError("the etcd endpoints mix http and https", hint="use one scheme for every member")
        if "https" in schemes and ca is None:
            raise UsageError(
                "https etcd endpoints need the CA that signed the members' certificates",
                hint="pass --etcd-cacert FILE",
            )
        if "http" in schemes and (ca or cert):
            raise UsageError(
                "TLS files were given but the etcd endpoints are http://", hint="use https:// endpoints"
            )
        ca, cert, key = (path.resolve() if path else None for path in (ca, cert, key))
        for path in (ca, cert, key):
            if path is not None and not path.is_file():
                raise UsageError(f"cannot read {path}: no such file")
        return cls(tuple(dict.fromkeys(urls)), ca, cert, key)

    @property
    def secure(self) -> bool:
        return self.endpoints[0].startswith("https://")

    def client(self) -> Etcd3Client:
        """An etcd3aio client over every endpoint (round-robin), verifying TLS as etcdctl would."""
        addresses: list[str] = []
        for url in self.endpoints:
            parts = urlsplit(url)
            host = parts.hostname or "127.0.0.1"
            try:
                address = socket.getaddrinfo(host, None, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]
            except OSError as exc:
                raise SandboxError(f"cannot resolve etcd host {host!r}: {exc}") from exc
            addresses.append(f"{address}:{parts.port}")
        if not self.secure:
            return Etcd3Client(addresses)
        pem: dict[str, bytes] = {}
        for name, path in (("ca_cert", self.ca), ("cert_chain", self.cert), ("cert_key", self.key)):
            if path is None:
                continue
            try:
                pem[name] = path.read_bytes()
            except OSError as exc:
                raise SandboxError(f"cannot read {path}: {exc.strerror}") from exc
        # One channel serves every member, so one name is verified: the first endpoint's host,
        # which each member's serving certificate must carry (true of loopback test clusters).
        return Etcd3Client(
            addresses,
            tls_server_name=urlsplit(self.endpoints[0]).hostname,
            ca_cert=pem.get("ca_cert"),
            cert_chain=pem.get("cert_chain"),
            cert_key=pem.get("cert_key"),
        )

    def describe(self) -> dict[str, Any]:
        """What the state file records of it (paths only; never the keys' content)."""
        return {
            "endpoints": list(self.endpoints),
            "cacert": str(self.ca) if self.ca else None,
            "cert": str(self.cert) if self.cert else None,
            "key": str(self.key) if self.key else None,
        }


@dataclass
class SandboxState:
    """What `sandbox status` reports and `sandbox down` needs; persisted as DIR/sandbox.json."""

    dir: str
    pid: int
    server: str
    port: int
    etcdEndpoints: list[str]
    etcdPid: int
    etcdPeerPort: int
    kubeconfig: str
    nodes: list[dict[str, str]]
    """Each node's name and root: the directory it sees as ``/`` (kubelet's files are under it)."""
    insecure: bool = False
    ready: bool = False
    startedAt: str = ""
    etcdExternal: bool = False
    """The etcd is the caller's (`--etcd-endpoints`): the sandbox neither started it nor stops it."""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def etcd_client_port(self) -> int:
        return int(self.etcdEndpoints[0].rsplit(":", 1)[1]) if self.etcdEndpoints else 0


def state_path(directory: Path) -> Path:
    return directory / STATE_FILE


def read_state(directory: Path) -> SandboxState | None:
    path = state_path(directory)
    try:
        data = json.loads(path.read_text())
        if isinstance(data.get("nodes"), int):  # written before nodes had roots
            data["nodes"] = node_list(directory, data["nodes"])
        return SandboxState(**data)
    except FileNotFoundError:
        return None
    except (ValueError, TypeError) as exc:
        raise SandboxError(
            f"the sandbox state file {path} is unreadable: {exc}", hint="remove it and start again"
        ) from exc


def node_list(directory: Path, count: int) -> list[dict[str, str]]:
    """The sandbox's nodes as the state file lists them."""
    names = [f"sandbox-node-{index}" for index in range(1, count + 1)]
    return [{"name": name, "root": str(node_root(directory.resolve(), name))} for name in names]


def _write_state(directory: Path, state: SandboxState) -> None:
    path = state_path(directory)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(state), indent=2) + "\n")
    os.replace(tmp, path)


def is_running(state: SandboxState | None) -> bool:
    return state is not None and pid_alive(state.pid)


def api_ready(state: SandboxState, timeout: float = 2.0) -> bool:
    context = None
    if state.server.startswith("https"):
        context = ssl.create_default_context(cafile=str(Path(state.dir) / "pki" / "ca.crt"))
    try:
        with urllib.request.urlopen(f"{state.server}/readyz", timeout=timeout, context=context) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError, ValueError, ssl.SSLError):
        return False


async def serve(
    directory: Path,
    *,
    port: int | None = None,
    nodes: int = 1,
    insecure: bool = False,
    stop: asyncio.Event | None = None,
    etcd: ExternalEtcd | None = None,
) -> None:
    """Run the sandbox in this process until `stop` is set (or SIGINT/SIGTERM).

    With `etcd`, objects go to that (caller's) etcd, which is neither started nor stopped here.
    """
    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    previous = read_state(directory)
    if is_running(previous) and previous is not None and previous.pid != os.getpid():
        raise SandboxError(f"a sandbox is already running in {directory} (pid {previous.pid})")
    if previous is not None and previous.etcdPid > 0 and pid_alive(previous.etcdPid):
        # Left over from a crashed server: its etcd must not hold the data dir.
        stop_pid(previous.etcdPid)
    pki = ensure_pki(directory)
    own_etcd: EtcdMember | None = None
    if etcd is None:
        reuse = previous is not None and not previous.etcdExternal
        own_etcd = start_etcd(
            directory / "etcd",
            client_port=previous.etcd_client_port if previous and reuse else None,
            peer_port=previous.etcdPeerPort if previous and reuse else None,
            log_file=directory / "etcd.log",
        )
        client = Etcd3Client([own_etcd.endpoint])
        etcd_endpoints = [own_etcd.client_url]
    else:
        client = etcd.client()
        etcd_endpoints = list(etcd.endpoints)
    # kube-apiserver lifts gRPC's 4 MiB receive limit for etcd; etcd3aio exposes its
    # channel options only on its connection manager (pinned version).
    client._manager.grpc_options.append(("grpc.max_receive_message_length", 2**31 - 1))
    runner: web.AppRunner | None = None
    controllers: Controllers | None = None
    kubelets: Kubelets | None = None
    workloads: Workloads | None = None
    scheduling: asyncio.Task[None] | None = None
    try:
        await client.connect()
        if etcd is not None:
            await _check_reachable(client, etcd)
        registry = ResourceRegistry()
        engine = Engine(Store(client), registry)
        api_port = free_port(port or (previous.port if previous else None))
        if port and api_port != port:
            raise SandboxError(f"port {port} on 127.0.0.1 is in use", hint="choose another --port or omit it")
        scheme = "http" if insecure else "https"
        server_url = f"{scheme}://127.0.0.1:{api_port}"
        controllers = Controllers(
            engine,
            state_dir=directory,
            nodes=nodes,
            api_port=api_port,
            ca_pem=pki.ca_cert.read_text(),
        )
        api = ApiServer(
            engine,
            token=pki.token(),
            address=f"127.0.0.1:{api_port}",
            insecure=insecure,
            ready=lambda: controllers is not None and controllers.ready,
        )
        api.tokens = TokenIssuer(pki.ca_cert.parent)
        kubelets = Kubelets(
            engine,
            sandbox_dir=directory,
            nodes=[node["name"] for node in node_list(directory, nodes)],
            api_port=api_port,
            ca_pem=pki.ca_cert.read_text(),
            issuer=api.tokens,
        )
        api.runtime = kubelets
        runner = web.AppRunner(api.app(), access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(
            runner,
            "127.0.0.1",
            api_port,
            ssl_context=None if insecure else server_ssl_context(pki),
            backlog=512,
        )
        await site.start()
        await controllers.start()
        workloads = Workloads(engine)
        await workloads.start()
        scheduling = asyncio.create_task(Scheduler(engine).run(), name="scheduler")
        await kubelets.start()
        kubeconfig = directory / "kubeconfig"
        write_kubeconfig(kubeconfig, server=server_url, pki=pki, insecure=insecure)
        state = SandboxState(
            dir=str(directory),
            pid=os.getpid(),
            server=server_url,
            port=api_port,
            etcdEndpoints=etcd_endpoints,
            etcdPid=own_etcd.pid if own_etcd else 0,
            etcdPeerPort=int(own_etcd.peer_url.rsplit(":", 1)[1]) if own_etcd else 0,
            kubeconfig=str(kubeconfig),
            nodes=node_list(directory, nodes),
            insecure=insecure,
            ready=True,
            startedAt=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            etcdExternal=etcd is not None,
            extra={"etcd": etcd.describe()} if etcd is not None else {},
        )
        _write_state(directory, state)
        log.info("sandbox ready at %s (etcd %s)", server_url, ",".join(etcd_endpoints))
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, stop.set)
        await stop.wait()
    finally:
        if scheduling is not None:
            scheduling.cancel()
            with contextlib.suppress(BaseException):
                await scheduling
        if kubelets is not None:
            await kubelets.stop()  # no container outlives its sandbox
        if workloads is not None:
            await workloads.stop()
        if controllers is not None:
            await controllers.stop()
        if runner is not None:
            await runner.cleanup()
        with contextlib.suppress(Exception):
            await client.close()
        if own_etcd is not None:  # an external etcd is the caller's to stop
            stop_pid(own_etcd.pid)
        current = read_state(directory)
        if current is not None and current.pid == os.getpid():
            current.ready = False
            current.pid = 0
            _write_state(directory, current)


async def _check_reachable(client: Etcd3Client, etcd: ExternalEtcd) -> None:
    """Fail at start, with the endpoints named, rather than on the first request."""
    try:
        await client.ping(write_check=False, timeout=ETCD_CONNECT_TIMEOUT)
    except Exception as exc:  # gRPC, TLS and etcd3aio failures all mean: cannot use it
        raise SandboxError(
            f"etcd at {','.join(etcd.endpoints)} is not usable: {exc}",
            hint="check that the members run, and that --etcd-cacert/--etcd-cert/--etcd-key match their TLS",
        ) from exc


def start_detached(
    directory: Path, *, port: int | None, nodes: int, insecure: bool, etcd: ExternalEtcd | None = None
) -> SandboxState:
    """Start the sandbox as a background process and wait until it answers /readyz."""
    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    args = [
        sys.executable,
        "-m",
        "strongroom",
        "sandbox",
        "up",
        "--dir",
        str(directory),
        "--nodes",
        str(nodes),
    ]
    if port:
        args += ["--port", str(port)]
    if insecure:
        args.append("--insecure")
    if etcd is not None:
        args += ["--etcd-endpoints", ",".join(etcd.endpoints)]
        for flag, path in (("--etcd-cacert", etcd.ca), ("--etcd-cert", etcd.cert), ("--etcd-key", etcd.key)):
            if path is not None:
                args += [flag, str(path)]
    log_path = directory / LOG_FILE
    # posix_spawn rather than Popen: the daemon outlives this process, and a Popen
    # object that is collected while its child runs is reported as a leak.
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        pid = os.posix_spawn(
            sys.executable,
            args,
            os.environ,
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_DUP2, fd, 1),
                (os.POSIX_SPAWN_DUP2, fd, 2),
            ],
            setsid=True,
        )
    finally:
        os.close(fd)
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        finished, code = os.waitpid(pid, os.WNOHANG)
        if finished:
            raise SandboxError(
                f"the sandbox exited with code {os.waitstatus_to_exitcode(code)} while starting",
                hint=f"see {log_path}:\n{_tail(log_path)}",
            )
        state = read_state(directory)
        if state is not None and state.pid == pid and state.ready and api_ready(state):
            return state
        time.sleep(0.1)
    stop_pid(pid)
    raise SandboxError(
        f"the sandbox did not become ready within {READY_TIMEOUT:.0f}s", hint=f"see {log_path}"
    )


def stop(directory: Path, timeout: float = 20.0) -> bool:
    """Stop the sandbox in DIR; False when none was running."""
    state = read_state(directory.resolve())
    if state is None:
        return False
    was_running = is_running(state)
    if was_running:
        stop_pid(state.pid, timeout=timeout)
    if state.etcdPid and pid_alive(state.etcdPid):
        stop_pid(state.etcdPid)
    current = read_state(directory.resolve())
    if current is not None and (current.pid or current.ready):
        current.pid = 0
        current.ready = False
        _write_state(directory.resolve(), current)
    return was_running


def status(directory: Path) -> tuple[SandboxState | None, bool]:
    """The recorded state and whether the sandbox answers now."""
    state = read_state(directory.resolve())
    if state is None or not is_running(state):
        return state, False
    return state, api_ready(state)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
