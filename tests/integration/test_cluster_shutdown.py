"""`strongroom cluster shutdown` checks before it acts: no recent verified etcd snapshot, no shutdown; the
dry run prints the seed's plan (workers first) and creates nothing. (The real run is not exercised here: its
debug pods chroot into the host and power it off.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.conftest import Sandbox
from tests.integration.backupkit import Cli, KubeCli

pytestmark = pytest.mark.integration

CONTROL_PLANE = "node-role.kubernetes.io/control-plane"


def test_shutdown_refuses_without_a_recent_snapshot_and_the_dry_run_plans_workers_first(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli = KubeCli(Cli(sandbox, tmp_path / "config", monkeypatch), sandbox)
    nodes = [n["metadata"]["name"] for n in sandbox.kubectl_json("get", "nodes")["items"]]
    (tmp_path / "snapshots").mkdir()
    refused = cli.cli(
        "cluster", "shutdown", "--snapshots-dir", str(tmp_path / "snapshots"), "--dry-run",
        "--kubeconfig", sandbox.kubeconfig, kube=False,
    )  # fmt: skip
    assert refused.code == 4 and "no verified snapshot found" in refused.stderr
    try:
        sandbox.kubectl("label", "node", nodes[0], f"{CONTROL_PLANE}=", "--overwrite")
        planned = cli.ok("cluster", "shutdown", "--skip-backup-check", "--dry-run")
        lines = [line for line in planned.stdout.splitlines() if "shutdown -h" in line]
        assert len(lines) == len(nodes)
        assert lines[-1].startswith(f"{len(nodes)}. schedule 'shutdown -h 1' on {nodes[0]} (control plane)")
        assert all("(worker)" in line for line in lines[:-1])
        assert "restart the cluster before" in planned.stderr
    finally:
        sandbox.kubectl("label", "node", nodes[0], f"{CONTROL_PLANE}-", check=False)
    debug = sandbox.kubectl(
        "get", "pods", "-A", "-l", "app.kubernetes.io/component=node-shutdown", "-o", "name"
    )
    assert debug.stdout.strip() == ""
