"""etcd commands that read the cluster: endpoints derived from the kube-apiserver pod, etcd's secrets on
replacement, and why a member is unhealthy."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import pytest
from tests.conftest import Sandbox
from tests.integration.etcdcli import apiserver_mirror_pod, flags, ok, strongroom
from tests.integration.etcdkit import start_cluster

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRONGROOM_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for name in ("ETCDCTL_ENDPOINTS", "ETCDCTL_CACERT", "ETCDCTL_CERT", "ETCDCTL_KEY", "KUBECONFIG"):
        monkeypatch.delenv(name, raising=False)


def test_endpoints_and_certificates_come_from_the_kube_apiserver_pod(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    with start_cluster(tmp_path / "etcd", 3, tls=True) as cluster:
        assert cluster.tls is not None
        host = tmp_path / "host"
        pki = host / "etc/kubernetes/pki"
        (pki / "etcd").mkdir(parents=True)
        shutil.copy(cluster.tls.ca, pki / "etcd/ca.crt")
        shutil.copy(cluster.tls.client_cert, pki / "apiserver-etcd-client.crt")
        shutil.copy(cluster.tls.client_key, pki / "apiserver-etcd-client.key")
        # A static pod's mirror: bound to a node the sandbox does not know, so nothing runs it.
        sandbox.kubectl(
            "create",
            "-f",
            "-",
            input=json.dumps(apiserver_mirror_pod("kube-apiserver-etcdtest", cluster.endpoints)),
        )
        try:
            listed = ok(
                "etcd", "members", "list", "--kubeconfig", sandbox.kubeconfig, "--host-root", str(host), "-o", "json"
            )  # fmt: skip
            assert "from the kube-apiserver pod kube-apiserver-etcdtest" in listed.stderr
            assert sorted(m["name"] for m in listed.json()["members"]) == ["m1", "m2", "m3"]
            # Without the host's files the same pod names certificates that are not there.
            missing = strongroom(
                "etcd",
                "members",
                "list",
                "--kubeconfig",
                sandbox.kubeconfig,
                "--host-root",
                str(tmp_path / "elsewhere"),
            )
            assert missing.code == 2 and "cannot read" in missing.stderr
        finally:
            sandbox.kubectl(
                "delete", "pod", "kube-apiserver-etcdtest", "-n", "kube-system", "--wait=false", check=False
            )


def test_replacing_a_member_deletes_its_openshift_secrets_and_health_explains_the_dead_member(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    secrets = ["etcd-peer-m3", "etcd-serving-m3", "etcd-serving-metrics-m3", "etcd-peer-m1"]
    sandbox.kubectl("create", "namespace", "openshift-etcd", check=False)
    for name in secrets:
        sandbox.kubectl(
            "create", "secret", "generic", name, "-n", "openshift-etcd", "--from-literal=tls.key=x"
        )
    try:
        with start_cluster(tmp_path / "etcd", 3) as cluster:
            cluster.kill("m3")
            cluster.wait_healthy("m1", "m2")  # m3 may have been the leader
            health = strongroom(
                "etcd", "members", "health", *flags(cluster), "--kubeconfig", sandbox.kubeconfig
            )
            assert health.code == 1
            assert "m3: no node named m3: the machine may be gone" in health.stdout
            survivors = [cluster.member("m1").client_url, cluster.member("m2").client_url]
            new_peer = cluster.next_peer_url()
            outcome: dict[str, object] = {}

            def replace() -> None:
                outcome["result"] = strongroom(
                    "etcd", "members", "replace", "m3", "--peer-urls", new_peer, "--force", "--wait", "60",
                    "--kubeconfig", sandbox.kubeconfig, *flags(cluster, survivors),
                )  # fmt: skip

            worker = threading.Thread(target=replace, daemon=True)
            worker.start()
            deadline = time.monotonic() + 60

            def learner_added() -> bool:
                listed = cluster.etcdctl("member", "list", "-w", "json", endpoints=survivors).stdout
                return any(
                    m.get("isLearner") and new_peer in m["peerURLs"] for m in json.loads(listed)["members"]
                )

            while not learner_added():
                assert time.monotonic() < deadline, "the learner was never added"
                time.sleep(0.2)
            m1, m2 = cluster.member("m1"), cluster.member("m2")
            cluster.new_member(
                "m3-new", initial_cluster=f"m1={m1.peer_url},m2={m2.peer_url},m3-new={new_peer}"
            )
            worker.join(120)
            result = outcome["result"]
            assert result.code == 0, result.stdout + result.stderr  # type: ignore[attr-defined]
            left = sandbox.kubectl("get", "secrets", "-n", "openshift-etcd", "-o", "name").stdout.split()
            assert "secret/etcd-peer-m1" in left
            assert not {f"secret/{name}" for name in secrets[:3]} & set(left)
    finally:
        sandbox.kubectl("delete", "namespace", "openshift-etcd", "--wait=false", check=False)
