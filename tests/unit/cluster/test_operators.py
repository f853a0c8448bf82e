"""Reading OpenShift's static pod operator resources: rollout state and etcd's member condition."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from strongroom.cluster.operators import etcd_members_condition, rollout, unique_reason


def _operator(latest: Any, nodes: dict[str, Any], installer: dict[str, str] | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {
        "latestAvailableRevision": latest,
        "nodeStatuses": [{"nodeName": n, "currentRevision": r} for n, r in nodes.items()],
    }
    if installer:
        status["conditions"] = [{"type": "NodeInstallerProgressing", **installer}]
    return {"status": status}


def test_a_rollout_is_at_latest_only_when_every_node_runs_the_latest_revision() -> None:
    staged = rollout("etcd", _operator(7, {"a": 6, "b": 7, "c": 6}))
    assert not staged.at_latest()
    assert staged.describe() == "2 nodes are at revision 6; 1 node is at revision 7"
    done = rollout("etcd", _operator(7, {"a": 7, "b": 7, "c": 7}))
    assert done.at_latest() and done.describe() == "3 nodes are at revision 7"
    # A node that has no revision yet (a new control-plane node) is behind, and said so.
    fresh = rollout("etcd", _operator(7, {"a": 7, "new": None}))
    assert not fresh.at_latest()
    assert fresh.describe() == "1 node is at revision 7; 1 node is at revision (none)"


def test_without_node_statuses_the_installer_condition_decides() -> None:
    reported = rollout(
        "kube-scheduler",
        _operator(
            4,
            {},
            {"status": "False", "reason": "AllNodesAtLatestRevision", "message": "3 nodes are at revision 4"},
        ),
    )
    assert reported.at_latest() and reported.describe() == "3 nodes are at revision 4"
    assert not rollout(
        "kube-scheduler", _operator(4, {}, {"status": "True", "reason": "NodeInstaller"})
    ).at_latest()
    # No latest revision at all (a malformed or new resource) is never "at latest".
    assert not rollout("etcd", _operator("7", {"a": 7})).at_latest()
    assert not rollout("etcd", {}).at_latest()


def test_etcd_members_condition_names_the_unhealthy_members() -> None:
    def etcd(status: str, message: str) -> dict[str, Any]:
        return {
            "status": {"conditions": [{"type": "EtcdMembersAvailable", "status": status, "message": message}]}
        }

    seed = etcd_members_condition(
        etcd("True", "2 of 3 members are available, ip-10-0-131-183.ec2.internal is unhealthy")
    )
    assert seed.available is False  # the seed's example is True with an unhealthy member named
    assert seed.unhealthy == ("ip-10-0-131-183.ec2.internal",)
    two = etcd_members_condition(
        etcd("False", "1 of 3 members are available, m-1 is unhealthy, m-2 has not started")
    )
    assert two.unhealthy == ("m-1", "m-2") and two.available is False
    healthy = etcd_members_condition(etcd("True", "3 members are available"))
    assert healthy.available is True and healthy.unhealthy == ()
    assert etcd_members_condition({"status": {}}).available is None


def test_reasons_are_unique_to_the_microsecond() -> None:
    first = unique_reason("recovery", datetime(2026, 11, 26, 2, 41, 7, 123456, tzinfo=UTC))
    second = unique_reason("recovery", datetime(2026, 11, 26, 2, 41, 7, 123457, tzinfo=UTC))
    assert first == "recovery-2026-11-26 02:41:07.123456+00:00" and first != second
