"""Reading what restic prints: backup progress and summary, snapshots, stats; tags; restore progress sizes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from strongroom.errors import UsageError
from strongroom.volumes.restic import (
    BackupProgress,
    BackupSummary,
    ResticError,
    RestoreStats,
    directory_size,
    parse_backup_line,
    parse_snapshots,
    parse_stats,
    tag_filter,
)

# As restic 0.14 prints them with --json.
STATUS = b'{"message_type":"status","percent_done":0.5,"total_files":3,"files_done":1,"total_bytes":2048,"bytes_done":1024}\n'
SUMMARY = (
    b'{"message_type":"summary","files_new":2,"files_changed":1,"files_unmodified":4,"dirs_new":1,'
    b'"dirs_changed":0,"dirs_unmodified":0,"data_blobs":2,"tree_blobs":2,"data_added":101345,'
    b'"total_files_processed":7,"total_bytes_processed":100006,"total_duration":0.21,"snapshot_id":"b9272d35"}\n'
)
SNAPSHOTS = (
    '[{"time":"2026-01-02T10:00:00.1Z","tree":"8c45","paths":["/host_pods/u/volumes/x/data"],'
    '"hostname":"velero","username":"root","tags":["ns=app","pvc-uid=1234","backup=b1"],'
    '"id":"b9272d35d5e99b47","short_id":"b9272d35"}]'
)


def test_status_line_is_progress() -> None:
    assert parse_backup_line(STATUS) == BackupProgress(bytes_done=1024, total_bytes=2048)


def test_first_status_line_without_byte_counts_is_zero_progress() -> None:
    assert parse_backup_line(b'{"message_type":"status","percent_done":0}') == BackupProgress(0, 0)


def test_summary_line_gives_snapshot_and_bytes_added() -> None:
    assert parse_backup_line(SUMMARY) == BackupSummary(
        snapshot_id="b9272d35",
        data_added=101345,
        total_bytes_processed=100006,
        total_files_processed=7,
        files_new=2,
        files_changed=1,
        files_unmodified=4,
    )


@pytest.mark.parametrize(
    "line",
    [b"", b"not json", b"[1, 2]", b'{"message_type":"error","error":{}}', b'{"message_type":"summary"}'],
)
def test_other_lines_are_ignored(line: bytes) -> None:
    assert parse_backup_line(line) is None


def test_snapshots_are_parsed_with_key_value_tags() -> None:
    (snapshot,) = parse_snapshots(SNAPSHOTS)
    assert snapshot.short_id == "b9272d35"
    assert snapshot.id == "b9272d35d5e99b47"
    assert snapshot.hostname == "velero"
    assert snapshot.tags == {"ns": "app", "pvc-uid": "1234", "backup": "b1"}
    assert snapshot.paths == ("/host_pods/u/volumes/x/data",)


def test_no_snapshots_is_an_empty_list() -> None:
    assert parse_snapshots("[]") == []
    assert parse_snapshots("") == []


def test_snapshots_output_that_is_not_json_is_a_restic_error() -> None:
    with pytest.raises(ResticError, match="not JSON"):
        parse_snapshots("Fatal: oops")


def test_stats_give_the_restore_size() -> None:
    assert parse_stats('{"total_size":100006,"total_file_count":4,"snapshots_count":1}') == RestoreStats(
        100006, 4
    )


def test_tag_filter_joins_all_tags_so_restic_requires_each() -> None:
    assert tag_filter({"volume": "data", "pod-uid": "u-1"}) == "pod-uid=u-1,volume=data"


def test_tag_with_a_comma_is_refused() -> None:
    with pytest.raises(UsageError, match="may not contain ','"):
        tag_filter({"backup": "a,b"})


def test_directory_size_counts_regular_files_below_and_not_symlink_targets(tmp_path: Path) -> None:
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    (tmp_path / "a").write_bytes(b"x" * 10)
    (tmp_path / "sub" / "deeper" / "b").write_bytes(b"y" * 5)
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.write_bytes(b"z" * 1000)
    os.symlink(outside, tmp_path / "link")
    assert directory_size(tmp_path) == 15
