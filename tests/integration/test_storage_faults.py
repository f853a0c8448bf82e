"""The S3 store against a real S3 server behind a proxy that injects faults (tests/faultproxy.py).

Why: retries and atomic uploads are only proven by real failures on real
sockets. Through ~10% injected faults (503 SlowDown, 500 InternalError,
connection resets in the middle of a request or a response, stalls past the
client's timeout) small and multipart uploads, downloads and paginated
listings must all succeed; with every request failing, operations must raise
StorageError with a reason and leave nothing half-written under the key.
The proxy's counters prove the faults happened. The first test checks that
the proxy itself relays HTTP faithfully, so the rest test strongroom, not the
proxy.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import http.client
import os
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from tests import faultproxy
from tests.faultproxy import (
    ALL_FAULTS,
    FAULT_TEST_OPTIONS,
    Fault,
    FaultProxy,
    FaultyS3,
    Request,
)

from strongroom.errors import ObjectNotFound, StorageError
from strongroom.storage import ObjectStore

pytestmark = pytest.mark.integration
# Fixtures are found by their own name; binding them here makes them available.
fault_moto = faultproxy.fault_moto
faulty_s3 = faultproxy.faulty_s3

MiB = 1024 * 1024
# Few retries when everything fails, so each failing operation ends within seconds.
GIVE_UP_SOON = dataclasses.replace(FAULT_TEST_OPTIONS, max_retries=3, retry_timeout=timedelta(seconds=8))
# What a StorageError must say about why the request failed.
REASONS = ("SlowDown", "InternalError", "error sending request", "body error", "timed out", "500", "503")


# --------------------------------------------------------------------------
# the proxy relays faithfully


class _Echo(BaseHTTPRequestHandler):
    """An upstream that reports what it received, in headers a proxy must pass through unchanged."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or ""):
            parts = []
            while (size := int(self.rfile.readline().split(b";")[0], 16)) > 0:
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b""):
                pass
            return b"".join(parts)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _reply(self, body: bytes, *, chunked: bool = False, head_only: bool = False) -> None:
        self.send_response(200)
        self.send_header("ETag", f'"{hashlib.md5(body).hexdigest()}"')
        self.send_header("X-Seen-Transfer-Encoding", self.headers.get("Transfer-Encoding") or "-")
        self.send_header("X-Seen-Content-Length", self.headers.get("Content-Length") or "-")
        self.send_header("X-Seen-Custom", self.headers.get("X-Custom") or "-")
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for start in range(0, len(body), 1000):
                piece = body[start : start + 1000]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head_only:
                self.wfile.write(body)

    def do_PUT(self) -> None:
        self._reply(self._body())

    def do_GET(self) -> None:
        self._reply(b"".join(b"%06d\n" % n for n in range(2000)), chunked=self.path == "/chunked")

    def do_HEAD(self) -> None:
        self._reply(b"x" * 1234, head_only=True)


@pytest.fixture
def echo_upstream() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_the_proxy_relays_bodies_headers_and_keep_alive_unchanged(echo_upstream: str) -> None:
    with FaultProxy(echo_upstream, rate=1.0) as proxy:
        proxy.healthy()
        port = int(proxy.url.rsplit(":", 1)[1])
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            body = os.urandom(300_000)
            connection.request(
                "PUT", "/chunked-upload", body=iter([body[:1000], body[1000:]]), encode_chunked=True
            )
            response = connection.getresponse()
            assert response.read() == body
            assert response.getheader("X-Seen-Transfer-Encoding") == "chunked"
            assert response.getheader("ETag") == f'"{hashlib.md5(body).hexdigest()}"'
            first_socket = connection.sock

            connection.request(
                "PUT", "/sized", body=b"abc" * 1000, headers={"Expect": "100-continue", "X-Custom": "kept"}
            )
            response = connection.getresponse()
            assert response.read() == b"abc" * 1000
            assert response.getheader("X-Seen-Content-Length") == "3000"
            assert response.getheader("X-Seen-Custom") == "kept"

            connection.request("GET", "/chunked")
            response = connection.getresponse()
            assert response.getheader("Transfer-Encoding") == "chunked"
            assert response.read() == b"".join(b"%06d\n" % n for n in range(2000))

            connection.request("HEAD", "/anything")
            response = connection.getresponse()
            assert response.getheader("Content-Length") == "1234"
            assert response.read() == b""

            connection.request("GET", "/sized")
            response = connection.getresponse()
            assert response.getheader("Content-Length") == str(7 * 2000)
            assert len(response.read()) == 7 * 2000
            # Every answer was length-delimited, so the client kept one connection.
            assert connection.sock is first_socket
        finally:
            connection.close()
    assert proxy.requests == 5
    assert sum(proxy.injected.values()) == 0


