"""``strongroom must-gather`` on the sandbox: resources, workloads, logs and status in one 0600 tarball.

The Backups live in a fresh namespace no server watches, so they stay as the
test writes them (300 Failed ones, status set through the status subresource).
"""

from __future__ import annotations

import asyncio
import socket
import tarfile
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from tests.conftest import Sandbox
from tests.integration.openshiftkit import proxy_crd, served
from tests.integration.sandboxapi import eventually
from typer.testing import CliRunner

from strongroom.cli.gather import must_gather
from strongroom.cluster.gather import GatherOptions, gather
from strongroom.kube import KubeClient
from strongroom.model.crds import crd_manifests

pytestmark = pytest.mark.integration

BACKUPS = 300
SECRET_VALUE = "c3VwZXItc2VjcmV0LWtleQ=="


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command(name="must-gather")(must_gather)
    app.command(name="noop", hidden=True)(lambda: None)  # more than one command: keep the name
    return app


async def _populate(kubeconfig: str, namespace: str) -> None:
    async with await KubeClient.from_kubeconfig(kubeconfig) as kube:
        backups = await kube.wait_served("velero.io", "v1", "backups")
        locations = await kube.wait_served("velero.io", "v1", "backupstoragelocations")
        location = await kube.create(
            locations,
            {
                "apiVersion": "velero.io/v1",
                "kind": "BackupStorageLocation",
                "metadata": {"name": "default"},
                "spec": {
                    "provider": "aws",
                    "objectStorage": {"bucket": "b"},
                    "credential": {"name": "cloud-credentials", "key": "cloud"},
                },
            },
            namespace,
        )
        location["status"] = {"phase": "Unavailable", "message": "bucket b not reachable"}
        await kube.replace(locations, location, namespace, subresource="status")
        sem = asyncio.Semaphore(32)

        async def one(index: int) -> None:
            async with sem:
                body: dict[str, Any] = {
                    "apiVersion": "velero.io/v1",
                    "kind": "Backup",
                    "metadata": {"name": f"b-{index:04d}"},
                    "spec": {"includedNamespaces": ["app"]},
                }
                created = await kube.create(backups, body, namespace)
                created["status"] = {"phase": "Failed", "failureReason": "test"}
                await kube.replace(backups, created, namespace, subresource="status")

        await asyncio.gather(*(one(i) for i in range(BACKUPS)))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


METRICS_PORT, SILENT_PORT = _free_port(), _free_port()
# The server pod: says it started, then serves Prometheus text on /metrics (a sandbox pod's IP is loopback).
METRICS_SERVER = """
import http.server, sys
print("server-started", flush=True)
class Metrics(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"# TYPE strongroom_backup_total counter\\nstrongroom_backup_total 3\\n" if self.path == "/metrics" else b""
        self.send_response(200 if body else 404)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.end_headers()
        self.wfile.write(body)
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Metrics).serve_forever()
"""


@pytest.fixture
def populated(sandbox: Sandbox, namespace: str) -> str:
    sandbox.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(crd_manifests()))
    sandbox.kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        input=yaml.safe_dump_all(
            [
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": {"name": "cloud-credentials"},
                    "data": {"cloud": SECRET_VALUE},
                },
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": "server"},
                    "spec": {
                        "containers": [
                            {
                                "name": "velero",
                                "image": "busybox",
                                "command": ["python3", "-c", METRICS_SERVER, str(METRICS_PORT)],
                                "ports": [{"name": "metrics", "containerPort": METRICS_PORT}],
                            }
                        ]
                    },
                },
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": "crash"},
                    "spec": {
                        "containers": [
                            {
                                "name": "c",
                                "image": "busybox",
                                "command": ["sh", "-c", "echo attempt; exit 3"],
                                # Declared, but nothing listens there.
                                "ports": [{"name": "metrics", "containerPort": SILENT_PORT}],
                            }
                        ]
                    },
                },
            ]
        ),
    )
    asyncio.run(_populate(sandbox.kubeconfig, namespace))

    def logged() -> bool:
        return "server-started" in sandbox.kubectl("logs", "-n", namespace, "server", check=False).stdout

    eventually(logged, timeout=20, interval=0.1)

    def restarted() -> bool:
        pod = sandbox.kubectl_json("get", "pod", "crash", "-n", namespace)
        return any(s["restartCount"] >= 1 for s in pod["status"].get("containerStatuses") or [])

    eventually(restarted, timeout=20, interval=0.1)
    return namespace


def _members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        found: dict[str, bytes] = {}
        for member in tar.getmembers():
            data = tar.extractfile(member)
            assert data is not None
            found[member.name.removeprefix("must-gather/")] = data.read()
        return found


