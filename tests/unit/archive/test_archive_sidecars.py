"""Results, resource list and log files round-trip and match Velero's JSON shapes."""

from __future__ import annotations

import gzip
import hashlib
import io
import json

import pytest

from strongroom.archive import (
    ArchiveError,
    LogWriter,
    Result,
    Results,
    decode_resource_list,
    decode_results,
    encode_log,
    encode_resource_list,
    encode_results,
    iter_log_lines,
)


def test_results_round_trip() -> None:
    results = Results()
    results.errors.add("prod", "error backing up item: pods/web-0: timeout")
    results.errors.add(None, "error backing up item: persistentvolumes/pv-1")
    results.warnings.add_velero("volume snapshot location not found")

    assert decode_results(encode_results(results)) == results


def test_results_file_is_velero_json_with_empty_parts_left_out() -> None:
    results = Results()
    results.errors.add("", " resource: /pods name: /web-0 message: /Error backing up item")
    results.warnings.add("prod", "skipped")

    text = gzip.decompress(encode_results(results))

    assert text == (
        b'{"errors":{"cluster":[" resource: /pods name: /web-0 message: /Error backing up item"]},'
        b'"warnings":{"namespaces":{"prod":["skipped"]}}}\n'
    )


def test_empty_results_are_two_empty_objects() -> None:
    assert gzip.decompress(encode_results(Results())) == b'{"errors":{},"warnings":{}}\n'


def test_results_written_by_velero_are_read() -> None:
    velero_file = gzip.compress(
        json.dumps(
            {
                "errors": {"velero": ["failed to upload"], "namespaces": {"ns1": ["a", "b"]}},
                "warnings": {},
            }
        ).encode()
    )

    results = decode_results(velero_file)

    assert results.errors == Result(velero=["failed to upload"], namespaces={"ns1": ["a", "b"]})
    assert results.warnings.is_empty()
    assert results.errors.count() == 3


def test_results_merge_like_velero() -> None:
    first = Result(cluster=["c1"], namespaces={"a": ["x"]})
    first.merge(Result(velero=["v"], namespaces={"a": ["y"], "b": ["z"]}))

    assert first == Result(velero=["v"], cluster=["c1"], namespaces={"a": ["x", "y"], "b": ["z"]})


@pytest.mark.parametrize(
    "document",
    [
        b"[]",
        b'{"errors": []}',
        b'{"errors": {"cluster": "oops"}}',
        b'{"warnings": {"namespaces": {"a": [1]}}}',
    ],
)
def test_results_of_the_wrong_shape_are_refused(document: bytes) -> None:
    with pytest.raises(ArchiveError):
        decode_results(gzip.compress(document))


def test_resource_list_round_trip_sorts_entries_like_velero() -> None:
    resource_list = {
        "v1/Pod": ["ns2/pod2", "ns1/pod1"],
        "apps/v1/Deployment": ["ns1/web"],
        "v1/Namespace": ["ns1"],
    }

    data = encode_resource_list(resource_list)

    assert gzip.decompress(data) == (
        b'{"apps/v1/Deployment":["ns1/web"],"v1/Namespace":["ns1"],"v1/Pod":["ns1/pod1","ns2/pod2"]}\n'
    )
    assert decode_resource_list(data) == {
        "apps/v1/Deployment": ["ns1/web"],
        "v1/Namespace": ["ns1"],
        "v1/Pod": ["ns1/pod1", "ns2/pod2"],
    }


def test_resource_list_of_the_wrong_shape_is_refused() -> None:
    with pytest.raises(ArchiveError, match="not a list of strings"):
        decode_resource_list(gzip.compress(b'{"v1/Pod": "ns/pod"}'))


def test_log_lines_round_trip() -> None:
    lines = [
        'time="2024-01-01T00:00:00Z" level=info msg="Starting backup" backup=velero/b1',
        'time="2024-01-01T00:00:01Z" level=error msg="Error backing up item" name=web-0\n',
    ]

    assert list(iter_log_lines(encode_log(lines))) == [line.rstrip("\n") for line in lines]


def test_log_writer_reports_sha256_of_what_it_wrote() -> None:
    buffer = io.BytesIO()
    with LogWriter(buffer) as writer:
        writer.write_line("one")
        writer.write_line("two")

    assert writer.sha256 == hashlib.sha256(buffer.getvalue()).hexdigest()
    assert writer.size == len(buffer.getvalue())
    assert gzip.decompress(buffer.getvalue()) == b"one\ntwo\n"


def test_truncated_side_file_is_refused() -> None:
    data = encode_results(Results(errors=Result(cluster=["x" * 100])))

    with pytest.raises(ArchiveError, match="damaged or truncated"):
        decode_results(data[:-5])


def test_side_file_that_expands_beyond_the_bound_is_refused() -> None:
    bomb = gzip.compress(b"[" + b" " * 1_000_000 + b"]")

    with pytest.raises(ArchiveError, match="expands to more than"):
        decode_resource_list(bomb, max_bytes=64 * 1024)
