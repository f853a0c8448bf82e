"""Server mode without a cluster: the DownloadRequest URL fetch, Backups from schedules, mode choice."""

from __future__ import annotations

import http.server
import io
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from strongroom.backup.request import BackupFlags
from strongroom.cli.server_api import copy_url
from strongroom.cli.server_commands import _from_schedule, backup_manifest
from strongroom.cli.server_mode import Mode, choose
from strongroom.errors import NotFoundError, UnavailableError


def test_a_file_url_is_read_from_the_shared_directory(tmp_path: Path) -> None:
    served = tmp_path / "b1-logs.gz"
    served.write_bytes(b"gzip bytes")
    into = io.BytesIO()

    size = copy_url(served.as_uri(), into)

    assert size == 10
    assert into.getvalue() == b"gzip bytes"


def test_a_file_url_this_host_does_not_share_says_so(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError) as caught:
        copy_url((tmp_path / "elsewhere").as_uri(), io.BytesIO())

    assert "does not exist on this host" in caught.value.message
    assert caught.value.hint is not None and "shares with the server" in caught.value.hint


def test_a_url_of_another_scheme_is_refused() -> None:
    with pytest.raises(UnavailableError, match="unsupported scheme 'ftp'"):
        copy_url("ftp://example.com/x", io.BytesIO())


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.startswith("/present"):
            body = b"signed content"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.send_response(404)
            self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def object_store() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_presigned_url_is_fetched(object_store: str) -> None:
    into = io.BytesIO()

    copy_url(f"{object_store}/present?X-Amz-Signature=secret", into)

    assert into.getvalue() == b"signed content"


def test_a_missing_object_is_not_found_and_the_signature_is_not_shown(object_store: str) -> None:
    with pytest.raises(NotFoundError) as caught:
        copy_url(f"{object_store}/absent?X-Amz-Signature=secret", io.BytesIO())

    assert "404" in caught.value.message
    assert "secret" not in caught.value.message


def test_a_backup_from_a_schedule_takes_its_template_labels_and_owner() -> None:
    schedule = {
        "metadata": {"name": "daily", "uid": "u-1", "labels": {"tier": "gold"}, "annotations": {"a": "b"}},
        "spec": {
            "schedule": "0 7 * * *",
            "useOwnerReferencesInBackup": True,
            "template": {"includedNamespaces": ["app"], "ttl": "24h0m0s"},
        },
    }

    backup = _from_schedule(schedule, "daily-20260101070000", "velero")

    assert backup["spec"] == {"includedNamespaces": ["app"], "ttl": "24h0m0s"}
    assert backup["metadata"]["labels"] == {"tier": "gold", "velero.io/schedule-name": "daily"}
    assert backup["metadata"]["annotations"] == {"a": "b"}
    assert backup["metadata"]["ownerReferences"][0]["uid"] == "u-1"


def test_template_labels_win_over_the_schedules_own() -> None:
    schedule = {
        "metadata": {"name": "daily", "labels": {"tier": "gold"}},
        "spec": {"template": {"metadata": {"labels": {"env": "prod"}}}},
    }

    backup = _from_schedule(schedule, "b", "velero")

    assert backup["metadata"]["labels"] == {"env": "prod", "velero.io/schedule-name": "daily"}
    assert "ownerReferences" not in backup["metadata"]


def test_a_server_backup_without_a_location_leaves_the_choice_to_the_server() -> None:
    manifest = backup_manifest(BackupFlags(name="b1", include_namespaces=["app"]), None)
    named = backup_manifest(BackupFlags(name="b1"), "s3")

    assert "storageLocation" not in manifest["spec"]
    assert "velero.io/storage-location" not in manifest["metadata"]["labels"]
    assert named["spec"]["storageLocation"] == "s3"


def test_without_a_kubeconfig_auto_mode_is_local_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    monkeypatch.setenv("STRONGROOM_CONFIG_DIR", str(tmp_path / "cfg"))

    target = choose(Mode.auto, None, None, None)

    assert not target.server
    assert target.namespace == "velero"
    assert "Local mode: no kubeconfig" in capsys.readouterr().err


def test_local_mode_keeps_the_namespace_given() -> None:
    target = choose(Mode.local, "openshift-adp", None, None, announce=False)

    assert not target.server and target.namespace == "openshift-adp"
