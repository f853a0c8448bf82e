"""The etcd test kit itself: clusters form, members die and return, TLS is enforced, static pods follow manifests.

The control-plane tests trust this kit to give them what a real cluster has;
these tests check that trust before anything is built on it.
"""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
import yaml
from tests.integration.etcdkit import EtcdCluster, EtcdctlError, StaticPodRunner, start_cluster

from strongroom.sandbox.etcdproc import etcd_bin_dir, free_port, pid_alive

pytestmark = pytest.mark.integration

T = TypeVar("T")


def eventually(check: Callable[[], T], timeout: float = 15.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    with start_cluster(tmp_path_factory.mktemp("plain"), 3) as running:
        yield running


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    with start_cluster(tmp_path_factory.mktemp("tls"), 3, tls=True) as running:
        yield running


def serializable_get(cluster: EtcdCluster, name: str, key: str) -> str:
    """What one member itself holds, without asking the leader."""
    return cluster.etcdctl(
        "get", key, "--print-value-only", "--consistency=s", endpoints=[cluster.member(name).client_url]
    ).stdout.strip()


def test_three_members_form_one_cluster_that_serves_through_any_member(cluster: EtcdCluster) -> None:
    assert [m.name for m in cluster.members] == ["m1", "m2", "m3"]
    assert all(m.running and m.endpoint.startswith("127.0.0.1:") for m in cluster.members)
    assert all(url.startswith("http://127.0.0.1:") for url in cluster.endpoints)
    listed = json.loads(cluster.etcdctl("member", "list", "-w", "json").stdout)["members"]
    assert sorted(m["name"] for m in listed) == ["m1", "m2", "m3"]
    statuses = json.loads(cluster.etcdctl("endpoint", "status", "-w", "json").stdout)
    assert len({s["Status"]["leader"] for s in statuses}) == 1

    cluster.put("/kit/greeting", "hello")
    cluster.put("/kit/binary", b"\x00\xff")
    assert cluster.get("/kit/greeting") == b"hello"
    assert cluster.get("/kit/binary") == b"\x00\xff"
    assert cluster.get("/kit/missing") is None
    cluster.etcdctl("put", "/kit/via-m3", "three", endpoints=[cluster.member("m3").client_url])
    assert eventually(lambda: _equal(serializable_get(cluster, "m1", "/kit/via-m3"), "three")) == "three"


def _equal(actual: str, expected: str) -> str:
    assert actual == expected, f"{actual!r} != {expected!r}"
    return actual


def test_a_killed_member_restarts_on_its_data_and_catches_up(cluster: EtcdCluster) -> None:
    member = cluster.member("m2")
    pid = member.process.pid if member.process else 0
    cluster.kill("m2")
    assert not member.running and not pid_alive(pid)
    for index in range(20):
        cluster.put(f"/kit/while-down/{index}", str(index))
    cluster.start("m2")
    assert member.running
    eventually(lambda: _equal(serializable_get(cluster, "m2", "/kit/while-down/19"), "19"))
    cluster.stop("m2")
    assert not member.running
    cluster.start("m2")
    assert cluster.healthy(member)


def test_tls_cluster_refuses_clients_without_a_certificate_or_with_the_wrong_ca(secure: EtcdCluster) -> None:
    assert secure.tls is not None
    assert all(url.startswith("https://127.0.0.1:") for url in secure.endpoints)
    secure.put("/kit/secret", "s")
    assert secure.get("/kit/secret") == b"s"
    assert secure.etcdctl("get", "/kit/secret", "--print-value-only").stdout.strip() == "s"
    # TLS without a client certificate: the handshake is refused.
    anonymous = ssl.create_default_context(cafile=str(secure.tls.ca))
    with pytest.raises((urllib.error.URLError, ssl.SSLError, ConnectionError)):
        urllib.request.urlopen(f"{secure.endpoints[0]}/health", context=anonymous, timeout=5).read()
    # Plain HTTP to a TLS port gets no answer either.
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
        urllib.request.urlopen(
            secure.endpoints[0].replace("https://", "http://") + "/health", timeout=5
        ).read()
    # etcdctl trusting an unrelated CA does not accept the server's certificate.
    etcdctl = str(etcd_bin_dir() / "etcdctl")
    wrong_ca = subprocess.run(
        [
            etcdctl, f"--endpoints={secure.endpoints[0]}", f"--cacert={secure.tls.other_ca}",
            f"--cert={secure.tls.client_cert}", f"--key={secure.tls.client_key}",
            "--dial-timeout=1s", "--command-timeout=1s", "get", "/kit/secret",
        ],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert wrong_ca.returncode != 0
    assert "certificate signed by unknown authority" in wrong_ca.stderr
    no_cert = subprocess.run(
        [
            etcdctl, f"--endpoints={secure.endpoints[0]}", f"--cacert={secure.tls.ca}",
            "--dial-timeout=1s", "--command-timeout=1s", "get", "/kit/secret",
        ],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert no_cert.returncode != 0
    assert "bad certificate" in no_cert.stderr
    with pytest.raises(EtcdctlError, match="stderr"):
        secure.etcdctl("no-such-command")


def etcd_manifest(host_root: Path, *, log_level: str) -> tuple[str, str]:
    """An etcd static pod in the manner of OpenShift's, with paths already under host_root; and its client URL."""
    client = f"http://127.0.0.1:{free_port()}"
    peer = f"http://127.0.0.1:{free_port()}"
    data_dir = host_root / "var/lib/etcd"
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "etcd", "namespace": "openshift-etcd"},
        "spec": {
            "containers": [
                {
                    "name": "etcd",
                    "image": "quay.io/openshift/etcd",
                    "command": ["etcd"],
                    "args": [
                        "--name=static1",
                        f"--data-dir={data_dir}",
                        f"--listen-client-urls={client}",
                        f"--advertise-client-urls={client}",
                        f"--listen-peer-urls={peer}",
                        f"--initial-advertise-peer-urls={peer}",
                        f"--initial-cluster=static1={peer}",
                        f"--log-level={log_level}",
                    ],
                    "volumeMounts": [{"name": "data-dir", "mountPath": "/var/lib/etcd"}],
                },
                {"name": "etcd-metrics", "image": "quay.io/openshift/etcd", "command": ["sleep", "1000"]},
            ],
            "volumes": [{"name": "data-dir", "hostPath": {"path": str(data_dir)}}],
        },
    }
    return yaml.safe_dump(pod), client


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=1) as response:
            return bool(json.loads(response.read())["health"] == "true")
    except (OSError, ValueError):
        return False


