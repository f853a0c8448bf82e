"""A fault-injecting HTTP reverse proxy for S3, and the ``faulty_s3`` pytest fixture built on it.

Why this exists: object storage fails in ways a unit test cannot fake
convincingly: throttling answers, connections reset half way through an
upload or a download, servers that accept a request and never answer.
strongroom's stores must retry the transient ones and must never leave a
half-written object behind. This proxy sits between a real S3 client and a
real S3 server (moto) and, for a fraction of the requests chosen by a seeded
RNG, injects one of those failures on real sockets; everything else is
relayed byte for byte, streaming, so the client sees a genuine S3 endpoint.

Faults (``Fault``):

* ``SLOW_DOWN``: ``503 Slow Down`` with S3's ``<Error><Code>SlowDown</Code>``
  XML body; the request never reaches the server.
* ``INTERNAL_ERROR``: ``500`` with ``<Code>InternalError</Code>``; not
  forwarded either.
* ``RESET_REQUEST``: the proxy reads the request head and part of its body,
  then resets the connection (TCP RST); nothing reaches the server.
* ``RESET_RESPONSE``: the request is forwarded and executed; the client gets
  the response head and part of the body (or part of the head when there is
  no body), then a reset.
* ``STALL``: the request is read in full and never answered; after
  ``stall_seconds`` (or as soon as the client gives up) the connection is
  reset. Set it above the client's read timeout.

Selection is stratified so that counts do not depend on luck: requests are
numbered as they arrive and cut into windows of ``round(1 / rate)``; in each
window the RNG (seeded with ``seed``) picks one request to fail. The kind is
the least injected one among those the request is eligible for (ties broken
by the RNG), so every configured kind occurs once a few windows have passed.
``eligibility`` decides which kinds a request may get; the default keeps
``RESET_RESPONSE`` away from requests whose repetition is not idempotent
(see ``survivable_faults``). At runtime ``fail_everything()`` fails every
request and ``healthy()`` none; ``faulty()`` returns to the sampled mode.

Relaying: HTTP/1.1 with keep-alive towards the client and one upstream
connection per request (``Connection: close`` upstream). Request bodies with
``Content-Length`` or ``Transfer-Encoding: chunked`` are streamed through as
they arrive, ``Expect: 100-continue`` and other interim responses are
relayed, and response bodies (length-delimited, chunked or close-delimited)
are streamed back with their headers unchanged (Content-Length, ETag, ...);
only the ``Connection`` header is rewritten. Only 127.0.0.1 is used, and the
proxy stops serving after ``max_requests`` requests, so no test can turn it
into an unbounded load generator.

Use from a test (pytest finds a fixture by its own name, so binding the two
fixtures in the test module is enough; importing them by name would trip
ruff's F811 on every test that takes them)::

    from tests import faultproxy
    from tests.faultproxy import Fault, FaultyS3

    fault_moto = faultproxy.fault_moto
    faulty_s3 = faultproxy.faulty_s3

    def test_backup_survives_faults(faulty_s3: FaultyS3) -> None:
        store = faulty_s3.open_store(prefix="velero")      # strongroom's S3 store, through the proxy
        location_config = faulty_s3.config()               # or a BSL config: s3Url=faulty_s3.url, ...
        ...                                                # run the code under test
        assert faulty_s3.proxy.injected[Fault.SLOW_DOWN] > 0
        faulty_s3.proxy.fail_everything()                  # every request fails from now on
        checker = faulty_s3.direct_store(prefix="velero")  # straight to moto: never faulty

Settings (rate, seed, kinds, eligibility, stall_seconds) are FaultProxy's
arguments; pass them with ``@pytest.mark.parametrize("faulty_s3", [{"rate":
0.2}], indirect=True)``, or build one with ``faulty_bucket(moto, ...)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import random
import socket
import struct
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Final, Protocol
from urllib.parse import parse_qsl, urlsplit

import pytest

from strongroom.storage import S3ObjectStore, StoreOptions, open_store
from tests.integration.s3server import ACCESS_KEY_ID, SECRET_ACCESS_KEY, MotoServer, moto_server

HOST: Final = "127.0.0.1"
_HEAD_LIMIT: Final = 1 << 20
_CHUNK: Final = 64 * 1024
# A stalled or half-read request must not keep a handler forever.
_IDLE_TIMEOUT: Final = 30.0


class Fault(enum.StrEnum):
    SLOW_DOWN = "503-slow-down"
    INTERNAL_ERROR = "500-internal-error"
    RESET_REQUEST = "reset-mid-request"
    RESET_RESPONSE = "reset-mid-response"
    STALL = "stall"


ALL_FAULTS: Final = tuple(Fault)


class Mode(enum.Enum):
    FAULTY = "faulty"
    HEALTHY = "healthy"
    FAIL_ALL = "fail-all"


@dataclass(frozen=True)
class Request:
    """What the proxy knows of a request when it decides its fate."""

    method: str
    target: str
    headers: tuple[tuple[str, str], ...]

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, str]:
        return dict(parse_qsl(urlsplit(self.target).query, keep_blank_values=True))

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        return next((value for key, value in self.headers if key.lower() == wanted), None)

    @property
    def line(self) -> str:
        return f"{self.method} {self.target}"


def survivable_faults(request: Request) -> tuple[Fault, ...]:
    """The default eligibility: every fault a correct, retrying S3 client must get through.

    A reset after the server has executed the request is only survivable when
    repeating the request has the same effect: S3's CompleteMultipartUpload
    (``POST ?uploadId=``) is not repeatable (the upload is gone once
    completed) and CreateMultipartUpload (``POST ?uploads``) would start a
    second upload, so those two only get faults that keep the request from the
    server.
    """
    if request.method == "POST" and ("uploadId" in request.query or "uploads" in request.query):
        return (Fault.SLOW_DOWN, Fault.INTERNAL_ERROR, Fault.RESET_REQUEST, Fault.STALL)
    return ALL_FAULTS


def all_faults(_request: Request) -> tuple[Fault, ...]:
    """Eligibility for tests of what happens when anything can fail anywhere."""
    return ALL_FAULTS


@dataclass(frozen=True)
class Event:
    """One request the proxy handled: what it was and what the proxy did to it (None: relayed)."""

    number: int
    request: str
    fault: Fault | None


SLOW_DOWN_BODY: Final = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message><RequestId>FAULTPROXY</RequestId></Error>"
)
INTERNAL_ERROR_BODY: Final = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InternalError</Code>'
    b"<Message>We encountered an internal error. Please try again.</Message>"
    b"<RequestId>FAULTPROXY</RequestId></Error>"
)


class _Reset(Exception):
    """Raised inside a handler to end the client connection with a TCP reset."""


class FaultProxy:
    """The proxy. ``start()`` runs it in a background thread; ``url`` is where clients go."""

    def __init__(
        self,
        upstream: str,
        *,
        rate: float = 0.1,
        seed: int = 0,
        kinds: Iterable[Fault] = ALL_FAULTS,
        eligibility: Callable[[Request], Iterable[Fault]] = survivable_faults,
        stall_seconds: float = 3.0,
        max_requests: int = 5000,
    ) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or parts.hostname != HOST or parts.port is None:
            raise ValueError(f"the upstream must be http://{HOST}:<port>, not {upstream!r}")
        if not 0 < rate <= 1:
            raise ValueError("rate must be in (0, 1]")
        self.upstream_port = parts.port
        self.rate = rate
        self.seed = seed
        self.kinds = tuple(kinds)
        if not self.kinds:
            raise ValueError("at least one fault kind is needed")
        self.eligibility = eligibility
        self.stall_seconds = stall_seconds
        self.max_requests = max_requests
        self._lock = threading.Lock()
        self._mode = Mode.FAULTY
        self._rng = random.Random(seed)
        self._window = max(1, round(1 / rate))
        self._window_pick = self._rng.randrange(self._window)
        self._requests = 0
        self._injected: Counter[Fault] = Counter()
        self._events: list[Event] = []
        self.exhausted = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._port: int | None = None

    # -- control, from any thread ------------------------------------------------

    @property
    def url(self) -> str:
        if self._port is None:
            raise RuntimeError("the proxy is not running")
        return f"http://{HOST}:{self._port}"

    @property
    def mode(self) -> Mode:
        with self._lock:
            return self._mode

    def fail_everything(self) -> None:
        """Every request from now on gets a fault (of the configured kinds it is eligible for)."""
        self._set_mode(Mode.FAIL_ALL)

    def healthy(self) -> None:
        """Relay every request from now on."""
        self._set_mode(Mode.HEALTHY)

    def faulty(self) -> None:
        """Back to failing the sampled fraction of requests."""
        self._set_mode(Mode.FAULTY)

    def _set_mode(self, mode: Mode) -> None:
        with self._lock:
            self._mode = mode

    @property
    def injected(self) -> Counter[Fault]:
        """How many faults of each kind were injected so far (a copy)."""
        with self._lock:
            return Counter(self._injected)

    @property
    def requests(self) -> int:
        with self._lock:
            return self._requests

    @property
    def events(self) -> list[Event]:
        with self._lock:
            return list(self._events)

    def reset_counters(self) -> None:
        with self._lock:
            self._injected.clear()
            self._events.clear()

    def start(self) -> FaultProxy:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                self._server = loop.run_until_complete(
                    asyncio.start_server(self._accept, HOST, 0, limit=_HEAD_LIMIT)
                )
                self._port = self._server.sockets[0].getsockname()[1]
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self._shutdown())
                loop.close()

        self._thread = threading.Thread(target=run, name="fault-proxy", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            raise failure[0]
        if self._port is None:
            raise RuntimeError("the fault proxy did not start")
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if not loop.is_closed():
            loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        self._loop = self._thread = None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    # -- decisions ------------------------------------------------------------

    def _decide(self, request: Request) -> tuple[int, Fault | None]:
        eligible = [kind for kind in self.eligibility(request) if kind in self.kinds]
        with self._lock:
            number = self._requests
            self._requests += 1
            if number >= self.max_requests:
                self.exhausted = True
                raise _Reset
            position = number % self._window
            if position == 0 and number:
                self._window_pick = self._rng.randrange(self._window)
            if self._mode is Mode.HEALTHY:
                chosen = False
            elif self._mode is Mode.FAIL_ALL:
                chosen = True
            else:
                chosen = position == self._window_pick
            fault: Fault | None = None
            if chosen and eligible:
                fewest = min(self._injected[kind] for kind in eligible)
                fault = self._rng.choice([kind for kind in eligible if self._injected[kind] == fewest])
                self._injected[fault] += 1
            self._events.append(Event(number, request.line, fault))
            return number, fault

    # -- relaying ---------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            while await self._serve_one(reader, writer):
                pass
        except _Reset:
            _reset(writer)
        except asyncio.CancelledError:
            # The proxy is stopping: drop the connection and end quietly.
            _reset(writer)
            return
        except (
            ConnectionError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            TimeoutError,
            ValueError,
        ):
            _reset(writer)
        finally:
            self._handlers.discard(task)
            if not writer.transport.is_closing():
                writer.close()

    async def _serve_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Handle one request on a client connection; False when the connection is done."""
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _IDLE_TIMEOUT)
        except asyncio.IncompleteReadError as exc:
            if exc.partial.strip():
                raise
            return False  # the client closed an idle keep-alive connection
        request_line, headers = _parse_head(head)
        method, target, _version = request_line.split(" ", 2)
        request = Request(method, target, tuple(headers))
        _number, fault = self._decide(request)
        framing = _request_framing(headers)
        if fault in (Fault.SLOW_DOWN, Fault.INTERNAL_ERROR):
            # The server would answer before reading the body; the client may
            # still be sending it, so this connection is not reused.
            status, body = (
                (b"503 Slow Down", SLOW_DOWN_BODY)
                if fault is Fault.SLOW_DOWN
                else (b"500 Internal Server Error", INTERNAL_ERROR_BODY)
            )
            await _drain_body(reader, framing, request, half=False)
            writer.write(_error_response(status, body))
            await writer.drain()
            return False
        if fault is Fault.RESET_REQUEST:
            await _drain_body(reader, framing, request, half=True)
            raise _Reset
        if fault is Fault.STALL:
            await _drain_body(reader, framing, request, half=False)
            with contextlib.suppress(TimeoutError):
                # Ends early when the client gives up and closes.
                await asyncio.wait_for(reader.read(1), self.stall_seconds)
            raise _Reset
        return await self._relay(
            reader, writer, head, headers, framing, request, cut=fault is Fault.RESET_RESPONSE
        )

    async def _relay(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        head: bytes,
        headers: list[tuple[str, str]],
        framing: _Framing,
        request: Request,
        *,
        cut: bool,
    ) -> bool:
        up_reader, up_writer = await asyncio.open_connection(HOST, self.upstream_port, limit=_HEAD_LIMIT)
        try:
            up_writer.write(_with_connection(head, b"close"))
            await up_writer.drain()
            body_task = asyncio.create_task(_pipe_body(reader, up_writer, framing))
            try:
                while True:
                    response_head = await asyncio.wait_for(up_reader.readuntil(b"\r\n\r\n"), _IDLE_TIMEOUT)
                    status_line, response_headers = _parse_head(response_head)
                    status = int(status_line.split(" ", 2)[1])
                    if 100 <= status < 200 and status != 101:
                        writer.write(response_head)
                        await writer.drain()
                        continue
                    break
                response_framing = _response_framing(request.method, status, response_headers)
                keep_alive = response_framing.kind != "close" and not _wants_close(headers)
                out_head = _with_connection(response_head, b"keep-alive" if keep_alive else b"close")
                if cut:
                    await self._cut_response(writer, out_head, up_reader, response_framing)
                writer.write(out_head)
                await _pipe(up_reader, writer, response_framing)
                await writer.drain()
                await asyncio.wait_for(body_task, _IDLE_TIMEOUT)
            finally:
                if not body_task.done():
                    body_task.cancel()
                    with contextlib.suppress(BaseException):
                        await body_task
                    keep_alive = False
        finally:
            up_writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await up_writer.wait_closed()
        return keep_alive

    async def _cut_response(
        self, writer: asyncio.StreamWriter, head: bytes, up_reader: asyncio.StreamReader, framing: _Framing
    ) -> None:
        if framing.kind == "length" and framing.length > 1:
            body = await up_reader.readexactly(framing.length // 2)
            writer.write(head + body)
        elif framing.kind in ("chunked", "close"):
            body = await up_reader.read(_CHUNK)
            writer.write(head + body[: max(1, len(body) // 2)])
        else:
            writer.write(head[: len(head) // 2])
        await writer.drain()
        raise _Reset


class _Sink(Protocol):
    def write(self, data: bytes, /) -> object: ...

    async def drain(self) -> None: ...


@dataclass(frozen=True)
class _Framing:
    kind: str  # "none", "length", "chunked" or "close"
    length: int = 0


def _parse_head(head: bytes) -> tuple[str, list[tuple[str, str]]]:
    lines = head.decode("latin-1").split("\r\n")
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise ValueError(f"malformed header line {line!r}")
        headers.append((name.strip(), value.strip()))
    return lines[0], headers


def _header(headers: list[tuple[str, str]], name: str) -> str | None:
    return next((value for key, value in headers if key.lower() == name), None)


def _wants_close(headers: list[tuple[str, str]]) -> bool:
    return "close" in (_header(headers, "connection") or "").lower()


def _request_framing(headers: list[tuple[str, str]]) -> _Framing:
    if "chunked" in (_header(headers, "transfer-encoding") or "").lower():
        return _Framing("chunked")
    length = _header(headers, "content-length")
    return _Framing("length", int(length)) if length and int(length) > 0 else _Framing("none")


def _response_framing(method: str, status: int, headers: list[tuple[str, str]]) -> _Framing:
    if method == "HEAD" or status in (204, 304):
        return _Framing("none")
    if "chunked" in (_header(headers, "transfer-encoding") or "").lower():
        return _Framing("chunked")
    length = _header(headers, "content-length")
    if length is not None:
        return _Framing("length", int(length)) if int(length) > 0 else _Framing("none")
    return _Framing("close")


def _with_connection(head: bytes, value: bytes) -> bytes:
    """The same head with its Connection header (and Keep-Alive) replaced: they are hop-by-hop."""
    lines = head.split(b"\r\n")
    kept = [
        line
        for line in lines[1:]
        if line and not line.lower().startswith((b"connection:", b"keep-alive:", b"proxy-connection:"))
    ]
    return b"\r\n".join([lines[0], *kept, b"Connection: " + value]) + b"\r\n\r\n"


async def _pipe(source: asyncio.StreamReader, sink: _Sink, framing: _Framing) -> None:
    """Copy one message body as it arrives, chunked encoding and all."""
    if framing.kind == "length":
        remaining = framing.length
        while remaining:
            data = await asyncio.wait_for(source.read(min(_CHUNK, remaining)), _IDLE_TIMEOUT)
            if not data:
                raise asyncio.IncompleteReadError(b"", remaining)
            sink.write(data)
            await sink.drain()
            remaining -= len(data)
    elif framing.kind == "chunked":
        while True:
            size_line = await asyncio.wait_for(source.readuntil(b"\r\n"), _IDLE_TIMEOUT)
            sink.write(size_line)
            size = int(size_line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                # Trailers, then the empty line that ends the message.
                while (line := await asyncio.wait_for(source.readuntil(b"\r\n"), _IDLE_TIMEOUT)) != b"\r\n":
                    sink.write(line)
                sink.write(b"\r\n")
                await sink.drain()
                return
            await _pipe(source, sink, _Framing("length", size + 2))
    elif framing.kind == "close":
        while data := await asyncio.wait_for(source.read(_CHUNK), _IDLE_TIMEOUT):
            sink.write(data)
            await sink.drain()


async def _pipe_body(source: asyncio.StreamReader, sink: asyncio.StreamWriter, framing: _Framing) -> None:
    await _pipe(source, sink, framing)


class _Discard:
    """A sink for bodies the proxy reads but does not forward."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.seen = 0

    def write(self, data: bytes, /) -> None:
        self.seen += len(data)
        if self.limit is not None and self.seen >= self.limit:
            raise _Reset

    async def drain(self) -> None:
        return None


async def _drain_body(
    reader: asyncio.StreamReader, framing: _Framing, request: Request, *, half: bool
) -> None:
    """Read (and drop) the request body: all of it, or with ``half`` about half (then reset)."""
    if framing.kind == "none" or "100-continue" in (request.header("expect") or "").lower():
        # Nothing to read; or the client waits for an interim answer it will not get.
        return
    stop: int | None = None
    if half:
        # A chunked body has no known length: stop inside its first chunk.
        stop = max(1, framing.length // 2) if framing.kind == "length" else 1
    await _pipe(reader, _Discard(stop), framing)


def _error_response(status: bytes, body: bytes) -> bytes:
    return (
        b"HTTP/1.1 "
        + status
        + b"\r\nContent-Type: application/xml\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\nx-amz-request-id: FAULTPROXY\r\nConnection: close\r\n\r\n"
        + body
    )


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST (SO_LINGER 0), as a crashed or cut-off peer would."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


# --------------------------------------------------------------------------
# the pytest side

CREDENTIALS: Final = f"""[default]
aws_access_key_id={ACCESS_KEY_ID}
aws_secret_access_key={SECRET_ACCESS_KEY}
"""
# Short timeouts so that stalls are noticed within a second, and quick
# retries; the proxy's stall must outlast the read timeout.
FAULT_TEST_OPTIONS: Final = StoreOptions(
    part_size=5 * 1024 * 1024,
    connect_timeout=timedelta(seconds=1),
    read_timeout=timedelta(seconds=1),
    request_timeout=timedelta(seconds=15),
    max_retries=10,
    init_backoff=timedelta(milliseconds=10),
    max_backoff=timedelta(milliseconds=200),
    retry_timeout=timedelta(seconds=30),
)
DEFAULT_SEED: Final = 20250604


@dataclass
class FaultyS3:
    """A fresh bucket on moto, reachable through a fault proxy (``url``) and directly."""

    moto: MotoServer
    proxy: FaultProxy
    bucket: str
    options: StoreOptions = FAULT_TEST_OPTIONS
    credentials: str = CREDENTIALS
    extra_config: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """The S3 endpoint through the proxy (``s3Url`` of a location)."""
        return self.proxy.url

    def config(self, endpoint: str | None = None) -> dict[str, str]:
        """A BackupStorageLocation ``config`` for the proxy (or ``endpoint``)."""
        return {
            "s3Url": endpoint or self.url,
            "s3ForcePathStyle": "true",
            "region": "us-east-1",
            **self.extra_config,
        }

    def open_store(self, prefix: str = "", options: StoreOptions | None = None) -> S3ObjectStore:
        """strongroom's S3 store for the bucket, through the proxy."""
        return self._open(self.url, prefix, options)

    def direct_store(self, prefix: str = "", options: StoreOptions | None = None) -> S3ObjectStore:
        """The same bucket without the proxy: for setting up and checking, never faulty."""
        return self._open(self.moto.endpoint, prefix, options)

    def _open(self, endpoint: str, prefix: str, options: StoreOptions | None) -> S3ObjectStore:
        store = open_store(
            "aws",
            self.bucket,
            prefix,
            self.config(endpoint),
            self.credentials,
            options=options or self.options,
        )
        assert isinstance(store, S3ObjectStore)
        return store


@contextlib.contextmanager
def faulty_bucket(moto: MotoServer, **proxy_options: Any) -> Iterator[FaultyS3]:
    """A new bucket behind a new, started FaultProxy (keyword arguments go to FaultProxy)."""
    bucket = f"faulty-{uuid.uuid4().hex[:16]}"
    moto.create_bucket(bucket)
    proxy_options.setdefault("seed", DEFAULT_SEED)
    with FaultProxy(moto.endpoint, **proxy_options) as proxy:
        yield FaultyS3(moto, proxy, bucket)


@pytest.fixture(scope="session")
def fault_moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """One moto S3 server for every test that uses ``faulty_s3``."""
    log_dir: Path = tmp_path_factory.mktemp("fault-moto")
    with moto_server(log_dir) as server:
        yield server


@pytest.fixture
def faulty_s3(request: pytest.FixtureRequest, fault_moto: MotoServer) -> Iterator[FaultyS3]:
    """A fresh bucket behind a FaultProxy failing ~10% of requests (seed DEFAULT_SEED).

    Override the proxy's settings with ``@pytest.mark.parametrize("faulty_s3",
    [{"rate": 0.2, "kinds": [...]}], indirect=True)``.
    """
    options = dict(getattr(request, "param", None) or {})
    with faulty_bucket(fault_moto, **options) as faulty:
        yield faulty
        if faulty.proxy.exhausted:
            raise AssertionError(
                f"the fault proxy refused requests past its budget of {faulty.proxy.max_requests}"
            )