def test_the_proxy_fails_its_share_of_requests_and_every_kind_for_any_seed(echo_upstream: str) -> None:
    for seed in range(3):
        with FaultProxy(echo_upstream, seed=seed, stall_seconds=0.2) as proxy:
            failed = 0
            for _ in range(100):
                connection = http.client.HTTPConnection(
                    "127.0.0.1", int(proxy.url.rsplit(":", 1)[1]), timeout=5
                )
                try:
                    connection.request("GET", "/sized")
                    response = connection.getresponse()
                    response.read()
                    failed += response.status != 200
                except (ConnectionError, http.client.HTTPException, TimeoutError):
                    failed += 1
                finally:
                    connection.close()
            injected = proxy.injected
        assert sum(injected.values()) == failed == 10, seed
        assert set(injected) == set(ALL_FAULTS), seed


# --------------------------------------------------------------------------
# strongroom's S3 store through faults


async def chunks_of(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        await asyncio.sleep(0)
        yield data[start : start + size]


async def fill(store: ObjectStore, keys: list[str]) -> None:
    limit = asyncio.Semaphore(32)

    async def put(key: str) -> None:
        async with limit:
            await store.put(key, key.encode())

    await asyncio.gather(*(put(key) for key in keys))


async def listed(store: ObjectStore, prefix: str) -> list[str]:
    return sorted([info.key async for info in store.list(prefix)])


def test_puts_gets_and_paginated_lists_succeed_through_ten_percent_faults(faulty_s3: FaultyS3) -> None:
    proxy = faulty_s3.proxy
    store = faulty_s3.open_store(prefix="velero")
    direct = faulty_s3.direct_store(prefix="velero")
    # Longer than one 1,000-key page of S3's listing; set up without the proxy.
    many = [f"backups/b{index:04d}/velero-backup.json" for index in range(1005)]
    small = {
        f"restores/r{index:02d}/restore-r{index:02d}-logs.gz": os.urandom(500 + index) for index in range(25)
    }
    big = os.urandom(11 * MiB + 7)  # three 5 MiB parts
    streamed = os.urandom(12 * MiB + 3)

    async def scenario() -> None:
        await fill(direct, many)
        proxy.reset_counters()
        for key, data in small.items():
            await store.put(key, data)
        await store.put("backups/big/big.tar.gz", big)
        await store.put("backups/streamed/streamed.tar.gz", chunks_of(streamed, MiB))
        for key, data in small.items():
            assert await store.get(key) == data
            info = await store.head(key)
            assert info is not None
            assert info.size == len(data)
        assert (
            hashlib.sha256(await store.get("backups/big/big.tar.gz")).digest() == hashlib.sha256(big).digest()
        )
        received = bytearray()
        async for chunk in await store.get_stream("backups/streamed/streamed.tar.gz"):
            received += chunk
        assert bytes(received) == streamed
        # Five passes: 20 consecutive listing requests span two whole windows of
        # ten, so some listing page gets a fault whatever the seed.
        for _ in range(5):
            found = await listed(store, "backups")
            assert found == sorted([*many, "backups/big/big.tar.gz", "backups/streamed/streamed.tar.gz"])
            prefixes = await store.list_prefixes("backups")
            assert len(prefixes) == len(many) + 2
        assert await listed(store, "restores") == sorted(small)

    asyncio.run(scenario())
    injected = proxy.injected
    assert {kind: injected[kind] for kind in Fault if injected[kind] == 0} == {}, proxy.events
    assert any(event.fault for event in proxy.events if "list-type=2" in event.request)
    # About one request in ten failed, retries included.
    assert 0.08 <= sum(injected.values()) / proxy.requests <= 0.12
    # What went in is what a healthy client sees.
    assert asyncio.run(direct.get("backups/big/big.tar.gz")) == big


@pytest.mark.parametrize(
    "operation",
    ["put", "put-multipart", "put-stream", "get", "get-stream", "head", "list", "list-prefixes"],
)
def test_when_every_request_fails_operations_raise_storage_errors_with_a_reason(
    faulty_s3: FaultyS3, operation: str
) -> None:
    store = faulty_s3.open_store(prefix="velero", options=GIVE_UP_SOON)
    direct = faulty_s3.direct_store(prefix="velero")
    key = "backups/b1/b1.tar.gz"

    async def attempt() -> None:
        if operation == "put":
            await store.put(key, b"{}")
        elif operation == "put-multipart":
            await store.put(key, os.urandom(11 * MiB))
        elif operation == "put-stream":
            await store.put(key, chunks_of(os.urandom(11 * MiB), MiB))
        elif operation == "get":
            await store.get("backups/existing/velero-backup.json")
        elif operation == "get-stream":
            async for _chunk in await store.get_stream("backups/existing/velero-backup.json"):
                pass
        elif operation == "head":
            await store.head("backups/existing/velero-backup.json")
        elif operation == "list":
            await listed(store, "backups")
        else:
            await store.list_prefixes("backups")

    asyncio.run(direct.put("backups/existing/velero-backup.json", b"{}"))
    faulty_s3.proxy.fail_everything()
    with pytest.raises(StorageError) as raised:
        asyncio.run(attempt())
    assert not isinstance(raised.value, ObjectNotFound)
    message = str(raised.value)
    assert message.startswith("cannot ")
    assert any(reason in message for reason in REASONS), message
    assert sum(faulty_s3.proxy.injected.values()) == faulty_s3.proxy.requests
    # Nothing appeared under the key, and the existing object is untouched.
    assert asyncio.run(direct.head(key)) is None
    assert asyncio.run(listed(direct, "backups")) == ["backups/existing/velero-backup.json"]


def test_an_upload_cut_off_half_way_leaves_the_previous_object_whole(faulty_s3: FaultyS3) -> None:
    proxy = faulty_s3.proxy
    store = faulty_s3.open_store(prefix="velero", options=GIVE_UP_SOON)
    direct = faulty_s3.direct_store(prefix="velero")
    key = "backups/b1/b1.tar.gz"
    previous = b"the complete previous backup"
    replacement = os.urandom(MiB)

    async def source() -> AsyncIterator[bytes]:
        # The first part is on its way before the store starts to fail.
        for index in range(16):
            if index == 7:
                proxy.fail_everything()
            await asyncio.sleep(0)
            yield replacement

    async def scenario() -> None:
        proxy.healthy()
        await store.put(key, previous)
        with pytest.raises(StorageError):
            await store.put(key, source())
        with pytest.raises(StorageError):
            await store.put("backups/b2/b2.tar.gz", replacement * 11)
        proxy.healthy()
        assert await direct.get(key) == previous
        assert await direct.head("backups/b2/b2.tar.gz") is None
        # Healthy again: the same store works without being reopened.
        await store.put("backups/b2/b2.tar.gz", replacement * 11)
        assert await direct.get("backups/b2/b2.tar.gz") == replacement * 11

    asyncio.run(scenario())
    assert sum(proxy.injected.values()) > 0


def test_a_healthy_proxy_injects_nothing(faulty_s3: FaultyS3) -> None:
    faulty_s3.proxy.healthy()
    store = faulty_s3.open_store()

    async def scenario() -> None:
        for index in range(30):
            await store.put(f"k{index}", b"v")
        assert len(await listed(store, "")) == 30

    asyncio.run(scenario())
    assert faulty_s3.proxy.requests == 31
    assert sum(faulty_s3.proxy.injected.values()) == 0


# --------------------------------------------------------------------------
# what the faults found (strict xfails: they pass once the bug is fixed)


def _first(predicate: Callable[[Request], bool], fault: Fault) -> Callable[[Request], tuple[Fault, ...]]:
    """An eligibility that gives ``fault`` to the first request matching ``predicate``, once."""
    done: list[bool] = []

    def eligibility(request: Request) -> tuple[Fault, ...]:
        if not done and predicate(request):
            done.append(True)
            return (fault,)
        return ()

    return eligibility


def _is_bulk_delete(request: Request) -> bool:
    return request.method == "POST" and "delete" in request.query


def _is_completion(request: Request) -> bool:
    return request.method == "POST" and "uploadId" in request.query


@pytest.mark.parametrize("fault", [Fault.RESET_REQUEST, Fault.STALL, Fault.RESET_RESPONSE])
def test_deleting_survives_one_connection_failure(faulty_s3: FaultyS3, fault: Fault) -> None:
    faulty_s3.proxy.eligibility = _first(_is_bulk_delete, fault)
    faulty_s3.proxy.fail_everything()
    store = faulty_s3.open_store()
    asyncio.run(faulty_s3.direct_store().put("k", b"v"))
    asyncio.run(store.delete("k"))
    assert asyncio.run(faulty_s3.direct_store().head("k")) is None
    assert faulty_s3.proxy.injected[fault] == 1


def test_a_lost_completion_answer_is_repeated_not_blamed_on_a_missing_bucket(faulty_s3: FaultyS3) -> None:
    faulty_s3.proxy.eligibility = _first(_is_completion, Fault.RESET_RESPONSE)
    faulty_s3.proxy.fail_everything()
    store = faulty_s3.open_store()
    data = os.urandom(11 * MiB)
    asyncio.run(store.put("big", data))
    assert faulty_s3.proxy.injected[Fault.RESET_RESPONSE] == 1
    assert asyncio.run(faulty_s3.direct_store().get("big")) == data
