"""`strongroom install --etcd-backup-schedule` on the sandbox, checked with the real kubectl.

As in test_install.py: one namespace of its own, the CRDs kept on
uninstall (other modules use them), no node agent. The sandbox has no
CronJob controller, so the CronJob exists as an object and never starts a
Job; the server Deployment's pod runs as in test_install.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import Sandbox
from tests.integration.backupkit import Cli, CliResult, KubeCli, unique

from strongroom.deploy.manifests import ETCD_BACKUP_NAME, cluster_object_name

pytestmark = pytest.mark.integration

SCHEDULE = "0 */6 * * *"


Strongroom = KubeCli


@pytest.fixture
def strongroom(sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Strongroom:
    return Strongroom(Cli(sandbox, tmp_path / "config", monkeypatch), sandbox)


@pytest.fixture
def target(strongroom: Strongroom) -> Iterator[str]:
    """A namespace name to install into; whatever the test left is uninstalled afterwards (CRDs kept)."""
    name = unique("sr-etcd")
    yield name
    strongroom.ok("uninstall", "--namespace", name, "--yes", "--keep-crds")


def _lines(result: CliResult) -> dict[str, str]:
    """``Kind/name: action`` lines as {"Kind/name": "action"}."""
    found = {}
    for line in result.stdout.splitlines():
        key, sep, action = line.partition(": ")
        if sep and "/" in key and " " not in key:
            found[key] = action
    return found


def test_install_schedules_the_etcd_backup_and_uninstall_removes_it(
    strongroom: Strongroom, sandbox: Sandbox, target: str
) -> None:
    install = (
        "install",
        "--namespace",
        target,
        "--no-use-node-agent",
        "--etcd-backup-schedule",
        SCHEDULE,
        "--etcd-backup-keep-daily",
        "3",
    )
    lines = _lines(strongroom.ok(*install))
    cluster_name = cluster_object_name(target, "etcd-backup")
    for key in (
        f"CronJob/{ETCD_BACKUP_NAME}",
        f"ServiceAccount/{ETCD_BACKUP_NAME}",
        f"Role/{ETCD_BACKUP_NAME}",
        f"RoleBinding/{ETCD_BACKUP_NAME}",
        f"ClusterRole/{cluster_name}",
        f"ClusterRoleBinding/{cluster_name}",
    ):
        assert lines.get(key) == "created", f"{key}: {lines.get(key)}"

    cronjob = sandbox.kubectl_json("-n", target, "get", "cronjob", ETCD_BACKUP_NAME)
    assert cronjob["spec"]["schedule"] == SCHEDULE
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["containers"][0]["command"] == [
        "strongroom",
        "etcd",
        "snapshot",
        "save",
        "--storage-location",
        "default",
        "--namespace",
        target,
        "--host-root",
        "/host",
        "--keep-last",
        "7",
        "--keep-daily",
        "3",
        "--verify",
        "--scratch-dir",
        "/scratch",
    ]
    assert pod["serviceAccountName"] == ETCD_BACKUP_NAME
    assert pod["hostNetwork"] is True
    # What the API server defaulted does not make a second install report a change.
    again = _lines(strongroom.ok(*install))
    assert again[f"CronJob/{ETCD_BACKUP_NAME}"] == "unchanged", again

    result = strongroom.ok("uninstall", "--namespace", target, "--yes", "--keep-crds", "--timeout", "30s")
    removed = _lines(result)
    assert removed[f"CronJob/{ETCD_BACKUP_NAME}"] == "deleted"
    assert removed[f"ClusterRole/{cluster_name}"] == "deleted"
    assert removed[f"ClusterRoleBinding/{cluster_name}"] == "deleted"
    for kind in ("clusterrole", "clusterrolebinding"):
        gone = sandbox.kubectl("get", kind, cluster_name, "--ignore-not-found", "-o", "name")
        assert gone.stdout.strip() == "", f"{kind} {cluster_name} survived uninstall"
    # The namespace is terminating or gone; either way nothing of the backup is left in it.
    leftover = sandbox.kubectl(
        "get",
        "cronjobs,serviceaccounts,roles,rolebindings",
        "-n",
        target,
        "-l",
        "app.kubernetes.io/component=etcd-backup",
        "-o",
        "name",
        check=False,
    )
    assert leftover.stdout.strip() == ""
