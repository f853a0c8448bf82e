"""Membership changes and disaster recovery on real 3-member etcd 3.5 clusters.

A member dies and is replaced; two of three die and the cluster comes back
from a snapshot on the recovery host (its etcd run as a static pod, stopped
and started by moving its manifest, as kubelet does) and grows back member by
member; a snapshot restored on every member with one --initial-cluster. After
each, every member's hashkv agrees and the data are the snapshot's.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from tests.conftest import Sandbox
from tests.integration.etcdcli import Result, flags, ok, strongroom, tree
from tests.integration.etcdkit import EtcdCluster, StaticPodRunner, start_cluster

from strongroom.sandbox import runner

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("STRONGROOM_CONFIG_DIR", str(tmp_path / "config"))
    for name in ("ETCDCTL_ENDPOINTS", "ETCDCTL_CACERT", "ETCDCTL_CERT", "ETCDCTL_KEY", "KUBECONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path / "config"


class Background:
    """A strongroom command that waits for the test to do its part (start a member) meanwhile."""

    def __init__(self, *args: str) -> None:
        self.result: Result | None = None
        self.thread = threading.Thread(target=self._run, args=args, daemon=True)
        self.thread.start()

    def _run(self, *args: str) -> None:
        self.result = strongroom(*args)

    def join(self, timeout: float = 180) -> Result:
        self.thread.join(timeout)
        assert self.result is not None, "the command did not finish"
        return self.result


def members(cluster: EtcdCluster, endpoint: str) -> list[dict[str, object]]:
    answer = cluster.etcdctl("member", "list", "-w", "json", endpoints=[endpoint], check=False)
    if answer.returncode != 0:
        return []
    listed: list[dict[str, object]] = json.loads(answer.stdout).get("members", [])
    return listed


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def learner_added(cluster: EtcdCluster, endpoint: str, peer_url: str) -> Callable[[], bool]:
    return lambda: any(
        m.get("isLearner") and peer_url in m.get("peerURLs", []) for m in members(cluster, endpoint)
    )  # type: ignore[operator]


def healthy(cluster: EtcdCluster, endpoints: list[str]) -> dict[str, object]:
    document: dict[str, object] = ok(
        "etcd", "members", "health", *flags(cluster, endpoints), "-o", "json"
    ).json()
    voting = [m for m in document["members"] if not m["isLearner"]]  # type: ignore[attr-defined]
    assert len(voting) == 3 and all(m["healthy"] for m in voting), document
    assert document["hashesAgree"] is True, document
    return document


def test_a_dead_member_is_replaced_by_a_learner_promoted_once_it_caught_up(tmp_path: Path) -> None:
    with start_cluster(tmp_path / "etcd", 3) as cluster:
        cluster.put("/registry/namespaces/kept", "v1")
        snaps = tmp_path / "snaps"
        ok("etcd", "snapshot", "save", "--to", str(snaps), *flags(cluster))
        ok("etcd", "snapshot", "verify", "latest", "--dir", str(snaps))
        cluster.kill("m3")
        cluster.wait_healthy("m1", "m2")  # m3 may have been the leader
        survivors = [cluster.member("m1").client_url, cluster.member("m2").client_url]

        health = strongroom("etcd", "members", "health", *flags(cluster), "-o", "json")
        assert health.code == 1
        by_name = {m["name"]: m for m in health.json()["members"]}
        assert not by_name["m3"]["healthy"] and "unreachable" in by_name["m3"]["error"]
        assert by_name["m1"]["healthy"] and by_name["m2"]["healthy"]
        assert health.json()["hashesAgree"] is True
        listed = ok("etcd", "members", "list", *flags(cluster), "-o", "json").json()
        assert sorted(m["name"] for m in listed["members"]) == ["m1", "m2", "m3"]
        assert sum(1 for m in listed["members"] if m["leader"]) == 1

        new_peer = cluster.next_peer_url()
        args = ["m3", "--new-name", "m4", "--peer-urls", new_peer, "--snapshots-dir", str(snaps)]
        dry = ok("etcd", "members", "replace", *args, "--dry-run", *flags(cluster))
        assert "1. remove member m3" in dry.stdout and "learner" in dry.stdout
        assert len(members(cluster, survivors[0])) == 3
        unknown = strongroom(
            "etcd", "members", "replace", "m9", "--peer-urls", new_peer, "--force", *flags(cluster)
        )
        assert unknown.code == 3 and "no member named 'm9'" in unknown.stderr
        stale = strongroom(
            "etcd",
            "members",
            "replace",
            *args[:4],
            "--snapshots-dir",
            str(tmp_path / "empty"),
            *flags(cluster),
        )
        assert stale.code != 0
        assert len(members(cluster, survivors[0])) == 3

        replace = Background("etcd", "members", "replace", *args, "--wait", "90", *flags(cluster, survivors))
        wait_for(learner_added(cluster, survivors[0], new_peer), "the learner")
        assert not any(m.get("name") == "m3" for m in members(cluster, survivors[0]))
        m1, m2 = cluster.member("m1"), cluster.member("m2")
        cluster.new_member("m4", initial_cluster=f"m1={m1.peer_url},m2={m2.peer_url},m4={new_peer}")
        result = replace.join()
        assert result.code == 0, result.stdout + result.stderr
        assert "--initial-cluster-state=existing" in result.stdout
        healthy(cluster, [*survivors, cluster.member("m4").client_url])
        assert cluster.get("/registry/namespaces/kept") == b"v1"


CONTROL_PLANE = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")


def control_plane_host(host: Path) -> None:
    """Static pod resources of each component, and sleeping control-plane static pods."""
    manifests = host / "etc/kubernetes/manifests"
    manifests.mkdir(parents=True)
    resources = host / "etc/kubernetes/static-pod-resources"
    for component in (*CONTROL_PLANE, "etcd"):
        directory = resources / f"{component}-pod-5"
        (directory / "configmaps/config").mkdir(parents=True)
        (directory / "configmaps/config/config.yaml").write_text(f"{component}: 5\n")
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": component,
                "namespace": "openshift-" + component,
                "labels": {"revision": "5"},
            },
            "spec": {"containers": [{"name": component, "command": ["sleep", "600"]}]},
        }
        (directory / f"{component}-pod.yaml").write_text(yaml.safe_dump(pod))
        if component != "etcd":
            (manifests / f"{component}-pod.yaml").write_text(yaml.safe_dump(pod))


def etcd_manifest(cluster: EtcdCluster, name: str) -> str:
    member = cluster.member(name)
    command = [
        "etcd",
        f"--name={name}",
        f"--data-dir={member.data_dir}",
        f"--listen-client-urls={member.client_url}",
        f"--advertise-client-urls={member.client_url}",
        f"--listen-peer-urls={member.peer_url}",
        f"--initial-advertise-peer-urls={member.peer_url}",
        f"--initial-cluster={cluster.initial_cluster}",
        "--initial-cluster-state=existing",
        f"--initial-cluster-token={cluster.token}",
    ]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "etcd", "namespace": "openshift-etcd", "labels": {"revision": "5"}},
        "spec": {"containers": [{"name": "etcd", "command": command}]},
    }
    return yaml.safe_dump(pod)


def test_quorum_lost_then_recovered_from_a_snapshot_and_grown_back_one_member_at_a_time(
    tmp_path: Path,
) -> None:
    host = tmp_path / "host"
    control_plane_host(host)
    manifests = host / "etc/kubernetes/manifests"
    with (
        start_cluster(tmp_path / "etcd", 3) as cluster,
        StaticPodRunner(manifests, host, tmp_path / "pods") as kubelet,
    ):
        # m1 becomes this host's static etcd pod, on the host's data directory.
        m1 = cluster.member("m1")
        cluster.stop("m1")
        (host / "var/lib").mkdir(parents=True)
        m1.data_dir.rename(host / "var/lib/etcd")
        m1.data_dir = host / "var/lib/etcd"
        (manifests / "etcd-pod.yaml").write_text(etcd_manifest(cluster, "m1"))
        wait_for(lambda: cluster.healthy(m1), "the static etcd pod")
        for index in range(40):
            cluster.put(f"/registry/configmaps/app/before-{index}", f"v{index}")
        backup = host / "home/core/backup"
        saved = ok(
            "etcd",
            "snapshot",
            "save",
            "--to",
            str(backup),
            "--host-root",
            str(host),
            *flags(cluster),
            "-o",
            "json",
        )
        assert saved.json()["staticResources"]["revisions"]["kube-apiserver"] == 5
        # A rollout after the backup: revision 6 exists on the host, the backup holds 5.
        newer = host / "etc/kubernetes/static-pod-resources/kube-apiserver-pod-6"
        newer.mkdir()
        (newer / "kube-apiserver-pod.yaml").write_text("revision 6, not in the backup\n")
        cluster.put("/registry/configmaps/app/after", "lost")
        cluster.etcdctl("del", "/registry/configmaps/app/before-0")
        cluster.kill("m2")
        cluster.kill("m3")

        # Without quorum a linearizable read waits the whole dial timeout: 1 s is plenty on loopback.
        quorum = strongroom(
            "etcd", "members", "replace", "m2", "--peer-urls", cluster.next_url(), "--force",
            *flags(cluster, [m1.client_url]), "--dial-timeout", "1",
        )  # fmt: skip
        assert quorum.code == 4 and "quorum" in quorum.stderr
        # Without quorum the members are still listed (serializably), and none was removed.
        listed = strongroom(
            "etcd", "members", "list", *flags(cluster, [m1.client_url]), "--dial-timeout", "1", "-o", "json"
        )
        assert sorted(m["name"] for m in listed.json()["members"]) == ["m1", "m2", "m3"]

        recover = [
            "etcd", "recover", "--snapshot", "latest", "--dir", str(backup), "--name", "m1",
            "--initial-advertise-peer-urls", m1.peer_url, "--client-url", m1.client_url, "--host-root", str(host),
        ]  # fmt: skip
        before = tree(host / "var/lib")
        dry = ok(*recover, "--dry-run")
        assert "stop the static pods" in dry.stdout and "move " in dry.stdout
        assert tree(host / "var/lib") == before and (manifests / "etcd-pod.yaml").exists()

        r2, r3 = cluster.next_url(), cluster.next_url()
        running = Background(
            *recover, "--grow", f"r2={r2}", "--grow", f"r3={r3}",
            "--stop-timeout", "60", "--start-timeout", "60", "--grow-timeout", "90",
        )  # fmt: skip
        wait_for(learner_added(cluster, m1.client_url, r2), "r2 as a learner", timeout=120)
        # Not waiting for r2 to serve clients: a member that joins by a raft snapshot answers only
        # once it has published itself, ~7 s later (etcd's request timeout), while the recovery goes
        # on promoting it and adding r3 meanwhile. Both are waited for before the health check.
        cluster.new_member("r2", initial_cluster=f"m1={m1.peer_url},r2={r2}", wait=False)
        wait_for(learner_added(cluster, m1.client_url, r3), "r3 as a learner", timeout=120)
        cluster.new_member("r3", initial_cluster=f"m1={m1.peer_url},r2={r2},r3={r3}")
        result = running.join()
        assert result.code == 0, result.stdout + result.stderr
        cluster.wait_ready("r2")

        assert len(list((host / "var/lib/etcd-backup").glob("member-*"))) == 1  # moved aside, not deleted
        assert {p.name for p in manifests.glob("*.yaml")} == {
            f"{c}-pod.yaml" for c in (*CONTROL_PLANE, "etcd")
        }
        assert "etcd-pod.yaml" in kubelet.running()
        backed_up = host / "etc/kubernetes/static-pod-resources/kube-apiserver-pod-5/kube-apiserver-pod.yaml"
        assert (manifests / "kube-apiserver-pod.yaml").read_text() == backed_up.read_text()
        endpoints = [m1.client_url, cluster.member("r2").client_url, cluster.member("r3").client_url]
        healthy(cluster, endpoints)
        assert cluster.get("/registry/configmaps/app/before-0") == b"v0"
        assert cluster.get("/registry/configmaps/app/before-39") == b"v39"
        assert cluster.get("/registry/configmaps/app/after") is None


def test_one_snapshot_restored_on_every_member_forms_the_cluster_again(tmp_path: Path) -> None:
    with start_cluster(tmp_path / "etcd", 3) as cluster:
        for index in range(20):
            cluster.put(f"/registry/secrets/ns/s{index}", f"secret-{index}")
        snaps = tmp_path / "snaps"
        ok("etcd", "snapshot", "save", "--to", str(snaps), *flags(cluster))
        cluster.put("/registry/secrets/ns/late", "after the snapshot")
        for name in ("m1", "m2", "m3"):
            cluster.kill(name)

        occupied = cluster.member("m1").data_dir
        before = tree(occupied)
        refused = strongroom(
            "etcd", "restore", "--snapshot", "latest", "--dir", str(snaps), "--data-dir", str(occupied),
            "--name", "m1", "--initial-advertise-peer-urls", cluster.member("m1").peer_url,
        )  # fmt: skip
        assert refused.code == 4 and "not empty" in refused.stderr
        assert tree(occupied) == before

        token = "strongroom-test-restore"
        initial = cluster.initial_cluster
        for name in ("m1", "m2", "m3"):
            member = cluster.member(name)
            restored = ok(
                "etcd", "restore", "--snapshot", "latest", "--dir", str(snaps), "--data-dir",
                str(tmp_path / "restored" / name), "--name", name, "--initial-cluster", initial,
                "--initial-advertise-peer-urls", member.peer_url, "--initial-cluster-token", token,
            )  # fmt: skip
            assert "cannot bump the revision" in restored.stderr and "informers" in restored.stderr
        for name in ("m1", "m2", "m3"):
            cluster.member(name).data_dir = tmp_path / "restored" / name
        threads = [threading.Thread(target=cluster.start, args=(name,)) for name in ("m1", "m2", "m3")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        healthy(cluster, cluster.endpoints)
        assert cluster.get("/registry/secrets/ns/s19") == b"secret-19"
        assert cluster.get("/registry/secrets/ns/late") is None


def test_a_sandbox_api_server_on_the_restored_etcd_shows_the_cluster_as_of_the_snapshot(
    tmp_path: Path,
) -> None:
    sandbox_dir = tmp_path / "sandbox"
    with start_cluster(tmp_path / "etcd", 1) as cluster:
        etcd = runner.ExternalEtcd.parse(cluster.endpoints[0])
        state = runner.start_detached(sandbox_dir, port=None, nodes=0, insecure=False, etcd=etcd)
        try:
            kube = Sandbox(sandbox_dir, state.kubeconfig, state.server)
            kube.kubectl("create", "namespace", "precious")
            kube.kubectl("create", "configmap", "settings", "-n", "precious", "--from-literal=mode=prod")
            ok("etcd", "snapshot", "save", "--to", str(tmp_path / "snaps"), *flags(cluster))
            kube.kubectl("delete", "namespace", "precious", "--wait=true", "--timeout=60s")
            assert "precious" not in kube.kubectl("get", "namespaces", "-o", "name").stdout
        finally:
            runner.stop(sandbox_dir)
        cluster.kill("m1")
        member = cluster.member("m1")
        ok(
            "etcd", "restore", "--snapshot", "latest", "--dir", str(tmp_path / "snaps"), "--data-dir",
            str(tmp_path / "restored"), "--name", "m1", "--initial-advertise-peer-urls", member.peer_url,
        )  # fmt: skip
        member.data_dir = tmp_path / "restored"
        cluster.start("m1")
        state = runner.start_detached(sandbox_dir, port=None, nodes=0, insecure=False, etcd=etcd)
        try:
            kube = Sandbox(sandbox_dir, state.kubeconfig, state.server)
            assert kube.kubectl_json("get", "namespace", "precious")["status"]["phase"] == "Active"
            assert kube.kubectl_json("get", "configmap", "settings", "-n", "precious")["data"] == {
                "mode": "prod"
            }
        finally:
            runner.stop(sandbox_dir)
