"""A TLS-intercepting HTTPS proxy that lets the cloud's own host names lead to the emulators on 127.0.0.1.

restic 0.14 reaches Azure only at ``https://<account>.blob.core.windows.net``
and Google Cloud Storage only at ``https://storage.googleapis.com``. To test
file-system backup into them without leaving 127.0.0.1, everything is pointed
at this proxy (``HTTPS_PROXY``), as a cluster-wide proxy that inspects TLS
would be: a ``CONNECT`` to one of its routed host names is answered with TLS
under a certificate for that name, signed by the proxy's own CA (given to the
clients as the location's ``caCert``), and the decrypted bytes go on to the
emulator as they are, Host header included: Azurite takes the account from a
production-style host name, fake-gcs-server answers ``storage.googleapis.com``
as its public host.

A ``CONNECT`` to any other host is refused (403) and recorded, so a test can
assert that nothing tried to leave.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tests.integration.serverproc import HOST

from strongroom.sandbox.pki import Pki, ensure_pki

_CHUNK = 256 * 1024


@dataclass
class InterceptingProxy:
    """The running proxy: its URL, its CA (PEM), and the host names clients asked for."""

    url: str
    ca_pem: str
    tunnels: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)


@contextlib.contextmanager
def intercepting_proxy(state_dir: Path, routes: Mapping[str, tuple[str, int]]) -> Iterator[InterceptingProxy]:
    """Run the proxy until the block ends; ``routes`` maps a host name to the emulator's (host, port)."""
    pki = ensure_pki(state_dir, hosts=tuple(routes))
    context = _server_context(pki)
    proxy = InterceptingProxy(url="", ca_pem=pki.ca_cert.read_text())
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    stop = asyncio.Event()

    async def serve() -> None:
        server = await asyncio.start_server(
            lambda reader, writer: _handle(reader, writer, routes, context, proxy), HOST, 0
        )
        proxy.url = f"http://{HOST}:{server.sockets[0].getsockname()[1]}"
        ready.set()
        async with server:
            await stop.wait()
            # The open tunnels end first: closing the server may wait for its connections.
            server.close()
            tunnels = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in tunnels:
                task.cancel()
            await asyncio.gather(*tunnels, return_exceptions=True)

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), name="intercepting-proxy")
    thread.start()
    try:
        if not ready.wait(10):
            raise AssertionError("the intercepting proxy did not start")
        yield proxy
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=10)
        loop.close()


def _server_context(pki: Pki) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.server_cert, pki.server_key)
    # HTTP/1.1 only: the bytes are relayed to plain-HTTP emulators as they are.
    context.set_alpn_protocols(["http/1.1"])
    return context


async def _handle(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    routes: Mapping[str, tuple[str, int]],
    context: ssl.SSLContext,
    proxy: InterceptingProxy,
) -> None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        writer.close()
        return
    request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
    method, _, rest = request_line.partition(" ")
    authority = rest.split(" ", 1)[0]
    host = authority.rsplit(":", 1)[0].lower()
    if method != "CONNECT" or host not in routes:
        proxy.refused.append(authority if method == "CONNECT" else request_line)
        writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()
        return
    proxy.tunnels.append(host)
    writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
    await writer.drain()
    try:
        await writer.start_tls(context)
        upstream_reader, upstream_writer = await asyncio.open_connection(*routes[host])
    except (ssl.SSLError, ConnectionError, OSError):
        writer.close()
        return
    await asyncio.gather(
        _pipe(reader, upstream_writer), _pipe(upstream_reader, writer), return_exceptions=True
    )
    for stream in (writer, upstream_writer):
        stream.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(_CHUNK):
            writer.write(chunk)
            await writer.drain()
    finally:
        with contextlib.suppress(Exception):
            if writer.can_write_eof():
                writer.write_eof()
            else:
                writer.close()
