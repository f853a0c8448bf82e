"""What ``etcdutl snapshot status`` reports, computed from a snapshot while it streams past.

``strongroom etcd snapshot save`` sends the Maintenance.Snapshot stream straight
to object storage, with no local copy, yet must record the snapshot's hash,
revision, key count and size exactly as etcdutl 3.5 would print them. A bbolt
file is a random-access B+tree, so it cannot be walked in stream order; instead
each page is reduced, as it passes, to a small summary (a leaf to the CRC-32C of
its keys and values, their length, count and last revision; a branch to its
child page ids) and the tree is resolved from those summaries at the end. CRC-32C
is combinable, so the per-leaf CRCs are joined in tree order without the bytes.

The builder is fed the bbolt bytes only. A trailing partial page is ignored, so
etcd's 32-byte SHA-256 trailer (kept by ``etcdctl snapshot save``) does no harm,
and :func:`status_of_file` reads files with or without it.
"""

from __future__ import annotations

import struct
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import accumulate
from operator import add, sub
from pathlib import Path
from typing import Final

import google_crc32c

from strongroom.errors import UsageError

__all__ = [
    "DEFAULT_MAX_SPAN",
    "SnapshotStatus",
    "StatusBuilder",
    "crc32c_combine",
    "status_of_file",
]

MAGIC: Final = 0xED0CDAED
VERSION: Final = 2
# Above this a page span (page plus overflow) is not buffered while streaming: real etcd values
# are limited to a few MiB, so a larger span is almost always a stale header in a free page.
DEFAULT_MAX_SPAN: Final = 64 * 1024 * 1024
_CHUNK: Final = 1024 * 1024
# bbolt reads this much to find the page size, and falls back to the OS page size.
_FIRST_READ: Final = 0x1000
_OS_PAGE_SIZE: Final = 4096
_HEADER: Final = struct.Struct("<QHHI")  # id, flags, count, overflow
_META: Final = struct.Struct("<IIIIQQQQQQ")  # magic .. txid, checksum
_META_SUMMED: Final = 56  # bytes of the meta covered by its checksum
_ELEM: Final = 16  # size of a page header, of a branch and of a leaf element, of a bucket header
_BRANCH_PAGE: Final = 0x01
_LEAF_PAGE: Final = 0x02
_BUCKET_LEAF: Final = 0x01
_KEY_BUCKET: Final = b"key"
_HINT: Final = "take the snapshot again; if it repeats, run `etcdutl snapshot status` on a saved copy"

# What the page at a pgid turned out to be.
_NONE: Final = 0  # not a tree page (meta, freelist, free, or an overflow page of another span)
_BRANCH: Final = 1
_LEAF: Final = 2  # a leaf whose last key is too short to hold a revision, or empty
_LEAF_REV: Final = 3  # a leaf whose last key starts with a revision
_TOO_BIG: Final = 4  # claims a span larger than the builder may buffer
_CUT: Final = 5  # its span runs past the end of the file


@dataclass(frozen=True)
class SnapshotStatus:
    """The four figures ``etcdutl snapshot status`` prints."""

    hash: int
    revision: int
    total_key: int
    total_size: int

    def to_json(self) -> dict[str, int]:
        """The keys and values of ``etcdutl snapshot status -w json``."""
        return {
            "hash": self.hash,
            "revision": self.revision,
            "totalKey": self.total_key,
            "totalSize": self.total_size,
        }


# CRC-32C combination (zlib's crc32_combine, as rewritten in zlib 1.2.12: multiplication modulo
# the polynomial instead of the older 32x32 GF(2) matrices; same result, far fewer operations).
_POLY: Final = 0x82F63B78  # Castagnoli, reflected


def _multmodp(a: int, b: int) -> int:
    """a * b modulo the CRC polynomial, in the reflected bit order CRCs use."""
    m = 1 << 31
    p = 0
    while m:
        if a & m:
            p ^= b
            if not a & (m - 1):
                break
        m >>= 1
        b = (b >> 1) ^ _POLY if b & 1 else b >> 1
    return p


def _x2n_table() -> tuple[int, ...]:
    p = 1 << 30  # x^1
    table = [p]
    for _ in range(31):
        p = _multmodp(p, p)
        table.append(p)
    return tuple(table)


