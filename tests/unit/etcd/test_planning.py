"""The decisions etcd commands take before touching anything: endpoints, retention, quorum, restore plans."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from strongroom.errors import ConflictError, NotFoundError, UsageError
from strongroom.etcd.connection import parse_endpoints, target_from_env
from strongroom.etcd.discovery import target_from_pods
from strongroom.etcd.members import ClusterSurvey, Member, MemberHealth, classify_member, plan_replace
from strongroom.etcd.restore import parse_initial_cluster, plan_restore
from strongroom.etcd.retention import Retention, select
from strongroom.etcd.snapshot import StoredSnapshot, Verification, resources_name, snapshot_name
from strongroom.etcd.tools import EtcdTool, find_tool


def test_endpoints_get_etcdctl_default_scheme_and_port() -> None:
    assert parse_endpoints("10.0.0.1:2379,https://b:12379", secure=True) == (
        "https://10.0.0.1:2379",
        "https://b:12379",
    )
    assert parse_endpoints("a", secure=False) == ("http://a:2379",)
    with pytest.raises(UsageError, match="malformed"):
        parse_endpoints("ftp://x:1", secure=False)
    with pytest.raises(UsageError, match="no etcd endpoint"):
        parse_endpoints(" , ", secure=False)


def test_etcdctl_environment_is_a_target() -> None:
    target = target_from_env(
        {
            "ETCDCTL_ENDPOINTS": "https://1.2.3.4:2379",
            "ETCDCTL_CACERT": "/ca",
            "ETCDCTL_CERT": "/c",
            "ETCDCTL_KEY": "/k",
        }
    )
    assert target is not None and target.endpoints == ("https://1.2.3.4:2379",)
    assert target.tls.ca == Path("/ca") and target.tls.key == Path("/k")
    assert target_from_env({}) is None


def test_snapshot_names_follow_cluster_backup() -> None:
    when = datetime(2026, 11, 25, 23, 30, 12, tzinfo=UTC)
    assert snapshot_name(when) == "snapshot_2026-11-25_233012.db"
    assert resources_name("snapshot_2026-11-25_233012.db") == "static_kuberesources_2026-11-25_233012.tar.gz"
    with pytest.raises(UsageError):
        resources_name("backup.db")


def _snap(when: datetime, *, verified: bool = False) -> StoredSnapshot:
    name = snapshot_name(when)
    verification = Verification(name, when, True) if verified else None
    return StoredSnapshot(name, 1, when, None, verification, False)


def test_retention_keeps_newest_daily_weekly_and_the_newest_verified() -> None:
    start = datetime(2026, 11, 1, 12, tzinfo=UTC)
    snaps = [_snap(start + timedelta(hours=6 * i), verified=(i == 2)) for i in range(40)]  # 10 days, 4 a day
    result = select(snaps, Retention(keep_last=2, keep_daily=3))
    kept = sorted(result.keep)
    newest = sorted(s.name for s in snaps)[-2:]
    assert set(newest) <= set(kept)
    assert snaps[2].name in kept and "newest verified" in result.keep[snaps[2].name]
    days = {name[9:19] for name in kept if "daily" in " ".join(result.keep[name])}
    assert len(days) == 3
    assert len(result.remove) == 40 - len(kept)
    with pytest.raises(UsageError, match="keep something"):
        select(snaps, Retention())


def test_initial_cluster_and_restore_plan_are_checked(tmp_path: Path) -> None:
    assert parse_initial_cluster("a=http://x:1,b=http://y:2") == {"a": ["http://x:1"], "b": ["http://y:2"]}
    with pytest.raises(UsageError):
        parse_initial_cluster("a:http://x")
    tool = EtcdTool(find_tool("etcdutl"))
    plan = plan_restore(
        tool, data_dir=tmp_path / "new", name="a", initial_cluster=None, peer_urls="http://x:1"
    )
    assert plan.initial_cluster == "a=http://x:1" and plan.token.startswith("strongroom-restore-")
    if not tool.supports_bump_revision:
        assert plan.bump_revision is None and "cannot bump the revision" in plan.warnings[0]
        assert "informers" in plan.warnings[0] and "kube-apiserver" in plan.warnings[0]
    with pytest.raises(UsageError, match="not in --initial-cluster"):
        plan_restore(
            tool, data_dir=tmp_path / "n", name="c", initial_cluster="a=http://x:1", peer_urls="http://z:1"
        )
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "member").mkdir()
    with pytest.raises(ConflictError, match="not empty"):
        plan_restore(tool, data_dir=tmp_path / "busy", name="a", initial_cluster=None, peer_urls="http://x:1")


def _survey(healthy: dict[str, bool]) -> ClusterSurvey:
    members = [
        MemberHealth(
            Member(index + 1, name, (f"http://{name}:2380",), (f"http://{name}:2379",), False), healthy=ok
        )
        for index, (name, ok) in enumerate(healthy.items())
    ]
    return ClusterSurvey(7, members)


def test_replace_refuses_to_lose_quorum_or_to_go_without_a_recent_snapshot() -> None:
    urls = ["http://new:2380"]
    plan = plan_replace(
        _survey({"a": True, "b": True, "c": False}),
        "c",
        new_name=None,
        peer_urls=urls,
        force=False,
        snapshot_problem=None,
    )
    assert plan.member.name == "c" and plan.steps[0].startswith("remove member c")
    with pytest.raises(ConflictError, match="quorum"):
        plan_replace(
            _survey({"a": True, "b": False, "c": False}), "c", new_name=None, peer_urls=urls, force=True,
            snapshot_problem=None,
        )  # fmt: skip
    with pytest.raises(ConflictError, match="no verified snapshot"):
        plan_replace(
            _survey({"a": True, "b": True, "c": False}), "c", new_name=None, peer_urls=urls, force=False,
            snapshot_problem="no verified snapshot found",
        )  # fmt: skip
    with pytest.raises(NotFoundError, match="no member named 'x'"):
        plan_replace(
            _survey({"a": True}), "x", new_name=None, peer_urls=urls, force=True, snapshot_problem=None
        )


def test_unhealthy_member_is_explained_as_the_seed_classifies_it() -> None:
    node = {
        "metadata": {"name": "m1"},
        "spec": {"taints": [{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}]},
        "status": {"conditions": [{"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown"}]},
    }
    machine = {"metadata": {"name": "cluster-m1"}, "status": {"phase": "Failed", "nodeRef": {"name": "m1"}}}
    pod = {
        "metadata": {"name": "etcd-m1"},
        "status": {
            "containerStatuses": [
                {"name": "etcd", "restartCount": 7, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}
            ]
        },
    }
    reasons = " | ".join(classify_member("m1", node, machine, pod))
    assert "not running" in reasons and "NotReady" in reasons and "unreachable taint" in reasons
    assert "crashlooping" in reasons
    assert classify_member("m2", None, None, None) == ["no node named m2: the machine may be gone"]


def test_cluster_pods_name_the_endpoints_and_host_files(tmp_path: Path) -> None:
    apiserver = {
        "metadata": {"name": "kube-apiserver-master-0"},
        "spec": {
            "containers": [
                {
                    "name": "kube-apiserver",
                    "command": [
                        "kube-apiserver",
                        "--etcd-servers=https://10.0.0.5:2379,https://10.0.0.6:2379",
                        "--etcd-cafile=/etc/kubernetes/pki/etcd/ca.crt",
                        "--etcd-certfile=/etc/kubernetes/pki/apiserver-etcd-client.crt",
                        "--etcd-keyfile=/etc/kubernetes/pki/apiserver-etcd-client.key",
                    ],
                    "volumeMounts": [{"name": "k8s-certs", "mountPath": "/etc/kubernetes/pki"}],
                }
            ],
            "volumes": [{"name": "k8s-certs", "hostPath": {"path": "/etc/kubernetes/pki"}}],
        },
    }
    target = target_from_pods([apiserver], tmp_path)
    assert target is not None
    assert target.endpoints == ("https://10.0.0.5:2379", "https://10.0.0.6:2379")
    assert target.tls.ca == tmp_path / "etc/kubernetes/pki/etcd/ca.crt"
    openshift = {
        "metadata": {"name": "etcd-master-0"},
        "spec": {
            "containers": [
                {
                    "name": "etcdctl",
                    "env": [
                        {"name": "ETCDCTL_ENDPOINTS", "value": "https://10.0.0.5:2379"},
                        {
                            "name": "ETCDCTL_CACERT",
                            "value": "/etc/kubernetes/static-pod-certs/configmaps/etcd-serving-ca/ca-bundle.crt",
                        },
                        {
                            "name": "ETCDCTL_CERT",
                            "value": "/etc/kubernetes/static-pod-certs/secrets/etcd-all-certs/etcd-peer-master-0.crt",
                        },
                        {
                            "name": "ETCDCTL_KEY",
                            "value": "/etc/kubernetes/static-pod-certs/secrets/etcd-all-certs/etcd-peer-master-0.key",
                        },
                    ],
                    "volumeMounts": [{"name": "cert-dir", "mountPath": "/etc/kubernetes/static-pod-certs"}],
                }
            ],
            "volumes": [
                {"name": "cert-dir", "hostPath": {"path": "/etc/kubernetes/static-pod-resources/etcd-certs"}}
            ],
        },
    }
    found = target_from_pods([openshift], tmp_path)
    assert found is not None and found.source == "etcd pod etcd-master-0"
    assert (
        found.tls.cert
        == tmp_path
        / "etc/kubernetes/static-pod-resources/etcd-certs/secrets/etcd-all-certs/etcd-peer-master-0.crt"
    )
    assert (
        target_from_pods([{"metadata": {"name": "x"}, "spec": {"containers": [{"name": "c"}]}}], tmp_path)
        is None
    )


def test_a_snapshot_from_another_etcd_major_or_a_newer_minor_is_refused() -> None:
    from strongroom.etcd.snapshot import IntegrityError, SnapshotRecord
    from strongroom.etcd.verify import check_version

    tool = EtcdTool(find_tool("etcdutl"))
    major, minor, _ = tool.version

    def record(version: str) -> SnapshotRecord:
        return SnapshotRecord(
            "snapshot_2026-11-25_233012.db", datetime.now(UTC), 1, "", None, etcd_version=version
        )

    assert "restorable" in (check_version(record(f"{major}.{minor}.0"), tool) or "")
    assert "restorable" in (check_version(record(f"{major}.{max(minor - 1, 0)}.9"), tool) or "")
    with pytest.raises(IntegrityError, match="cannot restore it"):
        check_version(record(f"{major + 1}.0.0"), tool)
    with pytest.raises(IntegrityError, match="cannot restore it"):
        check_version(record(f"{major}.{minor + 1}.0"), tool)
    assert check_version(None, tool) is None
