"""BackupReader validates a whole tarball before restoring anything from it."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Iterator

import pytest
from tests.unit.archive.builders import (
    Entry,
    deployment,
    file,
    k8s_object,
    persistent_volume,
    pod,
    tar_bytes,
    tar_gz,
    velero_tarball,
    write_backup,
)

from strongroom.archive import (
    ArchiveError,
    BackupReader,
    FormatVersion,
    GroupResource,
    ItemPath,
    UnsupportedFormatError,
)

HPA = GroupResource("horizontalpodautoscalers", "autoscaling")
POD = json.dumps(pod("bar", "foo"))


def _mixed_backup() -> bytes:
    return write_backup(
        [
            (pod("bar", "foo"), "", "v1", "pods", True),
            (deployment("web", "prod"), "apps", "v1", "deployments", True),
            (persistent_volume("pv-1"), "", "v1", "persistentvolumes", True),
            (
                k8s_object("autoscaling/v2", "HorizontalPodAutoscaler", "web", "prod"),
                "autoscaling",
                "v2",
                "horizontalpodautoscalers",
                True,
            ),
            (
                k8s_object("autoscaling/v1", "HorizontalPodAutoscaler", "web", "prod"),
                "autoscaling",
                "v1",
                "horizontalpodautoscalers",
                False,
            ),
        ]
    )


class _OneWayStream(io.RawIOBase):
    """A stream that cannot seek, like an HTTP response body."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readinto(self, buffer: bytearray | memoryview) -> int:
        chunk = self._data.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


def _verify(data: bytes) -> None:
    BackupReader(io.BytesIO(data)).verify()


def test_round_trip_returns_every_copy_of_every_item() -> None:
    reader = BackupReader(io.BytesIO(_mixed_backup()))

    summary = reader.verify()
    items = list(reader.items())

    assert summary.format_version == FormatVersion(1, 1, 0)
    assert summary.item_entries == 9
    assert [item.path for item in items] == [
        ItemPath(GroupResource("pods"), "foo", "bar"),
        ItemPath(GroupResource("pods"), "foo", "bar", "v1", preferred=True),
        ItemPath(GroupResource("deployments", "apps"), "prod", "web"),
        ItemPath(GroupResource("deployments", "apps"), "prod", "web", "v1", preferred=True),
        ItemPath(GroupResource("persistentvolumes"), None, "pv-1"),
        ItemPath(GroupResource("persistentvolumes"), None, "pv-1", "v1", preferred=True),
        ItemPath(HPA, "prod", "web"),
        ItemPath(HPA, "prod", "web", "v2", preferred=True),
        ItemPath(HPA, "prod", "web", "v1"),
    ]
    assert items[0].object == pod("bar", "foo")
    assert items[4].object == persistent_volume("pv-1")
    assert items[8].object["apiVersion"] == "autoscaling/v1"


def test_where_selects_the_classic_copies_a_plain_restore_uses() -> None:
    reader = BackupReader(io.BytesIO(_mixed_backup()))
    reader.verify()

    classic = list(reader.items(lambda path: path.version is None))

    assert [(str(item.group_resource), item.namespace, item.name) for item in classic] == [
        ("pods", "foo", "bar"),
        ("deployments.apps", "prod", "web"),
        ("persistentvolumes", None, "pv-1"),
        ("horizontalpodautoscalers.autoscaling", "prod", "web"),
    ]


def test_verify_reports_the_sha256_of_the_file_and_checks_an_expected_one() -> None:
    data = _mixed_backup()
    digest = hashlib.sha256(data).hexdigest()

    assert BackupReader(io.BytesIO(data)).verify(expected_sha256=digest).sha256 == digest
    with pytest.raises(ArchiveError, match="SHA-256"):
        BackupReader(io.BytesIO(data)).verify(expected_sha256="0" * 64)


def test_reader_starts_where_the_file_object_stood() -> None:
    data = _mixed_backup()
    stream = io.BytesIO(b"prefix" + data)
    stream.seek(6)
    reader = BackupReader(stream)

    assert reader.verify().size == len(data)
    assert len(list(reader.items())) == 9


@pytest.mark.parametrize("fraction", [0.0, 0.05, 0.25, 0.5, 0.75, 0.95])
def test_truncated_tarball_is_detected_by_verify(fraction: float) -> None:
    data = _mixed_backup()

    with pytest.raises(ArchiveError, match="damaged or truncated"):
        _verify(data[: int(len(data) * fraction)])


