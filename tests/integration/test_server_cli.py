"""End to end: `strongroom install`, the real server process, and the command line in server mode.

What an administrator does: install, create a location, back up an
application with `--wait`, read its logs and contents, lose the namespace,
restore it, schedule backups, delete a backup, uninstall. The command line
finds the server by itself (auto mode) and says so.
"""

from __future__ import annotations

import gzip
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import Sandbox
from tests.integration.backupkit import Cli, deploy_sample, unique
from tests.integration.sandboxapi import eventually
from tests.integration.serverkit import ServerProcess, get, install_crds, shell_cli

pytestmark = pytest.mark.integration


@pytest.fixture
def cli(sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    return shell_cli(sandbox, tmp_path / "config", monkeypatch)


@pytest.fixture
def installed(sandbox: Sandbox, cli: Cli, tmp_path: Path) -> Iterator[tuple[str, ServerProcess]]:
    """strongroom installed in a namespace of its own, with its server running as a process."""
    install_crds(sandbox)
    namespace = unique("adp")
    cli.ok("install", "--namespace", namespace)
    server = ServerProcess(sandbox, namespace, tmp_path / "server.log").start()
    try:
        yield namespace, server
    finally:
        server.stop()
        # The Deployment must go: a server left installed would switch later tests to server mode.
        cli.ok("uninstall", "--namespace", namespace, "--yes", "--keep-crds")


def test_an_administrators_day_with_the_server(
    sandbox: Sandbox, cli: Cli, installed: tuple[str, ServerProcess], tmp_path: Path
) -> None:
    namespace, _ = installed
    bucket = tmp_path / "bucket"
    bucket.mkdir()
    created = cli.ok(
        "backup-location",
        "create",
        "default",
        "--provider",
        "local",
        "--bucket",
        str(bucket),
        "--prefix",
        "cluster-a",
        "--default",
    )
    assert f"Using the strongroom server in namespace {namespace}" in created.stderr
    eventually(
        lambda: (
            (get(sandbox, "backupstoragelocations", "default", namespace) or {})
            .get("status", {})
            .get("phase")
            == "Available"
        ),
        timeout=20,
    )
    app = unique("app")
    # A CRD group of the test's own: the sample's CRD is cluster-wide.
    deploy_sample(sandbox, app, f"{app}.example.com")

    made = cli.ok("backup", "create", "nightly", "--include-namespaces", app, "--wait")
    assert "Using the strongroom server" in made.stderr
    listed = cli.ok("backup", "get", "-o", "json").json()
    items = listed["items"] if isinstance(listed, dict) and "items" in listed else listed
    nightly = next(b for b in items if b["metadata"]["name"] == "nightly")
    assert nightly["status"]["phase"] == "Completed"
    assert (bucket / "cluster-a" / "backups" / "nightly" / "velero-backup.json").exists()

    logs = cli.ok("backup", "logs", "nightly").stdout
    assert "Backed up a total of" in logs
    details = cli.ok("backup", "describe", "nightly", "--details").stdout
    assert f"{app}/" in details
    tarball = tmp_path / "nightly.tar.gz"
    cli.ok("backup", "download", "nightly", "-o", str(tarball))
    with tarfile.open(tarball) as archive:
        assert any(name.startswith("resources/configmaps/namespaces/") for name in archive.getnames())

    sandbox.kubectl("delete", "namespace", app, "--wait=true", timeout=120)
    cli.ok("restore", "create", "back", "--from-backup", "nightly", "--wait")
    restore = get(sandbox, "restores", "back", namespace)
    assert restore is not None and restore["status"]["phase"] == "Completed"
    assert sandbox.kubectl("get", "deployment,service,configmap", "-n", app).stdout.count("\n") >= 3
    assert "restore completed" in cli.ok("restore", "logs", "back").stdout.lower()
    assert gzip.decompress((bucket / "cluster-a" / "restores" / "back" / "restore-back-logs.gz").read_bytes())

    cli.ok("schedule", "create", "often", "--schedule", "@every 2s", "--include-namespaces", "kube-public")
    schedules = json.loads(cli.ok("schedule", "get", "-o", "json").stdout)
    assert "often" in json.dumps(schedules)

    def scheduled() -> bool:
        backups = sandbox.kubectl_json(
            "get", "backups", "-n", namespace, "-l", "velero.io/schedule-name=often"
        )
        return any((b.get("status") or {}).get("phase") == "Completed" for b in backups["items"])

    eventually(scheduled, timeout=30)
    cli.ok("schedule", "pause", "often")
    assert get(sandbox, "schedules", "often", namespace)["spec"]["paused"] is True

    cli.ok("backup", "delete", "nightly", "--confirm", "--wait")
    assert get(sandbox, "backups", "nightly", namespace) is None
    assert get(sandbox, "restores", "back", namespace) is None
    assert not (bucket / "cluster-a" / "backups" / "nightly").exists()
    assert not (bucket / "cluster-a" / "restores" / "back").exists()
    sandbox.kubectl("delete", "namespace", app, "--wait=false")
    sandbox.kubectl("delete", "crd", f"crontabs.{app}.example.com", "--wait=false")


def test_without_a_server_the_command_line_stays_local_and_says_so(cli: Cli) -> None:
    result = cli.ok("backup", "get")
    assert "Local mode" in result.stderr
    refused = cli("schedule", "create", "s", "--schedule", "0 7 * * *")
    assert refused.code == 2
