"""What every test server kit shares: a free loopback port, and a server process started, awaited and stopped.

The storage emulators (moto, Azurite, fake-gcs-server) each run as a
subprocess on 127.0.0.1 with their output in a log file. A test must fail
with that log when one does not start, and the process must be gone when the
block ends, whatever happened in it.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

HOST = "127.0.0.1"
START_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def answers(url: str, *, ca_file: Path | None = None, any_status: bool = False) -> bool:
    """Whether ``url`` answers now (any HTTP status counts when ``any_status``)."""
    context = ssl.create_default_context(cafile=str(ca_file)) if ca_file else None
    try:
        with urllib.request.urlopen(url, timeout=1, context=context):
            return True
    except urllib.error.HTTPError:
        return any_status
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


@contextlib.contextmanager
def server_process(
    name: str,
    command: Sequence[str],
    log_path: Path,
    probe: str,
    *,
    env: Mapping[str, str] | None = None,
    ca_file: Path | None = None,
    any_status: bool = False,
    timeout: float = START_TIMEOUT,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``command`` until the block ends, once ``probe`` (a URL) answers; its output goes to ``log_path``."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            list(command),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(env) if env is not None else None,
        )
    try:
        deadline = time.monotonic() + timeout
        while not answers(probe, ca_file=ca_file, any_status=any_status):
            if process.poll() is not None:
                raise AssertionError(f"{name} exited with {process.returncode}:\n{log_path.read_text()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{name} did not answer within {timeout} s:\n{log_path.read_text()}")
            time.sleep(0.05)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