@pytest.mark.parametrize("missing", [1, 4, 8, 9])
def test_tarball_cut_inside_the_gzip_trailer_is_detected(missing: int) -> None:
    data = _mixed_backup()

    with pytest.raises(ArchiveError, match="damaged or truncated"):
        _verify(data[:-missing])


def test_flipped_bytes_in_the_compressed_stream_never_pass_as_different_content() -> None:
    data = _mixed_backup()
    original = gzip.decompress(data)
    # Past the gzip header, damage must fail the deflate decoder, the CRC or
    # the length check. Deflate has a little redundancy (code lengths of
    # unused symbols), so a flip may decode to the very same bytes; that is
    # harmless, and the SHA-256 check below still catches it.
    passed_as_different = []
    for position in range(10, len(data), 3):
        damaged = bytearray(data)
        damaged[position] ^= 0xFF
        try:
            _verify(bytes(damaged))
        except ArchiveError:
            continue
        if gzip.decompress(bytes(damaged)) != original:
            passed_as_different.append(position)
    assert passed_as_different == []


def test_damage_that_gzip_cannot_see_is_caught_by_the_checksum() -> None:
    data = bytearray(_mixed_backup())
    data[4] ^= 0xFF  # the gzip header's MTIME is covered by no CRC
    expected = hashlib.sha256(_mixed_backup()).hexdigest()

    _verify(bytes(data))
    with pytest.raises(ArchiveError, match="SHA-256"):
        BackupReader(io.BytesIO(bytes(data))).verify(expected_sha256=expected)


def test_damaged_tar_header_inside_intact_gzip_is_not_taken_for_the_end() -> None:
    raw = bytearray(gzip.decompress(_mixed_backup()))
    # Second member's header: tarfile alone would silently stop there.
    raw[1024 + 100] ^= 0x01

    with pytest.raises(ArchiveError, match="unreadable tar header at offset 1024"):
        _verify(gzip.compress(bytes(raw)))