_X2N: Final = _x2n_table()
_SHIFTS: dict[int, int] = {}


def _x8nmodp(n: int) -> int:
    """x^(8n) modulo the polynomial: the operator that moves a CRC past n bytes."""
    cached = _SHIFTS.get(n)
    if cached is not None:
        return cached
    p = 1 << 31  # x^0
    k = 3
    rest = n
    while rest:
        if rest & 1:
            p = _multmodp(_X2N[k & 31], p)
        rest >>= 1
        k += 1
    if len(_SHIFTS) < 65536:
        _SHIFTS[n] = p
    return p


def crc32c_combine(crc1: int, crc2: int, len2: int) -> int:
    """CRC-32C of A followed by B, from crc32c(A), crc32c(B) and len(B)."""
    if len2 <= 0:
        return crc1
    return _multmodp(_x8nmodp(len2), crc1) ^ crc2


def _fnv64a(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for byte in data:
        h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


@dataclass(frozen=True)
class _Meta:
    page_size: int
    root: int
    high_water: int
    txid: int


def _read_meta(page: bytes | bytearray) -> _Meta | None:
    """The meta in a meta page, if bbolt would accept it (magic, version and checksum)."""
    if len(page) < _ELEM + _META.size:
        return None
    magic, version, page_size, _flags, root, _seq, _freelist, high_water, txid, checksum = _META.unpack_from(
        page, _ELEM
    )
    if magic != MAGIC or version != VERSION:
        return None
    if checksum != 0 and checksum != _fnv64a(bytes(page[_ELEM : _ELEM + _META_SUMMED])):
        return None
    return _Meta(page_size, root, high_water, txid)


# What a leaf contributes, as a plain tuple because one is built per page: (crc, length of the
# bytes ForEach hashes, element count, main revision of the last key when it is long enough to
# hold one, whether every element is a bucket (so it may be a root-bucket leaf), end of its data).
_LeafSummary = tuple[int, int, int, int | None, bool, int]


def _summarize_leaf(page: memoryview, count: int) -> _LeafSummary | None:
    """Reduce a leaf page (header included) to what the hash needs; None if it cannot be a leaf.

    bbolt writes key, value, key, value ... right after the element array, so a leaf
    without nested buckets is hashed with one CRC call over that region, once the
    element positions prove the layout.
    """
    if count == 0:
        return 0, 0, 0, None, False, _ELEM
    elems_end = _ELEM + _ELEM * count
    if elems_end > len(page):
        return None
    fields = page[_ELEM:elems_end].cast("I").tolist()
    ksizes = fields[2::4]
    positions = fields[1::4]
    last_key = _ELEM * count + positions[-1]  # element count-1 sits at 16*count
    last_ksize = ksizes[-1]
    if any(fields[0::4]):
        return _summarize_leaf_with_buckets(page, fields, count)
    vsizes = fields[3::4]
    total = sum(ksizes) + sum(vsizes)
    data_end = elems_end + total
    if data_end > len(page):
        return None
    # Element i at 16 + 16*i must point at the running end of the data before it.
    expected = map(
        sub, accumulate(map(add, ksizes, vsizes), initial=elems_end), range(_ELEM, elems_end, _ELEM)
    )
    if list(expected) != positions:
        return None
    revision = None
    if last_ksize >= 8:
        revision = int.from_bytes(page[last_key : last_key + 8], "big", signed=True)
    return google_crc32c.value(bytes(page[elems_end:data_end])), total, count, revision, False, data_end


def _summarize_leaf_with_buckets(page: memoryview, fields: list[int], count: int) -> _LeafSummary | None:
    # A nested bucket's value is not hashed (ForEach yields it as nil), so walk element by element.
    crc = 0
    length = 0
    data_end = 0
    all_buckets = True
    revision = None
    for i in range(count):
        flags, pos, ksize, vsize = fields[4 * i : 4 * i + 4]
        start = _ELEM + _ELEM * i + pos
        end = start + ksize + vsize
        if end > len(page):
            return None
        data_end = max(data_end, end)
        crc = google_crc32c.extend(crc, bytes(page[start : start + ksize]))
        length += ksize
        if flags & _BUCKET_LEAF:
            if vsize < _ELEM:
                return None
        else:
            all_buckets = False
            crc = google_crc32c.extend(crc, bytes(page[start + ksize : end]))
            length += vsize
        revision = int.from_bytes(page[start : start + 8], "big", signed=True) if ksize >= 8 else None
    return crc, length, count, revision, all_buckets, data_end


class StatusBuilder:
    """Summarises a bbolt file fed in consecutive chunks; :meth:`finish` resolves the status.

    ``feed`` never raises, so a summary problem cannot abort the upload it rides
    along with; every problem is reported by ``finish`` as a ``UsageError``.
    Memory is a few bytes per page plus the branch pages and root-bucket leaves
    (small), and the buffer of the span being read (at most ``max_span``).
    """

    def __init__(self, *, max_span: int = DEFAULT_MAX_SPAN) -> None:
        self._max_span = max_span
        self._buf = bytearray()
        self._need = _FIRST_READ  # bytes the buffer must hold before anything can be done
        self._fed = 0
        self._page_size = 0
        self._meta: _Meta | None = None
        self._dead: str | None = None
        self._next = 0  # pgid of the page at the start of the buffer
        # Per pgid, appended in file order.
        self._kind = bytearray()
        self._crc = array("I")
        self._len = array("Q")
        self._count = array("I")
        self._rev = array("q")
        self._span = array("Q")  # only meaningful for _TOO_BIG and _CUT
        self._branches: dict[int, array[int]] = {}
        self._bucket_leaves: dict[int, bytes] = {}
        self._status: SnapshotStatus | None = None
        self._visited: set[int] = set()

    # -- streaming -------------------------------------------------------------------------

    def feed(self, chunk: bytes | bytearray | memoryview) -> None:
        """Take the next bytes of the file."""
        size = len(chunk)
        if not size:
            return
        self._fed += size
        if self._dead is not None or self._status is not None:
            return
        buf = self._buf
        if self._meta is None:
            buf += chunk
            if len(buf) >= self._need:
                self._read_metas()
            return
        if buf:
            buf += chunk
            if len(buf) < self._need:
                return
            with memoryview(buf) as view:
                used = self._drain(view, final=False)
            del buf[:used]
        elif size < self._need:
            buf += chunk
        else:
            # Nothing pending: read the pages straight from the caller's chunk, keep only the tail.
            with memoryview(chunk) as view:
                used = self._drain(view.cast("B") if view.format != "B" else view, final=False)
                if used < size:
                    buf += view[used:]

    def _read_metas(self) -> None:
        buf = self._buf
        if not self._page_size:
            meta0 = _read_meta(buf[:_FIRST_READ])
            self._page_size = meta0.page_size if meta0 is not None else _OS_PAGE_SIZE
            if not 512 <= self._page_size <= 1 << 20 or self._page_size & (self._page_size - 1):
                self._die(f"not an etcd snapshot: bbolt page size {self._page_size} is not supported")
                return
            self._need = 2 * self._page_size
            if len(buf) < self._need:
                return
        ps = self._page_size
        candidates = [m for m in (_read_meta(buf[:ps]), _read_meta(buf[ps : 2 * ps])) if m]
        if not candidates:
            self._die("not an etcd snapshot: no valid bbolt meta page")
            return
        # bbolt uses the valid meta with the higher transaction id.
        self._meta = max(candidates, key=lambda m: m.txid)
        self._append_none(2)
        self._next = 2
        self._need = ps
        del buf[: 2 * ps]
        if len(buf) >= ps:
            with memoryview(buf) as view:
                used = self._drain(view, final=False)
            del buf[:used]

    def _die(self, reason: str) -> None:
        self._dead = reason
        self._buf = bytearray()

    def _append_none(self, pages: int) -> None:
        self._kind.extend(bytes(pages))
        zeros = [0] * pages
        self._crc.extend(zeros)
        self._len.extend(zeros)
        self._count.extend(zeros)
        self._rev.extend(zeros)
        self._span.extend(zeros)

    def _drain(self, view: memoryview, *, final: bool) -> int:
        """Summarise every page of ``view`` whose span is complete; return the bytes consumed."""
        meta = self._meta
        assert meta is not None
        ps = self._page_size
        high_water = meta.high_water
        max_span = self._max_span
        unpack = _HEADER.unpack_from
        kinds = self._kind
        crcs, lens, counts, revs, spans = self._crc, self._len, self._count, self._rev, self._span
        size = len(view)
        off = 0
        pgid = self._next
        need = ps
        while size - off >= ps:
            page_id, flags, count, overflow = unpack(view, off)
            kind = _NONE
            crc = length = rev = span_note = 0
            # A page is only what its header says if the header carries its own pgid: free
            # pages keep stale headers and overflow pages hold arbitrary value bytes. Every pgid
            # is examined, even inside another page's span, since a stale span may cover live pages.
            if page_id == pgid and flags in (_LEAF_PAGE, _BRANCH_PAGE) and pgid < high_water:
                span = (overflow + 1) * ps
                if pgid + overflow >= high_water:
                    pass  # cannot be a live page: it would end past the database
                elif span > max_span:
                    kind = _TOO_BIG
                    span_note = span
                elif size - off < span:
                    if not final:
                        need = span
                        break
                    kind = _CUT
                    span_note = overflow + 1
                elif flags == _LEAF_PAGE:
                    summary = _summarize_leaf(view[off : off + span], count)
                    if summary is not None:
                        crc, length, count, revision, all_buckets, data_end = summary
                        if revision is None:
                            kind = _LEAF
                        else:
                            kind = _LEAF_REV
                            rev = revision
                        if all_buckets:
                            self._bucket_leaves[pgid] = bytes(view[off : off + data_end])
                elif _ELEM + _ELEM * count <= span:
                    kind = _BRANCH
                    self._branches[pgid] = array(
                        "Q", view[off + _ELEM : off + _ELEM * (count + 1)].cast("Q")[1::2]
                    )
            if kind in (_NONE, _BRANCH):
                count = 0
            kinds.append(kind)
            crcs.append(crc)
            lens.append(length)
            counts.append(count)
            revs.append(rev)
            spans.append(span_note)
            off += ps
            pgid += 1
        self._next = pgid
        self._need = need
        return off

    # -- resolving ---------------------------------------------------------------------------

    def finish(self) -> SnapshotStatus:
        """Resolve the tree from the page summaries; ``UsageError`` says why it cannot be."""
        if self._status is not None:
            return self._status
        if self._dead is not None:
            raise UsageError(self._dead, hint="check that the file is an etcd snapshot (a bbolt database)")
        if self._meta is None:
            if self._fed < self._need:
                raise UsageError(
                    f"not an etcd snapshot: no valid bbolt meta page (only {self._fed} bytes)",
                    hint="the file is empty or truncated",
                )
            self._read_metas()
            if self._dead is not None or self._meta is None:
                raise UsageError(
                    self._dead or "not an etcd snapshot: no valid bbolt meta page",
                    hint="check that the file is an etcd snapshot (a bbolt database)",
                )
        if self._buf:
            with memoryview(self._buf) as view:
                self._drain(view, final=True)
            self._buf = bytearray()
        meta = self._meta
        self._visited = set()
        total_crc = 0
        total_key = 0
        revision = 0
        for name, root, inline in self._top_level_buckets():
            total_crc = crc32c_combine(total_crc, google_crc32c.value(name), len(name))
            if inline is not None:
                crc, length, keys, last_rev = self._inline_bucket(name, inline)
            else:
                crc, length, keys, last_rev = self._tree_bucket(name, root)
            total_crc = crc32c_combine(total_crc, crc, length)
            total_key += keys
            if name == _KEY_BUCKET and last_rev is not None:
                revision = last_rev
        if self._next < meta.high_water:
            raise UsageError(
                f"snapshot truncated: the database has {meta.high_water} pages but the file ends at page {self._next}",
                hint=_HINT,
            )
        self._status = SnapshotStatus(total_crc, revision, total_key, meta.high_water * self._page_size)
        return self._status

    def _top_level_buckets(self) -> Iterator[tuple[bytes, int, memoryview | None]]:
        """(name, root pgid, inline page or None) of each top-level bucket, in key order."""
        assert self._meta is not None
        for pgid in self._leaves(self._meta.root, "the root bucket"):
            if not self._count[pgid]:
                continue
            page = self._bucket_leaves.get(pgid)
            if page is None:
                raise UsageError(
                    f"not an etcd snapshot: the root bucket holds a key that is not a bucket (page {pgid})",
                    hint="etcdutl cannot read it either",
                )
            view = memoryview(page)
            fields = view[_ELEM : _ELEM * (self._count[pgid] + 1)].cast("I").tolist()
            for i in range(self._count[pgid]):
                _flags, pos, ksize, vsize = fields[4 * i : 4 * i + 4]
                start = _ELEM + _ELEM * i + pos
                name = bytes(view[start : start + ksize])
                value = view[start + ksize : start + ksize + vsize]
                root = int.from_bytes(value[:8], "little")
                yield name, root, (value[_ELEM:] if root == 0 else None)

    def _inline_bucket(self, name: bytes, page: memoryview) -> tuple[int, int, int, int | None]:
        # An inline bucket keeps its single leaf page inside its value, after the bucket header.
        if len(page) < _ELEM:
            raise UsageError(f"bucket {name!r} has a malformed inline page", hint=_HINT)
        _page_id, flags, count, _overflow = _HEADER.unpack_from(page, 0)
        summary = _summarize_leaf(page, count) if flags & _LEAF_PAGE else None
        if summary is None:
            raise UsageError(f"bucket {name!r} has a malformed inline page", hint=_HINT)
        return summary[0], summary[1], summary[2], summary[3]

    def _tree_bucket(self, name: bytes, root: int) -> tuple[int, int, int, int | None]:
        crc = 0
        length = 0
        keys = 0
        revision: int | None = None
        owner = f"bucket {name.decode(errors='replace')!r}"
        crcs, lens, counts, revs, kinds = self._crc, self._len, self._count, self._rev, self._kind
        for pgid in self._leaves(root, owner):
            count = counts[pgid]
            if not count:
                continue
            crc = crc32c_combine(crc, crcs[pgid], lens[pgid])
            length += lens[pgid]
            keys += count
            revision = revs[pgid] if kinds[pgid] == _LEAF_REV else None
        if name == _KEY_BUCKET and keys and revision is None:
            raise UsageError(f"the last key of {owner} is too short to hold a revision", hint=_HINT)
        return crc, length, keys, revision

    def _leaves(self, root: int, owner: str) -> Iterator[int]:
        """The leaf pgids under ``root`` in key order, checking each page is really there."""
        stack = [root]
        while stack:
            pgid = stack.pop()
            self._check_page(pgid, owner)
            if self._kind[pgid] == _BRANCH:
                stack.extend(reversed(self._branches[pgid]))
            else:
                yield pgid

    def _check_page(self, pgid: int, owner: str) -> None:
        assert self._meta is not None
        high_water = self._meta.high_water
        if pgid >= high_water:
            raise UsageError(
                f"not a consistent bbolt database: {owner} references page {pgid}, "
                f"beyond its high-water mark {high_water}",
                hint=_HINT,
            )
        if pgid >= self._next:
            raise UsageError(
                f"snapshot truncated: page {pgid} referenced but the file ends at page {self._next}",
                hint=_HINT,
            )
        if pgid in self._visited:
            raise UsageError(f"not a consistent bbolt database: page {pgid} is referenced twice", hint=_HINT)
        self._visited.add(pgid)
        kind = self._kind[pgid]
        if kind == _CUT:
            raise UsageError(
                f"snapshot truncated: page {pgid} spans {self._span[pgid]} pages "
                f"but the file ends at page {self._next}",
                hint=_HINT,
            )
        if kind == _TOO_BIG:
            raise UsageError(
                f"status cannot be computed while streaming: page {pgid} of {owner} spans "
                f"{self._span[pgid]} bytes, more than the {self._max_span} a stream may buffer",
                hint="compute it from the stored file (`strongroom etcd snapshot status`)",
            )
        if kind == _NONE:
            raise UsageError(
                f"not a consistent bbolt database: {owner} references page {pgid}, which is not a tree page",
                hint=_HINT,
            )


def status_of_file(path: Path) -> SnapshotStatus:
    """The status of a snapshot (or bbolt db) file, read once from start to end.

    A file allows buffering any span it holds, so no page is refused for its size.
    """
    try:
        size = path.stat().st_size
        builder = StatusBuilder(max_span=max(DEFAULT_MAX_SPAN, size))
        with open(path, "rb") as handle:
            while chunk := handle.read(_CHUNK):
                builder.feed(chunk)
    except OSError as exc:
        raise UsageError(f"cannot read snapshot {path}: {exc.strerror}") from exc
    return builder.finish()
