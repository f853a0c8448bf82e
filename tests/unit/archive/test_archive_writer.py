"""BackupWriter streams a tarball Velero can read, and a resource list shaped like Velero's."""

from __future__ import annotations

import gc
import gzip
import hashlib
import io
import json
import shutil
import subprocess
import tarfile
import tracemalloc
import weakref
from typing import Any

import pytest
from tests.unit.archive.builders import MTIME, deployment, k8s_object, persistent_volume, pod, write_backup

from strongroom.archive import ArchiveError, BackupReader, BackupWriter


class _Discard:
    """A sink that keeps nothing, so memory measurements see only the writer."""

    def __init__(self) -> None:
        self.size = 0

    def write(self, data: bytes, /) -> int:
        self.size += len(data)
        return len(data)


class _TrackedDict(dict[str, Any]):
    """A dict that can be weakly referenced, to prove the writer lets items go."""


def _members(data: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return tar.getmembers()


def _standard_backup() -> bytes:
    return write_backup(
        [
            (pod("bar", "foo"), "", "v1", "pods", True),
            (deployment("bar", "foo"), "apps", "v1", "deployments", True),
            (persistent_volume("pv-1"), "", "v1", "persistentvolumes", True),
        ]
    )


def test_version_file_comes_first_and_items_follow_in_velero_layout() -> None:
    members = _members(_standard_backup())

    assert [member.name for member in members] == [
        "metadata/version",
        "resources/pods/namespaces/foo/bar.json",
        "resources/pods/v1-preferredversion/namespaces/foo/bar.json",
        "resources/deployments.apps/namespaces/foo/bar.json",
        "resources/deployments.apps/v1-preferredversion/namespaces/foo/bar.json",
        "resources/persistentvolumes/cluster/pv-1.json",
        "resources/persistentvolumes/v1-preferredversion/cluster/pv-1.json",
    ]


def test_version_file_holds_the_format_version_and_a_newline() -> None:
    with tarfile.open(fileobj=io.BytesIO(_standard_backup()), mode="r:gz") as tar:
        handle = tar.extractfile("metadata/version")
        assert handle is not None
        assert handle.read() == b"1.1.0\n"


def test_members_are_regular_files_with_mode_0755_and_the_given_time() -> None:
    # Velero's extractor makes each parent directory with the member's mode;
    # anything without the execute bits leaves a non-root Velero unable to
    # create files in it.
    for member in _members(_standard_backup()):
        assert member.type == tarfile.REGTYPE
        assert member.mode == 0o755
        assert member.mtime == MTIME
        assert (member.uid, member.gid, member.uname, member.gname) == (0, 0, "", "")


def test_item_json_is_compact_with_sorted_keys_and_go_html_escaping() -> None:
    obj = k8s_object("v1", "ConfigMap", "cm", "ns", data={"z": "<b>&</b>", "a": "é\u2028"})
    data = write_backup([(obj, "", "v1", "configmaps", False)])

    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        handle = tar.extractfile("resources/configmaps/v1/namespaces/ns/cm.json")
        assert handle is not None
        raw = handle.read()

    assert raw == (
        b'{"apiVersion":"v1","data":{"a":"\xc3\xa9\\u2028","z":"\\u003cb\\u003e\\u0026\\u003c/b\\u003e"},'
        b'"kind":"ConfigMap","metadata":{"name":"cm","namespace":"ns"}}'
    )
    assert json.loads(raw) == obj


def test_same_items_and_time_give_identical_bytes() -> None:
    assert _standard_backup() == _standard_backup()


def test_result_carries_sha256_and_size_of_exactly_the_bytes_written() -> None:
    buffer = io.BytesIO()
    with BackupWriter(buffer, mtime=MTIME) as writer:
        writer.add(pod("a", "ns"), group="", version="v1", resource="pods", preferred=True)
    result = writer.close()

    assert result.sha256 == hashlib.sha256(buffer.getvalue()).hexdigest()
    assert result.size == len(buffer.getvalue())
    assert (result.item_count, result.entry_count) == (1, 3)


def test_output_is_gzip_as_go_writes_it_without_name_or_time() -> None:
    data = _standard_backup()

    assert data[:4] == b"\x1f\x8b\x08\x00"  # magic, deflate, no FNAME flag
    assert data[4:8] == b"\x00\x00\x00\x00"  # MTIME zero


def test_resource_list_maps_api_version_and_kind_to_sorted_namespaced_names() -> None:
    buffer = io.BytesIO()
    with BackupWriter(buffer, mtime=MTIME) as writer:
        writer.add(pod("pod2", "ns2"), group="", version="v1", resource="pods", preferred=True)
        writer.add(pod("pod1", "ns1"), group="", version="v1", resource="pods", preferred=True)
        writer.add(
            deployment("web", "ns1"), group="apps", version="v1", resource="deployments", preferred=True
        )
        writer.add(
            persistent_volume("pv1"), group="", version="v1", resource="persistentvolumes", preferred=True
        )
    result = writer.close()

    assert result.resource_list == {
        "apps/v1/Deployment": ["ns1/web"],
        "v1/PersistentVolume": ["pv1"],
        "v1/Pod": ["ns1/pod1", "ns2/pod2"],
    }
    assert result.item_count == 4
    assert result.entry_count == 9


def test_the_same_item_cannot_be_added_twice() -> None:
    with BackupWriter(io.BytesIO(), mtime=MTIME) as writer:
        writer.add(pod("a", "ns"), group="", version="v1", resource="pods", preferred=True)
        with pytest.raises(ArchiveError, match="v1/Pod ns/a was already added"):
            writer.add(pod("a", "ns"), group="", version="v1", resource="pods", preferred=True)


@pytest.mark.parametrize(
    ("item", "complaint"),
    [
        ({"apiVersion": "v1", "kind": "Pod"}, "no metadata"),
        (k8s_object("v1", "Pod", ""), "no metadata.name"),
        (k8s_object("v1", "Pod", "../../etc", "ns"), "cannot be used"),
        (k8s_object("v1", "Pod", "p", "a/b"), "cannot be used"),
        ({"apiVersion": "v1", "metadata": {"name": "p"}}, "no kind"),
        (k8s_object("apps/v1", "Pod", "p", "ns"), "apiVersion 'apps/v1'"),
        (
            k8s_object("v1", "Pod", "p", "ns", spec={"x": float("nan")}),
            "v1/Pod ns/p: object cannot be encoded",
        ),
    ],
)
def test_a_bad_item_is_refused_and_the_backup_goes_on(item: dict[str, Any], complaint: str) -> None:
    buffer = io.BytesIO()
    with BackupWriter(buffer, mtime=MTIME) as writer:
        with pytest.raises(ArchiveError, match=complaint):
            writer.add(item, group="", version="v1", resource="pods", preferred=True)
        writer.add(pod("good", "ns"), group="", version="v1", resource="pods", preferred=True)

    reader = BackupReader(io.BytesIO(buffer.getvalue()))
    assert reader.verify().item_entries == 2
    assert [item.name for item in reader.items()] == ["good", "good"]


def test_a_failed_backup_leaves_a_tarball_every_reader_sees_as_truncated() -> None:
    buffer = io.BytesIO()
    with pytest.raises(RuntimeError), BackupWriter(buffer, mtime=MTIME) as writer:
        for index in range(50):
            writer.add(pod(f"p{index}", "ns"), group="", version="v1", resource="pods", preferred=True)
        raise RuntimeError("the API server went away")

    with pytest.raises(EOFError):
        gzip.decompress(buffer.getvalue())
    with pytest.raises(ArchiveError, match="damaged or truncated"):
        BackupReader(io.BytesIO(buffer.getvalue())).verify()
    with pytest.raises(ArchiveError, match="aborted"):
        writer.add(pod("late", "ns"), group="", version="v1", resource="pods", preferred=True)


def test_long_names_round_trip_through_ustar_prefix_and_pax_headers() -> None:
    long_namespace = "n" * 63
    long_name = "x" * 253  # the longest Kubernetes object name
    data = write_backup([(pod(long_name, long_namespace), "", "v1", "pods", True)])

    names = [member.name for member in _members(data)]

    assert f"resources/pods/namespaces/{long_namespace}/{long_name}.json" in names
    assert f"resources/pods/v1-preferredversion/namespaces/{long_namespace}/{long_name}.json" in names
    assert [item.name for item in BackupReader(io.BytesIO(data)).items()] == [long_name, long_name]


def test_non_ascii_names_round_trip_through_pax_headers() -> None:
    # Path-segment names (RBAC roles, for one) may hold any character but "/".
    name = "système:lecteur-ü"
    role = k8s_object("rbac.authorization.k8s.io/v1", "ClusterRole", name)
    data = write_backup([(role, "rbac.authorization.k8s.io", "v1", "clusterroles", True)])

    assert f"resources/clusterroles.rbac.authorization.k8s.io/cluster/{name}.json" in [
        member.name for member in _members(data)
    ]
    assert [item.object for item in BackupReader(io.BytesIO(data)).items()] == [role, role]


@pytest.mark.skipif(shutil.which("tar") is None, reason="GNU tar is not installed")
def test_gnu_tar_lists_the_same_members() -> None:
    data = write_backup(
        [
            (pod("x" * 200, "ns"), "", "v1", "pods", True),
            (persistent_volume("pv"), "", "v1", "persistentvolumes", True),
        ]
    )

    listing = subprocess.run(
        ["tar", "-tzf", "-"], input=data, capture_output=True, check=True
    ).stdout.decode()

    assert listing.splitlines() == [member.name for member in _members(data)]


def test_writer_keeps_no_item_after_writing_it() -> None:
    sink = _Discard()
    refs: list[weakref.ref[_TrackedDict]] = []
    with BackupWriter(sink, mtime=MTIME) as writer:
        for index in range(20_000):
            item = _TrackedDict(pod(f"pod-{index:05d}", f"ns-{index % 40}"))
            refs.append(weakref.ref(item))
            writer.add(item, group="", version="v1", resource="pods", preferred=True)
        del item
        gc.collect()
        assert sum(ref() is not None for ref in refs) == 0
    assert writer.close().item_count == 20_000
    assert sink.size > 0


def test_writer_memory_grows_only_by_the_names_it_must_list() -> None:
    body = {"data": {"payload": "v" * 5_000}}
    count = 2_000
    tracemalloc.start()
    try:
        with BackupWriter(_Discard(), mtime=MTIME) as writer:
            baseline = tracemalloc.get_traced_memory()[0]
            for index in range(count):
                writer.add(
                    k8s_object("v1", "ConfigMap", f"cm-{index:05d}", "ns", **body),
                    group="",
                    version="v1",
                    resource="configmaps",
                    preferred=True,
                )
            grown = tracemalloc.get_traced_memory()[0] - baseline
    finally:
        tracemalloc.stop()

    # Keeping the items would cost over 5 kB each (10 MB); a resource-list
    # name and its share of the set cost a few hundred bytes.
    assert grown < count * 600