def test_tar_without_end_of_archive_marker_is_detected() -> None:
    raw = gzip.decompress(_mixed_backup())
    # Keep the last member and its padding, drop the zero blocks after it.
    end_of_last_member = -(-len(raw.rstrip(b"\x00")) // 512) * 512

    with pytest.raises(ArchiveError, match="end-of-archive marker"):
        _verify(gzip.compress(raw[:end_of_last_member]))


def test_data_after_the_end_of_archive_marker_is_detected() -> None:
    raw = gzip.decompress(_mixed_backup())

    with pytest.raises(ArchiveError, match="data after its end-of-archive marker"):
        _verify(gzip.compress(raw + b"trailing"))


def test_not_gzip_at_all_is_detected() -> None:
    with pytest.raises(ArchiveError, match="damaged or truncated"):
        _verify(b"this is not a backup")


@pytest.mark.parametrize(
    ("entry", "complaint"),
    [
        (file("../../etc/cron.d/evil", "x"), "'..' component"),
        (file("resources/pods/namespaces/foo/../../../../x.json", POD), "'..' component"),
        (file("/etc/passwd", "x"), "absolute"),
        (
            Entry("resources/pods/namespaces/foo/bar.json", type=tarfile.SYMTYPE, linkname="/etc/shadow"),
            "link",
        ),
        (
            Entry(
                "resources/pods/namespaces/foo/bar.json", type=tarfile.LNKTYPE, linkname="metadata/version"
            ),
            "link",
        ),
        (Entry("resources/pods/namespaces/foo/fifo.json", type=tarfile.FIFOTYPE), "not a regular file"),
        (Entry("dev/sda", type=tarfile.BLKTYPE), "not a regular file"),
        (Entry("../outside/", type=tarfile.DIRTYPE), "'..' component"),
    ],
)
def test_unsafe_entries_are_refused(entry: Entry, complaint: str) -> None:
    data = tar_gz([file("metadata/version", "1.1.0\n"), entry])

    with pytest.raises(ArchiveError, match=complaint):
        _verify(data)


def test_non_json_item_is_refused_naming_its_path() -> None:
    data = velero_tarball([("resources/pods/namespaces/foo/bar.json", "{not json")])

    with pytest.raises(ArchiveError, match=r"resources/pods/namespaces/foo/bar\.json is not valid JSON"):
        _verify(data)


@pytest.mark.parametrize(
    ("content", "complaint"),
    [(b"[1, 2]", "not an object"), (b"\xff\xfe", "not UTF-8"), (b'{"a": NaN}', "not valid JSON")],
)
def test_item_that_is_not_a_json_object_is_refused(content: bytes, complaint: str) -> None:
    data = velero_tarball([("resources/configmaps/namespaces/ns/cm.json", content)])

    with pytest.raises(ArchiveError, match=complaint):
        _verify(data)


def test_member_larger_than_the_bound_is_refused_before_it_is_read() -> None:
    data = velero_tarball([("resources/configmaps/namespaces/ns/big.json", json.dumps({"x": "y" * 5_000}))])

    with pytest.raises(ArchiveError, match=r"big\.json is \d+ bytes, more than the 4096 bytes"):
        BackupReader(io.BytesIO(data), max_item_bytes=4096).verify()


def test_format_version_2_is_refused() -> None:
    data = velero_tarball([("resources/pods/namespaces/foo/bar.json", POD)], version="2.0.0\n")

    with pytest.raises(UnsupportedFormatError, match=r"2\.0\.0 is not supported"):
        _verify(data)
    with pytest.raises(UnsupportedFormatError):
        list(BackupReader(io.BytesIO(data)).items())


def test_tarball_without_version_file_is_not_a_velero_backup() -> None:
    data = tar_gz([file("resources/pods/namespaces/foo/bar.json", POD)])

    with pytest.raises(ArchiveError, match="has no metadata/version"):
        _verify(data)


def test_version_file_twice_is_refused() -> None:
    data = velero_tarball([("metadata/version", "1.1.0\n")])

    with pytest.raises(ArchiveError, match="twice"):
        _verify(data)


def test_unknown_files_are_refused_in_format_1_1() -> None:
    data = velero_tarball([("resources/pods/namespaces/foo/bar.json", POD), ("metadata/extra", "x")])

    with pytest.raises(ArchiveError, match="1 file\\(s\\) outside Velero's layout: metadata/extra"):
        _verify(data)


def test_unknown_files_of_a_newer_minor_version_are_skipped() -> None:
    data = velero_tarball(
        [("resources/pods/namespaces/foo/bar.json", POD), ("metadata/checksums", "x")], version="1.2.0\n"
    )
    reader = BackupReader(io.BytesIO(data))

    summary = reader.verify()

    assert summary.ignored == ("metadata/checksums",)
    assert [item.name for item in reader.items()] == ["bar"]


def test_items_needs_verify_first_when_the_version_file_comes_late() -> None:
    data = tar_gz([file("resources/pods/namespaces/foo/bar.json", POD), file("metadata/version", "1.1.0\n")])

    with pytest.raises(ArchiveError, match="call verify\\(\\) before items\\(\\)"):
        list(BackupReader(io.BytesIO(data)).items())
    reader = BackupReader(io.BytesIO(data))
    reader.verify()
    assert [item.name for item in reader.items()] == ["bar"]


def test_items_refuses_after_a_failed_verify() -> None:
    data = _mixed_backup()
    reader = BackupReader(io.BytesIO(data[:-20]))

    with pytest.raises(ArchiveError):
        reader.verify()
    with pytest.raises(ArchiveError, match="failed verification"):
        list(reader.items())


def test_a_one_way_stream_can_be_read_once_but_not_verified_then_read() -> None:
    data = _mixed_backup()

    assert len(list(BackupReader(io.BufferedReader(_OneWayStream(data))).items())) == 9

    reader = BackupReader(io.BufferedReader(_OneWayStream(data)))
    reader.verify()
    with pytest.raises(ArchiveError, match="cannot be read twice"):
        list(reader.items())


def test_streaming_items_stops_at_damage_it_reaches() -> None:
    data = _mixed_backup()
    reader = BackupReader(io.BytesIO(data[: len(data) // 2]))
    items: Iterator[object] = reader.items()

    with pytest.raises(ArchiveError, match="damaged or truncated"):
        for _ in items:
            pass


def test_pax_and_gnu_long_names_from_other_tar_writers_are_read() -> None:
    name = "n" * 200
    for fmt in (tarfile.PAX_FORMAT, tarfile.GNU_FORMAT):
        data = gzip.compress(
            tar_bytes(
                [file("metadata/version", "1.1.0\n"), file(f"resources/pods/namespaces/ns/{name}.json", POD)],
                fmt=fmt,
            )
        )
        assert [item.name for item in BackupReader(io.BytesIO(data)).items()] == [name]