def test_static_pod_runner_starts_restarts_and_stops_etcd_with_its_manifest(tmp_path: Path) -> None:
    host_root = tmp_path / "host"
    manifests = host_root / "etc/kubernetes/manifests"
    manifests.mkdir(parents=True)
    (manifests / "notes.txt").write_text("not a manifest")
    (manifests / "config.yaml").write_text("kind: ConfigMap\n")
    text, client = etcd_manifest(host_root, log_level="info")
    (manifests / "etcd-pod.yaml").write_text(text)
    runner = StaticPodRunner(manifests, host_root, tmp_path / "logs")
    runner.start()
    try:
        pid = runner.wait_running("etcd-pod.yaml")
        assert set(runner.running()) == {"etcd-pod.yaml"}
        eventually(lambda: _equal(str(_healthy(client)), "True"))
        assert (host_root / "var/lib/etcd/member").is_dir()
        assert (tmp_path / "logs/etcd-pod.log").stat().st_size > 0

        # A changed manifest restarts the pod (with its new arguments, on the same data).
        (manifests / "etcd-pod.yaml").write_text(text.replace("--log-level=info", "--log-level=warn"))
        new_pid = eventually(lambda: _changed(runner, "etcd-pod.yaml", pid))
        assert not pid_alive(pid)
        eventually(lambda: _equal(str(_healthy(client)), "True"))

        # Moving the manifest away stops the pod, as the restore runbook relies on.
        shutil.move(manifests / "etcd-pod.yaml", tmp_path / "etcd-pod.yaml")
        runner.wait_stopped("etcd-pod.yaml")
        assert not pid_alive(new_pid)
        assert runner.running() == {}
        # Moving it back starts it again.
        shutil.move(tmp_path / "etcd-pod.yaml", manifests / "etcd-pod.yaml")
        last = runner.wait_running("etcd-pod.yaml")
    finally:
        runner.close()
    assert not pid_alive(last)
    assert runner.running() == {}


def _changed(runner: StaticPodRunner, manifest: str, old: int) -> int:
    pid = runner.running().get(manifest)
    assert pid is not None and pid != old
    return pid
