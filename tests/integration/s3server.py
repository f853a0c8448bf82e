"""A real S3 server for the storage tests: moto's standalone server, and a proxy that misbehaves on purpose.

moto runs as a subprocess on a free 127.0.0.1 port (optionally with TLS) and
is stopped by the test that started it. ``FlakyProxy`` sits between a store
and moto and fails requests by plan (503 SlowDown, 500, connection resets,
bodies cut halfway, stalls), so retries are tested against real HTTP. Both
only ever listen on and connect to 127.0.0.1, and the proxy refuses to serve
more than a fixed budget of requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import boto3
from tests.integration.serverproc import HOST, free_port, server_process

ACCESS_KEY_ID = "AKIASTRONGROOMTEST01"
SECRET_ACCESS_KEY = "strongroom-test-secret-key-do-not-log-me"
MOTO_SERVER = Path(sys.executable).with_name("moto_server")


@dataclass
class MotoServer:
    endpoint: str
    process: subprocess.Popen[bytes]
    ca_file: Path | None = None

    def client(self) -> Any:
        """A boto3 client with explicit credentials, so it looks for none elsewhere."""
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=ACCESS_KEY_ID,
            aws_secret_access_key=SECRET_ACCESS_KEY,
            verify=str(self.ca_file) if self.ca_file else False,
        )

    def create_bucket(self, name: str) -> None:
        self.client().create_bucket(Bucket=name)


@contextlib.contextmanager
def moto_server(log_dir: Path, *, certificate: tuple[Path, Path, Path] | None = None) -> Iterator[MotoServer]:
    """Run moto until the block ends; ``certificate`` is (ca, cert, key) to serve HTTPS."""
    port = free_port()
    command = [str(MOTO_SERVER), "-H", HOST, "-p", str(port)]
    scheme = "http"
    if certificate is not None:
        command += ["-c", str(certificate[1]), "-k", str(certificate[2])]
        scheme = "https"
    endpoint = f"{scheme}://{HOST}:{port}"
    ca_file = certificate[0] if certificate else None
    log_path = log_dir / f"moto-{port}.log"
    with server_process(
        "moto_server", command, log_path, f"{endpoint}/moto-api/", ca_file=ca_file
    ) as process:
        yield MotoServer(endpoint, process, ca_file)


SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)
INTERNAL_ERROR = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InternalError</Code>'
    b"<Message>We encountered an internal error. Please try again.</Message></Error>"
)

# What the proxy does with one request.
PASS, SLOWDOWN, INTERNAL, RESET, CUT, STALL, FORBIDDEN = "pass", "503", "500", "reset", "cut", "stall", "403"


class LoopbackServer:
    """A TCP server on 127.0.0.1 while its ``async with`` block runs; the block's end ends every handler.

    Subclasses (dataclasses) declare ``_server`` and ``_handlers`` and handle
    each connection in ``_accept``, adding their task to ``_handlers``.
    """

    _server: asyncio.Server | None
    _handlers: set[asyncio.Task[None]]

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._accept, HOST, 0)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError


@dataclass
class FlakyProxy(LoopbackServer):
    """An HTTP/1.1 proxy to moto that applies ``plan(request_number, request_line)`` to each request.

    Every response closes its connection, which keeps the relaying simple;
    clients open a new connection per request.
    """

    upstream_port: int
    plan: Callable[[int, str], str]
    budget: int = 300
    stall_seconds: float = 3.0
    forbidden_body: bytes = b""
    served: Counter[str] = field(default_factory=Counter)
    heads: list[bytes] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    requests: int = 0
    exhausted: bool = False
    _server: asyncio.Server | None = None
    _handlers: set[asyncio.Task[None]] = field(default_factory=set)

    def request_lines(self) -> list[str]:
        return [head.split(b"\r\n", 1)[0].decode("ascii") for head in self.heads]

    def requests_for(self, fragment: str) -> list[str]:
        return [line for line in self.request_lines() if fragment in line]

    def actions_for(self, fragment: str) -> list[str]:
        return [
            action
            for line, action in zip(self.request_lines(), self.actions, strict=False)
            if fragment in line
        ]

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self.port}"

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            writer.transport.abort()
        finally:
            self._handlers.discard(task)
            if not writer.transport.is_closing():
                writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return  # the client opened a connection and closed it unused
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        body = await reader.readexactly(length)
        self.heads.append(head)
        self.requests += 1
        if self.requests > self.budget:
            self.exhausted = True
            writer.transport.abort()
            return
        request_line = head.split(b"\r\n", 1)[0].decode("ascii")
        action = self.plan(self.requests, request_line)
        self.actions.append(action)
        if action == RESET:
            self.served[action] += 1
            writer.transport.abort()
            return
        if action == STALL:
            self.served[action] += 1
            await asyncio.sleep(self.stall_seconds)
            writer.transport.abort()
            return
        if action in (SLOWDOWN, INTERNAL, FORBIDDEN):
            self.served[action] += 1
            status, payload = {
                SLOWDOWN: (b"503 Slow Down", SLOW_DOWN),
                INTERNAL: (b"500 Internal Server Error", INTERNAL_ERROR),
                FORBIDDEN: (b"403 Forbidden", self.forbidden_body),
            }[action]
            writer.write(_response(status, payload))
            await writer.drain()
            return
        response = await self._forward(head, body)
        header_end = response.find(b"\r\n\r\n") + 4
        if action == CUT and cuttable(request_line) and len(response) - header_end > 1:
            # Headers and half the body, then the connection drops.
            self.served[action] += 1
            writer.write(response[: header_end + (len(response) - header_end) // 2])
            await writer.drain()
            writer.transport.abort()
            return
        self.served[PASS] += 1
        writer.write(response)
        await writer.drain()

    async def _forward(self, head: bytes, body: bytes) -> bytes:
        upstream_reader, upstream_writer = await asyncio.open_connection(HOST, self.upstream_port)
        try:
            upstream_writer.write(_close_after(head) + body)
            await upstream_writer.drain()
            raw = await upstream_reader.read()
        finally:
            upstream_writer.close()
            with contextlib.suppress(ConnectionError):
                await upstream_writer.wait_closed()
        header_end = raw.find(b"\r\n\r\n")
        return _close_after(raw[: header_end + 4]) + raw[header_end + 4 :]


def cuttable(request_line: str) -> bool:
    """Whether a CUT applies: responses with a body to break (downloads, listings, bulk deletes)."""
    method, target = request_line.split(" ", 2)[:2]
    return method == "GET" or (method == "POST" and "delete" in target)


def _close_after(head: bytes) -> bytes:
    """The same request or response head, with ``Connection: close``."""
    lines = [line for line in head.split(b"\r\n") if line and not line.lower().startswith(b"connection:")]
    return b"\r\n".join([*lines, b"Connection: close"]) + b"\r\n\r\n"


def _response(status: bytes, payload: bytes) -> bytes:
    return (
        b"HTTP/1.1 "
        + status
        + b"\r\nContent-Type: application/xml\r\nContent-Length: "
        + str(len(payload)).encode("ascii")
        + b"\r\nConnection: close\r\n\r\n"
        + payload
    )
