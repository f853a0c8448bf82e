"""The snapshot stream is passed on only if it is exactly what etcd sent: its SHA-256 trailer must match."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator

import pytest
from etcd3aio.errors import EtcdConnectionError

from strongroom.etcd.snapshot import IntegrityError, _CheckedStream


async def _source(chunks: list[bytes], error: BaseException | None = None) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk
    if error is not None:
        raise error


async def _drain(stream: _CheckedStream, source: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in stream.pass_through(source, None)])


def _body(size: int) -> bytes:
    return bytes(range(256)) * (size // 256)


def test_a_stream_with_its_trailer_is_passed_on_whole_in_large_chunks() -> None:
    body = _body(3 * 1024 * 1024 + 512)
    wire = body + hashlib.sha256(body).digest()
    pieces = [wire[i : i + 32 * 1024] for i in range(0, len(wire), 32 * 1024)]
    stream = _CheckedStream()
    out = asyncio.run(_drain(stream, _source(pieces)))
    assert out == wire
    assert stream.size == len(wire) and stream.sha256 == hashlib.sha256(body).hexdigest()
    # Not a bbolt file: the summary is missing, the bytes are still etcd's and kept.
    assert stream.status is None and stream.status_error


def test_a_flipped_byte_or_a_missing_trailer_is_refused() -> None:
    body = _body(256 * 1024)
    wire = bytearray(body + hashlib.sha256(body).digest())
    wire[1000] ^= 1
    with pytest.raises(IntegrityError, match="does not match the SHA-256"):
        asyncio.run(_drain(_CheckedStream(), _source([bytes(wire)])))
    with pytest.raises(IntegrityError, match="before etcd's integrity hash"):
        asyncio.run(_drain(_CheckedStream(), _source([b"x" * 10])))


def test_a_broken_stream_raises_its_own_error_and_remembers_it() -> None:
    stream = _CheckedStream()
    error = EtcdConnectionError("Maintenance.Snapshot failed: UNAVAILABLE")
    with pytest.raises(EtcdConnectionError):
        asyncio.run(_drain(stream, _source([_body(2 * 1024 * 1024)], error)))
    assert stream.source_error is error
