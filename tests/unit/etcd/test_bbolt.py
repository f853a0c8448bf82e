"""The streaming bbolt summary: CRC combination, meta selection, and files etcd rarely writes.

The databases here are assembled page by page (the layout of go.etcd.io/bbolt
1.3), so the cases etcd cannot be made to produce on demand are covered: nested
buckets, stale headers in free pages, spans too large to buffer, bad metas.
Real snapshots are compared with etcdutl in tests/integration/test_etcd_bbolt.py.
"""

from __future__ import annotations

import os
import random
import struct
from pathlib import Path

import google_crc32c
import pytest

from strongroom.errors import UsageError
from strongroom.etcd.bbolt import MAGIC, SnapshotStatus, StatusBuilder, crc32c_combine, status_of_file

PS = 4096
LEAF, BRANCH = 0x02, 0x01
BUCKET = 0x01


def _fnv64a(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for byte in data:
        h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def _page(pgid: int, flags: int, count: int, body: bytes, *, overflow: int | None = None) -> bytes:
    size = 16 + len(body)
    if overflow is None:
        overflow = (size + PS - 1) // PS - 1
    raw = struct.pack("<QHHI", pgid, flags, count, overflow) + body
    return raw.ljust((overflow + 1) * PS, b"\0") if len(raw) <= (overflow + 1) * PS else raw


def _leaf_body(items: list[tuple[bytes, bytes, int]]) -> bytes:
    elems = b""
    data = b""
    base = 16 * len(items)
    for i, (key, value, flags) in enumerate(items):
        pos = base + len(data) - 16 * i
        elems += struct.pack("<IIII", flags, pos, len(key), len(value))
        data += key + value
    return elems + data


def leaf(pgid: int, items: list[tuple[bytes, bytes, int]]) -> bytes:
    return _page(pgid, LEAF, len(items), _leaf_body(items))


def branch(pgid: int, children: list[tuple[bytes, int]]) -> bytes:
    elems = b""
    data = b""
    base = 16 * len(children)
    for i, (key, child) in enumerate(children):
        elems += struct.pack("<IIQ", base + len(data) - 16 * i, len(key), child)
        data += key
    return _page(pgid, BRANCH, len(children), elems + data)


def meta(pgid: int, *, root: int, high_water: int, txid: int, valid: bool = True) -> bytes:
    fields = struct.pack("<IIIIQQQQQ", MAGIC, 2, PS, 0, root, 0, 0, high_water, txid)
    checksum = _fnv64a(fields) ^ (0 if valid else 1)
    return _page(pgid, 0x04, 0, fields + struct.pack("<Q", checksum))


def bucket(root: int) -> bytes:
    return struct.pack("<QQ", root, 0)


def inline_bucket(items: list[tuple[bytes, bytes, int]]) -> bytes:
    page = struct.pack("<QHHI", 0, LEAF, len(items), 0) + _leaf_body(items)
    return bucket(0) + page


def rev(main: int, sub: int = 0) -> bytes:
    return main.to_bytes(8, "big") + b"_" + sub.to_bytes(8, "big")


def assemble(pages: dict[int, bytes], high_water: int) -> bytes:
    """Pages by pgid; gaps become zero pages (a free page that was never written)."""
    out = bytearray(high_water * PS)
    for pgid, raw in pages.items():
        out[pgid * PS : pgid * PS + len(raw)] = raw
    return bytes(out)


def feed(data: bytes, chunk: int, **kwargs: int) -> SnapshotStatus:
    builder = StatusBuilder(**kwargs)
    for i in range(0, len(data), chunk):
        builder.feed(data[i : i + chunk])
    return builder.finish()


def expected_hash(parts: list[bytes]) -> int:
    return google_crc32c.value(b"".join(parts))


# A database with what an etcd snapshot has (a "key" bucket in a two-level tree, small inline
# buckets) and what it has not (a nested bucket, a bucket with a big value spanning pages).
KEYS = [(rev(i), os.urandom(40 + i), 0) for i in range(1, 40)]
BIG = os.urandom(3 * PS + 100)


def sample_db() -> tuple[bytes, SnapshotStatus]:
    root_items = [
        (b"alarm", inline_bucket([]), BUCKET),
        (b"big", bucket(9), BUCKET),
        (b"key", bucket(5), BUCKET),
        (b"meta", inline_bucket([(b"consistent_index", b"\x00" * 8, 0), (b"term", b"\x01" * 8, 0)]), BUCKET),
        (b"nest", bucket(8), BUCKET),
    ]
    pages = {
        0: meta(0, root=4, high_water=20, txid=6),
        1: meta(1, root=3, high_water=20, txid=5),
        3: leaf(3, [(b"old", inline_bucket([]), BUCKET)]),  # the previous transaction's root, now free
        4: leaf(4, root_items),
        5: branch(5, [(KEYS[0][0], 7), (KEYS[20][0], 6)]),
        6: leaf(6, KEYS[20:]),
        7: leaf(7, KEYS[:20]),
        8: leaf(8, [(b"a", b"1", 0), (b"child", inline_bucket([(b"x", b"y", 0)]), BUCKET), (b"z", b"26", 0)]),
        9: leaf(9, [(b"blob", BIG, 0)]),
    }
    data = assemble(pages, 20)
    hashed = [b"alarm", b"big", b"blob", BIG, b"key"]
    hashed += [k + v for k, v, _ in KEYS]
    hashed += [b"meta", b"consistent_index", b"\x00" * 8, b"term", b"\x01" * 8]
    hashed += [b"nest", b"a", b"1", b"child", b"z", b"26"]  # a nested bucket contributes its name only
    keys = 1 + len(KEYS) + 2 + 3
    return data, SnapshotStatus(expected_hash(hashed), len(KEYS), keys, 20 * PS)


def test_crc32c_is_the_castagnoli_crc_in_c() -> None:
    # The check value of CRC-32C; a pure-Python fallback would make streaming far too slow.
    assert google_crc32c.value(b"123456789") == 0xE3069283
    assert google_crc32c.implementation == "c"


def test_crc32c_combine_equals_the_crc_of_the_concatenation() -> None:
    rng = random.Random(7)
    for length in (0, 1, 5, 4095, 4096, 70000, 1 << 20):
        data = rng.randbytes(length)
        for cut in {0, length // 3, length}:
            a, b = data[:cut], data[cut:]
            assert crc32c_combine(
                google_crc32c.value(a), google_crc32c.value(b), len(b)
            ) == google_crc32c.value(data)


def test_crc32c_combine_folds_many_pieces_in_order() -> None:
    rng = random.Random(11)
    pieces = [rng.randbytes(rng.randrange(0, 3000)) for _ in range(200)]
    crc = 0
    for piece in pieces:
        crc = crc32c_combine(crc, google_crc32c.value(piece), len(piece))
    assert crc == google_crc32c.value(b"".join(pieces))


@pytest.mark.parametrize("chunk", [1, 7, 4095, 4096, 65536, 1 << 20])
def test_status_is_the_same_for_every_chunk_size(chunk: int) -> None:
    data, expected = sample_db()
    assert feed(data, chunk) == expected


def test_status_json_uses_etcdutl_keys() -> None:
    status = SnapshotStatus(hash=1, revision=2, total_key=3, total_size=4)
    assert status.to_json() == {"hash": 1, "revision": 2, "totalKey": 3, "totalSize": 4}


def test_trailing_partial_page_such_as_etcds_hash_is_ignored(tmp_path: Path) -> None:
    data, expected = sample_db()
    path = tmp_path / "snapshot.db"
    path.write_bytes(data + os.urandom(32))
    assert status_of_file(path) == expected


def test_newest_valid_meta_wins_and_an_invalid_one_is_skipped() -> None:
    data, expected = sample_db()
    # Page 1 now claims a newer transaction whose root (page 3) holds another bucket.
    newer = bytearray(data)
    newer[PS : 2 * PS] = meta(1, root=3, high_water=20, txid=7)
    status = feed(bytes(newer), 4096)
    assert (status.hash, status.total_key) == (expected_hash([b"old"]), 0)
    # The same, but its checksum is wrong: bbolt falls back to page 0.
    newer[PS : 2 * PS] = meta(1, root=3, high_water=20, txid=7, valid=False)
    assert feed(bytes(newer), 4096) == expected


def test_first_meta_invalid_falls_back_to_the_second() -> None:
    data, _ = sample_db()
    broken = bytearray(data)
    broken[0:PS] = meta(0, root=4, high_water=20, txid=6, valid=False)
    assert feed(bytes(broken), 65536).hash == expected_hash([b"old"])


@pytest.mark.parametrize(
    "data",
    [b"", b"\0" * 16384, os.urandom(3 * PS), b"SQLite format 3\0" + os.urandom(20000)],
    ids=["empty", "zeros", "random", "sqlite"],
)
def test_rejects_files_without_a_valid_meta_page(data: bytes) -> None:
    with pytest.raises(UsageError, match="not an etcd snapshot: no valid bbolt meta page"):
        feed(data, 1000) if data else StatusBuilder().finish()


def test_truncated_file_names_the_missing_page() -> None:
    data, _ = sample_db()
    with pytest.raises(
        UsageError, match=r"snapshot truncated: page 9 referenced but the file ends at page 9"
    ):
        feed(data[: 9 * PS + 100], 4096)


def test_span_cut_by_the_end_of_the_file_is_truncation() -> None:
    data, _ = sample_db()
    with pytest.raises(
        UsageError, match=r"snapshot truncated: page 9 spans 4 pages but the file ends at page 11"
    ):
        feed(data[: 11 * PS], 65536)


def test_missing_free_pages_at_the_end_are_truncation_too() -> None:
    data, _ = sample_db()
    with pytest.raises(UsageError, match=r"the database has 20 pages but the file ends at page 15"):
        feed(data[: 15 * PS], 65536)


def test_stale_free_page_claiming_a_huge_span_neither_stalls_nor_matters() -> None:
    data, expected = sample_db()
    stale = bytearray(data)
    # Free page 2 keeps the header of an old 16-page value; the cap is set below that.
    stale[2 * PS : 2 * PS + 16] = struct.pack("<QHHI", 2, LEAF, 1, 15)
    builder = StatusBuilder(max_span=8 * PS)
    for i in range(0, len(stale), 1000):
        builder.feed(stale[i : i + 1000])
        assert len(builder._buf) <= 8 * PS + 1000
    assert builder.finish() == expected


def test_stale_span_over_live_pages_does_not_hide_them() -> None:
    data, expected = sample_db()
    stale = bytearray(data)
    # Free page 3 claims 8 overflow pages: they are live pages 4-11, which must still be read.
    stale[3 * PS : 3 * PS + 16] = struct.pack("<QHHI", 3, LEAF, 1, 8)
    assert feed(bytes(stale), 4096) == expected


def test_a_reachable_span_too_large_to_stream_is_reported() -> None:
    data, _ = sample_db()
    with pytest.raises(UsageError, match="status cannot be computed while streaming: page 9"):
        feed(data, 65536, max_span=2 * PS)


def test_a_reachable_page_with_a_foreign_header_is_corruption() -> None:
    data, _ = sample_db()
    broken = bytearray(data)
    broken[7 * PS : 7 * PS + 8] = struct.pack("<Q", 70)
    with pytest.raises(UsageError, match="references page 7, which is not a tree page"):
        feed(bytes(broken), 4096)


def test_a_page_reachable_twice_is_corruption() -> None:
    data, _ = sample_db()
    broken = bytearray(data)
    broken[5 * PS : 6 * PS] = branch(5, [(KEYS[0][0], 7), (KEYS[20][0], 7)])
    with pytest.raises(UsageError, match="page 7 is referenced twice"):
        feed(bytes(broken), 4096)


def test_a_top_level_key_that_is_not_a_bucket_is_refused() -> None:
    pages = {
        0: meta(0, root=2, high_water=3, txid=2),
        1: meta(1, root=2, high_water=3, txid=1),
        2: leaf(2, [(b"key", b"plain value", 0)]),
    }
    with pytest.raises(UsageError, match="holds a key that is not a bucket"):
        feed(assemble(pages, 3), 4096)


def test_empty_database_has_a_zero_hash() -> None:
    pages = {
        0: meta(0, root=2, high_water=4, txid=2),
        1: meta(1, root=2, high_water=4, txid=1),
        2: leaf(2, []),
    }
    assert feed(assemble(pages, 4), 4096) == SnapshotStatus(0, 0, 0, 4 * PS)


def test_revision_comes_from_the_last_key_even_a_tombstone() -> None:
    tombstone = rev(41) + b"t"
    pages = {
        0: meta(0, root=2, high_water=4, txid=2),
        1: meta(1, root=2, high_water=4, txid=1),
        2: leaf(2, [(b"key", bucket(3), BUCKET)]),
        3: leaf(3, [(rev(40), b"v", 0), (tombstone, b"", 0)]),
    }
    status = feed(assemble(pages, 4), 4096)
    assert (status.revision, status.total_key) == (41, 2)
    assert status.hash == expected_hash([b"key", rev(40), b"v", tombstone])
