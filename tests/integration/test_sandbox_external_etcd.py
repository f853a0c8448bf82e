"""The sandbox storing objects in an etcd the caller runs: a 3-member TLS cluster, left running by `down`.

This is how the control-plane tests get an API server whose etcd they can
snapshot, break and restore, the way kube-apiserver uses `--etcd-servers`.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import kubectl_binary
from tests.integration.etcdcli import Result
from tests.integration.etcdcli import strongroom as in_process
from tests.integration.etcdkit import EtcdCluster, start_cluster

from strongroom.sandbox import runner
from strongroom.sandbox.etcdproc import pid_alive

pytestmark = pytest.mark.integration


def strongroom(*args: str, check: bool = True) -> Result:
    """`strongroom ARGS` in this process: a new interpreter would take ~1.2 s to start each time.

    ``sandbox up --detach`` starts the sandbox as a process of its own all the same.
    """
    result = in_process(*args)
    if check and result.code != 0:
        raise AssertionError(
            f"strongroom {' '.join(args)} failed ({result.code}):\n{result.stdout}\n{result.stderr}"
        )
    return result


def kubectl(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [kubectl_binary(), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "KUBECONFIG": str(kubeconfig)},
    )
    assert proc.returncode == 0, f"kubectl {' '.join(args)}: {proc.stderr}"
    return proc


def etcd_flags(cluster: EtcdCluster) -> list[str]:
    assert cluster.tls is not None
    return [
        "--etcd-endpoints", ",".join(cluster.endpoints),
        "--etcd-cacert", str(cluster.tls.ca),
        "--etcd-cert", str(cluster.tls.client_cert),
        "--etcd-key", str(cluster.tls.client_key),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    with start_cluster(tmp_path_factory.mktemp("external-etcd"), 3, tls=True) as running:
        yield running


def test_sandbox_stores_objects_in_an_external_tls_cluster_and_leaves_it_running(
    cluster: EtcdCluster, tmp_path: Path
) -> None:
    directory = tmp_path / "sandbox"
    pids = {m.name: m.process.pid for m in cluster.members if m.process is not None}
    out = strongroom(
        "sandbox", "up", "--dir", str(directory), "--detach", "--nodes", "1", *etcd_flags(cluster)
    )
    assert "sandbox ready at https://127.0.0.1:" in out.stdout
    try:
        status = json.loads(strongroom("sandbox", "status", "--dir", str(directory), "-o", "json").stdout)
        assert status["running"] is True
        assert status["etcdEndpoints"] == cluster.endpoints
        assert status["etcdExternal"] is True
        table = strongroom("sandbox", "status", "--dir", str(directory)).stdout
        assert ",".join(cluster.endpoints) in table
        # No etcd of its own: no data directory, no log, no pid.
        assert not (directory / "etcd").exists() and not (directory / "etcd.log").exists()
        state = runner.read_state(directory)
        assert state is not None and state.etcdPid == 0 and state.etcdExternal

        kubeconfig = directory / "kubeconfig"
        kubectl(kubeconfig, "create", "namespace", "outside")
        stored = cluster.etcdctl("get", "/registry/namespaces/outside", "--print-value-only").stdout
        assert json.loads(stored)["metadata"]["name"] == "outside"
        # Every member holds it: the sandbox wrote through the cluster, not to one member's side.
        for member in cluster.members:
            value = cluster.etcdctl(
                "get", "/registry/namespaces/outside", "--print-value-only", "--consistency=s",
                endpoints=[member.client_url],
            ).stdout  # fmt: skip
            assert json.loads(value)["metadata"]["name"] == "outside"

        # Losing one member of three costs nothing: the client goes on with the others.
        cluster.kill("m1")
        cluster.wait_healthy("m2", "m3")  # m1 may have been the leader
        try:
            kubectl(kubeconfig, "create", "namespace", "while-m1-down")
            assert cluster.get("/registry/namespaces/while-m1-down") is not None
        finally:
            cluster.start("m1")

        stopped = strongroom("sandbox", "down", "--dir", str(directory))
        assert "sandbox stopped" in stopped.stdout
        assert not pid_alive(state.pid)
    finally:
        strongroom("sandbox", "down", "--dir", str(directory), check=False)
    # The cluster is the caller's: it still runs, every member healthy, the data in it.
    assert all(member.running for member in cluster.members)
    assert all(pid_alive(pid) for name, pid in pids.items() if name != "m1")
    assert all(cluster.healthy(member) for member in cluster.members)
    assert cluster.get("/registry/namespaces/outside") is not None
    after = json.loads(
        strongroom("sandbox", "status", "--dir", str(directory), "-o", "json", check=False).stdout
    )
    assert after["running"] is False and after["etcdEndpoints"] == cluster.endpoints


def test_wrong_tls_material_or_flags_are_refused_before_anything_is_served(
    cluster: EtcdCluster, tmp_path: Path
) -> None:
    assert cluster.tls is not None
    no_ca = strongroom(
        "sandbox", "up", "--dir", str(tmp_path / "a"), "--detach", "--etcd-endpoints", cluster.endpoints[0],
        check=False,
    )  # fmt: skip
    assert no_ca.code == 2 and "--etcd-cacert" in no_ca.stderr
    lone_cert = strongroom(
        "sandbox", "up", "--dir", str(tmp_path / "b"), "--detach", "--etcd-cert", str(cluster.tls.client_cert),
        check=False,
    )  # fmt: skip
    assert lone_cert.code == 2 and "--etcd-endpoints" in lone_cert.stderr

    started = time.monotonic()
    wrong_ca = strongroom(
        "sandbox", "up", "--dir", str(tmp_path / "c"), "--detach",
        "--etcd-endpoints", ",".join(cluster.endpoints), "--etcd-cacert", str(cluster.tls.other_ca),
        "--etcd-cert", str(cluster.tls.client_cert), "--etcd-key", str(cluster.tls.client_key),
        check=False,
    )  # fmt: skip
    assert wrong_ca.code != 0
    assert "is not usable" in wrong_ca.stderr and cluster.endpoints[0] in wrong_ca.stderr
    assert time.monotonic() - started < 30
    assert not (tmp_path / "c" / "etcd").exists()
    assert all(cluster.healthy(member) for member in cluster.members)
