"""The stream summary of a real etcd 3.5 snapshot equals what etcdutl reports for the saved file.

``etcdctl snapshot save`` keeps the 32-byte SHA-256 etcd appends to the stream
(the file is a whole number of pages plus 32 bytes); the builder is fed the
bbolt bytes and ``status_of_file`` reads a file with or without that trailer.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import struct
import subprocess
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from etcd3aio import Etcd3Client

from strongroom.errors import UsageError
from strongroom.etcd.bbolt import SnapshotStatus, StatusBuilder, status_of_file
from strongroom.sandbox.etcdproc import EtcdMember, etcd_bin_dir, start_etcd, stop_pid

pytestmark = pytest.mark.integration

HASH_SIZE = 32
PAGE = 4096


@pytest.fixture
def etcd(tmp_path: Path) -> Iterator[EtcdMember]:
    with warnings.catch_warnings():
        # start_etcd drops its Popen while etcd runs on (it is stopped by pid): not a leak here.
        warnings.simplefilter("ignore", ResourceWarning)
        member = start_etcd(tmp_path / "data")
    try:
        yield member
    finally:
        stop_pid(member.pid)


def save(member: EtcdMember, path: Path) -> Path:
    subprocess.run(
        [str(etcd_bin_dir() / "etcdctl"), f"--endpoints={member.endpoint}", "snapshot", "save", str(path)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return path


def etcdutl_status(path: Path) -> SnapshotStatus:
    result = subprocess.run(
        [str(etcd_bin_dir() / "etcdutl"), "snapshot", "status", str(path), "-w", "json"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    data = json.loads(result.stdout)
    return SnapshotStatus(data["hash"], data["revision"], data["totalKey"], data["totalSize"])


def streamed(data: bytes, chunk: int) -> SnapshotStatus:
    builder = StatusBuilder()
    view = memoryview(data)
    for i in range(0, len(view), chunk):
        builder.feed(view[i : i + chunk])
    return builder.finish()


def assert_matches_etcdutl(path: Path, chunks: tuple[int, ...] = (4095, 65536, 1 << 20)) -> SnapshotStatus:
    expected = etcdutl_status(path)
    data = path.read_bytes()
    assert len(data) % PAGE == HASH_SIZE, "etcdctl keeps etcd's trailing SHA-256"
    assert status_of_file(path) == expected
    for chunk in chunks:
        assert streamed(data[:-HASH_SIZE], chunk) == expected, f"chunk size {chunk}"
    return expected


async def put_many(member: EtcdMember, items: list[tuple[str, bytes]]) -> None:
    async with Etcd3Client([member.endpoint]) as client:
        for start in range(0, len(items), 128):  # etcd's default --max-txn-ops
            ops = [client.kv.txn_op_put(key, value) for key, value in items[start : start + 128]]
            await client.kv.txn([], ops)


def key_tree_depth(data: bytes) -> int:
    """Levels of branch pages above the leaves of the "key" bucket, read straight from the file."""
    metas = [struct.unpack_from("<IIIIQQQQQ", data, pgid * PAGE + 16) for pgid in (0, 1)]
    root = max(metas, key=lambda m: m[8])[4]

    def header(pgid: int) -> tuple[int, int, int, int]:
        return struct.unpack_from("<QHHI", data, pgid * PAGE)

    _, _, count, _ = header(root)
    for i in range(count):
        _flags, pos, ksize, _vsize = struct.unpack_from("<IIII", data, root * PAGE + 16 + 16 * i)
        key_at = root * PAGE + 16 + 16 * i + pos
        if data[key_at : key_at + ksize] == b"key":
            pgid = struct.unpack_from("<Q", data, key_at + ksize)[0]
            break
    depth = 0
    while header(pgid)[1] == 0x01:
        depth += 1
        pgid = struct.unpack_from("<Q", data, pgid * PAGE + 16 + 8)[0]
    return depth


def test_small_snapshot_matches_etcdutl_for_any_chunk_size(etcd: EtcdMember, tmp_path: Path) -> None:
    asyncio.run(put_many(etcd, [(f"/registry/configmaps/default/cm{i}", b"v" * i) for i in range(40)]))
    path = save(etcd, tmp_path / "small.db")
    status = assert_matches_etcdutl(path, chunks=(1, 4095, 65536, 1 << 20))
    assert status.revision == 2  # one transaction of 40 puts after the first revision


def test_large_values_on_overflow_pages(etcd: EtcdMember, tmp_path: Path) -> None:
    rng = random.Random(5)
    sizes = [100 * 1024, 1024 * 1024 - 512, *(rng.randrange(100 * 1024, 1024 * 1024) for _ in range(10))]
    items = [(f"/registry/secrets/big/s{i}", rng.randbytes(size)) for i, size in enumerate(sizes)]

    async def put_each() -> None:
        async with Etcd3Client([etcd.endpoint]) as client:
            for key, value in items:
                await client.kv.put(key, value)

    asyncio.run(put_each())
    status = assert_matches_etcdutl(save(etcd, tmp_path / "large.db"))
    assert status.total_size > sum(sizes)


def test_many_keys_under_several_levels_of_branch_pages(etcd: EtcdMember, tmp_path: Path) -> None:
    rng = random.Random(6)
    items = [
        (f"/registry/pods/ns{i % 97}/pod-{i:06d}", rng.randbytes(rng.randrange(50, 400)))
        for i in range(24000)
    ]
    asyncio.run(put_many(etcd, items))
    path = save(etcd, tmp_path / "many.db")
    status = assert_matches_etcdutl(path)
    assert status.total_key > 24000
    assert key_tree_depth(path.read_bytes()) >= 2


def test_deletes_and_compaction_leave_stale_free_pages_that_are_ignored(
    etcd: EtcdMember, tmp_path: Path
) -> None:
    rng = random.Random(8)
    keys = [f"/registry/events/default/ev-{i:05d}" for i in range(4000)]

    async def churn() -> None:
        async with Etcd3Client([etcd.endpoint]) as client:
            for i in range(6):
                await client.kv.put(f"/registry/blobs/b{i}", rng.randbytes(300 * 1024))
            await put_many(etcd, [(key, rng.randbytes(600)) for key in keys])
            await put_many(etcd, [(key, rng.randbytes(300)) for key in keys[::2]])
            await client.kv.delete("/registry/events/default/ev-01000", "/registry/events/default/ev-03000")
            for i in range(0, 6, 2):
                await client.kv.delete(f"/registry/blobs/b{i}")
            head = await client.kv.put("/registry/marker", b"m")
            await client.kv.compact(head.header.revision, physical=True)
            # Written after the compaction, so they reuse freed pages (no defrag in between).
            await put_many(etcd, [(f"/registry/late/l{i:04d}", rng.randbytes(500)) for i in range(800)])
            await client.kv.delete("/registry/late/l0007")

    asyncio.run(churn())
    path = save(etcd, tmp_path / "churned.db")
    assert_matches_etcdutl(path)
    # The case is only proven if free pages still carry leaf or branch headers of their own pgid.
    builder = StatusBuilder()
    builder.feed(path.read_bytes()[:-HASH_SIZE])
    builder.finish()
    tree_looking = {pgid for pgid, kind in enumerate(builder._kind) if kind in (1, 2, 3)}
    assert len(tree_looking - builder._visited) > 100


def test_truncated_snapshot_is_refused(etcd: EtcdMember, tmp_path: Path) -> None:
    asyncio.run(put_many(etcd, [(f"/registry/pods/default/p{i:05d}", os.urandom(300)) for i in range(3000)]))
    data = save(etcd, tmp_path / "whole.db").read_bytes()
    cut = tmp_path / "cut.db"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(UsageError, match="snapshot truncated"):
        status_of_file(cut)
    with pytest.raises(UsageError, match="snapshot truncated"):
        streamed(data[: len(data) // 2 + 100], 65536)
