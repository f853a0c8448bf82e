"""The node agent's file steps: parents of incremental backups, done markers, and the restore-wait helper."""

from __future__ import annotations

from pathlib import Path

import pytest

from strongroom.cli.main import run_cli
from strongroom.errors import StrongroomError
from strongroom.volumes import DONE_DIR, parent_tags, restores_done, wait_for_restores, write_done_marker


def test_parent_of_a_pvc_volume_is_found_by_the_pvc_uid() -> None:
    tags = {"pvc-uid": "c-1", "pod-uid": "p-1", "volume": "data", "backup": "b2"}
    assert parent_tags(tags) == {"pvc-uid": "c-1"}


def test_parent_of_another_volume_is_found_by_pod_and_volume() -> None:
    assert parent_tags({"pod-uid": "p-1", "volume": "cache", "backup": "b2"}) == {
        "pod-uid": "p-1",
        "volume": "cache",
    }


def test_without_identifying_tags_there_is_no_parent() -> None:
    assert parent_tags({"backup": "b2"}) == {}


def test_done_marker_replaces_markers_of_earlier_restores(tmp_path: Path) -> None:
    (tmp_path / DONE_DIR).mkdir()
    (tmp_path / DONE_DIR / "old-restore").touch()
    marker = write_done_marker(tmp_path, "uid-2")
    assert marker == tmp_path / ".velero" / "uid-2"
    assert sorted(p.name for p in (tmp_path / DONE_DIR).iterdir()) == ["uid-2"]


def test_done_marker_with_a_path_in_the_uid_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StrongroomError, match="invalid restore UID"):
        write_done_marker(tmp_path, "../x")


def volumes(root: Path, *names: str) -> None:
    for name in names:
        (root / name).mkdir(parents=True)


def test_restores_are_done_only_when_every_volume_has_the_marker(tmp_path: Path) -> None:
    volumes(tmp_path, "data", "logs")
    (tmp_path / "not-a-volume").write_text("files are skipped")
    write_done_marker(tmp_path / "data", "uid-1")
    assert restores_done(tmp_path, "uid-1") == (False, ["logs"])
    write_done_marker(tmp_path / "logs", "another-restore")
    assert restores_done(tmp_path, "uid-1") == (False, ["logs"])
    write_done_marker(tmp_path / "logs", "uid-1")
    assert restores_done(tmp_path, "uid-1") == (True, [])


def test_wait_for_restores_returns_when_markers_appear_and_removes_them(tmp_path: Path) -> None:
    volumes(tmp_path, "data", "logs")
    (tmp_path / "data" / "app.db").write_text("restored")
    pending = ["data", "logs"]
    lines: list[str] = []

    def restore_one(_: float) -> None:
        # Each check finds one more volume restored, as the node agent finishes them one by one.
        write_done_marker(tmp_path / pending.pop(0), "uid-1")

    assert wait_for_restores(tmp_path, "uid-1", report=lines.append, sleep=restore_one) is True
    assert not (tmp_path / "data" / DONE_DIR).exists()
    assert not (tmp_path / "logs" / DONE_DIR).exists()
    assert (tmp_path / "data" / "app.db").read_text() == "restored"
    assert lines == [
        "waiting for the restore of: data, logs",
        "waiting for the restore of: logs",
        "all pod volume restores are done",
    ]


def test_wait_for_restores_gives_up_after_its_timeout(tmp_path: Path) -> None:
    volumes(tmp_path, "data")
    assert wait_for_restores(tmp_path, "uid-1", timeout=0, sleep=lambda _: None) is False
    assert not (tmp_path / "data" / DONE_DIR).exists()


def test_restore_wait_command_exits_zero_once_all_volumes_are_restored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    volumes(tmp_path, "data")
    write_done_marker(tmp_path / "data", "uid-9")
    code = run_cli(["restore-wait", "--restore-uid", "uid-9", "--restores-dir", str(tmp_path)])
    assert code == 0
    assert "all pod volume restores are done" in capsys.readouterr().out
    assert not (tmp_path / "data" / DONE_DIR).exists()


def test_restore_wait_command_refuses_a_uid_with_a_slash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run_cli(["restore-wait", "--restore-uid", "a/b", "--restores-dir", str(tmp_path)])
    assert code == 2
    assert "invalid --restore-uid" in capsys.readouterr().err