def test_must_gather_bundles_resources_logs_and_status_without_secrets(
    sandbox: Sandbox, populated: str, tmp_path: Path
) -> None:
    args = ["must-gather", "--namespace", populated, "--since", "1h", "--metrics"]
    args += ["--dest", str(tmp_path), "--kubeconfig", sandbox.kubeconfig]
    proxy_url = f"http://ops:{SECRET_VALUE}@proxy.example.com:3128"
    proxy = {
        "apiVersion": "config.openshift.io/v1",
        "kind": "Proxy",
        "metadata": {"name": "cluster"},
        "spec": {"httpProxy": proxy_url, "noProxy": ".svc"},
    }
    with served(sandbox, proxy_crd()):
        sandbox.kubectl("apply", "-f", "-", input=yaml.safe_dump(proxy))
        try:
            result = CliRunner().invoke(_app(), args)
        finally:
            sandbox.kubectl("delete", "proxy.config.openshift.io", "cluster", check=False)
    assert result.exit_code == 0, result.output
    path = tmp_path / "must-gather.tar.gz"
    assert str(path) in result.stdout
    assert path.stat().st_mode & 0o777 == 0o600
    members = _members(path)

    backups = yaml.safe_load(members["resources/velero.io/backups.yaml"])
    assert len(backups["items"]) == BACKUPS
    assert {b["status"]["phase"] for b in backups["items"]} == {"Failed"}
    assert "resources/oadp.openshift.io/dataprotectionapplications.yaml" in members
    pods = yaml.safe_load(members["namespace/pods.yaml"])
    assert sorted(p["metadata"]["name"] for p in pods["items"]) == ["crash", "server"]
    assert "namespace/events.yaml" in members and "namespace/deployments.yaml" in members
    assert b"server-started" in members["logs/server/velero.log"]
    assert members["logs/crash/c.previous.log"] == b"attempt\n"
    assert "warning:" in result.stderr and "metrics/crash.prom" in result.stderr

    summary = members["summary.txt"].decode()
    assert "log window: --since 1h (3600s)" in summary
    assert "default: phase=Unavailable" in summary and "bucket b not reachable" in summary
    assert "resources/velero.io/backups.yaml: 300" in summary
    # Metrics come through the pod proxy; a declared port nothing answers on is left out, and said so.
    assert "metrics: gathered metrics/server.prom through the pod proxy" in summary
    assert b"strongroom_backup_total 3" in members["metrics/server.prom"]
    assert f"metrics: not gathered from crash:{SILENT_PORT}" in summary
    assert "error trying to reach service" in summary
    assert "metrics/crash.prom" not in members

    # The cluster around it: nodes, kubelet CSRs, and the Proxy with its password masked.
    nodes = yaml.safe_load(members["cluster/core/nodes.yaml"])
    assert {n["metadata"]["name"] for n in nodes["items"]} == {
        n["metadata"]["name"] for n in sandbox.kubectl_json("get", "nodes")["items"]
    }
    assert "cluster/certificates.k8s.io/certificatesigningrequests.yaml" in members
    proxies = yaml.safe_load(members["cluster/config.openshift.io/proxies.yaml"])
    assert proxies["items"][0]["spec"]["httpProxy"] == "http://***@proxy.example.com:3128"
    assert "not served here: " in summary and "etcds.operator.openshift.io" in summary

    for name, data in members.items():
        assert b"kind: Secret\n" not in data, name
        assert SECRET_VALUE.encode() not in data, name


def test_a_run_out_of_time_still_writes_the_tarball_and_says_what_was_left_out(
    sandbox: Sandbox, populated: str, tmp_path: Path
) -> None:
    ticks = iter(range(1_000_000))

    def clock() -> float:  # every look at the clock costs a second: the deadline comes mid-run
        return float(next(ticks))

    async def main() -> None:
        async with await KubeClient.from_kubeconfig(sandbox.kubeconfig) as kube:
            instant = await gather(kube, GatherOptions(namespace=populated, timeout=0.001), tmp_path / "a")
            slow = await gather(
                kube, GatherOptions(namespace=populated, timeout=8), tmp_path / "b", clock=clock
            )
        for path, report in (instant, slow):
            assert path.stat().st_mode & 0o777 == 0o600
            assert not report.complete
        instant_summary = _members(instant[0])["summary.txt"].decode()
        assert any(
            line.startswith("  discovery: ") and line.endswith("timeout reached")
            for line in instant_summary.splitlines()
        )
        members = _members(slow[0])
        summary = members["summary.txt"].decode()
        assert "default: phase=Unavailable" in summary  # status comes first
        assert "not started: timeout reached" in summary
        assert not any(name.startswith("logs/") for name in members)

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    asyncio.run(main())

    result = CliRunner().invoke(
        _app(),
        [
            "must-gather",
            "-n",
            populated,
            "--timeout",
            "1",
            "--dest",
            str(tmp_path),
            "--kubeconfig",
            sandbox.kubeconfig,
        ],
    )
    assert result.exit_code == 0, result.output
    summary = _members(tmp_path / "must-gather.tar.gz")["summary.txt"].decode()
    assert "timeout: 1s" in summary and "left out:" in summary
